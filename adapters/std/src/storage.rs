//! `FileStorage`: segments as files in one directory.

use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use walden_core::{SegmentId, SegmentName, Storage, StorageErrorKind, parse_segment_name};

use crate::clean::{self, Unsynced};
use crate::closer::Closer;
use crate::early_sync::{EarlySync, Target};
use crate::error::{Error, FileError};
use crate::filesystem::{FileKind, FileSystem, FsFile, Mutation, OpenMode, OsFs};
use crate::fill::FillAhead;
use crate::group::{DetachedSync, GroupSync};
use crate::spare::{self, SpareSlot};

/// The name of the lock file in a log directory.
pub const LOCK_FILE: &str = "walden.lock";

/// Segments as files named `{id:020}.wal` in one directory, locked for exclusive use.
///
/// * `sync` is `fdatasync`; `sync_dir` is `fsync` of the directory.
/// * Writes are buffered in memory (up to 1 MiB) and handed to the OS on `sync`, on a read of
///   the same segment, when the buffer fills, and on drop. This is within the `Storage`
///   contract: unsynced bytes are volatile either way.
/// * Segments are zero-filled ahead of the writer, so an append overwrites allocated, written
///   blocks inside the file and `fdatasync` has no metadata to commit: [`Storage::reserve`]
///   prepares the *next* segment file, zero-filled to the segment size, on a background thread,
///   so a rotation only links it into place; a segment that did not come from a spare is
///   reserved with `fallocate(KEEP_SIZE)` and zero-filled ahead of the writer by a background
///   thread (see `fill.rs` for why that never overwrites a record). Zeros after the last record
///   are clean for recovery (`docs/FORMAT.md`). All of this only while the log syncs often:
///   a log that writes in bulk gets preallocated, unfilled segments instead (see `spare.rs`). Spare files are named `{id:020}.spare`, are
///   never parsed as segments, and leftovers from a crash are removed on open (only where a log
///   was before, its lock file there: in a directory given by mistake they are someone else's).
/// * Files in the directory that are not segments are left alone and listed by
///   [`FileStorage::foreign_files`].
/// * Every file operation goes through the [`FileSystem`] `F` ([`OsFs`] by default; see
///   [`FileStorage::open_in`]); the buffer and fill sizes above are [`OsFs`]'s
///   [`Tuning`](crate::Tuning).
pub struct FileStorage<F: FileSystem = OsFs> {
    fs: F,
    dir: PathBuf,
    dir_handle: Arc<F::File>,
    _lock: F::File,
    /// Open segment files, at most [`Tuning::max_open_files`](crate::Tuning) of them (see [`FileStorage::remember`]).
    files: HashMap<SegmentId, Arc<F::File>>,
    /// Only `&mut self` paths write it (through `get_mut`, no locking); `&self` paths — a
    /// group-commit leader or a reader — lock it to hand the bytes to the OS.
    pending: Mutex<Option<Pending>>,
    /// The buffer of the last pending write that `flush` handed to the OS, emptied, for the
    /// next one (a fresh megabyte per flush costs page faults and a `realloc` as it grows).
    recycled: Vec<u8>,
    /// The segment last written through to its file, and where its write-back was last
    /// started (`pace`).
    kicked: (SegmentId, u64),
    foreign: Vec<PathBuf>,
    spare: Arc<SpareSlot<F>>,
    /// The background zero-fill of the active segment, if one runs.
    fill: Option<Arc<FillAhead>>,
    preallocate: bool,
    /// How the log used the active segment so far, for [`FileStorage::zero_fill`].
    usage: Usage,
    /// Whether new segments are zero-filled: decided at each rotation from the sealed
    /// segment's [`Usage`] (see [`Tuning::zero_fill_max_bytes_per_sync`](crate::Tuning)),
    /// and given up as soon as the active segment's usage is bulk (`bulk_so_far`).
    zero_fill: bool,
    /// Whether anything was written through this storage since open. Until then a `reserve`
    /// is only remembered (in `deferred`) and no spare is prepared: a log opened to be read
    /// (a replay, an inspection) must not zero-fill and sync a 64 MiB spare it never uses.
    wrote: bool,
    /// A `reserve` made before the first write, carried out by that write.
    deferred: Option<(SegmentId, u64)>,
    /// What this storage changed and has not synced: whether closing may leave the
    /// clean-close marker (`clean.rs`).
    unsynced: Arc<Unsynced>,
    /// Segments that may hold data a previous process never synced, found at open (none when
    /// it found the clean-close marker): [`FileStorage::forget_cached_newest`] drops their
    /// cached pages.
    suspects: Vec<SegmentId>,
    /// Rotation syncs started early (`early_sync.rs`): the directory's, after a successor's
    /// link, ...
    early_dir: Option<EarlySync>,
    /// ... and sealed segments', after their seal, not yet joined: running, or failed (one
    /// that succeeded may be dropped: the core's later sync then has little left to do).
    early_seals: Vec<EarlySync>,
    /// The segment a rotation is sealing: its next write, the seal, starts its sync early.
    sealing: Option<SegmentId>,
    /// Group-commit leaders' detached syncs handed out and not yet finished (`detached_sync`):
    /// while one runs, a seal starts no early sync (see `before_segment_write`).
    detached_in_flight: Arc<AtomicUsize>,
    /// The segment just created, until its header's sync (the rotation's own, not a sync of
    /// records: it does not count for [`Usage::synced_records`]).
    creating: Option<SegmentId>,
    /// Whether records of the segment last sealed were synced while it was active (see
    /// [`FileStorage::log_syncs`]).
    sealed_synced: bool,
    /// The next spare, to prepare once the active segment is under way.
    spare_due: Option<SpareDue>,
    /// Removed segments' files, held open since their unlink, until a directory sync makes
    /// the unlink durable; then handed to `closer`.
    unlinked: Vec<Arc<F::File>>,
    /// Closes removed segments' and spares' files off the caller's thread (`closer.rs`).
    closer: Closer<F>,
}

/// A spare to prepare once the active segment is under way (after its first sync, or a few
/// megabytes in), not at the rotation: the spare's own syncs (and, for a zero-filled spare,
/// its first chunk of zeros) then do not land on the rotation's syncs.
#[derive(Clone, Copy)]
struct SpareDue {
    active: SegmentId,
    len: u64,
    /// `usage.syncs` when it was set: a sync since starts it.
    syncs: u64,
    /// A write ending past this starts it too (a log that never syncs).
    offset: u64,
}

/// Bytes written to and syncs of the active segment since it was created.
#[derive(Default)]
struct Usage {
    written: u64,
    /// Counted by `&self` paths too (a group-commit leader's detached sync).
    syncs: AtomicU64,
    /// Whether a sync of records (any sync but a new segment's header sync) came since the
    /// segment became active: see [`FileStorage::log_syncs`].
    synced_records: AtomicBool,
}

struct Pending {
    id: SegmentId,
    offset: u64,
    bytes: Vec<u8>,
}

fn lock_pending(m: &Mutex<Option<Pending>>) -> MutexGuard<'_, Option<Pending>> {
    // A panic while holding it leaves plain bytes behind; they are still consistent.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl FileStorage {
    /// Opens (and with `create`, creates) the directory and takes its lock.
    pub fn open(dir: impl AsRef<Path>, create: bool) -> Result<Self, Error> {
        Self::open_in(OsFs, dir, create)
    }
}

impl<F: FileSystem> FileStorage<F> {
    /// [`FileStorage::open`] on the file system `fs`.
    pub fn open_in(fs: F, dir: impl AsRef<Path>, create: bool) -> Result<Self, Error> {
        let dir = dir.as_ref().to_path_buf();
        let fail = |action, e: io::Error| Error::Directory {
            dir: dir.clone(),
            action,
            error: FileError::from_io(&e),
        };
        if create {
            match create_dir_durably(&fs, &dir) {
                Ok(()) => {}
                // A file, or an entry that leads nowhere (a dangling symlink: "already
                // exists" from the creation would name neither).
                Err(_)
                    if fs.metadata(&dir).map_or_else(
                        |_| fs.symlink_metadata(&dir).is_ok(),
                        |m| m.kind != FileKind::Dir,
                    ) =>
                {
                    return Err(Error::NotADirectory { dir });
                }
                Err(e) => return Err(fail("create", e)),
            }
        }
        let meta = fs.metadata(&dir).map_err(|e| fail("open", e))?;
        if meta.kind != FileKind::Dir {
            return Err(Error::NotADirectory { dir });
        }
        let dir_handle = fs.open_dir(&dir).map_err(|e| fail("open", e))?;
        let lock_path = dir.join(LOCK_FILE);
        // As `ReadOnlyDir` does: a FIFO opened here (read-write, non-blocking) would take the
        // lock, and every reader of the directory (`verify_dir`, the `walden` command) would
        // then refuse it while the log runs. A symlink is never followed either way.
        // Whether a log was here before: its lock file is the first thing a log's open creates.
        let had_lock = match fs.symlink_metadata(&lock_path) {
            Ok(m) if m.kind != FileKind::File => {
                return Err(Error::LockNotAFile { path: lock_path });
            }
            Ok(_) => true,
            Err(_) => false,
        };
        let lock = fs
            .open(&lock_path, OpenMode::CreateOrOpen)
            .map_err(|e| fail("open the lock file in", e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                return Err(Error::Locked { dir });
            }
            Err(e) => return Err(fail("lock", e)),
        }
        // Before anything else: a log that could not rotate, truncate or remove its
        // clean-close marker must not open, however far it could append first.
        fs.check_writable_dir(&dir)
            .map_err(|e| fail("write to (create and remove files in)", e))?;
        // Spares left by a crash are ours and hold nothing: remove them before anything else.
        // Only where a log was before (its lock file was there): in a directory given by
        // mistake, a file named like a spare is someone else's.
        if had_lock
            && spare::remove_leftovers(&fs, &dir).map_err(|e| fail("clean spare files in", e))?
        {
            dir_handle.sync_all().map_err(|e| fail("sync", e))?;
        }
        // Before anything changes a segment: a process that fails from here on must not leave
        // the marker behind.
        let trusted =
            clean::take(&fs, &dir).map_err(|e| fail("remove the clean-close marker from", e))?;
        let suspects = if trusted {
            Vec::new()
        } else {
            sync_suspects(&fs, &dir).map_err(|e| fail("sync the newest segments in", e))?
        };
        // Until their cached pages are dropped, the suspects' cache may differ from the disk:
        // closing before that (a failed open, `walden repair`) leaves no marker.
        let unsynced = Arc::new(Unsynced::default());
        for &id in &suspects {
            unsynced.changed(id);
        }
        let storage = Self {
            fs,
            dir,
            dir_handle: Arc::new(dir_handle),
            _lock: lock,
            files: HashMap::new(),
            pending: Mutex::new(None),
            recycled: Vec::new(),
            kicked: (SegmentId::MAX, 0),
            foreign: Vec::new(),
            spare: Arc::new(SpareSlot::default()),
            fill: None,
            preallocate: true,
            usage: Usage::default(),
            // No history yet: assume small syncs, where zeros pay.
            zero_fill: true,
            wrote: false,
            deferred: None,
            unsynced,
            suspects,
            early_dir: None,
            early_seals: Vec::new(),
            sealing: None,
            detached_in_flight: Arc::new(AtomicUsize::new(0)),
            creating: None,
            // No history yet: nothing is pushed to the disk ahead of a sync until one comes.
            sealed_synced: false,
            spare_due: None,
            unlinked: Vec::new(),
            closer: Closer::default(),
        };
        // Here, so that every user of the storage (`Wal::open`, `walden repair`, `verify`)
        // reads what the disk holds. Best effort: where the kernel cannot drop the pages,
        // recovery still works on what it reads (the hole this closes is documented on the
        // method), and this process leaves no clean-close marker.
        if let Err(e) = storage.forget_cached_newest() {
            tracing::debug!(dir = %storage.dir.display(), error = %e, "could not drop cached pages");
        }
        Ok(storage)
    }

    /// The file system.
    pub fn file_system(&self) -> &F {
        &self.fs
    }

    /// Turns preallocation and spare-segment preparation on or off (default on).
    pub fn set_preallocate(&mut self, on: bool) {
        self.preallocate = on;
    }

    /// Starts preparing the spare file for the segment after `active` (a background thread
    /// creates it, preallocates `len` bytes and syncs it and the directory). Does nothing when
    /// preallocation is off, a spare is already prepared or being prepared, or nothing was
    /// written since open (the first write prepares it then).
    pub fn prepare_next(&self, active: SegmentId, len: u64) {
        if self.preallocate && self.wrote {
            let len = len.min(self.fs.tuning().max_prepared);
            let zero = self.zero_fill;
            spare::prepare_in_background(&self.fs, &self.spare, &self.dir, active + 1, len, zero);
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of a segment file.
    pub fn segment_path(&self, id: SegmentId) -> PathBuf {
        self.dir.join(SegmentName::new(id).as_str())
    }

    /// Entries of the directory that are not segments (found by the last `list`), except the
    /// lock file. Walden never touches them.
    pub fn foreign_files(&self) -> &[PathBuf] {
        &self.foreign
    }

    /// Keeps `file` open as segment `id`, closing older segments' files beyond
    /// [`Tuning::max_open_files`](crate::Tuning), so a log of thousands of segments stays within the process's file
    /// descriptor limit (1,024 by default on Linux). Never closed: the file just opened, the
    /// newest segment (the only one records are appended to, synced through this descriptor)
    /// the one whose bytes are in the write buffer, and any with changes not yet synced (an
    /// early rotation's pending segments: a writeback error is reported to the descriptors
    /// open when it happened, and may be forgotten with the inode once none is). Every other
    /// segment was synced since it was last changed, so closing its descriptor loses no data
    /// and no sync error that a durability promise depends on; a later read, truncate or sync
    /// reopens it. Unsynced segments can take the count past the limit: a log that rotates
    /// through that many segments without a sync holds that many descriptors until it syncs.
    fn remember(&mut self, id: SegmentId, file: Arc<F::File>) {
        self.files.insert(id, file);
        let max = self.fs.tuning().max_open_files;
        if self.files.len() <= max {
            return;
        }
        let buffered = lock_pending(&self.pending).as_ref().map(|p| p.id);
        let newest = (self.files.keys().copied())
            .filter(|&k| !walden_core::raw::is_start_slot(k))
            .max();
        let mut closable: Vec<SegmentId> = (self.files.keys().copied())
            .filter(|&k| k != id && Some(k) != newest && Some(k) != buffered)
            .filter(|&k| !self.unsynced.holds(k))
            .collect();
        closable.sort_unstable();
        let excess = self.files.len() - max;
        if closable.len() < excess {
            tracing::debug!(
                open = self.files.len(),
                max,
                "segments with unsynced changes keep their descriptors open"
            );
        }
        for k in closable.into_iter().take(excess) {
            self.files.remove(&k);
        }
    }

    fn file(&mut self, id: SegmentId) -> Result<&Arc<F::File>, FileError> {
        if !self.files.contains_key(&id) {
            let path = self.segment_path(id);
            let meta = self.fs.symlink_metadata(&path)?;
            if meta.kind != FileKind::File {
                // A symlink or anything else where a segment should be: never follow it.
                return Err(FileError::not_a_regular_file());
            }
            let f = self.fs.open(&path, OpenMode::ReadWrite)?;
            self.remember(id, Arc::new(f));
        }
        Ok(&self.files[&id])
    }

    /// Hands the buffered bytes to the OS (they stay volatile: no sync).
    fn flush(&mut self) -> Result<(), FileError> {
        let Some(p) = self
            .pending
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        else {
            return Ok(());
        };
        let end = p.offset + p.bytes.len() as u64;
        self.before_write(p.id, end);
        let written = self.file(p.id).map(Arc::clone).and_then(|f| {
            f.write_all_at(&p.bytes, p.offset)
                .map_err(|e| FileError::from_io(&e).in_buffered_write())
                .map(|()| f)
        });
        match written {
            Ok(f) => {
                self.pace(p.id, &f, p.offset, end);
                let mut bytes = p.bytes;
                bytes.clear();
                self.recycled = bytes;
                Ok(())
            }
            Err(e) => {
                // Kept, as `flush_shared` keeps them: the core log's segment end covers these
                // bytes, so readers must still find what was appended (through the buffer) and
                // not take the hole for damage. The failure poisons the log; nothing here is
                // ever reported durable.
                *self
                    .pending
                    .get_mut()
                    .unwrap_or_else(PoisonError::into_inner) = Some(p);
                Err(e)
            }
        }
    }

    /// After bytes `offset..end` of segment `id` went to its file: starts the write-back of
    /// what the segment was given since the last start, once that is
    /// [`Tuning::write_back_every`](crate::Tuning::write_back_every) or more. Pacing only (it
    /// makes nothing durable): the sync that seals the segment then finds little left to
    /// write, instead of stopping the writer at a rotation while tens of megabytes go to the
    /// disk.
    fn pace(&mut self, id: SegmentId, file: &F::File, offset: u64, end: u64) {
        let every = self.fs.tuning().write_back_every;
        if every == 0 {
            return;
        }
        if self.kicked.0 != id || offset < self.kicked.1 {
            self.kicked = (id, offset);
        }
        if !self.log_syncs() {
            // Left to the kernel, as a log that never syncs wants (see `log_syncs`); once a
            // sync comes, pacing starts from here (the sync wrote what came before).
            self.kicked.1 = end;
            return;
        }
        if end - self.kicked.1 >= every {
            file.start_write_back(self.kicked.1, end - self.kicked.1);
            self.kicked.1 = end;
        }
    }

    /// Every write of segment bytes to a file goes through here first (see `fill.rs`).
    fn before_write(&self, id: SegmentId, end: u64) {
        if let Some(fill) = self.fill.as_ref().filter(|f| f.id() == id) {
            fill.before_write(end);
        }
    }

    /// Stops the background zero-fill (of `id`, or of any segment) and waits for it.
    fn stop_fill(&mut self, id: Option<SegmentId>) {
        if let Some(fill) = self.fill.take_if(|f| id.is_none_or(|id| f.id() == id)) {
            fill.finish();
        }
    }

    fn flush_if(&mut self, id: SegmentId) -> Result<(), FileError> {
        let buffered = self
            .pending
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|p| p.id == id);
        if buffered {
            self.flush()?;
        }
        Ok(())
    }

    /// Like `flush_if`, through a shared reference: the buffered bytes of `id` go to the OS.
    /// Only segments already open can have buffered bytes, so no file is opened here.
    fn flush_shared(&self, id: SegmentId) -> Result<Option<Arc<F::File>>, FileError> {
        let file = self.files.get(&id).cloned();
        if self.fs.mutation() == Some(Mutation::SyncSkipsFlush) {
            return Ok(file);
        }
        let mut pending = lock_pending(&self.pending);
        if let Some(p) = pending.as_ref().filter(|p| p.id == id) {
            let f = file
                .as_ref()
                .ok_or_else(|| FileError::new(StorageErrorKind::NotFound))?;
            self.before_write(p.id, p.offset + p.bytes.len() as u64);
            f.write_all_at(&p.bytes, p.offset)
                .map_err(|e| FileError::from_io(&e).in_buffered_write())?;
            *pending = None;
        }
        Ok(file)
    }
}

impl<F: FileSystem> Drop for FileStorage<F> {
    fn drop(&mut self) {
        // Best effort: hand buffered bytes to the OS. They were never reported durable.
        let _ = self.flush();
        self.stop_fill(None);
        // Their outcomes count for the clean-close marker below.
        self.early_dir = None;
        self.early_seals.clear();
        // Before the lock goes: no background job may still create a file in the directory.
        self.spare.shutdown(&self.fs);
        self.closer.shutdown();
        let always = self.fs.mutation() == Some(Mutation::CleanAlways);
        if (always || self.unsynced.is_clean())
            && let Err(e) = clean::leave(&self.fs, &self.dir)
        {
            tracing::debug!(dir = %self.dir.display(), error = %e, "could not leave the clean-close marker");
        }
    }
}

impl<F: FileSystem> GroupSync for FileStorage<F> {
    fn detached_sync(&self, id: SegmentId) -> Result<Option<DetachedSync<FileError>>, FileError> {
        if (self.early_seals.iter()).any(|e| e.target() == Target::Segment(id)) {
            return Ok(None); // the core's own sync joins it
        }
        let Some(file) = self
            .flush_shared(id)
            .inspect_err(|_| self.unsynced.failed())?
        else {
            // Never opened: nothing was written through this storage since open.
            return Ok(None);
        };
        self.usage.syncs.fetch_add(1, Ordering::Relaxed);
        self.usage.synced_records.store(true, Ordering::Relaxed);
        let (unsynced, mark) = (self.unsynced.clone(), self.unsynced.before_sync());
        // Counted from here (under the log lock, like the seal's check) until the job's
        // `fdatasync` has returned, or the job is dropped unrun.
        let in_flight = InFlight::new(&self.detached_in_flight);
        Ok(Some(Box::new(move || {
            let r = unsynced.outcome(id, mark, file.sync_data().map_err(FileError::from));
            drop(in_flight);
            r
        })))
    }
}

/// One detached sync in flight (`FileStorage::detached_in_flight`), until dropped.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(count))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        // `Release`: a seal that reads the count down (`Acquire`) starts its sync after this
        // job's `fdatasync` returned.
        self.0.fetch_sub(1, Ordering::Release);
    }
}

impl<F: FileSystem> Storage for FileStorage<F> {
    type Error = FileError;

    fn list(&self, each: &mut dyn FnMut(SegmentId)) -> Result<(), FileError> {
        let mut ids: Vec<SegmentId> = (self.fs.read_dir(&self.dir)?.iter())
            .filter_map(|entry| entry.name.to_str().and_then(parse_segment_name))
            .collect();
        // Ascending, not directory order: core inserts each id at its place, so a log of many
        // thousands of segments then costs appends, not a shift of the whole list per id.
        ids.sort_unstable();
        ids.into_iter().for_each(each);
        Ok(())
    }

    fn create(&mut self, id: SegmentId) -> Result<(), FileError> {
        let path = self.segment_path(id);
        self.unsynced.changed(id);
        if walden_core::raw::is_start_slot(id) {
            // A start slot (written by `truncate_front`) is not the log's next segment: the
            // newest segment goes on being written, so its zero-fill keeps running and the
            // spare prepared for its successor stays ready.
            let f = self.fs.open(&path, OpenMode::CreateNew)?;
            self.remember(id, Arc::new(f));
            self.dir_changed();
            return Ok(());
        }
        // The previous segment is sealed: the rest of it is never written.
        self.stop_fill(None);
        self.spare_due = None;
        self.sealing = id.checked_sub(1);
        self.creating = Some(id);
        if self.fs.mutation() != Some(Mutation::DeferredReserveAnyWrite) {
            self.deferred = None;
        }
        self.judge_usage();
        if let Some(prepared) = self.spare.take() {
            // `hard_link` fails if `path` exists, as `create` must. The spare's own name is
            // removed afterwards; if a crash keeps it, open removes it (it is the same inode).
            match self.fs.hard_link(prepared.path(), &path) {
                Ok(()) => {
                    let _ = self.fs.remove_file(prepared.path());
                    self.remember(id, Arc::new(prepared.into_file()));
                    tracing::debug!(segment = id, "rotation used a preallocated spare segment");
                    return self.start_early_dir();
                }
                Err(e) => {
                    let _ = self.fs.remove_file(prepared.path());
                    self.closer
                        .close_later(&self.fs, Arc::new(prepared.into_file()), false);
                    if e.kind() == io::ErrorKind::AlreadyExists {
                        return Err(FileError::from_io(&e));
                    }
                }
            }
        }
        let f = self.fs.open(&path, OpenMode::CreateNew)?;
        self.remember(id, Arc::new(f));
        self.start_early_dir()
    }

    fn remove(&mut self, id: SegmentId) -> Result<(), FileError> {
        self.stop_fill(Some(id));
        self.deferred.take_if(|(reserved, _)| *reserved == id);
        let pending = self
            .pending
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        if pending.as_ref().is_some_and(|p| p.id == id) {
            *pending = None;
        }
        let path = self.segment_path(id);
        // Held open across the unlink, so that freeing its blocks (a discard, on some file
        // systems) waits for the closer's job, not for this call under the log lock
        // (`closer.rs`).
        let mut held = (self.files.remove(&id))
            .or_else(|| self.fs.open(&path, OpenMode::ReadWrite).ok().map(Arc::new));
        self.forget_early(id);
        self.dir_changed();
        self.fs.remove_file(&path)?;
        if self.fs.mutation() == Some(Mutation::ShrinkBeforeUnlinkDurable)
            && let Some(file) = held.take()
        {
            self.closer.close_later(&self.fs, file, true);
        }
        self.unlinked.extend(held);
        self.unsynced.removed(id);
        Ok(())
    }

    fn len(&self, id: SegmentId) -> Result<u64, FileError> {
        let path = self.segment_path(id);
        let meta = self.fs.symlink_metadata(&path)?;
        if meta.kind != FileKind::File {
            return Err(FileError::not_a_regular_file());
        }
        let pending_end = lock_pending(&self.pending)
            .as_ref()
            .filter(|p| p.id == id)
            .map_or(0, |p| p.offset + p.bytes.len() as u64);
        Ok(meta.len.max(pending_end))
    }

    fn read(&self, id: SegmentId, offset: u64, buf: &mut [u8]) -> Result<usize, FileError> {
        // Reads must see buffered writes: serve the overlap from the buffer.
        let on_disk = match self.files.get(&id) {
            Some(f) => read_at(&**f, offset, buf)?,
            None => {
                let path = self.segment_path(id);
                if self.fs.symlink_metadata(&path)?.kind != FileKind::File {
                    return Err(FileError::not_a_regular_file());
                }
                read_at(&self.fs.open(&path, OpenMode::Read)?, offset, buf)?
            }
        };
        let pending = lock_pending(&self.pending);
        let Some(p) = pending.as_ref().filter(|p| p.id == id) else {
            return Ok(on_disk);
        };
        let (p_start, p_end) = (p.offset, p.offset + p.bytes.len() as u64);
        // Saturating: a read near u64::MAX (refused by the OS above anyway) cannot overflow.
        let (r_start, r_end) = (offset, offset.saturating_add(buf.len() as u64));
        let (lo, hi) = (r_start.max(p_start), r_end.min(p_end));
        if lo >= hi {
            return Ok(on_disk);
        }
        buf[(lo - r_start) as usize..(hi - r_start) as usize]
            .copy_from_slice(&p.bytes[(lo - p_start) as usize..(hi - p_start) as usize]);
        Ok(on_disk.max((hi - r_start) as usize))
    }

    fn write(&mut self, id: SegmentId, offset: u64, data: &[u8]) -> Result<(), FileError> {
        if self.before_segment_write(id, offset, data)? {
            return Ok(()); // a seal, written and its sync started (`early_sync.rs`)
        }
        self.usage.written += data.len() as u64;
        self.unsynced.changed(id);
        // Only a write to the reserved segment carries the reservation out, before its bytes
        // are buffered (so the zeros reach the file first). Never another segment's: a
        // reservation of a segment sealed since would zero-fill past its seal (the files
        // explorer caught exactly that, a torn zero-fill after a rotation, when this took
        // any write).
        self.wrote = true;
        let any = self.fs.mutation() == Some(Mutation::DeferredReserveAnyWrite);
        if let Some((reserved, len)) = self.deferred.take_if(|(r, _)| any || *r == id) {
            self.reserve(reserved, len)?;
        }
        let pending = self
            .pending
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        let buffer = self.fs.tuning().write_buffer;
        match pending {
            // Buffered only while it fits: growing the buffer past its size would copy it all.
            Some(p)
                if p.id == id
                    && p.offset + p.bytes.len() as u64 == offset
                    && p.bytes.len() + data.len() <= buffer =>
            {
                p.bytes.extend_from_slice(data);
            }
            _ => {
                self.flush()?;
                self.file(id)?;
                if data.len() >= buffer {
                    // At least a buffer's worth: straight to the file, without a copy.
                    let end = offset + data.len() as u64;
                    self.before_write(id, end);
                    let file = Arc::clone(self.file(id)?);
                    file.write_all_at(data, offset)?;
                    self.pace(id, &file, offset, end);
                    return Ok(());
                }
                let mut bytes = core::mem::take(&mut self.recycled);
                bytes.clear();
                bytes.reserve(buffer);
                bytes.extend_from_slice(data);
                *self
                    .pending
                    .get_mut()
                    .unwrap_or_else(PoisonError::into_inner) = Some(Pending { id, offset, bytes });
            }
        }
        let full = self
            .pending
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|p| p.bytes.len() >= self.fs.tuning().write_buffer);
        if full {
            self.flush()?;
        }
        Ok(())
    }

    /// A record's header and payload into the write buffer with one round of bookkeeping
    /// (the change counter, the reservation check, the buffer checks) instead of two.
    /// Anything but a plain append to the buffer takes the two `write`s.
    fn write_parts(
        &mut self,
        id: SegmentId,
        offset: u64,
        first: &[u8],
        second: &[u8],
    ) -> Result<(), FileError> {
        let len = first.len() + second.len();
        let buffer = self.fs.tuning().write_buffer;
        let any = self.fs.mutation() == Some(Mutation::DeferredReserveAnyWrite);
        let reserving = self.deferred.is_some_and(|(r, _)| any || r == id);
        // A seal takes `write`'s own path (straight to the file, its sync started early).
        if self.sealing == Some(id) {
            self.write(id, offset, first)?;
            return self.write(id, offset + first.len() as u64, second);
        }
        // What `write` does before any segment write, once for both parts.
        self.note_segment_write(id, offset + len as u64, len);
        let pending = self
            .pending
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(p) = pending.as_mut().filter(|p| {
            !reserving
                && p.id == id
                && p.offset + p.bytes.len() as u64 == offset
                && p.bytes.len() + len <= buffer
        }) else {
            self.write(id, offset, first)?;
            return self.write(id, offset + first.len() as u64, second);
        };
        // As in `write`: counted as changed before the bytes are buffered.
        self.usage.written += len as u64;
        self.unsynced.changed(id);
        self.wrote = true;
        p.bytes.extend_from_slice(first);
        p.bytes.extend_from_slice(second);
        if p.bytes.len() >= buffer {
            self.flush()?;
        }
        Ok(())
    }

    fn truncate(&mut self, id: SegmentId, len: u64) -> Result<(), FileError> {
        self.stale_early(id);
        self.stop_fill(Some(id));
        self.unsynced.changed(id);
        self.flush_if(id)?;
        self.file(id)?.set_len(len)?;
        Ok(())
    }

    fn sync(&mut self, id: SegmentId) -> Result<(), FileError> {
        // Every sync but the one of a new segment's header syncs records.
        if self.creating.take() != Some(id) {
            *self.usage.synced_records.get_mut() = true;
        }
        if self.join_early_seal(id)? {
            *self.usage.syncs.get_mut() += 1;
            return Ok(());
        }
        let mark = self.unsynced.before_sync();
        if self.fs.mutation() != Some(Mutation::SyncSkipsFlush) {
            self.flush_if(id).inspect_err(|_| self.unsynced.failed())?;
        }
        let synced = self.file(id).and_then(|f| Ok(f.sync_data()?));
        self.unsynced.outcome(id, mark, synced)?;
        *self.usage.syncs.get_mut() += 1;
        Ok(())
    }

    fn sync_dir(&mut self) -> Result<(), FileError> {
        if let Some(early) = self.early_dir.take()
            && early.join()?
        {
            self.unlinked_durable();
            return Ok(());
        }
        self.dir_handle
            .sync_all()
            .inspect_err(|_| self.unsynced.failed())?;
        self.unlinked_durable();
        Ok(())
    }

    /// Preallocates `id` up to `len` bytes without changing its length, then prepares the next
    /// segment's file in the background. Both are hints: failures are ignored (a later write
    /// reports a real lack of space). Before the first write since open it is only remembered
    /// (see `wrote`). Never more than [`Tuning::max_prepared`](crate::Tuning) bytes.
    fn reserve(&mut self, id: SegmentId, len: u64) -> Result<(), FileError> {
        if !self.preallocate {
            return Ok(());
        }
        let len = len.min(self.fs.tuning().max_prepared);
        if !self.wrote {
            self.deferred = Some((id, len));
            return Ok(());
        }
        let have = self.len(id).unwrap_or(len);
        let tuning = self.fs.tuning();
        let zero = self.zero_fill;
        let head = if zero {
            len.min(have + tuning.sync_zero_fill)
        } else {
            len
        };
        // The zeros' sync covers every change of `id` once its buffered bytes are in the file.
        let filling = have < len && zero;
        let flushed = filling && self.flush_if(id).is_ok();
        let unsynced = self.unsynced.clone();
        let aligned_down = self.fs.mutation() == Some(Mutation::ZeroesAlignedDown);
        // How far the segment is zero-filled (or reserved) once this returns.
        let done = self.file(id).map(|f| {
            if have >= len {
                return len;
            }
            // All the zeros at once where the device makes them by unmapping
            // (`FsFile::write_zeroes`): nothing is left for a background fill.
            // (Broken: from the sector below, but past the 64-byte segment header: only records.)
            let from = if aligned_down {
                (have & !511).max(64)
            } else {
                have
            };
            let offloaded =
                zero && tuning.write_zeroes && f.write_zeroes(from, len - from).unwrap_or(false);
            if !offloaded {
                let _ = f.allocate(len);
            }
            if zero {
                unsynced.changed(id);
                let mark = unsynced.before_sync();
                if offloaded || spare::zero_fill(&**f, have, head, tuning.fill_chunk).is_ok() {
                    // A hint, but a failure is reported once per file description: the
                    // segment's own next sync would not see it.
                    match f.sync_data() {
                        Ok(()) if flushed => unsynced.synced(id, mark),
                        Ok(()) => {}
                        Err(_) => unsynced.failed(),
                    }
                }
            }
            if offloaded { len } else { head }
        });
        if done.is_ok_and(|done| done < len) {
            // A segment made from a spare is already zero-filled. Otherwise (the first segment
            // of a new log, a reopened log's active segment, or a rotation that came before its
            // spare was ready) reserve the space, zero-fill a head start now, and the rest
            // ahead of the writer in the background.
            self.stop_fill(None);
            self.fill = FillAhead::start(&self.fs, &self.segment_path(id), id, head, len);
        }
        let syncs = *self.usage.syncs.get_mut();
        let offset = 2 * tuning.write_buffer as u64;
        self.spare_due = Some(SpareDue {
            active: id,
            len,
            syncs,
            offset,
        });
        Ok(())
    }
}

/// Reads up to `buf.len()` bytes at `offset`, fewer only at the end of the file (a plain
/// `pread` may return fewer at any time; interrupted reads are retried).
pub fn read_at<File: FsFile + ?Sized>(f: &File, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match f.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Creates `dir` and every missing ancestor, and syncs the parent of each, so that the
/// directory itself survives a power loss: creating an entry is durable only once its
/// directory is synced, and the log directory is an entry of its parent.
///
/// The parent of `dir` is synced even when `dir` already existed: an earlier process may have
/// created it and died (or seen that sync fail) before its parent was synced, and records
/// acknowledged in a directory whose own entry is not durable can vanish with it. A parent
/// this process may not open (no read permission) is skipped: only a failed sync is an error.
fn create_dir_durably<F: FileSystem>(fs: &F, dir: &Path) -> io::Result<()> {
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(path) = at.filter(|p| !p.as_os_str().is_empty()) {
        if fs.metadata(path).is_ok() {
            break;
        }
        missing.push(path);
        at = path.parent();
    }
    if !missing.is_empty() {
        fs.create_dir_all(dir)?;
    }
    if missing.is_empty() {
        missing.push(dir);
    }
    // Top down: a directory's entry is durable once its parent is synced.
    for entry in missing.iter().rev() {
        let parent = match entry.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        match fs.open_dir(parent) {
            Ok(handle) => handle.sync_all()?,
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                tracing::debug!(dir = %parent.display(), "cannot open to sync it");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Lists the non-segment entries of `dir` (other than the lock file, the clean-close marker and
/// our spare files).
pub(crate) fn scan_foreign<F: FileSystem>(fs: &F, dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in fs.read_dir(dir)? {
        let name = entry.name;
        let ours = name.to_str().is_some_and(|n| {
            parse_segment_name(n).is_some() || spare::parse_spare_name(n).is_some()
        });
        if !ours && name != LOCK_FILE && name != clean::CLEAN_FILE {
            out.push(dir.join(name));
        }
    }
    out.sort();
    Ok(out)
}

impl<F: FileSystem> FileStorage<F> {
    /// Starts the directory's sync at once, after a successor's link or creation: it runs
    /// while the core writes and syncs the header, and the core's `sync_dir` waits for it.
    fn start_early_dir(&mut self) -> Result<(), FileError> {
        if let Some(previous) = self.early_dir.take() {
            // Not in practice: the core syncs the directory right after each creation.
            previous.join()?;
        }
        let dir = Arc::clone(&self.dir_handle);
        self.early_dir = EarlySync::start(&self.fs, Target::Dir, dir, &self.unsynced);
        Ok(())
    }

    /// A directory sync succeeded: the files removed before it are gone for good, and the
    /// closer may shrink them before it closes them (`closer.rs`).
    fn unlinked_durable(&mut self) {
        for file in self.unlinked.drain(..) {
            self.closer.close_later(&self.fs, file, true);
        }
    }

    /// The directory changed: an early sync of it no longer covers everything.
    fn dir_changed(&mut self) {
        if let Some(early) = self.early_dir.as_mut() {
            early.make_stale();
        }
    }

    /// `id` changes: an early sync of it no longer covers everything.
    fn stale_early(&mut self, id: SegmentId) {
        for early in &mut self.early_seals {
            if early.target() == Target::Segment(id) {
                early.make_stale();
            }
        }
    }

    /// `id` is removed: its early sync (whose outcome is recorded) is of no further use.
    fn forget_early(&mut self, id: SegmentId) {
        self.sealing.take_if(|s| *s == id);
        self.early_seals
            .retain(|early| early.target() != Target::Segment(id));
    }

    /// Waits for an early sync of `id`. `Ok(true)`: it covers every change of `id`, so the
    /// core's sync is done.
    fn join_early_seal(&mut self, id: SegmentId) -> Result<bool, FileError> {
        let Some(k) = (self.early_seals.iter()).position(|e| e.target() == Target::Segment(id))
        else {
            return Ok(false);
        };
        self.early_seals.swap_remove(k).join()
    }

    /// Before any write of `len` bytes of segment `id` up to `end`: gives zero-fill up once
    /// the writes are bulk, starts preparing the next spare once it is due, and makes an early
    /// sync of `id` stale (it may not cover these bytes).
    fn note_segment_write(&mut self, id: SegmentId, end: u64, len: usize) {
        if self.zero_fill && self.bulk_so_far(len as u64) {
            // Written in bulk since the segment began: zeros from here on (the fill ahead of
            // the writer, the spare about to be prepared) would only write every byte twice.
            tracing::debug!(
                written = self.usage.written,
                "zero-fill given up: bulk writes"
            );
            self.zero_fill = false;
            self.stop_fill(None);
        }
        // Only the active segment's writes count: a seal, written to the old segment far
        // past its offset, must not start it in the middle of the rotation.
        if let Some(due) = self.spare_due
            && id == due.active
            && (*self.usage.syncs.get_mut() > due.syncs || end > due.offset)
        {
            self.spare_due = None;
            self.prepare_next(due.active, due.len);
        }
        self.stale_early(id);
    }

    /// Before a write of segment bytes: starts preparing the next spare once it is due, and
    /// writes a seal (the first write to the segment a rotation is sealing) straight to the
    /// file and starts its sync (`early_sync.rs`). Returns whether it wrote `data`.
    fn before_segment_write(
        &mut self,
        id: SegmentId,
        offset: u64,
        data: &[u8],
    ) -> Result<bool, FileError> {
        let end = offset + data.len() as u64;
        self.note_segment_write(id, end, data.len());
        if self.sealing != Some(id) {
            return Ok(false);
        }
        self.sealing = None;
        self.usage.written += data.len() as u64;
        self.unsynced.changed(id);
        self.flush()?;
        self.before_write(id, end);
        let file = Arc::clone(self.file(id)?);
        file.write_all_at(data, offset)?;
        if !self.sealed_synced {
            // Nothing synced its records while it was active: left to the next sync (early
            // rotation) or the core's own (see `log_syncs`).
            return Ok(true);
        }
        if self.detached_in_flight.load(Ordering::Acquire) > 0
            && self.fs.mutation() != Some(Mutation::EarlySealIgnoresDetached)
        {
            // A group-commit leader is syncing this file (the segment a detached sync is
            // handed out for is the active one, which this rotation seals) on the same file
            // description, without the log lock. Two concurrent `fdatasync`s of one file
            // description share one writeback error (`errseq_t`): if the early sync consumed
            // it, the leader's would return `Ok` and publish records whose bytes failed to
            // reach the disk, before anyone joined the early sync. So the seal is left to the
            // next core sync, which runs under the log lock and poisons the log if it fails.
            // (The reverse order is safe: `detached_sync` hands out no job while an early sync
            // of the segment is held, and the core's sync joins it.) Jobs are counted under
            // the log lock, which this call holds: one handed out after this check finds the
            // early sync started below and is not handed out; one counted down (`Acquire`)
            // has seen its `fdatasync` return, so it shares no error with a sync started now.
            // Any job in flight counts, not only one of `id`: simpler, and it is nearly always
            // one of `id` (one leader at a time, and it syncs the active segment).
            return Ok(true);
        }
        if let Some(early) = EarlySync::start(&self.fs, Target::Segment(id), file, &self.unsynced) {
            // Keep only those the core must still hear from: running, or failed.
            self.early_seals.retain(|e| !e.succeeded());
            self.early_seals.push(early);
        }
        Ok(true)
    }

    /// At a rotation: decides from the sealed segment's usage whether the segments that follow
    /// are zero-filled, and starts counting afresh. Zeros make each `fdatasync` of an append
    /// data-only (`spare.rs`), worth a second write of every byte only while syncs are
    /// frequent; a bulk writer (large batches per sync, or none) gets preallocated space it
    /// writes once. Either way the spare holds nothing that validates, so this is a choice of
    /// speed, never of safety.
    fn judge_usage(&mut self) {
        self.sealed_synced = core::mem::take(self.usage.synced_records.get_mut());
        let written = core::mem::take(&mut self.usage.written);
        let syncs = core::mem::take(self.usage.syncs.get_mut());
        if written == 0 && syncs == 0 {
            return; // nothing seen (the log's first segment, or the first since open)
        }
        let zero = !self.is_bulk(written, syncs);
        if zero != self.zero_fill {
            tracing::debug!(written, syncs, zero, "segment zero-fill policy changed");
        }
        self.zero_fill = zero;
    }

    /// Whether `written` bytes over `syncs` syncs is writing in bulk: more than
    /// [`Tuning::zero_fill_max_bytes_per_sync`](crate::Tuning::zero_fill_max_bytes_per_sync)
    /// per sync, or no sync at all.
    fn is_bulk(&self, written: u64, syncs: u64) -> bool {
        syncs == 0 || written / syncs > self.fs.tuning().zero_fill_max_bytes_per_sync
    }

    /// Whether the log syncs its records: a sync of records came while the active segment was
    /// active, or while the segment sealed before it was. Only then is data pushed towards the
    /// disk ahead of a sync: the write-back of each
    /// [`Tuning::write_back_every`](crate::Tuning::write_back_every) bytes (`pace`) and a
    /// sealed segment's sync started at its seal (`early_sync.rs`), which shorten the syncs
    /// to come. A log that does not sync leaves its pages to the kernel, as a
    /// plain buffered file does: pushed early, they kept the disk busy, and every rotation's
    /// header and directory sync (and a spare's) waited behind them. With both, 256 KiB
    /// appends without syncs ran at 0.53-0.63 of the suite's baseline with p999 8-15 ms;
    /// without, 0.86-0.93 with p999 1.2-1.6 ms (2-vCPU VM, BENCHMARKS.md "Bulk paths"). A sync
    /// turns both on at once, and the segment after the last one with a sync keeps them.
    fn log_syncs(&self) -> bool {
        self.sealed_synced || self.usage.synced_records.load(Ordering::Relaxed)
    }

    /// The active segment's writes so far, and `len` bytes more, are bulk even if a sync came
    /// next: `judge_usage` would call the segment bulk.
    fn bulk_so_far(&mut self, len: u64) -> bool {
        let syncs = *self.usage.syncs.get_mut();
        self.is_bulk(
            self.usage.written.saturating_add(len),
            syncs.saturating_add(1),
        )
    }

    pub(crate) fn refresh_foreign(&mut self) -> io::Result<()> {
        self.foreign = scan_foreign(&self.fs, &self.dir)?;
        Ok(())
    }
}

impl<F: FileSystem> FileStorage<F> {
    /// Asks the kernel to drop its cached pages of the newest segment, and of every segment an
    /// early rotation may have left unsynced, before recovery reads them, so recovery sees
    /// what the disk holds. Does nothing when the open found the clean-close marker.
    /// [`FileStorage::open_in`] calls it (an error there is logged, not returned); call it
    /// again to see whether it succeeds.
    ///
    /// Why: after a failed `fdatasync` Linux may mark the unwritten pages clean (the
    /// "fsyncgate" behaviour). A restarted process would read them back from the page cache,
    /// sync "successfully", and treat records the disk never got as durable. Dropping clean
    /// pages closes that hole; dirty pages (an ordinary process crash) were written back by
    /// the open's sync of these segments first, so nothing valid is lost. Only the newest
    /// segment can hold unsynced data, and, with `Config::early_rotation`, a segment whose
    /// successor has the header's `early` flag (docs/FORMAT.md, "Early successors"), or
    /// precedes a newest segment whose header is unreadable (a creation that did not finish):
    /// every other one was synced before its successor was created.
    ///
    /// A segment whose pages could not be dropped keeps this process from leaving the
    /// clean-close marker: it cannot tell that its cache matches the disk.
    pub fn forget_cached_newest(&self) -> io::Result<()> {
        let mut result = Ok(());
        let mark = self.unsynced.before_sync();
        for &id in &self.suspects {
            // Not a regular file: recovery reports it, and its pages are nothing of ours.
            let forgot = regular(&self.fs, &self.dir, id).map_or(Ok(()), |f| f.forget_cache());
            match forgot {
                Ok(()) => self.unsynced.synced(id, mark),
                Err(e) => {
                    self.unsynced.failed();
                    result = Err(e);
                }
            }
        }
        result
    }
}

/// Segment `id` of `dir` opened for reading, if it is a regular file (never follow a link
/// here: recovery reports it).
fn regular<F: FileSystem>(fs: &F, dir: &Path, id: SegmentId) -> io::Result<F::File> {
    let path = dir.join(SegmentName::new(id).as_str());
    if fs.symlink_metadata(&path)?.kind != FileKind::File {
        return Err(io::Error::other("not a regular file"));
    }
    fs.open(&path, OpenMode::Read)
}

/// The segments of `dir` that may hold data no sync made durable: the newest one, and those an
/// early rotation sealed without a sync (their successor's header has the `early` flag, or is
/// unreadable in the newest segment: a creation that did not finish). Found by reading
/// headers; nothing is written.
fn maybe_unsynced<F: FileSystem>(fs: &F, dir: &Path) -> io::Result<Vec<SegmentId>> {
    let mut ids = Vec::new();
    for entry in fs.read_dir(dir)? {
        if let Some(id) = entry.name.to_str().and_then(parse_segment_name)
            && !walden_core::raw::is_start_slot(id)
        {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    let newest = ids.last().copied();
    let mut suspects: Vec<SegmentId> = newest.into_iter().collect();
    for pair in ids.windows(2) {
        let (before, id) = (pair[0], pair[1]);
        let mut header = [0u8; walden_core::raw::SEGMENT_HEADER_LEN];
        let read = regular(fs, dir, id).and_then(|f| f.read_at(&mut header, 0));
        let early = match read {
            Ok(n) => walden_core::raw::SegmentHeader::decode(&header[..n])
                .map_or(Some(id) == newest, |h| h.early),
            Err(_) => Some(id) == newest,
        };
        if early && id == before + 1 {
            suspects.push(before);
        }
    }
    Ok(suspects)
}

/// Makes durable what a previous process left unsynced in the newest segment and in segments
/// an early rotation sealed, before the open changes anything, and returns those segments.
/// After a restart (not a power loss) their records may still be in the page cache: recovery
/// reads and keeps them, so they must not vanish if the power fails during the open (a crash
/// there would otherwise give a second recovery a shorter log than the first one returned).
/// Data a failed sync lost stays lost: the sync reports only errors since this open, and
/// `forget_cached_newest` then drops the stale pages, so recovery reads what the disk holds.
fn sync_suspects<F: FileSystem>(fs: &F, dir: &Path) -> io::Result<Vec<SegmentId>> {
    let suspects = maybe_unsynced(fs, dir)?;
    for &id in &suspects {
        if let Ok(file) = regular(fs, dir, id) {
            file.sync_data()?;
        }
    }
    Ok(suspects)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filesystem::Tuning;

    const SEGMENT: u64 = 4 << 20;

    /// Writes `total` bytes to segment 1 in writes of `per_sync` bytes, each synced, rotates to
    /// segment 2, reserves it, and returns how long segment 2's file is (zeros make it long).
    fn segment_two_len(per_sync: usize, total: usize) -> u64 {
        let dir = tempfile::tempdir().unwrap();
        let mut s = FileStorage::open(dir.path(), true).unwrap();
        s.create(1).unwrap();
        let chunk = vec![7u8; per_sync];
        let mut at = 0;
        while at < total {
            s.write(1, at as u64, &chunk).unwrap();
            s.sync(1).unwrap();
            at += per_sync;
        }
        s.create(2).unwrap();
        s.reserve(2, SEGMENT).unwrap();
        let len = s.len(2).unwrap();
        drop(s);
        len
    }

    #[test]
    fn a_new_log_with_no_history_gets_a_zero_filled_first_segment() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = FileStorage::open(dir.path(), true).unwrap();
        s.create(1).unwrap();
        s.write(1, 0, b"header").unwrap();
        s.reserve(1, SEGMENT).unwrap();
        assert!(s.len(1).unwrap() >= Tuning::DEFAULT.sync_zero_fill);
    }

    #[test]
    fn a_log_reopened_to_be_read_writes_nothing_until_its_first_write() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = FileStorage::open(dir.path(), true).unwrap();
        s.create(1).unwrap();
        s.write(1, 0, b"header").unwrap();
        s.sync(1).unwrap();
        drop(s);
        let listing = || {
            let mut names: Vec<_> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            names.sort();
            names
        };
        let mut s = FileStorage::open(dir.path(), false).unwrap();
        let before = listing(); // the open removed the clean-close marker, and only that
        s.reserve(1, SEGMENT).unwrap();
        s.prepare_next(1, SEGMENT);
        assert_eq!(s.len(1).unwrap(), 6, "no zero-fill before a write");
        assert_eq!(listing(), before, "no spare before a write");
        // The first write carries the reservation out, zeros first.
        s.write(1, 6, b"record").unwrap();
        s.flush().unwrap();
        assert!(s.len(1).unwrap() >= Tuning::DEFAULT.sync_zero_fill);
        let mut got = [0u8; 12];
        assert_eq!(s.read(1, 0, &mut got).unwrap(), 12);
        assert_eq!(&got, b"headerrecord");
    }

    /// Only a regular file named `walden.clean` is the clean-close marker: a symlink, a FIFO
    /// or a directory with its name was trusted (a symlink or FIFO was removed as if it were
    /// the marker), and the open skipped the recovery of the page cache. Now each is not
    /// trusted, and is left as it was.
    #[test]
    fn only_a_regular_file_is_the_clean_close_marker() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join(clean::CLEAN_FILE);
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, b"the user's own bytes").unwrap();
        let mut s = FileStorage::open(dir.path(), true).unwrap();
        s.create(1).unwrap();
        s.write(1, 0, b"header").unwrap();
        s.sync(1).unwrap();
        drop(s);
        let place: [(&str, &dyn Fn()); 3] = [
            ("symlink", &|| {
                std::os::unix::fs::symlink(&target, &marker).unwrap()
            }),
            ("directory", &|| std::fs::create_dir(&marker).unwrap()),
            ("FIFO", &|| {
                rustix::fs::mknodat(
                    rustix::fs::CWD,
                    &marker,
                    rustix::fs::FileType::Fifo,
                    rustix::fs::Mode::from_raw_mode(0o600),
                    0,
                )
                .unwrap();
            }),
        ];
        for (what, place) in place {
            let left = std::fs::symlink_metadata(&marker).unwrap().file_type();
            assert!(left.is_file(), "the close before left the marker");
            std::fs::remove_file(&marker).unwrap();
            place();
            let kind = std::fs::symlink_metadata(&marker).unwrap().file_type();
            let s = FileStorage::open(dir.path(), false).unwrap();
            assert_eq!(s.suspects, [1], "a {what} was trusted as the marker");
            let left = std::fs::symlink_metadata(&marker).unwrap().file_type();
            assert_eq!(left, kind, "the {what} is left as it was");
            drop(s);
            let closed = std::fs::symlink_metadata(&marker).unwrap().file_type();
            assert_eq!(closed, kind, "no marker while the {what} is there");
            match what {
                "directory" => std::fs::remove_dir(&marker).unwrap(),
                _ => std::fs::remove_file(&marker).unwrap(),
            }
            drop(FileStorage::open(dir.path(), false).unwrap());
        }
        assert_eq!(std::fs::read(&target).unwrap(), b"the user's own bytes");
    }

    #[test]
    fn only_a_close_with_every_change_synced_leaves_the_clean_close_marker() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join(clean::CLEAN_FILE);
        let mut s = FileStorage::open(dir.path(), true).unwrap();
        s.create(1).unwrap();
        s.write(1, 0, b"header").unwrap();
        s.sync(1).unwrap();
        s.write(1, 6, b"record").unwrap();
        drop(s);
        assert!(!marker.exists(), "a write was never synced");
        let s = FileStorage::open(dir.path(), false).unwrap();
        assert_eq!(
            s.suspects,
            [1],
            "untrusted: the newest segment is a suspect"
        );
        // The open dropped the suspects' cached pages itself (`open_in`); calling it again
        // succeeds as well.
        s.forget_cached_newest().unwrap();
        drop(s);
        assert!(
            marker.exists(),
            "this process changed nothing, and the open dropped the pages"
        );
        let mut s = FileStorage::open(dir.path(), false).unwrap();
        assert!(!marker.exists(), "an open log never has the marker");
        assert!(s.suspects.is_empty(), "trusted");
        s.write(1, 12, b"more").unwrap();
        s.sync(1).unwrap();
        s.create(2).unwrap();
        s.write(2, 0, b"header").unwrap();
        s.remove(2).unwrap();
        drop(s);
        assert!(marker.exists(), "every change synced or removed");
    }

    #[cfg(feature = "sim")]
    /// A write that runs out of space while a sync writes out the buffered bytes says so: the
    /// error read "sync of segment 1 failed: no space", as if the `fdatasync` had failed, and
    /// nothing said that a write had.
    #[test]
    fn no_space_writing_buffered_bytes_is_reported_as_a_write() {
        use crate::filesystem::SimFileSystem;
        use walden_sim::{FaultAction, FaultSchedule, OpKind};
        let fs = SimFileSystem::new("/log", walden_sim::SimFs::default());
        let mut s = FileStorage::open_in(fs.clone(), "/log", true).unwrap();
        s.create(1).unwrap();
        s.write(1, 0, b"header").unwrap();
        s.sync(1).unwrap();
        s.write(1, 6, b"record").unwrap();
        fs.with(|sim| {
            let writes = sim.trace().iter().filter(|e| e.op.kind() == OpKind::Write);
            let nth = writes.count() as u64;
            let no_space = FaultAction::Fail(StorageErrorKind::NoSpace);
            sim.set_faults(FaultSchedule::new().nth(OpKind::Write, nth, no_space));
        });
        let e = s.sync(1).unwrap_err();
        assert_eq!(
            walden_core::StorageError::kind(&e),
            StorageErrorKind::NoSpace
        );
        assert!(e.is_buffered_write());
        let failure = walden_core::IoFailure {
            op: walden_core::Op::Sync,
            segment: Some(1),
            error: e,
        };
        let message = failure.to_string();
        assert!(
            message.contains("writing buffered bytes to the file: no space left"),
            "{message}"
        );
    }

    #[cfg(feature = "sim")]
    #[test]
    fn segments_with_unsynced_changes_keep_their_descriptors() {
        use crate::filesystem::SimFileSystem;
        // At most two descriptors (SIM_TUNING), but four segments written early-rotation
        // style, none synced: a writeback error must reach the descriptor that syncs each.
        let fs = SimFileSystem::new("/log", walden_sim::SimFs::default());
        let mut s = FileStorage::open_in(fs, "/log", true).unwrap();
        for id in 1..=4 {
            s.create(id).unwrap();
            s.write(id, 0, b"header").unwrap();
        }
        let mut open: Vec<_> = s.files.keys().copied().collect();
        open.sort_unstable();
        assert_eq!(open, [1, 2, 3, 4]);
        for id in 1..=3 {
            s.sync(id).unwrap();
        }
        s.create(5).unwrap();
        let mut open: Vec<_> = s.files.keys().copied().collect();
        open.sort_unstable();
        assert_eq!(open, [4, 5], "synced segments' descriptors close again");
    }

    /// Where the file system makes zeros itself (`FsFile::write_zeroes`, offered by the
    /// simulated one when `Tuning::write_zeroes` is on), a segment's rest is zeroed in one
    /// call, with no fill in the background, and so is every spare: no byte is written but the
    /// log's own. With it off, a head start is written, the rest left to the background fill,
    /// and spares are written full of zeros.
    #[cfg(feature = "sim")]
    #[test]
    fn zeros_the_file_system_makes_are_never_written() {
        use crate::filesystem::{Hooked, Hooks, Op, SIM_TUNING, SimFileSystem};
        /// Bytes written, and calls asking for zeros.
        #[derive(Default)]
        struct Count(Arc<(AtomicU64, AtomicU64)>);
        impl Hooks for Count {
            fn after(&self, op: &Op<'_>, _: Option<&io::Error>) {
                match *op {
                    Op::Write { len, .. } => self.0.0.fetch_add(len as u64, Ordering::Relaxed),
                    Op::WriteZeroes { .. } => self.0.1.fetch_add(1, Ordering::Relaxed),
                    _ => 0,
                };
            }
        }
        const LEN: u64 = 64 << 10;
        let run = |write_zeroes: bool| {
            let tuning = Tuning {
                write_zeroes,
                ..SIM_TUNING
            };
            let count = Count::default();
            let counts = Arc::clone(&count.0);
            let sim = SimFileSystem::new("/log", walden_sim::SimFs::default()).with_tuning(tuning);
            let mut s = FileStorage::open_in(Hooked::new(sim, count), "/log", true).unwrap();
            s.create(1).unwrap();
            s.write(1, 0, b"header").unwrap();
            s.reserve(1, LEN).unwrap();
            let filling = s.fill.is_some();
            let mut rest = vec![9u8; LEN as usize];
            let n = read_at(&**s.file(1).unwrap(), 0, &mut rest).unwrap();
            assert_eq!(&rest[..6], b"header");
            assert!(rest[6..n].iter().all(|&b| b == 0));
            let first = n as u64;
            // Past the point where the spare is due (twice the write buffer), then rotate.
            let mut own = 6;
            while own < 4 * SIM_TUNING.write_buffer as u64 {
                s.write(1, own, &[7u8; 100]).unwrap();
                s.sync(1).unwrap();
                own += 100;
            }
            s.create(2).unwrap();
            s.reserve(2, LEN).unwrap();
            let mut spare = vec![9u8; LEN as usize];
            let n = read_at(&**s.file(2).unwrap(), 0, &mut spare).unwrap();
            assert!(spare.iter().all(|&b| b == 0), "the spare reads as zeros");
            let second = (n as u64, s.fill.is_some());
            let written = counts.0.load(Ordering::Relaxed);
            let asked = counts.1.load(Ordering::Relaxed);
            (filling, first, second, written - own, asked)
        };
        assert_eq!(
            run(true),
            (false, LEN, (LEN, false), 0, 2),
            "zeros made by the file system: whole, at once, none written"
        );
        let (filling, first, second, zeros, asked) = run(false);
        assert!(filling, "zeros written: a background fill takes over");
        assert!(first >= SIM_TUNING.sync_zero_fill, "a head start: {first}");
        assert_eq!(second, (LEN, false), "a zero-filled spare");
        assert!(zeros >= LEN, "the spare's zeros are written: {zeros}");
        assert_eq!(asked, 0, "nothing asked of the file system");
    }

    /// A new log starts out zero-filling (it has no history); once the active segment's writes
    /// exceed the threshold per sync, it stops: the fill ahead of the writer ends and the spare
    /// prepared afterwards is only preallocated. Writes in syncs of the threshold or less keep
    /// both. Over the simulated file system, whose jobs run inline: the spare is ready when
    /// the rotation takes it.
    #[cfg(feature = "sim")]
    #[test]
    fn a_new_log_written_in_bulk_gives_up_zero_fill_within_its_first_segment() {
        use crate::filesystem::{SIM_TUNING, SimFileSystem};
        const LEN: u64 = 64 << 10;
        let successor_len = |per_sync: u64| {
            let fs = SimFileSystem::new("/log", walden_sim::SimFs::default());
            let mut s = FileStorage::open_in(fs, "/log", true).unwrap();
            s.create(1).unwrap();
            s.write(1, 0, b"header").unwrap();
            s.reserve(1, LEN).unwrap();
            assert!(s.zero_fill && s.fill.is_some(), "no history: zeros");
            let mut at = 6;
            // Past the point where the spare is due (twice the write buffer).
            while at < 4 * SIM_TUNING.write_buffer as u64 {
                s.write(1, at, &vec![7u8; per_sync as usize]).unwrap();
                s.sync(1).unwrap();
                at += per_sync;
            }
            let zeros = (s.zero_fill, s.fill.is_some());
            s.create(2).unwrap();
            s.reserve(2, LEN).unwrap();
            (zeros, s.len(2).unwrap())
        };
        let per_sync = SIM_TUNING.zero_fill_max_bytes_per_sync;
        assert_eq!(
            successor_len(per_sync - 100),
            ((true, true), LEN),
            "a zero-filled spare"
        );
        let (zeros, len) = successor_len(per_sync + 100);
        assert_eq!(
            zeros,
            (false, false),
            "zero-fill given up in the first segment"
        );
        assert!(
            len < LEN,
            "a preallocated spare, only its header written: {len}"
        );
    }

    #[cfg(feature = "sim")]
    #[test]
    fn a_segment_of_a_log_that_syncs_has_its_write_back_started_as_it_goes() {
        use crate::filesystem::SimFileSystem;
        // SIM_TUNING: a 2 KiB write buffer, write-back started every 1 KiB written through.
        let fs = SimFileSystem::new("/log", walden_sim::SimFs::default());
        let every = fs.tuning().write_back_every;
        let mut s = FileStorage::open_in(fs.clone(), "/log", true).unwrap();
        s.create(1).unwrap();
        s.write(1, 0, b"header").unwrap();
        s.sync(1).unwrap(); // the header's sync: not a sync of records
        s.write(1, 6, b"a record").unwrap();
        s.sync(1).unwrap();
        assert!(fs.write_backs_started().is_empty());
        let mut at = 14;
        for _ in 0..40 {
            s.write(1, at, &[7u8; 300]).unwrap();
            at += 300;
        }
        // Straight to the file (a buffer's worth or more), then buffered again.
        s.write(1, at, &[8u8; 5000]).unwrap();
        at += 5000;
        s.write(1, at, &[9u8; 100]).unwrap();
        s.flush().unwrap();
        let started = fs.write_backs_started();
        // From where the file ended when the sync of records came (its own flush wrote the
        // rest), each range where the one before ended, each at least `every` long, up to what
        // was written through when the last one started.
        assert!(started.len() >= 5, "{started:?}");
        let mut next = 6;
        for &(offset, len) in &started {
            assert_eq!(offset, next, "{started:?}");
            assert!(len >= every, "{started:?}");
            next = offset + len;
        }
        assert!(
            at + 100 - next < every,
            "{next} of {} left: {started:?}",
            at + 100
        );
        // A new segment starts over from its own first bytes, and its seal's sync is started
        // at once: the sealed segment's records were synced.
        s.create(2).unwrap();
        s.write(2, 0, b"header").unwrap();
        s.sync(2).unwrap();
        s.write(1, at + 100, b"seal").unwrap();
        assert_eq!(s.early_seals.len(), 1, "the seal's sync started early");
        s.write(2, 6, &[1u8; 3000]).unwrap();
        assert_eq!(fs.write_backs_started()[started.len()..], [(0, 3006)]);
    }

    /// A log that does not sync leaves its pages to the kernel: no write-back is started and
    /// a sealed segment's sync is not started at its seal, however much it writes, until a
    /// sync of records comes; from then on both are done as for any log that syncs.
    #[cfg(feature = "sim")]
    #[test]
    fn a_log_that_does_not_sync_pushes_nothing_to_the_disk_ahead_of_a_sync() {
        use crate::filesystem::SimFileSystem;
        let fs = SimFileSystem::new("/log", walden_sim::SimFs::default());
        let every = fs.tuning().write_back_every;
        let mut s = FileStorage::open_in(fs.clone(), "/log", true).unwrap();
        s.create(1).unwrap();
        s.write(1, 0, b"header").unwrap();
        s.sync(1).unwrap();
        let mut at = 6;
        for _ in 0..40 {
            s.write(1, at, &[7u8; 300]).unwrap();
            at += 300;
        }
        s.write(1, at, &[8u8; 5000]).unwrap();
        at += 5000;
        // A rotation: the successor's header synced (the rotation's own sync), then the seal.
        s.create(2).unwrap();
        s.write(2, 0, b"header").unwrap();
        s.sync(2).unwrap();
        s.sync_dir().unwrap();
        s.write(1, at, b"seal").unwrap();
        s.write(2, 6, &[1u8; 3000]).unwrap();
        s.flush().unwrap();
        assert!(fs.write_backs_started().is_empty(), "no write-back started");
        assert!(s.early_seals.is_empty(), "no early seal sync");
        // A sync of records: pacing starts where the segment's file then ended (the next
        // write is long enough to start one at once).
        assert!(3000 >= every);
        s.sync(2).unwrap();
        s.write(2, 3006, &[2u8; 3000]).unwrap();
        s.flush().unwrap();
        assert_eq!(fs.write_backs_started(), [(3006, 3000)]);
        // And the next rotation's seal starts its sync early.
        s.create(3).unwrap();
        s.write(3, 0, b"header").unwrap();
        s.sync(3).unwrap();
        s.write(2, 6006, b"seal").unwrap();
        assert_eq!(s.early_seals.len(), 1, "the seal's sync started early");
    }

    /// A storage over a simulated file system whose background jobs run only when the test
    /// asks, with segments `1..=n` created, each with a synced header.
    #[cfg(feature = "sim")]
    fn deferred_with_segments(
        n: SegmentId,
    ) -> (
        crate::filesystem::SimFileSystem,
        FileStorage<crate::filesystem::SimFileSystem>,
    ) {
        use crate::filesystem::{Background, SIM_TUNING, SimFileSystem};
        let fs = SimFileSystem::with_settings(
            "/log",
            walden_sim::SimFs::default(),
            Background::Deferred,
            SIM_TUNING,
            None,
        );
        let mut s = FileStorage::open_in(fs.clone(), "/log", true).unwrap();
        for id in 1..=n {
            s.create(id).unwrap();
            s.write(id, 0, b"header").unwrap();
            s.sync(id).unwrap();
        }
        (fs, s)
    }

    /// Removing a segment (`truncate_front`, under the log lock) unlinks it at once but leaves
    /// freeing its blocks (where a file system mounted with `discard` waits for the device:
    /// 13-16 ms per 64 MiB here) to a background job: the file is held open across the
    /// unlink, and once a directory sync has made the unlink durable the job shrinks it to
    /// nothing and closes it. That holds for a segment whose file was open and for one the
    /// storage had already closed; a file is never shrunk before its unlink is durable.
    #[cfg(feature = "sim")]
    #[test]
    fn a_removed_segment_is_freed_by_a_background_job_once_its_unlink_is_durable() {
        use walden_sim::FsOp;
        let (fs, mut s) = deferred_with_segments(3);
        assert!(
            !s.files.contains_key(&1) && s.files.contains_key(&2),
            "at most two files are kept open: segment 1's was closed"
        );
        let closes = || {
            fs.job_names()
                .iter()
                .filter(|n| *n == "walden-close")
                .count()
        };
        let shrinks = || {
            fs.with(|f| {
                (f.trace().iter())
                    .filter(|e| matches!(e.op, FsOp::SetLen { .. }))
                    .count()
            })
        };
        let open = fs.open_files();
        s.remove(1).unwrap();
        s.remove(2).unwrap();
        let mut ids = Vec::new();
        s.list(&mut |id| ids.push(id)).unwrap();
        assert_eq!(ids, [3], "both are gone from the directory at once");
        assert_eq!(
            fs.open_files(),
            open + 1,
            "both files are held open (segment 1's opened to be removed)"
        );
        fs.run_background(usize::MAX);
        assert_eq!(
            (closes(), shrinks()),
            (0, 0),
            "nothing before the unlinks are durable"
        );
        assert_eq!(fs.open_files(), open + 1);
        s.sync_dir().unwrap();
        assert_eq!(closes(), 1, "one job frees both");
        assert_eq!(fs.open_files(), open + 1, "not on this thread");
        fs.run_background(usize::MAX);
        assert_eq!(fs.open_files(), open - 1, "the job closed both");
        assert_eq!(shrinks(), 2, "after shrinking each (a few bytes: one step)");
        // A job still queued when the storage goes is waited for.
        s.remove(3).unwrap();
        s.sync_dir().unwrap();
        assert_eq!(closes(), 1);
        drop(s);
        assert_eq!((closes(), fs.open_files()), (0, 0));
    }

    /// However many segments one `truncate_front` removes, at most `MAX_QUEUED` descriptors
    /// wait for the closer: the rest are closed by the remover, so a large retention cannot
    /// run the process out of descriptors while the job lags.
    #[cfg(feature = "sim")]
    #[test]
    fn removed_segments_waiting_to_be_closed_are_bounded() {
        use crate::closer::MAX_QUEUED;
        let n = MAX_QUEUED as u64 + 5;
        let (fs, mut s) = deferred_with_segments(n);
        let open = fs.open_files();
        for id in 1..n {
            s.remove(id).unwrap();
            s.sync_dir().unwrap();
        }
        assert_eq!(fs.open_files(), open - 1 + MAX_QUEUED);
        drop(s);
        assert_eq!(fs.open_files(), 0);
    }

    /// A huge segment size (`u64::MAX`: a log that never rotates) reserves and prepares at
    /// most `Tuning::max_prepared` bytes: the spare's background job zero-filled the whole
    /// segment size, which on a real disk wrote zeros until the disk was full (the log's
    /// writes, and other processes', then failed for lack of space, and closing waited for it).
    #[cfg(feature = "sim")]
    #[test]
    fn a_huge_segment_size_prepares_a_bounded_spare() {
        use crate::filesystem::{Background, SIM_TUNING, SimFileSystem};
        let cap = 16 << 10;
        let tuning = Tuning {
            max_prepared: cap,
            ..SIM_TUNING
        };
        let fs = SimFileSystem::with_settings(
            "/log",
            walden_sim::SimFs::default(),
            Background::Deferred,
            tuning,
            None,
        );
        let mut s = FileStorage::open_in(fs.clone(), "/log", true).unwrap();
        s.create(1).unwrap();
        s.write(1, 0, b"header").unwrap();
        s.sync(1).unwrap();
        // 1 MiB stands for `u64::MAX` (the simulator keeps files in memory).
        let huge = 1 << 20;
        s.reserve(1, huge).unwrap();
        fs.run_background(usize::MAX);
        s.prepare_next(1, huge);
        fs.run_background(usize::MAX);
        s.create(2).unwrap();
        assert_eq!(
            s.len(2).unwrap(),
            cap,
            "segment 2 is the spare, zero-filled to the bound"
        );
    }

    /// A spare whose job was still running when the rotation it was meant for came (the
    /// writer filled a segment faster than the first spare's zeros were written) serves the
    /// next rotation, instead of being removed there: removing it freed 64 MiB on the log's
    /// path (a discard, 13-16 ms, on some file systems) and threw its zeros away.
    #[cfg(feature = "sim")]
    #[test]
    fn a_spare_overtaken_by_its_rotation_serves_the_next_one() {
        let (fs, mut s) = deferred_with_segments(1);
        let jobs = |name: &str| fs.job_names().iter().filter(|n| *n == name).count();
        let spares = |fs: &crate::filesystem::SimFileSystem| {
            let names = fs.read_dir(Path::new("/log")).unwrap();
            (names.iter())
                .filter(|e| e.name.to_str().and_then(spare::parse_spare_name).is_some())
                .count()
        };
        s.prepare_next(1, SEGMENT);
        assert_eq!(jobs("walden-spare"), 1, "the spare's job is queued");
        s.create(2).unwrap();
        assert_eq!(
            s.len(2).unwrap(),
            0,
            "created without it: the job has not run"
        );
        fs.run_background(usize::MAX);
        assert_eq!(spares(&fs), 1, "the job left its spare");
        s.prepare_next(2, SEGMENT);
        assert_eq!(
            jobs("walden-spare"),
            0,
            "no second spare while one is ready"
        );
        s.create(3).unwrap();
        assert_eq!(
            s.len(3).unwrap(),
            SEGMENT,
            "segment 3 is the spare, zero-filled to the segment's size"
        );
        assert_eq!(spares(&fs), 0, "its temporary name is gone");
        assert_eq!(jobs("walden-close"), 0, "nothing was removed");
    }

    /// A `write_parts` that stays in the write buffer does what a `write` does before any
    /// segment write: once the active segment's bytes pass the point where the next spare is
    /// due, the spare's preparation starts at that call (not when the buffer next fills).
    #[test]
    fn write_parts_starts_a_due_spare_like_write() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = FileStorage::open(dir.path(), true).unwrap();
        s.create(1).unwrap();
        s.write(1, 0, b"segment header").unwrap();
        s.reserve(1, SEGMENT).unwrap();
        let due = s
            .spare_due
            .expect("a spare is due after the segment's reservation");
        let buffered = |s: &FileStorage| {
            let pending = s.pending.lock().unwrap();
            pending.as_ref().map_or(0, |p| p.bytes.len())
        };
        // Up to just before the due offset: a buffer's worth and more straight to the file,
        // then a few bytes into the buffer.
        let big = usize::try_from(due.offset - 14 - 60).unwrap();
        assert!(big >= s.fs.tuning().write_buffer);
        s.write(1, 14, &vec![1u8; big]).unwrap();
        let end = due.offset - 60;
        s.write(1, end, &[2u8; 10]).unwrap();
        assert_eq!(buffered(&s), 10);
        assert!(s.spare_due.is_some(), "not due before {}", due.offset);
        // Header and payload past it, both into the buffer.
        s.write_parts(1, end + 10, &[3u8; 32], &[4u8; 100]).unwrap();
        assert_eq!(buffered(&s), 142, "the parts were buffered");
        assert!(
            s.spare_due.is_none(),
            "the spare's preparation started at the write"
        );
    }

    /// Runs the same appends through `write_parts` and through pairs of `write`s: buffered,
    /// past a full buffer, to another segment, after a reservation. The files must match, and
    /// an unsynced `write_parts` must keep the clean-close marker away like a `write`.
    #[test]
    fn write_parts_is_two_writes() {
        let run = |parts: bool| {
            let dir = tempfile::tempdir().unwrap();
            let mut s = FileStorage::open(dir.path(), true).unwrap();
            let mut ends = [0u64; 4];
            for i in 0..700u32 {
                let id = 1 + u64::from(i / 300);
                if ends[id as usize] == 0 {
                    s.create(id).unwrap();
                    s.write(id, 0, b"segment header").unwrap();
                    s.reserve(id, SEGMENT).unwrap();
                    ends[id as usize] = 14;
                }
                let header = i.to_le_bytes().repeat(8);
                let payload = vec![i as u8; 1 + (i as usize * 97) % 5000];
                let at = ends[id as usize];
                if parts {
                    s.write_parts(id, at, &header, &payload).unwrap();
                } else {
                    s.write(id, at, &header).unwrap();
                    s.write(id, at + header.len() as u64, &payload).unwrap();
                }
                ends[id as usize] += (header.len() + payload.len()) as u64;
            }
            s.sync(1).unwrap();
            let paths: Vec<_> = (1..=3).map(|id| s.segment_path(id)).collect();
            drop(s);
            let marker = dir.path().join(clean::CLEAN_FILE).exists();
            let files: Vec<_> = paths
                .iter()
                .zip(&ends[1..])
                .map(|(path, &end)| {
                    let mut b = std::fs::read(path).unwrap();
                    b.truncate(end as usize);
                    b
                })
                .collect();
            (files, marker)
        };
        let (files, marker) = run(true);
        assert_eq!((&files, marker), (&run(false).0, false));
        assert!(!marker, "segments 2 and 3 were written and never synced");
    }

    /// A `write_parts` while a sync runs (one that began before it) leaves its segment unsynced:
    /// its change is counted, as a `write`'s is.
    #[test]
    fn write_parts_during_a_sync_leaves_the_segment_unsynced() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = FileStorage::open(dir.path(), true).unwrap();
        s.create(1).unwrap();
        s.write(1, 0, b"header").unwrap(); // buffered: the next one joins it
        let mark = s.unsynced.before_sync();
        s.write_parts(1, 6, b"record ", b"header").unwrap();
        s.unsynced.synced(1, mark);
        assert!(s.unsynced.holds(1));
        let mut got = [0u8; 19];
        assert_eq!(s.read(1, 0, &mut got).unwrap(), 19);
        assert_eq!(&got, b"headerrecord header");
    }

    #[test]
    fn a_log_of_small_syncs_gets_zero_filled_segments() {
        assert!(segment_two_len(1024, 64 << 10) >= Tuning::DEFAULT.sync_zero_fill);
    }

    #[test]
    fn a_bulk_writer_gets_preallocated_segments_it_writes_once() {
        assert_eq!(segment_two_len(1 << 20, 2 << 20), 0);
    }
}
