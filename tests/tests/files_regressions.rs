//! Regression tests for what the files explorer found in walden-std, each as a direct test on
//! the simulated file system and as the explorer case that found it.

use walden_core::{
    AppendError, Config, Lsn, StorageError, StorageErrorKind, SyncPolicy, TruncateError,
};
use walden_sim::{CrashPlan, FaultAction, FaultSchedule, FsOp, SimConfig, SimFs};
use walden_std::{Options, SharedWal, SimFileSystem, Wal};
use walden_tests::explorer::{Explorer, Stats};
use walden_tests::files::{FileVariant, ROOT, default_workloads, drive, faults};

fn explorer() -> Explorer<FileVariant> {
    Explorer {
        stop_at_first: false,
        ..Explorer::new(FileVariant::Correct, false)
    }
}

fn workload(seed: u64) -> walden_tests::files::FileWorkload {
    default_workloads()
        .into_iter()
        .find(|w| w.seed == seed)
        .expect("a files workload with this seed")
}

fn assert_clean(stats: &Stats) {
    assert!(stats.violations.is_empty(), "{}", stats.violations[0]);
}

/// Issue 11, found by the files explorer's first run as `seed=401 op=35 plan=e1`: a crash
/// right after the spare is linked as the new segment, before its header (in the write
/// buffer) is durable, leaves a full-size segment of zeros (or a header of garbage before
/// them), which recovery refused as `DamagedHeader`. Every crash state after the link, and
/// after the link's unlink and header write, must recover.
#[test]
fn a_crash_right_after_a_spare_is_linked_recovers() {
    let workload = workload(0x401);
    let trace = drive(&workload, FileVariant::Correct, None, None)
        .fs
        .inner()
        .snapshot();
    let link = trace
        .trace()
        .iter()
        .position(|e| matches!(e.op, FsOp::Link { .. }))
        .expect("a rotation onto a spare") as u64;
    let mut stats = Stats::default();
    for budget in link + 1..=link + 3 {
        explorer().explore_point(&workload, budget, None, &mut stats);
    }
    assert!(stats.states > 0);
    assert_clean(&stats);
}

fn options() -> Options {
    let mut options = Options::from(
        Config::default()
            .with_segment_size(1 << 20)
            .with_sync_policy(SyncPolicy::Always),
    );
    options.open_threads = 1;
    options
}

/// Found by `errors_at_each_op` (an `EIO` on the parent's sync when the log was created, then
/// a restart): the log directory is an entry of its parent, durable only once the parent is
/// synced. An open that found the directory already there did not sync the parent, so records
/// acknowledged after a restart could vanish with the directory.
#[test]
fn a_directory_whose_creation_was_never_synced_is_made_durable_by_open() {
    // An earlier process created the directory and died before syncing its parent.
    let mut sim = SimFs::new(SimConfig::default());
    sim.mkdir().expect("mkdir");
    let fs = SimFileSystem::new(ROOT, sim);
    let (mut wal, _) = Wal::open_in(fs.clone(), ROOT, options()).expect("open");
    wal.append(b"acknowledged").expect("append");
    let crashed = fs.snapshot().crash(&CrashPlan::lose_everything());
    let (wal, _) =
        Wal::open_in(SimFileSystem::new(ROOT, crashed), ROOT, options()).expect("reopen");
    assert_eq!(
        wal.read_all_from(Lsn(1)).expect("read"),
        vec![(Lsn(1), b"acknowledged".to_vec())]
    );
    // And the whole pass that found it: an error at each operation of the workload.
    assert_clean(&faults::errors_at_each_op(&explorer(), &workload(0x405)));
}

/// Found by `errors_at_each_op` (`ENOSPC` on the group-commit leader's flush of the write
/// buffer): only the committer was poisoned, not the core log, so `truncate_front` and
/// `truncate_back` went on working on a log that had failed a write.
#[test]
fn a_failed_flush_by_the_group_commit_leader_poisons_every_path() {
    let fs = SimFileSystem::new(ROOT, SimFs::new(SimConfig::default()));
    let (wal, _) = SharedWal::open_in(fs.clone(), ROOT, options()).expect("open");
    let _ = wal.append(b"durable").expect("append");
    // The first sync made the next segment's spare due: the next segment write prepares it
    // (inline here) before it writes.
    let _ = wal.append(b"durable too").expect("append");
    // The next file operation is the leader's flush of the next append's buffered bytes.
    let next = fs.with(|sim| {
        let next = sim.op_count();
        sim.set_faults(
            FaultSchedule::new().at_op(next, FaultAction::Fail(StorageErrorKind::NoSpace)),
        );
        next
    });
    let failure = match wal.append(b"lost") {
        Err(AppendError::Storage(failure)) => failure,
        other => panic!("expected the flush's failure, got {other:?}"),
    };
    // Every path names the same failed step: the caller's error, the handle's poison and the
    // refusal of the next append (which the core log's own poison answers).
    let poisoned = wal.poisoned().expect("poisoned");
    assert_eq!(
        (failure.op, failure.segment),
        (poisoned.op, poisoned.segment)
    );
    assert_eq!(failure.error.kind(), poisoned.kind);
    assert!(matches!(wal.append(b"refused"), Err(AppendError::Poisoned(p)) if p == poisoned));
    fs.with(|sim| {
        let trace = sim.trace();
        let failed = trace
            .iter()
            .find(|e| e.index == next)
            .expect("the faulted operation");
        assert!(
            matches!(failed.op, FsOp::Write { .. }) && failed.failure.is_some(),
            "the fault hit {}, not the flush",
            sim.describe_op(failed)
        );
    });
    assert!(matches!(
        wal.truncate_front(Lsn(1)),
        Err(TruncateError::Poisoned(_))
    ));
    assert!(matches!(
        wal.truncate_back(Lsn(1)),
        Err(TruncateError::Poisoned(_))
    ));
    assert_clean(&faults::errors_at_each_op(&explorer(), &workload(0x406)));
}

/// `truncate_front` records the log's start in a start slot, which walden-std creates like a
/// segment. Creating it must not take the spare prepared for the newest segment's successor
/// (and delete it as stale) nor stop the newest segment's zero-fill: the next rotation after a
/// `truncate_front` still links a spare instead of creating a fresh, unfilled file.
#[test]
fn a_start_slot_does_not_waste_the_next_segments_spare() {
    let options = {
        let mut o = options();
        o.config = o.config.with_segment_size(4096);
        o
    };
    let fs = SimFileSystem::new(ROOT, SimFs::new(SimConfig::default()));
    let (mut wal, _) = Wal::open_in(fs.clone(), ROOT, options).expect("open");
    let record = [7u8; 500];
    // Rotate a few times, so there are segments to drop.
    while wal.segments().len() < 4 {
        wal.append(&record).expect("append");
    }
    let first_of_newest = wal.segments().last().expect("a segment").first_lsn;
    wal.truncate_front(first_of_newest).expect("truncate_front");
    let before = fs.snapshot().trace().len();
    let newest = wal.segments().last().expect("a segment").id;
    while wal.segments().last().expect("a segment").id == newest {
        wal.append(&record).expect("append");
    }
    let after = fs.snapshot();
    let rotation = &after.trace()[before..];
    let next = walden_core::SegmentName::new(newest + 1).to_string();
    let linked = rotation
        .iter()
        .any(|e| matches!(&e.op, FsOp::Link { to, .. } if *to == next));
    let created = rotation
        .iter()
        .any(|e| matches!(&e.op, FsOp::Create { name } if *name == next));
    assert!(
        linked && !created,
        "the rotation after truncate_front should link the prepared spare as {next}: {:?}",
        rotation.iter().map(|e| &e.op).collect::<Vec<_>>()
    );
}

/// Found by an adversarial review of `SharedWal` (2026-12-07): a write of the buffered appends
/// that failed inside a core sync (here at a rotation) dropped the buffer, while the core
/// log's segment end still covered its records. The log was poisoned, but readers then read a
/// hole where those records were and reported corruption (`corruption_events` went up, an
/// error was logged), and a tail returned that error at every call instead of
/// `TailEvent::Poisoned`. Now the buffer is kept, as the group-commit leader's flush keeps it:
/// whatever the failing operation, every record the log holds reads back and a tail ends with
/// the poison.
#[test]
fn a_failed_buffered_write_is_never_read_as_corruption() {
    use walden_std::TailEvent;
    let mut cases = 0;
    for policy in [
        SyncPolicy::Manual,
        SyncPolicy::Always,
        SyncPolicy::EveryRecords(4),
    ] {
        for kind in [StorageErrorKind::Io, StorageErrorKind::NoSpace] {
            for skip in 0..80u64 {
                let mut o = Options::from(
                    Config::default()
                        .with_segment_size(4096)
                        .with_sync_policy(policy),
                );
                o.open_threads = 1;
                let fs = SimFileSystem::new(ROOT, SimFs::new(SimConfig::default()));
                let (wal, _) = SharedWal::open_in(fs.clone(), ROOT, o).expect("open");
                for i in 0..5u8 {
                    let _ = wal.append(&[i; 89]).expect("append");
                }
                fs.with(|sim| {
                    let at = sim.op_count() + skip;
                    sim.set_faults(FaultSchedule::new().at_op(at, FaultAction::Fail(kind)));
                });
                for i in 1..=200u32 {
                    if wal.append(&[(i % 250) as u8; 89]).is_err()
                        || (i % 3 == 0 && wal.sync().is_err())
                    {
                        break;
                    }
                }
                if wal.poisoned().is_none() {
                    continue;
                }
                cases += 1;
                let what = format!("{policy:?}, {kind:?} at operation +{skip}");
                let mut reader = wal.reader(Lsn(1)).expect("reader");
                let mut read = 0u64;
                while let Some(r) = reader
                    .read_next()
                    .unwrap_or_else(|e| panic!("{what}: read after LSN {read}: {e:?}"))
                {
                    read = r.lsn.0;
                }
                assert_eq!(Lsn(read), wal.last_lsn(), "{what}");
                assert_eq!(wal.metrics().corruption_events, 0, "{what}");
                let mut tail = wal.tail(Lsn(1));
                let end = loop {
                    match tail.try_next() {
                        Ok(Some(TailEvent::Record { .. })) => {}
                        other => break other,
                    }
                };
                assert!(
                    matches!(end, Ok(Some(TailEvent::Poisoned(_)))),
                    "{what}: the tail ended with {end:?}"
                );
            }
        }
    }
    assert!(cases > 100, "only {cases} cases poisoned the log");
}
