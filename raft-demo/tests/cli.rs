//! The `raft-demo` program on bad input: each case must end with a clear message and a failure
//! status, never a panic or a node that runs anyway. Every wait polls with a deadline, and
//! every process started here is killed by its pid when its guard drops.

use core::time::Duration;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Instant;

const EXE: &str = env!("CARGO_BIN_EXE_raft-demo");

/// How long a node may take to listen or to give up.
const DEADLINE: Duration = Duration::from_secs(30);

/// A node process, killed by its pid on drop.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What a started node did first.
enum Started {
    /// It printed `LISTENING`: it runs.
    Listening(Running),
    /// It exited, with this status and stderr.
    Exited(Option<i32>, String),
}

/// Starts `raft-demo node --id ID --listen 127.0.0.1:0 --dir DIR` and waits (bounded) until it
/// either listens or exits.
fn start_node(id: &str, dir: &Path) -> Started {
    let mut child = Command::new(EXE)
        .args(["node", "--id", id, "--listen", "127.0.0.1:0", "--dir"])
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (stdout, mut stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let child = Running(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.starts_with("LISTENING ") {
                let _ = tx.send(());
            }
        }
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut child = child;
    let until = Instant::now() + DEADLINE;
    loop {
        if rx.try_recv().is_ok() {
            return Started::Listening(child);
        }
        if let Some(status) = child.0.try_wait().unwrap() {
            return Started::Exited(status.code(), err.join().unwrap());
        }
        assert!(
            Instant::now() < until,
            "node {id} neither listened nor exited"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Node 1's directory started as node 2: its vote for node 1 would make node 2 believe it
/// leads (two leaders in one term). The node must refuse to start, naming both ids.
#[test]
fn a_directory_holding_another_nodes_log_is_refused() {
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("n1");
    match start_node("1", &dir) {
        Started::Listening(node) => drop(node),
        Started::Exited(code, err) => panic!("node 1 exited ({code:?}): {err}"),
    }
    match start_node("2", &dir) {
        Started::Listening(_) => panic!("node 2 runs on node 1's log"),
        Started::Exited(code, err) => {
            assert_eq!(code, Some(1), "{err}");
            assert!(err.contains("raft log of node 1, not node 2"), "{err}");
        }
    }
    // Its own id still starts on it.
    match start_node("1", &dir) {
        Started::Listening(node) => drop(node),
        Started::Exited(code, err) => panic!("node 1 exited at restart ({code:?}): {err}"),
    }
}
