//! Faults on demand over walden-std (FAULT-MODEL.md 5, 6 and 8):
//!
//! * [`failed_syncs`]: each `fdatasync` of a workload fails in turn the fsyncgate way — the
//!   dirty data is dropped, reads still see it, the error is reported once to each open file
//!   description (`errseq_t`), then syncs "succeed". The log must refuse everything afterwards
//!   without advancing its durable LSN.
//!   Then both ways on: a power loss (every crash state), and a **process restart**: the new
//!   process must not read back, and call durable, what the kernel dropped. That is what
//!   walden-std's `fadvise(DONTNEED)` of the newest segment before recovery is for, and the
//!   simulator models the page cache that makes it necessary.
//! * [`errors_at_each_op`]: every state-changing file operation fails in turn (`EIO`, or
//!   `ENOSPC` for writes and preallocation) and changes nothing: the log either carries on
//!   (the operation was a hint or background work) or is poisoned, and nothing acknowledged is
//!   lost either way. A failed directory `fsync` is one of these: its entries stay pending.
//!
//! Not modelled: a directory `fsync` that fails *and* drops its entries while they stay
//! visible, with later directory syncs succeeding. Journaling file systems abort the journal
//! (the file system turns read-only) rather than drop metadata, and no recovery could tell
//! such entries from durable ones after a restart.

use std::collections::HashSet;
use std::time::Instant;

use walden_core::StorageErrorKind;
use walden_sim::{CaseId, FaultAction, FaultSchedule, FsOp, OpKind, PlanPick};

use super::catalog::find;
use super::variant::FileVariant;
use super::workload::{FileWorkload, drive};
use crate::explorer::{Explorer, Finding, Model, Stats, Violation, deep_mode};

/// The case of fault run `n`, crash plan `plan` of its end state (the restart is the plan
/// one past the last). Replay fault runs with [`replay_failed_sync`] or [`replay_error`].
fn fault_case(workload: &FileWorkload, n: u64, plan: u64) -> CaseId {
    CaseId {
        seed: workload.seed,
        op_index: n,
        plan: PlanPick::Enumerated(plan),
    }
}

/// Runs `workload` once per file sync (`fdatasync` of a segment or a spare, the zero-fill's
/// syncs), that sync failing and dropping the file's dirty data.
pub fn failed_syncs(explorer: &Explorer<FileVariant>, workload: &FileWorkload) -> Stats {
    let started = Instant::now();
    let mut stats = Stats::default();
    let full = drive(workload, explorer.variant, None, None);
    let syncs = full
        .fs
        .inner()
        .snapshot()
        .trace()
        .iter()
        .filter(|e| e.op.kind() == OpKind::Sync)
        .count() as u64;
    for n in 0..syncs {
        failed_sync(explorer, workload, n, &mut stats);
        if explorer.stop_at_first && !stats.violations.is_empty() {
            break;
        }
    }
    stats.elapsed = started.elapsed();
    stats
}

fn failed_sync(
    explorer: &Explorer<FileVariant>,
    workload: &FileWorkload,
    n: u64,
    stats: &mut Stats,
) {
    let what = format!("file sync #{n} failed and lost its data");
    let faults = FaultSchedule::new().nth(OpKind::Sync, n, FaultAction::SyncLosesData);
    let replay = format!(
        "walden_tests::files::faults::replay_failed_sync({:?}, {:#x}, {n})",
        explorer.variant, workload.seed
    );
    fault_run(explorer, workload, n, &what, faults, &replay, stats);
}

/// Runs `workload` once per state-changing file operation (and preallocation), that
/// operation failing with `EIO` (`ENOSPC` for writes and preallocation).
pub fn errors_at_each_op(explorer: &Explorer<FileVariant>, workload: &FileWorkload) -> Stats {
    let started = Instant::now();
    let mut stats = Stats::default();
    let full = drive(workload, explorer.variant, None, None);
    let ops = full.fs.inner().snapshot().trace().len() as u64;
    for n in 0..ops {
        error_at(explorer, workload, n, &mut stats);
        if explorer.stop_at_first && !stats.violations.is_empty() {
            break;
        }
    }
    stats.elapsed = started.elapsed();
    stats
}

fn error_at(explorer: &Explorer<FileVariant>, workload: &FileWorkload, n: u64, stats: &mut Stats) {
    let full = drive(workload, explorer.variant, None, None);
    let trace = full.fs.inner().snapshot();
    let Some(entry) = trace.trace().get(n as usize) else {
        return;
    };
    let kind = match entry.op {
        FsOp::Write { .. } | FsOp::Allocate { .. } => StorageErrorKind::NoSpace,
        _ => StorageErrorKind::Io,
    };
    let what = format!("{} failed with {kind}", trace.describe_op(entry));
    let faults = FaultSchedule::new().at_op(n, FaultAction::Fail(kind));
    let replay = format!(
        "walden_tests::files::faults::replay_error({:?}, {:#x}, {n})",
        explorer.variant, workload.seed
    );
    fault_run(explorer, workload, n, &what, faults, &replay, stats);
}

fn replay_with(
    variant: FileVariant,
    seed: u64,
    n: u64,
    run: fn(&Explorer<FileVariant>, &FileWorkload, u64, &mut Stats),
) -> Vec<Violation> {
    let workload = find(seed).expect("a files workload with this seed");
    let explorer = Explorer {
        stop_at_first: false,
        ..Explorer::new(variant, deep_mode())
    };
    let mut stats = Stats::default();
    run(&explorer, &workload, n, &mut stats);
    for violation in &stats.violations {
        eprintln!("{violation}");
    }
    stats.violations
}

/// Replays the run of workload `seed` whose file sync `n` failed and lost its data, and
/// returns what it found (printed by a failure of [`failed_syncs`]).
pub fn replay_failed_sync(variant: FileVariant, seed: u64, n: u64) -> Vec<Violation> {
    replay_with(variant, seed, n, failed_sync)
}

/// Replays the run of workload `seed` whose operation `n` failed, and returns what it found
/// (printed by a failure of [`errors_at_each_op`]).
pub fn replay_error(variant: FileVariant, seed: u64, n: u64) -> Vec<Violation> {
    replay_with(variant, seed, n, error_at)
}

/// One run with `faults`: the driver's poisoning checks, then every crash state of the end
/// (depth 1), then a process restart and its recovery (depth 2: crash after it, during its
/// repairs, after the next appends).
fn fault_run(
    explorer: &Explorer<FileVariant>,
    workload: &FileWorkload,
    n: u64,
    what: &str,
    faults: FaultSchedule,
    replay: &str,
    stats: &mut Stats,
) {
    let variant = explorer.variant;
    let driven = drive(workload, variant, None, Some(faults));
    stats.crash_points += 1;
    let report = |stats: &mut Stats, plan: u64, finding: Finding, path: String| {
        let mut violation = Violation::new(
            &variant,
            workload,
            fault_case(workload, n, plan),
            finding,
            format!("{what}; {path}"),
        );
        violation.replay = replay.to_owned();
        stats.violations.push(violation);
    };
    for problem in driven.problems {
        report(stats, 0, ("poisoning", problem), "while driving".into());
    }
    let end = driven.fs.inner().snapshot();
    let model: Model = driven.model;
    let mut seen = HashSet::new();
    for (index, plan) in end.crash_states(&explorer.nested_bounds) {
        let crashed = end.crash(&plan);
        if !seen.insert(crashed.fingerprint()) {
            continue;
        }
        stats.states += 1;
        if let Err(failure) = explorer.check_state(workload, &model, crashed, 1, stats) {
            let path = format!("then {}\n{}", end.describe(&plan), failure.path);
            report(stats, index, failure.finding, path);
            return;
        }
    }
    // The process restarts (the kernel keeps its page cache) and opens the log again.
    let restart_plan = seen.len() as u64;
    stats.states += 1;
    let mut restarted = end.restart();
    restarted.renumber();
    if let Err(failure) = explorer.check_state(workload, &model, restarted, 2, stats) {
        let path = format!(
            "then the process restarted and reopened the log\n{}",
            failure.path
        );
        report(stats, restart_plan, failure.finding, path);
    }
}
