//! The dense position index against the truth: every entry is checked against the records'
//! places found by walking each segment from its first record with core's cursor, through
//! appends across rotations, both truncations and a reopen; and the checker itself is shown
//! to catch a broken entry.

use std::collections::HashMap;

use walden_core::raw::{RECORD_HEADER_LEN, RecordCursor, SEGMENT_HEADER_LEN};
use walden_core::{Config, Lsn};

use crate::group::GroupSync;
use crate::{Options, SharedWal, SyncPolicy};

/// Walks `segment` from its first record: `lsn -> (offset, length with header)` of every data
/// record up to the segment's end as the log knows it.
fn truth<S: GroupSync>(
    wal: &SharedWal<S>,
    segment: u64,
) -> Result<HashMap<u64, (u64, u64)>, String> {
    let log = wal.inner.c.lock_log();
    let w = &log.wal;
    let seg = *w
        .segments()
        .iter()
        .find(|s| s.id == segment)
        .ok_or(format!(
            "a run for segment {segment}, which the log does not have"
        ))?;
    let mut bytes = vec![0u8; seg.end as usize];
    let mut done = 0;
    while done < bytes.len() {
        let got = w
            .storage()
            .read(seg.id, done as u64, &mut bytes[done..])
            .map_err(|_| "read failed".to_string())?;
        if got == 0 {
            break;
        }
        done += got;
    }
    let mut cursor = RecordCursor::resume(
        seg.keys(w.config().max_record_size),
        SEGMENT_HEADER_LEN as u64,
        seg.first_lsn,
    );
    let mut found = HashMap::new();
    while cursor.offset() < seg.end {
        let at = cursor.offset() as usize;
        let Some(rec) = cursor
            .data_header(&bytes[at..])
            .map_err(|f| format!("segment {segment} at {at}: {f}"))?
        else {
            continue;
        };
        let len = (RECORD_HEADER_LEN as u64) + u64::from(rec.header.length);
        found.insert(rec.header.lsn.0, (rec.offset, len));
        cursor
            .accept(&rec, None)
            .map_err(|f| format!("segment {segment}: {f}"))?;
    }
    Ok(found)
}

/// Checks every entry of every dense run; returns how many there are.
fn check_runs<S: GroupSync>(wal: &SharedWal<S>) -> Result<usize, String> {
    let runs = wal.inner.published_positions().runs().to_vec();
    let mut checked = 0;
    for run in &runs {
        let truth = truth(wal, run.segment)?;
        for i in 0..run.offsets.len() as u64 {
            let lsn = run.first + i;
            let got = wal.inner.published_positions().exact(run.segment, Lsn(lsn));
            let want = truth.get(&lsn).copied();
            if got != want {
                return Err(format!("lsn {lsn}: index {got:?}, log {want:?}"));
            }
            checked += 1;
        }
    }
    Ok(checked)
}

fn payload(i: u64, round: u64) -> Vec<u8> {
    let mut p = format!("round {round} record {i} ").into_bytes();
    p.resize(16 + (i as usize * 13 + round as usize * 7) % 300, b'.');
    p
}

fn options() -> Options {
    Options::from(Config::default().with_segment_size(16 * 1024))
        .with_sync_policy(SyncPolicy::Manual)
}

/// Appends `from..=to` of `round` in batches of 1 to 7 records.
fn append(wal: &SharedWal, from: u64, to: u64, round: u64) {
    let mut i = from;
    while i <= to {
        let n = (i % 7 + 1).min(to - i + 1);
        let ps: Vec<Vec<u8>> = (i..i + n).map(|j| payload(j, round)).collect();
        let refs: Vec<&[u8]> = ps.iter().map(Vec::as_slice).collect();
        assert_eq!(wal.append_batch(&refs).expect("append").first, Lsn(i));
        i += n;
    }
}

fn read(wal: &SharedWal, lsn: u64) -> Vec<u8> {
    let mut r = wal.reader(Lsn(lsn)).expect("reader");
    let rec = r.read_next().expect("read").expect("record");
    assert_eq!(rec.lsn, Lsn(lsn));
    rec.payload.to_vec()
}

#[test]
fn dense_runs_match_the_log_across_segments_truncations_and_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (wal, _) = SharedWal::open(dir.path(), options()).expect("open");
    append(&wal, 1, 1500, 0);
    assert!(
        wal.inner.published_positions().runs().len() > 5,
        "several segments"
    );
    assert_eq!(
        check_runs(&wal),
        Ok(1500),
        "every appended record is indexed"
    );

    wal.truncate_back(Lsn(1000)).expect("truncate_back");
    assert_eq!(check_runs(&wal), Ok(1000));
    append(&wal, 1001, 1700, 1);
    assert_eq!(check_runs(&wal), Ok(1700));
    for lsn in (1..=1700).step_by(3) {
        assert_eq!(
            read(&wal, lsn),
            payload(lsn, u64::from(lsn > 1000)),
            "lsn {lsn}"
        );
    }

    wal.truncate_front(Lsn(900)).expect("truncate_front");
    let first = wal.first_lsn().0;
    assert!(first > 1);
    assert_eq!(check_runs(&wal), Ok((1700 - first + 1) as usize));
    drop(wal);

    // After a reopen only new appends are indexed densely; older records are read through the
    // sparse index, and both agree with the log.
    let (wal, _) = SharedWal::open(dir.path(), options()).expect("reopen");
    assert_eq!(check_runs(&wal), Ok(0));
    append(&wal, 1701, 1800, 2);
    assert_eq!(check_runs(&wal), Ok(100));
    for lsn in (first..=1800).step_by(5) {
        let round = if lsn > 1700 { 2 } else { u64::from(lsn > 1000) };
        assert_eq!(
            read(&wal, lsn),
            payload(lsn, round),
            "lsn {lsn} after reopen"
        );
    }
}

/// Appends keep their records' places under the log lock and hand them to the index in
/// groups: a reader by LSN and both truncations publish them first, so a reader finds a record
/// appended just before it at once, and a truncation never leaves an entry for a record it
/// removed.
#[test]
fn places_kept_by_appends_are_published_before_reads_and_truncations() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (wal, _) = SharedWal::open(dir.path(), options()).expect("open");
    let newest = |wal: &SharedWal| {
        let log = wal.inner.c.lock_log();
        log.wal.segments().last().expect("a segment").id
    };
    append(&wal, 1, 300, 0);
    let seg = newest(&wal);
    let unpublished = |wal: &SharedWal, lsn| wal.inner.positions().exact(seg, Lsn(lsn)).is_none();
    assert!(unpublished(&wal, 300), "kept by the append, not yet given");
    // A reader gives them to the index before it looks, and goes straight to its record.
    assert_eq!(read(&wal, 300), payload(300, 0));
    assert!(!unpublished(&wal, 300), "published by the reader");

    // Kept again, then cut back and appended with other lengths: the index must not keep the
    // places of the records cut.
    append(&wal, 301, 320, 0);
    assert_eq!(newest(&wal), seg, "still one segment");
    assert!(unpublished(&wal, 320));
    wal.truncate_back(Lsn(303)).expect("truncate_back");
    append(&wal, 304, 318, 1);
    assert_eq!(check_runs(&wal), Ok(318));
    for lsn in 296..=318 {
        assert_eq!(
            read(&wal, lsn),
            payload(lsn, u64::from(lsn > 303)),
            "lsn {lsn}"
        );
    }
    append(&wal, 319, 330, 1);
    wal.truncate_front(Lsn(320)).expect("truncate_front");
    check_runs(&wal).expect("runs match after truncate_front");
}

/// After a reopen, a segment read at random gets a run of its own once `RUN_AFTER_MISSES`
/// reads have started in it from the sparse index; the run matches the log, reads from it
/// return their records, appends extend the newest segment's, and truncations keep them right.
#[test]
fn a_segment_read_at_random_after_a_reopen_gets_a_run() {
    use crate::reader::RUN_AFTER_MISSES;
    let dir = tempfile::tempdir().expect("tempdir");
    let (wal, _) = SharedWal::open(dir.path(), options()).expect("open");
    append(&wal, 1, 1500, 0);
    drop(wal);
    let (wal, _) = SharedWal::open(dir.path(), options()).expect("reopen");
    assert_eq!(check_runs(&wal), Ok(0));
    let segs: Vec<(u64, u64)> = {
        let log = wal.inner.c.lock_log();
        let s = log.wal.segments();
        (0..s.len() - 1)
            .map(|i| (s[i].id, s[i].first_lsn.0))
            .chain([(s[s.len() - 1].id, s[s.len() - 1].first_lsn.0)])
            .collect()
    };
    let (second, from) = segs[1];
    let to = segs[2].1 - 1;
    let span = to - from + 1;
    // Reads spread over the second segment: each starts from the sparse index.
    for k in 0..u64::from(RUN_AFTER_MISSES) - 1 {
        let lsn = from + (k * 7) % span;
        assert_eq!(read(&wal, lsn), payload(lsn, 0), "lsn {lsn}");
    }
    assert!(
        wal.inner.published_positions().runs().is_empty(),
        "no run before the {RUN_AFTER_MISSES}th"
    );
    assert_eq!(read(&wal, to), payload(to, 0));
    let runs = wal.inner.published_positions().runs().to_vec();
    assert_eq!(runs.len(), 1);
    assert_eq!(
        (runs[0].segment, runs[0].first, runs[0].offsets.len() as u64),
        (second, from, span),
        "the whole segment"
    );
    assert_eq!(check_runs(&wal), Ok(span as usize));
    for lsn in from..=to {
        assert_eq!(read(&wal, lsn), payload(lsn, 0), "lsn {lsn} from the run");
    }
    // The newest segment gets one the same way, and appends extend it.
    let (_, newest) = segs[segs.len() - 1];
    for _ in 0..RUN_AFTER_MISSES {
        assert_eq!(read(&wal, newest), payload(newest, 0));
    }
    assert_eq!(wal.inner.published_positions().runs().len(), 2);
    append(&wal, 1501, 1600, 1);
    assert_eq!(
        check_runs(&wal),
        Ok((span + 1600 - newest + 1) as usize),
        "the newest segment's run grew with the appends (and the segments they rotated to have runs)"
    );
    // Both truncations keep every run right.
    wal.truncate_back(Lsn(to - 3)).expect("truncate_back");
    assert_eq!(
        check_runs(&wal),
        Ok((span - 3) as usize),
        "cut with the segment"
    );
    append(&wal, to - 2, to + 50, 2);
    wal.truncate_front(Lsn(to)).expect("truncate_front");
    check_runs(&wal).expect("runs match after truncate_front");
}

#[test]
fn the_checker_catches_a_wrong_entry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (wal, _) = SharedWal::open(dir.path(), options()).expect("open");
    append(&wal, 1, 200, 0);
    assert_eq!(check_runs(&wal), Ok(200));
    // Broken variant: one record's offset moved by a byte (which also makes the record before
    // it a byte longer: caught there first).
    wal.inner.published_positions().runs_mut()[0].offsets[5] += 1;
    let found = check_runs(&wal).expect_err("a wrong offset must be caught");
    assert!(found.starts_with("lsn 5:"), "{found}");
    // And a reader sent there does not return a wrong record: the header does not verify.
    let got = wal
        .reader(Lsn(6))
        .expect("reader")
        .read_next()
        .map(|r| r.map(|r| r.lsn));
    assert!(got.is_err(), "{got:?}");
}

/// Compressible for `i % 3 != 0` and long enough to be compressed (threshold 64).
fn mixed(i: u64) -> Vec<u8> {
    let n = if i.is_multiple_of(2) { 40 } else { 400 };
    if i.is_multiple_of(3) {
        let mut x = i | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    } else {
        format!("record {i} says the same thing again and again. ")
            .into_bytes()
            .into_iter()
            .cycle()
            .take(n)
            .collect()
    }
}

/// With transforms on, records stored as given are indexed and the others are not; every read
/// by LSN returns its record either way.
fn reads_with(options: Options, dense: impl Fn(u64) -> bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (wal, _) = SharedWal::open(dir.path(), options).expect("open");
    for i in 1..=600u64 {
        let _ = wal.append(&mixed(i)).expect("append");
    }
    check_runs(&wal).expect("dense runs match the log");
    // What appends indexed (reads below may give sealed segments runs of their own).
    for lsn in 1..=600u64 {
        let seg = {
            let log = wal.inner.c.lock_log();
            let segs = log.wal.segments();
            segs[segs
                .iter()
                .rposition(|s| s.first_lsn.0 <= lsn)
                .expect("segment")]
            .id
        };
        let indexed = wal
            .inner
            .published_positions()
            .exact(seg, Lsn(lsn))
            .is_some();
        assert!(
            !indexed || dense(lsn),
            "lsn {lsn} is indexed but was transformed"
        );
    }
    // Something was indexed exactly when the log stores some records as given.
    let any = wal
        .inner
        .published_positions()
        .runs()
        .iter()
        .any(|r| !r.offsets.is_empty());
    assert_eq!(any, (1..=600).any(dense));
    for lsn in 1..=600u64 {
        assert_eq!(read(&wal, lsn), mixed(lsn), "lsn {lsn}");
    }
    check_runs(&wal).expect("runs built by reads match the log too");
}

#[cfg(feature = "compress")]
#[test]
fn with_compression_only_records_stored_as_given_are_indexed() {
    let config = Config::default()
        .with_segment_size(16 * 1024)
        .with_compress_threshold(64);
    let options = Options::from(config).with_sync_policy(SyncPolicy::Manual);
    // Records under the threshold are stored as given; longer ones may be compressed.
    reads_with(options, |i| mixed(i).len() < 64);
}

#[cfg(feature = "encrypt")]
#[test]
fn with_encryption_nothing_is_indexed_on_append() {
    let mut ring = walden_core::Keyring::new();
    ring.add_current(&[7; 32]).expect("key");
    let options = Options::from(Config::default().with_segment_size(16 * 1024))
        .with_sync_policy(SyncPolicy::Manual)
        .with_keys(Box::leak(Box::new(ring)));
    reads_with(options, |_| false);
}
