//! Group commit: one thread (the leader) makes a whole group of appends durable with one sync,
//! while the others wait on a condition variable.
//!
//! # The protocol
//!
//! Two locks, always taken in this order: the **log lock** (the core [`Wal`], plus a byte
//! counter) and the **commit lock** ([`State`]: the published durable LSN, whether a leader is
//! at work, and the poison). Nobody takes the log lock while holding the commit lock.
//!
//! * An appender takes the log lock, calls core `append_batch` (core's policy is `Manual`, so
//!   it only writes into the storage's buffer) and releases it. If it needs durability it calls
//!   [`Committer::wait_durable`] with its last LSN.
//! * A waiter takes the commit lock and loops: poisoned → error; `durable >= lsn` → done; a
//!   leader at work → wait on the condvar; otherwise it becomes the leader (`leader = true`),
//!   drops the commit lock and [leads](Committer::lead).
//! * The leader takes the log lock, reads `target = last_lsn`, asks the storage to hand its
//!   buffered bytes to the OS and give a *detached sync* ([`GroupSync::detached_sync`]),
//!   releases the log lock, runs the sync (appenders keep appending meanwhile), then takes the
//!   log lock once more to check that the core log was not poisoned in between, and finally
//!   publishes `durable = target` (or the poison) under the commit lock, clears `leader` and
//!   wakes everyone. Woken waiters re-check; those not covered elect the next leader.
//!
//! # Why it is correct
//!
//! 1. **Nothing is published durable without a successful sync covering it.** `target` is read
//!    under the log lock after the flush, so every record `<= target` was written to the
//!    storage before the detached sync was created. Records of the active segment are covered
//!    by that sync (its contract); records of older segments were covered by the core's own
//!    sync at rotation, which runs before a segment stops being active — and if that sync
//!    failed, the core is poisoned, which the leader sees under the log lock.
//! 2. **A failed sync is never followed by a published success.** A failing fsync can
//!    consume the kernel's error, so a *later* fsync of the same file may return `Ok` although
//!    the data is gone (fsyncgate). Syncs run in two places: the leader's detached sync, and
//!    core syncs under the log lock (rotation, truncation). At most one leader exists at a
//!    time, and a failed leader publishes the poison before `leader` is cleared, so no later
//!    leader ever starts. A core sync that failed poisons the core under the log lock; a
//!    leader re-checks that poison under the log lock *after* its own sync returned, so a core
//!    failure that happened before (and might have consumed the error its sync would have
//!    seen) is caught. A core failure that happens after the leader's sync returned cannot
//!    undo data that sync already made durable.
//! 3. **Waiters never see durability after poison.** They check the poison before the durable
//!    LSN, under the commit lock, and the poison is never cleared.
//! 4. **No lost wake-up, no waiting forever.** `leader` and the state a waiter checks change
//!    only under the commit lock, and every change is followed by `notify_all`. A waiter only
//!    sleeps while a leader is at work; the leader's publication (even on panic, through
//!    [`LeaderGuard`]) wakes it. The leader covers everything appended before it took the log
//!    lock, and a waiter's records were appended before it waited, so after its leader
//!    publishes, the waiter either is covered or elects a new leader: progress.
//! 5. **Batches stay atomic**: each batch is one core `append_batch` under the log lock, so
//!    batches of different threads never interleave in the log.
//!
//! `truncate_back` takes the leader role itself before touching the log, so no detached sync
//! of a file it shortens is in flight and no stale `target` can be published after it.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::time::Duration;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use walden_core::{IoFailure, Lsn, Op, Poisoned, SegmentId, Storage, SyncError, Wal};

use crate::metrics::Recorder;

/// A sync prepared under the log lock and run without it.
pub type DetachedSync<E> = Box<dyn FnOnce() -> Result<(), E> + Send>;

/// A [`Storage`] whose segment sync can run without exclusive access to the storage, so a
/// group-commit leader does not block appenders while it waits for the disk.
pub trait GroupSync: Storage {
    /// Called with the log locked. Hands every buffered write of segment `id` to the OS and
    /// returns a job that, run later without the lock, makes every write to `id` made before
    /// this call durable — the same promise as [`Storage::sync`]. `Ok(None)` means "not
    /// supported": the leader then calls the core's `sync` under the lock.
    fn detached_sync(
        &self,
        id: SegmentId,
    ) -> Result<Option<DetachedSync<Self::Error>>, Self::Error> {
        let _ = id;
        Ok(None)
    }
}

/// Any storage, synced under the log lock (group commit still shares one sync among all
/// waiters; only appends wait for it too). Use it for storages without a detached sync, such as
/// the simulator.
#[derive(Debug)]
pub struct SyncUnderLock<S>(pub S);

impl<S: Storage> Storage for SyncUnderLock<S> {
    type Error = S::Error;
    fn list(&self, each: &mut dyn FnMut(SegmentId)) -> Result<(), S::Error> {
        self.0.list(each)
    }
    fn create(&mut self, id: SegmentId) -> Result<(), S::Error> {
        self.0.create(id)
    }
    fn remove(&mut self, id: SegmentId) -> Result<(), S::Error> {
        self.0.remove(id)
    }
    fn len(&self, id: SegmentId) -> Result<u64, S::Error> {
        self.0.len(id)
    }
    fn read(&self, id: SegmentId, offset: u64, buf: &mut [u8]) -> Result<usize, S::Error> {
        self.0.read(id, offset, buf)
    }
    fn write(&mut self, id: SegmentId, offset: u64, data: &[u8]) -> Result<(), S::Error> {
        self.0.write(id, offset, data)
    }
    fn truncate(&mut self, id: SegmentId, len: u64) -> Result<(), S::Error> {
        self.0.truncate(id, len)
    }
    fn sync(&mut self, id: SegmentId) -> Result<(), S::Error> {
        self.0.sync(id)
    }
    fn sync_dir(&mut self) -> Result<(), S::Error> {
        self.0.sync_dir()
    }
    fn reserve(&mut self, id: SegmentId, len: u64) -> Result<(), S::Error> {
        self.0.reserve(id, len)
    }
}

impl<S: Storage> GroupSync for SyncUnderLock<S> {}

/// Optional batching of group commits. Off by default: a leader syncs at once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupWindow {
    /// Before syncing, a leader waits up to this long for more appends to join its group.
    pub max_wait: Duration,
    /// ... but stops waiting once this many payload bytes are waiting (0: wait the full time).
    pub min_bytes: u64,
}

/// What the log lock protects.
pub(crate) struct Locked<S: Storage, const N: usize> {
    pub(crate) wal: Wal<S, N>,
    /// Payload bytes appended since the last leader took its target.
    pub(crate) unsynced_bytes: u64,
}

/// What the commit lock protects.
struct State {
    durable: Lsn,
    leader: bool,
    poisoned: Option<Poisoned>,
    waiters: u64,
}

/// The shared heart of a `SharedWal`: the log, the commit state, and the metrics.
pub(crate) struct Committer<S: Storage, const N: usize> {
    log: Mutex<Locked<S, N>>,
    state: Mutex<State>,
    cv: Condvar,
    /// Mirrors of `State`, for lock-free reads. Written under the commit lock.
    durable: AtomicU64,
    poisoned: AtomicBool,
    pub(crate) window: GroupWindow,
    pub(crate) metrics: Recorder,
}

fn relock<T>(r: Result<T, PoisonError<T>>) -> T {
    // A panic elsewhere leaves the guarded data consistent (every update is a single
    // assignment or a core call that poisons itself on failure), so carry on.
    r.unwrap_or_else(PoisonError::into_inner)
}

impl<S: GroupSync, const N: usize> Committer<S, N> {
    pub(crate) fn new(wal: Wal<S, N>, window: GroupWindow) -> Self {
        let durable = wal.durable_lsn();
        let poisoned = wal.poisoned();
        Self {
            log: Mutex::new(Locked {
                wal,
                unsynced_bytes: 0,
            }),
            state: Mutex::new(State {
                durable,
                leader: false,
                poisoned,
                waiters: 0,
            }),
            cv: Condvar::new(),
            durable: AtomicU64::new(durable.0),
            poisoned: AtomicBool::new(poisoned.is_some()),
            window,
            metrics: Recorder::default(),
        }
    }

    pub(crate) fn lock_log(&self) -> MutexGuard<'_, Locked<S, N>> {
        relock(self.log.lock())
    }

    fn lock_state(&self) -> MutexGuard<'_, State> {
        relock(self.state.lock())
    }

    pub(crate) fn into_wal(self) -> Wal<S, N> {
        relock(self.log.into_inner()).wal
    }

    /// The published durable LSN.
    pub(crate) fn durable(&self) -> Lsn {
        Lsn(self.durable.load(Ordering::Acquire))
    }

    pub(crate) fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }

    pub(crate) fn poison_reason(&self) -> Option<Poisoned> {
        self.lock_state().poisoned
    }

    /// Publishes the poison (first reason wins) and wakes every waiter.
    pub(crate) fn poison(&self, p: Poisoned) {
        let mut st = self.lock_state();
        if st.poisoned.is_none() {
            tracing::error!(op = p.op.name(), segment = ?p.segment, kind = %p.kind,
                "log poisoned: every waiting and later call fails until reopened");
            st.poisoned = Some(p);
            self.poisoned.store(true, Ordering::Release);
        }
        drop(st);
        self.cv.notify_all();
    }

    /// Waits until every record up to `lsn` is durable, leading group commits as needed.
    /// `lsn` must not exceed the last appended LSN (callers clamp).
    pub(crate) fn wait_durable(
        &self,
        lsn: Lsn,
        started: Instant,
    ) -> Result<Lsn, SyncError<S::Error>> {
        let mut st = self.lock_state();
        loop {
            if let Some(p) = st.poisoned {
                return Err(SyncError::Poisoned(p));
            }
            if st.durable >= lsn {
                let d = st.durable;
                drop(st);
                let ns = started.elapsed().as_nanos().min(u128::from(u64::MAX)) as u64;
                self.metrics.append_to_durable.record(ns);
                return Ok(d);
            }
            if st.leader {
                st.waiters += 1;
                st = relock(self.cv.wait(st));
                st.waiters -= 1;
                continue;
            }
            st.leader = true;
            drop(st);
            let guard = LeaderGuard {
                c: self,
                done: false,
            };
            let outcome = self.lead();
            st = guard.finish(&outcome);
            // The leader hands back the original failure; everyone else sees `Poisoned`.
            let target = outcome?;
            if target < lsn {
                // Only after a concurrent `truncate_back` removed `lsn`: leading again would
                // not reach it. Report how far durability got; callers compare.
                return Ok(target);
            }
        }
    }

    /// One group commit. Returns the LSN now durable.
    fn lead(&self) -> Result<Lsn, SyncError<S::Error>> {
        self.gather();
        let started = Instant::now();
        let (target, ticket, job, records) = {
            let mut log = self.lock_log();
            if let Some(p) = log.wal.poisoned() {
                return Err(SyncError::Poisoned(p));
            }
            let target = log.wal.last_lsn();
            log.unsynced_bytes = 0;
            let published = self.durable();
            if target <= published {
                return Ok(published);
            }
            if log.wal.durable_lsn() >= target {
                // The core synced everything itself (a rotation) while it held the log lock.
                return Ok(target);
            }
            let ticket = log.wal.begin_sync().map_err(SyncError::Poisoned)?;
            let id = ticket.segment;
            let records = target.0 - published.0;
            match log.wal.storage().detached_sync(id) {
                Ok(Some(job)) => (target, ticket, job, records),
                Ok(None) => {
                    log.wal.sync()?;
                    self.record_sync(started, records);
                    return Ok(target);
                }
                Err(error) => {
                    // The bytes may be partly handed over: treat it like a failed write.
                    let failure = IoFailure {
                        op: Op::Write,
                        segment: Some(id),
                        error,
                    };
                    return Err(SyncError::Storage(failure));
                }
            }
        };
        // The fsync runs without the log lock; appends continue meanwhile.
        let outcome = job();
        // Point 2 of the argument: `finish_sync` fails if a core sync failed meanwhile (the
        // log is poisoned), and on success lets the core vouch for the synced records in
        // the `ack_gap` of the records that follow.
        self.lock_log().wal.finish_sync(ticket, outcome)?;
        self.record_sync(started, records);
        Ok(target)
    }

    fn record_sync(&self, started: Instant, records: u64) {
        let ns = started.elapsed().as_nanos().min(u128::from(u64::MAX)) as u64;
        self.metrics.sync.record(ns);
        self.metrics.group_records.record(records);
        self.metrics.group_commits.fetch_add(1, Ordering::Relaxed);
    }

    /// The optional group window: let more appends join before syncing.
    fn gather(&self) {
        let w = self.window;
        if w.max_wait.is_zero() {
            return;
        }
        let deadline = Instant::now() + w.max_wait;
        loop {
            if w.min_bytes > 0 && self.lock_log().unsynced_bytes >= w.min_bytes {
                return;
            }
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            std::thread::sleep((deadline - now).min(Duration::from_micros(50)));
        }
    }

    /// Runs `f` as the exclusive leader: no group commit is in flight while it runs, and the
    /// durable LSN it returns (if any) replaces the published one.
    pub(crate) fn exclusive<T>(&self, f: impl FnOnce(&mut Locked<S, N>) -> (T, Option<Lsn>)) -> T {
        let mut st = self.lock_state();
        while st.leader {
            st = relock(self.cv.wait(st));
        }
        st.leader = true;
        drop(st);
        let (out, durable) = {
            let mut log = self.lock_log();
            let r = f(&mut log);
            if let Some(p) = log.wal.poisoned() {
                drop(log);
                self.poison(p);
            }
            r
        };
        let mut st = self.lock_state();
        st.leader = false;
        if let (Some(d), None) = (durable, st.poisoned) {
            st.durable = d;
            self.durable.store(d.0, Ordering::Release);
        }
        drop(st);
        self.cv.notify_all();
        out
    }
}

/// Clears the leader role and publishes the outcome, also if the leader panics (then as a
/// poison: nothing is known about the sync).
struct LeaderGuard<'c, S: GroupSync, const N: usize> {
    c: &'c Committer<S, N>,
    done: bool,
}

impl<'c, S: GroupSync, const N: usize> LeaderGuard<'c, S, N> {
    fn finish(mut self, outcome: &Result<Lsn, SyncError<S::Error>>) -> MutexGuard<'c, State> {
        self.done = true;
        let c = self.c;
        let mut st = c.lock_state();
        st.leader = false;
        match outcome {
            Ok(d) => {
                if *d > st.durable {
                    st.durable = *d;
                    c.durable.store(d.0, Ordering::Release);
                }
            }
            Err(e) => {
                let p = match *e {
                    SyncError::Poisoned(p) => p,
                    SyncError::Storage(f) => Poisoned {
                        op: f.op,
                        segment: f.segment,
                        kind: walden_core::StorageError::kind(&f.error),
                    },
                    _ => Poisoned {
                        op: Op::Sync,
                        segment: None,
                        kind: walden_core::StorageErrorKind::Io,
                    },
                };
                if st.poisoned.is_none() {
                    tracing::error!(op = p.op.name(), segment = ?p.segment, kind = %p.kind,
                        waiters = st.waiters, "group commit failed: log poisoned, all waiters get the error");
                    st.poisoned = Some(p);
                    c.poisoned.store(true, Ordering::Release);
                }
            }
        }
        c.metrics.group_waiters.record(st.waiters + 1);
        c.cv.notify_all();
        st
    }
}

impl<S: GroupSync, const N: usize> Drop for LeaderGuard<'_, S, N> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut st = self.c.lock_state();
        st.leader = false;
        st.poisoned.get_or_insert(Poisoned {
            op: Op::Sync,
            segment: None,
            kind: walden_core::StorageErrorKind::Io,
        });
        self.c.poisoned.store(true, Ordering::Release);
        drop(st);
        self.c.cv.notify_all();
    }
}
