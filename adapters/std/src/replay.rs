//! Opening a log and replaying it with one read of its bytes ([`crate::Wal::open_replaying`]).
//!
//! A plain open verifies every record's checksum, and a replay after it reads and verifies
//! every record again. Here the caller's thread scans each sealed segment, oldest first, with
//! recovery's own scan through a window of [`WINDOW`] bytes (walden-core's
//! `raw::replay_segment`), and hands each unit (a record, a whole batch) to the application
//! from the window as soon as the scan has verified it, while it is still in a cache. The
//! newest segment is scanned meanwhile on a second thread. The scans go to the open as
//! summaries, so it does not read those segments again; what the pre-pass did not hand over
//! (the newest segment, and everything from the first segment it could not vouch for) is
//! read after the open by an ordinary reader.
//!
//! Two other shapes were measured and are slower on the 2-vCPU VM this was built on (1 GiB of
//! 1 KiB records, page cache warm): loading each segment whole into a buffer and handing over
//! from there (about 370 ms against 200 ms for 512 MiB: 64 MiB buffers send every byte
//! through memory three times), and a second thread reading ahead of the scan in 1 MiB chunks
//! that the scan copies from (256 ms against 220-230 ms: the copy out of the chunks cost as
//! much as the kernel's copy out of the page cache it replaced).
//!
//! **Only records every successful open keeps are handed over before the open.** The
//! pre-pass walks the sealed segments oldest first and hands over a segment's complete units
//! only while every segment before it was clean (nothing but valid records and zeros) and
//! this one's header is valid, of the same log, and begins exactly where the one before
//! ended. Under every policy, recovery keeps the complete units of such a prefix: the
//! decision table only cuts at or after the first invalid byte, and drops or removes only
//! segments after a damaged or missing one (docs/FORMAT.md, "Recovery decision table"). It
//! stops at the first segment that is encrypted (the keys are the open log's), at a record
//! longer than the window, and at a compressed record this build cannot decode; the reader
//! after the open goes on from there. If the open then fails, what was handed over is not a
//! log: the error says so, and the application must discard it.

use core::fmt;
use std::collections::HashMap;

use walden_core::raw::{
    Located, RecordCursor, RecordFlags, SegmentHeader, SegmentSummary, replay_segment, scan_segment,
};
use walden_core::{Config, Lsn, ReadError, SegmentId, Storage};

use crate::error::{Error, FileError};

use crate::filesystem::{FileSystem, Mutation};
use crate::storage::FileStorage;

/// The scan window. A refill starts at the batch the scan is inside (walden-core's `replay`
/// feature), so a batch up to this long is still in the window when it completes and is handed
/// over. Replaying a 1 GiB log of 1 MiB batches took the same time with 2, 4, 8 and 16 MiB
/// (about 235 ms) and 15% longer with 1 MiB.
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
    // Nothing sealed (the open lists again, and reports a failure to list): the open scans
    // the newest segment itself, and the reader after it hands everything over.
    let Some((&newest, sealed)) = ids.split_last().filter(|(_, s)| !s.is_empty()) else {
        return Ok(out);
    };
    if listed.is_err() {
        return Ok(out);
    }
    let mut hand = Handing {
        live: true,
        // The broken variant the files explorer must catch: a segment's records are handed
        // over even after damage, or when it does not follow on from the one before.
        checked: storage.file_system().mutation() != Some(Mutation::ReplayIgnoresDamage),
        log_id: None,
        expect: None,
        next: None,
        stopped: false,
        stored: Vec::new(),
        decoded: Vec::new(),
    };
    let mut scratch = vec![0u8; WINDOW.max(config.max_record_size as usize + 4096)];
    std::thread::scope(|scope| {
        let newest_scan = (sealed.len() > 1).then(|| {
            scope.spawn(move || {
                let mut scratch = vec![0u8; 1 << 20];
                scan_segment(storage, newest, config, &mut scratch)
                    .ok()
                    .flatten()
            })
        });
        for &id in sealed {
            let scanned = hand.segment(storage, config, id, &mut scratch, apply);
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
        if let Some(Ok(Some(summary))) = newest_scan.map(|t| t.join()) {
            out.summaries.insert(newest, summary);
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
        apply: Apply<'_>,
    ) -> Option<SegmentSummary> {
        let Self {
            live,
            checked,
            log_id,
            expect,
            next,
            stopped,
            stored,
            decoded,
        } = self;
        // Only a segment of the same log that begins where the one before ended; not an
        // encrypted one (the keys are the open log's: the reader after the open has them).
        let mut began = false;
        let hand = |h: &SegmentHeader| {
            let follows = *log_id.get_or_insert(h.log_id) == h.log_id
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
        let scanned = replay_segment(storage, id, config, scratch, hand, each);
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
