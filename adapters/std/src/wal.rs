//! `walden_std::Wal`: a log in a directory, opened in one call.

use core::hash::{BuildHasher, Hasher};
use core::sync::atomic::{AtomicUsize, Ordering};
use std::path::{Path, PathBuf};

use std::collections::HashMap;

use walden_core::raw::{SegmentSummary, scan_segment};
use walden_core::{
    AppendError, Config, Counters, Growable, Lsn, OpenError, Poisoned, ReadError, Reader, Record,
    RecoveryReport, SegmentId, SegmentInfo, Storage, SyncError, TruncateError,
};

use crate::error::{Error, FileError};
use crate::filesystem::{FileSystem, OsFs};
use crate::replay::{self, ReplayError, Stopped};
use crate::storage::FileStorage;

/// The core log over files (on the file system `F`, the real one by default). Its segment table
/// is [`Growable`]: a log on files holds as many segments as it needs (no ceiling on the
/// retained log but the disk).
pub type CoreWal<F = OsFs> = walden_core::Wal<FileStorage<F>, Growable>;

/// How to open a log directory.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// The log configuration (segment size, sync policy, recovery policy, checksum, …). Its
    /// [`SyncPolicy`](walden_core::SyncPolicy) is the one durability setting, for [`Wal`] and
    /// [`crate::SharedWal`] alike. The default is [`Config::default`].
    ///
    /// `Options::default()` turns [`Config::early_rotation`] on (core's `Config::default()`
    /// leaves it off, for devices; a `Config` you pass keeps its own setting): a rotation does
    /// not wait for the old segment's `fdatasync` (the next sync makes it durable first), so
    /// appends without syncs run at the page cache's speed instead of the disk's
    /// (docs/FORMAT.md, "Early successors"). Its cost is at an open after a crash: walden-std
    /// cannot tell which early-sealed segments a later sync covered, so it syncs them, drops
    /// their cached pages and reads them from the disk (what a failed sync lost must not be
    /// read back from the cache). After a clean close (every write synced) the clean-close
    /// marker lets the open skip that (docs/FORMAT.md, "The clean-close marker").
    pub config: Config,
    /// Create the directory if it does not exist (default: true).
    pub create_dir: bool,
    /// Create a new, empty log where the directory holds none (no segment file; default:
    /// true). With `false` such an open fails with [`Error::NoLog`] and creates nothing (not
    /// the directory, not the lock file): for a service that must never start over from an
    /// empty log because its data directory was not mounted, was mistyped, or lost its files.
    /// (A directory whose segments are gone but whose start slots remain is refused either
    /// way: `MissingSegment`.)
    pub create_log: bool,
    /// Scratch memory for recovery scans (default 1 MiB).
    pub scratch_size: usize,
    /// Optional group-commit batching window for [`crate::SharedWal`] (default off).
    pub group_window: crate::GroupWindow,
    /// Preallocate segments and prepare the next one ahead of rotation (default true).
    pub preallocate: bool,
    /// Threads that verify segments in parallel while opening (default: the number of CPUs, at
    /// most 8; 1 verifies inside recovery on the calling thread).
    pub open_threads: usize,
    /// The keys to encrypt new segments with (the ring's current key) and to read encrypted
    /// segments (feature `encrypt`; default none: plaintext). A `'static` reference keeps
    /// `Options` `Copy`: load the ring once ([`crate::load_key_file`]) and leak or store it
    /// in a `static`. See docs/OPERATIONS.md.
    #[cfg(feature = "encrypt")]
    pub keys: Option<&'static walden_core::Keyring>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            config: Config::default().with_early_rotation(true),
            create_dir: true,
            create_log: true,
            scratch_size: 1 << 20,
            group_window: crate::GroupWindow::default(),
            preallocate: true,
            open_threads: std::thread::available_parallelism().map_or(1, |n| n.get().min(8)),
            #[cfg(feature = "encrypt")]
            keys: None,
        }
    }
}

impl Options {
    /// Builder-style setter for [`Options::create_log`]: `false` opens only an existing log
    /// ([`Error::NoLog`] otherwise).
    #[must_use]
    pub fn with_create_log(mut self, create: bool) -> Self {
        self.create_log = create;
        self
    }

    /// Builder-style setter for the configuration's sync policy: when appends become durable,
    /// for a [`Wal`] and a [`crate::SharedWal`] alike (the default is
    /// [`SyncPolicy::Always`](walden_core::SyncPolicy::Always)).
    #[must_use]
    pub fn with_sync_policy(mut self, policy: walden_core::SyncPolicy) -> Self {
        self.config.sync_policy = policy;
        self
    }

    /// Builder-style setter for [`Options::keys`].
    #[cfg(feature = "encrypt")]
    #[must_use]
    pub fn with_keys(mut self, keys: &'static walden_core::Keyring) -> Self {
        self.keys = Some(keys);
        self
    }

    /// Builder-style setter for [`Options::group_window`].
    #[must_use]
    pub fn with_group_window(mut self, window: crate::GroupWindow) -> Self {
        self.group_window = window;
        self
    }
}

impl Options {
    /// Checks the configuration and the options, so that an open that would fail on them
    /// fails before anything on disk is touched, with the error that open returns: an
    /// invalid [`Config`] is [`Error::Open`] (with no file), an invalid
    /// [`Options::group_window`] is [`Error::InvalidOptions`]. [`Wal::open`] and
    /// [`crate::SharedWal::open`] run this same check first.
    ///
    /// Two refusals it cannot make: [`SyncPolicy::Interval`](walden_core::SyncPolicy::Interval)
    /// is valid for a [`crate::SharedWal`] (its flusher thread syncs on the timer) and refused
    /// by [`Wal::open`] alone, which has no such thread; and an
    /// [`Options::scratch_size`] this process cannot allocate is found only by trying, at
    /// the open.
    pub fn validate(&self) -> Result<(), Error> {
        self.config.validate().map_err(|e| Error::Open {
            file: None,
            error: OpenError::Config(e),
        })?;
        if let Some(why) = self.group_window.invalid(&self.config) {
            return Err(Error::InvalidOptions { why });
        }
        if let Some(why) = endless_interval(self.config.sync_policy) {
            return Err(Error::InvalidOptions { why });
        }
        Ok(())
    }
}

/// Whether `dir` holds a file named like a segment (or a start slot): a log, or what is left
/// of one (recovery judges which). A directory that cannot be read holds none here; the open
/// that follows reports why it cannot be read.
fn holds_log<F: FileSystem>(fs: &F, dir: &Path) -> bool {
    fs.read_dir(dir).is_ok_and(|entries| {
        entries.iter().any(|e| {
            e.name
                .to_str()
                .and_then(walden_core::parse_segment_name)
                .is_some()
        })
    })
}

/// Why `policy` cannot be carried out, if it cannot: a [`walden_core::SyncPolicy::Interval`] too long for
/// an `Instant` (such as `Duration::MAX`) would never fire, so no append would become durable
/// (the same rule as [`crate::GroupWindow`]'s `max_wait`).
pub(crate) fn endless_interval(policy: walden_core::SyncPolicy) -> Option<&'static str> {
    match policy {
        walden_core::SyncPolicy::Interval(every)
            if std::time::Instant::now().checked_add(every).is_none() =>
        {
            Some(
                "SyncPolicy::Interval: an interval with no time limit (Duration::MAX) never fires, so no append would become durable: give a finite interval, or SyncPolicy::Manual to sync only when asked",
            )
        }
        _ => None,
    }
}

impl From<Config> for Options {
    fn from(config: Config) -> Self {
        Self {
            config,
            ..Self::default()
        }
    }
}

/// A write-ahead log in a directory of segment files, for one thread (share it with
/// [`crate::SharedWal`]).
///
/// Its methods are the core log's ([`walden_core::Wal`]), spelled out rather than reached
/// through `Deref`, so that this type decides what a user of files can do (the core's storage
/// hooks, sync tickets and segment reservation stay behind it). [`Wal::into_core`] hands over
/// the core log for what is not here.
///
/// The directory is locked while the log is open: a second `open` (from this or another
/// process) fails with [`Error::Locked`].
///
/// `F` is the file system ([`OsFs`] unless opened with [`Wal::open_in`]).
pub struct Wal<F: FileSystem = OsFs> {
    inner: CoreWal<F>,
    dir: PathBuf,
    foreign: Vec<PathBuf>,
    scratch: crate::transform::Scratch,
}

/// A random seed for segment salts and the log id (`Config::salt_seed`), from the standard
/// library's per-process hash keys, the clock and the process id. [`Wal::open`] mixes it in
/// itself (through [`FileSystem::random_seed`]); use it when opening a core log over a
/// [`FileStorage`] directly.
pub fn random_seed() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    h.finish()
}

impl Wal {
    /// Opens (recovers) or creates the log in `dir`.
    pub fn open(
        dir: impl AsRef<Path>,
        options: impl Into<Options>,
    ) -> Result<(Self, RecoveryReport), Error> {
        Self::open_in(OsFs, dir, options)
    }

    /// Opens (recovers) the log in `dir` like [`Wal::open`] and hands every record it holds
    /// to `apply`, oldest first, each once: a replay that reads the log's bytes once instead
    /// of twice (an open verifies every record, and a reader after it would read and verify
    /// them all again).
    ///
    /// A read-ahead thread reads the segments in chunks of
    /// [`Tuning::replay_chunk`](crate::Tuning::replay_chunk) while this thread scans them with
    /// recovery's own scan and hands each verified record to `apply` from those buffers; the
    /// scans then spare the open its own. The scan's window is 4 MiB, or as long as the longest
    /// segment file if that is more and a record of the configuration could be that long.
    /// Before the open finishes, only records that every successful open keeps are handed
    /// over (a clean prefix of sealed segments); the rest (the newest segment, and anything
    /// from the first segment that is not clean, encrypted, or too large) is read after the
    /// open.
    ///
    /// On any error, what was handed over must be discarded: the log did not open (or did
    /// not finish replaying), and records handed over before a refused open need not be the
    /// log's. An `Err` from `apply` stops the replay and is returned as
    /// [`ReplayError::Apply`] with its LSN; the log is closed.
    pub fn open_replaying<E>(
        dir: impl AsRef<Path>,
        options: impl Into<Options>,
        apply: impl FnMut(Lsn, &[u8]) -> Result<(), E>,
    ) -> Result<(Self, RecoveryReport), ReplayError<E>> {
        Self::open_replaying_in(OsFs, dir, options, apply)
    }
}

/// Why [`Wal::open_inner`] failed.
enum Failed {
    Log(Error),
    /// The replay's `apply` returned an error (kept by the caller).
    Applied,
}

impl From<Error> for Failed {
    fn from(e: Error) -> Self {
        Failed::Log(e)
    }
}

impl<F: FileSystem> Wal<F> {
    /// [`Wal::open`] on the file system `fs` (a simulated one, in tests).
    pub fn open_in(
        fs: F,
        dir: impl AsRef<Path>,
        options: impl Into<Options>,
    ) -> Result<(Self, RecoveryReport), Error> {
        match Self::open_inner(fs, dir.as_ref(), options.into(), None) {
            Ok((wal, report, _)) => Ok((wal, report)),
            Err(Failed::Log(e)) => Err(e),
            // Nothing is applied without a replay.
            Err(Failed::Applied) => unreachable!("no replay, no apply"),
        }
    }

    /// [`Wal::open_replaying`] on the file system `fs` (a simulated one, in tests).
    pub fn open_replaying_in<E>(
        fs: F,
        dir: impl AsRef<Path>,
        options: impl Into<Options>,
        mut apply: impl FnMut(Lsn, &[u8]) -> Result<(), E>,
    ) -> Result<(Self, RecoveryReport), ReplayError<E>> {
        // The application's error, kept here while the walk below reports only that it
        // stopped.
        let failed = core::cell::RefCell::new(None);
        let mut each = |lsn: Lsn, payload: &[u8]| {
            apply(lsn, payload).map_err(|e| {
                *failed.borrow_mut() = Some((lsn, e));
                Stopped
            })
        };
        let stopped = || {
            let (lsn, error) = failed.take().expect("a stop records its error");
            ReplayError::Apply { lsn, error }
        };
        let opened = Self::open_inner(fs, dir.as_ref(), options.into(), Some(&mut each));
        let (wal, report, next) = match opened {
            Ok(o) => o,
            Err(Failed::Log(e)) => return Err(ReplayError::Log(e)),
            Err(Failed::Applied) => return Err(stopped()),
        };
        // What the pre-pass did not hand over: the newest segment, and everything from the
        // first segment it could not vouch for. The open kept everything it handed over.
        let from = next.unwrap_or(wal.first_lsn());
        match wal.for_each_from(from, |lsn, payload| each(lsn, payload)) {
            Ok(Ok(())) => {}
            Ok(Err(Stopped)) => return Err(stopped()),
            Err(e) => return Err(ReplayError::Read(e)),
        }
        Ok((wal, report))
    }

    /// Opens the log; with `replay`, hands records over in one read of the sealed segments
    /// (see the `replay` module) and returns the LSN after the last one handed over.
    fn open_inner(
        fs: F,
        dir: &Path,
        options: Options,
        replay: Option<replay::Apply<'_>>,
    ) -> Result<(Self, RecoveryReport, Option<Lsn>), Failed> {
        let dir = dir.to_path_buf();
        // An invalid configuration touches nothing: not even the directory or its lock file.
        options.validate()?;
        if let walden_core::SyncPolicy::Interval(_) = options.config.sync_policy {
            // Nothing would sync on a timer: refuse rather than act as `Manual`.
            return Err(Error::InvalidOptions {
                why: "SyncPolicy::Interval needs a flusher thread: open the log as a SharedWal, or choose another policy",
            }
            .into());
        }
        // Allocated before anything on disk is touched: a size no allocation can serve is a
        // typed error (`vec!` would panic or abort the process).
        let mut scratch = Vec::new();
        let size = options.scratch_size.max(walden_core::MIN_SCRATCH);
        if scratch.try_reserve_exact(size).is_err() {
            return Err(Error::InvalidOptions {
                why: "Options::scratch_size is more memory than this process can allocate (the default is 1 MiB)",
            }
            .into());
        }
        scratch.resize(size, 0);
        // Checked before the directory or its lock file is created, and again under the lock
        // (another process may have removed the log in between).
        if !options.create_log && !holds_log(&fs, &dir) {
            return Err(Error::NoLog { dir }.into());
        }
        let mut storage = FileStorage::open_in(fs, &dir, options.create_dir)?;
        if !options.create_log {
            let mut any = false;
            walden_core::Storage::list(&storage, &mut |_| any = true).map_err(|error| {
                Error::Directory {
                    dir: dir.clone(),
                    action: "list",
                    error,
                }
            })?;
            if !any {
                return Err(Error::NoLog { dir }.into());
            }
        }
        storage.set_preallocate(options.preallocate);
        storage.refresh_foreign().map_err(|e| Error::Directory {
            dir: dir.clone(),
            action: "list",
            error: FileError::from_io(&e),
        })?;
        let foreign = storage.foreign_files().to_vec();
        // `open_in` has dropped the cached pages that may differ from the disk.
        let config = options
            .config
            .with_salt_seed(options.config.salt_seed ^ storage.file_system().random_seed());
        // A second draw, for the encrypted segments' salts (`CoreWal::set_keys`).
        #[cfg(feature = "encrypt")]
        let entropy = storage.file_system().random_seed();
        let paths = SegmentPaths(dir.clone());
        let (summaries, next) = match replay {
            None => (
                scan_in_parallel(
                    &storage,
                    &config,
                    options.open_threads,
                    storage.file_system().tuning().scan_window,
                ),
                None,
            ),
            Some(apply) => {
                let p = replay::prepass(&storage, &config, apply).map_err(|_| Failed::Applied)?;
                (p.summaries, p.next)
            }
        };
        let lookup = |id| summaries.get(&id).copied();
        let opened = CoreWal::<F>::open_with_summaries(storage, config, &mut scratch, &lookup);
        let (inner, report) = opened.map_err(|error| {
            if let OpenError::Corrupted(c) = &error {
                tracing::error!(dir = %dir.display(), segment = c.segment, offset = c.offset,
                        case = ?c.case, detail = c.detail, "recovery refused to open the log");
            }
            Error::Open {
                file: paths.of(&error),
                error,
            }
        })?;
        log_recovery(&dir, &report);
        // A reopened log appends to its newest segment: zero-fill ahead of its end as a new
        // segment would be (see `FileStorage`), so syncs stay data-only.
        let mut inner = inner;
        #[cfg(feature = "encrypt")]
        if let Some(keys) = options.keys {
            inner.set_keys(keys.clone(), entropy);
        }
        if !report.created {
            let _ = inner.reserve_active();
        }
        Ok((
            Self {
                inner,
                dir,
                foreign,
                scratch: Default::default(),
            },
            report,
            next,
        ))
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Files in the directory that are not segments (left alone, reported here).
    pub fn foreign_files(&self) -> &[PathBuf] {
        &self.foreign
    }

    /// Reads every record from `from` on into owned buffers (a convenience; the core reader
    /// reads into caller buffers without allocating).
    pub fn read_all_from(&self, from: Lsn) -> Result<Vec<(Lsn, Vec<u8>)>, ReadError<FileError>> {
        let mut out = Vec::new();
        let Ok(()) = self.for_each_from(from, |lsn, payload| {
            out.push((lsn, payload.to_vec()));
            Ok::<_, core::convert::Infallible>(())
        })?;
        Ok(out)
    }

    /// Hands every record from `from` on to `f`, in a buffer grown to fit, until `f` says to
    /// stop (the inner `Err`) or the log ends.
    fn for_each_from<E>(
        &self,
        from: Lsn,
        mut f: impl FnMut(Lsn, &[u8]) -> Result<(), E>,
    ) -> Result<Result<(), E>, ReadError<FileError>> {
        let mut reader = self.inner.reader(from)?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match reader.next(&mut buf) {
                Ok(Some(r)) => {
                    if let Err(e) = f(r.lsn, r.payload) {
                        return Ok(Err(e));
                    }
                }
                Ok(None) => return Ok(Ok(())),
                Err(ReadError::BufferTooSmall { needed }) => buf.resize(needed, 0),
                Err(e) => return Err(e),
            }
        }
    }

    /// Appends one record and returns its LSN. Durable on return under
    /// [`SyncPolicy::Always`](walden_core::SyncPolicy::Always); otherwise see
    /// [`Wal::durable_lsn`].
    pub fn append(&mut self, payload: &[u8]) -> Result<Lsn, AppendError<FileError>> {
        self.append_batch(&[payload])
    }

    /// Appends records atomically (after any crash all or none are recovered) and returns the
    /// LSN of the first; the others follow densely.
    pub fn append_batch(&mut self, payloads: &[&[u8]]) -> Result<Lsn, AppendError<FileError>> {
        self.scratch.append_batch(&mut self.inner, payloads)
    }

    /// Makes every appended record durable and returns the durable LSN. After a failure the
    /// log is poisoned (see [`Wal::poisoned`]).
    pub fn sync(&mut self) -> Result<Lsn, SyncError<FileError>> {
        self.inner.sync()
    }

    /// Reads record `lsn` into `buf`.
    pub fn read<'b>(
        &self,
        lsn: Lsn,
        buf: &'b mut [u8],
    ) -> Result<Record<'b>, ReadError<FileError>> {
        self.inner.read(lsn, buf)
    }

    /// A reader positioned at `from`, reading into caller buffers.
    pub fn reader(
        &self,
        from: Lsn,
    ) -> Result<Reader<'_, FileStorage<F>, Growable>, ReadError<FileError>> {
        self.inner.reader(from)
    }

    /// Removes whole segments holding only records below `lsn`; returns how many went.
    pub fn truncate_front(&mut self, lsn: Lsn) -> Result<usize, TruncateError<FileError>> {
        self.inner.truncate_front(lsn)
    }

    /// Removes every record after `lsn` (durably, before it returns).
    pub fn truncate_back(&mut self, lsn: Lsn) -> Result<(), TruncateError<FileError>> {
        self.inner.truncate_back(lsn)
    }

    /// The LSN of the oldest retained record.
    pub fn first_lsn(&self) -> Lsn {
        self.inner.first_lsn()
    }

    /// The LSN of the newest record; with none, `first_lsn() - 1` ([`Lsn::ZERO`] only for a
    /// log that never had one: after `truncate_front` or `truncate_back` an empty log keeps its
    /// place). Compare with [`Wal::first_lsn`] to test for emptiness (`last_lsn() <
    /// first_lsn()`).
    pub fn last_lsn(&self) -> Lsn {
        self.inner.last_lsn()
    }

    /// The LSN the next append gets.
    pub fn next_lsn(&self) -> Lsn {
        self.inner.next_lsn()
    }

    /// The highest LSN known durable: every record up to it survives a crash.
    pub fn durable_lsn(&self) -> Lsn {
        self.inner.durable_lsn()
    }

    /// Why the log is poisoned, if it is (reopen it to continue).
    pub fn poisoned(&self) -> Option<Poisoned> {
        self.inner.poisoned()
    }

    /// The log's id (the same in every segment header).
    pub fn log_id(&self) -> u64 {
        self.inner.log_id()
    }

    /// The retained segments, oldest first.
    pub fn segments(&self) -> &[SegmentInfo] {
        self.inner.segments()
    }

    /// Operation counters since open.
    pub fn counters(&self) -> Counters {
        self.inner.counters()
    }

    /// The configuration the log was opened with.
    pub fn config(&self) -> &Config {
        self.inner.config()
    }

    /// The storage (the directory's files).
    pub fn storage(&self) -> &FileStorage<F> {
        self.inner.storage()
    }

    /// Closes the log and returns the core log's storage (the directory stays locked until
    /// the storage is dropped).
    pub fn into_core(self) -> CoreWal<F> {
        self.inner
    }
}

fn log_recovery(dir: &Path, r: &RecoveryReport) {
    if r.is_clean() {
        tracing::info!(dir = %dir.display(), segments = r.segments, records = r.records,
            created = r.created, "log opened");
        return;
    }
    tracing::warn!(dir = %dir.display(), segments = r.segments, records = r.records,
        cut = ?r.cut, rewritten_header = ?r.rewritten_header,
        trailing_garbage = ?r.trailing_garbage, salvage = ?r.salvage,
        missing_front = ?r.missing_front, stale = ?r.stale,
        "log opened after repairs, or with findings");
}

struct SegmentPaths(PathBuf);

impl SegmentPaths {
    fn of(&self, e: &OpenError<FileError>) -> Option<PathBuf> {
        let seg = match e {
            OpenError::Corrupted(c) => Some(c.segment),
            OpenError::Storage(s) => s.segment,
            _ => None,
        }?;
        Some(self.0.join(walden_core::SegmentName::new(seg).as_str()))
    }
}

/// A scanning thread reads [`LARGE_READS`] times `Tuning::scan_window` at a time once the
/// segment it scanned last held records of this many bytes or more on average: a large record
/// that straddles two reads is read again from its start (`Tuning::scan_window` has the
/// measurements).
const LARGE_RECORD: u64 = 4096;
/// See [`LARGE_RECORD`].
const LARGE_READS: usize = 4;

/// Scans (checksums) every segment on `threads` threads before recovery, which then reuses the
/// results instead of scanning those segments itself; it still classifies and repairs what a
/// scan found (the directory is locked, so nothing changes in between). Any failure here only
/// means recovery scans that segment itself. Each thread reads `window` bytes at a time
/// (`Tuning::scan_window`).
pub(crate) fn scan_in_parallel<S: Storage + Sync>(
    storage: &S,
    config: &Config,
    threads: usize,
    window: usize,
) -> HashMap<SegmentId, SegmentSummary> {
    let mut ids = Vec::new();
    let listed = storage.list(&mut |id| {
        if !walden_core::raw::is_start_slot(id) {
            ids.push(id);
        }
    });
    if threads < 2 || listed.is_err() {
        return HashMap::new();
    }
    // The newest segment too: recovery reads all of it (its records and the zeros after
    // them), which would otherwise run alone after the others. It goes first: unless the last
    // close left the clean-close marker, its pages were just dropped from the cache
    // (`forget_cached_newest`), so it is read from the disk while the other threads checksum
    // cached segments. Threads take the next segment from a shared
    // counter, so a slow segment does not leave a thread idle.
    ids.sort_unstable();
    if ids.len() < 2 {
        return HashMap::new();
    }
    ids.rotate_right(1);
    let next = AtomicUsize::new(0);
    let threads = threads.min(ids.len());
    std::thread::scope(|scope| {
        // A thread that cannot be created (a process at its thread limit) is one scanner
        // fewer, not a panic: what no thread summarised, recovery scans itself.
        let workers: Vec<_> = (0..threads)
            .filter_map(|_| {
                let (ids, next) = (&ids, &next);
                let builder = std::thread::Builder::new().name("walden-scan".into());
                builder
                    .spawn_scoped(scope, move || {
                        // `window` while the records are small, `LARGE_READS` times that
                        // once the segment scanned last held large ones (`LARGE_RECORD`).
                        let small = window.max(walden_core::MIN_SCRATCH);
                        let mut scratch = vec![0u8; small.saturating_mul(LARGE_READS)];
                        let mut read = small;
                        let mut done = Vec::new();
                        while let Some(&id) = ids.get(next.fetch_add(1, Ordering::Relaxed)) {
                            let scanned = scan_segment(storage, id, config, &mut scratch[..read]);
                            if let Ok(Some(s)) = scanned {
                                read = if s.mean_record_len() < LARGE_RECORD {
                                    small
                                } else {
                                    scratch.len()
                                };
                                done.push(s);
                            }
                        }
                        done
                    })
                    .ok()
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_default())
            .map(|s| (s.segment, s))
            .collect()
    })
}
