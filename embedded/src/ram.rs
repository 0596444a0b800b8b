//! A `Storage` over plain RAM arrays: the smallest medium, for the size program.

use walden_core::{SegmentId, Storage, StorageError, StorageErrorKind};

/// Segments the RAM storage holds at once (the log's table plus the two start slots).
const SLOTS: usize = 10;
/// Bytes per segment.
pub const SEGMENT: usize = 2048;

/// The RAM storage's only error: what went wrong, as a kind.
#[derive(Clone, Copy, Debug)]
pub struct RamError(pub StorageErrorKind);

impl core::fmt::Display for RamError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.0.as_str())
    }
}

impl StorageError for RamError {
    fn kind(&self) -> StorageErrorKind {
        self.0
    }
}

/// Up to `SLOTS` segments of `SEGMENT` bytes each.
pub struct RamStorage {
    ids: [Option<SegmentId>; SLOTS],
    lens: [usize; SLOTS],
    data: [[u8; SEGMENT]; SLOTS],
}

impl RamStorage {
    /// An empty storage.
    pub const fn new() -> Self {
        Self {
            ids: [None; SLOTS],
            lens: [0; SLOTS],
            data: [[0; SEGMENT]; SLOTS],
        }
    }

    fn slot(&self, id: SegmentId) -> Result<usize, RamError> {
        self.ids
            .iter()
            .position(|s| *s == Some(id))
            .ok_or(RamError(StorageErrorKind::NotFound))
    }
}

impl Storage for &mut RamStorage {
    type Error = RamError;

    fn list(&self, each: &mut dyn FnMut(SegmentId)) -> Result<(), RamError> {
        self.ids.iter().flatten().for_each(|id| each(*id));
        Ok(())
    }

    fn create(&mut self, id: SegmentId) -> Result<(), RamError> {
        if self.slot(id).is_ok() {
            return Err(RamError(StorageErrorKind::AlreadyExists));
        }
        let free = self.ids.iter().position(Option::is_none);
        let s = free.ok_or(RamError(StorageErrorKind::NoSpace))?;
        self.ids[s] = Some(id);
        self.lens[s] = 0;
        Ok(())
    }

    fn remove(&mut self, id: SegmentId) -> Result<(), RamError> {
        let s = self.slot(id)?;
        self.ids[s] = None;
        Ok(())
    }

    fn len(&self, id: SegmentId) -> Result<u64, RamError> {
        Ok(self.lens[self.slot(id)?] as u64)
    }

    fn read(&self, id: SegmentId, offset: u64, buf: &mut [u8]) -> Result<usize, RamError> {
        let s = self.slot(id)?;
        let from = (offset as usize).min(self.lens[s]);
        let n = buf.len().min(self.lens[s] - from);
        buf[..n].copy_from_slice(&self.data[s][from..from + n]);
        Ok(n)
    }

    fn write(&mut self, id: SegmentId, offset: u64, data: &[u8]) -> Result<(), RamError> {
        let s = self.slot(id)?;
        let at = offset as usize;
        let end = at + data.len();
        let target = self.data[s]
            .get_mut(at..end)
            .ok_or(RamError(StorageErrorKind::NoSpace))?;
        target.copy_from_slice(data);
        self.lens[s] = self.lens[s].max(end);
        Ok(())
    }

    fn truncate(&mut self, id: SegmentId, len: u64) -> Result<(), RamError> {
        let s = self.slot(id)?;
        self.lens[s] = self.lens[s].min(len as usize);
        self.data[s][self.lens[s]..].fill(0);
        Ok(())
    }

    fn sync(&mut self, _id: SegmentId) -> Result<(), RamError> {
        Ok(())
    }

    fn sync_dir(&mut self) -> Result<(), RamError> {
        Ok(())
    }
}
