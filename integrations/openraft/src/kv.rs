//! A small in-memory key-value state machine, the kind openraft's own examples use: for
//! running openraft's storage suite against [`crate::LogStore`] and for the replicated demo
//! (`raft-demo/`). Its state lives in memory (snapshots too), so a restarted node rebuilds
//! it by re-applying the log: keep log purging off (`SnapshotPolicy::Never`) when you use it.

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
}

/// The answer to a [`Request`] once applied.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// For each key set, in order, the value it had before, if any.
    pub previous: Vec<Option<String>>,
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
    snapshot: Option<StoredSnapshot>,
    snapshots_built: u64,
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
        let data = postcard::to_allocvec(&st.data).map_err(build_err)?;
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
                    out.push(Response { previous });
                }
                EntryPayload::Normal(Request::Batch(pairs)) => {
                    let previous = pairs
                        .into_iter()
                        .map(|(key, value)| st.data.insert(key, value))
                        .collect();
                    out.push(Response { previous });
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
        let data: BTreeMap<String, String> = match postcard::take_from_bytes(&bytes) {
            Ok((data, [])) => data,
            Ok(_) => return Err(snap_err("snapshot has bytes after its data")),
            Err(e) => return Err(snap_err(&format!("snapshot does not decode: {e}"))),
        };
        let mut st = self.lock();
        st.data = data;
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

    #[tokio::test]
    async fn a_bad_snapshot_is_a_snapshot_error_and_changes_nothing() {
        let mut sm = StateMachine::default();
        let good =
            postcard::to_allocvec(&BTreeMap::from([("k".to_string(), "v".to_string())])).unwrap();
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
