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

/// A bad command line exited 2 when it had no arguments or one that is not UTF-8, but 1 for a
/// missing `--id`, an unknown option or command, a value that does not parse: every one must
/// exit 2 (usage) and print the usage, before anything starts.
#[test]
fn every_bad_command_line_exits_2_with_the_usage() {
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("n");
    let dir = dir.to_str().unwrap();
    let cases: [(&[&str], &str); 14] = [
        (&[], "usage:"),
        (&["nodes"], "unknown command nodes"),
        (
            &["node", "--listen", "127.0.0.1:0", "--dir", dir],
            "--id is required",
        ),
        (&["node", "--id", "1", "--dir", dir], "--listen is required"),
        (
            &["node", "--id", "1", "--listen", "127.0.0.1:0"],
            "--dir is required",
        ),
        (
            &["node", "--id", "x", "--listen", "127.0.0.1:0", "--dir", dir],
            "--id:",
        ),
        (
            &[
                "node",
                "--id",
                "1",
                "--listen",
                "127.0.0.1:0",
                "--dir",
                dir,
                "--store",
                "disk",
            ],
            "unknown store disk",
        ),
        (
            &[
                "node",
                "--id",
                "1",
                "--listen",
                "127.0.0.1:0",
                "--dir",
                dir,
                "--idle-timeout",
                "0",
            ],
            "--idle-timeout: 0 is not",
        ),
        (
            &["status", "--adr", "127.0.0.1:1"],
            "status takes no option --adr",
        ),
        (&["status", "--addr"], "--addr needs a value"),
        (&["get", "--addr", "127.0.0.1:1"], "get takes 1 argument"),
        (
            &["put", "--addr", "127.0.0.1:1", "k"],
            "put takes 2 arguments",
        ),
        (
            &[
                "init",
                "--addr",
                "127.0.0.1:1",
                "--members",
                "1:127.0.0.1:2",
            ],
            "bad member",
        ),
        (&["bench", "--store", "disk"], "unknown store disk"),
    ];
    for (args, says) in cases {
        let out = run(args);
        refused(&out, 2, says);
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("usage:"),
            "{args:?}: no usage"
        );
    }
    assert!(!base.path().join("n").exists(), "a node started");
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
        refused(&out, 2, "--seconds");
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
    refused(&out, 2, "--clients: 0 is not in");
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
    refused(&out, 2, "node 1 is given twice");
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
                assert_eq!(code, Some(2), "{more:?}: {err}");
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

/// `--dir` at a regular file said "cannot create ...: File exists": it must say that the path
/// is not a directory (a command that fails: status 1), and leave the file alone.
#[test]
fn a_dir_that_is_a_regular_file_is_not_a_directory() {
    let base = tempfile::tempdir().unwrap();
    let file = base.path().join("f");
    std::fs::write(&file, "data").unwrap();
    for dir in [file.clone(), file.join("n1")] {
        match start_node("1", &dir) {
            Started::Listening(_) => panic!("a node runs in {}", dir.display()),
            Started::Exited(code, err) => {
                assert_eq!(code, Some(1), "{err}");
                assert!(
                    err.contains(&format!("{} is not a directory", file.display())),
                    "{err}"
                );
            }
        }
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "data");
}

/// A directory that holds other files and no `node-id` was claimed by the node, which wrote
/// `node-id` and its raft log among them. It must be refused, naming what it holds, and left
/// as it was; an empty one, or one holding only what a first start cut short leaves (a
/// `node-id.<pid>.tmp`), is claimed.
#[test]
fn a_non_empty_directory_that_is_not_a_nodes_is_refused() {
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("mine");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("important.txt"), "keep").unwrap();
    match start_node("1", &dir) {
        Started::Listening(_) => panic!("node 1 claimed a directory holding important.txt"),
        Started::Exited(code, err) => {
            assert_eq!(code, Some(1), "{err}");
            assert!(err.contains("is not empty (important.txt)"), "{err}");
            assert!(err.contains("not a raft-demo node directory"), "{err}");
        }
    }
    let mut left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    left.sort();
    assert_eq!(left, ["important.txt"]);
    let empty = base.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    drop(listening(start_node("1", &empty)));
    let cut_short = base.path().join("cut-short");
    std::fs::create_dir(&cut_short).unwrap();
    std::fs::write(cut_short.join("node-id.99999.tmp"), "1\n").unwrap();
    drop(listening(start_node("1", &cut_short)));
}

/// Starts node 1 on `dir` and waits until it listens, then stops it.
fn start_and_stop(dir: &Path) {
    drop(listening(start_node("1", dir)));
}

/// Node 1 is refused on `dir`, with a message that names `missing` and says why.
fn refused_as_lost(dir: &Path, missing: &Path) {
    match start_node("1", dir) {
        Started::Listening(_) => panic!(
            "node 1 runs on an empty log though {} is missing",
            missing.display()
        ),
        Started::Exited(code, err) => {
            assert_eq!(code, Some(1), "{err}");
            assert!(err.contains(&missing.display().to_string()), "{err}");
            assert!(err.contains("is missing"), "{err}");
            assert!(err.contains("vote twice in one term"), "{err}");
        }
    }
}

/// A node whose `raft/` was deleted started again as the same node on an empty log: no vote,
/// no entries, so it could vote twice in one term. Once its log was created, a node must
/// refuse to start without it (all of it, or either of its two logs), naming what is missing,
/// and go on refusing; with the log restored, it starts.
#[test]
fn a_node_whose_raft_log_was_deleted_is_refused() {
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("n1");
    start_and_stop(&dir);
    let raft = dir.join("raft");
    let saved = base.path().join("raft.saved");
    copy_dir(&raft, &saved);
    std::fs::remove_dir_all(&raft).unwrap();
    refused_as_lost(&dir, &raft);
    refused_as_lost(&dir, &raft);
    assert!(!raft.exists(), "the refusal created the log");
    for log in ["meta", "entries"] {
        copy_dir(&saved, &raft);
        std::fs::remove_dir_all(raft.join(log)).unwrap();
        refused_as_lost(&dir, &raft.join(log));
        // Emptied rather than removed: the same.
        std::fs::remove_dir_all(&raft).unwrap();
        copy_dir(&saved, &raft);
        for f in std::fs::read_dir(raft.join(log)).unwrap() {
            std::fs::remove_file(f.unwrap().path()).unwrap();
        }
        refused_as_lost(&dir, &raft.join(log));
        std::fs::remove_dir_all(&raft).unwrap();
    }
    copy_dir(&saved, &raft);
    start_and_stop(&dir);
}

/// `node-id` is written before the raft log is created: a first start cut short there (or
/// while `walden-openraft` created the log) leaves `node-id` and no log, or part of one. Such a
/// directory must start (it never had a log to lose), and record the log's creation, so that
/// losing the log afterwards is refused.
#[test]
fn a_first_start_cut_short_after_node_id_starts() {
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("n1");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("node-id"), "1\n").unwrap();
    start_and_stop(&dir);
    std::fs::remove_dir_all(dir.join("raft")).unwrap();
    refused_as_lost(&dir, &dir.join("raft"));
    // Cut short inside the store's creation: `raft/` and an empty `raft/meta` only.
    let dir = base.path().join("n1b");
    std::fs::create_dir_all(dir.join("raft/meta")).unwrap();
    std::fs::write(dir.join("node-id"), "1\n").unwrap();
    start_and_stop(&dir);
    assert!(dir.join("raft-created").exists());
    std::fs::remove_dir_all(dir.join("raft/entries")).unwrap();
    refused_as_lost(&dir, &dir.join("raft/entries"));
    // A directory from before `raft-created` existed, whose meta log was lost: without the
    // marker, walden-openraft's own check (the entries log proves the meta log existed)
    // refuses it, and the node says so just as clearly.
    let dir = base.path().join("n1c");
    start_and_stop(&dir);
    std::fs::remove_file(dir.join("raft-created")).unwrap();
    std::fs::remove_dir_all(dir.join("raft/meta")).unwrap();
    refused_as_lost(&dir, &dir.join("raft/meta"));
}

/// Copies the directory tree `from` to `to` (files and directories only).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}
