//! `replay_segment`: recovery's scan of a segment, handing over each record of every complete
//! unit from the bytes it just verified (walden-std's `open_replaying`).

use std::vec;
use std::vec::Vec;

use super::*;
use crate::Lsn;
use crate::MIN_SCRATCH;
use crate::raw::{SegmentSummary, replay_segment, scan_segment};
use crate::tests::mem::MemError;
use crate::{SegmentId, Storage};

/// Records as a reader returns them.
type Records = Vec<(Lsn, Vec<u8>)>;

/// Singles and batches of three over many small segments; every record, read back.
fn filled() -> (Mem, Records) {
    let (mut wal, _) = open(Mem::default(), small());
    for i in 0..24u64 {
        if i % 4 == 3 {
            let batch = [payload(i), payload(i + 100), payload(i + 200)];
            let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
            wal.append_batch(&refs).unwrap();
        } else {
            wal.append(&payload(i)).unwrap();
        }
    }
    let mut all = Vec::new();
    let mut reader = wal.reader(wal.first_lsn()).unwrap();
    let mut buf = [0u8; 256];
    while let Some(r) = reader.next(&mut buf).unwrap() {
        all.push((r.lsn, r.payload.to_vec()));
    }
    (wal.into_storage(), all)
}

fn summary_of(mem: &Mem, id: u64) -> SegmentSummary {
    scan_segment(mem, id, &small(), &mut [0u8; 512])
        .unwrap()
        .unwrap()
}

/// What `replay_segment` hands over from segment `id` through a window of `room` bytes,
/// stopping after `stop_after` records if given, and its summary.
fn handed(
    st: &impl Storage,
    id: u64,
    room: usize,
    stop_after: Option<usize>,
) -> (SegmentSummary, Records) {
    let mut got = Vec::new();
    let (summary, header) = replay_segment(
        st,
        id,
        &small(),
        &mut vec![0u8; room],
        |_| true,
        |_, at, bytes| {
            got.push((at.header.lsn, bytes.to_vec()));
            stop_after != Some(got.len())
        },
    )
    .unwrap()
    .unwrap();
    assert_eq!(header.segment_id, id);
    (summary, got)
}

#[test]
fn every_record_of_every_segment_once_and_the_same_scan_as_recovery() {
    let (mem, all) = filled();
    let ids: Vec<u64> = mem.files.keys().copied().collect();
    assert!(ids.len() > 5, "{} segments", ids.len());
    // Windows from the smallest (a batch crosses refills and is read again) to large.
    for room in [MIN_SCRATCH, 300, 4096] {
        let mut together = Vec::new();
        for &id in &ids {
            let (summary, got) = handed(&mem, id, room, None);
            assert_eq!(summary, summary_of(&mem, id), "segment {id}, window {room}");
            together.extend(got);
        }
        // Seals are stepped over; every data record comes once, in order.
        assert_eq!(together, all, "window {room}");
    }
}

#[test]
fn nothing_is_handed_over_when_the_caller_says_so_and_the_scan_is_the_same() {
    let (mem, _) = filled();
    let mut calls = 0;
    let (summary, _) = replay_segment(
        &mem,
        1,
        &small(),
        &mut [0u8; 512],
        |_| false,
        |_, _, _| {
            calls += 1;
            true
        },
    )
    .unwrap()
    .unwrap();
    assert_eq!((calls, summary), (0, summary_of(&mem, 1)));
    // A scratch below the minimum, or a header that does not decode: nothing scanned.
    assert!(
        replay_segment(&mem, 1, &small(), &mut [0u8; 255], |_| true, |_, _, _| true)
            .unwrap()
            .is_none()
    );
    let mut bad = mem.clone();
    bad.files.get_mut(&1).unwrap()[3] ^= 1;
    assert!(
        replay_segment(&bad, 1, &small(), &mut [0u8; 512], |_| true, |_, _, _| true)
            .unwrap()
            .is_none()
    );
}

#[test]
fn handing_over_stops_when_asked_and_the_scan_goes_on() {
    let (mem, all) = filled();
    let (summary, got) = handed(&mem, 2, 4096, Some(2));
    assert_eq!(got.len(), 2);
    assert_eq!(summary, summary_of(&mem, 2));
    let first = crate::format::SegmentHeader::decode(&mem.files[&2])
        .unwrap()
        .first_lsn;
    let expected: Records = all
        .iter()
        .filter(|r| r.0 >= first)
        .take(2)
        .cloned()
        .collect();
    assert_eq!(got, expected);
}

#[test]
fn only_complete_units_before_damage_are_handed_over() {
    let (mem, all) = filled();
    // The newest segment, with a batch of three cut after its first record: the scan stops
    // at the batch, and none of its records is handed over.
    let (mut wal, _) = open(mem, small());
    let batch = [payload(900), payload(901), payload(902)];
    let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
    let first = wal.next_lsn();
    wal.append_batch(&refs).unwrap();
    let id = wal.segments().last().unwrap().id;
    let end = wal.segments().last().unwrap().end;
    let mut mem = wal.into_storage();
    let file = mem.files.get_mut(&id).unwrap();
    let cut = usize::try_from(end).unwrap() - 10;
    file.truncate(cut);
    file.resize(cut + 40, 0xa5);
    let (summary, got) = handed(&mem, id, 4096, None);
    assert!(!summary.is_clean());
    assert_eq!(summary.last_lsn(), first.prev());
    // Everything of this segment before the batch (`all` was read before it).
    let from = crate::format::SegmentHeader::decode(&mem.files[&id])
        .unwrap()
        .first_lsn;
    let before: Records = all
        .iter()
        .filter(|(lsn, _)| *lsn >= from)
        .cloned()
        .collect();
    assert_eq!(got, before);
}

#[test]
fn a_record_longer_than_the_window_ends_the_handing_over() {
    let cfg = small().with_segment_size(4096);
    let (mut wal, _) = open(Mem::default(), cfg);
    wal.append(b"short").unwrap();
    wal.append(&[7u8; 600]).unwrap();
    wal.append(b"after").unwrap();
    let mem = wal.into_storage();
    let mut got = Vec::new();
    let (summary, _) = replay_segment(
        &mem,
        0,
        &cfg,
        &mut [0u8; 512],
        |_| true,
        |_, at, _| {
            got.push(at.header.lsn);
            true
        },
    )
    .unwrap()
    .unwrap();
    assert_eq!(got, [Lsn(1)]);
    assert!(summary.is_clean());
    assert_eq!(summary.last_lsn(), Lsn(3));
}

#[test]
fn a_record_as_long_as_the_window_is_handed_over() {
    let cfg = small().with_segment_size(4096);
    let (mut wal, _) = open(Mem::default(), cfg);
    wal.append(&[7u8; 512]).unwrap();
    wal.append(b"after").unwrap();
    let mem = wal.into_storage();
    let mut got = Vec::new();
    replay_segment(
        &mem,
        0,
        &cfg,
        &mut [0u8; 512],
        |_| true,
        |_, at, bytes| {
            got.push((at.header.lsn, bytes.len()));
            true
        },
    )
    .unwrap()
    .unwrap();
    assert_eq!(got, [(Lsn(1), 512), (Lsn(2), 5)]);
}

#[test]
fn handing_a_batch_over_reads_nothing_again() {
    // Batches of three over a window a few batches long: a refill in the middle of a batch
    // starts at the batch, so the batch is still in the window when it is handed over, and
    // the replay reads exactly the bytes recovery's scan reads.
    let cfg = small().with_segment_size(64 * 1024);
    let (mut wal, _) = open(Mem::default(), cfg);
    // Miri interprets every instruction: fewer batches there.
    let batches = if cfg!(miri) { 30 } else { 200 };
    for i in 0..batches {
        let batch = [payload(i), payload(i + 1000), payload(i + 2000)];
        let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
        wal.append_batch(&refs).unwrap();
    }
    let mem = wal.into_storage();
    assert_eq!(mem.files.len(), 1);
    let read = |replay: bool| {
        mem.bytes_read.set(0);
        let mut n = 0;
        let mut scratch = [0u8; 700];
        if replay {
            replay_segment(
                &mem,
                0,
                &cfg,
                &mut scratch,
                |_| true,
                |_, _, _| {
                    n += 1;
                    true
                },
            )
            .unwrap()
            .unwrap();
        } else {
            scan_segment(&mem, 0, &cfg, &mut scratch).unwrap().unwrap();
        }
        (mem.bytes_read.get(), n)
    };
    let (scanned, _) = read(false);
    let (replayed, handed) = read(true);
    assert_eq!(handed, 3 * batches);
    assert_eq!(replayed, scanned);
    // And the scan itself reads each byte about once: a refill goes back at most a batch.
    let len = mem.files[&0].len() as u64;
    assert!(scanned < len + len / 2, "read {scanned} bytes of {len}");
}

/// Storage whose bytes at one offset read differently after the first read that covers them
/// (a header read afresh that changed after the scan verified it).
struct Changing<'m> {
    mem: &'m Mem,
    id: u64,
    at: u64,
    seen: core::cell::Cell<bool>,
}

impl Storage for Changing<'_> {
    type Error = MemError;

    fn list(&self, each: &mut dyn FnMut(SegmentId)) -> Result<(), MemError> {
        self.mem.list(each)
    }
    fn create(&mut self, _: SegmentId) -> Result<(), MemError> {
        unreachable!("replay_segment only reads")
    }
    fn remove(&mut self, _: SegmentId) -> Result<(), MemError> {
        unreachable!("replay_segment only reads")
    }
    fn len(&self, id: SegmentId) -> Result<u64, MemError> {
        self.mem.len(id)
    }
    fn read(&self, id: SegmentId, offset: u64, buf: &mut [u8]) -> Result<usize, MemError> {
        let n = self.mem.read(id, offset, buf)?;
        if id == self.id && (offset..offset + n as u64).contains(&self.at) {
            if self.seen.get() {
                buf[(self.at - offset) as usize] ^= 1;
            }
            self.seen.set(true);
        }
        Ok(n)
    }
    fn write(&mut self, _: SegmentId, _: u64, _: &[u8]) -> Result<(), MemError> {
        unreachable!("replay_segment only reads")
    }
    fn truncate(&mut self, _: SegmentId, _: u64) -> Result<(), MemError> {
        unreachable!("replay_segment only reads")
    }
    fn sync(&mut self, _: SegmentId) -> Result<(), MemError> {
        unreachable!("replay_segment only reads")
    }
    fn sync_dir(&mut self) -> Result<(), MemError> {
        unreachable!("replay_segment only reads")
    }
}

#[test]
fn a_header_read_afresh_is_verified_again_before_it_is_handed_over() {
    // Batches of four through the smallest window: a batch crossing a refill (at any of its
    // records) is read again from its first record, whose header the scan verified in the
    // window before. Its length field reads one off the second time. The hand-over checks
    // that header's checksum again (it trusts only headers still in the bytes the scan
    // verified), so it stops there: nothing handed over differs from what was written.
    let cfg = small().with_segment_size(64 * 1024);
    let (mut wal, _) = open(Mem::default(), cfg);
    let mut written = Vec::new();
    for i in 0..20 {
        let batch: Vec<Vec<u8>> = (0..4).map(|k| payload(i * 1000 + k * k * 700)).collect();
        let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
        let first = wal.append_batch(&refs).unwrap();
        written.extend((0..4).map(|k| (Lsn(first.0 + k), batch[k as usize].clone())));
    }
    let mem = wal.into_storage();
    let file = &mem.files[&0];
    // The offset of every fourth record's length field: each batch's first record.
    let mut firsts = Vec::new();
    let mut at = crate::format::SEGMENT_HEADER_LEN;
    for n in 0..written.len() {
        if n % 4 == 0 {
            firsts.push(at + crate::format::rec::LENGTH);
        }
        let len = u32::from_le_bytes(file[at + 4..at + 8].try_into().unwrap()) as usize;
        at += crate::format::RECORD_HEADER_LEN + len;
    }
    let mut stopped = 0;
    for &first in &firsts {
        let changing = Changing {
            mem: &mem,
            id: 0,
            at: first as u64,
            seen: core::cell::Cell::new(false),
        };
        let (_, got) = handed(&changing, 0, MIN_SCRATCH, None);
        assert_eq!(got[..], written[..got.len()], "length at {first} changed");
        if got.len() < written.len() {
            stopped += 1;
        }
    }
    // Some batches were read again (the check above was put to the test), not all.
    assert!(0 < stopped && stopped < firsts.len(), "{stopped} stopped");
}
