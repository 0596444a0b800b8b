//! The workloads of the raft store's explorer (seeds in the 0x5xx range, apart from the other
//! explorers'). Entries segments are 4 KiB and meta segments 512 bytes to 1 KiB, so that a
//! few entries rotate the entries log, purges remove whole segments, and the meta log rotates
//! and is compacted.

use super::workload::{RaftStep, RaftWorkload};

fn append(count: u64, len: usize) -> RaftStep {
    RaftStep::Append { count, len }
}

fn queued(count: u64, len: usize) -> RaftStep {
    RaftStep::AppendQueued { count, len }
}

/// The workloads of the default run.
pub fn default_workloads() -> Vec<RaftWorkload> {
    use RaftStep::{Committed, Purge, Reopen, Truncate, Vote};
    let mut workloads = vec![
        RaftWorkload {
            name: "raft: appends, votes, truncate, purge, reopen",
            seed: 0x501,
            entries_segment: 4096,
            meta_segment: 1024,
            sector_size: 512,
            steps: vec![
                append(3, 200),
                Vote,
                append(4, 300),
                Committed(5),
                append(2, 700),
                Truncate(7),
                append(3, 250),
                Purge(3),
                Reopen,
                append(4, 400),
                Vote,
                Committed(12),
                append(2, 150),
                Purge(11),
                Truncate(14),
                append(1, 300),
                // Appends still unflushed when a commit names them and a vote or a purge
                // comes: the store must make them durable before the vote's or the purge
                // point's meta record (with the commit in it).
                queued(2, 200),
                Committed(16),
                Vote,
                queued(2, 200),
                Committed(18),
                Purge(15),
            ],
        },
        RaftWorkload {
            name: "raft: snapshot install, segments purged, meta rotation",
            seed: 0x502,
            entries_segment: 4096,
            meta_segment: 512,
            sector_size: 512,
            steps: vec![
                append(5, 500),
                append(5, 500),
                Committed(8),
                Vote,
                Purge(7),
                Committed(9),
                Vote,
                Purge(15),
                append(3, 300),
                Committed(17),
                Vote,
                Reopen,
                append(2, 200),
                Truncate(19),
                append(2, 200),
                Committed(19),
                Purge(18),
            ],
        },
    ];
    workloads.extend(more_default_workloads());
    workloads
}

/// `rounds` rounds of every call: appends of entries of `len` bytes and more, a vote, a
/// committed log id, a truncate of the last entry and its replacement, a purge, and a reopen
/// every other round.
fn rounds(rounds: u64, len: usize) -> Vec<RaftStep> {
    use RaftStep::{Committed, Purge, Reopen, Truncate, Vote};
    let mut steps = Vec::new();
    for round in 0..rounds {
        let base = round * 8;
        steps.extend([
            append(3, len + 100 * (round % 4) as usize),
            Vote,
            append(5, len / 2),
            Committed(base + 6),
            Truncate(base + 7),
            append(1, 2 * len),
            Purge(base + 3),
        ]);
        if round % 2 == 1 {
            steps.push(Reopen);
        }
    }
    steps
}

/// The workloads of the default run besides [`default_workloads`]' first two: rounds with
/// 4096-byte sectors, and entries larger than the simulated write buffer (2 KiB).
fn more_default_workloads() -> Vec<RaftWorkload> {
    vec![
        RaftWorkload {
            name: "raft: six rounds of everything, 4096-byte sectors",
            seed: 0x503,
            entries_segment: 4096,
            meta_segment: 512,
            sector_size: 4096,
            steps: rounds(6, 300),
        },
        RaftWorkload {
            name: "raft: entries larger than the write buffer",
            seed: 0x504,
            entries_segment: 8192,
            meta_segment: 1024,
            sector_size: 512,
            steps: rounds(3, 1500),
        },
    ]
}

/// The extra workloads of the deep run.
pub fn deep_workloads() -> Vec<RaftWorkload> {
    vec![
        RaftWorkload {
            name: "raft: twenty rounds of everything",
            seed: 0x581,
            entries_segment: 4096,
            meta_segment: 512,
            sector_size: 512,
            steps: rounds(20, 400),
        },
        RaftWorkload {
            name: "raft: ten rounds of large entries, 4096-byte sectors",
            seed: 0x582,
            entries_segment: 16384,
            meta_segment: 256,
            sector_size: 4096,
            steps: rounds(10, 3000),
        },
    ]
}

/// The workload with this seed, in either run.
pub fn find(seed: u64) -> Option<RaftWorkload> {
    default_workloads()
        .into_iter()
        .chain(deep_workloads())
        .find(|w| w.seed == seed)
}
