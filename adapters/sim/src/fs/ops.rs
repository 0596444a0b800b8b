//! The calls of [`SimFs`]: lookups and reads (not numbered), and the numbered state-changing
//! operations, each of which may be hit by a scheduled fault and queues what a crash resolves.

use alloc::string::String;
use alloc::vec::Vec;

use walden_core::StorageErrorKind;

use super::{DirOp, FsOp, FsTraceEntry, Inode, InodeData, SimFs};
use crate::effect::{FileEffect, Medium, resolve_file_effect};
use crate::error::{SimError, SimErrorCause, injected, plain_failure, refused, to_index};
use crate::fault::FaultAction;
use crate::plan::Fate;

impl SimFs {
    /// Refuses a call that is not numbered once the power is off.
    fn powered(&self) -> Result<(), SimError> {
        if self.crashed {
            return Err(SimError::new(
                StorageErrorKind::Io,
                SimErrorCause::Crashed,
                self.ops,
                "the power is off",
            ));
        }
        Ok(())
    }

    /// Numbers a state-changing call, refuses it when the power is off, and takes its fault.
    fn begin(&mut self, op: &FsOp) -> Result<(u64, Option<FaultAction>), SimError> {
        let index = self.ops;
        self.ops += 1;
        let kind = op.kind();
        let nth_of_kind = self.ops_by_kind.bump(kind);
        if self.crashed || self.op_budget.is_some_and(|budget| index >= budget) {
            self.crashed = true;
            let error = SimError::new(
                StorageErrorKind::Io,
                SimErrorCause::Crashed,
                index,
                "the power is off",
            );
            self.record(index, op.clone(), Some(StorageErrorKind::Io));
            return Err(error);
        }
        Ok((index, self.faults.take(index, kind, nth_of_kind)))
    }

    fn record(&mut self, index: u64, op: FsOp, failure: Option<StorageErrorKind>) {
        self.trace.push(FsTraceEntry { index, op, failure });
    }

    fn finish<T>(
        &mut self,
        index: u64,
        op: FsOp,
        result: Result<T, SimError>,
    ) -> Result<T, SimError> {
        let failure = result.as_ref().err().map(walden_core::StorageError::kind);
        self.record(index, op, failure);
        result
    }

    fn need_dir(&self, index: u64) -> Result<(), SimError> {
        if self.volatile.exists {
            Ok(())
        } else {
            Err(refused(
                StorageErrorKind::NotFound,
                index,
                "no log directory",
            ))
        }
    }

    fn inode_mut(&mut self, inode: Inode, index: u64) -> Result<&mut InodeData, SimError> {
        self.inodes
            .get_mut(&inode)
            .ok_or_else(|| refused(StorageErrorKind::NotFound, index, "no such file"))
    }

    // ----- lookups and reads: not numbered -----

    /// The inode `name` links to.
    pub fn lookup(&self, name: &str) -> Result<Inode, SimError> {
        self.powered()?;
        if !self.volatile.exists {
            return Err(refused(
                StorageErrorKind::NotFound,
                self.ops,
                "no log directory",
            ));
        }
        self.volatile
            .entries
            .get(name)
            .copied()
            .ok_or_else(|| refused(StorageErrorKind::NotFound, self.ops, "no such file"))
    }

    /// The names in the log directory, sorted.
    pub fn names(&self) -> Result<Vec<String>, SimError> {
        self.powered()?;
        if !self.volatile.exists {
            return Err(refused(
                StorageErrorKind::NotFound,
                self.ops,
                "no log directory",
            ));
        }
        Ok(self.volatile.entries.keys().cloned().collect())
    }

    /// The volatile length of a file.
    pub fn len(&self, inode: Inode) -> Result<u64, SimError> {
        self.powered()?;
        self.inodes
            .get(&inode)
            .map(|d| d.volatile.len() as u64)
            .ok_or_else(|| refused(StorageErrorKind::NotFound, self.ops, "no such file"))
    }

    /// Reads up to `buf.len()` bytes at `offset` of the volatile image (a `pread`).
    pub fn read(&self, inode: Inode, offset: u64, buf: &mut [u8]) -> Result<usize, SimError> {
        self.powered()?;
        let image = &self
            .inodes
            .get(&inode)
            .ok_or_else(|| refused(StorageErrorKind::NotFound, self.ops, "no such file"))?
            .volatile;
        let start = usize::try_from(offset).map_or(image.len(), |o| o.min(image.len()));
        let count = buf.len().min(image.len() - start);
        buf[..count].copy_from_slice(&image[start..start + count]);
        Ok(count)
    }

    /// `fadvise(DONTNEED)`: drops the clean cached pages of `inode`, so reads show the durable
    /// image with the still-dirty (unsynced) effects on top. Only data a failed sync dropped
    /// differs afterwards: it was cached, it is not on the medium, and now reads say so.
    pub fn forget_cache(&mut self, inode: Inode) -> Result<(), SimError> {
        self.powered()?;
        let index = self.ops;
        let data = self.inode_mut(inode, index)?;
        let medium = Medium {
            sector_size: 1,
            garbage_seed: 0,
            garbage_holes: false,
        };
        let mut image = data.durable.clone();
        for effect in &data.pending {
            resolve_file_effect(&mut image, effect, Fate::Happened, &medium, 0);
        }
        data.volatile = image;
        Ok(())
    }

    /// Takes the exclusive lock on `inode` (`flock(LOCK_EX | LOCK_NB)`): fails with
    /// [`StorageErrorKind::Locked`] if it is held. Locks die with the process
    /// ([`SimFs::restart`]) or the power.
    pub fn try_lock(&mut self, inode: Inode) -> Result<(), SimError> {
        self.powered()?;
        if !self.locks.insert(inode) {
            return Err(refused(StorageErrorKind::Locked, self.ops, "locked"));
        }
        Ok(())
    }

    /// Releases the lock on `inode` (closing the file that held it).
    pub fn unlock(&mut self, inode: Inode) {
        self.locks.remove(&inode);
    }

    // ----- numbered, state-changing calls -----

    /// Creates the log directory.
    pub fn mkdir(&mut self) -> Result<(), SimError> {
        let op = FsOp::Mkdir;
        let (index, fault) = self.begin(&op)?;
        let result = plain_failure(fault, index).and_then(|()| {
            if self.volatile.exists {
                return Err(refused(StorageErrorKind::AlreadyExists, index, "exists"));
            }
            self.volatile.exists = true;
            self.pending_dir.push(DirOp::Mkdir);
            Ok(())
        });
        self.finish(index, op, result)
    }

    /// Creates a new, empty file named `name` (`O_CREAT | O_EXCL`).
    pub fn create(&mut self, name: &str) -> Result<Inode, SimError> {
        let op = FsOp::Create { name: name.into() };
        let (index, fault) = self.begin(&op)?;
        let result = plain_failure(fault, index)
            .and_then(|()| self.need_dir(index))
            .and_then(|()| {
                if self.volatile.entries.contains_key(name) {
                    return Err(refused(StorageErrorKind::AlreadyExists, index, "exists"));
                }
                let inode = self.next_inode;
                self.next_inode += 1;
                self.inodes.insert(inode, InodeData::default());
                self.first_names.insert(inode, name.into());
                self.volatile.entries.insert(name.into(), inode);
                self.pending_dir.push(DirOp::Create {
                    name: name.into(),
                    inode,
                });
                Ok(inode)
            });
        self.finish(index, op, result)
    }

    /// Links `to` to the file `from` names (`link(2)`): fails if `to` exists.
    pub fn link(&mut self, from: &str, to: &str) -> Result<(), SimError> {
        let op = FsOp::Link {
            from: from.into(),
            to: to.into(),
        };
        let (index, fault) = self.begin(&op)?;
        let result = plain_failure(fault, index)
            .and_then(|()| self.need_dir(index))
            .and_then(|()| {
                let inode =
                    *self.volatile.entries.get(from).ok_or_else(|| {
                        refused(StorageErrorKind::NotFound, index, "no such file")
                    })?;
                if self.volatile.entries.contains_key(to) {
                    return Err(refused(StorageErrorKind::AlreadyExists, index, "exists"));
                }
                self.volatile.entries.insert(to.into(), inode);
                self.pending_dir.push(DirOp::Link {
                    name: to.into(),
                    inode,
                });
                Ok(())
            });
        self.finish(index, op, result)
    }

    /// Renames `from` to `to`, replacing `to` if it exists (`rename(2)`, atomic).
    pub fn rename(&mut self, from: &str, to: &str) -> Result<(), SimError> {
        let op = FsOp::Rename {
            from: from.into(),
            to: to.into(),
        };
        let (index, fault) = self.begin(&op)?;
        let result = plain_failure(fault, index)
            .and_then(|()| self.need_dir(index))
            .and_then(|()| {
                let inode =
                    *self.volatile.entries.get(from).ok_or_else(|| {
                        refused(StorageErrorKind::NotFound, index, "no such file")
                    })?;
                let change = DirOp::Rename {
                    from: from.into(),
                    to: to.into(),
                    inode,
                };
                change.apply(&mut self.volatile);
                self.pending_dir.push(change);
                Ok(())
            });
        self.finish(index, op, result)
    }

    /// Removes the name `name` (`unlink(2)`). The file lives on while it has other names or
    /// an open handle writes it; after a crash only names matter.
    pub fn unlink(&mut self, name: &str) -> Result<(), SimError> {
        let op = FsOp::Unlink { name: name.into() };
        let (index, fault) = self.begin(&op)?;
        let result = plain_failure(fault, index)
            .and_then(|()| self.need_dir(index))
            .and_then(|()| {
                let inode =
                    self.volatile.entries.remove(name).ok_or_else(|| {
                        refused(StorageErrorKind::NotFound, index, "no such file")
                    })?;
                self.pending_dir.push(DirOp::Unlink {
                    name: name.into(),
                    inode,
                });
                Ok(())
            });
        self.finish(index, op, result)
    }

    /// Writes `data` at `offset` (`pwrite`); an offset past the end leaves a hole of zeros.
    pub fn write(&mut self, inode: Inode, offset: u64, data: &[u8]) -> Result<(), SimError> {
        let op = FsOp::Write {
            inode,
            offset,
            len: data.len() as u64,
        };
        let (index, fault) = self.begin(&op)?;
        let result = self.write_volatile(index, fault, inode, offset, data);
        self.finish(index, op, result)
    }

    fn write_volatile(
        &mut self,
        index: u64,
        fault: Option<FaultAction>,
        inode: Inode,
        offset: u64,
        data: &[u8],
    ) -> Result<(), SimError> {
        let (data, shift, short) = match fault {
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
        let offset = to_index(offset, index)?;
        let file = self.inode_mut(inode, index)?;
        let end_before = file.volatile.len();
        let end = offset + data.len();
        if file.volatile.len() < end {
            file.volatile.resize(end, 0);
        }
        file.volatile[offset..end].copy_from_slice(data);
        if !data.is_empty() {
            let landing = (offset as i64)
                .saturating_add(shift)
                .clamp(0, end_before.max(offset) as i64) as usize;
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

    /// Sets the length (`ftruncate`): shrinks, or grows with zeros.
    pub fn set_len(&mut self, inode: Inode, len: u64) -> Result<(), SimError> {
        let op = FsOp::SetLen { inode, len };
        let (index, fault) = self.begin(&op)?;
        let result = plain_failure(fault, index).and_then(|()| {
            let len = to_index(len, index)?;
            let file = self.inode_mut(inode, index)?;
            file.volatile.resize(len, 0);
            file.pending.push(FileEffect::Truncate { len });
            Ok(())
        });
        self.finish(index, op, result)
    }

    /// Reserves blocks up to `len` without changing the length (`fallocate(KEEP_SIZE)`): no
    /// visible effect, but it can fail (`NoSpace`).
    pub fn allocate(&mut self, inode: Inode, len: u64) -> Result<(), SimError> {
        let op = FsOp::Allocate { inode, len };
        let (index, fault) = self.begin(&op)?;
        let result =
            plain_failure(fault, index).and_then(|()| self.inode_mut(inode, index).map(drop));
        self.finish(index, op, result)
    }

    /// The file's error sequence (`errseq_t`): what a file description opened now starts
    /// from (it never reports a failure older than its open).
    pub fn error_seq(&self, inode: Inode) -> Result<u64, SimError> {
        self.powered()?;
        self.inodes
            .get(&inode)
            .map(|d| d.errors)
            .ok_or_else(|| refused(StorageErrorKind::NotFound, self.ops, "no such file"))
    }

    /// [`SimFs::sync_handle`] through a description that has seen every earlier failure.
    pub fn sync(&mut self, inode: Inode) -> Result<(), SimError> {
        let mut seen = self.inodes.get(&inode).map_or(0, |d| d.errors);
        self.sync_handle(inode, &mut seen)
    }

    /// Makes the file's data and length durable (`fdatasync`; `fsync` is the same here, since
    /// neither makes a name durable), through an open file description that has reported
    /// failures up to `seen`.
    ///
    /// A [`FaultAction::SyncLosesData`] drops the dirty effects instead and fails; reads still
    /// see them until [`SimFs::forget_cache`]. A later sync through any description that has
    /// not reported that failure yet fails once (after writing what is dirty now), as
    /// Linux's `errseq_t` makes it.
    pub fn sync_handle(&mut self, inode: Inode, seen: &mut u64) -> Result<(), SimError> {
        let op = FsOp::Sync { inode };
        let (index, fault) = self.begin(&op)?;
        let result = match fault {
            Some(FaultAction::SyncLosesData) => self.inode_mut(inode, index).and_then(|file| {
                file.pending.clear();
                file.errors += 1;
                *seen = file.errors;
                Err(injected(
                    StorageErrorKind::Io,
                    index,
                    "sync failed, dirty data dropped",
                ))
            }),
            other => plain_failure(other, index).and_then(|()| {
                let file = self.inode_mut(inode, index)?;
                let medium = Medium {
                    sector_size: 1,
                    garbage_seed: 0,
                    garbage_holes: false,
                };
                for effect in file.pending.drain(..) {
                    resolve_file_effect(&mut file.durable, &effect, Fate::Happened, &medium, 0);
                }
                if file.errors > *seen {
                    *seen = file.errors;
                    return Err(refused(
                        StorageErrorKind::Io,
                        index,
                        "an earlier writeback of this file failed",
                    ));
                }
                Ok(())
            }),
        };
        self.finish(index, op, result)
    }

    /// `fsync` of the log directory: makes every create, link, unlink and rename durable (not
    /// the directory's own creation, which is its parent's entry).
    pub fn sync_dir(&mut self) -> Result<(), SimError> {
        let op = FsOp::SyncDir;
        let (index, fault) = self.begin(&op)?;
        let result = plain_failure_or_drop(fault, index, &mut self.pending_dir)
            .and_then(|()| self.need_dir(index))
            .map(|()| {
                let (mkdir, changes): (Vec<DirOp>, Vec<DirOp>) = self
                    .pending_dir
                    .drain(..)
                    .partition(|op| *op == DirOp::Mkdir);
                for change in &changes {
                    change.apply(&mut self.durable);
                }
                self.pending_dir = mkdir;
            });
        self.finish(index, op, result)
    }

    /// `fsync` of the directory that holds the log directory: makes its creation durable.
    pub fn sync_parent(&mut self) -> Result<(), SimError> {
        let op = FsOp::SyncParent;
        let (index, fault) = self.begin(&op)?;
        let result = plain_failure(fault, index).map(|()| {
            if let Some(at) = self.pending_dir.iter().position(|op| *op == DirOp::Mkdir) {
                self.pending_dir.remove(at);
                self.durable.exists = true;
            }
        });
        self.finish(index, op, result)
    }
}

/// Like [`plain_failure`], but a [`FaultAction::SyncLosesData`] on a directory sync drops the
/// unsynced entries (all but the directory's own creation) before failing.
fn plain_failure_or_drop(
    fault: Option<FaultAction>,
    index: u64,
    pending: &mut Vec<DirOp>,
) -> Result<(), SimError> {
    if fault == Some(FaultAction::SyncLosesData) {
        pending.retain(|op| *op == DirOp::Mkdir);
        return Err(injected(
            StorageErrorKind::Io,
            index,
            "directory sync failed, entries dropped",
        ));
    }
    plain_failure(fault, index)
}
