//! A small in-memory key-value state machine, the kind openraft's own examples use: for
//! running openraft's storage suite against [`crate::LogStore`] and for the replicated demo
//! (`raft-demo/`). Its state lives in memory (snapshots too), so a restarted node rebuilds
//! it by re-applying the log: keep log purging off (`SnapshotPolicy::Never`) when you use it.
//!
//! **Each client write applied once.** A client that does not hear back (a leader that died
//! after committing, a reply lost) must send its write again, and raft then commits it
//! twice. A write sent as a [`Tracked`] carries its client's id and a serial number that
//! grows with each new write of that client (a retry keeps it): the state machine keeps, per
//! client, the last serial it applied and its answer, applies a write only if its serial is
//! newer, and answers a retry with the first answer ([`Applied::Before`]). A retry that comes
//! after a newer write of the same client is not applied at all ([`Applied::Superseded`]):
//! applied then, it would undo a later write. The table is part of the state (every replica
//! builds the same one, snapshots carry it) and keeps the [`MAX_SESSIONS`] clients that wrote
//! last; a retry from a client dropped from it is applied again, as an untracked write is.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    AnyError, BasicNode, Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder,
    SnapshotMeta, StorageError, StorageIOError, StoredMembership,
};
use serde::{Deserialize, Serialize};

/// A write to the store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Set `key` to `value`.
    Set {
        /// The key.
        key: String,
        /// The new value.
        value: String,
    },
    /// Several sets in one raft entry, applied in order (how a node batches the writes of
    /// concurrent clients into one replicated, flushed entry).
    Batch(Vec<(String, String)>),
    /// Client writes, each applied at most once however often it is committed (see the
    /// module's documentation), in order.
    Tracked(Vec<Tracked>),
}

/// A set of `key` to `value` by a client that may send it more than once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tracked {
    /// The client's id, random per client: two clients must not share one.
    pub client: u64,
    /// Grows with each new write of the client; a retry of a write keeps its serial.
    pub serial: u64,
    /// The key.
    pub key: String,
    /// The new value.
    pub value: String,
}

impl Tracked {
    /// The bytes of its key and value (what bounds a write and a batch of them).
    pub fn bytes(&self) -> usize {
        self.key.len() + self.value.len()
    }
}

/// What became of a [`Tracked`] write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Applied {
    /// Applied by this entry.
    Now,
    /// A repeat of the write applied at this log index: not applied again; its answer
    /// (`Response::previous`) is the first one's.
    Before(u64),
    /// The client has written something newer since: not applied (it would undo that).
    Superseded,
}

/// The answer to a [`Request`] once applied.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// For each key set, in order, the value it had before, if any.
    pub previous: Vec<Option<String>>,
    /// For each write of a [`Request::Tracked`], in order, what became of it (empty for the
    /// other requests).
    pub applied: Vec<Applied>,
}

/// How many clients' last writes the state machine remembers (the ones that wrote last).
pub const MAX_SESSIONS: usize = 4096;

/// A client's last applied write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Session {
    serial: u64,
    /// Where it was applied: the entry's log index and its place in the entry.
    at: (u64, u32),
    previous: Option<String>,
}

/// What a snapshot holds.
#[derive(Serialize, Deserialize)]
struct SnapshotData {
    data: BTreeMap<String, String>,
    sessions: BTreeMap<u64, Session>,
}

openraft::declare_raft_types!(
    /// openraft types for the key-value store: `u64` node ids, nodes addressed by
    /// [`BasicNode`], snapshots as bytes in memory, the tokio runtime.
    pub TypeConfig:
        D = Request,
        R = Response,
);

/// The node id of [`TypeConfig`].
pub type NodeId = u64;

#[derive(Clone)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, BasicNode>,
    data: Vec<u8>,
}

#[derive(Default)]
struct Inner {
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, BasicNode>,
    data: BTreeMap<String, String>,
    /// Per client, its last applied [`Tracked`] write.
    sessions: BTreeMap<u64, Session>,
    /// The same clients by where their last write was applied, oldest first (which to forget).
    by_age: BTreeMap<(u64, u32), u64>,
    snapshot: Option<StoredSnapshot>,
    snapshots_built: u64,
}

impl Inner {
    /// Applies `w`, the `pos`th write of the entry at log index `index`.
    fn apply_tracked(&mut self, w: Tracked, index: u64, pos: u32) -> (Option<String>, Applied) {
        if let Some(s) = self.sessions.get(&w.client) {
            if w.serial == s.serial {
                return (s.previous.clone(), Applied::Before(s.at.0));
            }
            if w.serial < s.serial {
                return (None, Applied::Superseded);
            }
            self.by_age.remove(&s.at);
        }
        let previous = self.data.insert(w.key, w.value);
        let at = (index, pos);
        self.by_age.insert(at, w.client);
        self.sessions.insert(
            w.client,
            Session {
                serial: w.serial,
                at,
                previous: previous.clone(),
            },
        );
        while self.sessions.len() > MAX_SESSIONS {
            match self.by_age.pop_first() {
                Some((_, client)) => self.sessions.remove(&client),
                None => break,
            };
        }
        (previous, Applied::Now)
    }
}

/// The in-memory state machine. Clones share the state, so the node that gave one to
/// openraft can still read it ([`StateMachine::get`]).
#[derive(Clone, Default)]
pub struct StateMachine {
    inner: Arc<Mutex<Inner>>,
}

impl StateMachine {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The value of `key` as of the last applied entry (a local, possibly stale read).
    pub fn get(&self, key: &str) -> Option<String> {
        self.lock().data.get(key).cloned()
    }

    /// The last applied log id.
    pub fn last_applied(&self) -> Option<LogId<NodeId>> {
        self.lock().last_applied
    }

    /// How many keys it holds.
    pub fn len(&self) -> usize {
        self.lock().data.len()
    }

    /// Whether it holds no key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn build_err(e: impl core::fmt::Display) -> StorageError<NodeId> {
    StorageIOError::write_snapshot(None, AnyError::error(e.to_string())).into()
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let mut st = self.lock();
        let data = postcard::to_allocvec(&SnapshotData {
            data: st.data.clone(),
            sessions: st.sessions.clone(),
        })
        .map_err(build_err)?;
        st.snapshots_built += 1;
        let snapshot_id = match &st.last_applied {
            Some(l) => format!("{}-{}-{}", l.leader_id, l.index, st.snapshots_built),
            None => format!("--{}", st.snapshots_built),
        };
        let meta = SnapshotMeta {
            last_log_id: st.last_applied,
            last_membership: st.membership.clone(),
            snapshot_id,
        };
        st.snapshot = Some(StoredSnapshot {
            meta: meta.clone(),
            data: data.clone(),
        });
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>), StorageError<NodeId>>
    {
        let st = self.lock();
        Ok((st.last_applied, st.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut st = self.lock();
        let mut out = Vec::new();
        for entry in entries {
            st.last_applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => out.push(Response::default()),
                EntryPayload::Normal(Request::Set { key, value }) => {
                    let previous = vec![st.data.insert(key, value)];
                    out.push(Response {
                        previous,
                        applied: Vec::new(),
                    });
                }
                EntryPayload::Normal(Request::Batch(pairs)) => {
                    let previous = pairs
                        .into_iter()
                        .map(|(key, value)| st.data.insert(key, value))
                        .collect();
                    out.push(Response {
                        previous,
                        applied: Vec::new(),
                    });
                }
                EntryPayload::Normal(Request::Tracked(writes)) => {
                    let index = entry.log_id.index;
                    let (previous, applied) = (writes.into_iter().zip(0u32..))
                        .map(|(w, pos)| st.apply_tracked(w, index, pos))
                        .unzip();
                    out.push(Response { previous, applied });
                }
                EntryPayload::Membership(m) => {
                    st.membership = StoredMembership::new(Some(entry.log_id), m);
                    out.push(Response::default());
                }
            }
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let bytes = snapshot.into_inner();
        // A snapshot that does not decode, or has bytes after the map, is refused as the
        // snapshot's error (not the state machine's), and the state machine is left unchanged.
        let snap_err = |e: &str| -> StorageError<NodeId> {
            StorageIOError::read_snapshot(Some(meta.signature()), AnyError::error(e)).into()
        };
        let snap: SnapshotData = match postcard::take_from_bytes(&bytes) {
            Ok((snap, [])) => snap,
            Ok(_) => return Err(snap_err("snapshot has bytes after its data")),
            Err(e) => return Err(snap_err(&format!("snapshot does not decode: {e}"))),
        };
        let mut st = self.lock();
        st.data = snap.data;
        st.by_age = (snap.sessions.iter()).map(|(&c, s)| (s.at, c)).collect();
        st.sessions = snap.sessions;
        st.last_applied = meta.last_log_id;
        st.membership = meta.last_membership.clone();
        st.snapshot = Some(StoredSnapshot {
            meta: meta.clone(),
            data: bytes,
        });
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        Ok(self.lock().snapshot.clone().map(|s| Snapshot {
            meta: s.meta,
            snapshot: Box::new(Cursor::new(s.data)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> SnapshotMeta<NodeId, BasicNode> {
        SnapshotMeta {
            last_log_id: Some(LogId::new(openraft::CommittedLeaderId::new(1, 0), 9)),
            last_membership: StoredMembership::default(),
            snapshot_id: "s".into(),
        }
    }

    fn tracked(client: u64, serial: u64, key: &str, value: &str) -> Tracked {
        Tracked {
            client,
            serial,
            key: key.into(),
            value: value.into(),
        }
    }

    /// Applies `writes` as the entry at `index`.
    async fn apply(sm: &mut StateMachine, index: u64, writes: Vec<Tracked>) -> Response {
        let entry = Entry {
            log_id: LogId::new(openraft::CommittedLeaderId::new(1, 0), index),
            payload: EntryPayload::Normal(Request::Tracked(writes)),
        };
        sm.apply([entry]).await.unwrap().remove(0)
    }

    #[tokio::test]
    async fn a_retried_write_is_applied_once_and_answered_as_the_first_time() {
        let mut sm = StateMachine::default();
        let first = apply(&mut sm, 5, vec![tracked(1, 1, "k", "a")]).await;
        assert_eq!(first.applied, [Applied::Now]);
        assert_eq!(first.previous, [None]);
        // Another client's write comes in between; then client 1's retry of its write (its
        // reply was lost) is committed again, in a batch with client 3's first write.
        apply(&mut sm, 6, vec![tracked(2, 1, "k", "b")]).await;
        let retry = apply(
            &mut sm,
            7,
            vec![tracked(1, 1, "k", "a"), tracked(3, 1, "j", "c")],
        )
        .await;
        assert_eq!(retry.applied, [Applied::Before(5), Applied::Now]);
        assert_eq!(retry.previous, [None, None]);
        assert_eq!(
            sm.get("k").as_deref(),
            Some("b"),
            "the retry undid a later write"
        );
        assert_eq!(sm.get("j").as_deref(), Some("c"));
        // Client 1's next write is applied; its old write, arriving late, is not.
        let next = apply(&mut sm, 8, vec![tracked(1, 2, "k", "d")]).await;
        assert_eq!(
            (next.applied, next.previous),
            (vec![Applied::Now], vec![Some("b".into())])
        );
        let late = apply(&mut sm, 9, vec![tracked(1, 1, "k", "a")]).await;
        assert_eq!(late.applied, [Applied::Superseded]);
        assert_eq!(sm.get("k").as_deref(), Some("d"));
        // The same write twice in one entry: applied once.
        let twice = apply(
            &mut sm,
            10,
            vec![tracked(4, 1, "m", "x"), tracked(4, 1, "m", "x")],
        )
        .await;
        assert_eq!(twice.applied, [Applied::Now, Applied::Before(10)]);
    }

    #[tokio::test]
    async fn a_snapshot_carries_the_clients_last_writes() {
        let mut sm = StateMachine::default();
        apply(&mut sm, 3, vec![tracked(1, 7, "k", "a")]).await;
        let snap = sm.build_snapshot().await.unwrap();
        let mut other = StateMachine::default();
        other
            .install_snapshot(&snap.meta, snap.snapshot)
            .await
            .unwrap();
        let retry = apply(&mut other, 4, vec![tracked(1, 7, "k", "a")]).await;
        assert_eq!(retry.applied, [Applied::Before(3)]);
        apply(&mut other, 5, vec![tracked(2, 1, "k", "b")]).await;
        assert_eq!(
            apply(&mut other, 6, vec![tracked(1, 6, "k", "z")])
                .await
                .applied,
            [Applied::Superseded]
        );
        assert_eq!(other.get("k").as_deref(), Some("b"));
    }

    #[tokio::test]
    async fn the_clients_that_wrote_least_recently_are_forgotten_first() {
        let mut sm = StateMachine::default();
        let n = MAX_SESSIONS as u64;
        // Client 0 writes first, then every other client; client 0 writes again before
        // client 1's write would be forgotten, so client 1 is the one that goes.
        apply(&mut sm, 1, vec![tracked(0, 1, "k", "0")]).await;
        apply(
            &mut sm,
            2,
            (1..n).map(|c| tracked(c, 1, "k", "x")).collect(),
        )
        .await;
        apply(&mut sm, 3, vec![tracked(0, 2, "k", "0")]).await;
        apply(&mut sm, 4, vec![tracked(n, 1, "k", "n")]).await;
        assert_eq!(sm.lock().sessions.len(), MAX_SESSIONS);
        let again = apply(
            &mut sm,
            5,
            vec![tracked(1, 1, "k", "x"), tracked(0, 2, "k", "0")],
        )
        .await;
        assert_eq!(again.applied, [Applied::Now, Applied::Before(3)]);
        assert_eq!(sm.lock().sessions.len(), MAX_SESSIONS);
    }

    #[tokio::test]
    async fn a_bad_snapshot_is_a_snapshot_error_and_changes_nothing() {
        let mut sm = StateMachine::default();
        let good = postcard::to_allocvec(&SnapshotData {
            data: BTreeMap::from([("k".to_string(), "v".to_string())]),
            sessions: BTreeMap::new(),
        })
        .unwrap();
        let mut trailing = good.clone();
        trailing.push(0);
        for bytes in [vec![0xFF, 0xFF, 0xFF], trailing] {
            let e = sm
                .install_snapshot(&meta(), Box::new(Cursor::new(bytes)))
                .await
                .unwrap_err();
            let text = e.to_string();
            assert!(text.contains("Snapshot("), "not a snapshot error: {text}");
            assert_eq!(sm.last_applied(), None);
            assert!(sm.is_empty());
        }
        sm.install_snapshot(&meta(), Box::new(Cursor::new(good)))
            .await
            .unwrap();
        assert_eq!(sm.get("k").as_deref(), Some("v"));
    }
}
