//! okaywal 0.3: one entry per append, one chunk per record; `commit` always `fsync`s, with
//! built-in group commit across threads.
//!
//! okaywal has no LSN index of its own: a reader needs the `LogPosition` the writer got back,
//! so this adapter keeps them in memory, as an application using okaywal would. Checkpointing is
//! pushed out of reach (`checkpoint_after_bytes = u64::MAX`) so the log keeps every record for
//! the read and replay workloads instead of handing segments to a checkpointer and recycling them.

use std::{
    io::{self, Read},
    path::Path,
    sync::{Arc, Mutex},
};

use core::sync::atomic::{AtomicU64, Ordering};

use okaywal::{
    Configuration, Entry, EntryId, LogManager, LogPosition, ReadChunkResult, SegmentReader,
    WriteAheadLog,
};

use crate::subject::{Capability, Durability, Lsn, Peer, Replayed, Subject, fold_bytes};

/// The okaywal peer.
pub(crate) struct OkayWal;

struct OkayLog {
    wal: WriteAheadLog,
    /// Where each record's chunk starts, and its length, indexed by LSN.
    positions: Mutex<Vec<(LogPosition, u32)>>,
}

/// Recovery callback: counts entries and, when `read_payloads`, reads and folds every chunk.
#[derive(Debug, Default)]
struct Recorder {
    read_payloads: bool,
    records: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
    fold: Arc<AtomicU64>,
}

impl LogManager for Recorder {
    fn recover(&mut self, entry: &mut Entry<'_>) -> io::Result<()> {
        if !self.read_payloads {
            return Ok(());
        }
        let mut fold = 0;
        // EndOfEntry or AbortedEntry end the entry.
        while let ReadChunkResult::Chunk(mut chunk) = entry.read_chunk()? {
            let data = chunk.read_all()?;
            if !chunk.check_crc()? {
                return Err(io::Error::other("okaywal chunk crc mismatch"));
            }
            fold = fold_bytes(fold, &data);
            self.records.fetch_add(1, Ordering::Relaxed);
            self.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
        }
        self.fold.fetch_add(fold, Ordering::Relaxed);
        Ok(())
    }

    fn checkpoint_to(
        &mut self,
        _last_checkpointed_id: EntryId,
        _checkpointed_entries: &mut SegmentReader,
        _wal: &WriteAheadLog,
    ) -> io::Result<()> {
        Ok(())
    }
}

fn config(dir: &Path) -> Configuration {
    Configuration::default_for(dir)
        .preallocate_bytes(64 << 20)
        .checkpoint_after_bytes(u64::MAX)
}

impl Peer for OkayWal {
    fn name(&self) -> &'static str {
        "okaywal 0.3"
    }

    fn durability(&self) -> Durability {
        Durability::Fsync
    }

    fn open_unverified(&self) -> Option<&'static str> {
        // Measured: 0.15 ms to open a 1 GiB log (one segment file, not checkpointed) whose
        // replay, the same open with a callback that reads every chunk, took about a second.
        Some(
            "with a recovery callback that reads no chunk (as here) its open does not read the \
             records: about 0.15 ms for a 1 GiB log whose replay takes a second",
        )
    }

    fn supports(&self, capability: Capability) -> Result<(), &'static str> {
        match capability {
            Capability::NonDurableAppend => Err("every commit fsyncs; no non-durable append"),
            _ => Ok(()),
        }
    }

    fn create(&self, dir: &Path) -> io::Result<Box<dyn Subject>> {
        self.open(dir)
    }

    fn open(&self, dir: &Path) -> io::Result<Box<dyn Subject>> {
        let wal = config(dir).open(Recorder::default())?;
        Ok(Box::new(OkayLog {
            wal,
            positions: Mutex::new(Vec::new()),
        }))
    }

    fn replay(&self, dir: &Path) -> io::Result<Replayed> {
        let recorder = Recorder {
            read_payloads: true,
            ..Recorder::default()
        };
        let (records, bytes) = (recorder.records.clone(), recorder.bytes.clone());
        // Dropped, not `shutdown()`: shutdown checkpoints the active segment, after which the
        // next open finds nothing to recover and the open workload would time an empty log.
        drop(config(dir).open(recorder)?);
        Ok(Replayed {
            records: records.load(Ordering::Relaxed),
            bytes: bytes.load(Ordering::Relaxed),
        })
    }
}

impl Subject for OkayLog {
    fn append(&self, records: &[&[u8]], _durable: bool) -> io::Result<Lsn> {
        let mut writer = self.wal.begin_entry()?;
        let mut written = Vec::with_capacity(records.len());
        for record in records {
            let chunk = writer.write_chunk(record)?;
            written.push((chunk.position, chunk.length));
        }
        writer.commit()?;
        let mut positions = self
            .positions
            .lock()
            .map_err(|_| io::Error::other("poisoned"))?;
        let first = positions.len() as Lsn;
        positions.extend(written);
        Ok(first)
    }

    fn read(&self, lsn: Lsn, buf: &mut Vec<u8>) -> io::Result<()> {
        let (position, length) = {
            let positions = self
                .positions
                .lock()
                .map_err(|_| io::Error::other("poisoned"))?;
            usize::try_from(lsn)
                .ok()
                .and_then(|i| positions.get(i).copied())
                .ok_or_else(|| io::Error::other("lsn out of range"))?
        };
        let mut reader = self.wal.read_at(position)?;
        buf.clear();
        buf.resize(length as usize, 0);
        reader.read_exact(buf)?;
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        // Every commit already synced.
        Ok(())
    }
}
