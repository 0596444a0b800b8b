//! Benchmarks for `SharedWal` (numbers only, no assertions).
//!
//! ```text
//! cargo run --release -p walden-std --example bench -- all [DIR]
//! cargo run --release -p walden-std --example bench -- raw|one|many|nosync|verify [DIR [SECONDS]]
//! cargo run --release -p walden-std --example bench -- many DIR SECONDS 4,16   # writer counts
//! ```
//!
//! * `raw`: the physical baseline, a loop of `pwrite(128 B)` + `fdatasync` on one file.
//! * `one`: one thread, 128 B appends, each durable (`SyncPolicy::Always`).
//! * `many`: 1, 4, 16 and 64 threads doing the same (group commit), with each way of waiting
//!   (`Spin::Adaptive`, the default; `Spin::Fixed(500 µs)`, the default before it; `Spin::Off`),
//!   with the CPU-seconds per second the process spent.
//! * `nosync`: one thread, 128 B appends, `SyncPolicy::Manual`: `SharedWal`, `Wal` and
//!   walden-bench's baseline in turns, with the user and system CPU each spends per record.
//! * `verify`: builds a 1 GiB log once, then times `verify_dir` on 1 and on 2 threads and a
//!   plain open (the core's single-threaded recovery scan), warm page cache.

use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use walden_std::{Config, GroupWindow, Options, SharedWal, Spin, SyncPolicy, Wal, verify_dir};

const RECORD: usize = 128;
/// Appends before the measurement starts (not counted).
const WARM_UP: Duration = Duration::from_millis(500);

fn fresh(base: &Path, name: &str) -> PathBuf {
    let d = base.join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn raw(base: &Path, secs: f64) -> f64 {
    let d = fresh(base, "raw");
    let f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(d.join("raw.log"))
        .unwrap();
    let buf = [7u8; RECORD + 32]; // the same bytes a record with its header takes
    let (start, mut n, mut off) = (Instant::now(), 0u64, 0u64);
    while start.elapsed().as_secs_f64() < secs {
        f.write_all_at(&buf, off).unwrap();
        f.sync_data().unwrap();
        off += buf.len() as u64;
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn durable(
    base: &Path,
    threads: usize,
    secs: f64,
    window: GroupWindow,
) -> (f64, walden_std::Metrics, f64) {
    let d = fresh(base, &format!("durable{threads}"));
    let (wal, _) = SharedWal::open(&d, Options::default().with_group_window(window)).unwrap();
    // Steady state: the background preparation of this segment and the next (zero-filling
    // 2 x 64 MiB) overlaps the warm-up, not the measurement.
    let counting = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (wal, counting, stop) = (wal.clone(), counting.clone(), stop.clone());
            std::thread::spawn(move || {
                let p = [1u8; RECORD];
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let a = wal.append(&p).unwrap();
                    assert!(a.durable);
                    if counting.load(Ordering::Relaxed) {
                        n += 1;
                    }
                }
                n
            })
        })
        .collect();
    std::thread::sleep(WARM_UP);
    let (start, cpu) = (Instant::now(), cpu_seconds());
    counting.store(true, Ordering::Relaxed);
    std::thread::sleep(Duration::from_secs_f64(secs));
    counting.store(false, Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu;
    stop.store(true, Ordering::Relaxed);
    let n: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    (n as f64 / elapsed, wal.metrics(), cpu / elapsed)
}

/// One writer, 128 B appends without syncs, as `subject` ("shared": `SharedWal`; "owned":
/// `Wal`, no lock; "baseline": walden-bench's baseline, a mutex around a 1 MiB `BufWriter`
/// of `[len][crc32][payload]` and a `Vec` of offsets). Returns records/s and the user and
/// system CPU nanoseconds per record (10 ms ticks).
fn nosync(base: &Path, subject: &str, records: u64) -> (f64, f64, f64) {
    let d = fresh(base, "nosync");
    let p = [1u8; RECORD];
    let options = Options::default().with_sync_policy(SyncPolicy::Manual);
    let (start, cpu) = match subject {
        "shared" => {
            let (wal, _) = SharedWal::open(&d, options).unwrap();
            let started = (Instant::now(), cpu_split());
            for _ in 0..records {
                let _ = wal.append(&p).unwrap();
            }
            started
        }
        "owned" => {
            let (mut wal, _) = Wal::open(&d, options).unwrap();
            let started = (Instant::now(), cpu_split());
            for _ in 0..records {
                let _ = wal.append(&p).unwrap();
            }
            started
        }
        _ => {
            use std::io::Write;
            let file = std::fs::File::create(d.join("baseline.log")).unwrap();
            let log = std::sync::Mutex::new((
                std::io::BufWriter::with_capacity(1 << 20, file),
                Vec::<u64>::new(),
                0u64,
            ));
            let started = (Instant::now(), cpu_split());
            for _ in 0..records {
                let mut guard = log.lock().unwrap();
                let (writer, offsets, end) = &mut *guard;
                let mut crc =
                    walden_core::raw::Checksum::new(walden_core::ChecksumAlgorithm::Crc32);
                crc.update(&p);
                let mut header = [0u8; 8];
                header[..4].copy_from_slice(&(RECORD as u32).to_le_bytes());
                header[4..].copy_from_slice(&(crc.finish() as u32).to_le_bytes());
                writer.write_all(&header).unwrap();
                writer.write_all(&p).unwrap();
                offsets.push(*end);
                *end += (header.len() + RECORD) as u64;
            }
            log.lock().unwrap().0.flush().unwrap();
            started
        }
    };
    let elapsed = start.elapsed().as_secs_f64();
    let (user, system) = cpu_split();
    let per = |s: f64| s * 1e9 / records as f64;
    (
        records as f64 / elapsed,
        per(user - cpu.0),
        per(system - cpu.1),
    )
}

fn verify(base: &Path) {
    let d = base.join("verify-1gib");
    let options = Options::from(Config::default()).with_sync_policy(SyncPolicy::Manual);
    if verify_dir(&d, 2).map(|r| r.bytes).unwrap_or(0) < 1 << 30 {
        let d = fresh(base, "verify-1gib");
        let (wal, _) = SharedWal::open(&d, options).unwrap();
        let p = vec![3u8; 4096];
        let batch: Vec<&[u8]> = (0..64).map(|_| p.as_slice()).collect();
        while wal.metrics().bytes_appended < 1 << 30 {
            let _ = wal.append_batch(&batch).unwrap();
        }
        wal.sync().unwrap();
    }
    // Warm the cache once.
    let _ = verify_dir(&d, 2).unwrap();
    for threads in [1, 2, 1, 2, 1, 2] {
        let (t, cpu) = (Instant::now(), cpu_seconds());
        let r = verify_dir(&d, threads).unwrap();
        let s = t.elapsed().as_secs_f64();
        println!(
            "verify threads={threads}: {:.3} s wall, {:.2} s CPU, {:.2} GiB/s, {} records, clean={}",
            s,
            cpu_seconds() - cpu,
            r.bytes as f64 / s / (1u64 << 30) as f64,
            r.records,
            r.is_clean()
        );
    }
    for threads in [1, 2, 1, 2, 1, 2] {
        let options = Options {
            open_threads: threads,
            ..options
        };
        let (t, cpu) = (Instant::now(), cpu_seconds());
        let (wal, report) = Wal::open(&d, options).unwrap();
        println!(
            "open (recovery, segments scanned on {threads} threads): {:.3} s wall, {:.2} s CPU, {} records",
            t.elapsed().as_secs_f64(),
            cpu_seconds() - cpu,
            report.records
        );
        drop(wal);
    }
}

/// User + system CPU time of this process (from `/proc/self/stat`, 100 Hz ticks).
fn cpu_seconds() -> f64 {
    let (user, system) = cpu_split();
    user + system
}

/// User and system CPU-seconds this process has spent (`/proc/self/stat`, 10 ms ticks).
fn cpu_split() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let f: Vec<u64> = after
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|x| x.parse().ok())
        .collect();
    let tick = |i: usize| f.get(i).copied().unwrap_or(0) as f64 / 100.0;
    (tick(0), tick(1))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map_or("all", String::as_str);
    let base = args.get(2).map_or_else(
        || std::env::temp_dir().join("walden-std-bench"),
        PathBuf::from,
    );
    std::fs::create_dir_all(&base).unwrap();
    let secs = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(3.0);
    if matches!(mode, "raw" | "all") {
        println!("raw pwrite+fdatasync 160 B: {:.0} ops/s", raw(&base, secs));
    }
    if matches!(mode, "one" | "all") {
        let (r, m, _) = durable(&base, 1, secs, GroupWindow::default());
        println!(
            "1 writer, 128 B durable: {r:.0} records/s (mean sync {:.0} us, append-to-durable p99 {} ns)",
            m.sync_ns.mean() / 1000.0,
            m.append_to_durable_ns.p99
        );
    }
    if matches!(mode, "many" | "all") {
        let waits = [
            ("adaptive", Spin::Adaptive),
            ("fixed 500us", Spin::Fixed(Duration::from_micros(500))),
            ("off", Spin::Off),
        ];
        let counts: Vec<usize> = args.get(4).map_or_else(
            || vec![1, 4, 16, 64],
            |s| s.split(',').filter_map(|n| n.parse().ok()).collect(),
        );
        for writers in counts {
            for (what, spin) in waits {
                let window = GroupWindow {
                    spin,
                    ..GroupWindow::default()
                };
                let (r, m, cpu) = durable(&base, writers, secs, window);
                println!(
                    "{writers} writers, 128 B durable, spin {what}: {r:.0} records/s, {cpu:.2} CPU s/s ({} group commits, mean group {:.1} records, mean sync {:.0} us)",
                    m.group_commits,
                    m.group_records.mean(),
                    m.sync_ns.mean() / 1000.0,
                );
            }
        }
    }
    if matches!(mode, "nosync" | "all") {
        // 2 M records (320 MB) stay under the kernel's dirty-page limit; the subjects take
        // turns, each run after a `sync` (the previous run's pages written back), so that
        // none runs in another's write-back. No clock read per append (walden-bench times
        // each one, which costs about as much as the baseline's append itself).
        for round in 1..=3 {
            for subject in ["shared", "owned", "baseline"] {
                let _ = std::process::Command::new("sync").status();
                let (rate, user, system) = nosync(&base, subject, 2_000_000);
                println!(
                    "1 writer, 128 B, no fsync, round {round}, {subject:>8}: {rate:>10.0} records/s, {user:5.1} ns user + {system:5.1} ns system CPU per record"
                );
            }
        }
    }
    if matches!(mode, "verify") {
        verify(&base);
    }
}
