//! Looking at a log directory without changing it: what is in it, and a read-only `Storage`
//! over its segment files that holds a shared lock on `walden.lock`.
//!
//! Nothing here creates, writes, truncates or removes a file, and no symlink inside the
//! directory is ever followed: entries are classified with `lstat`, and segment files and the
//! lock file are opened with `O_NOFOLLOW`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use walden_core::{SegmentId, Storage, StorageErrorKind, parse_segment_name};
use walden_std::{CLEAN_FILE, FileError, LOCK_FILE, read_at};

/// Why a command could not run at all (exit code 3).
#[derive(Debug)]
pub(crate) struct Failure(pub(crate) String);

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<walden_std::Error> for Failure {
    fn from(e: walden_std::Error) -> Self {
        match e {
            walden_std::Error::Locked { dir } => locked(&dir),
            other => Failure(other.to_string()),
        }
    }
}

pub(crate) fn locked(dir: &Path) -> Failure {
    Failure(format!(
        "{} is in use: another process holds {LOCK_FILE}; stop it first (walden never touches a log that is open elsewhere)",
        dir.display()
    ))
}

/// An entry with a segment's name that is not a regular file.
#[derive(Clone, Debug)]
pub(crate) struct Unusable {
    pub(crate) path: PathBuf,
    pub(crate) why: &'static str,
}

/// What a log directory holds.
#[derive(Debug, Default)]
pub(crate) struct Survey {
    /// Segment files (regular files with a segment name), by id, with their lengths.
    pub(crate) segments: BTreeMap<SegmentId, u64>,
    /// Entries named like segments that walden refuses to use (symlinks, directories, …).
    pub(crate) unusable: Vec<Unusable>,
    /// Spare segment files prepared by walden-std (removed by its next open).
    pub(crate) spares: Vec<PathBuf>,
    /// Everything else except the lock file: left alone, reported.
    pub(crate) foreign: Vec<PathBuf>,
}

impl Survey {
    pub(crate) fn total_bytes(&self) -> u64 {
        self.segments.values().sum()
    }
}

fn is_spare(name: &str) -> bool {
    name.strip_suffix(".spare")
        .is_some_and(|digits| digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
}

/// Read-only, never through a symlink, and never waiting: `O_NONBLOCK` changes nothing for a
/// regular file, but opening a FIFO for reading without it waits for a writer (a FIFO named
/// `walden.lock` hung every command).
fn nofollow() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK);
    o
}

/// Checks that `dir` is a directory (following a symlink for `dir` itself, which the operator
/// named, but for nothing inside it).
pub(crate) fn check_dir(dir: &Path) -> Result<(), Failure> {
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Failure(format!(
            "{} is not a directory (a log is a directory of segment files)",
            dir.display()
        ))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Err(Failure(format!("{} does not exist", dir.display())))
        }
        Err(e) => Err(Failure(format!("cannot open {}: {e}", dir.display()))),
    }
}

/// Lists `dir`, classifying every entry without following symlinks.
pub(crate) fn survey(dir: &Path) -> Result<Survey, Failure> {
    let fail = |e: io::Error| Failure(format!("cannot list {}: {e}", dir.display()));
    let mut s = Survey::default();
    for entry in fs::read_dir(dir).map_err(fail)? {
        let entry = entry.map_err(fail)?;
        let name = entry.file_name();
        let path = entry.path();
        let kind = entry.file_type().map_err(fail)?;
        match name.to_str().and_then(parse_segment_name) {
            Some(id) if kind.is_file() => {
                let len = fs::symlink_metadata(&path).map_err(fail)?.len();
                s.segments.insert(id, len);
            }
            Some(_) => s.unusable.push(Unusable {
                path,
                why: if kind.is_symlink() {
                    "is a symlink; walden never follows symlinks"
                } else if kind.is_dir() {
                    "is a directory"
                } else {
                    "is not a regular file"
                },
            }),
            None if name == LOCK_FILE || name == CLEAN_FILE => {}
            // walden-std's preallocated spare segments (`{id:020}.spare`): its own files.
            None if kind.is_file() && is_spare(&name.to_string_lossy()) => s.spares.push(path),
            None => s.foreign.push(path),
        }
    }
    s.foreign.sort();
    s.unusable.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(s)
}

/// A read-only view of a log directory, holding a shared lock so that no writer can open the
/// log while it is being read (and refusing if one already has).
pub(crate) struct ReadOnlyDir {
    dir: PathBuf,
    /// The segments that opened as regular files. Each is opened again for each read and
    /// closed after it: a log may have more segments than the process may have open files.
    ids: BTreeSet<SegmentId>,
    _lock: Option<File>,
}

impl ReadOnlyDir {
    /// Takes the shared lock (if a lock file exists: a writer always creates it before
    /// locking, so without one no writer holds the directory), then checks that every segment
    /// file opens as a regular file (without following symlinks).
    pub(crate) fn open(dir: &Path) -> Result<(Self, Survey), Failure> {
        check_dir(dir)?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = match nofollow().open(&lock_path) {
            Ok(f) if !f.metadata().is_ok_and(|m| m.is_file()) => {
                return Err(Failure(format!(
                    "{} is not a regular file; refusing to use it as the lock",
                    lock_path.display()
                )));
            }
            Ok(f) => {
                match f.try_lock_shared() {
                    Ok(()) => {}
                    Err(fs::TryLockError::WouldBlock) => return Err(locked(dir)),
                    Err(fs::TryLockError::Error(e)) => {
                        return Err(Failure(format!("cannot lock {}: {e}", lock_path.display())));
                    }
                }
                Some(f)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                return Err(Failure(format!(
                    "{} is a symlink; refusing to use it as the lock",
                    lock_path.display()
                )));
            }
            Err(e) => {
                return Err(Failure(format!("cannot open {}: {e}", lock_path.display())));
            }
        };
        let mut survey = survey(dir)?;
        let mut usable = BTreeSet::new();
        let ids: Vec<SegmentId> = survey.segments.keys().copied().collect();
        for id in ids {
            let path = dir.join(walden_core::SegmentName::new(id).as_str());
            match nofollow().open(&path) {
                Ok(f) if f.metadata().is_ok_and(|m| m.is_file()) => {
                    usable.insert(id);
                }
                Ok(_) | Err(_) => {
                    // Replaced between the listing and the open: treat it as unusable.
                    survey.segments.remove(&id);
                    survey.unusable.push(Unusable {
                        path,
                        why: "changed while being opened, or cannot be opened for reading",
                    });
                }
            }
        }
        let dir = dir.to_path_buf();
        Ok((
            Self {
                dir,
                ids: usable,
                _lock: lock,
            },
            survey,
        ))
    }

    /// Opens segment `id` for reading, never through a symlink.
    fn file(&self, id: SegmentId) -> Result<File, FileError> {
        if !self.ids.contains(&id) {
            return Err(FileError::new(StorageErrorKind::NotFound));
        }
        let f = nofollow().open(self.dir.join(walden_core::SegmentName::new(id).as_str()))?;
        if !f.metadata()?.is_file() {
            return Err(FileError::new(StorageErrorKind::Unsupported));
        }
        Ok(f)
    }
}

fn read_only() -> FileError {
    FileError::new(StorageErrorKind::PermissionDenied)
}

impl Storage for ReadOnlyDir {
    type Error = FileError;

    fn list(&self, each: &mut dyn FnMut(SegmentId)) -> Result<(), FileError> {
        self.ids.iter().for_each(|id| each(*id));
        Ok(())
    }

    fn create(&mut self, _: SegmentId) -> Result<(), FileError> {
        Err(read_only())
    }

    fn remove(&mut self, _: SegmentId) -> Result<(), FileError> {
        Err(read_only())
    }

    fn len(&self, id: SegmentId) -> Result<u64, FileError> {
        Ok(self.file(id)?.metadata()?.len())
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
}
