//! Arbitrary operation sequences with crashes (any fate for each unsynced effect: kept, lost,
//! torn with zeros, old bytes or garbage) against a model of what was acknowledged durable.
//! After every crash: open succeeds (a pure crash is never corruption), every durable record
//! is back byte-identical, and the rest is a prefix of what was in flight.
//!
//! Inputs whose first byte is odd run the log encrypted and compressed (format version 3: a
//! keyring, a compression threshold of 16 bytes, appends through a scratch), so crashes,
//! rewinds and reopens are fuzzed with both transforms on too.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use walden_core::{Config, Keyring, Lsn, SyncPolicy, Wal, transform_scratch_len};
use walden_sim::{CrashPlan, Fate, SimStorage, Tear, TearShape, TornFill};

#[derive(Arbitrary, Debug)]
enum Op {
    Append(u8, u8),
    Batch(u8, u8, u8),
    Sync,
    Crash(Vec<u8>, u64),
    TruncateBack(u8),
}

type TestWal = Wal<SimStorage, walden_core::Fixed<64>>;

fn payload(len: u8, fill: u8) -> Vec<u8> {
    vec![fill; usize::from(len % 80)]
}

fn config(sealed: bool) -> Config {
    Config::default()
        .with_segment_size(300)
        .with_max_record_size(128)
        .with_sync_policy(SyncPolicy::Manual)
        .with_compress_threshold(if sealed { 16 } else { 0 })
}

/// Sets the keys of a sealed run (again after every open).
fn keys(wal: &mut TestWal, sealed: bool) {
    if sealed {
        let mut k = Keyring::new();
        let _ = k.add_current(&[0x42; 32]);
        wal.set_keys(k, 0x5eed);
    }
}

fn fate(b: u8) -> Fate {
    let fill = [TornFill::Zeros, TornFill::Old, TornFill::Garbage][usize::from(b / 4 % 3)];
    match b % 4 {
        0 => Fate::Happened,
        1 => Fate::Lost,
        2 => Fate::Torn(Tear {
            shape: TearShape::Prefix(u32::from(b / 12)),
            fill,
        }),
        _ => Fate::Torn(Tear {
            shape: TearShape::Suffix(u32::from(b / 12)),
            fill,
        }),
    }
}

fn all(wal: &TestWal) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut r = wal.reader(wal.first_lsn()).expect("reader");
    // A compressed record needs its original and stored lengths.
    let mut buf = [0u8; 512];
    while let Some(rec) = r.next(&mut buf).expect("recovered record reads back") {
        out.push(rec.payload.to_vec());
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(ops) = Vec::<Op>::arbitrary(&mut u) else {
        return;
    };
    let sealed = data.first().is_some_and(|b| b & 1 == 1);
    let mut scratch = [0u8; 512];
    let mut transform = vec![0u8; transform_scratch_len(128)];
    let (mut wal, _) =
        TestWal::open(SimStorage::new(), config(sealed), &mut scratch).expect("new log");
    keys(&mut wal, sealed);
    // What is durable, and what was appended since (in order).
    let mut durable: Vec<Vec<u8>> = Vec::new();
    let mut in_flight: Vec<Vec<u8>> = Vec::new();
    // Printed with every failure, so the sequence can be replayed by hand.
    let trace = format!("{ops:?}");
    for op in ops.into_iter().take(64) {
        match op {
            Op::Append(len, fill) => {
                let p = payload(len, fill);
                if wal.append_batch_in(&[&p], &mut transform).is_err() {
                    return;
                }
                in_flight.push(p);
            }
            Op::Batch(n, len, fill) => {
                let ps: Vec<Vec<u8>> = (0..(n % 4) + 1)
                    .map(|i| payload(len.wrapping_add(i), fill))
                    .collect();
                let refs: Vec<&[u8]> = ps.iter().map(Vec::as_slice).collect();
                if wal.append_batch_in(&refs, &mut transform).is_err() {
                    return;
                }
                in_flight.extend(ps);
            }
            Op::Sync => {
                if wal.sync().is_err() {
                    return;
                }
                durable.append(&mut in_flight);
            }
            Op::TruncateBack(k) => {
                let first = wal.first_lsn().0;
                let last = wal.last_lsn().0;
                let to = first.saturating_sub(1) + u64::from(k) % (last + 2 - first);
                // Truncating at or after the last LSN does nothing (and syncs nothing); a real
                // truncation syncs, so everything up to `to` is then durable.
                if to < last && wal.truncate_back(Lsn(to)).is_ok() {
                    let mut everything = durable.split_off(0);
                    everything.append(&mut in_flight);
                    everything.truncate((to + 1 - first) as usize);
                    durable = everything;
                }
            }
            Op::Crash(fates, seed) => {
                let storage = wal.into_storage();
                let n = storage.unsynced_effect_count();
                let mut plan = CrashPlan::lose_everything();
                for i in 0..n {
                    plan.set(i, fate(fates.get(i).copied().unwrap_or(1)));
                }
                plan.garbage_seed = seed;
                let crashed = storage.crash(&plan);
                let (w, report) = match TestWal::open(crashed, config(sealed), &mut scratch) {
                    Ok(x) => x,
                    Err(e) => panic!("a pure crash must recover: {e}\nops: {trace}"),
                };
                wal = w;
                keys(&mut wal, sealed);
                let got = all(&wal);
                assert!(
                    got.len() >= durable.len(),
                    "lost durable records: {report}\nops: {trace}"
                );
                assert_eq!(
                    &got[..durable.len()],
                    &durable[..],
                    "durable records changed\nops: {trace}"
                );
                let extra = &got[durable.len()..];
                assert!(
                    extra.len() <= in_flight.len(),
                    "phantom records\nops: {trace}"
                );
                assert_eq!(
                    extra,
                    &in_flight[..extra.len()],
                    "not a prefix of in-flight\nops: {trace}"
                );
                durable = got;
                in_flight.clear();
            }
        }
    }
});
