use std::collections::BTreeMap;
use std::vec::Vec;

use crate::{SegmentId, Storage, StorageError, StorageErrorKind};

/// The simplest storage: every write is immediately "durable"; failures on demand.
#[derive(Clone, Default)]
pub(crate) struct Mem {
    pub(crate) files: BTreeMap<SegmentId, Vec<u8>>,
    pub(crate) fail_sync: bool,
    pub(crate) fail_write: bool,
    pub(crate) syncs: u32,
    /// Every segment synced, in order.
    pub(crate) synced: Vec<SegmentId>,
    /// Every `reserve` hint, in order.
    pub(crate) reserved: Vec<(SegmentId, u64)>,
    pub(crate) fail_reserve: bool,
    /// List ids out of order, each twice (as a directory listing may), not ascending.
    pub(crate) scrambled_list: bool,
    /// Bytes read so far (what a scan costs).
    pub(crate) bytes_read: core::cell::Cell<u64>,
    pub(crate) fail_read: bool,
    /// What one segment can hold, as on media whose segments cannot grow (`None`: files).
    pub(crate) capacity: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MemError(pub(crate) StorageErrorKind);

impl core::fmt::Display for MemError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.0.fmt(f)
    }
}

impl StorageError for MemError {
    fn kind(&self) -> StorageErrorKind {
        self.0
    }
}

impl Mem {
    fn file(&self, id: SegmentId) -> Result<&Vec<u8>, MemError> {
        self.files
            .get(&id)
            .ok_or(MemError(StorageErrorKind::NotFound))
    }

    fn file_mut(&mut self, id: SegmentId) -> Result<&mut Vec<u8>, MemError> {
        self.files
            .get_mut(&id)
            .ok_or(MemError(StorageErrorKind::NotFound))
    }
}

impl Storage for Mem {
    type Error = MemError;

    fn list(&self, each: &mut dyn FnMut(SegmentId)) -> Result<(), MemError> {
        if self.scrambled_list {
            // Odd ids descending, then every id ascending: each id at least once out of order.
            self.files
                .keys()
                .rev()
                .filter(|k| *k % 2 == 1)
                .for_each(|k| each(*k));
        }
        self.files.keys().for_each(|k| each(*k));
        Ok(())
    }
    fn create(&mut self, id: SegmentId) -> Result<(), MemError> {
        if self.files.insert(id, Vec::new()).is_some() {
            return Err(MemError(StorageErrorKind::AlreadyExists));
        }
        Ok(())
    }
    fn remove(&mut self, id: SegmentId) -> Result<(), MemError> {
        self.files
            .remove(&id)
            .map(|_| ())
            .ok_or(MemError(StorageErrorKind::NotFound))
    }
    fn len(&self, id: SegmentId) -> Result<u64, MemError> {
        Ok(self.file(id)?.len() as u64)
    }
    fn read(&self, id: SegmentId, offset: u64, buf: &mut [u8]) -> Result<usize, MemError> {
        if self.fail_read {
            return Err(MemError(StorageErrorKind::Io));
        }
        let f = self.file(id)?;
        let start = (offset as usize).min(f.len());
        let n = buf.len().min(f.len() - start);
        buf[..n].copy_from_slice(&f[start..start + n]);
        self.bytes_read.set(self.bytes_read.get() + n as u64);
        Ok(n)
    }
    fn write(&mut self, id: SegmentId, offset: u64, data: &[u8]) -> Result<(), MemError> {
        if self.fail_write {
            return Err(MemError(StorageErrorKind::NoSpace));
        }
        let f = self.file_mut(id)?;
        let end = offset as usize + data.len();
        if f.len() < end {
            f.resize(end, 0);
        }
        f[offset as usize..end].copy_from_slice(data);
        Ok(())
    }
    fn truncate(&mut self, id: SegmentId, len: u64) -> Result<(), MemError> {
        self.file_mut(id)?.truncate(len as usize);
        Ok(())
    }
    fn sync(&mut self, id: SegmentId) -> Result<(), MemError> {
        if self.fail_sync {
            return Err(MemError(StorageErrorKind::Io));
        }
        self.syncs += 1;
        self.synced.push(id);
        Ok(())
    }
    fn sync_dir(&mut self) -> Result<(), MemError> {
        Ok(())
    }
    fn reserve(&mut self, id: SegmentId, len: u64) -> Result<(), MemError> {
        if self.fail_reserve {
            return Err(MemError(StorageErrorKind::NoSpace));
        }
        self.reserved.push((id, len));
        Ok(())
    }
    fn segment_capacity(&self) -> Option<u64> {
        self.capacity
    }
}

/// A borrowed `Mem`, so a test can look at the storage after an open that failed (an
/// `OpenError` does not give the storage back).
impl Storage for &mut Mem {
    type Error = MemError;

    fn list(&self, each: &mut dyn FnMut(SegmentId)) -> Result<(), MemError> {
        (**self).list(each)
    }
    fn create(&mut self, id: SegmentId) -> Result<(), MemError> {
        (**self).create(id)
    }
    fn remove(&mut self, id: SegmentId) -> Result<(), MemError> {
        (**self).remove(id)
    }
    fn len(&self, id: SegmentId) -> Result<u64, MemError> {
        (**self).len(id)
    }
    fn read(&self, id: SegmentId, offset: u64, buf: &mut [u8]) -> Result<usize, MemError> {
        (**self).read(id, offset, buf)
    }
    fn write(&mut self, id: SegmentId, offset: u64, data: &[u8]) -> Result<(), MemError> {
        (**self).write(id, offset, data)
    }
    fn truncate(&mut self, id: SegmentId, len: u64) -> Result<(), MemError> {
        (**self).truncate(id, len)
    }
    fn sync(&mut self, id: SegmentId) -> Result<(), MemError> {
        (**self).sync(id)
    }
    fn sync_dir(&mut self) -> Result<(), MemError> {
        (**self).sync_dir()
    }
    fn reserve(&mut self, id: SegmentId, len: u64) -> Result<(), MemError> {
        (**self).reserve(id, len)
    }
    fn segment_capacity(&self) -> Option<u64> {
        (**self).segment_capacity()
    }
}
