//! What the explorer explores: a log over a simulated medium that can be driven, crashed and
//! recovered. The core over [`SimStorage`] ([`Variant`]) is one subject; walden-std's
//! `FileStorage` over a simulated file system ([`crate::files::FileVariant`]) is another. The
//! engine in `explore.rs` — every crash point, every legal state, every policy, nested crashes —
//! is written once against this trait.

use core::fmt;

use walden_core::{Lsn, RecoveryPolicy};
use walden_sim::{CaseId, CrashBounds, CrashPlan, CrashStates, SimError, SimStorage};

use super::check::{Outcome, recover};

use super::model::Model;
use super::storage::{SimHandle, Variant};
use super::workload::{TestWal, Workload, drive, fresh_handle};

/// A workload run from the start, with the power cut after some operation (or not at all).
pub struct Run<M> {
    /// What the workload was told.
    pub model: Model,
    /// Contract violations seen while driving.
    pub problems: Vec<String>,
    /// The medium when the run stopped, frozen.
    pub medium: M,
}

/// One recovery: what opening gave, and the medium right after it (the log still open).
pub struct Recovery<S: Subject> {
    /// The recovered log, or why not.
    pub outcome: Outcome<S::Error, S::Log>,
    /// The medium after recovery, with recovery's own operations in its trace.
    pub after: S::Medium,
}

/// A log over a simulated medium, and the ways to drive, crash and recover it.
pub trait Subject: Copy + fmt::Debug + PartialEq + Send + Sync {
    /// A scripted workload.
    type Workload: Sync;
    /// The simulator's state (a snapshot).
    type Medium: Clone;
    /// An open log.
    type Log;
    /// The storage error recovery may return.
    type Error: walden_core::StorageError;

    /// The workload's name, for reports.
    fn name_of(workload: &Self::Workload) -> &'static str;
    /// The workload's seed, which names it in a [`CaseId`].
    fn seed_of(workload: &Self::Workload) -> u64;
    /// `false` for a deliberately broken variant.
    fn is_correct(&self) -> bool;
    /// The call that replays `case` of this subject, for a failure report.
    fn replay_call(&self, case: &CaseId) -> String;

    /// Runs `workload` from the start, with the power cut after `budget` state-changing
    /// operations (`None`: to the end).
    fn run(&self, workload: &Self::Workload, budget: Option<u64>) -> Run<Self::Medium>;
    /// For each operation in `medium`'s trace: can crashing after it differ from crashing
    /// before it?
    fn changes_state(medium: &Self::Medium) -> Vec<bool>;
    /// Operation `index` of `medium`'s trace, described.
    fn describe_op(medium: &Self::Medium, index: usize) -> String;
    /// The legal crash states of `medium`.
    fn crash_states(medium: &Self::Medium, bounds: &CrashBounds) -> CrashStates;
    /// The plan a case names.
    fn plan_for(medium: &Self::Medium, case: &CaseId, bounds: &CrashBounds) -> Option<CrashPlan>;
    /// The medium after a power loss resolved by `plan`.
    fn crash(medium: &Self::Medium, plan: &CrashPlan) -> Self::Medium;
    /// A digest of the durable state, to skip repeated states.
    fn fingerprint(medium: &Self::Medium) -> u64;
    /// A digest of everything a crash of `medium` can lead to (durable and volatile state,
    /// unsynced effects), if the medium can give one: the explorer goes on from each such
    /// state once. `None`: always go on.
    fn state_fingerprint(_medium: &Self::Medium) -> Option<u64> {
        None
    }
    /// Whether `medium` holds something no sync made durable (a restarted process finds the
    /// kernel's page cache): a power cut during its recovery may then lose it even though
    /// nothing needs repair. Power-cut media hold nothing of the kind.
    fn volatile(_medium: &Self::Medium) -> bool {
        false
    }
    /// `plan` next to the effects it resolves.
    fn describe(medium: &Self::Medium, plan: &CrashPlan) -> String;

    /// Opens the log on `medium` under `policy` (the power cut after `budget` operations of
    /// the recovery, if given) and reads it back.
    fn recover(
        &self,
        workload: &Self::Workload,
        medium: Self::Medium,
        policy: RecoveryPolicy,
        budget: Option<u64>,
    ) -> Recovery<Self>;
    /// [`Subject::recover`] without the power cut, for the outcome only: most recoveries
    /// never look at the medium afterwards, and a snapshot of it is a copy of every file.
    fn recover_outcome(
        &self,
        workload: &Self::Workload,
        medium: Self::Medium,
        policy: RecoveryPolicy,
    ) -> Outcome<Self::Error, Self::Log> {
        self.recover(workload, medium, policy, None).outcome
    }
    /// Whether a recovery did more than its routine operations, so that crashing during its
    /// operations is worth exploring.
    fn repaired(&self, recovery: &Recovery<Self>) -> bool;
    /// Appends one record to a recovered log, syncing it if `sync`, and returns the durable
    /// LSN after the call.
    fn append(&self, log: &mut Self::Log, payload: &[u8], sync: bool) -> Result<Lsn, String>;
    /// The durable LSN of an open log.
    fn durable_lsn(log: &Self::Log) -> Lsn;
    /// A snapshot of the medium under an open log.
    fn snapshot(log: &Self::Log) -> Self::Medium;
}

impl Subject for Variant {
    type Workload = Workload;
    type Medium = SimStorage;
    type Log = Box<TestWal>;
    type Error = SimError;

    fn name_of(workload: &Workload) -> &'static str {
        workload.name
    }

    fn seed_of(workload: &Workload) -> u64 {
        workload.seed
    }

    fn is_correct(&self) -> bool {
        *self == Variant::Correct
    }

    fn replay_call(&self, case: &CaseId) -> String {
        match self {
            Variant::Correct => format!("walden_tests::explorer::replay(\"{case}\")"),
            variant => {
                format!("walden_tests::explorer::replay_variant(Variant::{variant:?}, \"{case}\")")
            }
        }
    }

    fn run(&self, workload: &Workload, budget: Option<u64>) -> Run<SimStorage> {
        let handle = fresh_handle(workload, *self);
        if let Some(budget) = budget {
            handle.with_mut(|sim| sim.crash_after(budget));
        }
        let driven = drive(workload, &handle, false);
        drop(driven.wal);
        Run {
            model: driven.model,
            problems: driven.problems,
            medium: handle.snapshot(),
        }
    }

    fn changes_state(medium: &SimStorage) -> Vec<bool> {
        medium
            .trace()
            .iter()
            .map(|entry| entry.op.changes_state())
            .collect()
    }

    fn describe_op(medium: &SimStorage, index: usize) -> String {
        medium.trace()[index].op.to_string()
    }

    fn crash_states(medium: &SimStorage, bounds: &CrashBounds) -> CrashStates {
        medium.crash_states(bounds)
    }

    fn plan_for(medium: &SimStorage, case: &CaseId, bounds: &CrashBounds) -> Option<CrashPlan> {
        medium.plan_for(case, bounds)
    }

    fn crash(medium: &SimStorage, plan: &CrashPlan) -> SimStorage {
        medium.crash(plan)
    }

    fn fingerprint(medium: &SimStorage) -> u64 {
        medium.fingerprint()
    }

    fn state_fingerprint(medium: &SimStorage) -> Option<u64> {
        Some(medium.state_fingerprint())
    }

    fn describe(medium: &SimStorage, plan: &CrashPlan) -> String {
        medium.describe(plan).to_string()
    }

    fn recover(
        &self,
        workload: &Workload,
        mut medium: SimStorage,
        policy: RecoveryPolicy,
        budget: Option<u64>,
    ) -> Recovery<Self> {
        if let Some(budget) = budget {
            medium.crash_after(budget);
        }
        let handle = SimHandle::new(medium, *self);
        let outcome = recover(&handle, workload.config, policy);
        Recovery {
            outcome,
            after: handle.snapshot(),
        }
    }

    fn recover_outcome(
        &self,
        workload: &Workload,
        medium: SimStorage,
        policy: RecoveryPolicy,
    ) -> Outcome {
        recover(&SimHandle::new(medium, *self), workload.config, policy)
    }

    fn repaired(&self, recovery: &Recovery<Self>) -> bool {
        // Recovery always ends with a sync and a directory sync; anything more is a repair.
        recovery
            .after
            .trace()
            .iter()
            .filter(|entry| entry.op.changes_state())
            .count()
            > 2
    }

    fn append(&self, log: &mut Box<TestWal>, payload: &[u8], sync: bool) -> Result<Lsn, String> {
        log.append(payload)
            .map_err(|e| format!("append failed: {e}"))?;
        if sync {
            log.sync().map_err(|e| format!("sync failed: {e}"))?;
        }
        Ok(log.durable_lsn())
    }

    fn durable_lsn(log: &Box<TestWal>) -> Lsn {
        log.durable_lsn()
    }

    fn snapshot(log: &Box<TestWal>) -> SimStorage {
        log.storage().snapshot()
    }
}
