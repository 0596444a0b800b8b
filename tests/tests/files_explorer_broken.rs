//! Proof that the files explorer can fail: each deliberately broken variant of walden-std's
//! file protocol must be reported, as a violation of the invariant it breaks.

use walden_tests::explorer::{Explorer, Stats};
use walden_tests::files::{FileVariant, FileWorkload, default_workloads};

fn workload(seed: u64) -> FileWorkload {
    default_workloads()
        .into_iter()
        .find(|w| w.seed == seed)
        .expect("a files workload with this seed")
}

fn explore(variant: FileVariant, seed: u64) -> Stats {
    let explorer = Explorer {
        stop_at_first: false,
        ..Explorer::new(variant, false)
    };
    explorer.explore(&workload(seed))
}

fn assert_caught(variant: FileVariant, stats: &Stats, invariant: &str) {
    let Some(first) = stats.violations.first() else {
        panic!("the files explorer did not notice {variant:?}: it is not good enough");
    };
    let Some(typical) = stats.violations.iter().find(|v| v.invariant == invariant) else {
        panic!("{variant:?} was caught, but never as a violation of {invariant}: {first}");
    };
    eprintln!(
        "{variant:?} caught, as it must be ({} violations); a typical one:\n{typical}",
        stats.violations.len()
    );
}

#[test]
fn survey() {
    for (variant, seed) in [
        (FileVariant::LinkNotDirSynced, 0x401),
        (FileVariant::LinkNotDirSynced, 0x402),
        (FileVariant::LinkNotDirSynced, 0x406),
    ] {
        let stats = explore(variant, seed);
        let mut kinds: Vec<&str> = stats.violations.iter().map(|v| v.invariant).collect();
        kinds.sort();
        kinds.dedup();
        eprintln!(
            "=== {variant:?} on {seed:x}: {} violations, {kinds:?}",
            stats.violations.len()
        );
        for inv in kinds {
            for v in stats
                .violations
                .iter()
                .filter(|v| v.invariant == inv && !v.detail.contains("bad magic"))
                .take(1)
            {
                eprintln!("{v}");
            }
        }
    }
    let _ = assert_caught;
}

#[test]
fn survey_faults() {
    use walden_tests::files::faults;
    for (variant, seed) in [
        (FileVariant::Correct, 0x405),
        (FileVariant::ForgetCacheIsNoop, 0x405),
        (FileVariant::ForgetCacheIsNoop, 0x403),
    ] {
        let explorer = Explorer {
            stop_at_first: false,
            ..Explorer::new(variant, false)
        };
        let t = std::time::Instant::now();
        let stats = faults::failed_syncs(&explorer, &workload(seed));
        let mut kinds: Vec<&str> = stats.violations.iter().map(|v| v.invariant).collect();
        kinds.sort();
        kinds.dedup();
        eprintln!(
            "=== failed syncs {variant:?} on {seed:x}: {} violations, {kinds:?} {}",
            stats.violations.len(),
            stats.line("x")
        );
        for inv in kinds {
            for v in stats
                .violations
                .iter()
                .filter(|v| v.invariant == inv && !v.detail.contains("bad magic"))
                .take(1)
            {
                eprintln!("{v}");
            }
        }
        let stats = faults::errors_at_each_op(&explorer, &workload(seed));
        let mut kinds: Vec<&str> = stats.violations.iter().map(|v| v.invariant).collect();
        kinds.sort();
        kinds.dedup();
        eprintln!(
            "=== errors {variant:?} on {seed:x}: {} violations, {kinds:?} {} {:?}",
            stats.violations.len(),
            stats.line("x"),
            t.elapsed()
        );
        for inv in kinds {
            for v in stats
                .violations
                .iter()
                .filter(|v| v.invariant == inv && !v.detail.contains("bad magic"))
                .take(2)
            {
                eprintln!("{v}");
            }
        }
    }
}
