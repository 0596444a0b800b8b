//! The slot every log under test fills: [`Peer`] opens a log in a directory, [`Subject`] is the
//! open log.
//!
//! Wiring in Walden means one more `Peer` in `peers/` and one line in [`crate::peers::all`]; no
//! workload changes. Every method has a contract the workloads rely on, spelled out below, so a
//! peer that cheats (acknowledges before `fsync`, keeps records only in memory) is visible here
//! and not hidden in a number.

use std::{io, path::Path};

/// A record's position in a log, counted from 0 in append order.
pub(crate) type Lsn = u64;

/// What a workload asks of a peer; a peer that cannot do one says why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Capability {
    /// Append one record and return only once it is on stable storage.
    DurableAppend,
    /// Append several records made durable by one `fsync`.
    DurableBatch,
    /// Append without making the record durable (no `fsync` on the path).
    NonDurableAppend,
    /// Several threads appending to one log at once, each waiting for durability.
    ConcurrentAppend,
    /// Read every record in order after reopening.
    Replay,
    /// Reopen (recover) an existing log.
    Open,
    /// Read one record by its [`Lsn`].
    ReadByLsn,
}

/// How a peer's "durable" append reaches the disk; printed beside its numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Durability {
    /// A durable append returns after `fsync`/`fdatasync` of the data.
    Fsync,
    /// A "durable" append does not reach stable storage; the reason says what it does instead.
    NoFsync(&'static str),
}

/// What a replay saw: every record counted once, with its payload bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Replayed {
    /// Records delivered to the reader.
    pub(crate) records: u64,
    /// Payload bytes delivered (framing excluded).
    pub(crate) bytes: u64,
}

/// A write-ahead log implementation under test, before it is opened.
pub(crate) trait Peer: Sync {
    /// Short name used in tables and charts.
    fn name(&self) -> &'static str;

    /// Whether a durable append reaches stable storage.
    fn durability(&self) -> Durability;

    /// `Some(what its open reads instead)` when this peer's `open` does not read the log's
    /// records (so its open time does not grow with the log and a damaged record is found only
    /// when read): its open rows are marked † and left out of "vs best".
    fn open_unverified(&self) -> Option<&'static str> {
        None
    }

    /// `Err(reason)` when this peer cannot run workloads needing `capability`.
    fn supports(&self, capability: Capability) -> Result<(), &'static str>;

    /// Creates a new, empty log in `dir` (which exists and is empty).
    fn create(&self, dir: &Path) -> io::Result<Box<dyn Subject>>;

    /// Opens the existing log in `dir` with whatever recovery the peer performs on open, and
    /// returns it ready to append. Records need not be delivered anywhere.
    fn open(&self, dir: &Path) -> io::Result<Box<dyn Subject>>;

    /// Opens the existing log in `dir` and reads every record in order, touching every payload
    /// byte (so a lazy reader cannot skip work), and verifying checksums where the peer has them.
    fn replay(&self, dir: &Path) -> io::Result<Replayed>;
}

/// An open log. Shared between writer threads, so every method takes `&self`.
pub(crate) trait Subject: Send + Sync {
    /// Appends `records` in order as one batch and returns the [`Lsn`] of the first.
    ///
    /// When `durable` is true the call returns only after all of them are on stable storage (as
    /// far as [`Peer::durability`] says). When false the peer may buffer; workloads only pass
    /// false to peers that declare [`Capability::NonDurableAppend`].
    fn append(&self, records: &[&[u8]], durable: bool) -> io::Result<Lsn>;

    /// Reads record `lsn` into `buf` (cleared first). Only called for LSNs this handle returned.
    fn read(&self, lsn: Lsn, buf: &mut Vec<u8>) -> io::Result<()>;

    /// Makes everything appended so far durable (used after non-durable bulk fills).
    fn sync(&self) -> io::Result<()>;
}

/// Deterministic incompressible bytes, so no peer gains from compressing a constant payload.
pub(crate) fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        // xorshift64*: cheap, and good enough to defeat lz4.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Touches every byte of a replayed record, so replay cost cannot be optimised away.
pub(crate) fn fold_bytes(acc: u64, bytes: &[u8]) -> u64 {
    let mut words = bytes.chunks_exact(8);
    let mut acc = words.by_ref().fold(acc, |a, w| {
        a.wrapping_add(u64::from_le_bytes(w.try_into().unwrap_or([0; 8])))
    });
    for &b in words.remainder() {
        acc = acc.wrapping_add(u64::from(b));
    }
    acc
}

/// Converts any displayable error into an `io::Error`, keeping its message.
pub(crate) fn io_err(e: impl core::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_is_deterministic_and_sized() {
        assert_eq!(payload(129, 7), payload(129, 7));
        assert_ne!(payload(64, 7), payload(64, 8));
        assert_eq!(payload(0, 1).len(), 0);
        assert_eq!(payload(4097, 1).len(), 4097);
    }
}
