//! Logs with early successors (header flag `early`, docs/FORMAT.md "Early successors") in a
//! build with and without walden-core's feature `early-rotation`.
//!
//! A build without the feature cannot write such a log, so these tests make one by setting the
//! flag in a header by hand; the build with the feature checks that this is byte for byte the
//! header an early rotation writes, so the builds without it are tested on what a server build
//! leaves. Run them without the feature with
//! `cargo test -p walden-core --no-default-features --features salvage,detail` or
//! `--no-default-features --features start-slots` (a device's build, without `salvage` too;
//! CI runs both).

use super::*;
use crate::format::SegmentHeader;
use crate::{Case, OpenError, RecoveryPolicy, SyncPolicy};

fn manual() -> Config {
    small().with_sync_policy(SyncPolicy::Manual)
}

/// Records 1..=n appended with `cfg` and synced: several segments.
fn written(n: u64, cfg: Config) -> Mem {
    let (mut wal, _) = open(Mem::default(), cfg);
    for i in 1..=n {
        wal.append(&payload(i)).unwrap();
    }
    wal.sync().unwrap();
    assert!(wal.segments().len() >= 3, "{}", wal.segments().len());
    wal.into_storage()
}

/// Sets the `early` flag in segment `id`'s header (and reseals it), as an early rotation
/// would have written it.
fn flag_early(mem: &mut Mem, id: u64) {
    let f = mem.files.get_mut(&id).unwrap();
    let mut h = SegmentHeader::decode(&f[..64]).unwrap();
    assert!(!h.early);
    h.early = true;
    f[..64].copy_from_slice(&h.encode());
}

#[cfg(feature = "early-rotation")]
#[test]
fn a_header_flagged_by_hand_is_the_one_an_early_rotation_writes() {
    let plain = written(20, manual());
    let early = written(20, manual().with_early_rotation(true));
    assert_eq!(
        plain.files.keys().collect::<std::vec::Vec<_>>(),
        early.files.keys().collect::<std::vec::Vec<_>>()
    );
    let mut flagged = plain.clone();
    for &id in plain.files.keys().skip(1) {
        flag_early(&mut flagged, id);
        assert_eq!(
            flagged.files[&id][..64],
            early.files[&id][..64],
            "segment {id}"
        );
    }
    // Only the flag (and the header checksum) differs from the header written without it.
    assert_ne!(plain.files[&1][..64], early.files[&1][..64]);
}

#[test]
fn a_whole_segment_with_an_early_successor_opens_as_without_the_flag() {
    let plain = written(20, manual());
    let mut mem = plain.clone();
    flag_early(&mut mem, 1);
    let (a, ra) = open(plain, manual());
    let (b, rb) = open(mem, manual());
    assert!(rb.is_clean(), "{rb}");
    assert_eq!(std::format!("{ra}"), std::format!("{rb}"));
    assert_eq!(all(&a), all(&b));
    assert!(b.segments()[1].early && !a.segments()[1].early);
    // The segment before the early one may have been only in the page cache of the process
    // that wrote it: recovery syncs it too (in every build).
    assert_eq!(b.storage().syncs, a.storage().syncs + 1);
}

#[test]
fn a_torn_segment_with_an_early_successor_is_judged_only_where_built_in() {
    let mut mem = written(20, manual());
    flag_early(&mut mem, 1);
    cut_after(&mut mem, 0, 2);
    for &policy in policies() {
        let mut opened = mem.clone();
        let got = Wal::<&mut Mem, Fixed<16>>::open(
            &mut opened,
            manual().with_recovery(policy),
            &mut [0u8; 4096],
        )
        .map(|(_, report)| report);
        if cfg!(feature = "early-rotation") {
            // Judged by evidence: the records after the cut were written after a rotation
            // that synced segment 0 whole, so their `ack_gap` proves LSN 3 was durable.
            match (policy, got) {
                (RecoveryPolicy::Salvage, Ok(r)) => {
                    let loss = r.salvage.expect("a salvage");
                    assert_eq!((loss.case, loss.segment), (Case::SealedSegmentDamaged, 0));
                }
                (_, Err(OpenError::Corrupted(c))) => {
                    assert_eq!((c.case, c.segment), (Case::SealedSegmentDamaged, 0));
                }
                (_, other) => panic!("{policy:?}: {other:?}"),
            }
        } else {
            // Not judged at all, under every policy, and nothing is changed.
            assert_eq!(
                got.err(),
                Some(OpenError::EarlyRotationNotBuiltIn { segment: 0 }),
                "{policy:?}"
            );
            assert_eq!(opened.files, mem.files, "{policy:?}");
            assert_eq!(opened.syncs, mem.syncs, "{policy:?}");
        }
    }
    salvage_is_refused(&mem, manual());
}

#[cfg(not(feature = "early-rotation"))]
mod not_built_in {
    use super::*;
    use crate::inspect::{InspectError, inspect};

    #[test]
    fn early_rotation_is_refused_and_never_written() {
        assert_eq!(
            manual().with_early_rotation(true).validate(),
            Err(crate::ConfigError::EarlyRotationNotBuiltIn)
        );
        assert!(matches!(
            try_open(Mem::default(), manual().with_early_rotation(true)).err(),
            Some(OpenError::Config(
                crate::ConfigError::EarlyRotationNotBuiltIn
            ))
        ));
        let (mut wal, _) = open(Mem::default(), manual());
        for i in 1..=20 {
            wal.append(&payload(i)).unwrap();
            // Every rotation synced the old segment: a ticket names the active segment only.
            let t = wal.begin_sync().unwrap();
            assert_eq!(t.first, t.segment);
            wal.finish_sync(t, Ok(())).unwrap();
        }
        assert!(wal.segments().len() >= 3);
        assert!(wal.segments().iter().all(|s| !s.early));
    }

    #[test]
    fn inspection_says_the_build_cannot_judge_the_segment() {
        let mut mem = written(20, manual());
        flag_early(&mut mem, 2);
        cut_after(&mut mem, 1, 1);
        let got = inspect::<_, Fixed<16>>(&mem, &manual(), &mut [0u8; 4096], &mut |_| {});
        assert_eq!(
            got.err(),
            Some(InspectError::EarlyRotationNotBuiltIn { segment: 1 })
        );
        let e = OpenError::<mem::MemError>::EarlyRotationNotBuiltIn { segment: 1 };
        assert_eq!(
            std::format!("{e}"),
            "segment 1 is torn or damaged and its successor was created by an early rotation: \
             judging what is lost needs walden-core's feature early-rotation, not in this build; \
             open the log with a build that has it (nothing was changed)"
        );
        assert_eq!(
            embedded_io::Error::kind(&e),
            embedded_io::ErrorKind::Unsupported
        );
    }

    #[test]
    fn without_the_flag_the_same_damage_is_judged_by_the_strict_rule() {
        // What this build would say if it ignored the flag: the same log without it is judged
        // by the strict rule, damage to a sealed segment.
        let mut mem = written(20, manual());
        cut_after(&mut mem, 0, 2);
        assert!(matches!(
            try_open(mem, manual()).err(),
            Some(OpenError::Corrupted(c)) if c.case == Case::SealedSegmentDamaged && c.segment == 0
        ));
    }
}
