//! Proof that the explorer can fail (FAULT-MODEL.md, "Proving the checker can fail"): each
//! deliberately broken variant must produce at least one violation.

use walden_tests::explorer::{
    Explorer, Stats, Variant, Workload, default_workloads, media, media_workloads,
};

fn workload(name: &str) -> Workload {
    default_workloads()
        .into_iter()
        .chain(media_workloads())
        .find(|w| w.name == name)
        .expect("a workload with this name")
}

fn explore(variant: Variant, name: &str) -> Stats {
    let explorer = Explorer {
        stop_at_first: false,
        ..Explorer::new(variant, false)
    };
    explorer.explore(&workload(name))
}

fn assert_caught(variant: Variant, stats: &Stats, invariant: &str) {
    let Some(first) = stats.violations.first() else {
        panic!("the explorer did not notice {variant:?}: the explorer is not good enough");
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
fn a_sync_that_does_nothing_is_caught() {
    let stats = explore(Variant::SyncIsNoop, "small records, sync each");
    assert_caught(Variant::SyncIsNoop, &stats, "durability");
}

#[test]
fn a_torn_tail_left_in_place_is_caught() {
    let stats = explore(Variant::TruncateIsNoopDuringOpen, "manual sync, runs of 4");
    assert_caught(Variant::TruncateIsNoopDuringOpen, &stats, "no phantoms");
}

#[test]
fn an_early_rotation_whose_old_segment_is_never_synced_is_caught() {
    // The durable LSN advances while the segments an early rotation left behind are still
    // unsynced: acknowledged records in them are lost at the next crash.
    let stats = explore(
        Variant::OlderSegmentSyncIsNoop,
        "early rotation, every 3 records",
    );
    assert_caught(Variant::OlderSegmentSyncIsNoop, &stats, "durability");
}

#[test]
fn a_rotation_without_directory_sync_is_caught() {
    let stats = explore(Variant::SyncDirIsNoop, "rotation, small segments");
    assert_caught(Variant::SyncDirIsNoop, &stats, "durability");
}

#[test]
fn a_reader_that_skips_payload_checksums_is_caught() {
    let stats = media::bit_flips(
        &workload("media: sync each, rotating"),
        Variant::NaiveReader,
    );
    assert_caught(Variant::NaiveReader, &stats, "durability");
}

#[test]
fn the_correct_variant_passes_the_same_runs() {
    for name in ["small records, sync each", "rotation, small segments"] {
        let stats = explore(Variant::Correct, name);
        assert!(stats.violations.is_empty(), "{}", stats.violations[0]);
    }
    let stats = media::bit_flips(&workload("media: sync each, rotating"), Variant::Correct);
    assert!(stats.violations.is_empty(), "{}", stats.violations[0]);
}

#[test]
fn a_printed_case_replays_to_the_same_violation() {
    let stats = explore(Variant::SyncIsNoop, "small records, sync each");
    let first = &stats.violations[0];
    let replayed =
        walden_tests::explorer::replay_variant(Variant::SyncIsNoop, &first.case.to_string());
    assert!(
        replayed
            .iter()
            .any(|v| v.invariant == first.invariant && v.detail == first.detail),
        "replaying {} did not reproduce: {first}",
        first.case
    );
}
