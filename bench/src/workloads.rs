//! The write workloads (1-4): durable appends, batches, non-durable appends, concurrent writers.
//! Each case runs on a fresh log in its own directory, which is removed afterwards.

use std::{io, path::Path, sync::Barrier, time::Instant};

use crate::{
    limits::Limits,
    measure::{
        Budget, Outcome, Row, Summary, cpu_seconds, histogram, record, size_label, timed_loop,
    },
    subject::{Capability, Durability, Peer, Subject, payload},
};

/// Workload group titles, also the keys of the results table.
pub(crate) const W1: &str = "1. fsync every append";
/// Batches made durable by one fsync.
pub(crate) const W2: &str = "2. batch per fsync";
/// Appends with no fsync.
pub(crate) const W3: &str = "3. no fsync";
/// Concurrent durable writers.
pub(crate) const W4: &str = "4. concurrent writers, each append durable (128 B)";

/// Record sizes of workload 1.
pub(crate) const DURABLE_SIZES: [usize; 3] = [128, 1024, 4096];
/// `(records per batch, record size)` of workload 2.
pub(crate) const BATCHES: [(usize, usize); 6] = [
    (10, 128),
    (100, 128),
    (1000, 128),
    (10, 1024),
    (100, 1024),
    (1000, 1024),
];
/// Record sizes of workload 3.
pub(crate) const NO_SYNC_SIZES: [usize; 2] = [128, 256 << 10];
/// Record size of workload 4.
pub(crate) const CONCURRENT_SIZE: usize = 128;

/// Every `write` + `fdatasync` size whose raw rate a workload 1, 2 or 4 row is compared with.
pub(crate) fn fsync_sizes(writers: &[usize]) -> Vec<usize> {
    let mut sizes: Vec<usize> = DURABLE_SIZES
        .iter()
        .copied()
        .chain(BATCHES.iter().map(|(n, s)| n * s))
        .chain(writers.iter().map(|w| w * CONCURRENT_SIZE))
        .collect();
    sizes.sort_unstable();
    sizes.dedup();
    sizes
}

/// Writes back whatever earlier cases left dirty in the page cache (`sync(2)`), so that a case
/// does not pay for the one before it: a case that appends 1 GiB without syncs leaves the
/// kernel's write-back of it running (its directory is removed, but not before write-back
/// starts), and the next case ran in its shadow (256 KiB appends without syncs: 0.32 and
/// 0.68 of the baseline in two suite runs where Walden came right after such a case, 0.99 in
/// one where it did not; 0.88-2.31 interleaved by `bulk nofsync256k`).
pub(crate) fn settle() {
    rustix::fs::sync();
}

/// Creates a fresh directory under `base`, runs `f` on a new log there, and removes it.
pub(crate) fn with_fresh_log<T>(
    base: &Path,
    peer: &dyn Peer,
    f: impl FnOnce(&Path, &dyn Subject) -> io::Result<T>,
) -> io::Result<T> {
    settle();
    let dir = tempfile::Builder::new().prefix("case-").tempdir_in(base)?;
    let log = peer.create(dir.path())?;
    let result = f(dir.path(), log.as_ref());
    drop(log);
    result
}

/// Builds a row from a run's result, applying the peer's capability check first.
pub(crate) fn row(
    workload: &'static str,
    case: String,
    peer: &dyn Peer,
    capability: Capability,
    limit: Option<f64>,
    run: impl FnOnce() -> io::Result<Summary>,
) -> Row {
    let outcome = match peer.supports(capability) {
        Err(reason) => Outcome::NotApplicable(reason.to_owned()),
        Ok(()) => match run() {
            Ok(summary) => Outcome::Measured(summary),
            Err(e) => Outcome::Failed(e.to_string()),
        },
    };
    if let Outcome::Failed(e) = &outcome {
        eprintln!("  {} / {workload} / {case}: FAILED: {e}", peer.name());
    }
    Row {
        workload,
        case,
        subject: peer.name(),
        outcome,
        limit_records_per_sec: limit,
        counts_for_best: match capability {
            Capability::Open => peer.open_unverified().is_none(),
            Capability::NonDurableAppend | Capability::Replay | Capability::ReadByLsn => true,
            Capability::DurableAppend | Capability::DurableBatch | Capability::ConcurrentAppend => {
                peer.durability() == Durability::Fsync
            }
        },
    }
}

/// Runs one case for every peer, one peer after another, and returns the rows in the peers'
/// order. The peers take turns case by case, in alternating directions (`turn` counts the
/// cases run so far), so every peer's run of a case is measured within seconds of the
/// others' on a machine whose speed drifts, and no peer always follows the same one. (Before,
/// each peer ran all its cases back to back: a row compared runs minutes apart.)
pub(crate) fn each_peer(
    peers: &[&'static dyn Peer],
    turn: &mut usize,
    mut run: impl FnMut(&'static dyn Peer) -> Row,
) -> Vec<Row> {
    let mut rows: Vec<Option<Row>> = peers.iter().map(|_| None).collect();
    for i in turn_order(peers.len(), turn) {
        rows[i] = Some(run(peers[i]));
    }
    rows.into_iter().flatten().collect()
}

/// The order in which `peers` peers take their turn: forward and backward on alternate
/// turns (`turn` counts the turns taken so far).
pub(crate) fn turn_order(peers: usize, turn: &mut usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..peers).collect();
    if *turn % 2 == 1 {
        order.reverse();
    }
    *turn += 1;
    order
}

/// One case of single-record appends (`durable`: each waits for its fsync) for every peer in
/// turn: workloads 1 and 3.
#[allow(clippy::too_many_arguments)]
fn single_appends(
    base: &Path,
    peers: &[&'static dyn Peer],
    turn: &mut usize,
    workload: &'static str,
    capability: Capability,
    limit: Option<f64>,
    size: usize,
    seed: u64,
    durable: bool,
    budget: Budget,
) -> Vec<Row> {
    let record = payload(size, seed);
    each_peer(peers, turn, |peer| {
        eprintln!("  {} / {workload} / {}", peer.name(), size_label(size));
        row(workload, size_label(size), peer, capability, limit, || {
            with_fresh_log(base, peer, |_, log| {
                timed_loop(budget, |_| {
                    log.append(&[&record], durable)?;
                    Ok((1, size as u64))
                })
            })
        })
    })
}

/// Runs workloads 1-4, every case for each peer in turn ([`each_peer`]).
pub(crate) fn run_writes(
    base: &Path,
    peers: &[&'static dyn Peer],
    limits: &mut Limits,
    budget: Budget,
    writers: &[usize],
    turn: &mut usize,
) -> Vec<Row> {
    let mut rows = Vec::new();
    // Each durable case's limit is measured again right before it (`Limits::remeasure_fsync`);
    // a failure leaves the first measurement.
    let again = |limits: &mut Limits, bytes: usize| {
        if let Err(e) = limits.remeasure_fsync(base, bytes, budget) {
            eprintln!("  raw write+fdatasync {bytes} B again: FAILED: {e}");
        }
    };
    for size in DURABLE_SIZES {
        again(limits, size);
        let limit = limits.fsync_rate(size);
        rows.extend(single_appends(
            base,
            peers,
            turn,
            W1,
            Capability::DurableAppend,
            limit,
            size,
            1,
            true,
            budget,
        ));
    }
    for (count, size) in BATCHES {
        let case = format!("{count} x {}", size_label(size));
        let data = payload(count * size, 2);
        let records: Vec<&[u8]> = data.chunks(size).collect();
        again(limits, count * size);
        let limit = limits.fsync_rate(count * size).map(|r| r * count as f64);
        rows.extend(each_peer(peers, turn, |peer| {
            eprintln!("  {} / {W2} / {case}", peer.name());
            row(
                W2,
                case.clone(),
                peer,
                Capability::DurableBatch,
                limit,
                || {
                    with_fresh_log(base, peer, |_, log| {
                        timed_loop(budget, |_| {
                            log.append(&records, true)?;
                            Ok((count as u64, (count * size) as u64))
                        })
                    })
                },
            )
        }));
    }
    for size in NO_SYNC_SIZES {
        let limit = limits.seq_write.mb_per_sec() * 1e6 / size as f64;
        // Cap the volume written so a fast peer does not fill the disk.
        let budget = Budget {
            max_ops: budget.max_ops.min((1u64 << 30) / size as u64),
            ..budget
        };
        rows.extend(single_appends(
            base,
            peers,
            turn,
            W3,
            Capability::NonDurableAppend,
            Some(limit),
            size,
            3,
            false,
            budget,
        ));
    }
    for &count in writers {
        let case = format!("{count} writers");
        again(limits, count * CONCURRENT_SIZE);
        let limit = limits
            .fsync_rate(count * CONCURRENT_SIZE)
            .map(|r| r * count as f64);
        rows.extend(each_peer(peers, turn, |peer| {
            eprintln!("  {} / {W4} / {case}", peer.name());
            row(
                W4,
                case.clone(),
                peer,
                Capability::ConcurrentAppend,
                limit,
                || with_fresh_log(base, peer, |_, log| concurrent(log, count, budget)),
            )
        }));
    }
    rows
}

/// `writers` threads each appending one durable 128-byte record at a time until the budget's
/// time is up (each does at least one append and at most `max_ops / writers`).
fn concurrent(log: &dyn Subject, writers: usize, budget: Budget) -> io::Result<Summary> {
    let data = payload(CONCURRENT_SIZE, 4);
    let per_writer = (budget.max_ops / writers as u64).max(1);
    let barrier = Barrier::new(writers + 1);
    let deadline_after = budget.time;
    let (hists, elapsed, cpu) = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..writers)
            .map(|_| {
                let (barrier, data) = (&barrier, &data);
                scope.spawn(move || -> io::Result<_> {
                    let mut hist = histogram();
                    barrier.wait();
                    let start = Instant::now();
                    let mut done = 0u64;
                    while done < per_writer && (done == 0 || start.elapsed() < deadline_after) {
                        let t = Instant::now();
                        log.append(&[data], true)?;
                        record(&mut hist, t.elapsed());
                        done += 1;
                    }
                    Ok(hist)
                })
            })
            .collect();
        let cpu = cpu_seconds();
        barrier.wait();
        let start = Instant::now();
        let hists: Vec<io::Result<_>> = handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(io::Error::other("writer panicked")))
            })
            .collect();
        (hists, start.elapsed(), cpu)
    });
    let mut total = histogram();
    for hist in hists {
        total
            .add(hist?)
            .map_err(|e| io::Error::other(format!("{e:?}")))?;
    }
    let records = total.len();
    Ok(Summary::new(records, records * CONCURRENT_SIZE as u64, elapsed, &total).with_cpu(cpu))
}
