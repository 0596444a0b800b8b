//! One test per row of the recovery decision table, on real bytes.

use super::*;
use crate::inspect::{Verdict, inspect};
use crate::{Case, Lsn, OpenError, RecoveryPolicy, SyncPolicy};

/// Fixed-size payloads so record offsets are easy: record `i` of segment 0 is at 64 + 40(i−1).
fn fixed(i: u64) -> std::vec::Vec<u8> {
    std::format!("rec{i:05}").into_bytes()
}

fn at(i: u64) -> usize {
    64 + 40 * (i as usize - 1)
}

fn log_with(n: u64, cfg: Config) -> Mem {
    let (mut wal, _) = open(Mem::default(), cfg);
    for i in 1..=n {
        wal.append(&fixed(i)).unwrap();
    }
    wal.into_storage()
}

fn big() -> Config {
    Config::default()
}

fn corruption(r: Result<(TestWal, crate::RecoveryReport), OpenError<mem::MemError>>) -> Case {
    match r {
        Err(OpenError::Corrupted(c)) => c.case,
        Err(e) => panic!("unexpected error {e:?}"),
        Ok((_, report)) => panic!("opened: {report}"),
    }
}

#[test]
fn clean_log_reopens_without_findings() {
    let (_, report) = open(log_with(5, big()), big());
    assert!(report.is_clean());
    assert_eq!(report.records, 5);
}

#[test]
fn torn_tail_is_cut_and_reported() {
    let mut mem = log_with(5, big());
    let f = mem.files.get_mut(&0).unwrap();
    f.truncate(at(5) + 20); // record 5 torn mid-header-and-payload
    let (wal, report) = open(mem.clone(), big());
    let cut = report.cut.expect("cut reported");
    assert_eq!(
        (cut.case, cut.first_lsn, cut.offset, cut.bytes),
        (Case::TornTail, Lsn(5), at(5) as u64, 20)
    );
    assert_eq!(wal.last_lsn(), Lsn(4));
    assert_eq!(
        wal.storage().files[&0].len(),
        at(5),
        "cut durably on the medium"
    );
    // Strict refuses the same image.
    assert_eq!(
        corruption(try_open(mem, big().with_recovery(RecoveryPolicy::Strict))),
        Case::TornTail
    );
}

#[test]
fn garbage_tail_after_valid_records_is_torn() {
    let mut mem = log_with(3, big());
    mem.files
        .get_mut(&0)
        .unwrap()
        .extend_from_slice(&[0xAB; 70]);
    let (wal, report) = open(mem, big());
    assert_eq!(report.cut.unwrap().bytes, 70);
    assert_eq!(wal.last_lsn(), Lsn(3));
}

#[test]
fn zero_tail_is_clean_preallocated_space() {
    let mut mem = log_with(3, big());
    mem.files.get_mut(&0).unwrap().extend_from_slice(&[0; 4096]);
    let (mut wal, report) = open(mem, big());
    assert!(report.is_clean(), "{report}");
    assert_eq!(wal.append(b"next").unwrap(), Lsn(4));
    let (wal, _) = open(wal.into_storage(), big());
    assert_eq!(wal.last_lsn(), Lsn(4));
}

#[test]
fn unsynced_records_after_a_lost_write_are_orphans_not_corruption() {
    // Manual sync: nothing after the open is durable, so no record vouches for record 2.
    let cfg = big().with_sync_policy(SyncPolicy::Manual);
    let mut mem = log_with(4, cfg);
    // Reordered crash: record 2's write was lost (zeros), records 3 and 4 persisted.
    mem.files.get_mut(&0).unwrap()[at(2)..at(3)].fill(0);
    let (wal, report) = open(mem, cfg);
    let cut = report.cut.expect("torn tail");
    assert_eq!(
        (cut.case, cut.first_lsn, cut.orphans),
        (Case::TornTail, Lsn(2), 2)
    );
    assert_eq!(wal.last_lsn(), Lsn(1));
    assert_eq!(
        wal.counters().corruption_events,
        0,
        "a pure crash is never corruption"
    );
}

#[test]
fn damage_that_a_later_record_proves_acknowledged_is_mid_log_corruption() {
    let mut mem = log_with(5, big()); // every append synced: record 3 vouches for record 2
    mem.files.get_mut(&0).unwrap()[at(2) + 35] ^= 0x10; // a bit flip in record 2's payload
    assert_eq!(
        corruption(try_open(mem.clone(), big())),
        Case::MidLogCorruption
    );
    match try_open(mem.clone(), big()) {
        Err(OpenError::Corrupted(c)) => {
            assert_eq!(
                (c.segment, c.offset, c.lsn),
                (0, at(2) as u64, Some(Lsn(2)))
            );
        }
        _ => unreachable!(),
    }
    if let Some((wal, report)) = salvaged(&mem, big()) {
        let loss = report.salvage.expect("salvage reported");
        assert_eq!(
            (loss.case, loss.first_lost, loss.last_known),
            (Case::MidLogCorruption, Lsn(2), Some(Lsn(5)))
        );
        assert_eq!(wal.last_lsn(), Lsn(1));
    }
}

fn rotated() -> Mem {
    let (mut wal, _) = open(Mem::default(), small());
    for i in 1..=30 {
        wal.append(&fixed(i)).unwrap();
    }
    assert!(wal.segments().len() >= 4);
    wal.into_storage()
}

#[test]
fn damage_in_a_sealed_segment_is_an_error() {
    let mut mem = rotated();
    let f = mem.files.get_mut(&1).unwrap();
    // The very last record of a sealed segment (before its seal): its successor vouches for it.
    let last = f.len() - crate::format::RECORD_HEADER_LEN - crate::format::META_LEN - 3;
    f[last] ^= 1;
    assert_eq!(
        corruption(try_open(mem.clone(), small())),
        Case::SealedSegmentDamaged
    );
    if let Some((wal, report)) = salvaged(&mem, small()) {
        let loss = report.salvage.unwrap();
        assert_eq!(loss.case, Case::SealedSegmentDamaged);
        assert_eq!(wal.segments().len(), 2);
        assert_eq!(wal.last_lsn(), loss.first_lost.prev());
        assert!(loss.segments_dropped >= 2);
    }
}

#[test]
fn a_seal_after_damage_is_not_counted_as_a_record() {
    let mem = rotated();
    let mut before = std::vec::Vec::new();
    let clean = inspect::<_, Fixed<8>>(&mem, &small(), &mut [0u8; 256], &mut |s| {
        before.push((s.id, s.records))
    })
    .unwrap();
    let (_, in_one) = before.iter().copied().find(|&(id, _)| id == 1).unwrap();
    assert!(in_one >= 2);
    // The first record of sealed segment 1 damaged: the rest of its records follow, then its
    // seal, which is metadata, not a record of the log.
    let mut mem = mem;
    mem.files.get_mut(&1).unwrap()[at(1) + crate::format::RECORD_HEADER_LEN + 1] ^= 1;
    let mut orphans = None;
    let damaged = inspect::<_, Fixed<8>>(&mem, &small(), &mut [0u8; 256], &mut |s| {
        if s.id == 1 {
            orphans = Some((s.records, s.orphans));
        }
    })
    .unwrap();
    assert_eq!(
        orphans,
        Some((0, in_one as u32 - 1)),
        "the records after the damage, no seal"
    );
    assert_eq!(
        damaged.records,
        clean.records - 1,
        "every record but the damaged one"
    );
}

#[test]
fn sealed_segment_trailing_garbage_is_reported_not_fatal() {
    let mut mem = rotated();
    mem.files.get_mut(&1).unwrap().extend_from_slice(b"junk");
    let (wal, report) = open(mem, small());
    assert!(report.trailing_garbage.is_some());
    assert_eq!(wal.last_lsn(), Lsn(30));
}

#[test]
fn missing_segment_is_an_error_and_nothing_is_deleted() {
    let mut mem = rotated();
    mem.files.remove(&2);
    let n = mem.files.len();
    assert_eq!(
        corruption(try_open(mem.clone(), small())),
        Case::MissingSegment
    );
    assert_eq!(mem.files.len(), n);
    if let Some((_, report)) = salvaged(&mem, small()) {
        let loss = report.salvage.unwrap();
        assert_eq!(loss.case, Case::MissingSegment);
        assert_eq!(
            loss.last_known,
            Some(Lsn(30)),
            "records in dropped segments are counted"
        );
    }
}

#[test]
fn foreign_and_newer_segments_are_refused() {
    // A segment from another log.
    let mut mem = rotated();
    let other = rotated_with_seed(99);
    mem.files.insert(2, other.files[&2].clone());
    assert_eq!(corruption(try_open(mem, small())), Case::ForeignSegment);
    // A header from a newer version (valid checksum).
    let mut mem = rotated();
    let f = mem.files.get_mut(&3).unwrap();
    f[8..10].copy_from_slice(&(crate::format::FORMAT_VERSION + 1).to_le_bytes());
    let crc = crate::checksum::crc32c(&f[..60]);
    f[60..64].copy_from_slice(&crc.to_le_bytes());
    assert_eq!(
        corruption(try_open(mem.clone(), small())),
        Case::NewerVersion
    );
    // Salvage refuses it too, and changes nothing: a newer build reads that segment (it
    // dropped it and every later one).
    #[cfg(feature = "salvage")]
    {
        let mut opened = mem.clone();
        let salvage = small().with_recovery(RecoveryPolicy::Salvage);
        let got = Wal::<&mut Mem, Fixed<16>>::open(&mut opened, salvage, &mut [0u8; 4096]);
        let Err(OpenError::Corrupted(c)) = got.map(|(_, r)| r) else {
            panic!("Salvage opened a log with a newer segment");
        };
        assert_eq!((c.case, c.segment), (Case::NewerVersion, 3));
        assert!(opened.files == mem.files, "nothing dropped");
    }
}

fn rotated_with_seed(seed: u64) -> Mem {
    let cfg = small().with_salt_seed(seed);
    let (mut wal, _) = open(Mem::default(), cfg);
    for i in 1..=30 {
        wal.append(&fixed(i)).unwrap();
    }
    wal.into_storage()
}

#[test]
fn torn_creation_of_the_newest_segment_is_rewritten() {
    let mut mem = rotated();
    let next = *mem.files.keys().last().unwrap() + 1;
    mem.files.insert(next, std::vec![0; 20]); // created, header never made it
    let (mut wal, report) = open(mem.clone(), small());
    assert_eq!(report.rewritten_header, Some(next));
    assert_eq!(wal.last_lsn(), Lsn(30));
    assert_eq!(wal.append(b"x").unwrap(), Lsn(31));
    assert_eq!(
        corruption(try_open(mem, small().with_recovery(RecoveryPolicy::Strict))),
        Case::TornCreation
    );
}

#[test]
fn damaged_header_in_a_longer_file_is_corruption() {
    let mut mem = rotated();
    mem.files.get_mut(&1).unwrap()[30] ^= 0xff;
    assert_eq!(corruption(try_open(mem, small())), Case::DamagedHeader);
}

#[test]
fn absurd_length_with_valid_header_checksum_is_not_trusted() {
    // A record whose header claims 4 GiB: the length is checked before any allocation or read.
    let mut mem = log_with(2, big());
    let salt = crate::format::SegmentHeader::decode(&mem.files[&0])
        .unwrap()
        .salt;
    let h = crate::format::RecordHeader {
        length: u32::MAX,
        lsn: Lsn(3),
        payload_crc: 0,
        kind: crate::format::RecordKind::Single,
        flags: crate::format::RecordFlags::PLAIN,
        ack_gap: 1,
    }
    .encode(crate::ChecksumAlgorithm::Crc32c, salt);
    mem.files.get_mut(&0).unwrap().extend_from_slice(&h);
    let (wal, report) = open(mem, big());
    assert_eq!(
        report.cut.unwrap().detail,
        detail("record length beyond any max_record_size")
    );
    assert_eq!(wal.last_lsn(), Lsn(2));
}

#[test]
fn recovery_is_idempotent() {
    let mut mem = log_with(6, big().with_sync_policy(SyncPolicy::Manual));
    mem.files.get_mut(&0).unwrap().truncate(at(6) + 7);
    let (wal, first) = open(mem, big());
    let (wal2, second) = open(wal.into_storage(), big());
    assert!(first.cut.is_some());
    assert!(second.is_clean());
    assert_eq!(all(&wal2).len(), 5);
}

#[test]
fn every_checksum_algorithm_round_trips() {
    for alg in [
        crate::ChecksumAlgorithm::Crc32,
        crate::ChecksumAlgorithm::Crc64,
    ] {
        if !alg.is_available() {
            continue;
        }
        let cfg = small().with_checksum(alg);
        let (mut wal, _) = open(Mem::default(), cfg);
        for i in 1..=12 {
            wal.append(&fixed(i)).unwrap();
        }
        let (wal, report) = open(wal.into_storage(), big());
        assert!(report.is_clean());
        assert_eq!(all(&wal).len(), 12);
    }
}

#[test]
fn summaries_made_ahead_are_used_for_sealed_segments_only_when_they_match() {
    let mem = rotated();
    let cfg = small();
    let mut scratch = [0u8; 512];
    let summary_of = |m: &Mem, id| crate::raw::scan_segment(m, id, &cfg, &mut [0u8; 512]).unwrap();
    let clean: std::vec::Vec<_> = mem
        .files
        .keys()
        .map(|id| summary_of(&mem, *id).unwrap())
        .collect();
    let lookup = |id| clean.iter().find(|s| s.segment == id).copied();
    let (wal, report) =
        Wal::<Mem, Fixed<16>>::open_with_summaries(mem.clone(), cfg, &mut scratch, &lookup)
            .unwrap();
    assert!(report.is_clean());
    assert_eq!(all(&wal).len(), 30);

    // A summary of a damaged copy (same salt, same length) is trusted: proof it is used.
    let mut damaged = mem.clone();
    damaged.files.get_mut(&1).unwrap()[100] ^= 1;
    let bad = summary_of(&damaged, 1).unwrap();
    assert!(!bad.is_clean());
    let r = Wal::<Mem, Fixed<16>>::open_with_summaries(mem.clone(), cfg, &mut scratch, &|id| {
        (id == 1).then_some(bad)
    });
    assert_eq!(corruption(r), Case::SealedSegmentDamaged);

    // A summary whose salt or length no longer matches is ignored.
    let other = rotated_with_seed(5);
    let foreign = summary_of(&other, 1).unwrap();
    let (_, report) = Wal::<Mem, Fixed<16>>::open_with_summaries(mem, cfg, &mut scratch, &|id| {
        (id == 1).then_some(foreign)
    })
    .unwrap();
    assert!(report.is_clean());
}

#[test]
fn a_summary_of_the_newest_segment_replaces_only_its_scan() {
    let mem = rotated();
    let cfg = small();
    let mut scratch = [0u8; 512];
    let newest = *mem.files.keys().last().unwrap();
    let summary_of = |m: &Mem| crate::raw::scan_segment(m, newest, &cfg, &mut [0u8; 512]).unwrap();
    // A clean summary of the newest segment opens it as the scan would.
    let clean = summary_of(&mem).unwrap();
    let (wal, report) =
        Wal::<Mem, Fixed<16>>::open_with_summaries(mem.clone(), cfg, &mut scratch, &|id| {
            (id == newest).then_some(clean)
        })
        .unwrap();
    assert!(report.is_clean());
    assert_eq!(all(&wal).len(), 30);
    // A summary that saw a torn last record (same salt, same length) is trusted, and the
    // damage it reports is classified and cut here: proof that it is used, and that the
    // newest segment's tail handling still runs.
    let mut torn = mem.clone();
    let len = torn.files[&newest].len();
    torn.files.get_mut(&newest).unwrap()[len - 3] ^= 0x55;
    let bad = summary_of(&torn).unwrap();
    assert!(!bad.is_clean());
    let (wal, report) = Wal::<Mem, Fixed<16>>::open_with_summaries(mem, cfg, &mut scratch, &|id| {
        (id == newest).then_some(bad)
    })
    .unwrap();
    let cut = report.cut.expect("the torn tail the summary saw is cut");
    assert_eq!(cut.segment, newest);
    assert_eq!(all(&wal).len(), 29);
}

#[test]
fn salvage_that_leaves_a_sealed_segment_newest_cuts_its_trailing_garbage() {
    // Found by the recover_image fuzz target: segment 1 ends with garbage (ignored while
    // segment 2 vouches for its end), segment 2 is foreign. Salvage drops 2; segment 1 is now
    // the newest and a second open must find nothing to do.
    let mut mem = rotated();
    let last = *mem.files.keys().last().unwrap();
    for id in 3..=last {
        mem.files.remove(&id);
    }
    // Segment 2 claims another id (valid checksum): foreign, but its first LSN still says
    // where segment 1 ends.
    let f = mem.files.get_mut(&2).unwrap();
    f[24..32].copy_from_slice(&99u64.to_le_bytes());
    let crc = crate::checksum::crc32c(&f[..60]);
    f[60..64].copy_from_slice(&crc.to_le_bytes());
    mem.files
        .get_mut(&1)
        .unwrap()
        .extend_from_slice(&[0x5a; 50]);
    // The default policy refuses the foreign segment (in every build).
    assert_eq!(
        corruption(try_open(mem.clone(), small())),
        Case::ForeignSegment
    );
    if let Some((wal, first)) = salvaged(&mem, small()) {
        assert_eq!(first.salvage.unwrap().case, Case::ForeignSegment);
        assert!(first.trailing_garbage.is_some());
        let (_, second) = open(wal.into_storage(), salvage(small()).unwrap());
        assert!(second.is_clean(), "recovery is idempotent: {second}");
    }
}

/// A rotated log with its newest segment's id.
fn newest_id(mem: &Mem) -> u64 {
    *mem.files
        .keys()
        .rfind(|id| !crate::format::is_start_slot(**id))
        .unwrap()
}

#[test]
fn a_zero_filled_newest_segment_of_any_length_is_an_unfinished_creation() {
    // What a kill or power loss leaves when a full-size, zero-filled file was linked into place
    // (walden-std's spare) and its header had not reached the file.
    for len in [64, 65, 400, 4096] {
        let mut mem = rotated();
        let next = newest_id(&mem) + 1;
        mem.files.insert(next, std::vec![0; len]);
        let (mut wal, report) = open(mem.clone(), small());
        assert_eq!(report.rewritten_header, Some(next), "len {len}");
        assert_eq!(wal.last_lsn(), Lsn(30));
        assert_eq!(wal.append(b"x").unwrap(), Lsn(31));
        assert_eq!(
            corruption(try_open(mem, small().with_recovery(RecoveryPolicy::Strict))),
            Case::TornCreation
        );
    }
    // A torn header (garbage in its place) over zeros is unfinished too ...
    let mut mem = rotated();
    let next = newest_id(&mem) + 1;
    let mut torn = std::vec![0u8; 400];
    torn[..40].copy_from_slice(&[0xa5; 40]);
    mem.files.insert(next, torn);
    assert_eq!(open(mem, small()).1.rewritten_header, Some(next));
    // ... but a bad header with anything after it is damage: a record may be there.
    let mut mem = rotated();
    let next = newest_id(&mem) + 1;
    let mut damaged = std::vec![0u8; 400];
    damaged[300] = 1;
    mem.files.insert(next, damaged);
    assert_eq!(corruption(try_open(mem, small())), Case::DamagedHeader);
}

#[test]
fn a_removed_newest_segment_is_found_through_its_predecessors_seal() {
    let mut mem = rotated();
    let newest = newest_id(&mem);
    mem.files.remove(&newest);
    let before = mem.clone();
    let err = try_open(mem.clone(), small()).map(|(_, r)| r).unwrap_err();
    match err {
        crate::OpenError::Corrupted(c) => {
            assert_eq!(c.case, Case::MissingNewestSegment);
            assert_eq!(c.segment, newest - 1);
        }
        other => panic!("{other:?}"),
    }
    // Nothing was touched.
    assert_eq!(mem.files, before.files);
    // Salvage cuts the seal, reports the loss, and the log then opens cleanly by default.
    if let Some((wal, report)) = salvaged(&mem, small()) {
        let loss = report.salvage.unwrap();
        assert_eq!(loss.case, Case::MissingNewestSegment);
        assert_eq!(loss.first_lost, wal.last_lsn().next());
        let mem = wal.into_storage();
        let (_, report) = open(mem, small());
        assert!(report.is_clean(), "{report}");
    }
}

#[test]
fn segments_removed_from_the_front_are_found_unless_truncate_front_removed_them() {
    // A log whose front was never truncated needs its first segment (0).
    let mut lost = rotated();
    lost.files.remove(&0);
    assert_eq!(corruption(try_open(lost, small())), Case::MissingSegment);

    // truncate_front records where the log starts (feature `start-slots`): its removals open
    // cleanly.
    if cfg!(feature = "start-slots") {
        let (mut wal, _) = open(rotated(), small());
        let first_kept = wal.segments()[2].first_lsn;
        assert_eq!(wal.truncate_front(first_kept).unwrap(), 2);
        let oldest = wal.segments()[0].id;
        let mem = wal.into_storage();
        let (wal, report) = open(mem.clone(), small());
        assert!(report.is_clean(), "{report}");
        assert_eq!(wal.first_lsn(), first_kept);

        // Removing the oldest segment by hand is found, under every policy but Salvage.
        let mut lost = mem.clone();
        lost.files.remove(&oldest);
        let err = try_open(lost.clone(), small()).map(|(_, r)| r).unwrap_err();
        match err {
            crate::OpenError::Corrupted(c) => {
                assert_eq!((c.case, c.segment), (Case::MissingSegment, oldest));
            }
            other => panic!("{other:?}"),
        }
        if let Some((wal, report)) = salvaged(&lost, small()) {
            let front = report.missing_front.unwrap();
            assert_eq!((front.expected, front.found), (oldest, oldest + 1));
            // Salvage recorded the new start: the next ordinary open is clean.
            let (_, report) = open(wal.into_storage(), small());
            assert!(report.is_clean(), "{report}");
        }
    }
}

#[test]
fn stale_below_counts_what_does_not_lead_up_to_the_start() {
    use crate::recovery::plan::stale_below;
    // An interrupted truncate_front leaves an unbroken run below the start: kept.
    assert_eq!(stale_below(&[2, 3, 4, 5], 4), 0);
    assert_eq!(stale_below(&[3, 4], 4), 0);
    assert_eq!(stale_below(&[4, 5], 4), 0);
    assert_eq!(stale_below(&[], 4), 0);
    // Below a gap under the start: stale.
    assert_eq!(stale_below(&[0, 4, 5], 4), 1);
    assert_eq!(stale_below(&[0, 2, 3, 4], 4), 1);
    assert_eq!(stale_below(&[0, 1, 4], 4), 2);
    assert_eq!(stale_below(&[0, 1], 4), 2);
    assert_eq!(stale_below(&[0, 1, 3], 4), 2);
    assert_eq!(stale_below(&[0, 2, 3], 4), 1);
    assert_eq!(stale_below(&[0, 1, 3], 3), 2);
    assert_eq!(stale_below(&[7, 9], 1), 0);
}

/// A truncated log (starting at segment 3) with what an operator's copy puts back below it.
#[cfg(feature = "start-slots")]
fn truncated_with(
    original: &Mem,
    extra: &[(u64, Option<&[u8]>)],
) -> (Mem, u64, std::vec::Vec<(u64, std::vec::Vec<u8>)>) {
    let (mut wal, _) = open(original.clone(), small());
    let first_kept = wal.segments()[3].first_lsn;
    assert_eq!(wal.truncate_front(first_kept).unwrap(), 3);
    let start = wal.segments()[0].id;
    let records = all(&wal);
    let mut mem = wal.into_storage();
    for &(id, bytes) in extra {
        let bytes = bytes.map_or_else(|| original.files[&id].clone(), <[u8]>::to_vec);
        mem.files.insert(id, bytes);
    }
    (mem, start, records)
}

#[cfg(feature = "start-slots")]
#[test]
fn segment_files_below_a_gap_under_the_start_are_left_out_of_the_log() {
    let original = rotated();
    // A restored copy of segment 0; an empty stray file named as segment 1.
    for extra in [
        &[(0, None)][..],
        &[(1, Some(&[][..]))][..],
        &[(0, None), (1, Some(&[0u8; 7][..]))][..],
    ] {
        let (mem, start, records) = truncated_with(&original, extra);
        for &policy in policies() {
            let (wal, report) = open(mem.clone(), small().with_recovery(policy));
            assert_eq!(report.stale as usize, extra.len(), "{policy:?}");
            assert!(!report.is_clean());
            let said = std::format!("{}", extra.len());
            assert!(
                std::format!("{report}").contains(&std::format!("; left out {said} segment files")),
                "{report}"
            );
            assert!(
                report.salvage.is_none() && report.missing_front.is_none(),
                "{report}"
            );
            assert_eq!(wal.segments()[0].id, start);
            assert_eq!(all(&wal), records, "{policy:?}");
            // Left as they are.
            let after = wal.into_storage();
            for &(id, _) in extra {
                assert_eq!(after.files[&id], mem.files[&id]);
            }
        }
        let mut scratch = [0u8; 512];
        let ins = inspect::<_, Fixed<16>>(&mem, &small(), &mut scratch, &mut |_| {}).unwrap();
        assert_eq!(ins.verdict, Verdict::Clean);
        assert_eq!(ins.stale as usize, extra.len());
        // The rule a reader ahead of the open (walden-std's replay) applies: the same count.
        #[cfg(feature = "replay")]
        {
            let ids: std::vec::Vec<u64> = mem
                .files
                .keys()
                .copied()
                .filter(|&id| !crate::raw::is_start_slot(id))
                .collect();
            assert!(ids.is_sorted());
            let stale = crate::raw::stale_segments(&mem, &ids, &mut scratch).unwrap();
            assert_eq!(stale, extra.len());
        }
        assert_eq!(
            (ins.segments, ins.problems),
            (records_segments(&mem, start), 0)
        );
    }
    // What an interrupted truncate_front leaves (segments 1 and 2, up to the start) is kept.
    let (mem, start, _) = truncated_with(&original, &[(1, None), (2, None)]);
    let (wal, report) = open(mem, small());
    assert!(report.is_clean(), "{report}");
    assert!(!std::format!("{report}").contains("left out"), "{report}");
    assert_eq!(wal.segments()[0].id, start - 2);
    let (wal0, _) = open(original, small());
    assert_eq!(wal.first_lsn(), wal0.segments()[1].first_lsn);
}

/// The headers alone can record the start (a segment created after `truncate_front` names
/// it): with the start slots gone, a stale copy below a gap is still left out, by the open and
/// by the rule a reader ahead of it applies (`raw::stale_segments`), which counts only the
/// headers of the log the oldest readable header names.
#[cfg(all(feature = "start-slots", feature = "replay"))]
#[test]
fn the_start_recorded_in_headers_alone_leaves_a_stale_copy_out() {
    let original = rotated();
    let (mut wal, _) = open(original.clone(), small());
    let first_kept = wal.segments()[3].first_lsn;
    wal.truncate_front(first_kept).unwrap();
    let start = wal.segments()[0].id;
    // New segments, whose headers record the start.
    let newest = wal.segments().last().unwrap().id;
    let mut i = 1000;
    while wal.segments().last().unwrap().id < newest + 2 {
        wal.append(&fixed(i)).unwrap();
        i += 1;
    }
    let records = all(&wal);
    let mut mem = wal.into_storage();
    mem.files.retain(|&id, _| !crate::raw::is_start_slot(id));
    mem.files.insert(0, original.files[&0].clone());
    let (wal, report) = open(mem.clone(), small());
    assert_eq!(report.stale, 1, "{report}");
    assert_eq!((wal.segments()[0].id, all(&wal)), (start, records));
    let ids: std::vec::Vec<u64> = mem.files.keys().copied().collect();
    let stale = crate::raw::stale_segments(&mem, &ids, &mut [0u8; 512]).unwrap();
    assert_eq!(stale, 1);
    // A segment of another log as the oldest file: its header names the log whose headers
    // count, and nothing of this log's records a start, so nothing is stale by this rule.
    let mut foreign = mem.clone();
    let (other, _) = open(Mem::default(), small().with_salt_seed(7));
    let mut other = other.into_storage();
    foreign.files.insert(0, other.files.remove(&0).unwrap());
    let stale = crate::raw::stale_segments(&foreign, &ids, &mut [0u8; 512]).unwrap();
    assert_eq!(stale, 0);
}

/// Segments from `start` on.
#[cfg(feature = "start-slots")]
fn records_segments(mem: &Mem, start: u64) -> usize {
    mem.files
        .keys()
        .filter(|&&id| id >= start && !crate::format::is_start_slot(id))
        .count()
}

#[cfg(feature = "start-slots")]
#[test]
fn a_log_whose_segments_are_all_gone_is_not_created_again() {
    let original = rotated();
    // Only the start slots left: the log's segments were deleted.
    let (mut mem, start, _) = truncated_with(&original, &[]);
    mem.files.retain(|&id, _| crate::format::is_start_slot(id));
    assert!(!mem.files.is_empty());
    let slots_only = mem.clone();
    // Only an older segment left beside the slots.
    mem.files.insert(0, original.files[&0].clone());
    for (mem, segment) in [(slots_only, None), (mem, Some(start))] {
        for &policy in policies() {
            match try_open(mem.clone(), small().with_recovery(policy)).map(|(_, r)| r) {
                Err(OpenError::Corrupted(c)) => {
                    assert_eq!(c.case, Case::MissingSegment);
                    match segment {
                        Some(s) => assert_eq!(c.segment, s),
                        None => assert!(crate::format::is_start_slot(c.segment)),
                    }
                }
                other => panic!("{policy:?}: {other:?}"),
            }
        }
        let mut scratch = [0u8; 512];
        let ins = inspect::<_, Fixed<16>>(&mem, &small(), &mut scratch, &mut |_| {}).unwrap();
        assert!(matches!(ins.verdict, Verdict::Refuse(c) if c.case == Case::MissingSegment));
        assert!(ins.corruption);
        assert_eq!((ins.problems, ins.segments), (1, 0));
    }
    // An empty slot file (its creation, before a record was written) is no evidence.
    let mut empty = Mem::default();
    empty
        .files
        .insert(crate::format::START_SLOTS[1], std::vec::Vec::new());
    let (_, report) = open(empty, small());
    assert!(report.created);
}

#[test]
fn truncate_back_across_segments_leaves_no_seal_naming_a_removed_segment() {
    let (mut wal, _) = open(rotated(), small());
    let target = wal.segments()[1].first_lsn;
    wal.truncate_back(target).unwrap();
    assert_eq!(wal.segments().len(), 2);
    wal.append(b"after").unwrap();
    let (wal, report) = open(wal.into_storage(), small());
    assert!(report.is_clean(), "{report}");
    assert_eq!(wal.last_lsn(), target.next());
}

#[test]
fn a_reopened_log_with_a_smaller_max_record_size_refuses_and_changes_nothing() {
    let (mut wal, _) = open(Mem::default(), small());
    wal.append(&[7u8; 200]).unwrap();
    let mem = wal.into_storage();
    let tight = small().with_max_record_size(100);
    for &policy in policies() {
        match try_open(mem.clone(), tight.with_recovery(policy)).map(|(_, r)| r) {
            Err(crate::OpenError::RecordTooLarge {
                lsn, length, max, ..
            }) => assert_eq!((lsn, length, max), (Lsn(1), 200, 100)),
            other => panic!("{policy:?}: {other:?}"),
        }
    }
    salvage_is_refused(&mem, tight);
    let (wal, report) = open(mem, small());
    assert!(report.is_clean());
    assert_eq!(all(&wal), std::vec![(1, std::vec![7u8; 200])]);
}

#[test]
fn a_summary_gives_the_mean_length_of_its_records() {
    let cfg = small();
    let mut scratch = [0u8; 512];
    let (mut wal, _) = Wal::<Mem, Fixed<16>>::open(Mem::default(), cfg, &mut scratch).unwrap();
    let summary = |wal: &Wal<Mem, Fixed<16>>| {
        let id = wal.segments().last().unwrap().id;
        crate::raw::scan_segment(wal.storage(), id, &cfg, &mut [0u8; 512])
            .unwrap()
            .unwrap()
    };
    assert_eq!(summary(&wal).mean_record_len(), 0, "no records");
    for _ in 0..3 {
        wal.append(&[7u8; 10]).unwrap();
    }
    // The segment's 64-byte header and three records of 32 + 10 bytes, over three.
    assert_eq!(summary(&wal).mean_record_len(), (64 + 3 * 42) / 3);
}
