//! The seeded workload: puts, deletes, gets and scans against the store, every change a record.
//!
//! Changes are appended, synced in groups of `--sync-every`, then acknowledged (`ACK`): one
//! sync covers the group, as group commit would. With `--retain-segments N` the store compacts
//! its log when it holds more than `N` segments: it appends a checkpoint (every live key again,
//! in key order), syncs it, and then `truncate_front`s below the checkpoint's first LSN, so
//! whole old segments are removed and the store can still be rebuilt from what is left.

use walden_core::Entry;

use crate::args::Args;
use crate::{LIMITS, Log, MAX_RECORD, SplitMix64, Store, describe, fail, line, sync};

/// Appended records not yet acknowledged: their LSN and how the protocol names them.
type Unacked = Vec<(u64, String)>;

/// Runs the workload; prints `INTENT` before each append, `ACK` once a sync covered it, and
/// `DONE` at the end.
pub(crate) fn run(wal: &mut Log, store: &mut Store, args: &Args) {
    let mut rng = SplitMix64(args.seed);
    let mut scratch = vec![0u8; MAX_RECORD];
    let mut unacked = Unacked::new();
    let (mut puts, mut deletes, mut gets, mut scans, mut unsynced) = (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut checkpoints = 0u64;
    for _ in 0..args.ops {
        let key = format!("k{:05}", rng.next() % args.keys).into_bytes();
        let roll = rng.next() % 100;
        if roll >= 70 {
            if roll < 90 {
                gets += u64::from(store.get(&key).is_some());
            } else {
                scans += store.range(key..).take(8).count() as u64;
            }
            continue;
        }
        let value: Vec<u8>;
        let entry = if roll < 55 {
            let len = args.min_value
                + (rng.next() % (args.max_value - args.min_value + 1) as u64) as usize;
            value = (0..len).map(|_| rng.next() as u8).collect();
            puts += 1;
            Entry::Put {
                key: &key,
                value: &value,
            }
        } else {
            deletes += 1;
            Entry::Delete { key: &key }
        };
        let lsn = append(wal, &entry, &mut scratch);
        apply(store, &entry);
        let op = describe(&entry);
        if args.ack_before_sync {
            // The deliberate bug: promise first, make durable later.
            line(&format!("ACK {lsn} {op}"));
            unsynced += 1;
            if unsynced < 8 {
                continue;
            }
            sync(wal);
            unsynced = 0;
        } else {
            unacked.push((lsn, op));
            if (unacked.len() as u64) < args.sync_every {
                continue;
            }
            sync_and_ack(wal, &mut unacked);
        }
        // Everything is durable here: a good moment to compact.
        if args.retain_segments > 0 && wal.segments().len() > args.retain_segments {
            compact(wal, store, &mut scratch);
            checkpoints += 1;
        }
    }
    if unsynced > 0 {
        sync(wal);
    }
    sync_and_ack(wal, &mut unacked);
    line(&format!(
        "DONE puts={puts} deletes={deletes} get_hits={gets} scanned={scans} checkpoints={checkpoints} \
         keys={} durable_lsn={}",
        store.len(),
        wal.durable_lsn().0
    ));
}

/// Prints `INTENT`, appends, and checks the LSN is the one announced.
fn append(wal: &mut Log, entry: &Entry<'_>, scratch: &mut [u8]) -> u64 {
    let due = wal.next_lsn();
    line(&format!("INTENT {} {}", due.0, describe(entry)));
    let lsn = wal
        .append_entry(entry, &LIMITS, scratch)
        .unwrap_or_else(|e| fail(4, &format!("append failed: {e:?}")));
    if lsn != due {
        fail(
            4,
            &format!("append returned LSN {} where {} was due", lsn.0, due.0),
        );
    }
    lsn.0
}

/// One sync for every unacknowledged record, then their `ACK` lines.
fn sync_and_ack(wal: &mut Log, unacked: &mut Unacked) {
    if unacked.is_empty() {
        return;
    }
    sync(wal);
    for (lsn, op) in unacked.drain(..) {
        line(&format!("ACK {lsn} {op}"));
    }
}

/// Checkpoint and retention: every live key appended again, synced, then the log truncated
/// below the checkpoint. Prints `RETAIN <lsn>` before `truncate_front(lsn)` and
/// `RETAINED <lsn> removed=<segments> first=<first LSN>` after it.
fn compact(wal: &mut Log, store: &Store, scratch: &mut [u8]) {
    let start = wal.next_lsn().0;
    let mut unacked = Unacked::new();
    for (key, value) in store {
        let entry = Entry::Put { key, value };
        let lsn = append(wal, &entry, scratch);
        unacked.push((lsn, describe(&entry)));
    }
    sync_and_ack(wal, &mut unacked);
    line(&format!("RETAIN {start}"));
    let removed = wal
        .truncate_front(walden_core::Lsn(start))
        .unwrap_or_else(|e| fail(4, &format!("truncate_front failed: {e:?}")));
    line(&format!(
        "RETAINED {start} removed={removed} first={}",
        wal.first_lsn().0
    ));
}

fn apply(store: &mut Store, entry: &Entry<'_>) {
    match *entry {
        Entry::Put { key, value } => {
            store.insert(key.to_vec(), value.to_vec());
        }
        Entry::Delete { key } => {
            store.remove(key);
        }
    }
}
