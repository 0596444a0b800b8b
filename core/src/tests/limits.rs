//! The exact edges of what a log accepts and where it rotates, and what truncation removes.

use super::*;
use crate::format::{META_LEN, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN};
use crate::{AppendError, Lsn, RecoveryPolicy, SyncPolicy};

const H: u64 = SEGMENT_HEADER_LEN as u64;
const R: u64 = RECORD_HEADER_LEN as u64;

/// Total bytes of the log's segment files (start slots excluded).
fn segment_bytes(mem: &Mem) -> u64 {
    mem.files
        .iter()
        .filter(|(id, _)| !crate::format::is_start_slot(**id))
        .map(|(_, f)| f.len() as u64)
        .sum()
}

#[test]
fn a_record_of_exactly_max_record_size_is_appended_and_recovered() {
    let cfg = Config::default()
        .with_max_record_size(300)
        .with_max_batch_size(600);
    let (mut wal, _) = open(Mem::default(), cfg);
    let max = [0xa5u8; 300];
    assert_eq!(wal.append(&max).unwrap(), Lsn(1));
    assert_eq!(
        wal.append(&[0u8; 301]),
        Err(AppendError::RecordTooLarge { len: 301, max: 300 })
    );
    // A batch of exactly max_batch_size bytes; one byte more is refused whole.
    assert_eq!(wal.append_batch(&[&max, &max]).unwrap(), Lsn(2));
    assert_eq!(
        wal.append_batch(&[&max, &max, b"x"]),
        Err(AppendError::BatchTooLarge { len: 601, max: 600 })
    );
    for &policy in policies() {
        let (wal, report) = open(wal.storage().clone(), cfg.with_recovery(policy));
        assert!(report.is_clean(), "{policy:?}: {report}");
        let mut buf = [0u8; 300];
        for lsn in 1..=3 {
            assert_eq!(wal.read(Lsn(lsn), &mut buf).unwrap().payload, &max[..]);
        }
    }
    salvage_is_refused(wal.storage(), cfg);
}

#[test]
fn a_record_that_exactly_fills_a_segment_stays_in_it() {
    // Room for one header and 100 payload bytes after the segment header.
    let cfg = Config::default().with_segment_size(H + R + 100);
    let (mut wal, _) = open(Mem::default(), cfg);
    wal.append(&[1; 100]).unwrap();
    assert_eq!(wal.segments().len(), 1, "an exact fit does not rotate");
    assert_eq!(wal.segments()[0].end, H + R + 100);
    wal.append(&[]).unwrap();
    assert_eq!(wal.segments().len(), 2, "a full segment rotates");
    assert_eq!(wal.counters().rotations, 1);

    // The same for a batch: its headers count once per record.
    let cfg = Config::default().with_segment_size(H + 3 * R + 30);
    let (mut wal, _) = open(Mem::default(), cfg);
    wal.append(&[1; 10]).unwrap();
    wal.append_batch(&[&[2; 10], &[3; 10]]).unwrap();
    assert_eq!(wal.segments().len(), 1, "batch fits exactly");
    let (mut wal, _) = open(Mem::default(), cfg);
    wal.append(&[1; 10]).unwrap();
    wal.append_batch(&[&[2; 10], &[3; 11]]).unwrap();
    assert_eq!(wal.segments().len(), 2, "one byte over rotates");
    assert_eq!(wal.segments()[1].first_lsn, Lsn(2));
    let (wal, report) = open(wal.into_storage(), cfg);
    assert!(report.is_clean(), "{report}");
    assert_eq!(all(&wal).len(), 3);
}

#[test]
fn a_record_larger_than_a_segment_goes_into_the_empty_one() {
    let cfg = Config::default().with_segment_size(200);
    let (mut wal, _) = open(Mem::default(), cfg);
    wal.append(&[9; 500]).unwrap();
    assert_eq!(wal.segments().len(), 1, "no empty segment is left behind");
    assert_eq!(wal.counters().rotations, 0);
    wal.append(&[8; 500]).unwrap();
    assert_eq!(wal.segments().len(), 2);
    assert_eq!(wal.segments()[1].end, H + R + 500);
    let (wal, report) = open(wal.into_storage(), cfg);
    assert!(report.is_clean(), "{report}");
    assert_eq!(all(&wal).len(), 2);
}

#[test]
fn rotation_seals_and_counts() {
    let (mut wal, _) = open(Mem::default(), small());
    for i in 1..=30 {
        wal.append(&payload(i)).unwrap();
    }
    let rotations = wal.segments().len() as u64 - 1;
    assert!(rotations >= 3);
    let c = wal.counters();
    assert_eq!(c.rotations, rotations);
    // Under Always: one sync per append, and one per seal.
    assert_eq!(c.syncs, 30 + rotations);
    let segs = wal.segments().to_vec();
    assert!(!segs.last().unwrap().sealed);
    for pair in segs.windows(2) {
        assert!(pair[0].sealed);
        assert_eq!(pair[1].id, pair[0].id + 1);
        let len = wal.storage().files[&pair[0].id].len() as u64;
        assert_eq!(
            len,
            pair[0].end + R + META_LEN as u64,
            "seal after the last record"
        );
    }
}

#[test]
fn the_reserve_hint_goes_to_the_segment_being_appended_to() {
    let (mut wal, _) = open(Mem::default(), small());
    assert_eq!(wal.storage().reserved, std::vec![(0, 400)]);
    for i in 1..=12 {
        wal.append(&payload(i)).unwrap();
    }
    let active = wal.segments().last().unwrap().id;
    assert_eq!(wal.storage().reserved.last(), Some(&(active, 400)));
    let (mut wal, _) = open(wal.into_storage(), small());
    wal.storage_for_tests().reserved.clear();
    wal.reserve_active().unwrap();
    assert_eq!(wal.storage().reserved, std::vec![(active, 400)]);
    // A failed hint is reported to the caller and harms nothing.
    wal.storage_for_tests().fail_reserve = true;
    assert!(wal.reserve_active().is_err());
    assert_eq!(wal.poisoned(), None);
    wal.append(b"after").unwrap();
}

#[cfg(feature = "start-slots")]
#[test]
fn truncate_front_that_removes_nothing_writes_nothing() {
    let (mut wal, _) = open(Mem::default(), small());
    for i in 1..=30 {
        wal.append(&payload(i)).unwrap();
    }
    let before = wal.storage().clone();
    let second = wal.segments()[1].first_lsn;
    assert_eq!(wal.truncate_front(second.prev()).unwrap(), 0);
    assert_eq!(wal.storage().files, before.files, "no start slot written");
    assert_eq!(wal.storage().syncs, before.syncs);
    assert_eq!(wal.counters().segments_removed, 0);
    assert_eq!(wal.truncate_front(second).unwrap(), 1);
    assert_eq!(wal.counters().segments_removed, 1);
    assert_eq!(wal.first_lsn(), second);
}

/// Without feature `start-slots` a log cannot drop its front: `truncate_front` is a typed
/// refusal that changes nothing, whatever it is asked.
#[cfg(not(feature = "start-slots"))]
#[test]
fn truncate_front_is_refused_where_start_slots_are_not_built_in() {
    let (mut wal, _) = open(Mem::default(), small());
    for i in 1..=30 {
        wal.append(&payload(i)).unwrap();
    }
    let before = wal.storage().clone();
    let segments = wal.segments().to_vec();
    for lsn in [Lsn(1), wal.segments()[2].first_lsn, Lsn(1_000)] {
        assert!(matches!(
            wal.truncate_front(lsn),
            Err(crate::TruncateError::NotBuiltIn)
        ));
    }
    assert_eq!(wal.storage().files, before.files);
    assert_eq!(wal.storage().syncs, before.syncs);
    assert_eq!(wal.segments(), &segments[..]);
    assert_eq!(
        (wal.first_lsn(), wal.counters().segments_removed),
        (Lsn(1), 0)
    );
    wal.append(b"after").unwrap();
}

#[cfg(feature = "start-slots")]
#[test]
fn start_slots_take_turns_and_the_newest_generation_wins() {
    use crate::format::START_SLOTS;
    let (mut wal, _) = open(Mem::default(), small());
    for i in 1..=60 {
        wal.append(&payload(i)).unwrap();
    }
    let log_id = wal.log_id();
    for generation in 1..=5u64 {
        let next = wal.segments()[1].first_lsn;
        assert_eq!(wal.truncate_front(next).unwrap(), 1);
        let first = wal.segments()[0].id;
        let slot = START_SLOTS[(generation % 2) as usize];
        let mem = wal.storage();
        assert_eq!(
            crate::format::decode_start(&mem.files[&slot], log_id),
            Some((generation, first))
        );
        if generation > 1 {
            let other = START_SLOTS[((generation + 1) % 2) as usize];
            assert_eq!(
                crate::format::decode_start(&mem.files[&other], log_id),
                Some((generation - 1, first - 1)),
                "the older slot keeps the previous generation"
            );
        }
        // A reopen continues the generations where they are.
        let (again, report) = open(wal.into_storage(), small());
        assert!(report.is_clean(), "{report}");
        assert_eq!(again.first_lsn(), next);
        wal = again;
    }
}

#[test]
fn truncate_back_counts_every_byte_it_removes() {
    let (mut wal, _) = open(Mem::default(), small());
    for i in 1..=30 {
        wal.append(&payload(i)).unwrap();
    }
    // Within the newest segment.
    let before = segment_bytes(wal.storage());
    wal.truncate_back(Lsn(29)).unwrap();
    let after = segment_bytes(wal.storage());
    assert_eq!(wal.counters().bytes_truncated, before - after);
    assert!(before > after);
    // Across segments: seals cut, later segments removed.
    let target = wal.segments()[1].first_lsn;
    let before = segment_bytes(wal.storage()) + wal.counters().bytes_truncated;
    wal.truncate_back(target).unwrap();
    let after = segment_bytes(wal.storage());
    assert_eq!(wal.counters().bytes_truncated, before - after);
    assert_eq!(wal.segments().len(), 2);
    assert!(!wal.segments()[1].sealed && wal.segments()[0].sealed);
}

#[test]
fn truncate_back_keeps_the_seals_before_the_cut() {
    let (mut wal, _) = open(Mem::default(), small());
    for i in 1..=30 {
        wal.append(&payload(i)).unwrap();
    }
    let n = wal.segments().len();
    let keep = wal.segments()[n - 2].first_lsn;
    wal.truncate_back(keep).unwrap();
    let segs = wal.segments();
    assert_eq!(segs.len(), n - 1);
    assert!(
        segs[..n - 2].iter().all(|s| s.sealed),
        "untouched seals stay"
    );
    assert!(!segs[n - 2].sealed);
    let (wal, report) = open(
        wal.into_storage(),
        small().with_recovery(RecoveryPolicy::Strict),
    );
    assert!(report.is_clean(), "{report}");
    assert_eq!(wal.last_lsn(), keep);
}

#[test]
fn syncs_reach_the_segment_being_appended_to() {
    let (mut wal, _) = open(Mem::default(), small().with_sync_policy(SyncPolicy::Manual));
    for i in 1..=30 {
        wal.append(&payload(i)).unwrap();
    }
    let ticket = wal.begin_sync().unwrap();
    assert_eq!(ticket.segment, wal.segments().last().unwrap().id);
    assert_eq!(ticket.lsn, Lsn(30));
    wal.finish_sync(ticket, Ok(())).unwrap();
    assert_eq!(wal.durable_lsn(), Lsn(30));
}

/// The seal a rotation appends after a segment's records.
const SEAL: u64 = R + META_LEN as u64;

#[test]
fn a_configuration_no_segment_of_the_storage_can_hold_is_refused_at_open() {
    // Segments that cannot grow (`Storage::segment_capacity`): a segment of `segment_size`
    // must still take its seal, and the largest record must fit an empty segment with its
    // seal. One byte short is refused, with nothing created; an exact fit opens. (An encrypted
    // record's tag is checked when it is appended.)
    let by_size = Config::default()
        .with_segment_size(1000)
        .with_max_record_size(100);
    let by_record = Config::default()
        .with_segment_size(1000)
        .with_max_record_size(2000)
        .with_max_batch_size(2000);
    for (cfg, needed) in [(by_size, 1000 + SEAL), (by_record, H + R + 2000 + SEAL)] {
        let short = Mem {
            capacity: Some(needed - 1),
            ..Mem::default()
        };
        let mut scratch = [0u8; 512];
        let e = Wal::<Mem>::open(short, cfg, &mut scratch).err();
        assert_eq!(
            e,
            Some(crate::OpenError::Config(
                crate::ConfigError::LargerThanStorage {
                    needed,
                    capacity: needed - 1
                }
            ))
        );
        let exact = Mem {
            capacity: Some(needed),
            ..Mem::default()
        };
        let (wal, _) = open(exact, cfg);
        assert_eq!(wal.segments().len(), 1);
    }
    // Where segments grow (files), nothing is asked of the configuration.
    let (wal, _) = open(Mem::default(), by_record);
    assert_eq!(wal.segments().len(), 1);
}

#[test]
fn a_batch_no_empty_segment_can_hold_is_refused_before_anything_is_written() {
    // Capacity for segments of 1000 bytes and their seals; an empty segment has room for
    // 1000 - H bytes of records. A batch of 1-byte records needs R + 1 bytes each: within
    // max_batch_size (payload bytes only), but not within the room.
    let cfg = Config::default()
        .with_segment_size(1000)
        .with_max_record_size(100)
        .with_max_batch_size(1000);
    let room = 1000 - H;
    let mem = Mem {
        capacity: Some(1000 + SEAL),
        ..Mem::default()
    };
    let (mut wal, _) = open(mem, cfg);
    wal.append(b"first").unwrap();
    let one = [7u8];
    let fits = (room / (R + 1)) as usize; // 28 records, 924 bytes
    let too_many = std::vec![&one[..]; fits + 1];
    let before = wal.storage().files.clone();
    assert_eq!(
        wal.append_batch(&too_many),
        Err(AppendError::BatchDoesNotFit {
            needed: (fits as u64 + 1) * (R + 1),
            room
        })
    );
    assert_eq!(wal.storage().files, before, "nothing was written");
    assert_eq!(wal.poisoned(), None);
    // A batch that exactly fills an empty segment is taken (into a fresh segment).
    let exact = [9u8; 80];
    let filler = (room - 8 * (R + 80)) as usize - R as usize; // the ninth record's payload: 8
    let mut batch: std::vec::Vec<&[u8]> = std::vec![&exact[..]; 8];
    let last = std::vec![3u8; filler];
    batch.push(&last);
    assert_eq!(wal.append_batch(&batch).unwrap(), Lsn(2));
    assert_eq!(wal.segments().len(), 2);
    assert_eq!(
        wal.segments()[1].end,
        1000,
        "the batch filled the fresh segment"
    );
    assert_eq!(wal.append_batch(&too_many[..fits]).unwrap(), Lsn(11));
    // Without a capacity (files) the same batch goes into a fresh segment past segment_size.
    let (mut wal, _) = open(Mem::default(), cfg);
    assert_eq!(wal.append_batch(&too_many).unwrap(), Lsn(1));
}

/// `mem` with its one segment's header rewritten to start at `first` (a valid header: an image
/// another writer, or a fuzzer, could leave).
fn starting_at(first: u64) -> Mem {
    let (wal, _) = open(Mem::default(), Config::default());
    let mut mem = wal.into_storage();
    let f = mem.files.get_mut(&0).unwrap();
    let mut h = crate::format::SegmentHeader::decode(f).unwrap();
    h.first_lsn = Lsn(first);
    f[..SEGMENT_HEADER_LEN].copy_from_slice(&h.encode());
    mem
}

#[test]
fn appends_that_would_run_out_of_lsns_are_refused_and_lose_nothing() {
    // The highest LSN a segment may start at is u64::MAX - 1: the next LSN never passes it,
    // so a record's LSN is at most u64::MAX - 2.
    let (mut wal, _) = open(starting_at(u64::MAX - 3), Config::default());
    assert_eq!(wal.next_lsn(), Lsn(u64::MAX - 3));
    assert_eq!(
        wal.append_batch(&[b"a", b"b", b"c"]),
        Err(AppendError::OutOfLsns {
            next: Lsn(u64::MAX - 3)
        })
    );
    assert_eq!(wal.poisoned(), None);
    assert_eq!(wal.append(b"x").unwrap(), Lsn(u64::MAX - 3));
    assert_eq!(wal.append(b"y").unwrap(), Lsn(u64::MAX - 2));
    assert_eq!(
        wal.append(b"z"),
        Err(AppendError::OutOfLsns {
            next: Lsn(u64::MAX - 1)
        })
    );
    assert_eq!(wal.next_lsn(), Lsn(u64::MAX - 1));
    assert_eq!(
        all(&wal),
        [(u64::MAX - 3, b"x".to_vec()), (u64::MAX - 2, b"y".to_vec())]
    );
    // What was acknowledged opens again, and a rotation at the end would start a segment
    // whose header is valid.
    let (wal, report) = open(wal.into_storage(), Config::default());
    assert!(report.is_clean(), "{report}");
    assert_eq!(wal.next_lsn(), Lsn(u64::MAX - 1));
    assert_eq!(all(&wal).len(), 2);
}

#[test]
fn a_record_at_the_last_lsn_on_storage_is_refused_not_a_panic() {
    // Two valid records rewritten (header checksums and all) to LSNs u64::MAX - 1 and
    // u64::MAX: no writer makes the second, and nothing can follow it.
    let (mut wal, _) = open(starting_at(u64::MAX - 3), Config::default());
    wal.append(b"x").unwrap();
    wal.append(b"y").unwrap();
    let mut mem = starting_at(u64::MAX - 1);
    let f = mem.files.get_mut(&0).unwrap();
    let h = crate::format::SegmentHeader::decode(f).unwrap();
    let written = &wal.storage().files[&0];
    f.truncate(SEGMENT_HEADER_LEN);
    f.extend_from_slice(&written[SEGMENT_HEADER_LEN..]);
    let mut at = SEGMENT_HEADER_LEN;
    for lsn in [u64::MAX - 1, u64::MAX] {
        let mut r = crate::format::RecordHeader::decode(&f[at..], h.checksum, h.salt).unwrap();
        r.lsn = Lsn(lsn);
        f[at..at + RECORD_HEADER_LEN].copy_from_slice(&r.encode(h.checksum, h.salt));
        at += RECORD_HEADER_LEN + r.length as usize;
    }
    // Strict refuses the impossible record; the default cuts it as an invalid tail, keeps
    // the record before it, and the log then refuses to go on rather than overflow.
    assert!(
        try_open(
            mem.clone(),
            Config::default().with_recovery(RecoveryPolicy::Strict)
        )
        .is_err()
    );
    let (mut wal, report) = open(mem, Config::default());
    assert!(!report.is_clean(), "{report}");
    assert_eq!(all(&wal), [(u64::MAX - 1, b"x".to_vec())]);
    assert_eq!(
        wal.append(b"z"),
        Err(AppendError::OutOfLsns {
            next: Lsn(u64::MAX)
        })
    );
}

#[test]
fn a_log_at_the_last_segment_id_refuses_to_rotate_into_a_start_slot() {
    // A log whose one segment has id u64::MAX - 2 (a valid header): the next id is the first
    // start slot's. Rotating into it would put acknowledged records where no open looks for
    // them (and where `truncate_front` writes its start record).
    let (wal, _) = open(Mem::default(), small());
    let mut mem = wal.into_storage();
    let last = u64::MAX - 2;
    let mut f = mem.files.remove(&0).unwrap();
    let mut h = crate::format::SegmentHeader::decode(&f).unwrap();
    h.segment_id = last;
    h.first_segment = Some(last);
    f[..SEGMENT_HEADER_LEN].copy_from_slice(&h.encode());
    mem.files.insert(last, f);
    let (mut wal, report) = open(mem, small());
    assert!(report.is_clean(), "{report}");
    let mut n = 0;
    let refused = loop {
        n += 1;
        match wal.append(&payload(n)) {
            Ok(lsn) => assert_eq!(lsn, Lsn(n)),
            Err(e) => break e,
        }
    };
    assert_eq!(refused, AppendError::OutOfSegmentIds { last });
    assert_eq!(wal.poisoned(), None);
    assert_eq!(wal.segments().len(), 1);
    let kept = all(&wal);
    assert_eq!(kept.len() as u64, n - 1);
    let (wal, report) = open(wal.into_storage(), small());
    assert!(report.is_clean(), "{report}");
    assert_eq!(all(&wal), kept);
}
