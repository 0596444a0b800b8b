//! Reading a segment's records through a caller-supplied window, without allocating.

use crate::checksum::ChecksumAlgorithm;
use crate::error::{IoFailure, Op};
use crate::format::{
    RECORD_HEADER_LEN, RecordHeader, RecordKind, SEGMENT_HEADER_LEN, SegmentHeader, rec,
};
use crate::lsn::Lsn;
use crate::recovery::table::Evidence;
use crate::storage::{SegmentId, Storage, read_full};

/// A read cache over one segment, backed by the caller's scratch buffer.
pub(crate) struct Window<'a> {
    buf: &'a mut [u8],
    id: SegmentId,
    start: u64,
    len: usize,
}

impl<'a> Window<'a> {
    pub(crate) fn new(buf: &'a mut [u8], id: SegmentId) -> Self {
        Self {
            buf,
            id,
            start: 0,
            len: 0,
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Up to `n` bytes at `at` (fewer only at the end of the segment). `n ≤ capacity()`.
    pub(crate) fn get<S: Storage>(
        &mut self,
        st: &S,
        at: u64,
        n: usize,
    ) -> Result<&[u8], IoFailure<S::Error>> {
        let cached = at >= self.start && at + n as u64 <= self.start + self.len as u64;
        if !cached {
            self.len = read_full(st, self.id, at, self.buf).map_err(|error| IoFailure {
                op: Op::Read,
                segment: Some(self.id),
                error,
            })?;
            self.start = at;
        }
        let from = (at - self.start) as usize;
        let to = (from + n).min(self.len);
        Ok(&self.buf[from.min(to)..to])
    }
}

/// The segment facts a scan needs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SegmentKeys {
    pub(crate) checksum: ChecksumAlgorithm,
    pub(crate) salt: u64,
    pub(crate) max_record: u32,
    pub(crate) file_len: u64,
}

impl SegmentKeys {
    /// The keys of a segment with header `h` and `file_len` bytes, trusting records up to
    /// `max_record` bytes.
    pub(crate) fn new(h: &SegmentHeader, max_record: u32, file_len: u64) -> Self {
        Self {
            checksum: h.checksum,
            salt: h.salt,
            max_record,
            file_len,
        }
    }
}

/// Where and why a scan stopped before the end of the segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Invalid {
    /// Offset of the first byte not part of a valid record or complete batch.
    pub(crate) offset: u64,
    /// The LSN that should have been there.
    pub(crate) lsn: Lsn,
    pub(crate) detail: &'static str,
}

/// The result of scanning one segment's records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SegmentScan {
    /// Offset just past the last valid record of the last complete batch.
    pub(crate) end: u64,
    /// The LSN of that record (`first_lsn − 1` when there is none).
    pub(crate) last_lsn: Lsn,
    pub(crate) records: u64,
    /// `None` when only zeros (or nothing) follow `end`.
    pub(crate) invalid: Option<Invalid>,
}

/// Verifies the payload of the record whose header starts at `at`.
pub(crate) fn payload_matches<S: Storage>(
    st: &S,
    win: &mut Window<'_>,
    keys: &SegmentKeys,
    at: u64,
    h: &RecordHeader,
) -> Result<bool, IoFailure<S::Error>> {
    let mut sum = keys.checksum.salted(keys.salt);
    let mut pos = at + RECORD_HEADER_LEN as u64;
    let mut left = h.length as usize;
    while left > 0 {
        let n = left.min(win.capacity());
        let bytes = win.get(st, pos, n)?;
        if bytes.len() < n {
            return Ok(false);
        }
        sum.update(bytes);
        pos += n as u64;
        left -= n;
    }
    Ok(sum.finish() == h.payload_crc)
}

/// Decodes and fully verifies the record at `at`, expecting `lsn` (if given).
fn record_at<S: Storage>(
    st: &S,
    win: &mut Window<'_>,
    keys: &SegmentKeys,
    at: u64,
) -> Result<Result<RecordHeader, &'static str>, IoFailure<S::Error>> {
    let bytes = win.get(st, at, RECORD_HEADER_LEN)?;
    let h = match RecordHeader::decode(bytes, keys.checksum, keys.salt) {
        Ok(h) => h,
        Err(crate::format::RecordProblem::Short) => return Ok(Err("partial record header")),
        Err(crate::format::RecordProblem::BadChecksum) => {
            return Ok(Err("record header checksum mismatch"));
        }
        Err(crate::format::RecordProblem::Impossible(why)) => return Ok(Err(why)),
    };
    if h.length > keys.max_record {
        return Ok(Err("record length exceeds max_record_size"));
    }
    if at + RECORD_HEADER_LEN as u64 + u64::from(h.length) > keys.file_len {
        return Ok(Err("record extends past the end of the segment"));
    }
    if !payload_matches(st, win, keys, at, &h)? {
        return Ok(Err("payload checksum mismatch"));
    }
    Ok(Ok(h))
}

/// Whether every byte in `[from, to)` is zero.
pub(crate) fn all_zero<S: Storage>(
    st: &S,
    win: &mut Window<'_>,
    from: u64,
    to: u64,
) -> Result<bool, IoFailure<S::Error>> {
    let mut pos = from;
    while pos < to {
        let n = ((to - pos) as usize).min(win.capacity());
        let bytes = win.get(st, pos, n)?;
        if bytes.is_empty() {
            return Ok(true);
        }
        if bytes.iter().any(|&b| b != 0) {
            return Ok(false);
        }
        pos += bytes.len() as u64;
    }
    Ok(true)
}

/// Scans a segment's records from the first one (just after the segment header), expecting
/// `first_lsn`.
pub(crate) fn scan_records<S: Storage>(
    st: &S,
    win: &mut Window<'_>,
    keys: &SegmentKeys,
    first_lsn: Lsn,
) -> Result<SegmentScan, IoFailure<S::Error>> {
    let start = SEGMENT_HEADER_LEN as u64;
    let mut scan = SegmentScan {
        end: start,
        last_lsn: first_lsn.prev(),
        records: 0,
        invalid: None,
    };
    // (offset, lsn, records so far) of an open batch.
    let mut batch: Option<(u64, Lsn, u64)> = None;
    let mut at = start;
    loop {
        let expected = Lsn(scan.last_lsn.0 + 1 + batch.map_or(0, |b| b.2));
        let problem = if at >= keys.file_len {
            if batch.is_none() {
                return Ok(scan);
            }
            "incomplete batch at the end of the segment"
        } else {
            match record_at(st, win, keys, at)? {
                Ok(h) if h.lsn != expected => "unexpected LSN",
                Ok(h) => {
                    let next = at + RECORD_HEADER_LEN as u64 + u64::from(h.length);
                    match (h.kind, batch) {
                        (RecordKind::Single, None) => {
                            scan.end = next;
                            scan.last_lsn = h.lsn;
                            scan.records += 1;
                            at = next;
                            continue;
                        }
                        (RecordKind::First, None) => {
                            batch = Some((at, h.lsn, 1));
                            at = next;
                            continue;
                        }
                        (RecordKind::Middle, Some((o, l, n))) => {
                            batch = Some((o, l, n + 1));
                            at = next;
                            continue;
                        }
                        (RecordKind::Last, Some((_, _, n))) => {
                            batch = None;
                            scan.end = next;
                            scan.last_lsn = h.lsn;
                            scan.records += n + 1;
                            at = next;
                            continue;
                        }
                        _ => "batch framing violated",
                    }
                }
                Err(why) => why,
            }
        };
        // Stopped. A clean end is nothing but zeros after the last complete record.
        if batch.is_none() && all_zero(st, win, at, keys.file_len)? {
            return Ok(scan);
        }
        let (offset, lsn) = batch.map_or((at, expected), |(o, l, _)| (o, l));
        scan.invalid = Some(Invalid {
            offset,
            lsn,
            detail: problem,
        });
        return Ok(scan);
    }
}

/// What valid records lie after invalid bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Orphans {
    /// How many valid records were found after the invalid bytes.
    pub(crate) count: u32,
    /// The highest LSN any of them proves durable.
    pub(crate) proves_durable: Lsn,
    /// The highest LSN among them.
    pub(crate) highest: Lsn,
}

impl Orphans {
    /// What these orphans say about the damaged LSN `bad.lsn` (the decision table's input).
    pub(crate) fn evidence(&self, bad: &Invalid) -> Evidence {
        if self.count == 0 {
            Evidence::None
        } else if self.proves_durable >= bad.lsn {
            Evidence::Acknowledged
        } else {
            Evidence::Unacknowledged
        }
    }
}

/// Looks at every byte offset after `bad.offset` for valid records of this segment.
pub(crate) fn find_orphans<S: Storage>(
    st: &S,
    win: &mut Window<'_>,
    keys: &SegmentKeys,
    bad: &Invalid,
) -> Result<Orphans, IoFailure<S::Error>> {
    let mut found = Orphans::default();
    let span = keys.file_len.saturating_sub(bad.offset);
    let max_lsn = bad
        .lsn
        .0
        .saturating_add(span / RECORD_HEADER_LEN as u64 + 1);
    let mut at = bad.offset + 1;
    while at + RECORD_HEADER_LEN as u64 <= keys.file_len {
        let bytes = win.get(st, at, RECORD_HEADER_LEN)?;
        let mut lsn = [0u8; 8];
        lsn.copy_from_slice(&bytes[rec::LSN..rec::LSN + 8]);
        let lsn = u64::from_le_bytes(lsn);
        // Cheap filter before any checksum: only LSNs that could follow the damage.
        if lsn > bad.lsn.0 && lsn <= max_lsn {
            if let Ok(h) = record_at(st, win, keys, at)? {
                found.count = found.count.saturating_add(1);
                found.proves_durable = found.proves_durable.max(h.proves_durable());
                found.highest = found.highest.max(h.lsn);
                // Valid records never overlap: jump over this one, so every payload byte is
                // checksummed at most once on the way.
                at += RECORD_HEADER_LEN as u64 + u64::from(h.length);
                continue;
            }
        }
        at += 1;
    }
    Ok(found)
}
