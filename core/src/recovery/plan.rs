//! The recovery planner: reads a log, classifies every segment with the decision table and says
//! what opening it would do, without writing a byte.
//!
//! This is the only place the decision table of `docs/FORMAT.md` is applied. [`Wal::open`]
//! plans and then carries out the plan's [`Verdict`]; [`crate::inspect()`] plans and reports; the
//! std adapter's `verify_dir` scans segments in parallel and plans with the results. So the
//! three can never disagree about what a log holds.
//!
//! [`Wal::open`]: crate::Wal::open

use crate::config::{Config, RecoveryPolicy};
use crate::cursor::{Fault, SealFound, SegmentKeys};
use crate::error::{self, Corruption, IoFailure, Op};
use crate::format::{HeaderProblem, SEGMENT_HEADER_LEN, SegmentHeader, is_start_slot};
use crate::lsn::Lsn;
use crate::storage::{SegmentId, Storage, read_full};
use crate::table::SegmentList;
use crate::wal::splitmix64;

use super::scan::{self, SegmentScan, Window};
use super::{MIN_SCRATCH, SegmentSummary};
use crate::case::{
    Action, Case, Evidence, HeaderState, Inputs, MissingFront, Position, ScanState, Sequence,
};

/// A problem found in one segment, with where it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Byte offset in the segment (0 for header problems).
    pub offset: u64,
    /// The LSN expected there, where known.
    pub lsn: Option<Lsn>,
    /// What exactly is wrong.
    pub detail: &'static str,
    /// The record fault, where the problem is one.
    pub fault: Option<Fault>,
}

/// One segment as the planner found it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentReport {
    /// The segment id.
    pub id: SegmentId,
    /// Its length in bytes.
    pub len: u64,
    /// Its header, or why it was rejected.
    pub header: Result<SegmentHeader, HeaderProblem>,
    /// The decision-table inputs.
    pub(crate) inputs: Inputs,
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
    /// the header is unreadable). For a newest segment whose seal names a missing successor,
    /// the seal's offset.
    pub end: u64,
    /// What is wrong, if anything.
    pub problem: Option<Problem>,
    /// Valid records found after invalid bytes (not part of the log; a seal is not counted).
    pub orphans: u32,
    /// The highest LSN among those orphans.
    pub orphan_highest: Lsn,
    /// Non-zero bytes after the last record of a sealed segment that recovery ignores.
    pub trailing_garbage: Option<u64>,
    /// The segment's seal (version 2 on), if it has one.
    pub seal: Option<SealFound>,
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
    /// Open would refuse because a record is longer than the configured `max_record_size`:
    /// a configuration error, not damage. Reopen with a limit of at least `length`.
    RecordTooLarge {
        /// The segment.
        segment: SegmentId,
        /// Offset of the record.
        offset: u64,
        /// Its LSN.
        lsn: Lsn,
        /// Its payload length.
        length: u32,
        /// The configured limit.
        max: u32,
    },
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

impl SegmentReport {
    /// Whether the segment header is valid and consistent with the log (the decision table's
    /// header input; its other inputs stay inside the planner).
    pub fn header_valid(&self) -> bool {
        self.inputs.header == HeaderState::Valid
    }
}

/// The result of planning a whole storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Inspection {
    /// Segments found.
    pub segments: usize,
    /// The log id (from the first readable header), if any header is readable.
    pub log_id: Option<u64>,
    /// Valid records in all segments, including ones a reopen would not keep (those after
    /// damage, and those of segments after it).
    pub records: u64,
    /// Total bytes in all segments.
    pub bytes: u64,
    /// Segments whose case is not `Clean`.
    pub problems: u32,
    /// Whether any segment's case is corruption (not the effect of an ordinary crash).
    pub corruption: bool,
    /// The last LSN of the longest valid prefix of the log (what a successful open keeps).
    pub valid_through: Lsn,
    /// Segments missing from the front of the log, if the newest segment says so.
    pub missing_front: Option<MissingFront>,
    /// How many segment files are older than the log's recorded start and do not lead up to it
    /// (a restored copy, a stray file): all older than the oldest segment walked. Not part of
    /// the log: not counted in `segments`, not read further, never changed or removed by an
    /// open. A count, not a list: on a microcontroller every byte here is stack in `Wal::open`.
    pub stale: u32,
    /// What a reopen would do.
    pub verdict: Verdict,
}

impl Inspection {
    /// Records a refusal that no segment's case gives (the log as a whole is missing segments).
    fn refuse(&mut self, c: Corruption) {
        self.problems += 1;
        self.corruption = true;
        self.verdict = Verdict::Refuse(c);
    }
}

/// What an inspection says before anything is found (the planner's starting point).
pub(crate) const NOTHING_FOUND: Inspection = Inspection {
    segments: 0,
    log_id: None,
    records: 0,
    bytes: 0,
    problems: 0,
    corruption: false,
    valid_through: Lsn::ZERO,
    missing_front: None,
    stale: 0,
    verdict: Verdict::Empty,
};

/// Planning could not run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum InspectError<E> {
    /// The scratch buffer is smaller than [`MIN_SCRATCH`].
    ScratchTooSmall {
        /// The minimum length.
        min: usize,
    },
    /// More segments than the fixed segment table holds (or, for a growable one, than memory
    /// allows).
    TooManySegments {
        /// The table's capacity.
        capacity: usize,
    },
    /// A storage read failed.
    Storage(IoFailure<E>),
    /// Segment `segment` has invalid bytes or ends before its successor begins, and the
    /// successor was created by an early rotation (its header's `early` flag, written by a
    /// build with [`Config::early_rotation`]): where the segment ends must be judged by
    /// evidence in later segments, which this build does not have (walden-core's feature
    /// `early-rotation`). Open the log with a build that has it. Nothing was changed.
    EarlyRotationNotBuiltIn {
        /// The segment whose end cannot be judged.
        segment: SegmentId,
    },
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
            Self::EarlyRotationNotBuiltIn { segment } => write!(
                f,
                "segment {segment} is torn or damaged and its successor was created by an early \
                 rotation: judging it needs walden-core's feature early-rotation, not in this build"
            ),
        }
    }
}

impl<E: crate::StorageError> core::error::Error for InspectError<E> {}

fn io<E>(op: Op, segment: Option<SegmentId>) -> impl FnOnce(E) -> InspectError<E> {
    move |error| InspectError::Storage(IoFailure { op, segment, error })
}

/// Puts the segment ids in the storage into `ids` (empty on entry), ascending, each once.
///
/// Each id is inserted at its place as the storage reports it (a storage that lists one id
/// twice gets it planned once). The place is found by binary search, and no general-purpose
/// sort is linked in (it costs kilobytes of flash on a microcontroller). A storage that lists
/// in order (or nearly) appends at the end, so a long growable list costs no shifting.
///
/// The list is the caller's rather than returned: on a microcontroller the returned list was
/// copied four times on its way into recovery's frame. Never inlined into recovery (8 bytes
/// less of its frame on a Cortex-M, and less flash).
#[inline(never)]
pub(crate) fn list<S: Storage, L: SegmentList<SegmentId>>(
    storage: &S,
    ids: &mut L,
) -> Result<(), InspectError<S::Error>> {
    let mut overflow = false;
    storage
        .list(&mut |id| {
            if is_start_slot(id) || overflow {
                return;
            }
            if let Err(at) = ids.binary_search(&id) {
                overflow |= ids.insert(at, id).is_err();
            }
        })
        .map_err(io(Op::List, None))?;
    if overflow {
        return Err(InspectError::TooManySegments {
            capacity: ids.len(),
        });
    }
    Ok(())
}

/// How many of the oldest `ids` (sorted) are stale: older than the log's recorded start `start`
/// and not part of the unbroken run of ids that ends just below it. An interrupted
/// `truncate_front` leaves only such a run (it removes segments oldest first, with a directory
/// sync after each), which is kept; anything below a gap under the start is a file that came
/// from elsewhere (a restored copy, a stray file named like a segment).
pub(crate) fn stale_below(ids: &[SegmentId], start: SegmentId) -> usize {
    let below = ids.partition_point(|&id| id < start);
    let mut run = below;
    // `below - run + 1` is at most `below`, which is at most `start` (distinct ids under it).
    while run > 0 && ids[run - 1] == start - (below - run + 1) as u64 {
        run -= 1;
    }
    run
}

/// How many of the oldest `ids` (sorted, start slots left out) an open leaves out of the log as
/// stale, by the planner's rule (`Planner::plan`: the highest `first_segment` among the
/// headers of the log the oldest readable header names, or the start slots' start if later,
/// then `stale_below` of it). For a reader that walks the segments before the open decides
/// (walden-std's replay hands records over then): it must not hand over a stale file's records.
#[cfg(feature = "replay")]
pub fn stale_segments<S: Storage>(
    storage: &S,
    ids: &[SegmentId],
    scratch: &mut [u8],
) -> Result<usize, InspectError<S::Error>> {
    let mut log_id = None;
    let mut first_segment = None;
    for &id in ids {
        if let Ok(h) = listed(storage, id, scratch)?.header
            && *log_id.get_or_insert(h.log_id) == h.log_id
        {
            first_segment = first_segment.max(h.first_segment);
        }
    }
    let start = read_start(storage, log_id.unwrap_or(0), scratch).map(|s| s.1);
    Ok(first_segment.max(start).map_or(0, |s| stale_below(ids, s)))
}

/// A refusal in `out` when every segment found is older than the recorded `start` and not
/// leading up to it ([`stale_below`]): the log's own segments are gone.
///
/// Never inlined: the refusal built in the planner's frame, which `Wal::open`'s recovery
/// shares, would take stack there on a Cortex-M.
#[inline(never)]
fn refuse_all_stale(out: &mut Inspection, start: Option<SegmentId>) {
    out.refuse(Corruption {
        case: Case::MissingSegment,
        segment: start.unwrap_or(0),
        offset: 0,
        lsn: None,
        detail: error::detail(
            "the log's first segment is missing (the log records that it starts at this \
             segment; only older segment files, which are not part of it, remain)",
        ),
    });
}

/// A start slot that holds bytes, if any. With no segment listed, one proves that a log was
/// here and had segments removed from its front: only `truncate_front` writes a start slot, so
/// its segments were deleted or moved, and an open must not create a new log over it (reusing
/// its LSNs). The slot's record cannot be checked without the log id, which only a segment
/// header holds, so any bytes count; an empty slot (a crash during its creation) does not.
///
/// Never inlined: `Wal::open`'s recovery asks it before planning, and the planner's
/// [`refuse_without_segments`] again.
#[inline(never)]
pub(crate) fn held_start_slot<S: Storage>(storage: &S) -> Option<SegmentId> {
    crate::format::START_SLOTS
        .iter()
        .copied()
        .find(|&slot| storage.len(slot).is_ok_and(|n| n > 0))
}

/// With no segment listed: a refusal in `out` if a start slot holds bytes ([`held_start_slot`]).
///
/// Never inlined: the refusal built in the planner's frame, which `Wal::open`'s recovery
/// shares, took 48 bytes more of its stack on a Cortex-M.
#[inline(never)]
fn refuse_without_segments<S: Storage>(storage: &S, out: &mut Inspection) {
    if let Some(slot) = held_start_slot(storage) {
        out.refuse(Corruption {
            case: Case::MissingSegment,
            segment: slot,
            offset: 0,
            lsn: None,
            detail: error::detail(
                "no segment found, but this start slot records that a log was here and had \
                 segments removed from its front: its segments were deleted or moved (remove the \
                 start slots too to create a new log here)",
            ),
        });
    }
}

/// The valid start-slot record with the highest generation, if any: `(generation,
/// first_segment)`. A slot that cannot be read counts as absent (the headers' `first_segment`
/// is then the only, lower, bound: less is detected, nothing is wrongly refused).
///
/// Without walden-core's feature `start-slots` no slot is read (such a build never writes
/// one): the headers' `first_segment` is the only bound, with the same consequence.
#[cfg(not(feature = "start-slots"))]
// Not in the builds mutation testing runs (start slots on).
#[cfg_attr(mutants, mutants::skip)]
pub(crate) fn read_start<S: Storage>(
    _storage: &S,
    _log_id: u64,
    _scratch: &mut [u8],
) -> Option<(u64, SegmentId)> {
    None
}

/// The valid start-slot record with the highest generation, if any: `(generation,
/// first_segment)`. A slot that cannot be read counts as absent (the headers' `first_segment`
/// is then the only, lower, bound: less is detected, nothing is wrongly refused).
#[cfg(feature = "start-slots")]
#[inline(always)]
pub(crate) fn read_start<S: Storage>(
    storage: &S,
    log_id: u64,
    scratch: &mut [u8],
) -> Option<(u64, SegmentId)> {
    let mut best: Option<(u64, SegmentId)> = None;
    for &slot in crate::format::START_SLOTS.iter() {
        read_start_slot(storage, slot, log_id, scratch, &mut best);
    }
    best
}

/// Replaces `best` with the valid start record in `slot` if that one is newer.
///
/// Never inlined, while [`read_start`] always is: on a Cortex-M a frame holding the walk over
/// the slots as well as a slot's bytes, above the storage read, was the bottom of
/// `Wal::open`'s deepest call chain.
#[cfg(feature = "start-slots")]
#[inline(never)]
fn read_start_slot<S: Storage>(
    storage: &S,
    slot: SegmentId,
    log_id: u64,
    scratch: &mut [u8],
    best: &mut Option<(u64, SegmentId)>,
) {
    // In the caller's scratch, not a buffer of this frame's (see `listed`).
    let Some(buf) = scratch.get_mut(..crate::format::START_RECORD_LEN) else {
        return;
    };
    let Ok(n) = read_full(storage, slot, 0, buf) else {
        return;
    };
    let found = crate::format::decode_start(&buf[..n], log_id);
    // Compared, not `Option::max`: that one moved through `memmove` (1.5 KB on a Cortex-M).
    if found > *best {
        *best = found;
    }
}

/// A segment's length and header as they are on the medium.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Listed {
    pub(crate) id: SegmentId,
    pub(crate) len: u64,
    pub(crate) header: Result<SegmentHeader, HeaderProblem>,
}

/// Segment `id`'s length and header, read into `scratch` (at least [`MIN_SCRATCH`] bytes).
///
/// The header is read into the caller's scratch rather than a buffer of its own: on a
/// Cortex-M this frame, above the storage read, was at the bottom of `Wal::open`'s deepest
/// call chain.
pub(crate) fn listed<S: Storage>(
    storage: &S,
    id: SegmentId,
    scratch: &mut [u8],
) -> Result<Listed, InspectError<S::Error>> {
    let len = storage.len(id).map_err(io(Op::Len, Some(id)))?;
    let buf = scratch
        .get_mut(..SEGMENT_HEADER_LEN)
        .ok_or(InspectError::ScratchTooSmall { min: MIN_SCRATCH })?;
    let n = read_full(storage, id, 0, buf).map_err(io(Op::Read, Some(id)))?;
    Ok(Listed {
        id,
        len,
        header: SegmentHeader::decode(&buf[..n]),
    })
}

/// The planner's walk over the segments, oldest first.
pub(crate) struct Planner<'a, S: Storage> {
    storage: &'a S,
    config: &'a Config,
    scratch: &'a mut [u8],
    summaries: &'a dyn Fn(SegmentId) -> Option<SegmentSummary>,
}

impl<'a, S: Storage> Planner<'a, S> {
    pub(crate) fn new(
        storage: &'a S,
        config: &'a Config,
        scratch: &'a mut [u8],
        summaries: &'a dyn Fn(SegmentId) -> Option<SegmentSummary>,
    ) -> Result<Self, InspectError<S::Error>> {
        if scratch.len() < MIN_SCRATCH {
            return Err(InspectError::ScratchTooSmall { min: MIN_SCRATCH });
        }
        Ok(Self {
            storage,
            config,
            scratch,
            summaries,
        })
    }

    /// Scans a segment's records, or takes a matching summary made beforehand.
    fn scan(&mut self, l: &Listed, h: &SegmentHeader) -> Result<SegmentScan, IoFailure<S::Error>> {
        let summary = (self.summaries)(l.id)
            .filter(|p| p.segment == l.id && p.salt == h.salt && p.file_len == l.len);
        if let Some(p) = summary {
            return Ok(p.scan);
        }
        let keys = SegmentKeys::new(h, self.config.max_record_size, l.len);
        let mut win = Window::new(self.scratch, l.id);
        scan::scan_records(self.storage, &mut win, &keys, h.first_lsn)
    }

    /// Whether the bytes after a rejected header hold nothing: a creation that never got as
    /// far as a durable header (nothing is written after the header before it is synced).
    fn unfinished(&mut self, l: &Listed) -> Result<bool, IoFailure<S::Error>> {
        let mut win = Window::new(self.scratch, l.id);
        scan::zeros_to_end(self.storage, &mut win, SEGMENT_HEADER_LEN as u64, l.len)
    }

    /// Plans the log whose segments are `ids` (from [`list`]): calls `each` with every segment,
    /// oldest first, until it returns `false` (recovery stops at the segment that decides its
    /// verdict; inspection goes on).
    ///
    /// The findings go into places the caller owns: `out` (reset here) for the whole log, and
    /// `slot`, which holds each segment's report in turn while `each` looks at it (after a
    /// `false`, the segment that decided). Nothing this size is returned or copied by value:
    /// on a microcontroller those copies were a large part of `Wal::open`'s code and stack.
    ///
    /// `salts` is mixed with the salt of every readable header, oldest first, in the pass that
    /// finds the log id: open seeds its salt generator with what is on disk that way, and needs
    /// no pass of its own over the headers.
    pub(crate) fn plan(
        &mut self,
        ids: &[SegmentId],
        out: &mut Inspection,
        slot: &mut Option<SegmentReport>,
        salts: &mut u64,
        each: &mut dyn FnMut(&SegmentReport, &Inspection) -> bool,
    ) -> Result<(), InspectError<S::Error>> {
        *out = Inspection {
            segments: ids.len(),
            ..NOTHING_FOUND
        };
        if ids.is_empty() {
            refuse_without_segments(self.storage, out);
            return Ok(());
        }
        out.verdict = Verdict::Clean;
        let mut first_segment = None;
        for &id in ids.iter() {
            if let Ok(h) = listed(self.storage, id, self.scratch)?.header {
                *salts = splitmix64(*salts ^ h.salt);
                let log_id = *out.log_id.get_or_insert(h.log_id);
                if h.log_id == log_id {
                    first_segment = first_segment.max(h.first_segment);
                }
            }
        }
        let log_id = out.log_id.unwrap_or(0);
        let policy = self.config.recovery;

        // Where the log must start (format version 2 on): the start slots, or the latest
        // `first_segment` a header recorded. Both only ever grow, and each was true when it was
        // written, so an oldest segment after it means segments went missing.
        let start = read_start(self.storage, log_id, self.scratch).map(|s| s.1);
        let recorded = first_segment.max(start);
        // Segments older than the recorded start that do not lead up to it are not part of the
        // log (a restored backup, a stray file): they are left as they are and reported, never
        // walked, so that they cannot make the live log look damaged or let salvage cut it.
        let stale = recorded.map_or(0, |s| stale_below(ids, s));
        out.stale = stale as u32;
        let ids = &ids[stale..];
        out.segments = ids.len();
        let (Some(&oldest), Some(&newest)) = (ids.first(), ids.last()) else {
            refuse_all_stale(out, recorded);
            return Ok(());
        };
        if let Some(expected) = recorded.filter(|e| *e < oldest) {
            out.missing_front = Some(MissingFront {
                expected,
                found: oldest,
            });
            out.problems += 1;
            out.corruption = true;
            if policy != RecoveryPolicy::Salvage {
                out.verdict = Verdict::Refuse(Corruption {
                    case: Case::MissingSegment,
                    segment: expected,
                    offset: 0,
                    lsn: None,
                    detail: error::detail(
                        "the log's first segment is missing (the log records that it starts at \
                         this segment)",
                    ),
                });
            }
        }

        let mut prev_last: Option<Lsn> = None;
        // Whether the walk is still inside the prefix an open would get through.
        let mut alive = !matches!(out.verdict, Verdict::Refuse(_));
        for (i, &id) in ids.iter().enumerate() {
            let l = listed(self.storage, id, self.scratch)?;
            let is_newest = id == newest;
            let header = self.header_state(&l, log_id, prev_last)?;
            let prev = i.checked_sub(1).map(|j| ids[j]);
            let mut inputs = Inputs::before_scan(prev, l.id, is_newest, header);
            let first_here = match &l.header {
                Ok(h) if header == HeaderState::Valid => h.first_lsn,
                _ => prev_last.map_or(Lsn(1), Lsn::next),
            };
            let seg = slot.insert(SegmentReport {
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
                orphan_highest: Lsn::ZERO,
                trailing_garbage: None,
                seal: None,
            });
            // Scanned whenever the header is readable (for the report); the table inputs
            // below come from the scan only where the header is valid and continuous.
            let mut scanned = match &l.header {
                Ok(h) => Some(self.scan(&l, h).map_err(InspectError::Storage)?),
                Err(_) => None,
            };
            if let (Some(s), Ok(h)) = (&mut scanned, &l.header) {
                seg.seal = s.seal;
                if let (true, Some(seal)) = (is_newest, s.seal) {
                    // The data ends at the seal; the successor it names is gone.
                    s.end = seal.offset;
                }
                seg.records = s.records;
                seg.first_lsn = h.first_lsn;
                seg.last_lsn = s.last_lsn;
                seg.end = s.end;
                if header == HeaderState::Valid && inputs.sequence == Sequence::Continuous {
                    self.classify_scan(seg, &mut inputs, ids, i, s, h, log_id)?;
                }
            }
            seg.inputs = inputs;
            seg.case = Case::classify(&inputs);
            seg.action = seg.case.action(policy);
            let (offset, lsn, fault) = match (&scanned, seg.case) {
                (Some(s), Case::MissingNewestSegment) => {
                    let seal = s.seal.map_or(s.last_lsn.next(), |x| x.next_lsn);
                    (s.end, seal, None)
                }
                (Some(s), _) if inputs.scan != ScanState::Clean => match s.invalid {
                    Some(bad) => (bad.offset, bad.lsn, Some(bad.fault)),
                    None => (s.end, s.last_lsn.next(), None),
                },
                _ => (0, first_here, None),
            };
            let detail = error::detail(match fault {
                Some(f) => f.describe(),
                None => describe(seg.case, l.header),
            });
            if seg.case != Case::Clean {
                seg.problem = Some(Problem {
                    offset,
                    lsn: Some(lsn),
                    detail,
                    fault,
                });
                out.problems += 1;
                out.corruption |= seg.case.is_corruption();
            }
            out.records += seg.records + u64::from(seg.orphans);
            out.bytes = out.bytes.saturating_add(l.len);

            // The last LSN of what this segment's scan found, where its header is valid.
            let kept_last = match &scanned {
                Some(s) if header == HeaderState::Valid => Some(s.last_lsn),
                _ => None,
            };
            if alive {
                let here = (first_here, offset, lsn, detail, fault);
                alive = self.decide(out, seg, kept_last, prev_last, here);
            }
            // The next segment must continue this one. After a damaged segment where it ends
            // is not known, so the next segment's first LSN is taken as it is. (A header is
            // rewritten only in the newest segment: nothing follows it.)
            prev_last = match &scanned {
                Some(s) if seg.case == Case::Clean => Some(s.last_lsn),
                _ => None,
            };
            if !each(seg, out) {
                break;
            }
        }
        Ok(())
    }

    /// The table inputs that come from a valid, continuous segment's scan.
    #[allow(clippy::too_many_arguments)]
    fn classify_scan(
        &mut self,
        seg: &mut SegmentReport,
        inputs: &mut Inputs,
        ids: &[SegmentId],
        i: usize,
        s: &SegmentScan,
        h: &SegmentHeader,
        log_id: u64,
    ) -> Result<(), InspectError<S::Error>> {
        let newest = i + 1 == ids.len();
        if newest && s.seal.is_some() {
            inputs.sequence = Sequence::SuccessorMissing;
            return Ok(());
        }
        // Where a sealed segment must end: just before its successor begins.
        let successor = match ids.get(i + 1) {
            Some(&next) if next == seg.id.wrapping_add(1) => {
                Some(listed(self.storage, next, self.scratch)?)
            }
            _ => None,
        };
        let must_end = successor
            .and_then(|l| l.header.ok())
            .filter(|nh| nh.log_id == log_id && nh.first_lsn > h.first_lsn.prev())
            .map(|nh| nh.first_lsn.prev());
        // A successor created before this segment was durable proves nothing about its end
        // (docs/FORMAT.md, "Early successors"). A newest successor whose creation did not
        // finish has no readable flag: a log written with early rotation may have left it, so
        // under that configuration it is taken as early (a configuration that a build without
        // walden-core's feature `early-rotation` refuses, so there the strict rule applies).
        let early = match successor {
            Some(l) => match l.header {
                Ok(nh) => nh.early,
                // A whole header whose flag this build cannot return: the strict rule, which
                // under the default policy refuses rather than cut and remove later segments.
                Err(HeaderProblem::NewerVersion(_)) => false,
                Err(p) if p.checksum_not_built_in() => false,
                Err(_) => {
                    cfg!(feature = "early-rotation")
                        && self.config.early_rotation
                        && i + 2 == ids.len()
                        && self.unfinished(&l).map_err(InspectError::Storage)?
                }
            },
            None => false,
        };
        let too_long = s
            .invalid
            .is_some_and(|bad| matches!(bad.fault, Fault::TooLong { .. }));
        // (Only a segment with a successor can have an early one: never the newest.) Without
        // walden-core's feature `early-rotation` such a segment's damage is refused below
        // (`weigh_early`) before its position matters: left `Sealed` there, a device's build
        // links none of the decision table's early-sealed rows.
        if cfg!(feature = "early-rotation") && early {
            inputs.position = Position::EarlySealed;
        }
        inputs.scan = match (newest, must_end, s.invalid) {
            (true, _, None) => ScanState::Clean,
            (true, _, Some(_)) if too_long => ScanState::Oversized,
            (true, _, Some(bad)) => {
                let keys = SegmentKeys::new(h, self.config.max_record_size, seg.len);
                let mut win = Window::new(self.scratch, seg.id);
                let orphans = scan::find_orphans(self.storage, &mut win, &keys, &bad)
                    .map_err(InspectError::Storage)?;
                seg.orphans = orphans.records;
                seg.orphan_highest = orphans.highest;
                inputs.evidence = orphans.evidence(&bad);
                ScanState::Invalid
            }
            (false, Some(end), _) if s.last_lsn >= end => {
                seg.trailing_garbage = s.invalid.map(|bad| bad.offset);
                ScanState::Clean
            }
            (false, _, Some(_)) if too_long => ScanState::Oversized,
            (false, None, None) => ScanState::Clean,
            (false, _, _) if early => {
                inputs.evidence = self.weigh_early(seg, &ids[i..], s, h, log_id)?;
                ScanState::Invalid
            }
            (false, _, bad) => {
                if let Some(bad) = bad {
                    // Counted, not weighed: the successor proves the damage acknowledged.
                    let keys = SegmentKeys::new(h, self.config.max_record_size, seg.len);
                    let mut win = Window::new(self.scratch, seg.id);
                    let orphans = scan::find_orphans(self.storage, &mut win, &keys, &bad)
                        .map_err(InspectError::Storage)?;
                    seg.orphans = orphans.records;
                    seg.orphan_highest = orphans.highest;
                }
                inputs.evidence = Evidence::Acknowledged;
                ScanState::Invalid
            }
        };
        Ok(())
    }

    /// The evidence about an early-sealed segment's damage, or its end before its successor's
    /// first LSN: every valid record after it, in this segment (`from[0]`) and in each later
    /// one (the rest of `from`), weighed as for the newest segment (docs/FORMAT.md, "Early
    /// successors").
    #[cfg(feature = "early-rotation")]
    fn weigh_early(
        &mut self,
        seg: &mut SegmentReport,
        from: &[SegmentId],
        s: &SegmentScan,
        h: &SegmentHeader,
        log_id: u64,
    ) -> Result<Evidence, InspectError<S::Error>> {
        let lsn = s.invalid.map_or(s.last_lsn.next(), |b| b.lsn);
        let mut proof = scan::Orphans::default();
        if let Some(bad) = s.invalid {
            let keys = SegmentKeys::new(h, self.config.max_record_size, seg.len);
            let mut win = Window::new(self.scratch, seg.id);
            proof = scan::find_orphans(self.storage, &mut win, &keys, &bad)
                .map_err(InspectError::Storage)?;
            seg.orphans = proof.records;
            seg.orphan_highest = proof.highest;
        }
        for &id in from.iter().skip(1) {
            let l = listed(self.storage, id, self.scratch)?;
            let Some(lh) = l.header.ok().filter(|lh| lh.log_id == log_id) else {
                continue;
            };
            let keys = SegmentKeys::new(&lh, self.config.max_record_size, l.len);
            let mut win = Window::new(self.scratch, id);
            let found = scan::proofs(self.storage, &mut win, &keys, lh.first_lsn)
                .map_err(InspectError::Storage)?;
            proof.merge(&found);
        }
        Ok(proof.evidence_for(lsn))
    }

    /// Without walden-core's feature `early-rotation` an early-sealed segment's end cannot be
    /// judged here: the plan stops with [`InspectError::EarlyRotationNotBuiltIn`] rather than
    /// take the successor's first LSN for the segment's end (the strict rule, which would call
    /// a torn tail that was never acknowledged damage, and under `Salvage` give up the later
    /// segments for it). Nothing is read, decided or changed past this point.
    #[cfg(not(feature = "early-rotation"))]
    // Not in the builds mutation testing runs (early rotation on); the core tests of the build
    // without it check it (`tests::early_not_built_in`).
    #[cfg_attr(mutants, mutants::skip)]
    fn weigh_early(
        &mut self,
        seg: &mut SegmentReport,
        _from: &[SegmentId],
        _s: &SegmentScan,
        _h: &SegmentHeader,
        _log_id: u64,
    ) -> Result<Evidence, InspectError<S::Error>> {
        Err(InspectError::EarlyRotationNotBuiltIn { segment: seg.id })
    }

    /// How this segment changes what an open would do. Returns whether the open would go on
    /// to the next segment.
    fn decide(
        &self,
        out: &mut Inspection,
        seg: &SegmentReport,
        kept_last: Option<Lsn>,
        prev_last: Option<Lsn>,
        (first_here, offset, lsn, detail, fault): (Lsn, u64, Lsn, &'static str, Option<Fault>),
    ) -> bool {
        let refuse = |case| {
            Verdict::Refuse(Corruption {
                case,
                segment: seg.id,
                offset,
                lsn: Some(lsn),
                detail,
            })
        };
        match (seg.action, kept_last) {
            (Action::Keep, Some(last)) => {
                out.valid_through = last;
                true
            }
            (Action::CutTornTail, Some(last)) => {
                out.valid_through = last;
                out.verdict = Verdict::Repair {
                    case: seg.case,
                    segment: seg.id,
                    first_lsn: lsn,
                };
                false
            }
            (Action::SalvageCut, Some(last)) => {
                out.valid_through = last;
                out.verdict = Verdict::Salvage {
                    case: seg.case,
                    segment: seg.id,
                    offset,
                    first_lost: lsn,
                    drops_segment: false,
                };
                false
            }
            (Action::Keep | Action::CutTornTail | Action::SalvageCut, None) => {
                out.verdict = refuse(seg.case);
                false
            }
            (Action::RewriteHeader, _) => {
                out.verdict = if prev_last.is_none() && seg.id != 0 {
                    Verdict::Refuse(Corruption {
                        case: Case::DamagedHeader,
                        segment: seg.id,
                        offset: 0,
                        lsn: None,
                        detail: error::detail(
                            "torn header and no earlier segment to tell its first LSN",
                        ),
                    })
                } else {
                    Verdict::Repair {
                        case: seg.case,
                        segment: seg.id,
                        first_lsn: first_here,
                    }
                };
                false
            }
            (Action::Fail, _) => {
                out.verdict = match fault {
                    Some(Fault::TooLong { length }) if seg.case == Case::RecordTooLarge => {
                        Verdict::RecordTooLarge {
                            segment: seg.id,
                            offset,
                            lsn,
                            length,
                            max: self.config.max_record_size,
                        }
                    }
                    _ => refuse(seg.case),
                };
                false
            }
            (Action::SalvageDrop, _) => {
                out.verdict = Verdict::Salvage {
                    case: seg.case,
                    segment: seg.id,
                    offset,
                    first_lost: first_here,
                    drops_segment: true,
                };
                false
            }
        }
    }

    fn header_state(
        &mut self,
        l: &Listed,
        log_id: u64,
        prev_last: Option<Lsn>,
    ) -> Result<HeaderState, InspectError<S::Error>> {
        Ok(match l.header {
            Ok(h) => {
                let continues = prev_last.is_none_or(|p| h.first_lsn == p.next());
                if h.log_id != log_id || h.segment_id != l.id || !continues {
                    HeaderState::Foreign
                } else {
                    HeaderState::Valid
                }
            }
            Err(HeaderProblem::NewerVersion(_)) => HeaderState::NewerVersion,
            // Valid in every field: not damage, whatever follows the header.
            Err(p) if p.checksum_not_built_in() => HeaderState::ChecksumNotBuiltIn,
            Err(_) if self.unfinished(l).map_err(InspectError::Storage)? => HeaderState::Unfinished,
            Err(_) => HeaderState::Invalid,
        })
    }
}

/// Why a segment could not be scanned, in words.
pub(crate) fn describe(case: Case, header: Result<SegmentHeader, HeaderProblem>) -> &'static str {
    match (case, header) {
        (Case::MissingSegment, _) => "a segment id before this one is missing",
        (Case::MissingNewestSegment, _) => {
            "the segment's seal names a successor that is missing (the newest segment was removed)"
        }
        (Case::ForeignSegment, _) => {
            "header belongs to another log, another id, or does not continue the previous segment"
        }
        (Case::NewerVersion, _) => "segment written by a newer format version",
        (Case::TornCreation, _) => "segment header never written (nothing after it either)",
        (_, Err(HeaderProblem::Short)) => "segment shorter than its header",
        (_, Err(HeaderProblem::BadMagic)) => "bad magic",
        (_, Err(HeaderProblem::BadChecksum)) => "segment header checksum mismatch",
        (_, Err(HeaderProblem::Impossible(why))) => why,
        // A valid header, no invalid record, and still not whole: the records stop short of
        // the seal that a segment with a successor ends with.
        (_, Ok(_)) => "segment ends before its seal",
        _ => "segment header invalid",
    }
}
