//! The words operators read: recovery reports and errors, exactly.

use std::string::ToString;

use super::*;
use crate::inspect::InspectError;
use crate::{Case, IoFailure, Lsn, Op, StorageErrorKind};

#[test]
fn a_clean_or_new_log_reports_so() {
    let (mut wal, report) = open(Mem::default(), small());
    assert_eq!(report.to_string(), "created a new log");
    assert!(report.created && report.is_clean());
    assert_eq!((report.segments, report.records), (1, 0));
    for i in 1..=3 {
        wal.append(&payload(i)).unwrap();
    }
    let (wal, report) = open(wal.into_storage(), small());
    assert_eq!(
        report.to_string(),
        "recovered 3 records (LSN 1..=3) in 1 segments"
    );
    assert!(!report.created);
    assert_eq!(wal.counters().records_recovered, 3);
}

#[test]
fn every_finding_is_spelled_out() {
    // A rewritten torn header.
    let (mut wal, _) = open(Mem::default(), small());
    for i in 1..=30 {
        wal.append(&payload(i)).unwrap();
    }
    let mut mem = wal.into_storage();
    let next = *mem.files.keys().last().unwrap() + 1;
    mem.files.insert(next, std::vec![0; 64]);
    let (_, report) = open(mem.clone(), small());
    assert!(
        report
            .to_string()
            .ends_with(&std::format!("; rewrote the torn header of segment {next}")),
        "{report}"
    );
    assert!(!report.is_clean());
    mem.files.remove(&next);

    // Trailing garbage in a sealed segment.
    let mut junk = mem.clone();
    let len = junk.files[&1].len() as u64;
    junk.files.get_mut(&1).unwrap().extend_from_slice(b"junk");
    let (_, report) = open(junk, small());
    assert_eq!(report.trailing_garbage, Some((1, len)));
    assert!(!report.is_clean());
    assert!(
        report.to_string().ends_with(&std::format!(
            "; ignored trailing garbage in sealed segment 1 at offset {len}"
        )),
        "{report}"
    );

    // Salvage of a missing segment: what was lost, and how far the log is known to have gone.
    let mut gap = mem.clone();
    gap.files.remove(&2);
    if let Some((wal, report)) = salvaged(&gap, small()) {
        let l = report.salvage.unwrap();
        assert!(!report.is_clean());
        let text = report.to_string();
        assert!(
            text.contains(&std::format!(
                "; SALVAGE: MissingSegment in segment 3 at offset 0: lost LSN {} onward (at least up to 30), dropped {} segments{}",
                l.first_lost,
                l.segments_dropped,
                detail(": a segment id before this one is missing")
            )),
            "{text}"
        );
        assert_eq!(wal.last_lsn(), l.first_lost.prev());
    }

    // Segments missing from the front, accepted by Salvage (truncate_front needs feature
    // `start-slots`).
    if cfg!(feature = "start-slots") {
        let (mut wal, _) = open(mem.clone(), small());
        let keep = wal.segments()[2].first_lsn;
        wal.truncate_front(keep).unwrap();
        let oldest = wal.segments()[0].id;
        let mut front = wal.into_storage();
        front.files.remove(&oldest);
        if let Some((_, report)) = salvaged(&front, small()) {
            assert!(!report.is_clean());
            assert!(
                report.to_string().ends_with(&std::format!(
                    "; SALVAGE: segments {oldest}..{} missing from the front of the log (it now starts at segment {})",
                    oldest + 1,
                    oldest + 1
                )),
                "{report}"
            );
        }
    }
}

#[test]
fn a_salvage_says_how_far_the_log_is_known_to_have_gone() {
    // Record 4's payload damaged in the newest segment: record 5 proves it was acknowledged.
    let (mut wal, _) = open(Mem::default(), small());
    for i in 1..=5 {
        wal.append(&payload(i)).unwrap();
    }
    let mem = wal.into_storage();
    let mut bad = mem.clone();
    let f = bad.files.get_mut(&0).unwrap();
    let n = f.len();
    f[n - 47 - 5] ^= 1;
    if let Some((_, report)) = salvaged(&bad, small()) {
        let l = report.salvage.unwrap();
        assert_eq!(
            (l.case, l.first_lost, l.last_known, l.segments_dropped),
            (Case::MidLogCorruption, Lsn(4), Some(Lsn(5)), 0)
        );
        assert!(
            report
                .to_string()
                .contains("lost LSN 4 onward (at least up to 5), dropped 0 segments"),
            "{report}"
        );
    }

    // A newest segment whose header is damaged: nothing in it can be read, so nothing is
    // known beyond the LSN it would have started with.
    let (mut wal, _) = open(mem, small());
    for i in 6..=30 {
        wal.append(&payload(i)).unwrap();
    }
    let newest = wal.segments().last().unwrap().id;
    let first = wal.segments().last().unwrap().first_lsn;
    let mut bad = wal.into_storage();
    bad.files.get_mut(&newest).unwrap()[20] ^= 1;
    if let Some((_, report)) = salvaged(&bad, small()) {
        let l = report.salvage.unwrap();
        assert_eq!(
            (l.case, l.first_lost, l.last_known),
            (Case::DamagedHeader, first, None)
        );
        assert!(
            report.to_string().ends_with(&std::format!(
                "; SALVAGE: DamagedHeader in segment {newest} at offset 0: lost LSN {first} \
                 onward, dropped 1 segments{}",
                detail(": segment header checksum mismatch")
            )),
            "{report}"
        );
    }
}

#[test]
fn inspection_errors_read_as_they_should() {
    let e: InspectError<mem::MemError> = InspectError::ScratchTooSmall { min: 256 };
    assert_eq!(e.to_string(), "scratch buffer must be at least 256 bytes");
    let e: InspectError<mem::MemError> = InspectError::TooManySegments { capacity: 3 };
    assert_eq!(e.to_string(), "more segments than inspection holds (3)");
    let e = InspectError::Storage(IoFailure {
        op: Op::Read,
        segment: Some(4),
        error: mem::MemError(StorageErrorKind::Io),
    });
    assert!(
        e.to_string()
            .starts_with("inspection: read of segment 4 failed: "),
        "{e}"
    );
}
