//! Arbitrary bytes through every decoder of on-disk data: segment headers, record headers
//! (under each checksum and any salt) and segment file names. Each returns a value or a typed
//! problem; none may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use walden_core::raw::{RecordHeader, SegmentHeader};
use walden_core::{ChecksumAlgorithm, parse_segment_name};

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = SegmentHeader::decode(data) {
        // Whatever decodes re-encodes to the same 64 bytes.
        assert_eq!(&h.encode()[..], &data[..64]);
    }
    let salt = data
        .get(..8)
        .map_or(1, |b| u64::from_le_bytes(b.try_into().unwrap_or([1; 8])));
    let body = data.get(8..).unwrap_or_default();
    for alg in [
        ChecksumAlgorithm::Crc32c,
        ChecksumAlgorithm::Crc32,
        ChecksumAlgorithm::Crc64,
    ] {
        if let Ok(h) = RecordHeader::decode(body, alg, salt) {
            assert_eq!(&h.encode(alg, salt)[..], &body[..32]);
            let _ = h.proves_durable();
        }
    }
    if let Ok(s) = core::str::from_utf8(data) {
        if let Some(id) = parse_segment_name(s) {
            assert_eq!(walden_core::SegmentName::new(id).as_str(), s);
        }
    }
});
