#![doc = include_str!("../README.md")]
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(any(feature = "alloc", test))]
extern crate alloc;
#[cfg(any(test, feature = "hw-crc"))]
extern crate std;

mod case;
mod checksum;
mod config;
mod counters;
#[cfg(feature = "encrypt")]
mod crypt;
mod cursor;
#[cfg(feature = "serde")]
pub mod entry;
mod error;
mod format;
pub mod inspect;
mod io;
mod lsn;
mod name;
pub mod raw;
mod reader;
mod recovery;
mod report;
mod storage;
mod table;
mod transform;
mod wal;

#[cfg(test)]
mod tests;

pub use case::Case;
pub use checksum::ChecksumAlgorithm;
#[cfg(feature = "compress")]
pub use config::DEFAULT_COMPRESS_THRESHOLD;
pub use config::{Config, ConfigError, MAX_RECORD_SIZE_LIMIT, RecoveryPolicy, SyncPolicy};
pub use counters::Counters;
#[cfg(feature = "encrypt")]
pub use crypt::{KEY_LEN, Keyring, KeyringError, MAX_KEYS, key_id};
#[cfg(feature = "serde")]
pub use entry::{Entry, EntryError, EntryLimits, TypedAppendError};
pub use error::{
    AppendError, Corruption, IoFailure, Op, OpenError, Poisoned, ReadError, SyncError,
    TruncateError, io_kind,
};
pub use inspect::{Inspection, SegmentReport, Verdict, inspect};
pub use io::{RecordFull, RecordWriter};
pub use lsn::Lsn;
pub use name::{CLEAN_FILE, SEGMENT_NAME_LEN, SegmentName, parse_segment_name};
pub use reader::{Reader, Record};
pub use recovery::MIN_SCRATCH;
pub use report::{RecoveryReport, SalvageLoss, TailCut};
pub use storage::{SegmentId, Storage, StorageError, StorageErrorKind};
#[cfg(any(feature = "alloc", test))]
pub use table::Growable;
pub use table::{Fixed, SegmentList, SegmentTable};
pub use transform::{DecodeError, transform_scratch_len};
pub use wal::{DEFAULT_SEGMENTS, SegmentInfo, SyncTicket, Wal};
