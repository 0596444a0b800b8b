use super::*;
use proptest::prelude::*;

const DOC: &str = include_str!("../../../docs/FORMAT.md");

/// Rows `(field, offset, size)` of the table after `marker` in docs/FORMAT.md.
fn doc_table(marker: &str) -> impl Iterator<Item = (&'static str, usize, usize)> {
    let start = DOC.find(marker).expect("marker present in FORMAT.md");
    let body = &DOC[start..];
    let end = body.find("<!-- end -->").expect("table end marker");
    body[..end].lines().filter_map(|line| {
        let cells: heapless::Vec<&str, 8> = line.split('|').map(str::trim).collect();
        let offset = cells.get(2)?.parse().ok()?;
        let size = cells.get(3)?.parse().ok()?;
        Some((*cells.get(1)?, offset, size))
    })
}

#[test]
fn documented_layout_matches_code() {
    let segment = [
        ("magic", seg::MAGIC, 8),
        ("version", seg::VERSION, 2),
        ("checksum_alg", seg::CHECKSUM_ALG, 1),
        ("flags", seg::FLAGS, 1),
        ("header_len", seg::HEADER_LEN, 4),
        ("log_id", seg::LOG_ID, 8),
        ("segment_id", seg::SEGMENT_ID, 8),
        ("first_lsn", seg::FIRST_LSN, 8),
        ("salt", seg::SALT, 8),
        ("first_segment", seg::FIRST_SEGMENT, 8),
        ("reserved", seg::RESERVED, 4),
        ("header_crc", seg::HEADER_CRC, 4),
    ];
    let record = [
        ("header_crc", rec::HEADER_CRC, 4),
        ("length", rec::LENGTH, 4),
        ("lsn", rec::LSN, 8),
        ("payload_crc", rec::PAYLOAD_CRC, 8),
        ("kind", rec::KIND, 1),
        ("flags", rec::FLAGS, 1),
        ("reserved", rec::RESERVED, 2),
        ("ack_gap", rec::ACK_GAP, 4),
    ];
    let meta_payload = [
        ("type", meta::TYPE, 1),
        ("reserved", meta::RESERVED, 7),
        ("value", meta::VALUE, 8),
    ];
    for (marker, code, total) in [
        ("<!-- meta-record-table -->", &meta_payload[..], META_LEN),
        (
            "<!-- segment-header-table -->",
            &segment[..],
            SEGMENT_HEADER_LEN,
        ),
        (
            "<!-- record-header-table -->",
            &record[..],
            RECORD_HEADER_LEN,
        ),
    ] {
        let doc: heapless::Vec<_, 16> = doc_table(marker).collect();
        assert_eq!(doc.len(), code.len(), "{marker}: field count");
        let mut next = 0;
        for (d, c) in doc.iter().zip(code) {
            assert_eq!(d, c, "{marker}: documented field differs from code");
            assert_eq!(d.1, next, "{marker}: fields must be contiguous");
            next = d.1 + d.2;
        }
        assert_eq!(next, total, "{marker}: total length");
    }
}

fn header() -> SegmentHeader {
    SegmentHeader {
        version: FORMAT_VERSION,
        checksum: ChecksumAlgorithm::Crc32c,
        log_id: 0x1122_3344_5566_7788,
        segment_id: 7,
        first_lsn: Lsn(1000),
        salt: 0xdead_beef,
        first_segment: Some(3),
    }
}

#[test]
fn segment_header_round_trip_and_every_bit_flip_is_caught() {
    let h = header();
    let bytes = h.encode();
    assert_eq!(&bytes[..8], b"WALDENLG");
    assert_eq!(SegmentHeader::decode(&bytes), Ok(h));
    for bit in 0..SEGMENT_HEADER_LEN * 8 {
        let mut b = bytes;
        b[bit / 8] ^= 1 << (bit % 8);
        assert!(
            SegmentHeader::decode(&b).is_err(),
            "flip of bit {bit} accepted"
        );
    }
    assert_eq!(
        SegmentHeader::decode(&bytes[..63]),
        Err(HeaderProblem::Short)
    );
    assert_eq!(
        SegmentHeader::decode(&[0; 64]),
        Err(HeaderProblem::BadMagic)
    );
}

#[test]
fn newer_version_and_impossible_fields_with_valid_checksum() {
    let mut h = header();
    h.version = 9;
    assert_eq!(
        SegmentHeader::decode(&h.encode()),
        Err(HeaderProblem::NewerVersion(9))
    );
    let mut h = header();
    h.salt = 0;
    assert!(matches!(
        SegmentHeader::decode(&h.encode()),
        Err(HeaderProblem::Impossible(_))
    ));
    let mut h = header();
    h.first_lsn = Lsn(0);
    assert!(matches!(
        SegmentHeader::decode(&h.encode()),
        Err(HeaderProblem::Impossible(_))
    ));
}

#[test]
fn zeroed_record_header_never_validates() {
    for alg in [
        ChecksumAlgorithm::Crc32c,
        ChecksumAlgorithm::Crc32,
        ChecksumAlgorithm::Crc64,
    ] {
        for salt in [1u64, 0xffff_ffff_ffff_ffff, 0x1234_5678] {
            assert!(RecordHeader::decode(&[0; 32], alg, salt).is_err());
        }
    }
}

#[test]
fn record_from_another_salt_is_rejected() {
    let h = RecordHeader {
        length: 5,
        lsn: Lsn(3),
        payload_crc: 9,
        kind: RecordKind::Single,
        ack_gap: 1,
    };
    let b = h.encode(ChecksumAlgorithm::Crc32c, 77);
    assert_eq!(
        RecordHeader::decode(&b, ChecksumAlgorithm::Crc32c, 77),
        Ok(h)
    );
    assert_eq!(
        RecordHeader::decode(&b, ChecksumAlgorithm::Crc32c, 78),
        Err(RecordProblem::BadChecksum)
    );
}

#[test]
fn batch_kinds() {
    assert_eq!(RecordKind::in_batch(0, 1), RecordKind::Single);
    assert_eq!(RecordKind::in_batch(0, 3), RecordKind::First);
    assert_eq!(RecordKind::in_batch(1, 3), RecordKind::Middle);
    assert_eq!(RecordKind::in_batch(2, 3), RecordKind::Last);
    for b in 0..=255u8 {
        if let Some(k) = RecordKind::from_byte(b) {
            assert_eq!(k.to_byte(), b);
        }
    }
}

fn any_alg() -> impl Strategy<Value = ChecksumAlgorithm> {
    // Only what this build has (walden-core features crc32, crc64).
    prop_oneof![
        Just(ChecksumAlgorithm::Crc32c),
        Just(ChecksumAlgorithm::Crc32),
        Just(ChecksumAlgorithm::Crc64)
    ]
    .prop_map(|alg| {
        if alg.is_available() {
            alg
        } else {
            ChecksumAlgorithm::Crc32c
        }
    })
}

proptest! {
    #[test]
    fn record_header_round_trips(
        length in any::<u32>(), lsn in 1..u64::MAX, payload_crc in any::<u64>(),
        kind in 1u8..=4, ack_gap in 1..=u32::MAX, alg in any_alg(), salt in 1..u64::MAX,
    ) {
        let h = RecordHeader { length, lsn: Lsn(lsn), payload_crc, kind: RecordKind::from_byte(kind).unwrap(), ack_gap };
        prop_assert_eq!(RecordHeader::decode(&h.encode(alg, salt), alg, salt), Ok(h));
    }

    #[test]
    fn segment_header_round_trips(
        log_id in any::<u64>(), segment_id in any::<u64>(), first in 1..u64::MAX, salt in 1..u64::MAX, alg in any_alg(),
    ) {
        let h = SegmentHeader { version: FORMAT_VERSION, checksum: alg, log_id, segment_id, first_lsn: Lsn(first), salt, first_segment: Some(segment_id / 2) };
        prop_assert_eq!(SegmentHeader::decode(&h.encode()), Ok(h));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80), salt in any::<u64>(), alg in any_alg()) {
        let _ = SegmentHeader::decode(&bytes);
        let _ = RecordHeader::decode(&bytes, alg, salt);
    }
}

#[test]
fn a_header_naming_an_algorithm_not_built_in_is_refused_not_misread() {
    for alg in [
        ChecksumAlgorithm::Crc32c,
        ChecksumAlgorithm::Crc32,
        ChecksumAlgorithm::Crc64,
    ] {
        let h = SegmentHeader {
            version: FORMAT_VERSION,
            checksum: alg,
            log_id: 7,
            segment_id: 3,
            first_lsn: Lsn(10),
            salt: 99,
            first_segment: Some(0),
        };
        let got = SegmentHeader::decode(&h.encode());
        if alg.is_available() {
            assert_eq!(got, Ok(h));
        } else {
            assert!(matches!(got, Err(HeaderProblem::Impossible(_))), "{got:?}");
        }
    }
}
