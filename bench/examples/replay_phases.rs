//! A replay's two phases timed apart, over one log written once: `open` (recovery's scan) and
//! the reader's pass, then the same replay with `open_replaying` (one read of the sealed
//! segments), each round on the same files (warm page cache, except the newest segment,
//! which open drops on purpose). For comparing builds on a shared machine: take the minimum.
//!
//! ```text
//! cargo run --release -p walden-bench --example replay_phases -- [rounds] [record bytes] [MiB] [dir]
//! ```
//!
//! `PHASES_ONLY=replaying` skips the two-pass rounds (for profiling `open_replaying` alone);
//! `PHASES_RANDOM=1` writes incompressible records.

use std::{path::Path, time::Instant};

use walden_std::{Options, SharedWal, SyncPolicy};

/// CPU time of the whole process so far (all threads, also finished ones), in ms: on a loaded
/// machine it moves less than the wall clock.
fn cpu_ms() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    // utime and stime are fields 14 and 15 of the line, 11 and 12 after the command name.
    (f.get(11).unwrap_or(&0.0) + f.get(12).unwrap_or(&0.0)) * 10.0
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rounds: usize = args.get(1).and_then(|r| r.parse().ok()).unwrap_or(5);
    let size: usize = args.get(2).and_then(|r| r.parse().ok()).unwrap_or(1024);
    let mib: u64 = args.get(3).and_then(|r| r.parse().ok()).unwrap_or(1024);
    let base = Path::new(args.get(4).map(String::as_str).unwrap_or("."));
    let dir = tempfile::Builder::new()
        .prefix("phases-")
        .tempdir_in(base)
        .expect("tempdir");
    let options = || Options::default().with_sync_policy(SyncPolicy::Manual);
    // `PHASES_RANDOM=1`: bytes no compression shrinks (records of at least 4 KiB are
    // otherwise stored LZ4-compressed, `Config::compress_threshold`, and scanned in a fraction
    // of their length).
    let data: Vec<u8> = if std::env::var_os("PHASES_RANDOM").is_some() {
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        (0..size * 1000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    } else {
        (0..size * 1000).map(|i| (i * 31 % 251) as u8).collect()
    };
    let batch: Vec<&[u8]> = data.chunks(size).collect();
    {
        let wal = SharedWal::open(dir.path(), options()).expect("open").0;
        for _ in 0..(mib << 20) / (size as u64 * 1000) {
            let _ = wal.append_batch(&batch).expect("append");
        }
        wal.sync().expect("sync");
    }
    let (mut opens, mut reads, mut cpus) = (Vec::new(), Vec::new(), Vec::new());
    let (mut ones, mut one_cpus) = (Vec::new(), Vec::new());
    let two_pass = std::env::var_os("PHASES_ONLY").is_none_or(|v| v != "replaying");
    for round in 0..rounds {
        let (open, read, bytes) = if two_pass {
            two_passes(dir.path(), round, &mut cpus)
        } else {
            (0.0, 0.0, None)
        };
        // The same replay in one call, reading the sealed segments once.
        let c3 = cpu_ms();
        let t = Instant::now();
        let mut again = 0u64;
        let mut fold = 0u64;
        SharedWal::open_replaying(dir.path(), options(), |_, p| {
            again += p.len() as u64;
            // Every byte looked at, as the suite's replay does (`fold_bytes`).
            let mut words = p.chunks_exact(8);
            fold = words.by_ref().fold(fold, |a, w| {
                a.wrapping_add(u64::from_le_bytes(w.try_into().unwrap_or([0; 8])))
            });
            fold = words
                .remainder()
                .iter()
                .fold(fold, |a, &b| a.wrapping_add(u64::from(b)));
            Ok::<_, ()>(())
        })
        .expect("open_replaying");
        core::hint::black_box(fold);
        let one = t.elapsed().as_secs_f64() * 1e3;
        let c4 = cpu_ms();
        if let Some(bytes) = bytes {
            assert_eq!(again, bytes);
        }
        println!(
            "round {round}: open_replaying {one:7.1} ms (cpu {:5.0})",
            c4 - c3
        );
        opens.push(open);
        reads.push(read);
        ones.push(one);
        one_cpus.push(c4 - c3);
    }
    let min = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let cpus = if cpus.is_empty() {
        vec![(0.0, 0.0)]
    } else {
        cpus
    };
    let (co, cr): (Vec<f64>, Vec<f64>) = cpus.into_iter().unzip();
    println!(
        "min: open {:.1} ms, read {:.1} ms, total {:.1} ms; cpu open {:.0} ms, read {:.0} ms",
        min(&opens),
        min(&reads),
        min(&opens) + min(&reads),
        min(&co),
        min(&cr)
    );
    println!(
        "min: open_replaying {:.1} ms, cpu {:.0} ms",
        min(&ones),
        min(&one_cpus)
    );
}

/// One round of the two-pass replay (open, then a reader over everything): the open's and the
/// read's wall times in ms, the bytes read; their CPU times go to `cpus`.
fn two_passes(dir: &Path, round: usize, cpus: &mut Vec<(f64, f64)>) -> (f64, f64, Option<u64>) {
    let options = || Options::default().with_sync_policy(SyncPolicy::Manual);
    let c0 = cpu_ms();
    let t = Instant::now();
    let wal = SharedWal::open(dir, options()).expect("open").0;
    let open = t.elapsed().as_secs_f64() * 1e3;
    let c1 = cpu_ms();
    let t = Instant::now();
    let mut r = wal.reader(wal.first_lsn()).expect("reader");
    let mut bytes = 0u64;
    while let Some(rec) = r.read_next().expect("read") {
        bytes += rec.payload.len() as u64;
    }
    let read = t.elapsed().as_secs_f64() * 1e3;
    let c2 = cpu_ms();
    println!(
        "round {round}: open {open:7.1} ms (cpu {:5.0}), read {read:7.1} ms (cpu {:5.0}) ({bytes} bytes)",
        c1 - c0,
        c2 - c1
    );
    drop(r);
    drop(wal);
    cpus.push((c1 - c0, c2 - c1));
    (open, read, Some(bytes))
}
