//! Read-only inspection of a log: what every segment holds and how recovery would classify it,
//! without writing a byte.
//!
//! [`inspect`] walks the segments the way `Wal::open` does — the same header checks, the same
//! record scan, the same decision table — but it never stops at the first problem, never
//! repairs anything, and reports every segment to a callback. The [`Verdict`] says what
//! `Wal::open` under the configured [`RecoveryPolicy`](crate::RecoveryPolicy) would do.
//! [`Records`] then walks the verified records of one segment into a caller buffer.
//!
//! Nothing on the medium can make inspection panic or allocate; its work is bounded by the
//! segments' lengths (the same bound as recovery's).

use crate::checksum::ChecksumAlgorithm;
use crate::config::Config;
use crate::error::{Corruption, IoFailure, Op};
use crate::format::{
    HeaderProblem, RECORD_HEADER_LEN, RecordHeader, RecordKind, SEGMENT_HEADER_LEN, SegmentHeader,
};
use crate::lsn::Lsn;
use crate::recovery::scan::{self, SegmentKeys, Window};
use crate::recovery::{
    Action, Case, Evidence, HeaderState, Inputs, MIN_SCRATCH, ScanState, Sequence,
};
use crate::storage::{SegmentId, Storage, read_full};

/// A problem inspection found in one segment, with where it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Byte offset in the segment (0 for header problems).
    pub offset: u64,
    /// The LSN expected there, where known.
    pub lsn: Option<Lsn>,
    /// What exactly is wrong.
    pub detail: &'static str,
}

/// One segment as inspection found it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentReport {
    /// The segment id.
    pub id: SegmentId,
    /// Its length in bytes.
    pub len: u64,
    /// Its header, or why it was rejected.
    pub header: Result<SegmentHeader, HeaderProblem>,
    /// The decision-table inputs recovery would derive.
    pub inputs: Inputs,
    /// The case they classify as.
    pub case: Case,
    /// What the configured policy does about it.
    pub action: Action,
    /// Valid records from the start of the segment (0 when the header is unreadable).
    pub records: u64,
    /// LSN of the first of them (the header's first LSN; meaningful when `records > 0`).
    pub first_lsn: Lsn,
    /// LSN of the last of them (`first_lsn − 1` when there are none).
    pub last_lsn: Lsn,
    /// Offset just past the last valid record (the header length when there are none, 0 when
    /// the header is unreadable).
    pub end: u64,
    /// What is wrong, if anything.
    pub problem: Option<Problem>,
    /// Valid records found after invalid bytes (newest segment only).
    pub orphans: u32,
    /// Non-zero bytes after the last record of a sealed segment that recovery ignores.
    pub trailing_garbage: Option<u64>,
}

/// What `Wal::open` would do with this storage under the configured policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// No segments: open would create a new log.
    Empty,
    /// Nothing to repair.
    Clean,
    /// Open would repair an ordinary crash: cut a torn tail or rewrite a torn header.
    Repair {
        /// `TornTail` or `TornCreation`.
        case: Case,
        /// The segment it would change.
        segment: SegmentId,
        /// The first LSN cut (torn tail), or the first LSN of the rewritten segment.
        first_lsn: Lsn,
    },
    /// Open would refuse with this error.
    Refuse(Corruption),
    /// Open (under `Salvage`) would keep the valid prefix and give up the rest.
    Salvage {
        /// The case that forces it.
        case: Case,
        /// The first damaged segment.
        segment: SegmentId,
        /// Where in it the damage starts.
        offset: u64,
        /// The first LSN lost.
        first_lost: Lsn,
        /// Whether the damaged segment itself is removed (rather than cut).
        drops_segment: bool,
    },
}

/// The result of inspecting a whole storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Inspection {
    /// Segments found.
    pub segments: usize,
    /// The log id (from the first readable header), if any header is readable.
    pub log_id: Option<u64>,
    /// Valid records in all segments, including ones a reopen would not keep.
    pub records: u64,
    /// Total bytes in all segments.
    pub bytes: u64,
    /// Segments whose case is not `Clean`.
    pub problems: u32,
    /// Whether any segment's case is corruption (not the effect of an ordinary crash).
    pub corruption: bool,
    /// The last LSN of the longest valid prefix of the log (what a successful open keeps).
    pub valid_through: Lsn,
    /// What a reopen would do.
    pub verdict: Verdict,
}

/// Inspection could not run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum InspectError<E> {
    /// The scratch buffer is smaller than [`MIN_SCRATCH`].
    ScratchTooSmall {
        /// The minimum length.
        min: usize,
    },
    /// More segments than the inspection's table (`N`) holds.
    TooManySegments {
        /// The table's capacity.
        capacity: usize,
    },
    /// A storage read failed.
    Storage(IoFailure<E>),
}

impl<E: crate::StorageError> core::fmt::Display for InspectError<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::ScratchTooSmall { min } => {
                write!(f, "scratch buffer must be at least {min} bytes")
            }
            Self::TooManySegments { capacity } => {
                write!(f, "more segments than inspection holds ({capacity})")
            }
            Self::Storage(s) => write!(f, "inspection: {s}"),
        }
    }
}

impl<E: crate::StorageError> core::error::Error for InspectError<E> {}

fn io<E>(op: Op, segment: Option<SegmentId>) -> impl FnOnce(E) -> InspectError<E> {
    move |error| InspectError::Storage(IoFailure { op, segment, error })
}

#[derive(Clone, Copy)]
struct Listed {
    id: SegmentId,
    len: u64,
    header: Result<SegmentHeader, HeaderProblem>,
}

/// Inspects every segment of `storage` without writing, calling `each` once per segment,
/// oldest first. `config` supplies `max_record_size` (records longer are invalid, as in
/// recovery) and the policy the [`Verdict`] is computed for. `N` bounds the number of segments.
pub fn inspect<S: Storage, const N: usize>(
    storage: &S,
    config: &Config,
    scratch: &mut [u8],
    each: &mut dyn FnMut(&SegmentReport),
) -> Result<Inspection, InspectError<S::Error>> {
    if scratch.len() < MIN_SCRATCH {
        return Err(InspectError::ScratchTooSmall { min: MIN_SCRATCH });
    }
    let mut ids: heapless::Vec<SegmentId, N> = heapless::Vec::new();
    let mut overflow = false;
    storage
        .list(&mut |id| overflow |= ids.push(id).is_err())
        .map_err(io(Op::List, None))?;
    if overflow {
        return Err(InspectError::TooManySegments { capacity: N });
    }
    ids.sort_unstable();
    let mut listed: heapless::Vec<Listed, N> = heapless::Vec::new();
    for (i, &id) in ids.iter().enumerate() {
        if i > 0 && ids[i - 1] == id {
            continue; // a storage listing one id twice: inspect it once
        }
        let len = storage.len(id).map_err(io(Op::Len, Some(id)))?;
        let mut buf = [0u8; SEGMENT_HEADER_LEN];
        let n = read_full(storage, id, 0, &mut buf).map_err(io(Op::Read, Some(id)))?;
        let header = SegmentHeader::decode(&buf[..n]);
        // Cannot overflow: no more entries than ids.
        let _ = listed.push(Listed { id, len, header });
    }

    let log_id = listed.iter().find_map(|l| l.header.ok().map(|h| h.log_id));
    let mut out = Inspection {
        segments: listed.len(),
        log_id,
        records: 0,
        bytes: 0,
        problems: 0,
        corruption: false,
        valid_through: Lsn::ZERO,
        verdict: if listed.is_empty() {
            Verdict::Empty
        } else {
            Verdict::Clean
        },
    };
    let policy = config.recovery;
    let mut prev_last: Option<Lsn> = None;
    // Whether the walk is still inside the prefix a reopen would get through.
    let mut reopen_alive = true;
    for i in 0..listed.len() {
        let l = listed[i];
        let newest = i + 1 == listed.len();
        let header = header_state(&l, log_id.unwrap_or(0), prev_last);
        let prev = i.checked_sub(1).map(|j| listed[j].id);
        let mut inputs = Inputs::before_scan(prev, l.id, newest, header);
        let first_here = match l.header {
            Ok(h) if header == HeaderState::Valid => h.first_lsn,
            _ => prev_last.map_or(Lsn(1), Lsn::next),
        };
        let mut seg = SegmentReport {
            id: l.id,
            len: l.len,
            header: l.header,
            inputs,
            case: Case::Clean,
            action: Action::Keep,
            records: 0,
            first_lsn: first_here,
            last_lsn: first_here.prev(),
            end: 0,
            problem: None,
            orphans: 0,
            trailing_garbage: None,
        };
        let mut scanned = None;
        if let Ok(h) = l.header {
            // Scanned whenever the header is readable (for the report); the table inputs
            // below come from the scan only where recovery itself would scan.
            let keys = SegmentKeys::new(&h, config.max_record_size, l.len);
            let mut win = Window::new(scratch, l.id);
            let s = scan::scan_records(storage, &mut win, &keys, h.first_lsn)
                .map_err(InspectError::Storage)?;
            seg.records = s.records;
            seg.first_lsn = h.first_lsn;
            seg.last_lsn = s.last_lsn;
            seg.end = s.end;
            if header == HeaderState::Valid && inputs.sequence == Sequence::Continuous {
                let must_end = listed
                    .get(i + 1)
                    .filter(|next| next.id == l.id.wrapping_add(1))
                    .and_then(|next| next.header.ok())
                    .filter(|nh| Some(nh.log_id) == log_id && nh.first_lsn > h.first_lsn.prev())
                    .map(|nh| nh.first_lsn.prev());
                inputs.scan = match (newest, must_end, s.invalid) {
                    (true, _, None) => ScanState::Clean,
                    (true, _, Some(bad)) => {
                        let orphans = scan::find_orphans(storage, &mut win, &keys, &bad)
                            .map_err(InspectError::Storage)?;
                        seg.orphans = orphans.count;
                        inputs.evidence = orphans.evidence(&bad);
                        ScanState::Invalid
                    }
                    (false, Some(end), _) if s.last_lsn >= end => {
                        seg.trailing_garbage = s.invalid.map(|bad| bad.offset);
                        ScanState::Clean
                    }
                    (false, _, None) if must_end.is_none() => ScanState::Clean,
                    (false, _, _) => {
                        inputs.evidence = Evidence::Acknowledged;
                        ScanState::Invalid
                    }
                };
            }
            scanned = Some(s);
        }
        seg.inputs = inputs;
        seg.case = Case::classify(&inputs);
        seg.action = seg.case.action(policy);
        let (offset, lsn, detail) = match (scanned, inputs.scan) {
            (Some(s), ScanState::Invalid) => match s.invalid {
                Some(bad) => (bad.offset, bad.lsn, bad.detail),
                None => (
                    s.end,
                    s.last_lsn.next(),
                    "segment ends before its successor begins",
                ),
            },
            _ => (0, first_here, crate::recovery::describe(seg.case, l.header)),
        };
        if seg.case != Case::Clean {
            seg.problem = Some(Problem {
                offset,
                lsn: Some(lsn),
                detail,
            });
            out.problems += 1;
            out.corruption |= seg.case.is_corruption();
        }
        out.records += seg.records;
        out.bytes = out.bytes.saturating_add(l.len);

        if reopen_alive {
            let corrupted = |case| {
                Verdict::Refuse(Corruption {
                    case,
                    segment: l.id,
                    offset,
                    lsn: Some(lsn),
                    detail,
                })
            };
            let kept = scanned.filter(|_| header == HeaderState::Valid);
            match (seg.action, kept) {
                (Action::Keep, Some(s)) => out.valid_through = s.last_lsn,
                (Action::CutTornTail, Some(s)) => {
                    out.valid_through = s.last_lsn;
                    out.verdict = Verdict::Repair {
                        case: seg.case,
                        segment: l.id,
                        first_lsn: lsn,
                    };
                }
                (Action::SalvageCut, Some(s)) => {
                    out.valid_through = s.last_lsn;
                    out.verdict = Verdict::Salvage {
                        case: seg.case,
                        segment: l.id,
                        offset,
                        first_lost: lsn,
                        drops_segment: false,
                    };
                    reopen_alive = false;
                }
                (Action::Keep | Action::CutTornTail | Action::SalvageCut, None) => {
                    out.verdict = corrupted(seg.case);
                    reopen_alive = false;
                }
                (Action::RewriteHeader, _) => {
                    if prev_last.is_none() && l.id != 0 {
                        out.verdict = Verdict::Refuse(Corruption {
                            case: Case::DamagedHeader,
                            segment: l.id,
                            offset: 0,
                            lsn: None,
                            detail: "torn header and no earlier segment to tell its first LSN",
                        });
                        reopen_alive = false;
                    } else {
                        out.verdict = Verdict::Repair {
                            case: seg.case,
                            segment: l.id,
                            first_lsn: first_here,
                        };
                    }
                }
                (Action::Fail, _) => {
                    out.verdict = corrupted(seg.case);
                    reopen_alive = false;
                }
                (Action::SalvageDrop, _) => {
                    out.verdict = Verdict::Salvage {
                        case: seg.case,
                        segment: l.id,
                        offset,
                        first_lost: first_here,
                        drops_segment: true,
                    };
                    reopen_alive = false;
                }
            }
        }
        // The next segment must continue this one. After a damaged segment where it ends is
        // not known, so the next segment's first LSN is taken as it is.
        prev_last = match scanned {
            Some(s) if seg.case == Case::Clean => Some(s.last_lsn),
            Some(_) => None,
            None if seg.action == Action::RewriteHeader => Some(first_here.prev()),
            None => None,
        };
        each(&seg);
    }
    Ok(out)
}

fn header_state(l: &Listed, log_id: u64, prev_last: Option<Lsn>) -> HeaderState {
    match l.header {
        Ok(h) => {
            let continues = prev_last.is_none_or(|p| h.first_lsn == p.next());
            if h.log_id != log_id || h.segment_id != l.id || !continues {
                HeaderState::Foreign
            } else {
                HeaderState::Valid
            }
        }
        Err(HeaderProblem::NewerVersion(_)) => HeaderState::NewerVersion,
        Err(_) if l.len <= SEGMENT_HEADER_LEN as u64 => HeaderState::Short,
        Err(_) => HeaderState::Invalid,
    }
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
    /// The payload, borrowed from the caller's buffer.
    pub payload: &'b [u8],
}

/// Reading a record with [`Records`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordsError<E> {
    /// The caller's buffer is too small; the cursor did not advance.
    BufferTooSmall {
        /// The record's payload length.
        needed: usize,
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
    checksum: ChecksumAlgorithm,
    salt: u64,
    offset: u64,
    end: u64,
    next: Lsn,
}

impl Records {
    /// A cursor at the segment's first record; `None` if its header is unreadable.
    pub fn new(seg: &SegmentReport) -> Option<Self> {
        let h = seg.header.ok()?;
        Some(Self {
            segment: seg.id,
            checksum: h.checksum,
            salt: h.salt,
            offset: SEGMENT_HEADER_LEN as u64,
            end: seg.end,
            next: h.first_lsn,
        })
    }

    /// The LSN the next call returns.
    pub fn position(&self) -> Lsn {
        self.next
    }

    fn header<S: Storage>(&self, st: &S) -> Result<Option<RecordHeader>, RecordsError<S::Error>> {
        if self.offset >= self.end {
            return Ok(None);
        }
        let mut buf = [0u8; RECORD_HEADER_LEN];
        let n = read_full(st, self.segment, self.offset, &mut buf).map_err(|error| {
            RecordsError::Storage(IoFailure {
                op: Op::Read,
                segment: Some(self.segment),
                error,
            })
        })?;
        let changed = |detail| RecordsError::Changed {
            offset: self.offset,
            detail,
        };
        let h = RecordHeader::decode(&buf[..n], self.checksum, self.salt)
            .map_err(|_| changed("record header does not verify"))?;
        let past = self
            .offset
            .checked_add(RECORD_HEADER_LEN as u64 + u64::from(h.length));
        if h.lsn != self.next || past.is_none_or(|p| p > self.end) {
            return Err(changed("record does not match the inspected segment"));
        }
        Ok(Some(h))
    }

    fn advance(&mut self, h: &RecordHeader) {
        self.offset += RECORD_HEADER_LEN as u64 + u64::from(h.length);
        self.next = self.next.next();
    }

    /// Skips one record without reading its payload; `false` at the end.
    pub fn skip<S: Storage>(&mut self, st: &S) -> Result<bool, RecordsError<S::Error>> {
        match self.header(st)? {
            Some(h) => {
                self.advance(&h);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Reads and verifies the next record into `buf`, or `None` at the end.
    pub fn next<'b, S: Storage>(
        &mut self,
        st: &S,
        buf: &'b mut [u8],
    ) -> Result<Option<InspectedRecord<'b>>, RecordsError<S::Error>> {
        let Some(h) = self.header(st)? else {
            return Ok(None);
        };
        let len = h.length as usize;
        let Some(payload) = buf.get_mut(..len) else {
            return Err(RecordsError::BufferTooSmall { needed: len });
        };
        let at = self.offset + RECORD_HEADER_LEN as u64;
        let n = read_full(st, self.segment, at, payload).map_err(|error| {
            RecordsError::Storage(IoFailure {
                op: Op::Read,
                segment: Some(self.segment),
                error,
            })
        })?;
        if n != len || self.checksum.of_salted(self.salt, payload) != h.payload_crc {
            return Err(RecordsError::Changed {
                offset: self.offset,
                detail: "payload checksum mismatch",
            });
        }
        let offset = self.offset;
        self.advance(&h);
        Ok(Some(InspectedRecord {
            lsn: h.lsn,
            kind: h.kind,
            offset,
            ack_gap: h.ack_gap,
            payload,
        }))
    }
}

#[cfg(test)]
mod tests;
