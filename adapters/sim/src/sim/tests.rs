use alloc::vec;
use alloc::vec::Vec;

use walden_core::{Storage, StorageError, StorageErrorKind};

use super::*;
use crate::fault::FaultSchedule;
use crate::plan::{Tear, TearShape, TornFill};
use crate::trace::OpKind;

fn sim_512() -> SimStorage {
    SimStorage::with_config(SimConfig {
        sector_size: 512,
        ..SimConfig::default()
    })
}

/// A storage with segment 1 created and the directory synced.
fn with_segment(mut sim: SimStorage) -> SimStorage {
    sim.create(1).unwrap();
    sim.sync_dir().unwrap();
    sim
}

fn listed(sim: &SimStorage) -> Vec<SegmentId> {
    let mut ids = Vec::new();
    sim.list(&mut |id| ids.push(id)).unwrap();
    ids
}

#[test]
fn unsynced_write_is_lost_and_synced_write_survives() {
    let mut sim = with_segment(SimStorage::new());
    sim.write(1, 0, b"synced").unwrap();
    sim.sync(1).unwrap();
    sim.write(1, 6, b"+unsynced").unwrap();
    assert_eq!(sim.contents(1), Some(&b"synced+unsynced"[..]));
    assert_eq!(sim.durable_contents(1), Some(&b"synced"[..]));

    let lost = sim.crash(&CrashPlan::lose_everything());
    assert_eq!(lost.contents(1), Some(&b"synced"[..]));
    let kept = sim.crash(&CrashPlan::keep_everything(1));
    assert_eq!(kept.contents(1), Some(&b"synced+unsynced"[..]));
    // The crashed storage is a fresh, plain storage over the durable image.
    assert_eq!(kept.unsynced_effect_count(), 0);
    assert_eq!(kept.op_count(), 0);
}

#[test]
fn torn_write_at_sector_boundary_leaves_prefix_and_zeros() {
    let mut sim = with_segment(sim_512());
    let data: Vec<u8> = (0..1024u32).map(|i| (i % 251) as u8 + 1).collect();
    sim.write(1, 0, &data).unwrap();
    let torn = Fate::Torn(Tear {
        shape: TearShape::Prefix(1),
        fill: TornFill::Zeros,
    });
    let after = sim.crash(&CrashPlan::uniform(1, torn));
    let image = after.contents(1).unwrap();
    assert_eq!(image.len(), 1024);
    assert_eq!(&image[..512], &data[..512]);
    assert!(image[512..].iter().all(|&b| b == 0));
}

#[test]
fn create_without_sync_dir_may_vanish_even_if_its_data_was_synced() {
    let mut sim = SimStorage::new();
    sim.create(7).unwrap();
    sim.write(7, 0, b"data").unwrap();
    sim.sync(7).unwrap();
    assert_eq!(
        sim.unsynced_effects(),
        vec![UnsyncedEffect::Create { segment: 7 }]
    );

    let vanished = sim.crash(&CrashPlan::lose_everything());
    assert!(listed(&vanished).is_empty());
    assert_eq!(
        vanished.len(7).unwrap_err().kind(),
        StorageErrorKind::NotFound
    );

    let kept = sim.crash(&CrashPlan::keep_everything(1));
    assert_eq!(kept.contents(7), Some(&b"data"[..]));
}

#[test]
fn remove_without_sync_dir_may_reappear_whole() {
    let mut sim = with_segment(SimStorage::new());
    sim.write(1, 0, b"old").unwrap();
    sim.sync(1).unwrap();
    sim.remove(1).unwrap();
    assert!(listed(&sim).is_empty());
    let back = sim.crash(&CrashPlan::lose_everything());
    assert_eq!(back.contents(1), Some(&b"old"[..]));
    let gone = sim.crash(&CrashPlan::keep_everything(1));
    assert_eq!(gone.contents(1), None);
}

#[test]
fn recreated_segment_is_a_different_file_until_the_directory_is_synced() {
    let mut sim = with_segment(SimStorage::new());
    sim.write(1, 0, b"stale").unwrap();
    sim.sync(1).unwrap();
    sim.remove(1).unwrap();
    sim.create(1).unwrap();
    sim.write(1, 0, b"new").unwrap();
    sim.sync(1).unwrap();
    // Effects: remove 1, create 1 (the new file's write is synced).
    let mut plan = CrashPlan::lose_everything();
    assert_eq!(sim.crash(&plan).contents(1), Some(&b"stale"[..]));
    plan.set(1, Fate::Happened);
    assert_eq!(sim.crash(&plan).contents(1), Some(&b"new"[..]));
    plan.set(1, Fate::Lost).set(0, Fate::Happened);
    assert_eq!(sim.crash(&plan).contents(1), None);
}

#[test]
fn failed_sync_drops_data_and_a_later_sync_returns_ok() {
    let mut sim = with_segment(SimStorage::new());
    sim.set_faults(FaultSchedule::new().nth(OpKind::Sync, 0, FaultAction::SyncLosesData));
    sim.write(1, 0, b"doomed").unwrap();
    let error = sim.sync(1).unwrap_err();
    assert_eq!(error.kind(), StorageErrorKind::Io);
    assert_eq!(error.cause(), SimErrorCause::Injected);
    // The cache still shows the data, and the retry succeeds.
    assert_eq!(sim.contents(1), Some(&b"doomed"[..]));
    sim.sync(1).unwrap();
    sim.write(1, 6, b"!").unwrap();
    sim.sync(1).unwrap();
    // Even a crash that keeps everything cannot bring the dropped bytes back.
    let after = sim.crash(&CrashPlan::keep_everything(8));
    assert_eq!(after.contents(1), Some(&b"\0\0\0\0\0\0!"[..]));
}

#[test]
fn reordering_keeps_a_later_write_while_an_earlier_one_is_lost() {
    let mut sim = with_segment(sim_512());
    sim.write(1, 0, &[1; 512]).unwrap();
    sim.write(1, 512, &[2; 512]).unwrap();
    let mut plan = CrashPlan::lose_everything();
    plan.set(1, Fate::Happened);
    let after = sim.crash(&plan);
    let image = after.contents(1).unwrap();
    assert_eq!(image.len(), 1024);
    assert_eq!(&image[..512], &[0; 512]);
    assert_eq!(&image[512..], &[2; 512]);
}

#[test]
fn unsynced_truncate_may_not_have_happened() {
    let mut sim = with_segment(SimStorage::new());
    sim.write(1, 0, b"abcdef").unwrap();
    sim.sync(1).unwrap();
    sim.truncate(1, 2).unwrap();
    sim.write(1, 2, b"XY").unwrap();
    assert_eq!(sim.contents(1), Some(&b"abXY"[..]));
    let mut plan = CrashPlan::lose_everything();
    plan.set(1, Fate::Happened);
    // The truncate was lost, the write was not: stale bytes remain past it.
    assert_eq!(sim.crash(&plan).contents(1), Some(&b"abXYef"[..]));
    plan.set(0, Fate::Happened);
    assert_eq!(sim.crash(&plan).contents(1), Some(&b"abXY"[..]));
}

#[test]
fn syncing_one_segment_leaves_another_volatile() {
    let mut sim = SimStorage::new();
    sim.create(1).unwrap();
    sim.create(2).unwrap();
    sim.sync_dir().unwrap();
    sim.write(1, 0, b"one").unwrap();
    sim.write(2, 0, b"two").unwrap();
    sim.sync(1).unwrap();
    let after = sim.crash(&CrashPlan::lose_everything());
    assert_eq!(after.contents(1), Some(&b"one"[..]));
    assert_eq!(after.contents(2), Some(&b""[..]));
}

#[test]
fn op_budget_freezes_the_state_and_traces_the_refusals() {
    let mut sim = SimStorage::new();
    sim.crash_after(3);
    sim.create(1).unwrap();
    sim.sync_dir().unwrap();
    sim.write(1, 0, b"a").unwrap();
    let error = sim.write(1, 1, b"b").unwrap_err();
    assert!(error.is_crash());
    assert_eq!(error.kind(), StorageErrorKind::Io);
    assert_eq!(error.op_index(), 3);
    assert!(sim.has_crashed());
    assert!(sim.read(1, 0, &mut [0; 1]).unwrap_err().is_crash());
    assert_eq!(sim.contents(1), Some(&b"a"[..]));
    let trace = sim.trace();
    assert_eq!(trace.len(), 5);
    assert_eq!(
        trace[2].op,
        Op::Write {
            segment: 1,
            offset: 0,
            len: 1
        }
    );
    assert_eq!(trace[2].failure, None);
    assert_eq!(trace[3].failure, Some(StorageErrorKind::Io));
    // The frozen state crashes like any other.
    assert_eq!(
        sim.crash(&CrashPlan::keep_everything(1)).contents(1),
        Some(&b"a"[..])
    );
}

#[test]
fn injected_failure_at_op_changes_nothing() {
    let mut sim = with_segment(SimStorage::new());
    let no_space = FaultAction::Fail(StorageErrorKind::NoSpace);
    sim.set_faults(FaultSchedule::new().at_op(2, no_space));
    let error = sim.write(1, 0, b"abc").unwrap_err();
    assert_eq!(error.kind(), StorageErrorKind::NoSpace);
    assert_eq!(sim.contents(1), Some(&b""[..]));
    assert_eq!(sim.unsynced_effect_count(), 0);
    sim.write(1, 0, b"abc").unwrap();
}

#[test]
fn short_write_stores_a_prefix() {
    let mut sim = with_segment(SimStorage::new());
    sim.set_faults(FaultSchedule::new().nth(OpKind::Write, 0, FaultAction::ShortWrite { kept: 2 }));
    let error = sim.write(1, 0, b"abcd").unwrap_err();
    assert_eq!(error.kind(), StorageErrorKind::ShortWrite);
    assert_eq!(sim.contents(1), Some(&b"ab"[..]));
}

#[test]
fn misdirected_write_reads_right_but_lands_wrong() {
    let mut sim = with_segment(SimStorage::new());
    sim.write(1, 0, b"....").unwrap();
    sim.set_faults(FaultSchedule::new().nth(
        OpKind::Write,
        1,
        FaultAction::Misdirect { shift: -2 },
    ));
    sim.write(1, 4, b"ab").unwrap();
    assert_eq!(sim.contents(1), Some(&b"....ab"[..]));
    sim.sync(1).unwrap();
    assert_eq!(sim.durable_contents(1), Some(&b"..ab"[..]));
    let after = sim.crash(&CrashPlan::lose_everything());
    assert_eq!(after.contents(1), Some(&b"..ab"[..]));
}

#[test]
fn bit_flip_shows_after_the_crash() {
    let mut sim = with_segment(SimStorage::new());
    sim.write(1, 0, &[0b0000_0000]).unwrap();
    sim.sync(1).unwrap();
    assert!(sim.flip_durable_bit(1, 0, 3));
    assert!(!sim.flip_durable_bit(1, 1, 0));
    assert_eq!(sim.contents(1), Some(&[0][..]));
    let after = sim.crash(&CrashPlan::lose_everything());
    assert_eq!(after.contents(1), Some(&[0b0000_1000][..]));
}

#[test]
fn contract_refusals() {
    let mut sim = with_segment(SimStorage::new());
    assert_eq!(
        sim.create(1).unwrap_err().kind(),
        StorageErrorKind::AlreadyExists
    );
    assert_eq!(
        sim.remove(9).unwrap_err().kind(),
        StorageErrorKind::NotFound
    );
    assert_eq!(sim.sync(9).unwrap_err().kind(), StorageErrorKind::NotFound);
    let beyond = sim.write(1, 1, b"x").unwrap_err();
    assert_eq!(beyond.cause(), SimErrorCause::Refused);
    sim.write(1, 0, b"abc").unwrap();
    assert!(sim.truncate(1, 4).is_err());
    let mut buf = [0u8; 8];
    assert_eq!(sim.read(1, 1, &mut buf).unwrap(), 2);
    assert_eq!(&buf[..2], b"bc");
    assert_eq!(sim.read(1, 3, &mut buf).unwrap(), 0);
    assert_eq!(sim.read(1, u64::MAX, &mut buf).unwrap(), 0);
    assert_eq!(sim.len(1).unwrap(), 3);
}

#[test]
fn same_seed_same_run() {
    let run = |seed: u64| {
        let mut sim = with_segment(SimStorage::with_config(SimConfig {
            seed,
            ..SimConfig::default()
        }));
        sim.set_faults(FaultSchedule::new().random(seed, 4));
        for i in 0..40u64 {
            let len = sim.contents(1).map_or(0, <[u8]>::len) as u64;
            let _ = sim.write(1, len, &i.to_le_bytes());
            if i % 5 == 0 {
                let _ = sim.sync(1);
            }
        }
        let plan = sim.random_plan(seed);
        (sim.trace(), sim.crash(&plan).fingerprint())
    };
    assert_eq!(run(11), run(11));
    assert_ne!(run(11).1, run(12).1);
}

#[test]
fn misdirected_write_stays_within_the_file() {
    let mut sim = with_segment(SimStorage::new());
    sim.write(1, 0, b"ab").unwrap();
    let far = FaultAction::Misdirect { shift: i64::MAX };
    sim.set_faults(FaultSchedule::new().nth(OpKind::Write, 1, far));
    sim.write(1, 2, b"cd").unwrap();
    sim.sync(1).unwrap();
    assert_eq!(sim.durable_contents(1), Some(&b"abcd"[..]));
}

#[test]
fn reopen_keeps_unsynced_effects_pending() {
    let mut sim = with_segment(SimStorage::new());
    sim.crash_after(3);
    sim.write(1, 0, b"ab").unwrap();
    assert!(sim.sync(1).unwrap_err().is_crash());
    let mut reopened = sim.reopen();
    assert!(!reopened.has_crashed());
    assert_eq!(reopened.op_count(), 0);
    assert_eq!(reopened.contents(1), Some(&b"ab"[..]));
    assert_eq!(reopened.unsynced_effect_count(), 1);
    reopened.sync(1).unwrap();
    assert_eq!(reopened.durable_contents(1), Some(&b"ab"[..]));
}

#[test]
fn the_state_fingerprint_sees_every_unsynced_effect() {
    let base = with_segment(sim_512());
    let digest = |s: &SimStorage| s.state_fingerprint();
    // A copy, and a copy that only read, are the same state.
    let copy = base.clone();
    let mut buf = [0u8; 4];
    let _ = copy.read(1, 0, &mut buf);
    assert_eq!(digest(&base), digest(&copy));

    // An unsynced write changes it without changing the durable fingerprint; syncing it
    // changes both; so does the same bytes written at another offset or in two writes.
    let mut written = base.clone();
    written.write(1, 0, b"abcd").unwrap();
    assert_eq!(written.fingerprint(), base.fingerprint());
    assert_ne!(digest(&written), digest(&base));
    let mut elsewhere = base.clone();
    elsewhere.write(1, 0, b"ab").unwrap();
    elsewhere.write(1, 2, b"cd").unwrap();
    assert_eq!(elsewhere.contents(1), written.contents(1));
    assert_ne!(
        digest(&elsewhere),
        digest(&written),
        "effects, not only images"
    );
    let mut synced = written.clone();
    synced.sync(1).unwrap();
    assert_ne!(digest(&synced), digest(&written));

    // An unsynced truncate, create and remove each change it.
    let mut cut = synced.clone();
    cut.truncate(1, 2).unwrap();
    assert_ne!(digest(&cut), digest(&synced));
    let mut created = base.clone();
    created.create(2).unwrap();
    assert_ne!(digest(&created), digest(&base));
    let mut removed = base.clone();
    removed.remove(1).unwrap();
    assert_ne!(digest(&removed), digest(&base));
    removed.sync_dir().unwrap();
    assert_ne!(digest(&removed), digest(&base));

    // Equal histories give equal digests.
    let mut again = base.clone();
    again.write(1, 0, b"abcd").unwrap();
    assert_eq!(digest(&again), digest(&written));
}
