//! `Wal::open_replaying` and `SharedWal::open_replaying`: every record once, in order, the
//! same as a reader after a plain open; the application's error stops it; a damaged log is
//! refused as by `open`. (Crash states are the files explorer's: it opens every state it
//! reaches this way and checks what was handed over against the recovered log.)

use walden_std::{Config, Lsn, Options, RecoveryPolicy, ReplayError, SharedWal, SyncPolicy, Wal};

/// Payloads of varied lengths, some of them compressible and over the compression
/// threshold (format version 3 stores them compressed).
fn payload(i: u64) -> Vec<u8> {
    let n = [12usize, 300, 5000, 1][(i % 4) as usize];
    format!("record {i} ")
        .into_bytes()
        .into_iter()
        .cycle()
        .take(n)
        .collect()
}

/// Small segments: many of them, most sealed.
const SEGMENT: u64 = 4096;

fn options() -> Options {
    Options::from(Config::default().with_segment_size(SEGMENT)).with_sync_policy(SyncPolicy::Manual)
}

/// A log of 400 records over many small segments, singles and batches.
fn filled() -> (tempfile::TempDir, Vec<(Lsn, Vec<u8>)>) {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(dir.path(), options()).unwrap();
    let mut i = 0u64;
    while i < 400 {
        if i.is_multiple_of(3) {
            let batch: Vec<Vec<u8>> = (i..i + 5).map(payload).collect();
            let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
            wal.append_batch(&refs).unwrap();
            i += 5;
        } else {
            wal.append(&payload(i)).unwrap();
            i += 1;
        }
    }
    wal.sync().unwrap();
    let all = wal.read_all_from(wal.first_lsn()).unwrap();
    assert!(
        wal.segments().len() > 10,
        "{} segments",
        wal.segments().len()
    );
    (dir, all)
}

#[test]
fn every_record_once_in_order_like_a_reader() {
    let (dir, all) = filled();
    let mut seen = Vec::new();
    let (wal, report) = Wal::open_replaying(dir.path(), options(), |lsn, p| {
        seen.push((lsn, p.to_vec()));
        Ok::<_, ()>(())
    })
    .unwrap();
    assert_eq!(seen, all);
    assert_eq!(report.records, all.len() as u64);
    assert_eq!(wal.last_lsn(), all.last().unwrap().0);
    drop(wal);
    // The same through the shared handle, which can append after.
    let mut seen = Vec::new();
    let (wal, _) = SharedWal::open_replaying(dir.path(), options(), |lsn, p| {
        seen.push((lsn, p.to_vec()));
        Ok::<_, ()>(())
    })
    .unwrap();
    assert_eq!(seen, all);
    assert_eq!(
        wal.append(b"next").unwrap().first,
        all.last().unwrap().0.next()
    );
}

#[test]
fn an_empty_or_new_log_hands_over_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut n = 0;
    let (wal, report) = Wal::open_replaying(dir.path().join("new"), options(), |_, _| {
        n += 1;
        Ok::<_, ()>(())
    })
    .unwrap();
    assert!(report.created);
    assert_eq!((n, wal.last_lsn()), (0, Lsn::ZERO));
}

#[test]
fn the_applications_error_stops_the_replay_at_its_record() {
    let (dir, all) = filled();
    // Once in a sealed segment (handed over before the open ends), once in the newest.
    for stop_at in [all[7].0, all.last().unwrap().0] {
        let mut seen = Vec::new();
        let Err(err) = Wal::open_replaying(dir.path(), options(), |lsn, _| {
            if lsn == stop_at {
                return Err("no room");
            }
            seen.push(lsn);
            Ok(())
        }) else {
            panic!("opened");
        };
        match err {
            ReplayError::Apply { lsn, error } => assert_eq!((lsn, error), (stop_at, "no room")),
            other => panic!("{other}"),
        }
        let expected: Vec<Lsn> = all
            .iter()
            .map(|r| r.0)
            .take_while(|l| *l < stop_at)
            .collect();
        assert_eq!(seen, expected);
        // The directory is free again, and the log unchanged.
        let (wal, _) = Wal::open(dir.path(), options()).unwrap();
        assert_eq!(wal.read_all_from(wal.first_lsn()).unwrap(), all);
    }
}

#[test]
fn damage_in_a_sealed_segment_is_refused_and_nothing_after_it_is_handed_over() {
    let (dir, all) = filled();
    let mut files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension() == Some("wal".as_ref()))
        .collect();
    files.sort();
    // Flip a payload byte in the fourth segment.
    let victim = &files[3];
    let mut bytes = std::fs::read(victim).unwrap();
    bytes[64 + 32 + 4] ^= 0x40;
    std::fs::write(victim, &bytes).unwrap();
    let mut seen = Vec::new();
    let Err(err) = Wal::open_replaying(dir.path(), options(), |lsn, _| {
        seen.push(lsn);
        Ok::<_, &str>(())
    }) else {
        panic!("opened");
    };
    assert!(matches!(err, ReplayError::Log(_)), "{err}");
    // Only records of the three clean segments before it.
    let (ok, _) = Wal::open(
        dir.path(),
        Options::from(
            Config::default()
                .with_segment_size(SEGMENT)
                .with_recovery(RecoveryPolicy::Salvage),
        )
        .with_sync_policy(SyncPolicy::Manual),
    )
    .unwrap();
    let kept = ok.read_all_from(ok.first_lsn()).unwrap();
    assert!(!seen.is_empty() && seen.len() < all.len());
    assert!(seen.len() <= kept.len());
    assert_eq!(
        seen,
        kept.iter()
            .map(|r| r.0)
            .take(seen.len())
            .collect::<Vec<_>>()
    );
}
