//! `crash-loop`: many runs of the guest against one directory, each cut short at a crash point
//! or by a fuel budget, each followed by a simulated power loss, each recovery checked against
//! the model.
//!
//! The seed chooses every run's workload and cut (`schedule.rs`) and every power loss
//! (`power_loss.rs`), so a loop replays from its options; the report prints the command.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::durable::DurableImage;
use crate::limits;
use crate::model::Model;
use crate::power_loss::power_loss;
use crate::protocol::{self, Line, field};
use crate::report::Report;
use crate::rng::SplitMix64;
use crate::runner::{Ending, Guest, RunOptions};
use crate::schedule::{Cut, Schedule, Workload};

/// A deliberately broken guest, to prove the loop catches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Broken {
    /// Acknowledges before syncing (and syncs every 8 puts).
    AckBeforeSync,
    /// Skips the directory sync after creating a segment.
    SkipDirSync,
    /// Creates the log directory without syncing the preopen that holds its name.
    ParentNotSynced,
}

impl Broken {
    pub(crate) const fn flag(self) -> &'static str {
        match self {
            Self::AckBeforeSync => "--ack-before-sync",
            Self::SkipDirSync => "--skip-dir-sync",
            Self::ParentNotSynced => "--skip-parent-sync",
        }
    }

    /// Whether `violation` (with the crashes it names) is the one this bug must cause, so
    /// that `--expect-violations` does not pass a broken guest caught for another reason (a
    /// guest that fails to start, output the host cannot read).
    pub(crate) fn explains(self, violation: &str) -> bool {
        // An acknowledged record lost or changed, named with the run that acknowledged it. A
        // recovery that failed names the last acknowledged record too (how much the log
        // held), so it is not such a loss: any other bug (a storage error, a torn tail taken
        // for damage) would pass for this one.
        let failed = violation.contains(": recovery failed: ");
        let lost = violation.contains("acknowledged in run") && !failed;
        // The one refusal a dropped segment causes: the segment before it names it in its seal.
        let missing = failed
            && (violation.contains(": recovery failed: MissingNewestSegment ")
                || violation.contains(": recovery failed: MissingSegment "));
        match self {
            Self::AckBeforeSync => lost,
            // A power loss dropped a segment whose creation was reported durable.
            Self::SkipDirSync => {
                (lost || missing)
                    && violation.contains(".wal: created since the last directory sync, dropped")
            }
            // A power loss dropped the log directory, with acknowledged records in it.
            Self::ParentNotSynced => {
                lost && violation.contains("wal/: created since the last sync of /data, dropped")
            }
        }
    }
}

/// The knobs of one crash loop.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    /// Runs in all (completed runs included).
    pub(crate) runs: u64,
    /// Seed of everything: crash points, fuel budgets, power-loss outcomes, the workloads.
    pub(crate) seed: u64,
    /// Workload operations per run.
    pub(crate) ops: u64,
    pub(crate) keys: u64,
    pub(crate) min_value: u64,
    pub(crate) max_value: u64,
    pub(crate) segment_size: u64,
    /// The guest compacts its log above this many segments (0: never).
    pub(crate) retain_segments: u64,
    /// Every this many runs, one runs to the end (to re-measure the cost of a run).
    pub(crate) full_run_every: u64,
    /// Whether a crash also loses unsynced data (a power loss) or only kills the process.
    pub(crate) power_loss: bool,
    /// Run a deliberately broken guest.
    pub(crate) broken: Option<Broken>,
    /// Stop after the first run that shows a violation.
    pub(crate) stop_at_violation: bool,
    /// Print one line per run.
    pub(crate) verbose: bool,
}

impl Plan {
    /// The defaults of the command line (`crash-loop` with no options).
    pub(crate) const DEFAULT: Self = Self {
        runs: 2500,
        seed: 0x5741_4c44,
        ops: 40,
        keys: 16,
        min_value: 8,
        max_value: 256,
        segment_size: 4096,
        retain_segments: 2,
        full_run_every: 20,
        power_loss: true,
        broken: None,
        stop_at_violation: false,
        verbose: false,
    };

    /// Checks the knobs before any run: options the guest would refuse (or fail on in every run)
    /// would otherwise show up as a violation in every run, blamed on the log, and would let
    /// `--expect-violations` pass without the broken guest being caught; options under which
    /// no run can be cut would let the loop pass without a single crash (a short `--runs`, which
    /// replay lines use, is allowed: the report then says that no run was cut).
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.runs == 0 {
            return Err("--runs 0: nothing would run".into());
        }
        if self.full_run_every < 3 {
            return Err(format!(
                "--full-run-every {}: every run would run to the end (one in this many is \
                 measured, the next runs recovery only); use 3 or more",
                self.full_run_every
            ));
        }
        if self.min_value > self.max_value {
            return Err(format!(
                "--min-value {} is above --max-value {}",
                self.min_value, self.max_value
            ));
        }
        if self.max_value > GUEST_MAX_VALUE {
            return Err(format!(
                "--max-value {}: the guest's records hold values of at most {GUEST_MAX_VALUE} \
                 bytes",
                self.max_value
            ));
        }
        if self.keys == 0 {
            return Err("--keys 0: the workload needs at least one key".into());
        }
        walden_core::Config::default()
            .with_segment_size(self.segment_size)
            .validate()
            .map_err(|e| format!("--segment-size {}: {e}", self.segment_size))
    }

    /// The options that reproduce this plan's runs (all but `--runs`), for replay lines.
    pub(crate) fn replay_options(&self) -> String {
        let mut options = format!("--seed {:#x}", self.seed);
        let knobs = [
            ("--ops", self.ops, Self::DEFAULT.ops),
            ("--keys", self.keys, Self::DEFAULT.keys),
            ("--min-value", self.min_value, Self::DEFAULT.min_value),
            ("--max-value", self.max_value, Self::DEFAULT.max_value),
            (
                "--segment-size",
                self.segment_size,
                Self::DEFAULT.segment_size,
            ),
            (
                "--retain-segments",
                self.retain_segments,
                Self::DEFAULT.retain_segments,
            ),
            (
                "--full-run-every",
                self.full_run_every,
                Self::DEFAULT.full_run_every,
            ),
        ];
        for (flag, value, default) in knobs {
            if value != default {
                options.push_str(&format!(" {flag} {value}"));
            }
        }
        if let Some(broken) = self.broken {
            options.push(' ');
            options.push_str(broken.flag());
        }
        if !self.power_loss {
            options.push_str(" --no-power-loss");
        }
        options
    }
}

/// The largest value the guest's entry limits accept (`wasm-demo/limits.rs`, which the guest
/// includes too).
const GUEST_MAX_VALUE: u64 = limits::MAX_VALUE as u64;

/// Fails unless `data` holds no entry: the model starts from an empty log, so records left by
/// an earlier loop would be reported as phantoms (and a lost one would go unnoticed).
pub(crate) fn ensure_empty(data: &Path) -> Result<()> {
    let mut entries =
        std::fs::read_dir(data).with_context(|| format!("listing {}", data.display()))?;
    if let Some(entry) = entries.next() {
        bail!(
            "the data directory {} is not empty (it holds {:?}): the crash loop checks the log \
             against everything acknowledged since it was empty; give it a new directory",
            data.display(),
            entry?.file_name()
        );
    }
    Ok(())
}

/// Runs the crash loop in `data`, which must be empty ([`ensure_empty`]).
pub(crate) fn crash_loop(component: &Guest, data: &Path, plan: &Plan) -> Result<Report> {
    plan.validate().map_err(anyhow::Error::msg)?;
    ensure_empty(data)?;
    let start = Instant::now();
    let mut rng = SplitMix64::new(plan.seed);
    let mut image = DurableImage::of(data)?;
    let mut model = Model::default();
    let mut report = Report::new(plan);
    let mut schedule = Schedule::default();
    // The crashes since the last complete recovery, for violation messages: what one of them
    // broke shows in the next recovery that runs to its end.
    let mut unchecked: Vec<String> = Vec::new();
    for run in 0..plan.runs {
        let run_seed = rng.next_u64();
        // A probe runs recovery and no workload, to measure what recovery costs now.
        let probe = run % plan.full_run_every == 1
            || (schedule.recovery_cost == 0 && schedule.full_cost != 0);
        let guest = Workload::draw(plan, run_seed, probe, &mut rng);
        let cut = schedule.choose(plan, run, probe, guest.sync_every, &mut rng);
        let options = RunOptions {
            fuel: match cut {
                Cut::Fuel(budget) => budget,
                _ => u64::MAX / 2,
            },
            target: match cut {
                Cut::At(target) => Some(target),
                _ => None,
            },
            real_sync: false,
            fail_writes: None,
        };
        let (outcome, next_image) = component.run(data, &guest.args(plan), options, image)?;
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
        let check = model.check_run(run, &lines);
        report.records_replayed += check.recovered;
        report.acknowledged += check.acked;
        if check.dump_complete {
            report.records_recovered = check.recovered;
            if schedule.damaged {
                schedule.repair_events = schedule.repair_events.max(&outcome.events);
            }
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
            if let Line::Retained { .. } = line {
                report.retentions += 1;
            }
        }
        let how = match (&outcome.cut, cut) {
            (Some(at), _) => format!("cut {at}"),
            (None, Cut::Fuel(budget)) if outcome.ending == Ending::OutOfFuel => format!(
                "out of fuel after {budget} units in {}",
                if recovery_ended(&lines) {
                    "workload"
                } else {
                    "recovery"
                }
            ),
            _ => "ran to the end".to_owned(),
        };
        let before = crashes_before(&unchecked);
        for violation in check.violations {
            report.violations.push(format!(
                "run {run}: {violation}\n{before}  replay: {}",
                report.replay(run + 1)
            ));
        }
        if check.dump_complete {
            unchecked.clear();
        }

        let crashed = match outcome.ending {
            Ending::Finished => {
                report.completed += 1;
                if probe {
                    schedule.recovery_cost = outcome.fuel_used;
                } else {
                    schedule.full_cost = outcome.fuel_used;
                    schedule.measured(guest.sync_every, outcome.events);
                }
                false
            }
            Ending::OutOfFuel => {
                report.cuts_by_fuel += 1;
                report.cuts_in_recovery += u64::from(!recovery_ended(&lines));
                true
            }
            Ending::PowerCut => {
                if let Some(at) = &outcome.cut {
                    report.count_cut(at);
                }
                true
            }
            Ending::Failed => {
                // A refused open was reported by the model, with the record; anything else is
                // reported here.
                let refused = lines.iter().any(|l| matches!(l, Line::OpenFailed(_)));
                if !refused {
                    report.violations.push(format!(
                        "run {run}: the guest failed: {}; stderr: {}\n{before}  replay: {}",
                        outcome.failure.as_deref().unwrap_or("?"),
                        outcome.stderr.trim(),
                        report.replay(run + 1)
                    ));
                }
                true
            }
        };
        let mut loss_notes = Vec::new();
        if crashed {
            if plan.power_loss {
                let loss = power_loss(&mut image, &report.effects, &mut rng)?;
                report.effects.add(&loss.effects);
                schedule.damaged = loss.effects != Default::default() || !check.dump_complete;
                loss_notes = loss.notes;
            } else {
                image.settle()?;
                schedule.damaged = false;
            }
            let buffered = if guest.write_buffer > 0 {
                " (the guest buffered its writes until each sync: unflushed ones died with it)"
            } else {
                ""
            };
            unchecked.push(format!(
                "run {run} {how}{buffered}; power loss: {}",
                if loss_notes.is_empty() {
                    "nothing unsynced changed".to_owned()
                } else {
                    loss_notes.join("; ")
                }
            ));
        } else {
            schedule.damaged = false;
        }
        if plan.verbose {
            eprintln!(
                "run {run:4}: {how}; recovered {} acked {} (log {}, acked LSN {}){}",
                check.recovered,
                check.acked,
                model.len(),
                model.acked(),
                if loss_notes.is_empty() {
                    String::new()
                } else {
                    format!("; power loss: {}", loss_notes.join("; "))
                }
            );
        }
        if plan.stop_at_violation && !report.violations.is_empty() {
            report.stopped_at = Some(run);
            break;
        }
    }
    report.file_syncs = image.file_syncs;
    report.dir_syncs = image.dir_syncs;
    if report.acknowledged > 0 && report.file_syncs == 0 && plan.broken.is_none() {
        report.violations.push(
            "the sync hooks saw no sync: the power-loss model is not wired to this guest".into(),
        );
    }
    report.elapsed = start.elapsed();
    Ok(report)
}

/// Whether the guest's recovery had ended: `Wal::open` returned, so the guest printed its
/// `RECOVERY` (or `OPENFAILED`) line. A cut after it, while the guest reads the records back,
/// is not during recovery's repairs; the crash points use the same boundary (`points.rs`).
fn recovery_ended(lines: &[Line]) -> bool {
    lines
        .iter()
        .any(|l| matches!(l, Line::Recovery(_) | Line::OpenFailed(_)))
}

/// The lines naming the crashes a violation may come from.
fn crashes_before(unchecked: &[String]) -> String {
    match unchecked {
        [] => "  no crash since the last complete recovery\n".to_owned(),
        [one] => format!("  after the crash: {one}\n"),
        many => {
            let mut text =
                "  after these crashes (each recovery in between was cut short):\n".to_owned();
            for crash in many {
                text.push_str(&format!("    {crash}\n"));
            }
            text
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_plan_is_valid() {
        assert_eq!(Plan::DEFAULT.validate(), Ok(()));
    }

    /// Options under which every run would fail in the guest, or no run could be cut, are
    /// refused before the loop starts, naming the option.
    #[test]
    fn plans_the_guest_cannot_run_or_that_cut_nothing_are_refused() {
        let refused = |plan: Plan, flag: &str| {
            let e = plan.validate().expect_err(flag);
            assert!(e.contains(flag), "{e}");
        };
        refused(
            Plan {
                min_value: 300,
                max_value: 200,
                ..Plan::DEFAULT
            },
            "--min-value",
        );
        refused(
            Plan {
                max_value: 70_000,
                ..Plan::DEFAULT
            },
            "--max-value",
        );
        refused(
            Plan {
                segment_size: 50,
                ..Plan::DEFAULT
            },
            "--segment-size",
        );
        refused(
            Plan {
                keys: 0,
                ..Plan::DEFAULT
            },
            "--keys",
        );
        refused(
            Plan {
                full_run_every: 2,
                ..Plan::DEFAULT
            },
            "--full-run-every",
        );
        refused(
            Plan {
                runs: 0,
                ..Plan::DEFAULT
            },
            "--runs",
        );
        // A replay line of a violation in the first runs asks for one or two runs.
        assert_eq!(
            Plan {
                runs: 1,
                ..Plan::DEFAULT
            }
            .validate(),
            Ok(())
        );
        assert_eq!(
            Plan {
                max_value: GUEST_MAX_VALUE,
                full_run_every: 3,
                ..Plan::DEFAULT
            }
            .validate(),
            Ok(())
        );
    }

    /// Each broken guest is accepted only for its own kind of violation.
    #[test]
    fn a_broken_guest_caught_for_another_reason_does_not_count() {
        let failed = "run 3: the guest failed: exited with status 2; stderr: bad option";
        let lost = "run 4: lost records: the first lost is LSN 1 `put k 01` (acknowledged in \
                    run 2)\n  after the crash: run 3 cut; power loss: ";
        // A recovery that failed for another reason names the last acknowledged record too.
        let refused = "run 4: recovery failed: Storage in segment 0 at offset 0; the log holds 3 \
                       acknowledged records, the last is LSN 3 `put k 03` (acknowledged in run \
                       2)\n  after the crash: run 3 cut; power loss: wal/00000000000000000002.wal: \
                       created since the last directory sync, dropped";
        for broken in [
            Broken::AckBeforeSync,
            Broken::SkipDirSync,
            Broken::ParentNotSynced,
        ] {
            assert!(!broken.explains(failed), "{broken:?}");
            assert!(!broken.explains(refused), "{broken:?}");
        }
        let missing = refused.replace(": Storage in", ": MissingNewestSegment in");
        assert!(Broken::SkipDirSync.explains(&missing));
        assert!(!Broken::AckBeforeSync.explains(&missing));
        assert!(Broken::AckBeforeSync.explains(lost));
        let segment = format!(
            "{lost}wal/00000000000000000002.wal: created since the last directory sync, dropped"
        );
        assert!(Broken::SkipDirSync.explains(&segment));
        assert!(!Broken::ParentNotSynced.explains(&segment));
        let dir = format!("{lost}wal/: created since the last sync of /data, dropped with");
        assert!(Broken::ParentNotSynced.explains(&dir));
        assert!(!Broken::SkipDirSync.explains(&dir));
    }

    /// A directory left by an earlier loop is refused: its records would be phantoms to a
    /// model that starts empty.
    #[test]
    fn a_non_empty_data_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        ensure_empty(dir.path()).unwrap();
        std::fs::write(dir.path().join("00000000000000000001.wal"), b"x").unwrap();
        let e = ensure_empty(dir.path()).unwrap_err().to_string();
        assert!(e.contains("not empty"), "{e}");
    }

    /// A fuel trap while the guest prints the recovered records is after recovery (its
    /// repairs are done): only a trap before `Wal::open` returned counts as during recovery,
    /// as for the crash points.
    #[test]
    fn recovery_ends_when_the_open_returns_not_when_the_dump_does() {
        let parsed = |out: &str| protocol::parse(out).unwrap();
        assert!(!recovery_ended(&parsed("")));
        assert!(recovery_ended(&parsed(
            "RECOVERY created=0 records=2 first_lsn=1\nREC 1 put a 01\n"
        )));
        assert!(recovery_ended(&parsed(
            "OPENFAILED case=Other segment=0 offset=0 lsn=0\n"
        )));
    }

    /// The replay line carries every option that changes what the runs do.
    #[test]
    fn replay_options_name_what_differs_from_the_defaults() {
        assert_eq!(Plan::DEFAULT.replay_options(), "--seed 0x57414c44");
        let plan = Plan {
            keys: 8,
            segment_size: 8192,
            broken: Some(Broken::SkipDirSync),
            power_loss: false,
            verbose: true,
            ..Plan::DEFAULT
        };
        assert_eq!(
            plan.replay_options(),
            "--seed 0x57414c44 --keys 8 --segment-size 8192 --skip-dir-sync --no-power-loss"
        );
    }
}
