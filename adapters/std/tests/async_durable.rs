//! Durability futures and callbacks under two executors (tokio and `futures::executor`), a log
//! shared between two runtimes at once, poisoning, and the tailing reader across rotation and
//! both truncations. Every wait that could hang is bounded by a watchdog that fails the test;
//! no outcome depends on timing.

use core::sync::atomic::{AtomicUsize, Ordering};
use core::time::Duration;
use std::sync::{Arc, mpsc};

use futures::StreamExt;
use walden_core::{Config, Growable, Lsn, SyncPolicy, Wal as CoreWal};
use walden_sim::{FaultAction, FaultSchedule, OpKind, SimStorage};
use walden_std::{DurableError, GroupWindow, Options, SharedWal, SyncUnderLock, TailEvent};

/// Runs `f` on a thread and fails the test if it does not finish within `limit` (a hang is the
/// failure being tested for; the bound never decides a passing outcome).
fn watchdog<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .expect("deadlock: the test did not finish")
}

fn open(dir: &std::path::Path, durability: SyncPolicy) -> SharedWal {
    let config = Config::default().with_segment_size(64 * 1024);
    let options = Options::from(config).with_sync_policy(durability);
    SharedWal::open(dir, options).unwrap().0
}

fn reopen_all(dir: &std::path::Path) -> Vec<(Lsn, Vec<u8>)> {
    let (wal, _) = walden_std::Wal::open(dir, Options::default()).unwrap();
    wal.read_all_from(wal.first_lsn()).unwrap()
}

#[test]
fn futures_resolve_under_tokio() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path(), SyncPolicy::Manual);
    let w = wal.clone();
    let acked = watchdog(Duration::from_secs(60), move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        rt.block_on(async move {
            let tasks: Vec<_> = (0..16u32)
                .map(|t| {
                    let w = w.clone();
                    tokio::spawn(async move {
                        let mut acked = Vec::new();
                        for i in 0..50u32 {
                            let p = format!("t{t}-{i}").into_bytes();
                            let (a, durable) = w.append_durable(&[&p]).unwrap();
                            let d = durable.await.unwrap();
                            assert!(d >= a.last);
                            acked.push((a.first, p));
                        }
                        acked
                    })
                })
                .collect();
            let mut all = Vec::new();
            for t in tasks {
                all.extend(t.await.unwrap());
            }
            all
        })
    });
    assert_eq!(acked.len(), 800);
    assert!(wal.durable_lsn() >= Lsn(800));
    drop(wal);
    let back = reopen_all(dir.path());
    for (lsn, p) in acked {
        assert_eq!(back[(lsn.0 - 1) as usize], (lsn, p));
    }
}

#[test]
fn futures_resolve_under_a_bare_executor() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path(), SyncPolicy::Manual);
    let w = wal.clone();
    watchdog(Duration::from_secs(60), move || {
        futures::executor::block_on(async {
            let mut pending = Vec::new();
            for i in 0..100u32 {
                let (a, f) = w.append_durable(&[&i.to_le_bytes()]).unwrap();
                pending.push((a.last, f));
            }
            // Awaited in reverse: order of awaiting does not matter.
            for (lsn, f) in pending.into_iter().rev() {
                assert!(f.await.unwrap() >= lsn);
            }
            // Waiting for an LSN that is already durable resolves at once.
            assert!(w.durable(Lsn(1)).await.unwrap() >= Lsn(100));
        });
    });
    assert_eq!(wal.durable_lsn(), Lsn(100));
}

#[test]
fn callbacks_run_once_each() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path(), SyncPolicy::Manual);
    let fired = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::channel();
    for i in 0..200u32 {
        let (fired, tx) = (Arc::clone(&fired), tx.clone());
        let _ = wal
            .append_then(&[&i.to_le_bytes()], move |outcome| {
                fired.fetch_add(1, Ordering::SeqCst);
                tx.send(outcome).unwrap();
            })
            .unwrap();
    }
    for _ in 0..200 {
        let outcome = rx.recv_timeout(Duration::from_secs(60)).expect("callback");
        assert!(outcome.unwrap() >= Lsn(1));
    }
    // A sync answers nothing twice.
    wal.sync().unwrap();
    assert_eq!(fired.load(Ordering::SeqCst), 200);
    assert!(rx.try_recv().is_err());
}

/// One log, two runtimes on their own threads (a multi-thread tokio runtime and a
/// `futures::executor::LocalPool`), appending and awaiting at the same time. sled's
/// `flush_async` deadlocked in this setting; here neither runtime is needed by the other.
#[test]
fn one_log_shared_by_two_runtimes_does_not_deadlock() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path(), SyncPolicy::Manual);
    let (a, b) = (wal.clone(), wal.clone());
    let total = watchdog(Duration::from_secs(60), move || {
        let tokio_side = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .build()
                .unwrap();
            rt.block_on(async move {
                let tasks: Vec<_> = (0..8)
                    .map(|_| {
                        let a = a.clone();
                        tokio::spawn(async move {
                            for _ in 0..100 {
                                let (ap, f) = a.append_durable(&[b"tokio"]).unwrap();
                                assert!(f.await.unwrap() >= ap.last);
                            }
                        })
                    })
                    .collect();
                for t in tasks {
                    t.await.unwrap();
                }
                800
            })
        });
        let pool_side = std::thread::spawn(move || {
            let mut pool = futures::executor::LocalPool::new();
            let spawner = pool.spawner();
            let done = Arc::new(AtomicUsize::new(0));
            for _ in 0..8 {
                let (b, done) = (b.clone(), Arc::clone(&done));
                futures::task::LocalSpawnExt::spawn_local(&spawner, async move {
                    for _ in 0..100 {
                        let (ap, f) = b.append_durable(&[b"local"]).unwrap();
                        assert!(f.await.unwrap() >= ap.last);
                        done.fetch_add(1, Ordering::SeqCst);
                    }
                })
                .unwrap();
            }
            pool.run();
            done.load(Ordering::SeqCst)
        });
        tokio_side.join().unwrap() + pool_side.join().unwrap()
    });
    assert_eq!(total, 1600);
    assert!(wal.durable_lsn() >= Lsn(1600));
}

type Sim = SyncUnderLock<SimStorage>;

#[test]
fn a_failed_sync_resolves_pending_futures_with_the_poison() {
    let wal = failing_log();
    let outcomes = watchdog(Duration::from_secs(60), move || {
        futures::executor::block_on(async {
            let mut outcomes = Vec::new();
            for i in 0..20u32 {
                match wal.append_durable(&[&i.to_le_bytes()]) {
                    Ok((_, f)) => outcomes.push(f.await),
                    Err(_) => break,
                }
            }
            outcomes
        })
    });
    let poisoned = outcomes
        .iter()
        .filter(|o| matches!(o, Err(DurableError::Poisoned(_))))
        .count();
    assert!(poisoned >= 1, "no future saw the failed sync: {outcomes:?}");
    // Once poisoned, nothing after is reported durable.
    let first_bad = outcomes.iter().position(|o| o.is_err()).unwrap();
    assert!(outcomes[first_bad..].iter().all(|o| o.is_err()));
}

fn record(e: TailEvent) -> (Lsn, Vec<u8>) {
    match e {
        TailEvent::Record { lsn, payload } => (lsn, payload),
        other => panic!("expected a record, got {other:?}"),
    }
}

/// The blocking tail waits for records appended by another thread and crosses rotations.
#[test]
fn tail_follows_appends_across_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path(), SyncPolicy::Manual);
    let mut tail = wal.tail(Lsn(1));
    let w = wal.clone();
    // 2000 records of 100 bytes cross three 64 KiB segments.
    let writer = std::thread::spawn(move || {
        for i in 0..2000u32 {
            let _ = w.append(&[i as u8; 100]).unwrap();
        }
    });
    let got = watchdog(Duration::from_secs(60), move || {
        (0..2000)
            .map(|_| record(tail.next_event().unwrap()))
            .collect::<Vec<_>>()
    });
    writer.join().unwrap();
    assert!(wal.segments().len() >= 3, "the test should cross rotations");
    for (i, (lsn, p)) in got.into_iter().enumerate() {
        assert_eq!(lsn, Lsn(i as u64 + 1));
        assert_eq!(p, vec![i as u8; 100]);
    }
}

#[test]
fn tail_reports_records_missed_to_truncate_front() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path(), SyncPolicy::Always);
    for i in 0..2000u32 {
        let _ = wal.append(&[i as u8; 100]).unwrap();
    }
    let mut tail = wal.tail(Lsn(1));
    assert_eq!(record(tail.next_event().unwrap()).0, Lsn(1));
    wal.truncate_front(Lsn(1500)).unwrap();
    let first = wal.first_lsn();
    assert!(first > Lsn(2));
    // Records the reader had copied before the truncation may still be delivered (they were
    // in the log when read); then it reports exactly the rest as missed, then goes on.
    let mut next = Lsn(2);
    loop {
        match tail.next_event().unwrap() {
            TailEvent::Record { lsn, .. } => {
                assert_eq!(lsn, next);
                next = lsn.next();
            }
            TailEvent::Missed { first: from, last } => {
                assert_eq!((from, last), (next, first.prev()));
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(next < first);
    assert_eq!(record(tail.next_event().unwrap()).0, first);
}

#[test]
fn tail_reports_a_rewind_and_reads_the_new_records() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path(), SyncPolicy::Always);
    for i in 1..=10u8 {
        let _ = wal.append(&[i]).unwrap();
    }
    let mut tail = wal.tail(Lsn(1));
    for i in 1..=8u8 {
        assert_eq!(
            record(tail.next_event().unwrap()),
            (Lsn(u64::from(i)), vec![i])
        );
    }
    wal.truncate_back(Lsn(5)).unwrap();
    let _ = wal.append(&[60]).unwrap();
    assert_eq!(
        tail.next_event().unwrap(),
        TailEvent::Rewound { to: Lsn(5) }
    );
    assert_eq!(record(tail.next_event().unwrap()), (Lsn(6), vec![60]));
    // A truncation above what was delivered is not a rewind for this tail, but it still
    // must not deliver the removed records.
    for i in 7..=9u8 {
        let _ = wal.append(&[i]).unwrap();
    }
    wal.truncate_back(Lsn(7)).unwrap();
    let _ = wal.append(&[80]).unwrap();
    assert_eq!(record(tail.next_event().unwrap()), (Lsn(7), vec![7]));
    assert_eq!(record(tail.next_event().unwrap()), (Lsn(8), vec![80]));
}

#[test]
fn a_truncation_that_removed_nothing_delivered_is_no_rewind() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path(), SyncPolicy::Always);
    for i in 1..=10u8 {
        let _ = wal.append(&[i]).unwrap();
    }
    // Started past the end: it delivered nothing, so a cut below its start rewinds nothing.
    let mut ahead = wal.tail(Lsn(20));
    assert_eq!(ahead.try_next().unwrap(), None);
    // Started inside the log, it delivers 6 and 7; the cut at 4 is below its start.
    let mut inside = wal.tail(Lsn(6));
    for i in 6..=7u8 {
        assert_eq!(
            record(inside.next_event().unwrap()),
            (Lsn(u64::from(i)), vec![i])
        );
    }
    wal.truncate_back(Lsn(4)).unwrap();
    assert_eq!(ahead.try_next().unwrap(), None);
    assert_eq!(ahead.position(), Lsn(20));
    // It delivered records above the cut: a rewind, and it goes on from where it started.
    assert_eq!(
        inside.try_next().unwrap(),
        Some(TailEvent::Rewound { to: Lsn(4) })
    );
    assert_eq!(inside.position(), Lsn(6));
    for i in 5..=25u8 {
        let _ = wal.append(&[100 + i]).unwrap();
    }
    assert_eq!(record(ahead.next_event().unwrap()), (Lsn(20), vec![120]));
    assert_eq!(record(inside.next_event().unwrap()), (Lsn(6), vec![106]));
    // A second cut below its start but after it delivered nothing new: no second rewind.
    let mut fresh = wal.tail(Lsn(30));
    wal.truncate_back(Lsn(3)).unwrap();
    assert_eq!(fresh.try_next().unwrap(), None);
    assert_eq!(fresh.position(), Lsn(30));
}

/// The tail as a `Stream` under tokio: a writer task and a reader task, with a rewind in the
/// middle.
#[test]
fn tail_is_a_stream() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path(), SyncPolicy::Manual);
    watchdog(Duration::from_secs(60), move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async move {
            let mut tail = wal.tail(Lsn(1));
            let w = wal.clone();
            let writer = tokio::spawn(async move {
                for i in 0..300u32 {
                    let (_, f) = w.append_durable(&[&i.to_le_bytes()]).unwrap();
                    f.await.unwrap();
                    tokio::task::yield_now().await;
                }
            });
            let mut n = 0u32;
            while n < 300 {
                let (lsn, p) = record(tail.next().await.unwrap().unwrap());
                assert_eq!(lsn, Lsn(u64::from(n) + 1));
                assert_eq!(p, n.to_le_bytes());
                n += 1;
            }
            writer.await.unwrap();
        });
    });
}

/// A log whose first sync after opening fails (it is poisoned then), shared.
fn failing_log() -> SharedWal<Sim> {
    let mut sim = SimStorage::new();
    // Recovery of a new log syncs a few times; fail the first sync after it.
    sim.set_faults(FaultSchedule::new().nth(OpKind::Sync, 3, FaultAction::SyncLosesData));
    let config = Config::default()
        .with_segment_size(4096)
        .with_sync_policy(SyncPolicy::Manual);
    let mut scratch = vec![0u8; 4096];
    let (core, _) =
        CoreWal::<Sim, Growable>::open(SyncUnderLock(sim), config, &mut scratch).unwrap();
    SharedWal::from_core(core, SyncPolicy::Manual, GroupWindow::default()).unwrap()
}

/// Appends and syncs until a sync fails; returns the last LSN appended.
fn poison(wal: &SharedWal<Sim>) -> Lsn {
    for i in 0..20u32 {
        let last = wal.append(&i.to_le_bytes()).unwrap().last;
        if wal.sync().is_err() {
            assert!(wal.poisoned().is_some());
            return last;
        }
    }
    panic!("no sync failed");
}

/// A tail waiting for the next record of a log that becomes poisoned is told, blocking or
/// async, once it has delivered every record the log holds (no record can follow until the
/// log is reopened); before, it waited forever.
#[test]
fn a_tail_waiting_on_a_log_that_is_poisoned_is_told() {
    let wal = failing_log();
    let mut blocking = wal.tail(Lsn(1));
    let mut stream = wal.tail(Lsn(1));
    let (started_tx, started) = mpsc::channel();
    let blocked = std::thread::spawn(move || {
        started_tx.send(()).unwrap();
        let mut records = 0u64;
        loop {
            match blocking.next_event().unwrap() {
                TailEvent::Record { .. } => records += 1,
                TailEvent::Poisoned(p) => return (records, p),
                other => panic!("unexpected {other:?}"),
            }
        }
    });
    started.recv().unwrap();
    let last = poison(&wal);
    let reason = wal.poisoned().unwrap();
    let (records, seen) = watchdog(Duration::from_secs(60), move || blocked.join().unwrap());
    assert_eq!((records, seen), (last.0, reason));
    let events = watchdog(Duration::from_secs(60), move || {
        futures::executor::block_on(async move {
            let mut events = Vec::new();
            for _ in 0..=last.0 + 1 {
                events.push(stream.next().await.unwrap().unwrap());
            }
            events
        })
    });
    for (i, e) in events.iter().enumerate().take(last.0 as usize) {
        assert!(
            matches!(e, TailEvent::Record { lsn, .. } if lsn.0 == i as u64 + 1),
            "{e:?}"
        );
    }
    // Every call after the last record says so again: nothing follows.
    for e in &events[last.0 as usize..] {
        assert_eq!(*e, TailEvent::Poisoned(reason));
    }
}

/// A durability callback that panics takes down neither the syncer nor the other watchers it
/// was answered with: before, the panic unwound out of the syncer thread (ending it, so no
/// later future or callback was ever answered) and dropped, unanswered, the watchers after it
/// in the same group.
#[test]
fn a_panicking_callback_does_not_strand_other_waiters() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path(), SyncPolicy::Manual);
    let (tx, rx) = mpsc::channel();
    // Answered together by one sync: the panicking callback, then another one.
    let tx2 = tx.clone();
    let _ = wal.append(b"a").unwrap();
    wal.on_durable(Lsn(1), |_| panic!("a callback that panics"));
    wal.on_durable(Lsn(1), move |o| tx2.send(o).unwrap());
    let (_, after) = wal.append_durable(&[b"b"]).unwrap();
    let _ = wal
        .append_then(&[b"c"], move |o| tx.send(o).unwrap())
        .unwrap();
    let got = watchdog(Duration::from_secs(60), move || {
        let after = futures::executor::block_on(after);
        let callbacks = [rx.recv().unwrap(), rx.recv().unwrap()];
        (after, callbacks)
    });
    assert!(got.0.is_ok_and(|d| d >= Lsn(2)), "{got:?}");
    assert!(got.1.iter().all(Result::is_ok), "{got:?}");
}

/// A tail does not keep the log open: when every other handle is dropped, a tail waiting for
/// the next record is woken, delivers what is left and reports `Closed` (blocking), a `Stream`
/// ends, and once the tails are dropped the directory reopens. Before, the waiting thread
/// waited forever and the log (and its lock) stayed open.
#[test]
fn a_tail_is_told_when_every_other_handle_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path(), SyncPolicy::Manual);
    let _ = wal.append(b"one").unwrap();
    let mut blocking = wal.tail(Lsn(1));
    let stream = wal.tail(Lsn(1));
    let (started_tx, started) = mpsc::channel();
    let blocked = std::thread::spawn(move || {
        let mut records = Vec::new();
        loop {
            match blocking.next_event().unwrap() {
                TailEvent::Record { lsn, .. } => {
                    records.push(lsn.0);
                    if records.len() == 1 {
                        started_tx.send(()).unwrap();
                    }
                }
                TailEvent::Closed => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        // Again, without waiting.
        assert_eq!(blocking.next_event().unwrap(), TailEvent::Closed);
        records
    });
    // The thread has delivered the first record and waits (or is about to) for the next.
    started.recv().unwrap();
    let _ = wal.append(b"two").unwrap();
    let reader = wal.reader(Lsn(1)).unwrap();
    drop(reader);
    drop(wal);
    let records = watchdog(Duration::from_secs(60), move || blocked.join().unwrap());
    assert_eq!(records, [1, 2]);
    // Still held by the stream's tail.
    assert!(matches!(
        SharedWal::open(dir.path(), Options::default()),
        Err(walden_std::Error::Locked { .. })
    ));
    let lsns = watchdog(Duration::from_secs(60), move || {
        futures::executor::block_on(async move {
            let mut stream = stream;
            let mut lsns = Vec::new();
            while let Some(e) = stream.next().await {
                match e.unwrap() {
                    TailEvent::Record { lsn, .. } => lsns.push(lsn.0),
                    other => panic!("unexpected {other:?}"),
                }
            }
            lsns
        })
    });
    assert_eq!(lsns, [1, 2]);
    // The last tail is gone: the log is released.
    let (wal, _) = SharedWal::open(dir.path(), Options::default()).unwrap();
    assert_eq!(wal.last_lsn(), Lsn(2));
}

/// While a handle other than tails is alive, a tail at the end of the log waits: dropping
/// some handles, or readers, is no close.
#[test]
fn a_tail_waits_while_any_other_handle_is_alive() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path(), SyncPolicy::Manual);
    let other = wal.clone();
    let mut tail = wal.tail(Lsn(1));
    let reader = wal.reader(Lsn(1)).unwrap();
    drop(wal);
    drop(reader);
    assert_eq!(tail.try_next().unwrap(), None);
    let _ = other.append(b"x").unwrap();
    assert!(matches!(
        tail.try_next().unwrap(),
        Some(TailEvent::Record { .. })
    ));
    assert_eq!(tail.try_next().unwrap(), None);
    drop(other);
    assert_eq!(tail.try_next().unwrap(), Some(TailEvent::Closed));
}
