//! Authenticated encryption at rest (format version 3, feature `encrypt`): the keyring, and the
//! nonce and associated data of a record, exactly as `docs/FORMAT.md` ("Record flags,
//! compression and encryption") specifies them.
//!
//! A record's nonce is `salt ‖ segment_id ‖ lsn` (XChaCha20's 24 bytes). It never repeats
//! under one key because an encrypted log appends only to a segment it created itself since
//! its last rewind (see [`Wal::set_keys`](crate::Wal::set_keys) and FORMAT.md): every (segment,
//! salt) pair receives each LSN at most once.

use core::fmt;

use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{KeyInit, Tag, XChaCha20Poly1305, XNonce};

use crate::cursor::Fault;
use crate::format::{AEAD_TAG_LEN, RecordFlags, RecordKind};
use crate::lsn::Lsn;
use crate::storage::SegmentId;

/// How many keys a [`Keyring`] holds.
pub const MAX_KEYS: usize = 8;

/// The length of a key: 256 bits.
pub const KEY_LEN: usize = 32;

/// The nonce under which a key's id is derived (over no data). A record's nonce could equal it
/// only in a segment with id `0x7620_2c64_6920_7965` ("ey id, v"), far beyond any log.
const KEY_ID_NONCE: [u8; 24] = *b"walden key id, v3 format";

/// One key, with its id.
#[derive(Clone)]
struct Entry {
    id: u32,
    cipher: XChaCha20Poly1305,
}

/// The keys a log may read with, and the one it writes new segments with (the *current* key).
///
/// A key's id is derived from the key (the first 4 bytes of its Poly1305 tag over nothing,
/// under a fixed nonce), so the segment header's `key_id` names the key without revealing it,
/// and a wrong key is told from tampering: it has another id, and reading a segment whose key
/// id is not in the ring is [`ReadError::KeyMissing`](crate::ReadError::KeyMissing), not
/// corruption. Fixed size ([`MAX_KEYS`]), no allocation. `Debug` prints ids only.
#[derive(Clone, Default)]
pub struct Keyring {
    keys: heapless::Vec<Entry, MAX_KEYS>,
    current: Option<u32>,
}

/// Why a key could not be added to a [`Keyring`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyringError {
    /// The ring holds [`MAX_KEYS`] keys already.
    Full,
    /// Another key already has this id (a 1 in 2³² chance for distinct keys): use another key.
    IdTaken {
        /// The id.
        id: u32,
    },
}

impl fmt::Display for KeyringError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full => write!(f, "the keyring holds {MAX_KEYS} keys already"),
            Self::IdTaken { id } => write!(f, "another key already has id {id:#010x}"),
        }
    }
}

impl core::error::Error for KeyringError {}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("ids", &self.ids())
            .field("current", &self.current)
            .finish()
    }
}

/// The id of `key` (see [`Keyring`]).
pub fn key_id(key: &[u8; KEY_LEN]) -> u32 {
    id_of(&XChaCha20Poly1305::new(key.into()))
}

fn id_of(cipher: &XChaCha20Poly1305) -> u32 {
    let tag = cipher
        .encrypt_in_place_detached(XNonce::from_slice(&KEY_ID_NONCE), &[], &mut [])
        .unwrap_or_default();
    u32::from_le_bytes([tag[0], tag[1], tag[2], tag[3]])
}

impl Keyring {
    /// An empty ring: nothing is encrypted, nothing encrypted can be read.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `key` for reading and returns its id. Adding a key already in the ring returns
    /// its id again.
    pub fn add(&mut self, key: &[u8; KEY_LEN]) -> Result<u32, KeyringError> {
        let cipher = XChaCha20Poly1305::new(key.into());
        let id = id_of(&cipher);
        if self.get(id).is_some() {
            // Same id: the same key, unless 32 bits collide; a second derivation tells them
            // apart without comparing key bytes.
            let probe = |c: &XChaCha20Poly1305| {
                c.encrypt_in_place_detached(XNonce::from_slice(&[7; 24]), &[], &mut [])
                    .unwrap_or_default()
            };
            let existing = self.get(id).map(probe);
            return if existing == Some(probe(&cipher)) {
                Ok(id)
            } else {
                Err(KeyringError::IdTaken { id })
            };
        }
        self.keys
            .push(Entry { id, cipher })
            .map_err(|_| KeyringError::Full)?;
        Ok(id)
    }

    /// Adds `key` and makes it the current key: segments created from now on are encrypted
    /// with it (the next append starts a new segment). Returns its id.
    pub fn add_current(&mut self, key: &[u8; KEY_LEN]) -> Result<u32, KeyringError> {
        let id = self.add(key)?;
        self.current = Some(id);
        Ok(id)
    }

    /// The ids of the keys in the ring.
    pub fn ids(&self) -> heapless::Vec<u32, MAX_KEYS> {
        self.keys.iter().map(|e| e.id).collect()
    }

    /// The current key's id: new segments are encrypted with it. `None`: new segments are
    /// written in plaintext.
    pub fn current(&self) -> Option<u32> {
        self.current
    }

    pub(crate) fn get(&self, id: u32) -> Option<&XChaCha20Poly1305> {
        self.keys.iter().find(|e| e.id == id).map(|e| &e.cipher)
    }
}

/// Where a record is: what its nonce and associated data are made of.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Place {
    pub log_id: u64,
    pub segment: SegmentId,
    pub salt: u64,
    pub lsn: Lsn,
    pub kind: RecordKind,
}

impl Place {
    /// `salt ‖ segment_id ‖ lsn`.
    pub(crate) fn nonce(&self) -> [u8; 24] {
        let mut n = [0u8; 24];
        n[..8].copy_from_slice(&self.salt.to_le_bytes());
        n[8..16].copy_from_slice(&self.segment.to_le_bytes());
        n[16..].copy_from_slice(&self.lsn.0.to_le_bytes());
        n
    }

    /// `log_id ‖ segment_id ‖ kind ‖ flags`.
    fn aad(&self, flags: RecordFlags) -> [u8; 18] {
        let mut a = [0u8; 18];
        a[..8].copy_from_slice(&self.log_id.to_le_bytes());
        a[8..16].copy_from_slice(&self.segment.to_le_bytes());
        a[16] = self.kind.to_byte();
        a[17] = flags.0;
        a
    }
}

/// Encrypts `buf[..len]` in place and appends the tag: the stored payload is `buf[..len + 16]`.
/// `flags` are the record's (with the encrypted bit). `None` when `buf` has no room for the tag.
pub(crate) fn seal(
    cipher: &XChaCha20Poly1305,
    place: &Place,
    flags: RecordFlags,
    buf: &mut [u8],
    len: usize,
) -> Option<usize> {
    let total = len.checked_add(AEAD_TAG_LEN)?;
    let buf = buf.get_mut(..total)?;
    let (plain, tag_out) = buf.split_at_mut(len);
    #[cfg(test)]
    record_nonce(id_of(cipher), place.nonce());
    let tag = cipher
        .encrypt_in_place_detached(XNonce::from_slice(&place.nonce()), &place.aad(flags), plain)
        .ok()?;
    tag_out.copy_from_slice(&tag);
    Some(total)
}

/// Verifies and decrypts a stored payload in place; returns the plaintext's length. A tag that
/// fails is [`Fault::Tampered`]: the checksum over the same bytes verified, so no torn write
/// made them.
pub(crate) fn open(
    cipher: &XChaCha20Poly1305,
    place: &Place,
    flags: RecordFlags,
    stored: &mut [u8],
) -> Result<usize, Fault> {
    let len = stored
        .len()
        .checked_sub(AEAD_TAG_LEN)
        .ok_or(Fault::Tampered)?;
    let (body, tag) = stored.split_at_mut(len);
    let tag = Tag::clone_from_slice(tag);
    cipher
        .decrypt_in_place_detached(
            XNonce::from_slice(&place.nonce()),
            &place.aad(flags),
            body,
            &tag,
        )
        .map_err(|_| Fault::Tampered)?;
    Ok(len)
}

#[cfg(test)]
std::thread_local! {
    /// Every (key id, nonce) this thread encrypted under, for the nonce-uniqueness tests.
    pub(crate) static NONCES: core::cell::RefCell<std::vec::Vec<(u32, [u8; 24])>> =
        const { core::cell::RefCell::new(std::vec::Vec::new()) };
}

#[cfg(test)]
std::thread_local! {
    /// A deliberately broken writer for the checker's own test: appends to whatever segment
    /// is newest, as if the fresh-segment rule did not exist.
    pub(crate) static BREAK_FRESH_RULE: core::cell::Cell<bool> = const { core::cell::Cell::new(false) };
}

/// Whether the fresh-segment rule is switched off (tests of the nonce checker only).
pub(crate) fn rule_broken() -> bool {
    #[cfg(test)]
    return BREAK_FRESH_RULE.with(core::cell::Cell::get);
    #[cfg(not(test))]
    false
}

#[cfg(test)]
fn record_nonce(key: u32, nonce: [u8; 24]) {
    NONCES.with(|n| n.borrow_mut().push((key, nonce)));
}
