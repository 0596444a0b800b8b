//! Checksum micro-benchmarks: Walden core's checksum (the `crc` crate's slice-by-16 tables,
//! salted) against the hardware-accelerated `crc-fast` and `crc32fast`, at record sizes.
//!
//! `cargo bench -p walden-bench --bench checksum`. Nothing here asserts a speed.

use core::hint::black_box;

use crc_fast::CrcAlgorithm;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use walden_core::ChecksumAlgorithm;

const SIZES: [usize; 4] = [128, 1024, 4096, 64 << 10];

fn data(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ 0x5A)
        .collect()
}

fn checksums(c: &mut Criterion) {
    for size in SIZES {
        let input = data(size);
        let mut group = c.benchmark_group(format!("checksum/{size}B"));
        group.throughput(Throughput::Bytes(size as u64));
        for alg in [
            ChecksumAlgorithm::Crc32c,
            ChecksumAlgorithm::Crc32,
            ChecksumAlgorithm::Crc64,
        ] {
            group.bench_function(format!("walden-core {}", alg.name()), |b| {
                b.iter(|| alg.of_salted(black_box(7), black_box(&input)));
            });
        }
        for (name, alg) in [
            ("crc-fast CRC-32C", CrcAlgorithm::Crc32Iscsi),
            ("crc-fast CRC-32", CrcAlgorithm::Crc32IsoHdlc),
            ("crc-fast CRC-64/NVME", CrcAlgorithm::Crc64Nvme),
        ] {
            group.bench_function(name, |b| {
                b.iter(|| crc_fast::checksum(alg, black_box(&input)));
            });
        }
        group.bench_function("crc32fast CRC-32", |b| {
            b.iter(|| crc32fast::hash(black_box(&input)));
        });
        group.finish();
    }
}

criterion_group!(benches, checksums);
criterion_main!(benches);
