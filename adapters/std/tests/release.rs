//! Dropping the last `SharedWal` handle releases the log (its directory lock with it) before
//! `drop` returns, even while the syncer or the interval flusher is in the middle of a sync:
//! an immediate reopen on the same thread never sees `Error::Locked`. The mechanism (the gate)
//! has a deterministic test and a broken variant in `walden-std`'s unit tests; this drives the
//! real threads many times, and any `Locked` fails it (nothing here waits or retries).

use core::time::Duration;

use walden_core::{Config, SyncPolicy};
use walden_std::{Options, SharedWal, Wal};

fn options(policy: SyncPolicy) -> Options {
    Options::from(Config::default().with_segment_size(64 * 1024)).with_sync_policy(policy)
}

#[test]
fn dropping_the_last_handle_during_a_syncer_sync_releases_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..100u32 {
        let (wal, _) = SharedWal::open(dir.path(), options(SyncPolicy::Manual))
            .unwrap_or_else(|e| panic!("reopen {i}: {e}"));
        // Starts the syncer on a sync of its own, then lets go at once.
        let _ = wal.append_then(&[&i.to_le_bytes()], |_| {}).unwrap();
        drop(wal);
    }
    let (wal, _) = Wal::open(dir.path(), Options::default()).unwrap();
    assert!(wal.last_lsn() <= walden_core::Lsn(100));
}

#[test]
fn dropping_the_last_handle_during_a_flusher_sync_releases_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let policy = SyncPolicy::Interval(Duration::from_micros(50));
    for i in 0..100u32 {
        let (wal, _) = SharedWal::open(dir.path(), options(policy))
            .unwrap_or_else(|e| panic!("reopen {i}: {e}"));
        let _ = wal.append(&i.to_le_bytes()).unwrap();
        std::thread::yield_now();
        drop(wal);
    }
}

#[test]
fn into_core_succeeds_while_the_syncer_is_busy() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..50u32 {
        let (wal, _) = SharedWal::open(dir.path(), options(SyncPolicy::Manual)).unwrap();
        let _ = wal.append_then(&[&i.to_le_bytes()], |_| {}).unwrap();
        let core = wal
            .into_core()
            .unwrap_or_else(|_| panic!("{i}: the only handle must give the core log back"));
        drop(core);
    }
}
