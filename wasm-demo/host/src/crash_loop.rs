//! `crash-loop`: many runs of the guest against one directory, each cut short by a fuel budget,
//! each followed by a simulated power loss, each recovery checked against the model.

use core::time::Duration;
use std::path::Path;
use std::time::Instant;

use anyhow::Result;

use crate::durable::DurableImage;
use crate::model::Model;
use crate::protocol::{self, Line, field};
use crate::rng::SplitMix64;
use crate::runner::{Ending, Guest};

/// The knobs of one crash loop.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    /// Runs in all (completed runs included).
    pub(crate) runs: u64,
    /// Seed of everything: fuel budgets, power-loss outcomes, the guest's workloads.
    pub(crate) seed: u64,
    /// Workload operations per run.
    pub(crate) ops: u64,
    pub(crate) keys: u64,
    pub(crate) min_value: u64,
    pub(crate) max_value: u64,
    pub(crate) segment_size: u64,
    /// Every this many runs, one runs with unlimited fuel (to re-measure the cost of a run).
    pub(crate) full_run_every: u64,
    /// Whether a crash also loses unsynced data (a power loss) or only kills the process.
    pub(crate) power_loss: bool,
    /// Run the deliberately broken guest mode that acknowledges before syncing.
    pub(crate) ack_before_sync: bool,
    /// Print one line per run.
    pub(crate) verbose: bool,
}

/// What a crash loop saw.
#[derive(Debug, Default)]
pub(crate) struct Report {
    pub(crate) runs: u64,
    pub(crate) crashes: u64,
    pub(crate) completed: u64,
    pub(crate) acknowledged: u64,
    /// Records in the last complete recovery.
    pub(crate) records_recovered: u64,
    /// Records read back over all recoveries.
    pub(crate) records_replayed: u64,
    /// Recoveries that cut a torn tail.
    pub(crate) torn_tails_cut: u64,
    pub(crate) torn_bytes_cut: u64,
    pub(crate) headers_rewritten: u64,
    /// Power-loss effects the host applied.
    pub(crate) files_dropped: u64,
    pub(crate) tails_cut: u64,
    pub(crate) tails_zeroed: u64,
    pub(crate) unsynced_bytes_lost: u64,
    pub(crate) crashes_in_recovery: u64,
    pub(crate) file_syncs: u64,
    pub(crate) dir_syncs: u64,
    pub(crate) violations: Vec<String>,
    pub(crate) elapsed: Duration,
}

impl core::fmt::Display for Report {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        writeln!(f, "runs:                 {}", self.runs)?;
        writeln!(
            f,
            "crashes:              {} ({} during recovery)",
            self.crashes, self.crashes_in_recovery
        )?;
        writeln!(f, "completed runs:       {}", self.completed)?;
        writeln!(f, "acknowledged writes:  {}", self.acknowledged)?;
        writeln!(
            f,
            "records recovered:    {} in the last recovery, {} replayed in all",
            self.records_recovered, self.records_replayed
        )?;
        writeln!(
            f,
            "torn tails cut:       {} ({} bytes), torn headers rewritten: {}",
            self.torn_tails_cut, self.torn_bytes_cut, self.headers_rewritten
        )?;
        writeln!(
            f,
            "power loss applied:   {} tails cut, {} tails zeroed, {} new files dropped, {} unsynced bytes lost",
            self.tails_cut, self.tails_zeroed, self.files_dropped, self.unsynced_bytes_lost
        )?;
        writeln!(
            f,
            "syncs seen:           {} file, {} directory",
            self.file_syncs, self.dir_syncs
        )?;
        writeln!(f, "violations:           {}", self.violations.len())?;
        write!(f, "elapsed:              {:.1?}", self.elapsed)
    }
}

/// Runs the crash loop in `data` (which should start empty).
pub(crate) fn crash_loop(guest: &Guest, data: &Path, plan: &Plan) -> Result<Report> {
    let start = Instant::now();
    let mut rng = SplitMix64::new(plan.seed);
    let mut image = DurableImage::of(data)?;
    let mut model = Model::default();
    let mut report = Report::default();
    // Fuel of the last full run, and of the last recovery-only probe; budgets are drawn from
    // these. Zero: not measured yet.
    let (mut full_cost, mut recovery_cost) = (0u64, 0u64);
    for run in 0..plan.runs {
        let run_seed = rng.next_u64();
        let phase = run % plan.full_run_every;
        // A probe runs recovery and no workload, to measure what recovery costs now.
        let probe = phase == 1 || (recovery_cost == 0 && full_cost != 0);
        let budget = if full_cost == 0 || phase == 0 || probe {
            u64::MAX / 2
        } else if run % 2 == 0 {
            // Random: anywhere in a run, recovery included.
            rng.between(1, full_cost)
        } else {
            // Swept: walk the budget through the workload part of a run in small steps, with
            // jitter, so over the loop the trap lands on every phase of append, sync, rotation.
            let work = full_cost.saturating_sub(recovery_cost).max(1);
            let steps = (plan.runs / 2).max(1);
            let step = (work / steps).max(1);
            recovery_cost + ((run / 2) % steps) * step + rng.between(0, step)
        };
        let args = guest_args(plan, run_seed, if probe { 0 } else { plan.ops });
        let (outcome, next_image) = guest.run(data, &args, budget, image)?;
        image = next_image;
        report.runs += 1;

        let lines = match protocol::parse(&outcome.stdout) {
            Ok(lines) => lines,
            Err(e) => {
                report
                    .violations
                    .push(format!("run {run}: unreadable output: {e:#}"));
                Vec::new()
            }
        };
        let check = model.check_run(&lines);
        report.records_replayed += check.recovered;
        report.acknowledged += check.acked;
        if check.dump_complete {
            report.records_recovered = check.recovered;
        }
        for line in &lines {
            if let Line::Recovery(pairs) = line {
                report.torn_tails_cut += u64::from(field(pairs, "torn_tail_cut") == Some("1"));
                report.torn_bytes_cut += field(pairs, "cut_bytes")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                report.headers_rewritten +=
                    u64::from(field(pairs, "rewritten_header") == Some("1"));
            }
        }
        let replay = format!(
            "replay: --seed {} --runs {} (run {run}, guest seed {run_seed}, fuel {budget})",
            plan.seed,
            run + 1
        );
        for violation in check.violations {
            report
                .violations
                .push(format!("run {run}: {violation}; {replay}"));
        }

        match outcome.ending {
            Ending::Finished if probe => {
                report.completed += 1;
                recovery_cost = outcome.fuel_used;
            }
            Ending::Finished => {
                report.completed += 1;
                full_cost = outcome.fuel_used;
            }
            Ending::OutOfFuel => {
                report.crashes += 1;
                report.crashes_in_recovery += u64::from(!check.dump_complete);
            }
            Ending::Failed => {
                report.violations.push(format!(
                    "run {run}: the guest failed: {}; stderr: {}; {replay}",
                    outcome.failure.as_deref().unwrap_or("?"),
                    outcome.stderr.trim()
                ));
            }
        }
        if outcome.ending != Ending::Finished {
            if plan.power_loss {
                let effects = image.crash(&mut rng)?;
                report.files_dropped += effects.files_dropped;
                report.tails_cut += effects.tails_cut;
                report.tails_zeroed += effects.tails_zeroed;
                report.unsynced_bytes_lost += effects.bytes_lost;
            } else {
                image.settle()?;
            }
        }
        if plan.verbose {
            eprintln!(
                "run {run:4}: {:?} fuel {}/{budget} recovered {} acked {} log {} (acked LSN {})",
                outcome.ending,
                outcome.fuel_used,
                check.recovered,
                check.acked,
                model.len(),
                model.acked()
            );
        }
    }
    report.file_syncs = image.file_syncs;
    report.dir_syncs = image.dir_syncs;
    if report.acknowledged > 0 && report.file_syncs == 0 && !plan.ack_before_sync {
        report.violations.push(
            "the sync hooks saw no sync: the power-loss model is not wired to this guest".into(),
        );
    }
    report.elapsed = start.elapsed();
    Ok(report)
}

fn guest_args(plan: &Plan, seed: u64, ops: u64) -> Vec<String> {
    let mut args: Vec<String> = [
        ("--ops", ops),
        ("--seed", seed),
        ("--keys", plan.keys),
        ("--min-value", plan.min_value),
        ("--max-value", plan.max_value),
        ("--segment-size", plan.segment_size),
    ]
    .iter()
    .flat_map(|(flag, value)| [(*flag).to_owned(), value.to_string()])
    .collect();
    if plan.ack_before_sync {
        args.push("--ack-before-sync".into());
    }
    // Write-through: every record reaches the host as soon as it is written, so a trap between
    // a write and its sync leaves unsynced bytes for the power-loss model to tear or drop.
    args.extend(["--write-buffer".to_owned(), "0".to_owned()]);
    args
}
