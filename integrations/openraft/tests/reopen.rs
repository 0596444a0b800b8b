//! The raft index ↔ LSN mapping survives reopening, after truncations, purges inside the log,
//! a purge past its end (a snapshot install) and the removal of purged segments.

mod common;

use common::{Store, entry, id, indexes};
use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::{RaftLogReader, Vote};
use walden_std::{Config, Options};

fn small_segments() -> Options {
    Options::from(Config::default().with_segment_size(4096))
}

/// Opens the store. The previous store of `dir` released its logs' locks when it was dropped
/// (walden-std releases a shared log on the thread that drops its last handle), so any error,
/// `Locked` included, fails the test.
fn open(dir: &std::path::Path) -> Store {
    Store::open_with(dir, small_segments()).unwrap_or_else(|e| panic!("open: {e}"))
}

async fn state(store: &mut Store) -> (Option<u64>, Option<u64>) {
    let s = store.get_log_state().await.unwrap();
    (
        s.last_purged_log_id.map(|l| l.index),
        s.last_log_id.map(|l| l.index),
    )
}

#[tokio::test]
async fn mapping_survives_reopen_through_truncate_purge_and_snapshot_install() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path());
    // Each term's vote is saved before its entries, as openraft does (the store refuses to
    // open a vote older than its entries).
    s.save_vote(&Vote::new_committed(1, 1)).await.unwrap();
    s.blocking_append((0..10).map(|i| entry(1, i)))
        .await
        .unwrap();
    s.truncate(id(1, 6)).await.unwrap();
    s.save_vote(&Vote::new_committed(2, 1)).await.unwrap();
    s.blocking_append((6..8).map(|i| entry(2, i)))
        .await
        .unwrap();
    drop(s);

    let mut s = open(dir.path());
    assert_eq!(state(&mut s).await, (None, Some(7)));
    let want: Vec<_> = (0..6).map(|i| (1, i)).chain([(2, 6), (2, 7)]).collect();
    assert_eq!(indexes(&mut s).await, want);
    assert_eq!(
        s.read_vote().await.unwrap(),
        Some(Vote::new_committed(2, 1))
    );

    s.purge(id(1, 3)).await.unwrap();
    drop(s);
    let mut s = open(dir.path());
    assert_eq!(state(&mut s).await, (Some(3), Some(7)));
    assert_eq!(indexes(&mut s).await[0], (1, 4));

    // A snapshot install: purge past the end, then the log goes on after the snapshot.
    s.save_vote(&Vote::new_committed(3, 1)).await.unwrap();
    s.purge(id(3, 50)).await.unwrap();
    assert_eq!(state(&mut s).await, (Some(50), Some(50)));
    s.blocking_append((51..54).map(|i| entry(3, i)))
        .await
        .unwrap();
    drop(s);
    let mut s = open(dir.path());
    assert_eq!(state(&mut s).await, (Some(50), Some(53)));
    assert_eq!(indexes(&mut s).await, vec![(3, 51), (3, 52), (3, 53)]);
    let one = s.try_get_log_entries(52..53).await.unwrap();
    assert_eq!(one[0].log_id, id(3, 52));

    // Truncating every live entry leaves only the purge point.
    s.truncate(id(3, 51)).await.unwrap();
    drop(s);
    let mut s = open(dir.path());
    assert_eq!(state(&mut s).await, (Some(50), Some(50)));
    assert!(indexes(&mut s).await.is_empty());
    s.save_vote(&Vote::new_committed(4, 1)).await.unwrap();
    s.blocking_append([entry(4, 51)]).await.unwrap();
    drop(s);
    let mut s = open(dir.path());
    assert_eq!(indexes(&mut s).await, vec![(4, 51)]);
}

#[tokio::test]
async fn purged_segments_are_removed_and_the_rest_still_maps() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path());
    s.save_vote(&Vote::new_committed(1, 1)).await.unwrap();
    for chunk in (0..600u64).collect::<Vec<_>>().chunks(50) {
        s.blocking_append(chunk.iter().map(|&i| entry(1, i)))
            .await
            .unwrap();
    }
    let before = s.entries_wal().segments().len();
    assert!(before > 5, "the test needs several segments");
    s.purge(id(1, 500)).await.unwrap();
    let after = s.entries_wal().segments().len();
    assert!(
        after < before,
        "purge removed no segment ({before} -> {after})"
    );
    // Segments that still hold live entries are kept.
    assert!(s.entries_wal().first_lsn().0 <= 502);
    drop(s);
    let mut s = open(dir.path());
    assert_eq!(state(&mut s).await, (Some(500), Some(599)));
    let got = indexes(&mut s).await;
    assert_eq!(got.len(), 99);
    assert_eq!(got[0], (1, 501));
    // A range that starts in the purged part returns only live entries.
    let some = s.try_get_log_entries(450..505).await.unwrap();
    assert_eq!(
        some.iter().map(|e| e.log_id.index).collect::<Vec<_>>(),
        vec![501, 502, 503, 504]
    );
}

#[tokio::test]
async fn an_append_that_would_leave_a_hole_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path());
    s.blocking_append((0..3).map(|i| entry(1, i)))
        .await
        .unwrap();
    assert!(s.blocking_append([entry(1, 5)]).await.is_err());
    assert_eq!(state(&mut s).await, (None, Some(2)));
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _first = open(dir.path());
    let second = Store::open_with(dir.path(), small_segments());
    assert!(matches!(
        second,
        Err(walden_openraft::OpenError::Wal {
            error: walden_std::Error::Locked { .. },
            ..
        })
    ));
}
