//! Raft log index ↔ Walden LSN.
//!
//! Walden numbers records densely (every record gets the next LSN, forever), and removes them
//! only as whole segments from the front (`truncate_front`) or as a suffix (`truncate_back`).
//! Raft indexes are dense too, except in one place: after a snapshot is installed, raft purges
//! up to the snapshot's last index, which may lie *beyond* the last entry this node has, and
//! appends next at that index + 1. Walden cannot skip LSNs, so from that point the same raft
//! index sits at a different LSN than before.
//!
//! The mapping rests on one observation: **the live entries (those after the last purged one)
//! always form one run of consecutive records that ends at the last record of the log.**
//!
//! * An append adds the next index at the next LSN, or, when nothing is live (a new log, or
//!   everything purged or truncated), starts a new run at the next LSN.
//! * `truncate(i)` removes a suffix of the run (`truncate_back`), durably.
//! * `purge(i)` moves the start of the run forward (and lets `truncate_front` drop whole
//!   segments that are entirely purged); a purge at or past the end leaves nothing live.
//!
//! So a run is two numbers, the index and LSN of its first live entry, plus the last log id.
//! Records before the run are dead (purged, not yet removed because their segment still holds
//! live ones). At open, the run is rebuilt from the last record (whose raft index is stored in
//! front of every record) and the last purged log id (kept in the meta log): the run ends at
//! the last record and starts right after the purged index, or at the first record if nothing
//! was ever purged (then no new run was ever started after a purge, so every record is live).

use openraft::{LogId, NodeId};
use walden_std::Lsn;

/// The live run: where raft index `first.0` is, and the last live log id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Run<NID: NodeId> {
    /// Raft index and LSN of the first live entry.
    pub(crate) first: (u64, Lsn),
    /// The last live entry.
    pub(crate) last: LogId<NID>,
}

impl<NID: NodeId> Run<NID> {
    /// The LSN of raft index `index`, which the caller has checked is in the run.
    pub(crate) fn lsn(&self, index: u64) -> Lsn {
        Lsn(self.first.1.0 + (index - self.first.0))
    }
}

/// Why the log and the meta log do not fit together (only damage or a foreign directory can
/// cause it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mismatch {
    /// The last record's raft index is lower than its position in the log allows.
    IndexBelowPosition,
    /// The first live entry would lie before the first record of the log (a hole).
    Hole,
}

/// Rebuilds the run at open from the last record (`last_lsn`, and the log id stored in it),
/// the first LSN still in the log and the last purged log id. `None`: nothing is live.
pub(crate) fn rebuild<NID: NodeId>(
    first_lsn: Lsn,
    last: Option<(Lsn, LogId<NID>)>,
    purged: Option<&LogId<NID>>,
) -> Result<Option<Run<NID>>, Mismatch> {
    let Some((last_lsn, last_id)) = last else {
        return Ok(None);
    };
    let first_index = match purged {
        Some(p) if last_id.index <= p.index => return Ok(None),
        Some(p) => p.index + 1,
        None => {
            // Every record is live: the run starts at the first record.
            let behind = last_lsn.0 - first_lsn.0;
            last_id
                .index
                .checked_sub(behind)
                .ok_or(Mismatch::IndexBelowPosition)?
        }
    };
    let back = last_id.index - first_index;
    let first = last_lsn
        .0
        .checked_sub(back)
        .filter(|&l| l >= first_lsn.0)
        .ok_or(Mismatch::Hole)?;
    Ok(Some(Run {
        first: (first_index, Lsn(first)),
        last: last_id,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::CommittedLeaderId;

    fn id(term: u64, index: u64) -> LogId<u64> {
        LogId::new(CommittedLeaderId::new(term, 0), index)
    }

    #[test]
    fn a_log_never_purged_is_one_run_from_the_first_record() {
        // Raft indexes 0..=9 at LSNs 1..=10.
        let run = rebuild(Lsn(1), Some((Lsn(10), id(1, 9))), None)
            .unwrap()
            .unwrap();
        assert_eq!(run.first, (0, Lsn(1)));
        assert_eq!(run.lsn(9), Lsn(10));
    }

    #[test]
    fn a_purge_moves_the_start_and_a_purge_past_the_end_leaves_nothing() {
        let run = rebuild(Lsn(1), Some((Lsn(10), id(1, 9))), Some(&id(1, 4)))
            .unwrap()
            .unwrap();
        assert_eq!(run.first, (5, Lsn(6)));
        assert_eq!(
            rebuild(Lsn(1), Some((Lsn(10), id(1, 9))), Some(&id(1, 9))).unwrap(),
            None
        );
        assert_eq!(
            rebuild(Lsn(1), Some((Lsn(10), id(1, 9))), Some(&id(3, 50))).unwrap(),
            None
        );
    }

    /// After a snapshot install: LSNs 1..=10 held indexes 0..=9, raft purged to 50 and
    /// appended 51..=53 at LSNs 11..=13.
    #[test]
    fn a_run_started_after_a_purge_past_the_end() {
        let run = rebuild(Lsn(1), Some((Lsn(13), id(4, 53))), Some(&id(3, 50)))
            .unwrap()
            .unwrap();
        assert_eq!(run.first, (51, Lsn(11)));
        assert_eq!(run.lsn(53), Lsn(13));
    }

    #[test]
    fn damage_is_reported_not_guessed() {
        // Index 3 cannot be the 10th record of a log never purged.
        assert_eq!(
            rebuild(Lsn(1), Some((Lsn(10), id(1, 3))), None),
            Err(Mismatch::IndexBelowPosition)
        );
        // Purged to 2 but the log starts at LSN 8 holding index 9: 3..=8 are missing.
        assert_eq!(
            rebuild(Lsn(8), Some((Lsn(10), id(1, 11))), Some(&id(1, 2))),
            Err(Mismatch::Hole)
        );
        assert_eq!(rebuild::<u64>(Lsn(1), None, Some(&id(1, 2))), Ok(None));
    }
}
