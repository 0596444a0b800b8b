//! The read workloads (5-7): sequential replay of a large log, open/recovery time (warm and
//! cold), and random reads by LSN.

use std::{io, path::Path};

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

/// Runs workloads 5-7 for one peer.
pub(crate) fn run_reads(
    base: &Path,
    peer: &dyn Peer,
    limits: &Limits,
    scale: ReadScale,
    budget: Budget,
) -> Vec<Row> {
    let mut rows = Vec::new();
    let records = scale.log_bytes / REPLAY_RECORD as u64;
    let case = format!(
        "{} log, {} records",
        size_label(usize::try_from(scale.log_bytes).unwrap_or(usize::MAX)),
        size_label(REPLAY_RECORD)
    );
    let dir = match tempfile::Builder::new().prefix("replay-").tempdir_in(base) {
        Ok(dir) => dir,
        Err(e) => {
            rows.push(row(W5, case, peer, Capability::Replay, None, || Err(e)));
            return rows;
        }
    };
    eprintln!("  {} / filling {case}", peer.name());
    let filled = peer
        .create(dir.path())
        .and_then(|log| fill(peer, log.as_ref(), records, REPLAY_RECORD).map(drop));
    let per_record = |bytes_per_sec: f64| Some(bytes_per_sec / REPLAY_RECORD as f64);
    let warm_limit = per_record(limits.seq_read_warm.mb_per_sec() * 1e6);
    let cold_limit = per_record(limits.seq_read_cold.mb_per_sec() * 1e6);
    eprintln!("  {} / {W5}", peer.name());
    rows.push(row(
        W5,
        case.clone(),
        peer,
        Capability::Replay,
        warm_limit,
        || {
            filled
                .as_ref()
                .map_err(|e| io::Error::new(e.kind(), e.to_string()))?;
            // As many replays as opens below: one replay right after the fill shares the
            // machine with the kernel's write-back of what the fill left dirty (the first
            // rounds of `replay_phases` ran up to 2x the later ones), and one sample has no
            // spread to report.
            let mut hist = histogram();
            let (mut total, mut bytes, mut elapsed) = (0, 0, core::time::Duration::ZERO);
            for _ in 0..scale.open_repeats.max(1) {
                let (seen, took) = time(|| peer.replay(dir.path()))?;
                if seen.records != records {
                    return Err(io::Error::other(format!(
                        "replay saw {} records, {records} written",
                        seen.records
                    )));
                }
                record(&mut hist, took);
                (total, bytes, elapsed) =
                    (total + seen.records, bytes + seen.bytes, elapsed + took);
            }
            Ok(Summary::new(total, bytes, elapsed, &hist))
        },
    ));
    for cold in [false, true] {
        let temperature = if cold { "cold" } else { "warm" };
        eprintln!("  {} / {W6} / {temperature}", peer.name());
        let limit = if cold { cold_limit } else { warm_limit };
        let case = format!("{case}, {temperature}");
        rows.push(row(W6, case, peer, Capability::Open, limit, || {
            filled
                .as_ref()
                .map_err(|e| io::Error::new(e.kind(), e.to_string()))?;
            open_times(peer, dir.path(), records, scale.open_repeats, cold)
        }));
    }
    drop(dir);

    let case = format!("{} records", scale.read_records);
    eprintln!("  {} / {W7} / {case}", peer.name());
    let limit = Some(limits.random_read.records_per_sec());
    rows.push(row(W7, case, peer, Capability::ReadByLsn, limit, || {
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
    }));
    rows
}

/// Opens the log `repeats` times (cold: after dropping its pages from the page cache each
/// time) and summarises the open times; records/s is records recovered per second of open.
fn open_times(
    peer: &dyn Peer,
    dir: &Path,
    records: u64,
    repeats: u32,
    cold: bool,
) -> io::Result<Summary> {
    let mut hist = histogram();
    let mut opening = core::time::Duration::ZERO;
    for _ in 0..repeats.max(1) {
        if cold {
            drop_cache(dir)?;
        }
        let (log, elapsed) = time(|| peer.open(dir))?;
        drop(log);
        record(&mut hist, elapsed);
        opening += elapsed;
    }
    let n = u64::from(repeats.max(1));
    Ok(Summary::new(
        records * n,
        records * n * REPLAY_RECORD as u64,
        opening,
        &hist,
    ))
}
