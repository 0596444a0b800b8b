//! Walden core: the on-disk format, the codec, the [`Storage`] trait and the log state machine.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod storage;

pub use storage::{SegmentId, Storage, StorageError, StorageErrorKind};
