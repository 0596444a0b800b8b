//! The narrow seam between walden-std and the file system: every file operation walden-std
//! performs goes through [`FileSystem`] and [`FsFile`].
//!
//! The real implementation, [`OsFs`], is a zero-sized type over `std::fs` and `rustix`, and the
//! default everywhere ([`crate::Wal::open`], [`crate::SharedWal::open`], [`FileStorage::open`]).
//! Code is generic over the file system (`FileStorage<F>`), not `dyn`, so the seam costs
//! nothing on the append path. Tests pass their own: with the `sim` feature,
//! `SimFileSystem` runs walden-std over `walden_sim::SimFs`, a
//! simulated file system with a page cache that can crash in every legal way; [`Hooked`] wraps
//! either with hooks around every call (to fail, hold, count or skip one, or kill the process
//! after the n-th).
//!
//! Background work (preparing the next segment's spare file, zero-filling ahead of the writer)
//! is started through [`FileSystem::spawn`] as a [`Job`] that runs in steps, so a simulated file
//! system can run it deterministically (at once, at chosen points, or never) instead of on a
//! thread.
//!
//! [`FileStorage::open`]: crate::FileStorage::open

use core::time::Duration;
use std::ffi::OsString;
use std::io;
use std::path::Path;
use std::thread::JoinHandle;

mod hooked;
mod os;
#[cfg(feature = "sim")]
mod sim;
mod stepped;

pub use hooked::{Before, Hooked, HookedFile, Hooks, Op};
pub use os::OsFs;
#[cfg(feature = "sim")]
pub use sim::{Background, SIM_TUNING, SimFile, SimFileSystem};
pub use stepped::SteppedJobs;

/// How [`FileSystem::open`] opens a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpenMode {
    /// Read only; the file must exist.
    Read,
    /// Read and write; the file must exist.
    ReadWrite,
    /// Read and write; the file must not exist (`O_CREAT | O_EXCL`).
    CreateNew,
    /// Read and write; created if missing, never truncated.
    CreateOrOpen,
}

/// What kind of directory entry a path is (symbolic links are not followed where it matters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// Anything else (a device, a socket, a FIFO).
    Other,
}

/// The metadata walden-std looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Metadata {
    /// The kind of entry.
    pub kind: FileKind,
    /// Its length in bytes.
    pub len: u64,
}

/// One entry of a directory listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    /// The file name (without the directory).
    pub name: OsString,
    /// Its kind (a symbolic link is reported as one, not followed).
    pub kind: FileKind,
}

/// What a [`Job`] step asks for next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobStep {
    /// Call again at once: there is more to do.
    Again,
    /// Call again after about this long (the job is waiting for the writer).
    Wait(Duration),
    /// Finished.
    Done,
}

/// Background work, run in steps until it returns [`JobStep::Done`].
pub type Job = Box<dyn FnMut() -> JobStep + Send>;

/// Runs a [`Job`] to the end on the calling thread, sleeping when it asks to wait.
pub fn run_to_end(mut job: Job) {
    loop {
        match job() {
            JobStep::Again => {}
            JobStep::Wait(d) => std::thread::sleep(d),
            JobStep::Done => return,
        }
    }
}

/// A started [`Job`]; [`Worker::join`] waits for it.
pub struct Worker(WorkerKind);

enum WorkerKind {
    Thread(JoinHandle<()>),
    Custom(Box<dyn FnOnce() + Send>),
}

impl Worker {
    /// A job on its own OS thread.
    pub fn thread(name: &str, job: Job) -> io::Result<Self> {
        let handle = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || run_to_end(job))?;
        Ok(Self(WorkerKind::Thread(handle)))
    }

    /// A job run some other way; `join` is called by [`Worker::join`] and must return once
    /// the job will take no further step.
    pub fn custom(join: impl FnOnce() + Send + 'static) -> Self {
        Self(WorkerKind::Custom(Box::new(join)))
    }

    /// Puts `self` in `slot` and waits for the job of the worker it replaces, if any: for
    /// slots whose previous job has finished (or is about to) when a new one starts.
    pub(crate) fn replace_in(self, slot: &std::sync::Mutex<Option<Worker>>) {
        let previous = slot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .replace(self);
        if let Some(p) = previous {
            p.join();
        }
    }

    /// Takes the worker out of `slot`, if one is there, and waits for its job.
    pub(crate) fn join_slot(slot: &std::sync::Mutex<Option<Worker>>) {
        let worker = slot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(w) = worker {
            w.join();
        }
    }

    /// Waits until the job has finished (a panicking job counts as finished).
    pub fn join(self) {
        match self.0 {
            WorkerKind::Thread(handle) => {
                let _ = handle.join();
            }
            WorkerKind::Custom(join) => join(),
        }
    }
}

/// Sizes walden-std's buffers and background work are built around. A simulated file system
/// scales them down so that segments of a few KiB exercise the same paths (a write buffer that
/// fills and flushes by itself, a zero-fill ahead of the writer) as 64 MiB ones do on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Tuning {
    /// Bytes buffered in memory before they are handed to the OS without a sync (64 KiB). Small
    /// enough to stay in the CPU's cache between its fill and the kernel's copy into the page
    /// cache, which then costs less. Against 1 MiB (2-vCPU VM, BENCHMARKS.md "Bulk paths", medians
    /// of three rounds): batches of 1000 x 1 KiB per sync 1.26-1.34 of the suite's baseline against
    /// 0.84-1.06; 256 KiB appends without syncs 0.66-1.30 against 0.31-0.52; 128 B appends without
    /// syncs 1.00-1.02 against 0.62-0.68 while the host was busy, no different when it was quiet
    /// (the kernel's copy fell from 17% to 4% of the samples, little of the whole). An append at
    /// least this long is written straight to the file.
    pub write_buffer: usize,
    /// How much of a segment that did not come from a spare is zero-filled on the calling
    /// thread before the background fill takes over (1 MiB).
    pub sync_zero_fill: u64,
    /// Zeros written per step of a fill (1 MiB).
    pub fill_chunk: u64,
    /// The background fill syncs after this many bytes (4 MiB).
    pub fill_sync_every: u64,
    /// A spare's zeros are written, and written back without a sync (`FsFile::write_back`),
    /// this many bytes at a time (256 KiB); the spare is synced once, when complete. Small
    /// steps without a flush or a metadata commit each keep the writer's `fdatasync`s from
    /// queueing behind a megabyte of zeros and a journal commit (`spare.rs`).
    pub spare_write_back: u64,
    /// How far ahead of the writer the background fill goes before it waits (8 MiB).
    pub fill_ahead: u64,
    /// How long a background fill that is far enough ahead waits before looking again (2 ms).
    pub fill_pace: Duration,
    /// Segments are zero-filled (spares, and ahead of the writer) only while the log syncs at
    /// least once per this many bytes written (64 KiB), judged over the segment last sealed,
    /// and given up within a segment as soon as its writes exceed this per sync (a new or
    /// reopened log, which starts out zero-filling, stops once it is seen to write in bulk).
    /// Zeros spare each `fdatasync` a metadata commit, which pays when syncs are many and
    /// small; the zeros are a second write of every byte, which costs more than it saves once
    /// the disk is busy writing the data: with 256 KiB here, batches of 100 KiB and 160 KB per
    /// sync stalled (p99 8-16x p50) at the same throughput as writing each byte once (p99
    /// about 3x p50; 2-vCPU VM, BENCHMARKS.md "Bulk paths"). The break-even is about a
    /// metadata commit's time at the disk's write rate: tens of KiB on a virtio disk and on
    /// NVMe alike.
    pub zero_fill_max_bytes_per_sync: u64,
    /// Segment files kept open at most (64: enough that sequential reads, retention and
    /// rotation never reopen a file in practice, few enough for the default descriptor limit
    /// with room for the application's own files): older segments' descriptors beyond it are closed
    /// and reopened when needed, so a log of thousands of segments stays within the process's
    /// file descriptor limit. The newest segment, the one in the write buffer and the one just
    /// opened are never closed, whatever this says.
    pub max_open_files: usize,
    /// A replay ([`crate::Wal::open_replaying`]) reads the segments ahead of its scan on a
    /// thread of its own, this many bytes at a time (512 KiB), into buffers this long; the
    /// scan's window holds a chunk and those before it while the unit it is inside began
    /// there, so a batch across chunks is handed over from them without being copied. Enough
    /// buffers for a 4 MiB unit wherever it begins, and three more: twelve, 6 MiB while a
    /// replay runs at the default (at most 19 buffers whatever the size). A unit across more
    /// chunks is read by the scan itself instead (slower, the same result). Chunks that stay in
    /// the cache until the scan reads them pay: 4 MiB chunks made the read thread's copy out
    /// of the page cache up to three times as costly (2-vCPU VM, BENCHMARKS.md "Bulk paths").
    pub replay_chunk: usize,
    /// Each thread that checksums segments in parallel while a log opens (or `verify_dir`
    /// verifies it) reads its segment this many bytes at a time (256 KiB), into a buffer of
    /// its own, and checksums what it read before the next read, while the segment it scanned
    /// last held records of less than 4 KiB on average; otherwise 4 times as many. Small reads
    /// stay in the core's cache until the checksums read them: 1 GiB of 1 KiB records opened
    /// (warm cache, 2 threads, minimum of five) in 114-123 ms against 127-146 with 1 MiB,
    /// 125-130 with 512 KiB and 149-157 with 64 KiB. Large records want large reads: one that
    /// straddles two reads is read again from its start, and 1 GiB of incompressible 16 and 64
    /// KiB records took 92-102 ms with 256 KiB against 68-79 with 1 MiB (2-vCPU VM,
    /// BENCHMARKS.md "Opening").
    pub scan_window: usize,
    /// A segment's write-back is started (`sync_file_range(SYNC_FILE_RANGE_WRITE)`, without
    /// waiting) each time this many of its bytes (4 MiB) have gone from the write buffer to
    /// its file since the last start; 0: never. Pacing only, nothing is made durable by it.
    /// A writer that does not sync (or seldom does) otherwise left a whole segment to the
    /// kernel's write-back, and the sync that seals the segment at a rotation waited for
    /// tens of megabytes: 256 KiB appends without fsync stalled 8-17 ms at every rotation.
    /// Started every 4 MiB, the same appends ran about 20% faster with the slowest 0.1%
    /// halved (2-vCPU VM, BENCHMARKS.md "Bulk paths"); for small appends it made no
    /// measurable difference, and a log that syncs as it goes finds the range clean. Only
    /// while the log syncs its records (in the active segment or the one sealed before it): a
    /// log that does not sync leaves its pages to the kernel, since pushing them kept the
    /// disk busy ahead of every rotation's small syncs (256 KiB appends without fsync
    /// 0.53-0.63 of the baseline with this and the sealed segments' early syncs started,
    /// 0.86-0.93 without either).
    pub write_back_every: u64,
    /// A segment's reservation ([`Storage::reserve`](walden_core::Storage::reserve): its
    /// `fallocate` and zero-fill) and the spare prepared for the next segment cover at most
    /// this many bytes (1 GiB), whatever the segment size. Past it a segment grows as it is
    /// written, as an unfilled one does. Without a bound a huge `Config::segment_size`
    /// (`u64::MAX`, for a log that never rotates) had a background job write zeros until the
    /// disk was full: the log's own writes, and every other process's on that file system,
    /// then failed for lack of space, and closing the log waited for it.
    pub max_prepared: u64,
    /// Zeros are asked of the file system first ([`FsFile::write_zeroes`]: the device zeroes
    /// by unmapping, no bytes are sent), and written only where that is not offered (on).
    /// Off, they are always written. `SIM_TUNING` has it off, so the explorers' workloads
    /// take the path most disks take (one workload turns it on, which a simulated file system
    /// then offers, writing the zeros into its model at once).
    pub write_zeroes: bool,
}

impl Tuning {
    /// The sizes [`OsFs`] uses.
    pub const DEFAULT: Tuning = Tuning {
        write_buffer: 64 << 10,
        sync_zero_fill: 1 << 20,
        fill_chunk: 1 << 20,
        fill_sync_every: 4 << 20,
        spare_write_back: 256 << 10,
        fill_ahead: 8 << 20,
        fill_pace: Duration::from_millis(2),
        zero_fill_max_bytes_per_sync: 64 << 10,
        max_open_files: 64,
        replay_chunk: 512 << 10,
        scan_window: 256 << 10,
        write_back_every: 4 << 20,
        max_prepared: 1 << 30,
        write_zeroes: true,
    };
}

impl Default for Tuning {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Deliberately broken behaviours of walden-std's own file protocol, so that the crash
/// explorer and the kill test can prove they catch them. Only a test's file system returns
/// one from [`FileSystem::mutation`]; [`OsFs`] never does, and with it these checks are
/// constants the compiler removes.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Mutation {
    /// `sync` runs `fdatasync` but leaves the write buffer in memory (handed to the OS only
    /// when it fills or another segment is written): a sync reported before its bytes reached
    /// the file.
    SyncSkipsFlush,
    /// The background zero-fill ignores the writer's stop signal and writes zeros over
    /// records appended past its frontier.
    FillIgnoresStop,
    /// Spare files are prepared with a copy of the previous segment's bytes instead of zeros:
    /// stale, valid-looking records behind every new segment's header.
    StaleSpare,
    /// A reservation made before the first write since open is carried out by the first
    /// write to *any* segment, even one created after the reserved segment was sealed: a
    /// zero-fill past a seal.
    DeferredReserveAnyWrite,
    /// Closing leaves the clean-close marker whatever happened, even after a failed sync: the
    /// next open trusts cached pages the disk never got.
    CleanAlways,
    /// Opening to replay hands over a sealed segment's records even after a segment with
    /// damage (a predecessor that lost its unsynced tail), or one that ended before it began:
    /// records the open then removes reach the application. It also ignores the stale rule:
    /// a stale file below the log's start (a restored copy) is handed over.
    ReplayIgnoresDamage,
    /// A rotation's early syncs (the directory's after a link, the sealed segment's after its
    /// seal; `early_sync.rs`) report success without syncing anything.
    EarlySyncNoop,
    /// A seal's early sync starts while a group-commit leader's detached sync of the same
    /// file is in flight: the two `fdatasync`s share one writeback error, and the leader's may
    /// return `Ok` for bytes that failed (fsyncgate).
    EarlySealIgnoresDetached,
    /// A replay's read-ahead reads every chunk after a segment's first from a byte later than
    /// the offset it says the chunk holds: the scan then judges bytes that are not where it
    /// thinks.
    ReadAheadMisplaced,
    /// A removed segment's file is shrunk (and closed) as soon as it is unlinked, before a
    /// directory sync has made the unlink durable: a crash can then bring the name back on a
    /// file cut short.
    ShrinkBeforeUnlinkDurable,
    /// Zeros asked of the file system ([`FsFile::write_zeroes`]) for the rest of the active
    /// segment start at the sector below its end instead of at its end, as if the call needed
    /// aligned offsets: zeros over the last records' bytes.
    ZeroesAlignedDown,
}

/// An open file (or an open directory, for [`FsFile::sync_all`]).
///
/// Durability follows POSIX: written bytes and length changes are volatile until
/// [`FsFile::sync_data`] (or `sync_all`) returns `Ok`, and a file's name is durable only once
/// its directory is synced.
#[allow(clippy::len_without_is_empty)] // a file's length, not a collection's
pub trait FsFile: Send + Sync + 'static {
    /// Reads up to `buf.len()` bytes at `offset` (one `pread`; fewer is not the end of file).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Writes all of `buf` at `offset` (`pwrite` until done).
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// `fdatasync`.
    fn sync_data(&self) -> io::Result<()>;
    /// `fsync` (of a directory: makes its entries durable).
    fn sync_all(&self) -> io::Result<()>;
    /// Writes back the written bytes in `[offset, offset + len)` and waits for that, without
    /// a device cache flush or a metadata commit (`sync_file_range`). Pacing only: it makes
    /// **nothing** durable. The default is `ErrorKind::Unsupported`, and the caller then
    /// syncs instead (as a simulated file system, which has no such call, wants: a spare's
    /// zeros, synced per step, keep its crash states few).
    fn write_back(&self, offset: u64, len: u64) -> io::Result<()> {
        let _ = (offset, len);
        Err(io::ErrorKind::Unsupported.into())
    }
    /// Makes `[offset, offset + len)` read as zeros, its blocks allocated and written (so a
    /// later overwrite's `fdatasync` has only data to flush, as after writing zeros), without
    /// sending the zeros through the page cache and the disk's queue:
    /// `fallocate(FALLOC_FL_WRITE_ZEROES)`, which Linux 6.17 and later offer on ext4 (other
    /// file systems as they add it) where the device zeroes by unmapping (NVMe Write Zeroes with deallocate,
    /// SCSI WRITE SAME with UNMAP). Extends the file when the range ends past it. Like a write,
    /// volatile until synced. `Ok(false)` where the call is not offered (the default: other
    /// systems and kernels, most virtual disks, this project's CI machine): nothing changed,
    /// and the caller writes the zeros itself.
    fn write_zeroes(&self, offset: u64, len: u64) -> io::Result<bool> {
        let _ = (offset, len);
        Ok(false)
    }
    /// Starts writing back the written bytes in `[offset, offset + len)` without waiting for
    /// them (`sync_file_range(SYNC_FILE_RANGE_WRITE)`). Pacing only: it makes **nothing**
    /// durable. The default does nothing.
    fn start_write_back(&self, offset: u64, len: u64) {
        let _ = (offset, len);
    }
    /// `ftruncate`: shrinks, or grows with zeros.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// The current length.
    fn len(&self) -> io::Result<u64>;
    /// Reserves blocks for `len` bytes without changing the length (`fallocate(KEEP_SIZE)`).
    fn allocate(&self, len: u64) -> io::Result<()>;
    /// Drops the kernel's clean cached pages of the file (`fadvise(DONTNEED)`).
    fn forget_cache(&self) -> io::Result<()>;
    /// Takes an exclusive lock without blocking (`flock(LOCK_EX | LOCK_NB)`), held until the
    /// file is closed; `ErrorKind::WouldBlock` if someone else holds it.
    fn try_lock(&self) -> io::Result<()>;
    /// Takes a shared lock without blocking (`flock(LOCK_SH | LOCK_NB)`), held until the file
    /// is closed; `ErrorKind::WouldBlock` if someone holds it exclusively. Readers that change
    /// nothing ([`ReadOnlyDir`](crate::ReadOnlyDir)) take it, so that several can look at a
    /// directory at once while a log that holds it keeps them out. The default takes the
    /// exclusive lock, which keeps writers out just as well.
    fn try_lock_shared(&self) -> io::Result<()> {
        self.try_lock()
    }
}

/// Every file-system call walden-std makes, for one kind of file system.
///
/// Paths are the caller's: walden-std only ever names the log directory, its parent, and
/// entries directly inside the log directory.
pub trait FileSystem: Clone + Send + Sync + 'static {
    /// An open file or directory.
    type File: FsFile;

    /// `mkdir -p`.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// `stat`, following symbolic links.
    fn metadata(&self, path: &Path) -> io::Result<Metadata>;
    /// `lstat`: a symbolic link is reported as one.
    fn symlink_metadata(&self, path: &Path) -> io::Result<Metadata>;
    /// Opens a file.
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Self::File>;
    /// Opens a directory, to sync it.
    fn open_dir(&self, path: &Path) -> io::Result<Self::File>;
    /// `link(2)`: fails with `AlreadyExists` if `link` exists.
    fn hard_link(&self, original: &Path, link: &Path) -> io::Result<()>;
    /// `rename(2)`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// `unlink(2)`.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// The entries of a directory, in any order.
    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>>;
    /// Starts background work. [`OsFs`] runs it on a new thread.
    fn spawn(&self, name: &str, job: Job) -> io::Result<Worker>;

    /// Fails if this process may not create and remove entries in directory `path` (a
    /// read-only mount, or no write permission): a log opened there could append to its
    /// newest segment and then fail at its first rotation. [`OsFs`] asks `faccessat(2)`
    /// (`W_OK | X_OK`, effective ids); the default answers yes.
    fn check_writable_dir(&self, path: &Path) -> io::Result<()> {
        let _ = path;
        Ok(())
    }

    /// The buffer and fill sizes to use ([`Tuning::DEFAULT`] unless a simulator scales them).
    fn tuning(&self) -> Tuning {
        Tuning::DEFAULT
    }

    /// The random seed mixed into `Config::salt_seed` when a log is opened (segment salts and
    /// the log id): [`random_seed`](crate::random_seed) by default. A simulator returns a fixed
    /// one, so that a run replays byte for byte.
    fn random_seed(&self) -> u64 {
        crate::random_seed()
    }

    /// A deliberately broken behaviour to exhibit; see [`Mutation`]. Tests only.
    #[doc(hidden)]
    fn mutation(&self) -> Option<Mutation> {
        None
    }
}
