//! Power loss at every file-system operation of a walden-std workload, on the real kernel
//! through a FUSE file system that drops what was not synced (see `../README.md`).
//!
//! Needs `/dev/fuse` and the right to mount (root here). Where that is missing the tests
//! fail saying so; `WALDEN_LAZYFS_SKIP=1` skips them explicitly. `WALDEN_LAZYFS_DEEP=1` runs
//! the deeper sweep (more crash states per point, a crash during recovery at every point).

use std::collections::BTreeMap;
use std::time::Instant;

use walden_lazyfs::harness::{Bench, BrokenOs, LOG_DIR, Point, det_fs, run_point, workload};
use walden_lazyfs::{BrokenFs, CrashPlan, Image, OpKind, SKIP_ENV};

fn skipped() -> bool {
    if std::env::var_os(SKIP_ENV).is_some_and(|v| v == "1") {
        eprintln!("{SKIP_ENV}=1: skipped (no FUSE power-loss test ran)");
        return true;
    }
    false
}

fn deep() -> bool {
    std::env::var_os("WALDEN_LAZYFS_DEEP").is_some_and(|v| v == "1")
}

fn bench() -> Bench {
    Bench::new().expect("a temporary directory")
}

/// The workload without a crash: its operation trace (and the run is repeatable).
fn trace(bench: &Bench) -> Vec<OpKind> {
    let mounted = bench
        .mount(Image::default(), None)
        .unwrap_or_else(|e| panic!("{e}"));
    let journal = workload(&det_fs(None), &bench.log_dir(), false);
    assert!(journal.completed, "workload failed: {:?}", journal.error);
    let trace = mounted.shared().trace();
    // The model's bookkeeping: the durable image with every pending change applied is what
    // the mount shows.
    assert_eq!(
        mounted.shared().replayed_image().reachable(),
        mounted.shared().volatile_image().reachable(),
        "pending changes do not replay to the volatile image"
    );
    drop(mounted);
    trace
}

#[derive(Default)]
struct Sweep {
    points: usize,
    /// Of which crashes during (or right after) a recovery.
    recovery_points: usize,
    failures: Vec<String>,
}

impl Sweep {
    fn run(
        &mut self,
        bench: &Bench,
        point: Point,
        os: Option<BrokenOs>,
        fs: Option<BrokenFs>,
    ) -> u64 {
        let out = run_point(bench, point, os, fs).unwrap_or_else(|e| panic!("{e}"));
        self.points += 1;
        if let Some(n) = point.crash_after {
            // The file system froze exactly there (or the workload ended first).
            assert!(
                out.ops <= n,
                "{point:?}: {} operations after the crash point",
                out.ops
            );
        }
        if let Err(why) = &out.verdict {
            self.failures.push(format!(
                "{point:?}: {why}\n  workload: completed {} error {:?} durable {} front {} \
                 attempted {}\n  recovery operations {}\n  image:\n{}",
                out.journal.completed,
                out.journal.error,
                out.journal.durable,
                out.journal.front,
                out.journal.attempted.len(),
                out.recovery_ops,
                out.image.listing()
            ));
        }
        out.recovery_ops
    }
}

/// Crash after each operation `0..=total` with every plan in `plans`; and, at every
/// `recovery_every`-th point (`0`: none) with the first `recovery_plans` plans, crash again
/// after each operation of the recovery (and once after the recovery's end).
fn sweep(
    total: u64,
    plans: &[CrashPlan],
    recovery_every: u64,
    recovery_plans: usize,
    os: Option<BrokenOs>,
    fs: Option<BrokenFs>,
) -> Sweep {
    let bench = bench();
    let mut sweep = Sweep::default();
    for n in 0..=total {
        for (p, plan) in plans.iter().enumerate() {
            let point = Point {
                crash_after: Some(n),
                plan: *plan,
                recovery_crash: None,
                strict_truncate_back: true,
            };
            sweep.run(&bench, point, os, fs);
            if recovery_every == 0 || n % recovery_every != 0 || p >= recovery_plans {
                continue;
            }
            // Recovery to its end, then a crash: how many operations the recovery makes.
            let full = Point {
                recovery_crash: Some(u64::MAX),
                ..point
            };
            let r = sweep.run(&bench, full, os, fs);
            sweep.recovery_points += 1 + r as usize;
            for m in 0..r {
                let point = Point {
                    recovery_crash: Some(m),
                    ..point
                };
                sweep.run(&bench, point, os, fs);
            }
        }
    }
    sweep
}

fn report(name: &str, sweep: &Sweep, started: Instant) {
    eprintln!(
        "{name}: {} crash points ({} in recoveries), {} failed, {:.1?}",
        sweep.points,
        sweep.recovery_points,
        sweep.failures.len(),
        started.elapsed()
    );
}

#[test]
fn the_workload_is_deterministic_and_runs_every_path() {
    if skipped() {
        return;
    }
    let bench = bench();
    let first = trace(&bench);
    let second = trace(&bench);
    assert_eq!(first, second, "two runs made different operations");
    let mut counts: BTreeMap<OpKind, usize> = BTreeMap::new();
    for op in &first {
        *counts.entry(*op).or_default() += 1;
    }
    eprintln!("{} operations: {counts:?}", first.len());
    // The paths this test exists for all run: data and directory syncs, the spare's link (or
    // rename) into place, removals by truncate_front, preallocation and length changes.
    for kind in [
        OpKind::Write,
        OpKind::Create,
        OpKind::Mkdir,
        OpKind::Fsync,
        OpKind::FsyncDir,
        OpKind::Unlink,
        OpKind::Fallocate,
        OpKind::Truncate,
    ] {
        assert!(counts.contains_key(&kind), "no {kind:?} in {counts:?}");
    }
    assert!(
        counts.contains_key(&OpKind::Link) || counts.contains_key(&OpKind::Rename),
        "no spare put into place: {counts:?}"
    );
}

#[test]
fn a_mount_that_fails_says_how_to_skip() {
    if skipped() {
        return;
    }
    let bench = bench();
    let Err(e) = walden_lazyfs::Mounted::new(&bench.mnt().join("missing"), Image::default(), None)
    else {
        panic!("mounted on a missing directory");
    };
    assert!(e.to_string().contains(SKIP_ENV), "{e}");
}

#[test]
fn flock_is_handled_by_the_kernel() {
    if skipped() {
        return;
    }
    // The file system implements no lock operation and fuser does not ask for
    // FUSE_FLOCK_LOCKS, so the kernel keeps flock locks itself: a second open of the log
    // while one holds it must be refused.
    let bench = bench();
    let _mounted = bench
        .mount(Image::default(), None)
        .unwrap_or_else(|e| panic!("{e}"));
    let dir = bench.log_dir();
    let (wal, _) =
        walden_std::Wal::open(&dir, walden_lazyfs::harness::check_options()).expect("first open");
    match walden_std::Wal::open(&dir, walden_lazyfs::harness::check_options()) {
        Err(walden_std::Error::Locked { .. }) => {}
        Err(e) => panic!("second open: {e}, expected Locked"),
        Ok(_) => panic!("a second open of a locked log succeeded"),
    }
    drop(wal);
    drop(walden_std::Wal::open(&dir, walden_lazyfs::harness::check_options()).expect("reopen"));
    assert!(
        bench
            .mnt()
            .join(LOG_DIR)
            .join(walden_std::LOCK_FILE)
            .exists(),
        "the lock file is on the mount"
    );
}

#[test]
fn power_loss_at_every_operation() {
    if skipped() {
        return;
    }
    let started = Instant::now();
    let total = trace(&bench()).len() as u64;
    // Default: four crash states at every operation, and crashes at every operation of the
    // recovery from every 4th point's DropAll and Subset(1) states. Deep: ten crash states
    // at every operation, recovery crashes from every point's first four.
    let (plans, recovery_every, recovery_plans) = if deep() {
        let mut plans = vec![CrashPlan::DropAll, CrashPlan::Subset(1)];
        plans.extend([CrashPlan::Subset(2), CrashPlan::KeepAll]);
        plans.extend((3..=8).map(CrashPlan::Subset));
        (plans, 1, 4)
    } else {
        let mut plans = vec![CrashPlan::DropAll, CrashPlan::Subset(1)];
        plans.extend([CrashPlan::Subset(2), CrashPlan::KeepAll]);
        (plans, 4, 2)
    };
    let sweep = sweep(total, &plans, recovery_every, recovery_plans, None, None);
    report(
        &format!(
            "{total} operations, {} plans, recovery crashes every {recovery_every} ({recovery_plans} plans)",
            plans.len()
        ),
        &sweep,
        started,
    );
    assert!(
        sweep.failures.is_empty(),
        "{} of {} crash points lost or invented records; the first:\n{}",
        sweep.failures.len(),
        sweep.points,
        sweep.failures[..sweep.failures.len().min(3)].join("\n")
    );
}

/// The broken variants must be caught: a checker that cannot fail proves nothing.
fn assert_caught(name: &str, os: Option<BrokenOs>, fs: Option<BrokenFs>) {
    let started = Instant::now();
    let total = trace(&bench()).len() as u64;
    let sweep = sweep(total, &[CrashPlan::DropAll], 0, 0, os, fs);
    report(name, &sweep, started);
    let lost = sweep
        .failures
        .iter()
        .filter(|f| f.contains("reported durable are lost"))
        .count();
    assert!(
        lost > 0,
        "{name}: no crash point lost an acknowledged record ({} failures of {})",
        sweep.failures.len(),
        sweep.points
    );
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    let mut examples: Vec<&str> = Vec::new();
    for f in &sweep.failures {
        let kind = [
            "reported durable are lost",
            "the reopen failed",
            "never appended",
            "other bytes",
            "not dense",
            "truncate_back",
        ]
        .into_iter()
        .find(|k| f.contains(k))
        .unwrap_or("other");
        let n = kinds.entry(kind).or_default();
        if *n == 0 {
            examples.push(f.lines().next().unwrap_or_default());
        }
        *n += 1;
    }
    eprintln!(
        "{name}: {lost} crash points lost acknowledged records ({kinds:?}); the first of \
         each kind:\n{}\nthe first in full:\n{}",
        examples.join("\n"),
        sweep.failures[0]
    );
}

#[test]
fn a_directory_sync_that_does_nothing_is_caught() {
    if skipped() {
        return;
    }
    assert_caught(
        "DirSyncNoop (walden-std side)",
        Some(BrokenOs::DirSyncNoop),
        None,
    );
}

#[test]
fn a_file_system_whose_fsync_keeps_nothing_is_caught() {
    if skipped() {
        return;
    }
    assert_caught("FsyncNoop (FUSE side)", None, Some(BrokenFs::FsyncNoop));
}

/// The finding (README.md, "Findings"), now fixed: after a `truncate_back` whose last
/// `fdatasync` failed, `durable_lsn()` still reported the old end of the log ("every record up
/// to it survives a crash"), although the call had already cut those records with
/// `ftruncate`: a power loss that keeps the cut (here every unsynced change is kept) lost
/// records the log still called durable. walden-core now lowers the durable LSN before a
/// rewind's first change; the main sweep also takes `durable_lsn()` at its word there.
#[test]
fn durable_lsn_after_a_failed_truncate_back_is_kept() {
    if skipped() {
        return;
    }
    let total = trace(&bench()).len() as u64;
    let bench = bench();
    let mut sweep = Sweep::default();
    for n in 0..=total {
        let point = Point {
            crash_after: Some(n),
            plan: CrashPlan::KeepAll,
            recovery_crash: None,
            strict_truncate_back: true,
        };
        sweep.run(&bench, point, None, None);
    }
    assert!(
        sweep.failures.is_empty(),
        "{} of {} crash points lost records durable_lsn() vouched for; the first:\n{}",
        sweep.failures.len(),
        sweep.points,
        sweep.failures[..sweep.failures.len().min(1)].join("\n")
    );
}

/// walden-std's own deliberately broken behaviours (`Mutation`, the ones the simulator's
/// explorer and the kill test use), each swept with the crash states that expose it here:
/// every one must fail the check somewhere (a lost record, a refused reopen, a stale record).
#[test]
fn walden_std_mutations_are_caught() {
    use walden_std::Mutation;
    if skipped() {
        return;
    }
    let total = trace(&bench()).len() as u64;
    let subsets = [CrashPlan::Subset(1), CrashPlan::Subset(2)];
    for (mutation, plans) in [
        (Mutation::SyncSkipsFlush, &[CrashPlan::DropAll][..]),
        (Mutation::EarlySyncNoop, &[CrashPlan::DropAll][..]),
        (Mutation::StaleSpare, &[CrashPlan::KeepAll][..]),
        (Mutation::ShrinkBeforeUnlinkDurable, &subsets[..]),
    ] {
        let started = Instant::now();
        let sweep = sweep(total, plans, 0, 0, Some(BrokenOs::Walden(mutation)), None);
        report(&format!("{mutation:?}"), &sweep, started);
        assert!(
            !sweep.failures.is_empty(),
            "{mutation:?} was not caught in {} crash points",
            sweep.points
        );
        eprintln!(
            "{mutation:?}: the first failure: {}",
            sweep.failures[0].lines().next().unwrap_or_default()
        );
    }
}
