//! Runs the crash loop through the real binary, with its default budget (the README's first
//! command): the correct guest must show no violation while every kind of power-loss effect is
//! applied at least 100 times, and every deliberately broken guest must be caught, with a
//! report that names the run, the crash and the record, and replays.

use std::process::Command;

/// Runs `crash-loop` with `extra` arguments; returns whether it exited with success, and its
/// stdout and stderr.
fn crash_loop(extra: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_walden-demo-host"))
        .arg("crash-loop")
        .args(extra)
        .output()
        .expect("the host binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    (
        out.status.success(),
        format!("{stdout}\n--- stderr ---\n{stderr}"),
    )
}

/// The number after `label` on a report line (`  <label>   <number>  <meaning>`).
fn count(report: &str, label: &str) -> u64 {
    report
        .lines()
        .find_map(|l| {
            let rest = l.trim_start().strip_prefix(label)?;
            rest.starts_with("  ").then_some(rest)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no `{label}` in the report:\n{report}"))
}

/// Every power-loss effect the host models, as the report names them.
const EFFECTS: [&str; 7] = [
    "tails cut",
    "tails zeroed",
    "torn mid-record",
    "sectors reordered",
    "truncates undone",
    "new files dropped",
    "files resurrected",
];

#[test]
fn the_default_run_applies_every_effect_and_loses_nothing() {
    let (ok, report) = crash_loop(&[]);
    // Shown with `--nocapture` (as `scripts/check.sh` runs the tests), so CI logs the figures.
    println!("{report}");
    assert!(ok, "crash loop failed:\n{report}");
    assert_eq!(count(&report, "violations"), 0, "{report}");
    for effect in EFFECTS {
        assert!(
            count(&report, effect) >= 100,
            "fewer than 100 `{effect}`:\n{report}"
        );
    }
    // Once per loop: the first run is cut between the log directory's creation and the
    // preopen's sync (the only time the correct guest leaves its name unsynced).
    assert!(count(&report, "new directories dropped") >= 1, "{report}");
    assert!(count(&report, "during recovery") >= 100, "{report}");
    assert!(count(&report, "by a fuel trap") > 0, "{report}");
    assert!(count(&report, "acknowledged writes") > 1000, "{report}");
    assert!(count(&report, "retentions") > 0, "{report}");
}

/// The first violation of a broken guest's run, which must name the run, the crash before it
/// and the record, and replay to the same violation. Returns the report.
fn caught(broken: &str) -> String {
    let (ok, report) = crash_loop(&[broken, "--expect-violations"]);
    assert!(ok, "the broken guest ({broken}) was not caught:\n{report}");
    assert!(count(&report, "violations") > 0, "{report}");
    let first = report
        .lines()
        .find(|l| l.starts_with("VIOLATION run "))
        .unwrap_or_else(|| panic!("no violation line:\n{report}"));
    assert!(
        first.contains("acknowledged in run") && first.contains("LSN"),
        "the violation does not name the record: {first}\n{report}"
    );
    assert!(
        report.contains(" cut ") || report.contains("out of fuel"),
        "{report}"
    );

    // The printed replay command (up to and including the failing run) fails the same way.
    let replay = report
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("replay: "))
        .expect("a replay line");
    let args: Vec<&str> = replay
        .split_once(" -- crash-loop ")
        .expect("the replay names crash-loop")
        .1
        .split_whitespace()
        .filter(|a| *a != "--verbose")
        .collect();
    let (_, again) = crash_loop(&args);
    assert!(
        again.lines().any(|l| l == first),
        "replaying `{replay}` did not show `{first}`:\n{again}"
    );
    report
}

#[test]
fn acknowledging_before_sync_is_caught() {
    caught("--ack-before-sync");
}

#[test]
fn skipping_the_directory_sync_after_a_create_is_caught() {
    caught("--skip-dir-sync");
}

/// The guest that creates its log directory without syncing the preopen is caught because the
/// power loss took the whole directory away: the crash before the violation says so.
#[test]
fn skipping_the_sync_of_the_log_directorys_parent_is_caught() {
    let report = caught("--skip-parent-sync");
    assert!(
        report.contains("wal/: created since the last sync of /data, dropped"),
        "the violation does not follow from the dropped log directory:\n{report}"
    );
}
