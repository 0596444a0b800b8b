//! A log directory looked at without changing it: a read-only [`Storage`] over its segment
//! files, holding a shared lock on `walden.lock`.
//!
//! Nothing here creates, writes, truncates, syncs or removes a file: not the lock file (a
//! directory without one is read unlocked: a writer creates it before it locks, so none holds
//! the directory), not the clean-close marker, not a spare left by a crash. So a log on a
//! read-only mount, a snapshot or a backup can be verified, and verifying a log changes nothing
//! that its next open decides on. [`FileStorage`](crate::FileStorage) is the storage of a log
//! that is opened to be written.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};

use walden_core::{SegmentId, SegmentName, Storage, StorageErrorKind, parse_segment_name};

use crate::error::{Error, FileError};
use crate::filesystem::{FileKind, FileSystem, FsFile, OpenMode, OsFs};
use crate::storage::{LOCK_FILE, read_at};

/// A read-only view of a log directory's segments (see the module documentation). Every write
/// method fails with [`StorageErrorKind::PermissionDenied`]; segments are listed once, when the
/// view is opened, and each read opens its segment again without following a symlink.
pub struct ReadOnlyDir<F: FileSystem = OsFs> {
    fs: F,
    dir: PathBuf,
    ids: BTreeSet<SegmentId>,
    _lock: Option<F::File>,
}

impl ReadOnlyDir<OsFs> {
    /// [`ReadOnlyDir::open_in`] on the operating system's file system.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, Error> {
        Self::open_in(OsFs, dir)
    }
}

impl<F: FileSystem> ReadOnlyDir<F> {
    /// Opens `dir` read-only: takes a shared lock on its lock file if there is one
    /// ([`Error::Locked`] while a log holds the directory) and lists its segment files.
    pub fn open_in(fs: F, dir: impl AsRef<Path>) -> Result<Self, Error> {
        let dir = dir.as_ref().to_path_buf();
        let fail = |action, e: &io::Error| Error::Directory {
            dir: dir.clone(),
            action,
            error: FileError::from_io(e),
        };
        let meta = fs.metadata(&dir).map_err(|e| fail("open", &e))?;
        if meta.kind != FileKind::Dir {
            return Err(Error::NotADirectory { dir });
        }
        let lock_path = dir.join(LOCK_FILE);
        let lock = match fs.symlink_metadata(&lock_path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(fail("examine the lock file in", &e)),
            // A symlink, a FIFO, a directory: not a lock walden-std made (opening a FIFO for
            // reading would wait for a writer), and never followed.
            Ok(m) if m.kind != FileKind::File => {
                return Err(Error::LockNotAFile { path: lock_path });
            }
            Ok(_) => {
                let f = (fs.open(&lock_path, OpenMode::Read))
                    .map_err(|e| fail("open the lock file in", &e))?;
                match f.try_lock_shared() {
                    Ok(()) => Some(f),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        return Err(Error::Locked { dir });
                    }
                    Err(e) => return Err(fail("lock", &e)),
                }
            }
        };
        let ids = (fs.read_dir(&dir).map_err(|e| fail("list", &e))?)
            .iter()
            .filter_map(|entry| entry.name.to_str().and_then(parse_segment_name))
            .collect();
        Ok(Self {
            fs,
            dir,
            ids,
            _lock: lock,
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Keeps only the segments for which `keep` says true (a caller that found some segment
    /// files unusable, for example, leaves them out of what recovery's planner sees).
    pub fn retain(&mut self, mut keep: impl FnMut(SegmentId) -> bool) {
        self.ids.retain(|&id| keep(id));
    }

    /// Opens segment `id` for reading, if it is listed and a regular file (never through a
    /// symlink).
    fn file(&self, id: SegmentId) -> Result<F::File, FileError> {
        if !self.ids.contains(&id) {
            return Err(FileError::new(StorageErrorKind::NotFound));
        }
        let path = self.dir.join(SegmentName::new(id).as_str());
        if self.fs.symlink_metadata(&path)?.kind != FileKind::File {
            return Err(FileError::not_a_regular_file());
        }
        Ok(self.fs.open(&path, OpenMode::Read)?)
    }
}

fn read_only() -> FileError {
    FileError::new(StorageErrorKind::PermissionDenied)
}

impl<F: FileSystem> Storage for ReadOnlyDir<F> {
    type Error = FileError;

    fn list(&self, each: &mut dyn FnMut(SegmentId)) -> Result<(), FileError> {
        self.ids.iter().for_each(|&id| each(id));
        Ok(())
    }

    fn create(&mut self, _: SegmentId) -> Result<(), FileError> {
        Err(read_only())
    }

    fn remove(&mut self, _: SegmentId) -> Result<(), FileError> {
        Err(read_only())
    }

    fn len(&self, id: SegmentId) -> Result<u64, FileError> {
        Ok(self.file(id)?.len()?)
    }

    fn read(&self, id: SegmentId, offset: u64, buf: &mut [u8]) -> Result<usize, FileError> {
        Ok(read_at(&self.file(id)?, offset, buf)?)
    }

    fn write(&mut self, _: SegmentId, _: u64, _: &[u8]) -> Result<(), FileError> {
        Err(read_only())
    }

    fn truncate(&mut self, _: SegmentId, _: u64) -> Result<(), FileError> {
        Err(read_only())
    }

    fn sync(&mut self, _: SegmentId) -> Result<(), FileError> {
        Err(read_only())
    }

    fn sync_dir(&mut self) -> Result<(), FileError> {
        Err(read_only())
    }

    fn reserve(&mut self, _: SegmentId, _: u64) -> Result<(), FileError> {
        Err(read_only())
    }
}
