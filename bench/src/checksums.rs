//! Checksum throughput: the `crc` crate's table implementations (what a `no_std` core can use
//! with no `unsafe` and no CPU detection) against the hardware-accelerated `crc-fast` and
//! `crc32fast`. This table decides which implementation Walden's core uses, so each one is
//! measured at a WAL record's sizes, not only on a large buffer.

use core::time::Duration;
use std::time::Instant;

use crc::{CRC_32_ISCSI, CRC_32_ISO_HDLC, CRC_64_NVME, Crc, NoTable, Table};
use crc_fast::CrcAlgorithm;

/// One checksum implementation.
pub(crate) struct Implementation {
    /// Crate and variant, e.g. "crc Table<16>".
    pub(crate) name: &'static str,
    /// The CRC it computes.
    pub(crate) algorithm: &'static str,
    /// Whether it uses CPU-specific instructions (CLMUL / SSE4.2 / ARMv8 CRC).
    pub(crate) hardware: bool,
    compute: fn(&[u8]) -> u64,
}

const C32C_1: Crc<u32, Table<1>> = Crc::<u32, Table<1>>::new(&CRC_32_ISCSI);
const C32C_16: Crc<u32, Table<16>> = Crc::<u32, Table<16>>::new(&CRC_32_ISCSI);
const C32C_0: Crc<u32, NoTable> = Crc::<u32, NoTable>::new(&CRC_32_ISCSI);
const C32_16: Crc<u32, Table<16>> = Crc::<u32, Table<16>>::new(&CRC_32_ISO_HDLC);
const C64_16: Crc<u64, Table<16>> = Crc::<u64, Table<16>>::new(&CRC_64_NVME);

/// Every implementation measured, table-driven first.
pub(crate) fn implementations() -> Vec<Implementation> {
    vec![
        Implementation {
            name: "crc NoTable",
            algorithm: "CRC-32C",
            hardware: false,
            compute: |d| u64::from(C32C_0.checksum(d)),
        },
        Implementation {
            name: "crc Table<1>",
            algorithm: "CRC-32C",
            hardware: false,
            compute: |d| u64::from(C32C_1.checksum(d)),
        },
        Implementation {
            name: "crc Table<16>",
            algorithm: "CRC-32C",
            hardware: false,
            compute: |d| u64::from(C32C_16.checksum(d)),
        },
        Implementation {
            name: "crc Table<16>",
            algorithm: "CRC-32",
            hardware: false,
            compute: |d| u64::from(C32_16.checksum(d)),
        },
        Implementation {
            name: "crc Table<16>",
            algorithm: "CRC-64/NVME",
            hardware: false,
            compute: |d| C64_16.checksum(d),
        },
        Implementation {
            name: "crc-fast",
            algorithm: "CRC-32C",
            hardware: true,
            compute: |d| crc_fast::checksum(CrcAlgorithm::Crc32Iscsi, d),
        },
        Implementation {
            name: "crc-fast",
            algorithm: "CRC-32",
            hardware: true,
            compute: |d| crc_fast::checksum(CrcAlgorithm::Crc32IsoHdlc, d),
        },
        Implementation {
            name: "crc-fast",
            algorithm: "CRC-64/NVME",
            hardware: true,
            compute: |d| crc_fast::checksum(CrcAlgorithm::Crc64Nvme, d),
        },
        Implementation {
            name: "crc32fast",
            algorithm: "CRC-32",
            hardware: true,
            compute: |d| u64::from(crc32fast::hash(d)),
        },
    ]
}

impl Implementation {
    /// The checksum of `data`, widened to 64 bits.
    pub(crate) fn checksum(&self, data: &[u8]) -> u64 {
        (self.compute)(data)
    }
}

/// Throughput of one implementation at one input size.
#[derive(Clone, Debug)]
pub(crate) struct Throughput {
    /// Index into [`implementations`].
    pub(crate) implementation: usize,
    /// Bytes per call.
    pub(crate) size: usize,
    /// Gigabytes (10^9) per second.
    pub(crate) gb_per_sec: f64,
}

/// Measures every implementation at every size for about `per_case` each.
pub(crate) fn measure(sizes: &[usize], per_case: Duration) -> Vec<Throughput> {
    let max = sizes.iter().copied().max().unwrap_or(0);
    let data = crate::subject::payload(max, 99);
    let mut out = Vec::new();
    for (index, implementation) in implementations().iter().enumerate() {
        for &size in sizes {
            let input = &data[..size];
            // Enough calls per clock read that the clock is noise, at least 256 KiB of input.
            let calls_per_round = (256 << 10) / size.max(1) + 1;
            let (mut bytes, mut acc) = (0u64, 0u64);
            let start = Instant::now();
            while start.elapsed() < per_case || bytes == 0 {
                for _ in 0..calls_per_round {
                    acc ^= implementation.checksum(core::hint::black_box(input));
                }
                bytes += (calls_per_round * size) as u64;
            }
            core::hint::black_box(acc);
            out.push(Throughput {
                implementation: index,
                size,
                gb_per_sec: bytes as f64 / 1e9 / start.elapsed().as_secs_f64(),
            });
        }
    }
    out
}

/// What crc-fast dispatches to on this CPU, e.g. "x86_64-avx512-vpclmulqdq".
pub(crate) fn crc_fast_target() -> String {
    crc_fast::get_calculator_target(CrcAlgorithm::Crc32Iscsi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn implementations_agree_on_the_check_values() {
        let check = b"123456789";
        for imp in implementations() {
            let expected = match imp.algorithm {
                "CRC-32C" => 0xE306_9283,
                "CRC-32" => 0xCBF4_3926,
                "CRC-64/NVME" => 0xAE8B_1486_0A79_9888,
                other => panic!("unknown algorithm {other}"),
            };
            assert_eq!(
                imp.checksum(check),
                expected,
                "{} {}",
                imp.name,
                imp.algorithm
            );
        }
    }
}
