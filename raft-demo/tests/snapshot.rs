//! Snapshot chunks from anyone who reaches a node's port (raft RPCs share it with clients, and
//! peers are not authenticated): a chunk at an absurd offset killed the node (a panic, or an
//! aborted allocation of the offset), and one chunk of garbage stopped its raft core. Both are
//! now refused with `Reply::Failed`, and the node goes on: it still initializes and takes
//! writes. Every process started is killed by its pid when the cluster guard drops.

use std::collections::BTreeMap;

use openraft::raft::InstallSnapshotRequest;
use openraft::{CommittedLeaderId, LogId, SnapshotMeta, StoredMembership, Vote};
use walden_openraft::kv::{MAX_SNAPSHOT_BYTES, TypeConfig};
use walden_raft_demo::client;
use walden_raft_demo::cluster::Cluster;
use walden_raft_demo::node::StoreKind;
use walden_raft_demo::proto::{Call, Reply};

fn chunk(offset: u64, data: &[u8], done: bool) -> Call {
    Call::Snapshot(InstallSnapshotRequest::<TypeConfig> {
        vote: Vote::new_committed(7, 9),
        meta: SnapshotMeta {
            last_log_id: Some(LogId::new(CommittedLeaderId::new(7, 9), 10)),
            last_membership: StoredMembership::default(),
            snapshot_id: "evil".into(),
        },
        offset,
        data: data.to_vec(),
        done,
    })
}

/// The node's reply to `call`, which must be `Failed`.
async fn failed(addr: &str, call: &Call) -> String {
    match client::call(addr, call).await {
        Ok(Reply::Failed(why)) => why,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_bad_snapshot_chunk_is_refused_and_the_node_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_raft-demo"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let cluster = Cluster::start(exe, dir.path(), 1, StoreKind::Walden).unwrap();
    let addr = cluster.addr(1).unwrap().to_string();
    let deadline = std::time::Instant::now() + core::time::Duration::from_secs(60);
    rt.block_on(async {
        // Refused by the node before openraft sees them.
        for offset in [u64::MAX - 1, 1 << 40, MAX_SNAPSHOT_BYTES] {
            let why = failed(&addr, &chunk(offset, &[0], false)).await;
            assert!(why.contains("snapshot chunk at offset"), "{why}");
            client::status(&addr).await.unwrap();
        }
        // Garbage as a whole snapshot: refused by the state machine's snapshot buffer when
        // openraft shuts it down, before anything is installed.
        let why = failed(&addr, &chunk(0, &[0xFF, 0xFF, 0xFF], true)).await;
        assert!(why.contains("format version"), "{why}");
        client::status(&addr).await.unwrap();
        // The node still works.
        let members = BTreeMap::from([(1, addr.clone())]);
        match client::call(&addr, &Call::Init(members)).await {
            Ok(Reply::Done) => {}
            other => panic!("init: {other:?}"),
        }
        let mut c = client::Client::new(vec![addr.clone()]);
        c.write("k", "v", deadline).await.unwrap();
        assert_eq!(
            client::read(&addr, "k").await.unwrap().as_deref(),
            Some("v")
        );
    });
}
