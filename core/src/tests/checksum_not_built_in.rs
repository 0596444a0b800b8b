//! A segment whose header names a checksum algorithm this build does not have (walden-core
//! features `crc32`, `crc64`): a log written by a build with it, read by a device's build. The
//! header is valid, so the segment may be fine: every policy, `Salvage` included, refuses with
//! `Case::ChecksumNotBuiltIn` and changes nothing (docs/FORMAT.md, "Recovery decision table").
//!
//! Only in builds that lack an algorithm (scripts/check.sh runs two:
//! `--no-default-features --features salvage,detail,crc-small-tables` and
//! `--no-default-features --features start-slots`). The log is written here with CRC-32C and
//! its header then names the missing algorithm (resealed, as that build writes it): the
//! records are never read, so what they are checksummed with does not matter.

use super::*;
use crate::format::SegmentHeader;
use crate::inspect::{Verdict, inspect};
use crate::{Case, ChecksumAlgorithm, Lsn, OpenError};

/// An algorithm this build does not have.
fn missing() -> ChecksumAlgorithm {
    [ChecksumAlgorithm::Crc64, ChecksumAlgorithm::Crc32]
        .into_iter()
        .find(|alg| !alg.is_available())
        .expect("this build lacks an algorithm")
}

/// Records 1..=30 in several segments.
fn rotated() -> Mem {
    let (mut wal, _) = open(Mem::default(), small());
    for i in 1..=30 {
        wal.append(&payload(i)).unwrap();
    }
    assert!(wal.segments().len() >= 4, "{}", wal.segments().len());
    wal.into_storage()
}

/// Makes segment `id`'s header name [`missing`] (resealed); returns its first LSN.
fn name_missing(mem: &mut Mem, id: u64) -> Lsn {
    let f = mem.files.get_mut(&id).unwrap();
    let mut h = SegmentHeader::decode(&f[..64]).unwrap();
    h.checksum = missing();
    f[..64].copy_from_slice(&h.encode());
    h.first_lsn
}

/// Opens `mem` with `config` under every policy this build has (and `Salvage`, refused, where
/// it does not): each refuses with `ChecksumNotBuiltIn` at `segment` and changes nothing.
fn refused_unchanged(mem: &Mem, config: Config, segment: u64, lsn: Lsn) {
    let mut refusals = std::vec::Vec::new();
    // The storage first (before the fix `Salvage` dropped this segment and every later one,
    // and `TolerateTornTail` rewrote an empty newest one's header), then the refusal.
    for &policy in policies() {
        let mut opened = mem.clone();
        let got = Wal::<&mut Mem, Fixed<16>>::open(
            &mut opened,
            config.with_recovery(policy),
            &mut [0u8; 4096],
        )
        .map(|(_, report)| report);
        let sizes = |m: &Mem| -> std::vec::Vec<(u64, usize)> {
            m.files.iter().map(|(id, f)| (*id, f.len())).collect()
        };
        assert!(
            opened.files == mem.files,
            "{policy:?} changed the segments: (id, length) {:?}, before {:?}",
            sizes(&opened),
            sizes(mem)
        );
        assert_eq!(
            (opened.syncs, &opened.synced),
            (mem.syncs, &mem.synced),
            "{policy:?} synced"
        );
        refusals.push((policy, got));
    }
    for (policy, got) in refusals {
        let Err(OpenError::Corrupted(c)) = got else {
            panic!("{policy:?}: {got:?}");
        };
        assert_eq!(
            (c.case, c.segment, c.offset, c.lsn, c.detail),
            (
                Case::ChecksumNotBuiltIn,
                segment,
                0,
                Some(lsn),
                detail("checksum algorithm not built in (walden-core features crc32, crc64)")
            ),
            "{policy:?}"
        );
        assert!(!c.case.is_corruption());
    }
    salvage_is_refused(mem, config);
}

#[test]
fn a_sealed_segment_whose_checksum_is_not_built_in_is_refused_and_nothing_is_dropped() {
    let mut mem = rotated();
    let lsn = name_missing(&mut mem, 1);
    refused_unchanged(&mem, small(), 1, lsn);

    // Inspection says the same, and calls it neither damage nor a torn tail.
    let config = salvage(small()).unwrap_or(small());
    let mut cases = std::vec::Vec::new();
    let ins = inspect::<_, Fixed<16>>(&mem, &config, &mut [0u8; 4096], &mut |s| {
        cases.push((s.id, s.case, s.action));
    })
    .unwrap();
    assert!(matches!(
        ins.verdict,
        Verdict::Refuse(c) if c.case == Case::ChecksumNotBuiltIn && c.segment == 1
    ));
    assert!(!ins.corruption);
    assert_eq!(ins.valid_through, lsn.prev());
    assert_eq!(
        cases[1],
        (1, Case::ChecksumNotBuiltIn, crate::case::Action::Fail)
    );
    assert_eq!(cases.len(), mem.files.len(), "every segment is reported");
}

#[test]
fn a_newest_segment_whose_checksum_is_not_built_in_is_neither_cut_nor_rewritten() {
    // With records: not a torn tail.
    let mut mem = rotated();
    let newest = *mem.files.keys().last().unwrap();
    let lsn = name_missing(&mut mem, newest);
    refused_unchanged(&mem, small(), newest, lsn);

    // Only its header, nothing after it: not a creation that did not complete (whose header
    // `TolerateTornTail` rewrites).
    let mut mem = rotated();
    let newest = *mem.files.keys().last().unwrap();
    mem.files.get_mut(&newest).unwrap().truncate(64);
    let lsn = name_missing(&mut mem, newest);
    refused_unchanged(&mem, small(), newest, lsn);
}
