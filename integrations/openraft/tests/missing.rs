//! One of the store's two logs is gone (its directory removed or emptied, or a meta log
//! without records) while the other proves that the store existed: the open is refused with
//! `OpenError::Missing`, and the missing log is not created, so the next open refuses too.
//! Before the fix the missing log was created empty: a store without its meta log forgot its
//! vote (the node could vote twice in one term) and its purge point (reads then failed), and
//! one without its entries log forgot every entry and the durable committed log id.
//!
//! Every state that a first open cut short can leave opens, as a new store: the states built
//! by hand here, and an open stopped at each of its file operations in turn (power losses at
//! every one are `walden-tests`' raft explorer's, which starts each workload with a first open).

mod common;

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::io;
use std::path::Path;

use common::{Store, entry, id, indexes};
use openraft::Vote;
use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use walden_openraft::kv::TypeConfig;
use walden_openraft::{LogStore, OpenError};
use walden_std::{Before, Config, Hooked, Hooks, Op, Options, OsFs, Wal};

fn small() -> Options {
    Options::from(Config::default().with_segment_size(4096))
}

fn open(dir: &Path) -> Result<Store, OpenError> {
    Store::open_with(dir, small())
}

/// Opens `dir`, expecting the refusal for a missing `log`; checks that the log was not
/// created, and returns the message.
#[track_caller]
fn refused(dir: &Path, log: &str) -> String {
    let message = match open(dir) {
        Ok(_) => panic!("the store opened without its {log} log"),
        Err(e @ OpenError::Missing { log: l, .. }) if l == log => e.to_string(),
        Err(e) => panic!("not the refusal expected: {e}"),
    };
    let path = dir.join(log);
    assert!(
        message.contains(&*path.to_string_lossy()),
        "the message does not name {}: {message}",
        path.display()
    );
    let segments = std::fs::read_dir(&path).map_or(Vec::new(), segments_in);
    assert!(
        segments.is_empty(),
        "the refused open created a log in {}: {segments:?}",
        path.display()
    );
    message
}

/// The segment files among `files`.
fn segments_in(files: std::fs::ReadDir) -> Vec<std::path::PathBuf> {
    let files = files.map(|f| f.unwrap().path());
    files
        .filter(|f| f.extension().is_some_and(|e| e == "wal"))
        .collect()
}

/// Removes a log's segment files, or all its files, leaving its directory.
fn empty_dir(dir: &Path, all: bool) {
    let files: Vec<_> = match all {
        true => (std::fs::read_dir(dir).unwrap())
            .map(|f| f.unwrap().path())
            .collect(),
        false => segments_in(std::fs::read_dir(dir).unwrap()),
    };
    assert!(!files.is_empty());
    for file in files {
        std::fs::remove_file(file).unwrap();
    }
}

/// The vote is saved, entries 1..=10 appended, a snapshot installed (purge to 50, past the
/// end) and 51..=53 appended: the reviewer's store.
async fn voted_and_purged_store(dir: &Path) {
    let mut s = open(dir).unwrap();
    s.save_vote(&Vote::new_committed(5, 1)).await.unwrap();
    s.blocking_append((1..=10).map(|i| entry(5, i)))
        .await
        .unwrap();
    s.purge(id(5, 50)).await.unwrap();
    s.blocking_append((51..=53).map(|i| entry(6, i)))
        .await
        .unwrap();
}

/// Entries 1..=10, committed to 8 and made durable by the next vote save.
async fn committed_store(dir: &Path) {
    let mut s = open(dir).unwrap();
    s.blocking_append((1..=10).map(|i| entry(5, i)))
        .await
        .unwrap();
    s.save_committed(Some(id(5, 8))).await.unwrap();
    s.save_vote(&Vote::new_committed(5, 1)).await.unwrap();
}

/// Before the fix: opened with no vote, no purge point and last log id 53, and every read
/// failed ("LSN 1 holds raft index 1, expected 41").
#[tokio::test]
async fn a_removed_meta_log_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    voted_and_purged_store(dir.path()).await;
    std::fs::remove_dir_all(dir.path().join("meta")).unwrap();
    let message = refused(dir.path(), "meta");
    assert!(message.contains("vote twice"), "{message}");
    // Refused again: the first refusal left nothing that looks like a new meta log.
    refused(dir.path(), "meta");
}

/// Before the fix: opened empty, the durable committed log id 8 dropped without a word.
#[tokio::test]
async fn a_removed_entries_log_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    committed_store(dir.path()).await;
    std::fs::remove_dir_all(dir.path().join("entries")).unwrap();
    let message = refused(dir.path(), "entries");
    assert!(
        message.contains("committed log id") && message.contains("vote"),
        "the message does not say what the meta log holds: {message}"
    );
    refused(dir.path(), "entries");
}

/// The meta log holds nothing but the records of the store's creation: a store that only
/// appended (openraft's `initialize`, then a crash before the first election).
#[tokio::test]
async fn a_removed_entries_log_is_refused_when_the_meta_log_holds_no_state() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut s = open(dir.path()).unwrap();
        s.blocking_append((0..3).map(|i| entry(1, i)))
            .await
            .unwrap();
    }
    std::fs::remove_dir_all(dir.path().join("entries")).unwrap();
    let message = refused(dir.path(), "entries");
    assert!(
        message.contains("records that the entries log was created"),
        "{message}"
    );
}

/// Every entry purged, with segments dropped: the entries log may hold no live entry, and
/// still proves the store existed.
#[tokio::test]
async fn a_removed_meta_log_is_refused_when_every_entry_was_purged() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut s = open(dir.path()).unwrap();
        s.save_vote(&Vote::new_committed(2, 1)).await.unwrap();
        // Several 4 KiB segments, all but the last dropped by the purge.
        s.blocking_append((0..300).map(|i| entry(2, i)))
            .await
            .unwrap();
        s.purge(id(2, 299)).await.unwrap();
        assert_eq!(indexes(&mut s).await, []);
        assert!(s.entries_wal().first_lsn().0 > 1, "no segment was dropped");
    }
    std::fs::remove_dir_all(dir.path().join("meta")).unwrap();
    refused(dir.path(), "meta");
}

/// A directory emptied of its files, or of its segments alone (its lock file, clean-close
/// marker and spare segments left), is as missing as a removed one.
#[tokio::test]
async fn an_emptied_log_directory_is_refused() {
    for log in ["entries", "meta"] {
        for all in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            voted_and_purged_store(dir.path()).await;
            empty_dir(&dir.path().join(log), all);
            refused(dir.path(), log);
            refused(dir.path(), log);
        }
    }
}

/// A meta log without a single record beside an entries log: its records are lost (the first
/// is synced before the entries log is created).
#[tokio::test]
async fn a_meta_log_without_records_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    voted_and_purged_store(dir.path()).await;
    std::fs::remove_dir_all(dir.path().join("meta")).unwrap();
    drop(Wal::open(dir.path().join("meta"), Options::default()).unwrap());
    let message = match open(dir.path()) {
        Ok(_) => panic!("the store opened with an empty meta log"),
        Err(e @ OpenError::Missing { log: "meta", .. }) => e.to_string(),
        Err(e) => panic!("not the refusal expected: {e}"),
    };
    assert!(message.contains("holds no record"), "{message}");
}

/// The meta record of an empty state, as the store writes it (version 1, three `None`s).
const EMPTY_STATE: [u8; 4] = [1, 0, 0, 0];

/// Opens `dir` (which a first open cut short left), expecting a new store; checks that it
/// works, and that from then on a lost log is refused.
async fn opens_as_new(dir: &Path, state: &str) {
    let mut s = open(dir).unwrap_or_else(|e| panic!("{state}: {e}"));
    let st = s.get_log_state().await.unwrap();
    assert_eq!(
        (st.last_purged_log_id, st.last_log_id),
        (None, None),
        "{state}"
    );
    assert_eq!(s.read_vote().await.unwrap(), None, "{state}");
    s.save_vote(&Vote::new_committed(1, 1)).await.unwrap();
    s.blocking_append((0..3).map(|i| entry(1, i)))
        .await
        .unwrap();
    drop(s);
    let mut s = open(dir).unwrap_or_else(|e| panic!("{state}, reopened: {e}"));
    assert_eq!(indexes(&mut s).await, [(1, 0), (1, 1), (1, 2)], "{state}");
    drop(s);
    std::fs::remove_dir_all(dir.join("entries")).unwrap();
    refused(dir, "entries");
}

/// The meta log as the store opens it, with the store's first record (synced).
fn meta_with_its_first_record(dir: &Path) {
    let options = Options::from(Config::default().with_segment_size(1 << 20));
    let (mut meta, _) = Wal::open(dir.join("meta"), options).unwrap();
    meta.append(&EMPTY_STATE).unwrap();
    meta.sync().unwrap();
}

/// Builds a state in a store's directory.
type Make = fn(&Path);

/// What each step of a first open leaves, if it is the last: the meta log's directory, the
/// log without a record, its first record, the entries log's directory (only its lock file),
/// the entries log. (Walden makes each durable before the next starts.)
#[tokio::test]
async fn every_state_a_first_open_leaves_opens() {
    let states: [(&str, Make); 5] = [
        ("an empty meta directory", |d| {
            std::fs::create_dir(d.join("meta")).unwrap();
        }),
        ("a meta log without records", |d| {
            drop(Wal::open(d.join("meta"), Options::default()).unwrap());
        }),
        (
            "a meta log with its first record",
            meta_with_its_first_record,
        ),
        ("and an entries directory with only a lock file", |d| {
            meta_with_its_first_record(d);
            std::fs::create_dir(d.join("entries")).unwrap();
            std::fs::write(d.join("entries").join(walden_std::LOCK_FILE), b"").unwrap();
        }),
        ("and an empty entries log", |d| {
            meta_with_its_first_record(d);
            drop(Wal::open(d.join("entries"), small()).unwrap());
        }),
    ];
    for (state, make) in states {
        let dir = tempfile::tempdir().unwrap();
        make(dir.path());
        opens_as_new(dir.path(), state).await;
    }
}

/// The real file system, with every state-changing call from the `n`-th on failing (`EIO`):
/// a process that died there, its page cache kept.
struct StopAt {
    left: AtomicU64,
    stopped: AtomicBool,
}

impl Hooks for StopAt {
    fn before(&self, op: &Op<'_>) -> Before {
        if !op.changes() {
            return Before::Run;
        }
        let take = |n: u64| n.checked_sub(1);
        if self
            .left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, take)
            .is_ok()
        {
            return Before::Run;
        }
        self.stopped.store(true, Ordering::SeqCst);
        Before::Fail(io::Error::from_raw_os_error(libc::EIO))
    }
}

/// A first open stopped at each of its state-changing file operations in turn, then opened
/// again on the real file system: a new store every time.
#[tokio::test]
async fn a_first_open_stopped_at_any_file_operation_opens_again() {
    let mut options = small();
    // No spare segments made in the background: the operations are the open's own.
    options.preallocate = false;
    for n in 0.. {
        assert!(n < 1000, "the first open never finished");
        let dir = tempfile::tempdir().unwrap();
        let hooks = StopAt {
            left: AtomicU64::new(n),
            stopped: AtomicBool::new(false),
        };
        let fs = Hooked::new(OsFs, hooks);
        let opened =
            LogStore::<TypeConfig, _>::open_in_with_meta(fs.clone(), dir.path(), options, options);
        let finished = opened.is_ok() && !fs.hooks().stopped.load(Ordering::SeqCst);
        drop(opened);
        opens_as_new(dir.path(), &format!("stopped at operation {n}")).await;
        if finished {
            break;
        }
    }
}
