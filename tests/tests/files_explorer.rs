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

fn fault_pass(
    name: &str,
    pass: fn(&Explorer<FileVariant>, &walden_tests::files::FileWorkload) -> Stats,
) {
    let explorer = Explorer::new(FileVariant::Correct, deep_mode());
    let mut total = Stats::default();
    let workloads = default_workloads();
    let started = Instant::now();
    let results: Vec<Stats> = std::thread::scope(|scope| {
        let handles: Vec<_> = workloads
            .chunks(workloads.len().div_ceil(2))
            .map(|chunk| {
                let explorer = &explorer;
                scope.spawn(move || chunk.iter().map(|w| pass(explorer, w)).collect::<Vec<_>>())
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("no panic"))
            .collect()
    });
    for (workload, stats) in workloads.iter().zip(results) {
        println!("{}", stats.line(&format!("{} ({name})", workload.name)));
        for violation in stats.violations.iter().take(3) {
            println!("{violation}");
        }
        total.merge(stats);
    }
    println!(
        "{name}: {} runs, {} states, {} violations, {:.1?}",
        total.crash_points,
        total.states,
        total.violations.len(),
        started.elapsed()
    );
    assert!(
        total.violations.is_empty(),
        "{name}: violations (see above)"
    );
}

#[test]
fn failed_fdatasyncs_poison_and_a_restart_reads_only_the_disk() {
    fault_pass("failed syncs", walden_tests::files::faults::failed_syncs);
}

#[test]
fn an_error_at_any_file_operation_loses_nothing_acknowledged() {
    fault_pass("errors", walden_tests::files::faults::errors_at_each_op);
}
