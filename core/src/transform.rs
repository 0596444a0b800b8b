//! Format version 3's payload transforms: compression on the way in, and on the way out the one
//! decoding step every reader takes after the cursor has verified the stored bytes.
//!
//! The order is fixed by `docs/FORMAT.md`: the checksum covers the *stored* bytes and is
//! verified first (by [`RecordCursor::verify_payload`] or a streamed checksum), so damage is
//! found before a decompressor sees a byte; then [`RecordCursor::decode`] undoes the transforms
//! the record's flags name. A frame's `original_len` is checked against `max_record_size` and
//! the caller's buffer before any of it is written, and a block that does not decompress to
//! exactly that length is damage ([`Fault::Undecodable`]), never a torn tail.
//!
//! Nothing here allocates. Writing a compressed record needs a scratch buffer of
//! [`compress_scratch_len`] bytes (for `max_record_size`); reading one needs the stored bytes and
//! an output buffer of the original length, which may be two halves of one caller buffer
//! ([`Reader::next`](crate::Reader::next) asks for `original + stored` bytes).

use crate::config::MAX_RECORD_SIZE_LIMIT;
use crate::cursor::{Fault, Located, RecordCursor};
#[cfg(feature = "compress")]
use crate::format::FRAME_PREFIX_LEN;
use crate::format::{RecordFlags, frame};

/// Why a stored payload could not be turned back into the appended one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The stored bytes are damaged or were tampered with (their checksum verified, so no torn
    /// write explains it).
    Corrupt(Fault),
    /// The output buffer is shorter than the record's original length (which is at most
    /// `max_record_size`).
    BufferTooSmall {
        /// The original length.
        needed: usize,
    },
    /// The record uses a transform this build of walden-core does not have (feature
    /// `compress`).
    NotBuiltIn(&'static str),
}

impl From<Fault> for DecodeError {
    fn from(f: Fault) -> Self {
        DecodeError::Corrupt(f)
    }
}

/// The original length a compressed frame claims (its first 4 bytes), if it has them.
pub(crate) fn frame_original_len(bytes: &[u8]) -> Option<u32> {
    let at = frame::ORIGINAL_LEN;
    let b: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_le_bytes(b))
}

impl RecordCursor {
    /// The length the appended payload of `at` had, given its verified stored bytes: the
    /// stored length for a plain record, the frame's `original_len` (checked against
    /// `max_record_size`) for a compressed one.
    pub fn original_len(&self, at: &Located, stored: &[u8]) -> Result<usize, DecodeError> {
        let flags = at.header.flags;
        if flags.encrypted() {
            return Err(DecodeError::NotBuiltIn("encrypted record"));
        }
        match flags.codec() {
            0 => Ok(stored.len()),
            RecordFlags::CODEC_LZ4 => {
                let n = frame_original_len(stored).ok_or(Fault::Undecodable)?;
                // Inspection reads with no configured limit: the hard one still holds.
                if n > self.max_record().min(MAX_RECORD_SIZE_LIMIT) {
                    return Err(Fault::Undecodable.into());
                }
                Ok(n as usize)
            }
            _ => Err(Fault::ReservedBits.into()),
        }
    }

    /// Turns the verified stored bytes of `at` back into the payload that was appended: the
    /// stored bytes themselves for a plain record, otherwise the result decoded into `out`.
    /// Call only after the stored bytes' checksum verified: a failure here is then damage or
    /// tampering ([`DecodeError::Corrupt`]), not a torn write.
    pub fn decode<'a>(
        &self,
        at: &Located,
        stored: &'a [u8],
        out: &'a mut [u8],
    ) -> Result<&'a [u8], DecodeError> {
        let n = self.original_len(at, stored)?;
        if at.header.flags.codec() == 0 {
            return Ok(stored);
        }
        let out = out
            .get_mut(..n)
            .ok_or(DecodeError::BufferTooSmall { needed: n })?;
        decompress(&stored[frame::BLOCK..], out)?;
        Ok(out)
    }
}

#[cfg(feature = "compress")]
fn decompress(block: &[u8], out: &mut [u8]) -> Result<(), DecodeError> {
    match lz4_flex::block::decompress_into(block, out) {
        Ok(n) if n == out.len() => Ok(()),
        _ => Err(Fault::Undecodable.into()),
    }
}

#[cfg(not(feature = "compress"))]
fn decompress(_: &[u8], _: &mut [u8]) -> Result<(), DecodeError> {
    Err(DecodeError::NotBuiltIn(
        "compressed record (walden-core feature `compress`)",
    ))
}

/// The scratch a writer needs to compress payloads of up to `max_record` bytes: the frame
/// prefix plus LZ4's worst case.
#[cfg(feature = "compress")]
pub const fn compress_scratch_len(max_record: u32) -> usize {
    // lz4_flex::block::get_maximum_output_size, which is not a const fn.
    let n = max_record as usize;
    FRAME_PREFIX_LEN + 16 + 4 + n + n / 10
}

/// Compresses `payload` into `scratch` as a frame if it is at least `threshold` bytes long
/// (`threshold` 0: never) and the frame is shorter than the payload. Returns the codec and the
/// bytes to store: the frame, or the payload itself (incompressible, short, or a scratch too
/// small for [`compress_scratch_len`]).
#[cfg(feature = "compress")]
pub(crate) fn compress<'a>(
    payload: &'a [u8],
    threshold: u32,
    scratch: &'a mut [u8],
) -> (u8, &'a [u8]) {
    if threshold == 0 || payload.len() < threshold as usize {
        return (0, payload);
    }
    let Ok(len) = u32::try_from(payload.len()) else {
        return (0, payload);
    };
    let Some((prefix, block)) = scratch.split_at_mut_checked(FRAME_PREFIX_LEN) else {
        return (0, payload);
    };
    match lz4_flex::block::compress_into(payload, block) {
        Ok(n) if FRAME_PREFIX_LEN + n < payload.len() => {
            prefix.copy_from_slice(&len.to_le_bytes());
            (RecordFlags::CODEC_LZ4, &scratch[..FRAME_PREFIX_LEN + n])
        }
        _ => (0, payload),
    }
}

#[cfg(all(test, feature = "compress"))]
mod tests {
    use super::*;
    use std::vec;

    use crate::format::FRAME_PREFIX_LEN;

    #[test]
    fn the_scratch_length_is_lz4s_worst_case() {
        for n in [0u32, 1, 100, 4096, 1 << 20] {
            assert!(
                compress_scratch_len(n)
                    >= FRAME_PREFIX_LEN + lz4_flex::block::get_maximum_output_size(n as usize)
            );
        }
    }

    #[test]
    fn short_incompressible_and_unscratched_payloads_stay_plain() {
        let mut scratch = vec![0u8; compress_scratch_len(10_000)];
        let text = b"abcdefgh".repeat(1000);
        let (codec, frame) = compress(&text, 4096, &mut scratch);
        assert_eq!(codec, RecordFlags::CODEC_LZ4);
        assert!(frame.len() < text.len() / 4);
        assert_eq!(frame_original_len(frame), Some(8000));
        // Below the threshold, with the threshold off, or without room: stored as appended.
        assert_eq!(compress(&text[..4095], 4096, &mut scratch).0, 0);
        assert_eq!(compress(&text, 0, &mut scratch).0, 0);
        assert_eq!(compress(&text, 1, &mut [0u8; 100]).0, 0);
        // Noise does not shrink.
        let mut x = 0x1234_5678_u64;
        let noise: std::vec::Vec<u8> = (0..8000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let (codec, stored) = compress(&noise, 1, &mut scratch);
        assert_eq!((codec, stored), (0, &noise[..]));
    }
}
