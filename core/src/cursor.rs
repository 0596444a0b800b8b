//! The one place record headers are decoded: a cursor over one segment's records.
//!
//! [`RecordCursor`] does no I/O. Its caller reads the bytes at [`RecordCursor::offset`] (from a
//! storage, a copied chunk, a test vector) and feeds them to [`RecordCursor::header`], which
//! verifies the header checksum *before* trusting any field, then checks the kind, the LSN, the
//! length (against `max_record_size` and the end of the data) and batch framing. The caller
//! verifies the payload with [`RecordCursor::payload_checksum`] however suits it (in one piece or
//! streamed through a window) and hands the record back to [`RecordCursor::accept`], which moves
//! on and keeps track of the last complete unit (a single record, a whole batch, a metadata
//! record): that is where a clean log ends.
//!
//! Recovery's scan, the log's readers, `locate`, inspection and the std adapter's concurrent
//! reader all drive this one cursor, so a rule about what a valid record is lives in one place.

use core::fmt;

use crate::checksum::{Checksum, ChecksumAlgorithm};
use crate::config::MAX_RECORD_SIZE_LIMIT;
use crate::format::{
    META_LEN, Meta, RECORD_HEADER_LEN, RecordFlags, RecordHeader, RecordKind, RecordProblem,
    SEGMENT_HEADER_LEN, SegmentHeader, VERSION_WITH_FLAGS, VERSION_WITH_META,
};
use crate::lsn::Lsn;
use crate::storage::SegmentId;

/// What a cursor needs to know about its segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentKeys {
    /// The records' checksum algorithm.
    pub checksum: ChecksumAlgorithm,
    /// The segment's salt.
    pub salt: u64,
    /// The segment's format version (metadata records exist from version 2 on).
    pub version: u16,
    /// The longest payload trusted (`max_record_size`).
    pub max_record: u32,
    /// Where the data ends: the segment's length for a scan, the log's end of its last
    /// complete append for a reader.
    pub end: u64,
    /// The key id of an encrypted segment (version 3), `None` in plaintext: a data record's
    /// `encrypted` flag must say the same.
    pub key_id: Option<u32>,
}

impl SegmentKeys {
    /// The keys of a segment with header `h`, trusting payloads up to `max_record` bytes and
    /// data up to `end`.
    pub(crate) fn new(h: &SegmentHeader, max_record: u32, end: u64) -> Self {
        Self {
            checksum: h.checksum,
            salt: h.salt,
            version: h.version,
            max_record,
            end,
            key_id: h.key_id,
        }
    }
}

/// Why the bytes where a record should start are not one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Fault {
    /// Fewer bytes than a record header before the end of the data.
    PartialHeader,
    /// The header checksum does not match: torn, zeroed, stale or damaged bytes.
    HeaderChecksum,
    /// The header verifies, but its kind is unknown.
    UnknownKind,
    /// The header verifies, but its flags or reserved bytes are set.
    ReservedBits,
    /// The header verifies, but its `ack_gap` is zero.
    ZeroAckGap,
    /// The header verifies, but its LSN is not the next one.
    UnexpectedLsn {
        /// The LSN in the header.
        found: Lsn,
    },
    /// The header verifies, but the payload is longer than `max_record_size`. Unlike every
    /// other fault this is not evidence of damage: the record may have been written under a
    /// larger limit.
    TooLong {
        /// The payload length in the header.
        length: u32,
    },
    /// The header verifies, but its length is beyond any `max_record_size` a log can have
    /// ([`MAX_RECORD_SIZE_LIMIT`]): no writer produced it.
    ImpossibleLength,
    /// The record runs past the end of the data.
    PastEnd,
    /// The payload checksum does not match.
    PayloadChecksum,
    /// A batch record where none may be (a middle or last record outside a batch, a single or
    /// first record inside one).
    BatchFraming,
    /// The data ends inside a batch.
    IncompleteBatch,
    /// A metadata record that cannot be here: in a version-1 segment, inside a batch, or of a
    /// type segments do not hold.
    BadMeta,
    /// A record after the segment's seal.
    AfterSeal,
    /// The stored payload verifies against its checksum but does not decode (a compressed
    /// frame that does not decompress to its `original_len`, or claims more than
    /// `max_record_size`): damage or tampering, never a torn write.
    Undecodable,
    /// The stored payload verifies against its checksum but its AEAD tag does not: the bytes
    /// were altered by someone who recomputed the checksum (tampering), never a torn write.
    Tampered,
}

impl Fault {
    /// What is wrong, in words.
    pub const fn describe(self) -> &'static str {
        match self {
            Fault::PartialHeader => "partial record header",
            Fault::HeaderChecksum => "record header checksum mismatch",
            Fault::UnknownKind => "unknown record kind",
            Fault::ReservedBits => "reserved bits set",
            Fault::ZeroAckGap => "ack_gap of zero",
            Fault::UnexpectedLsn { .. } => "unexpected LSN",
            Fault::TooLong { .. } => "record length exceeds max_record_size",
            Fault::ImpossibleLength => "record length beyond any max_record_size",
            Fault::PastEnd => "record extends past the end of the segment",
            Fault::PayloadChecksum => "payload checksum mismatch",
            Fault::BatchFraming => "batch framing violated",
            Fault::IncompleteBatch => "incomplete batch at the end of the segment",
            Fault::BadMeta => "invalid metadata record",
            Fault::AfterSeal => "record after the segment's seal",
            Fault::Undecodable => "payload does not decode",
            Fault::Tampered => "payload fails authentication",
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

impl From<RecordProblem> for Fault {
    fn from(p: RecordProblem) -> Self {
        match p {
            RecordProblem::Short => Fault::PartialHeader,
            RecordProblem::BadChecksum => Fault::HeaderChecksum,
            RecordProblem::UnknownKind => Fault::UnknownKind,
            RecordProblem::ReservedBits => Fault::ReservedBits,
            RecordProblem::ZeroAckGap => Fault::ZeroAckGap,
        }
    }
}

/// A verified record header and where it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Located {
    /// Offset of the header in the segment.
    pub offset: u64,
    /// The header.
    pub header: RecordHeader,
}

impl Located {
    /// Offset of the payload.
    pub fn payload_offset(&self) -> u64 {
        self.offset + RECORD_HEADER_LEN as u64
    }

    /// Offset just past the record.
    pub fn end(&self) -> u64 {
        self.payload_offset() + u64::from(self.header.length)
    }

    /// Whether this is a metadata record.
    pub(crate) fn is_meta(&self) -> bool {
        self.header.kind == RecordKind::Meta
    }
}

/// A segment's seal, as found by a cursor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SealFound {
    /// Offset of the seal record (the segment's data ends there).
    pub offset: u64,
    /// The successor it names.
    pub successor: SegmentId,
    /// The successor's first LSN (the seal's `lsn` field).
    pub next_lsn: Lsn,
}

/// The last complete unit a cursor accepted: where a log that ends here ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Complete {
    /// Offset just past it (the segment header's length when nothing was accepted).
    pub end: u64,
    /// The LSN of the last data record (`first_lsn − 1` when there is none).
    pub last_lsn: Lsn,
    /// Data records accepted in complete units.
    pub records: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct OpenBatch {
    offset: u64,
    first: Lsn,
    records: u64,
}

/// A cursor over one segment's records. See the module documentation.
#[derive(Clone, Copy, Debug)]
pub struct RecordCursor {
    keys: SegmentKeys,
    offset: u64,
    next: Lsn,
    batch: Option<OpenBatch>,
    /// Whether batch framing is known: false for a cursor placed at an arbitrary record (a
    /// reader resuming from an index), which may be inside a batch.
    framing: bool,
    complete: Complete,
    seal: Option<SealFound>,
}

impl RecordCursor {
    /// A cursor at the segment's first record, which has LSN `first_lsn`.
    pub(crate) fn new(keys: SegmentKeys, first_lsn: Lsn) -> Self {
        let offset = SEGMENT_HEADER_LEN as u64;
        Self {
            keys,
            offset,
            next: first_lsn,
            batch: None,
            framing: true,
            complete: Complete {
                end: offset,
                last_lsn: first_lsn.prev(),
                records: 0,
            },
            seal: None,
        }
    }

    /// A cursor at a record already known to be valid (`lsn` at `offset`), possibly inside a
    /// batch: batch framing is not checked from here on (recovery checked it).
    // Never inlined on 32-bit targets, like `data_header` and `SegmentInfo::keys`: one copy
    // for every reader (docs/EMBEDDED.md).
    #[cfg_attr(target_pointer_width = "32", inline(never))]
    pub fn resume(keys: SegmentKeys, offset: u64, lsn: Lsn) -> Self {
        Self {
            offset,
            framing: false,
            complete: Complete {
                end: offset,
                last_lsn: lsn.prev(),
                records: 0,
            },
            ..Self::new(keys, lsn)
        }
    }

    /// Moves the end of the data (a reader's log grew).
    pub fn set_end(&mut self, end: u64) {
        self.keys.end = end;
    }

    /// Where the next record header is.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The longest payload trusted (`max_record_size`).
    pub(crate) fn max_record(&self) -> u32 {
        self.keys.max_record
    }

    /// The LSN the next data record must have.
    pub fn next_lsn(&self) -> Lsn {
        self.next
    }

    /// Whether the data ends at [`RecordCursor::offset`].
    pub(crate) fn at_end(&self) -> bool {
        self.offset >= self.keys.end
    }

    /// The open batch, if the cursor is inside one: its first record's offset and LSN.
    pub(crate) fn open_batch(&self) -> Option<(u64, Lsn)> {
        self.batch.map(|b| (b.offset, b.first))
    }

    /// The last complete unit.
    pub(crate) fn complete(&self) -> Complete {
        self.complete
    }

    /// The seal, if one was accepted.
    pub(crate) fn seal(&self) -> Option<SealFound> {
        self.seal
    }

    /// Why the data may not end here: `Some(IncompleteBatch)` inside a batch.
    pub(crate) fn end_fault(&self) -> Option<Fault> {
        self.batch.map(|_| Fault::IncompleteBatch)
    }

    /// Verifies and checks the header at [`RecordCursor::offset`]. `bytes` are the bytes there:
    /// at least [`RECORD_HEADER_LEN`] unless the data ends sooner. Does not move the cursor.
    // Always inlined in 64-bit replay builds (servers): called, its 40-byte `Result` was
    // stored field by field and loaded back 16 bytes at a time, and the failed store-to-load
    // forwarding was 60% of the replay scan's own code in a profile (`Located` copies in
    // `replay_segment_ahead`). Likewise `header_verified` and `decode_verified`.
    #[cfg_attr(all(feature = "replay", target_pointer_width = "32"), inline)]
    #[cfg_attr(
        all(feature = "replay", not(target_pointer_width = "32")),
        inline(always)
    )]
    pub fn header(&self, bytes: &[u8]) -> Result<Located, Fault> {
        let h = RecordHeader::decode(self.here(bytes), self.keys.checksum, self.keys.salt)?;
        self.check(h)
    }

    /// [`RecordCursor::header`] for bytes whose header checksum was verified before, in the
    /// same memory (a replay's hand-over, behind its scan): every check but that one.
    #[cfg(feature = "replay")]
    #[inline(always)]
    pub(crate) fn header_verified(&self, bytes: &[u8]) -> Result<Located, Fault> {
        self.check(RecordHeader::decode_verified(self.here(bytes))?)
    }

    /// The part of `bytes` (which begin at the cursor) before the end of the data.
    #[inline(always)]
    fn here<'b>(&self, bytes: &'b [u8]) -> &'b [u8] {
        let available = self.keys.end.saturating_sub(self.offset);
        &bytes[..bytes.len().min(available.min(usize::MAX as u64) as usize)]
    }

    /// Checks the decoded header `h` at [`RecordCursor::offset`] against the cursor's state.
    #[cfg_attr(feature = "replay", inline(always))]
    fn check(&self, h: RecordHeader) -> Result<Located, Fault> {
        let here = Located {
            offset: self.offset,
            header: h,
        };
        // No record is written at `u64::MAX`: no LSN could follow it.
        if h.lsn != self.next || h.lsn.0 == u64::MAX {
            return Err(Fault::UnexpectedLsn { found: h.lsn });
        }
        if self.seal.is_some() {
            return Err(Fault::AfterSeal);
        }
        if h.kind == RecordKind::Meta {
            if self.keys.version < VERSION_WITH_META
                || self.batch.is_some()
                || h.length as usize != META_LEN
                || h.flags != RecordFlags::PLAIN
            {
                return Err(Fault::BadMeta);
            }
        } else {
            // Flags exist from version 3 on; a data record is encrypted exactly when its
            // segment is.
            if h.flags != RecordFlags::PLAIN && self.keys.version < VERSION_WITH_FLAGS
                || h.flags.encrypted() != self.keys.key_id.is_some()
            {
                return Err(Fault::ReservedBits);
            }
            // A transformed record may store a few bytes more than it holds (the frame
            // prefix, the AEAD tag); what it holds is bounded again when it is decoded.
            let overhead = h.flags.overhead();
            if h.length > MAX_RECORD_SIZE_LIMIT + overhead {
                return Err(Fault::ImpossibleLength);
            } else if h.length > self.keys.max_record.saturating_add(overhead) {
                return Err(Fault::TooLong { length: h.length });
            }
        }
        if here.end() > self.keys.end {
            return Err(Fault::PastEnd);
        }
        if self.framing {
            let inside = self.batch.is_some();
            match h.kind {
                RecordKind::Single | RecordKind::First if inside => {
                    return Err(Fault::BatchFraming);
                }
                RecordKind::Middle | RecordKind::Last if !inside => {
                    return Err(Fault::BatchFraming);
                }
                _ => {}
            }
        }
        Ok(here)
    }

    /// For readers, which step over metadata records: the data record at the cursor (see
    /// [`RecordCursor::header`]), or `None` after moving past a metadata record (call again with
    /// the bytes at the new offset).
    #[cfg_attr(target_pointer_width = "32", inline(never))]
    pub fn data_header(&mut self, bytes: &[u8]) -> Result<Option<Located>, Fault> {
        let at = self.header(bytes)?;
        if !at.is_meta() {
            return Ok(Some(at));
        }
        self.accept(&at, None)?;
        Ok(None)
    }

    /// A checksum to feed the payload of `at` into; compare with
    /// [`RecordCursor::payload_matches`].
    pub(crate) fn payload_checksum(&self) -> Checksum {
        self.keys.checksum.salted(self.keys.salt)
    }

    /// Whether `sum` (a [`RecordCursor::payload_checksum`] fed the whole payload) matches.
    pub(crate) fn payload_matches(&self, at: &Located, sum: Checksum) -> bool {
        sum.finish() == at.header.payload_crc
    }

    /// Verifies a payload held in one piece.
    #[cfg_attr(all(feature = "replay", not(target_pointer_width = "32")), inline)]
    #[cfg_attr(target_pointer_width = "32", inline(always))]
    pub fn verify_payload(&self, at: &Located, payload: &[u8]) -> Result<(), Fault> {
        if payload.len() == at.header.length as usize
            && self.keys.checksum.of_salted(self.keys.salt, payload) == at.header.payload_crc
        {
            Ok(())
        } else {
            Err(Fault::PayloadChecksum)
        }
    }

    /// Moves past the record `at` (returned by [`RecordCursor::header`] at the current
    /// offset). For a metadata record, `payload` (its verified bytes) is decoded and must be
    /// valid; with `None` it is skipped unread. Returns what the metadata record said.
    #[cfg_attr(feature = "replay", inline)]
    pub fn accept(&mut self, at: &Located, payload: Option<&[u8]>) -> Result<Option<Meta>, Fault> {
        let h = &at.header;
        let end = at.end();
        let mut meta = None;
        match h.kind {
            RecordKind::Meta => {
                if let Some(p) = payload {
                    // Segments hold seals only; start records live in the start slots.
                    let m = Meta::decode(p).ok_or(Fault::BadMeta)?;
                    let Meta::Seal { successor } = m else {
                        return Err(Fault::BadMeta);
                    };
                    self.seal = Some(SealFound {
                        offset: at.offset,
                        successor,
                        next_lsn: h.lsn,
                    });
                    meta = Some(m);
                }
                self.complete.end = end;
            }
            RecordKind::Single => {
                self.next = h.lsn.next();
                self.complete = Complete {
                    end,
                    last_lsn: h.lsn,
                    records: self.complete.records + 1,
                };
            }
            RecordKind::First if self.framing => {
                self.batch = Some(OpenBatch {
                    offset: at.offset,
                    first: h.lsn,
                    records: 1,
                });
                self.next = h.lsn.next();
            }
            RecordKind::Middle if self.framing => {
                if let Some(b) = &mut self.batch {
                    b.records += 1;
                }
                self.next = h.lsn.next();
            }
            // A last record completes its batch. (Without framing no batch is open, and it
            // completes only itself.)
            RecordKind::Last => {
                let records = self.batch.take().map_or(1, |b| b.records + 1);
                self.next = h.lsn.next();
                self.complete = Complete {
                    end,
                    last_lsn: h.lsn,
                    records: self.complete.records + records,
                };
            }
            // Without framing every record counts as complete once read.
            RecordKind::First | RecordKind::Middle => {
                self.next = h.lsn.next();
                self.complete = Complete {
                    end,
                    last_lsn: h.lsn,
                    records: self.complete.records + 1,
                };
            }
        }
        self.offset = end;
        Ok(meta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::FORMAT_VERSION;
    use std::vec::Vec;

    const SALT: u64 = 0x5a17;

    fn keys(end: u64) -> SegmentKeys {
        SegmentKeys {
            checksum: ChecksumAlgorithm::Crc32c,
            salt: SALT,
            version: FORMAT_VERSION,
            max_record: 100,
            end,
            key_id: None,
        }
    }

    fn record(lsn: u64, kind: RecordKind, payload: &[u8]) -> Vec<u8> {
        let h = RecordHeader {
            length: payload.len() as u32,
            lsn: Lsn(lsn),
            payload_crc: ChecksumAlgorithm::Crc32c.of_salted(SALT, payload),
            kind,
            flags: crate::format::RecordFlags::PLAIN,
            ack_gap: 1,
        };
        let mut v = h.encode(ChecksumAlgorithm::Crc32c, SALT).to_vec();
        v.extend_from_slice(payload);
        v
    }

    /// Drives a cursor over `body` (placed after a segment header) as recovery does.
    fn walk(body: &[u8], first: u64) -> (RecordCursor, Option<Fault>) {
        let mut bytes = std::vec![0u8; SEGMENT_HEADER_LEN];
        bytes.extend_from_slice(body);
        let mut c = RecordCursor::new(keys(bytes.len() as u64), Lsn(first));
        loop {
            if c.at_end() {
                return (c, c.end_fault());
            }
            let at = match c.header(&bytes[c.offset() as usize..]) {
                Ok(at) => at,
                Err(f) => return (c, Some(f)),
            };
            let payload = &bytes[at.payload_offset() as usize..at.end() as usize];
            if let Err(f) = c.verify_payload(&at, payload) {
                return (c, Some(f));
            }
            if let Err(f) = c.accept(&at, Some(payload)) {
                return (c, Some(f));
            }
        }
    }

    #[test]
    fn complete_units_and_where_a_clean_log_ends() {
        let mut body = record(5, RecordKind::Single, b"a");
        body.extend(record(6, RecordKind::First, b"b"));
        body.extend(record(7, RecordKind::Last, b"c"));
        let (c, fault) = walk(&body, 5);
        assert_eq!(fault, None);
        let done = c.complete();
        assert_eq!((done.last_lsn, done.records), (Lsn(7), 3));
        assert_eq!(done.end, (SEGMENT_HEADER_LEN + body.len()) as u64);

        // A batch cut before its last record: the complete prefix ends after record 5.
        let cut = body.len() - 33;
        let (c, fault) = walk(&body[..cut], 5);
        assert_eq!(fault, Some(Fault::IncompleteBatch));
        assert_eq!(c.complete().last_lsn, Lsn(5));
        assert_eq!(c.open_batch().map(|b| b.1), Some(Lsn(6)));
    }

    #[test]
    fn every_fault_is_named() {
        let one = record(1, RecordKind::Single, b"x");
        assert_eq!(
            walk(&one, 2).1,
            Some(Fault::UnexpectedLsn { found: Lsn(1) })
        );
        assert_eq!(
            walk(&record(1, RecordKind::Single, &[0; 101]), 1).1,
            Some(Fault::TooLong { length: 101 })
        );
        assert_eq!(walk(&one[..one.len() - 1], 1).1, Some(Fault::PastEnd));
        let mut flipped = one.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(walk(&flipped, 1).1, Some(Fault::PayloadChecksum));
        flipped = one.clone();
        flipped[9] ^= 1;
        assert_eq!(walk(&flipped, 1).1, Some(Fault::HeaderChecksum));
        assert_eq!(
            walk(&record(1, RecordKind::Last, b"x"), 1).1,
            Some(Fault::BatchFraming)
        );
        let mut open = record(1, RecordKind::First, b"x");
        assert_eq!(walk(&open, 1).1, Some(Fault::IncompleteBatch));
        open.extend(record(2, RecordKind::Single, b"y"));
        assert_eq!(walk(&open, 1).1, Some(Fault::BatchFraming));
        let seal = Meta::Seal { successor: 3 }.encode();
        let mut sealed = record(1, RecordKind::Single, b"x");
        sealed.extend(record(2, RecordKind::Meta, &seal));
        sealed.extend(record(2, RecordKind::Single, b"y"));
        assert_eq!(walk(&sealed, 1).1, Some(Fault::AfterSeal));
        assert_eq!(
            walk(&record(1, RecordKind::Meta, b"short"), 1).1,
            Some(Fault::BadMeta)
        );
    }

    #[test]
    fn metadata_records_take_no_lsn_and_are_remembered() {
        let mut body = record(1, RecordKind::Single, b"x");
        body.extend(record(2, RecordKind::Single, b"y"));
        body.extend(record(
            3,
            RecordKind::Meta,
            &Meta::Seal { successor: 9 }.encode(),
        ));
        let (c, fault) = walk(&body, 1);
        assert_eq!(fault, None);
        let seal = c.seal().unwrap();
        assert_eq!((seal.successor, seal.next_lsn), (9, Lsn(3)));
        assert_eq!(c.complete().last_lsn, Lsn(2));
        assert_eq!(c.complete().records, 2);
        assert_eq!(c.complete().end, (SEGMENT_HEADER_LEN + body.len()) as u64);

        // Start records belong in the start slots, not in segments.
        let start = record(
            1,
            RecordKind::Meta,
            &Meta::Start { first_segment: 4 }.encode(),
        );
        assert_eq!(walk(&start, 1).1, Some(Fault::BadMeta));

        // Version-1 segments have no metadata records.
        let mut v1 = RecordCursor::new(
            SegmentKeys {
                version: 1,
                ..keys(1000)
            },
            Lsn(2),
        );
        v1.offset = SEGMENT_HEADER_LEN as u64;
        let meta = record(2, RecordKind::Meta, &Meta::Seal { successor: 9 }.encode());
        assert_eq!(v1.header(&meta), Err(Fault::BadMeta));
        // Version 2 introduced them: an older log's seal is read (not refused as damage).
        let mut v2 = RecordCursor::new(
            SegmentKeys {
                version: crate::format::VERSION_WITH_META,
                ..keys(1000)
            },
            Lsn(2),
        );
        v2.offset = SEGMENT_HEADER_LEN as u64;
        assert!(v2.header(&meta).is_ok());
    }

    /// A cursor with `bytes` placed after a segment header (end = all of them).
    fn over(bytes: &[u8]) -> (Vec<u8>, SegmentKeys) {
        let mut v = std::vec![0u8; SEGMENT_HEADER_LEN];
        v.extend_from_slice(bytes);
        let k = keys(v.len() as u64);
        (v, k)
    }

    #[test]
    fn every_fault_reads_differently() {
        use std::string::ToString;
        let all = [
            Fault::PartialHeader,
            Fault::HeaderChecksum,
            Fault::UnknownKind,
            Fault::ReservedBits,
            Fault::ZeroAckGap,
            Fault::UnexpectedLsn { found: Lsn(3) },
            Fault::TooLong { length: 9 },
            Fault::ImpossibleLength,
            Fault::PastEnd,
            Fault::PayloadChecksum,
            Fault::BatchFraming,
            Fault::IncompleteBatch,
            Fault::BadMeta,
            Fault::AfterSeal,
            Fault::Undecodable,
            Fault::Tampered,
        ];
        let mut seen = std::collections::BTreeSet::new();
        for f in all {
            assert_eq!(f.to_string(), f.describe());
            assert!(f.describe().len() > 8, "{f:?}");
            assert!(seen.insert(f.describe()), "{f:?} reads like another fault");
        }
        assert_eq!(
            Fault::PayloadChecksum.to_string(),
            "payload checksum mismatch"
        );
        assert_eq!(Fault::from(RecordProblem::Short), Fault::PartialHeader);
        for (p, f) in [
            (RecordProblem::BadChecksum, Fault::HeaderChecksum),
            (RecordProblem::UnknownKind, Fault::UnknownKind),
            (RecordProblem::ReservedBits, Fault::ReservedBits),
            (RecordProblem::ZeroAckGap, Fault::ZeroAckGap),
        ] {
            assert_eq!(Fault::from(p), f);
        }
    }

    #[test]
    fn the_length_limits_are_inclusive() {
        // Exactly max_record bytes is a valid record; one more is TooLong (not damage).
        let (bytes, k) = over(&record(1, RecordKind::Single, &[7; 100]));
        let c = RecordCursor::new(k, Lsn(1));
        let at = c.header(&bytes[SEGMENT_HEADER_LEN..]).unwrap();
        assert_eq!((at.header.length, at.end()), (100, k.end));
        let (bytes, k) = over(&record(1, RecordKind::Single, &[7; 101]));
        let c = RecordCursor::new(k, Lsn(1));
        assert_eq!(
            c.header(&bytes[SEGMENT_HEADER_LEN..]),
            Err(Fault::TooLong { length: 101 })
        );
        // The hard limit: a header claiming exactly MAX_RECORD_SIZE_LIMIT is a record a log
        // with the largest limit wrote; one byte more no writer produced.
        let limit = SegmentKeys {
            max_record: MAX_RECORD_SIZE_LIMIT,
            end: u64::MAX,
            ..keys(0)
        };
        for (length, expected) in [
            (MAX_RECORD_SIZE_LIMIT, None),
            (MAX_RECORD_SIZE_LIMIT + 1, Some(Fault::ImpossibleLength)),
        ] {
            let h = RecordHeader {
                length,
                lsn: Lsn(1),
                payload_crc: 0,
                kind: RecordKind::Single,
                flags: crate::format::RecordFlags::PLAIN,
                ack_gap: 1,
            }
            .encode(ChecksumAlgorithm::Crc32c, SALT);
            let got = RecordCursor::new(limit, Lsn(1)).header(&h);
            assert_eq!(got.err(), expected, "length {length}");
        }
        // A record ending exactly at the end of the data fits; one byte short is past it.
        let one = record(1, RecordKind::Single, b"abc");
        let (bytes, k) = over(&one);
        let short = SegmentKeys {
            end: k.end - 1,
            ..k
        };
        let body = &bytes[SEGMENT_HEADER_LEN..];
        assert!(RecordCursor::new(k, Lsn(1)).header(body).is_ok());
        assert_eq!(
            RecordCursor::new(short, Lsn(1)).header(body),
            Err(Fault::PastEnd)
        );
        // Fewer bytes than a header before the end: partial, however many bytes follow.
        let tiny = SegmentKeys {
            end: SEGMENT_HEADER_LEN as u64 + 31,
            ..k
        };
        assert_eq!(
            RecordCursor::new(tiny, Lsn(1)).header(body),
            Err(Fault::PartialHeader)
        );
    }

    #[test]
    fn metadata_records_are_checked_before_they_are_read() {
        let seal = Meta::Seal { successor: 9 }.encode();
        // Inside a batch, or of the wrong length, the header alone is refused.
        let mut body = record(1, RecordKind::First, b"x");
        body.extend(record(2, RecordKind::Meta, &seal));
        let (bytes, k) = over(&body);
        let mut c = RecordCursor::new(k, Lsn(1));
        let first = c.header(&bytes[c.offset() as usize..]).unwrap();
        c.accept(&first, None).unwrap();
        assert_eq!(c.header(&bytes[c.offset() as usize..]), Err(Fault::BadMeta));
        let (bytes, k) = over(&record(1, RecordKind::Meta, &[0; 17]));
        let c = RecordCursor::new(k, Lsn(1));
        assert_eq!(c.header(&bytes[SEGMENT_HEADER_LEN..]), Err(Fault::BadMeta));
        // A well-formed seal is accepted and named; skipped unread (`None`) it says nothing.
        let (bytes, k) = over(&record(1, RecordKind::Meta, &seal));
        let mut c = RecordCursor::new(k, Lsn(1));
        let at = c.header(&bytes[SEGMENT_HEADER_LEN..]).unwrap();
        let mut skipped = c;
        assert_eq!(skipped.accept(&at, None), Ok(None));
        assert_eq!((skipped.seal(), skipped.offset()), (None, k.end));
        let payload = &bytes[at.payload_offset() as usize..];
        assert_eq!(
            c.accept(&at, Some(payload)),
            Ok(Some(Meta::Seal { successor: 9 }))
        );
        assert_eq!(c.complete().end, k.end);
        assert_eq!(c.complete().records, 0);
        // Readers step over it.
        let mut r = RecordCursor::new(k, Lsn(1));
        assert_eq!(r.data_header(&bytes[SEGMENT_HEADER_LEN..]), Ok(None));
        assert!(r.at_end());
        let (bytes, k) = over(&record(1, RecordKind::Single, b"d"));
        let mut r = RecordCursor::new(k, Lsn(1));
        let at = r
            .data_header(&bytes[SEGMENT_HEADER_LEN..])
            .unwrap()
            .unwrap();
        assert_eq!(
            (at.header.lsn, r.offset()),
            (Lsn(1), SEGMENT_HEADER_LEN as u64)
        );
    }

    #[test]
    fn batches_count_every_record_once_complete() {
        let mut body = record(1, RecordKind::First, b"a");
        body.extend(record(2, RecordKind::Middle, b"b"));
        body.extend(record(3, RecordKind::Middle, b"c"));
        body.extend(record(4, RecordKind::Last, b"d"));
        body.extend(record(5, RecordKind::Single, b"e"));
        let (c, fault) = walk(&body, 1);
        assert_eq!(fault, None);
        assert_eq!((c.complete().records, c.complete().last_lsn), (5, Lsn(5)));
        // Cut after the second middle record: nothing of the batch is complete.
        let (c, fault) = walk(&body[..3 * 33], 1);
        assert_eq!(fault, Some(Fault::IncompleteBatch));
        assert_eq!(
            c.complete(),
            Complete {
                end: SEGMENT_HEADER_LEN as u64,
                last_lsn: Lsn(0),
                records: 0
            }
        );
        assert_eq!(c.open_batch(), Some((SEGMENT_HEADER_LEN as u64, Lsn(1))));
        assert_eq!(c.next_lsn(), Lsn(4));
        // A middle record with no batch open is framing damage.
        assert_eq!(
            walk(&record(1, RecordKind::Middle, b"x"), 1).1,
            Some(Fault::BatchFraming)
        );
        let mut twice = record(1, RecordKind::First, b"x");
        twice.extend(record(2, RecordKind::First, b"y"));
        assert_eq!(walk(&twice, 1).1, Some(Fault::BatchFraming));
    }

    #[test]
    fn a_resumed_cursor_reads_any_record_and_counts_each_as_complete() {
        // Placed inside a batch (a reader resuming, an orphan probe): framing is unknown, so
        // a middle or last record is valid here, and each record read is a complete unit.
        let mut body = record(1, RecordKind::First, b"a");
        body.extend(record(2, RecordKind::Middle, b"b"));
        body.extend(record(3, RecordKind::Last, b"c"));
        let (bytes, k) = over(&body);
        for (start, lsn) in [(0usize, 1u64), (33, 2), (66, 3)] {
            let offset = (SEGMENT_HEADER_LEN + start) as u64;
            let mut c = RecordCursor::resume(k, offset, Lsn(lsn));
            assert_eq!(c.offset(), offset);
            assert_eq!(
                c.complete(),
                Complete {
                    end: offset,
                    last_lsn: Lsn(lsn - 1),
                    records: 0
                }
            );
            let mut n = 0;
            while !c.at_end() {
                let at = c.header(&bytes[c.offset() as usize..]).unwrap();
                c.accept(&at, None).unwrap();
                n += 1;
                assert_eq!(c.complete().records, n);
                assert_eq!(c.complete().last_lsn, at.header.lsn);
                assert_eq!(c.complete().end, at.end());
                assert_eq!(c.open_batch(), None);
            }
            assert_eq!((n, c.next_lsn()), (4 - lsn, Lsn(4)));
            assert_eq!(c.end_fault(), None);
        }
    }

    #[test]
    fn a_cursor_follows_a_growing_log() {
        let mut body = record(1, RecordKind::Single, b"a");
        body.extend(record(2, RecordKind::Single, b"b"));
        let (bytes, k) = over(&body);
        let first_end = SEGMENT_HEADER_LEN as u64 + 33;
        let mut c = RecordCursor::new(
            SegmentKeys {
                end: first_end,
                ..k
            },
            Lsn(1),
        );
        let at = c.header(&bytes[SEGMENT_HEADER_LEN..]).unwrap();
        c.accept(&at, None).unwrap();
        assert!(c.at_end());
        c.set_end(k.end);
        assert_eq!(c.keys.end, k.end);
        assert!(!c.at_end());
        let at = c.header(&bytes[c.offset() as usize..]).unwrap();
        assert_eq!(at.header.lsn, Lsn(2));
    }
}
