//! Group commit on the simulator: failures with many waiters, disk full, and what survives a
//! power loss afterwards. The interleaving of threads varies from run to run; the checks are
//! invariants that hold for every interleaving.

use std::sync::{Arc, Barrier};

use walden_core::{
    AppendError, Config, Growable, Lsn, StorageError, StorageErrorKind, SyncPolicy, Wal,
};
use walden_sim::{CrashPlan, FaultAction, FaultSchedule, OpKind, SimStorage};
use walden_std::{GroupWindow, SharedWal, SyncUnderLock};

type Sim = SyncUnderLock<SimStorage>;

/// What one appending thread got: its acknowledged `(lsn, payload)`s and the error that
/// stopped it.
type ThreadOutcome = (Vec<(Lsn, Vec<u8>)>, AppendError<walden_sim::SimError>);

fn config() -> Config {
    Config::default()
        .with_segment_size(4096)
        .with_sync_policy(SyncPolicy::Manual)
}

fn open(sim: SimStorage) -> (SharedWal<Sim>, Lsn) {
    let mut scratch = vec![0u8; 4096];
    let (wal, report) =
        Wal::<Sim, Growable>::open(SyncUnderLock(sim), config(), &mut scratch).unwrap();
    (
        SharedWal::from_core(wal, SyncPolicy::Always, GroupWindow::default()).unwrap(),
        report.last_lsn,
    )
}

fn payload(thread: usize, seq: usize) -> Vec<u8> {
    format!("t{thread}-s{seq}").into_bytes()
}

/// Every thread appends until it gets an error; returns per thread the acknowledged
/// `(lsn, payload)` and the errors seen.
fn run_until_error(wal: &SharedWal<Sim>, threads: usize) -> Vec<ThreadOutcome> {
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let wal = wal.clone();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                let mut acked = Vec::new();
                for seq in 0.. {
                    let p = payload(t, seq);
                    match wal.append(&p) {
                        Ok(a) => {
                            assert!(a.durable, "Always returned a non-durable append");
                            assert!(wal.durable_lsn() >= a.last);
                            acked.push((a.first, p));
                        }
                        Err(e) => return (acked, e),
                    }
                    assert!(seq < 100_000, "no fault fired");
                }
                unreachable!()
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

/// After the power loss nothing unsynced survives; every acknowledged record must.
fn check_acknowledged_survive(sim: &SimStorage, results: &[ThreadOutcome]) {
    let after = sim.crash(&CrashPlan::lose_everything());
    let (wal, last) = open(after);
    let mut reader = wal.reader(Lsn(1)).unwrap();
    let mut found = std::collections::BTreeMap::new();
    while let Some(r) = reader.read_next().unwrap() {
        found.insert(r.lsn, r.payload.to_vec());
    }
    assert_eq!(found.len() as u64, last.0);
    for (acked, _) in results {
        for (lsn, p) in acked {
            assert_eq!(found.get(lsn), Some(p), "acknowledged LSN {lsn} lost");
        }
    }
    // The log stays usable after the reopen.
    let a = wal.append(b"after").unwrap();
    assert!(a.durable);
}

#[test]
fn failed_sync_with_many_waiters_fails_them_all() {
    for nth in [0u64, 3, 17] {
        // Open once to learn how many syncs the open itself makes, then schedule the fault
        // `nth` syncs after those, on the same storage.
        let (wal, _) = open(SimStorage::new());
        let mut sim = wal.into_core().ok().unwrap().into_storage().0;
        let (again, _) = open(sim.clone());
        let base = again
            .into_core()
            .ok()
            .unwrap()
            .into_storage()
            .0
            .trace()
            .iter()
            .filter(|e| e.op.kind() == OpKind::Sync)
            .count() as u64;
        sim.set_faults(FaultSchedule::new().nth(
            OpKind::Sync,
            base + nth,
            FaultAction::SyncLosesData,
        ));
        let mut scratch = vec![0u8; 4096];
        let (core, _) =
            Wal::<Sim, Growable>::open(SyncUnderLock(sim), config(), &mut scratch).unwrap();
        let wal = SharedWal::from_core(core, SyncPolicy::Always, GroupWindow::default()).unwrap();
        let results = run_until_error(&wal, 8);
        let storage_errors = results
            .iter()
            .filter(|(_, e)| matches!(e, AppendError::Storage(_)))
            .count();
        assert!(
            storage_errors <= 1,
            "only the leader sees the storage error"
        );
        for (_, e) in &results {
            assert!(matches!(
                e,
                AppendError::Storage(_) | AppendError::Poisoned(_)
            ));
        }
        assert!(wal.poisoned().is_some());
        assert!(wal.sync().is_err(), "a later sync must not succeed");
        let durable = wal.durable_lsn();
        let sim = wal.into_core().ok().unwrap().into_storage().0;
        check_acknowledged_survive(&sim, &results);
        // Nothing above the published durable LSN may have been acknowledged.
        for (acked, _) in &results {
            assert!(acked.iter().all(|(l, _)| *l <= durable));
        }
    }
}

#[test]
fn disk_full_is_a_clear_error_and_a_reopen_works() {
    let mut sim = SimStorage::new();
    sim.set_faults(FaultSchedule::new().nth(
        OpKind::Write,
        40,
        FaultAction::Fail(StorageErrorKind::NoSpace),
    ));
    let (wal, _) = open(sim);
    let results = run_until_error(&wal, 4);
    let no_space = results.iter().any(|(_, e)| match e {
        AppendError::Storage(f) => f.error.kind() == StorageErrorKind::NoSpace,
        _ => false,
    });
    assert!(no_space, "someone must see NoSpace: {results:?}");
    let p = wal.poisoned().unwrap();
    assert_eq!(p.kind, StorageErrorKind::NoSpace);
    let sim = wal.into_core().ok().unwrap().into_storage().0;
    // "Space freed": the reopened storage has no fault schedule.
    check_acknowledged_survive(&sim, &results);
}

#[test]
fn explicit_sync_and_never_policy_on_the_simulator() {
    let mut scratch = vec![0u8; 4096];
    let (core, _) =
        Wal::<Sim, Growable>::open(SyncUnderLock(SimStorage::new()), config(), &mut scratch)
            .unwrap();
    let wal = SharedWal::from_core(core, SyncPolicy::Manual, GroupWindow::default()).unwrap();
    let a = wal.append_batch(&[b"a", b"b", b"c"]).unwrap();
    assert!(!a.durable);
    assert_eq!((a.first, a.last), (Lsn(1), Lsn(3)));
    assert!(wal.clone().into_core().is_err(), "two handles exist");
    assert_eq!(wal.wait_durable(Lsn(2)).unwrap(), Lsn(3));
    assert_eq!(wal.wait_durable(Lsn(99)).unwrap(), Lsn(3));
    let b = wal.append(b"d").unwrap();
    assert!(!b.durable);
    let sim = wal.into_core().ok().unwrap().into_storage().0;
    let (wal, last) = open(sim.crash(&CrashPlan::lose_everything()));
    assert_eq!(
        last,
        Lsn(3),
        "the synced batch survives, the unsynced record does not"
    );
    drop(wal);
}
