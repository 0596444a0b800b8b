//! [`SharedWal`]: a thread-safe log handle with group commit and sync policies.

use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Instant;

use walden_core::{
    AppendError, Growable, Lsn, Poisoned, RecoveryReport, SegmentInfo, SyncError, SyncPolicy,
    TruncateError,
};

use crate::durable::{DurableError, DurableFuture, StopSyncer, Syncer, Watcher};
use crate::error::Error;
use crate::filesystem::{FileSystem, OsFs};
use crate::gate::{Gate, Handle};
use crate::group::{Committer, GroupSync, GroupWindow, Locked, time_left};
use crate::metrics::Metrics;
use crate::reader::{PositionIndex, SharedReader};
use crate::replay::ReplayError;
use crate::storage::FileStorage;
use crate::tail::{RewindLog, Tail};
use crate::wal::Options;

/// The core log a [`SharedWal`] wraps: any storage, with a growable segment table.
type CoreLog<S> = walden_core::Wal<S, Growable>;

/// The result of an append.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub struct Appended {
    /// LSN of the first record.
    pub first: Lsn,
    /// LSN of the last record (`first − 1` for an empty batch).
    pub last: Lsn,
    /// Whether every record of the append was durable when the call returned (`true` for an
    /// empty batch unless the committer is poisoned). If not, wait with
    /// [`SharedWal::wait_durable`]`(last)`. `false` also when a concurrent
    /// [`SharedWal::truncate_back`] removed them while the call waited (other records may
    /// since have taken their LSNs).
    pub durable: bool,
}

pub(crate) struct Inner<S: GroupSync> {
    pub(crate) c: Committer<S>,
    /// The log's sync policy, carried out here (group commit, the flusher); the core log under
    /// the lock runs with `Manual` so that it never syncs under the lock itself.
    policy: SyncPolicy,
    dir: Option<PathBuf>,
    foreign: Vec<PathBuf>,
    /// Stops the flusher thread when the last handle goes.
    _flusher: Option<StopOnDrop>,
    /// Record positions for reads by LSN: the offset of every record appended since open and
    /// stored as given (4 bytes each), and a sparse index (every
    /// [`crate::reader::INDEX_EVERY`]th LSN and the record holding each
    /// [`crate::reader::INDEX_BYTES`] boundary) filled in as readers walk the rest, so that a
    /// read by LSN walks at most that many record headers or bytes. Invalidated by both
    /// truncations.
    pub(crate) positions: Mutex<PositionIndex>,
    /// Leads group commits for async waiters (started with the first one).
    pub(crate) syncer: Arc<Syncer>,
    _stop_syncer: StopSyncer,
    /// Every `truncate_back` since open, for tailing readers to report rewinds.
    pub(crate) rewinds: Mutex<RewindLog>,
    /// `rewinds`' generation, readable without a lock: a [`SharedReader`] checks it at every
    /// read, so that it reports a `truncate_back` at its first read after the cut even when
    /// it has copies of removed records to read from.
    pub(crate) rewind_generation: AtomicU64,
    /// Where the background threads reach the log (so that it is released on the thread
    /// that drops the last handle).
    pub(crate) gate: Arc<Gate>,
}

impl<S: GroupSync> Inner<S> {
    /// The read index, without the records appended since it was last given them (see
    /// [`Inner::whole_positions`]).
    pub(crate) fn positions(&self) -> MutexGuard<'_, PositionIndex> {
        self.positions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The read index with every record appended so far: the places `log` (the log lock,
    /// held) kept for it are handed over first. For a reader about to look a record up and
    /// a truncation about to cut the index.
    pub(crate) fn whole_positions(&self, log: &mut Locked<S>) -> MutexGuard<'_, PositionIndex> {
        let mut positions = self.positions();
        log.unpublished.publish(&mut positions);
        positions
    }

    /// [`Inner::whole_positions`], taking the log lock (for checks).
    #[cfg(test)]
    pub(crate) fn published_positions(&self) -> MutexGuard<'_, PositionIndex> {
        self.whole_positions(&mut self.c.lock_log())
    }

    pub(crate) fn rewinds(&self) -> MutexGuard<'_, RewindLog> {
        self.rewinds.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// An append's first and last LSN, with the log lock still held.
type LockedAppend<'a, S> = (MutexGuard<'a, Locked<S>>, Lsn, Lsn);

/// A write-ahead log shared by many threads: `Send + Sync`, and cheap to clone (an `Arc`).
///
/// * Appends take a short lock to write into the storage's buffer; an append that must be
///   durable then joins a **group commit**: one thread syncs for every thread waiting (see the
///   `group` module for the protocol and why it is correct).
/// * The configuration's [`SyncPolicy`] says when records are synced (every policy, including
///   [`SyncPolicy::Interval`], which runs a flusher thread); [`Appended::durable`] says whether
///   they are.
/// * After a failed write or sync every waiting and later call fails with the error (the log
///   is *poisoned*); reopen the log to continue. Nothing is ever reported durable after that.
/// * [`SharedWal::reader`] reads concurrently with appends and sees only complete records.
///
/// The durable LSN, the poison and the unsynced counts are the core log's (this handle reads
/// them under its lock); what it keeps besides is the group-commit protocol's publication of
/// them to waiters (see the `group` module).
pub struct SharedWal<S: GroupSync = FileStorage> {
    pub(crate) inner: Handle<Inner<S>>,
}

impl<S: GroupSync> Clone for SharedWal<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl SharedWal {
    /// Opens (recovers) or creates the log in `dir`, like [`crate::Wal::open`], and starts the
    /// interval flusher if the durability asks for one.
    pub fn open(
        dir: impl AsRef<Path>,
        options: impl Into<Options>,
    ) -> Result<(Self, RecoveryReport), Error> {
        Self::open_in(OsFs, dir, options)
    }

    /// Opens the log like [`SharedWal::open`] and hands every record it holds to `apply`
    /// first, reading the log's bytes once: see [`crate::Wal::open_replaying`].
    pub fn open_replaying<E>(
        dir: impl AsRef<Path>,
        options: impl Into<Options>,
        apply: impl FnMut(Lsn, &[u8]) -> Result<(), E>,
    ) -> Result<(Self, RecoveryReport), ReplayError<E>> {
        Self::open_replaying_in(OsFs, dir, options, apply)
    }
}

impl<F: FileSystem> SharedWal<FileStorage<F>> {
    /// [`SharedWal::open`] on the file system `fs` (a simulated one, in tests).
    pub fn open_in(
        fs: F,
        dir: impl AsRef<Path>,
        options: impl Into<Options>,
    ) -> Result<(Self, RecoveryReport), Error> {
        let options = options.into();
        // Checked before anything on disk is touched (`EveryRecords(0)`, `Interval(0)`, …).
        options.validate()?;
        // The policy is carried out by this handle; the core log under the lock never syncs on
        // its own (see `Inner::policy`).
        let mut options_manual = options;
        options_manual.config = options.config.with_sync_policy(SyncPolicy::Manual);
        let (wal, report) = crate::Wal::open_in(fs, dir, options_manual)?;
        Ok((Self::from_opened(wal, &options), report))
    }

    /// [`SharedWal::open_replaying`] on the file system `fs` (a simulated one, in tests).
    pub fn open_replaying_in<E>(
        fs: F,
        dir: impl AsRef<Path>,
        options: impl Into<Options>,
        apply: impl FnMut(Lsn, &[u8]) -> Result<(), E>,
    ) -> Result<(Self, RecoveryReport), ReplayError<E>> {
        let options = options.into();
        options.validate().map_err(ReplayError::Log)?;
        let mut options_manual = options;
        options_manual.config = options.config.with_sync_policy(SyncPolicy::Manual);
        let (wal, report) = crate::Wal::open_replaying_in(fs, dir, options_manual, apply)?;
        Ok((Self::from_opened(wal, &options), report))
    }

    /// The shared handle over a log just opened with the policy set to `Manual`, carrying
    /// out `options`' own policy.
    fn from_opened(wal: crate::Wal<F>, options: &Options) -> Self {
        let dir = wal.dir().to_path_buf();
        let foreign = wal.foreign_files().to_vec();
        // No spare is started here: the storage starts one once its first sync or its
        // first 128 KiB tell it whether to zero-fill (`FileStorage::reserve`'s `spare_due`).
        // Started at open, a fresh log's first spare was always zero-filled, 64 MiB of zeros
        // written and synced beside a writer that then never syncs.
        let core = wal.into_core();
        Self::build(
            core,
            options.config.sync_policy,
            options.group_window,
            Some(dir),
            foreign,
        )
    }
}

impl<S: GroupSync> SharedWal<S> {
    /// The log directory (empty for a log shared with [`SharedWal::from_core`]).
    pub fn dir(&self) -> &Path {
        self.inner.dir.as_deref().unwrap_or(Path::new(""))
    }
}

impl<S: GroupSync + Send + 'static> SharedWal<S> {
    /// Shares an already opened core log (any storage; see [`crate::SyncUnderLock`] for
    /// storages without a detached sync), carrying out `policy` for it.
    ///
    /// The core log must have been opened with [`SyncPolicy::Manual`] (it would otherwise sync
    /// under the lock on its own, following a second policy), and `policy` must be valid
    /// (no zero interval), and so must `window` (one with no time limit needs a `min_bytes`):
    /// any mistake is [`Error::InvalidOptions`], and the log is dropped unchanged.
    pub fn from_core(
        wal: CoreLog<S>,
        policy: SyncPolicy,
        window: GroupWindow,
    ) -> Result<Self, Error> {
        if wal.config().sync_policy != SyncPolicy::Manual {
            return Err(Error::InvalidOptions {
                why: "SharedWal::from_core: open the core log with SyncPolicy::Manual and pass the policy to from_core",
            });
        }
        if wal.config().with_sync_policy(policy).validate().is_err() {
            return Err(Error::InvalidOptions {
                why: "SharedWal::from_core: a sync policy with a zero interval",
            });
        }
        if let Some(why) = window.invalid(wal.config()) {
            return Err(Error::InvalidOptions { why });
        }
        if let Some(why) = crate::wal::endless_interval(policy) {
            return Err(Error::InvalidOptions { why });
        }
        Ok(Self::build(wal, policy, window, None, Vec::new()))
    }

    fn build(
        wal: CoreLog<S>,
        policy: SyncPolicy,
        window: GroupWindow,
        dir: Option<PathBuf>,
        foreign: Vec<PathBuf>,
    ) -> Self {
        let flusher = match policy {
            SyncPolicy::Interval(_) => Some(Arc::new(Stop::default())),
            _ => None,
        };
        let syncer = Arc::new(Syncer::default());
        let gate = Arc::new(Gate::default());
        let inner = Handle::new(
            Inner {
                c: Committer::new(wal, window),
                policy,
                dir,
                foreign,
                _flusher: flusher.clone().map(StopOnDrop),
                positions: Mutex::new(PositionIndex::default()),
                syncer: Arc::clone(&syncer),
                _stop_syncer: StopSyncer(syncer),
                rewinds: Mutex::new(RewindLog::default()),
                rewind_generation: AtomicU64::new(0),
                gate: Arc::clone(&gate),
            },
            Arc::clone(&gate),
            // The last handle but tails' is gone: wake the tails, which then report it.
            |inner| inner.c.bell.ring(),
        );
        if let (SyncPolicy::Interval(every), Some(stop)) = (policy, flusher) {
            spawn_flusher(inner.downgrade(), gate, stop, every);
        }
        Self { inner }
    }
}

impl<S: GroupSync> SharedWal<S> {
    /// Appends one record. See [`SharedWal::append_batch`].
    pub fn append(&self, payload: &[u8]) -> Result<Appended, AppendError<S::Error>> {
        self.append_batch(&[payload])
    }

    /// Appends records atomically (after any crash all or none are recovered; batches of
    /// different threads never interleave). Under [`SyncPolicy::Always`] it returns once they
    /// are durable.
    pub fn append_batch(&self, payloads: &[&[u8]]) -> Result<Appended, AppendError<S::Error>> {
        // Reading the clock costs as much as a small append: only when a latency is measured.
        let started = match self.inner.policy {
            SyncPolicy::Always => Some(Instant::now()),
            _ => None,
        };
        let c = &self.inner.c;
        let (first, last, seen, due) = {
            // Counted until the log lock is released, so a leader can let it join its group.
            let _appending = c.appending();
            let (log, first, last) = self.append_locked(payloads)?;
            let due = match self.inner.policy {
                SyncPolicy::Always => true,
                SyncPolicy::EveryBytes(n) => log.unsynced_bytes() >= n,
                SyncPolicy::EveryRecords(n) => log.unsynced_records() >= u64::from(n),
                // `Interval`: the flusher's business; `Manual`: the caller's.
                _ => false,
            };
            // Read under the log lock, which every `truncate_back` holds while it moves it: the
            // rewinds these records live after (an atomic: the hot path takes no other lock).
            (first, last, self.generation(), due)
        };
        self.inner.c.bell.ring();
        if payloads.is_empty() {
            // No record to wait for: every record of the append is durable (vacuously), even
            // while other writers' records before `first` are not yet.
            return Ok(Appended {
                first,
                last,
                durable: !c.is_poisoned(),
            });
        }
        let durable = if due {
            c.wait_durable(last, started.unwrap_or_else(Instant::now))? >= last
                && self.still_in_log(seen, last)
        } else {
            self.durable_since(seen, last)
        };
        Ok(Appended {
            first,
            last,
            durable,
        })
    }

    /// The rewind generation, read under the log lock (every `truncate_back` moves it while
    /// it holds that lock): records appended under the same lock live after it.
    fn generation(&self) -> u64 {
        self.inner.rewind_generation.load(Ordering::Acquire)
    }

    /// Whether the records up to `last`, appended after rewind generation `seen`, are durable
    /// now: the durable LSN covers `last` and no `truncate_back` since removed them (it would
    /// have moved the generation before any later sync could cover `last` again, and the
    /// durable LSN is read first).
    fn durable_since(&self, seen: u64, last: Lsn) -> bool {
        let c = &self.inner.c;
        !c.is_poisoned()
            && c.durable() >= last
            && (self.generation() == seen || self.still_in_log(seen, last))
    }

    /// Whether no `truncate_back` since rewind generation `seen` removed `last`: a durable
    /// LSN at or past `last` then covers this call's records, not others appended at the same
    /// LSNs after a truncation removed them (the committer answers how far durability got,
    /// and an LSN names a record only between truncations).
    fn still_in_log(&self, seen: u64, last: Lsn) -> bool {
        let (_, lowest_cut) = self.inner.rewinds().lowest_since(seen);
        lowest_cut.is_none_or(|kept| kept >= last)
    }

    /// Appends under the log lock and returns the lock still held, with the first and last LSN.
    fn append_locked(
        &self,
        payloads: &[&[u8]],
    ) -> Result<LockedAppend<'_, S>, AppendError<S::Error>> {
        let c = &self.inner.c;
        let mut log = c.lock_log();
        if let Some(p) = log.wal.poisoned() {
            return Err(AppendError::Poisoned(p));
        }
        if c.is_poisoned()
            && let Some(p) = c.poison_reason()
        {
            return Err(AppendError::Poisoned(p));
        }
        let rotations = log.wal.counters().rotations;
        let before = log.wal.segments().last().map(|s| (s.id, s.end));
        let log_ref = &mut *log;
        let first = match log_ref.scratch.append_batch(&mut log_ref.wal, payloads) {
            Ok(first) => first,
            Err(e) => {
                if let Some(p) = log.wal.poisoned() {
                    drop(log);
                    c.poison(p);
                }
                return Err(e);
            }
        };
        if log.wal.counters().rotations != rotations {
            let active = log.wal.segments()[log.wal.segments().len() - 1];
            tracing::info!(
                segment = active.id,
                first_lsn = active.first_lsn.0,
                "rotated to a new segment"
            );
        }
        let last = log.wal.last_lsn();
        self.index_appended(&mut log, before, first, payloads);
        Ok((log, first, last))
    }

    /// Adds the records just appended (`first ..`, stored after `before`: the newest segment
    /// and its end before the append) to the dense position index (through the places kept under
    /// the log lock, [`crate::reader::Unpublished`]), when they were stored as
    /// given: then each is [`walden_core::raw::RECORD_HEADER_LEN`] plus its payload long, one
    /// after another, which the segment's new end confirms. Compressed or encrypted records
    /// are left to readers (the sparse index).
    fn index_appended(
        &self,
        log: &mut Locked<S>,
        before: Option<(walden_core::SegmentId, u64)>,
        first: Lsn,
        payloads: &[&[u8]],
    ) {
        if !log.scratch.stores_plain(&log.wal, payloads) {
            return;
        }
        let Some(active) = log.wal.segments().last() else {
            return;
        };
        let start = match before {
            Some((id, end)) if id == active.id => end,
            // A rotation: the batch starts the new segment.
            _ if active.first_lsn == first => walden_core::raw::SEGMENT_HEADER_LEN as u64,
            _ => return,
        };
        let header = walden_core::raw::RECORD_HEADER_LEN as u64;
        let stored: u64 = payloads.iter().map(|p| header + p.len() as u64).sum();
        if active.end.checked_sub(start) != Some(stored) {
            return;
        }
        let (id, lengths) = (active.id, payloads.iter().map(|p| p.len()));
        (log.unpublished).add(|| self.inner.positions(), id, first, start, lengths);
    }

    /// Makes every record appended so far durable (a group commit) and returns the durable LSN.
    pub fn sync(&self) -> Result<Lsn, SyncError<S::Error>> {
        let last = self.last_lsn();
        self.inner.c.wait_durable(last, Instant::now())
    }

    /// Waits until `lsn` is durable, leading a group commit if no sync is in flight, and
    /// returns the durable LSN. An `lsn` beyond the last appended record is waited for only up
    /// to the last record at the time of the call: compare the returned LSN.
    pub fn wait_durable(&self, lsn: Lsn) -> Result<Lsn, SyncError<S::Error>> {
        let lsn = lsn.min(self.last_lsn());
        self.inner.c.wait_durable(lsn, Instant::now())
    }

    /// A future that resolves once `lsn` is durable (with the durable LSN), without blocking a
    /// thread: the log's syncer thread runs the group commit. Like [`SharedWal::wait_durable`],
    /// an `lsn` beyond the last record is clamped to the last record at the time of the call.
    /// It fails with [`DurableError::Poisoned`] after a failed write or sync,
    /// [`DurableError::Truncated`] if a `truncate_back` removes `lsn` first, and
    /// [`DurableError::Closed`] if every handle is dropped first. Works on any executor.
    pub fn durable(&self, lsn: Lsn) -> DurableFuture
    where
        S: Send + 'static,
    {
        let (future, completion) = DurableFuture::waiting();
        let log = self.inner.c.lock_log();
        let lsn = lsn.min(log.wal.last_lsn());
        self.watch_locked(log, lsn, Watcher::future(completion));
        future
    }

    /// Runs `callback` once, when `lsn` is durable or cannot become durable (the same outcomes
    /// as [`SharedWal::durable`]). It runs on whichever thread publishes the outcome (a group
    /// commit leader, the syncer, a truncation, or the caller if it is known at once) and must
    /// be quick and must not block on the log; it may call the log. A panic in it is caught
    /// and logged, and answers nothing else.
    pub fn on_durable(
        &self,
        lsn: Lsn,
        callback: impl FnOnce(Result<Lsn, DurableError>) + Send + 'static,
    ) where
        S: Send + 'static,
    {
        let log = self.inner.c.lock_log();
        let lsn = lsn.min(log.wal.last_lsn());
        self.watch_locked(log, lsn, Watcher::callback(callback));
    }

    /// Appends records atomically without waiting, and returns a future that resolves when
    /// they are durable, whatever the [`SyncPolicy`]. The records are in the log when
    /// this returns: dropping the future does not remove them, and awaiting it does not write
    /// them again. The future is registered under the same lock as the append, so it can only
    /// fail with [`DurableError::Truncated`] if these very records are truncated.
    pub fn append_durable(
        &self,
        payloads: &[&[u8]],
    ) -> Result<(Appended, DurableFuture), AppendError<S::Error>>
    where
        S: Send + 'static,
    {
        let (future, completion) = DurableFuture::waiting();
        let (log, first, last) = self.append_locked(payloads)?;
        let seen = self.generation();
        self.watch_locked(log, last, Watcher::future(completion));
        self.inner.c.bell.ring();
        let appended = Appended {
            first,
            last,
            durable: self.durable_since(seen, last),
        };
        Ok((appended, future))
    }

    /// Like [`SharedWal::append_durable`], with a callback instead of a future (see
    /// [`SharedWal::on_durable`] for where it runs).
    pub fn append_then(
        &self,
        payloads: &[&[u8]],
        callback: impl FnOnce(Result<Lsn, DurableError>) + Send + 'static,
    ) -> Result<Appended, AppendError<S::Error>>
    where
        S: Send + 'static,
    {
        let (log, first, last) = self.append_locked(payloads)?;
        let seen = self.generation();
        self.watch_locked(log, last, Watcher::callback(callback));
        self.inner.c.bell.ring();
        Ok(Appended {
            first,
            last,
            durable: self.durable_since(seen, last),
        })
    }

    /// Registers `w` for `lsn` while the log lock is held (so nothing truncates `lsn` in
    /// between), then, without the lock, either answers it or asks the syncer to cover it.
    fn watch_locked(&self, log: MutexGuard<'_, Locked<S>>, lsn: Lsn, w: Watcher)
    where
        S: Send + 'static,
    {
        let registered = self.inner.c.watch(lsn, w);
        drop(log);
        match registered {
            Ok(()) => self.inner.syncer.request(&self.inner, lsn),
            Err((w, outcome)) => w.fire(outcome),
        }
    }

    /// A reader that follows the log as it grows, from `from`: it waits for new records, and
    /// keeps going across rotation, `truncate_front` and `truncate_back`, reporting the
    /// records it missed and the rewinds (see [`Tail`]).
    pub fn tail(&self, from: Lsn) -> Tail<S> {
        Tail::new(
            Self {
                inner: self.inner.follower(),
            },
            from,
        )
    }

    /// The highest LSN known durable (never beyond a successful sync; frozen once poisoned).
    ///
    /// Frozen means as it was just before the failure: after a `truncate_back(lsn)` that
    /// failed part way, the records after `lsn` may be gone after a crash even below it (they
    /// were asked to go). [`Wal::durable_lsn`](crate::Wal::durable_lsn), without a committer,
    /// drops to `lsn` at the cut's first change.
    pub fn durable_lsn(&self) -> Lsn {
        self.inner.c.durable()
    }

    /// The LSN of the last record appended.
    pub fn last_lsn(&self) -> Lsn {
        self.inner.c.lock_log().wal.last_lsn()
    }

    /// The first LSN in the log.
    pub fn first_lsn(&self) -> Lsn {
        self.inner.c.lock_log().wal.first_lsn()
    }

    /// Why the log is poisoned, if it is.
    pub fn poisoned(&self) -> Option<Poisoned> {
        self.inner.c.poison_reason()
    }

    /// A copy of the segment table, oldest first.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        self.inner.c.lock_log().wal.segments().to_vec()
    }

    /// Files in the log directory that are not segments (left alone, reported here).
    pub fn foreign_files(&self) -> &[PathBuf] {
        &self.inner.foreign
    }

    /// The sync policy this handle carries out (the one in the options it was opened with).
    pub fn sync_policy(&self) -> SyncPolicy {
        self.inner.policy
    }

    /// Counters and histograms since open.
    pub fn metrics(&self) -> Metrics {
        let c = &self.inner.c;
        let (counters, last) = {
            let log = c.lock_log();
            (log.wal.counters(), log.wal.last_lsn())
        };
        c.metrics
            .snapshot(counters, c.durable().0, last.0, c.is_poisoned())
    }

    /// A reader from `from`, running concurrently with appends. A [`SharedWal::truncate_back`]
    /// that removes records the reader has returned is reported by its next read, once, as
    /// [`walden_core::ReadError::Rewound`] with the last LSN kept; it then reads on after the
    /// cut, in the log as it is now (see [`SharedReader`]). [`SharedWal::tail`] reports the
    /// same as an event, and waits for new records.
    ///
    /// Reading by LSN: a record appended since open (through any handle; stored as given:
    /// not compressed, not encrypted) is found at once, from an index that costs 4 bytes of
    /// memory per such record until it is truncated away; others are found by walking at most
    /// 32 records or about 4 KiB from the nearest position a reader has verified. A segment
    /// that has served 64 reads that way is indexed whole by the next one, which walks it
    /// (every header verified; about 17 ms for a 64 MiB segment of 128-byte records on this
    /// project's VM), at the same 4 bytes per record, while the index holds less than 64 MiB: a
    /// log read at random after a reopen is then read as fast as one written since. Either way the record is verified before it is
    /// returned.
    pub fn reader(&self, from: Lsn) -> Result<SharedReader<S>, walden_core::ReadError<S::Error>> {
        SharedReader::new(self.inner.clone(), from)
    }

    /// Removes whole segments whose records are all below `lsn` (retention).
    pub fn truncate_front(&self, lsn: Lsn) -> Result<usize, TruncateError<S::Error>> {
        if let Some(p) = self.committer_poison() {
            return Err(TruncateError::Poisoned(p));
        }
        let c = &self.inner.c;
        let mut log = c.lock_log();
        let r = log.wal.truncate_front(lsn);
        let first = log.wal.first_lsn();
        let first_segment = log.wal.segments().first().map_or(0, |s| s.id);
        (self.inner.whole_positions(&mut log)).forget_before(first, first_segment);
        let poisoned = log.wal.poisoned();
        drop(log);
        if let Some(p) = poisoned {
            c.poison(p);
        }
        self.inner.c.bell.ring();
        r
    }

    /// Removes every record after `lsn`, durably. Waits for an in-flight group commit first.
    /// With nothing after `lsn` it removes nothing and changes nothing: no pending
    /// durability future or callback is answered, and no tail is told of a rewind.
    pub fn truncate_back(&self, lsn: Lsn) -> Result<(), TruncateError<S::Error>> {
        if let Some(p) = self.committer_poison() {
            return Err(TruncateError::Poisoned(p));
        }
        let r = self.inner.c.exclusive(|log| {
            if lsn >= log.wal.last_lsn() {
                // The core's no-op (or its refusal of a poisoned log). Publishing its durable
                // LSN as a truncation's would answer every watcher above it `Truncated`.
                return (log.wal.truncate_back(lsn), None);
            }
            match log.wal.truncate_back(lsn) {
                Ok(()) => {
                    let last_segment = log.wal.segments().last().map_or(0, |s| s.id);
                    self.inner
                        .whole_positions(log)
                        .forget_after(lsn, last_segment);
                    let mut rewinds = self.inner.rewinds();
                    rewinds.record(log.wal.last_lsn());
                    (self.inner.rewind_generation).store(rewinds.generation, Ordering::Release);
                    drop(rewinds);
                    log.mark_targeted();
                    (Ok(()), Some(log.wal.durable_lsn()))
                }
                Err(e) => (Err(e), None),
            }
        });
        self.inner.c.bell.ring();
        r
    }

    /// The committer's poison, where the core log may not have it: a group-commit leader that
    /// panicked poisons only the committer (the core saw no failed call).
    fn committer_poison(&self) -> Option<Poisoned> {
        let c = &self.inner.c;
        if c.is_poisoned() {
            c.poison_reason()
        } else {
            None
        }
    }

    /// Syncs, then returns the core log if this is the last handle (otherwise gives the
    /// handle back). Every [`SharedReader`] and [`Tail`] holds a handle too: while one is
    /// alive this gives the handle back. Dropping every other handle leaves the log (and its
    /// directory lock) open until the readers and tails are dropped; tails are told
    /// ([`TailEvent::Closed`](crate::TailEvent::Closed)) once they have delivered every
    /// record, readers are not (they do not wait).
    ///
    /// If the sync fails (or the log is already poisoned) the error is returned and this
    /// handle is dropped with it: nothing more can be made durable through it, and the log is
    /// released as by a drop once no other handle is left. Reopen the directory to go on.
    pub fn close(self) -> Result<Result<CoreLog<S>, Self>, SyncError<S::Error>> {
        self.sync()?;
        Ok(self.into_core())
    }

    /// The core log, if this is the last handle (without a final sync).
    pub fn into_core(self) -> Result<CoreLog<S>, Self> {
        match self.inner.into_inner() {
            // Dropping the rest stops the flusher.
            Ok(inner) => Ok(inner.c.into_wal()),
            Err(inner) => Err(Self { inner }),
        }
    }
}

/// The flusher's stop signal.
#[derive(Default)]
struct Stop {
    stopped: Mutex<bool>,
    cv: Condvar,
}

impl Stop {
    fn stop(&self) {
        *self.stopped.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.cv.notify_all();
    }

    /// Sleeps for `d` or until stopped; returns whether stopped.
    fn sleep(&self, d: Duration) -> bool {
        // `None`: an interval too long for an `Instant` (`Duration::MAX`), slept until stopped
        // rather than a panic that ended the flusher thread.
        let deadline = Instant::now().checked_add(d);
        let mut stopped = self.stopped.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if *stopped {
                return true;
            }
            let Some(left) = time_left(deadline) else {
                return false;
            };
            stopped = self
                .cv
                .wait_timeout(stopped, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

struct StopOnDrop(Arc<Stop>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// The interval flusher. It holds only a weak reference, so it never keeps the log open; it
/// exits when the last handle is dropped or the log is poisoned.
fn spawn_flusher<S: GroupSync + Send + 'static>(
    inner: Weak<Inner<S>>,
    gate: Arc<Gate>,
    stop: Arc<Stop>,
    every: Duration,
) {
    let spawned = std::thread::Builder::new()
        .name("walden-flusher".into())
        .spawn(move || {
            while !stop.sleep(every) {
                let Some(inner) = gate.visit(&inner) else {
                    return;
                };
                let c = &inner.c;
                let last = c.lock_log().wal.last_lsn();
                if last > c.durable() {
                    if let Err(e) = c.wait_durable(last, Instant::now()) {
                        tracing::error!(error = ?e, "interval flusher stops: the log is poisoned");
                        return;
                    }
                } else if c.is_poisoned() {
                    return;
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "could not start the interval flusher");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use walden_core::{Config, Growable, Lsn, SyncPolicy, Wal};
    use walden_sim::SimStorage;

    use super::SharedWal;
    use crate::durable::{DurableError, Watcher};
    use crate::group::{GroupWindow, SyncUnderLock};

    type Sim = SyncUnderLock<SimStorage>;

    fn shared(policy: SyncPolicy) -> SharedWal<Sim> {
        let config = Config::default()
            .with_segment_size(4096)
            .with_sync_policy(SyncPolicy::Manual);
        let mut scratch = vec![0u8; 4096];
        let (wal, _) =
            Wal::<Sim, Growable>::open(SyncUnderLock(SimStorage::new()), config, &mut scratch)
                .unwrap();
        SharedWal::from_core(wal, policy, GroupWindow::default()).unwrap()
    }

    /// A watcher for `lsn` registered without asking the syncer to cover it, so that nothing
    /// answers it but what the test does next.
    fn quiet_watcher(wal: &SharedWal<Sim>, lsn: Lsn) -> Arc<Mutex<Vec<crate::durable::Outcome>>> {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = Arc::clone(&seen);
        let w = Watcher::callback(move |o| s.lock().unwrap().push(o));
        assert!(
            wal.inner.c.watch(lsn, w).is_ok(),
            "{lsn} is not durable yet"
        );
        seen
    }

    #[test]
    fn an_empty_batch_is_durable_while_other_records_are_not() {
        let wal = shared(SyncPolicy::Manual);
        let _ = wal.append(b"unsynced").unwrap();
        let empty = wal.append_batch(&[]).unwrap();
        assert_eq!((empty.first, empty.last), (Lsn(2), Lsn(1)));
        assert!(empty.durable, "an empty batch has no record to wait for");
        assert!(!wal.append(b"two").unwrap().durable);
    }

    #[test]
    fn a_truncate_back_that_removes_nothing_answers_no_watcher() {
        let wal = shared(SyncPolicy::Manual);
        for i in 0..4u8 {
            let _ = wal.append(&[i]).unwrap();
        }
        wal.sync().unwrap();
        let _ = wal.append(b"five").unwrap();
        let _ = wal.append(b"six").unwrap();
        let five = quiet_watcher(&wal, Lsn(5));
        let six = quiet_watcher(&wal, Lsn(6));
        // At and beyond the last record: nothing to remove.
        for at in [Lsn(6), Lsn(7), Lsn(u64::MAX)] {
            wal.truncate_back(at).unwrap();
        }
        assert_eq!(wal.last_lsn(), Lsn(6));
        assert!(
            five.lock().unwrap().is_empty(),
            "{:?}",
            five.lock().unwrap()
        );
        assert!(six.lock().unwrap().is_empty(), "{:?}", six.lock().unwrap());
        // A real one answers the watcher it removes, and only that one.
        wal.truncate_back(Lsn(5)).unwrap();
        assert!(matches!(
            six.lock().unwrap().as_slice(),
            [Err(DurableError::Truncated {
                lsn: Lsn(6),
                kept: Lsn(5)
            })]
        ));
        assert_eq!(five.lock().unwrap().as_slice(), [Ok(Lsn(5))]);
    }

    #[test]
    fn an_append_whose_records_a_truncation_removed_is_not_durable_at_their_lsns() {
        let wal = shared(SyncPolicy::Always);
        for p in [b"one", b"two"] {
            assert!(wal.append(p).unwrap().durable);
        }
        // What `append_batch` reads under the log lock before it waits for `last`.
        let seen = wal.generation();
        let last = wal.append(b"three").unwrap().last;
        assert_eq!(last, Lsn(3));
        assert!(wal.still_in_log(seen, last), "no truncation yet");
        // A truncation above them leaves them in the log.
        wal.truncate_back(Lsn(3)).unwrap();
        assert!(wal.still_in_log(seen, last));
        // One that removes LSN 3, then an append that takes LSN 3 again: its durability says
        // nothing of the removed record.
        wal.truncate_back(Lsn(2)).unwrap();
        let again = wal.append(b"another three").unwrap();
        assert_eq!((again.last, again.durable), (Lsn(3), true));
        assert!(wal.durable_lsn() >= last);
        assert!(
            !wal.still_in_log(seen, last),
            "LSN 3 now names another record"
        );
    }

    /// Found by an adversarial review: an append that does not wait (`Manual`, a policy whose
    /// threshold it did not reach, `append_durable`, `append_then`) said `durable: true` for a
    /// record that a `truncate_back` removed between its release of the log lock and its look
    /// at the durable LSN, once another record at the same LSN was synced. Made deterministic
    /// with a tail's waker, which the append wakes at exactly that point.
    #[test]
    fn an_append_whose_record_is_truncated_before_it_returns_is_not_durable() {
        use core::task::{Context, Waker};
        use std::sync::Mutex;
        use std::task::Wake;

        struct Meddler(Mutex<Option<SharedWal<Sim>>>);
        impl Wake for Meddler {
            fn wake(self: Arc<Self>) {
                self.wake_by_ref();
            }
            fn wake_by_ref(self: &Arc<Self>) {
                if let Some(wal) = self.0.lock().unwrap().take() {
                    // Another thread's work, at this point of the append.
                    wal.truncate_back(Lsn(1)).unwrap();
                    let _ = wal.append(b"other").unwrap();
                    wal.sync().unwrap();
                }
            }
        }
        for (policy, how) in [
            (SyncPolicy::Manual, 0),
            (SyncPolicy::EveryRecords(5), 0),
            (SyncPolicy::Manual, 1),
            (SyncPolicy::Manual, 2),
        ] {
            let wal = shared(policy);
            let _ = wal.append(b"a").unwrap();
            wal.sync().unwrap();
            let meddler = Arc::new(Meddler(Mutex::new(Some(wal.clone()))));
            let waker = Waker::from(Arc::clone(&meddler));
            let mut tail = wal.tail(Lsn(2));
            assert!(
                tail.poll_event(&mut Context::from_waker(&waker))
                    .is_pending()
            );
            let appended = match how {
                0 => wal.append(b"victim").unwrap(),
                1 => wal.append_durable(&[b"victim"]).unwrap().0,
                _ => wal.append_then(&[b"victim"], |_| {}).unwrap(),
            };
            assert!(meddler.0.lock().unwrap().is_none(), "the truncation ran");
            let at2 = wal
                .reader(Lsn(2))
                .unwrap()
                .read_next()
                .unwrap()
                .map(|r| r.payload.to_vec());
            assert_eq!(at2.as_deref(), Some(&b"other"[..]));
            assert_eq!(appended.last, Lsn(2));
            assert!(!appended.durable, "{policy:?}, call {how}: {appended:?}");
        }
    }

    /// `core_syncs` is the total of the core log's syncs, group commits included (the
    /// documentation said otherwise, found by an adversarial review).
    #[test]
    fn core_syncs_include_the_group_commits() {
        let wal = shared(SyncPolicy::Always);
        let before = wal.metrics();
        for _ in 0..10 {
            assert!(wal.append(b"x").unwrap().durable);
        }
        let after = wal.metrics();
        assert_eq!(after.group_commits - before.group_commits, 10);
        assert_eq!(after.core_syncs - before.core_syncs, 10);
    }

    /// A tail parked for the next record is woken when the log is poisoned, and reports it.
    /// It waits on the bell (registered, checked through its count) before the poison is
    /// published: only the bell's ring can reach it then (without it, the test hangs and the
    /// watchdog fails it).
    #[test]
    fn a_parked_tail_is_woken_by_the_poison() {
        let wal = shared(SyncPolicy::Manual);
        let _ = wal.append(b"one").unwrap();
        let mut tail = wal.tail(Lsn(1));
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let events = (0..2)
                .map(|_| tail.next_event().unwrap())
                .collect::<Vec<_>>();
            let _ = tx.send(events);
        });
        // Registered with the bell: it has delivered LSN 1 and waits for LSN 2.
        while wal.inner.c.bell.waiting() == 0 {
            std::thread::yield_now();
        }
        let p = walden_core::Poisoned {
            op: walden_core::Op::Sync,
            segment: None,
            kind: walden_core::StorageErrorKind::Io,
        };
        wal.inner.c.poison(p);
        let events = rx
            .recv_timeout(core::time::Duration::from_secs(60))
            .expect("the parked tail was never woken");
        assert!(matches!(
            events[0],
            crate::tail::TailEvent::Record { lsn: Lsn(1), .. }
        ));
        assert_eq!(events[1], crate::tail::TailEvent::Poisoned(p));
    }

    #[test]
    fn a_tail_from_lsn_zero_reports_nothing_missed() {
        let wal = shared(SyncPolicy::Manual);
        let mut tail = wal.tail(Lsn(0));
        assert_eq!(tail.position(), Lsn(1));
        assert!(tail.try_next().unwrap().is_none());
        let _ = wal.append(b"one").unwrap();
        assert!(matches!(
            tail.try_next().unwrap(),
            Some(crate::tail::TailEvent::Record { lsn: Lsn(1), .. })
        ));
    }

    /// A fresh log that appends in bulk, never syncing, zero-fills no spare: the storage
    /// starts the spare once the log's first writes have shown it writes in bulk, and then
    /// only preallocates it. (Started at open, before there was anything to judge, it was
    /// zero-filled whole.)
    #[cfg(feature = "sim")]
    #[test]
    fn a_fresh_log_written_in_bulk_zero_fills_no_spare() {
        use core::sync::atomic::{AtomicU64, Ordering};
        use std::io;

        use crate::filesystem::{FileSystem, Hooked, Hooks, Op, SIM_TUNING, SimFileSystem};

        /// Whether a file is a spare, by the storage's own naming rule.
        fn is_spare(name: Option<&std::ffi::OsStr>) -> bool {
            name.and_then(|n| n.to_str())
                .and_then(crate::spare::parse_spare_name)
                .is_some()
        }
        /// Bytes written to spare files.
        struct SpareBytes(Arc<AtomicU64>);
        impl Hooks for SpareBytes {
            fn after(&self, op: &Op<'_>, _: Option<&io::Error>) {
                if let Op::Write { path, len, .. } = *op
                    && is_spare(path.file_name())
                {
                    self.0.fetch_add(len as u64, Ordering::Relaxed);
                }
            }
        }
        let spare_bytes = Arc::new(AtomicU64::new(0));
        let sim = SimFileSystem::new("/log", walden_sim::SimFs::default());
        let fs = Hooked::new(sim, SpareBytes(Arc::clone(&spare_bytes)));
        let config = Config::default()
            .with_segment_size(64 << 10)
            .with_sync_policy(SyncPolicy::Manual);
        let (wal, _) =
            SharedWal::open_in(fs.clone(), "/log", crate::Options::from(config)).unwrap();
        // Well past the point where the spare is due (twice the write buffer).
        let mut written = 0;
        while written < 8 * SIM_TUNING.write_buffer {
            let _ = wal.append(&[7u8; 100]).unwrap();
            written += 100;
        }
        let spare = fs.inner().read_dir("/log".as_ref()).unwrap();
        assert!(
            spare.iter().any(|e| is_spare(Some(&e.name))),
            "a spare was prepared: {spare:?}"
        );
        assert_eq!(
            spare_bytes.load(Ordering::Relaxed),
            0,
            "zeros written to the spare"
        );
    }
}
