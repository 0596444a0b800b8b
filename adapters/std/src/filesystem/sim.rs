//! [`SimFileSystem`]: walden-std over `walden_sim::SimFs` (feature `sim`), so the crash explorer
//! can run `FileStorage` itself — its write buffer, spare files, zero-fill and recovery path —
//! against a file system that crashes in every legal way.

use core::sync::atomic::{AtomicUsize, Ordering};
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use walden_core::{StorageError, StorageErrorKind};
use walden_sim::{Inode, SimError, SimFs};

use super::{
    DirEntry, FileKind, FileSystem, FsFile, Job, Metadata, Mutation, OpenMode, SteppedJobs, Tuning,
    Worker,
};

/// When a [`SimFileSystem`] runs background work ([`FileSystem::spawn`]): never on a thread,
/// so that a run is a function of its seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Background {
    /// At once, inside `spawn`, until the job finishes or waits for the writer: background
    /// work that is always faster than the writer.
    Inline,
    /// Only when the test asks ([`SimFileSystem::run_background`]) or when walden-std waits
    /// for the job ([`Worker::join`]): background work that is slower than the writer, and
    /// preempted wherever the test chooses.
    Deferred,
}

/// The sizes a [`SimFileSystem`] gives walden-std by default: small enough that segments of a
/// few KiB fill the write buffer, get a zero-fill ahead of the writer and sync it in steps.
pub const SIM_TUNING: Tuning = Tuning {
    write_buffer: 2048,
    sync_zero_fill: 1024,
    fill_chunk: 1024,
    fill_sync_every: 2048,
    // `write_back` is not modelled: the spare is synced every step, as every `fill_chunk`
    // before `spare_write_back` existed.
    spare_write_back: 1024,
    fill_ahead: 64 << 10,
    fill_pace: core::time::Duration::ZERO,
    zero_fill_max_bytes_per_sync: 1024,
    // Every log the explorers build has more segments than this: closing and reopening older
    // segments' files is on the explored paths.
    max_open_files: 2,
    // Chunks smaller than most batches and than the workloads' longer records (1.2-2.5 KB):
    // the window hands units over from the chunks it holds (at most 16 of these), takes
    // several in a row for a record longer than one, puts records that straddle them
    // together, reads for itself when a unit spans more, and skips chunks it has read past.
    replay_chunk: 1024,
    // Smaller than the longer records too: the parallel scans refill their windows mid-record
    // and checksum such records in pieces.
    scan_window: 1024,
    // Not modelled (`start_write_back` does nothing here): small, so the bookkeeping runs.
    write_back_every: 1024,
    // As on disk: larger than any segment a simulated log builds, so reservations are whole.
    max_prepared: 1 << 30,
    // Zeros written, as on most disks; a workload that turns it on finds it offered.
    write_zeroes: false,
};

struct Shared {
    fs: Mutex<SimFs>,
    mode: Background,
    jobs: SteppedJobs,
    tuning: Tuning,
    mutation: Option<Mutation>,
    /// Every `start_write_back` (offset, length), in order: it changes nothing in the
    /// simulated state, so it is only recorded, for tests.
    write_backs: Mutex<Vec<(u64, u64)>>,
    /// Open descriptions of regular files: nothing in the simulated state depends on them
    /// (as on Linux, an unlinked file's data is simply unreachable), so they are only counted,
    /// for tests.
    open_files: AtomicUsize,
}

/// A [`FileSystem`] over a simulated one ([`SimFs`]), holding one log directory at `root`.
///
/// Cheap to clone (a handle). Paths must be `root`, an ancestor of it, or `root/<name>`;
/// anything else is `Unsupported`. Background jobs run as [`Background`] says. Errors of the
/// simulator become `io::Error`s with the matching OS error code (`EIO`, `ENOSPC`, `ENOENT`,
/// `EEXIST`, `EWOULDBLOCK`), so walden-std classifies them as it does real ones.
#[derive(Clone)]
pub struct SimFileSystem {
    root: Arc<PathBuf>,
    shared: Arc<Shared>,
}

impl core::fmt::Debug for SimFileSystem {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SimFileSystem")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The `io::Error` walden-std would see from the OS.
fn to_io(e: SimError) -> io::Error {
    let code = match e.kind() {
        StorageErrorKind::NotFound => libc::ENOENT,
        StorageErrorKind::AlreadyExists => libc::EEXIST,
        StorageErrorKind::NoSpace => libc::ENOSPC,
        StorageErrorKind::PermissionDenied => libc::EACCES,
        StorageErrorKind::Locked => libc::EWOULDBLOCK,
        StorageErrorKind::ShortWrite => {
            return io::Error::new(io::ErrorKind::WriteZero, e.to_string());
        }
        StorageErrorKind::Unsupported => {
            return io::Error::new(io::ErrorKind::Unsupported, e.to_string());
        }
        _ => libc::EIO,
    };
    io::Error::from_raw_os_error(code)
}

fn outside(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        format!("{} is outside the simulated directory", path.display()),
    )
}

enum Place<'p> {
    Root,
    Ancestor,
    Entry(&'p str),
}

impl SimFileSystem {
    /// A file system whose log directory is `root`, in the state `fs`, with [`SIM_TUNING`]
    /// and background jobs run [`Background::Inline`].
    pub fn new(root: impl Into<PathBuf>, fs: SimFs) -> Self {
        Self::build(root.into(), fs, Background::Inline, SIM_TUNING, None)
    }

    /// A file system with every setting given at once (cheaper than the `with_` methods,
    /// which rebuild). `mutation` is for tests of the explorer only.
    #[doc(hidden)]
    pub fn with_settings(
        root: impl Into<PathBuf>,
        fs: SimFs,
        background: Background,
        tuning: Tuning,
        mutation: Option<Mutation>,
    ) -> Self {
        Self::build(root.into(), fs, background, tuning, mutation)
    }

    /// The same, with background jobs run as `mode` says.
    #[must_use]
    pub fn with_background(self, mode: Background) -> Self {
        let fs = self.snapshot();
        Self::build(
            (*self.root).clone(),
            fs,
            mode,
            self.shared.tuning,
            self.shared.mutation,
        )
    }

    /// The same, with other buffer and fill sizes.
    #[must_use]
    pub fn with_tuning(self, tuning: Tuning) -> Self {
        let mode = self.shared.mode;
        Self::build(
            (*self.root).clone(),
            self.snapshot(),
            mode,
            tuning,
            self.shared.mutation,
        )
    }

    /// The same, exhibiting a deliberately broken behaviour (tests of the explorer only).
    #[doc(hidden)]
    #[must_use]
    pub fn with_mutation(self, mutation: Option<Mutation>) -> Self {
        let mode = self.shared.mode;
        Self::build(
            (*self.root).clone(),
            self.snapshot(),
            mode,
            self.shared.tuning,
            mutation,
        )
    }

    fn build(
        root: PathBuf,
        fs: SimFs,
        mode: Background,
        tuning: Tuning,
        mutation: Option<Mutation>,
    ) -> Self {
        Self {
            root: Arc::new(root),
            shared: Arc::new(Shared {
                fs: Mutex::new(fs),
                mode,
                jobs: SteppedJobs::default(),
                tuning,
                mutation,
                write_backs: Mutex::default(),
                open_files: AtomicUsize::new(0),
            }),
        }
    }

    /// How many regular files are open through this handle (descriptions not yet dropped).
    #[doc(hidden)]
    pub fn open_files(&self) -> usize {
        self.shared.open_files.load(Ordering::Relaxed)
    }

    /// Every write-back started on this handle's files so far (offset, length), in order.
    #[doc(hidden)]
    pub fn write_backs_started(&self) -> Vec<(u64, u64)> {
        lock(&self.shared.write_backs).clone()
    }

    /// A new handle on a new simulator state, with this one's root, background mode, tuning
    /// and mutation (for a crashed or restarted [`SimFs`]). No job carries over.
    #[must_use]
    pub fn reborn(&self, fs: SimFs) -> Self {
        let mode = self.shared.mode;
        Self::build(
            (*self.root).clone(),
            fs,
            mode,
            self.shared.tuning,
            self.shared.mutation,
        )
    }

    /// The log directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Runs `f` on the simulator (do not call walden-std from inside).
    pub fn with<T>(&self, f: impl FnOnce(&mut SimFs) -> T) -> T {
        f(&mut lock(&self.shared.fs))
    }

    /// A copy of the simulator as it is now.
    pub fn snapshot(&self) -> SimFs {
        lock(&self.shared.fs).clone()
    }

    /// Background jobs started and not finished.
    pub fn pending_jobs(&self) -> usize {
        self.shared.jobs.pending()
    }

    /// Runs up to `steps` steps of the queued background jobs, oldest first (a job that waits
    /// for the writer goes to the back). Returns how many steps ran.
    pub fn run_background(&self, steps: usize) -> usize {
        self.shared.jobs.run(steps)
    }

    /// Names of the queued jobs, oldest first.
    pub fn job_names(&self) -> Vec<String> {
        self.shared.jobs.names()
    }

    fn place<'p>(&self, path: &'p Path) -> io::Result<Place<'p>> {
        if path == self.root.as_path() {
            return Ok(Place::Root);
        }
        if self.root.starts_with(path) {
            return Ok(Place::Ancestor);
        }
        match (path.parent(), path.file_name().and_then(|n| n.to_str())) {
            (Some(parent), Some(name)) if parent == self.root.as_path() => Ok(Place::Entry(name)),
            _ => Err(outside(path)),
        }
    }

    fn sim<T>(&self, f: impl FnOnce(&mut SimFs) -> Result<T, SimError>) -> io::Result<T> {
        f(&mut lock(&self.shared.fs)).map_err(to_io)
    }

    fn file(&self, target: Target) -> io::Result<SimFile> {
        let seen = match target {
            Target::File(inode) => self.sim(|fs| fs.error_seq(inode))?,
            _ => 0,
        };
        if let Target::File(_) = target {
            self.shared.open_files.fetch_add(1, Ordering::Relaxed);
        }
        Ok(SimFile {
            shared: Arc::clone(&self.shared),
            target,
            locked: Mutex::new(false),
            seen: Mutex::new(seen),
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    File(Inode),
    /// The log directory: syncing it syncs its entries.
    Dir,
    /// The directory holding the log directory: syncing it makes the log directory durable.
    Parent,
    /// A further ancestor (assumed durable).
    Ancestor,
}

/// An open file of a [`SimFileSystem`]: one open file description, with its own view of
/// the file's writeback errors (Linux's `errseq_t`: a failed sync is reported once to every
/// description that syncs afterwards).
pub struct SimFile {
    shared: Arc<Shared>,
    target: Target,
    locked: Mutex<bool>,
    /// The error sequence this description has reported.
    seen: Mutex<u64>,
}

impl SimFile {
    fn sim<T>(&self, f: impl FnOnce(&mut SimFs, Inode) -> Result<T, SimError>) -> io::Result<T> {
        let Target::File(inode) = self.target else {
            return Err(io::Error::from_raw_os_error(libc::EISDIR));
        };
        f(&mut lock(&self.shared.fs), inode).map_err(to_io)
    }
}

impl Drop for SimFile {
    fn drop(&mut self) {
        if let Target::File(_) = self.target {
            self.shared.open_files.fetch_sub(1, Ordering::Relaxed);
        }
        if let (Target::File(inode), true) = (self.target, *lock(&self.locked)) {
            lock(&self.shared.fs).unlock(inode);
        }
    }
}

impl FsFile for SimFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.sim(|fs, inode| fs.read(inode, offset, buf))
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.sim(|fs, inode| fs.write(inode, offset, buf))
    }

    fn sync_data(&self) -> io::Result<()> {
        self.sync_all()
    }

    fn start_write_back(&self, offset: u64, len: u64) {
        if let Target::File(_) = self.target {
            lock(&self.shared.write_backs).push((offset, len));
        }
    }

    fn sync_all(&self) -> io::Result<()> {
        let mut fs = lock(&self.shared.fs);
        match self.target {
            Target::File(inode) => fs.sync_handle(inode, &mut lock(&self.seen)),
            Target::Dir => fs.sync_dir(),
            Target::Parent => fs.sync_parent(),
            Target::Ancestor => Ok(()),
        }
        .map_err(to_io)
    }

    /// Offered whenever asked (walden-std asks only with [`Tuning::write_zeroes`] on): the
    /// zeros are one write into the model, volatile until synced like any other.
    fn write_zeroes(&self, offset: u64, len: u64) -> io::Result<bool> {
        let len = usize::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
        self.sim(|fs, inode| fs.write(inode, offset, &vec![0; len]))?;
        Ok(true)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.sim(|fs, inode| fs.set_len(inode, len))
    }

    fn len(&self) -> io::Result<u64> {
        self.sim(|fs, inode| fs.len(inode))
    }

    fn allocate(&self, len: u64) -> io::Result<()> {
        self.sim(|fs, inode| fs.allocate(inode, len))
    }

    fn forget_cache(&self) -> io::Result<()> {
        self.sim(|fs, inode| fs.forget_cache(inode))
    }

    fn try_lock(&self) -> io::Result<()> {
        self.sim(|fs, inode| fs.try_lock(inode))?;
        *lock(&self.locked) = true;
        Ok(())
    }
}

impl FileSystem for SimFileSystem {
    type File = SimFile;

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        match self.place(path)? {
            Place::Ancestor => Ok(()),
            Place::Root => {
                if lock(&self.shared.fs).dir_exists() {
                    return Ok(());
                }
                self.sim(SimFs::mkdir)
            }
            Place::Entry(_) => Err(outside(path)),
        }
    }

    fn metadata(&self, path: &Path) -> io::Result<Metadata> {
        self.symlink_metadata(path)
    }

    fn symlink_metadata(&self, path: &Path) -> io::Result<Metadata> {
        let dir = Metadata {
            kind: FileKind::Dir,
            len: 0,
        };
        match self.place(path)? {
            Place::Ancestor => Ok(dir),
            Place::Root => {
                if lock(&self.shared.fs).dir_exists() {
                    Ok(dir)
                } else {
                    Err(io::Error::from_raw_os_error(libc::ENOENT))
                }
            }
            Place::Entry(name) => self.sim(|fs| {
                let inode = fs.lookup(name)?;
                Ok(Metadata {
                    kind: FileKind::File,
                    len: fs.len(inode)?,
                })
            }),
        }
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<SimFile> {
        let Place::Entry(name) = self.place(path)? else {
            return Err(io::Error::from_raw_os_error(libc::EISDIR));
        };
        let inode = self.sim(|fs| match mode {
            OpenMode::Read | OpenMode::ReadWrite => fs.lookup(name),
            OpenMode::CreateNew => fs.create(name),
            OpenMode::CreateOrOpen => match fs.lookup(name) {
                Ok(inode) => Ok(inode),
                Err(e) if e.kind() == StorageErrorKind::NotFound && fs.dir_exists() => {
                    fs.create(name)
                }
                Err(e) => Err(e),
            },
        })?;
        self.file(Target::File(inode))
    }

    fn open_dir(&self, path: &Path) -> io::Result<SimFile> {
        let target = match self.place(path)? {
            Place::Root if lock(&self.shared.fs).dir_exists() => Target::Dir,
            Place::Root => return Err(io::Error::from_raw_os_error(libc::ENOENT)),
            Place::Ancestor if self.root.parent() == Some(path) => Target::Parent,
            Place::Ancestor => Target::Ancestor,
            Place::Entry(_) => return Err(io::Error::from_raw_os_error(libc::ENOTDIR)),
        };
        self.file(target)
    }

    fn hard_link(&self, original: &Path, link: &Path) -> io::Result<()> {
        let (Place::Entry(from), Place::Entry(to)) = (self.place(original)?, self.place(link)?)
        else {
            return Err(outside(link));
        };
        self.sim(|fs| fs.link(from, to))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let (Place::Entry(a), Place::Entry(b)) = (self.place(from)?, self.place(to)?) else {
            return Err(outside(to));
        };
        self.sim(|fs| fs.rename(a, b))
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let Place::Entry(name) = self.place(path)? else {
            return Err(outside(path));
        };
        self.sim(|fs| fs.unlink(name))
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        let Place::Root = self.place(path)? else {
            return Err(outside(path));
        };
        let names = self.sim(|fs| fs.names())?;
        Ok(names
            .into_iter()
            .map(|name| DirEntry {
                name: OsString::from(name),
                kind: FileKind::File,
            })
            .collect())
    }

    fn spawn(&self, name: &str, job: Job) -> io::Result<Worker> {
        let inline = self.shared.mode == Background::Inline;
        Ok(self.shared.jobs.spawn(name, job, inline))
    }

    fn tuning(&self) -> Tuning {
        self.shared.tuning
    }

    fn random_seed(&self) -> u64 {
        lock(&self.shared.fs).config().seed
    }

    fn mutation(&self) -> Option<Mutation> {
        self.shared.mutation
    }
}
