//! Preallocation and spare segment files, so a rotation does not wait for file creation and
//! block allocation.
//!
//! A spare is created as `{id:020}.spare` (never a segment name, so recovery never reads it),
//! **filled with zeros** to the segment size, synced, and the directory synced; `create` links it
//! under the segment name. Zeros never validate as a record (every header checksum is salted,
//! and a zero tail is "clean" in the recovery table), so the spare holds nothing that could be
//! read back as data.
//!
//! Where the file system offers to make the zeros itself (`FsFile::write_zeroes`:
//! `fallocate(FALLOC_FL_WRITE_ZEROES)`, Linux 6.17+ on a device that zeroes by unmapping, such
//! as NVMe with Write Zeroes and deallocate), it is asked to, and no zero crosses the page cache
//! or the disk's queue; the blocks come out written, as if the zeros had been. Elsewhere they are
//! written (`Tuning::write_zeroes` turns the asking off).
//!
//! Why zeros rather than `fallocate`: appends then overwrite blocks that are already allocated
//! and written, inside the file's length, so `fdatasync` has only data to flush. When an append
//! grows the file or converts an unwritten extent, `fdatasync` must also commit file-system
//! metadata (on ext4 a journal commit), which measured 2-4x slower per sync here.
//!
//! That pays only while syncs are frequent and small: a log that writes in bulk (no syncs, or
//! a sync per 64 KiB or more, `Tuning::zero_fill_max_bytes_per_sync`) would write every byte
//! twice for a saving the disk's time spent on the zeros outweighs. So the storage judges each
//! sealed segment (`FileStorage::judge_usage`) and gives zeros up within a segment as soon as
//! its writes exceed the threshold per sync (a new or reopened log starts out zero-filling,
//! with no history to judge); while the log writes in bulk its spares are only preallocated
//! (`fallocate(KEEP_SIZE)`), empty, synced and linked the same way: a reader meets the end of
//! the file right after the last record.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use walden_core::{SegmentId, SegmentName};

use crate::filesystem::{FileSystem, FsFile, JobStep, Mutation, OpenMode, Worker};

const SPARE_SUFFIX: &str = ".spare";

/// The file name of the spare for segment `id`.
pub(crate) fn spare_name(id: SegmentId) -> String {
    format!("{id:020}{SPARE_SUFFIX}")
}

/// Parses a spare file name.
pub(crate) fn parse_spare_name(name: &str) -> Option<SegmentId> {
    let digits = name.strip_suffix(SPARE_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Writes zeros over `[from, to)` (a fill chunk at a time), so those blocks are allocated,
/// written, and inside the file's length.
pub(crate) fn zero_fill(f: &impl FsFile, from: u64, to: u64, chunk: u64) -> io::Result<()> {
    zero_fill_from(
        f,
        from,
        to,
        &vec![0u8; chunk.min(to.saturating_sub(from)) as usize],
    )
}

/// [`zero_fill`] writing from `zeros` (all zero, a chunk long), which a caller filling many
/// ranges allocates once.
pub(crate) fn zero_fill_from(f: &impl FsFile, from: u64, to: u64, zeros: &[u8]) -> io::Result<()> {
    let chunk = zeros.len().max(1) as u64;
    let mut at = from;
    while at < to {
        let n = (to - at).min(chunk);
        f.write_all_at(&zeros[..n as usize], at)?;
        at += n;
    }
    Ok(())
}

/// Removes spare files left by an earlier process. Returns whether any was removed.
pub(crate) fn remove_leftovers<F: FileSystem>(fs: &F, dir: &Path) -> io::Result<bool> {
    let mut removed = false;
    for entry in fs.read_dir(dir)? {
        if entry.name.to_str().and_then(parse_spare_name).is_some()
            && entry.kind == crate::filesystem::FileKind::File
        {
            fs.remove_file(&dir.join(&entry.name))?;
            removed = true;
        }
    }
    Ok(removed)
}

/// A prepared spare file.
pub(crate) struct Spare<F: FileSystem> {
    path: PathBuf,
    file: F::File,
}

impl<F: FileSystem> Spare<F> {
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn into_file(self) -> F::File {
        self.file
    }
}

struct SlotState<F: FileSystem> {
    ready: Option<Spare<F>>,
    /// The id being prepared by a background job.
    preparing: Option<SegmentId>,
}

/// Where the background job leaves the spare for `FileStorage::create` to pick up.
pub(crate) struct SpareSlot<F: FileSystem> {
    state: Mutex<SlotState<F>>,
    worker: Mutex<Option<Worker>>,
}

impl<F: FileSystem> Default for SpareSlot<F> {
    fn default() -> Self {
        Self {
            state: Mutex::new(SlotState {
                ready: None,
                preparing: None,
            }),
            worker: Mutex::new(None),
        }
    }
}

impl<F: FileSystem> SpareSlot<F> {
    fn lock(&self) -> MutexGuard<'_, SlotState<F>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for a background preparation and removes an unused spare, so nothing of ours
    /// appears in the directory after the storage (and its lock) is gone.
    pub(crate) fn shutdown(&self, fs: &F) {
        Worker::join_slot(&self.worker);
        if let Some(spare) = self.lock().ready.take() {
            let _ = fs.remove_file(&spare.path);
        }
    }

    /// The spare, if one is ready. It serves whichever segment is created next: a spare holds
    /// no id (zeros, or nothing, to the segment size), only its temporary name does. When a
    /// rotation overtakes the job (a log's first spare is zero-filled, 64 MiB, while the
    /// writer may fill its first segment faster), the segment is created without one and the
    /// spare serves the next rotation, instead of being thrown away there: its removal, a
    /// 64 MiB discard on file systems that discard freed blocks, held up the log's syncs for
    /// 13-16 ms (`bulk batch1k`, the second rotation).
    pub(crate) fn take(&self) -> Option<Spare<F>> {
        self.lock().ready.take()
    }
}

/// Starts a job that prepares a spare (named for `id`) unless one is ready or being prepared.
pub(crate) fn prepare_in_background<F: FileSystem>(
    fs: &F,
    slot: &Arc<SpareSlot<F>>,
    dir: &Path,
    id: SegmentId,
    len: u64,
    zero: bool,
) {
    {
        let mut st = slot.lock();
        if st.preparing.is_some() || st.ready.is_some() {
            return;
        }
        st.preparing = Some(id);
    }
    let shared = Arc::clone(slot);
    let (fs2, dir) = (fs.clone(), dir.to_path_buf());
    let mut once = Some(move || {
        let prepared = prepare(&fs2, &dir, id, len, zero);
        let mut st = shared.lock();
        st.preparing = None;
        match prepared {
            Ok(spare) => {
                if let Some(old) = st.ready.replace(spare) {
                    let _ = fs2.remove_file(&old.path);
                }
            }
            Err(e) => {
                tracing::debug!(segment = id, error = %e, "could not prepare a spare segment")
            }
        }
    });
    let job = Box::new(move || {
        if let Some(prepare) = once.take() {
            prepare();
        }
        JobStep::Done
    });
    match fs.spawn("walden-spare", job) {
        // A previous worker has finished (only one prepares at a time); reap it.
        Ok(worker) => worker.replace_in(&slot.worker),
        Err(_) => slot.lock().preparing = None,
    }
}

fn prepare<F: FileSystem>(
    fs: &F,
    dir: &Path,
    id: SegmentId,
    len: u64,
    zero: bool,
) -> io::Result<Spare<F>> {
    let path = dir.join(spare_name(id));
    let file = fs.open(&path, OpenMode::CreateNew)?;
    let made = (|| {
        let mut from = 0;
        if fs.mutation() == Some(Mutation::StaleSpare) {
            from = copy_previous(fs, dir, id, &file, len)?;
        }
        // Zeros the device makes by unmapping cost the disk no writes (`FsFile::write_zeroes`);
        // where that is not offered (most disks), they are written.
        let offloaded = zero
            && fs.tuning().write_zeroes
            && file
                .write_zeroes(from, len.saturating_sub(from))
                .unwrap_or(false);
        if zero && !offloaded {
            // Written back `spare_write_back` bytes at a time, and synced once, at the end.
            // Written whole and synced once, the zeros were one write-back of the segment's
            // size (64 MiB) queued ahead of the log's own `fdatasync`s, which then waited tens
            // of milliseconds (p999 ~20 ms at 100 KiB per sync, against ~1 ms without spares).
            // Synced every megabyte, each sync (a megabyte of data, a journal commit for the
            // file's growth, a cache flush) still held up the few `fdatasync`s behind it: the
            // slowest 1% of 128 KiB batches took 4-15x the median (BENCHMARKS.md). Written back
            // in 256 KiB steps without a flush or a commit, they take about 3x.
            let step = fs.tuning().spare_write_back.max(1);
            // One buffer for every step (allocated and cleared per step, it was a sixth of
            // the instructions of a no-sync append loop, on this thread).
            let zeros = vec![0u8; step.min(len.saturating_sub(from)) as usize];
            let mut at = from;
            while at < len {
                let to = len.min(at.saturating_add(step));
                zero_fill_from(&file, at, to, &zeros)?;
                // Pacing only (see `FsFile::write_back`); where it is not available (or fails),
                // a sync per step, as before.
                if file.write_back(at, to - at).is_err() {
                    file.sync_data()?;
                }
                at = to;
            }
        } else if !zero {
            // Bulk writing (see `FileStorage::judge_usage`): reserve the blocks only. The file
            // stays as long as what was copied into it (nothing, unless broken), so a reader
            // of the segment meets the end of the file after the last record.
            let _ = file.allocate(len);
        }
        file.sync_all()?;
        fs.open_dir(dir)?.sync_all()
    })();
    match made {
        Ok(()) => Ok(Spare { path, file }),
        Err(e) => {
            let _ = fs.remove_file(&path);
            Err(e)
        }
    }
}

/// [`Mutation::StaleSpare`]: copies segment `id - 1` into the spare, as a careless recycler
/// would. Returns how many bytes it copied.
fn copy_previous<F: FileSystem>(
    fs: &F,
    dir: &Path,
    id: SegmentId,
    spare: &F::File,
    len: u64,
) -> io::Result<u64> {
    let Some(previous) = id.checked_sub(1) else {
        return Ok(0);
    };
    let Ok(old) = fs.open(
        &dir.join(SegmentName::new(previous).as_str()),
        OpenMode::Read,
    ) else {
        return Ok(0);
    };
    let mut buf = vec![0u8; len as usize];
    let n = crate::storage::read_at(&old, 0, &mut buf)?;
    spare.write_all_at(&buf[..n], 0)?;
    Ok(n as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spare_names_are_never_segment_names() {
        let name = spare_name(7);
        assert_eq!(parse_spare_name(&name), Some(7));
        assert_eq!(walden_core::parse_segment_name(&name), None);
        assert_eq!(parse_spare_name("00000000000000000007.wal"), None);
        assert_eq!(parse_spare_name("7.spare"), None);
    }
}
