//! Read-only inspection of a log: what every segment holds and how recovery would classify it,
//! without writing a byte.
//!
//! [`inspect`] runs the recovery planner — the same header checks, the same record scan, the
//! same decision table that `Wal::open` carries out — but it never stops at the first problem,
//! never repairs anything, and reports every segment to a callback. The [`Verdict`] says what
//! `Wal::open` under the configured [`RecoveryPolicy`](crate::RecoveryPolicy) would do.
//! [`Records`] then walks the verified records of one segment into a caller buffer.
//!
//! Nothing on the medium can make inspection panic or allocate; its work is bounded by the
//! segments' lengths (the same bound as recovery's).

use crate::config::Config;
use crate::cursor::{Located, RecordCursor};
use crate::error::{IoFailure, Op};
use crate::format::{RECORD_HEADER_LEN, RecordFlags, RecordKind};
use crate::lsn::Lsn;
use crate::recovery::plan::{NOTHING_FOUND, Planner, list};
use crate::storage::{SegmentId, Storage, read_full};
use crate::table::SegmentTable;
use crate::transform::DecodeError;

pub use crate::case::MissingFront;
pub use crate::recovery::plan::{InspectError, Inspection, Problem, SegmentReport, Verdict};

/// Inspects every segment of `storage` without writing, calling `each` once per segment,
/// oldest first. `config` supplies `max_record_size` (records longer are reported, as in
/// recovery) and the policy the [`Verdict`] is computed for. `Table` holds the list of segments
/// ([`crate::Fixed`] bounds it, and reports more with [`InspectError::TooManySegments`]).
pub fn inspect<S: Storage, Table: SegmentTable>(
    storage: &S,
    config: &Config,
    scratch: &mut [u8],
    each: &mut dyn FnMut(&SegmentReport),
) -> Result<Inspection, InspectError<S::Error>> {
    inspect_with_summaries::<S, Table>(storage, config, scratch, &|_| None, each)
}

/// [`inspect`], reusing scans made beforehand with [`crate::raw::scan_segment`] (for example on
/// several threads) where the segment's salt and length still match.
pub fn inspect_with_summaries<S: Storage, Table: SegmentTable>(
    storage: &S,
    config: &Config,
    scratch: &mut [u8],
    summaries: &dyn Fn(SegmentId) -> Option<crate::recovery::SegmentSummary>,
    each: &mut dyn FnMut(&SegmentReport),
) -> Result<Inspection, InspectError<S::Error>> {
    let mut planner = Planner::new(storage, config, scratch, summaries)?;
    let mut ids = Table::List::<SegmentId>::default();
    list(storage, &mut ids)?;
    let mut out = NOTHING_FOUND;
    let mut seg = None;
    planner.plan(&ids, &mut out, &mut seg, &mut 0, &mut |seg, _| {
        each(seg);
        true
    })?;
    Ok(out)
}

/// One verified record read by [`Records`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InspectedRecord<'b> {
    /// Its LSN.
    pub lsn: Lsn,
    /// Its place in a batch.
    pub kind: RecordKind,
    /// Offset of its header in the segment.
    pub offset: u64,
    /// Its `ack_gap` field.
    pub ack_gap: u32,
    /// Its `flags` (format version 3: compression, encryption).
    pub flags: RecordFlags,
    /// The length it takes on the medium (after compression).
    pub stored_len: u32,
    /// The payload as appended (decoded), borrowed from the caller's buffer.
    pub payload: &'b [u8],
}

/// Reading a record with [`Records`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordsError<E> {
    /// The caller's buffer is too small; the cursor did not advance.
    BufferTooSmall {
        /// The record's payload length (for a compressed record, its original plus its
        /// stored length, as [`crate::Reader::next`]).
        needed: usize,
    },
    /// The segment is encrypted with a key not given (or not in the keyring given).
    KeyMissing {
        /// The segment.
        segment: SegmentId,
        /// The key id its header names.
        key_id: u32,
    },
    /// The record uses a transform this build cannot undo (feature `compress`).
    NotBuiltIn {
        /// Where.
        offset: u64,
        /// What is missing.
        what: &'static str,
    },
    /// The record's stored bytes verify, but do not decode or authenticate: damage that
    /// checksums cannot see (a record altered with its checksums recomputed). For an
    /// encrypted record it can also be a different key that shares the key id (ids are 32
    /// bits). Corruption, as recovery's `MidLogCorruption` for the same record.
    Damaged {
        /// Where (the record's offset).
        offset: u64,
        /// What is wrong.
        detail: &'static str,
    },
    /// A record that verified during inspection no longer does (the medium changed).
    Changed {
        /// Where.
        offset: u64,
        /// What is wrong now.
        detail: &'static str,
    },
    /// A storage read failed.
    Storage(IoFailure<E>),
}

/// A cursor over the records inspection verified in one segment (`[header, end)`).
#[derive(Clone, Copy, Debug)]
pub struct Records {
    segment: SegmentId,
    cursor: RecordCursor,
    #[cfg_attr(not(feature = "encrypt"), allow(dead_code))]
    log_id: u64,
    #[cfg_attr(not(feature = "encrypt"), allow(dead_code))]
    salt: u64,
    key_id: Option<u32>,
}

impl Records {
    /// A cursor at the segment's first record; `None` if its header is unreadable.
    pub fn new(seg: &SegmentReport) -> Option<Self> {
        let h = seg.header.ok()?;
        let keys = crate::cursor::SegmentKeys::new(&h, u32::MAX, seg.end);
        Some(Self {
            segment: seg.id,
            cursor: RecordCursor::new(keys, h.first_lsn),
            log_id: h.log_id,
            salt: h.salt,
            key_id: h.key_id,
        })
    }

    /// The LSN the next call returns.
    pub fn position(&self) -> Lsn {
        self.cursor.next_lsn()
    }

    fn read<S: Storage>(
        &self,
        st: &S,
        at: u64,
        buf: &mut [u8],
    ) -> Result<usize, RecordsError<S::Error>> {
        read_full(st, self.segment, at, buf).map_err(|error| {
            RecordsError::Storage(IoFailure {
                op: Op::Read,
                segment: Some(self.segment),
                error,
            })
        })
    }

    fn changed<E>(&self, detail: &'static str) -> RecordsError<E> {
        RecordsError::Changed {
            offset: self.cursor.offset(),
            detail: crate::error::detail(detail),
        }
    }

    /// The next data record's header (metadata records are stepped over), or `None` at the end.
    fn header<S: Storage>(&mut self, st: &S) -> Result<Option<Located>, RecordsError<S::Error>> {
        loop {
            if self.cursor.at_end() {
                return Ok(None);
            }
            let mut buf = [0u8; RECORD_HEADER_LEN];
            let n = self.read(st, self.cursor.offset(), &mut buf)?;
            let found = self.cursor.data_header(&buf[..n]);
            if let Some(at) = found.map_err(|f| self.changed(f.describe()))? {
                return Ok(Some(at));
            }
        }
    }

    /// Skips one record without reading its payload; `false` at the end.
    pub fn skip<S: Storage>(&mut self, st: &S) -> Result<bool, RecordsError<S::Error>> {
        match self.header(st)? {
            Some(at) => {
                self.cursor
                    .accept(&at, None)
                    .map_err(|f| self.changed(f.describe()))?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// The key id of the segment's records, `None` in plaintext.
    pub fn key_id(&self) -> Option<u32> {
        self.key_id
    }

    /// Reads and verifies the next record into `buf`, or `None` at the end. An encrypted
    /// record fails with [`RecordsError::KeyMissing`]: read it with `Records::next_with_keys` (feature `encrypt`).
    pub fn next<'b, S: Storage>(
        &mut self,
        st: &S,
        buf: &'b mut [u8],
    ) -> Result<Option<InspectedRecord<'b>>, RecordsError<S::Error>> {
        self.next_keyed(st, buf, None)
    }

    /// [`Records::next`], decrypting with `keys` (feature `encrypt`): authenticates every
    /// encrypted record, so a record altered with its checksum recomputed is found
    /// ([`RecordsError::Damaged`] with the tampering detail).
    #[cfg(feature = "encrypt")]
    pub fn next_with_keys<'b, S: Storage>(
        &mut self,
        st: &S,
        buf: &'b mut [u8],
        keys: &crate::crypt::Keyring,
    ) -> Result<Option<InspectedRecord<'b>>, RecordsError<S::Error>> {
        let key = self
            .key_id
            .map(|k| crate::transform::Unseal::new(keys, self.log_id, self.segment, self.salt, k));
        self.next_keyed(st, buf, key)
    }

    fn next_keyed<'b, S: Storage>(
        &mut self,
        st: &S,
        buf: &'b mut [u8],
        key: Option<crate::transform::Unseal<'_>>,
    ) -> Result<Option<InspectedRecord<'b>>, RecordsError<S::Error>> {
        let Some(at) = self.header(st)? else {
            return Ok(None);
        };
        let len = at.header.length as usize;
        if len > buf.len() {
            return Err(RecordsError::BufferTooSmall { needed: len });
        }
        // As the log's reader: stored bytes at the end, decoded ones at the start.
        let split = if at.header.flags == RecordFlags::PLAIN {
            0
        } else {
            buf.len() - len
        };
        let (out, stored) = buf.split_at_mut(split);
        let stored = &mut stored[..len];
        let n = self.read(st, at.payload_offset(), stored)?;
        self.cursor
            .verify_payload(&at, &stored[..n])
            .map_err(|f| self.changed(f.describe()))?;
        let payload = self
            .cursor
            .decode_in_buffer(&at, stored, out, key)
            .map_err(|e| match e {
                DecodeError::KeyMissing => RecordsError::KeyMissing {
                    segment: self.segment,
                    key_id: self.key_id.unwrap_or(0),
                },
                DecodeError::BufferTooSmall { needed } => RecordsError::BufferTooSmall { needed },
                DecodeError::NotBuiltIn(what) => RecordsError::NotBuiltIn {
                    offset: at.offset,
                    what,
                },
                DecodeError::Corrupt(f) => RecordsError::Damaged {
                    offset: at.offset,
                    detail: crate::error::detail(f.describe()),
                },
                // Inspection reads with no limit but the format's, past which it is damage.
                DecodeError::TooLarge { .. } => RecordsError::Damaged {
                    offset: at.offset,
                    detail: crate::error::detail(crate::raw::Fault::Undecodable.describe()),
                },
            })?;
        self.cursor
            .accept(&at, None)
            .map_err(|f| self.changed(f.describe()))?;
        Ok(Some(InspectedRecord {
            lsn: at.header.lsn,
            kind: at.header.kind,
            offset: at.offset,
            ack_gap: at.header.ack_gap,
            flags: at.header.flags,
            stored_len: at.header.length,
            payload,
        }))
    }
}

#[cfg(test)]
mod tests;
