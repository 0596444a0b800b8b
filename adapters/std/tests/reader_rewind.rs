//! A `SharedReader` whose returned records a `truncate_back` removed says so, once, with
//! `ReadError::Rewound { to }` (the last LSN kept), and goes on at `to + 1` (never before the
//! LSN it was made at). A cut that removed nothing it returned is no error.

use walden_std::{Config, FileStorage, Lsn, Options, ReadError, SharedWal, SyncPolicy};

type SharedReader = walden_std::SharedReader<FileStorage>;

fn log() -> (tempfile::TempDir, SharedWal) {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = Options::from(Config::default().with_segment_size(1 << 20))
        .with_sync_policy(SyncPolicy::Manual);
    let (wal, _) = SharedWal::open(dir.path(), options).expect("open");
    (dir, wal)
}

/// Appends `round`'s records `lsns` (each names its LSN and round), checking their LSNs.
fn append(wal: &SharedWal, round: u8, lsns: core::ops::RangeInclusive<u64>) {
    for lsn in lsns {
        let got = wal.append(&payload(round, lsn)).expect("append").first;
        assert_eq!(got, Lsn(lsn));
    }
}

fn payload(round: u8, lsn: u64) -> Vec<u8> {
    format!("round {round} lsn {lsn}").into_bytes()
}

/// Reads `lsns` of `round`, then the end of the log.
fn read(r: &mut SharedReader, round: u8, lsns: core::ops::RangeInclusive<u64>) {
    for lsn in lsns {
        let rec = r.read_next().expect("read").expect("a record");
        assert_eq!(
            (rec.lsn, rec.payload),
            (Lsn(lsn), &payload(round, lsn)[..]),
            "round {round}"
        );
    }
}

fn rewound(r: &mut SharedReader) -> Option<Lsn> {
    match r.read_next() {
        Err(ReadError::Rewound { to }) => Some(to),
        Ok(rec) => {
            assert!(rec.is_some(), "a record or a rewind");
            None
        }
        Err(e) => panic!("{e:?}"),
    }
}

/// The defect: the reader had returned 1..=5; a cut keeping 1..=3 and new records 4.. went
/// unnoticed (it went on at 6, so the consumer kept the old 4 and 5 and never saw the new).
#[test]
fn a_cut_below_what_the_reader_returned_is_reported_once_then_it_reads_the_new_records() {
    let (_dir, wal) = log();
    append(&wal, 0, 1..=5);
    let mut r = wal.reader(Lsn(1)).expect("reader");
    read(&mut r, 0, 1..=5);
    wal.truncate_back(Lsn(3)).expect("truncate_back");
    append(&wal, 1, 4..=6);
    assert_eq!(rewound(&mut r), Some(Lsn(3)));
    assert_eq!(r.position(), Lsn(4));
    read(&mut r, 1, 4..=6);
    assert!(r.read_next().expect("read").is_none());
    assert_eq!(wal.metrics().corruption_events, 0);
}

/// Reported before appends refill the removed LSNs too, and at the first read after the cut
/// even when the reader still holds copies of removed records (it read ahead of its caller).
#[test]
fn the_report_comes_at_the_first_read_after_the_cut_not_after_records_it_had_copied() {
    let (_dir, wal) = log();
    append(&wal, 0, 1..=10);
    let mut r = wal.reader(Lsn(1)).expect("reader");
    read(&mut r, 0, 1..=5);
    wal.truncate_back(Lsn(3)).expect("truncate_back");
    assert_eq!(rewound(&mut r), Some(Lsn(3)));
    assert!(
        r.read_next().expect("read").is_none(),
        "nothing after 3 yet"
    );
    append(&wal, 1, 4..=4);
    read(&mut r, 1, 4..=4);
    assert!(r.read_next().expect("read").is_none());
}

#[test]
fn a_cut_above_the_position_is_not_reported() {
    let (_dir, wal) = log();
    append(&wal, 0, 1..=5);
    let mut r = wal.reader(Lsn(1)).expect("reader");
    read(&mut r, 0, 1..=2);
    wal.truncate_back(Lsn(4)).expect("truncate_back");
    append(&wal, 1, 5..=6);
    read(&mut r, 0, 3..=4);
    read(&mut r, 1, 5..=6);
    assert!(r.read_next().expect("read").is_none());
}

/// Kept up to exactly the last record returned: nothing returned was removed.
#[test]
fn a_cut_at_the_position_is_not_reported() {
    let (_dir, wal) = log();
    append(&wal, 0, 1..=5);
    let mut r = wal.reader(Lsn(1)).expect("reader");
    read(&mut r, 0, 1..=3);
    wal.truncate_back(Lsn(3)).expect("truncate_back");
    append(&wal, 1, 4..=5);
    read(&mut r, 1, 4..=5);
    assert!(r.read_next().expect("read").is_none());
}

/// Two cuts before the reader reads again, in either order: one report, of the lower.
#[test]
fn two_cuts_in_a_row_are_reported_once_with_the_lowest() {
    for cuts in [[4, 2], [2, 4]] {
        let (_dir, wal) = log();
        append(&wal, 0, 1..=5);
        let mut r = wal.reader(Lsn(1)).expect("reader");
        read(&mut r, 0, 1..=5);
        wal.truncate_back(Lsn(cuts[0])).expect("truncate_back");
        append(&wal, 1, cuts[0] + 1..=5);
        wal.truncate_back(Lsn(cuts[1])).expect("truncate_back");
        append(&wal, 2, cuts[1] + 1..=6);
        assert_eq!(rewound(&mut r), Some(Lsn(2)), "cuts {cuts:?}");
        // Cuts 4 then 2: round 1's record 5 is gone again. Cuts 2 then 4: round 1's 3..=4 stay.
        if cuts == [2, 4] {
            read(&mut r, 1, 3..=4);
            read(&mut r, 2, 5..=6);
        } else {
            read(&mut r, 2, 3..=6);
        }
        assert!(r.read_next().expect("read").is_none());
    }
}

#[test]
fn a_reader_made_after_the_cut_reports_nothing() {
    let (_dir, wal) = log();
    append(&wal, 0, 1..=5);
    wal.truncate_back(Lsn(3)).expect("truncate_back");
    append(&wal, 1, 4..=6);
    let mut r = wal.reader(Lsn(1)).expect("reader");
    read(&mut r, 0, 1..=3);
    read(&mut r, 1, 4..=6);
    assert!(r.read_next().expect("read").is_none());
}

/// A reader made at 4 that returned 4..=5 is told of a cut to 2, and goes on at 4 (where it
/// was asked to start), as a tail does; one that returned nothing yet is told nothing.
#[test]
fn a_reader_goes_on_no_earlier_than_where_it_started() {
    let (_dir, wal) = log();
    append(&wal, 0, 1..=5);
    let mut returned = wal.reader(Lsn(4)).expect("reader");
    read(&mut returned, 0, 4..=5);
    let mut fresh = wal.reader(Lsn(4)).expect("reader");
    wal.truncate_back(Lsn(2)).expect("truncate_back");
    append(&wal, 1, 3..=5);
    assert_eq!(rewound(&mut returned), Some(Lsn(2)));
    assert_eq!(returned.position(), Lsn(4));
    read(&mut returned, 1, 4..=5);
    read(&mut fresh, 1, 4..=5);
    assert!(returned.read_next().expect("read").is_none());
    assert!(fresh.read_next().expect("read").is_none());
}

/// The reader had copied the header of a record larger than its copy (and some of its payload)
/// when the cut removed it: reported as any other, and the new record at that LSN is read.
#[test]
fn a_cut_while_the_reader_held_a_removed_header_is_reported() {
    let (_dir, wal) = log();
    append(&wal, 0, 1..=10);
    let _ = wal.append(&[11; 200_000]).expect("append");
    let mut r = wal.reader(Lsn(1)).expect("reader");
    read(&mut r, 0, 1..=10);
    wal.truncate_back(Lsn(5)).expect("truncate_back");
    append(&wal, 1, 6..=11);
    assert_eq!(rewound(&mut r), Some(Lsn(5)));
    read(&mut r, 1, 6..=11);
    assert!(r.read_next().expect("read").is_none());
    assert_eq!(wal.metrics().corruption_events, 0);
}
