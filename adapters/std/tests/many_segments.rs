//! A log of more segments than walden-std's table once held (1,024): the segment table grows, so
//! appends, reopening, reading, verifying and retention work at any segment count.

use walden_core::{Config, Lsn, SyncPolicy};
use walden_std::{Options, SharedWal, Wal, verify_dir};

/// More than twice the old fixed table's 1,024 entries.
const SEGMENTS: usize = 2_100;

/// A directory on tmpfs where there is one. This test is about the number of segments, not about
/// durability, and thousands of rotations cost thousands of `fdatasync`s: under a second on
/// tmpfs, most of a minute on a virtio disk (the fallback).
fn scratch_dir() -> tempfile::TempDir {
    tempfile::tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .unwrap()
}

fn payload(i: u64) -> Vec<u8> {
    format!("record {i:06} ").repeat(4).into_bytes()
}

fn options() -> Options {
    // About two records per segment; no sync but rotation's own, and no preallocation, so
    // thousands of rotations take a second or so.
    let mut options = Options::from(
        Config::default()
            .with_segment_size(256)
            .with_sync_policy(SyncPolicy::Manual),
    );
    options.preallocate = false;
    options
}

fn check_all(records: &[(Lsn, Vec<u8>)], from: u64, to: u64) {
    assert_eq!(records.len() as u64, to - from + 1);
    for (i, (lsn, bytes)) in (from..=to).zip(records) {
        assert_eq!((*lsn, bytes), (Lsn(i), &payload(i)));
    }
}

#[test]
fn thousands_of_segments_append_reopen_read_verify_and_truncate() {
    // Far fewer descriptors than segments (Linux's default soft limit is 1,024): a storage
    // that kept every segment file open would fail with EMFILE part of the way.
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    rustix::process::setrlimit(
        rustix::process::Resource::Nofile,
        rustix::process::Rlimit {
            current: Some(256),
            maximum: limit.maximum,
        },
    )
    .expect("lower the open-file limit");
    let dir = scratch_dir();
    let (mut wal, _) = Wal::open(dir.path(), options()).unwrap();
    let mut n = 0;
    while wal.segments().len() <= SEGMENTS {
        n += 1;
        assert_eq!(wal.append(&payload(n)).unwrap(), Lsn(n));
    }
    wal.sync().unwrap();
    let segments = wal.segments().len();
    assert_eq!(wal.counters().rotations as usize, segments - 1);
    drop(wal);

    let (wal, report) = Wal::open(dir.path(), options()).unwrap();
    assert!(report.is_clean(), "{report}");
    assert_eq!((report.segments, report.records), (segments, n));
    check_all(&wal.read_all_from(Lsn(1)).unwrap(), 1, n);
    drop(wal);

    // The parallel verifier and the planner behind it see every segment.
    let verified = verify_dir(dir.path(), 2).unwrap();
    assert!(verified.is_clean());
    assert_eq!(verified.segments.len(), segments);
    assert_eq!(verified.inspection.segments, segments);
    assert_eq!(verified.records, n);

    // The shared handle: a reader across every segment, appends, retention.
    let (shared, report) = SharedWal::open(dir.path(), options()).unwrap();
    assert_eq!(report.segments, segments);
    let mut reader = shared.reader(Lsn(1)).unwrap();
    for i in 1..=n {
        let rec = reader.read_next().unwrap().expect("a record");
        assert_eq!((rec.lsn, rec.payload), (Lsn(i), &payload(i)[..]));
    }
    assert!(reader.read_next().unwrap().is_none());
    drop(reader);
    for i in n + 1..=n + 10 {
        assert_eq!(shared.append(&payload(i)).unwrap().first, Lsn(i));
    }
    let n = n + 10;
    let removed = shared.truncate_front(Lsn(n - 100)).unwrap();
    assert!(removed > SEGMENTS - 100, "{removed}");
    shared.sync().unwrap();
    drop(shared);

    let (wal, report) = Wal::open(dir.path(), options()).unwrap();
    assert!(report.is_clean(), "{report}");
    let first = wal.first_lsn().0;
    assert!(first > 1 && first <= n - 100, "{first}");
    assert_eq!(report.segments, wal.segments().len());
    assert!(report.segments < 100);
    check_all(&wal.read_all_from(Lsn(first)).unwrap(), first, n);
    let files = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            let name = name.to_string_lossy();
            name.ends_with(".wal") && !name.starts_with("184467440737095516")
        })
        .count();
    assert_eq!(
        files, report.segments,
        "removed segments are gone from the directory"
    );
}
