//! [`SharedReader`]: reads by LSN while other threads append.
//!
//! The reader copies a chunk of a segment under the log lock — never past the segment's end as
//! the log knows it at that moment, which is the end of the last *complete* append — and then
//! parses and verifies the records in the chunk without the lock. So it sees only complete
//! records (a batch being appended is either entirely past that end or entirely before it) and
//! holds the lock only for one bounded copy at a time.
//!
//! A `truncate_back` that removes records a reader has returned is reported to it once, at its
//! next read, as [`ReadError::Rewound`] (see [`SharedReader`]).

use core::sync::atomic::Ordering;
use std::collections::BTreeMap;
use std::sync::MutexGuard;

use walden_core::raw::{
    Fault, Located, RECORD_HEADER_LEN, RecordCursor, RecordKind, SEGMENT_HEADER_LEN,
};
use walden_core::{Case, Corruption, DecodeError, IoFailure, Lsn, Op, ReadError, SegmentId};

use crate::gate::Handle;
use crate::group::GroupSync;
use crate::shared::Inner;

/// Bytes copied per visit to the log lock (more when one record is larger).
const CHUNK: usize = 256 * 1024;

/// The first refill of a new reader.
const FIRST_WINDOW: usize = 4096;

/// How sparse the position index is: one entry per this many LSNs ...
pub(crate) const INDEX_EVERY: u64 = 32;

/// ... and at least one per this many bytes of a segment (the record that holds each
/// boundary), so a read by LSN of large records walks a few KiB, not 32 records.
pub(crate) const INDEX_BYTES: u64 = 4096;

/// Reads by LSN that a segment without a dense run serves from the sparse index before
/// the reader that makes the next one walks the whole segment once and gives it a run (see
/// [`PositionIndex`]).
pub(crate) const RUN_AFTER_MISSES: u32 = 64;

/// No segment is walked for a run while the runs hold this much memory (16 Mi records: a log of
/// about 2.5 GiB of 128-byte records); the segments read at random past it are read through the
/// sparse index, as before runs were built on reads. Runs of appended records are not limited.
pub(crate) const RUN_MEMORY_LIMIT: usize = 64 << 20;

/// Whether a reader that walks over the record at `offset`, `len` bytes long with its header,
/// adds it to the index.
fn indexed(lsn: Lsn, offset: u64, len: u64) -> bool {
    lsn.0.is_multiple_of(INDEX_EVERY) || offset / INDEX_BYTES != (offset + len) / INDEX_BYTES
}

/// Known record positions, so a read by LSN starts at (or near) its record instead of at the
/// start of the segment. Two kinds:
///
/// * dense runs ([`DenseRun`], at most one per segment): the offset of every record of a
///   contiguous stretch of a segment, filled on append for records stored as they were given
///   (no compression, no encryption: their stored length is known without reading them). A
///   read by LSN in a run goes straight to its record and copies exactly its bytes.
/// * a sparse map (`lsn -> (segment, offset)`), filled as readers walk the log, for everything
///   else (segments written before this open, transformed records).
///
/// A segment written before this open has no run at first. Once
/// [`RUN_AFTER_MISSES`] reads by LSN have started in it from the sparse map, the next one
/// walks the whole segment (its headers verified; the payloads read past, not checked: each
/// is checked when it is read) and gives it a run: a log read at random after a reopen costs,
/// from then on, what one written by this process does (a copy of exactly the record), and 4
/// bytes of memory per record of each such segment, while all runs hold less than
/// [`RUN_MEMORY_LIMIT`]. Before, each read walked up to 32 records
/// from a sparse position, through a 4 KiB copy (0.52-0.55 of the baseline's random reads,
/// against about 1.0 for records appended since open).
///
/// Either is only a starting point: the reader still verifies the header there (its LSN and
/// checksum), as it verifies every record. Each truncation bumps `generation` and drops what it
/// invalidated, and a reader that started under an older generation adds nothing.
#[derive(Debug, Default)]
pub(crate) struct PositionIndex {
    generation: u64,
    map: BTreeMap<u64, (SegmentId, u64)>,
    /// Ordered by segment (and so by LSN).
    runs: Vec<DenseRun>,
    /// Reads by LSN served from `map` per segment without a run (`u32::MAX`: a run is being
    /// built or was built).
    misses: std::collections::HashMap<SegmentId, u32>,
}

/// The offsets of consecutive records `first ..` of one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DenseRun {
    pub(crate) segment: SegmentId,
    pub(crate) first: u64,
    /// `offsets[i]` is where the record `first + i` starts. `u32`: 4 bytes of memory per
    /// record; a run stops growing at 4 GiB into a segment.
    pub(crate) offsets: Vec<u32>,
    /// Just past the run's last record: where the next one starts.
    pub(crate) end: u64,
}

impl DenseRun {
    /// Where record `lsn` is and how long it is with its header, if the run holds it.
    fn get(&self, lsn: u64) -> Option<(u64, u64)> {
        let i = usize::try_from(lsn.checked_sub(self.first)?).ok()?;
        let at = u64::from(*self.offsets.get(i)?);
        let next = self.offsets.get(i + 1).map_or(self.end, |&o| u64::from(o));
        Some((at, next - at))
    }
}

impl PositionIndex {
    /// The closest known position at or before `lsn` within `segment`.
    fn floor(&self, segment: SegmentId, first: Lsn, lsn: Lsn) -> Option<(Lsn, u64)> {
        let (l, (s, off)) = self.map.range(first.0..=lsn.0).next_back()?;
        (*s == segment).then_some((Lsn(*l), *off))
    }

    /// The index of `segment`'s run (`Ok`), or where one would go (`Err`): runs are ordered
    /// by segment, at most one each.
    fn run_of(&self, segment: SegmentId) -> Result<usize, usize> {
        self.runs.binary_search_by_key(&segment, |r| r.segment)
    }

    /// Where record `lsn` of `segment` is and its length with its header, if a dense run
    /// holds it.
    pub(crate) fn exact(&self, segment: SegmentId, lsn: Lsn) -> Option<(u64, u64)> {
        self.runs[self.run_of(segment).ok()?].get(lsn.0)
    }

    /// A read by LSN in `segment` found no entry in a run: whether this reader should build
    /// the segment's run (the [`RUN_AFTER_MISSES`]th such read in a segment without a run;
    /// only one reader builds a segment's run).
    fn missed(&mut self, segment: SegmentId) -> bool {
        if self.run_of(segment).is_ok() {
            return false; // appends since open started one: it cannot take another
        }
        let n = self.misses.entry(segment).or_insert(0);
        if *n == u32::MAX {
            return false;
        }
        *n += 1;
        if *n < RUN_AFTER_MISSES {
            return false;
        }
        let held: usize = (self.runs.iter()).map(|r| r.offsets.capacity() * 4).sum();
        if held >= RUN_MEMORY_LIMIT {
            *n = RUN_AFTER_MISSES - 1; // asked again at the next read: truncations free runs
            return false;
        }
        *n = u32::MAX;
        true
    }

    /// Adds a run built by walking a segment, unless the log was truncated since the walk
    /// began (`generation`) or the segment has a run already (an append to the newest segment
    /// during the walk started one: the walk's run, which ends before that append, is then
    /// dropped). A run of the newest segment goes on growing with appends that follow it.
    fn insert_run(&mut self, generation: u64, run: DenseRun) {
        if generation == self.generation
            && !run.offsets.is_empty()
            && let Err(i) = self.run_of(run.segment)
        {
            self.runs.insert(i, run);
        }
    }

    fn record(&mut self, generation: u64, lsn: Lsn, segment: SegmentId, offset: u64) {
        if generation == self.generation {
            self.map.insert(lsn.0, (segment, offset));
        }
    }

    /// Records `lsn ..` stored one after another at `offset` in `segment`, each
    /// [`RECORD_HEADER_LEN`] plus its payload length long (called under the log lock, after
    /// an append of plain records). Extends the segment's run when they follow it; starts one
    /// when the segment has none; otherwise (a gap: cannot happen) leaves the index as it is.
    pub(crate) fn appended(
        &mut self,
        segment: SegmentId,
        lsn: Lsn,
        offset: u64,
        lengths: impl Iterator<Item = usize>,
    ) {
        // Nearly always the newest run (appends go to the newest segment): no search for it.
        let found = match self.runs.last() {
            Some(r) if r.segment == segment => Ok(self.runs.len() - 1),
            _ => self.run_of(segment),
        };
        let i = match found {
            Ok(i) => i,
            Err(i) if i == self.runs.len() => {
                self.runs.push(DenseRun {
                    segment,
                    first: lsn.0,
                    offsets: Vec::new(),
                    end: offset,
                });
                i
            }
            Err(_) => return, // appends go to the newest segment only
        };
        let run = &mut self.runs[i];
        if run.end != offset || run.first + run.offsets.len() as u64 != lsn.0 {
            return;
        }
        for len in lengths {
            let Ok(at) = u32::try_from(run.end) else {
                return;
            };
            run.offsets.push(at);
            run.end += (RECORD_HEADER_LEN + len) as u64;
        }
    }

    /// After a `truncate_back` that kept records up to `lsn`, in segments up to `last_segment`
    /// (the segments after it are gone, and their ids will be taken again by new segments).
    pub(crate) fn forget_after(&mut self, lsn: Lsn, last_segment: SegmentId) {
        self.generation += 1;
        self.misses.retain(|&s, _| s <= last_segment);
        self.map.split_off(&lsn.0.saturating_add(1));
        self.runs.retain_mut(|r| {
            let keep = lsn.0.saturating_add(1).saturating_sub(r.first);
            if let Ok(keep) = usize::try_from(keep)
                && keep < r.offsets.len()
            {
                r.end = u64::from(r.offsets[keep]);
                r.offsets.truncate(keep);
            }
            !r.offsets.is_empty()
        });
    }

    /// After a `truncate_front` that left the log starting at `lsn`, in `first_segment`.
    pub(crate) fn forget_before(&mut self, lsn: Lsn, first_segment: SegmentId) {
        self.generation += 1;
        self.misses.retain(|&s, _| s >= first_segment);
        self.map = self.map.split_off(&lsn.0);
        // Whole segments go: a run entirely below `lsn` goes with its segment.
        self.runs
            .retain(|r| r.first + r.offsets.len() as u64 > lsn.0);
    }

    /// The dense runs (for tests).
    #[cfg(test)]
    pub(crate) fn runs(&self) -> &[DenseRun] {
        &self.runs
    }

    /// The dense runs, to break them on purpose (for tests).
    #[cfg(test)]
    pub(crate) fn runs_mut(&mut self) -> &mut [DenseRun] {
        &mut self.runs
    }
}

/// Records appended are handed to the [`PositionIndex`] this many at a time.
pub(crate) const PUBLISH_EVERY: usize = 1024;

/// The places of records appended since they were last handed to the [`PositionIndex`]
/// (consecutive records of one segment). Kept under the log lock, so an append takes no second
/// lock: taking the index's lock for every append cost 14 ns of a 128-byte append's 128 ns
/// (walden-bench's `append_loop` example). They are handed over ([`Unpublished::publish`]) every
/// [`PUBLISH_EVERY`] records, before records that do not follow them, and whenever the index
/// must be whole: a reader starting by LSN and both truncations publish first, under the log
/// lock, so none of them can miss an appended record or see one the log no longer has.
#[derive(Debug, Default)]
pub(crate) struct Unpublished {
    segment: SegmentId,
    first: u64,
    /// Where record `first` starts.
    offset: u64,
    /// Just past the last record.
    end: u64,
    /// The payload length of each record `first ..`.
    lengths: Vec<u32>,
}

impl Unpublished {
    /// Records `first ..` of `segment`, stored one after another at `offset`, each
    /// [`RECORD_HEADER_LEN`] plus its payload length long (under the log lock, after an append
    /// of plain records). Publishes what was kept first when they do not follow it, and
    /// everything once [`PUBLISH_EVERY`] records are kept.
    pub(crate) fn add<'i>(
        &mut self,
        index: impl Fn() -> MutexGuard<'i, PositionIndex>,
        segment: SegmentId,
        first: Lsn,
        offset: u64,
        lengths: impl Iterator<Item = usize>,
    ) {
        let follows = self.segment == segment
            && self.first + self.lengths.len() as u64 == first.0
            && self.end == offset;
        if !follows {
            self.publish(&mut index());
            (self.segment, self.first, self.offset, self.end) = (segment, first.0, offset, offset);
        }
        for len in lengths {
            // A payload is at most `max_record_size` (a `u32`) long.
            self.lengths.push(len as u32);
            self.end += (RECORD_HEADER_LEN + len) as u64;
        }
        if self.lengths.len() >= PUBLISH_EVERY {
            self.publish(&mut index());
        }
    }

    /// Hands every record kept to `index` (under the log lock).
    pub(crate) fn publish(&mut self, index: &mut PositionIndex) {
        if self.lengths.is_empty() {
            return;
        }
        let lengths = self.lengths.iter().map(|&l| l as usize);
        index.appended(self.segment, Lsn(self.first), self.offset, lengths);
        // Records that follow are kept from where these end.
        (self.first, self.offset) = (self.first + self.lengths.len() as u64, self.end);
        self.lengths.clear();
    }
}

/// One record returned by a [`SharedReader`], borrowed from the reader's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SharedRecord<'r> {
    /// Its LSN.
    pub lsn: Lsn,
    /// Its place in a batch.
    pub kind: RecordKind,
    /// The payload.
    pub payload: &'r [u8],
}

/// Reads records in LSN order, verifying checksums, concurrently with appends. Created by
/// [`crate::SharedWal::reader`]. At the end of the log, [`SharedReader::read_next`] returns `None`;
/// call it again later to see records appended since. Like [`crate::Tail`], it returns records
/// as soon as they are appended, durable or not (compare with
/// [`crate::SharedWal::durable_lsn`], or await [`crate::SharedWal::durable`], to use only
/// durable ones).
///
/// **Rewinds.** When a [`crate::SharedWal::truncate_back`] removes records this reader has
/// returned, its next read returns [`ReadError::Rewound`]` { to }` (the last LSN kept) instead
/// of a record, once; the caller discards what it took from the records after `to` (they may
/// be replaced by different records at the same LSNs). The reader then goes on at `to + 1`, or
/// at the LSN it was made at if that is later ([`SharedReader::position`] says which), in the
/// log as it is now. Several cuts before that read are one report, of the lowest. A cut that
/// removed nothing it returned (one that kept the last record it returned, or any cut before
/// it returned one) is no error: it reads on. This is [`crate::Tail`]'s
/// [`crate::TailEvent::Rewound`], for a reader that does not wait.
///
/// The check costs one atomic load per read. A read that starts after `truncate_back` has
/// returned sees the cut; one that runs concurrently with it may still return a record the cut
/// removes, and the next read reports the rewind.
pub struct SharedReader<S: GroupSync> {
    inner: Handle<Inner<S>>,
    segment: SegmentId,
    /// Where the next record is, in `segment` (core's record cursor: the one place record
    /// headers are decoded).
    cursor: RecordCursor,
    /// Bytes of `segment` from `chunk_start`: the first `filled` are valid. The vector keeps
    /// its largest length, so a refill does not zero what it is about to overwrite.
    chunk: Vec<u8>,
    filled: usize,
    /// Offset of `chunk[0]` in `segment`.
    chunk_start: u64,
    /// Bytes the next refill copies: starts small (a read by LSN needs a few records) and
    /// doubles up to [`CHUNK`] as the reader keeps going (a replay wants large copies).
    window: usize,
    /// Where compressed records are decoded (grown to the longest one, at most
    /// `max_record_size`).
    decoded: Vec<u8>,
    /// The log's `max_record_size`: no stored or decoded record is trusted beyond it.
    max_record: u32,
    /// A copy of an encrypted record's stored bytes, decrypted in place (the chunk keeps the
    /// stored bytes, so a retry starts from them again).
    sealed: Vec<u8>,
    /// `salt` and `key_id` of `segment`.
    seg_keys: (u64, Option<u32>),
    /// The log's id (part of every record's associated data).
    log_id: u64,
    /// The keys, as the log had them when this reader was made.
    #[cfg(feature = "encrypt")]
    keys: walden_core::Keyring,
    /// The `truncate_back` generation ([`crate::tail::RewindLog`]) its position is known good
    /// for: a cut below the position since then makes the stored offset meaningless.
    rewound: u64,
    /// Set when [`SharedReader::ensure`] found the position again: a header read before is
    /// not the record at the cursor any more.
    moved: bool,
    /// The LSN it was made at: it has returned the records `start .. position()`, and only a
    /// cut below its last one is a rewind for it.
    start: Lsn,
    /// After a cut below the position: the LSN to find again (by LSN, as a new reader would)
    /// before the next read. The cursor's offset is into removed bytes meanwhile.
    lost: Option<Lsn>,
}

impl<S: GroupSync> SharedReader<S> {
    pub(crate) fn new(inner: Handle<Inner<S>>, from: Lsn) -> Result<Self, ReadError<S::Error>> {
        let (seg, generation, max_record, log_id, rewound);
        #[cfg(feature = "encrypt")]
        let keys;
        {
            let mut log = inner.c.lock_log();
            let (first, last) = (log.wal.first_lsn(), log.wal.last_lsn());
            if from < first || from > last.next() {
                return Err(ReadError::OutOfRange {
                    lsn: from,
                    first,
                    last,
                });
            }
            let segs = log.wal.segments();
            max_record = log.wal.config().max_record_size;
            log_id = log.wal.log_id();
            #[cfg(feature = "encrypt")]
            {
                keys = log.wal.keys().clone();
            }
            seg = segs[segs.iter().rposition(|s| s.first_lsn <= from).unwrap_or(0)];
            // Every record appended so far is in the index from here on.
            generation = inner.whole_positions(&mut log).generation;
            rewound = inner.rewinds().generation;
        }
        // Straight to the record when a dense run holds it (copying exactly its bytes first),
        // else from the closest sparse position, else from the segment's first record.
        let look = |inner: &Handle<Inner<S>>| {
            let mut positions = inner.positions();
            match positions.exact(seg.id, from) {
                Some((offset, len)) => (Some(len), Some((from, offset)), false),
                None => (
                    None,
                    positions.floor(seg.id, seg.first_lsn, from),
                    positions.missed(seg.id),
                ),
            }
        };
        let (mut exact, mut start, build) = look(&inner);
        if build {
            let walker = Self::at(
                inner.clone(),
                seg,
                (seg.first_lsn, SEGMENT_HEADER_LEN as u64),
                CHUNK,
                (max_record, rewound),
                log_id,
                #[cfg(feature = "encrypt")]
                keys.clone(),
            );
            if let Some(run) = walker.walk_run() {
                // Appends during the walk are published first: one to this segment started a
                // run the walk's must not replace.
                let mut log = inner.c.lock_log();
                inner.whole_positions(&mut log).insert_run(generation, run);
                drop(log);
                (exact, start, _) = look(&inner);
            }
        }
        let mut r = Self::at(
            inner,
            seg,
            start.unwrap_or((seg.first_lsn, SEGMENT_HEADER_LEN as u64)),
            exact.map_or(FIRST_WINDOW, |len| len as usize),
            (max_record, rewound),
            log_id,
            #[cfg(feature = "encrypt")]
            keys,
        );
        // Nothing below `from` is returned: a cut during the walk to it is no rewind (it
        // leaves the reader to find `from` again at its first read).
        r.start = from;
        while r.position() < from {
            match r.header()? {
                Some(at) => {
                    let len = (RECORD_HEADER_LEN as u64) + u64::from(at.header.length);
                    if indexed(at.header.lsn, at.offset, len) {
                        let (seg, off) = (r.segment, at.offset);
                        r.inner
                            .positions()
                            .record(generation, at.header.lsn, seg, off);
                    }
                    r.cursor.accept(&at, None).map_err(|f| r.corrupt(f))?;
                }
                None => break,
            }
        }
        Ok(r)
    }

    /// A reader at record `next` of `seg`, at `offset`, whose first copy is `window` bytes.
    fn at(
        inner: Handle<Inner<S>>,
        seg: walden_core::SegmentInfo,
        (next, offset): (Lsn, u64),
        window: usize,
        (max_record, rewound): (u32, u64),
        log_id: u64,
        #[cfg(feature = "encrypt")] keys: walden_core::Keyring,
    ) -> Self {
        Self {
            inner,
            segment: seg.id,
            cursor: RecordCursor::resume(seg.keys(max_record), offset, next),
            decoded: Vec::new(),
            max_record,
            sealed: Vec::new(),
            seg_keys: (seg.salt, seg.key_id()),
            log_id,
            #[cfg(feature = "encrypt")]
            keys,
            chunk: Vec::new(),
            filled: 0,
            chunk_start: 0,
            window,
            rewound,
            moved: false,
            start: next,
            lost: None,
        }
    }

    /// Walks this reader's segment from where it stands (its first record) to its end,
    /// verifying each header, and returns the offsets as a run; cut short at a gap (a metadata
    /// record between two data records) or a record 4 GiB or more into the segment. `None`
    /// if nothing could be read (an error is reported by the reads that need those records).
    fn walk_run(mut self) -> Option<DenseRun> {
        let (segment, first) = (self.segment, self.cursor.next_lsn().0);
        let mut run = DenseRun {
            segment,
            first,
            offsets: Vec::new(),
            end: self.cursor.offset(),
        };
        while let Ok(Some(at)) = self.header() {
            if self.segment != segment
                || at.offset != run.end
                || at.header.lsn.0 != first + run.offsets.len() as u64
            {
                break;
            }
            let Ok(offset) = u32::try_from(at.offset) else {
                break;
            };
            run.offsets.push(offset);
            run.end = at.offset + (RECORD_HEADER_LEN as u64) + u64::from(at.header.length);
            if self.cursor.accept(&at, None).is_err() {
                break;
            }
        }
        (!run.offsets.is_empty()).then_some(run)
    }

    /// The LSN the next call returns (after a [`ReadError::Rewound`], the LSN it goes on at).
    pub fn position(&self) -> Lsn {
        self.lost.unwrap_or_else(|| self.cursor.next_lsn())
    }

    /// The next record, or `None` at the current end of the log.
    ///
    /// [`ReadError::Rewound`] if a `truncate_back` removed records this reader had returned
    /// (see [`SharedReader`]): nothing is wrong, and the next call reads on after the cut.
    /// [`ReadError::OutOfRange`] once `truncate_front` removed the reader's segment.
    pub fn read_next(&mut self) -> Result<Option<SharedRecord<'_>>, ReadError<S::Error>> {
        let at = loop {
            let Some(at) = self.header()? else {
                return Ok(None);
            };
            let len = RECORD_HEADER_LEN + at.header.length as usize;
            self.moved = false;
            let whole = self.ensure(len)?;
            if self.moved {
                continue; // a rewind moved the record: read its header again
            }
            if !whole {
                return Err(self.corrupt(Fault::PastEnd));
            }
            break at;
        };
        let from = (at.payload_offset() - self.chunk_start) as usize;
        let payload = from..from + at.header.length as usize;
        if let Err(f) = self
            .cursor
            .verify_payload(&at, &self.chunk[payload.clone()])
        {
            return Err(self.corrupt(f));
        }
        // Format version 3: decrypted (a copy) and decompressed (into `decoded`, grown to the
        // frame's length, which `decode_with` bounds by max_record_size) after the stored bytes
        // verified.
        let flags = at.header.flags;
        #[cfg(feature = "encrypt")]
        let key = self.seg_keys.1.map(|k| {
            walden_core::raw::Unseal::new(&self.keys, self.log_id, self.segment, self.seg_keys.0, k)
        });
        #[cfg(not(feature = "encrypt"))]
        let key = None;
        let stored: &mut [u8] = if flags.encrypted() {
            self.sealed.clear();
            self.sealed.extend_from_slice(&self.chunk[payload.clone()]);
            &mut self.sealed
        } else {
            &mut self.chunk[payload.clone()]
        };
        // `decoded` grows to the original length, which `decode_with` has already checked
        // against max_record_size.
        let decoded = &mut self.decoded;
        let grown = self.cursor.decode_with(&at, stored, key, move |n| {
            if decoded.len() < n {
                decoded.resize(n, 0);
            }
            Ok(&mut decoded[..n])
        });
        let plain_len = match grown {
            Ok(p) => p.len(),
            Err(e) => return Err(self.undecodable(&at, e)),
        };
        self.cursor.accept(&at, None).map_err(|f| self.corrupt(f))?;
        let payload = if flags.codec() != 0 {
            &self.decoded[..plain_len]
        } else if flags.encrypted() {
            &self.sealed[..plain_len]
        } else {
            &self.chunk[payload]
        };
        Ok(Some(SharedRecord {
            lsn: at.header.lsn,
            kind: at.header.kind,
            payload,
        }))
    }

    /// The verified header of the next data record (metadata records are stepped over), or
    /// `None` at the end of the log.
    fn header(&mut self) -> Result<Option<Located>, ReadError<S::Error>> {
        loop {
            if !self.ensure(RECORD_HEADER_LEN)? {
                return Ok(None);
            }
            let at = (self.cursor.offset() - self.chunk_start) as usize;
            let found = self.cursor.data_header(&self.chunk[at..self.filled]);
            if let Some(found) = found.map_err(|f| self.corrupt(f))? {
                return Ok(Some(found));
            }
        }
    }

    fn undecodable(&self, at: &Located, e: DecodeError) -> ReadError<S::Error> {
        match e {
            DecodeError::Corrupt(f) => self.corrupt(f),
            DecodeError::KeyMissing => ReadError::KeyMissing {
                segment: self.segment,
                key_id: self.seg_keys.1.unwrap_or(0),
            },
            DecodeError::NotBuiltIn(what) => ReadError::NotBuiltIn {
                segment: self.segment,
                lsn: at.header.lsn,
                what,
            },
            DecodeError::TooLarge { length, max } => ReadError::RecordTooLarge {
                segment: self.segment,
                lsn: at.header.lsn,
                length,
                max,
            },
            // `decode_with` grew `decoded` to the original length: not too small.
            _ => self.corrupt(Fault::Undecodable),
        }
    }

    fn corrupt(&self, fault: Fault) -> ReadError<S::Error> {
        self.inner
            .c
            .metrics
            .read_corruption
            .fetch_add(1, Ordering::Relaxed);
        let detail = fault.describe();
        tracing::error!(
            segment = self.segment,
            offset = self.cursor.offset(),
            lsn = self.cursor.next_lsn().0,
            detail,
            "corruption found by a reader"
        );
        ReadError::Corrupted(Corruption {
            case: Case::MidLogCorruption,
            segment: self.segment,
            offset: self.cursor.offset(),
            lsn: Some(self.cursor.next_lsn()),
            detail,
        })
    }

    /// Makes `len` bytes at the cursor available in `chunk`. Returns `false` at the end of the
    /// log (the next LSN is not appended yet) or, for `len` beyond a header, when the segment
    /// ends first (the caller reports corruption).
    ///
    /// Checks for a `truncate_back` at every call (one atomic load while nothing was cut), so
    /// that no read that starts after a cut returns a copy of a record it removed. A cut below
    /// the position leaves the cursor at an offset into removed bytes (new records at the same
    /// LSNs are stored elsewhere, or at other lengths): the reader returns
    /// [`ReadError::Rewound`] if the cut removed a record it returned, and then finds its next
    /// LSN again (`lost`), as a new reader would. One that cut right at the position leaves it,
    /// but not what was copied from it. Either way `moved` tells [`SharedReader::read_next`]
    /// that a header it read before is stale.
    fn ensure(&mut self, len: usize) -> Result<bool, ReadError<S::Error>> {
        let offset = self.cursor.offset();
        let have = self.chunk_start + self.filled as u64;
        let cut = self.inner.rewind_generation.load(Ordering::Acquire) != self.rewound;
        if !cut && self.lost.is_none() && offset >= self.chunk_start && offset + len as u64 <= have
        {
            return Ok(true);
        }
        let log = self.inner.c.lock_log();
        let wal = &log.wal;
        let next = self.position();
        let (generation, cut) = self.inner.rewinds().lowest_since(self.rewound);
        self.rewound = generation;
        if cut.is_some_and(|cut| cut.next() <= next) {
            // What was copied from the position on (a header the caller may have read) was
            // removed; the position itself too, if the cut is below it.
            self.filled = 0;
            self.moved = true;
        }
        if let Some(to) = cut
            && to.next() < next
        {
            // Not before `start`: nothing below it was asked for. Each cut is reported once:
            // `rewound` is past it now.
            self.lost = Some(to.next().max(self.start));
            if next > self.start {
                return Err(ReadError::Rewound { to });
            }
        }
        if let Some(lsn) = self.lost {
            if lsn > wal.last_lsn() {
                return Ok(false); // found again once appended
            }
            drop(log);
            return match Self::new(self.inner.clone(), lsn) {
                Ok(mut fresh) => {
                    // A cut since this reader last looked but before `fresh` was made is
                    // looked at again by `fresh`: it may have removed a record returned.
                    (fresh.start, fresh.rewound) = (self.start, self.rewound);
                    *self = fresh;
                    self.moved = true;
                    self.ensure(len)
                }
                // Cut again since: nothing at `lsn` now (found again next time).
                Err(ReadError::OutOfRange { lsn, last, .. }) if lsn > last => Ok(false),
                Err(e) => Err(e),
            };
        }
        if next > wal.last_lsn() {
            return Ok(false);
        }
        let segs = wal.segments();
        let Ok(mut i) = segs.binary_search_by_key(&self.segment, |s| s.id) else {
            // Removed by `truncate_front` while we were reading.
            return Err(ReadError::OutOfRange {
                lsn: self.cursor.next_lsn(),
                first: wal.first_lsn(),
                last: wal.last_lsn(),
            });
        };
        if offset >= segs[i].end && i + 1 < segs.len() {
            i += 1;
            self.segment = segs[i].id;
            self.seg_keys = (segs[i].salt, segs[i].key_id());
            let next = self.cursor.next_lsn();
            self.cursor = RecordCursor::resume(
                segs[i].keys(self.max_record),
                SEGMENT_HEADER_LEN as u64,
                next,
            );
            if segs[i].first_lsn != next {
                return Err(ReadError::Corrupted(Corruption {
                    case: Case::MidLogCorruption,
                    segment: self.segment,
                    offset: SEGMENT_HEADER_LEN as u64,
                    lsn: Some(next),
                    detail: "segment does not start with the expected LSN",
                }));
            }
        }
        let offset = self.cursor.offset();
        let end = segs[i].end;
        self.cursor.set_end(end);
        let n = (end.saturating_sub(offset)).min(self.window.max(len) as u64) as usize;
        self.window = (self.window * 2).min(CHUNK);
        if n < len {
            return Ok(false);
        }
        if self.chunk.len() < n {
            self.chunk.resize(n, 0);
        }
        self.filled = 0;
        let mut done = 0;
        while done < n {
            let got = wal
                .storage()
                .read(self.segment, offset + done as u64, &mut self.chunk[done..n])
                .map_err(|error| {
                    ReadError::Storage(IoFailure {
                        op: Op::Read,
                        segment: Some(self.segment),
                        error,
                    })
                })?;
            if got == 0 {
                break;
            }
            done += got;
        }
        self.filled = done;
        self.chunk_start = offset;
        Ok(done >= len)
    }
}

#[cfg(test)]
#[path = "reader_index_tests.rs"]
mod index_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_takes_every_32nd_lsn_and_the_record_holding_each_4_kib_boundary() {
        assert!(indexed(Lsn(64), 100, 200));
        assert!(!indexed(Lsn(65), 100, 200));
        // Large records: each one that crosses a boundary, whatever its LSN.
        assert!(indexed(Lsn(65), 4000, 200));
        assert!(indexed(Lsn(66), 3040, 1056)); // ends on the boundary
        assert!(!indexed(Lsn(67), 4096, 1056));
        assert!(indexed(Lsn(68), 7232, 1056));
    }

    /// A segment is walked for a run at its `RUN_AFTER_MISSES`th read from the sparse index,
    /// once, and not while the runs hold `RUN_MEMORY_LIMIT` or more (until truncation frees
    /// them); a segment with a run (from appends) is never walked.
    #[test]
    fn a_run_is_built_once_per_segment_and_within_the_memory_limit() {
        let mut p = PositionIndex::default();
        let misses = |p: &mut PositionIndex, segment| {
            (0..RUN_AFTER_MISSES)
                .map(|_| p.missed(segment))
                .collect::<Vec<_>>()
        };
        let mut want = vec![false; RUN_AFTER_MISSES as usize];
        *want.last_mut().unwrap() = true;
        assert_eq!(misses(&mut p, 1), want);
        assert!(
            !misses(&mut p, 1).contains(&true),
            "only one walk per segment"
        );
        // Runs holding the limit: no walk, however many reads.
        let run = DenseRun {
            segment: 2,
            first: 10,
            offsets: vec![0],
            end: 0,
        };
        p.insert_run(p.generation, run);
        p.runs[0].offsets.reserve(RUN_MEMORY_LIMIT / 4);
        assert!(!misses(&mut p, 2).contains(&true), "segment 2 has a run");
        assert!(!misses(&mut p, 3).contains(&true), "over the limit");
        assert!(!p.missed(3));
        // Freed by a truncation: the next read walks.
        p.forget_before(Lsn(20), 2);
        assert!(p.runs.is_empty());
        assert!(p.missed(3));
    }

    /// The read counts of removed segments go with them: a log that keeps rotating and
    /// dropping old segments keeps a count only for the segments it has (it kept one for
    /// every segment ever read), and a segment that takes the id of one `truncate_back`
    /// removed starts from nothing (it inherited "walked already" and never got a run).
    #[test]
    fn read_counts_of_removed_segments_are_forgotten() {
        let mut p = PositionIndex::default();
        for segment in 1..=1000 {
            for _ in 0..RUN_AFTER_MISSES {
                let _ = p.missed(segment);
            }
        }
        assert_eq!(p.misses.len(), 1000);
        p.forget_before(Lsn(5000), 990);
        assert_eq!(p.misses.len(), 11, "segments 990..=1000 are left");
        // Segments 996.. removed from the back; new segments take their ids again.
        p.forget_after(Lsn(6000), 995);
        assert_eq!(p.misses.len(), 6);
        let walks = (0..RUN_AFTER_MISSES).filter(|_| p.missed(996)).count();
        assert_eq!(walks, 1, "a new segment 996 is walked at its own 64th read");
    }
}
