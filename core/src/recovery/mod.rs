//! Opening a log: list segments, verify headers, scan records, classify what is found with the
//! decision table ([`table`]), and apply the recovery policy.

mod prescan;
pub(crate) mod scan;
pub mod table;

pub use prescan::{SegmentSummary, scan_segment};

pub use table::{Action, Case, Evidence, HeaderState, Inputs, Position, ScanState, Sequence};

use crate::config::Config;
use crate::counters::Counters;
use crate::error::{Corruption, IoFailure, Op, OpenError};
use crate::format::{HeaderProblem, SEGMENT_HEADER_LEN, SegmentHeader};
use crate::lsn::Lsn;
use crate::report::{RecoveryReport, SalvageLoss, TailCut};
use crate::storage::{SegmentId, Storage, read_full};
use crate::wal::{SegmentInfo, Wal, splitmix64};
use scan::{SegmentKeys, SegmentScan, Window};

/// The smallest scratch buffer `Wal::open` accepts. Larger buffers read faster.
pub const MIN_SCRATCH: usize = 256;

/// One listed segment with its header as read.
#[derive(Clone, Copy, Debug)]
struct Listed {
    id: SegmentId,
    len: u64,
    header: Result<SegmentHeader, HeaderProblem>,
}

fn io<E>(op: Op, segment: Option<SegmentId>) -> impl FnOnce(E) -> IoFailure<E> {
    move |error| IoFailure { op, segment, error }
}

impl<S: Storage, const N: usize> Wal<S, N> {
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
        if scratch.len() < MIN_SCRATCH {
            return Err(OpenError::ScratchTooSmall { min: MIN_SCRATCH });
        }
        let mut wal = Wal {
            storage,
            config,
            log_id: 0,
            segments: heapless::Vec::new(),
            next_lsn: Lsn(1),
            durable: Lsn::ZERO,
            unsynced_records: 0,
            unsynced_bytes: 0,
            dirty: false,
            poisoned: None,
            counters: Counters::default(),
            salt_state: splitmix64(config.salt_seed),
            rewinds: 0,
        };
        let report = wal.recover(scratch, summaries)?;
        Ok((wal, report))
    }

    /// Segment ids, ascending. Only ids are kept (8 bytes each), so even a large segment table
    /// costs little stack; headers are read again where needed (64 bytes each).
    fn list_segments(&mut self) -> Result<heapless::Vec<SegmentId, N>, OpenError<S::Error>> {
        let mut ids: heapless::Vec<SegmentId, N> = heapless::Vec::new();
        let mut overflow = false;
        self.storage
            .list(&mut |id| overflow |= ids.push(id).is_err())
            .map_err(io(Op::List, None))?;
        if overflow {
            return Err(OpenError::TooManySegments { capacity: N });
        }
        ids.sort_unstable();
        Ok(ids)
    }

    /// A segment's length and header as they are on the medium.
    fn listed(&self, id: SegmentId) -> Result<Listed, OpenError<S::Error>> {
        let len = self.storage.len(id).map_err(io(Op::Len, Some(id)))?;
        let mut buf = [0u8; SEGMENT_HEADER_LEN];
        let n = read_full(&self.storage, id, 0, &mut buf).map_err(io(Op::Read, Some(id)))?;
        let header = SegmentHeader::decode(&buf[..n]);
        Ok(Listed { id, len, header })
    }

    fn recover(
        &mut self,
        scratch: &mut [u8],
        summaries: &dyn Fn(SegmentId) -> Option<SegmentSummary>,
    ) -> Result<RecoveryReport, OpenError<S::Error>> {
        let ids = self.list_segments()?;
        let mut report = RecoveryReport {
            created: false,
            segments: 0,
            records: 0,
            first_lsn: Lsn(1),
            last_lsn: Lsn::ZERO,
            cut: None,
            rewritten_header: None,
            trailing_garbage: None,
            salvage: None,
        };
        // Mix what is on disk into the salt state so a constant seed still yields new salts.
        let mut log_id = None;
        for &id in &ids {
            if let Ok(h) = self.listed(id)?.header {
                self.salt_state = splitmix64(self.salt_state ^ h.salt);
                log_id = log_id.or(Some(h.log_id));
            }
        }
        self.log_id = log_id.unwrap_or_else(|| splitmix64(self.salt_state ^ 0x004c_4f47_4944));
        if ids.is_empty() {
            let info = self.create_segment(0, Lsn(1), false)?;
            let _ = self.segments.push(info);
            report.created = true;
            report.segments = 1;
            return Ok(report);
        }

        let mut prev_last: Option<Lsn> = None;
        for i in 0..ids.len() {
            let l = self.listed(ids[i])?;
            let newest = i + 1 == ids.len();
            let header = self.header_state(&l, prev_last);
            let prev = i.checked_sub(1).map(|j| ids[j]);
            let mut inputs = Inputs::before_scan(prev, l.id, newest, header);
            let mut scanned: Option<(SegmentScan, SegmentKeys)> = None;
            let mut orphans = scan::Orphans::default();
            if let (HeaderState::Valid, Ok(h), Sequence::Continuous) =
                (header, l.header, inputs.sequence)
            {
                let keys = SegmentKeys::new(&h, self.config.max_record_size, l.len);
                let mut win = Window::new(scratch, l.id);
                let summary = summaries(l.id)
                    .filter(|p| p.segment == l.id && p.salt == h.salt)
                    .filter(|p| p.file_len == l.len);
                let s = match summary {
                    Some(p) => p.scan,
                    None => scan::scan_records(&self.storage, &mut win, &keys, h.first_lsn)
                        .map_err(OpenError::Storage)?,
                };
                // Where a sealed segment must end: just before its successor begins.
                let next = match ids.get(i + 1) {
                    Some(&id) if id == l.id.wrapping_add(1) => Some(self.listed(id)?),
                    _ => None,
                };
                let must_end = next
                    .and_then(|next| next.header.ok())
                    .filter(|nh| nh.log_id == self.log_id && nh.first_lsn > h.first_lsn.prev())
                    .map(|nh| nh.first_lsn.prev());
                inputs.scan = match (newest, must_end, s.invalid) {
                    (true, _, None) => ScanState::Clean,
                    (true, _, Some(bad)) => {
                        orphans = scan::find_orphans(&self.storage, &mut win, &keys, &bad)
                            .map_err(OpenError::Storage)?;
                        inputs.evidence = orphans.evidence(&bad);
                        ScanState::Invalid
                    }
                    (false, Some(end), _) if s.last_lsn >= end => {
                        if let Some(bad) = s.invalid {
                            report.trailing_garbage = Some((l.id, bad.offset));
                        }
                        ScanState::Clean
                    }
                    (false, Some(_), _) => {
                        inputs.evidence = Evidence::Acknowledged;
                        ScanState::Invalid
                    }
                    (false, None, None) => ScanState::Clean,
                    (false, None, Some(_)) => {
                        inputs.evidence = Evidence::Acknowledged;
                        ScanState::Invalid
                    }
                };
                scanned = Some((s, keys));
            }

            let case = Case::classify(&inputs);
            let action = case.action(self.config.recovery);
            let first_here = match l.header {
                Ok(h) if header == HeaderState::Valid => h.first_lsn,
                _ => prev_last.map_or(Lsn(1), Lsn::next),
            };
            let (offset, lsn, detail) = match scanned {
                Some((s, _)) => match s.invalid {
                    Some(bad) => (bad.offset, bad.lsn, bad.detail),
                    None => (
                        s.end,
                        s.last_lsn.next(),
                        "segment ends before its successor begins",
                    ),
                },
                None => (0, first_here, describe(case, l.header)),
            };
            if case.is_corruption() {
                self.counters.corruption_events += 1;
            }
            match action {
                Action::Keep | Action::CutTornTail | Action::SalvageCut => {
                    // Only cases with a valid header and a scan lead here (see `Case::action`).
                    let Some((s, keys)) = scanned else {
                        return Err(OpenError::Corrupted(Corruption {
                            case,
                            segment: l.id,
                            offset,
                            lsn: Some(lsn),
                            detail,
                        }));
                    };
                    if action != Action::Keep {
                        self.cut_tail(l.id, s.end, keys.file_len)?;
                    }
                    if action == Action::CutTornTail {
                        report.cut = Some(TailCut {
                            case,
                            segment: l.id,
                            offset: s.end,
                            bytes: keys.file_len - s.end,
                            first_lsn: lsn,
                            orphans: orphans.count,
                            detail,
                        });
                    }
                    self.keep(&l, keys, s, &mut report);
                    prev_last = Some(s.last_lsn);
                    if action == Action::SalvageCut {
                        let beyond = self.highest_lsn(&ids[i + 1..], scratch)?;
                        let dropped = self.drop_from(&ids[i + 1..])?;
                        report.salvage = Some(SalvageLoss {
                            case,
                            segment: l.id,
                            offset,
                            first_lost: lsn,
                            last_known: beyond
                                .max(Some(orphans.highest))
                                .max(Some(s.last_lsn))
                                .filter(|k| *k >= lsn),
                            segments_dropped: dropped,
                            detail,
                        });
                        break;
                    }
                }
                Action::RewriteHeader => {
                    let first = match prev_last {
                        Some(p) => p.next(),
                        None if l.id == 0 => Lsn(1),
                        None => {
                            return Err(OpenError::Corrupted(Corruption {
                                case: Case::DamagedHeader,
                                segment: l.id,
                                offset: 0,
                                lsn: None,
                                detail: "torn header and no earlier segment to tell its first LSN",
                            }));
                        }
                    };
                    let info = self.create_segment(l.id, first, true)?;
                    let _ = self.segments.push(info);
                    report.rewritten_header = Some(l.id);
                    report.segments += 1;
                    prev_last = Some(first.prev());
                }
                Action::Fail => {
                    return Err(OpenError::Corrupted(Corruption {
                        case,
                        segment: l.id,
                        offset,
                        lsn: Some(lsn),
                        detail,
                    }));
                }
                Action::SalvageDrop => {
                    let beyond = self.highest_lsn(&ids[i..], scratch)?;
                    let dropped = self.drop_from(&ids[i..])?;
                    report.salvage = Some(SalvageLoss {
                        case,
                        segment: l.id,
                        offset,
                        first_lost: first_here,
                        last_known: beyond.filter(|k| *k >= first_here),
                        segments_dropped: dropped,
                        detail,
                    });
                    // A sealed segment that salvage leaves as the newest must end at its last
                    // record: trailing bytes that were harmless while a successor vouched for
                    // its end would otherwise read as a damaged tail on the next open.
                    if let (Some(kept), Some((gid, _))) =
                        (self.segments.last().copied(), report.trailing_garbage)
                    {
                        if gid == kept.id {
                            let len = self.listed(kept.id)?.len;
                            self.cut_tail(kept.id, kept.end, len)?;
                        }
                    }
                    if self.segments.is_empty() {
                        let info = self.create_segment(l.id, first_here, false)?;
                        let _ = self.segments.push(info);
                        report.segments += 1;
                    }
                    prev_last = Some(first_here.prev());
                    break;
                }
            }
        }
        let last = prev_last.unwrap_or(Lsn::ZERO);
        self.next_lsn = last.next();
        // What recovery read may have been only in the page cache: make it durable before any
        // new record vouches for it.
        let id = self.active().id;
        self.guarded(Op::Sync, Some(id), |s| s.sync(id))?;
        self.guarded(Op::SyncDir, None, |s| s.sync_dir())?;
        self.durable = last;
        report.first_lsn = self.first_lsn();
        report.last_lsn = last;
        self.counters.records_recovered = report.records;
        Ok(report)
    }

    fn header_state(&self, l: &Listed, prev_last: Option<Lsn>) -> HeaderState {
        match l.header {
            Ok(h) => {
                let continues = prev_last.is_none_or(|p| h.first_lsn == p.next());
                if h.log_id != self.log_id || h.segment_id != l.id || !continues {
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

    fn keep(&mut self, l: &Listed, keys: SegmentKeys, s: SegmentScan, report: &mut RecoveryReport) {
        let _ = self.segments.push(SegmentInfo {
            id: l.id,
            first_lsn: Lsn(s.last_lsn.0 + 1 - s.records),
            salt: keys.salt,
            checksum: keys.checksum,
            end: s.end,
        });
        report.segments += 1;
        report.records += s.records;
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
    fn highest_lsn(
        &self,
        doomed: &[SegmentId],
        scratch: &mut [u8],
    ) -> Result<Option<Lsn>, OpenError<S::Error>> {
        let mut highest = None;
        for &id in doomed {
            let l = self.listed(id)?;
            let Ok(h) = l.header else { continue };
            highest = highest.max(Some(h.first_lsn.prev()));
            let keys = SegmentKeys::new(&h, self.config.max_record_size, l.len);
            let mut win = Window::new(scratch, l.id);
            let s = scan::scan_records(&self.storage, &mut win, &keys, h.first_lsn)
                .map_err(OpenError::Storage)?;
            highest = highest.max(Some(s.last_lsn));
        }
        Ok(highest)
    }

    /// Salvage: removes these segments, newest first, syncing the directory after each.
    fn drop_from(&mut self, doomed: &[SegmentId]) -> Result<u32, OpenError<S::Error>> {
        for &id in doomed.iter().rev() {
            let len = self.listed(id)?.len;
            self.guarded(Op::Remove, Some(id), |s| s.remove(id))?;
            self.guarded(Op::SyncDir, None, |s| s.sync_dir())?;
            self.counters.bytes_truncated += len;
        }
        Ok(doomed.len() as u32)
    }
}

/// Why a segment could not be scanned, in words (shared with `inspect`).
pub(crate) fn describe(case: Case, header: Result<SegmentHeader, HeaderProblem>) -> &'static str {
    match (case, header) {
        (Case::MissingSegment, _) => "a segment id before this one is missing",
        (Case::ForeignSegment, _) => {
            "header belongs to another log, another id, or does not continue the previous segment"
        }
        (Case::NewerVersion, _) => "segment written by a newer format version",
        (_, Err(HeaderProblem::Short)) => "segment shorter than its header",
        (_, Err(HeaderProblem::BadMagic)) => "bad magic",
        (_, Err(HeaderProblem::BadChecksum)) => "segment header checksum mismatch",
        (_, Err(HeaderProblem::Impossible(why))) => why,
        _ => "segment header invalid",
    }
}
