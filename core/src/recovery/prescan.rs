//! Scanning sealed segments ahead of [`Wal::open_with_summaries`], for example on several
//! threads at once: the scans are independent, and core has no threads of its own.

use crate::config::Config;
use crate::error::{IoFailure, Op};
use crate::format::{SEGMENT_HEADER_LEN, SegmentHeader};
use crate::storage::{SegmentId, Storage, read_full};

use super::MIN_SCRATCH;
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
    let Ok(h) = SegmentHeader::decode(&buf[..n]) else {
        return Ok(None);
    };
    let keys = SegmentKeys::new(&h, config.max_record_size, file_len);
    let mut win = Window::new(scratch, id);
    let scan = scan::scan_records(storage, &mut win, &keys, h.first_lsn)?;
    Ok(Some(SegmentSummary {
        segment: id,
        salt: h.salt,
        file_len,
        scan,
    }))
}
