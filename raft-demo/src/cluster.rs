//! Node processes on this machine, for the benchmark and the automated test. Every process
//! started here is killed by its pid when the [`Cluster`] is dropped, also when a test fails.

use core::time::Duration;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

use walden_openraft::kv::NodeId;

use crate::node::StoreKind;

/// How long a node may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// One node process.
pub struct NodeProc {
    /// Its address (fixed at first start: a restart listens on the same one).
    pub addr: String,
    /// Its directory.
    pub dir: PathBuf,
    child: Option<Child>,
}

/// A set of node processes running the `raft-demo` binary.
pub struct Cluster {
    exe: PathBuf,
    store: StoreKind,
    nodes: BTreeMap<NodeId, NodeProc>,
}

impl Cluster {
    /// Starts nodes `1..=n` of binary `exe`, each on a free port of 127.0.0.1 and in
    /// `<base>/node-<id>`. Not initialized yet (see [`Cluster::members`] and `Call::Init`).
    pub fn start(exe: &Path, base: &Path, n: u64, store: StoreKind) -> Result<Self, String> {
        let mut c = Self {
            exe: exe.to_path_buf(),
            store,
            nodes: BTreeMap::new(),
        };
        for id in 1..=n {
            let dir = base.join(format!("node-{id}"));
            let (child, addr) = spawn(&c.exe, id, "127.0.0.1:0", &dir, store)?;
            c.nodes.insert(
                id,
                NodeProc {
                    addr,
                    dir,
                    child: Some(child),
                },
            );
        }
        Ok(c)
    }

    /// Members for `Call::Init`: id → address.
    pub fn members(&self) -> BTreeMap<NodeId, String> {
        self.nodes
            .iter()
            .map(|(id, n)| (*id, n.addr.clone()))
            .collect()
    }

    /// Every node's address, by id.
    pub fn addrs(&self) -> Vec<String> {
        self.nodes.values().map(|n| n.addr.clone()).collect()
    }

    /// The address of node `id`.
    pub fn addr(&self, id: NodeId) -> Option<&str> {
        self.nodes.get(&id).map(|n| n.addr.as_str())
    }

    /// The pid of node `id`, if it runs.
    pub fn pid(&self, id: NodeId) -> Option<u32> {
        self.nodes.get(&id)?.child.as_ref().map(Child::id)
    }

    /// Kills node `id` with SIGKILL (by its pid) and reaps it.
    pub fn kill(&mut self, id: NodeId) -> Result<(), String> {
        let node = self.nodes.get_mut(&id).ok_or("no such node")?;
        if let Some(mut child) = node.child.take() {
            child.kill().map_err(|e| format!("kill node {id}: {e}"))?;
            let _ = child.wait();
        }
        Ok(())
    }

    /// Starts node `id` again from its directory, on the same address.
    pub fn restart(&mut self, id: NodeId) -> Result<(), String> {
        let (exe, store) = (self.exe.clone(), self.store);
        let node = self.nodes.get_mut(&id).ok_or("no such node")?;
        if node.child.is_some() {
            return Err(format!("node {id} is running"));
        }
        let (child, addr) = spawn(&exe, id, &node.addr, &node.dir, store)?;
        if addr != node.addr {
            return Err(format!("node {id} came back on {addr}, not {}", node.addr));
        }
        node.child = Some(child);
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in self.nodes.values_mut() {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// Starts one node and waits (bounded) for its `LISTENING <addr>` line. Its output keeps being
/// drained by a thread, so the node never blocks on a full pipe.
fn spawn(
    exe: &Path,
    id: NodeId,
    listen: &str,
    dir: &Path,
    store: StoreKind,
) -> Result<(Child, String), String> {
    let mut child = Command::new(exe)
        .args([
            "node",
            "--id",
            &id.to_string(),
            "--listen",
            listen,
            "--store",
        ])
        .arg(store.name())
        .arg("--dir")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
    let Some(stdout) = child.stdout.take() else {
        let _ = child.kill();
        return Err("no stdout".into());
    };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(addr) = line.strip_prefix("LISTENING ") {
                let addr = addr.split_whitespace().next().unwrap_or("").to_string();
                if let Some(tx) = tx.take() {
                    let _ = tx.send(addr);
                }
            }
        }
    });
    match rx.recv_timeout(START_TIMEOUT) {
        Ok(addr) => Ok((child, addr)),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(format!(
                "node {id} did not start listening within {START_TIMEOUT:?}"
            ))
        }
    }
}
