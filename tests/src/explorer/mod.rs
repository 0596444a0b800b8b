//! The crash-point explorer (FAULT-MODEL.md, "How exhaustive").
//!
//! For each [`Workload`], the explorer runs the workload once per storage operation with the
//! simulated power cut after that operation ([`SimStorage::crash_after`]), enumerates the legal
//! crash states of that moment ([`SimStorage::crash_states`]), and for every distinct state
//! (deduplicated by [`SimStorage::fingerprint`] per crash point):
//!
//! 1. recovers under the default policy and checks the recovered log against the [`Model`]:
//!    durability, prefix, no phantoms, atomicity, classification, segment set;
//! 2. recovers under `Strict` and `Salvage` and compares;
//! 3. crashes again right after recovery and during each of recovery's repair operations,
//!    and recovers again: the same log;
//! 4. appends after recovery, crashes in every nested state and checks again (depth 2; depth
//!    3 in the deep run).
//!
//! [`media`] injects bit flips and misdirected writes, [`poison`] failed syncs, [`arbitrary`]
//! random images; [`Variant`] breaks the storage on purpose so the tests can prove the
//! explorer notices. A failure prints a [`CaseId`] and [`replay`] runs that one case again.
//!
//! [`SimStorage::crash_after`]: walden_sim::SimStorage::crash_after
//! [`SimStorage::crash_states`]: walden_sim::SimStorage::crash_states
//! [`SimStorage::fingerprint`]: walden_sim::SimStorage::fingerprint
//! [`CaseId`]: walden_sim::CaseId

pub mod arbitrary;
mod catalog;
mod check;
mod explore;
pub mod media;
mod model;
mod naive;
pub mod poison;
mod storage;
mod subject;
mod workload;

use core::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

pub use catalog::{deep_workloads, default_workloads, find, media_workloads};
pub use check::{
    Finding, Outcome, Recovered, check_log, check_media, check_pure_crash, read_all, recover,
};
pub use explore::{Explorer, Failure, Stats, Violation, deep_mode};
pub use model::{Model, ModelRecord};
pub use naive::{RecordSpan, naive_scan, record_spans};
pub use storage::{SimHandle, Variant};
pub use subject::{Recovery, Run, Subject};
pub use workload::{
    Driven, SCRATCH, Step, TestWal, Workload, drive, fresh_handle, log_step, open_log, payload,
    poisoned_step,
};

/// Explores `workloads` on `threads` threads and returns the per-workload results in order.
pub fn explore_all<V: Subject>(
    explorer: &Explorer<V>,
    workloads: &[V::Workload],
    threads: usize,
) -> Vec<Stats> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Stats>>> = Mutex::new(vec![None; workloads.len()]);
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| {
                loop {
                    // The catalog lists the heaviest workloads last: start them first.
                    let taken = next.fetch_add(1, Ordering::Relaxed);
                    let Some(i) = workloads.len().checked_sub(taken + 1) else {
                        break;
                    };
                    let workload = &workloads[i];
                    let stats = explorer.explore(workload);
                    results.lock().expect("no poisoned lock")[i] = Some(stats);
                }
            });
        }
    });
    results
        .into_inner()
        .expect("no poisoned lock")
        .into_iter()
        .map(|s| s.expect("every workload explored"))
        .collect()
}

/// Replays one case of the correct storage, printed by a failure as `seed=.. op=.. plan=..`,
/// and returns what it found (nothing if the case passes). Set `WALDEN_EXPLORE_DEEP=1` to
/// replay a case of the deep run.
pub fn replay(case: &str) -> Vec<Violation> {
    replay_variant(Variant::Correct, case)
}

/// [`replay`] against a storage variant.
pub fn replay_variant(variant: Variant, case: &str) -> Vec<Violation> {
    Explorer::replay(variant, case, find)
}
