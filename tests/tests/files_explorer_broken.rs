//! Proof that the files explorer can fail (FAULT-MODEL.md, "Proving the checker can fail"):
//! each deliberately broken variant of walden-std's file protocol must be reported, as a
//! violation of the invariant it breaks.

use walden_core::{Config, SyncPolicy};
use walden_tests::explorer::{Explorer, Stats};
use walden_tests::files::{
    FileStep, FileVariant, FileWorkload, default_workloads, faults, replay_variant,
};

fn workload(seed: u64) -> FileWorkload {
    default_workloads()
        .into_iter()
        .find(|w| w.seed == seed)
        .expect("a files workload with this seed")
}

fn explorer(variant: FileVariant) -> Explorer<FileVariant> {
    Explorer {
        stop_at_first: false,
        ..Explorer::new(variant, false)
    }
}

/// Asserts that some violation is of `invariant` and mentions `detail`.
fn assert_caught(variant: FileVariant, stats: &Stats, invariant: &str, detail: &str) {
    assert_caught_as(variant, stats, &[(invariant, detail)]);
}

/// Asserts that some violation is of one of these (invariant, detail) kinds.
fn assert_caught_as(variant: FileVariant, stats: &Stats, kinds: &[(&str, &str)]) {
    let Some(first) = stats.violations.first() else {
        panic!("the files explorer did not notice {variant:?}: it is not good enough");
    };
    let typical = stats.violations.iter().find(|v| {
        kinds
            .iter()
            .any(|(invariant, detail)| v.invariant == *invariant && v.detail.contains(detail))
    });
    let Some(typical) = typical else {
        panic!("{variant:?} was caught, but never as {kinds:?}: {first}");
    };
    eprintln!(
        "{variant:?} caught, as it must be ({} violations); a typical one:\n{typical}",
        stats.violations.len()
    );
}

#[test]
fn a_link_without_its_directory_sync_is_caught() {
    // The next spare is prepared late (background work is deferred), so records are
    // acknowledged in the linked segment before anything else syncs the directory. When the
    // link vanishes, the previous segment's seal names the missing successor: recovery
    // refuses a pure crash (and where the seal is gone too, records are lost).
    let variant = FileVariant::LinkNotDirSynced;
    let stats = explorer(variant).explore(&workload(0x402));
    assert_caught_as(
        variant,
        &stats,
        &[
            ("durability", "lost"),
            ("classification", "MissingNewestSegment"),
        ],
    );
}

#[test]
fn a_sync_reported_before_the_buffer_reaches_the_file_is_caught() {
    let variant = FileVariant::SyncSkipsFlush;
    let stats = explorer(variant).explore(&workload(0x401));
    assert_caught(variant, &stats, "durability", "lost");
    let stats = explorer(variant).explore(&workload(0x406));
    assert_caught(variant, &stats, "durability", "lost");
}

#[test]
fn a_zero_fill_that_ignores_the_writer_is_caught() {
    let variant = FileVariant::FillIgnoresStop;
    let stats = explorer(variant).explore(&workload(0x402));
    assert_caught(variant, &stats, "durability", "lost");
}

#[test]
fn a_spare_holding_stale_bytes_is_caught() {
    // A crash after the link, before the new header is durable, leaves the old segment's
    // header at the front of the new one: a pure crash that recovery must refuse.
    let variant = FileVariant::StaleSpare;
    let stats = explorer(variant).explore(&workload(0x401));
    assert_caught(variant, &stats, "classification", "ForeignSegment");
    // The same on the bulk path, where spares are preallocated but not zero-filled.
    let stats = explorer(variant).explore(&workload(0x40b));
    assert_caught(variant, &stats, "classification", "ForeignSegment");
}

#[test]
fn a_deferred_reservation_carried_out_on_a_sealed_segment_is_caught() {
    // A log reopened and rotated before it wrote to its active segment: the zero-fill meant
    // for that segment lands after its seal, and a torn one damages a sealed segment.
    let variant = FileVariant::DeferredReserveAnyWrite;
    let stats = explorer(variant).explore(&workload(0x406));
    assert_caught(variant, &stats, "classification", "SealedSegmentDamaged");
}

#[test]
fn a_restart_that_reads_the_page_cache_is_caught() {
    // After a failed fdatasync, a restarted process that does not drop the cached pages
    // reads records the disk never got, calls them durable and builds on them.
    let variant = FileVariant::ForgetCacheIsNoop;
    let stats = faults::failed_syncs(&explorer(variant), &workload(0x403));
    assert_caught(variant, &stats, "classification", "MidLogCorruption");
}

#[test]
fn a_clean_close_marker_left_after_a_failed_sync_is_caught() {
    // The process that saw its fdatasync fail closes the log and leaves the marker anyway:
    // the restarted process trusts its page cache, reads records the disk never got and
    // builds on them, as if it never dropped the cached pages.
    let variant = FileVariant::CleanAlways;
    let stats = faults::failed_syncs(&explorer(variant), &workload(0x403));
    assert_caught(variant, &stats, "classification", "MidLogCorruption");
}

#[test]
fn a_replay_that_hands_over_records_past_damage_is_caught() {
    // An early-sealed segment that lost its unsynced tail to the power cut: its successor's
    // records were never acknowledged, and recovery cuts the log there and removes the
    // successor. A replay that hands them over before the open decides has given the
    // application records the log no longer holds.
    let variant = FileVariant::ReplayIgnoresDamage;
    let stats = Explorer {
        stop_at_first: true,
        ..shallow(variant)
    }
    .explore(&pending_chain());
    // Handed over and then gone: either the recovered log holds fewer records than were
    // handed over, or it ends before where the replay would go on reading.
    assert_caught_as(
        variant,
        &stats,
        &[("replay", "differ"), ("replay", "is not in the log")],
    );
}

#[test]
fn a_replay_that_hands_over_a_stale_file_is_caught() {
    // The same variant, on the workload with a restored copy of a segment the log removed
    // from its front: its records are not the log's, and a replay that ignores the rule
    // leaving stale files out hands them over before the live log's first record.
    let variant = FileVariant::ReplayIgnoresDamage;
    let stats = Explorer {
        stop_at_first: true,
        ..shallow(variant)
    }
    .explore(&workload(0x410));
    assert_caught(variant, &stats, "replay", "they differ from the 1th on");
}

/// One round of crash and recovery under the default policy: `pending_chain`'s unsynced
/// writes over three files make its nested rounds many minutes long, and what it is for is
/// the first recovery's replay.
fn shallow(variant: FileVariant) -> Explorer<FileVariant> {
    Explorer {
        depth: 1,
        all_policies: false,
        ..explorer(variant)
    }
}

/// Early rotation with no sync for several segments: a crash leaves a chain of pending
/// segments, sealed but unsynced, in front of the newest.
fn pending_chain() -> FileWorkload {
    let config = Config::default()
        .with_sync_policy(SyncPolicy::Manual)
        .with_segment_size(4096)
        .with_early_rotation(true);
    let mut steps = vec![FileStep::Append(1500); 5];
    steps.push(FileStep::Sync);
    FileWorkload::new(
        "wal: early rotation, a chain of pending segments",
        0x4f0,
        config,
        steps,
    )
}

/// A seal's early sync beside a leader's detached sync of the same file (fsyncgate): with a
/// failed sync on the early one, the leader's returns `Ok` and publishes records the disk
/// never got (`0x411` holds the detached sync across the rotation).
#[test]
fn an_early_seal_sync_beside_a_detached_sync_is_caught() {
    let variant = FileVariant::EarlySealIgnoresDetached;
    let stats = faults::failed_syncs(&explorer(variant), &workload(0x411));
    assert_caught(variant, &stats, "durability", "lost");
}

#[test]
fn an_early_rotation_sync_that_does_nothing_is_caught() {
    // The directory's early sync after a link: with the next spare prepared late, records
    // are acknowledged in the linked segment before anything else syncs the directory (as
    // for `LinkNotDirSynced`).
    let variant = FileVariant::EarlySyncNoop;
    let stats = explorer(variant).explore(&workload(0x402));
    assert_caught_as(
        variant,
        &stats,
        &[
            ("durability", "lost"),
            ("classification", "MissingNewestSegment"),
        ],
    );
    // The sealed segment's early sync: early rotation leaves unsynced records in it, and the
    // next sync's join reports them durable.
    let stats = explorer(variant).explore(&workload(0x40c));
    assert_caught(variant, &stats, "durability", "lost");
}

#[test]
fn the_correct_variant_passes_the_same_runs() {
    for seed in [0x401, 0x402, 0x406, 0x40b, 0x40c, 0x410] {
        let stats = explorer(FileVariant::Correct).explore(&workload(seed));
        assert!(stats.violations.is_empty(), "{}", stats.violations[0]);
    }
    let stats = shallow(FileVariant::Correct).explore(&pending_chain());
    assert!(stats.violations.is_empty(), "{}", stats.violations[0]);
    for seed in [0x403, 0x411] {
        let stats = faults::failed_syncs(&explorer(FileVariant::Correct), &workload(seed));
        assert!(stats.violations.is_empty(), "{}", stats.violations[0]);
    }
}

#[test]
fn a_printed_case_replays_to_the_same_violation() {
    let variant = FileVariant::FillIgnoresStop;
    let stats = explorer(variant).explore(&workload(0x402));
    let first = stats
        .violations
        .iter()
        .find(|v| v.invariant == "durability")
        .expect("a durability violation");
    let replayed = replay_variant(variant, &first.case.to_string());
    assert!(
        replayed
            .iter()
            .any(|v| v.invariant == first.invariant && v.detail == first.detail),
        "replaying {} did not reproduce: {first}",
        first.case
    );
}

#[test]
fn a_replay_read_ahead_that_misplaces_its_chunks_is_caught() {
    // The replay's scan judges bytes a byte away from where it thinks they are: a sealed
    // segment looks damaged, and the open, which decides from those scans, refuses a log
    // that a pure crash left (or cuts it, or the replay hands over what it does not hold).
    let variant = FileVariant::ReadAheadMisplaced;
    let stats = Explorer {
        stop_at_first: true,
        ..shallow(variant)
    }
    .explore(&workload(0x401));
    assert_caught_as(
        variant,
        &stats,
        &[
            ("classification", "SealedSegmentDamaged"),
            ("replay", ""),
            ("durability", "lost"),
        ],
    );
}

#[test]
fn a_removed_segment_shrunk_before_its_unlink_is_durable_is_caught() {
    // A crash after the shrink, before the directory sync, brings the name of a segment
    // `truncate_front` removed back, on a file cut short: recovery refuses it.
    let variant = FileVariant::ShrinkBeforeUnlinkDurable;
    let stats = explorer(variant).explore(&workload(0x404));
    assert_caught(variant, &stats, "classification", "shorter than its header");
}

#[test]
fn zeros_asked_of_the_file_system_from_below_the_segment_end_are_caught() {
    // The workload that has the file system make its zeros: the reopened active segment's
    // rest (and a new log's first segment's) is zeroed from the sector below its end, over
    // the last records (and the header).
    let variant = FileVariant::ZeroesAlignedDown;
    let stats = explorer(variant).explore(&workload(0x40f));
    assert_caught_as(
        variant,
        &stats,
        &[("durability", "lost"), ("classification", "")],
    );
}
