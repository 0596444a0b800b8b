//! Group commit: one thread (the leader) makes a whole group of appends durable with one sync,
//! while the others wait, parked.
//!
//! # The protocol
//!
//! Two locks, always taken in this order: the **log lock** (the core [`Wal`], plus a byte
//! counter) and the **commit lock** ([`State`]: the published durable LSN, whether a leader is
//! at work, the poison, and the parked waiters). Nobody takes the log lock while holding the
//! commit lock.
//!
//! * An appender takes the log lock, calls core `append_batch` (core's policy is `Manual`, so
//!   it only writes into the storage's buffer) and releases it. If it needs durability it calls
//!   [`Committer::wait_durable`] with its last LSN.
//! * A waiter takes the commit lock: poisoned → error; `durable >= lsn` → done; no leader →
//!   it sets `leader` and leads; a leader at work → it adds a [`Slot`] (its LSN and thread) to
//!   `waiters`, drops the lock and parks — polling first where that pays
//!   ([`GroupWindow::spin`]) — until its slot says `RELEASED` (answered: return) or `LEAD`
//!   (the role was handed to it: lead).
//! * The leader lets the threads the previous group released come back and append
//!   ([`Committer::await_followers`], bounded by half the last sync), then takes the log lock,
//!   reads `target = last_lsn`, asks the storage to hand its buffered bytes to the OS and give
//!   a *detached sync* ([`GroupSync::detached_sync`]), releases the log lock, runs the sync
//!   (appenders keep appending meanwhile), then takes the log lock once more to check that the
//!   core log was not poisoned in between (`finish_sync`).
//! * It then publishes under the commit lock `durable = target` (or the poison) and **hands
//!   off** ([`Committer::hand_off`]): every waiter whose LSN is now durable (every waiter, if
//!   poisoned) is marked `RELEASED`; the role goes to a parked `exclusive` caller if any, else
//!   to the uncovered waiter with the lowest LSN (marked `LEAD`, `leader` stays set), else
//!   `leader` is cleared. The marked threads are unparked after the lock is dropped. Only the
//!   threads that have something to do are woken: no thundering herd.
//!
//! # Why it is correct
//!
//! 1. **Nothing is published durable without a successful sync covering it.** `target` is read
//!    under the log lock after the flush, so every record `<= target` was written to the
//!    storage before the detached sync was created. Records of the active segment are covered
//!    by that sync (its contract); records of older segments were covered by the core's own
//!    sync at rotation, which runs before a segment stops being active — and if that sync
//!    failed, the core is poisoned, which the leader sees under the log lock. A waiter is
//!    marked `RELEASED` only under the commit lock, after `durable` covers it or the poison is
//!    set, and reads the mirrors of both (stored before the mark, `Release`/`Acquire`).
//! 2. **A failed sync is never followed by a published success.** A failing fsync can
//!    consume the kernel's error, so a *later* fsync of the same file may return `Ok` although
//!    the data is gone (fsyncgate). Syncs run in two places: the leader's detached sync, and
//!    core syncs under the log lock (rotation, truncation). At most one leader exists at a
//!    time (`leader` is set by whoever takes the role and only cleared or handed on by its
//!    holder), and a failed leader publishes the poison before handing off, so no later leader
//!    publishes anything. A core sync that failed poisons the core under the log lock; a
//!    leader re-checks that poison under the log lock *after* its own sync returned. A sync
//!    started early on a background job (`early_sync.rs`) poisons nothing until the core
//!    joins it, so none runs beside a detached sync of the same file: a seal written while
//!    one is in flight starts none, and no detached sync is handed out while one of its
//!    segment is held. (The background zero-fill in `fill.rs` syncs through its own file
//!    description, which Linux gives its own copy of every writeback error, so it cannot
//!    consume one either.)
//! 3. **Waiters never see durability after poison.** They check the poison before the durable
//!    LSN, the poison is never cleared, and `durable` is never raised once poisoned.
//! 4. **No lost wake-up, no waiting forever.** A waiter parks only while `leader` is set (it
//!    checked under the commit lock and registered before dropping it), so `waiters` is
//!    non-empty only while some thread holds the role. Every holder ends its turn with a hand-
//!    off under the commit lock, also on panic ([`LeaderGuard`]), which marks and unparks every
//!    answered waiter and passes the role to a parked thread whenever one is left, so a parked
//!    waiter is always either answered or made leader. A mark set before the thread parks is
//!    seen by its check before `park`; an `unpark` before `park` makes `park` return at once.
//!    A new leader covers everything appended before it took the log lock, including its own
//!    records, so each turn makes progress.
//! 5. **Batches stay atomic**: each batch is one core `append_batch` under the log lock, so
//!    batches of different threads never interleave in the log.
//!
//! `truncate_back` takes the leader role itself ([`Committer::exclusive`]) before touching the
//! log — parking in a queue served before the waiters if a leader is at work — so no detached
//! sync of a file it shortens is in flight and no stale `target` can be published after it.
//! It publishes its durable LSN *before* it releases the log lock: an append after that may
//! reuse an LSN the truncation removed, and must not find it covered by the durable LSN
//! published before the truncation (the model check found this window).
//! Waiters whose records it removed are handed the role in turn, find the target below their
//! LSN, and return the durable LSN for the caller to compare.
//!
//! # Async waiters (watchers)
//!
//! A future or callback waiting for durability (`durable.rs`) cannot park a thread or lead.
//! It is a **watcher**: an LSN and a `Waker` or callback in `State::watchers`, under the same
//! commit lock. The rules extend the argument above:
//!
//! 6. **Answered only by published state.** A watcher is answered in [`Committer::release`]
//!    exactly like a parked waiter (poison first, then `durable >= lsn`), when registered if
//!    the published state already answers it, or by a truncation (below). So points 1–3 hold
//!    for watchers unchanged: no watcher hears of durability without a successful sync, and
//!    none after the poison. Outcomes are delivered after the commit lock is dropped
//!    ([`Committer::unpark`]), so a callback may call into the log without deadlocking.
//! 7. **Someone always leads for them.** A watcher is registered with the log lock held (its
//!    LSN, clamped to the last record, cannot be truncated in between), and right after, its
//!    LSN is requested from the log's **syncer thread**, which calls
//!    [`Committer::wait_durable`] for the highest LSN requested — as a parked waiter or a
//!    leader, like any thread — and serves requests by count, so one made while it was busy is
//!    served next. By point 4 that call returns once the LSN is durable, the log is poisoned
//!    (both answer the watcher through `release`), or a truncation removed it.
//! 8. **Truncation answers what it removes.** [`Committer::exclusive`] publishes the
//!    truncation's durable LSN and answers every watcher above it with `Truncated`, under the
//!    commit lock, before handing the role on. A watcher registered later is clamped to the
//!    new end, so it waits for a record that exists.
//! 9. **Nothing is left hanging at close.** Watchers still registered when the last handle
//!    drops (the `State` with them) are answered `Closed`, as is any watcher dropped
//!    unanswered on another path (`Watcher`'s `Drop`). Answering never panics (a panicking
//!    callback or `Waker` is caught), so one watcher cannot keep the others of its batch from
//!    being answered, nor end the syncer. Dropping a future only drops its side of the shared
//!    cell: the record was appended before the future existed, so it is neither lost nor
//!    written twice.
//!
//! # How waiters wait, and why the leader lets followers come back
//!
//! Measured on the 2-core VM this was built on (fdatasync ≈ 90 µs): with waiters that sleep
//! at once, waking 15 threads on idle virtual CPUs takes longer than the sync itself, and with
//! a leader that syncs the moment it is elected, half the writers miss each group (they are
//! still waking up) and every thread waits for two syncs. Letting released threads re-append
//! before the next target is taken (an event, not a timer: it ends as soon as they have,
//! never applies to a lone writer, and is bounded) makes each group hold nearly every writer.
//!
//! Polling (yielding the CPU) instead of sleeping helps where threads outnumber cores, and
//! burns CPU for nothing where they do not: on a quiet 16-core VM, 16 writers polling for up to
//! 500 µs ran at 125.8 k rec/s on 14.05 CPU-seconds per second, and sleeping at once at
//! 124.3 k rec/s on 1.32. So [`GroupWindow::spin`] is adaptive by default ([`Spin::Adaptive`]):
//! a waiter polls only while the last sync took at most [`ADAPTIVE_SPIN`], the parked waiters
//! and the leader outnumber the CPUs, and a running trial — epochs of group commits under
//! the current verdict, the other way of waiting, the current verdict again, fed by the
//! leaders — shows that polling makes group commit at least 10% faster (on a machine shared with other work, a poller takes CPU from
//! the leader and it does not); pollers never occupy more than [`POLL_CPUS`] CPUs (every
//! waiter may poll on a 2-CPU machine, at most two on a larger one). Each rule is a pure
//! function of measurements (`group/spin.rs`, tested without threads). [`Spin::Fixed`] polls
//! every waiter up to a fixed window (the old default, 500 µs); [`Spin::Off`] sleeps at once.
//! `adapters/std/examples/bench.rs many` prints all three with the CPU they spend.
//!
//! # The decision core and its model check
//!
//! The decisions above (who leads, who is answered, what is published, who gets the role
//! next, that a poison sticks) live in `group/protocol.rs` as pure state with no locks or
//! threads; [`Committer`] keeps it under the commit lock. `group/model.rs` drives that same
//! core under `shuttle` (randomized and PCT schedules, fixed seeds) with a fake sync and a
//! fake disk, and checks points 1–4 and the truncation rule; see docs/TESTING.md.

use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use core::time::Duration;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::Thread;
use std::time::Instant;

use walden_core::{Growable, IoFailure, Lsn, Op, Poisoned, SegmentId, Storage, SyncError, Wal};

#[cfg(test)]
mod model;
mod protocol;
mod spin;

use protocol::{Arrival, Core};
pub use spin::{ADAPTIVE_SPIN, POLL_CPUS, Spin};

use crate::durable::{DurableError, Outcome, Watcher};
use crate::metrics::Recorder;
use crate::tail::Bell;

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
    fn write_parts(
        &mut self,
        id: SegmentId,
        offset: u64,
        first: &[u8],
        second: &[u8],
    ) -> Result<(), S::Error> {
        self.0.write_parts(id, offset, first, second)
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

    fn segment_capacity(&self) -> Option<u64> {
        self.0.segment_capacity()
    }
}

impl<S: Storage> GroupSync for SyncUnderLock<S> {}

/// Group-commit tuning. By default a leader syncs at once (no window) and waiters poll
/// briefly before they sleep only where that pays ([`Spin::Adaptive`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupWindow {
    /// Before syncing, a leader waits up to this long for more appends to join its group
    /// (default 0: off). `Duration::MAX` is no time limit, only with a `min_bytes` that
    /// appends can reach (an open refuses `min_bytes` 0 or above the segment size:
    /// [`Error::InvalidOptions`](crate::Error::InvalidOptions)).
    pub max_wait: Duration,
    /// ... but stops waiting once this many payload bytes are waiting (0: wait the full time).
    pub min_bytes: u64,
    /// How a durability waiter waits for its group's sync: poll (yielding the CPU) for a while
    /// before it sleeps, or sleep at once. Default [`Spin::Adaptive`]: poll only while the
    /// disk is fast, threads outnumber cores and a running trial measures polling as faster,
    /// with pollers occupying at most [`POLL_CPUS`] CPUs; [`Spin::Fixed`] and [`Spin::Off`]
    /// override it (see the module docs of `group` in the source, "How waiters wait").
    pub spin: Spin,
}

impl GroupWindow {
    /// Why a log with `config` cannot use this window, if it cannot: one too long for an
    /// `Instant` (such as `Duration::MAX`, "no time limit") ends only once `min_bytes` are
    /// waiting, so with `min_bytes` 0 it never ends, and with more than a segment's worth
    /// (such as `u64::MAX`) it waits for a backlog no sensible load builds: in both a leader
    /// would not sync and no append would become durable.
    pub(crate) fn invalid(&self, config: &walden_core::Config) -> Option<&'static str> {
        let endless = Instant::now().checked_add(self.max_wait).is_none();
        if !endless {
            None
        } else if self.min_bytes == 0 {
            Some(
                "GroupWindow: a max_wait with no time limit (Duration::MAX) and min_bytes 0 never ends, so no append would become durable: give min_bytes > 0 or a finite max_wait",
            )
        } else if self.min_bytes > config.segment_size {
            Some(
                "GroupWindow: a max_wait with no time limit (Duration::MAX) ends only at min_bytes, and a min_bytes above the segment size may never be reached, so no append would become durable: give a min_bytes of at most the segment size or a finite max_wait",
            )
        } else {
            None
        }
    }
}

/// What the log lock protects.
pub(crate) struct Locked<S: Storage> {
    pub(crate) wal: Wal<S, Growable>,
    /// The core log's append counters (records, payload bytes) when the last leader took its
    /// target. The counts are the core's; only this mark is group commit's own: what the
    /// policies `EveryRecords`/`EveryBytes` and the group window count is what no leader has
    /// yet taken (the core's own unsynced counts drop only when a sync has finished).
    targeted: (u64, u64),
    /// Compression scratch for appends.
    pub(crate) scratch: crate::transform::Scratch,
    /// Places of appended records not yet in the read index.
    pub(crate) unpublished: crate::reader::Unpublished,
}

impl<S: Storage> Locked<S> {
    fn new(wal: Wal<S, Growable>) -> Self {
        let mut l = Self {
            wal,
            targeted: (0, 0),
            scratch: Default::default(),
            unpublished: Default::default(),
        };
        l.mark_targeted();
        l
    }

    /// Records appended since the last leader took its target.
    pub(crate) fn unsynced_records(&self) -> u64 {
        self.wal.counters().appends - self.targeted.0
    }

    /// Record bytes (payloads and 32-byte headers, as `SyncPolicy::EveryBytes` counts them)
    /// appended since the last leader took its target.
    pub(crate) fn unsynced_bytes(&self) -> u64 {
        let header = walden_core::raw::RECORD_HEADER_LEN as u64;
        self.wal.counters().bytes_appended - self.targeted.1 + header * self.unsynced_records()
    }

    /// A leader took everything appended so far as its target (or a truncation removed it).
    pub(crate) fn mark_targeted(&mut self) {
        let c = self.wal.counters();
        self.targeted = (c.appends, c.bytes_appended);
    }
}

/// What the commit lock protects.
struct State {
    /// The published durable LSN, the leader role, the poison, the parked threads.
    core: Core<Arc<Slot>>,
    /// Async durability waiters (futures and callbacks). Invariant: each one's LSN is covered
    /// by a request to the syncer thread (`durable.rs`), which waits like a parked thread.
    watchers: Watchers,
}

/// Watchers with the LSN each waits for. Those still registered when the log is closed are
/// answered [`DurableError::Closed`].
#[derive(Default)]
struct Watchers(Vec<(Lsn, Watcher)>);

impl Drop for Watchers {
    fn drop(&mut self) {
        for (_, w) in self.0.drain(..) {
            w.fire(Err(DurableError::Closed));
        }
    }
}

/// One parked thread: the leader (or a poisoner) flips `state` and unparks `thread`.
struct Slot {
    state: AtomicU8,
    thread: Thread,
}

const WAITING: u8 = 0;
/// Released: durable covers the waiter's LSN, or the log is poisoned.
const RELEASED: u8 = 1;
/// Handed the leader role (`State::leader` stays set across the hand-off).
const LEAD: u8 = 2;

impl Slot {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            state: AtomicU8::new(WAITING),
            thread: std::thread::current(),
        })
    }

    /// Parks until a leader or poisoner sets the state, polling for `spin` first; returns
    /// the state.
    fn park(&self, spin: Duration) -> u8 {
        // `None`: no polling; `Some(None)`: a spin too long for an `Instant` (`Duration::MAX`),
        // polled without a deadline, as asked.
        let until = (!spin.is_zero()).then(|| Instant::now().checked_add(spin));
        loop {
            let s = self.state.load(Ordering::Acquire);
            if s != WAITING {
                return s;
            }
            if until.is_some_and(|until| time_left(until).is_some()) {
                std::thread::yield_now();
            } else {
                loop {
                    std::thread::park();
                    let s = self.state.load(Ordering::Acquire);
                    if s != WAITING {
                        return s;
                    }
                }
            }
        }
    }
}

/// Threads to unpark and watchers to answer once the commit lock is released. Declared before
/// the commit lock's guard wherever both are held: a watcher dropped unanswered answers itself
/// `Closed` (`durable.rs`), which must not run a callback under the lock.
#[derive(Default)]
struct Wakes {
    threads: Vec<Thread>,
    watchers: Vec<(Watcher, Outcome)>,
}

/// The shared heart of a `SharedWal`: the log, the commit state, and the metrics.
pub(crate) struct Committer<S: Storage> {
    /// Wakes tailing readers after appends and truncations, and once the log is poisoned.
    pub(crate) bell: Bell,
    log: Mutex<Locked<S>>,
    state: Mutex<State>,
    /// Mirrors of `State`, for lock-free reads. Written under the commit lock.
    durable: AtomicU64,
    poisoned: AtomicBool,
    /// How many waiters the last release answered: about the number of writers waiting on
    /// each group commit, which a waiter that registers early cannot see yet
    /// ([`spin::Conditions::waiters`]).
    last_released: AtomicU32,
    /// Waiters released by a publication that have not yet returned to their caller.
    returning: AtomicU32,
    /// Appends in progress (between entering `append_batch` and leaving the log lock), counted
    /// only where a leader may wait for them: see [`Committer::appending`].
    appending: AtomicU32,
    /// Threads in [`Committer::wait_durable`].
    committing: AtomicU32,
    /// Duration of the last group sync, in nanoseconds: bounds how long a leader waits for
    /// released threads to come back.
    last_sync_ns: AtomicU64,
    /// Waiters polling right now ([`Spin::Adaptive`]). Raised under the commit lock only, so
    /// the bound of [`spin::max_spinners`] holds.
    spinners: AtomicU32,
    /// The trial of polling ([`spin::Trial`]), fed by leaders, and its verdict's mirror.
    trial: Mutex<spin::Trial>,
    trial_spin: AtomicBool,
    /// The trial's clock.
    opened: Instant,
    /// CPUs available to the process, when the log was opened.
    cores: u32,
    pub(crate) window: GroupWindow,
    pub(crate) metrics: Recorder,
}

/// The time left until `deadline`, `None` once it is reached. A deadline too far away for an
/// `Instant` (`Instant::now().checked_add(Duration::MAX)` is `None`) never passes: its time
/// left is `Duration::MAX`.
pub(crate) fn time_left(deadline: Option<Instant>) -> Option<Duration> {
    match deadline {
        Some(deadline) => deadline
            .checked_duration_since(Instant::now())
            .filter(|left| !left.is_zero()),
        None => Some(Duration::MAX),
    }
}

fn relock<T>(r: Result<T, PoisonError<T>>) -> T {
    // A panic elsewhere leaves the guarded data consistent (every update is a single
    // assignment or a core call that poisons itself on failure), so carry on.
    r.unwrap_or_else(PoisonError::into_inner)
}

/// Counts a thread in a counter (an append in progress, a durability waiter) for as long as
/// it lives.
pub(crate) struct Counted<'c>(&'c AtomicU32);

impl<'c> Counted<'c> {
    fn new(counter: &'c AtomicU32) -> Self {
        counter.fetch_add(1, Ordering::AcqRel);
        Self(counter)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Release);
    }
}

/// The longest a leader waits for threads it released to come back and append.
const MAX_FOLLOWER_WAIT: Duration = Duration::from_millis(1);

impl<S: GroupSync> Committer<S> {
    pub(crate) fn new(wal: Wal<S, Growable>, window: GroupWindow) -> Self {
        let durable = wal.durable_lsn();
        let poisoned = wal.poisoned();
        Self {
            log: Mutex::new(Locked::new(wal)),
            state: Mutex::new(State {
                core: Core::new(durable, poisoned),
                watchers: Watchers::default(),
            }),
            durable: AtomicU64::new(durable.0),
            poisoned: AtomicBool::new(poisoned.is_some()),
            last_released: AtomicU32::new(0),
            returning: AtomicU32::new(0),
            appending: AtomicU32::new(0),
            committing: AtomicU32::new(0),
            last_sync_ns: AtomicU64::new(0),
            spinners: AtomicU32::new(0),
            trial: Mutex::new(spin::Trial::new(Duration::ZERO)),
            trial_spin: AtomicBool::new(false),
            opened: Instant::now(),
            cores: std::thread::available_parallelism()
                .map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX)),
            window,
            metrics: Recorder::default(),
            bell: Bell::default(),
        }
    }

    /// Marks an append in progress until the returned guard drops, where a leader may wait
    /// for it: while a thread is in [`Committer::wait_durable`] (a leader is one of these), or
    /// when the last group commit answered waiters (durable writers take turns: between two
    /// turns nobody may be waiting, and the next leader still wants the others' appends in
    /// its group). Otherwise (a log nobody waits on, or one writer that syncs alone) an
    /// append is not counted: two atomic updates, 11 ns of a 128-byte append's 128 ns
    /// without a sync (walden-bench's `append_loop` example).
    pub(crate) fn appending(&self) -> Option<Counted<'_>> {
        let waited = self.committing.load(Ordering::Relaxed) > 0
            || self.last_released.load(Ordering::Relaxed) > 0;
        waited.then(|| Counted::new(&self.appending))
    }

    pub(crate) fn lock_log(&self) -> MutexGuard<'_, Locked<S>> {
        relock(self.log.lock())
    }

    fn lock_state(&self) -> MutexGuard<'_, State> {
        relock(self.state.lock())
    }

    pub(crate) fn into_wal(self) -> Wal<S, Growable> {
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
        self.lock_state().core.poisoned()
    }

    /// Publishes the poison (first reason wins) and releases every parked waiter.
    pub(crate) fn poison(&self, p: Poisoned) {
        // Before the guard: dropped after it if anything unwinds (see `Wakes`).
        let mut wakes = Wakes::default();
        let mut st = self.lock_state();
        self.set_poison(&mut st, p);
        self.release(&mut st, &mut wakes);
        drop(st);
        self.unpark(wakes);
    }

    fn set_poison(&self, st: &mut State, p: Poisoned) {
        if st.core.poison(p) {
            self.announce_poison(st, p);
        }
    }

    /// Mirrors a new poison and logs it.
    fn announce_poison(&self, st: &State, p: Poisoned) {
        tracing::error!(op = p.op.name(), segment = ?p.segment, kind = %p.kind,
            waiters = st.core.waiting(),
            "log poisoned: every waiting and later call fails until reopened");
        // `SeqCst`: see `Committer::poisoned_for_tail`.
        self.poisoned.store(true, Ordering::SeqCst);
    }

    /// Releases every parked waiter that the published state answers: all of them once
    /// poisoned, else those whose LSN is durable.
    fn release(&self, st: &mut State, wakes: &mut Wakes) {
        let mut released = Vec::new();
        st.core.release(&mut released);
        for slot in &released {
            slot.state.store(RELEASED, Ordering::Release);
            wakes.threads.push(slot.thread.clone());
        }
        self.returning
            .fetch_add(released.len() as u32, Ordering::AcqRel);
        self.last_released
            .store(released.len() as u32, Ordering::Relaxed);
        let poisoned = st.core.poisoned();
        let durable = st.core.durable();
        if st.watchers.0.is_empty() {
            return;
        }
        let mut i = 0;
        while i < st.watchers.0.len() {
            let lsn = st.watchers.0[i].0;
            let outcome = match poisoned {
                Some(p) => Err(DurableError::Poisoned(p)),
                None if lsn <= durable => Ok(durable),
                None => {
                    i += 1;
                    continue;
                }
            };
            let (_, w) = st.watchers.0.swap_remove(i);
            wakes.watchers.push((w, outcome));
        }
    }

    /// Registers an async waiter for `lsn`, or answers it at once if the published state
    /// already does (returned to the caller, to fire once it holds no lock). The caller holds
    /// the log lock (so `lsn`, clamped to the last record, cannot be truncated before the
    /// watcher is registered) and, on `Ok`, must request the syncer for `lsn`.
    pub(crate) fn watch(&self, lsn: Lsn, w: Watcher) -> Result<(), (Watcher, Outcome)> {
        let mut st = self.lock_state();
        if let Some(p) = st.core.poisoned() {
            return Err((w, Err(DurableError::Poisoned(p))));
        }
        if st.core.durable() >= lsn {
            return Err((w, Ok(st.core.durable())));
        }
        st.watchers.0.push((lsn, w));
        Ok(())
    }

    /// Answers the watchers whose LSN a `truncate_back` to `kept` removed.
    fn drop_truncated(st: &mut State, kept: Lsn, wakes: &mut Wakes) {
        let mut i = 0;
        while i < st.watchers.0.len() {
            let lsn = st.watchers.0[i].0;
            if lsn > kept {
                let (_, w) = st.watchers.0.swap_remove(i);
                wakes
                    .watchers
                    .push((w, Err(DurableError::Truncated { lsn, kept })));
            } else {
                i += 1;
            }
        }
    }

    /// Ends a leader's turn: releases the answered waiters, then hands the role to a parked
    /// `exclusive` caller, else to the uncovered waiter with the lowest LSN, else clears it.
    /// Called with the commit lock held and `leader` set by the caller's turn.
    fn hand_off(&self, st: &mut State, wakes: &mut Wakes) {
        self.release(st, wakes);
        if let Some(slot) = st.core.next_leader() {
            slot.state.store(LEAD, Ordering::Release);
            wakes.threads.push(slot.thread.clone());
        }
    }

    /// Waits until every record up to `lsn` is durable, leading group commits as needed.
    /// `lsn` must not exceed the last appended LSN (callers clamp).
    pub(crate) fn wait_durable(
        &self,
        lsn: Lsn,
        started: Instant,
    ) -> Result<Lsn, SyncError<S::Error>> {
        let _committing = Counted::new(&self.committing);
        let mut st = self.lock_state();
        loop {
            let mut mine = None;
            let arrival = st.core.arrive(lsn, || {
                let slot = Slot::new();
                mine = Some(Arc::clone(&slot));
                slot
            });
            match (arrival, mine) {
                (Arrival::Failed(p), _) => return Err(SyncError::Poisoned(p)),
                (Arrival::Durable(d), _) => {
                    drop(st);
                    self.record_wait(started);
                    return Ok(d);
                }
                (Arrival::Wait { waiters }, Some(slot)) => {
                    let (spin, counted) = self.spin(waiters);
                    drop(st);
                    let state = slot.park(spin);
                    if counted {
                        self.spinners.fetch_sub(1, Ordering::AcqRel);
                    }
                    if state == RELEASED {
                        // Answered by the published state, which never goes back on a poison.
                        self.returning.fetch_sub(1, Ordering::AcqRel);
                        if self.is_poisoned() {
                            let p = self.poison_reason();
                            return Err(SyncError::Poisoned(p.unwrap_or(UNKNOWN)));
                        }
                        self.record_wait(started);
                        return Ok(self.durable());
                    }
                    // Handed the leader role: `leader` is still set for us.
                }
                // `Wait` always registers a slot; `Lead`: the role is ours.
                (Arrival::Wait { .. } | Arrival::Lead, _) => drop(st),
            }
            let guard = LeaderGuard::new(self);
            let outcome = self.lead();
            guard.finish(&outcome);
            // The leader hands back the original failure; everyone else sees `Poisoned`.
            let target = outcome?;
            if target < lsn {
                // Only after a concurrent `truncate_back` removed `lsn`: leading again would
                // not reach it. Report how far durability got; callers compare.
                return Ok(target);
            }
            st = self.lock_state();
        }
    }

    /// How long a waiter that just registered (one of `waiters`) polls before it sleeps,
    /// and whether it was counted among the adaptive pollers (then it must uncount itself
    /// when answered). Called under the commit lock, which serializes the
    /// raises of `spinners`.
    fn spin(&self, waiters: usize) -> (Duration, bool) {
        let last_sync = Duration::from_nanos(self.last_sync_ns.load(Ordering::Relaxed));
        match self.window.spin {
            Spin::Off => (Duration::ZERO, false),
            Spin::Fixed(window) => (spin::fixed(window, last_sync), false),
            Spin::Adaptive => {
                let released = self.last_released.load(Ordering::Relaxed) as usize;
                let conditions = spin::Conditions {
                    last_sync,
                    waiters: waiters.max(released),
                    spinners: self.spinners.load(Ordering::Acquire),
                    cores: self.cores,
                    trial: self.trial_spin.load(Ordering::Acquire),
                };
                let d = spin::adaptive(conditions);
                let counted = !d.is_zero();
                if counted {
                    self.spinners.fetch_add(1, Ordering::AcqRel);
                }
                (d, counted)
            }
        }
    }

    fn record_wait(&self, started: Instant) {
        let ns = started.elapsed().as_nanos().min(u128::from(u64::MAX)) as u64;
        self.metrics.append_to_durable.record(ns);
    }

    /// Before taking its target, a leader lets the threads the previous group commit
    /// released come back: on few cores they are runnable but not running, and each one
    /// that appends before the target is taken rides this sync instead of waiting for the
    /// next. It waits for an event, not for a time: only while released threads have not
    /// yet returned or appends are in progress, never when it is the only writer, and at
    /// most half the last sync's duration (so a slow follower costs bounded latency).
    fn await_followers(&self) {
        let busy = || {
            self.returning.load(Ordering::Acquire) > 0 || self.appending.load(Ordering::Acquire) > 0
        };
        if !busy() {
            return;
        }
        let bound = Duration::from_nanos(self.last_sync_ns.load(Ordering::Relaxed) / 2)
            .min(MAX_FOLLOWER_WAIT);
        let deadline = Instant::now() + bound;
        while busy() && Instant::now() < deadline {
            std::thread::yield_now();
        }
    }

    /// One group commit. Returns the LSN now durable.
    fn lead(&self) -> Result<Lsn, SyncError<S::Error>> {
        self.gather();
        self.await_followers();
        let started = Instant::now();
        let (target, ticket, job, records) = {
            let mut log = self.lock_log();
            if let Some(p) = log.wal.poisoned() {
                return Err(SyncError::Poisoned(p));
            }
            let target = log.wal.last_lsn();
            log.mark_targeted();
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
            if ticket.first != id {
                // An early rotation left segments unsynced (`Config::early_rotation`): the
                // core syncs them, oldest first, before the active one counts.
                log.wal.sync()?;
                self.record_sync(started, records);
                return Ok(target);
            }
            match log.wal.storage().detached_sync(id) {
                Ok(Some(job)) => (target, ticket, job, records),
                Ok(None) => {
                    log.wal.sync()?;
                    self.record_sync(started, records);
                    return Ok(target);
                }
                Err(error) => {
                    // The flush of the buffered appends failed: the bytes may be partly
                    // handed over. The sync fails and poisons the core log, so that every
                    // path (truncations included) refuses from now on, not only those that
                    // ask the committer. The caller gets the core's own failure, which names
                    // the step as the poison does (`Op::Sync`, as when `Wal::sync`'s flush
                    // fails), not a failure of its own that would disagree with it.
                    // (`finish_sync` of a failure always fails; a success is never passed on.)
                    let failed = log.wal.finish_sync(ticket, Err(error)).err();
                    return Err(failed.unwrap_or(SyncError::Storage(IoFailure {
                        op: Op::Sync,
                        segment: Some(id),
                        error,
                    })));
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
        if self.window.spin == Spin::Adaptive {
            let mut trial = relock(self.trial.lock());
            trial.on_sync(records, self.opened.elapsed());
            self.trial_spin
                .store(trial.allows_spin(), Ordering::Release);
        }
        let ns = started.elapsed().as_nanos().min(u128::from(u64::MAX)) as u64;
        self.last_sync_ns.store(ns, Ordering::Relaxed);
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
        // `None`: a window too long for an `Instant` (`Duration::MAX`: "until `min_bytes`"),
        // waited without a deadline rather than a panic in the leader.
        let deadline = Instant::now().checked_add(w.max_wait);
        loop {
            if w.min_bytes > 0 && self.lock_log().unsynced_bytes() >= w.min_bytes {
                return;
            }
            let Some(left) = time_left(deadline) else {
                return;
            };
            std::thread::sleep(left.min(Duration::from_micros(50)));
        }
    }

    /// Runs `f` as the exclusive leader: no group commit is in flight while it runs, and the
    /// durable LSN it returns (if any) replaces the published one.
    pub(crate) fn exclusive<T>(&self, f: impl FnOnce(&mut Locked<S>) -> (T, Option<Lsn>)) -> T {
        let mut st = self.lock_state();
        let mut mine = None;
        let leads = st.core.arrive_exclusive(|| {
            let slot = Slot::new();
            mine = Some(Arc::clone(&slot));
            slot
        });
        drop(st);
        if let (false, Some(slot)) = (leads, mine) {
            // Only ever handed the role (never released), also when poisoned.
            let _ = slot.park(Duration::ZERO);
        }
        let guard = LeaderGuard::new(self);
        let mut wakes = Wakes::default();
        let (out, mut st) = {
            let mut log = self.lock_log();
            let (out, durable) = f(&mut log);
            // Publish before the log lock is released (the lock order allows it): once it is,
            // an append may reuse an LSN the truncation removed, and must not find it covered
            // by the durable LSN published before the truncation. (Found by the model check.)
            let mut st = self.lock_state();
            if let Some(p) = log.wal.poisoned() {
                self.set_poison(&mut st, p);
            }
            if let Some(d) = durable
                && st.core.publish_truncation(d)
            {
                self.durable.store(d.0, Ordering::Release);
                Self::drop_truncated(&mut st, d, &mut wakes);
            }
            drop(log);
            (out, st)
        };
        self.hand_off(&mut st, &mut wakes);
        drop(st);
        guard.disarm();
        self.unpark(wakes);
        out
    }
}

/// The poison reported when none was recorded (cannot happen: the flag follows the reason).
const UNKNOWN: Poisoned = Poisoned {
    op: Op::Sync,
    segment: None,
    kind: walden_core::StorageErrorKind::Io,
};

impl<S: GroupSync> Committer<S> {
    /// Unparks the released threads and answers the watchers: after the commit lock is
    /// dropped, so a callback may call into the log. Once the log is poisoned, also wakes the
    /// waiting tails: no record can follow, and they report the poison. `fire` catches a
    /// panicking callback or `Waker`, so one cannot keep the others from being answered (nor
    /// end the syncer thread, which runs this as any leader does).
    fn unpark(&self, wakes: Wakes) {
        for t in wakes.threads {
            t.unpark();
        }
        for (w, outcome) in wakes.watchers {
            w.fire(outcome);
        }
        if self.poisoned.load(Ordering::SeqCst) {
            self.bell.ring();
        }
    }

    /// The poison, read so that a tail that registered with the bell before it looks here
    /// either sees it or is rung by [`Committer::unpark`] (both sides `SeqCst`: the poison is
    /// stored before the bell's count is read, the count before the poison is read).
    pub(crate) fn poisoned_for_tail(&self) -> Option<Poisoned> {
        if self.poisoned.load(Ordering::SeqCst) {
            Some(self.poison_reason().unwrap_or(UNKNOWN))
        } else {
            None
        }
    }
}

/// Ends the leader role and publishes the outcome, also if the leader panics (then as a
/// poison: nothing is known about the sync).
struct LeaderGuard<'c, S: GroupSync> {
    c: &'c Committer<S>,
    done: bool,
}

impl<'c, S: GroupSync> LeaderGuard<'c, S> {
    /// Taken by whoever holds the leader role, right after taking it.
    fn new(c: &'c Committer<S>) -> Self {
        Self { c, done: false }
    }

    fn disarm(mut self) {
        self.done = true;
    }

    fn finish(mut self, outcome: &Result<Lsn, SyncError<S::Error>>) {
        self.done = true;
        let c = self.c;
        let mut wakes = Wakes::default();
        let mut st = c.lock_state();
        match outcome {
            Ok(d) => {
                st.core.publish(Ok(*d));
                c.durable.store(st.core.durable().0, Ordering::Release);
            }
            Err(e) => {
                let p = match *e {
                    SyncError::Poisoned(p) => p,
                    SyncError::Storage(f) => Poisoned {
                        op: f.op,
                        segment: f.segment,
                        kind: walden_core::StorageError::kind(&f.error),
                    },
                    _ => UNKNOWN,
                };
                c.set_poison(&mut st, p);
            }
        }
        let covered = st.core.covered();
        c.metrics.group_waiters.record(covered as u64 + 1);
        c.hand_off(&mut st, &mut wakes);
        drop(st);
        c.unpark(wakes);
    }
}

impl<S: GroupSync> Drop for LeaderGuard<'_, S> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let c = self.c;
        let mut wakes = Wakes::default();
        let mut st = c.lock_state();
        c.set_poison(&mut st, UNKNOWN);
        c.hand_off(&mut st, &mut wakes);
        drop(st);
        c.unpark(wakes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::durable::Outcome;
    use walden_core::{Config, SyncPolicy};
    use walden_sim::SimStorage;

    type Sim = SyncUnderLock<SimStorage>;

    fn committer() -> Committer<Sim> {
        let config = Config::default()
            .with_segment_size(4096)
            .with_sync_policy(SyncPolicy::Manual);
        let mut scratch = vec![0u8; 4096];
        let (wal, _) = Wal::open(SyncUnderLock(SimStorage::new()), config, &mut scratch).unwrap();
        Committer::new(wal, GroupWindow::default())
    }

    /// A watcher that records what it was told.
    fn recorder() -> (Watcher, Arc<Mutex<Vec<Outcome>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = Arc::clone(&seen);
        let w = Watcher::callback(move |o| s.lock().unwrap().push(o));
        (w, seen)
    }

    fn append(c: &Committer<Sim>, n: usize) -> Lsn {
        let mut log = c.lock_log();
        for _ in 0..n {
            log.wal.append(b"x").unwrap();
        }
        log.wal.last_lsn()
    }

    #[test]
    fn watchers_are_answered_by_a_sync_and_only_once() {
        let c = committer();
        let last = append(&c, 3);
        let (w2, seen2) = recorder();
        let (w9, seen9) = recorder();
        assert!(c.watch(Lsn(2), w2).is_ok());
        assert!(c.watch(Lsn(9), w9).is_ok());
        assert_eq!(c.wait_durable(last, Instant::now()).unwrap(), last);
        assert_eq!(*seen2.lock().unwrap(), vec![Ok(last)]);
        assert!(seen9.lock().unwrap().is_empty(), "LSN 9 is not durable yet");
        // Already durable: answered at once, not registered.
        let (w, _) = recorder();
        assert!(matches!(c.watch(Lsn(1), w), Err((_, Ok(d))) if d == last));
        drop(c);
        assert_eq!(*seen9.lock().unwrap(), vec![Err(DurableError::Closed)]);
        assert_eq!(seen2.lock().unwrap().len(), 1);
    }

    #[test]
    fn a_truncation_answers_the_watchers_it_removed() {
        let c = committer();
        append(&c, 5);
        let (w2, seen2) = recorder();
        let (w5, seen5) = recorder();
        assert!(c.watch(Lsn(2), w2).is_ok());
        assert!(c.watch(Lsn(5), w5).is_ok());
        c.exclusive(|log| {
            log.wal.truncate_back(Lsn(3)).unwrap();
            ((), Some(log.wal.durable_lsn()))
        });
        let truncated = Err(DurableError::Truncated {
            lsn: Lsn(5),
            kept: Lsn(3),
        });
        assert_eq!(*seen5.lock().unwrap(), vec![truncated]);
        // Truncation syncs what it keeps, so LSN 2 is durable.
        assert_eq!(*seen2.lock().unwrap(), vec![Ok(Lsn(3))]);
    }

    #[test]
    fn poison_answers_every_watcher() {
        let c = committer();
        append(&c, 2);
        let (w, seen) = recorder();
        assert!(c.watch(Lsn(2), w).is_ok());
        c.poison(UNKNOWN);
        assert_eq!(
            *seen.lock().unwrap(),
            vec![Err(DurableError::Poisoned(UNKNOWN))]
        );
        let (w, _) = recorder();
        assert!(matches!(
            c.watch(Lsn(1), w),
            Err((_, Err(DurableError::Poisoned(_))))
        ));
    }
}
