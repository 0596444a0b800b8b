//! The crash explorer over what walden-std ships: `FileStorage` — its write buffer, spare
//! files linked into place at rotation, zero-fill ahead of the writer, leftover removal,
//! `fadvise` and parallel scan at open — run by the real `Wal` and `SharedWal` on a simulated
//! file system with a page cache ([`walden_sim::SimFs`] through
//! [`walden_std::SimFileSystem`]).
//!
//! The engine is the core explorer's ([`crate::explorer::Explorer`], over the [`Subject`]
//! [`FileVariant`]): crash after every file-system operation, every legal crash state, every
//! recovery policy, nested crashes during recovery's repairs and after the next appends, all
//! checked against the same [`Model`](crate::explorer::Model).
//!
//! [`Subject`]: crate::explorer::Subject

mod catalog;
pub mod faults;
mod subject;
mod variant;
mod workload;

pub use catalog::{deep_workloads, default_workloads, find};
pub use variant::{Breaks, FileVariant, TestFs, test_fs};
pub use workload::{
    FileDriven, FileLog, FileStep, FileWorkload, Handle, OpenLog, ROOT, drive, open_log,
};

use crate::explorer::{Explorer, Violation};

/// Replays one case of walden-std as it ships, printed by a failure as
/// `seed=.. op=.. plan=..`, and returns what it found.
pub fn replay(case: &str) -> Vec<Violation> {
    replay_variant(FileVariant::Correct, case)
}

/// [`replay`] against a broken variant.
pub fn replay_variant(variant: FileVariant, case: &str) -> Vec<Violation> {
    Explorer::replay(variant, case, find)
}
