//! Edge cases of the store found in review: the meta log's size under commits alone, a purge
//! below the first entry of a log never purged, raft indexes at the end of `u64`, and empty,
//! reversed and extreme read ranges.

mod common;

use common::{Store, entry, id, indexes};
use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::{RaftLogReader, Vote};
use walden_std::{Config, Options, OsFs};

fn small(segment: u64) -> Options {
    Options::from(Config::default().with_segment_size(segment))
}

fn open(dir: &std::path::Path) -> Store {
    Store::open_in_with_meta(OsFs, dir, small(4096), small(4096))
        .unwrap_or_else(|e| panic!("open: {e}"))
}

fn files_in(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// openraft saves the committed log id at every commit; with no election and no purge (the
/// `SnapshotPolicy::Never` the `kv` state machine asks for) nothing else is written to the
/// meta log. It must not grow without bound: only the newest state matters.
#[tokio::test]
async fn the_meta_log_stays_small_under_commits_alone() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path());
    s.blocking_append((0..4).map(|i| entry(1, i)))
        .await
        .unwrap();
    // Each record is a few dozen bytes: 3000 of them fill many 4 KiB segments.
    for i in 0..3000u64 {
        s.save_committed(Some(id(1, i))).await.unwrap();
    }
    let meta_files = files_in(&dir.path().join("meta"));
    // A segment or two, a spare, the two start slots and the lock; 32 files before the fix.
    assert!(
        meta_files.len() <= 6,
        "the meta log kept {} files after commits alone: {meta_files:?}",
        meta_files.len()
    );
    assert_eq!(s.read_committed().await.unwrap(), Some(id(1, 2999)));
}

/// A log never purged may start past index 0 (openraft's suite appends index 1 first). A
/// purge below its first entry must not leave a store that cannot be opened again.
#[tokio::test]
async fn a_purge_below_the_first_entry_of_a_log_never_purged_leaves_an_openable_store() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path());
    s.save_vote(&Vote::new_committed(1, 1)).await.unwrap();
    s.blocking_append((5..9).map(|i| entry(1, i)))
        .await
        .unwrap();
    let _ = s.purge(id(1, 2)).await;
    drop(s);
    let mut s = open(dir.path());
    assert_eq!(indexes(&mut s).await, [(1, 5), (1, 6), (1, 7), (1, 8)]);
}

/// An entry at raft index `u64::MAX` is an error, not an overflow (a panic in debug builds,
/// an entry that can never be read in release ones).
#[tokio::test]
async fn an_entry_at_the_last_u64_index_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path());
    let r = s.blocking_append([entry(1, u64::MAX)]).await;
    assert!(r.is_err(), "index u64::MAX was accepted");
    let st = s.get_log_state().await.unwrap();
    assert_eq!(st.last_log_id, None);
    assert!(s.try_get_log_entries(0..).await.unwrap().is_empty());
}

/// Empty, reversed and extreme ranges read what is live in them, and never panic.
#[tokio::test]
async fn empty_reversed_and_extreme_ranges_read_only_what_is_live() {
    use core::ops::Bound::{Excluded, Included, Unbounded};
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path());
    s.blocking_append((3..8).map(|i| entry(1, i)))
        .await
        .unwrap();
    let mut read = async |range: (core::ops::Bound<u64>, core::ops::Bound<u64>)| {
        let entries = s.try_get_log_entries(range).await.unwrap();
        entries.iter().map(|e| e.log_id.index).collect::<Vec<_>>()
    };
    assert_eq!(read((Included(5), Excluded(5))).await, [0u64; 0]);
    assert_eq!(read((Included(6), Excluded(4))).await, [0u64; 0]);
    assert_eq!(read((Excluded(5), Included(5))).await, [0u64; 0]);
    assert_eq!(read((Included(0), Excluded(3))).await, [0u64; 0]);
    assert_eq!(read((Included(8), Unbounded)).await, [0u64; 0]);
    assert_eq!(read((Excluded(u64::MAX), Unbounded)).await, [0u64; 0]);
    assert_eq!(
        read((Included(u64::MAX), Included(u64::MAX))).await,
        [0u64; 0]
    );
    assert_eq!(read((Excluded(4), Included(6))).await, [5, 6]);
    assert_eq!(read((Unbounded, Included(u64::MAX))).await, [3, 4, 5, 6, 7]);
    assert_eq!(read((Included(7), Included(7))).await, [7]);
}
