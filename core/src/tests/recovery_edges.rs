//! Recovery at its edges: scratch windows, batches on reopen, records with a wrong LSN, lone
//! torn segments, summaries that no longer match, and the numbers a report gives operators.

use std::vec::Vec;

use super::*;
use crate::format::{RECORD_HEADER_LEN, RecordHeader, RecordKind, SegmentHeader};
use crate::inspect::{Verdict, inspect};
use crate::tests::mem::MemError;
use crate::{Case, Lsn, MIN_SCRATCH, OpenError, RecoveryPolicy, SyncPolicy};

/// Fixed-size payloads: record `i` of segment 0 is at 64 + 40(i−1).
fn fixed(i: u64) -> Vec<u8> {
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

fn rotated() -> Mem {
    let (mut wal, _) = open(Mem::default(), small());
    for i in 1..=30 {
        wal.append(&fixed(i)).unwrap();
    }
    wal.into_storage()
}

/// Segment `id`'s header.
fn header_of(mem: &Mem, id: u64) -> SegmentHeader {
    SegmentHeader::decode(&mem.files[&id]).unwrap()
}

/// Rewrites the record header at `offset` of segment `id` with a valid checksum.
fn rewrite_record(mem: &mut Mem, id: u64, offset: usize, edit: impl FnOnce(&mut RecordHeader)) {
    let h = header_of(mem, id);
    let f = mem.files.get_mut(&id).unwrap();
    let mut r = RecordHeader::decode(&f[offset..], h.checksum, h.salt).unwrap();
    edit(&mut r);
    f[offset..offset + RECORD_HEADER_LEN].copy_from_slice(&r.encode(h.checksum, h.salt));
}

/// Rewrites segment `id`'s header with a valid checksum.
fn rewrite_header(mem: &mut Mem, id: u64, edit: impl FnOnce(&mut SegmentHeader)) {
    let mut h = header_of(mem, id);
    edit(&mut h);
    mem.files.get_mut(&id).unwrap()[..64].copy_from_slice(&h.encode());
}

fn refusal(
    r: Result<(TestWal, crate::RecoveryReport), OpenError<mem::MemError>>,
) -> crate::Corruption {
    match r {
        Err(OpenError::Corrupted(c)) => c,
        Err(e) => panic!("unexpected error {e:?}"),
        Ok((_, report)) => panic!("opened: {report}"),
    }
}

fn open_with_scratch(
    mem: Mem,
    cfg: Config,
    scratch: usize,
) -> Result<(TestWal, crate::RecoveryReport), OpenError<mem::MemError>> {
    let mut buf = std::vec![0u8; scratch];
    Wal::open(mem, cfg, &mut buf)
}

#[test]
fn the_smallest_scratch_buffer_is_enough() {
    let mem = rotated();
    let (wal, report) = open_with_scratch(mem.clone(), small(), MIN_SCRATCH).unwrap();
    assert!(report.is_clean());
    assert_eq!(wal.last_lsn(), Lsn(30));
    assert_eq!(
        open_with_scratch(mem.clone(), small(), MIN_SCRATCH - 1).err(),
        Some(OpenError::ScratchTooSmall { min: 256 })
    );
    let mut scratch = [0u8; MIN_SCRATCH];
    assert!(
        crate::raw::scan_segment(&mem, 1, &small(), &mut scratch)
            .unwrap()
            .is_some()
    );
    assert_eq!(
        crate::raw::scan_segment(&mem, 1, &small(), &mut scratch[..255]).unwrap(),
        None
    );
}

#[test]
fn records_longer_than_the_scratch_window_are_verified_whole() {
    let cfg = Config::default();
    let big = |i: u8| -> Vec<u8> { (0..1000u32).map(|j| (j as u8) ^ i).collect() };
    let (mut wal, _) = open(Mem::default(), cfg);
    for i in 1..=4 {
        wal.append(&big(i)).unwrap();
    }
    let mem = wal.into_storage();
    for scratch in [MIN_SCRATCH, 300, 999, 4096] {
        let (wal, report) = open_with_scratch(mem.clone(), cfg, scratch).unwrap();
        assert!(report.is_clean(), "scratch {scratch}: {report}");
        assert_eq!(report.records, 4);
        let mut buf = [0u8; 1000];
        assert_eq!(wal.read(Lsn(3), &mut buf).unwrap().payload, &big(3)[..]);
    }
    // One flipped byte in every window-sized piece of record 2's payload is found, whatever
    // the window: records 3 and 4 prove record 2 was acknowledged.
    let payload2 = 64 + 1032 + 32;
    for offset in [0, 255, 256, 600, 999] {
        let mut bad = mem.clone();
        bad.files.get_mut(&0).unwrap()[payload2 + offset] ^= 0x40;
        for scratch in [MIN_SCRATCH, 300, 4096] {
            let c = refusal(open_with_scratch(bad.clone(), cfg, scratch));
            assert_eq!(
                (c.case, c.offset, c.lsn, c.detail),
                (
                    Case::MidLogCorruption,
                    64 + 1032,
                    Some(Lsn(2)),
                    detail("payload checksum mismatch")
                ),
                "byte {offset}, scratch {scratch}"
            );
        }
    }
    // The payload cut short at the end of the segment is a torn tail, whatever the window.
    let mut torn = mem.clone();
    let f = torn.files.get_mut(&0).unwrap();
    f.truncate(f.len() - 1);
    for scratch in [MIN_SCRATCH, 4096] {
        let (wal, report) = open_with_scratch(torn.clone(), cfg, scratch).unwrap();
        let cut = report.cut.unwrap();
        assert_eq!((cut.first_lsn, cut.bytes), (Lsn(4), 1031));
        assert_eq!(wal.last_lsn(), Lsn(3));
    }
}

#[test]
fn a_log_holding_batches_reopens_whole() {
    let cfg = small().with_sync_policy(SyncPolicy::Manual);
    let (mut wal, _) = open(Mem::default(), cfg);
    wal.append(b"single").unwrap();
    wal.append_batch(&[b"first", b"middle 1", b"middle 2", b"last"])
        .unwrap();
    wal.append_batch(&[b"two", b"of them"]).unwrap();
    wal.append(b"after").unwrap();
    wal.sync().unwrap();
    let mem = wal.into_storage();
    let (mut wal, report) = open(mem.clone(), cfg.with_recovery(RecoveryPolicy::Strict));
    assert!(report.is_clean(), "{report}");
    assert_eq!((report.records, report.last_lsn), (8, Lsn(8)));
    let kinds: Vec<RecordKind> = {
        let mut r = wal.reader(Lsn(1)).unwrap();
        let mut buf = [0u8; 16];
        let mut v = Vec::new();
        while let Some(rec) = r.next(&mut buf).unwrap() {
            v.push(rec.kind);
        }
        v
    };
    use RecordKind::*;
    assert_eq!(
        kinds,
        [Single, First, Middle, Middle, Last, First, Last, Single]
    );
    assert_eq!(wal.append(b"next").unwrap(), Lsn(9));

    // A batch whose last record is lost or torn is cut whole: no partial batch is recovered.
    let len = mem.files[&0].len();
    for (keep, text) in [
        (
            len - (32 + 5) - (32 + 7),
            "incomplete batch at the end of the segment",
        ),
        (
            len - (32 + 5) - 3,
            "record extends past the end of the segment",
        ),
    ] {
        let mut torn = mem.clone();
        torn.files.get_mut(&0).unwrap().truncate(keep);
        let (wal, report) = open(torn, cfg);
        let cut = report.cut.unwrap();
        assert_eq!(
            (cut.first_lsn, report.records, wal.last_lsn()),
            (Lsn(6), 5, Lsn(5))
        );
        assert_eq!(
            (cut.offset, cut.detail),
            ((len - 32 - 5 - 32 - 7 - 32 - 3) as u64, detail(text))
        );
    }
}

#[test]
fn a_record_with_the_wrong_lsn_inside_a_segment_is_damage() {
    // Every append synced: records 4 and 5 prove record 3 was acknowledged.
    let mut mem = log_with(5, Config::default());
    rewrite_record(&mut mem, 0, at(3), |r| r.lsn = Lsn(9));
    let c = refusal(try_open(mem.clone(), Config::default()));
    assert_eq!(
        (c.case, c.segment, c.offset, c.lsn, c.detail),
        (
            Case::MidLogCorruption,
            0,
            at(3) as u64,
            Some(Lsn(3)),
            detail("unexpected LSN")
        )
    );
    // The same in the last record, which nothing vouches for: a torn tail, reported.
    let mut mem = log_with(5, Config::default());
    rewrite_record(&mut mem, 0, at(5), |r| r.lsn = Lsn(4));
    let (wal, report) = open(mem, Config::default());
    let cut = report.cut.unwrap();
    assert_eq!(
        (cut.first_lsn, cut.detail),
        (Lsn(5), detail("unexpected LSN"))
    );
    assert_eq!(wal.last_lsn(), Lsn(4));
}

/// A later record written over the last one's place (a misdirected write: record 6 landing
/// where record 5 was) is evidence too. Every append was synced, so its `ack_gap` proves LSN 5
/// durable: the open refuses instead of cutting an acknowledged record as a torn tail (before,
/// the search for later records started one byte after the damaged place and never saw it).
#[test]
fn a_later_record_in_the_damaged_place_proves_what_it_vouches_for() {
    let mut mem = log_with(5, Config::default());
    rewrite_record(&mut mem, 0, at(5), |r| r.lsn = Lsn(6));
    let c = refusal(try_open(mem.clone(), Config::default()));
    assert_eq!(
        (c.case, c.segment, c.offset, c.lsn, c.detail),
        (
            Case::MidLogCorruption,
            0,
            at(5) as u64,
            Some(Lsn(5)),
            detail("unexpected LSN")
        )
    );
    // With manual syncs nothing vouches for LSN 5: a torn tail, the moved record an orphan.
    let cfg = Config::default().with_sync_policy(SyncPolicy::Manual);
    let mut mem = log_with(5, cfg);
    rewrite_record(&mut mem, 0, at(5), |r| r.lsn = Lsn(6));
    let (wal, report) = open(mem, cfg);
    let cut = report.cut.unwrap();
    assert_eq!((cut.first_lsn, cut.orphans), (Lsn(5), 1));
    assert_eq!(wal.last_lsn(), Lsn(4));
}

/// The last place a record header fits is searched too, also when the search gets there one
/// byte at a time. Record 3 (40,000 zero bytes) is damaged; record 4, empty, ends the segment.
/// The header place one byte before record 4 reads as LSN 1024 (its length's high byte, then
/// its LSN), a candidate whose checksum fails; the search then stands exactly one header
/// before the end, and must still look there.
#[test]
fn the_orphan_search_looks_at_the_last_place_a_header_fits() {
    let cfg = Config::default().with_sync_policy(SyncPolicy::Manual);
    let (mut wal, _) = open(Mem::default(), cfg);
    for i in 1..=2 {
        wal.append(&fixed(i)).unwrap();
    }
    wal.append(&[0u8; 40_000]).unwrap();
    wal.append(&[]).unwrap();
    let mut mem = wal.into_storage();
    let f = mem.files.get_mut(&0).unwrap();
    assert_eq!(
        f.len(),
        at(3) + 2 * RECORD_HEADER_LEN + 40_000,
        "record 4 ends the segment"
    );
    f[at(3) + RECORD_HEADER_LEN + 20_000] ^= 1;
    let (wal, report) = open(mem, cfg);
    let cut = report.cut.unwrap();
    assert_eq!((cut.first_lsn, cut.orphans), (Lsn(3), 1));
    assert_eq!(wal.last_lsn(), Lsn(2));
}

#[test]
fn a_lone_torn_segment_is_rewritten_only_if_it_starts_the_log() {
    // Segment 0 created, header never written: a new log that never held a record.
    let mut mem = Mem::default();
    mem.files.insert(0, std::vec![0; 64]);
    let (mut wal, report) = open(mem, small());
    assert_eq!(report.rewritten_header, Some(0));
    assert_eq!(wal.append(b"x").unwrap(), Lsn(1));
    // Segment 7 alone and torn: its first LSN is unknowable, so recovery refuses.
    let mut mem = Mem::default();
    mem.files.insert(7, std::vec![0; 64]);
    let c = refusal(try_open(mem.clone(), small()));
    assert_eq!(
        (c.case, c.segment, c.detail),
        (
            Case::DamagedHeader,
            7,
            detail("torn header and no earlier segment to tell its first LSN")
        )
    );
    assert_eq!(mem.files[&7], std::vec![0; 64], "nothing changed");
}

#[test]
fn too_many_segments_for_the_table_is_a_typed_error() {
    let mem = rotated();
    let n = mem.files.len();
    let mut scratch = [0u8; 512];
    assert_eq!(
        Wal::<Mem, Fixed<3>>::open(mem.clone(), small(), &mut scratch).err(),
        Some(OpenError::TooManySegments { capacity: 3 })
    );
    assert_eq!(
        inspect::<_, Fixed<3>>(&mem, &small(), &mut scratch, &mut |_| {}).err(),
        Some(crate::inspect::InspectError::TooManySegments { capacity: 3 })
    );
    let n_segments = n; // no start slots in this log
    assert!(Wal::<Mem, Fixed<16>>::open(mem.clone(), small(), &mut scratch).is_ok());
    assert!(n_segments > 3);
}

#[test]
fn a_summary_older_than_its_segment_is_not_used() {
    // Scanned, then the log grew: same segment, same salt, another length.
    let (mut wal, _) = open(Mem::default(), Config::default());
    for i in 1..=3 {
        wal.append(&fixed(i)).unwrap();
    }
    let cfg = Config::default();
    let stale = crate::raw::scan_segment(wal.storage(), 0, &cfg, &mut [0u8; 512])
        .unwrap()
        .unwrap();
    assert_eq!(
        (stale.scan.records, stale.scan.last_lsn, stale.is_clean()),
        (3, Lsn(3), true)
    );
    for i in 4..=6 {
        wal.append(&fixed(i)).unwrap();
    }
    let mem = wal.into_storage();
    let mut scratch = [0u8; 512];
    let (wal, report) =
        Wal::<Mem, Fixed<16>>::open_with_summaries(mem.clone(), cfg, &mut scratch, &|_| {
            Some(stale)
        })
        .unwrap();
    assert_eq!(
        (report.records, wal.last_lsn()),
        (6, Lsn(6)),
        "records after the scan kept"
    );

    // A damaged scan of another log's segment with the same id and length is not this one's.
    let mut other = log_with(6, cfg.with_salt_seed(1234));
    other.files.get_mut(&0).unwrap()[at(2) + 35] ^= 1;
    let foreign = crate::raw::scan_segment(&other, 0, &cfg, &mut [0u8; 512])
        .unwrap()
        .unwrap();
    assert_eq!(foreign.file_len, mem.files[&0].len() as u64);
    assert!(!foreign.is_clean());
    let (_, report) =
        Wal::<Mem, Fixed<16>>::open_with_summaries(mem.clone(), cfg, &mut scratch, &|_| {
            Some(foreign)
        })
        .unwrap();
    assert!(report.is_clean(), "{report}");
    // A summary handed out for the wrong segment is not used either.
    let rot = rotated();
    let of_2 = {
        let mut damaged = rot.clone();
        let len = damaged.files[&2].len();
        damaged.files.get_mut(&2).unwrap()[len - 60] ^= 1;
        crate::raw::scan_segment(&damaged, 2, &small(), &mut [0u8; 512])
            .unwrap()
            .unwrap()
    };
    assert_eq!(of_2.file_len, rot.files[&1].len() as u64);
    let (_, report) =
        Wal::<Mem, Fixed<16>>::open_with_summaries(rot, small(), &mut scratch, &|id| {
            (id == 1).then_some(of_2)
        })
        .unwrap();
    assert!(report.is_clean(), "{report}");
}

#[test]
fn a_record_too_large_in_a_sealed_segment_is_a_configuration_error() {
    let (mut wal, _) = open(Mem::default(), small());
    wal.append(b"one").unwrap();
    wal.append(&[5u8; 200]).unwrap();
    for i in 3..=12 {
        wal.append(&fixed(i)).unwrap();
    }
    assert!(wal.segments().len() > 2);
    let mem = wal.into_storage();
    let tight = small().with_max_record_size(100);
    for &policy in policies() {
        let r = try_open(mem.clone(), tight.with_recovery(policy));
        assert_eq!(
            r.map(|(_, r)| r).err(),
            Some(OpenError::RecordTooLarge {
                segment: 0,
                offset: 64 + 35,
                lsn: Lsn(2),
                length: 200,
                max: 100
            }),
            "{policy:?}"
        );
    }
    salvage_is_refused(&mem, tight);
}

#[test]
fn a_successor_that_starts_before_a_segment_cannot_vouch_for_its_end() {
    let mut mem = rotated();
    let first1 = header_of(&mem, 1).first_lsn;
    // Segment 1's last record damaged; segment 2 claims to start before segment 1 does.
    let len = mem.files[&1].len();
    mem.files.get_mut(&1).unwrap()[len - 48 - 2] ^= 1;
    rewrite_header(&mut mem, 2, |h| h.first_lsn = first1.prev());
    let c = refusal(try_open(mem, small()));
    assert_eq!((c.case, c.segment), (Case::SealedSegmentDamaged, 1));
}

#[test]
fn a_foreign_or_missing_segment_is_reported_where_the_log_breaks() {
    // Segment 2 from another log: the break is at its start, at the LSN after segment 1.
    let mut mem = rotated();
    let expected = header_of(&mem, 2).first_lsn;
    let other = {
        let (mut w, _) = open(Mem::default(), small().with_salt_seed(77));
        for i in 1..=60 {
            w.append(&payload(i)).unwrap();
        }
        w.into_storage()
    };
    assert_ne!(header_of(&other, 2).first_lsn, expected);
    mem.files.insert(2, other.files[&2].clone());
    let c = refusal(try_open(mem.clone(), small()));
    assert_eq!(
        (c.case, c.segment, c.offset, c.lsn),
        (Case::ForeignSegment, 2, 0, Some(expected))
    );
    assert_eq!(
        c.detail,
        detail(
            "header belongs to another log, another id, or does not continue the previous segment"
        )
    );
    if let Some((wal, report)) = salvaged(&mem, small()) {
        let loss = report.salvage.unwrap();
        assert_eq!(
            (loss.case, loss.first_lost, loss.offset),
            (Case::ForeignSegment, expected, 0)
        );
        assert_eq!(wal.last_lsn(), expected.prev());
    }

    // Segment 2 removed: segment 3 is where the log breaks, at the LSN segment 2 began with.
    let mut mem = rotated();
    let expected = header_of(&mem, 2).first_lsn;
    mem.files.remove(&2);
    let c = refusal(try_open(mem.clone(), small()));
    assert_eq!(
        (c.case, c.segment, c.offset, c.lsn, c.detail),
        (
            Case::MissingSegment,
            3,
            0,
            Some(expected),
            detail("a segment id before this one is missing")
        )
    );
    if let Some((wal, report)) = salvaged(&mem, small()) {
        let loss = report.salvage.unwrap();
        assert_eq!((loss.first_lost, loss.segment), (expected, 3));
        assert_eq!(wal.last_lsn(), expected.prev());
    }
}

#[test]
fn header_damage_is_described_as_operators_need() {
    // (edit of segment 1, expected detail)
    type Edit = fn(&mut Vec<u8>);
    let cases: [(Edit, Case, &str); 5] = [
        (
            |f| f.truncate(40),
            Case::DamagedHeader,
            "segment shorter than its header",
        ),
        (|f| f[0] = b'X', Case::DamagedHeader, "bad magic"),
        (
            |f| f[20] ^= 1,
            Case::DamagedHeader,
            "segment header checksum mismatch",
        ),
        (
            |f| {
                f[11] = 4;
                let crc = crate::checksum::crc32c(&f[..60]);
                f[60..64].copy_from_slice(&crc.to_le_bytes());
            },
            Case::DamagedHeader,
            "unknown flags",
        ),
        (
            |f| {
                f[8] = 9;
                let crc = crate::checksum::crc32c(&f[..60]);
                f[60..64].copy_from_slice(&crc.to_le_bytes());
            },
            Case::NewerVersion,
            "segment written by a newer format version",
        ),
    ];
    for (edit, case, text) in cases {
        let mut mem = rotated();
        edit(mem.files.get_mut(&1).unwrap());
        let c = refusal(try_open(mem, small()));
        assert_eq!(
            (c.case, c.segment, c.offset, c.detail),
            (case, 1, 0, detail(text))
        );
    }
    // An unfinished newest segment under Strict.
    let mut mem = rotated();
    let next = *mem.files.keys().last().unwrap() + 1;
    mem.files.insert(next, std::vec![0; 10]);
    let c = refusal(try_open(mem, small().with_recovery(RecoveryPolicy::Strict)));
    assert_eq!(
        (c.case, c.detail),
        (
            Case::TornCreation,
            detail("segment header never written (nothing after it either)")
        )
    );
    // The newest segment removed, found through its predecessor's seal.
    let mut mem = rotated();
    let newest = *mem.files.keys().last().unwrap();
    let first_lost = header_of(&mem, newest).first_lsn;
    mem.files.remove(&newest);
    let c = refusal(try_open(mem, small()));
    assert_eq!(
        (c.case, c.lsn, c.detail),
        (
            Case::MissingNewestSegment,
            Some(first_lost),
            detail(
                "the segment's seal names a successor that is missing (the newest segment was \
                 removed)"
            )
        )
    );
}

#[test]
fn a_torn_tail_report_and_counters_say_what_was_cut() {
    let cfg = Config::default().with_sync_policy(SyncPolicy::Manual);
    let mut mem = log_with(6, cfg);
    let len = mem.files[&0].len();
    mem.files.get_mut(&0).unwrap().truncate(len - 5);
    let (wal, report) = open(mem, cfg);
    assert_eq!((report.records, report.segments), (5, 1));
    assert_eq!((report.first_lsn, report.last_lsn), (Lsn(1), Lsn(5)));
    let cut = report.cut.unwrap();
    assert_eq!(
        (cut.segment, cut.offset, cut.bytes, cut.orphans),
        (0, at(6) as u64, 35, 0)
    );
    let c = wal.counters();
    assert_eq!(
        (c.bytes_truncated, c.records_recovered, c.corruption_events),
        (35, 5, 0)
    );
    assert_eq!(
        std::format!("{report}"),
        std::format!(
            "recovered 5 records (LSN 1..=5) in 1 segments; cut 35 bytes of torn tail from \
             segment 0 at offset 264 (from LSN 6, 0 orphaned records){}",
            detail(": record extends past the end of the segment")
        )
    );
}

#[test]
fn a_salvage_report_and_counters_say_what_was_given_up() {
    // Damage in sealed segment 1: segment 1 cut at the damage, every later segment dropped.
    let mut mem = rotated();
    let files_before = mem.clone();
    let damaged_at = 64 + 40; // segment 1's second record
    mem.files.get_mut(&1).unwrap()[damaged_at + 35] ^= 1;
    let newest = *mem.files.keys().last().unwrap();
    let kept_first = header_of(&mem, 1).first_lsn;
    let bytes_before: u64 = mem.files.values().map(|f| f.len() as u64).sum();
    // The default policy refuses it (in every build).
    let c = refusal(try_open(mem.clone(), small()));
    assert_eq!((c.case, c.segment), (Case::SealedSegmentDamaged, 1));
    if let Some((wal, report)) = salvaged(&mem, small()) {
        let loss = report.salvage.unwrap();
        assert_eq!(
            (loss.case, loss.segment, loss.offset, loss.first_lost),
            (
                Case::SealedSegmentDamaged,
                1,
                damaged_at as u64,
                kept_first.next()
            )
        );
        assert_eq!(loss.segments_dropped as u64, newest - 1);
        assert_eq!(loss.last_known, Some(Lsn(30)));
        assert_eq!(loss.detail, detail("payload checksum mismatch"));
        let seg0_records = header_of(&files_before, 1).first_lsn.0 - 1;
        assert_eq!(report.records, seg0_records + 1);
        assert_eq!((report.segments, report.last_lsn), (2, kept_first));
        assert_eq!(wal.last_lsn(), kept_first);
        let c = wal.counters();
        assert_eq!(c.corruption_events, 1);
        let bytes_after: u64 = wal.storage().files.values().map(|f| f.len() as u64).sum();
        assert_eq!(c.bytes_truncated, bytes_before - bytes_after);
        assert!(!wal.segments()[1].sealed);
        // The salvaged log opens cleanly under every policy.
        let (_, again) = open(
            wal.into_storage(),
            small().with_recovery(RecoveryPolicy::Strict),
        );
        assert!(again.is_clean(), "{again}");
    }
}

#[test]
fn salvage_that_drops_segments_counts_their_bytes() {
    let mut mem = rotated();
    mem.files.get_mut(&2).unwrap()[20] ^= 1; // segment 2's header
    let bytes_before: u64 = mem.files.values().map(|f| f.len() as u64).sum();
    let newest = *mem.files.keys().last().unwrap();
    // The default policy refuses it (in every build).
    let c = refusal(try_open(mem.clone(), small()));
    assert_eq!((c.case, c.segment), (Case::DamagedHeader, 2));
    if let Some((wal, report)) = salvaged(&mem, small()) {
        let loss = report.salvage.unwrap();
        assert_eq!(
            (loss.case, loss.segment, loss.offset),
            (Case::DamagedHeader, 2, 0)
        );
        assert_eq!(loss.segments_dropped as u64, newest - 1);
        assert_eq!(wal.segments().len(), 2);
        let bytes_after: u64 = wal.storage().files.values().map(|f| f.len() as u64).sum();
        assert_eq!(wal.counters().bytes_truncated, bytes_before - bytes_after);
        assert_eq!(wal.counters().corruption_events, 1);
        assert_eq!(report.records, wal.last_lsn().0);
    }
}

#[cfg(feature = "start-slots")]
#[test]
fn inspection_counts_a_missing_front_as_one_problem() {
    let (mut wal, _) = open(rotated(), small());
    let keep = wal.segments()[2].first_lsn;
    wal.truncate_front(keep).unwrap();
    let oldest = wal.segments()[0].id;
    let mut mem = wal.into_storage();
    mem.files.remove(&oldest);
    let mut scratch = [0u8; 512];
    let ins = inspect::<_, Fixed<16>>(&mem, &small(), &mut scratch, &mut |_| {}).unwrap();
    assert_eq!(ins.problems, 1);
    assert!(ins.corruption);
    assert!(
        matches!(ins.verdict, Verdict::Refuse(c) if c.case == Case::MissingSegment && c.segment == oldest)
    );
}

#[test]
fn orphans_are_the_valid_records_that_could_follow_the_damage() {
    // Manual sync: nothing vouches for anything, so damage is a torn tail with orphans.
    let cfg = Config::default().with_sync_policy(SyncPolicy::Manual);
    // Record 3 valid but with LSN 5: the damage, and itself a record that could follow it
    // (its LSN is above 3), as records 4 and 5 are.
    let mut mem = log_with(5, cfg);
    rewrite_record(&mut mem, 0, at(3), |r| r.lsn = Lsn(5));
    let (_, report) = open(mem, cfg);
    let cut = report.cut.unwrap();
    assert_eq!(
        (cut.first_lsn, cut.orphans, cut.detail),
        (Lsn(3), 3, detail("unexpected LSN"))
    );
    // Copies of records from before the damage, and of the damaged LSN, found after it are
    // not records that could follow it.
    let mut mem = log_with(5, cfg);
    let f = mem.files.get_mut(&0).unwrap();
    let copy1 = f[at(1)..at(2)].to_vec();
    let copy3 = f[at(3)..at(4)].to_vec();
    f.extend_from_slice(&copy1);
    f.extend_from_slice(&copy3);
    f[at(3) + 35] ^= 1;
    let (wal, report) = open(mem, cfg);
    let cut = report.cut.unwrap();
    assert_eq!((cut.first_lsn, cut.orphans), (Lsn(3), 2));
    assert_eq!(wal.last_lsn(), Lsn(2));
}

#[test]
fn inspection_reports_where_each_later_problem_starts() {
    // Segment 2 damaged, segment 3 removed: segment 4 is a gap whose header is the only
    // word on where it starts. Inspection goes on past the first problem and says so.
    let mut mem = {
        let (mut wal, _) = open(Mem::default(), small());
        for i in 1..=60 {
            wal.append(&fixed(i)).unwrap();
        }
        wal.into_storage()
    };
    assert!(newest_of(&mem) > 4);
    let first4 = header_of(&mem, 4).first_lsn;
    mem.files.get_mut(&2).unwrap()[64 + 35] ^= 1;
    mem.files.remove(&3);
    let mut scratch = [0u8; 512];
    let mut segs = Vec::new();
    let ins =
        inspect::<_, Fixed<16>>(&mem, &small(), &mut scratch, &mut |s| segs.push(*s)).unwrap();
    let seg4 = segs.iter().find(|s| s.id == 4).unwrap();
    assert_eq!(seg4.case, Case::MissingSegment);
    let p = seg4.problem.unwrap();
    assert_eq!((p.offset, p.lsn, p.fault), (0, Some(first4), None));
    assert_eq!(ins.problems, 2);
    assert!(
        matches!(ins.verdict, Verdict::Refuse(c) if c.segment == 2 && c.case == Case::SealedSegmentDamaged)
    );
}

fn newest_of(mem: &Mem) -> u64 {
    *mem.files.keys().last().unwrap()
}

#[test]
fn a_sealed_segment_cut_to_its_header_is_not_called_a_bad_header() {
    let mut mem = rotated();
    // Segment 1 keeps its (valid) header and nothing else; segment 2 follows it.
    mem.files.get_mut(&1).unwrap().truncate(64);
    let c = refusal(try_open(mem, small()));
    assert_eq!(
        (c.case, c.segment, c.offset),
        (Case::SealedSegmentDamaged, 1, 64)
    );
    assert_eq!(c.detail, detail("segment ends before its seal"), "{c}");
}

/// `Mem` with segment `id` listed as `len` bytes long, though reads return more: a file that
/// grew after it was listed (a writer appending while a log is inspected). Read-only.
struct Listed {
    mem: Mem,
    id: u64,
    len: u64,
}

impl crate::Storage for Listed {
    type Error = MemError;

    fn list(&self, each: &mut dyn FnMut(crate::SegmentId)) -> Result<(), MemError> {
        self.mem.list(each)
    }
    fn create(&mut self, _: crate::SegmentId) -> Result<(), MemError> {
        Err(MemError(crate::StorageErrorKind::Unsupported))
    }
    fn remove(&mut self, _: crate::SegmentId) -> Result<(), MemError> {
        Err(MemError(crate::StorageErrorKind::Unsupported))
    }
    fn len(&self, id: crate::SegmentId) -> Result<u64, MemError> {
        if id == self.id {
            Ok(self.len)
        } else {
            self.mem.len(id)
        }
    }
    fn read(&self, id: crate::SegmentId, offset: u64, buf: &mut [u8]) -> Result<usize, MemError> {
        self.mem.read(id, offset, buf)
    }
    fn write(&mut self, _: crate::SegmentId, _: u64, _: &[u8]) -> Result<(), MemError> {
        Err(MemError(crate::StorageErrorKind::Unsupported))
    }
    fn truncate(&mut self, _: crate::SegmentId, _: u64) -> Result<(), MemError> {
        Err(MemError(crate::StorageErrorKind::Unsupported))
    }
    fn sync(&mut self, _: crate::SegmentId) -> Result<(), MemError> {
        Err(MemError(crate::StorageErrorKind::Unsupported))
    }
    fn sync_dir(&mut self) -> Result<(), MemError> {
        Err(MemError(crate::StorageErrorKind::Unsupported))
    }
}

#[test]
fn the_orphan_search_ends_at_the_length_listed() {
    // Every append synced: records 4 and 5 prove a damaged record 3 was acknowledged.
    let mut mem = log_with(5, Config::default());
    mem.files.get_mut(&0).unwrap()[at(3) + RECORD_HEADER_LEN] ^= 1;
    let mut scratch = [0u8; 4096];
    let ins = inspect::<_, Fixed<16>>(&mem, &Config::default(), &mut scratch, &mut |_| {}).unwrap();
    assert!(
        matches!(ins.verdict, Verdict::Refuse(c) if c.case == Case::MidLogCorruption),
        "{:?}",
        ins.verdict
    );
    // Listed as ending with record 3, the segment's bytes after it are not evidence, though
    // reads return them: the damage is the torn end of what was listed.
    let listed = Listed {
        mem,
        id: 0,
        len: at(4) as u64,
    };
    let ins =
        inspect::<_, Fixed<16>>(&listed, &Config::default(), &mut scratch, &mut |_| {}).unwrap();
    assert!(
        matches!(
            ins.verdict,
            Verdict::Repair {
                case: Case::TornTail,
                ..
            }
        ),
        "{:?}",
        ins.verdict
    );
}
