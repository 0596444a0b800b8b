//! The workloads the files explorer runs over walden-std. Every workload has its own seed (in
//! the 0x4xx range, apart from the core explorer's), so a case names its workload.
//!
//! Segments are 4-8 KiB and [`SIM_TUNING`](walden_std::SIM_TUNING) scales walden-std's sizes
//! to match: a 2 KiB write buffer, a 1 KiB zero-fill head start, 1 KiB fill chunks synced
//! every 2 KiB. So the paths a 64 MiB segment takes on disk are taken here within a few
//! records.

use walden_core::{Config, SyncPolicy};
use walden_std::Background;

use super::workload::{FileStep, FileWorkload, Handle};

fn config(policy: SyncPolicy, segment_size: u64) -> Config {
    let mut config = Config::default()
        .with_sync_policy(policy)
        .with_segment_size(segment_size)
        .with_max_record_size(16 * 1024);
    config.max_batch_size = 64 * 1024;
    config
}

fn appends(lens: &[usize]) -> Vec<FileStep> {
    lens.iter().map(|len| FileStep::Append(*len)).collect()
}

const ALWAYS: SyncPolicy = SyncPolicy::Always;
const MANUAL: SyncPolicy = SyncPolicy::Manual;

/// The workloads of the default run.
pub fn default_workloads() -> Vec<FileWorkload> {
    use FileStep::{
        Append, Background as Run, Batch, HoldDetachedSync, Kill, Reopen, Restore, RunHeldSync,
        Save, Sync, TruncateBack, TruncateFront,
    };
    vec![
        FileWorkload::new(
            "wal: rotation onto ready spares",
            0x401,
            config(ALWAYS, 4096),
            appends(&[300, 700, 500, 900, 400, 800, 600, 300, 1000, 200, 700, 500]),
        ),
        FileWorkload {
            background: Background::Deferred,
            ..FileWorkload::new(
                "wal: spares not ready, fill behind the writer",
                0x402,
                config(ALWAYS, 4096),
                vec![
                    Append(300),
                    Append(900),
                    Run(2),
                    Append(700),
                    Append(1200),
                    Append(400),
                    Run(8),
                    Append(500),
                    Append(1500),
                    Append(100),
                ],
            )
        },
        FileWorkload::new(
            "wal: write buffer, manual syncs",
            0x403,
            config(MANUAL, 8192),
            vec![
                Append(400),
                Append(700),
                Append(300),
                Append(900),
                Sync,
                Append(1500),
                Batch(vec![200, 600]),
                Append(100),
                Sync,
                Append(2500),
                Append(50),
                Sync,
            ],
        ),
        FileWorkload::new(
            "wal: retention and rewinds",
            0x404,
            config(ALWAYS, 4096),
            vec![
                Append(1500),
                Append(1500),
                Append(1500),
                Append(1500),
                Append(1500),
                TruncateFront(3),
                TruncateBack(2),
                Append(800),
                Append(1900),
                Append(300),
                TruncateBack(4),
                Append(600),
            ],
        ),
        FileWorkload {
            encrypted: true,
            ..FileWorkload::new(
                "wal: encrypted and compressed, rewinds, kills and reopens",
                0x420,
                config(MANUAL, 4096),
                vec![
                    Append(300),
                    Append(1200),
                    Batch(vec![200, 900, 100]),
                    Sync,
                    TruncateBack(3),
                    Append(1500),
                    Append(400),
                    Kill,
                    Append(2000),
                    Sync,
                    Reopen,
                    Append(700),
                    Sync,
                ],
            )
        },
        FileWorkload::new(
            "wal: reopen and kill",
            0x405,
            config(MANUAL, 4096),
            vec![
                Append(600),
                Append(900),
                Sync,
                Append(700),
                Reopen,
                Append(1100),
                Append(500),
                Kill,
                Append(800),
                Sync,
                Append(300),
                Kill,
                Append(200),
                Sync,
            ],
        ),
        FileWorkload {
            handle: Handle::Shared(SyncPolicy::Always),
            open_threads: 2,
            ..FileWorkload::new(
                "shared: group commit, rotation, rewind",
                0x406,
                config(MANUAL, 4096),
                vec![
                    Append(500),
                    Batch(vec![300, 900]),
                    Append(1200),
                    Append(600),
                    Append(1000),
                    TruncateBack(4),
                    Append(700),
                    Kill,
                    Append(400),
                    Append(1300),
                ],
            )
        },
        FileWorkload {
            background: Background::Deferred,
            ..FileWorkload::new(
                "wal: rotations before the spare is ready",
                0x409,
                config(ALWAYS, 4096),
                vec![
                    Append(900),
                    Append(1100),
                    Append(800),
                    Append(1300),
                    Append(700),
                    Append(1500),
                    Append(900),
                    Run(40),
                    Append(1000),
                    Append(1200),
                    Append(1800),
                ],
            )
        },
        FileWorkload {
            sector_size: 4096,
            ..FileWorkload::new(
                "wal: 4096-byte sectors, records larger than the buffer",
                0x40a,
                config(SyncPolicy::EveryRecords(2), 16384),
                vec![
                    Append(3000),
                    Append(5000),
                    Append(200),
                    Append(4100),
                    Append(6000),
                    Append(100),
                    Sync,
                    Append(2500),
                ],
            )
        },
        FileWorkload::new(
            // Two syncs (the new header's, the seal's) per 4 KiB segment is more bytes per
            // sync than SIM_TUNING's zero-fill threshold: after the first rotation the log
            // judges itself a bulk writer and its spares are preallocated, not zero-filled.
            "wal: bulk writes, spares not zero-filled",
            0x40b,
            config(MANUAL, 4096),
            vec![
                Append(1700),
                Append(1900),
                Append(1600),
                Append(1800),
                Append(1500),
                Sync,
                Append(1900),
                Append(1700),
                Append(1800),
            ],
        ),
        FileWorkload {
            preallocate: false,
            ..FileWorkload::new(
                "wal: no preallocation",
                0x407,
                config(ALWAYS, 4096),
                appends(&[900, 1100, 700, 1500, 300, 1200]),
            )
        },
        FileWorkload {
            handle: Handle::Shared(SyncPolicy::EveryBytes(1500)),
            background: Background::Deferred,
            ..FileWorkload::new(
                "shared: every 1500 bytes, deferred background",
                0x408,
                config(MANUAL, 4096),
                vec![
                    Append(400),
                    Append(400),
                    Append(900),
                    Run(3),
                    Append(1200),
                    Append(200),
                    Sync,
                    Append(1800),
                    Run(6),
                    Append(300),
                    TruncateFront(4),
                    Sync,
                ],
            )
        },
        // Early rotation (docs/FORMAT.md, "Early successors"): segments rotate with unsynced
        // records in them; a sync makes them durable, oldest first, before the active one.
        FileWorkload::new(
            "wal: early rotation, manual syncs, kill",
            0x40c,
            config(MANUAL, 4096).with_early_rotation(true),
            vec![
                Append(1500),
                Append(1500),
                Append(1500),
                Append(900),
                Append(1500),
                Sync,
                Append(1700),
                Append(1500),
                Kill,
                Append(1200),
                Sync,
                TruncateBack(7),
                Append(800),
                Sync,
            ],
        ),
        FileWorkload {
            handle: Handle::Shared(SyncPolicy::EveryBytes(4000)),
            ..FileWorkload::new(
                "shared: early rotation, every 4000 bytes",
                0x40d,
                config(MANUAL, 4096).with_early_rotation(true),
                vec![
                    Append(1500),
                    Append(1500),
                    Append(1500),
                    Append(1500),
                    Append(900),
                    Append(1800),
                    TruncateFront(3),
                    Append(600),
                    Sync,
                ],
            )
        },
        // `Tuning::max_prepared` below the segment size (as a huge `segment_size` meets the
        // 1 GiB default on a server): reservations and spares cover only the first 1536
        // bytes of a 4 KiB segment, so every segment grows past its reservation (its length
        // changes with each write there) and rotations link spares shorter than a segment.
        FileWorkload {
            tuning: {
                let mut tuning = walden_std::SIM_TUNING;
                tuning.max_prepared = 1536;
                tuning
            },
            ..FileWorkload::new(
                "wal: reservations capped below the segment size",
                0x40e,
                config(SyncPolicy::EveryRecords(2), 4096),
                vec![
                    Append(700),
                    Append(900),
                    Append(1200),
                    Append(800),
                    Append(1500),
                    Sync,
                    Append(1100),
                    Kill,
                    Append(1300),
                    Append(600),
                    Sync,
                ],
            )
        },
        // Zeros made by the file system (`Tuning::write_zeroes`, `FsFile::write_zeroes`), as on
        // a device that zeroes by unmapping: the first segment's rest, every spare and, after
        // the kill, the reopened active segment's rest are zeroed in one call each, with no
        // fill in the background.
        FileWorkload {
            tuning: {
                let mut tuning = walden_std::SIM_TUNING;
                tuning.write_zeroes = true;
                tuning
            },
            ..FileWorkload::new(
                "wal: zeros offloaded to the file system",
                0x40f,
                config(SyncPolicy::EveryRecords(2), 4096),
                vec![
                    Append(700),
                    Append(900),
                    Append(1200),
                    Append(800),
                    Append(1500),
                    Sync,
                    Append(300),
                    Kill,
                    Append(1300),
                    Append(600),
                    TruncateFront(3),
                    Sync,
                ],
            )
        },
        // A group-commit leader's detached sync in flight across a rotation. With one thread a
        // leader's job always finishes before the next append, so no seal is ever written
        // while one is in flight; here the leader's sync is split in two (`HoldDetachedSync`:
        // `begin_sync` and the job handed out; `RunHeldSync`: the job's `fdatasync`, then
        // `finish_sync` and the durable LSN published) with appends between that rotate with
        // early rotation. The sealed segment had its records synced (the `Sync`, and the held
        // job too), so its seal would start an early sync, which must not run beside the leader's
        // `fdatasync` of the same file description: an early sync that took the fsyncgate
        // error would leave the leader an `Ok` for records the disk never got. The queued
        // jobs run (`Run`) before the held one, so such an early sync would come first, and
        // the failed-syncs pass fails each sync in turn. Then the core's sync of the pending
        // segment (which syncs the seal the guard left unsynced).
        FileWorkload {
            handle: Handle::Shared(SyncPolicy::Manual),
            ..FileWorkload::new(
                "shared: a detached sync in flight across a rotation",
                0x411,
                config(MANUAL, 4096).with_early_rotation(true),
                vec![
                    Append(1600),
                    Sync,
                    Append(300),
                    HoldDetachedSync,
                    Append(2200),
                    Run(8),
                    RunHeldSync,
                    Sync,
                ],
            )
        },
        // A stale segment file. No crash of walden-std's own protocol leaves one: an
        // interrupted `truncate_front` leaves its oldest segments as a run of ids up to the
        // recorded start (it removes them oldest first, a directory sync after each), which
        // the open keeps as the log's front. So a backup of the first segment is restored
        // (`Restore`) after the log removed it and the one after it: below a gap under the
        // start, which every open leaves out of the log and reports as stale, and whose
        // records a replay (`open_replaying`) must not hand over. Every crash state from the
        // restore on holds the copy, whole, torn or as an empty name.
        FileWorkload::new(
            "wal: a restored copy below the log's start",
            0x410,
            config(ALWAYS, 4096),
            vec![
                Append(1500),
                Append(1500),
                Append(1500),
                Append(1500),
                Append(1500),
                Save(0),
                Append(1500),
                Append(700),
                TruncateFront(5),
                Restore,
                Append(900),
                Kill,
                Append(1200),
                TruncateFront(7),
                Sync,
            ],
        ),
    ]
}

/// The extra workloads of the deep run (`WALDEN_EXPLORE_DEEP=1`).
pub fn deep_workloads() -> Vec<FileWorkload> {
    use FileStep::{Append, Background as Run, Kill, Sync, TruncateBack, TruncateFront};
    let mut long = Vec::new();
    for i in 0..30usize {
        long.push(Append(100 + (i * 377) % 1800));
        if i % 5 == 4 {
            long.push(Sync);
        }
        if i % 9 == 8 {
            long.push(Run(3));
        }
        if i == 14 {
            long.push(TruncateBack(10));
        }
        if i == 20 {
            long.push(Kill);
        }
        if i == 25 {
            long.push(TruncateFront(12));
        }
    }
    long.push(Sync);
    vec![
        FileWorkload {
            background: Background::Deferred,
            ..FileWorkload::new(
                "deep: long, manual",
                0x501,
                config(MANUAL, 8192),
                long.clone(),
            )
        },
        FileWorkload {
            handle: Handle::Shared(SyncPolicy::Always),
            open_threads: 2,
            ..FileWorkload::new("deep: long, shared", 0x502, config(MANUAL, 8192), long)
        },
    ]
}

/// Every workload, by seed.
pub fn find(seed: u64) -> Option<FileWorkload> {
    default_workloads()
        .into_iter()
        .chain(deep_workloads())
        .find(|w| w.seed == seed)
}
