use alloc::vec;
use alloc::vec::Vec;

use walden_core::{StorageError, StorageErrorKind};

use super::*;
use crate::fault::FaultAction;
use crate::plan::{Fate, Tear, TearShape, TornFill};

fn ready() -> SimFs {
    let mut fs = SimFs::new(SimConfig {
        sector_size: 4,
        ..SimConfig::default()
    });
    fs.mkdir().unwrap();
    fs.sync_parent().unwrap();
    fs
}

fn names(fs: &SimFs) -> Vec<String> {
    fs.durable_files().into_iter().map(|(n, _)| n).collect()
}

/// Every distinct durable state over all enumerated plans, as (names, contents).
fn outcomes(fs: &SimFs) -> Vec<Vec<(String, Vec<u8>)>> {
    let mut all: Vec<Vec<(String, Vec<u8>)>> = fs
        .crash_states(&CrashBounds::default())
        .map(|(_, plan)| fs.crash(&plan).durable_files())
        .collect();
    all.sort();
    all.dedup();
    all
}

#[test]
fn synced_data_without_a_synced_name_may_vanish() {
    let mut fs = ready();
    let f = fs.create("a").unwrap();
    fs.write(f, 0, b"data").unwrap();
    fs.sync(f).unwrap();
    // Only the name is unsynced: the file is there with its data, or not at all.
    let all = outcomes(&fs);
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(all.contains(&vec![]));
    assert!(all.contains(&vec![("a".into(), b"data".to_vec())]));
    fs.sync_dir().unwrap();
    assert_eq!(outcomes(&fs), vec![vec![("a".into(), b"data".to_vec())]]);
}

#[test]
fn a_synced_name_does_not_make_data_durable() {
    let mut fs = ready();
    let f = fs.create("a").unwrap();
    fs.sync_dir().unwrap();
    fs.write(f, 0, b"abcdefgh").unwrap();
    let all = outcomes(&fs);
    assert!(all.contains(&vec![("a".into(), Vec::new())]));
    assert!(all.contains(&vec![("a".into(), b"abcdefgh".to_vec())]));
    assert!(
        all.contains(&vec![("a".into(), b"abcd".to_vec())]),
        "torn: {all:?}"
    );
    assert!(
        all.contains(&vec![("a".into(), b"abcd\0\0\0\0".to_vec())]),
        "zero tail: {all:?}"
    );
}

#[test]
fn rename_is_atomic() {
    let mut fs = ready();
    let f = fs.create("tmp").unwrap();
    fs.write(f, 0, b"x").unwrap();
    fs.sync(f).unwrap();
    fs.sync_dir().unwrap();
    fs.rename("tmp", "final").unwrap();
    assert_eq!(fs.unsynced_effects().len(), 1);
    let all = outcomes(&fs);
    assert_eq!(
        all,
        vec![
            vec![("final".into(), b"x".to_vec())],
            vec![("tmp".into(), b"x".to_vec())],
        ]
    );
}

#[test]
fn a_link_and_its_unlink_resolve_independently() {
    let mut fs = ready();
    let spare = fs.create("2.spare").unwrap();
    fs.write(spare, 0, &[0; 8]).unwrap();
    fs.sync(spare).unwrap();
    fs.sync_dir().unwrap();
    fs.link("2.spare", "2.wal").unwrap();
    fs.unlink("2.spare").unwrap();
    let all = outcomes(&fs);
    assert_eq!(all.len(), 4, "{all:?}");
    assert!(all.contains(&vec![("2.wal".into(), vec![0; 8])]));
    // Linked names share the file: a write through one shows through the other.
    fs.write(spare, 0, b"H").unwrap();
    assert_eq!(fs.contents("2.wal").unwrap()[0], b'H');
}

#[test]
fn the_log_directory_itself_needs_its_parent_synced() {
    let mut fs = SimFs::default();
    fs.mkdir().unwrap();
    let f = fs.create("a").unwrap();
    fs.write(f, 0, b"data").unwrap();
    fs.sync(f).unwrap();
    fs.sync_dir().unwrap();
    assert_eq!(fs.unsynced_effects(), vec![FsEffect::Mkdir]);
    assert!(outcomes(&fs).contains(&vec![]));
    fs.sync_parent().unwrap();
    assert_eq!(outcomes(&fs), vec![vec![("a".into(), b"data".to_vec())]]);
}

#[test]
fn set_len_is_volatile_until_sync_and_may_grow() {
    let mut fs = ready();
    let f = fs.create("a").unwrap();
    fs.sync_dir().unwrap();
    fs.set_len(f, 6).unwrap();
    assert_eq!(fs.len(f).unwrap(), 6);
    let all = outcomes(&fs);
    assert_eq!(
        all,
        vec![vec![("a".into(), vec![])], vec![("a".into(), vec![0; 6])]]
    );
    fs.sync(f).unwrap();
    fs.set_len(f, 2).unwrap();
    fs.sync(f).unwrap();
    assert_eq!(fs.durable_files(), vec![("a".into(), vec![0; 2])]);
}

#[test]
fn a_failed_sync_drops_dirty_data_until_the_cache_is_dropped() {
    let mut fs = ready();
    let f = fs.create("a").unwrap();
    fs.sync_dir().unwrap();
    fs.write(f, 0, b"old!").unwrap();
    fs.sync(f).unwrap();
    fs.set_faults(FaultSchedule::new().at_op(fs.op_count() + 1, FaultAction::SyncLosesData));
    fs.write(f, 0, b"new!").unwrap();
    assert_eq!(fs.sync(f).unwrap_err().kind(), StorageErrorKind::Io);
    fs.sync(f).unwrap(); // "succeeds"
    // The cache still shows the lost data; a restarted process would read it ...
    let restarted = fs.restart();
    assert_eq!(restarted.contents("a").unwrap(), b"new!");
    // ... unless it drops the clean pages first.
    let mut restarted = restarted;
    let inode = restarted.lookup("a").unwrap();
    restarted.forget_cache(inode).unwrap();
    assert_eq!(restarted.contents("a").unwrap(), b"old!");
    assert!(restarted.crash_states(&CrashBounds::default()).total() == 1);
}

#[test]
fn forget_cache_keeps_dirty_data() {
    let mut fs = ready();
    let f = fs.create("a").unwrap();
    fs.write(f, 0, b"dirty").unwrap();
    fs.forget_cache(f).unwrap();
    assert_eq!(fs.contents("a").unwrap(), b"dirty");
}

#[test]
fn the_power_cut_freezes_everything() {
    let mut fs = ready();
    let f = fs.create("a").unwrap();
    fs.crash_after(fs.op_count() + 1);
    fs.write(f, 0, b"one").unwrap();
    let before = fs.clone();
    let e = fs.write(f, 3, b"two").unwrap_err();
    assert!(e.is_crash());
    assert!(fs.has_crashed());
    assert!(fs.read(f, 0, &mut [0; 3]).unwrap_err().is_crash());
    assert_eq!(fs.contents("a"), before.contents("a"));
    assert_eq!(fs.unsynced_effects(), before.unsynced_effects());
}

#[test]
fn reads_are_not_numbered() {
    let mut fs = ready();
    let f = fs.create("a").unwrap();
    let n = fs.op_count();
    fs.read(f, 0, &mut [0; 4]).unwrap();
    fs.len(f).unwrap();
    fs.names().unwrap();
    fs.lookup("a").unwrap();
    fs.forget_cache(f).unwrap();
    assert_eq!(fs.op_count(), n);
    fs.allocate(f, 100).unwrap();
    assert_eq!(fs.op_count(), n + 1);
    assert!(!fs.trace().last().unwrap().op.changes_state());
}

#[test]
fn locks_are_exclusive_and_die_with_the_process() {
    let mut fs = ready();
    let f = fs.create("walden.lock").unwrap();
    fs.try_lock(f).unwrap();
    assert_eq!(fs.try_lock(f).unwrap_err().kind(), StorageErrorKind::Locked);
    let mut restarted = fs.restart();
    restarted.try_lock(f).unwrap();
    fs.unlock(f);
    fs.try_lock(f).unwrap();
}

#[test]
fn unreachable_files_add_no_effects() {
    let mut fs = ready();
    let f = fs.create("gone").unwrap();
    fs.sync_dir().unwrap();
    fs.unlink("gone").unwrap();
    fs.sync_dir().unwrap();
    // An open handle may still write it; no crash can show those bytes.
    fs.write(f, 0, b"nobody sees this").unwrap();
    assert!(fs.unsynced_effects().is_empty());
    assert_eq!(outcomes(&fs), vec![vec![]]);
}

#[test]
fn fingerprints_ignore_inode_numbers_and_see_links() {
    let mut a = ready();
    let x = a.create("x").unwrap();
    a.write(x, 0, b"1").unwrap();
    a.sync(x).unwrap();
    a.sync_dir().unwrap();
    let mut b = ready();
    let scratch = b.create("scratch").unwrap();
    b.unlink("scratch").unwrap();
    let _ = scratch;
    let x = b.create("x").unwrap();
    b.write(x, 0, b"1").unwrap();
    b.sync(x).unwrap();
    b.sync_dir().unwrap();
    assert_eq!(a.fingerprint(), b.fingerprint());
    // Two names of one file differ from two files with equal bytes.
    let mut linked = a.clone();
    linked.link("x", "y").unwrap();
    linked.sync_dir().unwrap();
    let mut copied = a.clone();
    let y = copied.create("y").unwrap();
    copied.write(y, 0, b"1").unwrap();
    copied.sync(y).unwrap();
    copied.sync_dir().unwrap();
    assert_ne!(linked.fingerprint(), copied.fingerprint());
}

#[test]
fn plans_replay_from_their_case() {
    let mut fs = ready();
    let f = fs.create("a").unwrap();
    fs.write(f, 0, b"abcdefgh").unwrap();
    let bounds = CrashBounds::default();
    let case = CaseId {
        seed: 1,
        op_index: 3,
        plan: PlanPick::Enumerated(5),
    };
    assert_eq!(
        fs.plan_for(&case, &bounds),
        fs.crash_states(&bounds).plan(5)
    );
    let random = CaseId {
        plan: PlanPick::Random(2),
        ..case
    };
    assert_eq!(fs.plan_for(&random, &bounds), fs.plan_for(&random, &bounds));
    let torn = Fate::Torn(Tear {
        shape: TearShape::Prefix(1),
        fill: TornFill::Old,
    });
    let mut plan = CrashPlan::keep_everything(1);
    plan.set(1, torn);
    let text = fs.describe(&plan);
    assert!(text.contains("0: create a: +"), "{text}");
    assert!(text.contains("1: write a@0+8: p1o"), "{text}");
    assert_eq!(names(&fs.crash(&plan)), vec![String::from("a")]);
}

#[test]
fn faults_fire_at_their_operation() {
    let mut fs = ready();
    let f = fs.create("a").unwrap();
    let at = fs.op_count();
    fs.set_faults(FaultSchedule::new().at_op(at, FaultAction::Fail(StorageErrorKind::NoSpace)));
    assert_eq!(
        fs.allocate(f, 1 << 20).unwrap_err().kind(),
        StorageErrorKind::NoSpace
    );
    fs.allocate(f, 1 << 20).unwrap();
    let line = fs.describe_op(&fs.trace()[at as usize]);
    assert_eq!(
        line,
        "#3 allocate a to 1048576 -> no space left on the medium"
    );
}

#[test]
fn a_failed_sync_is_reported_to_every_description_once() {
    let mut fs = ready();
    let f = fs.create("a").unwrap();
    fs.sync_dir().unwrap();
    let (mut writer, mut filler) = (fs.error_seq(f).unwrap(), fs.error_seq(f).unwrap());
    fs.write(f, 0, b"record").unwrap();
    fs.set_faults(FaultSchedule::new().at_op(fs.op_count(), FaultAction::SyncLosesData));
    // The filler's sync fails and drops the writer's dirty record ...
    assert!(fs.sync_handle(f, &mut filler).is_err());
    fs.sync_handle(f, &mut filler).unwrap();
    // ... and the writer's next sync says so, once.
    assert_eq!(
        fs.sync_handle(f, &mut writer).unwrap_err().kind(),
        StorageErrorKind::Io
    );
    fs.sync_handle(f, &mut writer).unwrap();
    // A description opened afterwards never hears of it.
    let mut late = fs.error_seq(f).unwrap();
    fs.sync_handle(f, &mut late).unwrap();
    assert_eq!(fs.durable_files(), vec![("a".into(), Vec::new())]);
}
