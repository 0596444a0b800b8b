//! [`WasiStorage`]: core's [`Storage`] over a WASI preview 2 directory descriptor.

use core::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use walden_core::{SegmentId, Storage, StorageErrorKind};
use wasi::filesystem::preopens::get_directories;
use wasi::filesystem::types::{
    Descriptor, DescriptorFlags, DescriptorType, ErrorCode, OpenFlags, PathFlags,
};

use crate::dir::{DirHandle, open_path};
use crate::error::WasiError;
use walden_core::{CLEAN_FILE, SegmentName, parse_segment_name};

/// Segment descriptors kept open at once. The log touches the newest segment or two; readers
/// during recovery walk the rest once, so a small cache avoids an `open-at` per call without
/// holding one handle per segment forever.
const OPEN_SEGMENTS: usize = 8;

/// Largest single `read`/`write` handed to the host, so a huge caller buffer does not become one
/// huge host-side allocation.
const CHUNK: usize = 1 << 20;

/// Most of a segment [`Storage::reserve`] zero-fills ahead of the writer.
const ZERO_FILL: u64 = 8 << 20;

/// Bytes of consecutive writes buffered in guest memory before they are handed to the host.
const WRITE_BUFFER: usize = 1 << 20;

/// A directory of Walden segments reached through a WASI preview 2 descriptor.
///
/// Every [`Storage`] method maps to one or a few WASI calls: `open-at` (create, or open an
/// existing segment), `read`, `write`, `set-size`, `sync-data`, `stat`, `read-directory`,
/// `unlink-file-at`, and `sync` on the directory descriptor for [`Storage::sync_dir`]. Whether
/// those calls reach the disk is the host's business: wasmtime maps `sync-data` to `fdatasync`
/// and a directory `sync` to `fsync` of the directory.
///
/// Consecutive writes to one segment are buffered in guest memory (up to 1 MiB) and handed to
/// the host in one `write` on [`Storage::sync`] of that segment, on `truncate`, when the buffer
/// fills, when a write goes elsewhere, and on drop; `read` and `len` see the buffered bytes
/// without flushing them, and `remove` discards them. A call across the component boundary costs
/// far more than an append, so this is what lets the guest keep up with native code. It is within
/// the `Storage` contract: unsynced bytes are volatile either way, and a guest that dies loses
/// only bytes it never synced. If handing one segment's bytes over fails during a write to
/// another, they stay buffered and that write goes straight through: the failure is reported by
/// a call on their own segment (its `sync`), so core blames the segment that lost them.
pub struct WasiStorage {
    dir: Descriptor,
    /// Open segment descriptors, by id. `RefCell` because `read` and `len` take `&self`; WASI
    /// components are single-threaded, so no borrow is ever held across a call into this type.
    open: RefCell<BTreeMap<SegmentId, Descriptor>>,
    /// Segments written (or truncated) through their descriptor since their last sync. Their
    /// descriptors are never closed by the cache: Linux reports a writeback error only to the
    /// file descriptions open when it happened (`errseq_t`), so a sync through a descriptor
    /// opened again later would report success for bytes the disk lost (walden-std keeps such
    /// files open for the same reason).
    unsynced: BTreeSet<SegmentId>,
    /// Written bytes not yet handed to the host. Only `&mut self` paths change it.
    pending: Option<Pending>,
    /// Most bytes held before they are handed to the host (0: every write goes straight
    /// through).
    buffer_limit: usize,
    /// Whether the clean-close marker was removed (see [`WasiStorage::before_change`]).
    changing: bool,
}

/// A run of consecutive writes to one segment, starting at `offset`.
struct Pending {
    id: SegmentId,
    offset: u64,
    bytes: Vec<u8>,
}

impl Pending {
    fn end(&self) -> u64 {
        self.offset + self.bytes.len() as u64
    }
}

impl WasiStorage {
    /// Uses `dir`, a directory descriptor with read, write and mutate-directory rights.
    pub fn new(dir: Descriptor) -> Self {
        Self {
            dir,
            open: RefCell::new(BTreeMap::new()),
            unsynced: BTreeSet::new(),
            pending: None,
            buffer_limit: WRITE_BUFFER,
            changing: false,
        }
    }

    /// Sets how many written bytes are held in guest memory before they are handed to the
    /// host (default 1 MiB; 0 writes straight through). Unsynced bytes are volatile either way;
    /// a smaller buffer only hands them over sooner (the demo's crash loop uses 0, so a crash
    /// between a write and its sync leaves a torn tail on the host to recover from).
    #[must_use]
    pub fn with_write_buffer(mut self, bytes: usize) -> Self {
        self.buffer_limit = bytes;
        self
    }

    /// Uses the preopened directory the host published under `guest_path` (for example `"."`
    /// or `"/data"`). Fails with [`StorageErrorKind::NotFound`] if there is none.
    pub fn from_preopen(guest_path: &str) -> Result<Self, WasiError> {
        preopen(guest_path).map(Self::new)
    }

    /// Opens (creating it if needed) the directory `path` below the preopen `guest_path` and
    /// uses it (a `..` component is refused). Each component of `path` is created if missing and
    /// the directory holding its entry (the preopen, for the first) is synced, even if it
    /// existed: [`Storage::sync_dir`] syncs the log directory itself, which cannot make the log
    /// directory's own name durable.
    pub fn open_dir(guest_path: &str, path: &str) -> Result<Self, WasiError> {
        Ok(Self::new(open_path(preopen(guest_path)?, path)?))
    }

    /// Removes walden-std's clean-close marker ([`CLEAN_FILE`]) before the first change to a
    /// segment: it tells walden-std that the page cache matches the disk, which stops being
    /// true once this process writes (docs/FORMAT.md, "The clean-close marker").
    fn before_change(&mut self) -> Result<(), WasiError> {
        if !self.changing {
            match self.dir.unlink_file_at(CLEAN_FILE) {
                Ok(()) | Err(ErrorCode::NoEntry) => self.changing = true,
                // Only a regular file is the marker (walden-std trusts nothing else): a
                // directory or any other entry with its name is someone else's, left in place,
                // as walden-std leaves it.
                Err(_)
                    if self
                        .dir
                        .stat_at(PathFlags::empty(), CLEAN_FILE)
                        .is_ok_and(|s| s.type_ != DescriptorType::RegularFile) =>
                {
                    self.changing = true;
                }
                Err(code) => return Err(wasi_error("unlink-file-at", code)),
            }
        }
        Ok(())
    }

    /// Calls `each` with the name of every directory entry that is not a segment: foreign
    /// files, temporary files, subdirectories. [`Storage::list`] skips these.
    pub fn foreign_entries(&self, each: &mut dyn FnMut(&str)) -> Result<(), WasiError> {
        self.walk(&mut |name, segment| {
            if segment.is_none() {
                each(name);
            }
        })
    }

    /// Calls `each` with every entry name in the directory (`read-directory` never reports `.`
    /// or `..`) and, for segments, the segment id. Whatever has a segment's name is listed as
    /// one, a directory too: opening it then fails (`is-directory`, an
    /// [`Unsupported`](StorageErrorKind::Unsupported) error), so the log refuses to open, as
    /// walden-std does, instead of skipping a name the log would later try to create.
    fn walk(&self, each: &mut dyn FnMut(&str, Option<SegmentId>)) -> Result<(), WasiError> {
        let stream = self
            .dir
            .read_directory()
            .map_err(|code| wasi_error("read-directory", code))?;
        // An entry whose name is not UTF-8 (wasmtime reports `illegal-byte-sequence` and moves
        // past it) is not a segment, and is skipped as walden-std skips it, so that one such
        // file does not make the log impossible to open. Bounded: a host that reports the
        // error without moving on is not read for ever.
        let mut skipped = 0u32;
        loop {
            match stream.read_directory_entry() {
                Ok(Some(entry)) => each(&entry.name, parse_segment_name(&entry.name)),
                Ok(None) => return Ok(()),
                Err(ErrorCode::IllegalByteSequence) if skipped < 4096 => skipped += 1,
                Err(code) => return Err(wasi_error("read-directory-entry", code)),
            }
        }
    }

    /// Runs `f` on the open descriptor of segment `id`, opening it first if needed.
    fn with_segment<R>(
        &self,
        id: SegmentId,
        f: impl FnOnce(&Descriptor) -> Result<R, WasiError>,
    ) -> Result<R, WasiError> {
        let mut open = self.open.borrow_mut();
        if !open.contains_key(&id) {
            let name = SegmentName::new(id);
            let file = self
                .dir
                .open_at(
                    PathFlags::empty(),
                    name.as_str(),
                    OpenFlags::empty(),
                    DescriptorFlags::READ | DescriptorFlags::WRITE,
                )
                .map_err(|code| wasi_error("open-at", code))?;
            make_room(&mut open, &self.unsynced);
            open.insert(id, file);
        }
        match open.get(&id) {
            Some(file) => f(file),
            None => Err(WasiError::new("open-at", StorageErrorKind::Io, "cache")),
        }
    }

    /// Reads what the host has stored of segment `id` (not the buffer).
    fn read_stored(&self, id: SegmentId, offset: u64, buf: &mut [u8]) -> Result<usize, WasiError> {
        self.with_segment(id, |file| {
            let mut done = 0;
            while done < buf.len() {
                let want = (buf.len() - done).min(CHUNK);
                let (bytes, end) = file
                    .read(want as u64, offset + done as u64)
                    .map_err(|code| wasi_error("read", code))?;
                // A host that returns more than asked would overrun `buf`: refuse it.
                let got = buf.get_mut(done..done + bytes.len()).ok_or(WasiError::new(
                    "read",
                    StorageErrorKind::Io,
                    "overlong read",
                ))?;
                got.copy_from_slice(&bytes);
                done += bytes.len();
                if end {
                    break;
                }
                // Core takes a short count for the end of the segment (recovery would cut
                // what follows): an empty read that is not at the end is an error, not that.
                if bytes.is_empty() {
                    return Err(WasiError::new(
                        "read",
                        StorageErrorKind::Io,
                        "empty read before the end of the file",
                    ));
                }
            }
            Ok(done)
        })
    }

    /// Hands the buffered bytes to the host (they stay volatile: no sync). On failure they
    /// are dropped: the call that fails reports them lost.
    fn flush(&mut self) -> Result<(), WasiError> {
        let handed = self.hand_over();
        if handed.is_err() {
            self.pending = None;
        }
        handed
    }

    /// Hands the buffered bytes to the host like [`WasiStorage::flush`], but keeps them
    /// buffered if that fails (writing them again later rewrites the same bytes).
    fn hand_over(&mut self) -> Result<(), WasiError> {
        let Some(p) = self.pending.take() else {
            return Ok(());
        };
        self.unsynced.insert(p.id);
        let written = self.with_segment(p.id, |file| write_at(file, p.offset, &p.bytes));
        if written.is_err() {
            self.pending = Some(p);
        }
        written
    }

    /// Flushes the buffer if it holds bytes of segment `id`.
    fn flush_if(&mut self, id: SegmentId) -> Result<(), WasiError> {
        if self.pending.as_ref().is_some_and(|p| p.id == id) {
            self.flush()?;
        }
        Ok(())
    }

    /// The buffered bytes of segment `id`, if any, and where they start.
    fn pending_of(&self, id: SegmentId) -> Option<&Pending> {
        self.pending.as_ref().filter(|p| p.id == id)
    }
}

impl Drop for WasiStorage {
    fn drop(&mut self) {
        // Best effort, like a process exit: the bytes were never reported durable.
        let _ = self.flush();
    }
}

impl Storage for WasiStorage {
    type Error = WasiError;

    fn list(&self, each: &mut dyn FnMut(SegmentId)) -> Result<(), WasiError> {
        self.walk(&mut |_, segment| {
            if let Some(id) = segment {
                each(id);
            }
        })
    }

    fn create(&mut self, id: SegmentId) -> Result<(), WasiError> {
        self.before_change()?;
        let name = SegmentName::new(id);
        let file = self
            .dir
            .open_at(
                PathFlags::empty(),
                name.as_str(),
                OpenFlags::CREATE | OpenFlags::EXCLUSIVE,
                DescriptorFlags::READ | DescriptorFlags::WRITE,
            )
            .map_err(|code| wasi_error("open-at", code))?;
        let mut open = self.open.borrow_mut();
        make_room(&mut open, &self.unsynced);
        open.insert(id, file);
        Ok(())
    }

    fn remove(&mut self, id: SegmentId) -> Result<(), WasiError> {
        self.before_change()?;
        if self.pending_of(id).is_some() {
            self.pending = None;
        }
        // Close first: some hosts refuse to unlink an open file.
        self.open.borrow_mut().remove(&id);
        self.unsynced.remove(&id);
        self.dir
            .unlink_file_at(SegmentName::new(id).as_str())
            .map_err(|code| wasi_error("unlink-file-at", code))
    }

    fn len(&self, id: SegmentId) -> Result<u64, WasiError> {
        let stored = self.with_segment(id, |file| {
            file.stat()
                .map(|stat| stat.size)
                .map_err(|code| wasi_error("stat", code))
        })?;
        Ok(self.pending_of(id).map_or(stored, |p| stored.max(p.end())))
    }

    fn read(&self, id: SegmentId, offset: u64, buf: &mut [u8]) -> Result<usize, WasiError> {
        // No segment reaches `u64::MAX`: a read whose end would pass it is cut there, rather than
        // overflowing `offset + len` (a panic, or a wrapped end that took the buffered path and
        // indexed far out of the buffer).
        let room = usize::try_from(u64::MAX - offset).unwrap_or(usize::MAX);
        let fit = buf.len().min(room);
        let buf = &mut buf[..fit];
        let end = offset + buf.len() as u64;
        if let Some(p) = self
            .pending_of(id)
            .filter(|p| p.offset <= offset && end <= p.end())
        {
            // Wholly buffered: no call to the host.
            let from = (offset - p.offset) as usize;
            buf.copy_from_slice(&p.bytes[from..from + buf.len()]);
            return Ok(buf.len());
        }
        let stored = self.read_stored(id, offset, buf)?;
        // Reads must see buffered writes: lay the buffer over what the host returned. The buffer
        // starts at or before the stored end (writes never leave a gap), so the result has none.
        let Some(p) = self.pending_of(id) else {
            return Ok(stored);
        };
        let start = offset;
        let (lo, hi) = (start.max(p.offset), end.min(p.end()));
        if lo >= hi {
            return Ok(stored);
        }
        buf[(lo - start) as usize..(hi - start) as usize]
            .copy_from_slice(&p.bytes[(lo - p.offset) as usize..(hi - p.offset) as usize]);
        Ok(stored.max((hi - start) as usize))
    }

    fn write(&mut self, id: SegmentId, offset: u64, data: &[u8]) -> Result<(), WasiError> {
        self.before_change()?;
        if self.pending.as_ref().is_some_and(|p| p.id != id) && self.hand_over().is_err() {
            // Another segment's buffered bytes could not be handed to the host. That is their
            // segment's failure, not this write's: returned here, core would report it against
            // `id` (and poison the log naming `id`). They stay buffered (reads still see them)
            // and fail again where their own segment is named: its `sync` (which core makes
            // before anything written after them is acknowledged), its `truncate`, or a write
            // to it that fills the buffer. This write goes straight through.
            self.unsynced.insert(id);
            return self.with_segment(id, |file| write_at(file, offset, data));
        }
        match &mut self.pending {
            Some(p) if p.id == id && p.end() == offset => p.bytes.extend_from_slice(data),
            _ => {
                self.flush()?;
                if data.len() >= self.buffer_limit {
                    self.unsynced.insert(id);
                    return self.with_segment(id, |file| write_at(file, offset, data));
                }
                // Open it now, so a missing segment fails this write rather than a later flush.
                self.with_segment(id, |_| Ok(()))?;
                let mut bytes = Vec::with_capacity(self.buffer_limit);
                bytes.extend_from_slice(data);
                self.pending = Some(Pending { id, offset, bytes });
            }
        }
        if self
            .pending
            .as_ref()
            .is_some_and(|p| p.bytes.len() >= self.buffer_limit)
        {
            self.flush()?;
        }
        Ok(())
    }

    fn truncate(&mut self, id: SegmentId, len: u64) -> Result<(), WasiError> {
        self.before_change()?;
        self.flush_if(id)?;
        self.unsynced.insert(id);
        self.with_segment(id, |file| {
            file.set_size(len)
                .map_err(|code| wasi_error("set-size", code))
        })
    }

    fn sync(&mut self, id: SegmentId) -> Result<(), WasiError> {
        self.flush_if(id)?;
        self.with_segment(id, |file| {
            file.sync_data()
                .map_err(|code| wasi_error("sync-data", code))
        })?;
        self.unsynced.remove(&id);
        Ok(())
    }

    fn sync_dir(&mut self) -> Result<(), WasiError> {
        self.dir.sync().map_err(|code| wasi_error("sync", code))
    }

    /// Zero-fills the segment from its stored end to `len` (at most 8 MiB of it) and syncs, so
    /// that appends overwrite allocated blocks inside the file and a later `sync-data` has no
    /// size change to commit. WASI has no `fallocate`; zeros after the last record are clean for
    /// recovery (`docs/FORMAT.md`).
    fn reserve(&mut self, id: SegmentId, len: u64) -> Result<(), WasiError> {
        self.flush_if(id)?;
        let have = self.len(id)?;
        let want = len.min(ZERO_FILL);
        if have >= want {
            return Ok(());
        }
        // Zeros change the segment's length: the marker goes first, as for every change
        // (today a `create` always came first and removed it; this does not rely on it).
        self.before_change()?;
        let zeros = vec![0u8; CHUNK];
        self.unsynced.insert(id);
        self.with_segment(id, |file| {
            let mut at = have;
            while at < want {
                let n = (want - at).min(CHUNK as u64) as usize;
                write_at(file, at, &zeros[..n])?;
                at += n as u64;
            }
            file.sync_data()
                .map_err(|code| wasi_error("sync-data", code))
        })
    }
}

/// Makes room in the descriptor cache for one more: closes the lowest-id segment's descriptor
/// (the tail, which sees the traffic, has the highest id) among those with nothing unsynced. A
/// descriptor with unsynced writes stays open however many there are (see
/// `WasiStorage::unsynced`); they are few: the active segment, and predecessors an early
/// rotation left unsynced until the next sync.
fn make_room<D>(open: &mut BTreeMap<SegmentId, D>, unsynced: &BTreeSet<SegmentId>) {
    if open.len() < OPEN_SEGMENTS {
        return;
    }
    if let Some(id) = open.keys().copied().find(|id| !unsynced.contains(id)) {
        open.remove(&id);
    }
}

/// The preopened directory the host published under `guest_path`.
fn preopen(guest_path: &str) -> Result<Descriptor, WasiError> {
    get_directories()
        .into_iter()
        .find(|(_, path)| path == guest_path)
        .map(|(dir, _)| dir)
        .ok_or(WasiError::new(
            "preopens",
            StorageErrorKind::NotFound,
            "no such preopen",
        ))
}

impl DirHandle for Descriptor {
    fn create_dir(&self, name: &str) -> Result<(), WasiError> {
        match self.create_directory_at(name) {
            Ok(()) | Err(ErrorCode::Exist) => Ok(()),
            Err(code) => Err(wasi_error("create-directory-at", code)),
        }
    }

    fn open_dir(&self, name: &str) -> Result<Self, WasiError> {
        self.open_at(
            PathFlags::empty(),
            name,
            OpenFlags::DIRECTORY,
            DescriptorFlags::READ | DescriptorFlags::MUTATE_DIRECTORY,
        )
        .map_err(|code| wasi_error("open-at", code))
    }

    fn sync(&self) -> Result<(), WasiError> {
        Descriptor::sync(self).map_err(|code| wasi_error("sync", code))
    }
}

/// Writes all of `data` at `offset`, in chunks of at most [`CHUNK`].
fn write_at(file: &Descriptor, offset: u64, data: &[u8]) -> Result<(), WasiError> {
    let mut done = 0;
    while done < data.len() {
        let end = (done + CHUNK).min(data.len());
        let wrote = file
            .write(&data[done..end], offset + done as u64)
            .map_err(|code| wasi_error("write", code))?;
        if wrote == 0 {
            return Err(WasiError::new(
                "write",
                StorageErrorKind::ShortWrite,
                "wrote 0 bytes",
            ));
        }
        done += usize::try_from(wrote).unwrap_or(usize::MAX).min(end - done);
    }
    Ok(())
}

/// Wraps a WASI error code from operation `op`.
fn wasi_error(op: &'static str, code: ErrorCode) -> WasiError {
    WasiError::from_code(op, code.name())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_never_closes_a_descriptor_with_unsynced_writes() {
        let mut open: BTreeMap<SegmentId, ()> =
            (0..OPEN_SEGMENTS as u64).map(|id| (id, ())).collect();
        // Segments 0 and 1 hold unsynced writes: 2 is the one closed.
        let unsynced: BTreeSet<SegmentId> = [0, 1].into_iter().collect();
        make_room(&mut open, &unsynced);
        assert!(open.contains_key(&0) && open.contains_key(&1) && !open.contains_key(&2));
        assert_eq!(open.len(), OPEN_SEGMENTS - 1);
        // Below the limit nothing is closed.
        make_room(&mut open, &unsynced);
        assert_eq!(open.len(), OPEN_SEGMENTS - 1);
        // Every descriptor unsynced: none is closed, the cache grows past its limit.
        open.insert(2, ());
        let all: BTreeSet<SegmentId> = open.keys().copied().collect();
        make_room(&mut open, &all);
        assert_eq!(open.len(), OPEN_SEGMENTS);
        // With nothing unsynced the oldest goes, as before.
        make_room(&mut open, &BTreeSet::new());
        assert!(!open.contains_key(&0));
    }
}
