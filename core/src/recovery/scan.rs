//! Reading a segment's records through a caller-supplied window, without allocating.

use crate::case::Evidence;
pub(crate) use crate::cursor::SegmentKeys;
use crate::cursor::{Fault, Located, RecordCursor, SealFound};
use crate::error::{IoFailure, Op};
use crate::format::{META_LEN, RECORD_HEADER_LEN, RecordHeader, RecordKind, rec};
use crate::lsn::Lsn;
use crate::storage::{SegmentId, Storage, read_full};
#[cfg(all(feature = "replay", feature = "alloc"))]
use alloc::collections::VecDeque;

/// A read cache over one segment, backed by the caller's scratch buffer (and, in a replay,
/// by the chunks a `ReadAhead` hands it, with the features `replay` and `alloc`).
pub(crate) struct Window<'a> {
    buf: &'a mut [u8],
    id: SegmentId,
    start: u64,
    len: usize,
    /// Where a refill starts when it can (`u64::MAX`: at the offset asked for): the start of
    /// the unit a scan is inside, so that a whole batch is still in the window when it
    /// completes (a replay hands it over from there).
    #[cfg(feature = "replay")]
    keep: u64,
    /// How many times the window's bytes were replaced (read afresh, or a chunk swapped in
    /// without keeping the one before): a replay's hand-over trusts the headers its scan
    /// verified only while this has not moved.
    #[cfg(feature = "replay")]
    refills: u32,
    #[cfg(all(feature = "replay", feature = "alloc"))]
    ahead: Option<Ahead<'a>>,
}

impl<'a> Window<'a> {
    pub(crate) fn new(buf: &'a mut [u8], id: SegmentId) -> Self {
        Self {
            buf,
            id,
            start: 0,
            len: 0,
            #[cfg(feature = "replay")]
            keep: u64::MAX,
            #[cfg(feature = "replay")]
            refills: 0,
            #[cfg(all(feature = "replay", feature = "alloc"))]
            ahead: None,
        }
    }

    /// A window over segment `id`, `len` bytes long, that takes its refills from `source`'s
    /// chunks when they hold what is asked for, and reads into `buf` itself when they do not.
    #[cfg(all(feature = "replay", feature = "alloc"))]
    pub(crate) fn with_ahead(
        buf: &'a mut [u8],
        id: SegmentId,
        len: u64,
        source: &'a mut dyn ReadAhead,
    ) -> Self {
        let mut win = Self::new(buf, id);
        win.ahead = Some(Ahead {
            len,
            max_held: source.max_held().max(1),
            source,
            current: None,
            previous: VecDeque::new(),
            pending: None,
            stitch: alloc::vec::Vec::new(),
        });
        win
    }

    /// The bytes the window holds (`len` of them, from segment offset `start`).
    #[inline(always)]
    fn data(&self) -> &[u8] {
        #[cfg(all(feature = "replay", feature = "alloc"))]
        if let Some(Ahead {
            current: Some(c), ..
        }) = &self.ahead
        {
            return &c.buf[c.base..c.base + self.len];
        }
        &self.buf[..self.len]
    }

    pub(crate) fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Up to `n` bytes at `at` (fewer only at the end of the segment). `n ≤ capacity()`.
    // In a replay build, bytes the window holds are returned inline (a replay asks four times
    // a record: 2.4% of its scan's thread out of line) and everything else goes to `fill`.
    #[cfg_attr(feature = "replay", inline)]
    pub(crate) fn get<S: Storage>(
        &mut self,
        st: &S,
        at: u64,
        n: usize,
    ) -> Result<&[u8], IoFailure<S::Error>> {
        #[cfg(feature = "replay")]
        if self.holds(at, n) {
            let from = (at - self.start) as usize;
            return Ok(&self.data()[from..from + n]);
        }
        self.fill(st, at, n)
    }

    /// Whether the window's own bytes hold `at..at + n`.
    #[inline(always)]
    fn holds(&self, at: u64, n: usize) -> bool {
        at >= self.start && at + n as u64 <= self.start + self.len as u64
    }

    /// [`Window::get`] for bytes the window may not hold: from the chunks, or read afresh.
    #[cfg_attr(not(feature = "replay"), inline(always))]
    fn fill<S: Storage>(
        &mut self,
        st: &S,
        at: u64,
        n: usize,
    ) -> Result<&[u8], IoFailure<S::Error>> {
        // A replay build's `get` returned what the window holds.
        #[cfg(not(feature = "replay"))]
        let cached = self.holds(at, n);
        #[cfg(feature = "replay")]
        let cached = false;
        #[cfg(all(feature = "replay", feature = "alloc"))]
        let cached = cached || self.held_ahead(at, n);
        if !cached {
            #[cfg(feature = "replay")]
            let from = if self.keep <= at && at + n as u64 - self.keep <= self.buf.len() as u64 {
                self.keep
            } else {
                at
            };
            #[cfg(not(feature = "replay"))]
            let from = at;
            #[cfg(all(feature = "replay", feature = "alloc"))]
            let swapped = self.swap_in(from, at, n);
            #[cfg(not(all(feature = "replay", feature = "alloc")))]
            let swapped = false;
            if !swapped {
                #[cfg(all(feature = "replay", feature = "alloc"))]
                if let Some(a) = &mut self.ahead {
                    a.release();
                }
                #[cfg(feature = "replay")]
                {
                    self.refills = self.refills.wrapping_add(1);
                }
                // Empty until the read succeeds: `len` may have been the released chunk's.
                self.len = 0;
                self.len = read_full(st, self.id, from, self.buf).map_err(|error| IoFailure {
                    op: Op::Read,
                    segment: Some(self.id),
                    error,
                })?;
                self.start = from;
            }
        }
        #[cfg(all(feature = "replay", feature = "alloc"))]
        if at < self.start {
            return Ok(self.before(at, n));
        }
        let from = (at - self.start) as usize;
        let to = (from + n).min(self.len);
        Ok(&self.data()[from.min(to)..to])
    }

    /// Everything the window holds from `at` on, reading afresh unless that is at least `n`
    /// bytes (fewer only at the end of the segment). `n ≤ capacity()`.
    pub(crate) fn ahead<S: Storage>(
        &mut self,
        st: &S,
        at: u64,
        n: usize,
    ) -> Result<&[u8], IoFailure<S::Error>> {
        self.get(st, at, n)?;
        // In a replay, `at` may lie in the chunk before the window's: the rest of that one
        // and the window's, put together (rare: a scan that stopped within a record header's
        // length of a chunk's start).
        #[cfg(all(feature = "replay", feature = "alloc"))]
        if at < self.start {
            return Ok(self.before(at, usize::MAX));
        }
        // `get` left `at` inside the window (or at its start, after a short read).
        let from = ((at - self.start) as usize).min(self.len);
        Ok(&self.data()[from..])
    }

    /// Whether a replay's chunks hold `at..at + n` without a refill: the window's chunk ends
    /// the segment and `at` is in it, or `at` is in a chunk before it that the window holds.
    #[cfg(all(feature = "replay", feature = "alloc"))]
    fn held_ahead(&self, at: u64, n: usize) -> bool {
        let Some(a) = &self.ahead else {
            return false;
        };
        let end = self.start + self.len as u64;
        let ends = a.current.as_ref().is_some_and(|c| c.end);
        let from = a.held_from(self.start);
        from <= at && at <= end && (ends || at + n as u64 <= end)
    }

    /// Up to `n` bytes at `at`, which lies before the window's chunk, in a chunk before it
    /// that the window holds (`held_ahead` or `swap_in` checked that): from that chunk's
    /// buffer, or, when they run on into the chunks after it, copied from each into one piece.
    #[cfg(all(feature = "replay", feature = "alloc"))]
    fn before(&mut self, at: u64, n: usize) -> &[u8] {
        let Some(Ahead {
            current: Some(c),
            previous,
            stitch,
            ..
        }) = &mut self.ahead
        else {
            return &[];
        };
        // The held chunks meet end to end: `at` is in the last one that begins at or before it.
        let Some(k) = previous.iter().rposition(|p| p.offset <= at) else {
            return &[];
        };
        let p = &previous[k];
        let i = p.base + (at - p.offset) as usize;
        let there = p.base + p.len - i;
        if n <= there {
            return &p.buf[i..i + n];
        }
        stitch.clear();
        stitch.extend_from_slice(&p.buf[i..p.base + p.len]);
        for q in previous.iter().skip(k + 1).chain(core::iter::once(&*c)) {
            let rest = (n - stitch.len()).min(q.len);
            stitch.extend_from_slice(&q.buf[q.base..q.base + rest]);
        }
        stitch
    }

    /// Makes the next chunk of the read-ahead the window, if it holds the end of `at..at + n`
    /// (or the segment ends in it) and what the window must keep from `from` on is in it or in
    /// the chunks the window holds, which then stay as chunks before it: at most
    /// [`ReadAhead::max_held`] chunks at once; those that end at or before `from` are given
    /// back. A chunk that ends before `at + n` is taken, and the next one after it, while the
    /// window may hold them all. Chunks wholly before `at` are given back unused; one that
    /// does not fit is kept for the next refill. `false`: read instead (the chunks taken are
    /// given back then).
    #[cfg(all(feature = "replay", feature = "alloc"))]
    fn swap_in(&mut self, from: u64, at: u64, n: usize) -> bool {
        let Some(a) = &mut self.ahead else {
            return false;
        };
        let want = at + n as u64;
        loop {
            let Some(c) = a.pending.take().or_else(|| a.source.next()) else {
                return false;
            };
            // A chunk's bytes are in its buffer, and it says the segment ends only where it
            // does (the window then serves short reads from it: a wrong `end` would end the
            // scan early).
            let Some(end) = c
                .base
                .checked_add(c.len)
                .filter(|&e| e <= c.buf.len())
                .and_then(|_| c.offset.checked_add(c.len as u64))
                .filter(|&e| !c.end || e == a.len)
            else {
                // Not a chunk: read instead, from now on.
                a.source.recycle(c.buf);
                self.ahead = None;
                return false;
            };
            if passed_over(&c, end, at) {
                a.source.recycle(c.buf);
                continue;
            }
            // Bytes before the chunk that the window must keep are in the chunks it holds,
            // the last of which (its own) ends where this one begins; with this one, the
            // chunks that end after `from` must be no more than it may hold.
            let keeps = from < c.offset;
            let held_from = a.held_from(self.start);
            let holds = if keeps {
                a.previous.iter().filter(|p| p.end_offset() > from).count() + 2
            } else {
                1
            };
            let kept = !keeps
                || (a.current.is_some()
                    && held_from <= from
                    && self.start + self.len as u64 == c.offset
                    && holds <= a.max_held);
            // What is asked for may run on past this chunk (a record longer than it): then
            // it is taken only if the window may hold the next one too, which the next turn
            // of the loop takes.
            let reaches = c.end || want <= end;
            if !kept || !(reaches || holds < a.max_held) {
                a.pending = Some(c);
                return false;
            }
            if keeps {
                a.previous.extend(a.current.take());
                while a.previous.front().is_some_and(|p| p.end_offset() <= from) {
                    if let Some(p) = a.previous.pop_front() {
                        a.source.recycle(p.buf);
                    }
                }
            } else {
                self.refills = self.refills.wrapping_add(1);
                a.release();
            }
            self.start = c.offset;
            self.len = c.len;
            a.current = Some(c);
            if reaches {
                return true;
            }
        }
    }
}

/// Whether chunk `c`, ending at `end`, lies wholly before `at` and is not the segment's last:
/// [`Window::swap_in`] passes it over. (Its own function so that mutation testing's exclusion
/// of its one equivalent mutant names it alone, `.cargo/mutants.toml`.)
#[cfg(all(feature = "replay", feature = "alloc"))]
fn passed_over(c: &Chunk, end: u64, at: u64) -> bool {
    end <= at && !c.end
}

/// Bytes of a segment read ahead of a replay's scan (for example on another thread) and
/// handed to the scan's window with their buffer, instead of copied into it: see
/// [`replay_segment_ahead`](crate::raw::replay_segment_ahead). Feature `replay` with `alloc`.
#[cfg(all(feature = "replay", feature = "alloc"))]
pub trait ReadAhead {
    /// The segment's next chunk, in order of offset; `None` when there is none (its end, or
    /// a read that failed: the window then reads for itself, and meets the failure itself).
    fn next(&mut self) -> Option<Chunk>;
    /// A chunk's buffer the window is done with, for the next chunk.
    fn recycle(&mut self, buf: alloc::vec::Vec<u8>);
    /// How many chunks the window may hold at once: its own and those before it, kept while
    /// the unit the scan is inside began in them (so a batch across them is handed over
    /// without being read again). It also holds at most one more taken that did not fit yet.
    /// A unit across more chunks than this is read by the window itself (slower, the same
    /// bytes). Default 2; at least 1.
    fn max_held(&self) -> usize {
        2
    }
}

/// Bytes `offset..offset + len` of a segment, at `buf[base..base + len]`.
#[cfg(all(feature = "replay", feature = "alloc"))]
#[derive(Debug)]
pub struct Chunk {
    /// The buffer (given back through [`ReadAhead::recycle`]).
    pub buf: alloc::vec::Vec<u8>,
    /// Where the segment's bytes begin in `buf`.
    pub base: usize,
    /// The segment offset of `buf[base]`.
    pub offset: u64,
    /// How many bytes of the segment `buf` holds.
    pub len: usize,
    /// Whether the segment ends at `offset + len` (checked against the segment's length: a
    /// chunk that says so anywhere else is not used, nor any after it).
    pub end: bool,
}

#[cfg(all(feature = "replay", feature = "alloc"))]
impl Chunk {
    /// The segment offset after its last byte.
    fn end_offset(&self) -> u64 {
        self.offset + self.len as u64
    }
}

/// A window's read-ahead: the source, the chunk the window is (when it is not `buf`), the
/// chunks before it (kept while the unit the scan is inside began there, so that a batch
/// across them is handed over from them without copying it), a chunk taken that did not fit
/// yet, and where a record across chunks is put together.
#[cfg(all(feature = "replay", feature = "alloc"))]
struct Ahead<'a> {
    /// The segment's length.
    len: u64,
    /// [`ReadAhead::max_held`].
    max_held: usize,
    source: &'a mut dyn ReadAhead,
    current: Option<Chunk>,
    /// Oldest first; they meet end to end, and the last ends where `current` begins.
    previous: VecDeque<Chunk>,
    pending: Option<Chunk>,
    stitch: alloc::vec::Vec<u8>,
}

#[cfg(all(feature = "replay", feature = "alloc"))]
impl Ahead<'_> {
    /// Where the bytes the window holds begin: the oldest chunk it holds before its own, or
    /// `start`, where its own bytes begin.
    fn held_from(&self, start: u64) -> u64 {
        self.previous.front().map_or(start, |p| p.offset)
    }

    /// Gives the window's chunk and those before it back.
    fn release(&mut self) {
        for c in self.previous.drain(..).chain(self.current.take()) {
            self.source.recycle(c.buf);
        }
    }
}

#[cfg(all(feature = "replay", feature = "alloc"))]
impl Drop for Ahead<'_> {
    fn drop(&mut self) {
        self.release();
        if let Some(c) = self.pending.take() {
            self.source.recycle(c.buf);
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
    /// What is wrong there.
    pub(crate) fault: Fault,
}

/// The result of scanning one segment's records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SegmentScan {
    /// Offset just past the last complete unit (record, batch, metadata record).
    pub(crate) end: u64,
    /// The LSN of the last data record in it (`first_lsn − 1` when there is none).
    pub(crate) last_lsn: Lsn,
    pub(crate) records: u64,
    /// `None` when only zeros (or nothing) follow `end`.
    pub(crate) invalid: Option<Invalid>,
    /// The segment's seal, if it has one.
    pub(crate) seal: Option<SealFound>,
}

/// Reads, verifies and accepts the record at the cursor, or says why there is none.
///
/// Always inlined: on a Cortex-M its own frame (200 bytes) sat at the bottom of `Wal::open`'s
/// deepest call chain (recovery's record scan), while inlined its values fit in slots that
/// recovery's frame has anyway (128 bytes less stack for about 160 bytes of flash).
#[inline(always)]
fn step<S: Storage>(
    st: &S,
    win: &mut Window<'_>,
    cursor: &mut RecordCursor,
) -> Result<Result<Located, Fault>, IoFailure<S::Error>> {
    let bytes = win.get(st, cursor.offset(), RECORD_HEADER_LEN)?;
    let at = match cursor.header(bytes) {
        Ok(at) => at,
        Err(f) => return Ok(Err(f)),
    };
    if !payload_matches(st, win, cursor, &at)? {
        return Ok(Err(Fault::PayloadChecksum));
    }
    let payload = if at.is_meta() {
        Some(win.get(st, at.payload_offset(), META_LEN)?)
    } else {
        None
    };
    Ok(cursor.accept(&at, payload).map(|_| at))
}

/// Verifies the payload of `at` through the window, a window's worth at a time.
#[cfg_attr(feature = "replay", inline)]
fn payload_matches<S: Storage>(
    st: &S,
    win: &mut Window<'_>,
    cursor: &RecordCursor,
    at: &Located,
) -> Result<bool, IoFailure<S::Error>> {
    let mut pos = at.payload_offset();
    let mut left = at.header.length as usize;
    // In one piece (nearly always): one call.
    if left <= win.capacity() {
        let bytes = win.get(st, pos, left)?;
        return Ok(cursor.verify_payload(at, bytes).is_ok());
    }
    let mut sum = cursor.payload_checksum();
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
    Ok(cursor.payload_matches(at, sum))
}

/// Whether every byte from `from` to the end of the segment (`end`, its listed length) is zero
/// (preallocated space, or a creation whose header never arrived). Not if reads end before
/// `end`: bytes the storage listed but would not return are no proof of a clean end.
#[cfg_attr(target_pointer_width = "32", inline(always))]
pub(crate) fn zeros_to_end<S: Storage>(
    st: &S,
    win: &mut Window<'_>,
    from: u64,
    end: u64,
) -> Result<bool, IoFailure<S::Error>> {
    let mut pos = from;
    loop {
        // In a replay, what the window holds from `pos` on, whatever its length: the chunks
        // serve the zeros too (a window's worth at `pos` is more than a chunk holds, and
        // would be read instead). Elsewhere a window's worth, as that costs 60 bytes less
        // code on a Cortex-M (scripts/size.sh).
        #[cfg(all(feature = "replay", feature = "alloc"))]
        let bytes = win.ahead(st, pos, 1)?;
        #[cfg(not(all(feature = "replay", feature = "alloc")))]
        let bytes = win.get(st, pos, win.capacity())?;
        if bytes.is_empty() {
            return Ok(pos >= end);
        }
        if bytes.iter().any(|&b| b != 0) {
            return Ok(false);
        }
        pos += bytes.len() as u64;
    }
}

/// Scans a segment's records from the first one (just after the segment header), expecting
/// `first_lsn`, up to `keys.end` (the segment's length).
pub(crate) fn scan_records<S: Storage>(
    st: &S,
    win: &mut Window<'_>,
    keys: &SegmentKeys,
    first_lsn: Lsn,
) -> Result<SegmentScan, IoFailure<S::Error>> {
    scan_records_with(st, win, keys, first_lsn, |_, _, _, _| {})
}

/// [`scan_records`], calling `unit(st, win, to, same)` as each complete unit (a record, a
/// whole batch, a metadata record) is accepted: its bytes, up to `to`, were just verified,
/// and `same` says that the window has held them, the very bytes verified, since the unit
/// began (nothing was read afresh or swapped out since). (Recovery passes a closure that does
/// nothing, and the compiler removes the calls.)
#[inline(always)]
pub(crate) fn scan_records_with<S: Storage>(
    st: &S,
    win: &mut Window<'_>,
    keys: &SegmentKeys,
    first_lsn: Lsn,
    mut unit: impl FnMut(&S, &mut Window<'_>, u64, bool),
) -> Result<SegmentScan, IoFailure<S::Error>> {
    let mut cursor = RecordCursor::new(*keys, first_lsn);
    #[cfg(feature = "replay")]
    let mut began = 0;
    let fault = loop {
        if cursor.at_end() {
            match cursor.end_fault() {
                None => break None,
                Some(f) => break Some(f),
            }
        }
        let from = cursor.complete().end;
        #[cfg(feature = "replay")]
        {
            win.keep = from;
            if cursor.offset() == from {
                began = win.refills;
            }
        }
        if let Err(f) = step(st, win, &mut cursor)? {
            break Some(f);
        }
        let to = cursor.complete().end;
        if to != from {
            #[cfg(feature = "replay")]
            let same = win.refills == began;
            #[cfg(not(feature = "replay"))]
            let same = false;
            unit(st, win, to, same);
        }
    };
    #[cfg(feature = "replay")]
    {
        win.keep = u64::MAX;
    }
    let done = cursor.complete();
    let mut scan = SegmentScan {
        end: done.end,
        last_lsn: done.last_lsn,
        records: done.records,
        invalid: None,
        seal: cursor.seal(),
    };
    let Some(fault) = fault else {
        return Ok(scan);
    };
    // Stopped. A clean end is nothing but zeros after the last complete record.
    let at = cursor.offset();
    if cursor.open_batch().is_none() && zeros_to_end(st, win, at, keys.end)? {
        return Ok(scan);
    }
    let (offset, lsn) = cursor.open_batch().unwrap_or((at, cursor.next_lsn()));
    scan.invalid = Some(Invalid { offset, lsn, fault });
    Ok(scan)
}

/// What valid records lie after invalid bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Orphans {
    /// How many valid records were found after the invalid bytes, a seal or other metadata
    /// record included (its `ack_gap` is evidence like any other's).
    pub(crate) count: u32,
    /// How many of them are the log's records (not metadata): what reports count.
    pub(crate) records: u32,
    /// The highest LSN any of them proves durable.
    pub(crate) proves_durable: Lsn,
    /// The highest LSN among the log's records (a metadata record's `lsn` field is the next
    /// record's, not one of its own).
    pub(crate) highest: Lsn,
}

impl Orphans {
    /// Counts the valid record `h`. (Always inlined, as the code it replaced was: out of line
    /// it cost 8 to 12 bytes of flash, `scripts/size.sh`.)
    #[inline(always)]
    fn add(&mut self, h: &RecordHeader) {
        self.count = self.count.saturating_add(1);
        self.proves_durable = self.proves_durable.max(h.proves_durable());
        if h.kind != RecordKind::Meta {
            self.records = self.records.saturating_add(1);
            self.highest = self.highest.max(h.lsn);
        }
    }

    /// Counts the records `other` counted as well.
    #[cfg(feature = "early-rotation")]
    pub(crate) fn merge(&mut self, other: &Orphans) {
        self.count = self.count.saturating_add(other.count);
        self.records = self.records.saturating_add(other.records);
        self.proves_durable = self.proves_durable.max(other.proves_durable);
        self.highest = self.highest.max(other.highest);
    }

    /// What these orphans say about the damaged LSN `bad.lsn` (the decision table's input).
    pub(crate) fn evidence(&self, bad: &Invalid) -> Evidence {
        self.evidence_for(bad.lsn)
    }

    /// What these records say about the damaged LSN `lsn`.
    pub(crate) fn evidence_for(&self, lsn: Lsn) -> Evidence {
        if self.count == 0 {
            Evidence::None
        } else if self.proves_durable >= lsn {
            Evidence::Acknowledged
        } else {
            Evidence::Unacknowledged
        }
    }
}

/// The LSN field of a record header starting at `bytes[at..]`.
#[cfg_attr(target_pointer_width = "32", inline(always))]
fn lsn_field(bytes: &[u8], at: usize) -> u64 {
    let mut lsn = [0u8; 8];
    lsn.copy_from_slice(&bytes[at + rec::LSN..at + rec::LSN + 8]);
    u64::from_le_bytes(lsn)
}

/// The first offset in `bytes` where a whole record header fits and its LSN field could
/// follow the damage (above `bad`, at most `max_lsn`): the cheap filter before any checksum.
/// Eight offsets at a time without a branch, since nearly all fail.
#[cfg_attr(target_pointer_width = "32", inline(always))]
fn first_candidate(bytes: &[u8], bad: Lsn, max_lsn: u64) -> Option<usize> {
    let candidates = (bytes.len() + 1).checked_sub(RECORD_HEADER_LEN)?;
    let low = bad.0.wrapping_add(1);
    let width = max_lsn.saturating_sub(bad.0);
    let fits = |at: usize| lsn_field(bytes, at).wrapping_sub(low) < width;
    let mut at = 0;
    while at < candidates {
        if at + 8 <= candidates && !(at..at + 8).fold(false, |any, i| any | fits(i)) {
            at += 8;
            continue;
        }
        if fits(at) {
            return Some(at);
        }
        at += 1;
    }
    None
}

/// Looks at every byte offset from `bad.offset` on for valid records of this segment that
/// could follow the damage (an LSN above `bad.lsn`). The damaged place itself is one: a valid
/// record of this segment there whose LSN is later than the one expected (a later record
/// written over the damaged one's place, a misdirected write) still proves, by its `ack_gap`,
/// what was durable when it was written; left out, a last record moved one place back had its
/// acknowledged predecessor cut as a torn tail.
pub(crate) fn find_orphans<S: Storage>(
    st: &S,
    win: &mut Window<'_>,
    keys: &SegmentKeys,
    bad: &Invalid,
) -> Result<Orphans, IoFailure<S::Error>> {
    let mut found = Orphans::default();
    // Every LSN from the damaged one on takes at least a record header's bytes, so nothing in
    // the rest of the segment can be more than this many LSNs later.
    let span = keys.end.saturating_sub(bad.offset);
    let max_lsn = bad
        .lsn
        .0
        .saturating_add(span.div_ceil(RECORD_HEADER_LEN as u64));
    let mut at = bad.offset;
    while at + RECORD_HEADER_LEN as u64 <= keys.end {
        // Test every offset whose whole header lies in the window in one tight pass (most of
        // a damaged tail is zeros or garbage).
        let room = usize::try_from(keys.end - at).unwrap_or(usize::MAX);
        let bytes = win.ahead(st, at, RECORD_HEADER_LEN)?;
        let bytes = &bytes[..bytes.len().min(room)];
        let Some(candidates) = (bytes.len() + 1).checked_sub(RECORD_HEADER_LEN) else {
            break; // Shorter than the segment said: nothing more to find.
        };
        let Some(i) = first_candidate(bytes, bad.lsn, max_lsn) else {
            // At least one byte on: a header's length less one byte holds no candidate (reads
            // that ended before the length the segment was listed with: a lying storage, or
            // a segment cut since), and `at` would never move.
            at += candidates.max(1) as u64;
            continue;
        };
        let lsn = lsn_field(bytes, i);
        at += i as u64;
        // A cursor placed here accepts any valid record with this LSN (framing unknown).
        let mut probe = RecordCursor::resume(*keys, at, Lsn(lsn));
        if let Ok(found_at) = step(st, win, &mut probe)? {
            found.add(&found_at.header);
            // Valid records never overlap: jump over this one, so every payload byte is
            // checksummed at most once on the way.
            at = found_at.end();
            continue;
        }
        at += 1;
    }
    Ok(found)
}

/// Every valid record of a segment, before and after any damage in it (evidence for damage in
/// an earlier segment, docs/FORMAT.md "Early successors"): how many, and the highest LSN any of
/// them proves durable. A record inside a batch that never completed still counts: its
/// `ack_gap` was true when it was written.
#[cfg(feature = "early-rotation")]
pub(crate) fn proofs<S: Storage>(
    st: &S,
    win: &mut Window<'_>,
    keys: &SegmentKeys,
    first_lsn: Lsn,
) -> Result<Orphans, IoFailure<S::Error>> {
    let mut found = Orphans::default();
    let mut cursor = RecordCursor::new(*keys, first_lsn);
    while !cursor.at_end() {
        match step(st, win, &mut cursor)? {
            Ok(at) => found.add(&at.header),
            Err(fault) => {
                let bad = Invalid {
                    offset: cursor.offset(),
                    lsn: cursor.next_lsn(),
                    fault,
                };
                found.merge(&find_orphans(st, win, keys, &bad)?);
                break;
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    /// `first_candidate` one offset at a time, the obvious way.
    fn naive(bytes: &[u8], bad: Lsn, max_lsn: u64) -> Option<usize> {
        let candidates = (bytes.len() + 1).checked_sub(RECORD_HEADER_LEN)?;
        (0..candidates).find(|&at| {
            let lsn = lsn_field(bytes, at);
            lsn > bad.0 && lsn <= max_lsn
        })
    }

    /// The eight-at-a-time filter finds exactly the first offset the plain search finds, for
    /// every placement of one or two LSN fields (plausible or just outside the bounds), in
    /// every buffer length around a header's, including a field whose header would not fit.
    #[test]
    fn first_candidate_is_the_first_plausible_offset() {
        let (bad, max_lsn) = (Lsn(4), 6u64);
        let mut checked = 0;
        // Miri interprets every instruction: a few lengths around a header's there (it looks
        // for undefined behaviour, not for wrong answers).
        let lens = if cfg!(miri) {
            RECORD_HEADER_LEN..RECORD_HEADER_LEN + 2
        } else {
            0..RECORD_HEADER_LEN + 20
        };
        for len in lens.clone() {
            let fields = len.saturating_sub(rec::LSN + 8 - 1);
            for a in 0..=fields {
                for b in a..=fields {
                    for (va, vb) in [(5, 6), (6, 4), (4, 7), (7, 5), (6, 6)] {
                        let mut bytes: Vec<u8> = std::vec![0xee; len];
                        for (at, v) in [(a, va), (b, vb)] {
                            if at < fields {
                                let f = at + rec::LSN;
                                bytes[f..f + 8].copy_from_slice(&(v as u64).to_le_bytes());
                            }
                        }
                        assert_eq!(
                            first_candidate(&bytes, bad, max_lsn),
                            naive(&bytes, bad, max_lsn),
                            "len {len}, fields at {a} = {va} and {b} = {vb}"
                        );
                        checked += 1;
                    }
                }
            }
        }
        // Single set bytes in zeros, with a wide bound: each makes up to three neighbouring
        // offsets plausible, so groups of eight hold one, two or three of them.
        let wide = 1u64 << 24;
        for len in lens {
            for p in 0..len {
                for q in [None, Some(p / 2), Some(len - 1)] {
                    let mut bytes: Vec<u8> = std::vec![0; len];
                    bytes[p] = 1;
                    if let Some(q) = q {
                        bytes[q] = 3;
                    }
                    assert_eq!(
                        first_candidate(&bytes, Lsn(0), wide),
                        naive(&bytes, Lsn(0), wide),
                        "len {len}, bytes set at {p} and {q:?}"
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > if cfg!(miri) { 100 } else { 10_000 });
    }
}
