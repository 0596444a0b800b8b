//! The crash-point explorer: crash after every storage operation of a workload, enumerate the
//! legal crash states there, recover each under every policy, crash recovery itself, append
//! after recovery and crash again; check every state against the model.

use core::hash::{Hash, Hasher};
use core::time::Duration;
use std::collections::HashSet;
use std::fmt;
use std::time::Instant;

use walden_core::{Lsn, OpenError, RecoveryPolicy};
use walden_sim::{CaseId, CrashBounds, CrashPlan, PlanPick};

use super::check::{Finding, Outcome, Recovered, check_log, check_pure_crash};
use super::model::Model;
use super::storage::Variant;
use super::subject::Subject;
use super::workload::payload;

/// How far and how hard to explore, and what: `V` is the [`Subject`] (the core over the
/// simulated storage by default, or walden-std over the simulated file system), broken on
/// purpose or not.
#[derive(Clone, Copy, Debug)]
pub struct Explorer<V = Variant> {
    /// The subject under test (storage variant, reader, file protocol).
    pub variant: V,
    /// Crash states enumerated at each crash point of the workload.
    pub bounds: CrashBounds,
    /// Crash states enumerated after recovery, during recovery's repairs and after the
    /// appends that follow recovery.
    pub nested_bounds: CrashBounds,
    /// Also open every state under `Strict` and `Salvage` and compare with the default policy.
    pub all_policies: bool,
    /// How many crash-recover-append rounds to chain (1: crash and recover only; 2: also
    /// crash during recovery and after the appends that follow; 3: once more).
    pub depth: u32,
    /// Stop a workload at its first violation (the broken-variant tests use this).
    pub stop_at_first: bool,
}

impl<V: Subject> Explorer<V> {
    /// The settings of the default run (`WALDEN_EXPLORE_DEEP` unset), or of the deep run.
    pub fn new(variant: V, deep: bool) -> Self {
        Self {
            variant,
            bounds: Explorer::bounds(deep),
            nested_bounds: CrashBounds {
                max_plans: if deep { 64 } else { 16 },
                ..CrashBounds::default()
            },
            all_policies: true,
            depth: if deep { 3 } else { 2 },
            stop_at_first: !variant.is_correct(),
        }
    }
}

impl Explorer {
    /// The crash bounds of the default or deep run; replaying a case needs the same ones.
    pub fn bounds(deep: bool) -> CrashBounds {
        CrashBounds {
            max_plans: if deep { 16_384 } else { 4096 },
            ..CrashBounds::default()
        }
    }
}

/// Whether `WALDEN_EXPLORE_DEEP=1` is set.
pub fn deep_mode() -> bool {
    std::env::var("WALDEN_EXPLORE_DEEP").is_ok_and(|v| v == "1")
}

/// One broken invariant, with everything needed to replay it.
#[derive(Clone, Debug)]
pub struct Violation {
    /// The workload.
    pub workload: &'static str,
    /// The subject variant (`Debug` of it).
    pub variant: String,
    /// The call that replays the case.
    pub replay: String,
    /// Seed, crash operation and plan of the first crash.
    pub case: CaseId,
    /// Which invariant (FAULT-MODEL.md names).
    pub invariant: &'static str,
    /// What was seen.
    pub detail: String,
    /// The crash plan next to the effects it resolved, and any nested crash.
    pub plan: String,
}

impl Violation {
    /// A violation of `subject` in `workload`.
    pub fn new<V: Subject>(
        subject: &V,
        workload: &V::Workload,
        case: CaseId,
        (invariant, detail): Finding,
        plan: String,
    ) -> Self {
        Self {
            workload: V::name_of(workload),
            variant: format!("{subject:?}"),
            replay: subject.replay_call(&case),
            case,
            invariant,
            detail,
            plan,
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "VIOLATION of {} in workload {} ({}): {}",
            self.invariant, self.workload, self.variant, self.detail
        )?;
        writeln!(f, "  case: {}", self.case)?;
        writeln!(f, "  {}", self.plan.replace('\n', "\n  "))?;
        write!(f, "  replay: {}", self.replay)
    }
}

/// What an exploration covered and found.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Crash points (operations crashed after).
    pub crash_points: u64,
    /// Crash points whose states were sampled because there were more than the bound.
    pub sampled_points: u64,
    /// Distinct crash states (by `fingerprint()`, deduplicated per crash point) checked.
    pub states: u64,
    /// States checked after crashing again: after recovery, during its repairs, after the
    /// appends that follow (deduplicated per nested crash point).
    pub nested_states: u64,
    /// Recoveries run.
    pub recoveries: u64,
    /// Times the appends after a recovery left the storage exactly as an earlier state of the
    /// same workload did (same durable and volatile state, same unsynced effects, same
    /// promises): its crash states, already checked from there, were not checked again.
    pub repeats_skipped: u64,
    /// What broke.
    pub violations: Vec<Violation>,
    /// Wall time.
    pub elapsed: Duration,
    /// The states gone on from after a recovery (see `repeats_skipped`).
    went_on_from: HashSet<u64>,
}

impl Stats {
    /// Adds another run's numbers.
    pub fn merge(&mut self, other: Stats) {
        self.crash_points += other.crash_points;
        self.sampled_points += other.sampled_points;
        self.states += other.states;
        self.nested_states += other.nested_states;
        self.recoveries += other.recoveries;
        self.repeats_skipped += other.repeats_skipped;
        self.violations.extend(other.violations);
        self.elapsed += other.elapsed;
    }

    /// Whether the explorer already went on from the state and promises `key` digests (then
    /// counted in `repeats_skipped`); remembers it otherwise.
    fn repeat(&mut self, key: impl Hash) -> bool {
        let mut digest = std::hash::DefaultHasher::new();
        key.hash(&mut digest);
        let repeat = !self.went_on_from.insert(digest.finish());
        self.repeats_skipped += u64::from(repeat);
        repeat
    }

    /// One summary line.
    pub fn line(&self, name: &str) -> String {
        format!(
            "{name:<30} points {:>5} ({:>3} sampled)  states {:>7}  nested {:>7}  recoveries {:>8}  violations {}  {:.2?}",
            self.crash_points,
            self.sampled_points,
            self.states,
            self.nested_states,
            self.recoveries,
            self.violations.len(),
            self.elapsed
        )
    }
}

/// A broken invariant found by [`Explorer::check_state`], and the chain of nested crashes
/// that led to it.
pub struct Failure {
    /// Which invariant, and what was seen.
    pub finding: Finding,
    /// The nested crashes and recoveries on the way (empty at the first recovery).
    pub path: String,
}

impl Failure {
    fn new(finding: Finding, path: impl Into<String>) -> Self {
        Self {
            finding,
            path: path.into(),
        }
    }
}

impl<V: Subject> Explorer<V> {
    /// Explores every crash point of `workload`.
    pub fn explore(&self, workload: &V::Workload) -> Stats {
        let started = Instant::now();
        let mut stats = Stats::default();
        let full = self.variant.run(workload, None);
        for problem in full.problems {
            stats.violations.push(self.violation(
                workload,
                case::<V>(workload, u64::MAX, 0),
                ("workload", problem),
                "while running the workload without a crash".into(),
            ));
        }
        let changes = V::changes_state(&full.medium);
        for budget in 0..=changes.len() as u64 {
            if budget > 0 && !changes[budget as usize - 1] {
                continue;
            }
            self.explore_point(workload, budget, None, &mut stats);
            if self.stop_at_first && !stats.violations.is_empty() {
                break;
            }
        }
        stats.elapsed = started.elapsed();
        stats
    }

    /// Replays one case printed by a failure as `seed=.. op=.. plan=..` against `variant`, the
    /// workload found by `find` from the case's seed, in the default or deep mode as
    /// `WALDEN_EXPLORE_DEEP` says; prints and returns what it found (nothing if it passes).
    pub fn replay(
        variant: V,
        case: &str,
        find: impl FnOnce(u64) -> Option<V::Workload>,
    ) -> Vec<Violation> {
        let id: CaseId = case
            .parse()
            .expect("a case: seed=<hex> op=<n> plan=<e|r><n>");
        let workload = find(id.seed).expect("a workload with this seed");
        let explorer = Explorer {
            stop_at_first: false,
            ..Explorer::new(variant, super::deep_mode())
        };
        let mut stats = Stats::default();
        explorer.explore_point(&workload, id.op_index, Some(id.plan), &mut stats);
        for violation in &stats.violations {
            eprintln!("{violation}");
        }
        stats.violations
    }

    /// Explores the crash states after `budget` operations (all of them, or only `only`).
    pub fn explore_point(
        &self,
        workload: &V::Workload,
        budget: u64,
        only: Option<PlanPick>,
        stats: &mut Stats,
    ) {
        let run = self.variant.run(workload, Some(budget));
        for problem in run.problems {
            stats.violations.push(self.violation(
                workload,
                case::<V>(workload, budget, 0),
                ("workload", problem),
                format!("while running the workload up to operation {budget}"),
            ));
        }
        let model = run.model;
        let sim = run.medium;
        stats.crash_points += 1;
        let states = V::crash_states(&sim, &self.bounds);
        if !states.is_exhaustive() {
            stats.sampled_points += 1;
        }
        let plans: Vec<(PlanPick, CrashPlan)> = match only {
            Some(pick) => {
                let id = CaseId {
                    seed: V::seed_of(workload),
                    op_index: budget,
                    plan: pick,
                };
                V::plan_for(&sim, &id, &self.bounds)
                    .map(|plan| (pick, plan))
                    .into_iter()
                    .collect()
            }
            None => states
                .map(|(index, plan)| (PlanPick::Enumerated(index), plan))
                .collect(),
        };
        let mut seen = HashSet::new();
        for (pick, plan) in plans {
            let crashed = V::crash(&sim, &plan);
            if !seen.insert(V::fingerprint(&crashed)) {
                continue;
            }
            stats.states += 1;
            if let Err(failure) = self.check_state(workload, &model, crashed, self.depth, stats) {
                let id = CaseId {
                    seed: V::seed_of(workload),
                    op_index: budget,
                    plan: pick,
                };
                let plan_text = format!("{}\n{}", V::describe(&sim, &plan), failure.path);
                stats
                    .violations
                    .push(self.violation(workload, id, failure.finding, plan_text));
                if self.stop_at_first {
                    return;
                }
            }
        }
    }

    fn violation(
        &self,
        workload: &V::Workload,
        case: CaseId,
        finding: Finding,
        plan: String,
    ) -> Violation {
        Violation::new(&self.variant, workload, case, finding, plan)
    }

    /// Every check of one crash state; `depth` counts the crash-recover rounds still allowed.
    pub fn check_state(
        &self,
        workload: &V::Workload,
        model: &Model,
        crashed: V::Medium,
        depth: u32,
        stats: &mut Stats,
    ) -> Result<(), Failure> {
        let recovery = self.variant.recover(
            workload,
            crashed.clone(),
            RecoveryPolicy::TolerateTornTail,
            None,
        );
        stats.recoveries += 1;
        check_pure_crash(model, &recovery.outcome)
            .map_err(|f| Failure::new(f, "found by the recovery after the last crash"))?;
        let repaired = self.variant.repaired(&recovery);
        let Outcome::Opened(got, wal) = recovery.outcome else {
            unreachable!("check_pure_crash accepts only an opened log");
        };
        let Some(wal) = wal else {
            return Ok(()); // The naive reader has no log to go on with.
        };
        // Other policies on the first crash only: nested states repeat the same cases.
        if self.all_policies && depth == self.depth {
            self.check_policies(workload, &crashed, &got, stats)?;
        }
        if depth < 2 {
            return Ok(());
        }
        // The medium right after recovery: the idempotence checks crash it.
        let recovered = recovery.after;
        self.check_appends_after(workload, model, wal, &got, depth, stats)?;
        self.check_idempotent(workload, &recovered, &got, stats)?;
        // A restarted process's open also runs into power cuts with nothing to repair: the
        // page cache it found is durable only once the open has synced it.
        if !repaired && !V::volatile(&crashed) {
            return Ok(());
        }
        self.check_repair_crashes(workload, model, &crashed, &recovered, &got, stats)
    }

    fn recover_again(
        &self,
        workload: &V::Workload,
        medium: V::Medium,
    ) -> Outcome<V::Error, V::Log> {
        self.variant
            .recover_outcome(workload, medium, RecoveryPolicy::TolerateTornTail)
    }

    /// `Strict` opens exactly the states the default policy found nothing to repair in, and
    /// then the same log; `Salvage` opens every pure-crash state, to the same log, salvaging
    /// nothing.
    fn check_policies(
        &self,
        workload: &V::Workload,
        crashed: &V::Medium,
        got: &Recovered,
        stats: &mut Stats,
    ) -> Result<(), Failure> {
        let report = got.report.expect("a recovery report");
        let repaired = report.cut.is_some() || report.rewritten_header.is_some();
        let strict =
            self.variant
                .recover_outcome(workload, crashed.clone(), RecoveryPolicy::Strict);
        let salvage =
            self.variant
                .recover_outcome(workload, crashed.clone(), RecoveryPolicy::Salvage);
        stats.recoveries += 2;
        let fail = |why: String| Failure::new(("classification", why), "comparing policies");
        match strict {
            Outcome::Opened(s, _) if repaired => {
                return Err(fail(format!(
                    "Strict opened ({}) a state the default policy repaired ({report})",
                    s.report.map(|r| r.to_string()).unwrap_or_default()
                )));
            }
            Outcome::Opened(s, _) if s.records != got.records => {
                return Err(fail("Strict recovered a different log".into()));
            }
            Outcome::Refused(OpenError::Corrupted(c)) if !repaired => {
                return Err(fail(format!(
                    "Strict refused ({c}) a state the default policy opened clean"
                )));
            }
            Outcome::Refused(e) if !matches!(e, OpenError::Corrupted(_)) => {
                return Err(fail(format!("Strict failed: {e}")));
            }
            Outcome::Broken(which, why) => return Err(Failure::new((which, why), "under Strict")),
            _ => {}
        }
        match salvage {
            Outcome::Opened(s, _) if s.records != got.records => Err(fail(format!(
                "Salvage recovered {}..={}, the default policy {}..={}",
                s.first,
                s.last(),
                got.first,
                got.last()
            ))),
            Outcome::Opened(s, _) if s.report.is_some_and(|r| r.salvage.is_some()) => {
                Err(fail(format!(
                    "Salvage salvaged a pure crash: {}",
                    s.report.expect("report")
                )))
            }
            Outcome::Opened(..) => Ok(()),
            Outcome::Refused(e) => Err(fail(format!("Salvage refused a pure crash: {e}"))),
            Outcome::Broken(which, why) => Err(Failure::new((which, why), "under Salvage")),
        }
    }

    /// Crash right after recovery (every state the recovered storage allows) and recover again:
    /// the same log, with nothing left to repair.
    fn check_idempotent(
        &self,
        workload: &V::Workload,
        after: &V::Medium,
        got: &Recovered,
        stats: &mut Stats,
    ) -> Result<(), Failure> {
        // Depends only on the storage after recovery and on the log recovered: once each.
        if let Some(state) = V::state_fingerprint(after)
            && stats.repeat(("idempotent", state, got.first, &got.records))
        {
            return Ok(());
        }
        let mut seen = HashSet::new();
        for (_, plan) in V::crash_states(after, &self.nested_bounds) {
            let crashed = V::crash(after, &plan);
            if !seen.insert(V::fingerprint(&crashed)) {
                continue;
            }
            stats.nested_states += 1;
            let path = || format!("after the first recovery, crashed with {plan}");
            let again = self.recover_again(workload, crashed);
            stats.recoveries += 1;
            match again {
                Outcome::Opened(second, _) if second.records != got.records => {
                    return Err(Failure::new(
                        (
                            "idempotent recovery",
                            format!(
                                "recovering again gave {}..={}, the first recovery {}..={}",
                                second.first,
                                second.last(),
                                got.first,
                                got.last()
                            ),
                        ),
                        path(),
                    ));
                }
                Outcome::Opened(second, _) => {
                    let report = second.report.expect("a report");
                    if report.cut.is_some() || report.rewritten_header.is_some() {
                        return Err(Failure::new(
                            (
                                "idempotent recovery",
                                format!("recovering again repaired again: {report}"),
                            ),
                            path(),
                        ));
                    }
                }
                Outcome::Refused(e) => {
                    return Err(Failure::new(
                        (
                            "idempotent recovery",
                            format!("recovering again refused: {e}"),
                        ),
                        path(),
                    ));
                }
                Outcome::Broken(which, why) => return Err(Failure::new((which, why), path())),
            }
        }
        Ok(())
    }

    /// Crash after each state-changing operation recovery made, in every nested crash state,
    /// and recover again: the same log as the uninterrupted recovery. Unless the medium
    /// recovery started from held data no sync had made durable (a restarted process finds the
    /// kernel's page cache): then a power cut during the open may lose that data just as a
    /// power cut right before the open would, and the log must only keep every promise of the
    /// model (`check_log`). The interrupted open had returned nothing, so it promised nothing.
    fn check_repair_crashes(
        &self,
        workload: &V::Workload,
        model: &Model,
        crashed: &V::Medium,
        recovered: &V::Medium,
        got: &Recovered,
        stats: &mut Stats,
    ) -> Result<(), Failure> {
        let changes = V::changes_state(recovered);
        let volatile = V::volatile(crashed);
        for budget in 1..changes.len() as u64 {
            if !changes[budget as usize - 1] {
                continue;
            }
            let first = self.variant.recover(
                workload,
                crashed.clone(),
                RecoveryPolicy::TolerateTornTail,
                Some(budget),
            );
            stats.recoveries += 1;
            let frozen = first.after;
            let mut seen = HashSet::new();
            for (_, plan) in V::crash_states(&frozen, &self.nested_bounds) {
                let again = V::crash(&frozen, &plan);
                if !seen.insert(V::fingerprint(&again)) {
                    continue;
                }
                stats.nested_states += 1;
                let path = || {
                    format!(
                        "recovery crashed after its operation {budget} ({}), then {}",
                        V::describe_op(recovered, budget as usize - 1),
                        V::describe(&frozen, &plan)
                    )
                };
                let second = self.recover_again(workload, again);
                stats.recoveries += 1;
                match second {
                    Outcome::Opened(second, _) if second.records == got.records => {}
                    Outcome::Opened(second, _) if volatile && check_log(model, &second).is_ok() => {
                    }
                    Outcome::Opened(second, _) => {
                        return Err(Failure::new(
                            (
                                "idempotent recovery",
                                format!(
                                    "after a crash during repair the log is {}..={}, the uninterrupted recovery gave {}..={}",
                                    second.first,
                                    second.last(),
                                    got.first,
                                    got.last()
                                ),
                            ),
                            path(),
                        ));
                    }
                    Outcome::Refused(e) => {
                        return Err(Failure::new(
                            (
                                "idempotent recovery",
                                format!("after a crash during repair, recovery refused: {e}"),
                            ),
                            path(),
                        ));
                    }
                    Outcome::Broken(which, why) => {
                        return Err(Failure::new((which, why), path()));
                    }
                }
            }
        }
        Ok(())
    }

    /// Append after recovery (records the size of the ones the crash may have torn, so that
    /// anything left of them lines up), crash in every nested state, and check against a model
    /// of the recovered log plus the new appends; recurse while `depth` allows.
    fn check_appends_after(
        &self,
        workload: &V::Workload,
        model: &Model,
        mut wal: V::Log,
        got: &Recovered,
        depth: u32,
        stats: &mut Stats,
    ) -> Result<(), Failure> {
        let mut next = Model::recovered(got.first, &got.records);
        let last = got.last();
        let mut acknowledged = Vec::new();
        for k in 0..2u64 {
            let lsn = Lsn(last.0 + 1 + k);
            let len = model.get(lsn).map_or(24, |r| r.payload.len());
            let bytes = payload(
                V::seed_of(workload) ^ 0xa5a5,
                usize::MAX - k as usize,
                depth as usize,
                len,
            );
            next.begin_append(core::slice::from_ref(&bytes), V::durable_lsn(&wal));
            match self.variant.append(&mut wal, &bytes, k == 0) {
                Ok(durable) => {
                    acknowledged.push((bytes, durable));
                    next.acknowledge(durable);
                }
                Err(why) => {
                    return Err(Failure::new(
                        ("appends after recovery", why),
                        "appending after recovery",
                    ));
                }
            }
        }
        let sim = V::snapshot(&wal);
        drop(wal);
        // What follows depends only on the storage now and on what the model promises: once
        // per workload for each such pair (a torn tail cut, for one, leaves the same log
        // whatever the torn bytes were).
        if let Some(state) = V::state_fingerprint(&sim)
            && stats.repeat((state, depth, got.first, &got.records, &acknowledged))
        {
            return Ok(());
        }
        let mut seen = HashSet::new();
        for (_, plan) in V::crash_states(&sim, &self.nested_bounds) {
            let crashed = V::crash(&sim, &plan);
            if !seen.insert(V::fingerprint(&crashed)) {
                continue;
            }
            stats.nested_states += 1;
            let depth_here = self.depth - depth + 2;
            self.check_state(workload, &next, crashed, depth - 1, stats)
                .map_err(|inner| {
                    Failure::new(
                        inner.finding,
                        format!(
                            "after recovery to {}..={}, appended 2 records (the first synced), then crash {depth_here}: {}\n{}",
                            got.first,
                            got.last(),
                            V::describe(&sim, &plan),
                            inner.path
                        ),
                    )
                })?;
        }
        Ok(())
    }
}

fn case<V: Subject>(workload: &V::Workload, op_index: u64, plan: u64) -> CaseId {
    CaseId {
        seed: V::seed_of(workload),
        op_index,
        plan: PlanPick::Enumerated(plan),
    }
}
