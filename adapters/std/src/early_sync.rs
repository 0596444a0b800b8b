//! Syncs a rotation needs, started early on a background job and joined by the sync the core
//! asks for later, so that a rotation's syncs overlap instead of following one another under
//! the log lock.
//!
//! A rotation (with `Config::early_rotation`, walden-std's default) asks the storage, in this
//! order, to: create the successor (link its spare), write its header, sync it, sync the
//! directory, write the seal into the old segment; the next sync then syncs the old segment
//! and the new one, one after the other. Two of those syncs can start sooner:
//!
//! - the **directory** sync, as soon as the link is made: it then runs while the header is
//!   written and synced, and the core's `sync_dir` only waits for it;
//! - the **old segment's** sync, as soon as its seal is in the file: it then runs while the
//!   appends that follow are written (and often while the new segment syncs), and the core's
//!   sync of the old segment only waits for it. Only if the log synced records while that
//!   segment was active (`FileStorage::log_syncs`): for a log that does not sync, this
//!   pushed all of its data to the disk, and the small syncs of every later rotation waited
//!   behind it.
//!
//! # Why this changes no crash state
//!
//! An early sync makes bytes and names durable *sooner* than asked, never later: before the
//! join returns, the same sync has completed after the same changes. A crash while it runs
//! leaves states a crash at the same point always could (an unsynced change may reach the
//! disk at any time). A join counts the early sync only if nothing the sync must cover
//! changed after it started (`stale`): otherwise it waits for it, reports its error if any,
//! and syncs again.
//!
//! # Why it cannot hide a failed sync
//!
//! An early sync runs on the storage's own file description, so a writeback error it
//! consumes (`errseq_t`) is one the later sync would not see: the join therefore returns the
//! early sync's own outcome, and the outcome is recorded at once in the clean-close
//! bookkeeping (`clean.rs`), even if nobody joins.
//!
//! For the same reason no early sync of a segment runs beside a group-commit leader's
//! detached sync of it (`group.rs`), which runs on that file description too, without the log
//! lock, and publishes on its own outcome: an early sync that consumed the error would leave
//! the leader an `Ok` for bytes that never reached the disk. A seal written while a detached
//! sync is in flight starts none (its sync is left to the core's next one), and a detached
//! sync is not handed out while an early sync of its segment is held (the core's sync joins
//! it instead). See `FileStorage::before_segment_write` and `detached_sync`.

use core::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use walden_core::SegmentId;

use crate::clean::Unsynced;
use crate::error::FileError;
use crate::filesystem::{FileSystem, FsFile, JobStep, Mutation, Worker};

/// What an early sync covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// The log directory's entries.
    Dir,
    /// One segment's bytes.
    Segment(SegmentId),
}

/// A sync running (or run) on a background job.
pub(crate) struct EarlySync {
    target: Target,
    /// Set when something the sync must cover changed after it started.
    stale: bool,
    outcome: Arc<Mutex<Option<Result<(), FileError>>>>,
    /// Set before the join: the job's first step then syncs at once.
    joining: Arc<AtomicBool>,
    /// In a mutex only so that the storage stays `Sync` (a `Worker` is only `Send`).
    worker: Mutex<Option<Worker>>,
}

impl EarlySync {
    /// Starts syncing `file` (`fsync` for [`Target::Dir`], `fdatasync` for a segment). `None`
    /// if no job can be started: the later sync then does the work itself.
    pub(crate) fn start<F: FileSystem>(
        fs: &F,
        target: Target,
        file: Arc<F::File>,
        unsynced: &Arc<Unsynced>,
    ) -> Option<Self> {
        let outcome = Arc::new(Mutex::new(None));
        let (slot, unsynced) = (Arc::clone(&outcome), Arc::clone(unsynced));
        let mark = unsynced.before_sync();
        // Broken on purpose (`Mutation::EarlySyncNoop`): report a sync that never ran.
        let noop = fs.mutation() == Some(Mutation::EarlySyncNoop);
        let mut once = Some(move || {
            let r = if noop {
                Ok(())
            } else {
                match target {
                    Target::Dir => file.sync_all(),
                    Target::Segment(_) => file.sync_data(),
                }
            }
            .map_err(FileError::from);
            let r = match target {
                Target::Dir => r.inspect_err(|_| unsynced.failed()),
                Target::Segment(id) => unsynced.outcome(id, mark, r),
            };
            *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(r);
        });
        // The first step yields (a zero wait: nothing on a thread) unless the sync is already
        // being waited for, so a simulated file system queues the job and runs it where the
        // core asks for the sync, as before this file existed: the files explorer then still
        // explores every state in which the sync has not run yet (one that completes sooner
        // only makes states durable sooner).
        let joining = Arc::new(AtomicBool::new(false));
        let waited_for = Arc::clone(&joining);
        let mut yielded = false;
        let job = Box::new(move || {
            if !core::mem::replace(&mut yielded, true) && !waited_for.load(Ordering::Acquire) {
                return JobStep::Wait(core::time::Duration::ZERO);
            }
            if let Some(sync) = once.take() {
                sync();
            }
            JobStep::Done
        });
        let worker = fs.spawn("walden-sync", job).ok()?;
        Some(Self {
            target,
            stale: false,
            outcome,
            joining,
            worker: Mutex::new(Some(worker)),
        })
    }

    pub(crate) fn target(&self) -> Target {
        self.target
    }

    fn wait(&self) {
        self.joining.store(true, Ordering::Release);
        Worker::join_slot(&self.worker);
    }

    /// Whether it has finished and succeeded (a join would find nothing to report).
    pub(crate) fn succeeded(&self) -> bool {
        matches!(
            *self.outcome.lock().unwrap_or_else(PoisonError::into_inner),
            Some(Ok(()))
        )
    }

    /// Something the sync must cover changed after it started: the join will not count it.
    pub(crate) fn make_stale(&mut self) {
        self.stale = true;
    }

    /// Waits for the sync. `Err`: it failed (whatever changed since). `Ok(true)`: it covers
    /// everything up to now. `Ok(false)`: it succeeded but something changed after it started,
    /// so the caller must sync again.
    pub(crate) fn join(self) -> Result<bool, FileError> {
        self.wait();
        let outcome = self
            .outcome
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        match outcome {
            Some(Err(e)) => Err(e),
            Some(Ok(())) => Ok(!self.stale),
            // The job never ran to the end (it panicked): sync again.
            None => Ok(false),
        }
    }
}

impl Drop for EarlySync {
    fn drop(&mut self) {
        // Nothing of ours runs after the storage is gone; the outcome is already recorded.
        self.wait();
    }
}
