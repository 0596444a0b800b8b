//! [`PairFs`]: the raft store's two log directories, each a [`SimFileSystem`], under one power
//! supply, with a tape that records the moment before every state-changing file operation.
//!
//! The simulated file system holds one log directory; the store keeps two (`entries` and
//! `meta`) side by side. `PairFs` routes every path to the directory it names, and a sync of
//! their common parent syncs both (it makes both directories' own entries durable, as the one
//! parent directory would on a real file system).
//!
//! **One run, every moment.** Instead of running the workload once per crash point with the
//! power cut after `n` operations, the workload runs once, and before each state-changing
//! operation (of either directory, from any thread: the store's caller, Walden's syncer, a
//! closing log) the tape keeps a snapshot of both simulators and how many events the workload
//! had reported by then. A power cut right before that operation leaves exactly that state,
//! and the events are exactly what the store had acknowledged: an acknowledgement reported
//! after the snapshot was not given yet when the power went. The tape's lock is held across
//! the operation, so snapshots and operations of different threads never interleave.

use core::time::Duration;
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::ThreadId;
use std::time::Instant;

use walden_sim::SimFs;
use walden_std::{
    Background, DirEntry, FileKind, FileSystem, FsFile, Job, Metadata, OpenMode, SIM_TUNING,
    SimFile, SimFileSystem, Tuning, Worker,
};

use super::workload::Event;

/// The store's directory in the simulation.
pub const RAFT_DIR: &str = "/walden-sim/raft";

/// The state a power cut right before one state-changing file operation leaves.
#[derive(Clone)]
pub struct Moment {
    /// The entries log's directory.
    pub entries: SimFs,
    /// The meta log's directory.
    pub meta: SimFs,
    /// How many of the workload's events had been reported.
    pub events: usize,
    /// The operation just before this moment (empty at the start).
    pub after: String,
}

/// What a recorded run leaves: every moment, and the workload's events.
#[derive(Default)]
pub struct Tape {
    /// Moments in order; consecutive operations that changed nothing share one.
    pub moments: Vec<Moment>,
    /// The workload's reports (appends started, flushes acknowledged, votes saved, ...).
    pub events: Vec<Event>,
    record: bool,
    /// A state-changing operation ran since the last moment was taken.
    dirty: bool,
    last_op: String,
}

/// Which of the two directories a path is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Which {
    Entries,
    Meta,
    /// The store's directory or one of its ancestors.
    Above,
}

/// The store's two directories over two simulators, one power supply.
#[derive(Clone)]
pub struct PairFs {
    entries: SimFileSystem,
    meta: SimFileSystem,
    tape: Arc<Mutex<Tape>>,
    hold: Arc<Hold>,
}

/// Holds back the syncs of the entries directory's files made by other threads than the
/// holder's (Walden's syncer thread), so that appended entries stay unflushed, in the page
/// cache, for as long as the workload says: a deterministic "appended, not yet flushed".
#[derive(Default)]
struct Hold {
    state: Mutex<HoldState>,
    changed: Condvar,
}

#[derive(Default)]
struct HoldState {
    /// The thread that holds the syncs back (it syncs freely itself), if they are held.
    holder: Option<ThreadId>,
    /// Syncs waiting for the release.
    parked: usize,
}

/// How long a held sync waits at most: only a store that blocks the workload's thread on a
/// held sync (a broken one) waits that long, and the run goes on without the hold.
const HOLD_LIMIT: Duration = Duration::from_secs(2);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn entries_root() -> PathBuf {
    Path::new(RAFT_DIR).join("entries")
}

fn meta_root() -> PathBuf {
    Path::new(RAFT_DIR).join("meta")
}

impl PairFs {
    /// Both directories in the given simulator states; `record` keeps a tape.
    pub fn new(entries: SimFs, meta: SimFs, record: bool) -> Self {
        let sim = |root: PathBuf, fs: SimFs| {
            SimFileSystem::with_settings(root, fs, Background::Inline, SIM_TUNING, None)
        };
        Self {
            entries: sim(entries_root(), entries),
            meta: sim(meta_root(), meta),
            tape: Arc::new(Mutex::new(Tape {
                record,
                ..Tape::default()
            })),
            hold: Arc::default(),
        }
    }

    /// From now on, syncs of the entries directory's files by any other thread than this one
    /// wait until [`PairFs::release_entries_syncs`] (or, if nothing releases them, a few
    /// seconds).
    pub fn hold_entries_syncs(&self) {
        lock(&self.hold.state).holder = Some(std::thread::current().id());
    }

    /// Whether entries syncs are held back.
    pub fn holding_entries_syncs(&self) -> bool {
        lock(&self.hold.state).holder.is_some()
    }

    /// Lets the held syncs go.
    pub fn release_entries_syncs(&self) {
        lock(&self.hold.state).holder = None;
        self.hold.changed.notify_all();
    }

    /// Waits (at most `limit`) until a sync of the entries directory is held back; returns
    /// whether one is.
    pub fn wait_for_held_sync(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut st = lock(&self.hold.state);
        while st.parked == 0 && st.holder.is_some() {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            st = (self.hold.changed.wait_timeout(st, deadline - now))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        st.parked > 0
    }

    /// A sync of an entries file: waits while syncs are held by another thread.
    fn held_sync(&self) {
        let me = std::thread::current().id();
        let mut st = lock(&self.hold.state);
        if st.holder.is_none_or(|h| h == me) {
            return;
        }
        st.parked += 1;
        self.hold.changed.notify_all();
        let deadline = Instant::now() + HOLD_LIMIT;
        while st.holder.is_some_and(|h| h != me) {
            let now = Instant::now();
            if now >= deadline {
                st.holder = None;
                break;
            }
            st = (self.hold.changed.wait_timeout(st, deadline - now))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        st.parked -= 1;
    }

    /// The entries directory's simulator, as it is now.
    pub fn entries_sim(&self) -> SimFs {
        self.entries.snapshot()
    }

    /// The meta directory's simulator, as it is now.
    pub fn meta_sim(&self) -> SimFs {
        self.meta.snapshot()
    }

    /// Reports a workload event (after the call it describes returned, or before one whose
    /// effect may land before it returns).
    pub fn note(&self, event: Event) {
        lock(&self.tape).events.push(event);
    }

    /// Takes the final moment (the workload finished) and hands the tape over.
    pub fn finish(&self) -> Tape {
        let mut tape = lock(&self.tape);
        self.mark(&mut tape);
        core::mem::take(&mut *tape)
    }

    fn which(path: &Path) -> Which {
        if path.starts_with(entries_root()) {
            Which::Entries
        } else if path.starts_with(meta_root()) {
            Which::Meta
        } else {
            Which::Above
        }
    }

    fn sim(&self, which: Which) -> &SimFileSystem {
        match which {
            Which::Meta => &self.meta,
            Which::Entries | Which::Above => &self.entries,
        }
    }

    fn ops(&self) -> (u64, u64) {
        (
            self.entries.with(|s| s.op_count()),
            self.meta.with(|s| s.op_count()),
        )
    }

    /// Takes a moment if anything changed since the last one, else brings the last one's
    /// events up to date (the same disk, more acknowledged).
    fn mark(&self, tape: &mut Tape) {
        if !tape.record {
            return;
        }
        let events = tape.events.len();
        match tape.moments.last_mut() {
            Some(last) if !tape.dirty => last.events = events,
            _ => {
                let after = tape.last_op.clone();
                tape.moments.push(Moment {
                    entries: self.entries.snapshot(),
                    meta: self.meta.snapshot(),
                    events,
                    after,
                });
                tape.dirty = false;
            }
        }
    }

    /// Runs a call that may change state, with the moment before it taken.
    fn counted<T>(&self, op: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
        let mut tape = lock(&self.tape);
        self.mark(&mut tape);
        let before = self.ops();
        let result = op();
        let after = self.ops();
        if tape.record && after != before {
            tape.dirty = true;
            let (sim, dir) = if after.0 != before.0 {
                (&self.entries, "entries")
            } else {
                (&self.meta, "meta")
            };
            tape.last_op = sim.with(|s| {
                let op = s
                    .trace()
                    .last()
                    .map(|e| s.describe_op(e))
                    .unwrap_or_default();
                format!("{dir}: {op}")
            });
        }
        result
    }
}

/// An open file or directory of a [`PairFs`].
pub enum PairFile {
    /// A file or directory of one of the two directories (true: of the entries directory).
    One(SimFile, PairFs, bool),
    /// The store's directory or an ancestor: syncing it syncs what it holds in both.
    Both(SimFile, SimFile, PairFs),
}

/// What the directories above the two logs answer to a file call.
fn not_a_file() -> io::Error {
    io::Error::new(
        io::ErrorKind::IsADirectory,
        "the raft store's directory is not a file",
    )
}

impl FsFile for PairFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        match self {
            PairFile::One(f, ..) => f.read_at(buf, offset),
            PairFile::Both(..) => Err(not_a_file()),
        }
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        match self {
            PairFile::One(f, fs, _) => fs.counted(|| f.write_all_at(buf, offset)),
            PairFile::Both(..) => Err(not_a_file()),
        }
    }

    fn sync_data(&self) -> io::Result<()> {
        match self {
            PairFile::One(f, fs, entries) => {
                if *entries {
                    fs.held_sync();
                }
                fs.counted(|| f.sync_data())
            }
            PairFile::Both(..) => self.sync_all(),
        }
    }

    fn sync_all(&self) -> io::Result<()> {
        match self {
            PairFile::One(f, fs, entries) => {
                if *entries {
                    fs.held_sync();
                }
                fs.counted(|| f.sync_all())
            }
            PairFile::Both(a, b, fs) => {
                fs.counted(|| a.sync_all())?;
                fs.counted(|| b.sync_all())
            }
        }
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        match self {
            PairFile::One(f, fs, _) => fs.counted(|| f.set_len(len)),
            PairFile::Both(..) => Err(not_a_file()),
        }
    }

    fn len(&self) -> io::Result<u64> {
        match self {
            PairFile::One(f, ..) => f.len(),
            PairFile::Both(..) => Err(not_a_file()),
        }
    }

    /// Not a moment: an allocation changes nothing a crash could leave.
    fn allocate(&self, len: u64) -> io::Result<()> {
        match self {
            PairFile::One(f, ..) => f.allocate(len),
            PairFile::Both(..) => Err(not_a_file()),
        }
    }

    fn forget_cache(&self) -> io::Result<()> {
        match self {
            PairFile::One(f, ..) => f.forget_cache(),
            PairFile::Both(..) => Ok(()),
        }
    }

    fn try_lock(&self) -> io::Result<()> {
        match self {
            PairFile::One(f, ..) => f.try_lock(),
            PairFile::Both(..) => Err(not_a_file()),
        }
    }
}

impl FileSystem for PairFs {
    type File = PairFile;

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let which = Self::which(path);
        self.counted(|| self.sim(which).create_dir_all(path))
    }

    fn metadata(&self, path: &Path) -> io::Result<Metadata> {
        self.sim(Self::which(path)).metadata(path)
    }

    fn symlink_metadata(&self, path: &Path) -> io::Result<Metadata> {
        self.sim(Self::which(path)).symlink_metadata(path)
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<PairFile> {
        let which = Self::which(path);
        let sim = self.sim(which);
        // Any mode may create a file (and a new one may come): counted, a moment only if the
        // simulator numbered it.
        let file = self.counted(|| sim.open(path, mode))?;
        Ok(PairFile::One(file, self.clone(), which == Which::Entries))
    }

    fn open_dir(&self, path: &Path) -> io::Result<PairFile> {
        match Self::which(path) {
            Which::Above => Ok(PairFile::Both(
                self.entries.open_dir(path)?,
                self.meta.open_dir(path)?,
                self.clone(),
            )),
            which => Ok(PairFile::One(
                self.sim(which).open_dir(path)?,
                self.clone(),
                false,
            )),
        }
    }

    fn hard_link(&self, original: &Path, link: &Path) -> io::Result<()> {
        let sim = self.sim(Self::which(original));
        self.counted(|| sim.hard_link(original, link))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let sim = self.sim(Self::which(from));
        self.counted(|| sim.rename(from, to))
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let sim = self.sim(Self::which(path));
        self.counted(|| sim.remove_file(path))
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        match Self::which(path) {
            Which::Above if path == Path::new(RAFT_DIR) => Ok(["entries", "meta"]
                .into_iter()
                .map(|name| DirEntry {
                    name: OsString::from(name),
                    kind: FileKind::Dir,
                })
                .collect()),
            which => self.sim(which).read_dir(path),
        }
    }

    /// Background jobs run inline (inside `spawn`), through this file system's files.
    fn spawn(&self, name: &str, job: Job) -> io::Result<Worker> {
        self.entries.spawn(name, job)
    }

    fn tuning(&self) -> Tuning {
        self.entries.tuning()
    }

    fn random_seed(&self) -> u64 {
        self.entries.random_seed()
    }
}
