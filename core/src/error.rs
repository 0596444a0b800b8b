//! Errors, one enum per operation. All are `Copy` (when the storage error is) and carry their
//! context without allocating.

use core::fmt;

use crate::case::Case;
use crate::config::ConfigError;
use crate::lsn::Lsn;
use crate::storage::{SegmentId, StorageError, StorageErrorKind};

/// `text` in a build with walden-core's `detail` feature (the default), empty without it: the
/// explanations in reports and errors cost a device about a kilobyte of flash, and the case,
/// segment, offset and LSN beside them still say what went wrong and where.
pub(crate) const fn detail(text: &'static str) -> &'static str {
    if cfg!(feature = "detail") { text } else { "" }
}

/// `: detail`, or nothing where a build without the `detail` feature left it empty.
pub(crate) fn write_detail(f: &mut fmt::Formatter<'_>, detail: &str) -> fmt::Result {
    if detail.is_empty() {
        Ok(())
    } else {
        write!(f, ": {detail}")
    }
}

/// The storage operation that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Op {
    /// `Storage::list`.
    List,
    /// `Storage::create`.
    Create,
    /// `Storage::remove`.
    Remove,
    /// `Storage::len`.
    Len,
    /// `Storage::read`.
    Read,
    /// `Storage::write`.
    Write,
    /// `Storage::truncate`.
    Truncate,
    /// `Storage::sync`.
    Sync,
    /// `Storage::sync_dir`.
    SyncDir,
}

impl Op {
    /// The operation's name.
    pub const fn name(self) -> &'static str {
        match self {
            Op::List => "list",
            Op::Create => "create",
            Op::Remove => "remove",
            Op::Len => "len",
            Op::Read => "read",
            Op::Write => "write",
            Op::Truncate => "truncate",
            Op::Sync => "sync",
            Op::SyncDir => "sync_dir",
        }
    }
}

/// A storage failure with its context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct IoFailure<E> {
    /// What was being done.
    pub op: Op,
    /// On which segment (none for directory operations).
    pub segment: Option<SegmentId>,
    /// The adapter's error.
    pub error: E,
}

impl<E: StorageError> fmt::Display for IoFailure<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.segment {
            Some(s) => write!(
                f,
                "{} of segment {s} failed: {}",
                self.op.name(),
                self.error
            ),
            None => write!(f, "{} failed: {}", self.op.name(), self.error),
        }
    }
}

/// Why a log refuses further work: an earlier write or sync failed, so what is on the medium is
/// unknown. Reopen the log (which runs recovery) to continue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Poisoned {
    /// The operation that failed.
    pub op: Op,
    /// The segment it failed on, if any.
    pub segment: Option<SegmentId>,
    /// The kind of the original failure.
    pub kind: StorageErrorKind,
}

impl fmt::Display for Poisoned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "log poisoned by an earlier failed {} ({})",
            self.op.name(),
            self.kind
        )?;
        if let Some(s) = self.segment {
            write!(f, " on segment {s}")?;
        }
        f.write_str("; nothing after the last successful sync is durable; reopen the log")
    }
}

/// Damage found on the medium, with where it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Corruption {
    /// The recovery case (see `docs/FORMAT.md`).
    pub case: Case,
    /// The segment.
    pub segment: SegmentId,
    /// Byte offset within the segment.
    pub offset: u64,
    /// The LSN expected at that offset, where known.
    pub lsn: Option<Lsn>,
    /// What exactly is wrong.
    pub detail: &'static str,
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} in segment {} at offset {}",
            self.case, self.segment, self.offset
        )?;
        write_detail(f, self.detail)?;
        if let Some(l) = self.lsn {
            write!(f, " (at LSN {l})")?;
        }
        Ok(())
    }
}

/// Opening (recovering) a log failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum OpenError<E> {
    /// The configuration is invalid; nothing was touched.
    Config(ConfigError),
    /// The scratch buffer is smaller than [`crate::MIN_SCRATCH`].
    ScratchTooSmall {
        /// The minimum length.
        min: usize,
    },
    /// More segments exist than the log's segment table holds (a [`crate::Fixed`] table; a
    /// `Growable` one only when memory runs out), or the table cannot hold even the one
    /// segment a new log starts with (`Fixed<0>`). Nothing was changed.
    TooManySegments {
        /// The table's capacity (the number of segments it held when it filled).
        capacity: usize,
    },
    /// The medium holds damage the recovery policy does not repair.
    Corrupted(Corruption),
    /// A valid record is longer than the configured `max_record_size`: the log was written
    /// with a larger limit. Nothing was changed; reopen with `max_record_size` of at least
    /// `length`.
    RecordTooLarge {
        /// The segment holding it.
        segment: SegmentId,
        /// Offset of its header.
        offset: u64,
        /// Its LSN.
        lsn: Lsn,
        /// Its payload length.
        length: u32,
        /// The configured limit.
        max: u32,
    },
    /// A storage operation failed.
    Storage(IoFailure<E>),
    /// Segment `segment` has invalid bytes or ends before its successor begins, and the
    /// successor was created by an early rotation (its header's `early` flag, written by a
    /// build with [`crate::Config::early_rotation`]): where the segment ends must be judged by
    /// evidence in later segments, which this build cannot do (walden-core's feature
    /// `early-rotation` is off). Not damage as such: open the log with a build that has the
    /// feature, under any policy. Nothing was changed.
    EarlyRotationNotBuiltIn {
        /// The segment whose end cannot be judged (its successor has the `early` flag).
        segment: SegmentId,
    },
}

/// Appending failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum AppendError<E> {
    /// An earlier failure poisoned the log; reopen it.
    Poisoned(Poisoned),
    /// The payload exceeds `max_record_size`; nothing was written.
    RecordTooLarge {
        /// The payload length.
        len: usize,
        /// The limit.
        max: u32,
    },
    /// The batch exceeds `max_batch_size`; nothing was written.
    BatchTooLarge {
        /// The batch's total payload.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// The storage's segments cannot grow ([`crate::Storage::segment_capacity`]) and the
    /// batch (its payloads as given, before any compression, a 32-byte header per record, and
    /// a tag per record when encrypting) would not fit even an empty segment with its seal.
    /// Nothing was written and the log is not poisoned: split the batch.
    BatchDoesNotFit {
        /// The bytes the batch would take.
        needed: u64,
        /// What an empty segment has room for (the capacity less the segment header and the
        /// seal).
        room: u64,
    },
    /// The segment table is full (a [`crate::Fixed`] table; a `Growable` one only
    /// when memory runs out); call `truncate_front` or use a larger table. Refused before a
    /// segment was created: the log is not poisoned.
    SegmentTableFull {
        /// The table's capacity (the number of segments it held when it filled).
        capacity: usize,
    },
    /// The log encrypts (or compresses) and the scratch passed to
    /// `Wal::append_batch_in` is shorter than the record needs (an encrypted record
    /// is never stored in plaintext). Nothing was written.
    ScratchTooSmall {
        /// The scratch length needed ([`crate::transform_scratch_len`] of the record).
        needed: usize,
    },
    /// The batch would take LSNs past the last one a log may use (`u64::MAX - 2`, so that the
    /// next LSN, which a new segment's header names, stays below `u64::MAX`). Only a log that
    /// starts near the end of the LSN space gets here. Nothing was written and the log is not
    /// poisoned.
    OutOfLsns {
        /// The LSN the batch's first record would have had.
        next: Lsn,
    },
    /// The log needs a new segment and the active one has the last id a segment may have
    /// (`u64::MAX - 2`; the two ids above it are the start slots'). Only a log whose ids start
    /// near the end gets here. Nothing was written and the log is not poisoned.
    OutOfSegmentIds {
        /// The active segment's id.
        last: SegmentId,
    },
    /// A storage operation failed; the log is now poisoned.
    Storage(IoFailure<E>),
}

/// Syncing failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SyncError<E> {
    /// An earlier failure poisoned the log; reopen it.
    Poisoned(Poisoned),
    /// The sync failed; the log is now poisoned and the unsynced records may be lost.
    Storage(IoFailure<E>),
}

/// Reading failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ReadError<E> {
    /// The LSN is not in the log.
    OutOfRange {
        /// The LSN asked for.
        lsn: Lsn,
        /// The first LSN in the log.
        first: Lsn,
        /// The last LSN in the log (`first − 1` when empty).
        last: Lsn,
    },
    /// The caller's buffer is too small for the next record; the reader did not advance.
    BufferTooSmall {
        /// The record's length; for a compressed record, its original length plus its stored
        /// length (it is decoded within the one buffer, see [`crate::Reader::next`]).
        needed: usize,
    },
    /// A record read back does not verify.
    Corrupted(Corruption),
    /// The record's segment is encrypted with a key that is not in the log's keyring (a
    /// missing key, or a wrong one: key ids are derived from the keys). Nothing is wrong with
    /// the log and nothing was changed; the reader did not advance.
    KeyMissing {
        /// The segment.
        segment: SegmentId,
        /// The key id its header names.
        key_id: u32,
    },
    /// A record uses a transform this build cannot undo (a compressed record without the
    /// `compress` feature). Nothing is wrong with the log; the reader did not advance.
    NotBuiltIn {
        /// The segment holding the record.
        segment: SegmentId,
        /// The record's LSN.
        lsn: Lsn,
        /// What is missing.
        what: &'static str,
    },
    /// A compressed record decompresses to more than this log's `max_record_size` (at most
    /// the format's limit): it was written with a larger limit. A configuration error, as
    /// [`OpenError::RecordTooLarge`] for a record stored that long; nothing is wrong with the
    /// log and the reader did not advance. Read with a `max_record_size` of at least `length`.
    RecordTooLarge {
        /// The segment holding the record.
        segment: SegmentId,
        /// The record's LSN.
        lsn: Lsn,
        /// Its length once decompressed.
        length: usize,
        /// The configured limit.
        max: u32,
    },
    /// A storage operation failed.
    Storage(IoFailure<E>),
    /// A `truncate_back` removed records this reader had already returned: everything after
    /// `to` is gone, and may be replaced by new records at the same LSNs. Returned once per
    /// such cut (the lowest, if several ran since the last read), by a reader that shares the
    /// log with writers (walden-std's `SharedReader`; a reader that borrows the log cannot see
    /// a truncation). Nothing is wrong with the log: the reader goes on at `to + 1`, or at the
    /// LSN it was made at if that is later, so its next record is the one now at that LSN. The
    /// caller discards what it took from the records after `to`.
    Rewound {
        /// The last LSN kept.
        to: Lsn,
    },
}

/// Truncating (either end) failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum TruncateError<E> {
    /// An earlier failure poisoned the log; reopen it.
    Poisoned(Poisoned),
    /// The LSN is before the start of the log.
    OutOfRange {
        /// The LSN asked for.
        lsn: Lsn,
        /// The first LSN in the log.
        first: Lsn,
    },
    /// `truncate_back` would split an atomic batch; the batch starts at `batch_start`.
    InsideBatch {
        /// The first LSN of the batch.
        batch_start: Lsn,
    },
    /// A record on the way does not verify.
    Corrupted(Corruption),
    /// A storage operation failed. A failed read (`op` is [`Op::Read`], while finding where
    /// to cut) changed nothing and leaves the log usable; after any other the log is poisoned.
    Storage(IoFailure<E>),
    /// `truncate_front` is not in this build (walden-core's feature `start-slots` is off).
    /// Nothing was changed.
    NotBuiltIn,
}

impl<E: StorageError> fmt::Display for OpenError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Config(c) => write!(f, "invalid configuration: {c}"),
            Self::ScratchTooSmall { min } => {
                write!(f, "scratch buffer must be at least {min} bytes")
            }
            Self::TooManySegments { capacity } => {
                write!(f, "more segments than the segment table holds ({capacity})")
            }
            Self::Corrupted(c) => write!(f, "recovery refused: {c}"),
            Self::RecordTooLarge {
                segment,
                offset,
                lsn,
                length,
                max,
            } => write!(
                f,
                "record {lsn} in segment {segment} at offset {offset} is {length} bytes, more than \
                 max_record_size {max}: the log was written with a larger limit; reopen with \
                 max_record_size of at least {length} (nothing was changed)"
            ),
            Self::Storage(s) => write!(f, "recovery: {s}"),
            Self::EarlyRotationNotBuiltIn { segment } => write!(
                f,
                "segment {segment} is torn or damaged and its successor was created by an early \
                 rotation: judging what is lost needs walden-core's feature early-rotation, not \
                 in this build; open the log with a build that has it (nothing was changed)"
            ),
        }
    }
}

impl<E: StorageError> fmt::Display for AppendError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Poisoned(p) => write!(f, "append refused: {p}"),
            Self::RecordTooLarge { len, max } => {
                write!(f, "record of {len} bytes exceeds max_record_size {max}")
            }
            Self::BatchTooLarge { len, max } => {
                write!(f, "batch of {len} bytes exceeds max_batch_size {max}")
            }
            Self::BatchDoesNotFit { needed, room } => write!(
                f,
                "batch needs {needed} bytes stored, an empty segment of this storage has room for {room}; split it"
            ),
            Self::SegmentTableFull { capacity } => write!(
                f,
                "segment table full ({capacity} segments); truncate_front or raise the capacity"
            ),
            Self::ScratchTooSmall { needed } => write!(
                f,
                "encrypting needs {needed} bytes of scratch (Wal::append_batch_in); nothing written"
            ),
            Self::OutOfLsns { next } => write!(
                f,
                "the batch would take LSNs past the last one a log may use (next LSN {next}); nothing written"
            ),
            Self::OutOfSegmentIds { last } => write!(
                f,
                "segment {last} has the last id a segment may have; nothing written"
            ),
            Self::Storage(s) => write!(f, "append: {s}; the log is poisoned"),
        }
    }
}

impl<E: StorageError> fmt::Display for SyncError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Poisoned(p) => write!(f, "sync refused: {p}"),
            Self::Storage(s) => write!(f, "sync: {s}; the log is poisoned"),
        }
    }
}

impl<E: StorageError> fmt::Display for ReadError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OutOfRange { lsn, first, last } => {
                write!(
                    f,
                    "LSN {lsn} is not in the log (first {first}, last {last})"
                )
            }
            Self::BufferTooSmall { needed } => {
                write!(f, "buffer too small: the record needs {needed} bytes")
            }
            Self::Corrupted(c) => write!(f, "read: {c}"),
            Self::KeyMissing { segment, key_id } => write!(
                f,
                "read: segment {segment} is encrypted with key {key_id:#010x}, which is not in the keyring"
            ),
            Self::NotBuiltIn { segment, lsn, what } => write!(
                f,
                "read: record {lsn} in segment {segment} is a {what}, which this build cannot decode"
            ),
            Self::RecordTooLarge {
                segment,
                lsn,
                length,
                max,
            } => write!(
                f,
                "read: record {lsn} in segment {segment} is {length} bytes once decompressed, more than max_record_size {max} (a configuration error, not damage: read with max_record_size of at least {length}, as the writer had)"
            ),
            Self::Storage(s) => write!(f, "read: {s}"),
            Self::Rewound { to } => write!(
                f,
                "read: records after LSN {to} that this reader returned were removed by truncate_back; it reads on from the log as it is now"
            ),
        }
    }
}

impl<E: StorageError> fmt::Display for TruncateError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Poisoned(p) => write!(f, "truncate refused: {p}"),
            Self::OutOfRange { lsn, first } => {
                write!(f, "LSN {lsn} is before the start of the log ({first})")
            }
            Self::InsideBatch { batch_start } => write!(
                f,
                "cannot truncate inside an atomic batch; it starts at LSN {batch_start}"
            ),
            Self::Corrupted(c) => write!(f, "truncate: {c}"),
            Self::Storage(s) if s.op == Op::Read => {
                write!(f, "truncate: {s}; nothing was changed")
            }
            Self::Storage(s) => write!(f, "truncate: {s}; the log is poisoned"),
            Self::NotBuiltIn => write!(
                f,
                "truncate_front is not built in (walden-core's feature `start-slots` is off)"
            ),
        }
    }
}

impl<E: StorageError> core::error::Error for OpenError<E> {}
impl<E: StorageError> core::error::Error for AppendError<E> {}
impl<E: StorageError> core::error::Error for SyncError<E> {}
impl<E: StorageError> core::error::Error for ReadError<E> {}
impl<E: StorageError> core::error::Error for TruncateError<E> {}
impl core::error::Error for Poisoned {}
impl core::error::Error for Corruption {}

impl<E> From<Poisoned> for AppendError<E> {
    fn from(p: Poisoned) -> Self {
        AppendError::Poisoned(p)
    }
}

impl<E> From<Poisoned> for SyncError<E> {
    fn from(p: Poisoned) -> Self {
        SyncError::Poisoned(p)
    }
}

impl<E> From<Poisoned> for TruncateError<E> {
    fn from(p: Poisoned) -> Self {
        TruncateError::Poisoned(p)
    }
}

impl<E> From<IoFailure<E>> for AppendError<E> {
    fn from(e: IoFailure<E>) -> Self {
        AppendError::Storage(e)
    }
}

impl<E> From<IoFailure<E>> for SyncError<E> {
    fn from(e: IoFailure<E>) -> Self {
        SyncError::Storage(e)
    }
}

impl<E> From<IoFailure<E>> for TruncateError<E> {
    fn from(e: IoFailure<E>) -> Self {
        TruncateError::Storage(e)
    }
}

impl<E> From<IoFailure<E>> for OpenError<E> {
    fn from(e: IoFailure<E>) -> Self {
        OpenError::Storage(e)
    }
}

impl<E> From<IoFailure<E>> for ReadError<E> {
    fn from(e: IoFailure<E>) -> Self {
        ReadError::Storage(e)
    }
}

impl<E> From<SyncError<E>> for AppendError<E> {
    fn from(e: SyncError<E>) -> Self {
        match e {
            SyncError::Poisoned(p) => AppendError::Poisoned(p),
            SyncError::Storage(s) => AppendError::Storage(s),
        }
    }
}

impl<E> From<SyncError<E>> for TruncateError<E> {
    fn from(e: SyncError<E>) -> Self {
        match e {
            SyncError::Poisoned(p) => TruncateError::Poisoned(p),
            SyncError::Storage(s) => TruncateError::Storage(s),
        }
    }
}

/// Maps a storage error kind onto `embedded-io`'s, so Walden errors can travel through
/// `embedded-io` readers and writers.
pub const fn io_kind(kind: StorageErrorKind) -> embedded_io::ErrorKind {
    use embedded_io::ErrorKind as K;
    match kind {
        StorageErrorKind::NotFound => K::NotFound,
        StorageErrorKind::AlreadyExists => K::AlreadyExists,
        StorageErrorKind::NoSpace => K::OutOfMemory,
        StorageErrorKind::PermissionDenied | StorageErrorKind::Locked => K::PermissionDenied,
        StorageErrorKind::ShortWrite => K::WriteZero,
        StorageErrorKind::Unsupported => K::Unsupported,
        StorageErrorKind::Io => K::Other,
    }
}

impl embedded_io::Error for Poisoned {
    fn kind(&self) -> embedded_io::ErrorKind {
        io_kind(self.kind)
    }
}

impl embedded_io::Error for Corruption {
    fn kind(&self) -> embedded_io::ErrorKind {
        embedded_io::ErrorKind::InvalidData
    }
}

impl<E: StorageError> embedded_io::Error for AppendError<E> {
    fn kind(&self) -> embedded_io::ErrorKind {
        match self {
            Self::Poisoned(p) => embedded_io::Error::kind(p),
            Self::RecordTooLarge { .. }
            | Self::BatchTooLarge { .. }
            | Self::BatchDoesNotFit { .. } => embedded_io::ErrorKind::InvalidInput,
            Self::SegmentTableFull { .. } => embedded_io::ErrorKind::OutOfMemory,
            Self::ScratchTooSmall { .. } => embedded_io::ErrorKind::InvalidInput,
            Self::OutOfLsns { .. } | Self::OutOfSegmentIds { .. } => embedded_io::ErrorKind::Other,
            Self::Storage(s) => io_kind(s.error.kind()),
        }
    }
}

impl<E: StorageError> embedded_io::Error for SyncError<E> {
    fn kind(&self) -> embedded_io::ErrorKind {
        match self {
            Self::Poisoned(p) => embedded_io::Error::kind(p),
            Self::Storage(s) => io_kind(s.error.kind()),
        }
    }
}

impl<E: StorageError> embedded_io::Error for ReadError<E> {
    fn kind(&self) -> embedded_io::ErrorKind {
        match self {
            Self::OutOfRange { .. } | Self::BufferTooSmall { .. } | Self::RecordTooLarge { .. } => {
                embedded_io::ErrorKind::InvalidInput
            }
            Self::NotBuiltIn { .. } | Self::KeyMissing { .. } => {
                embedded_io::ErrorKind::Unsupported
            }
            Self::Corrupted(_) => embedded_io::ErrorKind::InvalidData,
            Self::Storage(s) => io_kind(s.error.kind()),
            // Not `Interrupted`: generic I/O loops retry that silently, which is the
            // divergence this error exists to prevent.
            Self::Rewound { .. } => embedded_io::ErrorKind::Other,
        }
    }
}

impl<E: StorageError> embedded_io::Error for OpenError<E> {
    fn kind(&self) -> embedded_io::ErrorKind {
        match self {
            Self::Config(_) | Self::ScratchTooSmall { .. } | Self::RecordTooLarge { .. } => {
                embedded_io::ErrorKind::InvalidInput
            }
            Self::TooManySegments { .. } => embedded_io::ErrorKind::OutOfMemory,
            Self::Corrupted(_) => embedded_io::ErrorKind::InvalidData,
            Self::Storage(s) => io_kind(s.error.kind()),
            Self::EarlyRotationNotBuiltIn { .. } => embedded_io::ErrorKind::Unsupported,
        }
    }
}

impl<E: StorageError> embedded_io::Error for TruncateError<E> {
    fn kind(&self) -> embedded_io::ErrorKind {
        match self {
            Self::Poisoned(p) => embedded_io::Error::kind(p),
            Self::OutOfRange { .. } | Self::InsideBatch { .. } => {
                embedded_io::ErrorKind::InvalidInput
            }
            Self::Corrupted(_) => embedded_io::ErrorKind::InvalidData,
            Self::Storage(s) => io_kind(s.error.kind()),
            Self::NotBuiltIn => embedded_io::ErrorKind::Unsupported,
        }
    }
}
