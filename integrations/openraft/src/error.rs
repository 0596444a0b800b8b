//! Errors opening a [`crate::LogStore`].

use core::fmt;
use std::path::PathBuf;

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
    /// One of the two logs is missing (its directory removed or emptied; for the meta log,
    /// also a log without a single record) while the other proves that the store existed: the
    /// entries log is created only once the meta log holds a record, and the meta log records
    /// that the entries log was created (see "Creating the store, and a missing log" in the
    /// crate documentation). Opening would start the missing log again, empty: without the
    /// meta log the node forgets its vote (and could vote twice in one term), its purge point
    /// and its committed log id; without the entries log, entries it reported durable. The
    /// store does not create the missing log, so every later open is refused too.
    Missing {
        /// `"entries"` or `"meta"`: the log that is missing.
        log: &'static str,
        /// Its directory.
        dir: PathBuf,
        /// What the other log holds that proves the store existed.
        evidence: String,
    },
    /// A record marking a step of the store's creation could not be written to the meta log
    /// or synced.
    Create(Box<dyn core::error::Error + Send + Sync>),
    /// The vote in the meta log is of an older term than a log id the store holds (the last
    /// entry, the purge point or the committed log id). openraft saves a vote of a term before
    /// the node appends, purges or commits anything of that term, and the store never lets
    /// the vote go back: the meta log is older than the rest, restored from an older copy
    /// beside a newer entries log. Opened, the node could vote again in a term it already
    /// voted in (two leaders in one term).
    VoteBehind {
        /// The term of the vote in the meta log (0 without a vote).
        vote_term: u64,
        /// The newer term.
        term: u64,
        /// Which log id is of that term: `"the last entry"`, `"the purge point"` or
        /// `"the committed log id"`.
        of: &'static str,
    },
    /// The committed log id in the meta log names an entry past the end of the entries log
    /// (its last entry, or the purge point when it holds none). openraft saves a committed log
    /// id only once the entries it covers are durable in this log, so entries reported durable
    /// and committed are gone: the entries log was restored from an older copy, or lost
    /// entries. Opened, the node would serve a log without them.
    CommittedBeyondLog {
        /// The index of the committed log id.
        committed: u64,
        /// The index of the last entry (or of the purge point); `None` for a log without
        /// entries never purged.
        last: Option<u64>,
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
            Self::Missing { log, dir, evidence } => {
                let (holds, lost) = match *log {
                    "meta" => (
                        "no record",
                        "its vote (the node could vote twice in one term), purge point and committed log id",
                    ),
                    _ => ("no log", "entries it reported durable"),
                };
                write!(
                    f,
                    "the {log} log is missing ({} does not exist or holds {holds}), but {evidence}: \
                     the store existed, and opening it would forget {lost}; restore the {log} \
                     log, or remove the whole store and add the node to its cluster again as a \
                     new member",
                    dir.display()
                )
            }
            Self::Create(e) => write!(f, "cannot record the store's creation: {e}"),
            Self::VoteBehind {
                vote_term,
                term,
                of,
            } => write!(
                f,
                "the meta log's vote is of term {vote_term}, but {of} is of term {term}: a node \
                 saves a vote of a term before it takes anything of that term, so the meta log \
                 is older than the entries log (restored from an older copy?), and opening it \
                 would let the node vote twice in a term; restore the meta log that goes with \
                 the entries log, or remove the whole store and add the node to its cluster \
                 again as a new member"
            ),
            Self::CommittedBeyondLog { committed, last } => {
                let end = match last {
                    Some(last) => format!("ends at index {last}"),
                    None => "holds no entry".to_string(),
                };
                write!(
                    f,
                    "the meta log's committed log id names index {committed}, but the entries \
                     log {end}: a committed log id is saved only once the entries it covers \
                     are durable, so committed entries are gone (the entries log restored from \
                     an older copy?); restore the entries log that goes with the meta log, or \
                     remove the whole store and add the node to its cluster again as a new \
                     member"
                )
            }
        }
    }
}

impl core::error::Error for OpenError {}
