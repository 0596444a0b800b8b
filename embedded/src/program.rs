//! The size-budget program: the sequence `docs/EMBEDDED.md` measures, over a RAM `Storage`.

use walden_core::{Config, ConfigError, Fixed, Lsn, RecoveryPolicy, SyncPolicy, Wal};

use crate::Summary;
use crate::ram::{RamStorage, SEGMENT};
use crate::stack;

/// The segment table: 8 segments.
type Log<'a> = Wal<&'a mut RamStorage, Fixed<8>>;

/// A sealed segment ends with a 48-byte seal after `segment_size` bytes at most.
const CONFIG: Config = Config::small_device(SEGMENT as u64 - 48)
    .with_sync_policy(SyncPolicy::Manual)
    .with_salt_seed(0x5eed);
const _: () = assert!(CONFIG.validate().is_ok());
// Built without walden-core's `salvage` feature: the policy that needs it is refused.
const _: () = assert!(matches!(
    CONFIG.with_recovery(RecoveryPolicy::Salvage).validate(),
    Err(ConfigError::SalvageNotBuiltIn)
));
// Nor with `early-rotation`: a rotation here always syncs the old segment first.
const _: () = assert!(matches!(
    CONFIG.with_early_rotation(true).validate(),
    Err(ConfigError::EarlyRotationNotBuiltIn)
));

fn payload(i: u64) -> [u8; 16] {
    let mut p = [i as u8; 16];
    p[..8].copy_from_slice(&i.to_le_bytes());
    p
}

/// Drops the segments below LSN 45: how many went.
#[cfg(feature = "start-slots")]
fn truncate_front(wal: &mut Log<'_>) -> Result<usize, &'static str> {
    wal.truncate_front(Lsn(45))
        .map_err(|_| "truncate_front failed")
}

/// Without walden-core's start slots `truncate_front` is not built in: it must say so, with
/// its typed error, and drop nothing.
#[cfg(not(feature = "start-slots"))]
fn truncate_front(wal: &mut Log<'_>) -> Result<usize, &'static str> {
    match wal.truncate_front(Lsn(45)) {
        Err(walden_core::TruncateError::NotBuiltIn) => Ok(0),
        _ => Err("truncate_front should not be built in"),
    }
}

pub fn run() -> Result<Summary, &'static str> {
    let storage = cortex_m::singleton!(: RamStorage = RamStorage::new()).ok_or("storage taken")?;
    let mut scratch = [0u8; 256];
    let (mut wal, _) = Log::open(storage, CONFIG, &mut scratch).map_err(|_| "open failed")?;
    for i in 1..=50 {
        wal.append(&payload(i)).map_err(|_| "append failed")?;
    }
    let batch = [payload(51), payload(52), payload(53)];
    wal.append_batch(&[&batch[0], &batch[1], &batch[2]])
        .map_err(|_| "batch failed")?;
    wal.sync().map_err(|_| "sync failed")?;
    let storage = wal.into_storage();

    let (opened, open_stack) = stack::measure(|| Log::open(storage, CONFIG, &mut scratch));
    let (mut wal, report) = opened.map_err(|_| "reopen failed")?;
    let mut buf = [0u8; 16];
    let mut read_back = 0;
    let mut reader = wal.reader(Lsn(1)).map_err(|_| "reader failed")?;
    while let Some(record) = reader.next(&mut buf).map_err(|_| "read failed")? {
        if record.payload != payload(record.lsn.0) {
            return Err("a record read back wrong");
        }
        read_back += 1;
    }
    let removed = truncate_front(&mut wal)?;
    Ok(Summary {
        appended: 53,
        recovered: report.records,
        read_back,
        removed: removed as u64,
        open_stack: open_stack as u64,
    })
}
