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

fn segment_name(id: u64) -> String {
    format!("{id:020}.wal")
}

fn first_of(wal: &Wal, id: u64) -> Lsn {
    wal.segments()
        .iter()
        .find(|s| s.id == id)
        .unwrap()
        .first_lsn
}

/// Every record an `open_replaying` handed over, in order.
type Handed = Vec<(Lsn, Vec<u8>)>;

fn replayed(dir: &std::path::Path) -> (Result<(), String>, Handed) {
    let mut seen = Vec::new();
    let r = Wal::open_replaying(dir, options(), |lsn, p| {
        seen.push((lsn, p.to_vec()));
        Ok::<_, ()>(())
    });
    (r.map(|_| ()).map_err(|e| format!("{e:?}")), seen)
}

/// A restored copy of a removed segment below a gap under the log's start: the open leaves it
/// out (`RecoveryReport::stale`), and so does the replay (it failed with `OutOfRange`).
#[test]
fn a_stale_segment_below_the_start_is_not_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(dir.path(), options()).unwrap();
    for i in 0..200u64 {
        wal.append(&[i as u8; 100]).unwrap();
    }
    wal.sync().unwrap();
    let seg2 = std::fs::read(dir.path().join(segment_name(2))).unwrap();
    wal.truncate_front(first_of(&wal, 5)).unwrap();
    assert_eq!(wal.segments()[0].id, 5);
    let all = wal.read_all_from(wal.first_lsn()).unwrap();
    drop(wal);
    std::fs::write(dir.path().join(segment_name(2)), &seg2).unwrap();
    let (wal, report) = Wal::open(dir.path(), options()).unwrap();
    assert_eq!(report.stale, 1);
    assert_eq!(wal.read_all_from(wal.first_lsn()).unwrap(), all);
    drop(wal);
    let (r, seen) = replayed(dir.path());
    assert!(r.is_ok(), "the open succeeds, the replay must too: {r:?}");
    assert_eq!(seen, all);
}

/// The same with a stale copy whose LSNs fall inside the live log (it was rewound and written
/// again with longer records since the copy): the replay returned `Ok` after handing over the
/// copy's records under live LSNs.
#[test]
fn a_stale_segment_with_live_lsns_is_not_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(dir.path(), options()).unwrap();
    for _ in 0..300u64 {
        wal.append(&[b'o'; 40]).unwrap();
    }
    wal.sync().unwrap();
    let old3 = std::fs::read(dir.path().join(segment_name(3))).unwrap();
    wal.truncate_back(Lsn(5)).unwrap();
    for _ in 0..300u64 {
        wal.append(&[b'N'; 300]).unwrap();
    }
    wal.sync().unwrap();
    wal.truncate_front(first_of(&wal, 5)).unwrap();
    assert_eq!(wal.segments()[0].id, 5);
    let all = wal.read_all_from(wal.first_lsn()).unwrap();
    drop(wal);
    std::fs::write(dir.path().join(segment_name(3)), &old3).unwrap();
    let (wal, report) = Wal::open(dir.path(), options()).unwrap();
    assert_eq!(report.stale, 1);
    drop(wal);
    let (r, seen) = replayed(dir.path());
    assert!(r.is_ok(), "{r:?}");
    assert!(
        seen.iter().all(|(_, p)| p[0] != b'o'),
        "a stale record was handed over"
    );
    assert_eq!(seen, all);
}
