//! `conformance`: the cross-adapter conformance suite (`walden-conformance`) run over
//! `WasiStorage` inside the guest, one guest run per stretch of cases.
//!
//! The guest aborts on a panic (wasm has no unwinding on stable Rust), so a failing case ends
//! the run; its panic hook prints the failure first. The host then restarts the guest at the
//! next case, so one failure does not hide the cases after it. The guest's lines are described
//! in its `conformance.rs`.

use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::durable::DurableImage;
use crate::runner::{Ending, Guest, RunOptions};

/// The outcome of one case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CaseResult {
    pub(crate) index: usize,
    pub(crate) name: String,
    /// `None` if the case passed, else why it failed.
    pub(crate) failure: Option<String>,
}

/// Every case the guest ran.
#[derive(Debug, Default)]
pub(crate) struct SuiteReport {
    /// The number of cases the guest's suite has.
    pub(crate) cases: usize,
    pub(crate) results: Vec<CaseResult>,
    /// Guest runs it took (one, plus one per failed case that was not the last).
    pub(crate) runs: usize,
}

impl SuiteReport {
    pub(crate) fn passed(&self) -> usize {
        self.results.iter().filter(|r| r.failure.is_none()).count()
    }

    pub(crate) fn failed(&self) -> usize {
        self.results.len() - self.passed()
    }
}

impl core::fmt::Display for SuiteReport {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for r in &self.results {
            match &r.failure {
                None => writeln!(f, "CASE {} {} ok", r.index, r.name)?,
                Some(why) => writeln!(f, "CASE {} {} FAILED: {why}", r.index, r.name)?,
            }
        }
        write!(
            f,
            "{} passed, {} failed ({} cases in the suite, {} guest runs)",
            self.passed(),
            self.failed(),
            self.cases,
            self.runs
        )
    }
}

/// Runs the whole suite in the guest against fresh subdirectories of `data`.
pub(crate) fn run_suite(guest: &Guest, data: &Path) -> Result<SuiteReport> {
    let mut report = SuiteReport::default();
    let mut from = 0;
    loop {
        let args = [
            "--conformance".to_owned(),
            "--from".to_owned(),
            from.to_string(),
        ];
        let (outcome, _) = guest.run(data, &args, RunOptions::whole(), DurableImage::of(data)?)?;
        report.runs += 1;
        let mut failed_at = None;
        for line in outcome.stdout.lines() {
            let words: Vec<&str> = line.splitn(5, ' ').collect();
            match words.as_slice() {
                ["CASES", n] => report.cases = n.parse().context("CASES count")?,
                ["CASE", index, name, "ok"] => report.results.push(CaseResult {
                    index: index.parse().context("case index")?,
                    name: (*name).to_owned(),
                    failure: None,
                }),
                ["CASE", index, name, "failed", rest @ ..] => {
                    let index: usize = index.parse().context("case index")?;
                    failed_at = Some(index);
                    report.results.push(CaseResult {
                        index,
                        name: (*name).to_owned(),
                        failure: Some(rest.join(" ")),
                    });
                }
                ["CONFORMANCE", ..] => {}
                _ => bail!("unexpected conformance line {line:?}"),
            }
        }
        if outcome.ending == Ending::Finished {
            return Ok(report);
        }
        // The run died: at the case its panic hook named, or (no hook ran) at the case after
        // the last one that passed.
        let died_at = match failed_at {
            Some(index) => index,
            None => {
                let index = report.results.last().map_or(from, |r| r.index + 1);
                report.results.push(CaseResult {
                    index,
                    name: "?".into(),
                    failure: Some(format!(
                        "the guest died: {}; stderr: {}",
                        outcome.failure.as_deref().unwrap_or("?"),
                        outcome.stderr.trim()
                    )),
                });
                index
            }
        };
        if report.cases == 0 {
            bail!(
                "the guest died before listing its cases: {}",
                outcome.stderr.trim()
            );
        }
        from = died_at + 1;
        if from >= report.cases {
            return Ok(report);
        }
    }
}
