//! The Walden wasm demo guest: a key-value store whose every change is a record in a Walden log
//! kept in the directory `wal/` of the preopened directory `/data`, through `walden-wasi`.
//!
//! At start it opens the log (running recovery), prints what recovery reported, replays every
//! record to rebuild the store and prints each one, then runs a seeded workload of puts,
//! deletes, gets and scans (`workload.rs`). Before each append it prints `INTENT`; after the
//! record is synced it prints `ACK`: the host holds the guest to exactly those promises. The
//! line protocol is documented in the host's `protocol.rs`.

mod args;
mod conformance;
mod fnv;
#[path = "../../limits.rs"]
mod limits;
mod storage;
mod workload;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::process::exit;
use std::time::Instant;

use walden_core::entry::encode;
use walden_core::{
    Config, Entry, EntryLimits, Fixed, Lsn, OpenError, RecoveryReport, SyncPolicy, Wal,
};
use walden_wasi::WasiError;

use crate::args::Args;
use crate::fnv::fnv1a;
use crate::limits::MAX_RECORD;
use crate::storage::DemoStorage;

/// The preopened directory the host gives the guest.
const PREOPEN: &str = "/data";
/// The log's directory below the preopen (created by the first run).
const LOG_DIR: &str = "wal";
/// Segments the log can hold at once (core's table is fixed-size).
const SEGMENTS: usize = 512;
/// Entry limits (`wasm-demo/limits.rs`, shared with the host).
const LIMITS: EntryLimits = EntryLimits {
    max_key: limits::MAX_KEY,
    max_value: limits::MAX_VALUE,
};

type Log = Wal<DemoStorage, Fixed<SEGMENTS>>;
type Store = BTreeMap<Vec<u8>, Vec<u8>>;

fn main() {
    let args = Args::parse(std::env::args().skip(1)).unwrap_or_else(|e| fail(2, &e));
    if let Some(from) = args.conformance {
        conformance::run(from);
        return;
    }
    let wasi = storage::open_log_dir(PREOPEN, LOG_DIR, args.skip_parent_sync)
        .unwrap_or_else(|e| fail(2, &e.to_string()))
        .with_write_buffer(args.write_buffer);
    let storage = DemoStorage::new(wasi, args.skip_dir_sync);
    let mut config = Config::default();
    config.segment_size = args.segment_size;
    config.max_record_size = MAX_RECORD as u32;
    config.sync_policy = SyncPolicy::Manual;
    config.early_rotation = args.early_rotation;
    // From the run's seed rather than `wasi:random`, so that a run replays byte for byte (the
    // crash loop's replay depends on it); the host gives every run its own seed.
    config.salt_seed = SplitMix64(args.seed ^ 0x5a17_5eed_0000_0000).next();

    let mut scratch = vec![0u8; 64 * 1024];
    let (mut wal, report) = Log::open(storage, config, &mut scratch).unwrap_or_else(|e| {
        line(&open_failed_line(&e));
        fail(3, &format!("open failed: {e:?}"))
    });
    line(&recovery_line(&report));
    let mut store = replay(&wal, args.quiet_dump);
    line(&format!("STATE {} {:016x}", store.len(), digest(&store)));

    match args.bench {
        Some(records) => bench(&mut wal, &args, records),
        None => workload::run(&mut wal, &mut store, &args),
    }
}

fn recovery_line(report: &RecoveryReport) -> String {
    let (cut_bytes, cut_lsn) = report
        .cut
        .map_or((0, 0), |cut| (cut.bytes, cut.first_lsn.0));
    format!(
        "RECOVERY created={} records={} segments={} first_lsn={} cut_bytes={cut_bytes} \
         cut_lsn={cut_lsn} torn_tail_cut={} rewritten_header={} trailing_garbage={}",
        report.created,
        report.records,
        report.segments,
        report.first_lsn.0,
        u8::from(report.cut.is_some()),
        u8::from(report.rewritten_header.is_some()),
        u8::from(report.trailing_garbage.is_some()),
    )
}

/// `OPENFAILED case=<case> segment=<id> offset=<offset> lsn=<lsn or 0>`: where recovery
/// refused the log, so the host can name the record.
fn open_failed_line(error: &OpenError<WasiError>) -> String {
    let (case, segment, offset, lsn) = match error {
        OpenError::Corrupted(c) => (format!("{:?}", c.case), c.segment, c.offset, c.lsn),
        OpenError::RecordTooLarge {
            segment,
            offset,
            lsn,
            ..
        } => ("RecordTooLarge".to_owned(), *segment, *offset, Some(*lsn)),
        OpenError::Storage(_) => ("Storage".to_owned(), 0, 0, None),
        _ => ("Other".to_owned(), 0, 0, None),
    };
    format!(
        "OPENFAILED case={case} segment={segment} offset={offset} lsn={}",
        lsn.map_or(0, |l| l.0)
    )
}

/// Reads every record, rebuilds the store, and prints one `REC` line per record.
fn replay(wal: &Log, quiet: bool) -> Store {
    let mut store = Store::new();
    let mut buf = vec![0u8; MAX_RECORD];
    let mut text = String::new();
    let mut reader = wal
        .reader(wal.first_lsn())
        .unwrap_or_else(|e| fail(3, &format!("reader failed: {e:?}")));
    loop {
        let record = match reader.next(&mut buf) {
            Ok(Some(record)) => record,
            Ok(None) => break,
            Err(e) => fail(3, &format!("read failed: {e:?}")),
        };
        let entry = Entry::decode(record.payload, &LIMITS)
            .unwrap_or_else(|e| fail(3, &format!("LSN {}: bad entry: {e}", record.lsn.0)));
        if !quiet {
            let _ = writeln!(text, "REC {} {}", record.lsn.0, describe(&entry));
            if text.len() > 16 * 1024 {
                raw(&text);
                text.clear();
            }
        }
        match entry {
            Entry::Put { key, value } => {
                store.insert(key.to_vec(), value.to_vec());
            }
            Entry::Delete { key } => {
                store.remove(key);
            }
        }
    }
    raw(&text);
    store
}

/// Appends `records` values of `--max-value` bytes, syncing every `--sync-every`, and reports
/// the throughput measured inside the guest.
fn bench(wal: &mut Log, args: &Args, records: u64) {
    let mut rng = SplitMix64(args.seed);
    let value: Vec<u8> = (0..args.max_value).map(|_| rng.next() as u8).collect();
    let mut scratch = vec![0u8; MAX_RECORD];
    let entry = Entry::Put {
        key: b"bench",
        value: &value,
    };
    // Encoded once, as the native side does: the loop measures the log, not postcard.
    let payload =
        encode(&entry, &mut scratch).unwrap_or_else(|e| fail(2, &format!("bench record: {e}")));
    let start = Instant::now();
    let mut syncs = 0u64;
    for i in 1..=records {
        wal.append(payload)
            .unwrap_or_else(|e| fail(4, &format!("append failed: {e:?}")));
        if i % args.sync_every == 0 {
            sync(wal);
            syncs += 1;
        }
    }
    sync(wal);
    let secs = start.elapsed().as_secs_f64();
    line(&format!(
        "BENCH records={records} payload_bytes={} syncs={syncs} secs={secs:.6}",
        payload.len()
    ));
}

pub(crate) fn sync(wal: &mut Log) -> Lsn {
    wal.sync()
        .unwrap_or_else(|e| fail(4, &format!("sync failed: {e:?}")))
}

pub(crate) fn describe(entry: &Entry<'_>) -> String {
    match entry {
        Entry::Put { key, value } => {
            format!("put {} {:016x}", String::from_utf8_lossy(key), fnv1a(value))
        }
        Entry::Delete { key } => format!("del {}", String::from_utf8_lossy(key)),
    }
}

/// Digest of the store: FNV-1a over `key '=' hash(value) '\n'` in key order (the host computes
/// the same from the records it was told about).
fn digest(store: &Store) -> u64 {
    let mut text = String::new();
    for (key, value) in store {
        let _ = writeln!(
            text,
            "{}={:016x}",
            String::from_utf8_lossy(key),
            fnv1a(value)
        );
    }
    fnv1a(text.as_bytes())
}

/// Prints one protocol line with a single write, so a crash cannot leave half of it.
pub(crate) fn line(text: &str) {
    raw(&format!("{text}\n"));
}

fn raw(text: &str) {
    let mut out = std::io::stdout().lock();
    if out
        .write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .is_err()
    {
        exit(5);
    }
}

pub(crate) fn fail(code: i32, message: &str) -> ! {
    eprintln!("walden-demo-guest: {message}");
    exit(code)
}

/// SplitMix64, for a workload that replays from its seed.
pub(crate) struct SplitMix64(pub(crate) u64);

impl SplitMix64 {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}
