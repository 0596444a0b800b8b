//! The bytes on disk, exactly as `docs/FORMAT.md` specifies them.
//!
//! Every field has a named offset; encoding and decoding go through explicit little-endian
//! helpers over fixed-size arrays, so a short or trailing byte cannot go unnoticed.

use crate::checksum::{ChecksumAlgorithm, crc32c};
use crate::lsn::Lsn;
use crate::storage::SegmentId;

/// The segment magic, `WALDENLG`.
pub(crate) const MAGIC: [u8; 8] = *b"WALDENLG";
/// The format version this code writes.
pub const FORMAT_VERSION: u16 = 3;
/// The first format version with metadata records ([`RecordKind::Meta`]) and the
/// `first_segment` header field.
pub(crate) const VERSION_WITH_META: u16 = 2;
/// The first format version with record flags (compression, encryption) and the segment
/// header's `encrypted` flag and `key_id`.
pub(crate) const VERSION_WITH_FLAGS: u16 = 3;

/// Length of the segment header.
pub const SEGMENT_HEADER_LEN: usize = 64;
/// Offsets of the segment header fields.
pub(crate) mod seg {
    /// `magic`, 8 bytes.
    pub(crate) const MAGIC: usize = 0;
    /// `version`, u16.
    pub(crate) const VERSION: usize = 8;
    /// `checksum_alg`, u8.
    pub(crate) const CHECKSUM_ALG: usize = 10;
    /// `flags`, u8.
    pub(crate) const FLAGS: usize = 11;
    /// `header_len`, u32.
    pub(crate) const HEADER_LEN: usize = 12;
    /// `log_id`, u64.
    pub(crate) const LOG_ID: usize = 16;
    /// `segment_id`, u64.
    pub(crate) const SEGMENT_ID: usize = 24;
    /// `first_lsn`, u64.
    pub(crate) const FIRST_LSN: usize = 32;
    /// `salt`, u64.
    pub(crate) const SALT: usize = 40;
    /// `first_segment`, u64 (version 2; zero in version 1).
    pub(crate) const FIRST_SEGMENT: usize = 48;
    /// `key_id`, u32 (version 3, encrypted segments; zero otherwise).
    pub(crate) const KEY_ID: usize = 56;
    /// `header_crc`, u32.
    pub(crate) const HEADER_CRC: usize = 60;
}

/// Length of a record header.
pub const RECORD_HEADER_LEN: usize = 32;
/// Offsets of the record header fields.
pub(crate) mod rec {
    /// `header_crc`, u32.
    pub(crate) const HEADER_CRC: usize = 0;
    /// `length`, u32.
    pub(crate) const LENGTH: usize = 4;
    /// `lsn`, u64.
    pub(crate) const LSN: usize = 8;
    /// `payload_crc`, u64.
    pub(crate) const PAYLOAD_CRC: usize = 16;
    /// `kind`, u8.
    pub(crate) const KIND: usize = 24;
    /// `flags`, u8.
    pub(crate) const FLAGS: usize = 25;
    /// `reserved`, u16.
    pub(crate) const RESERVED: usize = 26;
    /// `ack_gap`, u32.
    pub(crate) const ACK_GAP: usize = 28;
}

#[cfg_attr(feature = "replay", inline)]
fn get_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

#[cfg_attr(feature = "replay", inline)]
fn get_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

#[cfg_attr(feature = "replay", inline)]
fn get_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

// Always inlined: a store of a few bytes at a constant place, where a call copied through
// `memcpy` (380 bytes less in the size program, docs/EMBEDDED.md).
#[inline(always)]
fn put(b: &mut [u8], at: usize, v: &[u8]) {
    b[at..at + v.len()].copy_from_slice(v);
}

/// The header at the start of every segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    /// The format version.
    pub version: u16,
    /// The checksum of this segment's records.
    pub checksum: ChecksumAlgorithm,
    /// The id shared by all segments of one log.
    pub log_id: u64,
    /// The segment's own id.
    pub segment_id: SegmentId,
    /// LSN of the first record in this segment.
    pub first_lsn: Lsn,
    /// Per-segment salt mixed into every record checksum.
    pub salt: u64,
    /// The id of the log's oldest segment when this one was created (version 2 on; `None` in a
    /// version-1 header). Recovery uses it to notice a missing oldest segment.
    pub first_segment: Option<SegmentId>,
    /// The id of the key this segment's records are encrypted with, `None` for a segment in
    /// plaintext (version 3 on: the `encrypted` flag and `key_id`).
    pub key_id: Option<u32>,
    /// Whether the segment was created before its predecessor was durable (version 3, the
    /// `early` flag; `docs/FORMAT.md`, "Early successors"): its existence then proves nothing
    /// about where its predecessor ends.
    pub early: bool,
}

/// The segment header's `encrypted` flag (version 3).
pub(crate) const SEGMENT_ENCRYPTED: u8 = 1;
/// The segment header's `early` flag (version 3).
pub(crate) const SEGMENT_EARLY: u8 = 2;

/// Why a segment header was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderProblem {
    /// Fewer than [`SEGMENT_HEADER_LEN`] bytes.
    Short,
    /// The magic is not `WALDENLG`.
    BadMagic,
    /// The header checksum does not match.
    BadChecksum,
    /// Checksum fine, but a version this code does not read.
    NewerVersion(u16),
    /// Checksum fine, but impossible fields (unknown algorithm, flags, length, zero salt).
    /// Also a header valid in every field whose checksum algorithm this build lacks
    /// (walden-core features `crc32`, `crc64`): "checksum algorithm not built in", which is not
    /// damage (recovery refuses it under every policy as
    /// [`Case::ChecksumNotBuiltIn`](crate::Case::ChecksumNotBuiltIn), changing nothing).
    Impossible(&'static str),
}

/// The words of [`HeaderProblem::Impossible`] for a header that is valid in every field but
/// names a checksum algorithm this build does not have.
pub(crate) const CHECKSUM_NOT_BUILT_IN: &str =
    "checksum algorithm not built in (walden-core features crc32, crc64)";

impl HeaderProblem {
    /// Whether the header is valid in every field but names a checksum algorithm this build
    /// does not have: the segment may be fine (a build with the algorithm reads it). Words
    /// rather than a variant of its own: one would break every exhaustive `match` on this
    /// public enum (walden-cli's among them).
    pub(crate) fn checksum_not_built_in(self) -> bool {
        matches!(self, Self::Impossible(why) if why == CHECKSUM_NOT_BUILT_IN)
    }
}

impl SegmentHeader {
    /// Encodes the header.
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_LEN] {
        let mut b = [0u8; SEGMENT_HEADER_LEN];
        put(&mut b, seg::MAGIC, &MAGIC);
        put(&mut b, seg::VERSION, &self.version.to_le_bytes());
        b[seg::CHECKSUM_ALG] = self.checksum.id();
        if let Some(key) = self.key_id {
            b[seg::FLAGS] = SEGMENT_ENCRYPTED;
            put(&mut b, seg::KEY_ID, &key.to_le_bytes());
        }
        if self.early {
            b[seg::FLAGS] |= SEGMENT_EARLY;
        }
        put(
            &mut b,
            seg::HEADER_LEN,
            &(SEGMENT_HEADER_LEN as u32).to_le_bytes(),
        );
        put(&mut b, seg::LOG_ID, &self.log_id.to_le_bytes());
        put(&mut b, seg::SEGMENT_ID, &self.segment_id.to_le_bytes());
        put(&mut b, seg::FIRST_LSN, &self.first_lsn.0.to_le_bytes());
        put(&mut b, seg::SALT, &self.salt.to_le_bytes());
        if let Some(first) = self.first_segment {
            put(&mut b, seg::FIRST_SEGMENT, &first.to_le_bytes());
        }
        let crc = crc32c(&b[..seg::HEADER_CRC]);
        put(&mut b, seg::HEADER_CRC, &crc.to_le_bytes());
        b
    }

    /// Decodes and verifies a header: checksum first, then every field.
    // Never inlined: inlined into recovery's `listed`, its values sat in that frame above the
    // storage read, at the bottom of `Wal::open`'s deepest call chain on a Cortex-M.
    #[inline(never)]
    pub fn decode(b: &[u8]) -> Result<Self, HeaderProblem> {
        let b: &[u8; SEGMENT_HEADER_LEN] = b
            .get(..SEGMENT_HEADER_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(HeaderProblem::Short)?;
        if b[seg::MAGIC..seg::MAGIC + 8] != MAGIC {
            return Err(HeaderProblem::BadMagic);
        }
        if crc32c(&b[..seg::HEADER_CRC]) != get_u32(b, seg::HEADER_CRC) {
            return Err(HeaderProblem::BadChecksum);
        }
        let version = get_u16(b, seg::VERSION);
        if version > FORMAT_VERSION {
            return Err(HeaderProblem::NewerVersion(version));
        }
        if version == 0 {
            return Err(HeaderProblem::Impossible("version 0"));
        }
        let checksum = ChecksumAlgorithm::from_id(b[seg::CHECKSUM_ALG])
            .ok_or(HeaderProblem::Impossible("unknown checksum algorithm"))?;
        let flags = b[seg::FLAGS];
        if flags & !(SEGMENT_ENCRYPTED | SEGMENT_EARLY) != 0
            || (flags != 0 && version < VERSION_WITH_FLAGS)
        {
            return Err(HeaderProblem::Impossible("unknown flags"));
        }
        let encrypted = flags & SEGMENT_ENCRYPTED != 0;
        let early = flags & SEGMENT_EARLY != 0;
        if get_u32(b, seg::HEADER_LEN) != SEGMENT_HEADER_LEN as u32 {
            return Err(HeaderProblem::Impossible("header length"));
        }
        let first_segment = get_u64(b, seg::FIRST_SEGMENT);
        let first_segment = if version >= VERSION_WITH_META {
            Some(first_segment)
        } else if first_segment == 0 {
            None
        } else {
            return Err(HeaderProblem::Impossible("reserved bytes not zero"));
        };
        let key_id = get_u32(b, seg::KEY_ID);
        let key_id = match (encrypted, key_id) {
            (true, key) => Some(key),
            (false, 0) => None,
            (false, _) => return Err(HeaderProblem::Impossible("reserved bytes not zero")),
        };
        let salt = get_u64(b, seg::SALT);
        if salt == 0 {
            return Err(HeaderProblem::Impossible("zero salt"));
        }
        let first_lsn = get_u64(b, seg::FIRST_LSN);
        if first_lsn == 0 || first_lsn == u64::MAX {
            return Err(HeaderProblem::Impossible("first LSN out of range"));
        }
        // Last: only a header that is valid in every other field names an algorithm this
        // build lacks (recovery refuses it under every policy, changing nothing); one that is
        // also impossible otherwise is damage.
        if !checksum.is_available() {
            return Err(HeaderProblem::Impossible(CHECKSUM_NOT_BUILT_IN));
        }
        Ok(Self {
            version,
            checksum,
            log_id: get_u64(b, seg::LOG_ID),
            segment_id: get_u64(b, seg::SEGMENT_ID),
            first_lsn: Lsn(first_lsn),
            salt,
            first_segment,
            key_id,
            early,
        })
    }
}

/// What a record is within a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RecordKind {
    /// A record appended on its own.
    Single,
    /// The first record of a batch of two or more.
    First,
    /// A record strictly inside a batch.
    Middle,
    /// The last record of a batch; the batch is valid once this is.
    Last,
    /// A metadata record ([`Meta`], version 2 on): not part of the log's data, carries no LSN
    /// of its own (its `lsn` field is the next record's), never inside a batch, skipped by
    /// readers.
    Meta,
}

impl RecordKind {
    /// The byte stored on disk.
    pub(crate) const fn to_byte(self) -> u8 {
        match self {
            Self::Single => 1,
            Self::First => 2,
            Self::Middle => 3,
            Self::Last => 4,
            Self::Meta => 5,
        }
    }

    /// The kind for a stored byte.
    pub(crate) const fn from_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(Self::Single),
            2 => Some(Self::First),
            3 => Some(Self::Middle),
            4 => Some(Self::Last),
            5 => Some(Self::Meta),
            _ => None,
        }
    }

    /// The kind of record `i` of a batch of `n`.
    pub(crate) const fn in_batch(i: usize, n: usize) -> Self {
        match (i, n) {
            (_, 1) => Self::Single,
            (0, _) => Self::First,
            (i, n) if i + 1 == n => Self::Last,
            _ => Self::Middle,
        }
    }
}

/// A record header, decoded and verified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    /// Payload length.
    pub length: u32,
    /// The record's LSN.
    pub lsn: Lsn,
    /// Checksum of `salt ‖ payload`.
    pub payload_crc: u64,
    /// Position in a batch.
    pub kind: RecordKind,
    /// How the stored payload was made from the appended one (version 3: see
    /// [`RecordFlags`]); zero before version 3 and in metadata records.
    pub flags: RecordFlags,
    /// `lsn − durable` at write time (saturating).
    pub ack_gap: u32,
}

/// A record header's `flags` byte (version 3): the compression codec (bits 0–1) and whether the
/// stored payload is encrypted (bit 7). Bits 2–6 are zero.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RecordFlags(pub u8);

impl RecordFlags {
    /// Stored as appended.
    pub const PLAIN: Self = Self(0);
    /// The lowest bit of the codec field.
    pub(crate) const CODEC_SHIFT: u32 = 0;
    /// The codec field's width in bits.
    pub(crate) const CODEC_BITS: u32 = 2;
    /// The bit that says the stored payload is an AEAD ciphertext.
    pub(crate) const ENCRYPTED_BIT: u32 = 7;
    /// Codec value: an LZ4 block frame.
    pub const CODEC_LZ4: u8 = 1;

    /// The compression codec: 0 none, 1 LZ4 block.
    pub const fn codec(self) -> u8 {
        (self.0 >> Self::CODEC_SHIFT) & ((1 << Self::CODEC_BITS) - 1)
    }

    /// Whether the stored payload is encrypted.
    pub const fn encrypted(self) -> bool {
        self.0 & (1 << Self::ENCRYPTED_BIT) != 0
    }

    /// These flags with the codec set to `codec`.
    pub const fn with_codec(self, codec: u8) -> Self {
        let mask = ((1u8 << Self::CODEC_BITS) - 1) << Self::CODEC_SHIFT;
        Self((self.0 & !mask) | ((codec << Self::CODEC_SHIFT) & mask))
    }

    /// These flags with the encrypted bit set.
    pub const fn with_encrypted(self) -> Self {
        Self(self.0 | (1 << Self::ENCRYPTED_BIT))
    }

    /// Whether every bit set is one the format defines with a codec this format knows (LZ4).
    pub const fn is_known(self) -> bool {
        let known =
            (((1u8 << Self::CODEC_BITS) - 1) << Self::CODEC_SHIFT) | (1 << Self::ENCRYPTED_BIT);
        self.0 & !known == 0 && self.codec() <= Self::CODEC_LZ4
    }

    /// How many bytes a record with these flags may store beyond the appended payload: the
    /// frame's length prefix when compressed, the AEAD tag when encrypted.
    pub const fn overhead(self) -> u32 {
        let frame = if self.codec() != 0 {
            FRAME_PREFIX_LEN as u32
        } else {
            0
        };
        let tag = if self.encrypted() {
            AEAD_TAG_LEN as u32
        } else {
            0
        };
        frame + tag
    }
}

/// The length of a compressed frame's `original_len` prefix.
pub const FRAME_PREFIX_LEN: usize = 4;
/// Offsets of a compressed frame's fields.
pub(crate) mod frame {
    /// `original_len`, u32.
    pub(crate) const ORIGINAL_LEN: usize = 0;
    /// `block`, to the end of the frame.
    pub(crate) const BLOCK: usize = 4;
}
/// The length of an encrypted payload's AEAD tag (Poly1305).
pub const AEAD_TAG_LEN: usize = 16;

/// Why bytes are not a valid record header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordProblem {
    /// Fewer than [`RECORD_HEADER_LEN`] bytes.
    Short,
    /// Header checksum mismatch (torn, stale, zeroed or damaged bytes).
    BadChecksum,
    /// Checksum fine, but an unknown `kind`.
    UnknownKind,
    /// Checksum fine, but unknown `flags` bits (or codec) or `reserved` bytes set.
    ReservedBits,
    /// Checksum fine, but an `ack_gap` of zero (a record cannot vouch for itself).
    ZeroAckGap,
}

impl RecordHeader {
    /// The highest LSN this record proves durable.
    pub const fn proves_durable(&self) -> Lsn {
        Lsn(self.lsn.0.saturating_sub(self.ack_gap as u64))
    }

    /// The `ack_gap` for a record at `lsn` written while `durable` was durable.
    pub(crate) fn ack_gap_for(lsn: Lsn, durable: Lsn) -> u32 {
        u32::try_from(lsn.0.saturating_sub(durable.0)).unwrap_or(u32::MAX)
    }

    /// Encodes the header with the segment's algorithm and salt.
    pub fn encode(&self, alg: ChecksumAlgorithm, salt: u64) -> [u8; RECORD_HEADER_LEN] {
        let mut b = [0u8; RECORD_HEADER_LEN];
        put(&mut b, rec::LENGTH, &self.length.to_le_bytes());
        put(&mut b, rec::LSN, &self.lsn.0.to_le_bytes());
        put(&mut b, rec::PAYLOAD_CRC, &self.payload_crc.to_le_bytes());
        b[rec::KIND] = self.kind.to_byte();
        b[rec::FLAGS] = self.flags.0;
        put(&mut b, rec::ACK_GAP, &self.ack_gap.to_le_bytes());
        let crc = alg.of_salted(salt, &b[rec::LENGTH..]) as u32;
        put(&mut b, rec::HEADER_CRC, &crc.to_le_bytes());
        b
    }

    /// Verifies the header checksum, then decodes. `length` is not yet checked against limits.
    #[cfg_attr(all(feature = "replay", not(target_pointer_width = "32")), inline)]
    #[cfg_attr(target_pointer_width = "32", inline(always))]
    pub fn decode(b: &[u8], alg: ChecksumAlgorithm, salt: u64) -> Result<Self, RecordProblem> {
        let b = Self::bytes(b)?;
        if alg.of_salted(salt, &b[rec::LENGTH..]) as u32 != get_u32(b, rec::HEADER_CRC) {
            return Err(RecordProblem::BadChecksum);
        }
        Self::fields(b)
    }

    /// Decodes a header whose bytes were verified before (by the same scan, in the same
    /// memory), without verifying its checksum again; every other check is made.
    #[cfg(feature = "replay")]
    #[inline(always)]
    pub(crate) fn decode_verified(b: &[u8]) -> Result<Self, RecordProblem> {
        Self::fields(Self::bytes(b)?)
    }

    /// The header's bytes, if there are enough.
    #[inline(always)]
    fn bytes(b: &[u8]) -> Result<&[u8; RECORD_HEADER_LEN], RecordProblem> {
        b.get(..RECORD_HEADER_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(RecordProblem::Short)
    }

    /// Decodes and checks every field of a header whose checksum was verified.
    #[inline(always)]
    fn fields(b: &[u8; RECORD_HEADER_LEN]) -> Result<Self, RecordProblem> {
        let kind = RecordKind::from_byte(b[rec::KIND]).ok_or(RecordProblem::UnknownKind)?;
        let flags = RecordFlags(b[rec::FLAGS]);
        if !flags.is_known() || get_u16(b, rec::RESERVED) != 0 {
            return Err(RecordProblem::ReservedBits);
        }
        let ack_gap = get_u32(b, rec::ACK_GAP);
        if ack_gap == 0 {
            return Err(RecordProblem::ZeroAckGap);
        }
        Ok(Self {
            length: get_u32(b, rec::LENGTH),
            lsn: Lsn(get_u64(b, rec::LSN)),
            payload_crc: get_u64(b, rec::PAYLOAD_CRC),
            kind,
            flags,
            ack_gap,
        })
    }
}

/// The payload length of every metadata record.
pub(crate) const META_LEN: usize = 16;

/// Offsets of a metadata record's payload fields.
pub(crate) mod meta {
    /// `type`, u8: 1 seal, 2 start.
    pub(crate) const TYPE: usize = 0;
    /// `reserved`, 7 bytes of zero.
    pub(crate) const RESERVED: usize = 1;
    /// `value`, u64: the successor's segment id (seal) or the log's first segment id (start).
    pub(crate) const VALUE: usize = 8;
}

/// What a metadata record ([`RecordKind::Meta`]) says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Meta {
    /// Written at the end of a segment once its successor exists durably: names the successor
    /// (whose first LSN is the seal's `lsn` field). A segment ending in a seal whose successor
    /// is missing lost its successor after the fact.
    Seal {
        /// The successor's segment id.
        successor: SegmentId,
    },
    /// The one record of a start slot (the two reserved ids at the top of the id space): the log starts at this segment.
    Start {
        /// The log's first segment from now on.
        first_segment: SegmentId,
    },
}

impl Meta {
    /// Encodes the payload.
    pub(crate) fn encode(&self) -> [u8; META_LEN] {
        let (ty, value): (u8, u64) = match *self {
            Meta::Seal { successor } => (1, successor),
            Meta::Start { first_segment } => (2, first_segment),
        };
        let mut b = [0u8; META_LEN];
        b[meta::TYPE] = ty;
        put(&mut b, meta::VALUE, &value.to_le_bytes());
        b
    }

    /// Decodes a payload; `None` for a wrong length, an unknown type or reserved bytes set.
    #[cfg_attr(target_pointer_width = "32", inline(always))]
    pub(crate) fn decode(b: &[u8]) -> Option<Self> {
        let b: &[u8; META_LEN] = b.try_into().ok()?;
        if b[meta::RESERVED..meta::VALUE].iter().any(|&x| x != 0) {
            return None;
        }
        let value = get_u64(b, meta::VALUE);
        match b[meta::TYPE] {
            1 => Some(Meta::Seal { successor: value }),
            2 => Some(Meta::Start {
                first_segment: value,
            }),
            _ => None,
        }
    }
}

/// The two *start slots*: reserved segment ids that are not part of the log's data. Each holds
/// at most one start record (a record of kind [`RecordKind::Meta`] whose payload is
/// [`Meta::Start`] and whose `lsn` field is a generation number), written in place, the two
/// slots taking turns. `truncate_front` writes the next generation into the slot holding the
/// older one and syncs it before it removes a segment, so the valid record with the highest
/// generation always says where the log starts, and a torn write of one slot leaves the other.
pub(crate) const START_SLOTS: [SegmentId; 2] = [u64::MAX - 1, u64::MAX];

/// Whether `id` is a start slot rather than a segment of the log's data.
pub const fn is_start_slot(id: SegmentId) -> bool {
    id >= START_SLOTS[0]
}

// Without walden-core's feature `start-slots` nothing reads or writes a start slot; the
// codec stays (the format is the same in every build, and its tests run in every build).

/// The length of a start slot's record.
#[cfg_attr(not(feature = "start-slots"), allow(dead_code))]
pub(crate) const START_RECORD_LEN: usize = RECORD_HEADER_LEN + META_LEN;

/// Bytes a seal takes after a segment's records: a metadata record (header and body).
pub(crate) const SEAL_LEN: u64 = (RECORD_HEADER_LEN + META_LEN) as u64;

/// The salt of a log's start records (the log id, so another log's slots never validate).
#[cfg_attr(not(feature = "start-slots"), allow(dead_code))]
fn start_salt(log_id: u64) -> u64 {
    log_id ^ 0x5354_4152_5453_4c54
}

/// Encodes the start record of generation `generation` (at least 1): the log `log_id` starts at
/// segment `first_segment`. Its checksum is always CRC-32C.
#[cfg_attr(not(feature = "start-slots"), allow(dead_code))]
pub(crate) fn encode_start(
    log_id: u64,
    generation: u64,
    first_segment: SegmentId,
) -> [u8; START_RECORD_LEN] {
    let alg = ChecksumAlgorithm::Crc32c;
    encode_meta_record(
        alg,
        start_salt(log_id),
        Lsn(generation),
        1,
        Meta::Start { first_segment },
    )
}

/// A whole metadata record (header and payload) at `lsn`, checksummed with `alg` and `salt`:
/// a seal at a segment's end, or a start slot's record.
pub(crate) fn encode_meta_record(
    alg: ChecksumAlgorithm,
    salt: u64,
    lsn: Lsn,
    ack_gap: u32,
    meta: Meta,
) -> [u8; RECORD_HEADER_LEN + META_LEN] {
    let payload = meta.encode();
    let header = RecordHeader {
        length: META_LEN as u32,
        lsn,
        payload_crc: alg.of_salted(salt, &payload),
        kind: RecordKind::Meta,
        flags: RecordFlags::PLAIN,
        ack_gap,
    }
    .encode(alg, salt);
    let mut b = [0u8; RECORD_HEADER_LEN + META_LEN];
    b[..RECORD_HEADER_LEN].copy_from_slice(&header);
    b[RECORD_HEADER_LEN..].copy_from_slice(&payload);
    b
}

/// Decodes a start slot's contents: `(generation, first_segment)`, or `None` if they are not a
/// valid start record of log `log_id`.
#[cfg_attr(not(feature = "start-slots"), allow(dead_code))]
// Always inlined: once `RecordHeader::decode` was inlined on 32-bit targets, this in a frame of
// its own saved no stack on a Cortex-M (it did before, under `read_start`) and cost 72 bytes of
// flash (docs/EMBEDDED.md).
#[inline(always)]
pub(crate) fn decode_start(b: &[u8], log_id: u64) -> Option<(u64, SegmentId)> {
    let alg = ChecksumAlgorithm::Crc32c;
    let salt = start_salt(log_id);
    let h = RecordHeader::decode(b, alg, salt).ok()?;
    let payload = b.get(RECORD_HEADER_LEN..START_RECORD_LEN)?;
    if h.kind != RecordKind::Meta
        || h.flags != RecordFlags::PLAIN
        || h.length as usize != META_LEN
        || h.lsn.0 == 0
        || alg.of_salted(salt, payload) != h.payload_crc
    {
        return None;
    }
    match Meta::decode(payload)? {
        Meta::Start { first_segment } if !is_start_slot(first_segment) => {
            Some((h.lsn.0, first_segment))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests;
