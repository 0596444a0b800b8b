//! Regressions found by an adversarial review of `SharedWal`'s concurrency and durability: a
//! failed early seal sync hidden from a concurrent group commit (fsyncgate), a panicking
//! `Waker` that lost the other watchers and killed the syncer, and a last handle dropped in
//! another log's durability callback that left its log locked.

use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::{AtomicBool, Ordering};
use core::task::{Context, Poll, Waker};
use core::time::Duration;
use std::io;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::task::Wake;

use walden_core::{Config, Lsn, SyncPolicy};
use walden_std::{
    Before, DurableError, DurableFuture, FileSystem, Hooked, Hooks, Job, JobStep, Op, Options,
    OsFs, SharedWal, Worker,
};

/// How long a test waits for something that, with the bug, never happens: it then fails
/// instead of hanging. Never waited in full when the code is right.
const NEVER: Duration = Duration::from_secs(20);

/// `set` once, `wait` until set.
#[derive(Default)]
struct Latch(Mutex<bool>, Condvar);

impl Latch {
    fn set(&self) {
        *self.0.lock().unwrap() = true;
        self.1.notify_all();
    }

    fn wait(&self) {
        let mut g = self.0.lock().unwrap();
        while !*g {
            g = self.1.wait(g).unwrap();
        }
    }

    fn is_set(&self) -> bool {
        *self.0.lock().unwrap()
    }
}

/// Background jobs started and finished.
#[derive(Default)]
struct Jobs(Mutex<(usize, usize)>, Condvar);

impl Jobs {
    /// Waits until every job started so far has finished.
    fn wait_all_done(&self) {
        let mut g = self.0.lock().unwrap();
        while g.0 != g.1 {
            g = self.1.wait(g).unwrap();
        }
    }
}

fn manual_options() -> Options {
    Options {
        config: Config::default().with_sync_policy(SyncPolicy::Manual),
        ..Options::default()
    }
}

// ---------------------------------------------------------------------------------------------
// 1. fsyncgate: an early seal sync beside a group-commit leader's detached sync.
// ---------------------------------------------------------------------------------------------

/// Holds the group-commit leader (thread "leader") inside its `fdatasync` until released. An
/// early sync (thread "walden-sync") of the same file while it is held fails with EIO and,
/// as Linux does for one file description (`errseq_t`), consumes the error: the leader's own
/// `fdatasync` then succeeds.
#[derive(Default)]
struct HeldLeader {
    leader_file: Mutex<Option<PathBuf>>,
    leader_in_sync: Latch,
    release_leader: Latch,
    /// An early sync of the leader's file ran while the leader was held, and failed.
    concurrent_failed: AtomicBool,
    /// The early-sync jobs ("walden-sync").
    jobs: Arc<Jobs>,
}

impl Hooks for HeldLeader {
    fn before(&self, op: &Op<'_>) -> Before {
        let Op::SyncData { path } = op else {
            return Before::Run;
        };
        match std::thread::current().name() {
            Some("leader") => {
                *self.leader_file.lock().unwrap() = Some(path.to_path_buf());
                self.leader_in_sync.set();
                self.release_leader.wait();
            }
            Some("walden-sync")
                if self.leader_in_sync.is_set()
                    && !self.release_leader.is_set()
                    && self.leader_file.lock().unwrap().as_deref() == Some(*path)
                    && !self.concurrent_failed.swap(true, Ordering::SeqCst) =>
            {
                return Before::Fail(io::Error::from_raw_os_error(5)); // EIO
            }
            _ => {}
        }
        Before::Run
    }

    fn spawn<F: FileSystem>(&self, inner: &F, name: &str, mut job: Job) -> io::Result<Worker> {
        if name != "walden-sync" {
            return inner.spawn(name, job);
        }
        self.jobs.0.lock().unwrap().0 += 1;
        let jobs = Arc::clone(&self.jobs);
        inner.spawn(
            name,
            Box::new(move || {
                let step = job();
                if matches!(step, JobStep::Done) {
                    jobs.0.lock().unwrap().1 += 1;
                    jobs.1.notify_all();
                }
                step
            }),
        )
    }
}

/// A group commit of LSN 1 is held inside its `fdatasync` (run without the log lock) while
/// other writers rotate: the seal of LSN 1's segment must not start that segment's sync early
/// on the same file description, where a failure it consumed would let the leader publish LSN
/// 1 durable although an `fdatasync` of its bytes failed. (Before the fix: the early sync
/// failed, the leader's sync returned `Ok(LSN 1)`, and only the next sync reported the error.)
#[test]
fn an_early_seal_sync_never_runs_beside_a_group_commit_of_its_segment() {
    let dir = tempfile::tempdir().unwrap();
    let fs = Hooked::new(OsFs, HeldLeader::default());
    let options = Options {
        config: Config::default()
            .with_early_rotation(true)
            .with_segment_size(64 << 10)
            .with_sync_policy(SyncPolicy::Manual),
        ..Options::default()
    };
    let (wal, _) = SharedWal::open_in(fs.clone(), dir.path(), options).unwrap();
    let first_segment = wal.segments().last().unwrap().id;
    assert_eq!(wal.append(&[1u8; 1000]).unwrap().last, Lsn(1));

    let leader = {
        let wal = wal.clone();
        std::thread::Builder::new()
            .name("leader".into())
            .spawn(move || wal.sync())
            .unwrap()
    };
    let hooks = fs.hooks();
    hooks.leader_in_sync.wait();

    // Other writers rotate meanwhile: the seal goes into the segment the leader is syncing
    // (a synced segment: its seal would start its sync early).
    let mut last = Lsn(1);
    while wal.segments().last().unwrap().id == first_segment {
        last = wal.append(&[2u8; 1000]).unwrap().last;
    }
    // Every early sync the rotation started has run (each runs on its own thread by itself).
    hooks.jobs.wait_all_done();
    hooks.release_leader.set();
    let outcome = leader.join().unwrap();
    let failed = hooks.concurrent_failed.load(Ordering::SeqCst);
    let next = wal.sync();

    assert!(
        !(failed && outcome.is_ok()),
        "the group commit reported {outcome:?} (durable {:?}) although an fdatasync of LSN 1's \
         bytes failed beside it (next sync: {next:?})",
        wal.durable_lsn()
    );
    assert!(
        !failed,
        "an early sync ran beside the leader's sync of the same file"
    );
    assert_eq!(outcome.unwrap(), Lsn(1));
    // The seal's sync was left to the next sync, which makes everything durable.
    assert_eq!(next.unwrap(), last);
    assert_eq!(wal.durable_lsn(), last);
    assert!(wal.poisoned().is_none());
}

// ---------------------------------------------------------------------------------------------
// 2. A panicking `Waker`.
// ---------------------------------------------------------------------------------------------

/// Holds every `fdatasync` of the log's syncer thread until `go` is set.
#[derive(Default)]
struct HoldSyncer {
    entered: Latch,
    go: Latch,
}

impl Hooks for HoldSyncer {
    fn before(&self, op: &Op<'_>) -> Before {
        if let Op::SyncData { .. } = op
            && std::thread::current().name() == Some("walden-syncer")
        {
            self.entered.set();
            self.go.wait();
        }
        Before::Run
    }
}

/// A `Waker` whose `wake` panics (a buggy executor, or one torn down).
struct PanickingWaker;

impl Wake for PanickingWaker {
    fn wake(self: Arc<Self>) {
        panic!("waker panicked");
    }
}

/// A `Waker` that reports each wake on a channel.
struct Notify(Mutex<mpsc::Sender<()>>);

impl Notify {
    fn waker() -> (Waker, mpsc::Receiver<()>) {
        let (tx, rx) = mpsc::channel();
        (Waker::from(Arc::new(Self(Mutex::new(tx)))), rx)
    }
}

impl Wake for Notify {
    fn wake(self: Arc<Self>) {
        let _ = self.0.lock().unwrap().send(());
    }
}

fn poll(f: &mut DurableFuture, waker: &Waker) -> Poll<Result<Lsn, DurableError>> {
    Pin::new(f).poll(&mut Context::from_waker(waker))
}

/// A future polled with a panicking `Waker` is answered in the same batch as others, by the
/// syncer thread: the panic must neither drop the other watchers of the batch nor end the
/// syncer, which answers every later watcher. (Before the fix: the syncer thread died, and a
/// later future was never answered.)
#[test]
fn a_panicking_waker_neither_loses_other_watchers_nor_kills_the_syncer() {
    let dir = tempfile::tempdir().unwrap();
    let fs = Hooked::new(OsFs, HoldSyncer::default());
    let (wal, _) = SharedWal::open_in(fs.clone(), dir.path(), manual_options()).unwrap();
    let _ = wal.append(b"one").unwrap();
    let mut f0 = wal.durable(Lsn(1));
    let bad = Waker::from(Arc::new(PanickingWaker));
    assert!(poll(&mut f0, &bad).is_pending());
    let mut f1 = wal.durable(Lsn(1));
    let (w1, woken1) = Notify::waker();
    assert!(poll(&mut f1, &w1).is_pending());
    // Both registered before the syncer's sync completes: answered in one batch.
    fs.hooks().entered.wait();
    fs.hooks().go.set();

    woken1
        .recv_timeout(NEVER)
        .expect("the other watcher of the batch is woken");
    assert!(matches!(poll(&mut f1, &w1), Poll::Ready(Ok(d)) if d >= Lsn(1)));
    // The panicking waker's future has its outcome too.
    assert!(matches!(poll(&mut f0, Waker::noop()), Poll::Ready(Ok(d)) if d >= Lsn(1)));

    // A later watcher, answered only by the syncer thread.
    let _ = wal.append(b"two").unwrap();
    let mut f2 = wal.durable(Lsn(2));
    let (w2, woken2) = Notify::waker();
    if poll(&mut f2, &w2).is_pending() {
        woken2
            .recv_timeout(NEVER)
            .expect("the syncer survived the panic and answers later watchers");
    }
    assert!(matches!(poll(&mut f2, &w2), Poll::Ready(Ok(d)) if d >= Lsn(2)));
}

// ---------------------------------------------------------------------------------------------
// 3. The last handle of one log dropped in a durability callback of another.
// ---------------------------------------------------------------------------------------------

/// A durability callback of log A runs on A's syncer, inside a visit of A. If it drops the
/// last handle of log B while B's syncer is in a sync, the drop must wait for it and release B
/// (its directory lock) before it returns, as a drop on any thread does: only a visit of B
/// itself is exempt. (Before the fix: the drop returned at once, and a reopen got `Locked`.)
#[test]
fn dropping_another_logs_last_handle_in_a_callback_releases_it() {
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let fs_b = Hooked::new(OsFs, HoldSyncer::default());
    let (b, _) = SharedWal::open_in(fs_b.clone(), dir_b.path(), manual_options()).unwrap();
    let _ = b.append(b"b1").unwrap();
    let _fb = b.durable(Lsn(1));
    fs_b.hooks().entered.wait(); // B's syncer is in its fdatasync, visiting B

    let (a, _) = SharedWal::open(dir_a.path(), manual_options()).unwrap();
    let _ = a.append(b"a1").unwrap();
    let (dropping_tx, dropping) = mpsc::channel();
    let (dropped_tx, dropped) = mpsc::channel();
    a.on_durable(Lsn(1), move |_| {
        dropping_tx.send(()).unwrap();
        drop(b); // the last handle of B
        dropped_tx.send(()).unwrap();
    });
    dropping.recv().unwrap();
    // B's syncer is still held: the drop cannot have released B, so it must still be waiting.
    // (A bounded wait, for a drop that returns at once with the bug; with the fix it always
    // times out, as nothing lets B's syncer go on yet.)
    let early = dropped.recv_timeout(Duration::from_millis(200));
    fs_b.hooks().go.set();
    assert!(
        early.is_err(),
        "the drop returned while B's syncer still held B"
    );
    dropped.recv().unwrap();
    // B's last handle is gone: its lock is free (the documented promise).
    let reopened = SharedWal::open(dir_b.path(), manual_options());
    assert!(
        reopened.is_ok(),
        "reopen after the last handle was dropped: {:?}",
        reopened.err()
    );
}

/// Control: the directory lock does refuse a second handle, and is free once the last goes.
#[test]
fn two_handles_on_one_directory_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = SharedWal::open(dir.path(), manual_options()).unwrap();
    let second = SharedWal::open(dir.path(), manual_options());
    assert!(
        matches!(second, Err(walden_std::Error::Locked { .. })),
        "{:?}",
        second.err()
    );
    assert!(walden_std::Wal::open(dir.path(), manual_options()).is_err());
    drop(a);
    assert!(SharedWal::open(dir.path(), manual_options()).is_ok());
}
