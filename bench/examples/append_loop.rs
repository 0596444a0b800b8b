//! The cost of one small append without a sync, with no clock read per append: the suite's
//! rows and the `bulk` example time every append, which on a VM costs about as much as a
//! Walden append itself and blurs a change of a few nanoseconds.
//!
//! ```text
//! cargo run --release -p walden-bench --example append_loop -- [dir] [walden|baseline] [records]
//! ```
//!
//! Appends `records` (default 4 Mi) 128-byte records through one `SharedWal` handle
//! (`SyncPolicy::Manual`, default segments) or through the suite's naive baseline (a mutex
//! around a 1 MiB `BufWriter`, an 8-byte header with a CRC-32, an offset kept per record), in a
//! fresh directory under `dir` (default `.`), and prints millions of records per second and the
//! user and system CPU time the appends took (before the directory is removed). Run two builds
//! alternately, several times each: the page cache makes single runs vary.

use std::{io::Write, path::PathBuf, sync::Mutex, time::Instant};

use walden_std::{Options, SharedWal, SyncPolicy};

fn main() {
    let mut args = std::env::args().skip(1);
    let base = PathBuf::from(args.next().unwrap_or_else(|| ".".into()));
    let which = args.next().unwrap_or_else(|| "walden".into());
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(4 << 20);
    let record = vec![7u8; 128];
    let dir = tempfile::tempdir_in(&base).expect("a directory under the given one");
    let started;
    let cpu_before;
    if which == "baseline" {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.path().join("baseline.log"))
            .expect("create");
        let log = Mutex::new((
            std::io::BufWriter::with_capacity(1 << 20, file),
            Vec::new(),
            0,
        ));
        cpu_before = cpu();
        started = Instant::now();
        for _ in 0..n {
            let mut log = log.lock().expect("lock");
            let mut header = [0u8; 8];
            header[..4].copy_from_slice(&(record.len() as u32).to_le_bytes());
            header[4..].copy_from_slice(&crc32fast::hash(&record).to_le_bytes());
            log.0.write_all(&header).expect("write");
            log.0.write_all(&record).expect("write");
            let end: u64 = log.2;
            log.1.push(end);
            log.2 = end + 8 + record.len() as u64;
        }
    } else {
        let options = Options::default().with_sync_policy(SyncPolicy::Manual);
        let (wal, _) = SharedWal::open(dir.path(), options).expect("open");
        cpu_before = cpu();
        started = Instant::now();
        for _ in 0..n {
            let _ = wal.append(&record).expect("append");
        }
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    let (user, system) = cpu();
    let (user, system) = (user - cpu_before.0, system - cpu_before.1);
    println!(
        "{which}: {:.3} M records/s; CPU user {user:.2} s, system {system:.2} s ({:.0} / {:.0} ns a record)",
        rate / 1e6,
        user * 1e9 / n as f64,
        system * 1e9 / n as f64
    );
}

/// User and system CPU time of this process so far, in seconds (`/proc/self/stat`, 10 ms
/// ticks; zeros where it does not exist).
fn cpu() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let mut fields = after.split_whitespace().skip(11);
    let mut next = || {
        fields
            .next()
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 100.0
    };
    (next(), next())
}
