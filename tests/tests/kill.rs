//! A child process appends and acknowledges records (each durable on return) and is killed with
//! SIGKILL at a random moment; after every kill the log is reopened and must hold every
//! acknowledged record, byte for byte, with dense LSNs and nothing that was never written.
//!
//! The child is this same test binary, re-run with `WALDEN_KILL_CHILD=<dir>`.

use core::time::Duration;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Instant;

use walden_std::{Config, Lsn, Options, Wal};
use walden_tests::conformance::payload;

const CHILD_ENV: &str = "WALDEN_KILL_CHILD";

fn options() -> Options {
    Options::from(Config::default().with_segment_size(64 * 1024))
}

/// Entry point of the child process; a no-op in the normal test run.
#[test]
fn kill_child_entry() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (mut wal, _) = Wal::open(&dir, options()).expect("child open");
    let mut next = wal.next_lsn().0;
    loop {
        let lsn = wal.append(&payload(next)).expect("append");
        assert_eq!(lsn, Lsn(next));
        // Only now is the record durable: acknowledge it.
        println!("ACK {}", lsn.0);
        next += 1;
    }
}

/// The acknowledged LSN on a child's output line (the test harness may print on the same line).
fn ack(line: &str) -> Option<&str> {
    line.find("ACK ").map(|i| &line[i + 4..])
}

/// A small deterministic PRNG so a failing run can be repeated (the seed is printed).
fn next_rand(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn sigkill_never_loses_an_acknowledged_record() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(7, |d| d.as_nanos() as u64)
        | 1;
    eprintln!("kill test seed {seed}");
    let mut rng = seed;
    let mut acked = 0u64;
    let mut kills = 0;
    for round in 0..12 {
        let mut child = Command::new(std::env::current_exe().expect("exe"))
            .args([
                "kill_child_entry",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("stdout");
        let kill_after = 1 + next_rand(&mut rng) % 400;
        let mut lines = BufReader::new(stdout).lines();
        let mut seen = 0;
        let started = Instant::now();
        while seen < kill_after && started.elapsed() < Duration::from_secs(20) {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(n) = ack(&line) {
                        let lsn: u64 = n.trim().parse().expect("lsn");
                        assert_eq!(lsn, acked + 1, "round {round}: acks are dense");
                        acked = lsn;
                        seen += 1;
                    }
                }
                _ => break,
            }
        }
        child.kill().expect("SIGKILL");
        // Acks the child printed before it died are promises too.
        for line in lines.map_while(Result::ok) {
            if let Some(n) = ack(&line) {
                acked = n.trim().parse().expect("lsn");
            }
        }
        child.wait().expect("wait");
        kills += 1;

        let (wal, report) = Wal::open(dir.path(), options()).expect("reopen after SIGKILL");
        assert!(report.salvage.is_none(), "seed {seed}: {report}");
        let recovered = wal.read_all_from(wal.first_lsn()).expect("read");
        assert!(
            recovered.len() as u64 >= acked,
            "seed {seed} round {round}: {} records recovered, {acked} acknowledged",
            recovered.len()
        );
        for (i, (lsn, bytes)) in recovered.iter().enumerate() {
            assert_eq!(lsn.0, i as u64 + 1, "seed {seed}: dense LSNs");
            assert_eq!(
                bytes,
                &payload(lsn.0),
                "seed {seed}: LSN {lsn} intact, no phantoms"
            );
        }
        // The next child continues after what recovery kept (in-flight records may survive).
        acked = recovered.len() as u64;
    }
    assert_eq!(kills, 12);
    assert!(acked > 12, "the children made progress");
}
