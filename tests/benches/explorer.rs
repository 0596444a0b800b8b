//! Crash states explored per second, per workload and in total. Plain timing, no assertions:
//!
//! ```text
//! cargo bench -p walden-tests --bench explorer
//! ```

use std::time::Instant;

use walden_tests::explorer::{Explorer, Stats, Variant, default_workloads, explore_all};

fn main() {
    let explorer = Explorer::new(Variant::Correct, false);
    let workloads = default_workloads();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(2));
    // One thread per workload first, for per-workload rates.
    for workload in &workloads {
        let started = Instant::now();
        let stats = explorer.explore(workload);
        let secs = started.elapsed().as_secs_f64();
        println!(
            "{:<34} {:>7} states {:>9} nested {:>8.2}s {:>9.0} states/s {:>10.0} recoveries/s",
            workload.name,
            stats.states,
            stats.nested_states,
            secs,
            stats.states as f64 / secs,
            stats.recoveries as f64 / secs
        );
    }
    let started = Instant::now();
    let mut total = Stats::default();
    for stats in explore_all(&explorer, &workloads, threads) {
        total.merge(stats);
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "total on {threads} threads: {} states in {secs:.2}s = {:.0} states/s ({:.0} recoveries/s, {} violations)",
        total.states,
        total.states as f64 / secs,
        total.recoveries as f64 / secs,
        total.violations.len()
    );
}
