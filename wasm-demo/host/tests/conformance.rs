//! The cross-adapter conformance suite over `walden-wasi`, inside the wasm guest under
//! wasmtime: every case of `walden_conformance::cases` must run and pass.

use std::process::Command;

use walden_conformance::Medium;
use walden_std::FileStorage;

/// Only names a `Medium` so `cases` can be listed here; never opened.
struct Listing;

impl Medium for Listing {
    type S = FileStorage;
    fn open(&mut self) -> FileStorage {
        unreachable!("the suite runs in the guest")
    }
    fn close(&mut self, _: FileStorage) {}
}

#[test]
fn every_conformance_case_passes_inside_the_guest() {
    let out = Command::new(env!("CARGO_BIN_EXE_walden-demo-host"))
        .arg("conformance")
        .output()
        .expect("the host binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = format!(
        "{stdout}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "conformance failed:\n{report}");

    let expected: Vec<&str> = walden_conformance::cases::<Listing>()
        .iter()
        .map(|(name, _)| *name)
        .collect();
    let passed: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("CASE "))
        .filter_map(
            |rest| match rest.split(' ').collect::<Vec<_>>().as_slice() {
                [_, name, "ok"] => Some(*name),
                _ => None,
            },
        )
        .collect();
    assert_eq!(passed.len(), expected.len(), "{report}");
    assert_eq!(passed, expected, "{report}");
    let summary = format!("{} passed, 0 failed", expected.len());
    assert!(stdout.contains(&summary), "{report}");
}
