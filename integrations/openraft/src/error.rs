//! Errors opening a [`crate::LogStore`].

use core::fmt;

use walden_std::{FileError, Lsn, ReadError};

/// Why a [`crate::LogStore`] could not be opened.
#[derive(Debug)]
#[non_exhaustive]
pub enum OpenError {
    /// One of the two Walden logs could not be opened (locked, damaged, unreadable).
    Wal {
        /// `"entries"` or `"meta"`.
        log: &'static str,
        /// Walden's error, with the file concerned.
        error: walden_std::Error,
    },
    /// Reading the last record failed.
    Read(ReadError<FileError>),
    /// The logs opened but do not make a raft log: a record that does not decode, or entries
    /// that do not fit the purge point. The store changed nothing on disk (opening and closing
    /// each Walden log did what any open does: repair a torn tail, leave a clean-close marker).
    Corrupted {
        /// `"entries"` or `"meta"`.
        log: &'static str,
        /// The record concerned.
        lsn: Lsn,
        /// What is wrong.
        detail: &'static str,
    },
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Wal { log, error } => write!(f, "cannot open the {log} log: {error}"),
            Self::Read(e) => write!(f, "cannot read the last record: {e}"),
            Self::Corrupted { log, lsn, detail } => {
                write!(f, "{log} log, LSN {}: {detail}", lsn.0)
            }
        }
    }
}

impl core::error::Error for OpenError {}
