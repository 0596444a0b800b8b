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
//! [`transform_scratch_len`] bytes (for `max_record_size`); reading one needs the stored bytes and
//! an output buffer of the original length, which may be two halves of one caller buffer
//! ([`Reader::next`](crate::Reader::next) asks for `original + stored` bytes).

use crate::config::MAX_RECORD_SIZE_LIMIT;
use crate::cursor::{Fault, Located, RecordCursor};
use crate::format::{AEAD_TAG_LEN, FRAME_PREFIX_LEN, RecordFlags, frame};

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
    /// The record is encrypted and no key was given for its segment's key id (the reader
    /// knows the segment and its key id).
    KeyMissing,
    /// The record uses a transform this build of walden-core does not have (feature
    /// `compress` or `encrypt`).
    NotBuiltIn(&'static str),
    /// A compressed record's original length is over the reader's `max_record_size` but
    /// within the format's limit: written with a larger limit (not damage).
    TooLarge {
        /// The original length.
        length: usize,
        /// The reader's limit.
        max: u32,
    },
}

/// The key and place of an encrypted segment's records, for [`RecordCursor::decode`]
/// (feature `encrypt`; without it, there is nothing to decrypt with and `decode` takes `None`).
#[derive(Clone, Copy)]
pub struct Unseal<'k> {
    #[cfg(feature = "encrypt")]
    pub(crate) cipher: Option<&'k chacha20poly1305::XChaCha20Poly1305>,
    #[cfg(feature = "encrypt")]
    pub(crate) log_id: u64,
    #[cfg(feature = "encrypt")]
    pub(crate) segment: crate::storage::SegmentId,
    #[cfg(feature = "encrypt")]
    pub(crate) salt: u64,
    #[cfg(not(feature = "encrypt"))]
    _none: core::marker::PhantomData<&'k ()>,
}

#[cfg(feature = "encrypt")]
impl<'k> Unseal<'k> {
    /// The key of segment `segment` (salt `salt`) of log `log_id`, whose header names
    /// `key_id`, looked up in `keys` (a key not there makes `decode` fail with
    /// [`DecodeError::KeyMissing`]).
    pub fn new(
        keys: &'k crate::crypt::Keyring,
        log_id: u64,
        segment: crate::storage::SegmentId,
        salt: u64,
        key_id: u32,
    ) -> Self {
        Self {
            cipher: keys.get(key_id),
            log_id,
            segment,
            salt,
        }
    }
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
    /// The length the appended payload of `at` had, given its verified (and, if encrypted,
    /// decrypted) stored bytes: their length for an uncompressed record, the frame's
    /// `original_len` (checked against `max_record_size`) for a compressed one.
    pub fn original_len(&self, at: &Located, plain: &[u8]) -> Result<usize, DecodeError> {
        match at.header.flags.codec() {
            0 => Ok(plain.len()),
            RecordFlags::CODEC_LZ4 => {
                let n = frame_original_len(plain).ok_or(Fault::Undecodable)?;
                // Past the format's limit no writer made it: damage. Past the reader's own
                // (inspection reads with none): a log written with a larger limit, as a
                // stored record that long is to recovery (`RecordTooLarge`).
                if n > MAX_RECORD_SIZE_LIMIT {
                    return Err(Fault::Undecodable.into());
                }
                if n > self.max_record() {
                    return Err(DecodeError::TooLarge {
                        length: n as usize,
                        max: self.max_record(),
                    });
                }
                Ok(n as usize)
            }
            _ => Err(Fault::ReservedBits.into()),
        }
    }

    /// Turns the verified stored bytes of `at` back into the payload that was appended.
    /// Call only after the stored bytes' checksum verified: a failure here is then damage or
    /// tampering ([`DecodeError::Corrupt`]), not a torn write. An encrypted record is
    /// decrypted in place in `stored` (with `key`); a compressed one is decompressed into `out`.
    ///
    /// `out` must hold the original length ([`DecodeError::BufferTooSmall`] says how much,
    /// after an encrypted record was already decrypted in `stored`: retry with the stored
    /// bytes again).
    pub fn decode<'a>(
        &self,
        at: &Located,
        stored: &'a mut [u8],
        out: &'a mut [u8],
        key: Option<Unseal<'_>>,
    ) -> Result<&'a [u8], DecodeError> {
        self.decode_with(at, stored, key, |n| {
            out.get_mut(..n)
                .ok_or(DecodeError::BufferTooSmall { needed: n })
        })
    }

    /// [`RecordCursor::decode`] for a reader with one caller buffer, holding the stored bytes
    /// at its end and room for the decoded ones before them (`out`): a buffer too small says
    /// how long the whole one must be (original plus stored length).
    pub(crate) fn decode_in_buffer<'a>(
        &self,
        at: &Located,
        stored: &'a mut [u8],
        out: &'a mut [u8],
        key: Option<Unseal<'_>>,
    ) -> Result<&'a [u8], DecodeError> {
        let len = stored.len();
        self.decode(at, stored, out, key).map_err(|e| match e {
            DecodeError::BufferTooSmall { needed } => DecodeError::BufferTooSmall {
                needed: needed + len,
            },
            e => e,
        })
    }

    /// [`RecordCursor::decode`] with the output buffer asked for once the original length is
    /// known: `room(n)` gives `n` bytes for a compressed record (`n` is already checked
    /// against `max_record_size`, so a reader may grow a buffer to it), or says why not. The
    /// one decoding step of every reader: [`RecordCursor::decode`] (the core reader and
    /// inspection, into the caller's buffer) and walden-std's concurrent reader (into a vector
    /// it grows) both go through it.
    pub fn decode_with<'a>(
        &self,
        at: &Located,
        stored: &'a mut [u8],
        key: Option<Unseal<'_>>,
        room: impl FnOnce(usize) -> Result<&'a mut [u8], DecodeError>,
    ) -> Result<&'a [u8], DecodeError> {
        let plain: &'a [u8] = if at.header.flags.encrypted() {
            unseal(at, stored, key)?
        } else {
            stored
        };
        let n = self.original_len(at, plain)?;
        if at.header.flags.codec() == 0 {
            return Ok(plain);
        }
        let out = room(n)?;
        decompress(&plain[frame::BLOCK..], out)?;
        Ok(out)
    }
}

#[cfg(feature = "encrypt")]
fn unseal<'a>(
    at: &Located,
    stored: &'a mut [u8],
    key: Option<Unseal<'_>>,
) -> Result<&'a [u8], DecodeError> {
    let key = key.ok_or(DecodeError::KeyMissing)?;
    let cipher = key.cipher.ok_or(DecodeError::KeyMissing)?;
    let place = crate::crypt::Place {
        log_id: key.log_id,
        segment: key.segment,
        salt: key.salt,
        lsn: at.header.lsn,
        kind: at.header.kind,
    };
    let n = crate::crypt::open(cipher, &place, at.header.flags, stored)?;
    Ok(&stored[..n])
}

#[cfg(not(feature = "encrypt"))]
fn unseal<'a>(
    _: &Located,
    _: &'a mut [u8],
    _: Option<Unseal<'_>>,
) -> Result<&'a [u8], DecodeError> {
    Err(DecodeError::NotBuiltIn(
        "encrypted record (walden-core feature `encrypt`)",
    ))
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

/// The scratch `Wal::append_batch_in` (features `compress`, `encrypt`) needs to compress and
/// encrypt payloads of up to `max_record` bytes: the frame prefix, LZ4's worst case and the
/// AEAD tag.
pub const fn transform_scratch_len(max_record: u32) -> usize {
    // lz4_flex::block::get_maximum_output_size, which is not a const fn.
    let n = max_record as usize;
    FRAME_PREFIX_LEN + 16 + 4 + n + n / 10 + AEAD_TAG_LEN
}

/// How a record is to be stored: compressed from `threshold` bytes on, encrypted with a key.
#[derive(Clone, Copy)]
pub(crate) struct Encode<'k> {
    #[cfg_attr(not(feature = "compress"), allow(dead_code))]
    pub(crate) threshold: u32,
    #[cfg(feature = "encrypt")]
    pub(crate) seal: Option<(&'k chacha20poly1305::XChaCha20Poly1305, crate::crypt::Place)>,
    #[cfg(not(feature = "encrypt"))]
    pub(crate) seal: Option<(&'k (), ())>,
}

/// The bytes to store for `payload` and the record flags saying how they were made; `Err`
/// with the scratch length needed when an encrypted record does not fit `scratch` (it is never
/// stored in plaintext). Stored bytes are never longer than the payload plus the tag.
pub(crate) fn encode<'a>(
    payload: &'a [u8],
    how: &Encode<'_>,
    scratch: &'a mut [u8],
) -> Result<(RecordFlags, &'a [u8]), usize> {
    #[cfg(feature = "compress")]
    let framed = compress(payload, how.threshold, scratch);
    #[cfg(not(feature = "compress"))]
    let framed: Option<usize> = None;
    let codec = if framed.is_some() {
        RecordFlags::CODEC_LZ4
    } else {
        0
    };
    let flags = RecordFlags::PLAIN.with_codec(codec);
    #[cfg(feature = "encrypt")]
    if let Some((cipher, place)) = &how.seal {
        let needed = transform_scratch_len(payload.len().min(u32::MAX as usize) as u32);
        let len = match framed {
            Some(n) => n,
            None => {
                let Some(dst) = scratch.get_mut(..payload.len()) else {
                    return Err(needed);
                };
                dst.copy_from_slice(payload);
                payload.len()
            }
        };
        let flags = flags.with_encrypted();
        let total = crate::crypt::seal(cipher, place, flags, scratch, len).ok_or(needed)?;
        return Ok((flags, &scratch[..total]));
    }
    #[cfg(not(feature = "encrypt"))]
    let _ = &how.seal;
    match framed {
        Some(n) => Ok((flags, &scratch[..n])),
        None => Ok((flags, payload)),
    }
}

/// Payloads at least this long are probed before they are compressed: [`PROBE`] bytes at
/// their start and [`PROBE`] at their middle. When neither shrinks by a thirty-second, the
/// payload is stored as it is without compressing the rest: LZ4's whole failed attempt on
/// incompressible 256 KiB records was 7% of appending them (`perf`), the probes are 3%
/// of it. A payload that compresses only elsewhere is stored plain (a missed saving, never
/// a wrong record).
#[cfg(feature = "compress")]
const PROBE_FROM: usize = 64 << 10;
/// The length of each probe.
#[cfg(feature = "compress")]
const PROBE: usize = 4 << 10;

/// Compresses `payload` into `scratch` as a frame if it is at least `threshold` bytes long
/// (`threshold` 0: never) and the frame is shorter than the payload; returns the frame's
/// length. `None`: store the payload as it is (incompressible, short, or a scratch too small
/// for [`transform_scratch_len`]).
#[cfg(feature = "compress")]
pub(crate) fn compress(payload: &[u8], threshold: u32, scratch: &mut [u8]) -> Option<usize> {
    if threshold == 0 || payload.len() < threshold as usize {
        return None;
    }
    let len = u32::try_from(payload.len()).ok()?;
    let (prefix, block) = scratch.split_at_mut_checked(FRAME_PREFIX_LEN)?;
    if payload.len() >= PROBE_FROM {
        let mid = payload.len() / 2;
        let shrinks = |probe: &[u8], block: &mut [u8]| {
            lz4_flex::block::compress_into(probe, block)
                .is_ok_and(|n| n + probe.len() / 32 <= probe.len())
        };
        if !shrinks(&payload[..PROBE], block) && !shrinks(&payload[mid..mid + PROBE], block) {
            return None;
        }
    }
    match lz4_flex::block::compress_into(payload, block) {
        Ok(n) if FRAME_PREFIX_LEN + n < payload.len() => {
            prefix.copy_from_slice(&len.to_le_bytes());
            Some(FRAME_PREFIX_LEN + n)
        }
        _ => None,
    }
}

#[cfg(all(test, feature = "compress"))]
mod tests {
    use super::*;
    use std::vec;

    #[test]
    fn the_scratch_length_is_lz4s_worst_case() {
        for n in [0u32, 1, 100, 4096, 1 << 20] {
            assert!(
                transform_scratch_len(n)
                    >= FRAME_PREFIX_LEN + lz4_flex::block::get_maximum_output_size(n as usize)
            );
        }
    }

    #[test]
    fn short_incompressible_and_unscratched_payloads_stay_plain() {
        let mut scratch = vec![0u8; transform_scratch_len(10_000)];
        let text = b"abcdefgh".repeat(1000);
        let n = compress(&text, 4096, &mut scratch).unwrap();
        assert!(n < text.len() / 4);
        assert_eq!(frame_original_len(&scratch[..n]), Some(8000));
        // Below the threshold, with the threshold off, or without room: stored as appended.
        assert_eq!(compress(&text[..4095], 4096, &mut scratch), None);
        assert_eq!(compress(&text, 0, &mut scratch), None);
        assert_eq!(compress(&text, 1, &mut [0u8; 100]), None);
        // Noise does not shrink.
        let noise = noise(8000);
        assert_eq!(compress(&noise, 1, &mut scratch), None);
    }

    /// `n` bytes of noise.
    fn noise(n: usize) -> std::vec::Vec<u8> {
        let mut x = 0x9876_5432_u64;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn a_large_payload_is_compressed_when_a_probe_shrinks_and_only_then() {
        let n = PROBE_FROM + 1000;
        let mut scratch = vec![0u8; transform_scratch_len(n as u32)];
        let text = b"abcdefgh".repeat(n / 8 + 1)[..n].to_vec();
        assert!(compress(&text, 1, &mut scratch).unwrap() < n / 4);
        // Noise, then text from the middle on: the second probe shrinks.
        let mut half = noise(n);
        half[n / 2..].copy_from_slice(&text[n / 2..]);
        assert!(compress(&half, 1, &mut scratch).unwrap() < n * 3 / 4);
        // Text only at the start: the first probe shrinks.
        let mut start = noise(n);
        start[..n / 4].copy_from_slice(&text[..n / 4]);
        assert!(compress(&start, 1, &mut scratch).unwrap() < n);
        // Noise where both probes look: stored plain, though its end would compress.
        let mut end = noise(n);
        end[n * 3 / 4..].copy_from_slice(&text[n * 3 / 4..]);
        assert_eq!(compress(&end, 1, &mut scratch), None);
        assert_eq!(compress(&noise(n), 1, &mut scratch), None);
        // Just below the probing length, noise in the same places is still tried whole.
        let m = PROBE_FROM - 1;
        let mut small = noise(m);
        small[m * 3 / 4..].copy_from_slice(&text[m * 3 / 4..m]);
        assert!(compress(&small, 1, &mut scratch).is_some());
    }
}
