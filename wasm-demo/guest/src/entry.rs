//! The record payload: one key-value operation, in an explicit little-endian layout.
//!
//! ```text
//! offset 0  u8      tag: 1 = put, 2 = delete
//! offset 1  u16 LE  key length
//! offset 3  key     (key length bytes)
//! then      value   (put only: the rest of the payload)
//! ```

const TAG: usize = 0;
const KEY_LEN: usize = 1;
const KEY: usize = 3;
const PUT: u8 = 1;
const DELETE: u8 = 2;

/// One operation on the store.
#[derive(Debug, PartialEq, Eq)]
pub enum Entry<'a> {
    Put { key: &'a [u8], value: &'a [u8] },
    Delete { key: &'a [u8] },
}

impl<'a> Entry<'a> {
    /// Appends the encoding to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let (tag, key, value): (u8, &[u8], &[u8]) = match *self {
            Entry::Put { key, value } => (PUT, key, value),
            Entry::Delete { key } => (DELETE, key, &[]),
        };
        let key_len = u16::try_from(key.len()).expect("keys are short");
        out.push(tag);
        out.extend_from_slice(&key_len.to_le_bytes());
        out.extend_from_slice(key);
        out.extend_from_slice(value);
    }

    /// Decodes a payload, rejecting unknown tags, short input and trailing bytes on deletes.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, &'static str> {
        let tag = *bytes.get(TAG).ok_or("empty payload")?;
        let len = bytes.get(KEY_LEN..KEY).ok_or("short key length")?;
        let key_len = usize::from(u16::from_le_bytes([len[0], len[1]]));
        let key = bytes.get(KEY..KEY + key_len).ok_or("short key")?;
        let rest = &bytes[KEY + key_len..];
        match tag {
            PUT => Ok(Entry::Put { key, value: rest }),
            DELETE if rest.is_empty() => Ok(Entry::Delete { key }),
            DELETE => Err("trailing bytes after a delete"),
            _ => Err("unknown tag"),
        }
    }
}

/// FNV-1a 64: the value hash printed in ACK and REC lines (the host has the same function).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325_u64;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}
