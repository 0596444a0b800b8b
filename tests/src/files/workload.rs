//! Workloads over walden-std's `Wal` and `SharedWal` on the simulated file system, and the
//! driver that runs one while keeping the [`Model`] up to date.

use std::path::Path;
use walden_core::{
    AppendError, Config, Lsn, RecoveryPolicy, RecoveryReport, SyncError, SyncTicket, TruncateError,
};
use walden_sim::{FaultSchedule, SimConfig, SimFs};

use walden_core::SegmentName;
use walden_std::{
    Background, CoreWal, DetachedSync, FileError, FileStorage, FileSystem, FsFile, GroupSync,
    GroupWindow, OpenMode, Options, SIM_TUNING, SharedWal, SimFileSystem, SyncPolicy, Tuning, Wal,
};

use super::variant::{FileVariant, TestFs, test_fs};
use crate::explorer::{Model, Recovered, Step, check_log, log_step, payload, poisoned_step};

/// Where the simulated log directory lives.
pub const ROOT: &str = "/walden-sim/log";

/// Which walden-std handle a workload drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handle {
    /// [`Wal`], under the config's `sync_policy`.
    Wal,
    /// [`SharedWal`] driven from one thread (group commit with a single member: the leader's
    /// detached sync path), under this durability. [`FileStep::HoldDetachedSync`] and
    /// [`FileStep::RunHeldSync`] split one leader's sync in two, so that the log changes while
    /// its detached sync is in flight.
    Shared(SyncPolicy),
}

/// One operation of a files workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileStep {
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
    /// Close the log (its `Drop` flushes the write buffer and removes an unused spare) and
    /// open it again.
    Reopen,
    /// The process dies (SIGKILL: the write buffer and background jobs are gone, the kernel
    /// keeps what it was given) and a new one opens the log.
    Kill,
    /// Run this many steps of the queued background jobs (spare preparation, zero-fill):
    /// with [`Background::Deferred`], this is where background work interleaves.
    Background(usize),
    /// Keep a copy of segment file `id` as it is now (an operator's backup; no file-system
    /// operation).
    Save(u64),
    /// Write the copy kept by [`FileStep::Save`] back under its name (created, written,
    /// synced, the directory synced), beside the open log: a restored backup. Once the log
    /// has removed that segment and the one after it from its front, the copy lies below a
    /// gap under the log's recorded start: a stale file, which every open leaves out of the
    /// log, and whose records a replay must not hand over.
    Restore,
    /// The first half of a group-commit leader's sync ([`Handle::Shared`] only), as
    /// `Committer::lead` does it under the log lock: `begin_sync` and
    /// [`GroupSync::detached_sync`] of the active segment. The job is kept, not run: a
    /// detached sync in flight (walden-std's `detached_in_flight`) while the steps that
    /// follow append, rotate and seal, as appenders do while a leader waits for the disk.
    /// Where the leader would sync under the lock instead (segments an early rotation left
    /// pending, or no job handed out), that sync runs here and nothing is held.
    HoldDetachedSync,
    /// The second half: the held job runs (its `fdatasync`, without the log lock), then
    /// `finish_sync` and the durable LSN published, as the leader does on its outcome.
    RunHeldSync,
}

impl FileStep {
    /// The core step this is, if it is one.
    fn log_step(&self) -> Option<Step> {
        Some(match self {
            FileStep::Append(len) => Step::Append(*len),
            FileStep::Batch(lens) => Step::Batch(lens.clone()),
            FileStep::Sync => Step::Sync,
            FileStep::TruncateFront(lsn) => Step::TruncateFront(*lsn),
            FileStep::TruncateBack(lsn) => Step::TruncateBack(*lsn),
            FileStep::Reopen
            | FileStep::Kill
            | FileStep::Background(_)
            | FileStep::Save(_)
            | FileStep::Restore
            | FileStep::HoldDetachedSync
            | FileStep::RunHeldSync => return None,
        })
    }
}

/// A named, seeded workload over walden-std.
#[derive(Clone, Debug)]
pub struct FileWorkload {
    /// Shown in reports.
    pub name: &'static str,
    /// Names the workload in a [`CaseId`](walden_sim::CaseId); unique across the catalog.
    pub seed: u64,
    /// The log's configuration.
    pub config: Config,
    /// Which handle.
    pub handle: Handle,
    /// When background jobs run.
    pub background: Background,
    /// [`Options::preallocate`]: spares and zero-fill, or neither.
    pub preallocate: bool,
    /// [`Options::open_threads`] (2: the parallel scan of recovery runs).
    pub open_threads: usize,
    /// The simulator's sector size.
    pub sector_size: u32,
    /// Buffer and fill sizes.
    pub tuning: Tuning,
    /// Format version 3's transforms: every record encrypted ([`Options::keys`]) and records
    /// of 256 bytes or more compressed.
    pub encrypted: bool,
    /// The operations.
    pub steps: Vec<FileStep>,
}

/// The keyring of encrypted workloads: an old key and the current one.
pub(super) fn test_keys() -> &'static walden_std::Keyring {
    static KEYS: std::sync::OnceLock<walden_std::Keyring> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        let mut keys = walden_std::Keyring::new();
        let _ = keys.add(&[0x11; 32]);
        let _ = keys.add_current(&[0x22; 32]);
        keys
    })
}

impl FileWorkload {
    /// A workload with the defaults: [`Handle::Wal`], inline background work, preallocation
    /// on, one open thread, 512-byte sectors, [`SIM_TUNING`].
    pub fn new(name: &'static str, seed: u64, config: Config, steps: Vec<FileStep>) -> Self {
        Self {
            name,
            seed,
            config,
            handle: Handle::Wal,
            background: Background::Inline,
            preallocate: true,
            open_threads: 1,
            sector_size: 512,
            tuning: SIM_TUNING,
            encrypted: false,
            steps,
        }
    }

    /// The options to open the log with, under `policy`.
    pub fn options(&self, policy: RecoveryPolicy) -> Options {
        let mut options = Options::from(self.config.with_recovery(policy));
        options.preallocate = self.preallocate;
        options.open_threads = self.open_threads;
        // Segments are a few KiB here: a megabyte of scratch per recovery is only cost.
        options.scratch_size = 64 << 10;
        if self.encrypted {
            options.keys = Some(test_keys());
            options.config = options.config.with_compress_threshold(256);
        }
        if let Handle::Shared(policy) = self.handle {
            // The one durability setting, for a `SharedWal` as for a `Wal`.
            options.config.sync_policy = policy;
        }
        options
    }

    /// The simulator settings.
    pub fn sim_config(&self) -> SimConfig {
        SimConfig {
            seed: self.seed,
            sector_size: self.sector_size,
            garbage_holes: false,
        }
    }

    /// The file system of `variant` over the simulator state `sim`.
    pub fn fs_on(&self, variant: FileVariant, sim: SimFs) -> TestFs {
        let fs = SimFileSystem::with_settings(
            ROOT,
            sim,
            self.background,
            self.tuning,
            variant.mutation(),
        );
        test_fs(fs, variant)
    }

    /// A fresh file system of `variant`, holding nothing.
    pub fn fresh_fs(&self, variant: FileVariant) -> TestFs {
        self.fs_on(variant, SimFs::new(self.sim_config()))
    }
}

/// An open log of either handle.
pub enum FileLog {
    /// A [`Wal`].
    Wal(Box<Wal<TestFs>>),
    /// A [`SharedWal`].
    Shared(SharedWal<FileStorage<TestFs>>),
}

/// An open log and the file system under it.
pub struct OpenLog {
    /// The log.
    pub log: FileLog,
    /// Its file system.
    pub fs: TestFs,
}

impl OpenLog {
    /// The durable LSN.
    pub fn durable_lsn(&self) -> Lsn {
        match &self.log {
            FileLog::Wal(wal) => wal.durable_lsn(),
            FileLog::Shared(wal) => wal.durable_lsn(),
        }
    }

    /// The first LSN.
    pub fn first_lsn(&self) -> Lsn {
        match &self.log {
            FileLog::Wal(wal) => wal.first_lsn(),
            FileLog::Shared(wal) => wal.first_lsn(),
        }
    }

    /// The last LSN.
    pub fn last_lsn(&self) -> Lsn {
        match &self.log {
            FileLog::Wal(wal) => wal.last_lsn(),
            FileLog::Shared(wal) => wal.last_lsn(),
        }
    }

    /// Segment ids, oldest first.
    pub fn segment_ids(&self) -> Vec<u64> {
        match &self.log {
            FileLog::Wal(wal) => wal.segments().iter().map(|s| s.id).collect(),
            FileLog::Shared(wal) => wal.segments().iter().map(|s| s.id).collect(),
        }
    }

    /// Every record, read back.
    pub fn read_all(&self) -> Result<Vec<(Lsn, Vec<u8>)>, String> {
        match &self.log {
            FileLog::Wal(wal) => wal
                .read_all_from(wal.first_lsn())
                .map_err(|e| e.to_string()),
            FileLog::Shared(wal) => {
                let mut reader = wal.reader(wal.first_lsn()).map_err(|e| e.to_string())?;
                let mut out = Vec::new();
                while let Some(record) = reader.read_next().map_err(|e| e.to_string())? {
                    out.push((record.lsn, record.payload.to_vec()));
                }
                Ok(out)
            }
        }
    }

    /// Appends one record (synced if `sync`) and returns the durable LSN.
    pub fn append(&mut self, payload: &[u8], sync: bool) -> Result<Lsn, String> {
        match &mut self.log {
            FileLog::Wal(wal) => {
                wal.append(payload)
                    .map_err(|e| format!("append failed: {e}"))?;
                if sync {
                    wal.sync().map_err(|e| format!("sync failed: {e}"))?;
                }
                Ok(wal.durable_lsn())
            }
            FileLog::Shared(wal) => {
                let _ = wal
                    .append(payload)
                    .map_err(|e| format!("append failed: {e}"))?;
                if sync {
                    wal.sync().map_err(|e| format!("sync failed: {e}"))?;
                }
                Ok(wal.durable_lsn())
            }
        }
    }
}

/// Opens the log of `workload` on `fs` under `policy` the way an application that replays
/// it would: a [`Handle::Wal`] workload with [`Wal::open_replaying_in`] (returning every
/// record handed over), a shared one with a plain open (`None`), so that the explorer
/// recovers every state through both.
#[allow(clippy::type_complexity)]
pub(crate) fn open_log_replaying(
    workload: &FileWorkload,
    fs: &TestFs,
    policy: RecoveryPolicy,
) -> Result<
    (OpenLog, RecoveryReport, Option<Vec<(Lsn, Vec<u8>)>>),
    walden_std::ReplayError<core::convert::Infallible>,
> {
    if let Handle::Shared(_) = workload.handle {
        return open_log(workload, fs, policy)
            .map(|(log, report)| (log, report, None))
            .map_err(walden_std::ReplayError::Log);
    }
    let mut handed = Vec::new();
    let opened = Wal::open_replaying_in(fs.clone(), ROOT, workload.options(policy), |lsn, p| {
        handed.push((lsn, p.to_vec()));
        Ok::<_, core::convert::Infallible>(())
    });
    let (wal, report) = opened?;
    Ok((
        OpenLog {
            log: FileLog::Wal(Box::new(wal)),
            fs: fs.clone(),
        },
        report,
        Some(handed),
    ))
}

/// Opens the log of `workload` on `fs` under `policy`.
pub fn open_log(
    workload: &FileWorkload,
    fs: &TestFs,
    policy: RecoveryPolicy,
) -> Result<(OpenLog, RecoveryReport), walden_std::Error> {
    let options = workload.options(policy);
    let (log, report) = match workload.handle {
        Handle::Wal => {
            let (wal, report) = Wal::open_in(fs.clone(), ROOT, options)?;
            (FileLog::Wal(Box::new(wal)), report)
        }
        Handle::Shared(_) => {
            let (wal, report) = SharedWal::open_in(fs.clone(), ROOT, options)?;
            (FileLog::Shared(wal), report)
        }
    };
    Ok((
        OpenLog {
            log,
            fs: fs.clone(),
        },
        report,
    ))
}

/// What a driven workload left behind.
pub struct FileDriven {
    /// What the workload was told.
    pub model: Model,
    /// Contract violations seen while driving.
    pub problems: Vec<String>,
    /// The file system at the end (after a kill, the new process's).
    pub fs: TestFs,
    /// A scheduled fault fired and poisoned the log.
    pub poisoned: bool,
    /// Detached syncs held ([`FileStep::HoldDetachedSync`]) and run while the log had
    /// rotated past their segment: the seal was written with the job in flight.
    pub held_across_rotation: usize,
}

/// Runs `workload` on a fresh file system of `variant`, with the power cut after `budget`
/// operations and `faults` scheduled. Any error that is not the power going out is a problem
/// unless faults were scheduled; after a fault every later call must fail as poisoned. The
/// log is closed (dropped) at the end: closing is part of the workload.
pub fn drive(
    workload: &FileWorkload,
    variant: FileVariant,
    budget: Option<u64>,
    faults: Option<FaultSchedule>,
) -> FileDriven {
    let fs = workload.fresh_fs(variant);
    let faulty = faults.is_some();
    fs.inner().with(|sim| {
        if let Some(budget) = budget {
            sim.crash_after(budget);
        }
        if let Some(faults) = faults {
            sim.set_faults(faults);
        }
    });
    let mut driver = Driver {
        workload,
        faulty,
        driven: FileDriven {
            model: Model::default(),
            problems: Vec::new(),
            fs,
            poisoned: false,
            held_across_rotation: 0,
        },
        log: None,
        saved: None,
        held: None,
    };
    driver.run();
    // A leader that never ran its job: it is dropped unrun, before the log closes.
    drop(driver.held.take());
    drop(driver.log.take());
    driver.driven
}

struct Driver<'w> {
    workload: &'w FileWorkload,
    faulty: bool,
    driven: FileDriven,
    log: Option<OpenLog>,
    /// The copy [`FileStep::Save`] kept: the segment id and its bytes.
    saved: Option<(u64, Vec<u8>)>,
    /// The detached sync [`FileStep::HoldDetachedSync`] handed out and
    /// [`FileStep::RunHeldSync`] runs.
    held: Option<Held>,
}

/// A group-commit leader's sync, begun and handed out, not yet run.
struct Held {
    ticket: SyncTicket,
    job: DetachedSync<FileError>,
}

impl Driver<'_> {
    fn crashed(&self) -> bool {
        self.driven.fs.inner().with(|sim| sim.has_crashed())
    }

    fn problem(&mut self, what: String) {
        self.driven.problems.push(what);
    }

    fn open(&mut self) -> Result<RecoveryReport, String> {
        let policy = RecoveryPolicy::TolerateTornTail;
        match open_log(self.workload, &self.driven.fs, policy) {
            Ok((log, report)) => {
                self.log = Some(log);
                Ok(report)
            }
            Err(e) => Err(e.to_string()),
        }
    }

    fn run(&mut self) {
        if let Err(e) = self.open() {
            if !self.crashed() && !self.faulty {
                self.problem(format!("opening a new log failed: {e}"));
            }
            return;
        }
        for (index, step) in self.workload.steps.iter().enumerate() {
            if self.driven.poisoned {
                if matches!(step, FileStep::Reopen | FileStep::Kill) {
                    // After a failed fsync only a crash (or a restart) tells what is durable.
                    return;
                }
                self.check_poisoned(index, step);
                continue;
            }
            let result = self.step(index, step);
            if let Err(why) = result {
                if self.crashed() {
                    return;
                }
                if !self.faulty {
                    self.problem(format!("step {index} {step:?} failed: {why}"));
                    return;
                }
                self.driven.poisoned = true;
                let poisoned = match self.log.as_ref().map(|l| &l.log) {
                    None => return,
                    Some(FileLog::Wal(wal)) => wal.poisoned().is_some(),
                    Some(FileLog::Shared(wal)) => wal.poisoned().is_some(),
                };
                if !poisoned && !matches!(step, FileStep::Reopen | FileStep::Kill) {
                    self.problem(format!(
                        "step {index} {step:?} failed ({why}) but the log is not poisoned"
                    ));
                }
            }
        }
    }

    fn step(&mut self, index: usize, step: &FileStep) -> Result<(), String> {
        match step {
            FileStep::Reopen => {
                drop(self.held.take());
                drop(self.log.take());
                let report = self.open()?;
                let model = &mut self.driven.model;
                // With faults, closing may have failed to hand buffered (unacknowledged)
                // records to the OS; without, a clean close and reopen loses nothing.
                if !self.faulty && (report.last_lsn != model.last() || report.cut.is_some()) {
                    let last = model.last();
                    self.problem(format!(
                        "reopen without a crash lost data: model ends at {last}, report: {report}"
                    ));
                }
                self.after_reopen("a reopen");
                Ok(())
            }
            FileStep::Kill => {
                let restarted = self.driven.fs.inner().snapshot().restart();
                // The old process's handles act on the old state: nothing they do on the way
                // out (its `Drop` flushing, stopping jobs) reaches the new process's kernel.
                drop(self.held.take());
                drop(self.log.take());
                let variant = self.driven.fs.hooks().variant();
                self.driven.fs = self.workload.fs_on(variant, restarted);
                self.open()?;
                self.after_reopen("a kill");
                Ok(())
            }
            FileStep::Background(steps) => {
                self.driven.fs.inner().run_background(*steps);
                Ok(())
            }
            FileStep::Save(id) => {
                let name = SegmentName::new(*id);
                let bytes = self
                    .driven
                    .fs
                    .inner()
                    .with(|sim| sim.contents(name.as_str()).map(<[u8]>::to_vec));
                let bytes = bytes.ok_or_else(|| format!("no segment file {name} to save"))?;
                self.saved = Some((*id, bytes));
                Ok(())
            }
            FileStep::HoldDetachedSync => self.hold_detached_sync(),
            FileStep::RunHeldSync => self.run_held_sync(),
            FileStep::Restore => {
                let restored = self.restore();
                // With faults scheduled, the copy may fail to be written: the operator's
                // mistake, not the log's (which goes on, not poisoned, whatever is left).
                if restored.is_err() && self.faulty && !self.crashed() {
                    return Ok(());
                }
                restored
            }
            _ => {
                let step = step.log_step().expect("a log step");
                let seed = self.workload.seed;
                let open = self.log.as_mut().expect("an open log");
                let driven = &mut self.driven;
                match &mut open.log {
                    FileLog::Wal(wal) => log_step(
                        wal.as_mut(),
                        &mut driven.model,
                        &mut driven.problems,
                        seed,
                        index,
                        &step,
                    ),
                    FileLog::Shared(wal) => shared_step(
                        wal,
                        &mut driven.model,
                        &mut driven.problems,
                        seed,
                        index,
                        &step,
                    ),
                }
            }
        }
    }

    /// Runs `f` on the core log under the [`SharedWal`] (taken out of it and shared again
    /// after, as `SharedWal::into_core` and `SharedWal::from_core` allow: one handle, and
    /// the committer's published durable LSN is the core's), as a group-commit leader holding
    /// the log lock does. Then the model learns the durable LSN.
    fn with_core<T>(&mut self, f: impl FnOnce(&mut CoreWal<TestFs>) -> T) -> Result<T, String> {
        let Handle::Shared(policy) = self.workload.handle else {
            return Err("a detached sync needs Handle::Shared".into());
        };
        let OpenLog { log, fs } = self.log.take().ok_or("no open log")?;
        let FileLog::Shared(shared) = log else {
            unreachable!("a shared workload opens a SharedWal")
        };
        let before = shared.durable_lsn();
        let mut core = match shared.into_core() {
            Ok(core) => core,
            Err(shared) => {
                self.log = Some(OpenLog {
                    log: FileLog::Shared(shared),
                    fs,
                });
                return Err("the SharedWal has another handle".into());
            }
        };
        let out = f(&mut core);
        let shared = SharedWal::from_core(core, policy, GroupWindow::default())
            .map_err(|e| format!("sharing the core log again: {e}"))?;
        let durable = shared.durable_lsn();
        if durable < before {
            self.problem(format!("durable LSN went back from {before} to {durable}"));
        }
        self.driven.model.acknowledge(durable);
        self.log = Some(OpenLog {
            log: FileLog::Shared(shared),
            fs,
        });
        Ok(out)
    }

    /// [`FileStep::HoldDetachedSync`]: `Committer::lead`'s part under the log lock.
    fn hold_detached_sync(&mut self) -> Result<(), String> {
        if self.held.is_some() {
            return Err("a detached sync is already held".into());
        }
        let held = self.with_core(|core| -> Result<Option<Held>, String> {
            if let Some(p) = core.poisoned() {
                return Err(format!("poisoned: {p}"));
            }
            if core.durable_lsn() >= core.last_lsn() {
                return Ok(None); // nothing to sync: the leader returns at once
            }
            let ticket = core.begin_sync().map_err(|p| format!("poisoned: {p}"))?;
            let core_sync = |core: &mut CoreWal<TestFs>| {
                core.sync()
                    .map(drop)
                    .map_err(|e| format!("sync failed: {e}"))
            };
            if ticket.first != ticket.segment {
                // Pending segments of an early rotation: the leader has the core sync them.
                core_sync(core)?;
                return Ok(None);
            }
            match core.storage().detached_sync(ticket.segment) {
                Ok(Some(job)) => Ok(Some(Held { ticket, job })),
                Ok(None) => {
                    core_sync(core)?;
                    Ok(None)
                }
                Err(error) => {
                    let failed = core.finish_sync(ticket, Err(error)).err();
                    Err(format!("detached sync failed: {failed:?}"))
                }
            }
        })??;
        self.held = held;
        Ok(())
    }

    /// [`FileStep::RunHeldSync`]: the leader's job, run without the log lock, then its
    /// `finish_sync` under it and the durable LSN published.
    fn run_held_sync(&mut self) -> Result<(), String> {
        let Some(Held { ticket, job }) = self.held.take() else {
            return Ok(()); // the leader synced under the lock, or had nothing to sync
        };
        let rotated = self
            .log
            .as_ref()
            .and_then(|log| log.segment_ids().last().copied())
            .is_some_and(|active| active > ticket.segment);
        let outcome = job();
        let finished = self.with_core(|core| core.finish_sync(ticket, outcome))?;
        if rotated {
            self.driven.held_across_rotation += 1;
        }
        finished.map(drop).map_err(|e| format!("sync failed: {e}"))
    }

    /// [`FileStep::Restore`]: the saved copy, written back under its name and made durable.
    fn restore(&mut self) -> Result<(), String> {
        let (id, bytes) = self.saved.clone().ok_or("nothing saved to restore")?;
        let fs = &self.driven.fs;
        let root = Path::new(ROOT);
        let path = root.join(SegmentName::new(id).as_str());
        let failed = |what: &str, e: std::io::Error| format!("restoring segment {id}: {what}: {e}");
        let file = fs
            .open(&path, OpenMode::CreateNew)
            .map_err(|e| failed("create", e))?;
        file.write_all_at(&bytes, 0)
            .map_err(|e| failed("write", e))?;
        file.sync_data().map_err(|e| failed("sync", e))?;
        fs.open_dir(root)
            .and_then(|dir| dir.sync_all())
            .map_err(|e| failed("directory sync", e))
    }

    /// After a reopen (clean, or after a kill): the log must hold every acknowledged record
    /// and nothing that was not appended, all of it durable; what it holds is the new model
    /// (in-flight records it lost are gone).
    fn after_reopen(&mut self, after: &str) {
        if self.crashed() {
            return; // the power went out during the open's own background work
        }
        let Some(log) = &self.log else { return };
        let records = match log.read_all() {
            Ok(records) => records,
            Err(_) if self.crashed() => return,
            Err(e) => {
                self.problem(format!("after {after} the log does not read back: {e}"));
                return;
            }
        };
        let got = Recovered {
            first: log.first_lsn(),
            records,
            report: None,
        };
        if log.durable_lsn() != got.last() {
            self.problem(format!("after {after} the durable LSN is not the last LSN"));
        }
        if let Err((invariant, detail)) = check_log(&self.driven.model, &got) {
            self.problem(format!("{invariant} after {after}: {detail}"));
        }
        self.driven.model = Model::recovered(got.first, &got.records);
    }

    fn check_poisoned(&mut self, index: usize, step: &FileStep) {
        let seed = self.workload.seed;
        let Some(step) = step.log_step() else { return };
        let Some(open) = self.log.as_mut() else {
            return;
        };
        let problems = match &mut open.log {
            FileLog::Wal(wal) => poisoned_step(wal.as_mut(), seed, index, &step),
            FileLog::Shared(wal) => poisoned_shared_step(wal, seed, index, &step),
        };
        self.driven.problems.extend(problems);
    }
}

type Shared = SharedWal<FileStorage<TestFs>>;

/// [`log_step`] for a [`SharedWal`].
fn shared_step(
    wal: &mut Shared,
    model: &mut Model,
    problems: &mut Vec<String>,
    seed: u64,
    step_index: usize,
    step: &Step,
) -> Result<(), String> {
    let before = wal.durable_lsn();
    let result = match step {
        Step::Append(len) => {
            let payloads = vec![payload(seed, step_index, 0, *len)];
            shared_append(wal, model, problems, &payloads)
        }
        Step::Batch(lens) => {
            let payloads: Vec<Vec<u8>> = lens
                .iter()
                .enumerate()
                .map(|(i, len)| payload(seed, step_index, i, *len))
                .collect();
            shared_append(wal, model, problems, &payloads)
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
        Step::Reopen => unreachable!("handled by the driver"),
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

fn shared_append(
    wal: &Shared,
    model: &mut Model,
    problems: &mut Vec<String>,
    payloads: &[Vec<u8>],
) -> Result<(), String> {
    let expected = model.next_lsn();
    model.begin_append(payloads, wal.durable_lsn());
    let slices: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
    match wal.append_batch(&slices) {
        Ok(appended) => {
            if appended.first != expected {
                return Err(format!(
                    "append returned LSN {}, expected {expected}",
                    appended.first
                ));
            }
            if wal.sync_policy() == SyncPolicy::Always && !appended.durable {
                problems.push("append under SyncPolicy::Always returned not durable".into());
            }
            if appended.durable {
                if wal.durable_lsn() < appended.last {
                    problems.push(format!(
                        "append said durable, but the durable LSN is {} < {}",
                        wal.durable_lsn(),
                        appended.last
                    ));
                }
                model.acknowledge(appended.last);
            }
            Ok(())
        }
        Err(e) => Err(e.to_string()),
    }
}

/// [`poisoned_step`] for a [`SharedWal`].
fn poisoned_shared_step(wal: &Shared, seed: u64, step_index: usize, step: &Step) -> Vec<String> {
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
