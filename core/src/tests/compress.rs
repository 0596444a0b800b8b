//! Compression (format version 3, feature `compress`): what is stored, what is read back, and
//! what a damaged or hostile frame does.

use std::vec::Vec;

use super::*;
use crate::format::{
    FRAME_PREFIX_LEN, RECORD_HEADER_LEN, RecordFlags, RecordHeader, SEGMENT_HEADER_LEN,
    SegmentHeader,
};
use crate::{ChecksumAlgorithm, Lsn, ReadError, transform_scratch_len};

fn config() -> Config {
    Config::default()
        .with_segment_size(64 * 1024)
        .with_max_record_size(16 * 1024)
        .with_compress_threshold(1024)
}

/// Compressible text of `n` bytes, different for each `i`.
fn text(i: u64, n: usize) -> Vec<u8> {
    std::format!("record {i} says hello again; ")
        .into_bytes()
        .into_iter()
        .cycle()
        .take(n)
        .collect()
}

/// Every record header of segment `id`, with its stored payload.
fn stored(mem: &Mem, id: u64) -> Vec<(RecordHeader, Vec<u8>)> {
    let f = &mem.files[&id];
    let h = SegmentHeader::decode(f).unwrap();
    let mut at = SEGMENT_HEADER_LEN;
    let mut out = Vec::new();
    while let Ok(r) = RecordHeader::decode(&f[at..], h.checksum, h.salt) {
        let p = at + RECORD_HEADER_LEN;
        out.push((r, f[p..p + r.length as usize].to_vec()));
        at = p + r.length as usize;
    }
    out
}

fn written() -> (TestWal, Vec<Vec<u8>>) {
    let (mut wal, _) = open(Mem::default(), config());
    let mut scratch = std::vec![0u8; transform_scratch_len(16 * 1024)];
    let mut noise = std::vec![0u8; 4000];
    let mut x = 0x9e37_79b9_u64;
    for b in &mut noise {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let records = std::vec![
        text(1, 8000),      // compressed
        text(2, 1023),      // below the threshold: as appended
        noise.clone(),      // incompressible: as appended
        text(4, 16 * 1024), // exactly max_record_size, compressed
        text(5, 3000),      // batch, compressed
        b"tiny".to_vec(),   // batch, as appended
        text(7, 5000),      // batch, compressed
    ];
    for r in &records[..4] {
        wal.append_batch_in(&[r], &mut scratch).unwrap();
    }
    let batch: Vec<&[u8]> = records[4..].iter().map(Vec::as_slice).collect();
    wal.append_batch_in(&batch, &mut scratch).unwrap();
    (wal, records)
}

#[test]
fn records_above_the_threshold_are_stored_compressed_and_read_back_whole() {
    let (wal, records) = written();
    let got: Vec<Vec<u8>> = all_big(&wal).into_iter().map(|(_, p)| p).collect();
    assert_eq!(got, records);
    let mem = wal.into_storage();
    let on_disk = stored(&mem, 0);
    let codecs: Vec<u8> = on_disk.iter().map(|(h, _)| h.flags.codec()).collect();
    assert_eq!(codecs, [1, 0, 0, 1, 1, 0, 1]);
    for ((h, p), r) in on_disk.iter().zip(&records) {
        if h.flags.codec() == 1 {
            assert!(p.len() < r.len() / 4, "{}", h.lsn);
        } else {
            assert_eq!(p, r);
        }
    }
    // Reopened: recovery verifies the stored bytes and keeps everything.
    let (wal, report) = open(mem, config());
    assert!(report.is_clean(), "{report}");
    let got: Vec<Vec<u8>> = all_big(&wal).into_iter().map(|(_, p)| p).collect();
    assert_eq!(got, records);
}

/// All records, through a buffer large enough for any compressed record.
fn all_big(wal: &TestWal) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut r = wal.reader(wal.first_lsn()).unwrap();
    let mut buf = std::vec![0u8; 2 * 16 * 1024 + FRAME_PREFIX_LEN];
    while let Some(rec) = r.next(&mut buf).unwrap() {
        out.push((rec.lsn.0, rec.payload.to_vec()));
    }
    out
}

#[test]
fn a_compressed_record_needs_its_original_and_stored_length_in_the_buffer() {
    let (wal, records) = written();
    let mem_len = stored(wal.storage(), 0)[0].1.len();
    let needed = records[0].len() + mem_len;
    let mut short = std::vec![0u8; needed - 1];
    assert_eq!(
        wal.read(Lsn(1), &mut short),
        Err(ReadError::BufferTooSmall { needed })
    );
    let mut exact = std::vec![0u8; needed];
    assert_eq!(
        wal.read(Lsn(1), &mut exact).unwrap().payload,
        &records[0][..]
    );
    // A plain record still needs only its own length.
    let mut plain = std::vec![0u8; records[1].len()];
    assert_eq!(
        wal.read(Lsn(2), &mut plain).unwrap().payload,
        &records[1][..]
    );
}

#[test]
fn without_a_scratch_or_with_the_threshold_off_records_are_stored_as_appended() {
    let (mut wal, _) = open(Mem::default(), config());
    wal.append(&text(1, 8000)).unwrap();
    let mut scratch = std::vec![0u8; transform_scratch_len(16 * 1024)];
    let (mut off, _) = open(Mem::default(), config().with_compress_threshold(0));
    off.append_batch_in(&[&text(1, 8000)], &mut scratch)
        .unwrap();
    for w in [wal, off] {
        let mem = w.into_storage();
        assert_eq!(stored(&mem, 0)[0].0.flags, RecordFlags::PLAIN);
    }
}

/// Rewrites record `lsn`'s stored payload in segment 0 with `edit`, resealing both checksums
/// (what an attacker or a buggy writer does: no torn write looks like this).
fn tamper(mem: &mut Mem, lsn: u64, edit: impl FnOnce(&mut Vec<u8>)) {
    let h = SegmentHeader::decode(&mem.files[&0]).unwrap();
    let f = mem.files.get_mut(&0).unwrap();
    let mut at = SEGMENT_HEADER_LEN;
    loop {
        let mut r = RecordHeader::decode(&f[at..], h.checksum, h.salt).unwrap();
        let p = at + RECORD_HEADER_LEN;
        let end = p + r.length as usize;
        if r.lsn.0 == lsn {
            let mut payload = f[p..end].to_vec();
            edit(&mut payload);
            assert_eq!(payload.len(), r.length as usize, "same length");
            r.payload_crc = h.checksum.of_salted(h.salt, &payload);
            f[at..p].copy_from_slice(&r.encode(h.checksum, h.salt));
            f[p..end].copy_from_slice(&payload);
            return;
        }
        at = end;
    }
}

#[test]
fn a_frame_that_verifies_but_does_not_decode_is_corruption_not_a_torn_tail() {
    let (wal, _) = written();
    let mut mem = wal.into_storage();
    // The last record of the log, so a torn-tail rule would cut it if it applied.
    tamper(&mut mem, 7, |p| {
        let n = p.len();
        p[FRAME_PREFIX_LEN..n].fill(0xff);
    });
    let (wal, report) = open(mem, config());
    assert!(
        report.is_clean(),
        "recovery checks stored bytes only: {report}"
    );
    assert_eq!(wal.last_lsn(), Lsn(7), "nothing cut");
    let mut buf = std::vec![0u8; 2 * 64 * 1024];
    match wal.read(Lsn(7), &mut buf) {
        Err(ReadError::Corrupted(c)) => {
            assert_eq!(
                (c.case, c.lsn),
                (crate::Case::MidLogCorruption, Some(Lsn(7)))
            );
            assert_eq!(c.detail, crate::raw::Fault::Undecodable.describe());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_frame_claiming_more_than_max_record_size_is_refused_before_any_buffer_is_used() {
    // The log with record 1's frame claiming `claim` decoded bytes, resealed.
    let claiming = |claim: u32| {
        let (wal, _) = written();
        let mut mem = wal.into_storage();
        tamper(&mut mem, 1, |p| {
            p[..FRAME_PREFIX_LEN].copy_from_slice(&claim.to_le_bytes())
        });
        open(mem, config()).0
    };
    // A buffer far larger than the claim: the limit, not the buffer, refuses it. Past the
    // format's limit no writer made the frame: damage.
    let mut buf = std::vec![0u8; 1 << 20];
    let over_format = crate::config::MAX_RECORD_SIZE_LIMIT + 1;
    assert!(matches!(
        claiming(over_format).read(Lsn(1), &mut buf),
        Err(ReadError::Corrupted(c)) if c.detail == crate::raw::Fault::Undecodable.describe()
    ));
    // Past this reader's limit but within the format's, a writer with a larger limit made
    // it: a configuration error naming the length needed, not corruption.
    assert!(matches!(
        claiming(16 * 1024 + 1).read(Lsn(1), &mut buf),
        Err(ReadError::RecordTooLarge {
            lsn: Lsn(1),
            length: 16385,
            max: 16384,
            ..
        })
    ));
    // A claim of exactly the limit that decodes to fewer bytes is refused as well.
    assert!(matches!(
        claiming(8001).read(Lsn(1), &mut buf),
        Err(ReadError::Corrupted(_))
    ));
}

#[test]
fn a_stored_compressed_record_may_exceed_max_record_size_by_the_frame_prefix_only() {
    // Incompressible data is never stored compressed, so hand-build a frame over the limit:
    // a record whose stored length is max + 4 with the codec flag set passes the header check;
    // max + 5 is TooLong.
    use crate::cursor::{Fault, RecordCursor, SegmentKeys};
    let keys = SegmentKeys {
        checksum: ChecksumAlgorithm::Crc32c,
        salt: 7,
        version: crate::format::FORMAT_VERSION,
        max_record: 100,
        end: u64::MAX,
        key_id: None,
    };
    for (length, flags, ok) in [
        (104, RecordFlags::PLAIN.with_codec(1), true),
        (105, RecordFlags::PLAIN.with_codec(1), false),
        (101, RecordFlags::PLAIN, false),
    ] {
        let h = RecordHeader {
            length,
            lsn: Lsn(1),
            payload_crc: 0,
            kind: crate::format::RecordKind::Single,
            flags,
            ack_gap: 1,
        }
        .encode(ChecksumAlgorithm::Crc32c, 7);
        let got = RecordCursor::new(keys, Lsn(1)).header(&h);
        assert_eq!(got.is_ok(), ok, "{length} {flags:?}");
        if !ok {
            assert_eq!(got.err(), Some(Fault::TooLong { length }));
        }
    }
    // At the format's own limit the frame prefix is allowed too; one byte more is impossible.
    let limit = crate::MAX_RECORD_SIZE_LIMIT;
    let at_limit = SegmentKeys {
        max_record: limit,
        ..keys
    };
    for (length, fault) in [
        (limit + 4, None),
        (limit + 5, Some(Fault::ImpossibleLength)),
    ] {
        let h = RecordHeader {
            length,
            lsn: Lsn(1),
            payload_crc: 0,
            kind: crate::format::RecordKind::Single,
            flags: RecordFlags::PLAIN.with_codec(1),
            ack_gap: 1,
        }
        .encode(ChecksumAlgorithm::Crc32c, 7);
        let got = RecordCursor::new(at_limit, Lsn(1)).header(&h);
        assert_eq!(got.err(), fault, "{length}");
    }
    // Flags in a version-2 segment, or an encrypted flag in a plaintext segment, are refused.
    for (version, flags) in [
        (2, RecordFlags::PLAIN.with_codec(1)),
        (3, RecordFlags::PLAIN.with_encrypted()),
    ] {
        let h = RecordHeader {
            length: 10,
            lsn: Lsn(1),
            payload_crc: 0,
            kind: crate::format::RecordKind::Single,
            flags,
            ack_gap: 1,
        }
        .encode(ChecksumAlgorithm::Crc32c, 7);
        let k = SegmentKeys { version, ..keys };
        assert_eq!(
            RecordCursor::new(k, Lsn(1)).header(&h).err(),
            Some(Fault::ReservedBits)
        );
    }
}

#[test]
fn a_record_written_under_a_larger_limit_is_a_configuration_error_to_a_smaller_reader() {
    // Written with max_record_size 64 KiB: 40 KiB of text compresses far below 16 KiB, so a
    // reader configured for 16 KiB opens the log (every stored length fits) and meets the
    // record only when it decompresses it.
    let large = config()
        .with_segment_size(256 * 1024)
        .with_max_record_size(64 * 1024);
    let (mut wal, _) = open(Mem::default(), large);
    let mut scratch = std::vec![0u8; transform_scratch_len(64 * 1024)];
    let record = text(9, 40 * 1024);
    wal.append_batch_in(&[&record], &mut scratch).unwrap();
    wal.append(b"after").unwrap();
    wal.sync().unwrap();
    let stored_len = stored(wal.storage(), 0)[0].0.length;
    assert!(stored_len < 16 * 1024, "{stored_len}");

    let small = large.with_max_record_size(16 * 1024);
    let (wal, _) = open(wal.into_storage(), small);
    let mut buf = std::vec![0u8; 2 * 64 * 1024];
    match wal.read(Lsn(1), &mut buf) {
        Err(e @ ReadError::RecordTooLarge { .. }) => {
            let ReadError::RecordTooLarge {
                lsn, length, max, ..
            } = e
            else {
                unreachable!()
            };
            assert_eq!((lsn, length, max), (Lsn(1), 40 * 1024, 16 * 1024));
            assert!(std::format!("{e}").contains("at least 40960"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    // The error is the record's alone: the next one reads.
    assert_eq!(wal.read(Lsn(2), &mut buf).unwrap().payload, b"after");
    // With the writer's limit the record reads back whole.
    let (wal, _) = open(wal.into_storage(), large);
    assert_eq!(wal.read(Lsn(1), &mut buf).unwrap().payload, &record[..]);
}
