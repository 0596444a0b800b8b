//! Scanning sealed segments ahead of [`Wal::open_with_summaries`], for example on several
//! threads at once: the scans are independent, and core has no threads of its own.

use crate::config::Config;
#[cfg(feature = "replay")]
use crate::cursor::{Located, RecordCursor};
use crate::error::{IoFailure, Op};
#[cfg(feature = "replay")]
use crate::format::RECORD_HEADER_LEN;
use crate::format::{SEGMENT_HEADER_LEN, SegmentHeader};
use crate::lsn::Lsn;
use crate::storage::{SegmentId, Storage, read_full};

use super::MIN_SCRATCH;
#[cfg(all(feature = "replay", feature = "alloc"))]
use super::scan::ReadAhead;
use super::scan::{self, SegmentKeys, SegmentScan, Window};

#[cfg(doc)]
use crate::wal::Wal;

/// What a full checksum scan of one segment's records found, for [`Wal::open_with_summaries`]
/// to use instead of scanning the segment again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentSummary {
    /// The segment.
    pub segment: SegmentId,
    /// Its salt (recovery uses a summary only if the header it reads has the same).
    pub salt: u64,
    /// Its length when scanned (likewise checked).
    pub file_len: u64,
    pub(crate) scan: SegmentScan,
}

impl SegmentSummary {
    /// Whether only valid records (and zeros) were found.
    pub fn is_clean(&self) -> bool {
        self.scan.invalid.is_none()
    }

    /// The mean length of its valid records, their headers included (bytes up to the end of
    /// the last valid record, the segment's header too, over their count; zero without
    /// records): how a caller that scans many segments may size its reads.
    pub fn mean_record_len(&self) -> u64 {
        self.scan.end.checked_div(self.scan.records).unwrap_or(0)
    }
}

/// Scans every record of segment `id`, verifying each checksum, exactly as recovery does.
/// Returns `None` when the segment header is not valid (recovery classifies that itself) or
/// `scratch` is shorter than [`MIN_SCRATCH`]. Reads only.
pub fn scan_segment<S: Storage>(
    storage: &S,
    id: SegmentId,
    config: &Config,
    scratch: &mut [u8],
) -> Result<Option<SegmentSummary>, IoFailure<S::Error>> {
    let Some((h, keys)) = header_and_keys(storage, id, config, scratch)? else {
        return Ok(None);
    };
    let mut win = Window::new(scratch, id);
    let scan = scan::scan_records(storage, &mut win, &keys, h.first_lsn)?;
    Ok(Some(summary(id, &h, &keys, scan)))
}

/// Segment `id`'s header and the keys its records are scanned with, or `None` when the header
/// is not valid (recovery classifies that itself) or `scratch` is shorter than
/// [`MIN_SCRATCH`].
fn header_and_keys<S: Storage>(
    storage: &S,
    id: SegmentId,
    config: &Config,
    scratch: &[u8],
) -> Result<Option<(SegmentHeader, SegmentKeys)>, IoFailure<S::Error>> {
    if scratch.len() < MIN_SCRATCH {
        return Ok(None);
    }
    let io = |op| {
        move |error| IoFailure {
            op,
            segment: Some(id),
            error,
        }
    };
    let file_len = storage.len(id).map_err(io(Op::Len))?;
    let mut buf = [0u8; SEGMENT_HEADER_LEN];
    let n = read_full(storage, id, 0, &mut buf).map_err(io(Op::Read))?;
    Ok(SegmentHeader::decode(&buf[..n])
        .ok()
        .map(|h| (h, SegmentKeys::new(&h, config.max_record_size, file_len))))
}

/// The summary of a scan of segment `id` (header `h`, scanned to `keys.end`).
fn summary(
    id: SegmentId,
    h: &SegmentHeader,
    keys: &SegmentKeys,
    scan: SegmentScan,
) -> SegmentSummary {
    SegmentSummary {
        segment: id,
        salt: h.salt,
        file_len: keys.end,
        scan,
    }
}

#[cfg(feature = "replay")]
/// Scans segment `id` as [`scan_segment`] does and, while it does, hands each data record of
/// every complete unit it accepts to `each`, oldest first, from the bytes it just verified:
/// a replay reads the segment once. `hand(&header)` says first whether to hand over anything
/// from this segment. A compressed or encrypted record is handed over as stored, with the
/// cursor that decodes it ([`RecordCursor::decode_with`]); metadata records are stepped over.
///
/// Handing over stops for good, while the scan goes on to the end, when `each` returns
/// `false`, or at a record longer than `scratch` (the caller reads it some other way).
/// Returns the summary and the header, or `None` as [`scan_segment`] does.
pub fn replay_segment<S: Storage>(
    storage: &S,
    id: SegmentId,
    config: &Config,
    scratch: &mut [u8],
    hand: impl FnOnce(&SegmentHeader) -> bool,
    each: impl FnMut(&RecordCursor, &Located, &[u8]) -> bool,
) -> Result<Option<(SegmentSummary, SegmentHeader)>, IoFailure<S::Error>> {
    let Some((h, keys)) = header_and_keys(storage, id, config, scratch)? else {
        return Ok(None);
    };
    replay_through(storage, id, &h, &keys, Window::new(scratch, id), hand, each)
}

#[cfg(all(feature = "replay", feature = "alloc"))]
/// [`replay_segment`] with the window's refills taken, where they can be, from the chunks
/// `ahead` hands over (read on another thread, say) instead of read into `scratch`: the
/// bytes are then copied once, into the chunk, and the scan and the hand-over read them
/// there. What it reports and hands over is what [`replay_segment`] would: the chunks only
/// supply bytes, and any refill they cannot serve (a unit that does not fit, a chunk that is
/// missing or out of place) is read into `scratch` as before.
pub fn replay_segment_ahead<S: Storage>(
    storage: &S,
    id: SegmentId,
    config: &Config,
    scratch: &mut [u8],
    ahead: &mut dyn ReadAhead,
    hand: impl FnOnce(&SegmentHeader) -> bool,
    each: impl FnMut(&RecordCursor, &Located, &[u8]) -> bool,
) -> Result<Option<(SegmentSummary, SegmentHeader)>, IoFailure<S::Error>> {
    let Some((h, keys)) = header_and_keys(storage, id, config, scratch)? else {
        return Ok(None);
    };
    let win = Window::with_ahead(scratch, id, keys.end, ahead);
    replay_through(storage, id, &h, &keys, win, hand, each)
}

#[cfg(feature = "replay")]
/// The scan and hand-over of [`replay_segment`] through `win`.
fn replay_through<S: Storage>(
    storage: &S,
    id: SegmentId,
    h: &SegmentHeader,
    keys: &SegmentKeys,
    mut win: Window<'_>,
    hand: impl FnOnce(&SegmentHeader) -> bool,
    mut each: impl FnMut(&RecordCursor, &Located, &[u8]) -> bool,
) -> Result<Option<(SegmentSummary, SegmentHeader)>, IoFailure<S::Error>> {
    let mut handing = hand(h);
    // A cursor of its own, one unit behind the scan's: it steps through each unit the scan
    // has just accepted.
    let mut cursor = RecordCursor::new(*keys, h.first_lsn);
    let scan =
        scan::scan_records_with(storage, &mut win, keys, h.first_lsn, |st, win, to, same| {
            while handing && cursor.offset() < to {
                handing = hand_one(st, win, &mut cursor, same, &mut each) == Some(true);
            }
        })?;
    Ok(Some((summary(id, h, keys, scan), *h)))
}

#[cfg(feature = "replay")]
/// Hands the record at `cursor` to `each` (a metadata record is stepped over) and moves past
/// it. `None` when it cannot: the bytes the scan verified no longer read the same, or the
/// record is longer than the window. `same`: the window still holds the bytes the scan
/// verified, so the header's checksum is not verified again (a tenth of a replay's scan
/// with 1 KiB records); otherwise it is, as a unit read afresh may have changed since.
fn hand_one<S: Storage>(
    st: &S,
    win: &mut Window<'_>,
    cursor: &mut RecordCursor,
    same: bool,
    each: &mut impl FnMut(&RecordCursor, &Located, &[u8]) -> bool,
) -> Option<bool> {
    let bytes = win.get(st, cursor.offset(), RECORD_HEADER_LEN).ok()?;
    let at = if same {
        cursor.header_verified(bytes)
    } else {
        cursor.header(bytes)
    }
    .ok()?;
    let mut more = true;
    if !at.is_meta() {
        // A record longer than the window comes back short (the window holds at most its
        // capacity): the caller reads it some other way.
        let len = at.header.length as usize;
        let stored = win.get(st, at.payload_offset(), len).ok()?;
        if stored.len() < len {
            return None;
        }
        more = each(cursor, &at, stored);
    }
    cursor.accept(&at, None).ok()?;
    Some(more)
}

impl SegmentSummary {
    /// The LSN of the last data record in the complete units the scan accepted (the
    /// segment's first LSN less one when there is none).
    pub fn last_lsn(&self) -> Lsn {
        self.scan.last_lsn
    }
}
