//! One bulk workload, Walden against the naive baseline, interleaved for a shared machine.
//!
//! ```text
//! cargo run --release -p walden-bench --example bulk -- <nofsync128|nofsync256k|batch1k|batch1k128|batch100|batch100x128|batch10|replay|reads|reads128|reads128reopen> [rounds] [dir]
//! ```
//!
//! Prints each round's rates and the median of the Walden ÷ baseline ratios, plus p50/p99 of
//! the per-operation latencies. For profiling one subject: `BULK_ONLY=walden` (or `baseline`).
//! `BULK_ZERO_MAX=<bytes>` sets walden-std's `Tuning::zero_fill_max_bytes_per_sync` (64 KiB by default).
//! `BULK_SLOW=1` lists where the slowest 1% fall; `BULK_DUMP=<file>` appends every operation's
//! latency (ns) to a file, in order.

use core::time::Duration;
use std::{
    fs::{File, OpenOptions},
    io::{BufReader, BufWriter, Read, Write},
    os::unix::fs::FileExt,
    path::Path,
    time::Instant,
};

use walden_std::{FileStorage, Hooked, Hooks, Lsn, Options, OsFs, SharedWal, SyncPolicy, Tuning};

const SECONDS: f64 = 1.5;

trait Log {
    fn append(&mut self, records: &[&[u8]], durable: bool);
    fn read(&mut self, lsn: u64, buf: &mut Vec<u8>);
    /// After a reopen: `records` records are in the log (the baseline rebuilds its offsets).
    fn reindex(&mut self, _dir: &Path, _records: u64) {}
}

/// `BULK_ZERO_MAX=<bytes>`: walden-std's `Tuning::zero_fill_max_bytes_per_sync` for this run
/// (the most bytes per sync at which segments are still zero-filled; 64 KiB by default), set
/// through a `Hooked` file system that changes nothing else.
struct ZeroMax(u64);
impl Hooks for ZeroMax {
    fn tuning<F: walden_std::FileSystem>(&self, inner: &F) -> Tuning {
        let mut tuning = inner.tuning();
        tuning.zero_fill_max_bytes_per_sync = self.0;
        tuning
    }
}

struct W<F: walden_std::FileSystem = OsFs>(SharedWal<FileStorage<F>>, u64);
impl<F: walden_std::FileSystem> Log for W<F> {
    fn append(&mut self, records: &[&[u8]], durable: bool) {
        let a = self.0.append_batch(records).unwrap();
        if self.1 == u64::MAX {
            self.1 = a.first.0;
        }
        if durable && !a.durable {
            self.0.wait_durable(a.last).unwrap();
        }
    }
    fn reindex(&mut self, _dir: &Path, _records: u64) {
        self.1 = self.0.first_lsn().0;
    }
    fn read(&mut self, lsn: u64, buf: &mut Vec<u8>) {
        let mut r = self.0.reader(Lsn(self.1 + lsn)).unwrap();
        let rec = r.read_next().unwrap().unwrap();
        buf.clear();
        buf.extend_from_slice(rec.payload);
    }
}

struct B {
    w: BufWriter<File>,
    r: File,
    offsets: Vec<u64>,
    end: u64,
}
impl Log for B {
    fn append(&mut self, records: &[&[u8]], durable: bool) {
        for record in records {
            let mut h = [0u8; 8];
            h[..4].copy_from_slice(&(record.len() as u32).to_le_bytes());
            h[4..].copy_from_slice(&crc32fast::hash(record).to_le_bytes());
            self.w.write_all(&h).unwrap();
            self.w.write_all(record).unwrap();
            self.offsets.push(self.end);
            self.end += 8 + record.len() as u64;
        }
        if durable {
            self.w.flush().unwrap();
            self.w.get_ref().sync_data().unwrap();
        }
    }
    fn reindex(&mut self, _dir: &Path, records: u64) {
        let mut h = [0u8; 8];
        self.offsets.clear();
        let mut at = 0;
        for _ in 0..records {
            self.r.read_exact_at(&mut h, at).unwrap();
            self.offsets.push(at);
            at += 8 + u64::from(u32::from_le_bytes(h[..4].try_into().unwrap()));
        }
        self.end = at;
    }
    fn read(&mut self, lsn: u64, buf: &mut Vec<u8>) {
        self.w.flush().unwrap();
        let off = self.offsets[lsn as usize];
        let mut h = [0u8; 8];
        self.r.read_exact_at(&mut h, off).unwrap();
        let len = u32::from_le_bytes(h[..4].try_into().unwrap()) as usize;
        buf.resize(len, 0);
        self.r.read_exact_at(buf, off + 8).unwrap();
        assert_eq!(
            crc32fast::hash(buf),
            u32::from_le_bytes(h[4..].try_into().unwrap())
        );
    }
}

fn open(which: &str, dir: &Path) -> Box<dyn Log> {
    if which == "walden" {
        let mut o = Options::default().with_sync_policy(SyncPolicy::Manual);
        // Early rotation (`Config::early_rotation`) is walden-std's default: BULK_EARLY=0 turns
        // it off, to compare.
        if std::env::var_os("BULK_EARLY").is_some_and(|v| v == "0") {
            o.config = o.config.with_early_rotation(false);
        }
        // BULK_PREALLOCATE=0: no preallocation, spares or zero-fill (`Options::preallocate`).
        if std::env::var_os("BULK_PREALLOCATE").is_some_and(|v| v == "0") {
            o.preallocate = false;
        }
        if let Some(max) = std::env::var("BULK_ZERO_MAX")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            let fs = Hooked::new(OsFs, ZeroMax(max));
            return Box::new(W(SharedWal::open_in(fs, dir, o).unwrap().0, u64::MAX));
        }
        Box::new(W(SharedWal::open(dir, o).unwrap().0, u64::MAX))
    } else {
        std::fs::create_dir_all(dir).unwrap();
        let p = dir.join("b.log");
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)
            .unwrap();
        Box::new(B {
            w: BufWriter::with_capacity(1 << 20, f),
            r: File::open(&p).unwrap(),
            offsets: Vec::new(),
            end: 0,
        })
    }
}

fn replay(which: &str, dir: &Path) -> u64 {
    let mut n = 0u64;
    if which == "walden" {
        let o = Options::default().with_sync_policy(SyncPolicy::Manual);
        let t = Instant::now();
        if std::env::var_os("BULK_TWO_PASS").is_some() {
            // Open, then read: the replay before `open_replaying`.
            let wal = SharedWal::open(dir, o).unwrap().0;
            if std::env::var_os("BULK_DEBUG").is_some() {
                eprintln!("open {:?}", t.elapsed());
            }
            let mut r = wal.reader(wal.first_lsn()).unwrap();
            while let Some(rec) = r.read_next().unwrap() {
                n += rec.payload.len() as u64;
            }
        } else {
            SharedWal::open_replaying(dir, o, |_, payload| {
                n += payload.len() as u64;
                Ok::<_, ()>(())
            })
            .unwrap();
        }
    } else {
        let mut r = BufReader::with_capacity(1 << 20, File::open(dir.join("b.log")).unwrap());
        let mut h = [0u8; 8];
        let mut p = Vec::new();
        while r.read_exact(&mut h).is_ok() {
            let len = u32::from_le_bytes(h[..4].try_into().unwrap()) as usize;
            p.resize(len, 0);
            r.read_exact(&mut p).unwrap();
            assert_eq!(
                crc32fast::hash(&p),
                u32::from_le_bytes(h[4..].try_into().unwrap())
            );
            n += len as u64;
        }
    }
    n
}

/// Incompressible bytes (as the suite's own payloads): Walden compresses records of 4 KiB and
/// more by default, and a repeating pattern would let it skip most of the writing.
fn noise(len: usize) -> Vec<u8> {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

/// Returns (ops/s, p50 µs, p99 µs, p999 µs).
fn run(which: &str, work: &str, base: &Path) -> (f64, f64, f64, f64) {
    let dir = tempfile::Builder::new()
        .prefix("bulk-")
        .tempdir_in(base)
        .unwrap();
    let d = dir.path().join("log");
    let (size, count, durable) = match work {
        "nofsync128" => (128, 1, false),
        "nofsync256k" => (256 << 10, 1, false),
        "batch1k" => (1024, 1000, true),
        "batch100" => (1024, 100, true),
        "batch1k128" => (128, 1000, true),
        "batch10" => (128, 10, true),
        "batch100x128" => (128, 100, true),
        "reads128" | "reads128reopen" => (128, 1, false),
        _ => (1024, 1, false),
    };
    let data = noise(size * count);
    let recs: Vec<&[u8]> = data.chunks(size).collect();
    if work == "replay" || work.starts_with("reads") {
        let total = match work {
            "replay" => 1u64 << 30,
            "reads128" | "reads128reopen" => 128 << 20,
            _ => 256 << 20,
        };
        let n = total / size as u64;
        {
            let mut log = open(which, &d);
            // The last batch synced: a replay reads a log closed cleanly (walden-std's
            // clean-close marker), not one whose first open must sync it.
            for i in 0..n / 1000 {
                log.append(&recs.repeat(1000), i + 1 == n / 1000);
            }
            if work.ends_with("reopen") {
                // Reads of a log this process did not write: the baseline's offsets are
                // rebuilt by a scan, untimed; Walden has no index of them but what its readers
                // build (the sparse path, `SharedWal::reader`).
                drop(log);
                log = open(which, &d);
                log.reindex(&d, n / 1000 * 1000);
            }
            if work.starts_with("reads") {
                let mut buf = Vec::new();
                let t = Instant::now();
                let mut x = 0x9E3779B97F4A7C15u64;
                let mut ops = 0;
                let mut lat = Vec::new();
                while t.elapsed().as_secs_f64() < SECONDS {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let s = Instant::now();
                    log.read(x % (n / 1000 * 1000), &mut buf);
                    lat.push(s.elapsed().as_nanos() as u64);
                    ops += 1;
                }
                let rate = ops as f64 / t.elapsed().as_secs_f64();
                let max = lat.iter().max().copied().unwrap_or(0) as f64 / 1e3;
                eprintln!("  {which} {work}: slowest read {max:.0} us");
                lat.sort_unstable();
                let q = |f: f64| lat[((lat.len() - 1) as f64 * f) as usize] as f64 / 1e3;
                return (rate, q(0.5), q(0.99), q(0.999));
            }
        }
        let t = Instant::now();
        let bytes = replay(which, &d);
        return (
            bytes as f64 / t.elapsed().as_secs_f64() / 1e6,
            0.0,
            0.0,
            0.0,
        );
    }
    let mut log = open(which, &d);
    let mut lat = Vec::new();
    let cap = if durable {
        u64::MAX
    } else {
        (1u64 << 30) / size as u64
    };
    let t = Instant::now();
    let mut ops = 0u64;
    while t.elapsed() < Duration::from_secs_f64(SECONDS) && ops < cap {
        let s = Instant::now();
        log.append(&recs, durable);
        lat.push(s.elapsed().as_nanos() as u64);
        ops += count as u64;
    }
    let el = t.elapsed().as_secs_f64();
    if let Some(path) = std::env::var_os("BULK_DUMP") {
        // Every operation's latency (ns), in order, one a line (appended to the file).
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        let lines: String = lat.iter().map(|l| format!("{which} {l}\n")).collect();
        f.write_all(lines.as_bytes()).unwrap();
    }
    if std::env::var_os("BULK_SLOW").is_some() {
        // Where the slow operations fall: index, latency (µs), bytes appended before it.
        let mut by: Vec<(usize, u64)> = lat.iter().copied().enumerate().collect();
        by.sort_unstable_by_key(|&(_, l)| core::cmp::Reverse(l));
        let per = (size * count) as u64;
        for (i, l) in by.iter().take(lat.len() / 100 + 1) {
            eprintln!(
                "slow {which} #{i} {} us at {} MiB",
                l / 1000,
                (*i as u64 * per) >> 20
            );
        }
    }
    lat.sort_unstable();
    let q = |f: f64| lat[((lat.len() - 1) as f64 * f) as usize] as f64 / 1e3;
    (ops as f64 / el, q(0.5), q(0.99), q(0.999))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let work = args.get(1).map(String::as_str).unwrap_or("nofsync128");
    let rounds: usize = args.get(2).and_then(|r| r.parse().ok()).unwrap_or(3);
    let base = Path::new(args.get(3).map(String::as_str).unwrap_or("."));
    let only = std::env::var("BULK_ONLY").ok();
    let mut ratios = Vec::new();
    for round in 0..rounds {
        let mut got = Vec::new();
        for which in ["walden", "baseline"] {
            if only.as_deref().is_some_and(|o| o != which) {
                continue;
            }
            let (r, p50, p99, p999) = run(which, work, base);
            println!(
                "round {round} {which:8} {work}: {r:12.0}/s p50 {p50:9.1}us p99 {p99:9.1}us p999 {p999:9.1}us"
            );
            got.push(r);
        }
        if got.len() == 2 {
            ratios.push(got[0] / got[1]);
        }
    }
    ratios.sort_by(f64::total_cmp);
    if !ratios.is_empty() {
        println!(
            "{work}: median walden/baseline {:.2} over {:?}",
            ratios[ratios.len() / 2],
            ratios
        );
    }
}
