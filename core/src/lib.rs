//! Walden core: the on-disk format, the codec, the [`Storage`] trait and the log state machine.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(test)]
extern crate std;

pub mod checksum;
pub mod config;
pub mod format;
pub mod lsn;
pub mod storage;

pub use checksum::ChecksumAlgorithm;
pub use config::{Config, ConfigError, RecoveryPolicy, SyncPolicy};
pub use lsn::Lsn;
pub use storage::{SegmentId, Storage, StorageError, StorageErrorKind};
