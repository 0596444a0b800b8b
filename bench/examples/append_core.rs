//! walden-core's append path alone, over storage in memory (no kernel): nanoseconds per
//! 128 B append, best of several runs, for comparing builds of the core's per-record code.
//! The records of a run stay in the log's first segment (400,000 of 128 B fill 64 MiB).
//!
//! ```text
//! cargo run --release -p walden-bench --example append_core -- [records] [runs] [bytes]
//! ```

use std::collections::BTreeMap;
use std::time::Instant;

use walden_core::{Config, SegmentId, Storage, StorageError, StorageErrorKind, SyncPolicy, Wal};

#[derive(Default)]
struct Mem {
    files: BTreeMap<SegmentId, Vec<u8>>,
}

#[derive(Clone, Copy, Debug)]
struct MemError(StorageErrorKind);

impl core::fmt::Display for MemError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.0.fmt(f)
    }
}

impl StorageError for MemError {
    fn kind(&self) -> StorageErrorKind {
        self.0
    }
}

const NOT_FOUND: MemError = MemError(StorageErrorKind::NotFound);

impl Storage for Mem {
    type Error = MemError;
    fn list(&self, each: &mut dyn FnMut(SegmentId)) -> Result<(), MemError> {
        self.files.keys().for_each(|k| each(*k));
        Ok(())
    }
    fn create(&mut self, id: SegmentId) -> Result<(), MemError> {
        // A whole segment's memory touched up front (the log opens with its first segment,
        // before the clock starts): the copy into it is all the storage costs.
        let mut room = vec![1u8; 64 << 20];
        room.clear();
        self.files.insert(id, room);
        Ok(())
    }
    fn remove(&mut self, id: SegmentId) -> Result<(), MemError> {
        self.files.remove(&id).map(|_| ()).ok_or(NOT_FOUND)
    }
    fn len(&self, id: SegmentId) -> Result<u64, MemError> {
        Ok(self.files.get(&id).ok_or(NOT_FOUND)?.len() as u64)
    }
    fn read(&self, id: SegmentId, offset: u64, buf: &mut [u8]) -> Result<usize, MemError> {
        let f = self.files.get(&id).ok_or(NOT_FOUND)?;
        let start = (offset as usize).min(f.len());
        let n = buf.len().min(f.len() - start);
        buf[..n].copy_from_slice(&f[start..start + n]);
        Ok(n)
    }
    fn write(&mut self, id: SegmentId, offset: u64, data: &[u8]) -> Result<(), MemError> {
        let f = self.files.get_mut(&id).ok_or(NOT_FOUND)?;
        let at = offset as usize;
        if at == f.len() {
            f.extend_from_slice(data);
            return Ok(());
        }
        if f.len() < at + data.len() {
            f.resize(at + data.len(), 0);
        }
        f[at..at + data.len()].copy_from_slice(data);
        Ok(())
    }
    fn truncate(&mut self, id: SegmentId, len: u64) -> Result<(), MemError> {
        self.files
            .get_mut(&id)
            .ok_or(NOT_FOUND)?
            .truncate(len as usize);
        Ok(())
    }
    fn sync(&mut self, _: SegmentId) -> Result<(), MemError> {
        Ok(())
    }
    fn sync_dir(&mut self) -> Result<(), MemError> {
        Ok(())
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let records: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(400_000);
    let runs: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(15);
    let bytes: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(128);
    let payload = vec![0x5au8; bytes];
    let mut best = f64::MAX;
    for _ in 0..runs {
        let config = Config::default().with_sync_policy(SyncPolicy::Manual);
        let mut scratch = vec![0u8; 1 << 16];
        let (mut wal, _) = Wal::<Mem>::open(Mem::default(), config, &mut scratch).expect("open");
        let t = Instant::now();
        for _ in 0..records {
            wal.append(&payload).expect("append");
        }
        let ns = t.elapsed().as_nanos() as f64 / records as f64;
        best = best.min(ns);
    }
    println!("walden-core append, {bytes} B, in memory: {best:.1} ns a record (best of {runs})");
}
