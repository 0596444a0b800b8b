//! The logs under test, each behind [`crate::subject::Peer`].
//!
//! A new peer is one module implementing `Peer` and one line in [`all`]; every workload, ratio
//! and chart picks it up from there.
//!
//! Considered and left out: `simple_wal` 0.3, whose `flush()` is `File::flush()` (never reaches
//! the disk, like commitlog's) and which would pull in `rand` 0.7 and `advisory-lock` for a
//! second example of the same flaw.

mod baseline;
mod commitlog_log;
mod okaywal_log;
mod raft_engine_log;
mod walden_log;

use crate::subject::Peer;

/// Every peer, in the order tables and charts list them.
pub(crate) fn all() -> Vec<&'static dyn Peer> {
    vec![
        &walden_log::Walden,
        &baseline::Baseline,
        &okaywal_log::OkayWal,
        &raft_engine_log::RaftEngine,
        &commitlog_log::Commitlog,
    ]
}

/// The peers whose names contain one of `filters` (all of them when `filters` is empty).
pub(crate) fn selected(filters: &[String]) -> Vec<&'static dyn Peer> {
    all()
        .into_iter()
        .filter(|p| {
            filters.is_empty()
                || filters
                    .iter()
                    .any(|f| p.name().to_lowercase().contains(&f.to_lowercase()))
        })
        .collect()
}
