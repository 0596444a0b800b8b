//! Encryption at rest (format version 3, feature `encrypt`): nothing readable on the medium,
//! nonces that never repeat under a key, missing and wrong keys, tampering, rotation.

use std::collections::BTreeSet;
use std::vec::Vec;

use super::*;
use crate::crypt::{BREAK_FRESH_RULE, NONCES};
use crate::format::SegmentHeader;
use crate::{AppendError, Keyring, Lsn, ReadError, transform_scratch_len};

const KEY_A: [u8; 32] = [0xa5; 32];
const KEY_B: [u8; 32] = [0x3c; 32];

fn config() -> Config {
    Config::default()
        .with_segment_size(1024)
        .with_max_record_size(1024)
        .with_salt_seed(42)
}

/// A new value at every call, as a random source gives (`Wal::set_keys`' entropy).
fn fresh() -> u64 {
    static NEXT: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, core::sync::atomic::Ordering::Relaxed)
}

fn ring(current: &[u8; 32], others: &[&[u8; 32]]) -> Keyring {
    let mut k = Keyring::new();
    for o in others {
        k.add(o).unwrap();
    }
    k.add_current(current).unwrap();
    k
}

/// A known payload whose bytes must never reach the medium in the clear.
fn secret(i: u64) -> Vec<u8> {
    std::format!("SECRET-PAYLOAD-{i:04}-do-not-leak").into_bytes()
}

fn append(wal: &mut TestWal, payloads: &[&[u8]]) -> Lsn {
    let mut scratch = std::vec![0u8; transform_scratch_len(1024)];
    wal.append_batch_in(payloads, &mut scratch).unwrap()
}

fn read_all(wal: &TestWal) -> Result<Vec<(u64, Vec<u8>)>, ReadError<mem::MemError>> {
    let mut out = Vec::new();
    let mut r = wal.reader(wal.first_lsn())?;
    let mut buf = [0u8; 4096];
    while let Some(rec) = r.next(&mut buf)? {
        out.push((rec.lsn.0, rec.payload.to_vec()));
    }
    Ok(out)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn encrypted_log(n: u64) -> TestWal {
    let (mut wal, _) = open(Mem::default(), config());
    wal.set_keys(ring(&KEY_A, &[]), fresh());
    for i in 1..=n {
        append(&mut wal, &[&secret(i)]);
    }
    wal
}

#[test]
fn nothing_readable_reaches_the_medium_and_everything_reads_back() {
    let mut wal = encrypted_log(30);
    let batch = [secret(31), secret(32), secret(33)];
    append(&mut wal, &[&batch[0], &batch[1], &batch[2]]);
    let got = read_all(&wal).unwrap();
    let want: Vec<(u64, Vec<u8>)> = (1..=33).map(|i| (i, secret(i))).collect();
    // The first segment (created by open, before the keys) is empty: records start after it.
    assert_eq!(got, want);
    let mem = wal.into_storage();
    assert!(mem.files.len() > 2, "rotated");
    for (id, f) in &mem.files {
        assert!(
            !contains(f, b"SECRET-PAYLOAD"),
            "segment {id} holds plaintext"
        );
        let h = SegmentHeader::decode(f).unwrap();
        if *id > 0 {
            assert_eq!(h.key_id, Some(crate::key_id(&KEY_A)), "segment {id}");
        }
    }
    // The scan itself can fail: the same records without keys are found.
    let (mut plain, _) = open(Mem::default(), config());
    plain.append(&secret(1)).unwrap();
    assert!(contains(&plain.into_storage().files[&0], b"SECRET-PAYLOAD"));
}

#[test]
fn a_missing_or_wrong_key_is_a_typed_error_and_changes_nothing() {
    let mem = encrypted_log(10).into_storage();
    for keys in [Keyring::new(), ring(&KEY_B, &[])] {
        let before = mem.files.clone();
        let (mut wal, report) = open(mem.clone(), config());
        // Recovery never needs a key: it verifies checksums over the stored bytes.
        assert!(report.is_clean(), "{report}");
        wal.set_keys(keys, fresh());
        assert_eq!(wal.last_lsn(), Lsn(10));
        let mut buf = [0u8; 4096];
        assert_eq!(
            wal.read(Lsn(3), &mut buf),
            Err(ReadError::KeyMissing {
                segment: 1,
                key_id: crate::key_id(&KEY_A)
            })
        );
        assert_eq!(wal.into_storage().files, before, "nothing cut or removed");
    }
}

#[test]
fn a_ciphertext_that_verifies_but_does_not_authenticate_is_tampering() {
    let mut mem = encrypted_log(5).into_storage();
    let h = SegmentHeader::decode(&mem.files[&1]).unwrap();
    let f = mem.files.get_mut(&1).unwrap();
    // The last record: a torn-tail rule would cut it if it applied.
    let mut at = crate::format::SEGMENT_HEADER_LEN;
    let mut last = at;
    while let Ok(r) = crate::format::RecordHeader::decode(&f[at..], h.checksum, h.salt) {
        last = at;
        at += crate::format::RECORD_HEADER_LEN + r.length as usize;
    }
    let mut r = crate::format::RecordHeader::decode(&f[last..], h.checksum, h.salt).unwrap();
    let p = last + crate::format::RECORD_HEADER_LEN;
    let end = p + r.length as usize;
    f[p] ^= 1;
    r.payload_crc = h.checksum.of_salted(h.salt, &f[p..end]);
    f[last..p].copy_from_slice(&r.encode(h.checksum, h.salt));
    let (mut wal, report) = open(mem, config());
    assert!(report.is_clean(), "{report}");
    assert_eq!(wal.last_lsn(), Lsn(5), "nothing cut");
    wal.set_keys(ring(&KEY_A, &[]), fresh());
    let mut buf = [0u8; 4096];
    match wal.read(Lsn(5), &mut buf) {
        Err(ReadError::Corrupted(c)) => {
            assert_eq!(c.case, crate::Case::MidLogCorruption);
            assert_eq!(c.detail, crate::raw::Fault::Tampered.describe());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(wal.read(Lsn(4), &mut buf).unwrap().payload, &secret(4)[..]);
}

#[test]
fn rotation_writes_new_segments_with_the_current_key_and_reads_old_ones() {
    let mut wal = encrypted_log(5);
    wal.set_keys(ring(&KEY_B, &[&KEY_A]), fresh());
    append(&mut wal, &[&secret(6)]);
    let last = *wal.segments().last().unwrap();
    assert_eq!(last.key_id(), Some(crate::key_id(&KEY_B)));
    assert_eq!(
        last.first_lsn,
        Lsn(6),
        "the key change started a new segment"
    );
    assert_eq!(read_all(&wal).unwrap().len(), 6);
    // Without the old key, the old segments name it; the new one reads.
    wal.set_keys(ring(&KEY_B, &[]), fresh());
    let mut buf = [0u8; 4096];
    assert_eq!(
        wal.read(Lsn(2), &mut buf),
        Err(ReadError::KeyMissing {
            segment: 1,
            key_id: crate::key_id(&KEY_A)
        })
    );
    assert_eq!(wal.read(Lsn(6), &mut buf).unwrap().payload, &secret(6)[..]);
}

#[test]
fn an_encrypted_record_is_never_written_without_scratch() {
    let mut wal = encrypted_log(2);
    // Even where the append would start a new segment (after a rewind).
    wal.truncate_back(Lsn(1)).unwrap();
    let files = wal.storage().files.clone();
    assert!(matches!(
        wal.append(&secret(3)),
        Err(AppendError::ScratchTooSmall { .. })
    ));
    assert_eq!(wal.storage().files, files);
    assert_eq!(wal.last_lsn(), Lsn(1));
}

#[test]
fn scratch_of_exactly_the_documented_length_is_enough() {
    let mut wal = encrypted_log(1);
    let payload = [7u8; 300];
    let mut scratch = std::vec![0u8; transform_scratch_len(payload.len() as u32)];
    let lsn = wal.append_batch_in(&[&payload], &mut scratch).unwrap();
    let mut short = std::vec![0u8; scratch.len() - 1];
    assert!(matches!(
        wal.append_batch_in(&[&payload], &mut short),
        Err(AppendError::ScratchTooSmall { needed }) if needed == scratch.len()
    ));
    assert_eq!(wal.last_lsn(), lsn);
}

#[test]
fn a_batch_counts_every_record_tag_when_deciding_to_rotate() {
    // A batch of four that fits the rest of the segment only without its four AEAD tags must
    // start a new segment: a segment never grows past its size.
    let mut wal = encrypted_log(1);
    let end = wal.active().end;
    let room = config().segment_size - end;
    let n = 4u64;
    let (header, tag) = (
        crate::format::RECORD_HEADER_LEN as u64,
        crate::format::AEAD_TAG_LEN as u64,
    );
    // Fits with one tag plus a byte per record (or fewer), not with four tags.
    let len = ((room - n * header - tag - n) / n) as usize;
    assert!(n * len as u64 + n * (header + tag) > room);
    let payload = std::vec![9u8; len];
    let rotations = wal.counters().rotations;
    let lsn = append(&mut wal, &[&payload, &payload, &payload, &payload]);
    assert_eq!(wal.counters().rotations, rotations + 1);
    assert_eq!(wal.active().first_lsn, lsn);
    assert!(wal.active().end <= config().segment_size);
}

#[test]
fn keyrings_know_their_keys_by_derived_ids() {
    let mut k = Keyring::new();
    let a = k.add(&KEY_A).unwrap();
    assert_eq!(k.add(&KEY_A), Ok(a));
    assert_ne!(crate::key_id(&KEY_B), a);
    assert_eq!(k.current(), None);
    k.add_current(&KEY_B).unwrap();
    assert_eq!(k.current(), Some(crate::key_id(&KEY_B)));
    for i in 0..6u8 {
        k.add(&[i; 32]).unwrap();
    }
    assert_eq!(k.add(&[9; 32]), Err(crate::KeyringError::Full));
    // Debug shows ids, never key bytes.
    let shown = std::format!("{k:?}");
    assert!(
        !shown.contains("165, 165") && shown.contains("ids"),
        "{shown}"
    );
}

/// The (key, nonce) pairs used by `scenario`, and whether any repeats.
fn nonces_repeat(scenario: impl FnOnce()) -> (usize, bool) {
    NONCES.with(|n| n.borrow_mut().clear());
    scenario();
    let used = NONCES.with(|n| n.borrow().clone());
    let unique: BTreeSet<_> = used.iter().collect();
    (used.len(), unique.len() != used.len())
}

/// Appends, rewinds with truncate_back, re-appends the same LSNs, crashes with a torn record
/// (recovery cuts it, its ciphertext was on the medium) and appends its LSN again.
fn rewinds_and_crashes() {
    let mut wal = encrypted_log(8);
    wal.truncate_back(Lsn(5)).unwrap();
    for i in 6..=9 {
        append(&mut wal, &[&secret(i)]);
    }
    wal.truncate_back(Lsn(7)).unwrap();
    append(&mut wal, &[&secret(8), &secret(9)]);
    // A crash that tears the newest record: recovery cuts it, the LSN is appended again.
    let mut mem = wal.into_storage();
    let newest = *mem
        .files
        .keys()
        .filter(|&&id| id < u64::MAX - 1)
        .max()
        .unwrap();
    let f = mem.files.get_mut(&newest).unwrap();
    let len = f.len();
    f.truncate(len - 3);
    let (mut wal, report) = open(mem, config());
    // The torn record is the batch's last: the whole batch goes.
    assert_eq!(report.cut.map(|c| c.first_lsn), Some(Lsn(8)));
    wal.set_keys(ring(&KEY_A, &[]), fresh());
    append(&mut wal, &[&secret(8), &secret(9)]);
    // And a plain reopen, then more appends.
    let (mut wal, _) = open(wal.into_storage(), config());
    wal.set_keys(ring(&KEY_A, &[]), fresh());
    append(&mut wal, &[&secret(10)]);
    let got = read_all(&wal).unwrap();
    assert_eq!(got.last().unwrap(), &(10, secret(10)));
}

#[test]
fn nonces_never_repeat_through_rewinds_crashes_and_reopens() {
    let (used, repeat) = nonces_repeat(rewinds_and_crashes);
    assert!(used > 15, "{used}");
    assert!(!repeat, "a nonce was used twice under one key");
}

#[test]
fn the_nonce_check_catches_a_writer_that_reuses_segments() {
    BREAK_FRESH_RULE.with(|b| b.set(true));
    let (_, repeat) = nonces_repeat(rewinds_and_crashes);
    BREAK_FRESH_RULE.with(|b| b.set(false));
    assert!(repeat, "the broken writer must be caught");
}

/// A copy of the medium (a backup restored, a salvage that drops the newest segment, a log
/// created again on a device) opened twice with the same configuration, a constant
/// `salt_seed` included, and the same records appended: the segment ids and LSNs are the
/// same both times, so only the entropy given to `set_keys` keeps the salts, and the nonces,
/// apart. `entropy` gives the second open's value from the first's.
fn reopened_copies(entropy: fn(u64) -> u64) {
    let mem = encrypted_log(4).into_storage();
    let first = fresh();
    for e in [first, entropy(first)] {
        let (mut wal, _) = open(mem.clone(), config());
        wal.set_keys(ring(&KEY_A, &[]), e);
        append(&mut wal, &[&secret(5), &secret(6)]);
    }
}

#[test]
fn two_opens_of_one_copy_use_different_nonces() {
    let (used, repeat) = nonces_repeat(|| reopened_copies(|_| fresh()));
    assert!(used >= 8, "{used}");
    assert!(!repeat, "a nonce was used twice under one key");
}

/// How `set_keys` mixes its entropy into the salts (pinned: a weaker mix still gives two
/// entropies two salts, which the test above cannot tell apart).
#[test]
fn set_keys_mixes_its_entropy_into_the_salt_state() {
    let (mut wal, _) = open(Mem::default(), config());
    let before = wal.salt_state;
    wal.set_keys(ring(&KEY_A, &[]), 0x1234_5678);
    let mixed = crate::wal::splitmix64(0x1234_5678 ^ 0x6b65_7973);
    assert_eq!(wal.salt_state, crate::wal::splitmix64(before ^ mixed));
}

#[test]
fn the_nonce_check_catches_entropy_repeated_across_opens() {
    let (_, repeat) = nonces_repeat(|| reopened_copies(|first| first));
    assert!(repeat, "the same entropy must repeat the nonces");
}

#[test]
fn without_a_current_key_appends_start_a_plaintext_segment() {
    // Reopened with the key for reading only: appends never go into the encrypted segment
    // (neither in plaintext, which would be invalid there, nor encrypted, which could reuse a
    // nonce after the reopen).
    let mem = encrypted_log(4).into_storage();
    let (mut wal, _) = open(mem, config());
    let mut read_only = Keyring::new();
    read_only.add(&KEY_A).unwrap();
    wal.set_keys(read_only, fresh());
    append(&mut wal, &[&secret(5)]);
    let last = *wal.segments().last().unwrap();
    assert_eq!((last.key_id(), last.first_lsn), (None, Lsn(5)));
    let got = read_all(&wal).unwrap();
    assert_eq!(got.len(), 5);
    let (wal, report) = open(wal.into_storage(), config());
    assert!(report.is_clean(), "{report}");
    assert_eq!(wal.last_lsn(), Lsn(5));
}

#[cfg(feature = "serde")]
#[test]
fn typed_entries_are_appended_to_an_encrypted_log_through_the_rest_of_the_scratch() {
    use crate::{Entry, EntryLimits, TypedAppendError};
    let (mut wal, _) = open(Mem::default(), config());
    wal.set_keys(ring(&KEY_A, &[]), fresh());
    let limits = EntryLimits::default();
    let put = Entry::Put {
        key: b"k",
        value: b"SECRET-VALUE",
    };
    // Room for the encoding only: refused before anything is written.
    let mut tight = [0u8; 20];
    assert!(matches!(
        wal.append_entry(&put, &limits, &mut tight),
        Err(TypedAppendError::Append(
            AppendError::ScratchTooSmall { .. }
        ))
    ));
    assert_eq!(wal.last_lsn(), Lsn(0));
    // The encoding, then the record's transform scratch after it.
    let mut scratch = std::vec![0u8; 4096];
    let lsn = wal.append_entry(&put, &limits, &mut scratch).unwrap();
    let mut buf = [0u8; 256];
    assert_eq!(wal.read_typed::<Entry<'_>>(lsn, &mut buf).unwrap(), Ok(put));
    let stored = wal.into_storage();
    assert!(
        !stored
            .files
            .values()
            .any(|f| f.windows(12).any(|w| w == b"SECRET-VALUE")),
        "the value reached the medium in the clear"
    );
}

#[test]
fn an_encrypted_record_whose_tag_does_not_fit_a_segment_is_refused_before_writing() {
    // Capacity for the configuration in plaintext: the largest record fills an empty segment
    // up to its seal. Encrypted, the same record takes a 16-byte tag more: it is refused
    // when appended (the open cannot know the log will encrypt), the log goes on.
    let seg = crate::format::SEGMENT_HEADER_LEN as u64;
    let rec = crate::format::RECORD_HEADER_LEN as u64;
    let seal = crate::format::SEAL_LEN;
    let cfg = config()
        .with_max_record_size(2000)
        .with_max_batch_size(2000);
    let capacity = seg + rec + 2000 + seal;
    let mem = Mem {
        capacity: Some(capacity),
        ..Mem::default()
    };
    let (mut wal, _) = open(mem, cfg);
    let largest = std::vec![7u8; 2000];
    let mut scratch = std::vec![0u8; transform_scratch_len(2000)];
    assert_eq!(
        wal.append_batch_in(&[&largest], &mut scratch).unwrap(),
        Lsn(1)
    );
    wal.set_keys(ring(&KEY_A, &[]), fresh());
    let before = wal.storage().files.clone();
    assert_eq!(
        wal.append_batch_in(&[&largest], &mut scratch),
        Err(AppendError::BatchDoesNotFit {
            needed: rec + 2000 + 16,
            room: rec + 2000
        })
    );
    assert_eq!(wal.storage().files, before, "nothing was written");
    assert_eq!(
        wal.append_batch_in(&[&largest[..1984]], &mut scratch)
            .unwrap(),
        Lsn(2)
    );
}
