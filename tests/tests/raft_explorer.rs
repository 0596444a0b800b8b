//! The crash explorer over the raft log store (`walden-openraft` on two simulated directories).
//!
//! ```text
//! cargo test -p walden-tests --release --test raft_explorer -- --nocapture
//! WALDEN_EXPLORE_DEEP=1 cargo test -p walden-tests --release --test raft_explorer -- --nocapture
//! ```

use std::time::Instant;

use walden_tests::explorer::{Stats, deep_mode};
use walden_tests::raft::{RaftExplorer, RaftVariant, deep_workloads, default_workloads};

#[test]
fn every_crash_point_of_every_raft_workload() {
    let deep = deep_mode();
    let explorer = RaftExplorer::new(RaftVariant::Correct, deep);
    let mut workloads = default_workloads();
    if deep {
        workloads.extend(deep_workloads());
    }
    let started = Instant::now();
    let mut total = Stats::default();
    for workload in &workloads {
        let stats = explorer.explore(workload);
        println!("{}", stats.line(workload.name));
        for violation in stats.violations.iter().take(3) {
            println!("{violation}");
        }
        total.merge(stats);
    }
    let summary = format!(
        "crash states explored over LogStore: {}, violations: {}",
        total.states,
        total.violations.len()
    );
    println!("{summary}");
    eprintln!("{summary}");
    println!(
        "({} crash points, {} sampled; {} recoveries; {:.1?} wall, {:.0} states/s)",
        total.crash_points,
        total.sampled_points,
        total.recoveries,
        started.elapsed(),
        total.states as f64 / started.elapsed().as_secs_f64()
    );
    assert!(
        total.violations.is_empty(),
        "the raft store explorer found violations (see above)"
    );
}

/// Each broken store is caught, in the default run's workloads (explored in order until one
/// catches it), by the invariant expected.
fn caught(variant: RaftVariant, invariants: &[&str]) -> walden_tests::explorer::Violation {
    let explorer = RaftExplorer::new(variant, false);
    let mut found = Vec::new();
    for workload in default_workloads() {
        let stats = explorer.explore(&workload);
        println!(
            "{}",
            stats.line(&format!("{} ({variant:?})", workload.name))
        );
        found.extend(stats.violations);
        if !found.is_empty() {
            break;
        }
    }
    let first = found
        .first()
        .unwrap_or_else(|| panic!("the raft store explorer missed the broken store {variant:?}"));
    println!("{first}");
    assert!(
        found.iter().all(|v| invariants.contains(&v.invariant)),
        "{variant:?} was caught by an unexpected invariant: {first}"
    );
    found.swap_remove(0)
}

#[test]
fn a_store_that_acknowledges_before_syncing_is_caught() {
    caught(RaftVariant::AckBeforeSync, &["durability"]);
}

#[test]
fn a_purge_that_removes_entries_before_its_purge_point_is_durable_is_caught() {
    caught(RaftVariant::PurgeBeforeMetaDurable, &["reopen", "purge"]);
}

#[test]
fn a_store_that_reports_a_vote_saved_before_syncing_it_is_caught() {
    caught(RaftVariant::VoteBeforeSync, &["vote"]);
}

/// Entries submitted but not flushed, a commit naming them, then a vote or purge whose meta
/// record (holding the committed id) is durable before them (`AppendQueued` in `0x501`).
#[test]
fn a_store_whose_meta_overtakes_its_entries_is_caught() {
    caught(
        RaftVariant::MetaBeforeEntriesDurable,
        &["reopen", "in order"],
    );
}

#[test]
fn a_reopen_that_is_unsafe_only_when_interrupted_is_caught() {
    let found = caught(RaftVariant::RewriteOnReopen, &["durability"]);
    assert!(
        found.plan.contains("during the store's open"),
        "caught, but not by a crash during the open: {found}"
    );
}
