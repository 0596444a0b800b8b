//! Snapshots sent to a node whose state machine is `kv::StateMachine`, chunk by chunk through
//! `Raft::install_snapshot` (what a peer's `InstallSnapshot` RPC does): a chunk at an absurd
//! offset, garbage, or a damaged snapshot is refused with an error to the sender, and the node
//! goes on running with its state unchanged. Before, the first panicked or aborted the process
//! (a `Cursor<Vec<u8>>` grown to the offset) and the others stopped the raft core (a
//! `StorageError` from `install_snapshot` is fatal in openraft 0.9).

use std::sync::Arc;

use openraft::error::{InstallSnapshotError, RPCError, RaftError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::storage::RaftStateMachine;
use openraft::{
    BasicNode, CommittedLeaderId, Config, Entry, EntryPayload, LogId, Raft, RaftSnapshotBuilder,
    SnapshotMeta, SnapshotPolicy, StoredMembership, Vote,
};
use walden_openraft::LogStore;
use walden_openraft::kv::{
    MAX_SNAPSHOT_BYTES, NodeId, Request, SnapshotBuffer, StateMachine, Tracked, TypeConfig,
};

/// No peer is ever reachable: the node under test only receives.
struct Net;
struct Down;

fn down<E: core::error::Error>() -> RPCError<NodeId, BasicNode, E> {
    RPCError::Unreachable(Unreachable::new(&std::io::Error::other("no network")))
}

impl RaftNetwork<TypeConfig> for Down {
    async fn append_entries(
        &mut self,
        _: AppendEntriesRequest<TypeConfig>,
        _: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        Err(down())
    }
    async fn install_snapshot(
        &mut self,
        _: InstallSnapshotRequest<TypeConfig>,
        _: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        Err(down())
    }
    async fn vote(
        &mut self,
        _: VoteRequest<NodeId>,
        _: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        Err(down())
    }
}

impl RaftNetworkFactory<TypeConfig> for Net {
    type Network = Down;
    async fn new_client(&mut self, _: NodeId, _: &BasicNode) -> Down {
        Down
    }
}

/// Node 2 on a new store, and its state machine.
async fn node(dir: &std::path::Path) -> (Raft<TypeConfig>, StateMachine) {
    let store = LogStore::<TypeConfig>::open(dir).unwrap();
    let config = Config {
        snapshot_policy: SnapshotPolicy::Never,
        ..Default::default()
    };
    let config = Arc::new(config.validate().unwrap());
    let sm = StateMachine::default();
    let raft = Raft::new(2, config, Net, store, sm.clone()).await.unwrap();
    (raft, sm)
}

fn meta(id: &str) -> SnapshotMeta<NodeId, BasicNode> {
    SnapshotMeta {
        last_log_id: Some(LogId::new(CommittedLeaderId::new(7, 1), 10)),
        last_membership: StoredMembership::default(),
        snapshot_id: id.into(),
    }
}

fn chunk(
    meta: &SnapshotMeta<NodeId, BasicNode>,
    offset: u64,
    data: &[u8],
    done: bool,
) -> InstallSnapshotRequest<TypeConfig> {
    InstallSnapshotRequest {
        vote: Vote::new_committed(7, 1),
        meta: meta.clone(),
        offset,
        data: data.to_vec(),
        done,
    }
}

/// The raft core still answers.
async fn alive(raft: &Raft<TypeConfig>) {
    let state = raft.with_raft_state(|_| ()).await;
    assert!(state.is_ok(), "the raft core is gone: {state:?}");
}

/// A snapshot of a state machine that applied `k := value` as the entry at index 10 of term
/// 7, and its bytes.
async fn snapshot_of(value: &str) -> (SnapshotMeta<NodeId, BasicNode>, Vec<u8>) {
    let mut sm = StateMachine::default();
    let write = Tracked {
        client: 1,
        serial: 1,
        key: "k".into(),
        value: value.into(),
    };
    let entry = Entry {
        log_id: LogId::new(CommittedLeaderId::new(7, 1), 10),
        payload: EntryPayload::Normal(Request::Tracked(vec![write])),
    };
    sm.apply([entry]).await.unwrap();
    let snap = sm.build_snapshot().await.unwrap();
    (snap.meta, snap.snapshot.into_inner())
}

/// Sends `bytes` in chunks of 7 bytes.
async fn send(
    raft: &Raft<TypeConfig>,
    meta: &SnapshotMeta<NodeId, BasicNode>,
    bytes: &[u8],
) -> Result<(), String> {
    let mut offset = 0;
    for (i, part) in bytes.chunks(7).enumerate() {
        let done = (i + 1) * 7 >= bytes.len();
        let r = raft.install_snapshot(chunk(meta, offset, part, done)).await;
        r.map_err(|e| e.to_string())?;
        offset += part.len() as u64;
    }
    Ok(())
}

/// A chunk at offset 2^64 - 2 panicked in openraft's snapshot receiver (the `Cursor<Vec<u8>>`
/// grew to the offset: a capacity overflow); at 1 TiB the allocation failed and the process
/// aborted. Each is now an error of that chunk; the node goes on, and takes a good snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_past_the_snapshot_size_cap_is_refused_and_the_node_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (raft, sm) = node(dir.path()).await;
    let m = meta("far");
    raft.install_snapshot(chunk(&m, 0, &[0], false))
        .await
        .unwrap();
    for offset in [u64::MAX - 1, 1 << 40, MAX_SNAPSHOT_BYTES] {
        let e = raft
            .install_snapshot(chunk(&m, offset, &[0], false))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("MAX_SNAPSHOT_BYTES"), "{e}");
        alive(&raft).await;
    }
    let (meta, bytes) = snapshot_of("good").await;
    send(&raft, &meta, &bytes).await.unwrap();
    assert_eq!(sm.get("k").as_deref(), Some("good"));
    assert_eq!(sm.last_applied(), meta.last_log_id);
    alive(&raft).await;
}

/// One chunk of garbage (`done`), or a snapshot with one byte changed: `install_snapshot`
/// refused them, which stopped the node. They are now refused when the last chunk arrives,
/// before the state machine; the node goes on with its state unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbage_or_damaged_snapshot_is_refused_and_the_node_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (raft, sm) = node(dir.path()).await;
    let e = raft
        .install_snapshot(chunk(&meta("garbage"), 0, &[0xFF, 0xFF, 0xFF], true))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("format version"), "{e}");
    alive(&raft).await;

    let (meta, good) = snapshot_of("good").await;
    let at = good.windows(4).position(|w| w == b"good").unwrap();
    let mut bad = good.clone();
    bad[at] = b'b'; // "good" -> "bood"
    let e = send(&raft, &meta, &bad).await.unwrap_err();
    assert!(e.contains("damaged"), "{e}");
    alive(&raft).await;
    assert!(sm.is_empty() && sm.last_applied().is_none());

    send(&raft, &meta, &good).await.unwrap();
    assert_eq!(sm.get("k").as_deref(), Some("good"));
    alive(&raft).await;
}

/// The state machine's own check, for a snapshot handed to it directly: no checksum let a
/// snapshot with one byte of a value changed install, and the replica served a value no other
/// one held.
#[tokio::test]
async fn a_damaged_snapshot_is_refused_by_the_state_machine() {
    let (meta, good) = snapshot_of("good").await;
    let at = good.windows(4).position(|w| w == b"good").unwrap();
    let mut bad = good;
    bad[at] = b'b';
    let mut sm = StateMachine::default();
    let r = sm
        .install_snapshot(&meta, Box::new(SnapshotBuffer::new(bad)))
        .await;
    assert!(r.is_err(), "installed: k = {:?}", sm.get("k"));
    assert!(sm.is_empty());
}
