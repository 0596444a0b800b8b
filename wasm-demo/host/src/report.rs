//! What a crash loop saw, printed for someone running it for the first time: what was done,
//! one line per counter saying what it means, and how to replay the run.

use core::time::Duration;

use crate::crash_loop::Plan;
use crate::points::{Cut, Phase, Point};
use crate::power_loss::Effects;

/// What a crash loop saw.
#[derive(Debug)]
pub(crate) struct Report {
    /// The command line that replays the loop, without `--runs`.
    command: String,
    pub(crate) runs: u64,
    pub(crate) completed: u64,
    /// Runs stopped by their fuel budget.
    pub(crate) cuts_by_fuel: u64,
    /// Runs cut at each crash point, by point.
    cuts_at: [u64; Point::ALL.len()],
    /// Runs cut (by fuel or at a point) before recovery finished.
    pub(crate) cuts_in_recovery: u64,
    pub(crate) acknowledged: u64,
    /// Records in the last complete recovery.
    pub(crate) records_recovered: u64,
    /// Records read back over all recoveries.
    pub(crate) records_replayed: u64,
    /// Recoveries that cut a torn tail.
    pub(crate) torn_tails_cut: u64,
    pub(crate) torn_bytes_cut: u64,
    pub(crate) headers_rewritten: u64,
    /// `truncate_front` calls that completed.
    pub(crate) retentions: u64,
    /// Power-loss effects the host applied.
    pub(crate) effects: Effects,
    pub(crate) file_syncs: u64,
    pub(crate) dir_syncs: u64,
    pub(crate) violations: Vec<String>,
    /// The run after which the loop stopped at a violation, if it did.
    pub(crate) stopped_at: Option<u64>,
    pub(crate) elapsed: Duration,
}

impl Report {
    pub(crate) fn new(plan: &Plan) -> Self {
        let command = format!(
            "cargo run --release -p walden-demo-host -- crash-loop {}",
            plan.replay_options()
        );
        Self {
            command,
            runs: 0,
            completed: 0,
            cuts_by_fuel: 0,
            cuts_at: [0; Point::ALL.len()],
            cuts_in_recovery: 0,
            acknowledged: 0,
            records_recovered: 0,
            records_replayed: 0,
            torn_tails_cut: 0,
            torn_bytes_cut: 0,
            headers_rewritten: 0,
            retentions: 0,
            effects: Effects::default(),
            file_syncs: 0,
            dir_syncs: 0,
            violations: Vec::new(),
            stopped_at: None,
            elapsed: Duration::ZERO,
        }
    }

    /// The command that replays the loop up to and including run `runs - 1`.
    pub(crate) fn replay(&self, runs: u64) -> String {
        format!("{} --runs {runs} --verbose", self.command)
    }

    /// Counts a run cut at a crash point.
    pub(crate) fn count_cut(&mut self, cut: &Cut) {
        if let Some(i) = Point::ALL.iter().position(|&p| p == cut.point) {
            self.cuts_at[i] += 1;
        }
        self.cuts_in_recovery += u64::from(cut.phase == Phase::Recovery);
    }

    /// Runs cut short, by fuel or at a crash point.
    pub(crate) fn crashes(&self) -> u64 {
        self.cuts_by_fuel + self.cuts_at.iter().sum::<u64>()
    }
}

/// What each crash point means, for the report.
fn point_meaning(point: Point) -> &'static str {
    match point {
        Point::BeforeSync => "the whole unsynced change of the file at stake",
        Point::AfterSync => "the file durable, nothing acknowledged yet",
        Point::AfterCreate => "a new file or directory whose name is not durable yet",
        Point::AfterRemove => "a removed file that may come back",
        Point::AfterTruncate => "a truncate that may be undone",
        Point::BeforeDirSync => "new and removed names at stake",
        Point::AfterDirSync => "names durable, the caller not told yet",
    }
}

impl core::fmt::Display for Report {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        writeln!(
            f,
            "{} runs of the demo key-value store (wasm32-wasip2 under wasmtime) on one data \
             directory.",
            self.runs
        )?;
        writeln!(
            f,
            "Each run recovers the log and checks it against every acknowledged write, then \
             works until the host cuts the power;"
        )?;
        writeln!(
            f,
            "the host then applies a power loss: only what was not yet synced may change."
        )?;
        if let Some(run) = self.stopped_at {
            writeln!(f, "Stopped after run {run}, the first with a violation.")?;
        }
        if self.runs > 0 && self.crashes() == 0 {
            writeln!(
                f,
                "No run was cut: nothing was checked after a crash (the first run measures, the \
                 second runs recovery only, one in every --full-run-every runs to the end)."
            )?;
        }
        writeln!(f)?;
        let row = |f: &mut core::fmt::Formatter<'_>, label: &str, n: u64, meaning: &str| {
            writeln!(f, "  {label:<26}{n:>8}  {meaning}")
        };
        writeln!(f, "power cut")?;
        row(
            f,
            "at a crash point",
            self.crashes() - self.cuts_by_fuel,
            "the host stopped the guest inside a call that decides durability:",
        )?;
        for (i, point) in Point::ALL.iter().enumerate() {
            row(
                f,
                &format!("  {}", point.name()),
                self.cuts_at[i],
                point_meaning(*point),
            )?;
        }
        row(
            f,
            "by a fuel trap",
            self.cuts_by_fuel,
            "out of fuel at an arbitrary instruction",
        )?;
        row(
            f,
            "during recovery",
            self.cuts_in_recovery,
            "of the above, while recovery ran (a crash during its repairs)",
        )?;
        row(
            f,
            "not cut",
            self.completed,
            "ran to the end (measuring runs, and targets past the end)",
        )?;
        writeln!(f, "power-loss effects")?;
        for (label, n, meaning) in self.effects.kinds() {
            row(f, label, n, meaning)?;
        }
        row(
            f,
            "unsynced bytes lost",
            self.effects.bytes_lost,
            "bytes the guest wrote that read differently after the crash",
        )?;
        writeln!(f, "recovery")?;
        row(
            f,
            "torn tails cut",
            self.torn_tails_cut,
            &format!(
                "recoveries that cut an incomplete tail ({} bytes)",
                self.torn_bytes_cut
            ),
        )?;
        row(
            f,
            "headers rewritten",
            self.headers_rewritten,
            "recoveries that rewrote a torn segment header",
        )?;
        row(
            f,
            "records replayed",
            self.records_replayed,
            &format!(
                "records read back over all recoveries ({} in the last)",
                self.records_recovered
            ),
        )?;
        writeln!(f, "checked")?;
        row(
            f,
            "acknowledged writes",
            self.acknowledged,
            "each must come back, byte for byte, at its LSN",
        )?;
        row(
            f,
            "retentions",
            self.retentions,
            "checkpoints after which truncate_front removed old segments",
        )?;
        row(
            f,
            "syncs seen",
            self.file_syncs,
            &format!(
                "file syncs (and {} directory syncs) the host tracked",
                self.dir_syncs
            ),
        )?;
        row(
            f,
            "violations",
            self.violations.len() as u64,
            "acknowledged write lost or changed, phantom, gap, wrong state, failed recovery",
        )?;
        writeln!(f)?;
        writeln!(f, "replay: {}", self.replay(self.runs))?;
        write!(f, "elapsed: {:.1?}", self.elapsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A loop in which no run was cut says so: its 0 violations checked no crash.
    #[test]
    fn a_loop_without_a_cut_says_so() {
        let mut report = Report::new(&Plan::DEFAULT);
        report.runs = 2;
        report.completed = 2;
        assert!(report.to_string().contains("No run was cut"), "{report}");
        report.runs = 3;
        report.cuts_by_fuel = 1;
        assert!(!report.to_string().contains("No run was cut"), "{report}");
    }
}
