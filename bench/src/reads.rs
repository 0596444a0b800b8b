//! The read workloads (5-7): sequential replay of a large log, open/recovery time (warm and
//! cold), and random reads by LSN.

use std::{io, path::Path};

use core::time::Duration;

use crate::{
    limits::{Limits, drop_cache, time},
    measure::{Budget, Row, Summary, histogram, record, size_label, timed_loop},
    subject::{Capability, Lsn, Peer, Subject, payload},
    workloads::row,
};

/// Replay of a large log.
pub(crate) const W5: &str = "5. sequential replay";
/// Reopening a large log.
pub(crate) const W6: &str = "6. open / recovery";
/// Random reads by LSN.
pub(crate) const W7: &str = "7. random reads by LSN (128 B records)";

/// Record size of the replay and open log.
pub(crate) const REPLAY_RECORD: usize = 1024;
/// Records per append while filling a log.
const FILL_BATCH: usize = 1000;

/// Sizes of the read workloads.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ReadScale {
    /// Payload bytes in the replay / open log.
    pub(crate) log_bytes: u64,
    /// Records in the random-read log.
    pub(crate) read_records: u64,
    /// Opens timed per temperature.
    pub(crate) open_repeats: u32,
}

/// Appends `total` records of `size` bytes in batches, durably only where the peer cannot do
/// otherwise, then syncs once. Returns the LSN of every record.
fn fill(peer: &dyn Peer, log: &dyn Subject, total: u64, size: usize) -> io::Result<Vec<Lsn>> {
    let durable = peer.supports(Capability::NonDurableAppend).is_err();
    let data = payload(FILL_BATCH * size, 5);
    let records: Vec<&[u8]> = data.chunks(size).collect();
    let mut lsns = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    let mut written = 0u64;
    while written < total {
        let n = (total - written).min(FILL_BATCH as u64) as usize;
        let first = log.append(&records[..n], durable)?;
        lsns.extend((0..n as u64).map(|i| first + i));
        written += n as u64;
    }
    log.sync()?;
    Ok(lsns)
}

/// What one peer's timed operations of a case added up to, over every round.
struct Samples {
    hist: hdrhistogram::Histogram<u64>,
    records: u64,
    bytes: u64,
    elapsed: Duration,
}

/// Runs `rounds` rounds of `once(peer index)` (records, bytes, time taken) for every peer
/// that supports `capability` and whose log is `ready`, the peers in turn within each round
/// (alternating directions, as [`crate::workloads::each_peer`]), and returns each peer's
/// samples or its first error (a peer that fails is not run again).
fn in_rounds(
    peers: &[&'static dyn Peer],
    capability: Capability,
    rounds: u32,
    turn: &mut usize,
    ready: impl Fn(usize) -> io::Result<()>,
    mut once: impl FnMut(usize) -> io::Result<(u64, u64, Duration)>,
) -> Vec<io::Result<Samples>> {
    let mut out: Vec<io::Result<Samples>> = (0..peers.len())
        .map(|i| {
            ready(i).map(|()| Samples {
                hist: histogram(),
                records: 0,
                bytes: 0,
                elapsed: Duration::ZERO,
            })
        })
        .collect();
    for _ in 0..rounds.max(1) {
        for i in crate::workloads::turn_order(peers.len(), turn) {
            if peers[i].supports(capability).is_err() {
                continue;
            }
            let Ok(samples) = &mut out[i] else {
                continue;
            };
            crate::workloads::settle();
            match once(i) {
                Ok((records, bytes, took)) => {
                    record(&mut samples.hist, took);
                    samples.records += records;
                    samples.bytes += bytes;
                    samples.elapsed += took;
                }
                Err(e) => out[i] = Err(e),
            }
        }
    }
    out
}

/// The row of one peer from [`in_rounds`]' result.
fn rounds_row(
    workload: &'static str,
    case: &str,
    peer: &'static dyn Peer,
    capability: Capability,
    limit: Option<f64>,
    result: io::Result<Samples>,
) -> Row {
    row(workload, case.to_owned(), peer, capability, limit, || {
        let s = result?;
        Ok(Summary::new(s.records, s.bytes, s.elapsed, &s.hist))
    })
}

/// Runs workloads 5-7. Every peer's log is filled first; then each round replays (and then
/// opens) every peer's log in turn, so that the peers' samples of a case come from the same
/// minutes of a machine whose speed drifts.
pub(crate) fn run_reads(
    base: &Path,
    peers: &[&'static dyn Peer],
    limits: &Limits,
    scale: ReadScale,
    budget: Budget,
    turn: &mut usize,
) -> Vec<Row> {
    let mut rows = Vec::new();
    let records = scale.log_bytes / REPLAY_RECORD as u64;
    let case = format!(
        "{} log, {} records",
        size_label(usize::try_from(scale.log_bytes).unwrap_or(usize::MAX)),
        size_label(REPLAY_RECORD)
    );
    let logs: Vec<io::Result<tempfile::TempDir>> = peers
        .iter()
        .map(|peer| {
            let dir = tempfile::Builder::new()
                .prefix("replay-")
                .tempdir_in(base)?;
            eprintln!("  {} / filling {case}", peer.name());
            let log = peer.create(dir.path())?;
            fill(*peer, log.as_ref(), records, REPLAY_RECORD)?;
            drop(log);
            Ok(dir)
        })
        .collect();
    let ready = |i: usize| match &logs[i] {
        Ok(_) => Ok(()),
        Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
    };
    let dir = |i: usize| logs[i].as_ref().map(|d| d.path()).unwrap_or(base);
    let per_record = |bytes_per_sec: f64| Some(bytes_per_sec / REPLAY_RECORD as f64);
    let warm_limit = per_record(limits.seq_read_warm.mb_per_sec() * 1e6);
    let cold_limit = per_record(limits.seq_read_cold.mb_per_sec() * 1e6);
    // As many replays as opens below, and one sample has no spread to report. Each starts
    // with nothing dirty in the page cache (`settle`): a replay that shared the machine with
    // the write-back of a fill ran up to 2x slower (the first rounds of `replay_phases`).
    eprintln!("  {W5}: {} rounds", scale.open_repeats.max(1));
    let replays = in_rounds(
        peers,
        Capability::Replay,
        scale.open_repeats,
        turn,
        ready,
        |i| {
            let (seen, took) = time(|| peers[i].replay(dir(i)))?;
            if seen.records != records {
                return Err(io::Error::other(format!(
                    "replay saw {} records, {records} written",
                    seen.records
                )));
            }
            Ok((seen.records, seen.bytes, took))
        },
    );
    for (peer, result) in peers.iter().zip(replays) {
        rows.push(rounds_row(
            W5,
            &case,
            *peer,
            Capability::Replay,
            warm_limit,
            result,
        ));
    }
    for cold in [false, true] {
        let temperature = if cold { "cold" } else { "warm" };
        eprintln!(
            "  {W6} / {temperature}: {} rounds",
            scale.open_repeats.max(1)
        );
        let limit = if cold { cold_limit } else { warm_limit };
        let opens = in_rounds(
            peers,
            Capability::Open,
            scale.open_repeats,
            turn,
            ready,
            |i| {
                if cold {
                    drop_cache(dir(i))?;
                }
                let (log, took) = time(|| peers[i].open(dir(i)))?;
                drop(log);
                Ok((records, records * REPLAY_RECORD as u64, took))
            },
        );
        let case = format!("{case}, {temperature}");
        for (peer, result) in peers.iter().zip(opens) {
            rows.push(rounds_row(
                W6,
                &case,
                *peer,
                Capability::Open,
                limit,
                result,
            ));
        }
    }
    drop(logs);

    let case = format!("{} records", scale.read_records);
    let limit = Some(limits.random_read.records_per_sec());
    rows.extend(crate::workloads::each_peer(peers, turn, |peer| {
        eprintln!("  {} / {W7} / {case}", peer.name());
        row(W7, case.clone(), peer, Capability::ReadByLsn, limit, || {
            crate::workloads::with_fresh_log(base, peer, |_, log| {
                let lsns = fill(peer, log, scale.read_records, 128)?;
                let mut state = 0x9E37_79B9_7F4A_7C15u64;
                let mut buf = Vec::with_capacity(128);
                timed_loop(budget, |_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    let index = usize::try_from(state % lsns.len().max(1) as u64).unwrap_or(0);
                    log.read(lsns[index], &mut buf)?;
                    if buf.len() != 128 {
                        return Err(io::Error::other(format!("read {} bytes", buf.len())));
                    }
                    Ok((1, 128))
                })
            })
        })
    }));
    rows
}
