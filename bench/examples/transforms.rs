//! What compression and encryption at rest cost (format version 3): appends and reads of one
//! log per option (plain, compressed, encrypted, both) on compressible and incompressible
//! payloads, in records/s and MB/s of *appended* payload. Writes are not synced (the cost of
//! the transforms, not of the disk), reads go through `read_all_from`.
//!
//! ```text
//! cargo run --release -p walden-bench --example transforms -- [seconds per case] [dir]
//! ```
//!
//! Not part of the default `walden-bench` run: a separate, optional case group. Nothing here
//! asserts a speed.

use core::time::Duration;
use std::time::Instant;

use walden_std::{Config, Keyring, Lsn, Options, SyncPolicy, Wal};

/// Text-like payload: words from a small vocabulary (LZ4 shrinks it to about a third).
fn compressible(i: u64, len: usize) -> Vec<u8> {
    const WORDS: [&str; 8] = [
        "ledger ",
        "entry ",
        "commit ",
        "balance ",
        "account ",
        "transfer ",
        "42 ",
        "id=",
    ];
    let mut x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(WORDS[(x % 8) as usize].as_bytes());
    }
    out.truncate(len);
    out
}

/// Random bytes: nothing to compress.
fn incompressible(i: u64, len: usize) -> Vec<u8> {
    let mut x = i.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A payload kind: its name and generator.
type Payload = (&'static str, fn(u64, usize) -> Vec<u8>);

struct Row {
    option: &'static str,
    payload: &'static str,
    size: usize,
    append_rps: f64,
    append_mbs: f64,
    read_mbs: f64,
    disk_ratio: f64,
}

fn case(
    dir: &std::path::Path,
    option: &'static str,
    payload: Payload,
    size: usize,
    seconds: f64,
) -> Row {
    let log = tempfile::tempdir_in(dir).expect("tempdir");
    let compress = option.contains("compress");
    let config = Config::default()
        .with_segment_size(64 << 20)
        .with_compress_threshold(if compress { 4096 } else { 0 });
    let mut options = Options::from(config).with_sync_policy(SyncPolicy::Manual);
    if option.contains("encrypt") {
        let mut keys = Keyring::new();
        keys.add_current(&[0x5a; 32]).expect("key");
        options = options.with_keys(Box::leak(Box::new(keys)));
    }
    let records: Vec<Vec<u8>> = (0..64).map(|i| (payload.1)(i, size)).collect();
    let (mut wal, _) = Wal::open(log.path(), options).expect("open");
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs_f64(seconds) || n < 64 {
        wal.append(&records[(n % 64) as usize]).expect("append");
        n += 1;
    }
    wal.sync().expect("sync");
    let took = start.elapsed().as_secs_f64();
    let bytes = n as f64 * size as f64;
    let start = Instant::now();
    let back = wal.read_all_from(Lsn(1)).expect("read");
    let read_took = start.elapsed().as_secs_f64();
    assert_eq!(back.len() as u64, n);
    let on_disk: u64 = wal.segments().iter().map(|s| s.end).sum();
    Row {
        option,
        payload: payload.0,
        size,
        append_rps: n as f64 / took,
        append_mbs: bytes / took / 1e6,
        read_mbs: bytes / read_took / 1e6,
        disk_ratio: on_disk as f64 / bytes,
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let seconds: f64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(1.0);
    let dir = args
        .next()
        .map_or_else(|| std::path::PathBuf::from("."), Into::into);
    let mut rows = Vec::new();
    for size in [4096usize, 65536] {
        let payloads: [Payload; 2] = [
            ("compressible", compressible),
            ("incompressible", incompressible),
        ];
        for payload in payloads {
            for option in ["plain", "compress", "encrypt", "compress+encrypt"] {
                eprintln!("{option} {} {size}", payload.0);
                rows.push(case(&dir, option, payload, size, seconds));
            }
        }
    }
    println!(
        "| option | payload | record | appends/s | append MB/s | read MB/s | on disk ÷ appended |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {} | {} KiB | {:.0} | {:.0} | {:.0} | {:.2} |",
            r.option,
            r.payload,
            r.size / 1024,
            r.append_rps,
            r.append_mbs,
            r.read_mbs,
            r.disk_ratio
        );
    }
}
