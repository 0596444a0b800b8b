//! raft-engine 0.4 (TiKV's Raft log store), default features off (no scripting).
//!
//! raft-engine stores protobuf messages per Raft group ("region") at contiguous indexes. Each
//! writer thread gets its own region, as each Raft group would in TiKV; a record is a
//! `BytesValue` whose first 8 bytes carry its index (raft-engine asks the message for it).
//! Compression is switched off (`batch_compression_threshold = 0`) so large incompressible
//! records are not run through lz4 for nothing. Group commit is raft-engine's own write barrier.

use std::{
    collections::HashMap,
    io,
    path::Path,
    sync::Mutex,
    thread::{self, ThreadId},
};

use protobuf::well_known_types::BytesValue;
use raft_engine::{Config, Engine, LogBatch, MessageExt, ReadableSize};

use crate::subject::{Capability, Durability, Lsn, Peer, Replayed, Subject, fold_bytes, io_err};

/// Bits of an [`Lsn`] holding the index within a region; the region id sits above them.
const INDEX_BITS: u32 = 40;
const INDEX_PREFIX: usize = 8;

/// The raft-engine peer.
pub(crate) struct RaftEngine;

/// Ties raft-engine's entry type to our records.
#[derive(Clone)]
struct Records;

impl MessageExt for Records {
    type Entry = BytesValue;

    fn index(e: &BytesValue) -> u64 {
        e.value
            .get(..INDEX_PREFIX)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u64::from_le_bytes)
    }
}

struct RaftLog {
    engine: Engine,
    /// Per writer thread: its region and the next index to use there.
    regions: Mutex<HashMap<ThreadId, (u64, u64)>>,
}

fn config(dir: &Path) -> Config {
    Config {
        dir: dir.to_string_lossy().into_owned(),
        batch_compression_threshold: ReadableSize(0),
        ..Config::default()
    }
}

impl Peer for RaftEngine {
    fn name(&self) -> &'static str {
        "raft-engine 0.4"
    }

    fn durability(&self) -> Durability {
        Durability::Fsync
    }

    fn supports(&self, _capability: Capability) -> Result<(), &'static str> {
        Ok(())
    }

    fn create(&self, dir: &Path) -> io::Result<Box<dyn Subject>> {
        self.open(dir)
    }

    fn open(&self, dir: &Path) -> io::Result<Box<dyn Subject>> {
        let engine = Engine::open(config(dir)).map_err(io_err)?;
        Ok(Box::new(RaftLog {
            engine,
            regions: Mutex::new(HashMap::new()),
        }))
    }

    fn replay(&self, dir: &Path) -> io::Result<Replayed> {
        let engine = Engine::open(config(dir)).map_err(io_err)?;
        let mut seen = Replayed::default();
        let mut fold = 0;
        let mut entries = Vec::with_capacity(1024);
        for region in engine.raft_groups() {
            let (Some(first), Some(last)) = (engine.first_index(region), engine.last_index(region))
            else {
                continue;
            };
            let mut next = first;
            while next <= last {
                let end = (next + 1024).min(last + 1);
                entries.clear();
                engine
                    .fetch_entries_to::<Records>(region, next, end, None, &mut entries)
                    .map_err(io_err)?;
                for entry in &entries {
                    let payload = entry.value.get(INDEX_PREFIX..).unwrap_or_default();
                    fold = fold_bytes(fold, payload);
                    seen.records += 1;
                    seen.bytes += payload.len() as u64;
                }
                next = end;
            }
        }
        core::hint::black_box(fold);
        Ok(seen)
    }
}

impl RaftLog {
    /// Reserves `count` indexes in the calling thread's region.
    fn reserve(&self, count: u64) -> io::Result<(u64, u64)> {
        let mut regions = self
            .regions
            .lock()
            .map_err(|_| io::Error::other("poisoned"))?;
        let new_region = regions.len() as u64 + 1;
        let slot = regions
            .entry(thread::current().id())
            .or_insert((new_region, 1));
        let reserved = *slot;
        slot.1 += count;
        Ok(reserved)
    }
}

impl Subject for RaftLog {
    fn append(&self, records: &[&[u8]], durable: bool) -> io::Result<Lsn> {
        let (region, first) = self.reserve(records.len() as u64)?;
        let entries: Vec<BytesValue> = records
            .iter()
            .zip(first..)
            .map(|(record, index)| {
                let mut value = Vec::with_capacity(INDEX_PREFIX + record.len());
                value.extend_from_slice(&index.to_le_bytes());
                value.extend_from_slice(record);
                BytesValue {
                    value,
                    ..BytesValue::default()
                }
            })
            .collect();
        let mut batch = LogBatch::with_capacity(entries.len());
        batch
            .add_entries::<Records>(region, &entries)
            .map_err(io_err)?;
        self.engine.write(&mut batch, durable).map_err(io_err)?;
        Ok((region << INDEX_BITS) | first)
    }

    fn read(&self, lsn: Lsn, buf: &mut Vec<u8>) -> io::Result<()> {
        let (region, index) = (lsn >> INDEX_BITS, lsn & ((1 << INDEX_BITS) - 1));
        let entry = self
            .engine
            .get_entry::<Records>(region, index)
            .map_err(io_err)?
            .ok_or_else(|| io::Error::other("lsn not found"))?;
        buf.clear();
        buf.extend_from_slice(entry.value.get(INDEX_PREFIX..).unwrap_or_default());
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        self.engine.sync().map_err(io_err)
    }
}
