//! Codec micro-benchmarks: encoding and decoding (verifying) one record the way the log does,
//! header checksum first, then the payload checksum.
//!
//! `cargo bench -p walden-bench --bench codec`. Nothing here asserts a speed.

use core::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use walden_core::raw::{RECORD_HEADER_LEN, RecordHeader, RecordKind};
use walden_core::{ChecksumAlgorithm, Lsn};

const SALT: u64 = 0x5a17_5a17_5a17_5a17;

fn encode(alg: ChecksumAlgorithm, payload: &[u8], out: &mut [u8]) -> usize {
    let header = RecordHeader {
        length: payload.len() as u32,
        lsn: Lsn(42),
        payload_crc: alg.of_salted(SALT, payload),
        kind: RecordKind::Single,
        flags: walden_core::raw::RecordFlags::PLAIN,
        ack_gap: 1,
    }
    .encode(alg, SALT);
    out[..RECORD_HEADER_LEN].copy_from_slice(&header);
    out[RECORD_HEADER_LEN..RECORD_HEADER_LEN + payload.len()].copy_from_slice(payload);
    RECORD_HEADER_LEN + payload.len()
}

fn decode(alg: ChecksumAlgorithm, bytes: &[u8]) -> Option<&[u8]> {
    let h = RecordHeader::decode(bytes, alg, SALT).ok()?;
    let payload = bytes.get(RECORD_HEADER_LEN..RECORD_HEADER_LEN + h.length as usize)?;
    (alg.of_salted(SALT, payload) == h.payload_crc).then_some(payload)
}

fn codec(c: &mut Criterion) {
    let alg = ChecksumAlgorithm::Crc32c;
    for size in [128usize, 4096] {
        let payload: Vec<u8> = (0..size).map(|i| i as u8).collect();
        let mut buf = vec![0u8; RECORD_HEADER_LEN + size];
        let mut group = c.benchmark_group(format!("codec/{size}B"));
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function("encode", |b| {
            b.iter(|| encode(alg, black_box(&payload), &mut buf));
        });
        let n = encode(alg, &payload, &mut buf);
        assert!(
            decode(alg, &buf[..n]).is_some(),
            "the benchmark decodes what it encodes"
        );
        group.bench_function("decode + verify", |b| {
            b.iter(|| decode(alg, black_box(&buf[..n])).map(<[u8]>::len));
        });
        group.finish();
    }
}

criterion_group!(benches, codec);
criterion_main!(benches);
