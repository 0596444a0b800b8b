//! Typed records (feature `serde`): any `Serialize` type as a record payload via `postcard`, and
//! a ready key-value [`Entry`] with `Put` / `Delete` and size limits.

use core::fmt;

use serde::{Deserialize, Serialize};

use crate::lsn::Lsn;
use crate::storage::Storage;
use crate::table::SegmentTable;
use crate::wal::Wal;
use crate::{AppendError, ReadError};

/// A key-value change, borrowed from the caller's (or the reader's) buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Entry<'a> {
    /// Set `key` to `value`.
    Put {
        /// The key.
        key: &'a [u8],
        /// The value.
        value: &'a [u8],
    },
    /// Remove `key`.
    Delete {
        /// The key.
        key: &'a [u8],
    },
}

/// Size limits for [`Entry`] keys and values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryLimits {
    /// Longest key (default 1 MiB).
    pub max_key: usize,
    /// Longest value (default 10 MiB).
    pub max_value: usize,
}

impl Default for EntryLimits {
    fn default() -> Self {
        Self {
            max_key: 1 << 20,
            max_value: 10 << 20,
        }
    }
}

/// Encoding or decoding a typed record failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EntryError {
    /// The key is longer than the limit.
    KeyTooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The value is longer than the limit.
    ValueTooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The buffer cannot hold the encoded record.
    BufferTooSmall,
    /// The bytes are not a valid encoding of the type.
    Malformed,
}

impl fmt::Display for EntryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::KeyTooLarge { len, max } => write!(f, "key of {len} bytes exceeds {max}"),
            Self::ValueTooLarge { len, max } => write!(f, "value of {len} bytes exceeds {max}"),
            Self::BufferTooSmall => f.write_str("buffer too small for the encoded record"),
            Self::Malformed => f.write_str("record payload is not a valid encoding"),
        }
    }
}

impl core::error::Error for EntryError {}

/// Encodes any serializable value into `buf` and returns the used part.
pub fn encode<'b, T: Serialize + ?Sized>(
    value: &T,
    buf: &'b mut [u8],
) -> Result<&'b [u8], EntryError> {
    postcard::to_slice(value, buf)
        .map(|s| &*s)
        .map_err(|_| EntryError::BufferTooSmall)
}

/// Decodes a value from a record payload; trailing bytes are an error.
pub fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, EntryError> {
    match postcard::take_from_bytes(bytes) {
        Ok((v, [])) => Ok(v),
        _ => Err(EntryError::Malformed),
    }
}

impl<'a> Entry<'a> {
    /// The key.
    pub fn key(&self) -> &'a [u8] {
        match self {
            Entry::Put { key, .. } | Entry::Delete { key } => key,
        }
    }

    /// Checks the limits.
    pub fn check(&self, limits: &EntryLimits) -> Result<(), EntryError> {
        let key = self.key();
        if key.len() > limits.max_key {
            return Err(EntryError::KeyTooLarge {
                len: key.len(),
                max: limits.max_key,
            });
        }
        if let Entry::Put { value, .. } = self
            && value.len() > limits.max_value
        {
            return Err(EntryError::ValueTooLarge {
                len: value.len(),
                max: limits.max_value,
            });
        }
        Ok(())
    }

    /// Decodes an entry and checks it against the limits.
    pub fn decode(bytes: &'a [u8], limits: &EntryLimits) -> Result<Self, EntryError> {
        let e: Entry<'a> = decode(bytes)?;
        e.check(limits)?;
        Ok(e)
    }
}

/// Appending a typed record failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TypedAppendError<E> {
    /// The value could not be encoded (or breaks the entry limits).
    Encode(EntryError),
    /// The append itself failed.
    Append(AppendError<E>),
}

impl<S: Storage, Table: SegmentTable> Wal<S, Table> {
    /// Encodes `value` into the front of `scratch` and appends it. With `compress` or
    /// `encrypt` the rest of `scratch` is the record's transform scratch (as
    /// [`Wal::append_batch_in`]'s): in an encrypted log leave
    /// [`transform_scratch_len`](crate::transform_scratch_len)`(encoded length)` bytes after
    /// the encoding, or the append is refused with [`AppendError::ScratchTooSmall`] (whose
    /// `needed` counts that rest) before anything is written.
    pub fn append_typed<T: Serialize + ?Sized>(
        &mut self,
        value: &T,
        scratch: &mut [u8],
    ) -> Result<Lsn, TypedAppendError<S::Error>> {
        let n = encode(value, scratch)
            .map_err(TypedAppendError::Encode)?
            .len();
        let (bytes, rest) = scratch.split_at_mut(n);
        #[cfg(any(feature = "compress", feature = "encrypt"))]
        let appended = self.append_batch_in(&[bytes], rest);
        #[cfg(not(any(feature = "compress", feature = "encrypt")))]
        let appended = {
            let _ = rest;
            self.append(bytes)
        };
        appended.map_err(TypedAppendError::Append)
    }

    /// Checks `entry` against `limits`, encodes it into `scratch`, and appends it.
    pub fn append_entry(
        &mut self,
        entry: &Entry<'_>,
        limits: &EntryLimits,
        scratch: &mut [u8],
    ) -> Result<Lsn, TypedAppendError<S::Error>> {
        entry.check(limits).map_err(TypedAppendError::Encode)?;
        self.append_typed(entry, scratch)
    }

    /// Reads record `lsn` into `buf` and decodes it as `T`.
    pub fn read_typed<'b, T: Deserialize<'b>>(
        &self,
        lsn: Lsn,
        buf: &'b mut [u8],
    ) -> Result<Result<T, EntryError>, ReadError<S::Error>> {
        let rec = self.read(lsn, buf)?;
        Ok(decode(rec.payload))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{Mem, open, small};

    #[test]
    fn entries_round_trip_through_the_log() {
        let (mut wal, _) = open(Mem::default(), small());
        let limits = EntryLimits::default();
        let mut scratch = [0u8; 256];
        let put = Entry::Put {
            key: b"k1",
            value: b"v1",
        };
        let del = Entry::Delete { key: b"k1" };
        let a = wal.append_entry(&put, &limits, &mut scratch).unwrap();
        let b = wal.append_entry(&del, &limits, &mut scratch).unwrap();
        let mut buf = [0u8; 256];
        assert_eq!(wal.read_typed::<Entry<'_>>(a, &mut buf).unwrap(), Ok(put));
        assert_eq!(wal.read_typed::<Entry<'_>>(b, &mut buf).unwrap(), Ok(del));
    }

    #[test]
    fn limits_and_malformed_bytes_are_typed_errors() {
        let small_limits = EntryLimits {
            max_key: 2,
            max_value: 3,
        };
        let e = Entry::Put {
            key: b"key",
            value: b"v",
        };
        assert_eq!(
            e.check(&small_limits),
            Err(EntryError::KeyTooLarge { len: 3, max: 2 })
        );
        let e = Entry::Put {
            key: b"k",
            value: b"value",
        };
        assert_eq!(
            e.check(&small_limits),
            Err(EntryError::ValueTooLarge { len: 5, max: 3 })
        );
        let mut buf = [0u8; 64];
        let bytes = encode(&e, &mut buf).unwrap();
        assert_eq!(Entry::decode(bytes, &EntryLimits::default()), Ok(e));
        assert_eq!(
            Entry::decode(bytes, &small_limits),
            Err(EntryError::ValueTooLarge { len: 5, max: 3 })
        );
        assert_eq!(decode::<Entry<'_>>(&[9, 9, 9]), Err(EntryError::Malformed));
        let mut extra = std::vec::Vec::from(bytes);
        extra.push(0);
        assert_eq!(
            decode::<Entry<'_>>(&extra),
            Err(EntryError::Malformed),
            "trailing bytes"
        );
        assert_eq!(encode(&e, &mut [0u8; 2]), Err(EntryError::BufferTooSmall));
    }

    #[test]
    fn typed_values_round_trip() {
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct Op<'a> {
            id: u32,
            name: &'a str,
        }
        let (mut wal, _) = open(Mem::default(), small());
        let v = Op {
            id: 7,
            name: "seven",
        };
        let lsn = wal.append_typed(&v, &mut [0u8; 64]).unwrap();
        assert_eq!(
            wal.read_typed::<Op<'_>>(lsn, &mut [0u8; 64]).unwrap(),
            Ok(v)
        );
    }
}
