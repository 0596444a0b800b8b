use super::*;
use crate::{
    AppendError, Lsn, Op, ReadError, StorageErrorKind, SyncError, SyncPolicy, TruncateError,
};

#[test]
fn append_read_reopen_round_trip() {
    let (mut wal, report) = open(Mem::default(), small());
    assert!(report.created);
    for i in 1..=20 {
        assert_eq!(wal.append(&payload(i)).unwrap(), Lsn(i));
    }
    assert_eq!(
        wal.durable_lsn(),
        Lsn(20),
        "SyncPolicy::Always syncs every append"
    );
    assert!(wal.segments().len() > 2, "small segments rotate");
    let before = all(&wal);
    let (wal, report) = open(wal.into_storage(), small());
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.records, 20);
    assert_eq!((report.first_lsn, report.last_lsn), (Lsn(1), Lsn(20)));
    assert_eq!(all(&wal), before);
    assert_eq!(before.len(), 20);
    assert_eq!(before[6], (7, payload(7)));
}

#[test]
fn reader_starts_anywhere_and_checks_its_buffer() {
    let (mut wal, _) = open(Mem::default(), small());
    for i in 1..=10 {
        wal.append(&payload(i)).unwrap();
    }
    let mut r = wal.reader(Lsn(7)).unwrap();
    let mut tiny = [0u8; 3];
    assert_eq!(
        r.next(&mut tiny),
        Err(ReadError::BufferTooSmall {
            needed: payload(7).len()
        })
    );
    let mut buf = [0u8; 64];
    assert_eq!(
        r.next(&mut buf).unwrap().unwrap().payload,
        &payload(7)[..],
        "did not advance"
    );
    assert_eq!(r.next(&mut buf).unwrap().unwrap().lsn, Lsn(8));
    assert!(matches!(
        wal.reader(Lsn(0)),
        Err(ReadError::OutOfRange { .. })
    ));
    assert!(matches!(
        wal.reader(Lsn(12)),
        Err(ReadError::OutOfRange { .. })
    ));
    let mut end = wal.reader(Lsn(11)).unwrap();
    assert_eq!(end.next(&mut buf).unwrap(), None);
}

#[test]
fn batches_are_dense_and_readable_from_inside() {
    let (mut wal, _) = open(Mem::default(), small());
    wal.append(b"solo").unwrap();
    let first = wal.append_batch(&[b"a", b"bb", b"ccc"]).unwrap();
    assert_eq!(first, Lsn(2));
    assert_eq!(wal.append_batch(&[]).unwrap(), Lsn(5));
    assert_eq!(wal.counters().batches, 1);
    let mut buf = [0u8; 8];
    assert_eq!(wal.read(Lsn(3), &mut buf).unwrap().payload, b"bb");
    assert_eq!(wal.read(Lsn(4), &mut buf).unwrap().kind.to_byte(), 4);
}

#[test]
fn oversized_records_and_batches_are_refused_without_writing() {
    let cfg = small().with_max_record_size(100);
    let (mut wal, _) = open(Mem::default(), cfg);
    let big = [0u8; 101];
    assert_eq!(
        wal.append(&big),
        Err(AppendError::RecordTooLarge { len: 101, max: 100 })
    );
    let cfg = Config {
        max_batch_size: 150,
        ..cfg
    };
    let (mut wal, _) = open(wal.into_storage(), cfg);
    let part = [0u8; 80];
    assert!(matches!(
        wal.append_batch(&[&part, &part]),
        Err(AppendError::BatchTooLarge { .. })
    ));
    assert_eq!(wal.last_lsn(), Lsn(0));
    assert_eq!(wal.poisoned(), None, "refusing bad input does not poison");
}

#[test]
fn failed_sync_poisons_and_never_reports_durable() {
    let cfg = small().with_sync_policy(SyncPolicy::Manual);
    let (mut wal, _) = open(Mem::default(), cfg);
    wal.append(b"one").unwrap();
    assert_eq!(wal.sync().unwrap(), Lsn(1));
    wal.append(b"two").unwrap();
    wal.storage_for_tests().fail_sync = true;
    assert!(matches!(wal.sync(), Err(SyncError::Storage(_))));
    // fsyncgate: a retried sync would succeed, but the dirty data may be gone. Still refuse.
    wal.storage_for_tests().fail_sync = false;
    let p = wal.poisoned().expect("poisoned");
    assert_eq!((p.op, p.kind), (Op::Sync, StorageErrorKind::Io));
    assert!(matches!(wal.sync(), Err(SyncError::Poisoned(_))));
    assert!(matches!(
        wal.append(b"three"),
        Err(AppendError::Poisoned(_))
    ));
    assert!(matches!(
        wal.truncate_back(Lsn(1)),
        Err(TruncateError::Poisoned(_))
    ));
    // (A build without feature `start-slots` has no truncate_front to refuse with.)
    if cfg!(feature = "start-slots") {
        assert!(matches!(
            wal.truncate_front(Lsn(1)),
            Err(TruncateError::Poisoned(_))
        ));
    } else {
        assert!(matches!(
            wal.truncate_front(Lsn(1)),
            Err(TruncateError::NotBuiltIn)
        ));
    }
    assert_eq!(
        wal.durable_lsn(),
        Lsn(1),
        "durable never advanced past the failure"
    );
    // Reopening runs recovery and clears the poison.
    let (mut wal, _) = open(wal.into_storage(), cfg);
    assert_eq!(wal.poisoned(), None);
    assert_eq!(wal.append(b"after").unwrap(), Lsn(3));
}

#[test]
fn open_fails_cleanly_when_its_own_sync_fails() {
    let (wal, _) = open(Mem::default(), small());
    let mut st = wal.into_storage();
    st.fail_sync = true;
    assert!(matches!(
        try_open(st, small()),
        Err(crate::OpenError::Storage(_))
    ));
}

#[test]
fn failed_write_poisons() {
    let (mut wal, _) = open(Mem::default(), small());
    wal.storage_for_tests().fail_write = true;
    assert!(matches!(wal.append(b"x"), Err(AppendError::Storage(_))));
    wal.storage_for_tests().fail_write = false;
    assert!(matches!(wal.append(b"x"), Err(AppendError::Poisoned(_))));
}

#[test]
fn sync_policies_count_records_and_bytes() {
    let cfg = small().with_sync_policy(SyncPolicy::EveryRecords(3));
    let (mut wal, _) = open(Mem::default(), cfg);
    wal.append(b"1").unwrap();
    wal.append(b"2").unwrap();
    assert_eq!(wal.durable_lsn(), Lsn(0));
    wal.append(b"3").unwrap();
    assert_eq!(wal.durable_lsn(), Lsn(3));
    // Headers count: 37 + 37 bytes reach 74.
    let cfg = small().with_sync_policy(SyncPolicy::EveryBytes(74));
    let (mut wal, _) = open(Mem::default(), cfg);
    wal.append(b"12345").unwrap();
    assert_eq!(wal.durable_lsn(), Lsn(0));
    wal.append(b"67890").unwrap();
    assert_eq!(wal.durable_lsn(), Lsn(2));
    let (mut wal, _) = open(Mem::default(), small().with_sync_policy(SyncPolicy::Manual));
    wal.append(b"m").unwrap();
    assert_eq!(wal.durable_lsn(), Lsn(0));
    assert_eq!(wal.sync().unwrap(), Lsn(1));
}

#[cfg(feature = "start-slots")]
#[test]
fn truncate_front_removes_whole_segments_only() {
    let (mut wal, _) = open(Mem::default(), small());
    for i in 1..=30 {
        wal.append(&payload(i)).unwrap();
    }
    let segs = wal.segments().to_vec();
    let cut = segs[2].first_lsn;
    assert_eq!(wal.truncate_front(cut).unwrap(), 2);
    assert_eq!(wal.first_lsn(), cut);
    assert_eq!(wal.truncate_front(Lsn(1_000)).unwrap(), segs.len() - 3);
    assert_eq!(wal.segments().len(), 1, "the active segment stays");
    let (wal, report) = open(wal.into_storage(), small());
    assert!(report.is_clean());
    assert_eq!(wal.last_lsn(), Lsn(30));
    assert_eq!(all(&wal).last().unwrap().0, 30);
}

#[test]
fn truncate_back_rewinds_durably_and_refuses_to_split_batches() {
    let (mut wal, _) = open(Mem::default(), small());
    for i in 1..=25 {
        wal.append(&payload(i)).unwrap();
    }
    wal.append_batch(&[b"b1", b"b2", b"b3"]).unwrap(); // 26..=28
    assert_eq!(
        wal.truncate_back(Lsn(26)),
        Err(TruncateError::InsideBatch {
            batch_start: Lsn(26)
        })
    );
    wal.truncate_back(Lsn(25)).unwrap();
    assert_eq!(wal.last_lsn(), Lsn(25));
    wal.truncate_back(Lsn(9)).unwrap();
    assert_eq!(wal.next_lsn(), Lsn(10));
    assert_eq!(wal.append(b"new ten").unwrap(), Lsn(10));
    let (wal, report) = open(wal.into_storage(), small());
    assert!(report.is_clean(), "{report}");
    let recs = all(&wal);
    assert_eq!(recs.len(), 10);
    assert_eq!(recs[9], (10, b"new ten".to_vec()));
    let (mut wal, _) = open(wal.into_storage(), small());
    wal.truncate_back(Lsn(0)).unwrap();
    assert_eq!(wal.last_lsn(), Lsn(0));
    assert_eq!(wal.append(b"again").unwrap(), Lsn(1));
}

#[test]
fn truncate_back_that_cannot_read_changes_nothing_and_says_so() {
    // Finding where to cut reads the segment; a failed read changes nothing, so the log is
    // not poisoned and the error does not say it is.
    let (mut wal, _) = open(Mem::default(), small());
    for i in 1..=10 {
        wal.append(&payload(i)).unwrap();
    }
    wal.storage_for_tests().fail_read = true;
    let e = wal.truncate_back(Lsn(5)).unwrap_err();
    assert!(
        matches!(
            e,
            TruncateError::Storage(crate::IoFailure {
                op: crate::Op::Read,
                ..
            })
        ),
        "{e:?}"
    );
    let text = std::format!("{e}");
    assert!(text.ends_with("; nothing was changed"), "{text}");
    assert!(!text.contains("poisoned"), "{text}");
    wal.storage_for_tests().fail_read = false;
    assert_eq!(wal.poisoned(), None);
    assert_eq!(wal.append(b"eleven").unwrap(), Lsn(11));
    wal.truncate_back(Lsn(5)).unwrap();
    assert_eq!(wal.last_lsn(), Lsn(5));
    // Any other failed operation poisons the log, and says so.
    assert_eq!(wal.durable_lsn(), Lsn(5));
    wal.storage_for_tests().fail_sync = true;
    let e = wal.truncate_back(Lsn(3)).unwrap_err();
    assert!(
        std::format!("{e}").ends_with("; the log is poisoned"),
        "{e}"
    );
    assert!(wal.poisoned().is_some());
    // The cut was made before its sync failed: records 4 and 5 may be gone after a crash, so
    // the durable LSN no longer vouches for them (it stayed at 5).
    assert_eq!(wal.durable_lsn(), Lsn(3));
}

#[test]
fn segment_table_full_is_a_typed_error() {
    let mut scratch = [0u8; 512];
    let (mut wal, _) =
        Wal::<Mem, Fixed<2>>::open(Mem::default(), small(), &mut scratch).expect("open");
    let mut err = None;
    for i in 0..100 {
        if let Err(e) = wal.append(&payload(i)) {
            err = Some(e);
            break;
        }
    }
    assert_eq!(err, Some(AppendError::SegmentTableFull { capacity: 2 }));
    assert_eq!(wal.poisoned(), None);
    // Refused before anything changed: no segment the table does not know about.
    assert_eq!(wal.storage().files.len(), 2);
}

#[test]
fn a_sync_done_by_the_adapter_advances_durable_and_a_failure_poisons() {
    let cfg = small().with_sync_policy(SyncPolicy::Manual);
    let (mut wal, _) = open(Mem::default(), cfg);
    wal.append(b"a").unwrap();
    wal.append(b"b").unwrap();
    let ticket = wal.begin_sync().unwrap();
    assert_eq!(ticket.lsn, Lsn(2));
    wal.append(b"c").unwrap(); // appended while the sync is in flight: not covered
    assert_eq!(wal.finish_sync(ticket, Ok(())).unwrap(), Lsn(2));
    assert_eq!(wal.durable_lsn(), Lsn(2));
    // A rewind while a sync is in flight: the old ticket must not vouch for new records.
    let stale = wal.begin_sync().unwrap();
    wal.truncate_back(Lsn(1)).unwrap();
    wal.append(b"B").unwrap();
    wal.append(b"C").unwrap();
    assert_eq!(wal.finish_sync(stale, Ok(())).unwrap(), Lsn(1));
    let t = wal.begin_sync().unwrap();
    let err = crate::tests::mem::MemError(StorageErrorKind::Io);
    assert!(matches!(
        wal.finish_sync(t, Err(err)),
        Err(SyncError::Storage(_))
    ));
    assert!(wal.poisoned().is_some());
    assert_eq!(wal.durable_lsn(), Lsn(1));
    assert!(wal.begin_sync().is_err());
}
