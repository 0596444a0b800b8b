//! The workloads the explorer runs: the default set, the deeper set, and the media-fault set.
//! Every workload has its own seed, so a [`CaseId`](walden_sim::CaseId) names its workload.

use walden_core::{Config, SyncPolicy};

use super::workload::{Step, Workload};

fn config(policy: SyncPolicy, segment_size: u64) -> Config {
    let mut config = Config::default()
        .with_sync_policy(policy)
        .with_segment_size(segment_size)
        .with_max_record_size(64 * 1024);
    config.max_batch_size = 256 * 1024;
    config
}

fn workload(
    name: &'static str,
    seed: u64,
    config: Config,
    sector_size: u32,
    steps: Vec<Step>,
) -> Workload {
    Workload {
        name,
        seed,
        config,
        sector_size,
        garbage_holes: false,
        steps,
    }
}

fn appends(lens: &[usize]) -> Vec<Step> {
    lens.iter().map(|len| Step::Append(*len)).collect()
}

const ALWAYS: SyncPolicy = SyncPolicy::Always;
const MANUAL: SyncPolicy = SyncPolicy::Manual;
const BIG: u64 = 1 << 20;

/// The workloads of the default run.
pub fn default_workloads() -> Vec<Workload> {
    use Step::{Append, Batch, Reopen, Sync, TruncateBack, TruncateFront};
    vec![
        workload(
            "small records, sync each",
            0x101,
            config(ALWAYS, BIG),
            512,
            appends(&[20, 0, 57, 100, 3, 64, 31, 90, 12, 45]),
        ),
        workload(
            "straddle 512-byte sectors",
            0x102,
            config(ALWAYS, BIG),
            512,
            appends(&[400, 600, 1000, 30, 512, 200, 700]),
        ),
        workload(
            "straddle 4096-byte sectors",
            0x103,
            config(ALWAYS, BIG),
            4096,
            appends(&[3000, 5000, 100, 4100, 60]),
        ),
        workload(
            "rotation, small segments",
            0x104,
            config(ALWAYS, 400),
            512,
            appends(&[100, 150, 90, 200, 40, 300, 10, 120, 80, 500, 30]),
        ),
        workload(
            "atomic batches",
            0x105,
            config(ALWAYS, 1200),
            512,
            vec![
                Batch(vec![40, 300, 10]),
                Append(50),
                Batch(vec![500, 200]),
                Batch(vec![0, 0, 0, 0]),
                Batch(vec![300, 300, 300]),
                Append(20),
            ],
        ),
        workload(
            "retention (truncate_front)",
            0x106,
            config(ALWAYS, 300),
            512,
            vec![
                Append(100),
                Append(100),
                Append(100),
                Append(100),
                TruncateFront(3),
                Append(100),
                Append(100),
                TruncateFront(6),
                Append(50),
                TruncateFront(100),
                Append(60),
            ],
        ),
        workload(
            "rewind (truncate_back)",
            0x107,
            config(ALWAYS, 500),
            512,
            vec![
                Append(100),
                Append(100),
                Append(100),
                Append(100),
                Append(100),
                TruncateBack(3),
                Append(100),
                Append(40),
                Batch(vec![30, 30]),
                TruncateBack(5),
                TruncateBack(1),
                Append(100),
                Append(100),
            ],
        ),
        workload(
            "reopen midway (manual)",
            0x108,
            config(MANUAL, 1000),
            512,
            vec![
                Append(60),
                Append(70),
                Sync,
                Append(80),
                Append(90),
                Reopen,
                Append(40),
                Sync,
                Append(300),
                Reopen,
                Append(20),
                Sync,
            ],
        ),
        workload(
            "manual sync, runs of 4",
            0x109,
            config(MANUAL, 2000),
            512,
            vec![
                Append(60),
                Append(200),
                Append(20),
                Append(300),
                Sync,
                Append(100),
                Batch(vec![50, 50]),
                Append(10),
                Sync,
                Append(400),
                Append(5),
                Sync,
            ],
        ),
        workload(
            "every 3 records, rotating",
            0x10a,
            config(SyncPolicy::EveryRecords(3), 600),
            512,
            vec![
                Append(100),
                Append(100),
                Append(100),
                Append(100),
                Batch(vec![60, 60]),
                Append(100),
                Append(200),
                Append(200),
                Sync,
                Append(30),
            ],
        ),
        Workload {
            garbage_holes: true,
            ..workload(
                "garbage holes (media)",
                0x10b,
                config(ALWAYS, 700),
                512,
                appends(&[100, 600, 20, 300, 50, 200]),
            )
        },
        workload(
            "manual, rotate and rewind",
            0x10c,
            config(MANUAL, 500),
            512,
            vec![
                Append(150),
                Append(150),
                Append(150),
                Append(150),
                Sync,
                TruncateBack(2),
                Append(150),
                Append(150),
                Sync,
                TruncateFront(3),
                Append(20),
                Sync,
            ],
        ),
        workload(
            "manual, runs of 6 across sectors",
            0x10d,
            config(MANUAL, 5000),
            512,
            vec![
                Append(100),
                Append(450),
                Append(30),
                Append(700),
                Append(12),
                Append(260),
                Sync,
                Append(511),
                Append(1),
                Append(513),
                Batch(vec![90, 90, 90]),
                Sync,
            ],
        ),
        // Early rotation (docs/FORMAT.md, "Early successors"): segments rotate with unsynced
        // records in them, several deep, before a sync makes them durable; a crash anywhere
        // must lose nothing acknowledged and open as a torn tail at worst.
        workload(
            "early rotation, manual",
            0x111,
            config(MANUAL, 300).with_early_rotation(true),
            512,
            vec![
                Append(100),
                Append(150),
                Append(90),
                Sync,
                Append(200),
                Append(120),
                Reopen,
                Append(80),
                TruncateBack(4),
                TruncateFront(2),
                Append(60),
                Sync,
            ],
        ),
        workload(
            "early rotation, every 3 records",
            0x112,
            config(SyncPolicy::EveryRecords(3), 300).with_early_rotation(true),
            512,
            appends(&[100, 150, 90, 200, 40]),
        ),
        workload(
            "manual batches, rotating",
            0x10e,
            config(MANUAL, 1500),
            512,
            vec![
                Batch(vec![200, 10, 300]),
                Append(40),
                Batch(vec![64, 64]),
                Sync,
                Batch(vec![500, 500]),
                Append(77),
                Batch(vec![5, 5, 5, 5, 5]),
                Sync,
                TruncateBack(6),
                Append(300),
                Append(300),
                Sync,
            ],
        ),
        workload(
            "every 4 records, 4096 sectors",
            0x10f,
            config(SyncPolicy::EveryRecords(4), 12_000),
            4096,
            vec![
                Append(1000),
                Append(3000),
                Append(200),
                Append(5000),
                Append(100),
                Append(4000),
                Append(900),
                Append(10),
                Append(2500),
                Sync,
            ],
        ),
    ]
}

/// The extra workloads of the deep run (`WALDEN_EXPLORE_DEEP=1`): longer, larger, more
/// unsynced writes at once.
pub fn deep_workloads() -> Vec<Workload> {
    use Step::{Append, Batch, Sync, TruncateBack, TruncateFront};
    let mut long = Vec::new();
    for i in 0..40usize {
        long.push(Append(17 + (i * 97) % 900));
        if i % 7 == 6 {
            long.push(Batch(vec![i * 3, 40, 512]));
        }
        if i % 11 == 10 {
            long.push(TruncateFront((i / 2) as u64));
        }
    }
    let mut manual = Vec::new();
    for i in 0..30usize {
        manual.push(Append(30 + (i * 131) % 1500));
        if i % 6 == 5 {
            manual.push(Sync);
        }
        if i == 20 {
            manual.push(TruncateBack(12));
        }
    }
    manual.push(Sync);
    vec![
        workload(
            "deep: long, rotating",
            0x201,
            config(ALWAYS, 2500),
            512,
            long,
        ),
        workload(
            "deep: manual, large runs",
            0x202,
            config(MANUAL, 6000),
            512,
            manual.clone(),
        ),
        workload(
            "deep: manual, 4096 sectors",
            0x203,
            config(MANUAL, 9000),
            4096,
            manual,
        ),
        workload(
            "deep: big records",
            0x204,
            config(ALWAYS, 40_000),
            4096,
            appends(&[9000, 20_000, 4095, 4097, 12_000, 1]),
        ),
    ]
}

/// Workloads for media faults: every record acknowledged one by one, or in batches, across
/// sealed segments.
pub fn media_workloads() -> Vec<Workload> {
    use Step::{Append, Batch, Sync};
    vec![
        workload(
            "media: sync each, rotating",
            0x301,
            config(ALWAYS, 500),
            512,
            appends(&[100, 40, 200, 0, 150, 90, 300, 30, 64]),
        ),
        workload(
            "media: batches and runs",
            0x302,
            config(MANUAL, 900),
            512,
            vec![
                Append(80),
                Append(80),
                Sync,
                Batch(vec![100, 50, 30]),
                Sync,
                Append(200),
                Append(60),
                Append(10),
                Sync,
                Append(300),
                Sync,
            ],
        ),
    ]
}

/// Every workload, by seed.
pub fn find(seed: u64) -> Option<Workload> {
    default_workloads()
        .into_iter()
        .chain(deep_workloads())
        .chain(media_workloads())
        .find(|w| w.seed == seed)
}
