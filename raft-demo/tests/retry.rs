//! A write sent again (its answer lost, or the client timed out and retried) was committed
//! and applied a second time: a retry of `k := a` after another client's `k := b` set `k`
//! back to `a`, undoing an acknowledged write. Each write must be applied once, and a retry
//! answered with the first answer. The process started is killed when the cluster guard drops.

use core::time::Duration;
use std::collections::BTreeMap;
use std::time::Instant;

use walden_raft_demo::client;
use walden_raft_demo::cluster::Cluster;
use walden_raft_demo::node::StoreKind;
use walden_raft_demo::proto::{Call, Reply};

fn write(client: u64, serial: u64, value: &str) -> Call {
    Call::Write {
        client,
        serial,
        key: "k".into(),
        value: value.into(),
    }
}

/// Sends `call` to `addr`; the reply must be `Written`: its index and previous value.
async fn written(addr: &str, call: &Call) -> (u64, Option<String>) {
    match client::call(addr, call).await {
        Ok(Reply::Written { index, previous }) => (index, previous),
        other => panic!("{call:?}: {other:?}"),
    }
}

#[test]
fn a_write_sent_again_is_applied_once_and_answered_as_the_first_time() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_raft-demo"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let cluster = Cluster::start(exe, dir.path(), 1, StoreKind::Walden).unwrap();
    let addr = cluster.addr(1).unwrap().to_string();
    rt.block_on(async {
        let members = BTreeMap::from([(1, addr.clone())]);
        match client::call(&addr, &Call::Init(members)).await {
            Ok(Reply::Done) => {}
            other => panic!("init: {other:?}"),
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        client::wait_for_leader(core::slice::from_ref(&addr), deadline)
            .await
            .unwrap();

        let first = written(&addr, &write(1, 1, "a")).await;
        assert_eq!(first.1, None);
        let other = written(&addr, &write(2, 1, "b")).await;
        assert!(other.0 > first.0);
        // Client 1 sends its write again: the first answer, and `k` keeps client 2's value.
        assert_eq!(written(&addr, &write(1, 1, "a")).await, first);
        assert_eq!(
            client::read(&addr, "k").await.unwrap().as_deref(),
            Some("b")
        );

        // Client 1's next write is applied; its first write, arriving again after it, is not.
        let next = written(&addr, &write(1, 2, "c")).await;
        assert_eq!(next.1.as_deref(), Some("b"));
        match client::call(&addr, &write(1, 1, "a")).await {
            Ok(Reply::Refused(why)) => assert!(why.contains("later write"), "{why}"),
            other => panic!("a stale retry: {other:?}"),
        }
        assert_eq!(
            client::read(&addr, "k").await.unwrap().as_deref(),
            Some("c")
        );

        // The client advances its serial by itself: two writes through it both apply.
        let mut c = client::Client::new(vec![addr.clone()]);
        let i1 = c.write("k", "d", deadline).await.unwrap();
        let i2 = c.write("k", "e", deadline).await.unwrap();
        assert!(i2 > i1);
        assert_eq!(
            client::read(&addr, "k").await.unwrap().as_deref(),
            Some("e")
        );
    });
}
