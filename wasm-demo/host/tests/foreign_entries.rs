//! Entries in the log directory that are not Walden's, under the real guest and `walden-wasi`
//! in wasmtime: the log opens, takes appends and reopens with them in place, and leaves them
//! untouched.
//!
//! Each test runs `walden-demo-host run --dir <tmp>` (the guest's workload against `<tmp>`,
//! which the guest sees as `/data`, its log in `/data/wal`) once to create a log, puts the
//! foreign entry into `<tmp>/wal/`, then runs the guest twice more: every run must recover every
//! record the run before it acknowledged.

use std::fs;
use std::path::Path;
use std::process::Command;

/// Runs the guest's workload once against `dir`; panics unless it finishes. Returns its stdout.
fn run_guest(dir: &Path, ops: u64) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_walden-demo-host"))
        .arg("run")
        .arg("--dir")
        .arg(dir)
        .args(["--ops", &ops.to_string()])
        .output()
        .expect("the host binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "the guest failed:\n{stdout}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The highest LSN on the run's lines that start with `tag` (`REC`: recovered, `ACK`:
/// acknowledged), 0 if none.
fn last_lsn(stdout: &str, tag: &str) -> u64 {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix(tag)?.strip_prefix(' '))
        .filter_map(|l| l.split(' ').next()?.parse().ok())
        .max()
        .unwrap_or(0)
}

/// Creates a log in `dir`, calls `add` to put foreign entries into `dir/wal`, then opens,
/// appends to and reopens the log twice, checking that nothing acknowledged is lost.
fn log_survives(dir: &Path, add: impl FnOnce(&Path)) {
    let first = run_guest(dir, 40);
    let mut acked = last_lsn(&first, "ACK");
    assert!(acked > 0, "the first run acknowledged nothing:\n{first}");
    add(&dir.join("wal"));
    for _ in 0..2 {
        let run = run_guest(dir, 40);
        assert!(
            last_lsn(&run, "REC") >= acked,
            "acknowledged up to LSN {acked}, recovered less:\n{run}"
        );
        acked = last_lsn(&run, "ACK");
        assert!(acked > 0, "the run acknowledged nothing:\n{run}");
    }
}

/// A file whose name is not UTF-8 (any bytes but `/` and NUL are a name on Linux) cannot be
/// reported to the guest (WASI names are strings; wasmtime reports `illegal-byte-sequence` for
/// it): `walden-wasi` skips it as walden-std does, instead of refusing to open the log.
#[test]
fn a_non_utf8_name_in_the_log_directory_does_not_stop_the_log() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt as _;

    let tmp = tempfile::tempdir().unwrap();
    let name = OsStr::from_bytes(b"foreign-\xff\xfe.wal");
    log_survives(tmp.path(), |wal| {
        fs::write(wal.join(name), b"not walden's").unwrap();
    });
    assert_eq!(
        fs::read(tmp.path().join("wal").join(name)).unwrap(),
        b"not walden's"
    );
}

/// A directory named like walden-std's clean-close marker (`walden.clean`) is not the marker:
/// `walden-wasi` removes the marker before its first change, but leaves a directory of that name
/// (and what it holds) in place, as walden-std does, instead of failing the change.
#[test]
fn a_directory_named_like_the_clean_marker_is_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let marker = walden_core::CLEAN_FILE;
    log_survives(tmp.path(), |wal| {
        fs::create_dir(wal.join(marker)).unwrap();
        fs::write(wal.join(marker).join("inside"), b"someone else's").unwrap();
    });
    let dir = tmp.path().join("wal").join(marker);
    assert!(dir.is_dir(), "{} is gone", dir.display());
    assert_eq!(fs::read(dir.join("inside")).unwrap(), b"someone else's");
}
