//! Stress of the group-commit handoff on real files: many durable appenders, rotations under
//! way, concurrent readers, a retention thread, and the policies that do not sync on every
//! append. The argument for why the handoff is correct is in `src/group.rs`; these tests
//! exercise every transition it names (leader election, waiter wake-up, rotation syncing
//! under the log lock while a detached sync runs, `truncate_back` taking the leader role).

use core::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};

use walden_core::{Config, Lsn};
use walden_std::{GroupWindow, Options, SharedWal, SyncPolicy, Wal};

fn small() -> Options {
    Options::from(Config::default().with_segment_size(32 * 1024))
}

#[test]
fn many_durable_writers_with_rotation_readers_and_retention() {
    const THREADS: usize = 16;
    const PER_THREAD: usize = 300;
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = SharedWal::open(dir.path(), small()).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let barrier = Arc::new(Barrier::new(THREADS + 1));
    let writers: Vec<_> = (0..THREADS)
        .map(|t| {
            let wal = wal.clone();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                let mut mine = Vec::new();
                for i in 0..PER_THREAD {
                    let p = format!("{t}/{i}");
                    let a = if i % 5 == 0 {
                        wal.append_batch(&[p.as_bytes(), p.as_bytes()]).unwrap()
                    } else {
                        wal.append(p.as_bytes()).unwrap()
                    };
                    assert!(a.durable);
                    // Acknowledged means published durable, never ahead of it.
                    assert!(wal.durable_lsn() >= a.last);
                    mine.push((a.first, a.last, p));
                }
                mine
            })
        })
        .collect();
    // A tailing reader: sees only complete records, in order, with no gaps.
    let reader = {
        let (wal, done) = (wal.clone(), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut r = wal.reader(Lsn(1)).unwrap();
            let mut seen = 0u64;
            loop {
                let finished = done.load(Ordering::Acquire);
                while let Some(rec) = r.read_next().unwrap() {
                    seen += 1;
                    assert_eq!(rec.lsn, Lsn(seen));
                    assert!(core::str::from_utf8(rec.payload).unwrap().contains('/'));
                }
                if finished {
                    return seen;
                }
                std::thread::yield_now();
            }
        })
    };
    barrier.wait();
    let mut all = Vec::new();
    for w in writers {
        all.extend(w.join().unwrap());
    }
    done.store(true, Ordering::Release);
    let seen = reader.join().unwrap();
    let last = wal.last_lsn();
    assert_eq!(seen, last.0);
    let expected = (THREADS * PER_THREAD + THREADS * PER_THREAD / 5) as u64;
    assert_eq!(last.0, expected);
    let m = wal.metrics();
    assert_eq!(m.appends, expected);
    assert!(m.group_commits >= 1 && m.rotations >= 1, "{m:?}");
    let json = serde_json::to_string(&m).unwrap();
    assert!(json.contains("append_to_durable_ns"));
    drop(wal);

    let (wal, report) = Wal::open(dir.path(), small()).unwrap();
    assert_eq!(report.last_lsn, last);
    let log = wal.read_all_from(Lsn(1)).unwrap();
    for (first, last, p) in all {
        for lsn in first.0..=last.0 {
            assert_eq!(log[lsn as usize - 1].1, p.as_bytes());
        }
    }
}

#[test]
fn retention_and_rewind_while_appending() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = SharedWal::open(dir.path(), small()).unwrap();
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let wal = wal.clone();
            std::thread::spawn(move || {
                for i in 0..400u32 {
                    let _ = wal.append(format!("{t}:{i:0200}").as_bytes()).unwrap();
                }
            })
        })
        .collect();
    let mut removed = 0;
    while removed < 3 {
        let last = wal.last_lsn();
        removed += wal.truncate_front(Lsn(last.0.saturating_sub(50))).unwrap();
        std::thread::yield_now();
        if writers.iter().all(|w| w.is_finished()) {
            break;
        }
    }
    for w in writers {
        w.join().unwrap();
    }
    let last = wal.last_lsn();
    wal.truncate_back(Lsn(last.0 - 10)).unwrap();
    assert_eq!(wal.durable_lsn(), Lsn(last.0 - 10));
    let a = wal.append(b"after rewind").unwrap();
    assert_eq!(a.first, Lsn(last.0 - 9));
    assert!(a.durable);
    let first = wal.first_lsn();
    drop(wal);
    let (wal, report) = Wal::open(dir.path(), small()).unwrap();
    assert_eq!(report.last_lsn, Lsn(last.0 - 9));
    assert_eq!(wal.first_lsn(), first);
}

#[test]
fn policies_that_do_not_sync_every_append() {
    let dir = tempfile::tempdir().unwrap();
    // Never: nothing durable until asked.
    {
        let (wal, _) =
            SharedWal::open(dir.path(), small().with_sync_policy(SyncPolicy::Manual)).unwrap();
        let a = wal.append(b"x").unwrap();
        assert!(!a.durable);
        assert_eq!(wal.sync().unwrap(), a.last);
        assert_eq!(wal.durable_lsn(), a.last);
    }
    // EveryBytes: the append that crosses the threshold returns durable.
    {
        let (wal, _) = SharedWal::open(
            dir.path(),
            small().with_sync_policy(SyncPolicy::EveryBytes(1328)),
        )
        .unwrap();
        let mut crossed = 0;
        for _ in 0..10 {
            if wal.append(&[7; 300]).unwrap().durable {
                crossed += 1;
            }
        }
        // 332 bytes each (300 and a 32-byte header): the 4th and the 8th append reach 1328
        // bytes since the last sync.
        assert_eq!(crossed, 2);
    }
    // Interval: the flusher makes everything durable eventually; wait for it without a timer.
    {
        let (wal, _) = SharedWal::open(
            dir.path(),
            small().with_sync_policy(SyncPolicy::Interval(core::time::Duration::from_millis(5))),
        )
        .unwrap();
        let a = wal.append(b"later").unwrap();
        while wal.durable_lsn() < a.last {
            std::thread::yield_now();
        }
        assert!(wal.metrics().group_commits >= 1);
    }
    // A group window still acknowledges only after the sync.
    {
        let options = small().with_group_window(GroupWindow {
            max_wait: core::time::Duration::from_micros(200),
            min_bytes: 64,
            ..GroupWindow::default()
        });
        let (wal, _) = SharedWal::open(dir.path(), options).unwrap();
        let a = wal.append(&[1; 100]).unwrap();
        assert!(a.durable && wal.durable_lsn() >= a.last);
    }
}

/// `truncate_back` and explicit `sync` race parked durability waiters, so the leader role is
/// handed to an `exclusive` caller and back to waiters, and waiters whose records a rewind
/// removed are answered. Checks liveness (a watchdog) and that every record acknowledged
/// durable survives unless a rewind that could have removed it overlapped its append.
#[test]
fn rewinds_and_syncs_race_parked_waiters() {
    use core::sync::atomic::AtomicU64;
    use std::sync::Mutex;
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = SharedWal::open(dir.path(), small()).unwrap();
    let clock = Arc::new(AtomicU64::new(0));
    // (started, completed, rewound to)
    let rewinds = Arc::new(Mutex::new(Vec::<(u64, u64, Lsn)>::new()));
    let done = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..8)
        .map(|t| {
            let (wal, clock) = (wal.clone(), Arc::clone(&clock));
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                for i in 0..300u32 {
                    let payload = format!("{t}/{i}");
                    let started = clock.fetch_add(1, Ordering::SeqCst);
                    let a = wal.append(payload.as_bytes()).unwrap();
                    if a.durable {
                        assert!(wal.durable_lsn() >= a.last || wal.last_lsn() < a.last);
                        acked.push((started, a.last, payload));
                    }
                }
                acked
            })
        })
        .collect();
    let rewinder = {
        let (wal, clock, rewinds, done) = (
            wal.clone(),
            Arc::clone(&clock),
            Arc::clone(&rewinds),
            Arc::clone(&done),
        );
        std::thread::spawn(move || {
            // Bounded, so the writers' last appends run with nobody else to wake them.
            for _ in 0..15 {
                if done.load(Ordering::Acquire) {
                    break;
                }
                let to = Lsn(wal.last_lsn().0.saturating_sub(2));
                let started = clock.fetch_add(1, Ordering::SeqCst);
                match wal.truncate_back(to) {
                    Ok(()) => {
                        let completed = clock.fetch_add(1, Ordering::SeqCst);
                        rewinds.lock().unwrap().push((started, completed, to));
                    }
                    // Rewinding into a sealed segment or below the first record is refused.
                    Err(e) => assert!(wal.poisoned().is_none(), "{e}"),
                }
                std::thread::sleep(core::time::Duration::from_millis(2));
            }
        })
    };
    let syncer = {
        let (wal, done) = (wal.clone(), Arc::clone(&done));
        std::thread::spawn(move || {
            for _ in 0..100 {
                if done.load(Ordering::Acquire) {
                    break;
                }
                let d = wal.sync().unwrap();
                assert!(d <= wal.last_lsn().max(d));
            }
        })
    };
    // Watchdog: a lost wake-up or a leader role never handed back hangs a thread.
    let (tx, rx) = std::sync::mpsc::channel();
    let finished = Arc::clone(&done);
    std::thread::spawn(move || {
        let acked: Vec<_> = writers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect();
        finished.store(true, Ordering::Release);
        rewinder.join().unwrap();
        syncer.join().unwrap();
        let _ = tx.send(acked);
    });
    let acked = rx
        .recv_timeout(core::time::Duration::from_secs(120))
        .expect("hung: a waiter was never woken or the leader role never handed on");
    let last = wal.sync().unwrap();
    assert_eq!(last, wal.last_lsn());
    drop(wal);

    let (wal, report) = SharedWal::open(dir.path(), small()).unwrap();
    assert_eq!(report.last_lsn, last);
    let mut present = std::collections::HashMap::new();
    let mut r = wal.reader(wal.first_lsn()).unwrap();
    while let Some(rec) = r.read_next().unwrap() {
        present.insert(rec.lsn, rec.payload.to_vec());
    }
    let rewinds = rewinds.lock().unwrap();
    let mut required = 0;
    for (started, lsn, payload) in acked {
        // A rewind below `lsn` that had not completed before the append started may have
        // removed it (and a later append may have reused the LSN).
        let exposed = rewinds
            .iter()
            .any(|&(_, done, to)| to < lsn && done >= started);
        if exposed || lsn < wal.first_lsn() {
            continue;
        }
        required += 1;
        assert_eq!(
            present.get(&lsn).map(Vec::as_slice),
            Some(payload.as_bytes()),
            "acknowledged record {lsn:?} lost"
        );
    }
    eprintln!(
        "{} rewinds, {required} acknowledged records checked",
        rewinds.len()
    );
    assert!(required > 0, "the test checked nothing");
    assert!(!rewinds.is_empty(), "no rewind raced the writers");
}
