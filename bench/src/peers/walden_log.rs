//! Walden through `walden_std::SharedWal`: the handle many threads share, with group commit.
//!
//! The log is opened with `SyncPolicy::Manual` and a durable append waits for its own last LSN
//! with `wait_durable`, which leads or joins a group commit; so one handle serves both the
//! durable and the non-durable workloads, and concurrent durable writers share `fdatasync`s.

use std::{io, path::Path};

use walden_std::{Lsn as WalLsn, Options, SharedWal, SyncPolicy};

use crate::subject::{Capability, Durability, Lsn, Peer, Replayed, Subject, fold_bytes, io_err};

/// The Walden peer.
pub(crate) struct Walden;

struct WaldenLog {
    wal: SharedWal,
}

fn open(dir: &Path) -> io::Result<SharedWal> {
    let options = Options::default().with_sync_policy(SyncPolicy::Manual);
    let (wal, _report) = SharedWal::open(dir, options).map_err(io_err)?;
    Ok(wal)
}

impl Peer for Walden {
    fn name(&self) -> &'static str {
        "walden"
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
        Ok(Box::new(WaldenLog { wal: open(dir)? }))
    }

    fn replay(&self, dir: &Path) -> io::Result<Replayed> {
        // The replay API: one read of the sealed segments serves the open's checksum scan and
        // the records handed over (`SharedWal::open_replaying`).
        let options = Options::default().with_sync_policy(SyncPolicy::Manual);
        let mut seen = Replayed::default();
        let mut fold = 0;
        let (_wal, _report) = SharedWal::open_replaying(dir, options, |_, payload| {
            fold = fold_bytes(fold, payload);
            seen.records += 1;
            seen.bytes += payload.len() as u64;
            Ok::<_, io::Error>(())
        })
        .map_err(io_err)?;
        core::hint::black_box(fold);
        Ok(seen)
    }
}

impl Subject for WaldenLog {
    fn append(&self, records: &[&[u8]], durable: bool) -> io::Result<Lsn> {
        let appended = self.wal.append_batch(records).map_err(io_err)?;
        if durable && !appended.durable {
            self.wal.wait_durable(appended.last).map_err(io_err)?;
        }
        Ok(appended.first.0)
    }

    fn read(&self, lsn: Lsn, buf: &mut Vec<u8>) -> io::Result<()> {
        let mut reader = self.wal.reader(WalLsn(lsn)).map_err(io_err)?;
        let record = reader
            .read_next()
            .map_err(io_err)?
            .ok_or_else(|| io::Error::other("lsn not found"))?;
        buf.clear();
        buf.extend_from_slice(record.payload);
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        self.wal.sync().map(drop).map_err(io_err)
    }
}
