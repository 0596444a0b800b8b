//! commitlog 0.2: a small segment-and-index commit log.
//!
//! It is here as an example of the "sync that never reaches the disk" pattern: `CommitLog::flush`
//! calls `File::flush` on the segment (a no-op for `std::fs::File`) and `msync`s only the offset
//! index. Its "durable" numbers therefore measure no data `fsync` at all, and the table says so.
//! It takes `&mut self`, so concurrent writers share a mutex.

use std::{io, path::Path, sync::Mutex};

use commitlog::{
    CommitLog, LogOptions, ReadLimit,
    message::{MessageBuf, MessageSet},
};

use crate::subject::{Capability, Durability, Lsn, Peer, Replayed, Subject, fold_bytes, io_err};

/// The commitlog peer.
pub(crate) struct Commitlog;

struct CommitlogLog {
    log: Mutex<CommitLog>,
}

fn options(dir: &Path) -> LogOptions {
    let mut options = LogOptions::new(dir);
    options
        .segment_max_bytes(256 << 20)
        .index_max_items(1 << 20)
        .message_max_bytes(4 << 20);
    options
}

impl Peer for Commitlog {
    fn name(&self) -> &'static str {
        "commitlog 0.2"
    }

    fn durability(&self) -> Durability {
        Durability::NoFsync("flush() is File::flush on the segment (no-op) plus msync of the index")
    }

    fn open_unverified(&self) -> Option<&'static str> {
        Some(
            "checks each segment's magic bytes and loads its offset index; records are read and \
             checked only when fetched",
        )
    }

    fn supports(&self, _capability: Capability) -> Result<(), &'static str> {
        Ok(())
    }

    fn create(&self, dir: &Path) -> io::Result<Box<dyn Subject>> {
        self.open(dir)
    }

    fn open(&self, dir: &Path) -> io::Result<Box<dyn Subject>> {
        Ok(Box::new(CommitlogLog {
            log: Mutex::new(CommitLog::new(options(dir))?),
        }))
    }

    fn replay(&self, dir: &Path) -> io::Result<Replayed> {
        let log = CommitLog::new(options(dir))?;
        let mut seen = Replayed::default();
        let mut fold = 0;
        let mut next = 0;
        loop {
            let batch = log
                .read(next, ReadLimit::max_bytes(1 << 20))
                .map_err(io_err)?;
            let mut last = None;
            for message in batch.iter() {
                if !message.verify_hash() {
                    return Err(io::Error::other("commitlog message hash mismatch"));
                }
                fold = fold_bytes(fold, message.payload());
                seen.records += 1;
                seen.bytes += message.payload().len() as u64;
                last = Some(message.offset());
            }
            match last {
                Some(offset) => next = offset + 1,
                None => break,
            }
        }
        core::hint::black_box(fold);
        Ok(seen)
    }
}

impl Subject for CommitlogLog {
    fn append(&self, records: &[&[u8]], durable: bool) -> io::Result<Lsn> {
        let mut log = self.log.lock().map_err(|_| io::Error::other("poisoned"))?;
        let mut batch: MessageBuf = records.iter().collect();
        let range = log.append(&mut batch).map_err(io_err)?;
        if durable {
            log.flush()?;
        }
        Ok(range.first())
    }

    fn read(&self, lsn: Lsn, buf: &mut Vec<u8>) -> io::Result<()> {
        let log = self.log.lock().map_err(|_| io::Error::other("poisoned"))?;
        // The smallest limit that still returns one whole message.
        let batch = log.read(lsn, ReadLimit::max_bytes(4096)).map_err(io_err)?;
        let message = batch
            .iter()
            .next()
            .ok_or_else(|| io::Error::other("lsn not found"))?;
        buf.clear();
        buf.extend_from_slice(message.payload());
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        self.log
            .lock()
            .map_err(|_| io::Error::other("poisoned"))?
            .flush()
    }
}
