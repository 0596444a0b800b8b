//! Walden on real files: segments as files in one directory, `fdatasync` for `sync`, `fsync` of
//! the directory after every create and remove, and an exclusive lock on the directory.
//!
//! ```
//! use walden_std::{Options, Wal};
//! let dir = tempfile::tempdir()?;
//! let (mut wal, report) = Wal::open(dir.path(), Options::default())?;
//! assert!(report.created);
//! let lsn = wal.append(b"hello")?;        // durable on return (SyncPolicy::Always)
//! drop(wal);
//! let (wal, report) = Wal::open(dir.path(), Options::default())?;
//! assert_eq!(report.last_lsn, lsn);
//! assert_eq!(wal.read_all_from(lsn)?[0].1, b"hello");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

mod error;
mod storage;
mod wal;

pub use error::{Error, FileError};
pub use storage::{FileStorage, LOCK_FILE};
pub use wal::{CoreWal, MAX_SEGMENTS, Options, Wal};
pub use walden_core::{
    AppendError, Config, Lsn, OpenError, ReadError, RecoveryPolicy, RecoveryReport, SyncError,
    SyncPolicy, TruncateError,
};
