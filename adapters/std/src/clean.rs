//! The clean-close marker: how an open knows it may trust the page cache.
//!
//! After a failed `fdatasync` Linux may keep the unwritten pages in its cache, marked clean
//! (the "fsyncgate" behaviour), so a restarted process can read records the disk never got.
//! An open that cannot rule that out drops the cached pages of every segment that may hold
//! unsynced data and reads them from the disk (`FileStorage::forget_cached_newest`), and
//! syncs the segments an early rotation sealed. That costs a cold read of the newest segment at
//! every open, and of every early-sealed one.
//!
//! A process that closes its log with every byte it wrote synced successfully, and no sync
//! failed, leaves the file [`CLEAN_FILE`] in the directory: nothing it cached differs from the
//! disk. The next open that finds it skips both steps, and removes it before it changes
//! anything, so that a process that fails later never leaves a marker behind.
//!
//! The marker needs no sync, in either direction: after a power cut the page cache is empty,
//! so a marker that reappears (its removal was not durable) or that was lost (its creation was
//! not durable) changes only how much an open reads from the disk, never what it finds. A
//! marker left half-written by a crash was still created only after the check passed.
//! (docs/FORMAT.md, "The clean-close marker".)

use core::sync::atomic::{AtomicU64, Ordering};
use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

use walden_core::SegmentId;

use crate::filesystem::{FileKind, FileSystem, FsFile, OpenMode};

pub use walden_core::CLEAN_FILE;

/// What the marker says, for an operator who finds it.
const TEXT: &[u8] = b"walden-std: closed with every write synced; the next open may trust the page cache (docs/FORMAT.md)\n";

/// Removes the marker of `dir` if it is there, and says whether it was.
///
/// Only a regular file is the marker ([`leave`] creates nothing else), checked without
/// following a symlink: a symlink, FIFO, directory or socket with its name was put there by
/// someone else, so it is not trusted (the open does the full recovery, which is always
/// safe) and, not being ours, is left in place rather than refused: unlike the lock file,
/// the open does not need it. While it stays, [`leave`] cannot create the marker, so no
/// later open trusts the cache either.
pub(crate) fn take<F: FileSystem>(fs: &F, dir: &Path) -> io::Result<bool> {
    let path = dir.join(CLEAN_FILE);
    match fs.symlink_metadata(&path) {
        Ok(m) if m.kind == FileKind::File => {}
        Ok(m) => {
            tracing::warn!(path = %path.display(), kind = ?m.kind,
                "not a regular file: not trusted as the clean-close marker, left in place");
            return Ok(false);
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    }
    // The directory is locked: only a process that ignores the lock could swap the file
    // between the check and here.
    match fs.remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Leaves the marker in `dir` (nothing is synced: see the module's documentation).
///
/// Only as a new file: the open took any marker, so whatever has the name now was put there
/// while the log was open, and is not written through. A hard link to a segment had its
/// header overwritten with this text (`O_NOFOLLOW` stops only symlinks), and a user's own
/// file its first bytes. Leaving no marker is always safe.
pub(crate) fn leave<F: FileSystem>(fs: &F, dir: &Path) -> io::Result<()> {
    fs.open(&dir.join(CLEAN_FILE), OpenMode::CreateNew)?
        .write_all_at(TEXT, 0)
}

/// Which segments were changed since their last successful sync through this storage, and
/// whether any sync failed: the evidence for [`leave`].
///
/// Each change is numbered; a sync removes a segment only if no change came after the moment
/// the sync began (a group-commit leader syncs outside the log's lock while others write).
/// Nearly every change is an append to the segment changed last, so that one is tracked in
/// atomics and costs the append path no lock; the others are in a map behind a mutex.
#[derive(Debug)]
pub(crate) struct Unsynced {
    /// Changes so far. Only `&mut FileStorage` paths change a segment, one at a time, so a load
    /// and a store suffice; a sync reads it under the log's lock, after every change it covers.
    changes: AtomicU64,
    /// The segment changed last (any value before the first change: its two numbers are 0).
    current: AtomicU64,
    /// The number of its last change.
    current_last: AtomicU64,
    /// The highest mark of a successful sync of it since it became current.
    current_synced: AtomicU64,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Segment (other than the current one) → the number of its last change not yet covered
    /// by a sync.
    segments: HashMap<SegmentId, u64>,
    /// A sync (of a segment, a directory or a zero-fill) failed: never clean again.
    failed: bool,
}

impl Default for Unsynced {
    fn default() -> Self {
        Self {
            changes: AtomicU64::new(0),
            current: AtomicU64::new(u64::MAX),
            current_last: AtomicU64::new(0),
            current_synced: AtomicU64::new(0),
            state: Mutex::default(),
        }
    }
}

impl Unsynced {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `id` was (or is about to be) written, truncated or created. Called only from
    /// `&mut FileStorage` paths.
    pub(crate) fn changed(&self, id: SegmentId) {
        let n = self.changes.load(Ordering::Relaxed) + 1;
        self.changes.store(n, Ordering::Relaxed);
        if self.current.load(Ordering::Acquire) == id {
            self.current_last.store(n, Ordering::Release);
            return;
        }
        let mut s = self.state();
        let old = self.current.load(Ordering::Acquire);
        let last = self.current_last.load(Ordering::Acquire);
        if last > self.current_synced.load(Ordering::Acquire) {
            s.segments.insert(old, last);
        }
        s.segments.remove(&id);
        // Before `current` changes: a sync of the old segment that still finds it current
        // raises `current_synced` to a mark below `n`, which leaves this change unsynced.
        self.current_synced.store(0, Ordering::Release);
        self.current_last.store(n, Ordering::Release);
        self.current.store(id, Ordering::Release);
    }

    /// `id` was removed: its pages are gone with it.
    pub(crate) fn removed(&self, id: SegmentId) {
        let mut s = self.state();
        if self.current.load(Ordering::Acquire) == id {
            let last = self.current_last.load(Ordering::Acquire);
            self.current_synced.fetch_max(last, Ordering::AcqRel);
        }
        s.segments.remove(&id);
    }

    /// Call before a sync begins; pass the result to [`Unsynced::synced`] when it succeeds.
    pub(crate) fn before_sync(&self) -> u64 {
        self.changes.load(Ordering::Relaxed)
    }

    /// A sync of `id` that began at `mark` ([`Unsynced::before_sync`]) succeeded.
    pub(crate) fn synced(&self, id: SegmentId, mark: u64) {
        if self.current.load(Ordering::Acquire) == id {
            self.current_synced.fetch_max(mark, Ordering::AcqRel);
            return;
        }
        let mut s = self.state();
        if s.segments.get(&id).is_some_and(|&n| n <= mark) {
            s.segments.remove(&id);
        }
    }

    /// A sync failed.
    pub(crate) fn failed(&self) {
        self.state().failed = true;
    }

    /// Records the outcome of a sync of `id` that began at `mark`.
    pub(crate) fn outcome<T, E>(&self, id: SegmentId, mark: u64, r: Result<T, E>) -> Result<T, E> {
        match &r {
            Ok(_) => self.synced(id, mark),
            Err(_) => self.failed(),
        }
        r
    }

    /// Whether `id` has changes no sync covered yet.
    pub(crate) fn holds(&self, id: SegmentId) -> bool {
        if self.current.load(Ordering::Acquire) == id {
            return self.current_last.load(Ordering::Acquire)
                > self.current_synced.load(Ordering::Acquire);
        }
        self.state().segments.contains_key(&id)
    }

    /// Every change was synced and no sync failed.
    pub(crate) fn is_clean(&self) -> bool {
        let s = self.state();
        let current = self.current_last.load(Ordering::Acquire)
            <= self.current_synced.load(Ordering::Acquire);
        !s.failed && s.segments.is_empty() && current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_during_a_sync_keeps_the_segment_unsynced() {
        let u = Unsynced::default();
        assert!(u.is_clean());
        u.changed(3);
        let mark = u.before_sync();
        u.changed(3); // written while the sync ran
        u.synced(3, mark);
        assert!(!u.is_clean());
        let mark = u.before_sync();
        u.synced(3, mark);
        assert!(u.is_clean());
    }

    #[test]
    fn a_sync_of_one_segment_leaves_another_unsynced() {
        let u = Unsynced::default();
        u.changed(1);
        u.changed(2);
        let mark = u.before_sync();
        u.synced(2, mark);
        assert!(!u.is_clean());
        u.removed(1);
        assert!(u.is_clean());
    }

    #[test]
    fn a_failed_sync_is_never_forgotten() {
        let u = Unsynced::default();
        u.changed(1);
        let mark = u.before_sync();
        let _ = u.outcome(1, mark, Err::<(), ()>(()));
        let mark = u.before_sync();
        let _ = u.outcome(1, mark, Ok::<(), ()>(()));
        assert!(!u.is_clean());
    }
}
