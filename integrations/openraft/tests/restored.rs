//! One of the store's two logs restored from an older copy than the other: refused at open,
//! with a typed error naming what does not fit, instead of opening with a vote that went back
//! (`OpenError::VoteBehind`) or without committed entries (`OpenError::CommittedBeyondLog`).

mod common;

use std::path::Path;

use common::{Store, entry, id, indexes};
use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::{LogId, Vote};
use walden_openraft::OpenError;
use walden_std::{Config, Options, Wal};

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// Replaces `<dir>/<log>` with the copy in `<backup>/<log>`.
fn restore(backup: &Path, dir: &Path, log: &str) {
    std::fs::remove_dir_all(dir.join(log)).unwrap();
    copy_dir(&backup.join(log), &dir.join(log));
}

fn open_err(dir: &Path) -> OpenError {
    match Store::open(dir) {
        Ok(_) => panic!("opened"),
        Err(e) => e,
    }
}

/// The bytes of every file under `dir`, by path.
fn image(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for log in ["entries", "meta"] {
        for e in std::fs::read_dir(dir.join(log)).unwrap() {
            let p = e.unwrap().path();
            out.push((p.clone(), std::fs::read(&p).unwrap()));
        }
    }
    out.sort();
    out
}

/// meta/ restored from a copy taken before the node voted in term 5 and took term-5 entries.
/// It opened with the old vote (term 1) beside entries of term 5, although a node appends an
/// entry of term 5 only after saving a vote of term 5: it could then vote again in terms
/// 2..=5, in which it had already voted (two leaders in one term).
#[tokio::test]
async fn a_meta_log_older_than_the_entries_log_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let backup = tempfile::tempdir().unwrap();
    {
        let mut s = Store::open(dir.path()).unwrap();
        s.save_vote(&Vote::new_committed(1, 1)).await.unwrap();
        s.blocking_append((0..3).map(|i| entry(1, i)))
            .await
            .unwrap();
    }
    copy_dir(&dir.path().join("meta"), &backup.path().join("meta"));
    {
        let mut s = Store::open(dir.path()).unwrap();
        s.save_vote(&Vote::new_committed(5, 1)).await.unwrap();
        s.blocking_append((3..6).map(|i| entry(5, i)))
            .await
            .unwrap();
    }
    let newer = tempfile::tempdir().unwrap();
    copy_dir(&dir.path().join("meta"), &newer.path().join("meta"));
    restore(backup.path(), dir.path(), "meta");
    let before = image(dir.path());
    for _ in 0..2 {
        let e = open_err(dir.path());
        assert!(
            matches!(
                e,
                OpenError::VoteBehind {
                    vote_term: 1,
                    term: 5,
                    of: "the last entry"
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("vote twice"), "{e}");
    }
    assert!(
        image(dir.path()) == before,
        "a refused open changed the logs"
    );
    // Putting the meta log that goes with the entries back opens the store.
    restore(newer.path(), dir.path(), "meta");
    let mut s = Store::open(dir.path()).unwrap();
    assert_eq!(indexes(&mut s).await.last(), Some(&(5, 5)));
    assert_eq!(
        s.read_vote().await.unwrap(),
        Some(Vote::new_committed(5, 1))
    );
}

/// A meta log without any vote beside entries of term 1: refused too (a vote of term 0).
/// Entries of term 0 (openraft's `initialize` appends its membership entry at term 0, before
/// any vote) open without one.
#[tokio::test]
async fn entries_of_a_term_without_any_vote_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut s = Store::open(dir.path()).unwrap();
        s.blocking_append([entry(0, 0)]).await.unwrap();
    }
    Store::open(dir.path()).unwrap();
    {
        let mut s = Store::open(dir.path()).unwrap();
        s.blocking_append([entry(1, 1)]).await.unwrap();
    }
    let e = open_err(dir.path());
    assert!(
        matches!(
            e,
            OpenError::VoteBehind {
                vote_term: 0,
                term: 1,
                ..
            }
        ),
        "{e:?}"
    );
}

/// A meta record (as the store encodes one: version 1, then the vote, the committed and the
/// purged log id in postcard) put at the end of the meta log.
fn put_meta(dir: &Path, vote: Vote<u64>, committed: Option<LogId<u64>>, purged: LogId<u64>) {
    let mut record = vec![1];
    record.extend(postcard::to_allocvec(&(Some(vote), committed, Some(purged))).unwrap());
    let options = Options::from(Config::default().with_segment_size(1 << 20));
    let (mut wal, _) = Wal::open(dir.join("meta"), options).unwrap();
    wal.append(&record).unwrap();
    wal.sync().unwrap();
}

/// The purge point and the committed log id count as well as the last entry: a record whose
/// purge point (or committed log id) is of a newer term than its vote is refused, naming it.
#[tokio::test]
async fn a_purge_point_or_committed_log_id_newer_than_the_vote_is_refused() {
    for committed in [None, Some(id(6, 12))] {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = Store::open(dir.path()).unwrap();
            s.save_vote(&Vote::new_committed(1, 1)).await.unwrap();
            s.blocking_append((0..3).map(|i| entry(1, i)))
                .await
                .unwrap();
        }
        put_meta(dir.path(), Vote::new_committed(1, 1), committed, id(4, 12));
        let e = open_err(dir.path());
        let want = match committed {
            None => (4, "the purge point"),
            Some(_) => (6, "the committed log id"),
        };
        match e {
            OpenError::VoteBehind {
                vote_term: 1,
                term,
                of,
            } => assert_eq!((term, of), want),
            e => panic!("{e:?}"),
        }
    }
}

/// entries/ restored from a copy taken before entries 3..=9 were flushed and committed. The
/// meta log's durable committed log id (9) proves they were there, but open dropped it as if
/// it were a lost unsynced write, and served a log ending at 2: committed entries gone. In
/// openraft 0.9 a committed log id is saved only once the entries it covers are flushed, so
/// one past the log's end is evidence of loss, never the trace of a crash.
#[tokio::test]
async fn an_entries_log_older_than_the_committed_log_id_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let backup = tempfile::tempdir().unwrap();
    {
        let mut s = Store::open(dir.path()).unwrap();
        s.save_vote(&Vote::new_committed(1, 1)).await.unwrap();
        s.blocking_append((0..3).map(|i| entry(1, i)))
            .await
            .unwrap();
    }
    copy_dir(&dir.path().join("entries"), &backup.path().join("entries"));
    {
        let mut s = Store::open(dir.path()).unwrap();
        s.blocking_append((3..10).map(|i| entry(1, i)))
            .await
            .unwrap();
        s.save_committed(Some(id(1, 9))).await.unwrap();
        s.save_vote(&Vote::new_committed(2, 1)).await.unwrap(); // syncs the meta log
    }
    restore(backup.path(), dir.path(), "entries");
    let before = image(dir.path());
    for _ in 0..2 {
        let e = open_err(dir.path());
        assert!(
            matches!(
                e,
                OpenError::CommittedBeyondLog {
                    committed: 9,
                    last: Some(2)
                }
            ),
            "{e:?}"
        );
        let text = e.to_string();
        assert!(
            text.contains("index 9") && text.contains("ends at index 2"),
            "{text}"
        );
    }
    assert!(
        image(dir.path()) == before,
        "a refused open changed the logs"
    );
}

/// With no live entry, the purge point is where the log ends: entries/ restored from a copy
/// taken right after a snapshot install (a purge past the end, to 50) and before entries
/// 51..=53 were appended and committed is refused; the committed log id at the purge point
/// itself, or at the last entry, opens.
#[tokio::test]
async fn the_purge_point_is_the_end_of_a_log_without_entries() {
    let dir = tempfile::tempdir().unwrap();
    let backup = tempfile::tempdir().unwrap();
    {
        let mut s = Store::open(dir.path()).unwrap();
        s.save_vote(&Vote::new_committed(3, 1)).await.unwrap();
        s.blocking_append((0..3).map(|i| entry(3, i)))
            .await
            .unwrap();
        s.save_committed(Some(id(3, 2))).await.unwrap();
        s.purge(id(3, 50)).await.unwrap();
    }
    copy_dir(&dir.path().join("entries"), &backup.path().join("entries"));
    {
        let mut s = Store::open(dir.path()).unwrap();
        assert_eq!(s.read_committed().await.unwrap(), Some(id(3, 2)));
        s.blocking_append((51..54).map(|i| entry(3, i)))
            .await
            .unwrap();
        s.save_committed(Some(id(3, 53))).await.unwrap();
        s.save_vote(&Vote::new_committed(4, 1)).await.unwrap();
    }
    Store::open(dir.path()).unwrap();
    restore(backup.path(), dir.path(), "entries");
    let e = open_err(dir.path());
    assert!(
        matches!(
            e,
            OpenError::CommittedBeyondLog {
                committed: 53,
                last: Some(50)
            }
        ),
        "{e:?}"
    );
    // Committed at the purge point (a record put by hand): opens.
    put_meta(
        dir.path(),
        Vote::new_committed(4, 1),
        Some(id(3, 50)),
        id(3, 50),
    );
    let mut s = Store::open(dir.path()).unwrap();
    assert_eq!(s.read_committed().await.unwrap(), Some(id(3, 50)));
    assert!(indexes(&mut s).await.is_empty());
}

/// A committed log id in a store without any entry or purge point names an entry the log
/// never held.
#[tokio::test]
async fn a_committed_log_id_beside_no_entry_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let backup = tempfile::tempdir().unwrap();
    {
        let mut s = Store::open(dir.path()).unwrap();
        s.save_vote(&Vote::new_committed(1, 1)).await.unwrap();
    }
    copy_dir(&dir.path().join("entries"), &backup.path().join("entries"));
    {
        let mut s = Store::open(dir.path()).unwrap();
        s.blocking_append([entry(1, 0)]).await.unwrap();
        s.save_committed(Some(id(1, 0))).await.unwrap();
        s.save_vote(&Vote::new_committed(2, 1)).await.unwrap();
    }
    restore(backup.path(), dir.path(), "entries");
    let e = open_err(dir.path());
    assert!(
        matches!(
            e,
            OpenError::CommittedBeyondLog {
                committed: 0,
                last: None
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("holds no entry"), "{e}");
}
