//! Poisoning (FAULT-MODEL.md 5 and 8): make each `sync` of a workload fail in turn the fsyncgate
//! way (the dirty data is dropped, the next sync "succeeds"), check that the log refuses
//! everything afterwards without ever advancing its durable LSN, then crash and check that
//! nothing it acknowledged before the failure was lost.

use std::collections::HashSet;
use std::time::Instant;

use walden_sim::{CaseId, FaultAction, FaultSchedule, OpKind, PlanPick, SimStorage};

use super::explore::{Explorer, Stats, Violation};
use super::storage::Variant;
use super::workload::{Workload, drive, fresh_handle};

/// Runs `workload` once per `sync` it makes, with that sync failing and losing data.
pub fn failed_syncs(explorer: &Explorer<Variant>, workload: &Workload) -> Stats {
    let started = Instant::now();
    let mut stats = Stats::default();
    let full = fresh_handle(workload, Variant::Correct);
    drop(drive(workload, &full, false).wal);
    let syncs = full
        .with(SimStorage::trace)
        .iter()
        .filter(|entry| matches!(entry.op.kind(), OpKind::Sync))
        .count() as u64;
    for n in 0..syncs {
        let handle = fresh_handle(workload, explorer.variant);
        handle.with_mut(|sim| {
            sim.set_faults(FaultSchedule::new().nth(OpKind::Sync, n, FaultAction::SyncLosesData));
        });
        let driven = drive(workload, &handle, true);
        stats.crash_points += 1;
        let id = CaseId {
            seed: workload.seed,
            op_index: u64::MAX - n,
            plan: PlanPick::Enumerated(0),
        };
        for problem in driven.problems {
            stats.violations.push(Violation::new(
                &explorer.variant,
                workload,
                id,
                ("poisoning", problem),
                format!("sync #{n} failed and lost its data"),
            ));
        }
        drop(driven.wal);
        let sim = handle.snapshot();
        let mut seen = HashSet::new();
        for (index, plan) in sim.crash_states(&explorer.nested_bounds) {
            let crashed = sim.crash(&plan);
            if !seen.insert(crashed.fingerprint()) {
                continue;
            }
            stats.states += 1;
            if let Err(failure) =
                explorer.check_state(workload, &driven.model, crashed, 1, &mut stats)
            {
                stats.violations.push(Violation::new(
                    &explorer.variant,
                    workload,
                    CaseId {
                        plan: PlanPick::Enumerated(index),
                        ..id
                    },
                    failure.finding,
                    format!(
                        "sync #{n} failed and lost its data; then {}\n{}",
                        sim.describe(&plan),
                        failure.path
                    ),
                ));
                break;
            }
        }
    }
    stats.elapsed = started.elapsed();
    stats
}
