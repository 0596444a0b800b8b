//! The crash explorer over the raft log store (`walden-openraft`): its two Walden logs
//! (entries, and the meta log with the vote, the committed log id and the purge point) and its
//! raft index ↔ LSN mapping, driven through openraft's storage API on two simulated
//! directories with a page cache ([`PairFs`]: two [`walden_std::SimFileSystem`]s under one
//! power supply).
//!
//! A workload runs once while [`PairFs`] records the moment before every state-changing file
//! operation (see its module). For every moment, every legal crash state of both directories
//! (the simulator's enumeration, as in the files explorer; pairs sampled evenly past a bound)
//! and a process restart, the store is reopened and checked against what the workload had
//! been told by then ([`Model`]). After a power loss the reopen itself is recorded, and the
//! power is cut again before each file operation of it (recovery's repairs of either log),
//! with the same checks:
//!
//! 1. **durability**: every entry whose flush callback fired is there with the same term and
//!    value, unless a later reported truncate, a purge, or a truncate the crash interrupted
//!    removed it;
//! 2. **vote**: never older than the last `save_vote` that returned;
//! 3. **truncate**: no entry a `truncate` that returned removed survives;
//! 4. **purge**: the purge point is never older than the last `purge` that returned, and the
//!    live entries are consecutive and start right after it;
//! 5. **reopen**: the store opens after every pure crash, its log state agrees with its
//!    entries, and the committed log id never lies beyond the log;
//! 6. **no phantoms**: every entry read back was appended, at that index, with that term;
//! 7. **in order**: once the meta record of a `save_vote` or `purge` is durable (the vote or
//!    purge point read back is at least its own), every entry appended before the call is
//!    there (unless a purge, a reported truncate or the truncate the crash interrupted
//!    removed it), flushed or not when the call started: openraft's writes in order.
//!    [`RaftStep::AppendQueued`] leaves entries unflushed across such calls.
//!
//! [`RaftVariant`] breaks the store on purpose, to prove the explorer notices.

mod catalog;
mod explore;
mod fs;
mod workload;

pub use catalog::{deep_workloads, default_workloads, find};
pub use explore::{RaftExplorer, replay};
pub use fs::{Moment, PairFile, PairFs, RAFT_DIR, Tape};
pub use workload::{
    Barrier, BarrierCall, Event, Model, RaftStep, RaftVariant, RaftWorkload, SimStore, log_id,
    record, value_of,
};
