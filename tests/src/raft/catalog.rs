//! The workloads of the raft store's explorer (seeds in the 0x5xx range, apart from the other
//! explorers'). Entries segments are 4 KiB and meta segments 512 bytes to 1 KiB, so that a
//! few entries rotate the entries log, purges remove whole segments, and the meta log rotates
//! and is compacted.

use super::workload::{RaftStep, RaftWorkload};

fn append(count: u64, len: usize) -> RaftStep {
    RaftStep::Append { count, len }
}

/// The workloads of the default run.
pub fn default_workloads() -> Vec<RaftWorkload> {
    use RaftStep::{Committed, Purge, Reopen, Truncate, Vote};
    vec![
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
    ]
}

/// The extra workloads of the deep run.
pub fn deep_workloads() -> Vec<RaftWorkload> {
    use RaftStep::{Committed, Purge, Reopen, Truncate, Vote};
    let mut steps = Vec::new();
    for round in 0..6u64 {
        let base = round * 8;
        steps.extend([
            append(3, 300 + 100 * round as usize),
            Vote,
            append(5, 250),
            Committed(base + 6),
            Truncate(base + 7),
            append(1, 600),
            Purge(base + 3),
        ]);
        if round % 2 == 1 {
            steps.push(Reopen);
        }
    }
    vec![RaftWorkload {
        name: "raft: six rounds of everything, 4096-byte sectors",
        seed: 0x581,
        entries_segment: 4096,
        meta_segment: 512,
        sector_size: 4096,
        steps,
    }]
}

/// The workload with this seed, in either run.
pub fn find(seed: u64) -> Option<RaftWorkload> {
    default_workloads()
        .into_iter()
        .chain(deep_workloads())
        .find(|w| w.seed == seed)
}
