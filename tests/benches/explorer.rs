//! Crash states explored per second, per workload and in total, and per CPU-second of the
//! process (the per-core rate, which other work on a shared machine disturbs less than wall
//! time). Plain timing, no assertions:
//!
//! ```text
//! cargo bench -p walden-tests --bench explorer
//! ```

use core::time::Duration;
use std::time::Instant;

use rustix::time::{ClockId, clock_gettime};

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
    let cpu_started = cpu_time();
    let mut total = Stats::default();
    for stats in explore_all(&explorer, &workloads, threads) {
        total.merge(stats);
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu = (cpu_time() - cpu_started).as_secs_f64();
    println!(
        "total on {threads} threads: {} states in {secs:.2}s = {:.0} states/s ({:.0} recoveries/s, {} violations); {cpu:.2} CPU-s = {:.0} states per CPU-second",
        total.states,
        total.states as f64 / secs,
        total.recoveries as f64 / secs,
        total.violations.len(),
        total.states as f64 / cpu
    );
}

/// CPU time used by the whole process so far (every thread).
fn cpu_time() -> Duration {
    let t = clock_gettime(ClockId::ProcessCPUTime);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}
