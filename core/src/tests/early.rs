//! Early rotation (`Config::early_rotation`, docs/FORMAT.md "Early successors"): the old
//! segment is not synced on the writer's path, the durable LSN waits for it, and recovery
//! judges its end by `ack_gap` evidence.

use super::*;
use crate::format::SEGMENT_HEADER_LEN;
use crate::{Case, Lsn, OpenError, RecoveryPolicy, SyncPolicy};

fn early() -> Config {
    small()
        .with_sync_policy(SyncPolicy::Manual)
        .with_early_rotation(true)
}

/// A log whose records 1..=n are appended with `cfg`, synced after record `synced_at` (if any).
fn written(n: u64, cfg: Config, synced_at: Option<u64>) -> TestWal {
    let (mut wal, _) = open(Mem::default(), cfg);
    for i in 1..=n {
        wal.append(&payload(i)).unwrap();
        if Some(i) == synced_at {
            wal.sync().unwrap();
        }
    }
    wal
}

#[test]
fn an_early_rotation_syncs_no_old_segment_and_the_durable_lsn_waits_for_it() {
    let mut wal = written(20, early(), None);
    assert!(wal.segments().len() >= 3, "{:?}", wal.segments().len());
    assert!(wal.segments()[1..].iter().all(|s| s.early));
    // Only the successors' headers were synced (one each), never an old segment.
    let headers = wal.segments().len() as u32; // segment 0's at open, and one per rotation
    assert_eq!(wal.storage().syncs, headers);
    assert_eq!(wal.durable_lsn(), Lsn::ZERO);
    assert_eq!(wal.pending, Some(0));
    // A ticket covers the pending segments first.
    let t = wal.begin_sync().unwrap();
    assert_eq!((t.first, t.segment), (0, wal.segments().last().unwrap().id));
    assert_eq!(wal.finish_sync(t, Ok(())).unwrap(), Lsn(20));
    assert_eq!(wal.pending, None);
    // And `sync` syncs every pending segment, then the active one.
    for i in 21..=40 {
        wal.append(&payload(i)).unwrap();
    }
    let before = wal.storage().syncs;
    let pending = wal.segments().len() as u32
        - wal
            .segments()
            .iter()
            .position(|s| Some(s.id) == wal.pending)
            .unwrap() as u32;
    assert_eq!(wal.sync().unwrap(), Lsn(40));
    assert_eq!(wal.storage().syncs - before, pending);
}

#[test]
fn a_ticket_issued_before_a_rotation_leaves_its_segment_pending() {
    let mut wal = written(2, early(), None);
    let t = wal.begin_sync().unwrap();
    assert_eq!(t.first, t.segment);
    let before = wal.segments().len();
    let mut i = 3;
    while wal.segments().len() == before {
        wal.append(&payload(i)).unwrap();
        i += 1;
    }
    // The ticket's segment got more records and a seal after the ticket: still pending.
    wal.finish_sync(t, Ok(())).unwrap();
    assert_eq!(wal.durable_lsn(), Lsn(2));
    assert_eq!(wal.pending, Some(t.segment));
}

#[test]
fn a_torn_early_predecessor_nobody_vouches_for_is_a_torn_tail_across_segments() {
    let wal = written(20, early(), None);
    let segments = wal.segments().len();
    let mut mem = wal.into_storage();
    cut_after(&mut mem, 0, 2);
    let (wal, report) = open(mem.clone(), early());
    let cut = report.cut.expect("a cut");
    assert_eq!(
        (cut.case, cut.segment, cut.first_lsn),
        (Case::TornTail, 0, Lsn(3))
    );
    assert_eq!(cut.segments_removed as usize, segments - 1);
    assert_eq!(wal.segments().len(), 1);
    assert_eq!(
        wal.storage()
            .files
            .keys()
            .copied()
            .collect::<std::vec::Vec<_>>(),
        [0]
    );
    assert_eq!(all(&wal).len(), 2);
    assert!(
        std::format!("{report}").contains("later segments (no record proves them acknowledged)")
    );
    // Strict refuses what TolerateTornTail cuts.
    let strict = early().with_recovery(RecoveryPolicy::Strict);
    assert!(matches!(
        try_open(mem, strict).err(),
        Some(OpenError::Corrupted(c)) if c.case == Case::TornTail && c.segment == 0
    ));
}

#[test]
fn a_torn_early_predecessor_a_later_record_vouches_for_is_refused() {
    // Synced once every record is in: the later records' ack_gap proves segment 0 durable.
    let mut wal = written(20, early(), Some(20));
    for i in 21..=24 {
        wal.append(&payload(i)).unwrap();
    }
    let mut mem = wal.into_storage();
    cut_after(&mut mem, 0, 2);
    assert!(matches!(
        try_open(mem, early()).err(),
        Some(OpenError::Corrupted(c)) if c.case == Case::SealedSegmentDamaged && c.segment == 0
    ));
}

#[test]
fn without_the_early_flag_a_successor_still_proves_its_predecessor_whole() {
    let cfg = small().with_sync_policy(SyncPolicy::Manual);
    let wal = written(20, cfg, None);
    assert!(wal.segments().iter().all(|s| !s.early));
    let mut mem = wal.into_storage();
    cut_after(&mut mem, 0, 2);
    // Under either setting: the flag on disk decides, not the configuration.
    for cfg in [cfg, early()] {
        assert!(matches!(
            try_open(mem.clone(), cfg).err(),
            Some(OpenError::Corrupted(c)) if c.case == Case::SealedSegmentDamaged
        ));
    }
}

#[test]
fn recovery_syncs_every_segment_with_an_early_successor() {
    let mut mem = written(20, early(), None).into_storage();
    mem.syncs = 0;
    let n = mem.files.len() as u32;
    assert!(n >= 3);
    mem.synced.clear();
    let ids: std::vec::Vec<u64> = mem.files.keys().copied().collect();
    let (wal, _) = open(mem, early());
    // Every predecessor, then the newest segment: one sync each.
    assert_eq!(wal.storage().syncs, n);
    let mut synced = wal.storage().synced.clone();
    synced.sort_unstable();
    assert_eq!(synced, ids);
    assert_eq!(wal.pending, None);
}

#[test]
fn a_sync_counts_every_pending_segment_it_syncs() {
    let mut wal = written(20, early(), None);
    let n = wal.segments().len() as u64;
    assert!(wal.pending.is_some() && n >= 3);
    let before = wal.counters().syncs;
    wal.sync().unwrap();
    // The pending segments (all but the active one), then the active one.
    assert_eq!(wal.counters().syncs - before, n);
    assert_eq!(wal.pending, None);
}

#[test]
fn a_ticket_covering_pending_segments_leaves_its_own_pending_after_a_rotation() {
    let mut wal = written(20, early(), None);
    let first = wal.pending.expect("pending segments");
    let t = wal.begin_sync().unwrap();
    assert_eq!(
        (t.first, t.segment),
        (first, wal.segments().last().unwrap().id)
    );
    let before = wal.segments().len();
    let mut i = 21;
    while wal.segments().len() == before {
        wal.append(&payload(i)).unwrap();
        i += 1;
    }
    // Everything before the ticket's segment is now synced whole; the ticket's segment got
    // more records and a seal after the ticket, so it is the pending one.
    wal.finish_sync(t, Ok(())).unwrap();
    assert_eq!(wal.pending, Some(t.segment));
    // Without a rotation after the ticket nothing stays pending.
    let mut wal = written(20, early(), None);
    let t = wal.begin_sync().unwrap();
    wal.finish_sync(t, Ok(())).unwrap();
    assert_eq!(wal.pending, None);
    assert_eq!(wal.durable_lsn(), Lsn(20));
}

/// The newest segment's creation did not finish (an unreadable header, zeros after it) and
/// its predecessor is torn: with `early_rotation` that successor may have been created early,
/// so the tear is judged by evidence (a torn tail across segments); a log configured without
/// it keeps the strict rule (the successor proves the predecessor whole), and so does an
/// unreadable header with data after it.
#[test]
fn an_unfinished_newest_successor_counts_as_early_only_under_early_rotation() {
    let wal = written(20, early(), None);
    let ids: std::vec::Vec<u64> = wal.segments().iter().map(|s| s.id).collect();
    let (newest, before) = (ids[ids.len() - 1], ids[ids.len() - 2]);
    let mut mem = wal.into_storage();
    cut_after(&mut mem, before, 1);
    // A torn record after the first: some bytes of a header.
    mem.files
        .get_mut(&before)
        .unwrap()
        .extend_from_slice(&[7; 10]);
    let unfinished = {
        let mut m = mem.clone();
        m.files.insert(newest, std::vec![0xa5; SEGMENT_HEADER_LEN]);
        m
    };
    let (_, report) = open(unfinished.clone(), early());
    let cut = report.cut.unwrap_or_else(|| panic!("{report:?}"));
    assert_eq!(
        (cut.case, cut.segment, cut.segments_removed),
        (Case::TornTail, before, 1)
    );
    let strict = early().with_early_rotation(false);
    assert!(matches!(
        try_open(unfinished, strict).err(),
        Some(OpenError::Corrupted(_))
    ));
    // An unreadable header with bytes after it is no unfinished creation.
    let mut written_after = mem.clone();
    let mut bytes = std::vec![0xa5; SEGMENT_HEADER_LEN];
    bytes.extend_from_slice(&[1, 2, 3, 4]);
    written_after.files.insert(newest, bytes);
    assert!(matches!(
        try_open(written_after, early()).err(),
        Some(OpenError::Corrupted(_))
    ));
}

#[test]
fn truncations_sync_pending_segments_first() {
    let mut wal = written(20, early(), None);
    wal.truncate_back(Lsn(19)).unwrap();
    assert_eq!(wal.pending, None);
    let mut wal = written(20, early(), None);
    let second = wal.segments()[1].first_lsn;
    assert_eq!(wal.truncate_front(second).unwrap(), 1);
    assert_eq!(wal.pending, None);
}

#[test]
fn damage_a_later_record_vouches_for_in_the_newest_early_segment_is_mid_log_corruption() {
    // The newest segment is judged as the newest whatever its own flag: damage that a later
    // record of it proves durable is corruption in the middle of the log.
    let mut wal = written(20, early(), None);
    let mut i = 21;
    loop {
        wal.sync().unwrap();
        let before = wal.segments().len();
        wal.append(&payload(i)).unwrap();
        let newest = *wal.segments().last().unwrap();
        if wal.segments().len() == before && newest.first_lsn < Lsn(i) {
            break;
        }
        i += 1;
    }
    let newest = *wal.segments().last().unwrap();
    assert!(newest.early);
    let mut mem = wal.into_storage();
    // A payload byte of the newest segment's first record (synced before the last append).
    mem.files.get_mut(&newest.id).unwrap()[64 + 32] ^= 1;
    assert!(matches!(
        try_open(mem, early()).err(),
        Some(OpenError::Corrupted(c)) if c.case == Case::MidLogCorruption && c.segment == newest.id
    ));
}

/// A torn tail across segments removes the later segments of this log, never another log's:
/// a later segment whose valid header names another log is refused as foreign, and nothing
/// is changed.
#[test]
fn a_torn_tail_across_segments_never_removes_another_logs_segment() {
    let wal = written(20, early(), None);
    let newest = wal.segments().last().unwrap().id;
    let mut mem = wal.into_storage();
    cut_after(&mut mem, 0, 2);
    let f = mem.files.get_mut(&newest).unwrap();
    let mut h = crate::format::SegmentHeader::decode(&f[..SEGMENT_HEADER_LEN]).unwrap();
    h.log_id ^= 1;
    f[..SEGMENT_HEADER_LEN].copy_from_slice(&h.encode());
    let mut opened = mem.clone();
    let got = Wal::<&mut Mem, Fixed<16>>::open(&mut opened, early(), &mut [0u8; 4096])
        .map(|(_, report)| report);
    assert!(
        matches!(&got, Err(OpenError::Corrupted(c)) if c.case == Case::ForeignSegment && c.segment == newest),
        "{got:?}"
    );
    assert_eq!(opened.files, mem.files);
}
