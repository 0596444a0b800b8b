//! Model check of the group-commit protocol under `shuttle` (randomized and PCT schedules,
//! fixed seeds): the real decision core ([`Core`]) driven by shuttle threads, locks and park
//! through the same steps as `Committer` — arrive, park or lead, take the target under the log
//! lock, sync without it, re-check the log, publish, release, hand off — over a fake log and a
//! fake disk whose sync can fail.
//!
//! The fake disk knows what is really durable, and models fsyncgate: after a failed sync no
//! later sync makes anything durable, though it returns `Ok`. Checked in every execution:
//!
//! * **No waiter is released before a sync that covers it**: whenever a waiter is answered
//!   "durable" (released by a leader, or finding its LSN already published), its LSN is on the
//!   fake disk. This also catches a success published after a failed sync.
//! * **Poison sticks**: a wait that starts after another wait failed fails too.
//! * **No lost wake-up, no deadlock**: every thread returns (shuttle fails an execution in
//!   which every thread is blocked), and at the end nobody holds the role and nobody waits.
//! * **Truncation**: a wait that returns less than its LSN only does so after a
//!   `truncate_back` removed that LSN.
//!
//! Three broken variants, each with a test that the checker catches it, keep the checker
//! honest: [`Variant::PublishBeforeSync`] publishes the target before its sync returns,
//! [`Variant::PublishTruncationLate`] publishes a truncation after releasing the log lock (the
//! committer's own bug until this check found it), [`Variant::IgnoreSyncFailure`] treats a
//! failed sync as done.

use core::panic::AssertUnwindSafe;
use std::panic::catch_unwind;
use std::sync::Arc;

use shuttle::scheduler::{PctScheduler, RandomScheduler, Scheduler};
use shuttle::sync::Mutex;
use shuttle::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use shuttle::thread::{self, Thread};
use shuttle::{Config, Runner};
use walden_core::{Lsn, Op, Poisoned, StorageErrorKind};

use super::protocol::{Arrival, Core};
use super::{LEAD, RELEASED, WAITING};

const P: Poisoned = Poisoned {
    op: Op::Sync,
    segment: None,
    kind: StorageErrorKind::Io,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    /// The protocol as `Committer` runs it.
    Correct,
    /// Broken on purpose: the leader publishes its target before its sync returns.
    PublishBeforeSync,
    /// Broken on purpose (the committer's own bug until the model check found it): a
    /// truncation publishes its durable LSN after releasing the log lock, so an append in
    /// between reuses a removed LSN that the stale published LSN still covers.
    PublishTruncationLate,
    /// Broken on purpose: a leader treats a failed sync as done (retrying an fsync is not a
    /// cure: the kernel may have dropped the dirty pages with the error).
    IgnoreSyncFailure,
}

/// One parked thread, as in `Committer` (its LSN kept for the checks).
struct MSlot {
    lsn: u64,
    /// The truncation epoch the waiter's record was appended in.
    epoch: u64,
    state: AtomicU8,
    thread: Thread,
}

/// The core log, as far as the protocol sees it.
struct Log {
    last: u64,
    /// A core sync (or a leader's `finish_sync`) failed: every later step refuses.
    poisoned: bool,
    /// The lowest end a truncation left, for the truncation check.
    lowest_kept: u64,
}

/// What is really on the disk.
struct Disk {
    durable: u64,
    /// A sync failed: nothing becomes durable any more, although syncs return `Ok`.
    failed: bool,
    /// Bumped by every truncation: a sync prepared before one covers nothing (conservative).
    epoch: u64,
    syncs: u32,
    /// The sync (counted from 0, leader and truncation syncs alike) that fails.
    fail: Option<u32>,
}

impl Disk {
    fn sync(&mut self, target: u64, epoch: u64) -> Result<(), ()> {
        let n = self.syncs;
        self.syncs += 1;
        if self.fail == Some(n) {
            self.failed = true;
            return Err(());
        }
        if !self.failed && epoch == self.epoch {
            self.durable = self.durable.max(target);
        }
        Ok(())
    }
}

struct Model {
    variant: Variant,
    log: Mutex<Log>,
    /// The commit lock. Order: log, then commit; the disk is a leaf under either.
    state: Mutex<Core<Arc<MSlot>>>,
    disk: Mutex<Disk>,
    /// Mirrors of the published state, written under the commit lock.
    durable: AtomicU64,
    poisoned: AtomicBool,
    /// Some wait has returned an error.
    failure_seen: AtomicBool,
}

impl Model {
    fn new(variant: Variant, fail: Option<u32>) -> Self {
        Self {
            variant,
            log: Mutex::new(Log {
                last: 0,
                poisoned: false,
                lowest_kept: u64::MAX,
            }),
            state: Mutex::new(Core::new(Lsn(0), None)),
            disk: Mutex::new(Disk {
                durable: 0,
                failed: false,
                epoch: 0,
                syncs: 0,
                fail,
            }),
            durable: AtomicU64::new(0),
            poisoned: AtomicBool::new(false),
            failure_seen: AtomicBool::new(false),
        }
    }

    /// Appends a record: its LSN and the truncation epoch it lives in.
    fn append(&self) -> (u64, u64) {
        let mut log = self.log.lock().unwrap();
        log.last += 1;
        (log.last, self.disk.lock().unwrap().epoch)
    }

    /// The check of every "durable" answer: the record is really on the disk. Records a
    /// truncation since removed or kept are left out: an LSN only names a record within one
    /// epoch (a waiter whose record a concurrent `truncate_back` removed hears how far
    /// durability got, and compares).
    fn check_durable(&self, lsn: u64, epoch: u64) {
        let disk = self.disk.lock().unwrap();
        assert!(
            epoch != disk.epoch || lsn <= disk.durable,
            "LSN {lsn} reported durable, but only {} is on the disk",
            disk.durable
        );
    }

    /// `Committer::wait_durable`, step for step (without the poll: shuttle has no clock).
    fn wait_durable(&self, (lsn, epoch): (u64, u64)) -> Result<u64, ()> {
        let failed_before = self.failure_seen.load(Ordering::Acquire);
        let r = self.wait_inner(lsn, epoch);
        match r {
            Ok(_) => assert!(!failed_before, "a wait succeeded after another failed"),
            Err(()) => self.failure_seen.store(true, Ordering::Release),
        }
        r
    }

    fn wait_inner(&self, lsn: u64, epoch: u64) -> Result<u64, ()> {
        loop {
            let mut st = self.state.lock().unwrap();
            let mut mine = None;
            let arrival = st.arrive(Lsn(lsn), || {
                let slot = Arc::new(MSlot {
                    lsn,
                    epoch,
                    state: AtomicU8::new(WAITING),
                    thread: thread::current(),
                });
                mine = Some(Arc::clone(&slot));
                slot
            });
            match (arrival, mine) {
                (Arrival::Failed(_), _) => return Err(()),
                (Arrival::Durable(d), _) => {
                    self.check_durable(lsn, epoch);
                    return Ok(d.0);
                }
                (Arrival::Wait { .. }, Some(slot)) => {
                    drop(st);
                    let state = loop {
                        let s = slot.state.load(Ordering::Acquire);
                        if s != WAITING {
                            break s;
                        }
                        thread::park();
                    };
                    if state == RELEASED {
                        if self.poisoned.load(Ordering::Acquire) {
                            return Err(());
                        }
                        return Ok(self.durable.load(Ordering::Acquire));
                    }
                    assert_eq!(state, LEAD);
                }
                (Arrival::Wait { .. } | Arrival::Lead, _) => drop(st),
            }
            let outcome = self.lead();
            self.finish_turn(outcome.map(Lsn).map_err(|()| P), None);
            let target = outcome?;
            if target < lsn {
                let kept = self.log.lock().unwrap().lowest_kept;
                assert!(
                    kept < lsn,
                    "LSN {lsn} came back short ({target}) untruncated"
                );
                return Ok(target);
            }
        }
    }

    /// `Committer::lead`: one group commit, returning the LSN it made durable.
    fn lead(&self) -> Result<u64, ()> {
        let (target, epoch) = {
            let log = self.log.lock().unwrap();
            if log.poisoned {
                return Err(());
            }
            let target = log.last;
            let published = self.durable.load(Ordering::Acquire);
            if target <= published {
                return Ok(published);
            }
            (target, self.disk.lock().unwrap().epoch)
        };
        if self.variant == Variant::PublishBeforeSync {
            self.finish_turn(Ok(Lsn(target)), Some(()));
        }
        // The sync runs without the log lock: appends (and their waiters) continue.
        let outcome = self.disk.lock().unwrap().sync(target, epoch);
        let outcome = if self.variant == Variant::IgnoreSyncFailure {
            Ok(())
        } else {
            outcome
        };
        let mut log = self.log.lock().unwrap();
        if outcome.is_err() {
            // `finish_sync` with a failure poisons the core log.
            log.poisoned = true;
        }
        if log.poisoned {
            return Err(());
        }
        Ok(target)
    }

    /// `LeaderGuard::finish` (and the end of `exclusive`): publish, release, hand off. With
    /// `keep_role`, only publish and release (the broken variant's early publication).
    fn finish_turn(&self, outcome: Result<Lsn, Poisoned>, keep_role: Option<()>) {
        let mut st = self.state.lock().unwrap();
        st.publish(outcome);
        self.mirror(&st);
        self.hand_off(st, keep_role.is_none());
    }

    fn mirror(&self, st: &Core<Arc<MSlot>>) {
        self.durable.store(st.durable().0, Ordering::Release);
        if st.poisoned().is_some() {
            self.poisoned.store(true, Ordering::Release);
        }
    }

    fn hand_off(&self, mut st: shuttle::sync::MutexGuard<'_, Core<Arc<MSlot>>>, pass: bool) {
        let mut released = Vec::new();
        st.release(&mut released);
        let poisoned = st.poisoned().is_some();
        let mut wake = Vec::new();
        for slot in released {
            if !poisoned {
                self.check_durable(slot.lsn, slot.epoch);
            }
            slot.state.store(RELEASED, Ordering::Release);
            wake.push(slot.thread.clone());
        }
        if pass && let Some(slot) = st.next_leader() {
            slot.state.store(LEAD, Ordering::Release);
            wake.push(slot.thread.clone());
        }
        drop(st);
        for t in wake {
            t.unpark();
        }
    }

    /// `SharedWal::truncate_back` through `Committer::exclusive`: take the role, truncate and
    /// sync what is kept under the log lock, publish the kept end (or the poison), hand off.
    fn truncate_back(&self, keep: u64) {
        let mut st = self.state.lock().unwrap();
        let mut mine = None;
        let leads = st.arrive_exclusive(|| {
            let slot = Arc::new(MSlot {
                lsn: 0,
                epoch: 0,
                state: AtomicU8::new(WAITING),
                thread: thread::current(),
            });
            mine = Some(Arc::clone(&slot));
            slot
        });
        drop(st);
        if let (false, Some(slot)) = (leads, mine) {
            while slot.state.load(Ordering::Acquire) == WAITING {
                thread::park();
            }
            assert_eq!(slot.state.load(Ordering::Acquire), LEAD);
        }
        let mut log = Some(self.log.lock().unwrap());
        let l = log.as_mut().unwrap();
        let kept = if l.poisoned {
            None
        } else {
            let kept = l.last.min(keep);
            l.last = kept;
            l.lowest_kept = l.lowest_kept.min(kept);
            let mut disk = self.disk.lock().unwrap();
            disk.epoch += 1;
            disk.durable = disk.durable.min(kept);
            let epoch = disk.epoch;
            if disk.sync(kept, epoch).is_ok() {
                Some(kept)
            } else {
                l.poisoned = true;
                None
            }
        };
        if self.variant == Variant::PublishTruncationLate {
            log = None;
        }
        let mut st = self.state.lock().unwrap();
        match kept {
            Some(k) => {
                st.publish_truncation(Lsn(k));
            }
            None => {
                st.poison(P);
            }
        }
        self.mirror(&st);
        drop(log);
        self.hand_off(st, true);
    }

    /// At the end: nobody leads, nobody waits.
    fn check_quiet(&self) {
        let st = self.state.lock().unwrap();
        assert!(!st.leading(), "the role was left held");
        assert_eq!(st.waiting(), 0, "a waiter was left parked");
    }
}

/// One scenario: `writers` threads append and wait twice each, a `sync` caller waits for the
/// log's end, and optionally a `truncate_back` runs concurrently.
#[derive(Clone, Copy, Debug)]
struct Scenario {
    variant: Variant,
    writers: usize,
    fail: Option<u32>,
    truncate: Option<u64>,
}

fn run_once(s: Scenario) {
    let m = Arc::new(Model::new(s.variant, s.fail));
    let mut handles = Vec::new();
    for _ in 0..s.writers {
        let m = Arc::clone(&m);
        handles.push(thread::spawn(move || {
            for _ in 0..2 {
                let lsn = m.append();
                let _ = m.wait_durable(lsn);
            }
        }));
    }
    {
        let m = Arc::clone(&m);
        handles.push(thread::spawn(move || {
            // `SharedWal::sync`: wait for whatever is appended so far.
            let last = {
                let log = m.log.lock().unwrap();
                (log.last, m.disk.lock().unwrap().epoch)
            };
            let _ = m.wait_durable(last);
        }));
    }
    if let Some(keep) = s.truncate {
        let m = Arc::clone(&m);
        handles.push(thread::spawn(move || m.truncate_back(keep)));
    }
    for h in handles {
        h.join().unwrap();
    }
    m.check_quiet();
}

const SEEDS: [u64; 2] = [0x5eed_0001, 0x5eed_0002];
/// Executions per seed and scheduler: the whole check runs in seconds in a debug build.
const ITERATIONS: usize = 500;
const PCT_DEPTH: usize = 3;

fn schedulers() -> Vec<Box<dyn Scheduler + Send>> {
    let mut all: Vec<Box<dyn Scheduler + Send>> = Vec::new();
    for seed in SEEDS {
        all.push(Box::new(RandomScheduler::new_from_seed(seed, ITERATIONS)));
        all.push(Box::new(PctScheduler::new_from_seed(
            seed, PCT_DEPTH, ITERATIONS,
        )));
    }
    all
}

fn check(s: Scenario) {
    for scheduler in schedulers() {
        let mut config = Config::default();
        config.silence_warnings = true;
        Runner::new(scheduler, config).run(move || run_once(s));
    }
}

fn scenarios(variant: Variant) -> Vec<Scenario> {
    let mut all = Vec::new();
    for fail in [None, Some(0), Some(1), Some(2)] {
        for truncate in [None, Some(1)] {
            all.push(Scenario {
                variant,
                writers: 3,
                fail,
                truncate,
            });
        }
    }
    all
}

#[test]
fn the_protocol_keeps_its_promises_under_every_explored_schedule() {
    for s in scenarios(Variant::Correct) {
        check(s);
    }
}

fn caught(broken: Scenario) -> bool {
    catch_unwind(AssertUnwindSafe(|| check(broken))).is_err()
}

#[test]
fn the_checker_catches_a_leader_that_publishes_before_its_sync_returns() {
    let broken = Scenario {
        variant: Variant::PublishBeforeSync,
        writers: 3,
        fail: None,
        truncate: None,
    };
    assert!(caught(broken), "the broken protocol passed the model check");
}

#[test]
fn the_checker_catches_a_leader_that_ignores_a_failed_sync() {
    let broken = Scenario {
        variant: Variant::IgnoreSyncFailure,
        writers: 3,
        fail: Some(0),
        truncate: None,
    };
    assert!(caught(broken), "the broken protocol passed the model check");
}

#[test]
fn the_checker_catches_a_truncation_published_after_the_log_is_unlocked() {
    let broken = Scenario {
        variant: Variant::PublishTruncationLate,
        writers: 3,
        fail: None,
        truncate: Some(1),
    };
    assert!(caught(broken), "the broken protocol passed the model check");
}
