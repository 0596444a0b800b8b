//! The conformance suite: written once over core's `Storage` trait and run over every adapter —
//! files and the simulator in `walden-tests`, the WASI adapter inside a wasm guest under
//! wasmtime (`wasm-demo`). Each case panics on a violation, with a message saying what broke.
//!
//! A [`Medium`] opens and closes "the same place" (a directory, or a simulated disk). Damage is
//! done through the `Storage` trait itself (write, truncate, sync), so every case runs unchanged
//! on every medium.

use walden_core::{
    AppendError, Case, Config, Fixed, Lsn, OpenError, RecoveryPolicy, RecoveryReport, SegmentId,
    Storage, SyncPolicy, TruncateError, Wal,
};

/// The segment table size the suite uses.
pub const SEGMENTS: usize = 64;

/// A place a log lives, which can be opened again after closing.
pub trait Medium {
    /// The storage it yields.
    type S: Storage;
    /// Opens the medium (the first call starts empty).
    fn open(&mut self) -> Self::S;
    /// Closes it: like a process exit (buffered bytes reach the OS; nothing else is promised).
    fn close(&mut self, storage: Self::S);
}

/// The log type the suite drives.
pub type TestWal<M> = Wal<<M as Medium>::S, Fixed<SEGMENTS>>;

/// Small segments, and records up to a segment's size (the suite's are at most 320 bytes): a
/// medium whose segments cannot grow (flash) refuses a configuration whose largest record
/// would not fit one (`ConfigError::LargerThanStorage`).
fn config() -> Config {
    Config::default()
        .with_segment_size(1024)
        .with_max_record_size(1024)
}

/// What opening the log on a medium gives.
pub type Opened<M> =
    Result<(TestWal<M>, RecoveryReport), OpenError<<<M as Medium>::S as Storage>::Error>>;

/// Opens the log on the medium.
pub fn open<M: Medium>(m: &mut M, cfg: Config) -> Opened<M> {
    let mut scratch = vec![0u8; 8192];
    Wal::open(m.open(), cfg, &mut scratch)
}

fn reopen<M: Medium>(m: &mut M, wal: TestWal<M>, cfg: Config) -> (TestWal<M>, RecoveryReport) {
    m.close(wal.into_storage());
    open(m, cfg).expect("reopen")
}

/// The payload the suite writes for LSN `i`: varied lengths, recognisable bytes.
pub fn payload(i: u64) -> Vec<u8> {
    let mut p = format!("walden record {i} ").into_bytes();
    p.resize(20 + (i as usize * 37) % 300, (i % 251) as u8);
    p
}

/// Every record of the log, from its first LSN.
pub fn records<S: Storage>(wal: &Wal<S, Fixed<SEGMENTS>>) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut r = wal.reader(wal.first_lsn()).expect("reader");
    let mut buf = vec![0u8; 4096];
    while let Some(rec) = r.next(&mut buf).expect("read") {
        out.push((rec.lsn.0, rec.payload.to_vec()));
    }
    out
}

fn fill<S: Storage>(wal: &mut Wal<S, Fixed<SEGMENTS>>, from: u64, to: u64) {
    for i in from..=to {
        assert_eq!(wal.append(&payload(i)).expect("append"), Lsn(i));
    }
}

fn expected(range: core::ops::RangeInclusive<u64>) -> Vec<(u64, Vec<u8>)> {
    range.map(|i| (i, payload(i))).collect()
}

/// Damages one byte of a segment through the storage itself, durably.
fn poke<S: Storage>(s: &mut S, id: SegmentId, offset: u64) {
    let mut b = [0u8; 1];
    assert_eq!(s.read(id, offset, &mut b).ok(), Some(1));
    b[0] ^= 0x40;
    s.write(id, offset, &b).expect("write");
    s.sync(id).expect("sync");
}

fn segment_ids<S: Storage>(s: &S) -> Vec<SegmentId> {
    let mut ids = Vec::new();
    s.list(&mut |id| {
        if !walden_core::raw::is_start_slot(id) {
            ids.push(id);
        }
    })
    .expect("list");
    ids.sort_unstable();
    ids
}

/// Open, append, reopen: every record back, byte for byte.
pub fn append_and_reopen<M: Medium>(m: &mut M) {
    let (mut wal, report) = open(m, config()).expect("open");
    assert!(report.created);
    fill(&mut wal, 1, 50);
    assert_eq!(wal.durable_lsn(), Lsn(50));
    let (wal, report) = reopen(m, wal, config());
    assert!(report.is_clean(), "{report}");
    assert_eq!((report.records, report.last_lsn), (50, Lsn(50)));
    assert_eq!(records(&wal), expected(1..=50));
}

/// Batches are dense, atomic on reopen, readable from any LSN (also inside a batch).
pub fn batches_and_reads_from_any_lsn<M: Medium>(m: &mut M) {
    let (mut wal, _) = open(m, config()).expect("open");
    fill(&mut wal, 1, 3);
    let parts: Vec<Vec<u8>> = (4..=9).map(payload).collect();
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    assert_eq!(wal.append_batch(&refs).expect("batch"), Lsn(4));
    fill(&mut wal, 10, 12);
    let (wal, _) = reopen(m, wal, config());
    for from in [1, 4, 6, 9, 12] {
        let mut r = wal.reader(Lsn(from)).expect("reader");
        let mut buf = vec![0u8; 512];
        let first = r.next(&mut buf).expect("read").expect("record");
        assert_eq!((first.lsn, first.payload), (Lsn(from), &payload(from)[..]));
    }
    assert_eq!(records(&wal), expected(1..=12));
}

/// Manual sync: the durable LSN moves only on `sync`.
pub fn manual_sync_moves_the_durable_lsn<M: Medium>(m: &mut M) {
    let cfg = config().with_sync_policy(SyncPolicy::Manual);
    let (mut wal, _) = open(m, cfg).expect("open");
    fill(&mut wal, 1, 5);
    assert_eq!(wal.durable_lsn(), Lsn(0));
    assert_eq!(wal.sync().expect("sync"), Lsn(5));
    assert_eq!(wal.durable_lsn(), Lsn(5));
    let (wal, _) = reopen(m, wal, cfg);
    assert_eq!(records(&wal), expected(1..=5));
}

/// Rotation at the segment size; retention removes whole old segments only.
pub fn rotation_and_retention<M: Medium>(m: &mut M) {
    let (mut wal, _) = open(m, config()).expect("open");
    fill(&mut wal, 1, 60);
    let segs = wal.segments().to_vec();
    assert!(segs.len() >= 4, "1 KiB segments rotate");
    assert!(wal.counters().rotations >= 3);
    let low = segs[2].first_lsn;
    assert_eq!(wal.truncate_front(low.next()).expect("truncate_front"), 2);
    assert_eq!(segment_ids(wal.storage()).len(), segs.len() - 2);
    let (wal, report) = reopen(m, wal, config());
    assert!(report.is_clean(), "{report}");
    assert_eq!(wal.first_lsn(), low);
    assert_eq!(records(&wal), expected(low.0..=60));
}

/// Rewind (raft-style overwrite) is durable and never splits a batch.
pub fn rewind_and_overwrite<M: Medium>(m: &mut M) {
    let (mut wal, _) = open(m, config()).expect("open");
    fill(&mut wal, 1, 40);
    wal.append_batch(&[b"x1", b"x2"]).expect("batch");
    assert!(matches!(
        wal.truncate_back(Lsn(41)),
        Err(TruncateError::InsideBatch {
            batch_start: Lsn(41)
        })
    ));
    wal.truncate_back(Lsn(7)).expect("truncate_back");
    fill(&mut wal, 8, 12);
    let (wal, report) = reopen(m, wal, config());
    assert!(report.is_clean(), "{report}");
    assert_eq!(records(&wal), expected(1..=12));
}

/// A torn tail (the last record cut short) is cut and reported; everything before survives.
pub fn torn_tail_is_cut<M: Medium>(m: &mut M) {
    let (mut wal, _) = open(m, config()).expect("open");
    fill(&mut wal, 1, 10);
    let seg = *wal.segments().last().expect("segment");
    let mut s = wal.into_storage();
    s.truncate(seg.id, seg.end - 5).expect("truncate");
    s.sync(seg.id).expect("sync");
    m.close(s);
    let (wal, report) = open(m, config()).expect("open");
    let cut = report.cut.expect("cut reported");
    assert_eq!((cut.case, cut.first_lsn), (Case::TornTail, Lsn(10)));
    assert_eq!(records(&wal), expected(1..=9));
    let (wal, report) = reopen(m, wal, config());
    assert!(report.is_clean(), "recovery is idempotent: {report}");
    m.close(wal.into_storage());
    let strict = config().with_recovery(RecoveryPolicy::Strict);
    assert!(open(m, strict).is_ok());
}

/// A flipped bit in an acknowledged record is refused by default, salvaged on request.
pub fn mid_log_corruption<M: Medium>(m: &mut M) {
    let (mut wal, _) = open(m, config()).expect("open");
    fill(&mut wal, 1, 30);
    let segs = wal.segments().to_vec();
    let mut s = wal.into_storage();
    poke(&mut s, segs[0].id, 64 + 40);
    let before = segment_ids(&s);
    m.close(s);
    match open(m, config()) {
        Err(OpenError::Corrupted(c)) => {
            assert_eq!(
                (c.case, c.segment),
                (Case::SealedSegmentDamaged, segs[0].id)
            );
        }
        Err(e) => panic!("unexpected error {e:?}"),
        Ok((_, r)) => panic!("corruption accepted: {r}"),
    }
    let s = m.open();
    assert_eq!(segment_ids(&s), before, "the refused open deleted nothing");
    m.close(s);
    let salvage = config().with_recovery(RecoveryPolicy::Salvage);
    let (wal, report) = open(m, salvage).expect("salvage");
    let loss = report.salvage.expect("loss reported");
    assert_eq!(loss.first_lost, Lsn(1));
    assert!(records(&wal).is_empty());
}

/// A segment missing from the middle of the sequence is refused, and nothing is deleted.
pub fn missing_segment_is_refused<M: Medium>(m: &mut M) {
    let (mut wal, _) = open(m, config()).expect("open");
    fill(&mut wal, 1, 60);
    let id = wal.segments()[2].id;
    let mut s = wal.into_storage();
    s.remove(id).expect("remove");
    s.sync_dir().expect("sync_dir");
    let before = segment_ids(&s);
    m.close(s);
    match open(m, config()) {
        Err(OpenError::Corrupted(c)) => assert_eq!(c.case, Case::MissingSegment),
        other => panic!("expected MissingSegment, got {:?}", other.map(|(_, r)| r)),
    }
    let s = m.open();
    assert_eq!(segment_ids(&s), before);
    m.close(s);
}

/// Oversized records are refused without writing or poisoning.
pub fn bad_input_is_refused_cleanly<M: Medium>(m: &mut M) {
    let cfg = config().with_max_record_size(256);
    let (mut wal, _) = open(m, cfg).expect("open");
    assert!(matches!(
        wal.append(&[0u8; 257]),
        Err(AppendError::RecordTooLarge { len: 257, max: 256 })
    ));
    assert_eq!(wal.append(b"fine").expect("append"), Lsn(1));
    m.close(wal.into_storage());
    assert!(matches!(
        open::<M>(m, Config::default().with_segment_size(3)),
        Err(OpenError::Config(_))
    ));
}

/// A named case of the suite.
pub type NamedCase<M> = (&'static str, fn(&mut M));

/// Every case by name, for runners without libtest (the wasm guest): call each with a fresh medium.
pub fn cases<M: Medium>() -> [NamedCase<M>; 9] {
    [
        ("append_and_reopen", append_and_reopen::<M>),
        (
            "batches_and_reads_from_any_lsn",
            batches_and_reads_from_any_lsn::<M>,
        ),
        (
            "manual_sync_moves_the_durable_lsn",
            manual_sync_moves_the_durable_lsn::<M>,
        ),
        ("rotation_and_retention", rotation_and_retention::<M>),
        ("rewind_and_overwrite", rewind_and_overwrite::<M>),
        ("torn_tail_is_cut", torn_tail_is_cut::<M>),
        ("mid_log_corruption", mid_log_corruption::<M>),
        (
            "missing_segment_is_refused",
            missing_segment_is_refused::<M>,
        ),
        (
            "bad_input_is_refused_cleanly",
            bad_input_is_refused_cleanly::<M>,
        ),
    ]
}

/// Instantiates every case of the suite for one medium as `#[test]` functions.
#[macro_export]
macro_rules! conformance_suite {
    ($medium:expr) => {
        $crate::conformance_suite!(@cases $medium;
            append_and_reopen, batches_and_reads_from_any_lsn, manual_sync_moves_the_durable_lsn,
            rotation_and_retention, rewind_and_overwrite, torn_tail_is_cut, mid_log_corruption,
            missing_segment_is_refused, bad_input_is_refused_cleanly);
    };
    (@cases $medium:expr; $($case:ident),*) => {
        $(
            #[test]
            fn $case() {
                let mut m = $medium;
                $crate::$case(&mut m);
            }
        )*
    };
}
