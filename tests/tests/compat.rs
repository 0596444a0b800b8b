//! Logs written by older format versions still open, read and recover.

use std::path::Path;

use walden_std::{Config, Lsn, Options, Wal};

/// The records the version-1 and version-2 fixtures were written with (see
/// `tests/fixtures/v1/README.md`; the version-2 generator is the same program).
fn v1_records() -> Vec<(Lsn, Vec<u8>)> {
    let mut all = Vec::new();
    for i in 1..=40u32 {
        all.push(format!("record {i:03} {}", "x".repeat((i as usize * 7) % 50)).into_bytes());
        if i % 10 == 0 {
            for part in ["a", "b", "c"] {
                all.push(format!("batch {i} {part}").into_bytes());
            }
        }
    }
    all.truncate(46);
    all.push(b"after rewind".to_vec());
    all.into_iter()
        .enumerate()
        .map(|(i, p)| (Lsn(i as u64 + 1), p))
        .filter(|(lsn, _)| *lsn >= Lsn(16))
        .collect()
}

/// A copy of `tests/fixtures/<name>` (e.g. `v1/crc32c`) in a fresh directory.
fn copy_fixture(name: &str) -> tempfile::TempDir {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name);
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    dir
}

/// The options every fixture was written with.
fn fixture_options() -> Options {
    Options::from(Config::default().with_segment_size(1024))
}

/// Opens a copy of fixture `<version>/<name>`, checks that it is the clean log of
/// `v1_records` (LSN 16 to 47) and that it reads back whole, and returns it.
fn open_fixture(version: &str, name: &str) -> (tempfile::TempDir, Wal) {
    let dir = copy_fixture(&format!("{version}/{name}"));
    let (wal, report) = Wal::open(dir.path(), fixture_options()).unwrap();
    assert!(report.is_clean(), "{version}/{name}: {report}");
    assert_eq!(
        (report.first_lsn, report.last_lsn),
        (Lsn(16), Lsn(47)),
        "{version}/{name}"
    );
    assert_eq!(
        wal.read_all_from(Lsn(16)).unwrap(),
        v1_records(),
        "{version}/{name}"
    );
    (dir, wal)
}

#[test]
fn version_1_logs_open_read_and_take_new_records() {
    for name in ["crc32c", "crc64"] {
        let (dir, mut wal) = open_fixture("v1", name);
        let options = fixture_options();

        // Appends continue the log, across rotations, in the current format.
        let before = wal.segments().len();
        for i in 0..40u32 {
            wal.append(format!("new {i}").as_bytes()).unwrap();
        }
        assert!(wal.segments().len() > before, "{name}: rotated");
        // Segment 1 goes; version-1 segment 2 becomes the first, which the version-2 headers
        // written since do not know: the start slot says so.
        assert_eq!(wal.truncate_front(Lsn(31)).unwrap(), 1);
        assert_eq!(wal.segments()[0].version(), 1);
        drop(wal);
        // Reopened, and again after removing the version-1 segments the new code's headers
        // remember (the start slot says the log starts later now).
        let (mut wal, report) = Wal::open(dir.path(), options).unwrap();
        assert!(report.is_clean(), "{name}: {report}");
        let first_v2 = wal
            .segments()
            .iter()
            .find(|s| s.version() >= 2)
            .map(|s| s.first_lsn)
            .unwrap();
        wal.truncate_front(first_v2).unwrap();
        assert!(wal.segments().iter().all(|s| s.version() >= 2));
        drop(wal);
        let (wal, report) = Wal::open(dir.path(), options).unwrap();
        assert!(report.is_clean(), "{name}: {report}");
        let all = wal.read_all_from(wal.first_lsn()).unwrap();
        assert_eq!(all.last().unwrap(), &(Lsn(87), b"new 39".to_vec()));
        assert_eq!(all.len() as u64, 87 - wal.first_lsn().0 + 1);
    }
}

#[test]
fn a_torn_tail_in_a_version_1_or_2_log_is_cut_as_before() {
    for name in ["v1/crc32c", "v2/crc32c"] {
        torn_tail_is_cut(name);
    }
}

fn torn_tail_is_cut(name: &str) {
    let dir = copy_fixture(name);
    let newest = dir.path().join("00000000000000000003.wal");
    let len = std::fs::metadata(&newest).unwrap().len();
    // Cut the last record ("after rewind") in half: never acknowledged as far as the file shows.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&newest)
        .unwrap()
        .set_len(len - 6)
        .unwrap();
    let options = fixture_options();
    let (wal, report) = Wal::open(dir.path(), options).unwrap();
    let cut = report.cut.expect("the torn record is cut and reported");
    assert_eq!(cut.first_lsn, Lsn(47));
    assert_eq!(wal.last_lsn(), Lsn(46));
}

#[test]
fn version_2_logs_open_read_and_take_new_records() {
    for name in ["crc32c", "crc64"] {
        let (dir, mut wal) = open_fixture("v2", name);
        let options = fixture_options();
        assert!(wal.segments().iter().all(|s| s.version() == 2), "{name}");
        // Each record also reads on its own, through the caller-buffer path.
        let mut buf = vec![0u8; 4096];
        for (lsn, payload) in v1_records() {
            let got = wal.read(lsn, &mut buf).unwrap();
            assert_eq!(got.payload, &payload[..], "{name} {lsn}");
        }
        for i in 0..40u32 {
            wal.append(format!("new {i}").as_bytes()).unwrap();
        }
        drop(wal);
        let (wal, report) = Wal::open(dir.path(), options).unwrap();
        assert!(report.is_clean(), "{name}: {report}");
        let all = wal.read_all_from(Lsn(16)).unwrap();
        assert_eq!(all.len(), 32 + 40);
        assert_eq!(all.last().unwrap(), &(Lsn(87), b"new 39".to_vec()));
    }
}

#[test]
fn the_version_2_fixture_records_where_it_starts() {
    // The start slot (written by `truncate_front`) and the headers' `first_segment` say the log
    // starts at segment 1: removing it is a missing segment, not a shorter log.
    let dir = copy_fixture("v2/crc32c");
    std::fs::remove_file(dir.path().join("00000000000000000001.wal")).unwrap();
    let options = fixture_options();
    let Err(err) = Wal::open(dir.path(), options) else {
        panic!("opened")
    };
    assert!(
        matches!(&err, walden_std::Error::Open { error: walden_std::OpenError::Corrupted(c), .. } if c.case == walden_core::Case::MissingSegment),
        "{err:?}"
    );
}

#[test]
fn a_segment_of_a_newer_version_is_refused_with_newer_version() {
    use walden_core::raw::{FORMAT_VERSION, SegmentHeader};
    let dir = copy_fixture("v2/crc32c");
    let newest = dir.path().join("00000000000000000003.wal");
    let mut bytes = std::fs::read(&newest).unwrap();
    let mut header = SegmentHeader::decode(&bytes).unwrap();
    header.version = FORMAT_VERSION + 1;
    bytes[..64].copy_from_slice(&header.encode());
    std::fs::write(&newest, &bytes).unwrap();
    let options = fixture_options();
    let Err(err) = Wal::open(dir.path(), options) else {
        panic!("opened")
    };
    assert!(
        matches!(&err, walden_std::Error::Open { error: walden_std::OpenError::Corrupted(c), .. } if c.case == walden_core::Case::NewerVersion && c.segment == 3),
        "{err:?}"
    );
    // Nothing was cut or removed.
    assert_eq!(std::fs::read(&newest).unwrap(), bytes);
    let wal_files = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension() == Some("wal".as_ref()))
        .count();
    assert_eq!(wal_files, 4);
}

#[test]
fn a_version_2_segment_takes_no_compressed_records() {
    // Appends after opening a version-2 log go to its newest (version-2) segment, whose
    // records have no flags: a compressible record is stored as appended there, and the
    // version-3 segments after it compress.
    let dir = copy_fixture("v2/crc32c");
    let newest = dir.path().join("00000000000000000003.wal");
    let before = std::fs::metadata(&newest).unwrap().len();
    let options = Options::from(
        Config::default()
            .with_segment_size(64 * 1024)
            .with_compress_threshold(1024),
    );
    let (mut wal, _) = Wal::open(dir.path(), options).unwrap();
    let big = "compress me ".repeat(1000).into_bytes();
    wal.append(&big).unwrap();
    assert_eq!(wal.segments().last().unwrap().version(), 2);
    let grown = std::fs::metadata(&newest).unwrap().len() - before;
    assert!(grown >= big.len() as u64, "stored as appended: {grown}");
    // A record too big for the rest of the segment rotates to version 3, where it shrinks.
    wal.append(&vec![b'z'; 60 * 1024]).unwrap();
    let last = *wal.segments().last().unwrap();
    assert_eq!(last.version(), walden_core::raw::FORMAT_VERSION);
    assert!(last.end < 2048, "compressed: {}", last.end);
    drop(wal);
    let (wal, report) = Wal::open(dir.path(), options).unwrap();
    assert!(report.is_clean(), "{report}");
    let all = wal.read_all_from(Lsn(16)).unwrap();
    assert_eq!(all[all.len() - 2].1, big);
    assert_eq!(all[all.len() - 1].1, vec![b'z'; 60 * 1024]);
}
