//! Kill at every file operation, on the real file system.
//!
//! A child process runs [`workload`] over walden-std with [`KillFs`]: the real file system
//! ([`OsFs`]) behind a wrapper that counts walden-std's state-changing file operations and
//! sends the process `SIGKILL` right after the `n`-th, whichever thread makes it (the writer,
//! a group-commit leader, the spare or zero-fill job). The child appends each acknowledgement
//! to a journal file only after the call returned durable. The parent then reopens the log
//! with the plain real file system and [`check`]s it against the journal: every acknowledged
//! record byte for byte at its LSN, LSNs dense, nothing that was never appended, nothing
//! stale from before a completed `truncate_back`.
//!
//! A process kill is not a power loss: the kernel keeps what it was given. So this catches
//! what lives in the process — the write buffer, a sync reported before the bytes reached the
//! file, an open that cannot recover what a kill leaves — on the real kernel and file system,
//! where the simulator only models them.

use core::sync::atomic::{AtomicU64, Ordering};
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::sync::Mutex;

use walden_core::{Config, Lsn, SyncPolicy};
use walden_std::{FileSystem, Hooked, Hooks, Mutation, Op, Options, OsFs, SharedWal, Tuning, Wal};

/// Sizes for the kill test: small enough that 8 KiB segments fill the write buffer, get a
/// zero-fill thread ahead of the writer and rotate onto spares within a few records, as
/// 64 MiB segments do with the shipped sizes.
pub const KILL_TUNING: Tuning = {
    let mut t = Tuning::DEFAULT;
    t.write_buffer = 2048;
    t.sync_zero_fill = 1024;
    t.fill_chunk = 1024;
    t.fill_sync_every = 2048;
    t.fill_ahead = 4096;
    // Segments of 8 KiB: their write-back is started on the real file system as they go.
    t.write_back_every = 2048;
    t
};

/// The real file system, counting the operations that change it ([`Op::changes`]) and
/// killing the process right after the `kill_at`-th (never, if `u64::MAX`).
pub type KillFs = Hooked<OsFs, Kill>;

/// [`KillFs`]'s hooks.
#[derive(Debug)]
pub struct Kill {
    count: AtomicU64,
    kill_at: u64,
    mutation: Option<Mutation>,
}

/// The real file system that kills the process after operation `kill_at` (counted from 1);
/// `mutation` breaks walden-std on purpose (to prove the test can fail).
pub fn kill_fs(kill_at: u64, mutation: Option<Mutation>) -> KillFs {
    Hooked::new(
        OsFs,
        Kill {
            count: AtomicU64::new(0),
            kill_at,
            mutation,
        },
    )
}

impl Kill {
    /// Operations counted so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::SeqCst)
    }
}

impl Hooks for Kill {
    /// Counts one operation that ran (failed or not), and dies if it was the chosen one.
    fn after(&self, op: &Op<'_>, _: Option<&io::Error>) {
        if !op.changes() {
            return;
        }
        let n = self.count.fetch_add(1, Ordering::SeqCst) + 1;
        if n == self.kill_at {
            let _ = rustix::process::kill_process(
                rustix::process::getpid(),
                rustix::process::Signal::KILL,
            );
            // SIGKILL is not deliverable late; if it somehow failed, stop here anyway.
            std::process::abort();
        }
    }

    fn tuning<F: FileSystem>(&self, _: &F) -> Tuning {
        KILL_TUNING
    }

    fn mutation<F: FileSystem>(&self, _: &F) -> Option<Mutation> {
        self.mutation
    }
}

/// The segment size of the kill workload.
pub const SEGMENT: u64 = 8192;

/// The options both the child and the parent open the log with.
pub fn options() -> Options {
    let mut options = Options::from(
        Config::default()
            .with_segment_size(SEGMENT)
            .with_sync_policy(SyncPolicy::Always),
    );
    options.open_threads = 2;
    options
}

/// What a payload says about itself: `p{phase}.t{thread}.s{seq}.i{index}.n{len}|` then
/// filler, so that the parent can tell a real record from garbage or a stale one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    /// Bumped by each `truncate_back`.
    pub phase: u32,
    /// The appending thread.
    pub thread: u32,
    /// The thread's append number.
    pub seq: u32,
    /// The record's place in its batch.
    pub index: u32,
}

/// The payload for `key`, `len` bytes at least as long as its label.
pub fn payload(key: Key, len: usize) -> Vec<u8> {
    let mut p = format!(
        "p{}.t{}.s{}.i{}.n{len}|",
        key.phase, key.thread, key.seq, key.index
    )
    .into_bytes();
    let start = p.len();
    p.extend((start..len.max(start)).map(|k| b'a' + (k % 26) as u8));
    p
}

/// Parses a payload back, checking its filler; `None` for anything [`payload`] did not make.
pub fn parse(bytes: &[u8]) -> Option<Key> {
    let bar = bytes.iter().position(|b| *b == b'|')?;
    let label = core::str::from_utf8(&bytes[..bar]).ok()?;
    let mut fields = label.split('.');
    let mut field = |tag: char| -> Option<u64> { fields.next()?.strip_prefix(tag)?.parse().ok() };
    let key = Key {
        phase: field('p')? as u32,
        thread: field('t')? as u32,
        seq: field('s')? as u32,
        index: field('i')? as u32,
    };
    let len = field('n')? as usize;
    (payload(key, len) == bytes).then_some(key)
}

/// The child's journal: one line per acknowledgement or truncation, each written with one
/// `write` after the call returned (a kill cuts at most the last, unterminated, line).
pub struct Journal(Mutex<File>);

impl Journal {
    /// Appends to the file at `path`.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Self(Mutex::new(file)))
    }

    fn line(&self, text: &str) {
        let mut file = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        file.write_all(format!("{text}\n").as_bytes())
            .expect("journal write");
    }

    fn ack(&self, key: Key, first: Lsn, last: Lsn) {
        self.line(&format!(
            "ack {} {} {} {} {}",
            key.phase, key.thread, key.seq, first.0, last.0
        ));
    }
}

fn len_of(thread: u32, seq: u32) -> usize {
    60 + ((seq as usize * 389 + thread as usize * 211) % 1500)
}

/// The child's workload: a [`Wal`] appending with rotation onto spares, a `truncate_front`, a
/// `truncate_back` across segments and more appends; then a [`SharedWal`] with three threads
/// appending (odd threads in batches of two) under group commit, six single records, a
/// `truncate_back` across a segment boundary to the first of them, and a last run of
/// appends. Returns normally only if no kill came.
pub fn workload(fs: &KillFs, dir: &Path, journal: &Journal) {
    let (mut wal, _) = Wal::open_in(fs.clone(), dir, options()).expect("open");
    let mut phase = 0;
    let mut seq = 0;
    let append = |wal: &mut Wal<KillFs>, phase: u32, seq: &mut u32| {
        let key = Key {
            phase,
            thread: 0,
            seq: *seq,
            index: 0,
        };
        let lsn = wal.append(&payload(key, len_of(0, *seq))).expect("append");
        journal.ack(key, lsn, lsn);
        *seq += 1;
    };
    for _ in 0..22 {
        append(&mut wal, phase, &mut seq);
    }
    journal.line("front 12");
    wal.truncate_front(Lsn(12)).expect("truncate_front");
    journal.line("front-done");
    let back = wal.last_lsn().0 - 7;
    phase += 1;
    journal.line(&format!("back {back} {phase}"));
    wal.truncate_back(Lsn(back)).expect("truncate_back");
    journal.line("back-done");
    for _ in 0..5 {
        append(&mut wal, phase, &mut seq);
    }
    drop(wal);

    let (shared, _) = SharedWal::open_in(fs.clone(), dir, options()).expect("reopen");
    std::thread::scope(|scope| {
        for thread in 1..=3u32 {
            let shared = shared.clone();
            scope.spawn(move || {
                for seq in 0..6u32 {
                    let n = if thread % 2 == 1 { 2 } else { 1 };
                    let keys: Vec<Key> = (0..n)
                        .map(|index| Key {
                            phase,
                            thread,
                            seq,
                            index,
                        })
                        .collect();
                    let payloads: Vec<Vec<u8>> = keys
                        .iter()
                        .map(|k| payload(*k, len_of(thread, seq * 2 + k.index)))
                        .collect();
                    let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
                    let appended = shared.append_batch(&refs).expect("append_batch");
                    assert!(appended.durable, "SyncPolicy::Always");
                    journal.ack(keys[0], appended.first, appended.last);
                }
            });
        }
    });
    // Single records from here on, so the rewind lands on a record boundary whatever the
    // threads did; six of up to 1.5 KiB span a segment boundary.
    let mut back = None;
    for seq in 0..6u32 {
        let key = Key {
            phase,
            thread: 5,
            seq,
            index: 0,
        };
        let appended = shared
            .append(&payload(key, 1000 + 100 * seq as usize))
            .expect("append");
        journal.ack(key, appended.first, appended.last);
        back.get_or_insert(appended.first);
    }
    let back = back.expect("appended").0;
    phase += 1;
    journal.line(&format!("back {back} {phase}"));
    shared.truncate_back(Lsn(back)).expect("truncate_back");
    journal.line("back-done");
    for seq in 0..4u32 {
        let key = Key {
            phase,
            thread: 4,
            seq,
            index: 0,
        };
        let appended = shared
            .append(&payload(key, len_of(4, seq)))
            .expect("append");
        journal.ack(key, appended.first, appended.last);
    }
    drop(shared);
}

/// Checks the log in `dir` (opened with the real file system) against the child's
/// `journal` text. `Err` says what is wrong.
pub fn check(dir: &Path, journal: &str) -> Result<CheckSummary, String> {
    // What must be there: acknowledged records by LSN, as the journal's truncations leave them.
    let mut required: BTreeMap<u64, Key> = BTreeMap::new();
    let mut acked_at: HashMap<Key, u64> = HashMap::new();
    // After a completed `truncate_back(l)` into phase `p`, records above `l` are of phase `p`
    // or later.
    let mut floors: Vec<(u64, u32)> = Vec::new();
    let mut pending_back: Option<(u64, u32)> = None;
    let mut first_max = 1;
    for line in journal.split_inclusive('\n') {
        let Some(line) = line.strip_suffix('\n') else {
            break; // cut by the kill
        };
        let f: Vec<&str> = line.split(' ').collect();
        let num = |i: usize| -> Result<u64, String> {
            f.get(i)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| format!("bad journal line {line:?}"))
        };
        match f[0] {
            "ack" => {
                let (first, last) = (num(4)?, num(5)?);
                for (i, lsn) in (first..=last).enumerate() {
                    let key = Key {
                        phase: num(1)? as u32,
                        thread: num(2)? as u32,
                        seq: num(3)? as u32,
                        index: i as u32,
                    };
                    required.insert(lsn, key);
                    acked_at.insert(key, lsn);
                }
            }
            "front" => first_max = first_max.max(num(1)? + 1),
            "front-done" => {}
            "back" => {
                let (lsn, phase) = (num(1)?, num(2)? as u32);
                required.retain(|l, _| *l <= lsn);
                pending_back = Some((lsn, phase));
            }
            "back-done" => floors.extend(pending_back.take()),
            _ => return Err(format!("bad journal line {line:?}")),
        }
    }
    let (wal, report) =
        Wal::open(dir, options()).map_err(|e| format!("the log does not open: {e}"))?;
    if let Some(loss) = report.salvage {
        return Err(format!("a kill was salvaged: {loss:?}"));
    }
    let first = wal.first_lsn();
    let records = wal
        .read_all_from(first)
        .map_err(|e| format!("the log does not read back: {e}"))?;
    if first.0 > first_max {
        return Err(format!(
            "the log starts at {first}, at most {first_max} allowed"
        ));
    }
    let mut seen: HashMap<Key, u64> = HashMap::new();
    for (i, (lsn, bytes)) in records.iter().enumerate() {
        if lsn.0 != first.0 + i as u64 {
            return Err(format!("LSNs not dense at {lsn}"));
        }
        let Some(key) = parse(bytes) else {
            return Err(format!("LSN {lsn} holds bytes that were never appended"));
        };
        if let Some(other) = seen.insert(key, lsn.0) {
            return Err(format!("{key:?} appears at LSN {other} and {lsn}"));
        }
        if let Some(at) = acked_at.get(&key).filter(|at| **at != lsn.0) {
            return Err(format!(
                "{key:?} was acknowledged at LSN {at}, found at {lsn}"
            ));
        }
        if let Some((l, p)) = floors.iter().find(|(l, p)| lsn.0 > *l && key.phase < *p) {
            return Err(format!(
                "LSN {lsn} holds a stale record {key:?} from before truncate_back({l}) into phase {p}"
            ));
        }
    }
    for (lsn, key) in required.range(first.0..) {
        let at = lsn - first.0;
        match records.get(at as usize) {
            Some((_, bytes)) if parse(bytes) == Some(*key) => {}
            Some(_) => {
                return Err(format!(
                    "acknowledged {key:?} at LSN {lsn} holds other bytes"
                ));
            }
            None => {
                return Err(format!(
                    "acknowledged {key:?} at LSN {lsn} lost (the log ends at {})",
                    wal.last_lsn()
                ));
            }
        }
    }
    Ok(CheckSummary {
        acknowledged: required.len(),
        recovered: records.len(),
    })
}

/// What a passing [`check`] saw.
#[derive(Clone, Copy, Debug)]
pub struct CheckSummary {
    /// Acknowledged records that had to be there.
    pub acknowledged: usize,
    /// Records the log held.
    pub recovered: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_parse_back_and_garbage_does_not() {
        let key = Key {
            phase: 2,
            thread: 3,
            seq: 17,
            index: 1,
        };
        let p = payload(key, 300);
        assert_eq!(p.len(), 300);
        assert_eq!(parse(&p), Some(key));
        let mut damaged = p.clone();
        damaged[200] ^= 1;
        assert_eq!(parse(&damaged), None);
        assert_eq!(parse(&vec![0; 300]), None);
    }
}
