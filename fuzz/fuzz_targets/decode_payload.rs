//! Arbitrary stored payloads of records whose checksum verifies (so the transform is all that
//! stands between them and a reader), with the codec flag set and with it and the encrypted
//! flag set: `RecordCursor::decode` returns the payload or a typed error, never panics, never
//! writes more than `max_record_size` bytes, and never trusts a frame's length beyond it (a
//! length over the limit but within the format's is `TooLarge`, naming both). The
//! first input byte picks the limit; valid frames (compressed from the input) must round-trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use walden_core::raw::{
    RECORD_HEADER_LEN, RecordCursor, RecordFlags, RecordHeader, RecordKind, SegmentKeys, Unseal,
};
use walden_core::{ChecksumAlgorithm, DecodeError, Keyring, Lsn};

const SALT: u64 = 0x5eed;

fn header(stored: &[u8], flags: RecordFlags) -> [u8; RECORD_HEADER_LEN] {
    let alg = ChecksumAlgorithm::Crc32c;
    RecordHeader {
        length: stored.len() as u32,
        lsn: Lsn(7),
        payload_crc: alg.of_salted(SALT, stored),
        kind: RecordKind::Single,
        flags,
        ack_gap: 1,
    }
    .encode(alg, SALT)
}

fuzz_target!(|data: &[u8]| {
    let Some((&limit, stored)) = data.split_first() else {
        return;
    };
    let max_record = 1 + u32::from(limit) * 64;
    let mut keys = Keyring::new();
    let key_id = keys.add_current(&[9; 32]).expect("key");
    for flags in [
        RecordFlags::PLAIN.with_codec(RecordFlags::CODEC_LZ4),
        RecordFlags::PLAIN
            .with_codec(RecordFlags::CODEC_LZ4)
            .with_encrypted(),
        RecordFlags::PLAIN.with_encrypted(),
    ] {
        let encrypted = flags.encrypted();
        let segment_keys = SegmentKeys {
            checksum: ChecksumAlgorithm::Crc32c,
            salt: SALT,
            version: walden_core::raw::FORMAT_VERSION,
            max_record,
            end: u64::MAX,
            key_id: encrypted.then_some(key_id),
        };
        let cursor = RecordCursor::resume(segment_keys, 64, Lsn(7));
        let Ok(at) = cursor.header(&header(stored, flags)) else {
            continue; // too long for the limit: refused before any read
        };
        let mut stored = stored.to_vec();
        let mut out = vec![0u8; max_record as usize];
        let key = encrypted.then(|| Unseal::new(&keys, 1, 3, SALT, key_id));
        match cursor.decode(&at, &mut stored, &mut out, key) {
            Ok(p) => assert!(p.len() <= max_record as usize),
            Err(DecodeError::Corrupt(_)) => {}
            // A frame whose original length is over this reader's limit but within the
            // format's: written under a larger limit, a configuration error, never damage.
            Err(DecodeError::TooLarge { length, max }) => {
                assert_eq!(max, max_record);
                assert!(length > max_record as usize);
                assert!(length <= walden_core::MAX_RECORD_SIZE_LIMIT as usize);
            }
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    // A frame compressed by the writer's codec decodes back to its input.
    if stored.len() <= 4096 {
        let block = lz4_flex::block::compress(stored);
        let mut frame = (stored.len() as u32).to_le_bytes().to_vec();
        frame.extend_from_slice(&block);
        let flags = RecordFlags::PLAIN.with_codec(RecordFlags::CODEC_LZ4);
        let keys = SegmentKeys {
            checksum: ChecksumAlgorithm::Crc32c,
            salt: SALT,
            version: walden_core::raw::FORMAT_VERSION,
            max_record: 4096,
            end: u64::MAX,
            key_id: None,
        };
        let cursor = RecordCursor::resume(keys, 64, Lsn(7));
        if let Ok(at) = cursor.header(&header(&frame, flags)) {
            let mut out = vec![0u8; 4096];
            let got = cursor
                .decode(&at, &mut frame, &mut out, None)
                .expect("round trip");
            assert_eq!(got, stored);
        }
    }
});
