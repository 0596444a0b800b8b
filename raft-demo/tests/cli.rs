//! The `raft-demo` program on bad input: each case must end with a clear message and a failure
//! status, never a panic or a node that runs anyway. Every wait has a deadline, and
//! every process started here is killed by its pid when its guard drops.

use core::time::Duration;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;

const EXE: &str = env!("CARGO_BIN_EXE_raft-demo");

/// How long a node may take to listen or to give up.
const DEADLINE: Duration = Duration::from_secs(30);

/// A node process, killed by its pid on drop, and the address it listens on.
struct Running(Child, String);

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
    start_node_with(id, dir, &[])
}

/// [`start_node`] with more arguments after the usual ones.
fn start_node_with(id: &str, dir: &Path, more: &[&str]) -> Started {
    let mut cmd = Command::new(EXE);
    cmd.args(["node", "--id", id, "--listen", "127.0.0.1:0", "--dir"])
        .arg(dir)
        .args(more);
    start(cmd, id)
}

/// Starts `cmd` (a node) and waits (bounded) until it either listens or exits.
fn start(mut cmd: Command, id: &str) -> Started {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (stdout, mut stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let mut child = Running(child, String::new());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.strip_prefix("LISTENING ") {
                let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_string());
            }
        }
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    // The reader sends on `LISTENING`, and drops its sender when stdout ends: at the latest
    // when the process exits.
    match rx.recv_timeout(DEADLINE) {
        Ok(addr) => {
            child.1 = addr;
            Started::Listening(child)
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            let status = child.0.wait().unwrap();
            Started::Exited(status.code(), err.join().unwrap())
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("node {id} neither listened nor exited"),
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

/// Runs `raft-demo ARGS` to its end (a usage error ends it at once).
fn run<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    Command::new(EXE)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Fails with `code` and a message holding `says`, without a panic.
fn refused(out: &Output, code: i32, says: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{err}");
    assert!(err.contains(says), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// An argument that is not UTF-8 panicked in `std::env::args` (status 101).
#[cfg(unix)]
#[test]
fn an_argument_that_is_not_utf8_is_a_usage_error() {
    use std::os::unix::ffi::OsStrExt;
    let bad = std::ffi::OsStr::from_bytes(b"k\xff");
    let args = [
        "get".as_ref(),
        "--addr".as_ref(),
        "127.0.0.1:1".as_ref(),
        bad,
    ];
    refused(&run(&args), 2, "is not UTF-8");
}

/// A negative, zero, NaN or infinite `--seconds` panicked in `Duration::from_secs_f64` after
/// both clusters had started (or measured nothing); `--clients 0` measured nothing. All are
/// refused before any node starts.
#[test]
fn a_bench_that_cannot_measure_is_refused() {
    for seconds in ["-1", "0", "NaN", "inf", "1e30"] {
        let out = run(&[
            "bench",
            "--store",
            "memory",
            "--clients",
            "1",
            "--seconds",
            seconds,
        ]);
        refused(&out, 1, "--seconds");
    }
    let out = run(&[
        "bench",
        "--store",
        "memory",
        "--clients",
        "1,0",
        "--seconds",
        "0.1",
    ]);
    refused(&out, 1, "--clients: 0 is not in");
}

/// `--members 1=A,1=B` kept `1=B` and went on: a typo in a cluster's membership, silently.
#[test]
fn a_member_given_twice_is_refused() {
    let out = run(&[
        "init",
        "--addr",
        "127.0.0.1:1",
        "--members",
        "1=127.0.0.1:2,1=127.0.0.1:3",
    ]);
    refused(&out, 1, "node 1 is given twice");
}

/// `--stroe memory` (a typo) was ignored, and the node ran on the default store; `--id 1 --id
/// 2` ran as node 2; a stray argument was ignored. A node must refuse each before it starts.
#[test]
fn an_option_the_command_does_not_take_is_refused() {
    let base = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &str); 5] = [
        (&["--stroe", "memory"], "node takes no option --stroe"),
        (&["--id", "2"], "--id is given twice"),
        (&["stray"], "usage:"),
        (&["--max-connections", "0"], "--max-connections: 0 is not"),
        (
            &["--max-connections", "many"],
            "--max-connections: many is not",
        ),
    ];
    for (more, says) in cases {
        match start_node_with("1", &base.path().join("n"), more) {
            Started::Listening(_) => panic!("a node runs with {more:?}"),
            Started::Exited(code, err) => {
                assert_eq!(code, Some(1), "{more:?}: {err}");
                assert!(err.contains(says), "{more:?}: {err}");
            }
        }
    }
}

/// The node `start_node_with` started, or a panic with why it exited.
fn listening(started: Started) -> Running {
    match started {
        Started::Listening(node) => node,
        Started::Exited(code, err) => panic!("the node exited ({code:?}): {err}"),
    }
}

/// Reads from `sock` until the node closes it (bounded by [`DEADLINE`]): true if it did.
fn closed_by_the_node(sock: &mut std::net::TcpStream) -> bool {
    sock.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut buf = [0u8; 256];
    loop {
        match sock.read(&mut buf) {
            Ok(0) => return true,
            // A reply (`Failed`) before the close is fine; a reset is a close.
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

/// A connection that sent nothing, or half a frame's length, was held by its task forever:
/// enough of them use up the node's descriptors. The node must close each after its idle
/// timeout, and go on answering.
#[test]
fn a_connection_idle_or_stalled_mid_frame_is_closed() {
    use std::io::Write;
    let base = tempfile::tempdir().unwrap();
    let node = listening(start_node_with(
        "1",
        &base.path().join("n"),
        &["--idle-timeout", "0.5"],
    ));
    let mut silent = std::net::TcpStream::connect(&node.1).unwrap();
    let mut half = std::net::TcpStream::connect(&node.1).unwrap();
    half.write_all(&[8, 0]).unwrap();
    let mut body_missing = std::net::TcpStream::connect(&node.1).unwrap();
    body_missing.write_all(&[8, 0, 0, 0, 1]).unwrap();
    assert!(
        closed_by_the_node(&mut silent),
        "a silent connection stays open"
    );
    assert!(closed_by_the_node(&mut half), "half a length stays open");
    assert!(
        closed_by_the_node(&mut body_missing),
        "half a body stays open"
    );
    let out = run(&["status", "--addr", &node.1]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A node accepted every connection and kept each until its idle timeout: a flood of them
/// used up its descriptors. Past `--max-connections` a new connection must be closed at once,
/// and once one closes the node must serve again.
#[test]
fn connections_past_the_limit_are_closed_at_once() {
    let base = tempfile::tempdir().unwrap();
    let node = listening(start_node_with(
        "1",
        &base.path().join("n"),
        &["--max-connections", "2", "--idle-timeout", "3600"],
    ));
    let held = std::net::TcpStream::connect(&node.1).unwrap();
    let mut second = std::net::TcpStream::connect(&node.1).unwrap();
    // Both are served: a status call on the second is answered (the first stays silent).
    {
        use std::io::Write;
        let call = postcard::to_allocvec(&walden_raft_demo::proto::Call::Status).unwrap();
        let mut frame = (call.len() as u32).to_le_bytes().to_vec();
        frame.extend_from_slice(&call);
        second.write_all(&frame).unwrap();
        second.set_read_timeout(Some(DEADLINE)).unwrap();
        let mut len = [0u8; 4];
        second.read_exact(&mut len).unwrap();
    }
    let mut third = std::net::TcpStream::connect(&node.1).unwrap();
    assert!(
        closed_by_the_node(&mut third),
        "a third connection stays open"
    );
    let out = run(&["status", "--addr", &node.1]);
    assert!(
        !out.status.success(),
        "a status call was served past the limit"
    );
    // One of the two closes: the node serves new connections again.
    drop(held);
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        let out = run(&["status", "--addr", &node.1]);
        if out.status.success() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not served after a connection closed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::yield_now();
    }
}

/// A node restarted from its directory on another `--listen` address than the one its
/// cluster's membership lists ran unreachable: its peers dial the old address. It must refuse
/// to start, naming both addresses; on its own address it starts.
#[test]
fn a_restart_on_another_address_than_the_membership_lists_is_refused() {
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("n");
    let node = listening(start_node("1", &dir));
    let addr = node.1.clone();
    let out = run(&["init", "--addr", &addr, "--members", &format!("1={addr}")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The membership entry is in the log once the node has applied it.
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        let out = run(&["status", "--addr", &addr]);
        if String::from_utf8_lossy(&out.stdout).contains("Leader") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "node 1 never led");
        std::thread::yield_now();
    }
    drop(node);
    match start_node("1", &dir) {
        Started::Listening(n) => panic!("node 1 runs on {} though listed at {addr}", n.1),
        Started::Exited(code, err) => {
            assert_eq!(code, Some(1), "{err}");
            assert!(err.contains(&format!("lists node 1 at {addr}")), "{err}");
        }
    }
    let mut cmd = Command::new(EXE);
    cmd.args(["node", "--id", "1", "--listen", &addr, "--dir"])
        .arg(&dir);
    drop(listening(start(cmd, "1")));
}

/// A directory whose raft log has no `node-id` file was claimed by whichever id started on it
/// next: node 1's log could run as node 2. It must be refused, naming the file to write.
#[test]
fn a_raft_log_without_a_node_id_is_refused() {
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("n1");
    drop(listening(start_node("1", &dir)));
    std::fs::remove_file(dir.join("node-id")).unwrap();
    match start_node("2", &dir) {
        Started::Listening(_) => panic!("node 2 runs on node 1's log"),
        Started::Exited(code, err) => {
            assert_eq!(code, Some(1), "{err}");
            assert!(
                err.contains("holds a raft log but no node-id file"),
                "{err}"
            );
        }
    }
    std::fs::write(dir.join("node-id"), "1\n").unwrap();
    drop(listening(start_node("1", &dir)));
}
