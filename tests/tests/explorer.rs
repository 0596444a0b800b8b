//! The crash-point explorer over every default workload (FAULT-MODEL.md), plus media faults,
//! failed syncs and arbitrary images.
//!
//! Run with the summary visible:
//!
//! ```text
//! cargo test -p walden-tests --test explorer -- --nocapture
//! WALDEN_EXPLORE_DEEP=1 cargo test -p walden-tests --test explorer -- --nocapture
//! ```

use std::time::Instant;

use walden_sim::SimRng;
use walden_tests::explorer::{
    Explorer, Stats, Variant, arbitrary, deep_mode, deep_workloads, default_workloads, explore_all,
    media, media_workloads, poison, replay,
};

fn say(line: &str) {
    println!("{line}");
}

fn report(stats: &Stats) {
    for violation in stats.violations.iter().take(5) {
        say(&violation.to_string());
    }
}

#[test]
fn every_crash_point_of_every_workload() {
    let deep = deep_mode();
    let explorer = Explorer::new(Variant::Correct, deep);
    let mut workloads = default_workloads();
    if deep {
        workloads.extend(deep_workloads());
    }
    let started = Instant::now();
    let results = explore_all(&explorer, &workloads, 2);
    let mut total = Stats::default();
    for (workload, stats) in workloads.iter().zip(results) {
        say(&stats.line(workload.name));
        report(&stats);
        total.merge(stats);
    }
    let summary = format!(
        "crash states explored: {}, violations: {}",
        total.states,
        total.violations.len()
    );
    // On stdout for `--nocapture`, and on stderr so that it also shows when stdout is lost.
    println!("{summary}");
    eprintln!("{summary}");
    say(&format!(
        "({} crash points, {} sampled; {} nested states, {} repeats of a state already gone on from; {} recoveries; {:.1?} wall, {:.0} states/s)",
        total.crash_points,
        total.sampled_points,
        total.nested_states,
        total.repeats_skipped,
        total.recoveries,
        started.elapsed(),
        total.states as f64 / started.elapsed().as_secs_f64()
    ));
    assert!(
        total.violations.is_empty(),
        "the explorer found violations (see above)"
    );
    if !deep {
        assert!(
            total.states >= 100_000,
            "explored only {} states",
            total.states
        );
    }
}

#[test]
fn media_faults_never_pass_as_valid_data() {
    let mut total = Stats::default();
    for workload in media_workloads() {
        let flips = media::bit_flips(&workload, Variant::Correct);
        say(&flips.line(&format!("{} (bit flips)", workload.name)));
        report(&flips);
        total.merge(flips);
        let misdirected = media::misdirected_writes(&workload);
        say(&misdirected.line(&format!("{} (misdirected)", workload.name)));
        report(&misdirected);
        total.merge(misdirected);
    }
    assert!(
        total.violations.is_empty(),
        "media-fault violations (see above)"
    );
}

#[test]
fn a_failed_sync_poisons_the_log_and_loses_nothing_acknowledged() {
    let explorer = Explorer::new(Variant::Correct, deep_mode());
    let mut total = Stats::default();
    for workload in default_workloads() {
        let stats = poison::failed_syncs(&explorer, &workload);
        say(&stats.line(&format!("{} (failed syncs)", workload.name)));
        report(&stats);
        total.merge(stats);
    }
    assert!(
        total.violations.is_empty(),
        "poisoning violations (see above)"
    );
}

#[test]
fn arbitrary_images_open_or_refuse_but_never_panic() {
    let cases = if deep_mode() { 20_000 } else { 2_000 };
    let workloads: Vec<_> = default_workloads()
        .into_iter()
        .chain(media_workloads())
        .collect();
    let images: Vec<_> = workloads.iter().map(arbitrary::segments_of).collect();
    let mut failures = Vec::new();
    for case in 0..cases {
        let mut rng = SimRng::derived(0xa4b1, case);
        let pick = rng.below(workloads.len() as u64) as usize;
        let mut segments = images[pick].clone();
        arbitrary::mutate(&mut segments, &mut rng);
        let sim = arbitrary::storage_with(&segments);
        if let Err(why) = arbitrary::open_anything(&sim, &workloads[pick]) {
            failures.push(format!("arbitrary image case {case}: {why}"));
        }
    }
    for failure in failures.iter().take(5) {
        say(failure);
    }
    say(&format!(
        "arbitrary images: {cases} cases, {} failures",
        failures.len()
    ));
    assert!(failures.is_empty());
}

#[test]
fn a_case_replays_from_its_printed_form() {
    // A passing case replays to no violation; a failing one prints itself again.
    assert!(replay("seed=104 op=40 plan=e3").is_empty());
    assert!(replay("seed=109 op=20 plan=e100").is_empty());
}
