//! Hostile directories and bytes against the file adapter: each gives a clear typed error or a
//! correct log, and nothing is deleted or lost (directory listings are compared before/after).

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use walden_core::raw::{RecordHeader, RecordKind, SEGMENT_HEADER_LEN, SegmentHeader};
use walden_core::{
    Case, Config, Lsn, OpenError, RecoveryReport, SegmentName, StorageError, StorageErrorKind,
};
use walden_std::{Error, FileError, Options, Wal};

fn options() -> Options {
    let mut o = Options::from(Config::default().with_segment_size(400));
    o.preallocate = false; // no background spare files: listings must be stable
    o.create_dir = false;
    o
}

fn open(dir: &Path) -> Result<(Wal, RecoveryReport), Error> {
    Wal::open(dir, options())
}

fn make_log(dir: &Path, n: u64) {
    let mut o = options();
    o.create_dir = true;
    let (mut wal, _) = Wal::open(dir, o).expect("create");
    for i in 1..=n {
        wal.append(format!("record {i:03}").as_bytes())
            .expect("append");
    }
}

fn listing(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let bytes = fs::read(e.path()).unwrap_or_default();
            (e.file_name().to_string_lossy().into_owned(), bytes)
        })
        .collect()
}

fn seg_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(SegmentName::new(id).as_str())
}

fn corrupted(r: Result<(Wal, RecoveryReport), Error>) -> Case {
    match r {
        Err(Error::Open {
            error: OpenError::Corrupted(c),
            ..
        }) => c.case,
        Err(e) => panic!("expected a corruption error, got {e}"),
        Ok((_, report)) => panic!("expected a corruption error, opened: {report}"),
    }
}

/// Asserts that opening fails as one of `cases` and leaves every file as it was.
fn refused_untouched(dir: &Path, cases: &[Case]) {
    let before = listing(dir);
    let case = corrupted(open(dir));
    assert!(cases.contains(&case), "{case} is not one of {cases:?}");
    assert_eq!(listing(dir), before, "a refused open changes nothing");
}

fn all(wal: &Wal) -> Vec<(Lsn, Vec<u8>)> {
    wal.read_all_from(wal.first_lsn()).expect("read back")
}

/// The newest segment's header, and its bytes.
fn newest(dir: &Path) -> (u64, SegmentHeader, Vec<u8>) {
    let id = listing(dir)
        .keys()
        .filter_map(|n| walden_core::parse_segment_name(n))
        .max()
        .unwrap();
    let bytes = fs::read(seg_path(dir, id)).unwrap();
    (id, SegmentHeader::decode(&bytes).unwrap(), bytes)
}

fn crafted(h: &SegmentHeader, length: u32, lsn: u64) -> [u8; 32] {
    RecordHeader {
        length,
        lsn: Lsn(lsn),
        payload_crc: 0,
        kind: RecordKind::Single,
        flags: walden_core::raw::RecordFlags::PLAIN,
        ack_gap: 1,
    }
    .encode(h.checksum, h.salt)
}

#[test]
fn length_fields_near_u32_max_at_the_tail_are_cut_never_allocated() {
    // Beyond the largest max_record_size any log can have: no writer made this, so it is
    // invalid bytes (a torn tail), whatever the configured limit.
    for length in [u32::MAX, u32::MAX - 31, (1 << 30) + 1] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        make_log(dir, 5);
        let (id, h, mut bytes) = newest(dir);
        // A header with a valid checksum claiming a huge payload, after the last record.
        bytes.extend_from_slice(&crafted(&h, length, 6));
        fs::write(seg_path(dir, id), &bytes).unwrap();
        let (wal, report) = open(dir).expect("a torn tail, not an error");
        let cut = report.cut.expect("cut reported");
        assert_eq!(
            (cut.case, cut.first_lsn, cut.bytes),
            (Case::TornTail, Lsn(6), 32)
        );
        assert_eq!(all(&wal).len(), 5, "nothing acknowledged lost");
    }
}

#[test]
fn a_valid_record_longer_than_max_record_size_is_a_configuration_error_that_changes_nothing() {
    // A log written with a larger limit, reopened with the default one: its newest record's
    // header verifies, so this is not a torn write. Nothing may be cut.
    for length in [1 << 30, (16 << 20) + 1] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        make_log(dir, 5);
        let (id, h, mut bytes) = newest(dir);
        bytes.extend_from_slice(&crafted(&h, length, 6));
        fs::write(seg_path(dir, id), &bytes).unwrap();
        let before = fs::read(seg_path(dir, id)).unwrap();
        match open(dir) {
            Err(walden_std::Error::Open {
                error:
                    walden_core::OpenError::RecordTooLarge {
                        segment,
                        lsn,
                        length: found,
                        max,
                        ..
                    },
                ..
            }) => {
                assert_eq!((segment, lsn, found), (id, Lsn(6), length));
                assert_eq!(max, walden_core::Config::default().max_record_size);
            }
            other => panic!("expected RecordTooLarge, got {:?}", other.map(|(_, r)| r)),
        }
        assert_eq!(
            fs::read(seg_path(dir, id)).unwrap(),
            before,
            "nothing changed"
        );
        // With the writer's limit the record is judged on its own: here its payload was never
        // written, so it is a torn tail.
        let config = walden_core::Config::default()
            .with_max_record_size(length)
            .with_max_batch_size(u64::from(length));
        let (wal, report) = walden_std::Wal::open(dir, walden_std::Options::from(config)).unwrap();
        assert_eq!(report.cut.map(|c| c.first_lsn), Some(Lsn(6)));
        assert_eq!(all(&wal).len(), 5);
    }
}

#[test]
fn a_huge_length_in_the_middle_is_corruption_and_nothing_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    make_log(dir, 3); // one segment: records at 64, 106, 148
    let (id, h, mut bytes) = newest(dir);
    bytes[106..138].copy_from_slice(&crafted(&h, u32::MAX, 2));
    fs::write(seg_path(dir, id), &bytes).unwrap();
    refused_untouched(dir, &[Case::MidLogCorruption]);
}

#[test]
fn zero_length_records_are_valid_and_a_zero_length_segment_is_a_torn_creation() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    make_log(dir, 2);
    {
        let (mut wal, _) = open(dir).unwrap();
        wal.append(b"").unwrap();
    }
    let (wal, report) = open(dir).unwrap();
    assert!(report.is_clean(), "{report}");
    assert_eq!(all(&wal)[2], (Lsn(3), Vec::new()));
    drop(wal);
    // A zero-length newest segment: its creation never completed.
    fs::write(seg_path(dir, 1), b"").unwrap();
    let (wal, report) = open(dir).unwrap();
    assert_eq!(report.rewritten_header, Some(1));
    assert_eq!(all(&wal).len(), 3);
}

fn rewrite_header(path: &Path, edit: impl FnOnce(&mut [u8])) {
    let mut bytes = fs::read(path).unwrap();
    edit(&mut bytes[..SEGMENT_HEADER_LEN]);
    let crc = crc32c(&bytes[..seg::HEADER_CRC]);
    bytes[seg::HEADER_CRC..SEGMENT_HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
    fs::write(path, &bytes).unwrap();
}

/// CRC-32C, bit by bit (test code: no table, no dependency).
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

type HeaderEdit = fn(&mut [u8]);

#[test]
fn a_header_with_a_valid_checksum_but_impossible_fields_is_refused() {
    let edits: [(&str, HeaderEdit); 4] = [
        ("unknown checksum algorithm", |h| h[seg::CHECKSUM_ALG] = 9),
        ("zero salt", |h| h[seg::SALT..seg::SALT + 8].fill(0)),
        ("header length", |h| h[seg::HEADER_LEN] = 65),
        ("unknown flags", |h| h[seg::FLAGS] = 0x80),
    ];
    for (what, edit) in edits {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        make_log(dir, 20);
        rewrite_header(&seg_path(dir, 1), edit);
        let before = listing(dir);
        assert_eq!(corrupted(open(dir)), Case::DamagedHeader, "{what}");
        assert_eq!(listing(dir), before, "{what}");
    }
}

#[test]
fn segments_missing_duplicated_or_out_of_order_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    make_log(dir, 30);
    assert!(
        listing(dir).len() >= 5,
        "several segments and the lock file"
    );
    let pristine = listing(dir);
    let reset = |dir: &Path| {
        for (name, bytes) in &pristine {
            fs::write(dir.join(name), bytes).unwrap();
        }
    };

    fs::remove_file(seg_path(dir, 1)).unwrap();
    refused_untouched(dir, &[Case::MissingSegment]);
    reset(dir);

    // Segment 1's bytes also stored as segment 2.
    fs::copy(seg_path(dir, 1), seg_path(dir, 2)).unwrap();
    refused_untouched(dir, &[Case::ForeignSegment]);
    reset(dir);

    // Segments 1 and 2 swapped.
    let (a, b) = (
        fs::read(seg_path(dir, 1)).unwrap(),
        fs::read(seg_path(dir, 2)).unwrap(),
    );
    fs::write(seg_path(dir, 1), b).unwrap();
    fs::write(seg_path(dir, 2), a).unwrap();
    // Segment 0 now appears to end before its successor begins, which is found first.
    refused_untouched(dir, &[Case::SealedSegmentDamaged, Case::ForeignSegment]);
    reset(dir);

    let (wal, report) = open(dir).expect("restored log opens");
    assert!(report.is_clean(), "{report}");
    assert_eq!(all(&wal).len(), 30);
}

#[test]
fn foreign_and_temporary_files_are_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    make_log(dir, 10);
    let strangers = [
        "notes.txt",
        "00000000000000000001.wal.tmp",
        "00000000000000000099.wal~",
        "0000000000000000001.wal",
        ".hidden",
    ];
    for s in strangers {
        fs::write(dir.join(s), s.as_bytes()).unwrap();
    }
    fs::create_dir(dir.join("subdir")).unwrap();
    let (mut wal, report) = open(dir).expect("foreign files do not stop a log");
    assert!(report.is_clean(), "{report}");
    let mut foreign: Vec<String> = wal
        .foreign_files()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    foreign.sort();
    let mut expected: Vec<String> = strangers.iter().map(|s| (*s).to_owned()).collect();
    expected.push("subdir".into());
    expected.sort();
    assert_eq!(foreign, expected);
    wal.append(b"more").unwrap();
    drop(wal);
    let after = listing(dir);
    for s in strangers {
        assert_eq!(after[s], s.as_bytes(), "{s} untouched");
    }
    assert!(dir.join("subdir").is_dir());
    let (wal, _) = open(dir).unwrap();
    assert_eq!(all(&wal).len(), 11);
}

#[test]
fn a_symlinked_segment_is_never_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    make_log(&dir, 20);
    let (id, _, bytes) = newest(&dir);
    let outside = tmp.path().join("outside");
    fs::rename(seg_path(&dir, id), &outside).unwrap();
    std::os::unix::fs::symlink(&outside, seg_path(&dir, id)).unwrap();
    let before = listing(&dir);
    match open(&dir) {
        Err(Error::Open {
            error: OpenError::Storage(f),
            file,
        }) => {
            assert_eq!(f.error.kind(), StorageErrorKind::Unsupported);
            assert_eq!(file, Some(seg_path(&dir, id)));
        }
        Err(e) => panic!("unexpected error: {e}"),
        Ok((_, r)) => panic!("opened through a symlink: {r}"),
    }
    assert_eq!(listing(&dir), before);
    assert!(
        fs::symlink_metadata(seg_path(&dir, id))
            .unwrap()
            .is_symlink()
    );
    assert_eq!(
        fs::read(&outside).unwrap(),
        bytes,
        "the target is untouched"
    );
}

#[test]
fn an_empty_directory_gets_a_new_log_and_a_file_is_not_a_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let (wal, report) = open(tmp.path()).expect("empty directory");
    assert!(report.created);
    assert_eq!(wal.last_lsn(), Lsn(0));
    drop(wal);

    let file = tmp.path().join("a-file");
    fs::write(&file, b"keep me").unwrap();
    let mut o = options();
    o.create_dir = true;
    match Wal::open(&file, o) {
        Err(Error::NotADirectory { dir }) => assert_eq!(dir, file),
        Err(e) => panic!("unexpected error: {e}"),
        Ok(_) => panic!("opened a file as a log directory"),
    }
    assert_eq!(fs::read(&file).unwrap(), b"keep me");
    match open(&tmp.path().join("missing")) {
        Err(Error::Directory { error, .. }) => assert_eq!(error.kind(), StorageErrorKind::NotFound),
        other => panic!("unexpected: {:?}", other.map(|(_, r)| r)),
    }
}

/// Whether permission bits bind this process (they do not for root or CAP_DAC_OVERRIDE, as in
/// the CI container): tries to create a file in a directory with mode 0555.
fn permissions_bind(dir: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let probe = dir.join("probe");
    fs::create_dir(&probe).unwrap();
    fs::set_permissions(&probe, fs::Permissions::from_mode(0o555)).unwrap();
    let denied = fs::write(probe.join("x"), b"").is_err();
    fs::set_permissions(&probe, fs::Permissions::from_mode(0o755)).unwrap();
    fs::remove_dir_all(&probe).unwrap();
    denied
}

#[test]
fn read_only_media_and_permission_denied_map_to_typed_errors() {
    // The mapping from OS errors, which is all a privileged process can check.
    for (err, kind) in [
        (
            io::Error::from_raw_os_error(30),
            StorageErrorKind::PermissionDenied,
        ), // EROFS
        (
            io::Error::from_raw_os_error(13),
            StorageErrorKind::PermissionDenied,
        ), // EACCES
        (
            io::Error::from_raw_os_error(1),
            StorageErrorKind::PermissionDenied,
        ), // EPERM
        (io::Error::from_raw_os_error(28), StorageErrorKind::NoSpace), // ENOSPC
    ] {
        assert_eq!(FileError::from_io(&err).kind(), kind, "{err}");
    }
    let tmp = tempfile::tempdir().unwrap();
    if !permissions_bind(tmp.path()) {
        eprintln!(
            "note: running with privileges that bypass permission bits (root here); the real \
             read-only and permission-denied scenarios are skipped, only the mapping is checked"
        );
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = tmp.path().join("log");
    make_log(&dir, 5);
    let before = listing(&dir);
    // A read-only directory with a clean log: the lock file exists, so opening for writing
    // still works as long as the segment files are writable; make one unreadable instead.
    fs::set_permissions(seg_path(&dir, 0), fs::Permissions::from_mode(0o000)).unwrap();
    let r = open(&dir);
    fs::set_permissions(seg_path(&dir, 0), fs::Permissions::from_mode(0o644)).unwrap();
    match r {
        Err(Error::Open {
            error: OpenError::Storage(f),
            ..
        }) => assert_eq!(f.error.kind(), StorageErrorKind::PermissionDenied),
        Err(e) => panic!("unexpected error: {e}"),
        Ok(_) => panic!("opened an unreadable segment"),
    }
    assert_eq!(listing(&dir), before);
}

/// Segment header field offsets, from `docs/FORMAT.md` (written out here rather than imported:
/// the test checks the document's layout, not the code's idea of it).
mod seg {
    pub(super) const CHECKSUM_ALG: usize = 10;
    pub(super) const FLAGS: usize = 11;
    pub(super) const HEADER_LEN: usize = 12;
    pub(super) const SALT: usize = 40;
    pub(super) const HEADER_CRC: usize = 60;
}
