//! The power-loss harness: a deterministic walden-std workload on a [`Mounted`] [`LazyFs`],
//! a crash after any chosen file-system operation, and a checker for the log a reopen finds.
//!
//! [`LazyFs`]: crate::LazyFs

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use walden_core::{Lsn, SyncPolicy};
use walden_std::{
    Before, FileSystem, Hooked, Hooks, Job, Mutation, Op, Options, OsFs, SteppedJobs, Tuning, Wal,
    Worker,
};

use crate::fs::{BrokenFs, CrashPlan, Image};
use crate::mount::Mounted;

/// The segment size of the workload: small, so that it rotates every few records.
pub const SEGMENT: u64 = 8192;

/// The log directory's name under the mount point (so that creating it, and syncing the
/// mount point to make it durable, is part of the workload).
pub const LOG_DIR: &str = "wal";

/// Buffer and fill sizes scaled to 8 KiB segments (as the kill test's): the write buffer
/// fills and flushes by itself, and zero-fills run ahead of the writer in steps.
pub const TUNING: Tuning = {
    let mut t = Tuning::DEFAULT;
    t.write_buffer = 2048;
    t.sync_zero_fill = 1024;
    t.fill_chunk = 1024;
    t.fill_sync_every = 2048;
    t.spare_write_back = 1024;
    t.fill_ahead = 4096;
    t.fill_pace = core::time::Duration::ZERO;
    t.zero_fill_max_bytes_per_sync = 1024;
    t.write_back_every = 2048;
    t.max_open_files = 4;
    t
};

/// A deliberately broken variant of walden-std's file-system calls, for [`DetFs`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BrokenOs {
    /// `fsync` of a directory returns `Ok` without calling the kernel.
    DirSyncNoop,
    /// One of walden-std's own deliberately broken behaviours ([`FileSystem::mutation`]).
    Walden(Mutation),
}

/// walden-std's real file system ([`OsFs`], and `std::fs::File` for every open file: the
/// same system calls), with background work run deterministically instead of on threads:
/// a spawned job runs at once until it finishes or waits for the writer, and a waiting one
/// runs again only when the harness calls [`Det::run_background`] or walden-std joins it.
/// So the sequence of operations the kernel sees is the same on every run.
pub type DetFs = Hooked<OsFs, Det>;

/// [`DetFs`]'s hooks.
pub struct Det {
    jobs: SteppedJobs,
    broken: Option<BrokenOs>,
}

/// The real file system, broken as `broken` says (not at all with `None`).
pub fn det_fs(broken: Option<BrokenOs>) -> DetFs {
    Hooked::new(
        OsFs,
        Det {
            jobs: SteppedJobs::default(),
            broken,
        },
    )
}

impl Det {
    /// Runs the queued jobs one step each, until every one waits or has finished.
    pub fn run_background(&self) {
        self.jobs.run(usize::MAX);
    }
}

impl Hooks for Det {
    fn before(&self, op: &Op<'_>) -> Before {
        match op {
            Op::SyncAll { dir: true, .. } if self.broken == Some(BrokenOs::DirSyncNoop) => {
                Before::Skip
            }
            _ => Before::Run,
        }
    }
    fn spawn<F: FileSystem>(&self, _: &F, name: &str, job: Job) -> io::Result<Worker> {
        Ok(self.jobs.spawn(name, job, true))
    }
    fn tuning<F: FileSystem>(&self, _: &F) -> Tuning {
        TUNING
    }
    fn random_seed<F: FileSystem>(&self, _: &F) -> u64 {
        0x1a2f_5eed
    }
    fn mutation<F: FileSystem>(&self, _: &F) -> Option<Mutation> {
        match self.broken {
            Some(BrokenOs::Walden(m)) => Some(m),
            _ => None,
        }
    }
}

/// The options of the workload's first phase: 8 KiB segments, explicit syncs, spares and
/// preallocation on (the default), open verification on the calling thread.
pub fn options(policy: SyncPolicy) -> Options {
    let mut options = Options::default();
    options.config = options
        .config
        .with_segment_size(SEGMENT)
        .with_sync_policy(policy);
    options.open_threads = 1;
    options
}

/// The options a checker reopens with: the defaults, but for the segment size.
pub fn check_options() -> Options {
    let mut options = Options::default();
    options.config = options.config.with_segment_size(SEGMENT);
    options
}

/// The payload of the workload's `i`-th append: a label then filler, 40 to 1500 bytes.
pub fn payload(i: u64) -> Vec<u8> {
    let len = 40 + ((i * 389 + 17) % 1460) as usize;
    let mut p = format!("rec{i}|").into_bytes();
    let start = p.len();
    p.extend((start..len).map(|k| b'a' + ((k as u64 + i) % 26) as u8));
    p
}

/// What the workload did before it stopped.
#[derive(Clone, Debug, Default)]
pub struct Journal {
    /// Every append attempted, by the LSN it was to get, with the number of `truncate_back`
    /// calls made before it (an append that failed may or may not be recovered; nothing else
    /// may be). An LSN can have several: a `truncate_back` gives its LSNs out again.
    pub attempted: BTreeMap<u64, Vec<(u32, Vec<u8>)>>,
    /// For each `truncate_back(lsn)` that returned `Ok`: `(lsn, n)`, records above `lsn` must
    /// come from appends after the `n`-th `truncate_back` call.
    pub floors: Vec<(u64, u32)>,
    /// The highest LSN the log ever reported durable (`durable_lsn`, read after each call).
    pub durable: u64,
    /// The highest LSN a `truncate_front` was asked for (records below it may be gone).
    pub front: u64,
    /// The workload ran to its end without an error.
    pub completed: bool,
    /// The first error, if any.
    pub error: Option<String>,
}

/// Records appended in each phase of [`workload`].
pub const PHASE_RECORDS: u64 = 24;

/// The workload: open (creating the log directory), append [`PHASE_RECORDS`] records with a
/// `sync` every third and a `truncate_front` every eighth; close, reopen with
/// `SyncPolicy::Always` and append as many again, with a `truncate_front` every tenth and a
/// `truncate_back` of the last four records after the fifteenth. It stops at the first error
/// (a crashed file system answers `EIO` to everything).
///
/// `strict`: take `durable_lsn()` at its word after a `truncate_back` that failed too (see
/// [`Point::strict_truncate_back`]).
pub fn workload(fs: &DetFs, dir: &Path, strict: bool) -> Journal {
    let mut journal = Journal::default();
    if let Err(e) = phases(fs, dir, &mut journal, strict) {
        journal.error = Some(e);
    } else {
        journal.completed = true;
    }
    journal
}

fn phases(fs: &DetFs, dir: &Path, j: &mut Journal, strict: bool) -> Result<(), String> {
    let mut i = 0u64;
    let mut epoch = 0u32;
    for (phase, policy) in [SyncPolicy::Manual, SyncPolicy::Always]
        .into_iter()
        .enumerate()
    {
        let (mut wal, _) =
            Wal::open_in(fs.clone(), dir, options(policy)).map_err(|e| format!("open: {e}"))?;
        fs.hooks().run_background();
        for k in 0..PHASE_RECORDS {
            let p = payload(i);
            let lsn = wal.next_lsn().0;
            j.attempted.entry(lsn).or_default().push((epoch, p.clone()));
            let r = wal.append(&p);
            j.durable = j.durable.max(wal.durable_lsn().0);
            let got = r.map_err(|e| format!("append {i}: {e}"))?;
            if got.0 != lsn {
                return Err(format!("append {i} got LSN {} instead of {lsn}", got.0));
            }
            i += 1;
            fs.hooks().run_background();
            if phase == 0 && k % 3 == 2 {
                let r = wal.sync();
                j.durable = j.durable.max(wal.durable_lsn().0);
                r.map_err(|e| format!("sync after {i}: {e}"))?;
            }
            let every = if phase == 0 { 8 } else { 10 };
            if k % every == every - 1 {
                let to = lsn.saturating_sub(6).max(1);
                j.front = j.front.max(to);
                let r = wal.truncate_front(Lsn(to));
                j.durable = j.durable.max(wal.durable_lsn().0);
                r.map_err(|e| format!("truncate_front({to}): {e}"))?;
                fs.hooks().run_background();
            }
            if phase == 1 && k == 14 {
                let to = lsn - 4;
                // Records above `to` are no longer required, whatever was said of them.
                j.durable = j.durable.min(to);
                epoch += 1;
                let r = wal.truncate_back(Lsn(to));
                if r.is_ok() || strict {
                    j.durable = j.durable.max(wal.durable_lsn().0);
                }
                r.map_err(|e| format!("truncate_back({to}): {e}"))?;
                j.floors.push((to, epoch));
                fs.hooks().run_background();
            }
        }
        drop(wal);
    }
    Ok(())
}

/// What a successful check found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checked {
    /// The first LSN recovered.
    pub first: u64,
    /// The last LSN recovered.
    pub last: u64,
}

/// Opens the log in `dir` with walden-std's plain [`Wal::open`] (the real file system,
/// threads and all, default options but the segment size) and checks it against `journal`:
/// the open succeeds; every record reported durable (and not below a requested
/// `truncate_front`) is there byte for byte at its LSN; LSNs are dense; nothing appears that
/// was never appended. `Err` says what is wrong.
pub fn check(dir: &Path, journal: &Journal) -> Result<Checked, String> {
    let (wal, _report) =
        Wal::open(dir, check_options()).map_err(|e| format!("the reopen failed: {e}"))?;
    let first = wal.first_lsn().0;
    let records = wal
        .read_all_from(Lsn(first))
        .map_err(|e| format!("reading from {first} failed: {e}"))?;
    drop(wal);
    let mut expect = first;
    for (lsn, bytes) in &records {
        if lsn.0 != expect {
            return Err(format!("LSN {} follows {} (not dense)", lsn.0, expect - 1));
        }
        let Some(candidates) = journal.attempted.get(&lsn.0) else {
            return Err(format!("LSN {} was never appended", lsn.0));
        };
        let Some((epoch, _)) = candidates.iter().find(|(_, p)| p == bytes) else {
            return Err(format!("LSN {} holds other bytes than appended", lsn.0));
        };
        if let Some((to, _)) = journal
            .floors
            .iter()
            .find(|(to, floor)| lsn.0 > *to && epoch < floor)
        {
            return Err(format!(
                "LSN {} holds a record removed by a completed truncate_back({to})",
                lsn.0
            ));
        }
        expect += 1;
    }
    let last = expect - 1;
    // Every LSN in [max(front, 1), durable] must be there.
    let low = journal.front.max(1);
    if journal.durable >= low {
        if first > low {
            return Err(format!(
                "records {low}..{} reported durable are lost (the log starts at {first})",
                first.min(journal.durable + 1)
            ));
        }
        if last < journal.durable {
            return Err(format!(
                "records {}..={} reported durable are lost (the log ends at {last})",
                last + 1,
                journal.durable
            ));
        }
    }
    Ok(Checked { first, last })
}

/// Where a run keeps its mount point.
pub struct Bench {
    _root: tempfile::TempDir,
    mnt: PathBuf,
}

impl Bench {
    /// A fresh temporary mount point.
    pub fn new() -> io::Result<Self> {
        let root = tempfile::tempdir()?;
        let mnt = root.path().join("mnt");
        std::fs::create_dir(&mnt)?;
        Ok(Self { _root: root, mnt })
    }

    /// The mount point.
    pub fn mnt(&self) -> &Path {
        &self.mnt
    }

    /// The log directory inside the mount point.
    pub fn log_dir(&self) -> PathBuf {
        self.mnt.join(LOG_DIR)
    }

    /// Mounts `image` here.
    pub fn mount(&self, image: Image, broken: Option<BrokenFs>) -> io::Result<Mounted> {
        Mounted::new(&self.mnt, image, broken)
    }
}

/// How one crash point is run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Point {
    /// The workload's file system freezes after this many state-changing operations
    /// (`None`: the workload runs to its end, then the power is cut).
    pub crash_after: Option<u64>,
    /// What survives.
    pub plan: CrashPlan,
    /// Then the reopen's own file system freezes after this many operations (`None`: no
    /// crash during recovery), and the power is cut again with `DropAll`.
    pub recovery_crash: Option<u64>,
    /// After a `truncate_back` that failed, the workload still takes `durable_lsn()` as a
    /// promise that every record up to it survives (its documentation says so); `false`
    /// ignores it there. Until walden-core lowered the durable LSN before a rewind's first
    /// change, it stayed at the old, higher value while the failed call may already have cut
    /// those records (README.md, "Findings"); every sweep is strict now.
    pub strict_truncate_back: bool,
}

/// What one crash point produced.
#[derive(Debug)]
pub struct Outcome {
    /// The workload's journal.
    pub journal: Journal,
    /// State-changing operations the workload's file system answered.
    pub ops: u64,
    /// State-changing operations the crashed recovery answered (0 without one).
    pub recovery_ops: u64,
    /// The check's verdict.
    pub verdict: Result<Checked, String>,
    /// The image the checker opened (for failure reports).
    pub image: Image,
}

/// Runs the workload on a fresh file system in `bench`, cuts the power as `point` says,
/// remounts and checks. `Err` only for a harness failure (mounting), never for a log the
/// checker rejects (that is in [`Outcome::verdict`]).
pub fn run_point(
    bench: &Bench,
    point: Point,
    broken_os: Option<BrokenOs>,
    broken_fs: Option<BrokenFs>,
) -> io::Result<Outcome> {
    let mounted = bench.mount(Image::default(), broken_fs)?;
    mounted.shared().crash_after(point.crash_after);
    let fs = det_fs(broken_os);
    let journal = workload(&fs, &bench.log_dir(), point.strict_truncate_back);
    drop(fs);
    let ops = mounted.shared().ops();
    let mut image = mounted.crash(point.plan)?;
    let mut recovery_ops = 0;
    if let Some(m) = point.recovery_crash {
        let mounted = bench.mount(image, broken_fs)?;
        mounted.shared().crash_after(Some(m));
        let fs = det_fs(broken_os);
        if let Ok((wal, _)) = Wal::open_in(fs.clone(), bench.log_dir(), options(SyncPolicy::Always))
        {
            fs.hooks().run_background();
            drop(wal);
        }
        drop(fs);
        recovery_ops = mounted.shared().ops();
        image = mounted.crash(CrashPlan::DropAll)?;
    }
    let mounted = bench.mount(image.clone(), broken_fs)?;
    let verdict = check(&bench.log_dir(), &journal);
    drop(mounted);
    Ok(Outcome {
        journal,
        ops,
        recovery_ops,
        verdict,
        image,
    })
}
