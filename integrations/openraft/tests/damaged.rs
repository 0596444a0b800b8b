//! Records the store never writes, put at the end of its logs with walden-std directly (valid
//! Walden records, so only the store's own decoding can refuse them): open refuses them with
//! `OpenError::Corrupted`, and changes no segment (Walden's open and close of a log may leave
//! its clean-close marker, as they would for any open).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{Store, entry, id, indexes};
use openraft::Vote;
use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use walden_openraft::OpenError;
use walden_std::{Config, Lsn, Options, Wal};

/// Every file of both logs and its bytes, but the lock files (open takes them) and the
/// clean-close markers (a log closed with nothing unsynced leaves one).
fn image(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    for log in ["entries", "meta"] {
        for e in std::fs::read_dir(dir.join(log)).unwrap() {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap();
            if name != walden_std::LOCK_FILE && name != walden_std::CLEAN_FILE {
                out.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

/// A store holding entries 0..3 of term 1 (and a vote of term 1, saved first, as openraft
/// does), closed.
async fn store_of_three(dir: &Path) {
    let mut s = Store::open(dir).unwrap();
    s.save_vote(&Vote::new_committed(1, 1)).await.unwrap();
    s.blocking_append((0..3).map(|i| entry(1, i)))
        .await
        .unwrap();
    s.save_committed(Some(id(1, 2))).await.unwrap();
}

/// Appends `record` to one of the store's logs, with the options the store opens it with.
fn put(dir: &Path, log: &str, record: &[u8]) {
    let options = match log {
        "meta" => Options::from(Config::default().with_segment_size(1 << 20)),
        _ => Options::default(),
    };
    let (mut wal, _) = Wal::open(dir.join(log), options).unwrap();
    wal.append(record).unwrap();
    wal.sync().unwrap();
}

/// An entry record as the store writes it: the raft index, then the postcard-encoded entry.
fn entry_record(term: u64, index: u64) -> Vec<u8> {
    let mut out = index.to_le_bytes().to_vec();
    out.extend(postcard::to_allocvec(&entry(term, index)).unwrap());
    out
}

/// Opens, expecting a refusal of the entries or meta log's record at `lsn`; checks that the
/// files are as they were, and returns the refusal's detail.
fn refused_at(dir: &Path, log: &str, lsn: Lsn) -> &'static str {
    let before = image(dir);
    let detail = match Store::open(dir) {
        Ok(_) => panic!("the store opened"),
        Err(OpenError::Corrupted {
            log: l,
            lsn: at,
            detail,
        }) if l == log && at == lsn => detail,
        Err(e) => panic!("not the refusal expected: {e}"),
    };
    let after = image(dir);
    assert!(after == before, "a refused open changed the files");
    detail
}

#[tokio::test]
async fn an_entry_record_with_trailing_bytes_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    store_of_three(dir.path()).await;
    let mut record = entry_record(1, 3);
    record.extend_from_slice(&[0xAB, 0xCD]);
    put(dir.path(), "entries", &record);
    let detail = refused_at(dir.path(), "entries", Lsn(4));
    assert_eq!(detail, "entry record has bytes after the entry");
}

#[tokio::test]
async fn a_meta_record_with_trailing_bytes_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    store_of_three(dir.path()).await;
    let meta_lsn = {
        let (wal, _) = Wal::open(
            dir.path().join("meta"),
            Options::from(Config::default().with_segment_size(1 << 20)),
        )
        .unwrap();
        wal.last_lsn().next()
    };
    // Version 1, then an empty state (three `None`s), then a byte no version writes.
    put(dir.path(), "meta", &[1, 0, 0, 0, 0xAB]);
    let detail = refused_at(dir.path(), "meta", meta_lsn);
    assert_eq!(detail, "meta record has bytes after the state");
}

/// `append` refuses raft index `u64::MAX` (the index after the last entry must exist). One on
/// disk was taken at open before the fix, and the next read or append overflowed
/// `last.index + 1` (a panic in debug builds, an empty read in release ones).
#[tokio::test]
async fn an_entry_at_the_last_u64_index_on_disk_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        // Nothing before it: a log never purged may start at any index.
        let s = Store::open(dir.path()).unwrap();
        drop(s);
    }
    put(dir.path(), "entries", &entry_record(1, u64::MAX));
    let detail = refused_at(dir.path(), "entries", Lsn(1));
    assert!(detail.contains("u64::MAX"), "{detail}");
}

/// The control: a well-formed record put the same way is taken.
#[tokio::test]
async fn a_well_formed_record_put_the_same_way_opens() {
    let dir = tempfile::tempdir().unwrap();
    store_of_three(dir.path()).await;
    put(dir.path(), "entries", &entry_record(1, 3));
    let mut s = Store::open(dir.path()).unwrap();
    assert_eq!(indexes(&mut s).await, [(1, 0), (1, 1), (1, 2), (1, 3)]);
    assert_eq!(s.read_committed().await.unwrap(), Some(id(1, 2)));
}
