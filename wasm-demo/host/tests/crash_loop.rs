//! Runs short crash loops through the real binary: the correct guest must show no violation,
//! and the deliberately broken guest (acknowledges before syncing) must be caught.

use std::process::Command;

fn crash_loop(extra: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_walden-demo-host"))
        .args(["crash-loop", "--runs", "40", "--ops", "24"])
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

/// The number after `label` in the report.
fn count(report: &str, label: &str) -> u64 {
    report
        .lines()
        .find_map(|l| l.strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no `{label}` in the report:\n{report}"))
}

#[test]
fn correct_guest_survives_every_crash() {
    let (ok, report) = crash_loop(&["--seed", "7"]);
    assert!(ok, "crash loop failed:\n{report}");
    assert_eq!(count(&report, "violations:"), 0, "{report}");
    assert!(
        count(&report, "crashes:") >= 20,
        "too few crashes:\n{report}"
    );
    assert!(count(&report, "acknowledged writes:") > 0, "{report}");
}

#[test]
fn acknowledging_before_sync_is_caught() {
    let (ok, report) = crash_loop(&["--seed", "7", "--ack-before-sync", "--expect-violations"]);
    assert!(ok, "the broken guest was not caught:\n{report}");
    assert!(count(&report, "violations:") > 0, "{report}");
    assert!(
        report.contains("lost records") || report.contains("VIOLATION"),
        "{report}"
    );
}
