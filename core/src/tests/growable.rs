//! The growable segment table: logs of more segments than any fixed table here holds, and the
//! fixed table's typed errors for the same log.

use std::vec::Vec;

use super::*;
use crate::inspect::{InspectError, Verdict, inspect};
use crate::{Growable, Lsn, OpenError};

type BigWal = Wal<Mem, Growable>;

/// More than the `Fixed<64>` these tests compare with; fewer under Miri, which runs these
/// tests hundreds of times slower (300 segments took minutes there).
const SEGMENTS: usize = if cfg!(miri) { 70 } else { 300 };

/// A log of more than `SEGMENTS` segments of 400 bytes, and how many records it holds.
fn long_log() -> (BigWal, u64) {
    let mut scratch = [0u8; 1024];
    let (mut wal, _) = BigWal::open(Mem::default(), small(), &mut scratch).expect("open");
    let mut n = 0;
    while wal.segments().len() <= SEGMENTS {
        n += 1;
        assert_eq!(wal.append(&payload(n)).expect("append"), Lsn(n));
    }
    (wal, n)
}

/// Reads `from..=to` in order, then checks that `last` (payload) follows, or nothing.
fn check_records(wal: &BigWal, from: u64, to: u64, last: Option<&[u8]>) {
    let mut reader = wal.reader(Lsn(from)).expect("reader");
    let mut buf = [0u8; 64];
    for i in from..=to {
        let rec = reader.next(&mut buf).expect("read").expect("a record");
        assert_eq!((rec.lsn, rec.payload), (Lsn(i), &payload(i)[..]));
    }
    let next = reader.next(&mut buf).expect("read");
    assert_eq!(next.map(|r| r.payload), last);
}

#[test]
fn a_growable_log_outgrows_every_fixed_table_and_reopens_whole() {
    let (wal, n) = long_log();
    let segments = wal.segments().len();
    assert!(segments > SEGMENTS);
    check_records(&wal, 1, n, None);

    let mut mem = wal.into_storage();
    mem.scrambled_list = true;
    let mut scratch = [0u8; 1024];
    let (mut wal, report) = BigWal::open(mem, small(), &mut scratch).expect("reopen");
    assert_eq!((report.segments, report.records), (segments, n));
    assert_eq!((report.cut, report.salvage), (None, None));
    let ids: Vec<_> = wal.segments().iter().map(|s| s.id).collect();
    assert_eq!(ids, (0..segments as u64).collect::<Vec<_>>());
    check_records(&wal, 1, n, None);

    // Retention over hundreds of segments (where `truncate_front` is built in: feature
    // `start-slots`), then appends and a reopen.
    let mut removed = 0;
    let mut first = 1;
    if cfg!(feature = "start-slots") {
        let keep = n / 2;
        removed = wal.truncate_front(Lsn(keep)).expect("truncate_front");
        assert!(removed > SEGMENTS / 3, "{removed}");
        assert_eq!(wal.segments().len(), segments - removed);
        first = wal.first_lsn().0;
        assert!(first <= keep && first > 1);
    }
    wal.append(b"after").expect("append");
    let (wal, report) = BigWal::open(wal.into_storage(), small(), &mut scratch).expect("reopen");
    assert_eq!(report.segments, segments - removed);
    check_records(&wal, first, n, Some(b"after"));
}

#[test]
fn the_planner_sees_every_segment_of_a_growable_log_and_a_fixed_one_refuses() {
    let (wal, n) = long_log();
    let segments = wal.segments().len();
    let mut mem = wal.into_storage();
    mem.scrambled_list = true;
    let mut scratch = [0u8; 1024];

    let mut seen = Vec::new();
    let ins = inspect::<_, Growable>(&mem, &small(), &mut scratch, &mut |s| seen.push(s.id))
        .expect("inspect");
    assert_eq!(
        (ins.segments, ins.records, ins.verdict),
        (segments, n, Verdict::Clean)
    );
    assert_eq!(ins.valid_through, Lsn(n));
    assert_eq!(
        seen,
        (0..segments as u64).collect::<Vec<_>>(),
        "oldest first, each once"
    );

    // The same log with a fixed table: typed errors, nothing changed.
    let before = mem.files.clone();
    assert_eq!(
        inspect::<_, Fixed<64>>(&mem, &small(), &mut scratch, &mut |_| {}).err(),
        Some(InspectError::TooManySegments { capacity: 64 })
    );
    assert_eq!(
        Wal::<Mem, Fixed<64>>::open(mem.clone(), small(), &mut scratch).err(),
        Some(OpenError::TooManySegments { capacity: 64 })
    );
    assert!(mem.files == before);
}

#[test]
fn a_log_written_with_one_table_opens_with_the_other() {
    let mut scratch = [0u8; 1024];
    let (mut fixed, _) = TestWal::open(Mem::default(), small(), &mut scratch).expect("open");
    for i in 1..=30 {
        fixed.append(&payload(i)).expect("append");
    }
    let segments = fixed.segments().to_vec();
    let (grown, report) = BigWal::open(fixed.into_storage(), small(), &mut scratch).expect("open");
    assert_eq!((report.records, grown.segments()), (30, &segments[..]));
    let (fixed, report) = TestWal::open(grown.into_storage(), small(), &mut scratch).expect("open");
    assert_eq!((report.records, fixed.segments()), (30, &segments[..]));
}

#[test]
fn a_fixed_table_too_small_for_one_segment_is_refused_at_open() {
    // `Fixed<0>` cannot hold the segment a new log starts with: a typed error before anything
    // is created, not a log without segments that panics at its first append.
    let mut mem = Mem::default();
    let got = Wal::<&mut Mem, Fixed<0>>::open(&mut mem, Config::default(), &mut [0u8; 4096]);
    assert!(matches!(
        got.err(),
        Some(OpenError::TooManySegments { capacity: 0 })
    ));
    assert!(mem.files.is_empty(), "nothing created");
    // One segment is enough to start; the second is refused with the log going on.
    let (mut wal, _) =
        Wal::<Mem, Fixed<1>>::open(Mem::default(), small(), &mut [0u8; 4096]).expect("open");
    let mut n = 0;
    let full = loop {
        n += 1;
        match wal.append(&payload(n)) {
            Ok(lsn) => assert_eq!(lsn, Lsn(n)),
            Err(e) => break e,
        }
    };
    assert_eq!(full, crate::AppendError::SegmentTableFull { capacity: 1 });
    assert_eq!(wal.poisoned(), None);
    assert_eq!(wal.durable_lsn(), Lsn(n - 1));
}
