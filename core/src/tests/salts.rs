//! Salt uniqueness, which FORMAT.md promises and stale-data rejection rests on: a segment's salt
//! differs from every earlier segment's, even with a constant `salt_seed`, so bytes left by an
//! earlier segment of the same name never validate.

use std::collections::BTreeSet;
use std::vec::Vec;

use super::*;
use crate::wal::splitmix64;
use crate::{Lsn, SyncPolicy};

/// The inverse of [`splitmix64`] (each step is a bijection), to build seeds whose mixed states
/// differ in exactly one bit.
fn unsplitmix64(mut z: u64) -> u64 {
    fn unshift(z: u64, s: u32) -> u64 {
        let mut x = z;
        for _ in 0..64 / s {
            x = z ^ (x >> s);
        }
        x
    }
    fn inverse(a: u64) -> u64 {
        // Newton's iteration for the inverse of an odd number modulo 2^64.
        let mut x = a;
        for _ in 0..6 {
            x = x.wrapping_mul(2u64.wrapping_sub(a.wrapping_mul(x)));
        }
        x
    }
    z = unshift(z, 31).wrapping_mul(inverse(0x94d0_49bb_1331_11eb));
    z = unshift(z, 27).wrapping_mul(inverse(0xbf58_476d_1ce4_e5b9));
    unshift(z, 30).wrapping_sub(0x9e37_79b9_7f4a_7c15)
}

#[test]
fn splitmix64_is_the_published_generator() {
    // Sebastiano Vigna's splitmix64.c: the first outputs for seeds 0 and 1234567.
    assert_eq!(splitmix64(0), 0xe220_a839_7b1d_cdaf);
    assert_eq!(splitmix64(0x9e37_79b9_7f4a_7c15), 0x6e78_9e6a_a1b9_65f4);
    assert_eq!(splitmix64(1_234_567), 6_457_827_717_110_365_317);
    for z in [0, 1, 42, u64::MAX, 0x0123_4567_89ab_cdef] {
        assert_eq!(unsplitmix64(splitmix64(z)), z);
    }
}

fn salts(wal: &TestWal) -> Vec<u64> {
    wal.segments().iter().map(|s| s.salt).collect()
}

#[test]
fn every_segment_gets_a_new_salt_with_a_constant_seed() {
    let cfg = small().with_salt_seed(7);
    let (mut wal, _) = open(Mem::default(), cfg);
    for i in 1..=60 {
        wal.append(&payload(i)).unwrap();
    }
    let mut seen: BTreeSet<u64> = salts(&wal).into_iter().collect();
    assert_eq!(
        seen.len(),
        wal.segments().len(),
        "salts repeat within a log"
    );
    assert!(wal.segments().len() > 8 && !seen.contains(&0));
    // Rewind to segment 1 and write the same LSNs again, reopening with the same seed: segments
    // with the same ids and first LSNs are recreated, and none may reuse an old salt.
    let old_tail = wal.segments()[2..].to_vec();
    wal.truncate_back(wal.segments()[1].first_lsn).unwrap();
    let (mut wal, _) = open(wal.into_storage(), cfg);
    for i in 1..=60 {
        wal.append(&payload(i)).unwrap();
    }
    for s in &wal.segments()[2..] {
        let old = old_tail.iter().find(|o| o.id == s.id);
        if let Some(old) = old {
            assert_eq!(old.first_lsn, s.first_lsn, "the same segment again");
        }
        assert!(seen.insert(s.salt), "segment {} reused a salt", s.id);
    }
}

#[test]
fn a_salt_depends_on_the_segment_and_its_position_whatever_the_state() {
    // Adapters may give a constant seed; even a degenerate state must not make two segments
    // (different ids or first LSNs) share a salt.
    let (mut wal, _) = open(Mem::default(), small());
    for state in [0, u64::MAX, 0x5555_5555_5555_5555] {
        let mut seen = BTreeSet::new();
        for id in [1, 2, 3, 1 << 40] {
            for first in [1, 2, 3, 1 << 40] {
                wal.salt_state = state;
                let salt = wal.fresh_salt(id, Lsn(first));
                assert_ne!(salt, 0);
                assert!(seen.insert(salt), "state {state:#x}: id {id} first {first}");
            }
        }
    }
}

/// Opens `mem` with seed `seed` and returns the salt of the segment the next rotation creates.
fn next_salt(mem: Mem, seed: u64) -> u64 {
    let cfg = Config::default()
        .with_segment_size(100)
        .with_salt_seed(seed)
        .with_sync_policy(SyncPolicy::Manual);
    let (mut wal, _) = open(mem, cfg);
    wal.append(b"a").unwrap();
    wal.append(b"b").unwrap();
    assert_eq!(wal.segments().len(), 2, "rotated");
    wal.segments()[1].salt
}

#[test]
fn every_bit_of_the_salts_on_disk_changes_the_next_salt() {
    // A reopen with the same seed must still make new salts: recovery mixes the salts it finds
    // into the state, and every bit of them counts.
    let (wal, _) = open(Mem::default(), small().with_salt_seed(3));
    let mem = wal.into_storage();
    let base = next_salt(mem.clone(), 3);
    let mut seen = BTreeSet::from([base]);
    for bit in 0..64 {
        let mut m = mem.clone();
        let f = m.files.get_mut(&0).unwrap();
        let mut h = crate::format::SegmentHeader::decode(f).unwrap();
        h.salt ^= 1 << bit;
        if h.salt == 0 {
            continue;
        }
        f[..64].copy_from_slice(&h.encode());
        assert!(seen.insert(next_salt(m, 3)), "salt bit {bit} ignored");
    }
}

#[test]
fn every_bit_of_the_seed_reaches_the_log_id() {
    // Two fresh logs get the same id only if their seeds are the same: stale segments of one
    // log are then foreign to the other.
    let log_id = |seed| {
        open(Mem::default(), small().with_salt_seed(seed))
            .0
            .log_id()
    };
    let state = splitmix64(99);
    let base = log_id(99);
    let mut seen = BTreeSet::from([base]);
    for bit in 0..64 {
        let seed = unsplitmix64(state ^ (1 << bit));
        assert_eq!(splitmix64(seed), state ^ (1 << bit));
        assert!(seen.insert(log_id(seed)), "state bit {bit} lost");
    }
    // Reopening keeps the id.
    let (wal, _) = open(Mem::default(), small().with_salt_seed(99));
    let (again, _) = open(wal.into_storage(), small().with_salt_seed(5));
    assert_eq!(again.log_id(), base);
}
