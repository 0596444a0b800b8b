//! `bench`: append throughput inside the guest, and the same loop natively.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use walden_core::entry::encode;
use walden_core::{Config, Entry, SyncPolicy};
use walden_std::{CoreWal, FileStorage};

use crate::durable::DurableImage;
use crate::protocol::{self, Line, field};
use crate::rng::SplitMix64;
use crate::runner::{Ending, Guest, RunOptions};

/// One append benchmark.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Workload {
    pub(crate) records: u64,
    pub(crate) value_size: u64,
    pub(crate) sync_every: u64,
    pub(crate) segment_size: u64,
}

/// What one side measured.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Throughput {
    pub(crate) records: u64,
    pub(crate) payload_bytes: u64,
    pub(crate) secs: f64,
}

impl core::fmt::Display for Throughput {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let rate = self.records as f64 / self.secs;
        let mib = (self.records * self.payload_bytes) as f64 / self.secs / (1024.0 * 1024.0);
        write!(
            f,
            "{} records of {} B in {:.3} s: {rate:.0} records/s, {mib:.1} MiB/s",
            self.records, self.payload_bytes, self.secs
        )
    }
}

/// Runs the append loop in the guest, timed by the guest's own monotonic clock.
pub(crate) fn in_guest(guest: &Guest, data: &Path, work: Workload) -> Result<Throughput> {
    let args: Vec<String> = [
        ("--bench", work.records),
        ("--max-value", work.value_size),
        ("--min-value", 0),
        ("--sync-every", work.sync_every),
        ("--segment-size", work.segment_size),
    ]
    .iter()
    .flat_map(|(flag, value)| [(*flag).to_owned(), value.to_string()])
    .chain(["--quiet-dump".to_owned()])
    .collect();
    let started = Instant::now();
    let (outcome, _) = guest.run(data, &args, RunOptions::whole(), DurableImage::of(data)?)?;
    let wall = started.elapsed();
    if outcome.ending != Ending::Finished {
        bail!(
            "the benchmark guest failed: {}; stderr: {}",
            outcome.failure.as_deref().unwrap_or("?"),
            outcome.stderr.trim()
        );
    }
    let lines = protocol::parse(&outcome.stdout)?;
    let pairs = lines
        .iter()
        .find_map(|l| match l {
            Line::Bench(pairs) => Some(pairs),
            _ => None,
        })
        .context("the guest printed no BENCH line")?;
    let number = |key: &str| -> Result<f64> {
        field(pairs, key)
            .with_context(|| format!("BENCH line lacks {key}"))?
            .parse::<f64>()
            .with_context(|| format!("BENCH {key} is not a number"))
    };
    let result = Throughput {
        records: number("records")? as u64,
        payload_bytes: number("payload_bytes")? as u64,
        secs: number("secs")?,
    };
    eprintln!("guest run wall time {wall:.2?} (instantiation and recovery included)");
    Ok(result)
}

/// The same append loop natively: walden-core over `walden-std`'s `FileStorage`, with the
/// guest's payload (core's `Entry::Put { key: b"bench", value }`, postcard-encoded once),
/// configuration and sync cadence, timing only the loop as the guest does. The difference to
/// [`in_guest`] is the WASI boundary and wasm code generation, nothing else.
pub(crate) fn native(data: &Path, work: Workload) -> Result<Throughput> {
    let storage =
        FileStorage::open(data, true).map_err(|e| anyhow!("opening {}: {e:?}", data.display()))?;
    let mut config = Config::default();
    config.segment_size = work.segment_size;
    config.max_record_size = 64 * 1024;
    config.sync_policy = SyncPolicy::Manual;
    let mut scratch = vec![0u8; 64 * 1024];
    let (mut wal, _) = CoreWal::open(storage, config, &mut scratch)
        .map_err(|e| anyhow!("opening the native log: {e:?}"))?;
    let mut rng = SplitMix64::new(1);
    let value: Vec<u8> = (0..work.value_size).map(|_| rng.next_u64() as u8).collect();
    let entry = Entry::Put {
        key: b"bench",
        value: &value,
    };
    let payload = encode(&entry, &mut scratch).map_err(|e| anyhow!("bench record: {e}"))?;
    let started = Instant::now();
    for i in 1..=work.records {
        wal.append(payload).map_err(|e| anyhow!("append: {e:?}"))?;
        if i % work.sync_every == 0 {
            wal.sync().map_err(|e| anyhow!("sync: {e:?}"))?;
        }
    }
    wal.sync().map_err(|e| anyhow!("sync: {e:?}"))?;
    Ok(Throughput {
        records: work.records,
        payload_bytes: payload.len() as u64,
        secs: started.elapsed().as_secs_f64(),
    })
}
