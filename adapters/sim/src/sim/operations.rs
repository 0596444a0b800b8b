//! The [`Storage`] methods of [`SimStorage`]: each is traced, may be hit by a scheduled fault,
//! and changes the volatile state while queueing what a crash must resolve.

use alloc::sync::Arc;

use walden_core::{SegmentId, Storage, StorageErrorKind};

use super::{DirEffect, SegmentFile, SimStorage};
use crate::effect::FileEffect;
use crate::error::SimError;
use crate::error::{injected, plain_failure, refused, to_index};
use crate::fault::FaultAction;
use crate::trace::Op;

impl Storage for SimStorage {
    type Error = SimError;

    fn list(&self, each: &mut dyn FnMut(SegmentId)) -> Result<(), SimError> {
        let op = Op::List;
        let (index, fault) = self.begin(op)?;
        let result = plain_failure(fault, index).map(|()| {
            for segment in self.volatile_dir.keys() {
                each(*segment);
            }
        });
        self.finish(index, op, result)
    }

    fn create(&mut self, segment: SegmentId) -> Result<(), SimError> {
        let op = Op::Create { segment };
        let (index, fault) = self.begin(op)?;
        let result = plain_failure(fault, index).and_then(|()| {
            if self.volatile_dir.contains_key(&segment) {
                return Err(refused(
                    StorageErrorKind::AlreadyExists,
                    index,
                    "segment exists",
                ));
            }
            let file = self.next_file;
            self.next_file += 1;
            self.files
                .insert(file, SegmentFile::new(segment, Arc::default()));
            self.volatile_dir.insert(segment, file);
            self.pending_dir.push(DirEffect::Create { segment, file });
            Ok(())
        });
        self.finish(index, op, result)
    }

    fn remove(&mut self, segment: SegmentId) -> Result<(), SimError> {
        let op = Op::Remove { segment };
        let (index, fault) = self.begin(op)?;
        let result = plain_failure(fault, index)
            .and_then(|()| self.file_id(segment, index))
            .map(|file| {
                self.volatile_dir.remove(&segment);
                self.pending_dir.push(DirEffect::Remove { segment, file });
            });
        self.finish(index, op, result)
    }

    fn len(&self, segment: SegmentId) -> Result<u64, SimError> {
        let op = Op::Len { segment };
        let (index, fault) = self.begin(op)?;
        let result = plain_failure(fault, index)
            .and_then(|()| self.file_id(segment, index))
            .map(|file| self.files[&file].volatile.len() as u64);
        self.finish(index, op, result)
    }

    fn read(&self, segment: SegmentId, offset: u64, buf: &mut [u8]) -> Result<usize, SimError> {
        let op = Op::Read {
            segment,
            offset,
            len: buf.len() as u64,
        };
        let (index, fault) = self.begin(op)?;
        let result = plain_failure(fault, index)
            .and_then(|()| self.file_id(segment, index))
            .map(|file| {
                let image = &self.files[&file].volatile;
                let start = usize::try_from(offset).map_or(image.len(), |o| o.min(image.len()));
                let count = buf.len().min(image.len() - start);
                buf[..count].copy_from_slice(&image[start..start + count]);
                count
            });
        self.finish(index, op, result)
    }

    fn write(&mut self, segment: SegmentId, offset: u64, data: &[u8]) -> Result<(), SimError> {
        let op = Op::Write {
            segment,
            offset,
            len: data.len() as u64,
        };
        let (index, fault) = self.begin(op)?;
        let result = self.write_volatile(index, fault, segment, offset, data);
        self.finish(index, op, result)
    }

    fn truncate(&mut self, segment: SegmentId, len: u64) -> Result<(), SimError> {
        let op = Op::Truncate { segment, len };
        let (index, fault) = self.begin(op)?;
        let result = plain_failure(fault, index)
            .and_then(|()| self.file_id(segment, index))
            .and_then(|file| {
                let len = to_index(len, index)?;
                let file = self.files.get_mut(&file).expect("linked file exists");
                if len > file.volatile.len() {
                    return Err(refused(StorageErrorKind::Io, index, "truncate would grow"));
                }
                Arc::make_mut(&mut file.volatile).truncate(len);
                file.pending.push(FileEffect::Truncate { len });
                Ok(())
            });
        self.finish(index, op, result)
    }

    fn sync(&mut self, segment: SegmentId) -> Result<(), SimError> {
        let op = Op::Sync { segment };
        let (index, fault) = self.begin(op)?;
        let result = self.file_id(segment, index).and_then(|file| match fault {
            Some(FaultAction::SyncLosesData) => {
                // The kernel marks the pages clean without writing them: the data is gone from
                // the medium's future but still in the cache, and the next sync has nothing to do.
                self.files
                    .get_mut(&file)
                    .expect("linked file exists")
                    .pending
                    .clear();
                Err(injected(
                    StorageErrorKind::Io,
                    index,
                    "sync failed, dirty data dropped",
                ))
            }
            other => plain_failure(other, index).map(|()| self.sync_file(file)),
        });
        self.finish(index, op, result)
    }

    fn sync_dir(&mut self) -> Result<(), SimError> {
        let op = Op::SyncDir;
        let (index, fault) = self.begin(op)?;
        let result = match fault {
            Some(FaultAction::SyncLosesData) => {
                self.pending_dir.clear();
                self.collect_unlinked_files();
                Err(injected(
                    StorageErrorKind::Io,
                    index,
                    "directory sync failed, entries dropped",
                ))
            }
            other => plain_failure(other, index).map(|()| self.sync_directory()),
        };
        self.finish(index, op, result)
    }

    fn reserve(&mut self, segment: SegmentId, len: u64) -> Result<(), SimError> {
        let op = Op::Reserve { segment, len };
        let (index, fault) = self.begin(op)?;
        let result =
            plain_failure(fault, index).and_then(|()| self.file_id(segment, index).map(drop));
        self.finish(index, op, result)
    }
}

impl SimStorage {
    fn write_volatile(
        &mut self,
        index: u64,
        fault: Option<FaultAction>,
        segment: SegmentId,
        offset: u64,
        data: &[u8],
    ) -> Result<(), SimError> {
        let (data, landing_shift, short) = match fault {
            Some(FaultAction::ShortWrite { kept }) => {
                let kept = usize::try_from(kept).map_or(data.len(), |k| k.min(data.len()));
                (&data[..kept], 0, true)
            }
            Some(FaultAction::Misdirect { shift }) => (data, shift, false),
            other => {
                plain_failure(other, index)?;
                (data, 0, false)
            }
        };
        let file = self.file_id(segment, index)?;
        let offset = to_index(offset, index)?;
        let file = self.files.get_mut(&file).expect("linked file exists");
        if offset > file.volatile.len() {
            return Err(refused(StorageErrorKind::Io, index, "write beyond the end"));
        }
        let end_before = file.volatile.len();
        let end = offset + data.len();
        let volatile = Arc::make_mut(&mut file.volatile);
        if volatile.len() < end {
            volatile.resize(end, 0);
        }
        volatile[offset..end].copy_from_slice(data);
        if !data.is_empty() {
            // A misdirected write stays within the file as it was, so a fault cannot make the
            // simulator allocate without bound.
            let landing = (offset as i64)
                .saturating_add(landing_shift)
                .clamp(0, end_before as i64) as usize;
            file.pending.push(FileEffect::Write {
                offset: landing,
                data: data.to_vec(),
            });
        }
        if short {
            return Err(injected(
                StorageErrorKind::ShortWrite,
                index,
                "write stored fewer bytes",
            ));
        }
        Ok(())
    }
}
