//! Opening a log and replaying it with one read of its bytes ([`crate::Wal::open_replaying`]).
//!
//! A plain open verifies every record's checksum, and a replay after it reads and verifies
//! every record again. Here the caller's thread scans every segment, oldest first and the
//! newest last, with recovery's own scan (walden-core's `raw::replay_segment_ahead`), and
//! hands each unit (a record, a whole batch) to the application as soon as the scan has
//! verified it, while it is still in a cache. The scans go to the open as summaries, so it
//! does not read those segments again; what the pre-pass did not hand over (everything from
//! the first segment it could not vouch for) is read after the open by an ordinary reader.
//!
//! The bytes come from a second thread, `walden-replay`, that reads the segments ahead of the
//! scan in chunks of [`Tuning::replay_chunk`](crate::Tuning::replay_chunk) (512 KiB) into
//! buffers that it hands to the scan's window whole: the kernel's copy out of the page cache
//! (about 40% of a replay's time) runs beside the checksums and the hand-over instead of
//! before them, and no byte is copied twice: a batch that began in chunks before is handed
//! over from them (the window holds every chunk since the unit it is inside began, up to
//! [`held_chunks`]; only a record that straddles chunks is put together in one piece). Chunks
//! this short are still in the cache when the scan reads them: the read thread's copy took
//! 96-101 ms of CPU per GiB with 512 KiB chunks against 97-304 ms with 4 MiB ones, which
//! left the cache before the scan came to them (2-vCPU VM, the suite's replay right after
//! its fill). A refill the chunks cannot serve (a unit across more chunks than the window may
//! hold, a chunk missing because its read failed) is read by the scan itself into its own
//! window of [`WINDOW`] bytes or more, as without the thread, so the chunks change how fast
//! the scan gets its bytes, never what it decides.
//! 1 GiB of 1 KiB records in 1 MiB batches, page cache warm, 2-vCPU VM: about 150 ms against
//! 255-270 ms for one thread that read the newest segment a second time after the open.
//!
//! Two other shapes were measured and are slower on that VM: loading each segment whole into
//! a buffer and handing over from there (about 370 ms against 200 ms for 512 MiB: 64 MiB
//! buffers send every byte through memory three times), and a second thread reading ahead of
//! the scan in 1 MiB chunks that the scan copied from (256 ms against 220-230 ms: the copy
//! out of the chunks cost as much as the kernel's copy out of the page cache it replaced;
//! handing the buffers over instead is what pays).
//!
//! **Only records every successful open keeps are handed over before the open.** The
//! pre-pass walks the segments oldest first and hands over a segment's complete units
//! only while every segment before it was clean (nothing but valid records and zeros) and
//! this one's header is valid, of the same log, and begins exactly where the one before
//! ended. Under every policy, recovery keeps the complete units of such a prefix: the
//! decision table only cuts at or after the first invalid byte, and drops or removes only
//! segments after a damaged or missing one (docs/FORMAT.md, "Recovery decision table"); the
//! newest segment is no exception (a torn tail is cut at its first invalid byte, after every
//! unit handed over), so it is handed over too, last. It stops at the first segment that is
//! encrypted (the keys are the open log's), at a record longer than the window, and at a
//! compressed record this build cannot decode; the reader after the open goes on from there.
//! If the open then fails, what was handed over is not a log: the error says so, and the
//! application must discard it.

use core::fmt;
use core::sync::atomic::{AtomicUsize, Ordering};
use std::collections::HashMap;
use std::sync::mpsc;

use walden_core::raw::{
    Chunk, Located, ReadAhead, RecordCursor, RecordFlags, SegmentHeader, SegmentSummary, read_full,
    replay_segment_ahead,
};
use walden_core::{Config, Lsn, ReadError, SegmentId, Storage};

use crate::error::{Error, FileError};

use crate::filesystem::{FileSystem, Mutation};
use crate::storage::FileStorage;

/// The scan's own window, for refills the read-ahead's chunks cannot serve. A refill starts
/// at the batch the scan is inside (walden-core's `replay` feature), so a batch up to this
/// long is still in the window when it completes and is handed over. Replaying a 1 GiB log of
/// 1 MiB batches took the same time with 2, 4, 8 and 16 MiB (about 235 ms) and 15% longer
/// with 1 MiB (before the read-ahead).
pub(crate) const WINDOW: usize = 4 << 20;

/// Why [`crate::Wal::open_replaying`] failed. In every case the records handed over so far
/// are not to be trusted as the log: discard what was built from them.
#[derive(Debug)]
#[non_exhaustive]
pub enum ReplayError<E> {
    /// The log could not be opened (nothing was opened; see [`Error`]).
    Log(Error),
    /// The log opened, but reading it after the open failed.
    Read(ReadError<FileError>),
    /// The application's `apply` returned `error` for the record `lsn`; nothing after it was
    /// handed over. The log was not opened (or was closed again).
    Apply {
        /// The record `apply` refused.
        lsn: Lsn,
        /// What `apply` returned.
        error: E,
    },
}

impl<E: fmt::Display> fmt::Display for ReplayError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplayError::Log(e) => write!(f, "{e}"),
            ReplayError::Read(e) => write!(f, "reading the opened log: {e}"),
            ReplayError::Apply { lsn, error } => {
                write!(f, "applying record {}: {error}", lsn.0)
            }
        }
    }
}

impl<E: fmt::Debug + fmt::Display> core::error::Error for ReplayError<E> {}

/// What the pre-pass leaves for the open and the reader after it.
pub(crate) struct Prepass {
    /// Every segment scanned, for [`walden_core::Wal::open_with_summaries`].
    pub(crate) summaries: HashMap<SegmentId, SegmentSummary>,
    /// The LSN after the last record handed over (`None`: nothing was).
    pub(crate) next: Option<Lsn>,
}

/// The application's function returned an error: the pre-pass stopped there.
pub(crate) struct Stopped;

/// The application's function, as the pre-pass calls it (its error kept by the caller).
pub(crate) type Apply<'a> = &'a mut dyn FnMut(Lsn, &[u8]) -> Result<(), Stopped>;

/// Hands over, oldest first, the records of the sealed segments that every successful open
/// keeps (see the module documentation), and scans every segment once for the open. The
/// newest segment is scanned on a thread of its own meanwhile (the open would otherwise scan
/// it alone afterwards).
pub(crate) fn prepass<F: FileSystem>(
    storage: &FileStorage<F>,
    config: &Config,
    apply: Apply<'_>,
) -> Result<Prepass, Stopped> {
    let mut ids = Vec::new();
    let listed = storage.list(&mut |id| {
        if !walden_core::raw::is_start_slot(id) {
            ids.push(id);
        }
    });
    let mut out = Prepass {
        summaries: HashMap::new(),
        next: None,
    };
    ids.sort_unstable();
    // Nothing to scan, or the list is not to be trusted (the open lists again and reports
    // the failure).
    if ids.is_empty() || listed.is_err() {
        return Ok(out);
    }
    // The broken variant the files explorer must catch: a segment's records are handed over
    // even after damage, or when it does not follow on from the one before, or when the open
    // leaves it out as stale (below a gap under the log's start).
    let checked = storage.file_system().mutation() != Some(Mutation::ReplayIgnoresDamage);
    // Segment files an open leaves out of the log as stale (older than the start it records,
    // below a gap: a restored copy, a stray file) are neither handed over nor scanned: their
    // records are not the log's, and their LSNs may even fall inside it. The same rule as the
    // open's. A header that cannot be read: nothing is handed over (the open reports the
    // failure). A start slot that cannot be read counts as absent, as in the open (the
    // headers' `first_segment` is then the only bound).
    //
    // Each header is read here and again by its scan below (walden-core's
    // `replay_segment_ahead` reads it itself): one short read per segment, from the page
    // cache, beside the scan of the whole segment. The rule needs every header before the
    // first segment is scanned, and the scan takes no header from its caller.
    let mut heads = vec![0u8; walden_core::MIN_SCRATCH];
    match walden_core::raw::stale_segments(storage, &ids, &mut heads) {
        Ok(stale) if checked => {
            ids.drain(..stale);
        }
        Ok(_) => {}
        Err(_) => return Ok(out),
    }
    if ids.is_empty() {
        return Ok(out);
    }
    let mut hand = Handing {
        live: true,
        checked,
        log_id: None,
        expect: None,
        previous: None,
        next: None,
        stopped: false,
        stored: Vec::new(),
        decoded: Vec::new(),
    };
    // No record is longer than the segment file it is in: a small log gets the plain window,
    // not one for the longest record the configuration allows (up to 1 GiB). A length that
    // cannot be read counts as 0: the open reports the failure.
    let longest = ids.iter().filter_map(|&id| storage.len(id).ok()).max();
    let mut scratch = vec![0u8; window_size(config, longest.unwrap_or(0))];
    let chunk = storage.file_system().tuning().replay_chunk.max(1);
    let held = held_chunks(chunk);
    let at = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let (free, free_rx) = mpsc::channel();
        let (chunks_tx, chunks) = mpsc::channel();
        for _ in 0..held + 3 {
            let _ = free.send(vec![0u8; chunk]);
        }
        let (at, ids) = (&at, &ids[..]);
        // Without the thread (it could not be started) every chunk is missing: the scan
        // reads for itself.
        let _ = std::thread::Builder::new()
            .name("walden-replay".into())
            .spawn_scoped(scope, move || {
                read_ahead(storage, ids, chunk, at, &free_rx, &chunks_tx);
            });
        let mut ahead = Ahead {
            chunks,
            free,
            segment: 0,
            held: None,
            max_held: held,
        };
        for (i, &id) in ids.iter().enumerate() {
            ahead.segment = id;
            at.store(i, Ordering::Relaxed);
            let scanned = hand.segment(storage, config, id, &mut scratch, &mut ahead, apply);
            if hand.stopped {
                return Err(Stopped);
            }
            match scanned {
                Some(summary) => {
                    out.summaries.insert(id, summary);
                }
                None => hand.live = false,
            }
        }
        out.next = hand.next;
        Ok(out)
    })
}

/// Which segments may still be handed over, and where the handing stands.
struct Handing {
    /// Whether every segment so far was handed over whole and clean.
    live: bool,
    /// `false` only in the broken variant [`Mutation::ReplayIgnoresDamage`].
    checked: bool,
    log_id: Option<u64>,
    /// The first LSN the next segment must have.
    expect: Option<Lsn>,
    /// The id of the segment before (the next must be the one after it: a gap is a missing
    /// segment, which the open refuses or salvages).
    previous: Option<SegmentId>,
    /// The LSN after the last record handed over.
    next: Option<Lsn>,
    /// `apply` returned an error.
    stopped: bool,
    /// A transformed record's stored bytes, and room for it decoded.
    stored: Vec<u8>,
    decoded: Vec<u8>,
}

impl Handing {
    /// Scans sealed segment `id`, handing its records over while every segment before it
    /// could be; its scan for the open (`None`: not scannable, the open classifies it).
    fn segment<F: FileSystem>(
        &mut self,
        storage: &FileStorage<F>,
        config: &Config,
        id: SegmentId,
        scratch: &mut [u8],
        ahead: &mut Ahead,
        apply: Apply<'_>,
    ) -> Option<SegmentSummary> {
        let Self {
            live,
            checked,
            log_id,
            expect,
            previous,
            next,
            stopped,
            stored,
            decoded,
        } = self;
        // Only a segment of the same log, named as its header says, right after the one before
        // (no id missing between them), that begins where the one before ended; not an
        // encrypted one (the keys are the open log's: the reader after the open has them).
        let mut began = false;
        let after = previous.replace(id);
        let hand = |h: &SegmentHeader| {
            let follows = *log_id.get_or_insert(h.log_id) == h.log_id
                && h.segment_id == id
                && after.is_none_or(|p| p.checked_add(1) == Some(id))
                && expect.is_none_or(|e| e == h.first_lsn);
            began = *live && (follows || !*checked) && h.key_id.is_none();
            began
        };
        let mut handed_all = true;
        let each = |cursor: &RecordCursor, at: &Located, bytes: &[u8]| {
            let payload: &[u8] = if at.header.flags == RecordFlags::PLAIN {
                bytes
            } else {
                stored.clear();
                stored.extend_from_slice(bytes);
                let d: &mut Vec<u8> = &mut *decoded;
                let plain = cursor.decode_with(at, stored, None, move |n| {
                    if d.len() < n {
                        d.resize(n, 0);
                    }
                    Ok(&mut d[..n])
                });
                match plain {
                    Ok(p) => p,
                    // The reader after the open reports it, at this LSN.
                    Err(_) => {
                        handed_all = false;
                        return false;
                    }
                }
            };
            if apply(at.header.lsn, payload).is_err() {
                *stopped = true;
                handed_all = false;
                return false;
            }
            *next = Some(at.header.lsn.next());
            true
        };
        let scanned = replay_segment_ahead(storage, id, config, scratch, ahead, hand, each);
        let Ok(Some((summary, h))) = scanned else {
            *live = false;
            return None;
        };
        // Handed over whole (a record longer than the window stops it too) and clean: the
        // next segment may be handed over if it begins right after this one.
        let whole = *next == Some(summary.last_lsn().next()) || summary.last_lsn() < h.first_lsn;
        *live = began && handed_all && whole && (summary.is_clean() || !*checked);
        *expect = Some(summary.last_lsn().next());
        Some(summary)
    }
}

/// The scan's window for segments of at most `longest_segment` bytes: [`WINDOW`], or room for
/// the longest record (and its header) that the configuration allows and those segments can
/// hold, if that is more, so that such a record is handed over before the open too (a record
/// longer than the window stops the hand-over, and the reader after the open goes on).
fn window_size(config: &Config, longest_segment: u64) -> usize {
    let record = u64::from(config.max_record_size).min(longest_segment);
    let record = usize::try_from(record).unwrap_or(usize::MAX);
    WINDOW.max(record.saturating_add(4096))
}

/// How many chunks of `chunk` bytes the scan's window may hold at once (its own and those
/// before it, while the unit the scan is inside began there): enough for a unit as long as
/// its own window ([`WINDOW`], the longest it keeps for a hand-over anyway) wherever it
/// begins, and at most [`MAX_HELD`]. Read-ahead buffers: these, one the window has taken and
/// not used yet, one of a later segment held back, and one being read.
fn held_chunks(chunk: usize) -> usize {
    (WINDOW.div_ceil(chunk) + 1).clamp(2, MAX_HELD)
}

/// The most chunks a replay's window holds at once (chunks far shorter than a unit, as the
/// tests' file system reads, would otherwise mean thousands of buffers).
const MAX_HELD: usize = 16;

/// What the read-ahead thread sends: a chunk of a segment, or that a segment has no more.
enum AheadMsg {
    Chunk(SegmentId, Chunk),
    Done(SegmentId),
}

/// Reads `segments`, oldest first, `chunk` bytes at a time into buffers from `free` (each
/// `chunk` long), and sends them on; stops reading a segment the scan has gone past (`at`),
/// and stops when the scan no longer listens. A read that fails ends its segment's chunks: the scan then reads
/// for itself and meets the failure where it is.
fn read_ahead<F: FileSystem>(
    storage: &FileStorage<F>,
    segments: &[SegmentId],
    chunk: usize,
    at: &AtomicUsize,
    free: &mpsc::Receiver<Vec<u8>>,
    out: &mpsc::Sender<AheadMsg>,
) {
    // The broken variant the files explorer must catch: chunks after a segment's first are
    // read from a byte later than the offset they say they hold.
    let misplace =
        u64::from(storage.file_system().mutation() == Some(Mutation::ReadAheadMisplaced));
    let mut spare: Option<Vec<u8>> = None;
    for (i, &id) in segments.iter().enumerate() {
        let len = storage.len(id).unwrap_or(0);
        let mut offset = 0u64;
        while offset < len && at.load(Ordering::Relaxed) <= i {
            let Some(mut buf) = spare.take().or_else(|| free.recv().ok()) else {
                return;
            };
            let take = (len - offset).min(chunk as u64) as usize;
            let from = if offset > 0 {
                offset + misplace
            } else {
                offset
            };
            let got = match read_full(storage, id, from, &mut buf[..take]) {
                Ok(got) if got > 0 => got,
                _ => {
                    spare = Some(buf);
                    break;
                }
            };
            let end = got < take || offset + got as u64 == len;
            let c = Chunk {
                buf,
                base: 0,
                offset,
                len: got,
                end,
            };
            if out.send(AheadMsg::Chunk(id, c)).is_err() {
                return;
            }
            if end {
                break;
            }
            offset += got as u64;
        }
        if out.send(AheadMsg::Done(id)).is_err() {
            return;
        }
    }
}

/// The scan's side of the read-ahead, for segment `segment`.
struct Ahead {
    chunks: mpsc::Receiver<AheadMsg>,
    free: mpsc::Sender<Vec<u8>>,
    segment: SegmentId,
    /// A message about a later segment (or this one's end), kept for when it is asked for.
    held: Option<AheadMsg>,
    /// How many chunks the window may hold ([`held_chunks`]).
    max_held: usize,
}

impl ReadAhead for Ahead {
    fn next(&mut self) -> Option<Chunk> {
        loop {
            let msg = match self.held.take() {
                Some(m) => m,
                None => self.chunks.recv().ok()?,
            };
            let id = match &msg {
                AheadMsg::Chunk(id, _) | AheadMsg::Done(id) => *id,
            };
            if id < self.segment {
                if let AheadMsg::Chunk(_, c) = msg {
                    self.recycle(c.buf);
                }
                continue;
            }
            match msg {
                AheadMsg::Chunk(id, c) if id == self.segment => return Some(c),
                later_or_done => {
                    self.held = Some(later_or_done);
                    return None;
                }
            }
        }
    }

    fn recycle(&mut self, buf: Vec<u8>) {
        let _ = self.free.send(buf);
    }

    fn max_held(&self) -> usize {
        self.max_held
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A replay's window fits the segments on disk: it was allocated for the longest record the
    /// configuration allows (up to 1 GiB and 4 KiB) before a byte was read, so a log of a few
    /// kilobytes opened with `max_record_size` at its limit reserved a gibibyte.
    #[test]
    fn the_replay_window_fits_the_segments_on_disk() {
        let config = Config::default().with_max_record_size(1 << 30);
        assert_eq!(window_size(&config, 64 * 1024), WINDOW, "a small log");
        assert_eq!(window_size(&config, 0), WINDOW, "no length known");
        assert_eq!(window_size(&config, 64 << 20), (64 << 20) + 4096);
        assert_eq!(window_size(&config, 4 << 30), (1 << 30) + 4096);
        let small = Config::default().with_max_record_size(1024);
        assert_eq!(window_size(&small, 64 << 20), WINDOW);
    }
}
