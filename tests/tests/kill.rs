//! Kill at every file operation on the real file system (see `walden_tests::kill`): a child
//! process runs the workload and dies by `SIGKILL` right after walden-std's `n`-th
//! state-changing file operation; the parent reopens the log and checks it against the
//! child's journal of acknowledgements. Nothing but the operation count decides where the
//! child dies, so every run must pass (with several `SharedWal` threads and background jobs
//! the operation at a given count differs between runs; every run is checked all the same).
//!
//! ```text
//! cargo test -p walden-tests --test kill -- --nocapture                  # sampled kill points
//! WALDEN_KILL_DEEP=1 cargo test -p walden-tests --test kill -- --nocapture   # every one
//! ```
//!
//! The child is this test binary, re-run with `WALDEN_KILL_DIR` set.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use walden_std::Mutation;
use walden_tests::kill::{Journal, check, kill_fs, workload};

const DIR_ENV: &str = "WALDEN_KILL_DIR";
const AT_ENV: &str = "WALDEN_KILL_AT";
const MUTATION_ENV: &str = "WALDEN_KILL_MUTATION";

/// Entry point of the child process; a no-op in the normal test run.
#[test]
fn kill_child_entry() {
    let Ok(dir) = std::env::var(DIR_ENV) else {
        return;
    };
    let kill_at: u64 = std::env::var(AT_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(u64::MAX);
    let mutation = match std::env::var(MUTATION_ENV).as_deref() {
        Ok("SyncSkipsFlush") => Some(Mutation::SyncSkipsFlush),
        _ => None,
    };
    let dir = Path::new(&dir);
    let journal = Journal::open(&dir.with_extension("journal")).expect("journal");
    let fs = kill_fs(kill_at, mutation);
    workload(&fs, dir, &journal);
    // Not killed: say how many operations the whole workload took.
    std::fs::write(dir.with_extension("ops"), fs.hooks().count().to_string()).expect("ops");
}

/// One child run killed after operation `kill_at`, then the check. Returns the check's
/// verdict and whether the child was killed (rather than finishing).
fn run(base: &Path, kill_at: u64, mutation: Option<&str>) -> (Result<String, String>, bool) {
    let dir = base.join(format!("log-{kill_at}"));
    let mut command = Command::new(std::env::current_exe().expect("exe"));
    command
        .args([
            "kill_child_entry",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(DIR_ENV, &dir)
        .env(AT_ENV, kill_at.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(m) = mutation {
        command.env(MUTATION_ENV, m);
    }
    let status = command.status().expect("run the child");
    let killed = !status.success();
    let journal = std::fs::read_to_string(dir.with_extension("journal")).unwrap_or_default();
    let verdict = check(&dir, &journal)
        .map(|s| format!("{} acknowledged, {} recovered", s.acknowledged, s.recovered))
        .map_err(|e| format!("killed after operation {kill_at}: {e}"));
    (verdict, killed)
}

/// The kill points of a run: every one in deep mode, else an even sample (with both ends).
fn kill_points(total: u64) -> Vec<u64> {
    if std::env::var("WALDEN_KILL_DEEP").is_ok_and(|v| v == "1") {
        return (1..=total).collect();
    }
    const SAMPLE: u64 = 120;
    let mut points: Vec<u64> = (0..SAMPLE)
        .map(|i| 1 + i * (total - 1) / (SAMPLE - 1))
        .collect();
    points.dedup();
    points
}

#[test]
fn sigkill_after_every_file_operation_loses_nothing_acknowledged() {
    if std::env::var(DIR_ENV).is_ok() {
        return;
    }
    let base = tempfile::tempdir().expect("tempdir");
    // A run without a kill: the workload passes the check and says how long it is.
    let (verdict, killed) = run(base.path(), u64::MAX, None);
    assert!(!killed, "the child failed without a kill");
    verdict.expect("the uninterrupted run checks out");
    let total: u64 = std::fs::read_to_string(base.path().join(format!("log-{}.ops", u64::MAX)))
        .expect("op count")
        .trim()
        .parse()
        .expect("a number");
    // Background jobs and SharedWal threads make the count vary a little between runs:
    // go somewhat past it so the end is covered too.
    let points = kill_points(total + total / 20);
    let started = Instant::now();
    let mut failures = Vec::new();
    let mut killed_runs = 0;
    for &at in &points {
        let (verdict, killed) = run(base.path(), at, None);
        killed_runs += u64::from(killed);
        if let Err(e) = verdict {
            failures.push(e);
        }
    }
    println!(
        "kill points: {} of {} file operations ({} killed, the rest finished), failures: {}, {:.1?}",
        points.len(),
        total,
        killed_runs,
        failures.len(),
        started.elapsed()
    );
    for failure in failures.iter().take(5) {
        println!("{failure}");
    }
    assert!(failures.is_empty(), "{}", failures[0]);
    // The operation count varies between runs (threads, background jobs; under load more
    // rotations find their spare not ready yet), by a fifth at most, never by half.
    assert!(
        killed_runs as usize * 2 >= points.len(),
        "most runs must die"
    );
}

/// Proof that the check can fail: a write buffer that reports `sync` before its bytes reach
/// the file loses acknowledged records when the process dies.
#[test]
fn a_sync_reported_before_the_flush_is_caught() {
    if std::env::var(DIR_ENV).is_ok() {
        return;
    }
    let base = tempfile::tempdir().expect("tempdir");
    let mut caught = None;
    for at in (10..250).step_by(6) {
        let (verdict, _) = run(base.path(), at, Some("SyncSkipsFlush"));
        if let Err(e) = verdict
            && e.contains("acknowledged")
        {
            caught = Some(e);
            break;
        }
    }
    let caught =
        caught.expect("the kill test did not notice SyncSkipsFlush losing acknowledged records");
    eprintln!("SyncSkipsFlush caught, as it must be: {caught}");
}
