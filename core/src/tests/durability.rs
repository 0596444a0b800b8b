//! What "durable" means at the edges: syncs the adapter performs itself, sync policies counting
//! from the last sync, rotation's syncs, and logs that began as format version 1.

use super::*;
use crate::format::{SEGMENT_HEADER_LEN, SegmentHeader};
use crate::{Lsn, SyncPolicy};

fn manual() -> Config {
    small().with_sync_policy(SyncPolicy::Manual)
}

#[test]
fn a_sync_after_a_partial_adapter_sync_still_reaches_the_medium() {
    let (mut wal, _) = open(Mem::default(), manual());
    wal.append(b"a").unwrap();
    let ticket = wal.begin_sync().unwrap();
    assert_eq!((ticket.segment, ticket.lsn), (0, Lsn(1)));
    wal.append(b"b").unwrap(); // not covered by the ticket
    let before = wal.storage().syncs;
    assert_eq!(wal.finish_sync(ticket, Ok(())).unwrap(), Lsn(1));
    assert_eq!(
        wal.storage().syncs,
        before,
        "finish_sync reports, it does not sync"
    );
    // Record 2 was written after the adapter's sync began: only a real sync may vouch for it.
    assert_eq!(wal.sync().unwrap(), Lsn(2));
    assert_eq!(wal.storage().syncs, before + 1, "sync() skipped the fsync");
    assert_eq!(wal.counters().syncs, 2);
    // Nothing new: no fsync needed, and the durable LSN stays.
    assert_eq!(wal.sync().unwrap(), Lsn(2));
    assert_eq!(wal.storage().syncs, before + 1);
}

#[test]
fn a_full_adapter_sync_leaves_nothing_to_sync_and_restarts_the_policy_count() {
    let cfg = small().with_sync_policy(SyncPolicy::EveryRecords(3));
    let (mut wal, _) = open(Mem::default(), cfg);
    wal.append(b"a").unwrap();
    wal.append(b"b").unwrap();
    let ticket = wal.begin_sync().unwrap();
    assert_eq!(wal.finish_sync(ticket, Ok(())).unwrap(), Lsn(2));
    let before = wal.storage().syncs;
    assert_eq!(wal.sync().unwrap(), Lsn(2));
    assert_eq!(
        wal.storage().syncs,
        before,
        "everything was durable already"
    );
    // The policy counts records since the last sync, the adapter's included.
    wal.append(b"c").unwrap();
    wal.append(b"d").unwrap();
    assert_eq!(wal.durable_lsn(), Lsn(2));
    wal.append(b"e").unwrap();
    assert_eq!(wal.durable_lsn(), Lsn(5));
    // Each record counts its payload and its 32-byte header: 38 + 36 bytes reach 74.
    let cfg = small().with_sync_policy(SyncPolicy::EveryBytes(74));
    let (mut wal, _) = open(Mem::default(), cfg);
    wal.append(b"123456").unwrap();
    let ticket = wal.begin_sync().unwrap();
    wal.finish_sync(ticket, Ok(())).unwrap();
    wal.append(b"789012").unwrap();
    assert_eq!(wal.durable_lsn(), Lsn(1), "38 bytes since the last sync");
    wal.append(b"3456").unwrap();
    assert_eq!(wal.durable_lsn(), Lsn(3));
    // Empty records count their headers: a stream of them is synced too.
    let cfg = small().with_sync_policy(SyncPolicy::EveryBytes(64));
    let (mut wal, _) = open(Mem::default(), cfg);
    wal.append(b"").unwrap();
    assert_eq!(wal.durable_lsn(), Lsn(0));
    wal.append(b"").unwrap();
    assert_eq!(wal.durable_lsn(), Lsn(2), "two empty records are 64 bytes");
    // And every record of a batch counts its header.
    wal.append_batch(&[b"", b""]).unwrap();
    assert_eq!(
        wal.durable_lsn(),
        Lsn(4),
        "a batch of two empty records is 64 bytes"
    );
}

#[test]
fn a_ticket_never_moves_durable_backwards_or_past_the_log() {
    let (mut wal, _) = open(Mem::default(), manual());
    wal.append(b"a").unwrap();
    let early = wal.begin_sync().unwrap();
    wal.append(b"b").unwrap();
    assert_eq!(wal.sync().unwrap(), Lsn(2));
    // A ticket that finishes after a later sync does not take durable back to 1.
    assert_eq!(wal.finish_sync(early, Ok(())).unwrap(), Lsn(2));
    assert_eq!(wal.durable_lsn(), Lsn(2));
    // A rewind below a ticket's LSN: the ticket is void.
    let t = wal.begin_sync().unwrap();
    wal.truncate_back(Lsn(1)).unwrap();
    assert_eq!(wal.finish_sync(t, Ok(())).unwrap(), Lsn(1));
    assert_eq!(wal.durable_lsn(), Lsn(1));
}

#[test]
fn sync_policies_sync_exactly_at_their_thresholds() {
    let (mut wal, _) = open(
        Mem::default(),
        small().with_sync_policy(SyncPolicy::EveryRecords(2)),
    );
    wal.append_batch(&[b"a", b"b"]).unwrap();
    assert_eq!(
        wal.durable_lsn(),
        Lsn(2),
        "a batch of 2 reaches a threshold of 2"
    );
    let (mut wal, _) = open(
        Mem::default(),
        small().with_sync_policy(SyncPolicy::EveryBytes(68)),
    );
    wal.append(b"abc").unwrap();
    assert_eq!(wal.durable_lsn(), Lsn(0));
    wal.append(b"d").unwrap();
    assert_eq!(
        wal.durable_lsn(),
        Lsn(2),
        "exactly 68 bytes (two 32-byte headers and 4 of payload) reach a threshold of 68"
    );
    // Always: every append syncs the medium before it returns.
    let (mut wal, _) = open(Mem::default(), small());
    let before = wal.storage().syncs;
    wal.append(b"x").unwrap();
    assert_eq!(wal.storage().syncs, before + 1);
    assert_eq!(wal.counters().syncs, 1);
}

#[test]
fn counters_count_what_was_done() {
    let (mut wal, _) = open(Mem::default(), manual());
    wal.append(b"abc").unwrap();
    wal.append_batch(&[b"de", b"f"]).unwrap();
    wal.append_batch(&[b"g"]).unwrap();
    let c = wal.counters();
    assert_eq!((c.appends, c.bytes_appended, c.batches), (4, 7, 1));
    assert_eq!(c.syncs, 0);
    wal.sync().unwrap();
    assert_eq!(wal.counters().syncs, 1);
}

/// Rewrites every segment header of `mem` as format version 1 (no `first_segment`). Only valid
/// for logs without metadata records (no rotation, no start slots).
fn as_version_1(mem: &mut Mem) {
    for f in mem.files.values_mut() {
        let mut h = SegmentHeader::decode(f).unwrap();
        h.version = 1;
        h.first_segment = None;
        f[..SEGMENT_HEADER_LEN].copy_from_slice(&h.encode());
    }
}

#[test]
fn a_version_1_log_rotates_without_writing_metadata_into_its_old_segment() {
    let (mut wal, _) = open(Mem::default(), small());
    for i in 1..=3 {
        wal.append(&payload(i)).unwrap();
    }
    let mut mem = wal.into_storage();
    as_version_1(&mut mem);
    let v1_len = mem.files[&0].len();
    let (mut wal, report) = open(mem, small());
    assert!(report.is_clean(), "{report}");
    assert_eq!(wal.segments()[0].version(), 1);
    for i in 4..=30 {
        wal.append(&payload(i)).unwrap();
    }
    assert!(wal.segments().len() > 2);
    let seg0 = wal.segments()[0];
    assert!(!seg0.sealed, "version-1 segments have no seal");
    assert_eq!(wal.segments()[1].version(), crate::format::FORMAT_VERSION);
    assert!(
        wal.segments()[1].sealed,
        "newer segments of the same log do"
    );
    let mem = wal.into_storage();
    assert!(mem.files[&0].len() > v1_len);
    let (wal, report) = open(mem, small().with_recovery(crate::RecoveryPolicy::Strict));
    assert!(report.is_clean(), "{report}");
    assert_eq!(all(&wal).len(), 30);
    assert!(!wal.segments()[0].sealed && wal.segments()[1].sealed);
}

#[test]
fn a_version_2_segment_is_sealed_at_rotation() {
    // Version 2 introduced metadata records: a log written by such a build seals its segments
    // as ours do (only version 1 goes without).
    let (mut wal, _) = open(Mem::default(), small());
    wal.append(&payload(1)).unwrap();
    let mut mem = wal.into_storage();
    for f in mem.files.values_mut() {
        let mut h = SegmentHeader::decode(f).unwrap();
        h.version = crate::format::VERSION_WITH_META;
        f[..SEGMENT_HEADER_LEN].copy_from_slice(&h.encode());
    }
    let (mut wal, report) = open(mem, small());
    assert!(report.is_clean(), "{report}");
    assert_eq!(
        wal.segments()[0].version(),
        crate::format::VERSION_WITH_META
    );
    for i in 2..=30 {
        wal.append(&payload(i)).unwrap();
    }
    assert!(
        wal.segments()[0].sealed,
        "the version-2 segment has its seal"
    );
    let (wal, report) = open(
        wal.into_storage(),
        small().with_recovery(crate::RecoveryPolicy::Strict),
    );
    assert!(report.is_clean(), "{report}");
    assert_eq!(all(&wal).len(), 30);
    assert!(wal.segments()[0].sealed);
}

#[test]
fn an_interval_policy_is_refused_by_a_core_log() {
    // A core log has no timer: acting as `Manual` would silently ignore the setting.
    let config = small().with_sync_policy(SyncPolicy::Interval(SyncPolicy::DEFAULT_INTERVAL));
    let mut scratch = [0u8; 4096];
    let mem = Mem::default();
    match Wal::<Mem>::open(mem, config, &mut scratch) {
        Err(crate::OpenError::Config(crate::ConfigError::NeedsFlusher)) => {}
        other => panic!("expected NeedsFlusher, got {:?}", other.map(|(_, r)| r)),
    }
    // Every other policy opens.
    for policy in [
        SyncPolicy::Always,
        SyncPolicy::Manual,
        SyncPolicy::EveryRecords(2),
        SyncPolicy::EveryBytes(10),
    ] {
        let (wal, _) = open(Mem::default(), small().with_sync_policy(policy));
        assert_eq!(wal.config().sync_policy, policy);
    }
}
