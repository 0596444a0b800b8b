//! What recovery found and did.

use core::fmt;

use crate::case::{Case, MissingFront};
use crate::lsn::Lsn;
use crate::storage::SegmentId;

/// Bytes recovery cut from the end of the newest segment (policy permitting).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TailCut {
    /// Why (normally [`Case::TornTail`]).
    pub case: Case,
    /// The segment that was cut.
    pub segment: SegmentId,
    /// The new length of the segment.
    pub offset: u64,
    /// How many bytes were removed.
    pub bytes: u64,
    /// The first LSN that was cut: if you were told this LSN was durable, the cut lost it.
    pub first_lsn: Lsn,
    /// Valid records found after the invalid bytes and discarded with them (never acknowledged:
    /// no record proves them durable).
    pub orphans: u32,
    /// Later segments removed with the cut: a torn tail across segments, which only an early
    /// rotation leaves (`docs/FORMAT.md`, "Early successors"). Zero for a cut in the newest
    /// segment; at most `u16::MAX` (counted no higher, which keeps the report small).
    pub segments_removed: u16,
    /// What was wrong at `offset`.
    pub detail: &'static str,
}

/// What `RecoveryPolicy::Salvage` gave up to open the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SalvageLoss {
    /// The case that forced it.
    pub case: Case,
    /// The first damaged segment.
    pub segment: SegmentId,
    /// Where in it the damage starts.
    pub offset: u64,
    /// The first LSN lost. Every LSN from here on that the log held is gone.
    pub first_lost: Lsn,
    /// The highest LSN known to have existed (from later records or segment headers), if any.
    pub last_known: Option<Lsn>,
    /// How many whole segments were removed.
    pub segments_dropped: u32,
    /// What was wrong.
    pub detail: &'static str,
}

/// The result of opening a log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RecoveryReport {
    /// Whether the storage was empty and a new log was created.
    pub created: bool,
    /// Segments in the log after recovery.
    pub segments: usize,
    /// Records in the log after recovery.
    pub records: u64,
    /// The first LSN in the log (the next LSN if the log is empty).
    pub first_lsn: Lsn,
    /// The last LSN in the log (`first_lsn − 1` if empty).
    pub last_lsn: Lsn,
    /// A torn tail that was cut.
    pub cut: Option<TailCut>,
    /// A newest segment whose torn header was rewritten.
    pub rewritten_header: Option<SegmentId>,
    /// Non-zero bytes after the last record of a sealed segment (ignored: the next segment's
    /// first LSN proves nothing is missing): `(segment, offset)`.
    pub trailing_garbage: Option<(SegmentId, u64)>,
    /// What salvage gave up, under `RecoveryPolicy::Salvage`.
    pub salvage: Option<SalvageLoss>,
    /// Segments missing from the front of the log that `RecoveryPolicy::Salvage` accepted as
    /// lost (the log now starts at `found`; recovery recorded that durably).
    pub missing_front: Option<MissingFront>,
    /// How many segment files are older than the log's recorded start and do not lead up to it
    /// (a restored copy, a stray file named like a segment; all older than the log's oldest
    /// segment). They are not part of the log and were left as they are; move them away.
    pub stale: u32,
}

impl RecoveryReport {
    /// Whether recovery found nothing to repair or report.
    pub fn is_clean(&self) -> bool {
        self.cut.is_none()
            && self.rewritten_header.is_none()
            && self.trailing_garbage.is_none()
            && self.salvage.is_none()
            && self.missing_front.is_none()
            && self.stale == 0
    }
}

impl fmt::Display for RecoveryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.created {
            f.write_str("created a new log")?;
        } else {
            write!(
                f,
                "recovered {} records (LSN {}..={}) in {} segments",
                self.records, self.first_lsn, self.last_lsn, self.segments
            )?;
        }
        if let Some(c) = self.cut {
            write!(
                f,
                "; cut {} bytes of torn tail from segment {} at offset {} (from LSN {}, {} orphaned records)",
                c.bytes, c.segment, c.offset, c.first_lsn, c.orphans
            )?;
            if c.segments_removed > 0 {
                write!(
                    f,
                    ", and removed the {} later segments (no record proves them acknowledged)",
                    // Widened: a device's build formats no other `u16` (150 bytes of flash).
                    u64::from(c.segments_removed)
                )?;
            }
            crate::error::write_detail(f, c.detail)?;
        }
        if let Some(s) = self.rewritten_header {
            write!(f, "; rewrote the torn header of segment {s}")?;
        }
        if let Some((s, o)) = self.trailing_garbage {
            write!(
                f,
                "; ignored trailing garbage in sealed segment {s} at offset {o}"
            )?;
        }
        if let Some(l) = self.salvage {
            write!(
                f,
                "; SALVAGE: {} in segment {} at offset {}: lost LSN {} onward",
                l.case, l.segment, l.offset, l.first_lost
            )?;
            if let Some(k) = l.last_known {
                write!(f, " (at least up to {k})")?;
            }
            write!(f, ", dropped {} segments", l.segments_dropped)?;
            crate::error::write_detail(f, l.detail)?;
        }
        if self.stale > 0 {
            write!(
                f,
                "; left out {} segment files older than the log's start and not leading up to it \
                 (not part of the log; left as they are)",
                self.stale
            )?;
        }
        if let Some(m) = self.missing_front {
            write!(
                f,
                "; SALVAGE: segments {}..{} missing from the front of the log (it now starts at segment {})",
                m.expected, m.found, m.found
            )?;
        }
        Ok(())
    }
}
