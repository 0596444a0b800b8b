//! Three node processes on free local ports; a writer writes continuously through the leader
//! and records every acknowledged write; the leader is killed with SIGKILL by its pid; writes
//! go on through the new leader; the killed node is restarted from its directory; then every
//! acknowledged write must be readable on all three nodes, and the restarted node must have
//! caught up with the leader's log.
//!
//! Bounded in time: every wait polls with a deadline (no fixed sleep decides anything), and
//! the whole test has a budget of 110 s. Every process it started is killed by pid when the
//! cluster guard drops, also on failure.

use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use walden_raft_demo::client::{self, Client};
use walden_raft_demo::cluster::Cluster;
use walden_raft_demo::node::StoreKind;
use walden_raft_demo::proto::{Call, Reply};

/// Writes acknowledged before the leader is killed, after it, and after the restart.
const BEFORE_KILL: usize = 150;
const AFTER_KILL: usize = 150;
const AFTER_RESTART: usize = 100;

#[test]
fn acknowledged_writes_survive_losing_the_leader() {
    let budget = Instant::now() + Duration::from_secs(110);
    let dir = tempfile::tempdir().unwrap();
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_raft-demo"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut cluster = Cluster::start(exe, dir.path(), 3, StoreKind::Walden).unwrap();
    let addrs = cluster.addrs();

    rt.block_on(async {
        let first = cluster.addr(1).unwrap().to_string();
        match client::call(&first, &Call::Init(cluster.members())).await {
            Ok(Reply::Done) => {}
            other => panic!("init: {other:?}"),
        }
    });
    let (leader, _) = rt
        .block_on(client::wait_for_leader(&addrs, budget))
        .unwrap();

    // The writer runs on its own thread for the whole test, through whichever node leads.
    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (acked, stop, addrs) = (Arc::clone(&acked), Arc::clone(&stop), addrs.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async move {
                let mut c = Client::new(addrs);
                let mut i = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    let (k, v) = (format!("key-{i}"), format!("value-{i}"));
                    // Unacknowledged writes (errors) are not recorded: they may or may not
                    // have been applied, and the check does not depend on them.
                    if c.write(&k, &v, budget).await.is_ok() {
                        acked.lock().unwrap().push((k, v));
                    } else if Instant::now() >= budget {
                        return;
                    }
                    i += 1;
                }
            });
        })
    };
    let wait_acked = |n: usize| {
        while acked.lock().unwrap().len() < n {
            assert!(
                Instant::now() < budget,
                "only {} writes acknowledged",
                acked.lock().unwrap().len()
            );
            assert!(!writer.is_finished(), "the writer stopped");
            std::thread::yield_now();
            std::thread::sleep(Duration::from_millis(5));
        }
    };

    wait_acked(BEFORE_KILL);
    let pid = cluster.pid(leader).unwrap();
    cluster.kill(leader).unwrap();
    let at_kill = acked.lock().unwrap().len();
    eprintln!("killed leader {leader} (pid {pid}) after {at_kill} acknowledged writes");

    wait_acked(at_kill + AFTER_KILL);
    cluster.restart(leader).unwrap();
    let at_restart = acked.lock().unwrap().len();
    eprintln!("restarted node {leader} after {at_restart} acknowledged writes");
    wait_acked(at_restart + AFTER_RESTART);
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    let acked = acked.lock().unwrap().clone();

    rt.block_on(async {
        // The leader now, and how far its log goes: every node must apply at least that far.
        let (new_leader, leader_addr) = client::wait_for_leader(&addrs, budget).await.unwrap();
        assert_ne!(new_leader, 0);
        let target = client::status(&leader_addr)
            .await
            .unwrap()
            .last_log
            .unwrap();
        for addr in &addrs {
            let s = client::wait_applied(addr, target, budget).await.unwrap();
            eprintln!("node {} applied {:?} (target {target})", s.id, s.applied);
        }
        let restarted = client::status(cluster.addr(leader).unwrap()).await.unwrap();
        assert!(
            restarted.applied.unwrap() >= target,
            "restarted node {leader} did not catch up"
        );
        for addr in &addrs {
            for (k, v) in &acked {
                let got = client::read(addr, k).await.unwrap();
                assert_eq!(got.as_deref(), Some(v.as_str()), "{k} on {addr}");
            }
        }
        eprintln!(
            "{} acknowledged writes readable on all 3 nodes; leader {leader} killed and \
             restarted, new leader {new_leader}",
            acked.len()
        );
    });
    drop(cluster);
}

/// Writes `n` keys through the leader, SIGKILLs every node, restarts them all from their
/// directories, and polls (until `settle` runs out) for every acknowledged write to read back
/// on every node. Returns how many writes were acknowledged and which reads still missed.
fn restart_everything(store: StoreKind, n: usize, settle: Duration) -> (usize, Vec<String>) {
    let budget = Instant::now() + Duration::from_secs(60);
    let dir = tempfile::tempdir().unwrap();
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_raft-demo"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut cluster = Cluster::start(exe, dir.path(), 3, store).unwrap();
    let addrs = cluster.addrs();
    let acked = rt.block_on(async {
        let first = cluster.addr(1).unwrap().to_string();
        match client::call(&first, &Call::Init(cluster.members())).await {
            Ok(Reply::Done) => {}
            other => panic!("init: {other:?}"),
        }
        client::wait_for_leader(&addrs, budget).await.unwrap();
        let mut c = Client::new(addrs.clone());
        let mut acked = Vec::new();
        for i in 0..n {
            let (k, v) = (format!("key-{i}"), format!("value-{i}"));
            c.write(&k, &v, budget).await.unwrap();
            acked.push((k, v));
        }
        acked
    });
    for id in 1..=3 {
        cluster.kill(id).unwrap();
    }
    for id in 1..=3 {
        cluster.restart(id).unwrap();
    }
    let missing = rt.block_on(async {
        let until = Instant::now() + settle;
        loop {
            let mut missing = Vec::new();
            for addr in &addrs {
                for (k, v) in &acked {
                    if client::read(addr, k).await.ok().flatten().as_deref() != Some(v.as_str()) {
                        missing.push(format!("{k} on {addr}"));
                    }
                }
            }
            if missing.is_empty() || Instant::now() >= until {
                return missing;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    drop(cluster);
    (acked.len(), missing)
}

/// Losing every process at once (a power cut of the whole cluster, as far as processes go):
/// each node recovers its Walden log, a leader is elected, and every acknowledged write reads
/// back on all three nodes.
#[test]
fn acknowledged_writes_survive_restarting_every_node() {
    let (acked, missing) = restart_everything(StoreKind::Walden, 100, Duration::from_secs(60));
    assert_eq!(acked, 100);
    assert!(missing.is_empty(), "lost after restart: {missing:?}");
}

/// The check above is checked: on the in-memory raft log (which a restart empties), it reports
/// every acknowledged write as missing. The data is gone whatever the timing; `settle` only
/// bounds how long the check keeps looking.
#[test]
fn the_restart_check_catches_a_log_that_is_not_durable() {
    let (acked, missing) = restart_everything(StoreKind::Memory, 20, Duration::from_secs(3));
    assert_eq!(missing.len(), acked * 3, "{missing:?}");
}
