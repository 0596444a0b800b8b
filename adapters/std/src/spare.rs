//! Preallocation and spare segment files, so a rotation does not wait for file creation and
//! block allocation.
//!
//! A spare is created as `{id:020}.spare` (never a segment name, so recovery never reads it),
//! **filled with zeros** to the segment size, synced, and the directory synced; `create` links it
//! under the segment name. Zeros never validate as a record (every header checksum is salted,
//! and a zero tail is "clean" in the recovery table), so the spare holds nothing that could be
//! read back as data.
//!
//! Why zeros rather than `fallocate`: appends then overwrite blocks that are already allocated
//! and written, inside the file's length, so `fdatasync` has only data to flush. When an append
//! grows the file or converts an unwritten extent, `fdatasync` must also commit file-system
//! metadata (on ext4 a journal commit), which measured 2-4x slower per sync here.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use walden_core::SegmentId;

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

/// Allocates blocks for `len` bytes without changing the file's length (so the allocated space
/// is never visible as file content). Unsupported file systems return an error, ignored by the
/// callers: preallocation is only a hint.
pub(crate) fn preallocate(f: &File, len: u64) -> io::Result<()> {
    rustix::fs::fallocate(f, rustix::fs::FallocateFlags::KEEP_SIZE, 0, len)?;
    Ok(())
}

/// Writes zeros over `[from, to)` (1 MiB at a time), so those blocks are allocated, written,
/// and inside the file's length.
pub(crate) fn zero_fill(f: &File, from: u64, to: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    const CHUNK: u64 = 1 << 20;
    let zeros = vec![0u8; CHUNK as usize];
    let mut at = from;
    while at < to {
        let n = (to - at).min(CHUNK);
        f.write_all_at(&zeros[..n as usize], at)?;
        at += n;
    }
    Ok(())
}

/// Removes spare files left by an earlier process. Returns whether any was removed.
pub(crate) fn remove_leftovers(dir: &Path) -> io::Result<bool> {
    let mut removed = false;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry
            .file_name()
            .to_str()
            .and_then(parse_spare_name)
            .is_some()
            && entry.file_type()?.is_file()
        {
            fs::remove_file(entry.path())?;
            removed = true;
        }
    }
    Ok(removed)
}

/// A prepared spare file.
pub(crate) struct Spare {
    id: SegmentId,
    path: PathBuf,
    file: File,
}

impl Spare {
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn into_file(self) -> File {
        self.file
    }
}

#[derive(Default)]
struct SlotState {
    ready: Option<Spare>,
    /// The id being prepared by a background thread.
    preparing: Option<SegmentId>,
}

/// Where the background thread leaves the spare for `FileStorage::create` to pick up.
#[derive(Default)]
pub(crate) struct SpareSlot(Mutex<SlotState>, Mutex<Option<std::thread::JoinHandle<()>>>);

impl SpareSlot {
    fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for a background preparation and removes an unused spare, so nothing of ours
    /// appears in the directory after the storage (and its lock) is gone.
    pub(crate) fn shutdown(&self) {
        let worker = self.1.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(w) = worker {
            let _ = w.join();
        }
        if let Some(spare) = self.lock().ready.take() {
            let _ = fs::remove_file(spare.path);
        }
    }

    /// The spare for `id`, if one is ready. A spare for any other id is stale and removed.
    pub(crate) fn take(&self, id: SegmentId) -> Option<Spare> {
        let spare = self.lock().ready.take()?;
        if spare.id == id {
            return Some(spare);
        }
        let _ = fs::remove_file(&spare.path);
        None
    }
}

/// Starts a thread that prepares the spare for `id` unless one is ready or being prepared.
pub(crate) fn prepare_in_background(
    slot: &std::sync::Arc<SpareSlot>,
    dir: &Path,
    id: SegmentId,
    len: u64,
) {
    {
        let mut st = slot.lock();
        if st.preparing.is_some() || st.ready.as_ref().is_some_and(|s| s.id == id) {
            return;
        }
        st.preparing = Some(id);
    }
    let shared = std::sync::Arc::clone(slot);
    let dir = dir.to_path_buf();
    let spawned = std::thread::Builder::new()
        .name("walden-spare".into())
        .spawn(move || {
            let prepared = prepare(&dir, id, len);
            let mut st = shared.lock();
            st.preparing = None;
            match prepared {
                Ok(spare) => {
                    if let Some(old) = st.ready.replace(spare) {
                        let _ = fs::remove_file(old.path);
                    }
                }
                Err(e) => {
                    tracing::debug!(segment = id, error = %e, "could not prepare a spare segment")
                }
            }
        });
    match spawned {
        Ok(handle) => {
            let previous = slot
                .1
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .replace(handle);
            // A previous worker has finished (only one prepares at a time); reap it.
            if let Some(p) = previous {
                let _ = p.join();
            }
        }
        Err(_) => slot.lock().preparing = None,
    }
}

fn prepare(dir: &Path, id: SegmentId, len: u64) -> io::Result<Spare> {
    let path = dir.join(spare_name(id));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    let made = (|| {
        zero_fill(&file, 0, len)?;
        file.sync_all()?;
        File::open(dir)?.sync_all()
    })();
    match made {
        Ok(()) => Ok(Spare { id, path, file }),
        Err(e) => {
            let _ = fs::remove_file(&path);
            Err(e)
        }
    }
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
