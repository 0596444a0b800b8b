//! Errors of the file adapter.

use std::fmt;
use std::io;
use std::path::PathBuf;

use walden_core::{StorageError, StorageErrorKind};

/// A failed file-system call. `Copy` (it keeps the OS error code, not the `io::Error`), so the
/// core errors that embed it stay `Copy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileError {
    kind: StorageErrorKind,
    io_kind: io::ErrorKind,
    os_code: Option<i32>,
    /// Why, where no OS error says it (see [`FileError::not_a_regular_file`]).
    reason: Option<&'static str>,
    /// The call that failed wrote bytes the storage had buffered (see
    /// [`FileError::is_buffered_write`]).
    buffered_write: bool,
}

impl FileError {
    /// Classifies an `io::Error`.
    pub fn from_io(e: &io::Error) -> Self {
        let os_code = e.raw_os_error();
        let kind = match (e.kind(), os_code) {
            (_, Some(libc::ENOSPC | libc::EDQUOT)) => StorageErrorKind::NoSpace,
            (_, Some(libc::EROFS | libc::EACCES | libc::EPERM)) => {
                StorageErrorKind::PermissionDenied
            }
            (io::ErrorKind::NotFound, _) => StorageErrorKind::NotFound,
            (io::ErrorKind::AlreadyExists, _) => StorageErrorKind::AlreadyExists,
            (io::ErrorKind::PermissionDenied, _) => StorageErrorKind::PermissionDenied,
            (io::ErrorKind::StorageFull, _) => StorageErrorKind::NoSpace,
            (io::ErrorKind::WriteZero, _) => StorageErrorKind::ShortWrite,
            (io::ErrorKind::Unsupported, _) => StorageErrorKind::Unsupported,
            _ => StorageErrorKind::Io,
        };
        Self {
            kind,
            io_kind: e.kind(),
            os_code,
            reason: None,
            buffered_write: false,
        }
    }

    /// An error of a given kind without an OS error behind it.
    pub fn new(kind: StorageErrorKind) -> Self {
        Self {
            kind,
            io_kind: io::ErrorKind::Other,
            os_code: None,
            reason: None,
            buffered_write: false,
        }
    }

    /// A segment name that is not a regular file (a symlink, a directory, a FIFO, a socket, a
    /// device): never followed or opened as a segment. Of kind
    /// [`StorageErrorKind::Unsupported`], and saying so: the kind alone read "unsupported
    /// operation", which named neither the file's fault nor the fix.
    pub(crate) fn not_a_regular_file() -> Self {
        Self {
            reason: Some(
                "not a regular file (a symlink, directory, FIFO, socket or device named like a segment is never followed or read; move it out of the log directory)",
            ),
            ..Self::new(StorageErrorKind::Unsupported)
        }
    }

    /// This error, from the write of bytes the storage had buffered: walden-std buffers small
    /// appends and writes them out at the next sync (or when the buffer is full), so a write
    /// failure (such as [`StorageErrorKind::NoSpace`]) can surface from a `sync`. The core
    /// error names the operation it called (`sync of segment …`); this error says the write
    /// failed, not the `fdatasync`.
    pub(crate) fn in_buffered_write(self) -> Self {
        Self {
            buffered_write: true,
            ..self
        }
    }

    /// Whether the failed call was the write of bytes the storage had buffered (at a sync, or
    /// when the buffer was full), not the operation the core error names.
    pub fn is_buffered_write(&self) -> bool {
        self.buffered_write
    }

    /// The OS error code, if there was one.
    pub fn os_code(&self) -> Option<i32> {
        self.os_code
    }

    /// The `std::io::ErrorKind` of the original error.
    pub fn io_kind(&self) -> io::ErrorKind {
        self.io_kind
    }
}

impl From<io::Error> for FileError {
    fn from(e: io::Error) -> Self {
        Self::from_io(&e)
    }
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.buffered_write {
            write!(f, "writing buffered bytes to the file: ")?;
        }
        match (self.os_code, self.reason) {
            (Some(code), _) => write!(f, "{} ({})", self.kind, io::Error::from_raw_os_error(code)),
            (None, Some(reason)) => write!(f, "{}: {reason}", self.kind),
            (None, None) => write!(f, "{}", self.kind),
        }
    }
}

impl StorageError for FileError {
    fn kind(&self) -> StorageErrorKind {
        self.kind
    }
}

impl core::error::Error for FileError {}

/// Anything that can go wrong opening or using a log directory, with the path it concerns.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The directory could not be opened, created, or locked.
    Directory {
        /// The directory.
        dir: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The failure.
        error: FileError,
    },
    /// The path exists and is not a directory.
    NotADirectory {
        /// The path.
        dir: PathBuf,
    },
    /// The directory holds no log (no segment file) and [`crate::Options::create_log`] is
    /// false: nothing was created.
    NoLog {
        /// The directory.
        dir: PathBuf,
    },
    /// The directory's lock file is not a regular file (a symlink, a FIFO, a directory): it
    /// is neither followed nor waited on.
    LockNotAFile {
        /// The lock file.
        path: PathBuf,
    },
    /// Another process (or another handle in this one) holds the directory's lock.
    Locked {
        /// The directory.
        dir: PathBuf,
    },
    /// The options are invalid; nothing on disk was touched.
    InvalidOptions {
        /// What is wrong and what to use instead.
        why: &'static str,
    },
    /// Recovery failed; `file` names the segment file concerned, if any.
    Open {
        /// The segment file concerned, if any.
        file: Option<PathBuf>,
        /// The core error (with segment, offset and LSN where relevant).
        error: walden_core::OpenError<FileError>,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Directory { dir, action, error } => {
                write!(f, "cannot {action} {}: {error}", dir.display())
            }
            Error::NotADirectory { dir } => {
                write!(f, "{} is not a directory", dir.display())
            }
            Error::NoLog { dir } => write!(
                f,
                "{} holds no log (no segment file) and Options::create_log is false: nothing was created (is the data directory mounted, and the path right?)",
                dir.display()
            ),
            Error::LockNotAFile { path } => write!(
                f,
                "{} is not a regular file; refusing to use it as the lock",
                path.display()
            ),
            Error::Locked { dir } => write!(
                f,
                "{} is locked by another process (or another open log handle)",
                dir.display()
            ),
            Error::InvalidOptions { why } => write!(f, "invalid options: {why}"),
            Error::Open {
                file: Some(p),
                error,
            } => write!(f, "{}: {error}", p.display()),
            Error::Open { file: None, error } => write!(f, "{error}"),
        }
    }
}

impl core::error::Error for Error {}
