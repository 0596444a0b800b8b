//! `Init` on bad input: refused with a reason, and nothing changes, so a corrected `Init` still
//! works. Every process started is killed by its pid when the cluster guard drops.

use std::collections::BTreeMap;

use walden_raft_demo::client;
use walden_raft_demo::cluster::Cluster;
use walden_raft_demo::node::StoreKind;
use walden_raft_demo::proto::{Call, Reply};

/// A runtime and a one-node cluster (not initialized) under `dir`.
fn one_node(dir: &std::path::Path) -> (tokio::runtime::Runtime, Cluster) {
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_raft-demo"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    (rt, Cluster::start(exe, dir, 1, StoreKind::Walden).unwrap())
}

/// Initializes the node at `addr` as the cluster's only member (`1=addr`), which must succeed.
async fn init_alone(addr: &str, when: &str) {
    let members = BTreeMap::from([(1, addr.to_string())]);
    match client::call(addr, &Call::Init(members)).await {
        Ok(Reply::Done) => {}
        other => panic!("init {when}: {other:?}"),
    }
}

/// `--members 1=ADDR,2=not-an-address,3=` was taken: the cluster was initialized for good with
/// two members no one can reach, and never elected a leader.
#[test]
fn a_member_address_that_does_not_parse_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (rt, cluster) = one_node(dir.path());
    let addr = cluster.addr(1).unwrap().to_string();
    rt.block_on(async {
        for bad in ["not-an-address", "", "127.0.0.1", "127.0.0.1:0"] {
            let members = BTreeMap::from([(1, addr.clone()), (2, bad.to_string())]);
            match client::call(&addr, &Call::Init(members)).await {
                Ok(Reply::Refused(why)) => assert!(why.contains("member 2"), "{why}"),
                other => panic!("init with member 2 at {bad:?}: {other:?}"),
            }
        }
        init_alone(&addr, "after the refusals").await;
    });
}

/// `init --members 1=localhost:PORT` was refused ("not an address") though `put`, `get`,
/// `status` and `node --listen` all take a host name. It must initialize, and a write through
/// `localhost` must be acknowledged.
#[test]
fn a_member_named_by_host_name_is_taken() {
    let dir = tempfile::tempdir().unwrap();
    let (rt, cluster) = one_node(dir.path());
    let port = cluster
        .addr(1)
        .unwrap()
        .rsplit_once(':')
        .unwrap()
        .1
        .to_string();
    let named = format!("localhost:{port}");
    let deadline = std::time::Instant::now() + core::time::Duration::from_secs(60);
    rt.block_on(async {
        init_alone(&named, "by host name").await;
        let mut c = client::Client::new(vec![named.clone()]);
        c.write("k", "v", deadline).await.unwrap();
        assert_eq!(
            client::read(&named, "k").await.unwrap().as_deref(),
            Some("v")
        );
    });
}

/// `Init` with no members (only a raw call can send it): refused or failed, never a node that
/// stops answering.
#[test]
fn an_init_with_no_members_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (rt, cluster) = one_node(dir.path());
    let addr = cluster.addr(1).unwrap().to_string();
    rt.block_on(async {
        match client::call(&addr, &Call::Init(BTreeMap::new())).await {
            Ok(Reply::Refused(_) | Reply::Failed(_)) => {}
            other => panic!("init with no members: {other:?}"),
        }
        init_alone(&addr, "after the empty one").await;
    });
}

/// `init` sent to a node that the members list at another address (or not at all) was taken:
/// the cluster was initialized for good with that node unreachable by its peers, and the
/// node itself refused to restart (it is listed elsewhere). Refused, and nothing changes.
#[test]
fn an_init_that_lists_the_receiver_elsewhere_or_not_at_all_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (rt, cluster) = one_node(dir.path());
    let addr = cluster.addr(1).unwrap().to_string();
    let (host, port) = addr.rsplit_once(':').unwrap();
    let port: u16 = port.parse().unwrap();
    let elsewhere = format!("{host}:{}", if port == 65535 { 1 } else { port + 1 });
    rt.block_on(async {
        let members = BTreeMap::from([(1, elsewhere.clone())]);
        match client::call(&addr, &Call::Init(members)).await {
            Ok(Reply::Refused(why)) => {
                assert!(
                    why.contains("this node") && why.contains(&elsewhere),
                    "{why}"
                )
            }
            other => panic!("init listing node 1 at {elsewhere}: {other:?}"),
        }
        let members = BTreeMap::from([(2, addr.clone())]);
        match client::call(&addr, &Call::Init(members)).await {
            Ok(Reply::Refused(why)) => assert!(why.contains("do not list"), "{why}"),
            other => panic!("init without node 1: {other:?}"),
        }
        init_alone(&addr, "after the refusals").await;
    });
}
