//! A raft log store in a child process is killed with SIGKILL at seeded random points while it
//! appends, saves votes, truncates and purges. After every kill the store is reopened and must
//! keep what openraft relies on:
//!
//! 1. every entry whose flush callback fired (and that no later reported truncate or purge
//!    removed) is there, with the same term and payload;
//! 2. the vote is never older than the last vote reported saved;
//! 3. no entry that a reported `truncate` removed survives (payload tags are unique);
//! 4. the purge point is never older than the last reported purge, and the live entries are
//!    consecutive.
//!
//! The child is this test binary re-run with `WALDEN_RAFT_CRASH_DIR`. It prints an event line
//! after each operation returns (after the flush callback for appends); the parent reads
//! every line the child wrote (also those after the kill, still in the pipe), so the verdict
//! depends only on what was reported, never on when the kill landed. A SIGKILL loses what the
//! process had buffered and not handed to the kernel; power loss (the kernel's cache lost too)
//! is the business of the raft store's crash explorer in `walden-tests`
//! (`tests/tests/raft_explorer.rs`), which cuts it before every file operation of the store.
//!
//! The checker is checked: the same run against a store that fires the flush callback before
//! syncing (`acknowledge_before_sync_for_testing`) must report violations.

use core::time::Duration;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;

use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, RaftLogReader, Vote};
use walden_openraft::LogStore;
use walden_openraft::kv::{Request, TypeConfig};
use walden_std::{Config, Options};

const DIR_ENV: &str = "WALDEN_RAFT_CRASH_DIR";
const ROUND_ENV: &str = "WALDEN_RAFT_CRASH_ROUND";
const SEED_ENV: &str = "WALDEN_RAFT_CRASH_SEED";
const BROKEN_ENV: &str = "WALDEN_RAFT_CRASH_BROKEN";
/// Broken mode only: after this many events, the child stops right after its next append
/// and waits to be killed, so the kill lands where the broken store has lost something.
const PAUSE_ENV: &str = "WALDEN_RAFT_CRASH_PAUSE_AFTER";

type Store = LogStore<TypeConfig>;

fn options() -> Options {
    // Small segments, so purges remove segments and appends rotate.
    Options::from(Config::default().with_segment_size(16 * 1024))
}

fn next_rand(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn log_id(term: u64, index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

fn tag_of(e: &Entry<TypeConfig>) -> String {
    match &e.payload {
        EntryPayload::Normal(Request::Set { value, .. }) => value.clone(),
        _ => String::new(),
    }
}

/// The child: a workload against the store that never ends by itself.
#[test]
fn crash_child_entry() {
    let Ok(dir) = std::env::var(DIR_ENV) else {
        return;
    };
    let round: u64 = std::env::var(ROUND_ENV).unwrap().parse().unwrap();
    let seed: u64 = std::env::var(SEED_ENV).unwrap().parse().unwrap();
    let broken = std::env::var(BROKEN_ENV).is_ok();
    let pause_after: Option<u64> = std::env::var(PAUSE_ENV).ok().map(|p| p.parse().unwrap());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async move {
        let mut s = Store::open_with(&dir, options()).expect("child open");
        if broken {
            s.acknowledge_before_sync_for_testing();
        }
        let mut term = match s.read_vote().await.unwrap() {
            Some(v) => v.leader_id().term,
            None => {
                // As openraft does, a vote of a term before any entry of it (the store refuses
                // to open a vote older than its entries).
                s.save_vote(&Vote::new(1, 1)).await.unwrap();
                println!("EV VOTE 1");
                1
            }
        };
        let st = s.get_log_state().await.unwrap();
        let mut purged = st.last_purged_log_id.map(|l| l.index);
        let mut last = st.last_log_id.map(|l| l.index);
        let mut rng = seed ^ (round + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let mut seq = 0u64;
        let mut events = 0u64;
        loop {
            let r = next_rand(&mut rng) % 100;
            if r < 70 {
                let n = 1 + next_rand(&mut rng) % 4;
                let start = last.map_or(0, |l| l + 1);
                let entries: Vec<_> = (start..start + n)
                    .map(|i| {
                        seq += 1;
                        Entry {
                            log_id: log_id(term, i),
                            payload: EntryPayload::Normal(Request::Set {
                                key: format!("k{i}"),
                                value: format!("r{round}-{seq}"),
                            }),
                        }
                    })
                    .collect();
                let tags: Vec<_> = entries.iter().map(tag_of).collect();
                s.blocking_append(entries).await.unwrap();
                if std::env::var("WALDEN_RAFT_CRASH_TRACE").is_ok() {
                    let w = s.entries_wal();
                    println!(
                        "DBG durable={} last={} segs={:?}",
                        w.durable_lsn().0,
                        w.last_lsn().0,
                        w.segments()
                            .iter()
                            .map(|s| (s.id, s.first_lsn.0, s.end))
                            .collect::<Vec<_>>()
                    );
                }
                for (i, tag) in (start..).zip(tags) {
                    println!("EV FLUSHED {term} {i} {tag}");
                    events += 1;
                }
                last = Some(start + n - 1);
                if pause_after.is_some_and(|p| events >= p) {
                    println!("EV PAUSED");
                    // Wait for the SIGKILL (stdin stays open and silent).
                    let mut line = String::new();
                    let _ = std::io::stdin().read_line(&mut line);
                    unreachable!("the parent kills the child");
                }
            } else if r < 80 {
                term += 1;
                s.save_vote(&Vote::new(term, 1)).await.unwrap();
                println!("EV VOTE {term}");
            } else if r < 90 {
                let lo = purged.map_or(0, |p| p + 1);
                let Some(hi) = last.filter(|&l| l >= lo) else {
                    continue;
                };
                let i = lo + next_rand(&mut rng) % (hi - lo + 1);
                // A kill during the truncate may or may not remove these entries.
                println!("EV TRUNCATING {i}");
                s.truncate(log_id(term, i)).await.unwrap();
                println!("EV TRUNCATED {i}");
                last = if i == lo { purged } else { Some(i - 1) };
            } else {
                let top = last.map_or(0, |l| l + 20);
                let lo = purged.map_or(0, |p| p + 1);
                if top < lo {
                    continue;
                }
                let p = lo + next_rand(&mut rng) % (top - lo + 1);
                s.purge(log_id(term, p)).await.unwrap();
                println!("EV PURGED {p}");
                purged = Some(p);
                if last.is_none_or(|l| l < p) {
                    last = Some(p);
                }
            }
        }
    });
}

/// What the reported events promise.
#[derive(Default)]
struct Model {
    /// index -> (term, tag) of entries whose flush was reported and not removed since.
    expected: BTreeMap<u64, (u64, String)>,
    /// Every (index, tag) appended so far (reported or recovered).
    history: Vec<(u64, String)>,
    /// Tags of entries a reported truncate removed.
    dead: BTreeSet<String>,
    vote: u64,
    purged: Option<u64>,
    flushed_total: u64,
    /// A truncate that started and was not reported done: it may have happened.
    truncating: Option<u64>,
}

impl Model {
    fn event(&mut self, line: &str) {
        let Some(at) = line.find("EV ") else { return };
        let f: Vec<&str> = line[at + 3..].split_whitespace().collect();
        match f.as_slice() {
            ["FLUSHED", term, index, tag] => {
                let (term, index) = (term.parse().unwrap(), index.parse().unwrap());
                self.expected.insert(index, (term, tag.to_string()));
                self.history.push((index, tag.to_string()));
                self.flushed_total += 1;
            }
            ["VOTE", term] => self.vote = term.parse().unwrap(),
            ["TRUNCATING", index] => self.truncating = Some(index.parse().unwrap()),
            ["TRUNCATED", index] => {
                let i: u64 = index.parse().unwrap();
                self.truncating = None;
                self.expected.split_off(&i);
                for (idx, tag) in &self.history {
                    if *idx >= i {
                        self.dead.insert(tag.clone());
                    }
                }
                self.history.retain(|(idx, _)| *idx < i);
            }
            ["PURGED", index] => {
                let p: u64 = index.parse().unwrap();
                self.expected = self.expected.split_off(&(p + 1));
                self.purged = Some(p);
            }
            ["PAUSED"] => {}
            _ => panic!("unparsable event line: {line}"),
        }
    }

    /// Reopens the store and checks the promises; returns the violations.
    fn check(&mut self, dir: &std::path::Path) -> Vec<String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut bad = Vec::new();
            if std::env::var("WALDEN_RAFT_CRASH_TRACE").is_ok() {
                let ls: Vec<_> = std::fs::read_dir(dir.join("entries"))
                    .unwrap()
                    .map(|e| {
                        let e = e.unwrap();
                        (e.file_name(), e.metadata().unwrap().len())
                    })
                    .collect();
                eprintln!("files before reopen: {ls:?}");
                let (w, report) = walden_std::Wal::open(dir.join("entries"), options()).unwrap();
                let recs = w.read_all_from(w.first_lsn()).unwrap();
                let tail: Vec<_> = recs[recs.len().saturating_sub(30)..]
                    .iter()
                    .map(|(l, p)| (l.0, u64::from_le_bytes(p[..8].try_into().unwrap())))
                    .collect();
                eprintln!("recovered entries log: {report:?}\n tail {tail:?}");
            }
            let mut s = match Store::open_with(dir, options()) {
                Ok(s) => s,
                Err(e) => return vec![format!("reopen failed: {e}")],
            };
            let vote = s
                .read_vote()
                .await
                .unwrap()
                .map_or(0, |v| v.leader_id().term);
            if vote < self.vote {
                bad.push(format!("vote went back: {vote} < saved {}", self.vote));
            }
            let st = s.get_log_state().await.unwrap();
            let purged = st.last_purged_log_id.map(|l| l.index);
            if purged < self.purged {
                bad.push(format!("purge went back: {purged:?} < {:?}", self.purged));
            }
            let entries = s.try_get_log_entries(0..u64::MAX).await.unwrap();
            let got: BTreeMap<u64, (u64, String)> = entries
                .iter()
                .map(|e| (e.log_id.index, (e.log_id.leader_id.term, tag_of(e))))
                .collect();
            let indexes: Vec<u64> = entries.iter().map(|e| e.log_id.index).collect();
            if indexes.windows(2).any(|w| w[1] != w[0] + 1) {
                bad.push(format!("live entries not consecutive: {indexes:?}"));
            }
            if let (Some(first), Some(p)) = (indexes.first(), purged)
                && *first != p + 1
            {
                bad.push(format!(
                    "first live entry {first} does not follow purge {p}"
                ));
            }
            if st.last_log_id.map(|l| l.index) != indexes.last().copied().or(purged) {
                bad.push(format!("log state {st:?} disagrees with the entries"));
            }
            for (i, want) in &self.expected {
                if purged.is_some_and(|p| *i <= p) {
                    continue;
                }
                if self.truncating.is_some_and(|t| *i >= t) && !got.contains_key(i) {
                    // Removed by the truncate the kill interrupted.
                    continue;
                }
                match got.get(i) {
                    Some(have) if have == want => {}
                    Some(have) => bad.push(format!("entry {i}: flushed {want:?}, found {have:?}")),
                    None => bad.push(format!("entry {i} {want:?} was flushed and is gone")),
                }
            }
            for (i, (_, tag)) in &got {
                if self.dead.contains(tag) {
                    bad.push(format!("entry {i} ({tag}) survived a durable truncate"));
                }
            }
            // What is there now is the log the next round continues from.
            self.expected = got.clone();
            self.history = got.into_iter().map(|(i, (_, t))| (i, t)).collect();
            self.purged = purged;
            self.vote = vote;
            self.truncating = None;
            bad
        })
    }
}

struct Verdict {
    kills: u32,
    flushed: u64,
    violations: Vec<String>,
}

/// One run at a time in this process: a child forked by one test holds copies of the parent's
/// descriptors until its exec, the other test's store lock among them, so a run in parallel
/// could make the other's next child find its log locked (walden-std's crate docs).
static ONE_RUN_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn run(seed: u64, rounds: u64, broken: bool) -> Verdict {
    let _one = ONE_RUN_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = tempfile::tempdir().unwrap();
    let mut rng = seed;
    let mut model = Model::default();
    let mut kills = 0;
    let mut violations = Vec::new();
    for round in 0..rounds {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args([
            "crash_child_entry",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(DIR_ENV, dir.path())
        .env(ROUND_ENV, round.to_string())
        .env(SEED_ENV, seed.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let kill_after = 1 + next_rand(&mut rng) % 300;
        if broken {
            cmd.env(BROKEN_ENV, "1")
                .env(PAUSE_ENV, kill_after.to_string());
        }
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        // Lines arrive on a thread, so a child that stops printing cannot hang the test.
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut seen = 0;
        let mut lines = Vec::new();
        while seen < kill_after {
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(line) => {
                    if line.contains("EV PAUSED") {
                        seen = kill_after;
                    } else if line.contains("EV ") && !broken {
                        seen += 1;
                    }
                    lines.push(line);
                }
                Err(_) => break,
            }
        }
        child.kill().unwrap();
        let status = child.wait().unwrap();
        // Every line the child wrote before it died is still in the pipe.
        reader.join().unwrap();
        lines.extend(rx.try_iter());
        if seen < kill_after {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            panic!(
                "seed {seed} round {round}: the child stopped after {seen} events ({status}):\n{err}"
            );
        }
        kills += 1;
        if std::env::var("WALDEN_RAFT_CRASH_TRACE").is_ok() {
            let evs: Vec<_> = lines
                .iter()
                .filter(|l| l.contains("EV ") || l.contains("DBG"))
                .collect();
            eprintln!(
                "round {round}: last events {:?}",
                &evs[evs.len().saturating_sub(80)..]
            );
        }
        for l in &lines {
            model.event(l);
        }
        for v in model.check(dir.path()) {
            violations.push(format!("seed {seed} round {round}: {v}"));
        }
    }
    Verdict {
        kills,
        flushed: model.flushed_total,
        violations,
    }
}

fn seed() -> u64 {
    match std::env::var("WALDEN_RAFT_CRASH_SEED_FIX") {
        Ok(s) => s.parse().unwrap(),
        Err(_) => walden_std::random_seed() | 1,
    }
}

#[test]
fn sigkill_keeps_raft_invariants() {
    if std::env::var(DIR_ENV).is_ok() {
        return;
    }
    let seed = seed();
    let v = run(seed, 12, false);
    eprintln!(
        "raft store crash test (seed {seed}, replay with WALDEN_RAFT_CRASH_SEED_FIX={seed}): \
         {} kills, {} flushed entries reported, {} violations",
        v.kills,
        v.flushed,
        v.violations.len()
    );
    assert!(v.violations.is_empty(), "{:#?}", v.violations);
    assert_eq!(v.kills, 12);
    assert!(v.flushed > 0);
}

/// The checker catches a store that reports entries flushed before they are durable.
#[test]
fn the_checker_catches_acknowledging_before_sync() {
    if std::env::var(DIR_ENV).is_ok() {
        return;
    }
    let seed = seed();
    let v = run(seed, 8, true);
    eprintln!(
        "broken store (ack before sync, seed {seed}): {} kills, {} violations caught",
        v.kills,
        v.violations.len()
    );
    assert!(
        !v.violations.is_empty(),
        "the checker missed a store that acknowledges before syncing (seed {seed})"
    );
}
