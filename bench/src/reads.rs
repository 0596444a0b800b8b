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

/// One peer's timed operations of a case, one per round.
struct Samples {
    hist: hdrhistogram::Histogram<u64>,
    /// (records, bytes, time taken) of each round.
    rounds: Vec<(u64, u64, Duration)>,
}

impl Samples {
    /// The median round (the lower middle one of an even count): a row's records/s and MB/s
    /// come from it, so one round slowed by the machine does not move the row (the mean of
    /// three did: one baseline replay of 748 ms beside two of 164 ms took its rate to half).
    fn median(&self) -> (u64, u64, Duration) {
        let mut rounds = self.rounds.clone();
        rounds.sort_by_key(|&(_, _, took)| took);
        rounds
            .get(rounds.len().saturating_sub(1) / 2)
            .copied()
            .unwrap_or((0, 0, Duration::ZERO))
    }
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
                rounds: Vec::new(),
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
                    samples.rounds.push((records, bytes, took));
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
        let (records, bytes, took) = s.median();
        Ok(Summary::new(records, bytes, took, &s.hist))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(millis: &[u64]) -> Samples {
        Samples {
            hist: histogram(),
            rounds: millis
                .iter()
                .map(|&ms| (1000, 1 << 20, Duration::from_millis(ms)))
                .collect(),
        }
    }

    #[test]
    fn a_row_comes_from_the_median_round_not_the_mean() {
        // The run that motivated it: one slow round beside two fast ones.
        assert_eq!(
            samples(&[164, 748, 170]).median().2,
            Duration::from_millis(170)
        );
        assert_eq!(samples(&[9]).median().2, Duration::from_millis(9));
        // An even count takes the lower middle round.
        assert_eq!(
            samples(&[40, 10, 30, 20]).median().2,
            Duration::from_millis(20)
        );
        assert_eq!(samples(&[]).median(), (0, 0, Duration::ZERO));
        // Records and bytes are the median round's own, not the sum over rounds.
        assert_eq!(samples(&[5, 6, 7]).median().0, 1000);
    }

    #[test]
    fn an_open_that_reads_no_records_is_left_out_of_vs_best() {
        let peers = crate::peers::selected(&[]);
        let counted = |name: &str, capability: Capability| {
            let peer = peers
                .iter()
                .find(|p| p.name().starts_with(name))
                .expect("the peer is in the suite");
            row(W6, String::new(), *peer, capability, None, || {
                Err(io::Error::other("not run"))
            })
            .counts_for_best
        };
        for verified in ["walden", "baseline", "raft-engine"] {
            assert!(counted(verified, Capability::Open), "{verified}");
        }
        for unverified in ["okaywal", "commitlog"] {
            assert!(!counted(unverified, Capability::Open), "{unverified}");
            assert!(counted(unverified, Capability::Replay), "{unverified}");
        }
        // The durability mark is unchanged: commitlog's durable rows, not okaywal's.
        assert!(!counted("commitlog", Capability::DurableAppend));
        assert!(counted("okaywal", Capability::DurableAppend));
    }
}
