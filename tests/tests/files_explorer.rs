//! The crash explorer over what walden-std ships (`FileStorage` on a simulated file system).
//!
//! ```text
//! cargo test -p walden-tests --test files_explorer -- --nocapture
//! WALDEN_EXPLORE_DEEP=1 cargo test -p walden-tests --test files_explorer -- --nocapture
//! ```

use std::time::Instant;

use walden_tests::explorer::{Explorer, Stats, deep_mode, explore_all};
use walden_tests::files::{FileVariant, deep_workloads, default_workloads};

#[test]
fn every_crash_point_of_every_files_workload() {
    let deep = deep_mode();
    let explorer = Explorer::new(FileVariant::Correct, deep);
    let mut workloads = default_workloads();
    if let Ok(only) = std::env::var("WALDEN_FILES_ONLY") {
        workloads.retain(|w| format!("{:x}", w.seed) == only);
    }
    if deep {
        workloads.extend(deep_workloads());
    }
    let started = Instant::now();
    let results = explore_all(&explorer, &workloads, 2);
    let mut total = Stats::default();
    for (workload, stats) in workloads.iter().zip(results) {
        println!("{}", stats.line(workload.name));
        for violation in stats.violations.iter().take(3) {
            println!("{violation}");
        }
        total.merge(stats);
    }
    let summary = format!(
        "crash states explored over FileStorage: {}, violations: {}",
        total.states,
        total.violations.len()
    );
    println!("{summary}");
    eprintln!("{summary}");
    println!(
        "({} crash points, {} sampled; {} nested states; {} recoveries; {:.1?} wall, {:.0} states/s)",
        total.crash_points,
        total.sampled_points,
        total.nested_states,
        total.recoveries,
        started.elapsed(),
        total.states as f64 / started.elapsed().as_secs_f64()
    );
    assert!(
        total.violations.is_empty(),
        "the files explorer found violations (see above)"
    );
}
