//! Large writes on a 3-node cluster: a write too large for one raft entry is refused without
//! harming any node, and a follower that is tens of MiB behind catches up though its backlog
//! does not fit in one frame. Every wait polls with a deadline; every process started is
//! killed by its pid when the cluster guard drops.

use core::time::Duration;
use std::time::Instant;

use walden_raft_demo::client::{self, Client};
use walden_raft_demo::cluster::Cluster;
use walden_raft_demo::node::StoreKind;
use walden_raft_demo::proto::{Call, MAX_FRAME, MAX_WRITE, Reply};

fn started(dir: &std::path::Path, budget: Instant) -> (Cluster, tokio::runtime::Runtime, u64) {
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_raft-demo"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let cluster = Cluster::start(exe, dir, 3, StoreKind::Walden).unwrap();
    let leader = rt.block_on(async {
        let first = cluster.addr(1).unwrap().to_string();
        match client::call(&first, &Call::Init(cluster.members())).await {
            Ok(Reply::Done) => {}
            other => panic!("init: {other:?}"),
        }
        client::wait_for_leader(&cluster.addrs(), budget)
            .await
            .unwrap()
            .0
    });
    (cluster, rt, leader)
}

/// 20 MiB is above Walden's default record limit (16 MiB): taken into the leader's log, it
/// failed the append, and raft stopped on that node (`Shutdown`), then on the next leader the
/// client retried it on. It must be refused at once, and every node must go on.
#[test]
fn a_write_too_large_for_one_entry_is_refused_and_every_node_goes_on() {
    let budget = Instant::now() + Duration::from_secs(90);
    let dir = tempfile::tempdir().unwrap();
    let (cluster, rt, _) = started(dir.path(), budget);
    let addrs = cluster.addrs();
    rt.block_on(async {
        let mut c = Client::new(addrs.clone());
        let big = "v".repeat(20 << 20);
        let deadline = Instant::now() + Duration::from_secs(30);
        let err = c.write("big", &big, deadline).await.unwrap_err();
        assert!(err.contains("refused"), "{err}");
        let at_limit = "v".repeat(MAX_WRITE - 3);
        c.write("max", &at_limit, budget).await.unwrap();
        let index = c.write("small", "1", budget).await.unwrap();
        for addr in &addrs {
            let s = client::wait_applied(addr, index, budget).await.unwrap();
            assert_ne!(s.state, "Shutdown", "{addr}");
            assert_eq!(client::read(addr, "big").await.unwrap(), None);
            assert_eq!(
                client::read(addr, "small").await.unwrap().as_deref(),
                Some("1")
            );
        }
    });
}

/// A follower down while more than `MAX_FRAME` of entries are committed: the leader's first
/// append to it after its restart does not fit in a frame. It used to be refused by the
/// network every time (the follower never caught up); openraft must be told to send fewer.
#[test]
fn a_follower_far_behind_catches_up_in_frames_that_fit() {
    let budget = Instant::now() + Duration::from_secs(100);
    let dir = tempfile::tempdir().unwrap();
    let (mut cluster, rt, leader) = started(dir.path(), budget);
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    let leader_addr = cluster.addr(leader).unwrap().to_string();
    cluster.kill(follower).unwrap();
    let value = "v".repeat(MAX_WRITE - 16);
    let writes = MAX_FRAME / value.len() + 8;
    let last = rt.block_on(async {
        let mut c = Client::new(vec![leader_addr.clone()]);
        let mut last = 0;
        for i in 0..writes {
            last = c.write(&format!("k{i:03}"), &value, budget).await.unwrap();
        }
        last
    });
    cluster.restart(follower).unwrap();
    rt.block_on(async {
        let addr = cluster.addr(follower).unwrap();
        client::wait_applied(addr, last, budget).await.unwrap();
        let got = client::read(addr, &format!("k{:03}", writes - 1)).await;
        assert_eq!(got.unwrap().map(|v| v.len()), Some(value.len()));
    });
}
