//! Opening a log: plan (list segments, verify headers, scan records, classify what is found
//! with the decision table ([`crate::case`])), then carry out what the plan says.

pub(crate) mod plan;
mod prescan;
pub(crate) mod scan;

#[cfg(feature = "replay")]
pub use prescan::replay_segment;
#[cfg(all(feature = "replay", feature = "alloc"))]
pub use prescan::replay_segment_ahead;
pub use prescan::{SegmentSummary, scan_segment};
#[cfg(all(feature = "replay", feature = "alloc"))]
pub use scan::{Chunk, ReadAhead};

use crate::case::{Case, HeaderState};

use crate::config::Config;
use crate::counters::Counters;
use crate::error::{Corruption, IoFailure, Op, OpenError, detail};
use crate::lsn::Lsn;
#[cfg(feature = "salvage")]
use crate::report::SalvageLoss;
use crate::report::{RecoveryReport, TailCut};
use crate::storage::{SegmentId, Storage};
use crate::table::{SegmentList, SegmentTable};
use crate::wal::{SegmentInfo, Wal, splitmix64};
use plan::{InspectError, Planner, Problem, SegmentReport, Verdict};

/// The smallest scratch buffer `Wal::open` accepts. Larger buffers read faster.
pub const MIN_SCRATCH: usize = 256;

impl<S: Storage, Table: SegmentTable> Wal<S, Table> {
    /// Opens the log in `storage`, running recovery, and reports what recovery found and did.
    ///
    /// An empty storage gets a new log. `scratch` is working memory for scanning (at least
    /// [`MIN_SCRATCH`] bytes; 64 KiB or more reads fast). Recovery syncs the newest segment
    /// and the directory before returning, so everything it recovered is durable.
    pub fn open(
        storage: S,
        config: Config,
        scratch: &mut [u8],
    ) -> Result<(Self, RecoveryReport), OpenError<S::Error>> {
        Self::open_with_summaries(storage, config, scratch, &|_| None)
    }

    /// [`Wal::open`], reusing scans of segments made beforehand with [`scan_segment`] (for
    /// example on several threads). A summary is used only for a segment whose header salt and
    /// length still match; anything else is scanned here as usual. For the newest segment the
    /// summary replaces only the scan: damage it reports is classified (orphans searched, tail
    /// cut) here exactly as if this scan had found it, so the caller must not change the
    /// segment between the scan and this call.
    pub fn open_with_summaries(
        storage: S,
        config: Config,
        scratch: &mut [u8],
        summaries: &dyn Fn(SegmentId) -> Option<SegmentSummary>,
    ) -> Result<(Self, RecoveryReport), OpenError<S::Error>> {
        config.validate().map_err(OpenError::Config)?;
        if let Some(capacity) = storage.segment_capacity() {
            let needed = config.segment_needs();
            if needed > capacity {
                let e = crate::ConfigError::LargerThanStorage { needed, capacity };
                return Err(OpenError::Config(e));
            }
        }
        if let crate::SyncPolicy::Interval(_) = config.sync_policy {
            // Nothing here would ever sync on a timer: refuse rather than act as `Manual`.
            return Err(OpenError::Config(crate::ConfigError::NeedsFlusher));
        }
        if scratch.len() < MIN_SCRATCH {
            return Err(OpenError::ScratchTooSmall { min: MIN_SCRATCH });
        }
        // Built in the value returned, and recovered in place there: on a microcontroller a
        // `Wal` built here and then moved into the result doubled `open`'s stack frame.
        let mut out = Ok((
            Wal {
                storage,
                config,
                log_id: 0,
                segments: Default::default(),
                next_lsn: Lsn(1),
                durable: Lsn::ZERO,
                unsynced_records: 0,
                unsynced_bytes: 0,
                dirty: false,
                poisoned: None,
                counters: Counters::default(),
                salt_state: splitmix64(config.salt_seed),
                rewinds: 0,
                start_generation: 0,
                #[cfg(feature = "early-rotation")]
                pending: None,
                #[cfg(feature = "encrypt")]
                keys: Default::default(),
                #[cfg(feature = "encrypt")]
                fresh: None,
            },
            NOTHING_RECOVERED,
        ));
        Self::recover_into(&mut out, scratch, summaries);
        out
    }

    /// Recovers the log built in `out` in place, replacing it with the error if recovery fails.
    ///
    /// Never inlined, and takes the whole result rather than returning `recover`'s: the error
    /// (48 bytes on a Cortex-M) then has no slot of its own in `open`'s frame beside the `Wal`
    /// (40 to 56 bytes less stack, about 180 bytes more flash).
    #[inline(never)]
    fn recover_into(
        out: &mut Result<(Self, RecoveryReport), OpenError<S::Error>>,
        scratch: &mut [u8],
        summaries: &dyn Fn(SegmentId) -> Option<SegmentSummary>,
    ) {
        if let Ok((wal, report)) = out
            && let Err(e) = wal.recover(report, scratch, summaries)
        {
            *out = Err(e);
        }
    }

    /// Recovers the log into `self`, saying what it found and did in `report` (which starts as
    /// [`NOTHING_RECOVERED`]).
    ///
    /// Inlined into [`Wal::recover_into`], which is never inlined into `open`: on a Cortex-M
    /// (opt-level "z") the two in one function took about 1.5 KB more flash (the price is
    /// about 260 bytes of stack: two frames, `open`'s holding the `Wal` being built and this
    /// one the planner's values, where one overlapped some of both).
    #[inline(always)]
    fn recover(
        &mut self,
        report: &mut RecoveryReport,
        scratch: &mut [u8],
        summaries: &dyn Fn(SegmentId) -> Option<SegmentSummary>,
    ) -> Result<(), OpenError<S::Error>> {
        let mut ids = Table::List::<SegmentId>::default();
        plan::list(&self.storage, &mut ids).map_err(open_error)?;
        // No segment: a new log, unless a start slot proves one was here (the planner refuses
        // it below).
        if ids.is_empty() && plan::held_start_slot(&self.storage).is_none() {
            // Checked before the segment is created: a table that cannot hold it (`Fixed<0>`)
            // would otherwise leave a log without segments. (Recovery's other new segments
            // replace listed ones, which the table has room for.)
            if !self.segments.reserve_one() {
                return Err(OpenError::TooManySegments { capacity: 0 });
            }
            self.log_id = new_log_id(self.salt_state);
            self.add_segment(0, Lsn(1), false)?;
            report.created = true;
            report.segments = 1;
            return Ok(());
        }

        // Plan (read only), keeping every segment the plan keeps, up to the one that decides.
        // The planner writes into `planned` and `slot` (the segment that decides, when one
        // does) rather than returning them: they are the largest values recovery handles.
        let mut planned = plan::NOTHING_FOUND;
        let mut slot = None;
        let mut decided = false;
        {
            let segments = &mut self.segments;
            let counters = &mut self.counters;
            let mut planner = Planner::new(&self.storage, &self.config, scratch, summaries)
                .map_err(open_error)?;
            // The planner mixes what is on disk into the salt state (so a constant seed still
            // yields new salts) as it looks for the log id. The corruption count and the last
            // LSN kept go straight into the counters and the report (`report.last_lsn` is the
            // last LSN kept until the end), not into locals live across the walk: on a
            // Cortex-M those cost recovery's frame spill slots. The plan's error is returned
            // without `map_err`, whose result had a slot of its own there.
            let planning = planner.plan(
                &ids,
                &mut planned,
                &mut slot,
                &mut self.salt_state,
                &mut |seg, so_far| {
                    counters.corruption_events += u64::from(seg.case.is_corruption());
                    if so_far.verdict == Verdict::Clean {
                        if keep(seg, segments) {
                            report.records += seg.records;
                            report.last_lsn = seg.last_lsn;
                            if let Some(at) = seg.trailing_garbage {
                                report.trailing_garbage = Some((seg.id, at));
                            }
                        }
                        true
                    } else {
                        decided = true;
                        false
                    }
                },
            );
            if let Err(e) = planning {
                return Err(open_error(e));
            }
        }
        self.log_id = planned
            .log_id
            .unwrap_or_else(|| new_log_id(self.salt_state));
        let decisive = slot.as_ref().filter(|_| decided);
        match (planned.verdict, decisive) {
            (Verdict::Empty | Verdict::Clean, _) => {}
            (Verdict::Refuse(c), _) => return Err(OpenError::Corrupted(c)),
            (
                Verdict::RecordTooLarge {
                    segment,
                    offset,
                    lsn,
                    length,
                    max,
                },
                _,
            ) => {
                return Err(OpenError::RecordTooLarge {
                    segment,
                    offset,
                    lsn,
                    length,
                    max,
                });
            }
            (
                Verdict::Repair {
                    case, first_lsn, ..
                },
                Some(seg),
            ) if case == Case::TornTail => {
                if !keep(seg, &mut self.segments) {
                    return Err(OpenError::Corrupted(refusal(seg)));
                }
                #[cfg(feature = "early-rotation")]
                let later = {
                    let i = ids.iter().position(|&id| id == seg.id).unwrap_or(ids.len());
                    let later = ids.get(i + 1..).unwrap_or(&[]);
                    // Only this log's segments are removed: refuse, before changing anything,
                    // if a later one's valid header names another log.
                    self.refuse_foreign(later, scratch)?;
                    later
                };
                // Cut first, then remove later segments newest first: a crash part way leaves
                // the same torn tail across segments to find again (docs/FORMAT.md, crash-case
                // argument 3b).
                self.cut_tail(seg.id, seg.end, seg.len)?;
                // The cut segment is the newest again: appends go on in it.
                let last = self.segments.len() - 1;
                self.segments[last].sealed = false;
                #[cfg(feature = "early-rotation")]
                let removed = self.drop_from(later, scratch)?;
                // Without early rotation a torn tail is only ever the newest segment's.
                #[cfg(not(feature = "early-rotation"))]
                let removed = 0u32;
                let problem = seg.problem.unwrap_or(NO_PROBLEM);
                report.cut = Some(TailCut {
                    case,
                    segment: seg.id,
                    offset: seg.end,
                    bytes: seg.len - seg.end,
                    first_lsn,
                    orphans: seg.orphans,
                    segments_removed: u16::try_from(removed).unwrap_or(u16::MAX),
                    detail: problem.detail,
                });
                report.records += seg.records;
                report.last_lsn = seg.last_lsn;
            }
            (Verdict::Repair { first_lsn, .. }, Some(seg)) => {
                // The rewritten header has no `early` flag, so it claims its predecessor whole:
                // make that true first (an early rotation may have left it unsynced).
                if let Some(prev) = self.segments.last() {
                    let id = prev.id;
                    self.guarded(Op::Sync, Some(id), |s| s.sync(id))?;
                }
                self.add_segment(seg.id, first_lsn, true)?;
                report.rewritten_header = Some(seg.id);
                report.last_lsn = first_lsn.prev();
            }
            #[cfg(feature = "salvage")]
            (
                Verdict::Salvage {
                    case,
                    segment,
                    offset,
                    first_lost,
                    drops_segment,
                },
                Some(seg),
            ) => {
                let i = ids
                    .iter()
                    .position(|&id| id == segment)
                    .unwrap_or(ids.len());
                let problem = seg.problem.unwrap_or(NO_PROBLEM);
                if drops_segment {
                    let beyond = self.highest_lsn(&ids[i..], scratch)?;
                    let dropped = self.drop_from(&ids[i..], scratch)?;
                    report.salvage = Some(SalvageLoss {
                        case,
                        segment,
                        offset,
                        first_lost,
                        last_known: beyond.filter(|k| *k >= first_lost),
                        segments_dropped: dropped,
                        detail: problem.detail,
                    });
                    // A segment that salvage leaves as the newest must end at its last record:
                    // a seal, or trailing bytes that were harmless while a successor vouched for
                    // its end, would otherwise read as damage on the next open.
                    if let Some(last) = self.segments.last_mut() {
                        let len = plan::listed(&self.storage, last.id, scratch)
                            .map_err(open_error)?
                            .len;
                        if len > last.end {
                            let (id, end) = (last.id, last.end);
                            last.sealed = false;
                            self.cut_tail(id, end, len)?;
                        }
                    }
                    if self.segments.is_empty() {
                        self.add_segment(seg.id, first_lost, false)?;
                    }
                    report.last_lsn = first_lost.prev();
                } else {
                    let mut info = kept(seg).ok_or(OpenError::Corrupted(refusal(seg)))?;
                    // The segment becomes the newest: its seal (naming a successor about to be
                    // dropped) goes with the damage.
                    self.cut_tail(seg.id, info.end, seg.len)?;
                    info.sealed = false;
                    report.records += seg.records;
                    let _ = self.segments.push(info);
                    let later = &ids[i + 1..];
                    let beyond = self.highest_lsn(later, scratch)?;
                    let dropped = self.drop_from(later, scratch)?;
                    report.salvage = Some(SalvageLoss {
                        case,
                        segment,
                        offset,
                        first_lost,
                        last_known: beyond
                            .max(Some(seg.orphan_highest))
                            .max(Some(seg.last_lsn))
                            .filter(|k| *k >= first_lost),
                        segments_dropped: dropped,
                        detail: problem.detail,
                    });
                    report.last_lsn = seg.last_lsn;
                }
            }
            #[cfg(not(feature = "salvage"))]
            (Verdict::Salvage { .. }, Some(_)) => {
                // `Config::validate` refuses the policy that plans salvage in this build.
                return Err(OpenError::Config(crate::ConfigError::SalvageNotBuiltIn));
            }
            (_, None) => {
                // A verdict other than clean always comes with the segment that decided it.
                return Err(OpenError::Corrupted(Corruption {
                    case: Case::MissingSegment,
                    segment: ids[0],
                    offset: 0,
                    lsn: None,
                    detail: detail("recovery plan without a deciding segment"),
                }));
            }
        }
        self.start_generation =
            plan::read_start(&self.storage, self.log_id, scratch).map_or(0, |s| s.0);
        report.stale = planned.stale;
        if let Some(front) = planned.missing_front {
            // Only Salvage gets here: record the loss durably, so the next open (under any
            // policy) finds the log starting where it now starts.
            report.missing_front = Some(front);
            // `salvage` needs `start-slots`: without it this verdict cannot arise.
            #[cfg(feature = "start-slots")]
            self.record_start(self.segments[0].id)?;
        }
        let last = report.last_lsn;
        self.next_lsn = last.next();
        // What recovery read may have been only in the page cache: make it durable before any
        // new record vouches for it. That includes every segment an early rotation may have
        // left unsynced (one with an early successor).
        for k in 1..self.segments.len() {
            if self.segments[k].early {
                let id = self.segments[k - 1].id;
                self.guarded(Op::Sync, Some(id), |s| s.sync(id))?;
            }
        }
        let id = self.active().id;
        self.guarded(Op::Sync, Some(id), |s| s.sync(id))?;
        self.guarded(Op::SyncDir, None, |s| s.sync_dir())?;
        self.durable = last;
        report.segments = self.segments.len();
        report.first_lsn = self.first_lsn();
        self.counters.records_recovered = report.records;
        Ok(())
    }

    /// Creates segment `id` (see `create_segment`) and adds it to the table as the newest.
    ///
    /// Never inlined, like [`keep`] and for the same reason: the new entry lives in this frame,
    /// not in a slot of recovery's own for each place that creates a segment.
    #[inline(never)]
    fn add_segment(
        &mut self,
        id: SegmentId,
        first: Lsn,
        exists: bool,
    ) -> Result<(), IoFailure<S::Error>> {
        // Recovery's own segments never have the `early` flag: their predecessors are synced.
        let info = self.create_segment(id, first, exists, false)?;
        let _ = self.segments.push(info);
        Ok(())
    }

    /// Truncates a segment to `end` durably.
    fn cut_tail(&mut self, id: SegmentId, end: u64, len: u64) -> Result<(), IoFailure<S::Error>> {
        self.guarded(Op::Truncate, Some(id), |s| s.truncate(id, end))?;
        self.guarded(Op::Sync, Some(id), |s| s.sync(id))?;
        self.counters.bytes_truncated += len - end;
        Ok(())
    }

    /// The highest LSN found in these segments (valid records, or what headers imply), for
    /// the salvage report. Damaged segments contribute what can still be read.
    #[cfg(feature = "salvage")]
    fn highest_lsn(
        &self,
        doomed: &[SegmentId],
        scratch: &mut [u8],
    ) -> Result<Option<Lsn>, OpenError<S::Error>> {
        let mut highest = None;
        for &id in doomed {
            let l = plan::listed(&self.storage, id, scratch).map_err(open_error)?;
            let Ok(h) = l.header else { continue };
            highest = highest.max(Some(h.first_lsn.prev()));
            let keys = scan::SegmentKeys::new(&h, self.config.max_record_size, l.len);
            let mut win = scan::Window::new(scratch, l.id);
            let s = scan::scan_records(&self.storage, &mut win, &keys, h.first_lsn)
                .map_err(OpenError::Storage)?;
            highest = highest.max(Some(s.last_lsn));
        }
        Ok(highest)
    }

    /// Refuses (`ForeignSegment`) if any of these segments has a valid header of another log.
    #[cfg(feature = "early-rotation")]
    fn refuse_foreign(
        &self,
        ids: &[SegmentId],
        scratch: &mut [u8],
    ) -> Result<(), OpenError<S::Error>> {
        for &id in ids {
            if let Ok(h) = plan::listed(&self.storage, id, scratch)
                .map_err(open_error)?
                .header
                && h.log_id != self.log_id
            {
                return Err(OpenError::Corrupted(Corruption {
                    case: Case::ForeignSegment,
                    segment: id,
                    offset: 0,
                    lsn: None,
                    detail: detail(
                        "header belongs to another log (after a torn tail across segments)",
                    ),
                }));
            }
        }
        Ok(())
    }

    /// Removes these segments, newest first, syncing the directory after each: what salvage
    /// gives up, and the later segments of a torn tail across segments (early rotation).
    #[cfg(any(feature = "salvage", feature = "early-rotation"))]
    fn drop_from(
        &mut self,
        doomed: &[SegmentId],
        scratch: &mut [u8],
    ) -> Result<u32, OpenError<S::Error>> {
        for &id in doomed.iter().rev() {
            let len = plan::listed(&self.storage, id, scratch)
                .map_err(open_error)?
                .len;
            self.guarded(Op::Remove, Some(id), |s| s.remove(id))?;
            self.guarded(Op::SyncDir, None, |s| s.sync_dir())?;
            self.counters.bytes_truncated += len;
        }
        Ok(doomed.len() as u32)
    }
}

/// The id of a log none of whose headers can be read (or of a new one).
fn new_log_id(salt_state: u64) -> u64 {
    splitmix64(salt_state ^ 0x004c_4f47_4944)
}

const NOTHING_RECOVERED: RecoveryReport = RecoveryReport {
    created: false,
    segments: 0,
    records: 0,
    first_lsn: Lsn(1),
    last_lsn: Lsn::ZERO,
    cut: None,
    rewritten_header: None,
    trailing_garbage: None,
    salvage: None,
    missing_front: None,
    stale: 0,
};

const NO_PROBLEM: Problem = Problem {
    offset: 0,
    lsn: None,
    detail: "",
    fault: None,
};

/// Adds the table entry of a segment the plan keeps to `segments`; `false` (and nothing
/// added) if the plan does not keep it.
///
/// Never inlined: the entry (48 bytes with its `Option`, and as many for the result of the
/// push) then lives in this short frame instead of recovery's, where each place that kept a
/// segment had slots of its own.
#[inline(never)]
fn keep<L: SegmentList<SegmentInfo>>(seg: &SegmentReport, segments: &mut L) -> bool {
    match kept(seg) {
        Some(info) => {
            let _ = segments.push(info);
            true
        }
        None => false,
    }
}

/// The table entry of a segment the plan keeps (a valid header, scanned).
fn kept(seg: &SegmentReport) -> Option<SegmentInfo> {
    let h = seg.header.ok()?;
    if seg.inputs.header != HeaderState::Valid {
        return None;
    }
    let sealed = seg.seal.is_some_and(|s| s.offset < seg.end);
    let mut info = SegmentInfo::new(
        seg.id,
        h.first_lsn,
        h.salt,
        seg.seal.filter(|_| sealed).map_or(seg.end, |s| s.offset),
        h.checksum,
        h.version,
        h.key_id,
        h.early,
    );
    info.sealed = sealed;
    Some(info)
}

fn refusal(seg: &SegmentReport) -> Corruption {
    let p = seg.problem.unwrap_or(NO_PROBLEM);
    Corruption {
        case: seg.case,
        segment: seg.id,
        offset: p.offset,
        lsn: p.lsn,
        detail: p.detail,
    }
}

fn open_error<E>(e: InspectError<E>) -> OpenError<E> {
    match e {
        InspectError::ScratchTooSmall { min } => OpenError::ScratchTooSmall { min },
        InspectError::TooManySegments { capacity } => OpenError::TooManySegments { capacity },
        InspectError::Storage(s) => OpenError::Storage(s),
        InspectError::EarlyRotationNotBuiltIn { segment } => {
            OpenError::EarlyRotationNotBuiltIn { segment }
        }
    }
}
