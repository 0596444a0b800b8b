//! The guest's storage: `WasiStorage`, optionally with a deliberate bug for the crash loop to
//! catch.

use walden_core::{SegmentId, Storage};
use walden_wasi::{WasiError, WasiStorage};

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
