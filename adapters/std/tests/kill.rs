//! Many threads append with durability in a child process that is killed (SIGKILL) at a
//! random moment. The child prints every acknowledged append; after a reopen every
//! acknowledged record of every thread must be there, in LSN order, and nothing else.
//!
//! The child is this test binary re-executed with `WALDEN_KILL_CHILD` set (the test
//! `child_process_writer` does nothing otherwise). Set `WALDEN_KILL_SEED` to replay a run.

use core::time::Duration;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;

use walden_core::{Config, Lsn};
use walden_std::{Options, SharedWal, Wal};

const CHILD_ENV: &str = "WALDEN_KILL_CHILD";
const RUN_ENV: &str = "WALDEN_KILL_RUN";
const THREADS: usize = 6;

fn options() -> Options {
    // Small segments, so kills also land around rotations.
    Options::from(Config::default().with_segment_size(64 * 1024))
}

/// Payloads: `run:thread:seq:index/count`, padded to vary the size.
fn payload(run: u32, t: usize, seq: u64, i: usize, n: usize) -> Vec<u8> {
    let mut p = format!("{run}:{t}:{seq}:{i}/{n}:").into_bytes();
    p.resize(p.len() + (seq as usize * 7 + t * 13) % 200, b'.');
    p
}

#[test]
fn child_process_writer() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let run: u32 = std::env::var(RUN_ENV).unwrap().parse().unwrap();
    let (wal, _) = SharedWal::open(&dir, options()).unwrap();
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let wal = wal.clone();
            std::thread::spawn(move || {
                for seq in 0u64..1_000_000 {
                    // Odd threads append atomic batches of three.
                    let n = if t % 2 == 1 { 3 } else { 1 };
                    let ps: Vec<Vec<u8>> = (0..n).map(|i| payload(run, t, seq, i, n)).collect();
                    let refs: Vec<&[u8]> = ps.iter().map(|p| p.as_slice()).collect();
                    let a = wal.append_batch(&refs).unwrap();
                    assert!(a.durable);
                    use std::io::Write;
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ack {t} {seq} {} {}", a.first.0, a.last.0).unwrap();
                    out.flush().unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

struct Ack {
    thread: usize,
    seq: u64,
    first: u64,
    last: u64,
}

fn splitmix(z: &mut u64) -> u64 {
    *z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut x = *z;
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Runs one child until it has acknowledged `kill_after` appends, kills it, and returns every
/// acknowledgement it printed.
fn run_child(dir: &Path, run: u32, kill_after: usize) -> Vec<Ack> {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args([
            "child_process_writer",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir)
        .env(RUN_ENV, run.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut acks = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() == 5 && f[0] == "ack" {
                acks.push(Ack {
                    thread: f[1].parse().unwrap(),
                    seq: f[2].parse().unwrap(),
                    first: f[3].parse().unwrap(),
                    last: f[4].parse().unwrap(),
                });
                if acks.len() == kill_after {
                    let _ = tx.send(());
                }
            }
        }
        acks
    });
    // Liveness bound only: a slow machine just kills later than planned.
    let _ = rx.recv_timeout(Duration::from_secs(60));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    reader.join().unwrap()
}

/// Parses `run:thread:seq:index/count:...`.
fn parse(p: &[u8]) -> (u32, usize, u64, usize, usize) {
    let s = core::str::from_utf8(p).expect("payload is text");
    let f: Vec<&str> = s.splitn(5, ':').collect();
    let (i, n) = f[3].split_once('/').unwrap();
    (
        f[0].parse().unwrap(),
        f[1].parse().unwrap(),
        f[2].parse().unwrap(),
        i.parse().unwrap(),
        n.parse().unwrap(),
    )
}

#[test]
fn sigkill_loses_no_acknowledged_append() {
    let mut seed: u64 = std::env::var("WALDEN_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    let initial_seed = seed;
    let dir = tempfile::tempdir().unwrap();
    // Everything acknowledged so far, by LSN: (run, thread, seq).
    let mut acked: BTreeMap<u64, (u32, usize, u64)> = BTreeMap::new();
    for run in 0..5u32 {
        let kill_after = 1 + (splitmix(&mut seed) % 400) as usize;
        let acks = run_child(dir.path(), run, kill_after);
        for a in &acks {
            for lsn in a.first..=a.last {
                acked.insert(lsn, (run, a.thread, a.seq));
            }
        }
        let ctx = format!("seed {initial_seed} run {run} kill_after {kill_after}");
        let (wal, report) = Wal::open(dir.path(), options()).unwrap();
        let log = wal.read_all_from(wal.first_lsn()).unwrap();
        // Dense LSNs from 1.
        for (i, (lsn, _)) in log.iter().enumerate() {
            assert_eq!(*lsn, Lsn(i as u64 + 1), "{ctx}: LSN gap");
        }
        assert_eq!(report.last_lsn.0, log.len() as u64, "{ctx}");
        // Every acknowledged record is there, with its payload.
        for (&lsn, &(r, t, seq)) in &acked {
            let Some((_, p)) = log.get(lsn as usize - 1) else {
                panic!(
                    "{ctx}: acknowledged LSN {lsn} lost (log ends at {})",
                    log.len()
                );
            };
            let (pr, pt, ps, _, _) = parse(p);
            assert_eq!(
                (pr, pt, ps),
                (r, t, seq),
                "{ctx}: LSN {lsn} holds another record"
            );
        }
        // Nothing else: per (run, thread) the sequence numbers run 0, 1, 2, ... in LSN order,
        // batches are whole and contiguous, and the records are exactly what was written.
        let mut next_seq: BTreeMap<(u32, usize), u64> = BTreeMap::new();
        let mut k = 0;
        while k < log.len() {
            let (r, t, seq, i, n) = parse(&log[k].1);
            assert_eq!(i, 0, "{ctx}: batch starts mid-way at LSN {}", k + 1);
            let want = next_seq.entry((r, t)).or_insert(0);
            assert_eq!(
                seq,
                *want,
                "{ctx}: thread {t} of run {r} out of order at LSN {}",
                k + 1
            );
            *want += 1;
            for j in 0..n {
                let (_, p) = log
                    .get(k + j)
                    .unwrap_or_else(|| panic!("{ctx}: torn batch"));
                assert_eq!(*p, payload(r, t, seq, j, n), "{ctx}: LSN {}", k + j + 1);
            }
            k += n;
        }
        eprintln!(
            "{ctx}: {} acknowledged in total, {} records in the log",
            acked.len(),
            log.len()
        );
    }
}
