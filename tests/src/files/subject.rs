//! walden-std over the simulated file system as a [`Subject`] of the explorer.

use core::panic::AssertUnwindSafe;
use std::panic::catch_unwind;

use walden_core::{Lsn, RecoveryPolicy, RecoveryReport, parse_segment_name};
use walden_sim::{CaseId, CrashBounds, CrashPlan, CrashStates, SimFs};
use walden_std::{FileError, LOCK_FILE, ReplayError};

use super::variant::FileVariant;
use super::workload::{FileWorkload, OpenLog, drive, open_log_replaying};
use crate::explorer::{Outcome, Recovered, Recovery, Run, Subject};

impl Subject for FileVariant {
    type Workload = FileWorkload;
    type Medium = SimFs;
    type Log = OpenLog;
    type Error = FileError;

    fn name_of(workload: &FileWorkload) -> &'static str {
        workload.name
    }

    fn seed_of(workload: &FileWorkload) -> u64 {
        workload.seed
    }

    fn is_correct(&self) -> bool {
        *self == FileVariant::Correct
    }

    fn replay_call(&self, case: &CaseId) -> String {
        match self {
            FileVariant::Correct => format!("walden_tests::files::replay(\"{case}\")"),
            variant => {
                format!("walden_tests::files::replay_variant(FileVariant::{variant:?}, \"{case}\")")
            }
        }
    }

    fn run(&self, workload: &FileWorkload, budget: Option<u64>) -> Run<SimFs> {
        let driven = drive(workload, *self, budget, None);
        Run {
            model: driven.model,
            problems: driven.problems,
            medium: driven.fs.inner().snapshot(),
        }
    }

    fn changes_state(medium: &SimFs) -> Vec<bool> {
        medium
            .trace()
            .iter()
            .map(|entry| entry.op.changes_state())
            .collect()
    }

    fn describe_op(medium: &SimFs, index: usize) -> String {
        medium.describe_op(&medium.trace()[index])
    }

    fn crash_states(medium: &SimFs, bounds: &CrashBounds) -> CrashStates {
        medium.crash_states(bounds)
    }

    fn plan_for(medium: &SimFs, case: &CaseId, bounds: &CrashBounds) -> Option<CrashPlan> {
        medium.plan_for(case, bounds)
    }

    fn crash(medium: &SimFs, plan: &CrashPlan) -> SimFs {
        medium.crash(plan)
    }

    fn fingerprint(medium: &SimFs) -> u64 {
        medium.fingerprint()
    }

    fn volatile(medium: &SimFs) -> bool {
        !medium.unsynced_effects().is_empty()
    }

    fn describe(medium: &SimFs, plan: &CrashPlan) -> String {
        medium.describe(plan)
    }

    fn recover(
        &self,
        workload: &FileWorkload,
        mut medium: SimFs,
        policy: RecoveryPolicy,
        budget: Option<u64>,
    ) -> Recovery<Self> {
        if let Some(budget) = budget {
            medium.crash_after(budget);
        }
        let fs = workload.fs_on(*self, medium);
        let outcome = match catch_unwind(AssertUnwindSafe(|| open_and_read(workload, &fs, policy)))
        {
            Ok(outcome) => outcome,
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                Outcome::Broken("arbitrary images: recovery panicked", what)
            }
        };
        Recovery {
            outcome,
            after: fs.inner().snapshot(),
        }
    }

    /// Only what recovery's report calls a repair (a cut, a rewritten header, a removed
    /// segment). Removing a leftover spare, zero-filling the active segment and preparing the
    /// next spare happen at nearly every open; crashes during them are explored at the
    /// workloads' own reopens and kills, not again after every crash state. Stale segment
    /// files (a restored copy below the log's start) are reported but left as they are: not a
    /// repair either.
    fn repaired(&self, recovery: &Recovery<Self>) -> bool {
        match &recovery.outcome {
            Outcome::Opened(got, _) => got
                .report
                .is_some_and(|r| !RecoveryReport { stale: 0, ..r }.is_clean()),
            _ => false,
        }
    }

    fn append(&self, log: &mut OpenLog, payload: &[u8], sync: bool) -> Result<Lsn, String> {
        log.append(payload, sync)
    }

    fn durable_lsn(log: &OpenLog) -> Lsn {
        log.durable_lsn()
    }

    fn snapshot(log: &OpenLog) -> SimFs {
        log.fs.inner().snapshot()
    }
}

fn open_and_read(
    workload: &FileWorkload,
    fs: &super::variant::TestFs,
    policy: RecoveryPolicy,
) -> Outcome<FileError, OpenLog> {
    let (log, report, handed) = match open_log_replaying(workload, fs, policy) {
        Ok(opened) => opened,
        Err(ReplayError::Log(walden_std::Error::Open { error, .. })) => {
            return Outcome::Refused(error);
        }
        Err(ReplayError::Log(e)) => {
            return Outcome::Broken("classification", format!("open failed: {e}"));
        }
        Err(e) => return Outcome::Broken("replay", format!("open_replaying failed: {e}")),
    };
    let records = match log.read_all() {
        Ok(records) => records,
        Err(e) => {
            return Outcome::Broken(
                "prefix",
                format!("a record of the recovered log does not read back: {e}"),
            );
        }
    };
    if let Err(why) = segment_set(&log, report.stale) {
        return Outcome::Broken("segment set", why);
    }
    // A replay hands over exactly the recovered log, each record once, in order: nothing the
    // open then removed, nothing twice, nothing missing.
    if let Some(handed) = handed
        && handed != records
    {
        let first = handed
            .iter()
            .zip(&records)
            .position(|(h, r)| h != r)
            .unwrap_or(handed.len().min(records.len()));
        return Outcome::Broken(
            "replay",
            format!(
                "open_replaying handed over {} records, the recovered log holds {}; they differ \
                 from the {}th on (handed {:?}, recovered {:?})",
                handed.len(),
                records.len(),
                first + 1,
                handed.get(first).map(|h| h.0),
                records.get(first).map(|r| r.0),
            ),
        );
    }
    let recovered = Recovered {
        first: log.first_lsn(),
        records,
        report: Some(report),
    };
    if recovered.last() != log.last_lsn() || report.last_lsn != log.last_lsn() {
        return Outcome::Broken(
            "prefix",
            format!(
                "read {} records up to {}, but the log says it ends at {} (report {})",
                recovered.records.len(),
                recovered.last(),
                log.last_lsn(),
                report.last_lsn
            ),
        );
    }
    Outcome::Opened(recovered, Some(log))
}

/// The directory holds exactly the log's segments (consecutive ids), the `stale` segment files
/// the open reported leaving out (older than the log's first segment and not leading up to it:
/// a restored copy), the lock file, the start slots, and at most the spare of the next segment:
/// no leftovers, nothing missing.
fn segment_set(log: &OpenLog, stale: u32) -> Result<(), String> {
    let names = log
        .fs
        .inner()
        .with(|sim| sim.names())
        .map_err(|e| e.to_string())?;
    let held = log.segment_ids();
    let next = held.last().map_or(0, |last| last + 1);
    let mut listed = Vec::new();
    for name in names {
        if let Some(id) = parse_segment_name(&name) {
            // The start slots, which hold where the log starts, are not segments.
            if !walden_core::raw::is_start_slot(id) {
                listed.push(id);
            }
        } else if name == LOCK_FILE || name == format!("{next:020}.spare") {
        } else {
            return Err(format!("a leftover in the log directory: {name}"));
        }
    }
    let stale = (stale as usize).min(listed.len());
    let (left_out, listed) = listed.split_at(stale);
    if listed != held {
        return Err(format!(
            "the directory holds segments {listed:?} (and {left_out:?} left out as stale), the \
             log {held:?}"
        ));
    }
    if let (Some(&newest), Some(&first)) = (left_out.last(), held.first())
        && newest.checked_add(1) >= Some(first)
    {
        return Err(format!(
            "segment {newest} was left out as stale, but the log's first segment, {first}, \
             follows right after it"
        ));
    }
    if held.windows(2).any(|w| w[1] != w[0] + 1) {
        return Err(format!("segment ids are not consecutive: {held:?}"));
    }
    Ok(())
}
