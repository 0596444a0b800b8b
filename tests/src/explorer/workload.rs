//! Workloads: scripted sequences of log operations, and the driver that runs one against a
//! [`SimHandle`] while keeping the [`Model`] up to date.

use walden_core::{
    AppendError, Config, Fixed, Lsn, OpenError, RecoveryReport, SegmentTable, Storage, SyncError,
    SyncPolicy, TruncateError, Wal,
};
use walden_sim::{SimConfig, SimRng, SimStorage};

use super::model::Model;
use super::storage::{SimHandle, Variant};

/// The calls a workload step makes: the core log's, and `walden_std::Wal`'s (which spells
/// them out instead of dereferencing to a core log).
pub trait StepLog {
    /// The storage's error.
    type Error: walden_core::StorageError;
    /// The configuration.
    fn config(&self) -> &Config;
    /// The durable LSN.
    fn durable_lsn(&self) -> Lsn;
    /// The first retained LSN.
    fn first_lsn(&self) -> Lsn;
    /// See `Wal::append`.
    fn append(&mut self, payload: &[u8]) -> Result<Lsn, AppendError<Self::Error>>;
    /// See `Wal::append_batch`.
    fn append_batch(&mut self, payloads: &[&[u8]]) -> Result<Lsn, AppendError<Self::Error>>;
    /// See `Wal::sync`.
    fn sync(&mut self) -> Result<Lsn, SyncError<Self::Error>>;
    /// See `Wal::truncate_front`.
    fn truncate_front(&mut self, lsn: Lsn) -> Result<usize, TruncateError<Self::Error>>;
    /// See `Wal::truncate_back`.
    fn truncate_back(&mut self, lsn: Lsn) -> Result<(), TruncateError<Self::Error>>;
}

macro_rules! step_log {
    ($ty:ty, $err:ty $(, $gen:ident : $bound:path)*) => {
        impl<$($gen: $bound),*> StepLog for $ty {
            type Error = $err;
            fn config(&self) -> &Config {
                <$ty>::config(self)
            }
            fn durable_lsn(&self) -> Lsn {
                <$ty>::durable_lsn(self)
            }
            fn first_lsn(&self) -> Lsn {
                <$ty>::first_lsn(self)
            }
            fn append(&mut self, payload: &[u8]) -> Result<Lsn, AppendError<Self::Error>> {
                <$ty>::append(self, payload)
            }
            fn append_batch(&mut self, payloads: &[&[u8]]) -> Result<Lsn, AppendError<Self::Error>> {
                <$ty>::append_batch(self, payloads)
            }
            fn sync(&mut self) -> Result<Lsn, SyncError<Self::Error>> {
                <$ty>::sync(self)
            }
            fn truncate_front(&mut self, lsn: Lsn) -> Result<usize, TruncateError<Self::Error>> {
                <$ty>::truncate_front(self, lsn)
            }
            fn truncate_back(&mut self, lsn: Lsn) -> Result<(), TruncateError<Self::Error>> {
                <$ty>::truncate_back(self, lsn)
            }
        }
    };
}

step_log!(Wal<S, Table>, S::Error, S: Storage, Table: SegmentTable);
step_log!(
    walden_std::Wal<F>,
    walden_std::FileError,
    F: walden_std::FileSystem
);

/// The log type the explorer drives.
pub type TestWal = Wal<SimHandle, Fixed<64>>;

/// Scratch buffer size for recovery.
pub const SCRATCH: usize = 4096;

/// One operation of a workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// `append` of a payload of this many bytes.
    Append(usize),
    /// `append_batch` of payloads of these lengths.
    Batch(Vec<usize>),
    /// An explicit `sync`.
    Sync,
    /// `truncate_front(lsn)`.
    TruncateFront(u64),
    /// `truncate_back(lsn)`.
    TruncateBack(u64),
    /// Close the log and open it again (a process restart, not a power loss).
    Reopen,
}

/// A named, seeded workload.
#[derive(Clone, Debug)]
pub struct Workload {
    /// Shown in reports.
    pub name: &'static str,
    /// Names the workload in a [`CaseId`](walden_sim::CaseId); unique across the catalog.
    pub seed: u64,
    /// The log's configuration.
    pub config: Config,
    /// The simulator's sector size.
    pub sector_size: u32,
    /// The simulator's garbage-holes media fault.
    pub garbage_holes: bool,
    /// The operations.
    pub steps: Vec<Step>,
}

impl Workload {
    /// The simulator settings of this workload.
    pub fn sim_config(&self) -> SimConfig {
        SimConfig {
            seed: self.seed,
            sector_size: self.sector_size,
            garbage_holes: self.garbage_holes,
        }
    }
}

/// The payload of the `step`-th operation's `index`-th record: deterministic, and different for
/// every step so that a record rewritten after `truncate_back` never equals the old one.
pub fn payload(seed: u64, step: usize, index: usize, len: usize) -> Vec<u8> {
    let mut rng = SimRng::derived(seed ^ ((step as u64) << 20), index as u64);
    let mut bytes = vec![0u8; len];
    // Random first half, its first 8 bytes repeated after: unique per record, and half of it
    // compresses (walden-std compresses records from `compress_threshold` on).
    rng.fill(&mut bytes[..len / 2]);
    for i in len / 2..len {
        bytes[i] = bytes[i % 8.min(len / 2).max(1)];
    }
    bytes
}

/// Opens a log on `handle` and reads every record back.
pub fn open_log(
    handle: &SimHandle,
    config: Config,
) -> Result<(TestWal, RecoveryReport), OpenError<walden_sim::SimError>> {
    let mut scratch = vec![0u8; SCRATCH];
    handle.set_opening(true);
    let opened = TestWal::open(handle.clone(), config, &mut scratch);
    handle.set_opening(false);
    opened
}

/// What a driven workload left behind.
pub struct Driven {
    /// What the workload was told.
    pub model: Model,
    /// The log, if it is still open.
    pub wal: Option<TestWal>,
    /// Contract violations seen while driving (the log claimed something false).
    pub problems: Vec<String>,
    /// A scheduled fault fired on a write or sync path and poisoned the log.
    pub poisoned: bool,
}

/// Runs `workload` on `handle` until it ends or the simulated power goes out. Any error that is
/// not the power going out is a problem unless `faults` says faults were scheduled; after a
/// fault, every later call must fail as poisoned and the durable LSN must not move.
pub fn drive(workload: &Workload, handle: &SimHandle, faults: bool) -> Driven {
    let mut driven = Driven {
        model: Model::default(),
        wal: None,
        problems: Vec::new(),
        poisoned: false,
    };
    let crashed = || handle.with(SimStorage::has_crashed);
    match open_log(handle, workload.config) {
        Ok((wal, _)) => driven.wal = Some(wal),
        Err(e) => {
            if !crashed() && !faults {
                driven
                    .problems
                    .push(format!("opening a new log failed: {e}"));
            }
            return driven;
        }
    }
    for (step_index, step) in workload.steps.iter().enumerate() {
        if driven.poisoned {
            if matches!(step, Step::Reopen) {
                // After a failed fsync only a machine crash tells what is durable.
                break;
            }
            check_poisoned(&mut driven, workload, step_index, step);
            continue;
        }
        let outcome = run_step(&mut driven, workload, step_index, step, handle);
        match outcome {
            StepOutcome::Done => {}
            StepOutcome::Failed(why) => {
                if crashed() {
                    return driven;
                }
                if faults {
                    driven.poisoned = true;
                    if let Some(wal) = &driven.wal {
                        if wal.poisoned().is_none() && !matches!(step, Step::Reopen) {
                            driven
                                .problems
                                .push(format!("step {step_index} {step:?} failed ({why}) but the log is not poisoned"));
                        }
                    } else {
                        return driven;
                    }
                } else {
                    driven
                        .problems
                        .push(format!("step {step_index} {step:?} failed: {why}"));
                    return driven;
                }
            }
        }
    }
    driven
}

enum StepOutcome {
    Done,
    Failed(String),
}

fn run_step(
    driven: &mut Driven,
    workload: &Workload,
    step_index: usize,
    step: &Step,
    handle: &SimHandle,
) -> StepOutcome {
    let config = workload.config;
    let model = &mut driven.model;
    let problems = &mut driven.problems;
    if let Step::Reopen = step {
        let wal = driven.wal.take().expect("an open log");
        drop(wal);
        return match open_log(handle, config) {
            Ok((wal, report)) => {
                if report.last_lsn != model.last() || report.cut.is_some() {
                    problems.push(format!(
                        "reopen without a crash lost data: model ends at {}, report: {report}",
                        model.last()
                    ));
                }
                model.acknowledge(wal.durable_lsn());
                if wal.durable_lsn() != model.last() {
                    problems.push("after reopen the durable LSN is not the last LSN".into());
                }
                driven.wal = Some(wal);
                StepOutcome::Done
            }
            Err(e) => StepOutcome::Failed(e.to_string()),
        };
    }
    let wal = driven.wal.as_mut().expect("an open log");
    match log_step(wal, model, problems, workload.seed, step_index, step) {
        Ok(()) => StepOutcome::Done,
        Err(why) => StepOutcome::Failed(why),
    }
}

/// Runs one step other than [`Step::Reopen`] on any core log, keeping `model` up to date and
/// noting in `problems` anything the log claimed that is false. `Err` if the call failed.
pub fn log_step<L: StepLog>(
    wal: &mut L,
    model: &mut Model,
    problems: &mut Vec<String>,
    seed: u64,
    step_index: usize,
    step: &Step,
) -> Result<(), String> {
    let config = *wal.config();
    let before = wal.durable_lsn();
    let result = match step {
        Step::Append(len) => {
            let payloads = vec![payload(seed, step_index, 0, *len)];
            append(wal, model, &payloads, config)
        }
        Step::Batch(lens) => {
            let payloads: Vec<Vec<u8>> = lens
                .iter()
                .enumerate()
                .map(|(i, len)| payload(seed, step_index, i, *len))
                .collect();
            append(wal, model, &payloads, config)
        }
        Step::Sync => match wal.sync() {
            Ok(durable) => {
                if durable != model.last() {
                    problems.push(format!(
                        "sync returned {durable}, but the last LSN is {}",
                        model.last()
                    ));
                }
                model.acknowledge(durable);
                Ok(())
            }
            Err(e) => Err(e.to_string()),
        },
        Step::TruncateFront(lsn) => {
            let lsn = Lsn(*lsn);
            model.begin_truncate_front(lsn);
            match wal.truncate_front(lsn) {
                Ok(_) => {
                    model.finish_truncate_front(wal.first_lsn());
                    Ok(())
                }
                Err(e) => Err(e.to_string()),
            }
        }
        Step::TruncateBack(lsn) => {
            let lsn = Lsn(*lsn);
            let saved = model.acked;
            model.begin_truncate_back(lsn);
            match wal.truncate_back(lsn) {
                Ok(()) if lsn >= model.last() => {
                    model.acked = saved;
                    Ok(())
                }
                Ok(()) => {
                    model.finish_truncate_back(lsn);
                    Ok(())
                }
                Err(TruncateError::InsideBatch { .. } | TruncateError::OutOfRange { .. }) => {
                    model.acked = saved;
                    Ok(())
                }
                Err(e) => Err(e.to_string()),
            }
        }
        Step::Reopen => unreachable!("handled above"),
    };
    if result.is_ok() {
        let durable = wal.durable_lsn();
        if durable < before && !matches!(step, Step::TruncateBack(_)) {
            problems.push(format!("durable LSN went back from {before} to {durable}"));
        }
        model.acknowledge(durable);
    }
    result
}

fn append<L: StepLog>(
    wal: &mut L,
    model: &mut Model,
    payloads: &[Vec<u8>],
    config: Config,
) -> Result<(), String> {
    let expected = model.next_lsn();
    model.begin_append(payloads, wal.durable_lsn());
    let slices: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
    match wal.append_batch(&slices) {
        Ok(first) => {
            if first != expected {
                return Err(format!("append returned LSN {first}, expected {expected}"));
            }
            if config.sync_policy == SyncPolicy::Always {
                if wal.durable_lsn() != model.last() {
                    return Err(format!(
                        "append under SyncPolicy::Always returned with durable LSN {} < {}",
                        wal.durable_lsn(),
                        model.last()
                    ));
                }
                model.acknowledge(model.last());
            }
            Ok(())
        }
        Err(e) => Err(e.to_string()),
    }
}

/// After a fault poisoned the log, every call must fail as poisoned and nothing may become
/// durable.
fn check_poisoned(driven: &mut Driven, workload: &Workload, step_index: usize, step: &Step) {
    let Some(wal) = driven.wal.as_mut() else {
        return;
    };
    let problems = poisoned_step(wal, workload.seed, step_index, step);
    driven.problems.extend(problems);
}

/// After a fault poisoned `wal`, runs `step` and returns what was wrong: the call was not
/// refused as poisoned, or the durable LSN moved.
pub fn poisoned_step<L: StepLog>(
    wal: &mut L,
    seed: u64,
    step_index: usize,
    step: &Step,
) -> Vec<String> {
    let mut problems = Vec::new();
    let before = wal.durable_lsn();
    let refused = match step {
        Step::Append(len) => matches!(
            wal.append(&payload(seed, step_index, 0, *len)),
            Err(AppendError::Poisoned(_))
        ),
        Step::Batch(lens) => {
            let payloads: Vec<Vec<u8>> = lens.iter().map(|len| vec![7u8; *len]).collect();
            let slices: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
            matches!(wal.append_batch(&slices), Err(AppendError::Poisoned(_)))
        }
        Step::Sync => matches!(wal.sync(), Err(SyncError::Poisoned(_))),
        Step::TruncateFront(lsn) => matches!(
            wal.truncate_front(Lsn(*lsn)),
            Err(TruncateError::Poisoned(_))
        ),
        Step::TruncateBack(lsn) => matches!(
            wal.truncate_back(Lsn(*lsn)),
            Err(TruncateError::Poisoned(_))
        ),
        Step::Reopen => true,
    };
    if !refused {
        problems.push(format!(
            "poisoning: step {step_index} {step:?} was not refused after a failed sync"
        ));
    }
    if wal.durable_lsn() != before {
        problems.push(format!(
            "poisoning: durable LSN moved from {before} to {} after a failed sync",
            wal.durable_lsn()
        ));
    }
    problems
}

/// Builds a simulator for `workload` behind a handle of `variant`.
pub fn fresh_handle(workload: &Workload, variant: Variant) -> SimHandle {
    SimHandle::new(SimStorage::with_config(workload.sim_config()), variant)
}
