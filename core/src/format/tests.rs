use super::*;
use proptest::prelude::*;
use std::vec::Vec;

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
        ("key_id", seg::KEY_ID, 4),
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
    let frame_fields = [
        ("original_len", frame::ORIGINAL_LEN, FRAME_PREFIX_LEN),
        ("block", frame::BLOCK, 0),
    ];
    let flag_bits = [
        (
            "codec",
            RecordFlags::CODEC_SHIFT as usize,
            RecordFlags::CODEC_BITS as usize,
        ),
        ("reserved", 2, 5),
        ("encrypted", RecordFlags::ENCRYPTED_BIT as usize, 1),
    ];
    let meta_payload = [
        ("type", meta::TYPE, 1),
        ("reserved", meta::RESERVED, 7),
        ("value", meta::VALUE, 8),
    ];
    for (marker, code, total) in [
        ("<!-- meta-record-table -->", &meta_payload[..], META_LEN),
        ("<!-- record-flags-table -->", &flag_bits[..], 8),
        (
            "<!-- compressed-frame-table -->",
            &frame_fields[..],
            FRAME_PREFIX_LEN,
        ),
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
        key_id: None,
        early: false,
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
        flags: RecordFlags::PLAIN,
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
        let h = RecordHeader { length, lsn: Lsn(lsn), payload_crc, kind: RecordKind::from_byte(kind).unwrap(), flags: RecordFlags::PLAIN, ack_gap };
        prop_assert_eq!(RecordHeader::decode(&h.encode(alg, salt), alg, salt), Ok(h));
    }

    #[test]
    fn segment_header_round_trips(
        log_id in any::<u64>(), segment_id in any::<u64>(), first in 1..u64::MAX, salt in 1..u64::MAX, alg in any_alg(), key_id in proptest::option::of(any::<u32>()), early in any::<bool>(),
    ) {
        let h = SegmentHeader { version: FORMAT_VERSION, checksum: alg, log_id, segment_id, first_lsn: Lsn(first), salt, first_segment: Some(segment_id / 2), key_id, early };
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
            key_id: None,
            early: false,
        };
        let got = SegmentHeader::decode(&h.encode());
        if alg.is_available() {
            assert_eq!(got, Ok(h));
        } else {
            assert_eq!(got, Err(HeaderProblem::Impossible(CHECKSUM_NOT_BUILT_IN)));
            assert!(got.unwrap_err().checksum_not_built_in());
        }
        // Impossible in another field too: damage, whatever the algorithm (the algorithm is
        // judged last).
        let mut b = h.encode();
        b[seg::FLAGS] = 0x80;
        reseal(&mut b);
        let got = SegmentHeader::decode(&b);
        assert_eq!(got, Err(HeaderProblem::Impossible("unknown flags")));
        assert!(!got.unwrap_err().checksum_not_built_in());
    }
}

/// Re-seals a header whose bytes were edited, so only the edited field is wrong.
fn reseal(b: &mut [u8; SEGMENT_HEADER_LEN]) {
    let crc = crc32c(&b[..seg::HEADER_CRC]);
    b[seg::HEADER_CRC..].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn a_version_1_header_has_no_first_segment_and_keeps_those_bytes_zero() {
    let mut b = header().encode();
    b[seg::VERSION..seg::VERSION + 2].copy_from_slice(&1u16.to_le_bytes());
    b[seg::FIRST_SEGMENT..seg::FIRST_SEGMENT + 8].fill(0);
    reseal(&mut b);
    let h = SegmentHeader::decode(&b).unwrap();
    assert_eq!((h.version, h.first_segment), (1, None));
    // In version 1 those bytes were reserved: anything there is an impossible header.
    b[seg::FIRST_SEGMENT] = 3;
    reseal(&mut b);
    assert_eq!(
        SegmentHeader::decode(&b),
        Err(HeaderProblem::Impossible("reserved bytes not zero"))
    );
    // Version 2 reads the field, zero included (segment 0 is a log's first).
    let mut h = header();
    h.first_segment = Some(0);
    assert_eq!(
        SegmentHeader::decode(&h.encode()).unwrap().first_segment,
        Some(0)
    );
}

#[test]
fn each_impossible_header_field_is_named() {
    let edits: [(usize, u8, &str); 5] = [
        (seg::CHECKSUM_ALG, 9, "unknown checksum algorithm"),
        (seg::FLAGS, 4, "unknown flags"),
        (seg::HEADER_LEN, 65, "header length"),
        (seg::KEY_ID + 3, 1, "reserved bytes not zero"),
        (seg::VERSION, 0, "version 0"),
    ];
    for (at, value, why) in edits {
        let mut b = header().encode();
        b[at] = value;
        if at == seg::VERSION {
            b[at + 1] = 0;
        }
        reseal(&mut b);
        assert_eq!(
            SegmentHeader::decode(&b),
            Err(HeaderProblem::Impossible(why))
        );
    }
    let mut h = header();
    h.first_lsn = Lsn(u64::MAX);
    assert_eq!(
        SegmentHeader::decode(&h.encode()),
        Err(HeaderProblem::Impossible("first LSN out of range"))
    );
    // The newest version this code reads is its own, and it writes exactly the 64 documented
    // bytes with zero flags, the header length and every field where FORMAT.md puts it.
    let b = header().encode();
    assert_eq!(b[seg::FLAGS], 0);
    assert_eq!(
        &b[seg::HEADER_LEN..seg::HEADER_LEN + 4],
        &64u32.to_le_bytes()
    );
    assert_eq!(&b[seg::SALT..seg::SALT + 8], &0xdead_beef_u64.to_le_bytes());
    assert_eq!(
        &b[seg::FIRST_SEGMENT..seg::FIRST_SEGMENT + 8],
        &3u64.to_le_bytes()
    );
    let mut h = header();
    h.version = FORMAT_VERSION;
    assert!(SegmentHeader::decode(&h.encode()).is_ok());
    h.version = FORMAT_VERSION + 1;
    assert_eq!(
        SegmentHeader::decode(&h.encode()),
        Err(HeaderProblem::NewerVersion(FORMAT_VERSION + 1))
    );
}

/// A record header with a valid checksum over whatever its bytes say.
fn resealed_record(mut b: [u8; RECORD_HEADER_LEN], salt: u64) -> [u8; RECORD_HEADER_LEN] {
    let crc = ChecksumAlgorithm::Crc32c.of_salted(salt, &b[rec::LENGTH..]) as u32;
    b[rec::HEADER_CRC..rec::LENGTH].copy_from_slice(&crc.to_le_bytes());
    b
}

#[test]
fn record_flags_and_reserved_bits_are_each_refused_alone() {
    let h = RecordHeader {
        length: 5,
        lsn: Lsn(3),
        payload_crc: 9,
        kind: RecordKind::Single,
        flags: RecordFlags::PLAIN,
        ack_gap: 1,
    };
    let alg = ChecksumAlgorithm::Crc32c;
    let good = h.encode(alg, 77);
    // Version 3's flags: the codec (bits 0-1: 0 and 1 known) and encrypted (bit 7) decode;
    // bits 2-6, and codecs 2 and 3, are refused.
    for known in [0x00, 0x01, 0x80, 0x81] {
        let mut b = good;
        b[rec::FLAGS] = known;
        let got = RecordHeader::decode(&resealed_record(b, 77), alg, 77).unwrap();
        assert_eq!(got.flags, RecordFlags(known));
    }
    for (at, bit) in [
        (rec::FLAGS, 0x02),
        (rec::FLAGS, 0x03),
        (rec::FLAGS, 0x04),
        (rec::FLAGS, 0x40),
        (rec::FLAGS, 0x82),
        (rec::RESERVED, 0x01),
        (rec::RESERVED + 1, 0x80),
    ] {
        let mut b = good;
        b[at] |= bit;
        let b = resealed_record(b, 77);
        assert_eq!(
            RecordHeader::decode(&b, alg, 77),
            Err(RecordProblem::ReservedBits),
            "byte {at} bit {bit:#x}"
        );
    }
    for (at, value, problem) in [
        (rec::KIND, 0, RecordProblem::UnknownKind),
        (rec::KIND, 6, RecordProblem::UnknownKind),
        (rec::ACK_GAP, 0, RecordProblem::ZeroAckGap),
    ] {
        let mut b = good;
        b[at] = value;
        assert_eq!(
            RecordHeader::decode(&resealed_record(b, 77), alg, 77),
            Err(problem)
        );
    }
    assert_eq!(
        RecordHeader::decode(&good[..31], alg, 77),
        Err(RecordProblem::Short)
    );
}

#[test]
fn ack_gap_says_what_a_record_proves() {
    let at = |lsn, gap| RecordHeader {
        length: 0,
        lsn: Lsn(lsn),
        payload_crc: 0,
        kind: RecordKind::Single,
        flags: RecordFlags::PLAIN,
        ack_gap: gap,
    };
    assert_eq!(at(10, 3).proves_durable(), Lsn(7));
    assert_eq!(at(10, u32::MAX).proves_durable(), Lsn(0));
    assert_eq!(RecordHeader::ack_gap_for(Lsn(10), Lsn(7)), 3);
    assert_eq!(RecordHeader::ack_gap_for(Lsn(1), Lsn(0)), 1);
    assert_eq!(RecordHeader::ack_gap_for(Lsn(u64::MAX), Lsn(0)), u32::MAX);
    assert_eq!(RecordHeader::ack_gap_for(Lsn(1 << 32), Lsn(1)), u32::MAX);
    assert_eq!(
        RecordHeader::ack_gap_for(Lsn((1 << 32) + 1), Lsn(2)),
        u32::MAX
    );
}

#[test]
fn record_kinds_are_the_documented_bytes() {
    for (kind, byte) in [
        (RecordKind::Single, 1),
        (RecordKind::First, 2),
        (RecordKind::Middle, 3),
        (RecordKind::Last, 4),
        (RecordKind::Meta, 5),
    ] {
        assert_eq!(kind.to_byte(), byte);
        assert_eq!(RecordKind::from_byte(byte), Some(kind));
    }
    assert_eq!(RecordKind::from_byte(0), None);
    assert_eq!(RecordKind::from_byte(6), None);
    assert_eq!(RecordKind::in_batch(0, 2), RecordKind::First);
    assert_eq!(RecordKind::in_batch(1, 2), RecordKind::Last);
    assert_eq!(RecordKind::in_batch(2, 5), RecordKind::Middle);
    assert_eq!(RecordKind::in_batch(3, 5), RecordKind::Middle);
    assert_eq!(RecordKind::in_batch(4, 5), RecordKind::Last);
}

#[test]
fn metadata_payloads_are_the_documented_bytes() {
    let seal = Meta::Seal { successor: 0x0102 }.encode();
    assert_eq!(seal[meta::TYPE], 1);
    assert_eq!(&seal[meta::VALUE..], &0x0102u64.to_le_bytes());
    assert!(seal[meta::RESERVED..meta::VALUE].iter().all(|&b| b == 0));
    let start = Meta::Start { first_segment: 7 }.encode();
    assert_eq!(start[meta::TYPE], 2);
    assert_eq!(Meta::decode(&seal), Some(Meta::Seal { successor: 0x0102 }));
    assert_eq!(Meta::decode(&start), Some(Meta::Start { first_segment: 7 }));
    for at in meta::RESERVED..meta::VALUE {
        let mut b = seal;
        b[at] = 1;
        assert_eq!(Meta::decode(&b), None, "reserved byte {at}");
    }
    let mut b = seal;
    b[meta::TYPE] = 3;
    assert_eq!(Meta::decode(&b), None);
    assert_eq!(Meta::decode(&seal[..15]), None);
}

const LOG: u64 = 0x0123_4567_89ab_cdef;

/// A start record built field by field from FORMAT.md ("Start slots"), not with `encode_start`.
fn documented_start(log_id: u64, generation: u64, kind: u8, length: u32, value: u64) -> Vec<u8> {
    let salt = log_id ^ 0x5354_4152_5453_4c54;
    let alg = ChecksumAlgorithm::Crc32c;
    let mut payload = [0u8; 16];
    payload[0] = 2;
    payload[8..].copy_from_slice(&value.to_le_bytes());
    let mut h = [0u8; RECORD_HEADER_LEN];
    h[4..8].copy_from_slice(&length.to_le_bytes());
    h[8..16].copy_from_slice(&generation.to_le_bytes());
    h[16..24].copy_from_slice(&alg.of_salted(salt, &payload).to_le_bytes());
    h[24] = kind;
    h[28..32].copy_from_slice(&1u32.to_le_bytes());
    let crc = alg.of_salted(salt, &h[4..]) as u32;
    h[..4].copy_from_slice(&crc.to_le_bytes());
    let mut out = h.to_vec();
    out.extend_from_slice(&payload);
    out
}

#[test]
fn start_records_are_the_documented_bytes_and_only_their_log_reads_them() {
    assert_eq!(START_SLOTS, [u64::MAX - 1, u64::MAX]);
    assert_eq!(START_RECORD_LEN, 48);
    assert!(is_start_slot(u64::MAX - 1) && is_start_slot(u64::MAX));
    assert!(!is_start_slot(u64::MAX - 2) && !is_start_slot(0));
    let b = encode_start(LOG, 5, 9);
    assert_eq!(&b[..], &documented_start(LOG, 5, 5, 16, 9)[..]);
    assert_eq!(decode_start(&b, LOG), Some((5, 9)));
    // Another log's slots never validate: the salt is the log id, every bit of it.
    for other in [0, !LOG, LOG ^ 1, LOG ^ (1 << 63), 0x5354_4152_5453_4c54] {
        assert_eq!(decode_start(&b, other), None, "log {other:#x}");
        assert_eq!(decode_start(&encode_start(other, 5, 9), LOG), None);
    }
    assert_eq!(decode_start(&b[..47], LOG), None);
}

#[test]
fn start_records_with_one_wrong_field_are_ignored() {
    let ok = documented_start(LOG, 3, 5, 16, 4);
    assert_eq!(decode_start(&ok, LOG), Some((3, 4)));
    // Each with a valid header checksum: the kind, the length, the generation, the payload's
    // checksum, the payload's type and the segment it names are each checked on their own.
    assert_eq!(decode_start(&documented_start(LOG, 3, 1, 16, 4), LOG), None);
    assert_eq!(decode_start(&documented_start(LOG, 3, 5, 15, 4), LOG), None);
    assert_eq!(decode_start(&documented_start(LOG, 0, 5, 16, 4), LOG), None);
    let mut bad_payload = ok.clone();
    bad_payload[RECORD_HEADER_LEN + 9] ^= 1;
    assert_eq!(decode_start(&bad_payload, LOG), None);
    for slot in START_SLOTS {
        let names_a_slot = documented_start(LOG, 3, 5, 16, slot);
        assert_eq!(decode_start(&names_a_slot, LOG), None);
    }
    let last_segment = documented_start(LOG, 3, 5, 16, u64::MAX - 2);
    assert_eq!(decode_start(&last_segment, LOG), Some((3, u64::MAX - 2)));
}

#[test]
fn record_flags_say_codec_encryption_and_overhead() {
    let f = RecordFlags::PLAIN;
    assert_eq!((f.codec(), f.encrypted(), f.overhead()), (0, false, 0));
    let f = f.with_codec(RecordFlags::CODEC_LZ4);
    assert_eq!(
        (f.0, f.codec(), f.overhead()),
        (1, 1, FRAME_PREFIX_LEN as u32)
    );
    let f = f.with_encrypted();
    assert_eq!((f.0, f.encrypted()), (0x81, true));
    assert_eq!(f.overhead(), (FRAME_PREFIX_LEN + AEAD_TAG_LEN) as u32);
    assert_eq!(f.with_codec(0).0, 0x80);
    assert!(f.is_known());
    assert!(!RecordFlags(0x02).is_known());
}

#[test]
fn record_flags_fields_are_independent() {
    // Setting the codec clears exactly the codec field (two bits) and keeps every other bit.
    assert_eq!(RecordFlags(0xff).with_codec(0).0, 0xfc);
    assert_eq!(RecordFlags(0xfc).with_codec(3).0, 0xff);
    assert_eq!(RecordFlags(0x04).with_codec(RecordFlags::CODEC_LZ4).0, 0x05);
    // A codec value wider than the field cannot spill into the next bits.
    assert_eq!(RecordFlags::PLAIN.with_codec(0x07).0, 0x03);
    // Setting the encrypted bit twice keeps it set.
    let twice = RecordFlags::PLAIN.with_encrypted().with_encrypted();
    assert!(twice.encrypted());
    assert_eq!(twice.0, 0x80);
    // Every bit outside the two fields, and the codecs not defined, are unknown.
    for bit in 2..7 {
        assert!(!RecordFlags(1 << bit).is_known(), "bit {bit}");
    }
    assert!(!RecordFlags(0x83).is_known());
    assert!(RecordFlags(0x81).is_known() && RecordFlags(0x80).is_known());
}

#[test]
fn the_encrypted_flag_and_key_id_are_version_3_only() {
    // An encrypted header round-trips with its key id at offset 56.
    let mut h = header();
    h.key_id = Some(0xa1b2_c3d4);
    let b = h.encode();
    assert_eq!(b[seg::FLAGS], 1);
    assert_eq!(
        &b[seg::KEY_ID..seg::KEY_ID + 4],
        &0xa1b2_c3d4_u32.to_le_bytes()
    );
    assert_eq!(SegmentHeader::decode(&b), Ok(h));
    // Key id zero is a key id like any other when the flag is set.
    h.key_id = Some(0);
    assert_eq!(SegmentHeader::decode(&h.encode()), Ok(h));
    // A version-2 header with the flag is impossible.
    h.version = 2;
    assert_eq!(
        SegmentHeader::decode(&h.encode()),
        Err(HeaderProblem::Impossible("unknown flags"))
    );
    // A key id without the flag, or another flag bit, is impossible.
    let reseal = |mut b: [u8; SEGMENT_HEADER_LEN]| {
        let crc = crc32c(&b[..seg::HEADER_CRC]);
        b[seg::HEADER_CRC..].copy_from_slice(&crc.to_le_bytes());
        b
    };
    let mut b = header().encode();
    b[seg::KEY_ID] = 1;
    assert!(matches!(
        SegmentHeader::decode(&reseal(b)),
        Err(HeaderProblem::Impossible(_))
    ));
    for bit in 2..8 {
        let mut b = header().encode();
        b[seg::FLAGS] = 1 << bit;
        assert_eq!(
            SegmentHeader::decode(&reseal(b)),
            Err(HeaderProblem::Impossible("unknown flags"))
        );
    }
}

#[test]
fn the_early_flag_is_bit_1_of_version_3_only() {
    let mut h = header();
    h.early = true;
    let b = h.encode();
    assert_eq!(b[seg::FLAGS], 2);
    assert_eq!(SegmentHeader::decode(&b), Ok(h));
    // With the encrypted flag: both bits, both read back.
    h.key_id = Some(5);
    assert_eq!(h.encode()[seg::FLAGS], 3);
    assert_eq!(SegmentHeader::decode(&h.encode()), Ok(h));
    // Before version 3 the flags byte is zero: an early version-2 header is impossible.
    h.key_id = None;
    h.version = 2;
    assert_eq!(
        SegmentHeader::decode(&h.encode()),
        Err(HeaderProblem::Impossible("unknown flags"))
    );
}

/// `checksum_not_built_in` recognises exactly its own words (in every build: the headers that
/// carry them arise only where an algorithm is missing).
#[test]
fn only_the_not_built_in_words_say_checksum_not_built_in() {
    assert!(HeaderProblem::Impossible(CHECKSUM_NOT_BUILT_IN).checksum_not_built_in());
    assert!(!HeaderProblem::Impossible("unknown flags").checksum_not_built_in());
    assert!(!HeaderProblem::BadChecksum.checksum_not_built_in());
}
