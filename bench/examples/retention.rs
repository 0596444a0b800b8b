//! Retention under load: how long `truncate_front` holds the log, and what the appends beside
//! it see.
//!
//! ```text
//! cargo run --release -p walden-bench --example retention -- [rounds] [dir]
//! ```
//!
//! One thread appends 1 KiB records in batches of 64 with a sync per batch (default segments,
//! 64 MiB) while another, every time the log has four segments more than it keeps, drops the
//! oldest with `truncate_front`. Prints each `truncate_front`'s duration (it holds the log lock
//! throughout) and the batches' p50, p99, p999 and maximum, so a removal that waits for the
//! file system (ext4 mounted with `discard` frees a removed file's blocks at its last close,
//! 13-16 ms per 64 MiB segment on the project's VM) shows in both.

use core::{
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};
use std::{path::Path, sync::Arc, time::Instant};

use walden_std::{Lsn, Options, SharedWal, SyncPolicy};

const BATCH: usize = 64;
const RECORD: usize = 1024;
const SEGMENTS_KEPT: u64 = 2;
const SEGMENT_RECORDS: u64 = (64 << 20) / (RECORD as u64 + 32);

fn round(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    let o = Options::default().with_sync_policy(SyncPolicy::Manual);
    let wal = SharedWal::open(dir, o).unwrap().0;
    let done = Arc::new(AtomicBool::new(false));
    let truncator = {
        let (wal, done) = (wal.clone(), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut took = Vec::new();
            while !done.load(Ordering::Relaxed) {
                let (first, last) = (wal.first_lsn().0, wal.last_lsn().0);
                if last.saturating_sub(first) > (SEGMENTS_KEPT + 4) * SEGMENT_RECORDS {
                    let t = Instant::now();
                    let removed = wal
                        .truncate_front(Lsn(last - SEGMENTS_KEPT * SEGMENT_RECORDS))
                        .unwrap();
                    took.push((t.elapsed(), removed));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            took
        })
    };
    let payload = vec![7u8; RECORD];
    let batch: Vec<&[u8]> = (0..BATCH).map(|_| &payload[..]).collect();
    let mut lat = Vec::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(8) {
        let t = Instant::now();
        let a = wal.append_batch(&batch).unwrap();
        wal.wait_durable(a.last).unwrap();
        lat.push(t.elapsed());
    }
    done.store(true, Ordering::Relaxed);
    let took = truncator.join().unwrap();
    lat.sort();
    let q = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    let mb = (lat.len() * BATCH * RECORD) as f64 / start.elapsed().as_secs_f64() / 1e6;
    println!(
        "batches {} ({mb:.0} MB/s): p50 {:?} p99 {:?} p999 {:?} max {:?}",
        lat.len(),
        q(0.5),
        q(0.99),
        q(0.999),
        lat[lat.len() - 1]
    );
    let each: Vec<String> = took
        .iter()
        .map(|(d, n)| format!("{n} in {:.1} ms", d.as_secs_f64() * 1e3))
        .collect();
    println!("truncate_front: {}", each.join(", "));
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rounds: usize = args.get(1).map_or(3, |s| s.parse().unwrap());
    let dir = args
        .get(2)
        .map_or_else(|| std::env::temp_dir().join("walden-retention"), Into::into);
    for _ in 0..rounds {
        round(&dir);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
