//! Readers: exact buffers, positions, starting inside batches, crossing segments.

use std::vec::Vec;

use super::*;
use crate::{Lsn, ReadError};

fn log(n: u64) -> TestWal {
    let (mut wal, _) = open(Mem::default(), small());
    for i in 1..=n {
        wal.append(&payload(i)).unwrap();
    }
    wal
}

#[test]
fn a_buffer_of_exactly_the_payload_length_is_enough() {
    let wal = log(3);
    let len = payload(2).len();
    let mut exact = std::vec![0u8; len];
    assert_eq!(
        wal.read(Lsn(2), &mut exact).unwrap().payload,
        &payload(2)[..]
    );
    let mut short = std::vec![0u8; len - 1];
    assert_eq!(
        wal.read(Lsn(2), &mut short),
        Err(ReadError::BufferTooSmall { needed: len })
    );
    // An empty record needs no buffer at all.
    let (mut wal, _) = open(Mem::default(), small());
    wal.append(b"").unwrap();
    assert_eq!(wal.read(Lsn(1), &mut []).unwrap().payload, b"");
}

#[test]
fn a_reader_says_where_it_is_across_segments() {
    let wal = log(30);
    assert!(wal.segments().len() > 3);
    let mut r = wal.reader(Lsn(1)).unwrap();
    let mut buf = [0u8; 64];
    for lsn in 1..=30 {
        assert_eq!(r.position(), Lsn(lsn));
        let rec = r.next(&mut buf).unwrap().unwrap();
        assert_eq!((rec.lsn, rec.payload), (Lsn(lsn), &payload(lsn)[..]));
    }
    assert_eq!(r.position(), Lsn(31));
    assert_eq!(r.next(&mut buf).unwrap(), None);
    // Starting at each segment's first record and at the record before it.
    for s in wal.segments() {
        let mut r = wal.reader(s.first_lsn).unwrap();
        assert_eq!(r.next(&mut buf).unwrap().unwrap().lsn, s.first_lsn);
        if s.first_lsn > Lsn(1) {
            let mut r = wal.reader(s.first_lsn.prev()).unwrap();
            assert_eq!(r.next(&mut buf).unwrap().unwrap().lsn, s.first_lsn.prev());
            assert_eq!(r.next(&mut buf).unwrap().unwrap().lsn, s.first_lsn);
        }
    }
}

#[test]
fn a_reader_may_start_inside_a_batch() {
    let (mut wal, _) = open(Mem::default(), small());
    wal.append(b"zero").unwrap();
    wal.append_batch(&[b"a", b"b", b"c", b"d"]).unwrap(); // 2..=5
    wal.append(b"six").unwrap();
    let mut buf = [0u8; 8];
    for from in 2..=6u64 {
        let mut r = wal.reader(Lsn(from)).unwrap();
        assert_eq!(r.position(), Lsn(from));
        let got: Vec<u64> =
            core::iter::from_fn(|| r.next(&mut buf).unwrap().map(|x| x.lsn.0)).collect();
        assert_eq!(got, (from..=6).collect::<Vec<_>>(), "from {from}");
    }
    assert_eq!(wal.read(Lsn(4), &mut buf).unwrap().payload, b"c");
}

#[test]
fn a_reader_at_the_end_sees_nothing_and_out_of_range_is_refused() {
    let wal = log(5);
    let mut buf = [0u8; 64];
    let mut r = wal.reader(Lsn(6)).unwrap();
    assert_eq!(r.position(), Lsn(6));
    assert_eq!(r.next(&mut buf).unwrap(), None);
    assert_eq!(
        wal.read(Lsn(6), &mut buf).err(),
        Some(ReadError::OutOfRange {
            lsn: Lsn(6),
            first: Lsn(1),
            last: Lsn(5)
        })
    );
    assert_eq!(
        wal.reader(Lsn(7)).err(),
        Some(ReadError::OutOfRange {
            lsn: Lsn(7),
            first: Lsn(1),
            last: Lsn(5)
        })
    );
}

#[test]
fn a_record_damaged_after_open_is_reported_not_returned() {
    let mut wal = log(5);
    let seg = wal.segments()[0];
    let f = wal.storage_for_tests().files.get_mut(&seg.id).unwrap();
    let n = f.len();
    f[n - 3] ^= 1; // record 5's payload
    let mut buf = [0u8; 64];
    match wal.read(Lsn(5), &mut buf) {
        Err(ReadError::Corrupted(c)) => {
            assert_eq!(
                (c.segment, c.lsn, c.detail),
                (0, Some(Lsn(5)), detail("payload checksum mismatch"))
            );
            assert_eq!(c.offset, (n - 47) as u64);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(wal.read(Lsn(4), &mut buf).unwrap().payload, &payload(4)[..]);
}

/// Without the `compress` and `encrypt` features, a record with transform flags (written by a
/// build with them) is a typed error, not corruption, and the reader stays where it is.
#[cfg(not(any(feature = "compress", feature = "encrypt")))]
#[test]
fn a_transformed_record_needs_the_features_to_be_read() {
    use crate::format::{RECORD_HEADER_LEN, RecordFlags, RecordHeader, SegmentHeader};
    let wal = log(2);
    let mut mem = wal.into_storage();
    let h = SegmentHeader::decode(&mem.files[&0]).unwrap();
    let f = mem.files.get_mut(&0).unwrap();
    let at = crate::format::SEGMENT_HEADER_LEN;
    let mut r = RecordHeader::decode(&f[at..], h.checksum, h.salt).unwrap();
    r.flags = RecordFlags::PLAIN.with_codec(RecordFlags::CODEC_LZ4);
    f[at..at + RECORD_HEADER_LEN].copy_from_slice(&r.encode(h.checksum, h.salt));
    let (wal, report) = open(mem, small());
    assert!(
        report.is_clean(),
        "recovery checks stored bytes only: {report}"
    );
    let mut buf = [0u8; 256];
    let mut reader = wal.reader(Lsn(1)).unwrap();
    for _ in 0..2 {
        assert!(matches!(
            reader.next(&mut buf),
            Err(ReadError::NotBuiltIn {
                segment: 0,
                lsn: Lsn(1),
                ..
            })
        ));
    }
    assert_eq!(wal.read(Lsn(2), &mut buf).unwrap().payload, &payload(2)[..]);
}
