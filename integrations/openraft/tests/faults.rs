//! Failed writes and syncs. After one, in either log, the store takes no more writes and
//! reports nothing from memory until it is reopened: memory may hold what never became durable
//! (entries, a vote, a purge point), and the other log must not go on as if it had.
//!
//! [`FaultyFs`] is the real file system with one of the store's two directories failing on
//! demand (`EIO` on every write and sync in it), as a disk that dies under the store. The
//! other directory keeps working. Unlike the simulator it cannot drop bytes that a failed sync
//! left in the page cache, so it fails the writes too, until the store is dropped (walden-std
//! hands buffered bytes to the OS on drop, best effort): what the failed call wrote never
//! reaches the file, and the reopen shows what a power loss after the failure may leave.

mod common;

use core::future::Future;
use core::pin::pin;
use core::task::{Context, Waker};
use std::io;
use std::path::Path;
use std::sync::{Condvar, Mutex, PoisonError};

use common::{Store, entry, id, indexes};
use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::{StorageError, Vote};
use walden_openraft::LogStore;
use walden_openraft::kv::TypeConfig;
use walden_std::{Before, Hooked, Hooks, Op, Options, OsFs};

/// The log a path is in: `<store>/<log>` or `<store>/<log>/<file>`.
fn log_of(path: &Path) -> Option<&'static str> {
    let mut names = path.components().rev().take(2);
    names.find_map(|c| match c.as_os_str().to_str() {
        Some("entries") => Some("entries"),
        Some("meta") => Some("meta"),
        _ => None,
    })
}

/// The real file system; once [`Faults::fail`] names one of the store's logs, every write,
/// sync and length change of a file in that log's directory fails with `EIO`.
type FaultyFs = Hooked<OsFs, Faults>;

fn faulty() -> FaultyFs {
    Hooked::new(OsFs, Faults::default())
}

/// [`FaultyFs`]'s hooks.
#[derive(Default)]
struct Faults {
    failing: Mutex<Option<&'static str>>,
    /// The log whose syncs wait (see [`Faults::hold`]), and the condition they wait on.
    held: (Mutex<Option<&'static str>>, Condvar),
}

impl Faults {
    /// Every sync of a file in `log`'s directory waits until [`Faults::release`]: a record
    /// appended there stays not durable for as long as a test needs.
    fn hold(&self, log: &'static str) {
        *self.held.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(log);
    }

    fn release(&self) {
        *self.held.0.lock().unwrap_or_else(PoisonError::into_inner) = None;
        self.held.1.notify_all();
    }

    /// Waits while syncs of `log` are held.
    fn wait_held(&self, log: Option<&'static str>) {
        let (lock, released) = &self.held;
        let mut held = lock.lock().unwrap_or_else(PoisonError::into_inner);
        while log.is_some() && *held == log {
            held = released.wait(held).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// `"entries"` or `"meta"`: that directory fails from now on.
    fn fail(&self, log: &'static str) {
        *self.failing.lock().unwrap_or_else(PoisonError::into_inner) = Some(log);
    }

    fn failing(&self, log: Option<&'static str>) -> bool {
        let failing = *self.failing.lock().unwrap_or_else(PoisonError::into_inner);
        failing.is_some() && log == failing
    }
}

impl Hooks for Faults {
    fn before(&self, op: &Op<'_>) -> Before {
        let log = log_of(op.path());
        match op {
            Op::SyncData { .. } | Op::SyncAll { .. } => self.wait_held(log),
            Op::Write { .. } | Op::WriteBack { .. } | Op::SetLen { .. } => {}
            _ => return Before::Run,
        }
        if self.failing(log) {
            return Before::Fail(io::Error::from_raw_os_error(libc::EIO));
        }
        Before::Run
    }
}

type FaultyStore = LogStore<TypeConfig, FaultyFs>;

fn open_faulty(fs: &FaultyFs, dir: &Path) -> FaultyStore {
    FaultyStore::open_in(fs.clone(), dir, Options::default())
        .unwrap_or_else(|e| panic!("open: {e}"))
}

/// Reopens on the real file system, as after a restart.
fn reopen(dir: &Path) -> Store {
    Store::open(dir).unwrap_or_else(|e| panic!("reopen: {e}"))
}

/// The call was refused because an earlier write failed, and says so.
#[track_caller]
fn refused<T: core::fmt::Debug>(what: &str, r: Result<T, StorageError<u64>>) {
    match r {
        Ok(v) => panic!("{what} succeeded after a failed write: {v:?}"),
        Err(e) => assert!(
            e.to_string().contains("an earlier write failed"),
            "{what} failed, but not because the store is poisoned: {e}"
        ),
    }
}

/// The entries log fails under an append: the flush is reported failed, and nothing after it
/// may report the failed entries or write anything that follows them (the meta log works).
#[tokio::test]
async fn a_failed_append_fails_every_later_call_and_its_entries_are_not_kept() {
    let dir = tempfile::tempdir().unwrap();
    let fs = faulty();
    let mut s = open_faulty(&fs, dir.path());
    s.blocking_append((0..3).map(|i| entry(1, i)))
        .await
        .unwrap();
    s.save_vote(&Vote::new_committed(1, 1)).await.unwrap();

    fs.hooks().fail("entries");
    let r = s.blocking_append([entry(1, 3), entry(1, 4)]).await;
    assert!(r.is_err(), "an append whose sync failed was acknowledged");

    refused("get_log_state", s.get_log_state().await);
    refused("an append", s.blocking_append([entry(1, 5)]).await);
    refused("save_vote", s.save_vote(&Vote::new_committed(2, 1)).await);
    // Before the fix this record, naming a failed entry, went to the working meta log.
    refused("save_committed", s.save_committed(Some(id(1, 4))).await);
    refused("truncate", s.truncate(id(1, 4)).await);
    refused("purge", s.purge(id(1, 1)).await);
    refused("read_vote", s.read_vote().await);
    drop(s);

    let mut s = reopen(dir.path());
    assert_eq!(indexes(&mut s).await, [(1, 0), (1, 1), (1, 2)]);
    assert_eq!(s.read_committed().await.unwrap(), None);
    assert_eq!(
        s.read_vote().await.unwrap(),
        Some(Vote::new_committed(1, 1))
    );
}

/// The meta log fails under a purge past the end (a snapshot install). Before the fix the
/// store went on with the purge point in memory only: `get_log_state` reported it, and the
/// next append (index 51, after it) was acknowledged. After a restart the purge point was
/// gone, so the store mapped index 51's record as the end of a run starting at index 41 on
/// the first record, which holds index 0: every read of the log failed.
#[tokio::test]
async fn a_failed_purge_is_not_reported_and_no_append_follows_it() {
    let dir = tempfile::tempdir().unwrap();
    let fs = faulty();
    let mut s = open_faulty(&fs, dir.path());
    s.save_vote(&Vote::new_committed(1, 1)).await.unwrap();
    s.blocking_append((0..10).map(|i| entry(1, i)))
        .await
        .unwrap();

    fs.hooks().fail("meta");
    assert!(s.purge(id(2, 50)).await.is_err());

    refused("get_log_state", s.get_log_state().await);
    refused("an append", s.blocking_append([entry(2, 51)]).await);
    drop(s);

    let mut s = reopen(dir.path());
    let st = s.get_log_state().await.unwrap();
    assert_eq!(st.last_purged_log_id, None);
    assert_eq!(st.last_log_id, Some(id(1, 9)));
    let want: Vec<_> = (0..10).map(|i| (1, i)).collect();
    assert_eq!(indexes(&mut s).await, want);
}

/// The meta log fails under `save_vote`: the vote is not read back as saved, and the store
/// takes no append under it.
#[tokio::test]
async fn a_failed_vote_save_is_not_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let fs = faulty();
    let mut s = open_faulty(&fs, dir.path());
    s.save_vote(&Vote::new_committed(1, 1)).await.unwrap();
    s.blocking_append((0..2).map(|i| entry(1, i)))
        .await
        .unwrap();

    fs.hooks().fail("meta");
    assert!(s.save_vote(&Vote::new(2, 2)).await.is_err());

    refused("read_vote", s.read_vote().await);
    refused("an append", s.blocking_append([entry(1, 2)]).await);
    drop(s);

    let mut s = reopen(dir.path());
    assert_eq!(
        s.read_vote().await.unwrap(),
        Some(Vote::new_committed(1, 1))
    );
    assert_eq!(indexes(&mut s).await, [(1, 0), (1, 1)]);
}

/// Polls `fut` once and drops it: the caller giving up on a call (a timeout, a `select!`)
/// while it waits for its record to become durable.
fn poll_once_and_drop<F: Future>(fut: F) {
    let mut fut = pin!(fut);
    let polled = fut.as_mut().poll(&mut Context::from_waker(Waker::noop()));
    assert!(
        polled.is_pending(),
        "the call did not wait for its held sync"
    );
}

/// A `save_vote` or `purge` dropped while its meta record waits to become durable. Before the
/// fix the new vote (or purge point) stayed in memory: `read_vote` and `get_log_state`
/// reported it as saved although it might never reach the disk, and the store took appends
/// under it. Now the store is poisoned as after a failed write; a reopen finds one state or
/// the other, whole.
#[tokio::test]
async fn a_vote_save_or_purge_dropped_before_it_is_durable_poisons_the_store() {
    for call in ["save_vote", "purge"] {
        let dir = tempfile::tempdir().unwrap();
        let fs = faulty();
        let mut s = open_faulty(&fs, dir.path());
        s.save_vote(&Vote::new_committed(1, 1)).await.unwrap();
        s.blocking_append((0..10).map(|i| entry(1, i)))
            .await
            .unwrap();

        fs.hooks().hold("meta");
        match call {
            "save_vote" => poll_once_and_drop(s.save_vote(&Vote::new(2, 2))),
            _ => poll_once_and_drop(s.purge(id(1, 5))),
        }
        fs.hooks().release();

        refused("read_vote", s.read_vote().await);
        refused("get_log_state", s.get_log_state().await);
        refused("an append", s.blocking_append([entry(1, 10)]).await);
        drop(s);

        let mut s = reopen(dir.path());
        let vote = s.read_vote().await.unwrap();
        let st = s.get_log_state().await.unwrap();
        match call {
            "save_vote" => assert!(
                vote == Some(Vote::new_committed(1, 1)) || vote == Some(Vote::new(2, 2)),
                "{vote:?}"
            ),
            _ => assert!(
                st.last_purged_log_id.is_none() || st.last_purged_log_id == Some(id(1, 5)),
                "{st:?}"
            ),
        }
        assert_eq!(st.last_log_id, Some(id(1, 9)), "{call}");
    }
}
