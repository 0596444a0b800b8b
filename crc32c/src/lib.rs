//! CRC-32C (Castagnoli) of short data, for walden-core's accelerated checksums (its `hw-crc`
//! feature): a record header's 28 checked bytes and payloads of up to a few hundred bytes.
//!
//! On x86-64 with SSE 4.2 (checked once at run time, then cached by std) the data is fed to the
//! `crc32` instruction in one plain loop: eight bytes at a time from wherever the data starts
//! (unaligned loads cost nothing extra on these CPUs), then four, then one. The `crc32c`
//! crate, which every other target and CPU uses, first walks byte by byte to an 8-byte
//! boundary and calls its three-way kernel twice before its own 8-byte loop; each `crc32`
//! waits for the one before it (3 cycles), so for a 28-byte header that is up to 10 dependent
//! steps instead of 4. Measured on walden-core's append of 128-byte records (payload and
//! header checksummed): BENCHMARKS.md, "A tighter CRC-32C loop for short data".
//!
//! This crate exists so that walden-core can stay `#![forbid(unsafe_code)]`: the one `unsafe`
//! here is calling a `#[target_feature(enable = "sse4.2")]` function after the run-time check
//! that the CPU has SSE 4.2. Inside it, the intrinsics are safe calls.
#![no_std]

#[cfg(target_arch = "x86_64")]
extern crate std;

/// The CRC-32C of `data` continued from `crc`, the finished CRC-32C of what came before
/// (`0` for nothing): `append(append(0, a), b)` is the CRC-32C of `a ‖ b`. The same value as
/// `crc32c::crc32c_append(crc, data)`.
#[inline]
pub fn append(crc: u32, data: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("sse4.2") {
        // SAFETY: `sse42` needs only SSE 4.2, which the CPU was just found to have.
        #[allow(unsafe_code)]
        return unsafe { sse42(crc, data) };
    }
    crc32c::crc32c_append(crc, data)
}

/// The CRC-32C of `data`.
#[inline]
pub fn checksum(data: &[u8]) -> u32 {
    append(0, data)
}

/// [`append`] with the `crc32` instruction: 8 bytes a step, then 4, then 1.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
fn sse42(crc: u32, data: &[u8]) -> u32 {
    use core::arch::x86_64::{_mm_crc32_u8, _mm_crc32_u32, _mm_crc32_u64};
    let mut words = data.chunks_exact(8);
    let mut c = u64::from(!crc);
    for w in &mut words {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        c = _mm_crc32_u64(c, u64::from_le_bytes(b));
    }
    // The instruction keeps the CRC in the low 32 bits.
    let mut c = c as u32;
    let mut halves = words.remainder().chunks_exact(4);
    for h in &mut halves {
        let mut b = [0u8; 4];
        b.copy_from_slice(h);
        c = _mm_crc32_u32(c, u32::from_le_bytes(b));
    }
    for &b in halves.remainder() {
        c = _mm_crc32_u8(c, b);
    }
    !c
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use super::*;

    const CASTAGNOLI: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

    #[test]
    fn the_check_value() {
        assert_eq!(checksum(b"123456789"), 0xe306_9283);
        assert_eq!(checksum(b""), 0);
    }

    /// Every length to 400, from every start within 8 bytes (so every alignment of every
    /// word), continued from several CRCs: the same as the portable table and the `crc32c`
    /// crate.
    #[test]
    fn agrees_with_the_portable_crc_at_every_length_and_alignment() {
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        let bytes: Vec<u8> = (0..420)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        for start in 0..8 {
            for len in 0..=400 {
                let data = &bytes[start..start + len];
                for prefix in [&b""[..], b"salt", &bytes[400..416]] {
                    let before = CASTAGNOLI.checksum(prefix);
                    let mut whole = CASTAGNOLI.digest();
                    whole.update(prefix);
                    whole.update(data);
                    let want = whole.finalize();
                    assert_eq!(append(before, data), want, "start {start} len {len}");
                    assert_eq!(crc32c::crc32c_append(before, data), want);
                }
            }
        }
    }
}
