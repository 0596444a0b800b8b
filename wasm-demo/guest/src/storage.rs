//! The guest's storage: `WasiStorage`, optionally with a deliberate bug for the crash loop to
//! catch.

use walden_core::{SegmentId, Storage, StorageErrorKind};
use walden_wasi::{WasiError, WasiStorage};
use wasi::filesystem::preopens::get_directories;
use wasi::filesystem::types::{DescriptorFlags, ErrorCode, OpenFlags, PathFlags};

/// Opens the log directory `dir` below the preopen `preopen` with `WasiStorage::open_dir`,
/// which creates it and syncs the preopen so the directory's own name is durable, unless
/// `skip_parent_sync` is set: then the directory is created and opened the same way but the
/// preopen is never synced, so a power cut can take the directory away with every record
/// acknowledged in it. The crash loop must catch that (`crash-loop --skip-parent-sync
/// --expect-violations`). The bug lives here, not behind a switch in the adapter.
pub fn open_log_dir(
    preopen: &str,
    dir: &str,
    skip_parent_sync: bool,
) -> Result<WasiStorage, WasiError> {
    if !skip_parent_sync {
        return WasiStorage::open_dir(preopen, dir);
    }
    let error = |op: &'static str, code: ErrorCode| WasiError::from_code(op, code.name());
    let (root, _) = get_directories()
        .into_iter()
        .find(|(_, path)| path == preopen)
        .ok_or(WasiError::new(
            "preopens",
            StorageErrorKind::NotFound,
            "no such preopen",
        ))?;
    match root.create_directory_at(dir) {
        Ok(()) | Err(ErrorCode::Exist) => {}
        Err(code) => return Err(error("create-directory-at", code)),
    }
    // The deliberate bug: no `root.sync()` here.
    let log = root
        .open_at(
            PathFlags::empty(),
            dir,
            OpenFlags::DIRECTORY,
            DescriptorFlags::READ | DescriptorFlags::MUTATE_DIRECTORY,
        )
        .map_err(|code| error("open-at", code))?;
    Ok(WasiStorage::new(log))
}

/// `WasiStorage`, passed through, unless `skip_dir_sync_after_create` is set: then the
/// directory sync that follows the creation of a segment does nothing, so the new segment's
/// name is not durable when the log starts acknowledging records in it. The crash loop must
/// catch that (`crash-loop --skip-dir-sync --expect-violations`).
pub struct DemoStorage {
    inner: WasiStorage,
    skip_dir_sync_after_create: bool,
    /// A segment was created and the directory has not been synced since.
    created: bool,
}

impl DemoStorage {
    pub fn new(inner: WasiStorage, skip_dir_sync_after_create: bool) -> Self {
        Self {
            inner,
            skip_dir_sync_after_create,
            created: false,
        }
    }
}

impl Storage for DemoStorage {
    type Error = WasiError;

    fn list(&self, each: &mut dyn FnMut(SegmentId)) -> Result<(), WasiError> {
        self.inner.list(each)
    }

    fn create(&mut self, id: SegmentId) -> Result<(), WasiError> {
        self.inner.create(id)?;
        self.created = true;
        Ok(())
    }

    fn remove(&mut self, id: SegmentId) -> Result<(), WasiError> {
        self.inner.remove(id)
    }

    fn len(&self, id: SegmentId) -> Result<u64, WasiError> {
        self.inner.len(id)
    }

    fn read(&self, id: SegmentId, offset: u64, buf: &mut [u8]) -> Result<usize, WasiError> {
        self.inner.read(id, offset, buf)
    }

    fn write(&mut self, id: SegmentId, offset: u64, data: &[u8]) -> Result<(), WasiError> {
        self.inner.write(id, offset, data)
    }

    fn truncate(&mut self, id: SegmentId, len: u64) -> Result<(), WasiError> {
        self.inner.truncate(id, len)
    }

    fn sync(&mut self, id: SegmentId) -> Result<(), WasiError> {
        self.inner.sync(id)
    }

    fn sync_dir(&mut self) -> Result<(), WasiError> {
        if core::mem::take(&mut self.created) && self.skip_dir_sync_after_create {
            // The deliberate bug: report the new segment's name durable without syncing.
            return Ok(());
        }
        self.inner.sync_dir()
    }

    fn reserve(&mut self, id: SegmentId, len: u64) -> Result<(), WasiError> {
        self.inner.reserve(id, len)
    }
}
