//! The log state machine: append, batch, sync, rotate, truncate.

use crate::case::Case;
use crate::checksum::ChecksumAlgorithm;
use crate::config::{Config, SyncPolicy};
use crate::counters::Counters;
use crate::cursor::{RecordCursor, SegmentKeys};
use crate::error::{AppendError, Corruption, IoFailure, Op, Poisoned, SyncError, TruncateError};
use crate::format::{
    FORMAT_VERSION, META_LEN, Meta, RECORD_HEADER_LEN, RecordHeader, RecordKind,
    SEGMENT_HEADER_LEN, SegmentHeader, VERSION_WITH_META,
};
use crate::lsn::Lsn;
use crate::storage::{SegmentId, Storage, StorageError};
use crate::table::{Fixed, SegmentList, SegmentTable};

/// What the log knows about one segment.
///
/// 40 bytes: every entry of the segment table and every segment of a `Wal` costs this much,
/// on a microcontroller in `Wal::open`'s frame too, so the format version and the key id are
/// kept packed (read them with [`SegmentInfo::version`] and [`SegmentInfo::key_id`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentInfo {
    /// The segment id.
    pub id: SegmentId,
    /// LSN of its first record.
    pub first_lsn: Lsn,
    /// Its salt.
    pub salt: u64,
    /// Offset just past its last record (before its seal, if it has one).
    pub end: u64,
    /// Its checksum algorithm.
    pub checksum: ChecksumAlgorithm,
    /// Whether a seal record (naming its successor) follows the last record, at `end`.
    pub sealed: bool,
    /// Whether the segment was created before its predecessor was durable (the header's
    /// `early` flag, [`Config::early_rotation`]).
    pub early: bool,
    /// The format version (at most [`FORMAT_VERSION`], which fits 7 bits), with
    /// [`ENCRYPTED`] set for an encrypted segment.
    packed_version: u8,
    /// The key id of an encrypted segment, 0 in plaintext.
    key: u32,
}

/// The bit of [`SegmentInfo`]'s packed version that says the segment is encrypted.
const ENCRYPTED: u8 = 0x80;

const _: () = assert!(FORMAT_VERSION < ENCRYPTED as u16);
const _: () = assert!(core::mem::size_of::<SegmentInfo>() <= 40);

impl SegmentInfo {
    /// A table entry. `version` is a decoded header's, so at most [`FORMAT_VERSION`].
    #[allow(clippy::too_many_arguments)] // one per field; two callers, in walden-core
    pub(crate) fn new(
        id: SegmentId,
        first_lsn: Lsn,
        salt: u64,
        end: u64,
        checksum: ChecksumAlgorithm,
        version: u16,
        key_id: Option<u32>,
        early: bool,
    ) -> Self {
        debug_assert!(version <= FORMAT_VERSION);
        let version = version as u8;
        Self {
            id,
            first_lsn,
            salt,
            end,
            checksum,
            sealed: false,
            early,
            // `+`, not `|`: the bits are disjoint, and an addition has no equivalent mutant.
            packed_version: if key_id.is_some() {
                ENCRYPTED + version
            } else {
                version
            },
            key: key_id.unwrap_or(0),
        }
    }

    /// Its format version.
    pub fn version(&self) -> u16 {
        u16::from(self.packed_version & !ENCRYPTED)
    }

    /// The key id of an encrypted segment (version 3), `None` in plaintext.
    pub fn key_id(&self) -> Option<u32> {
        (self.packed_version & ENCRYPTED != 0).then_some(self.key)
    }

    /// The cursor keys for reading this segment's records up to `end`.
    // Never inlined on 32-bit targets: one copy instead of one per reader and walk
    // (docs/EMBEDDED.md).
    #[cfg_attr(target_pointer_width = "32", inline(never))]
    pub fn keys(&self, max_record: u32) -> SegmentKeys {
        SegmentKeys {
            checksum: self.checksum,
            salt: self.salt,
            version: self.version(),
            max_record,
            end: self.end,
            key_id: self.key_id(),
        }
    }
}

/// The capacity of the default segment table, [`Fixed`].
pub const DEFAULT_SEGMENTS: usize = 64;

/// A write-ahead log over a [`Storage`], keeping its segment table in `Table`: by default a
/// fixed table of [`DEFAULT_SEGMENTS`], so no allocator is needed. `Wal<S, Fixed<8>>` holds at
/// most 8 segments at once; `Wal<S, Growable>` (feature `alloc`) has no such bound (see
/// [`SegmentTable`]).
///
/// Open it with [`Wal::open`], which runs recovery. Errors on a write or sync path poison the
/// log: every later append, sync and truncation fails with [`Poisoned`] until the log is
/// reopened. Reads still answer; a record above [`Wal::durable_lsn`] that they return may be
/// gone after a crash (the failed sync may have lost it).
pub struct Wal<S: Storage, Table: SegmentTable = Fixed<DEFAULT_SEGMENTS>> {
    pub(crate) storage: S,
    pub(crate) config: Config,
    pub(crate) log_id: u64,
    pub(crate) segments: Table::List<SegmentInfo>,
    pub(crate) next_lsn: Lsn,
    pub(crate) durable: Lsn,
    pub(crate) unsynced_records: u64,
    pub(crate) unsynced_bytes: u64,
    pub(crate) dirty: bool,
    pub(crate) poisoned: Option<Poisoned>,
    pub(crate) counters: Counters,
    pub(crate) salt_state: u64,
    /// Bumped by every `truncate_back`, so a sync begun before a rewind cannot vouch for
    /// records appended after it.
    pub(crate) rewinds: u64,
    /// The generation of the newest start-slot record (0: none written yet).
    pub(crate) start_generation: u64,
    /// The oldest segment before the active one that is not known synced whole (an early
    /// rotation left it, [`Config::early_rotation`]): every segment from it up to the active
    /// one is synced before the durable LSN may advance.
    #[cfg(feature = "early-rotation")]
    pub(crate) pending: Option<SegmentId>,
    /// The keys to encrypt new segments with and to read encrypted ones.
    #[cfg(feature = "encrypt")]
    pub(crate) keys: crate::crypt::Keyring,
    /// The segment this log created last, and `rewinds` then: an encrypted log appends only
    /// to it, and only while no rewind has happened since.
    #[cfg(feature = "encrypt")]
    pub(crate) fresh: Option<(SegmentId, u64)>,
}

/// A sync begun with [`Wal::begin_sync`]: the adapter syncs `segment` itself (for example
/// outside its lock, for group commit) and reports the outcome with [`Wal::finish_sync`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "finish the sync with Wal::finish_sync"]
pub struct SyncTicket {
    /// The first segment to sync: segments before the active one that an early rotation left
    /// unsynced ([`Config::early_rotation`]), or `segment` itself. Sync every segment from
    /// `first` to `segment`, oldest first; only then does the sync count.
    pub first: SegmentId,
    /// The segment to sync (the active one), last.
    pub segment: SegmentId,
    /// The last LSN the sync covers.
    pub lsn: Lsn,
    rewinds: u64,
}

pub(crate) fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl<S: Storage, Table: SegmentTable> Wal<S, Table> {
    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The log's id (the same in every segment header).
    pub fn log_id(&self) -> u64 {
        self.log_id
    }

    /// The first LSN in the log (equal to [`Wal::next_lsn`] when the log is empty).
    pub fn first_lsn(&self) -> Lsn {
        self.segments.first().map_or(self.next_lsn, |s| s.first_lsn)
    }

    /// The LSN of the last record appended (`first_lsn − 1` when empty).
    pub fn last_lsn(&self) -> Lsn {
        self.next_lsn.prev()
    }

    /// The LSN the next record will get.
    pub fn next_lsn(&self) -> Lsn {
        self.next_lsn
    }

    /// The highest LSN known durable: every record up to it survives a crash.
    pub fn durable_lsn(&self) -> Lsn {
        self.durable
    }

    /// Why the log is poisoned, if it is.
    pub fn poisoned(&self) -> Option<Poisoned> {
        self.poisoned
    }

    /// Counters since open.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// The segments, oldest first; the last one is being appended to.
    pub fn segments(&self) -> &[SegmentInfo] {
        &self.segments
    }

    /// The storage, for inspection.
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// Gives the storage back (after a final `sync` if you need durability).
    #[cfg_attr(target_pointer_width = "32", inline(never))]
    pub fn into_storage(self) -> S {
        self.storage
    }

    #[cfg(test)]
    pub(crate) fn storage_for_tests(&mut self) -> &mut S {
        &mut self.storage
    }

    fn check(&self) -> Result<(), Poisoned> {
        self.poisoned.map_or(Ok(()), Err)
    }

    /// Runs a storage operation on the write path: any failure poisons the log.
    pub(crate) fn guarded<T>(
        &mut self,
        op: Op,
        segment: Option<SegmentId>,
        f: impl FnOnce(&mut S) -> Result<T, S::Error>,
    ) -> Result<T, IoFailure<S::Error>> {
        f(&mut self.storage).map_err(|error| {
            self.poisoned = Some(Poisoned {
                op,
                segment,
                kind: error.kind(),
            });
            IoFailure { op, segment, error }
        })
    }

    pub(crate) fn fresh_salt(&mut self, id: SegmentId, first: Lsn) -> u64 {
        self.salt_state = splitmix64(
            self.salt_state ^ id.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ first.0.rotate_left(32),
        );
        self.salt_state.max(1)
    }

    /// Creates segment `id` starting at `first`: create, header, sync, directory sync. `early`:
    /// its predecessor is not synced whole (the header's `early` flag).
    pub(crate) fn create_segment(
        &mut self,
        id: SegmentId,
        first: Lsn,
        exists: bool,
        early: bool,
    ) -> Result<SegmentInfo, IoFailure<S::Error>> {
        let salt = self.fresh_salt(id, first);
        let checksum = self.config.checksum;
        let header = SegmentHeader {
            version: FORMAT_VERSION,
            checksum,
            log_id: self.log_id,
            segment_id: id,
            first_lsn: first,
            salt,
            first_segment: Some(self.segments.first().map_or(id, |s| s.id)),
            key_id: self.current_key(),
            early,
        }
        .encode();
        if exists {
            self.guarded(Op::Truncate, Some(id), |s| s.truncate(id, 0))?;
        } else {
            self.guarded(Op::Create, Some(id), |s| s.create(id))?;
        }
        self.guarded(Op::Write, Some(id), |s| s.write(id, 0, &header))?;
        self.guarded(Op::Sync, Some(id), |s| s.sync(id))?;
        self.guarded(Op::SyncDir, None, |s| s.sync_dir())?;
        // Only a hint: a failure here surfaces on the write that needs the space.
        let _ = self.storage.reserve(id, self.config.segment_size);
        Ok(SegmentInfo::new(
            id,
            first,
            salt,
            SEGMENT_HEADER_LEN as u64,
            checksum,
            FORMAT_VERSION,
            self.current_key(),
            early,
        ))
    }

    /// The key id new segments are encrypted with (`None`: plaintext).
    fn current_key(&self) -> Option<u32> {
        #[cfg(feature = "encrypt")]
        return self.keys.current();
        #[cfg(not(feature = "encrypt"))]
        None
    }

    /// Sets the keys: segments created from now on are encrypted with `keys`' current key
    /// (none: plaintext), and segments encrypted with any key in it can be read (feature
    /// `encrypt`). Encrypted appends need a scratch ([`Wal::append_batch_in`]). With a current
    /// key, the next append starts a new segment, as does the first append after every open
    /// and every `truncate_back`: an encrypted log never appends to a segment it did not
    /// create since its last rewind, so no nonce repeats (docs/FORMAT.md).
    ///
    /// `entropy` must be a fresh random value at every call (a hardware RNG, the operating
    /// system's): it is mixed into the salts of the segments created from now on. Salts
    /// otherwise come only from [`Config::salt_seed`] and the salts on the medium, so with a
    /// seed repeated across opens a log restored from a copy of its medium, salvaged, or
    /// created again draws the same salts for the same segments and LSNs, and repeats nonces
    /// under the key (which reveals the XOR of two plaintexts and lets tags be forged).
    #[cfg(feature = "encrypt")]
    pub fn set_keys(&mut self, keys: crate::crypt::Keyring, entropy: u64) {
        self.salt_state = splitmix64(self.salt_state ^ splitmix64(entropy ^ 0x6b65_7973));
        self.keys = keys;
    }

    /// The keyring ([`Wal::set_keys`]).
    #[cfg(feature = "encrypt")]
    pub fn keys(&self) -> &crate::crypt::Keyring {
        &self.keys
    }

    /// Writes a metadata record at the end of segment `k` (not synced). Version-1 segments
    /// have no metadata records: nothing is written and `false` returned.
    pub(crate) fn write_meta(&mut self, k: usize, meta: Meta) -> Result<bool, IoFailure<S::Error>> {
        let seg = &self.segments[k];
        if seg.version() < VERSION_WITH_META {
            return Ok(false);
        }
        let record = crate::format::encode_meta_record(
            seg.checksum,
            seg.salt,
            self.next_lsn,
            RecordHeader::ack_gap_for(self.next_lsn, self.durable),
            meta,
        );
        let (id, end) = (seg.id, seg.end);
        self.guarded(Op::Write, Some(id), |s| s.write(id, end, &record))?;
        Ok(true)
    }

    /// Records durably that the log starts at segment `first` (the next start-slot generation,
    /// written over the older slot and synced; a slot created here is made durable with a
    /// directory sync).
    #[cfg(feature = "start-slots")]
    pub(crate) fn record_start(&mut self, first: SegmentId) -> Result<(), IoFailure<S::Error>> {
        let generation = self.start_generation + 1;
        let slot = crate::format::START_SLOTS[(generation % 2) as usize];
        let record = crate::format::encode_start(self.log_id, generation, first);
        // Emptied, then written: every write core makes is an append, which flash adapters
        // (an erase for the truncate) and files alike can do.
        let created = self.storage.len(slot).is_err();
        if created {
            self.guarded(Op::Create, Some(slot), |s| s.create(slot))?;
        } else {
            self.guarded(Op::Truncate, Some(slot), |s| s.truncate(slot, 0))?;
        }
        self.guarded(Op::Write, Some(slot), |s| s.write(slot, 0, &record))?;
        self.guarded(Op::Sync, Some(slot), |s| s.sync(slot))?;
        if created {
            self.guarded(Op::SyncDir, None, |s| s.sync_dir())?;
        }
        self.start_generation = generation;
        Ok(())
    }

    /// Passes the [`Storage::reserve`] hint for the segment being appended to (adapters that
    /// preallocate use it after a reopen, when no segment was created). Failures are not
    /// errors of the log: a later write reports a real lack of space.
    pub fn reserve_active(&mut self) -> Result<(), S::Error> {
        let id = self.active().id;
        self.storage.reserve(id, self.config.segment_size)
    }

    /// Appends one record and returns its LSN. Durable on return under `SyncPolicy::Always`;
    /// otherwise see [`Wal::durable_lsn`].
    pub fn append(&mut self, payload: &[u8]) -> Result<Lsn, AppendError<S::Error>> {
        self.append_batch(&[payload])
    }

    /// Appends records atomically: after any crash, all of them or none are recovered. Returns
    /// the LSN of the first; the others follow densely. An empty batch appends nothing and
    /// returns the next LSN.
    pub fn append_batch(&mut self, payloads: &[&[u8]]) -> Result<Lsn, AppendError<S::Error>> {
        self.append_batch_with(payloads, &mut [])
    }

    /// [`Wal::append_batch`], compressing each record at least
    /// [`Config::compress_threshold`](crate::Config::compress_threshold) long (feature
    /// `compress`) and encrypting every record when the keyring has a current key (feature
    /// `encrypt`, [`Wal::set_keys`]), through `scratch`. Give it
    /// [`transform_scratch_len`](crate::transform_scratch_len)`(max_record_size)` bytes. With
    /// less, a record that does not fit is stored uncompressed, or, in an encrypted log,
    /// refused with [`AppendError::ScratchTooSmall`] before anything is written;
    /// `append_batch` passes an empty scratch.
    #[cfg(any(feature = "compress", feature = "encrypt"))]
    pub fn append_batch_in(
        &mut self,
        payloads: &[&[u8]],
        scratch: &mut [u8],
    ) -> Result<Lsn, AppendError<S::Error>> {
        self.append_batch_with(payloads, scratch)
    }

    fn append_batch_with(
        &mut self,
        payloads: &[&[u8]],
        scratch: &mut [u8],
    ) -> Result<Lsn, AppendError<S::Error>> {
        self.check()?;
        let max = self.config.max_record_size;
        let mut total = 0u64;
        for p in payloads {
            if p.len() > max as usize {
                return Err(AppendError::RecordTooLarge { len: p.len(), max });
            }
            total += p.len() as u64;
        }
        if total > self.config.max_batch_size {
            return Err(AppendError::BatchTooLarge {
                len: total,
                max: self.config.max_batch_size,
            });
        }
        let first = self.next_lsn;
        if payloads.is_empty() {
            return Ok(first);
        }
        // The next LSN stays below `u64::MAX`: a segment header naming it must be valid.
        let n = payloads.len() as u64;
        let Some(next) = first.0.checked_add(n).filter(|&next| next < u64::MAX) else {
            return Err(AppendError::OutOfLsns { next: first });
        };
        #[cfg(feature = "encrypt")]
        let encrypting = self.keys.current().is_some();
        #[cfg(not(feature = "encrypt"))]
        let encrypting = false;
        let tags = if encrypting {
            crate::format::AEAD_TAG_LEN * payloads.len()
        } else {
            0
        };
        let needed = total + (RECORD_HEADER_LEN * payloads.len() + tags) as u64;
        // Where segments cannot grow, a batch that no segment can hold is refused before
        // anything is written (it would fail part way and poison the log).
        if let Some(capacity) = self.storage.segment_capacity() {
            let room = capacity.saturating_sub(SEGMENT_HEADER_LEN as u64 + crate::format::SEAL_LEN);
            if needed > room {
                return Err(AppendError::BatchDoesNotFit { needed, room });
            }
        }
        // An encrypted log appends only to a segment it created itself, with the current key,
        // since its last rewind (open, truncate_back): so no (salt, segment, LSN) nonce is ever
        // used twice (docs/FORMAT.md, "Nonces never repeat under one key"). And a log without
        // a current key (or a build without `encrypt`) never appends plaintext to an encrypted
        // segment: it starts a plaintext one.
        let active = self.active();
        #[cfg(feature = "encrypt")]
        let (want, rewound) = (
            self.keys.current(),
            self.fresh != Some((active.id, self.rewinds)) && !crate::crypt::rule_broken(),
        );
        #[cfg(not(feature = "encrypt"))]
        let (want, rewound): (Option<u32>, bool) = (None, true);
        if want.is_some() {
            // Refused before anything is written, a new segment included.
            let longest = payloads.iter().map(|p| p.len()).max().unwrap_or(0);
            let needed = crate::transform::transform_scratch_len(longest as u32);
            if scratch.len() < needed {
                return Err(AppendError::ScratchTooSmall { needed });
            }
        }
        let stale = match want {
            Some(key) => rewound || active.key_id() != Some(key),
            None => active.key_id().is_some(),
        };
        if stale {
            self.rotate()?;
        }
        let active = self.active();
        if active.end > SEGMENT_HEADER_LEN as u64 && active.end + needed > self.config.segment_size
        {
            self.rotate()?;
        }
        let SegmentInfo {
            id,
            salt,
            checksum,
            mut end,
            ..
        } = *self.active();
        let version = self.active().version();
        // Record flags exist from version 3 on: a segment an older version created (the
        // newest one of a log this code opened) takes its records as appended.
        #[cfg(feature = "compress")]
        let threshold = if version >= crate::format::VERSION_WITH_FLAGS {
            self.config.compress_threshold
        } else {
            0
        };
        #[cfg(not(feature = "compress"))]
        let threshold = 0;
        let _ = version;
        for (i, p) in payloads.iter().enumerate() {
            let lsn = Lsn(first.0 + i as u64);
            // Stored bytes are never longer than the payload plus the tag (a frame that does
            // not shrink the payload is not used), so `needed` above bounds the space taken.
            let how = crate::transform::Encode {
                threshold,
                #[cfg(feature = "encrypt")]
                seal: self.active().key_id().and_then(|k| {
                    let place = crate::crypt::Place {
                        log_id: self.log_id,
                        segment: id,
                        salt,
                        lsn,
                        kind: RecordKind::in_batch(i, payloads.len()),
                    };
                    self.keys.get(k).map(|c| (c, place))
                }),
                #[cfg(not(feature = "encrypt"))]
                seal: None,
            };
            // Checked above: an encrypted record always fits the scratch.
            let (flags, p) = crate::transform::encode(p, &how, &mut *scratch)
                .map_err(|needed| AppendError::ScratchTooSmall { needed })?;
            let header = RecordHeader {
                length: p.len() as u32,
                lsn,
                payload_crc: checksum.of_salted(salt, p),
                kind: RecordKind::in_batch(i, payloads.len()),
                flags,
                ack_gap: RecordHeader::ack_gap_for(lsn, self.durable),
            }
            .encode(checksum, salt);
            self.guarded(Op::Write, Some(id), |s| s.write_parts(id, end, &header, p))?;
            end += (RECORD_HEADER_LEN + p.len()) as u64;
        }
        if let Some(a) = self.segments.last_mut() {
            a.end = end;
        }
        self.next_lsn = Lsn(next);
        self.dirty = true;
        self.unsynced_records += n;
        // Header bytes count too: a stream of empty records still reaches the threshold.
        self.unsynced_bytes += total + n * RECORD_HEADER_LEN as u64;
        self.counters.appends += n;
        self.counters.bytes_appended += total;
        self.counters.batches += u64::from(n > 1);
        let due = match self.config.sync_policy {
            SyncPolicy::Always => true,
            // `Interval` is refused by `open` (`ConfigError::NeedsFlusher`): no timer here.
            SyncPolicy::Manual | SyncPolicy::Interval(_) => false,
            SyncPolicy::EveryRecords(k) => self.unsynced_records >= u64::from(k),
            SyncPolicy::EveryBytes(k) => self.unsynced_bytes >= k,
        };
        if due {
            self.sync()?;
        }
        Ok(first)
    }

    pub(crate) fn active(&self) -> &SegmentInfo {
        // Invariant: a Wal always has at least one segment (open creates one).
        &self.segments[self.segments.len() - 1]
    }

    /// Makes every appended record durable and returns the durable LSN. After a failure the
    /// log is poisoned: the records since the last successful sync may be lost.
    pub fn sync(&mut self) -> Result<Lsn, SyncError<S::Error>> {
        self.check()?;
        self.sync_pending()?;
        if self.dirty {
            let id = self.active().id;
            self.guarded(Op::Sync, Some(id), |s| s.sync(id))?;
            self.dirty = false;
            self.counters.syncs += 1;
        }
        self.durable = self.last_lsn();
        self.unsynced_records = 0;
        self.unsynced_bytes = 0;
        Ok(self.durable)
    }

    /// Syncs the segments an early rotation left unsynced, oldest first (see
    /// [`Config::early_rotation`]).
    #[cfg(feature = "early-rotation")]
    pub(crate) fn sync_pending(&mut self) -> Result<(), IoFailure<S::Error>> {
        let Some(from) = self.pending else {
            return Ok(());
        };
        let active = self.active().id;
        for k in 0..self.segments.len() {
            let id = self.segments[k].id;
            if id >= from && id < active {
                self.guarded(Op::Sync, Some(id), |s| s.sync(id))?;
                self.counters.syncs += 1;
            }
        }
        self.pending = None;
        Ok(())
    }

    /// Without walden-core's feature `early-rotation` every rotation syncs the old segment
    /// first: nothing is ever pending.
    #[cfg(not(feature = "early-rotation"))]
    // Not in the builds mutation testing runs (early rotation on).
    #[cfg_attr(mutants, mutants::skip)]
    pub(crate) fn sync_pending(&mut self) -> Result<(), IoFailure<S::Error>> {
        Ok(())
    }

    /// Starts a sync that the caller performs (`Storage::sync` of every segment from
    /// `ticket.first` to `ticket.segment`, oldest first, possibly on another handle and
    /// without holding the log). Segments before `ticket.first` are durable already.
    pub fn begin_sync(&self) -> Result<SyncTicket, Poisoned> {
        self.check()?;
        let segment = self.active().id;
        #[cfg(feature = "early-rotation")]
        let first = self.pending.unwrap_or(segment).min(segment);
        #[cfg(not(feature = "early-rotation"))]
        let first = segment;
        Ok(SyncTicket {
            first,
            segment,
            lsn: self.last_lsn(),
            rewinds: self.rewinds,
        })
    }

    /// Finishes a sync begun with [`Wal::begin_sync`]. On `Ok` the durable LSN advances to
    /// what the ticket covers (so later records vouch for it, see `ack_gap` in
    /// `docs/FORMAT.md`); on `Err` the log is poisoned.
    pub fn finish_sync(
        &mut self,
        ticket: SyncTicket,
        result: Result<(), S::Error>,
    ) -> Result<Lsn, SyncError<S::Error>> {
        let segment = Some(ticket.segment);
        self.guarded(Op::Sync, segment, |_| result)?;
        self.check()?;
        self.counters.syncs += 1;
        if ticket.rewinds == self.rewinds {
            // Every segment before `ticket.segment` is now synced whole (nothing writes to a
            // segment once it has a successor, and a rewind would have changed `rewinds`);
            // `ticket.segment` itself only up to what it held when the ticket was issued, so
            // if it has a successor by now, it is still pending.
            #[cfg(feature = "early-rotation")]
            if self.pending.is_some_and(|p| p < ticket.segment) {
                let active = self.active().id;
                self.pending = (active > ticket.segment).then_some(ticket.segment);
            }
            self.durable = self.durable.max(ticket.lsn.min(self.last_lsn()));
            #[cfg(feature = "early-rotation")]
            let settled = self.pending.is_none();
            #[cfg(not(feature = "early-rotation"))]
            let settled = true;
            if self.durable == self.last_lsn() && settled {
                self.dirty = false;
                self.unsynced_records = 0;
                self.unsynced_bytes = 0;
            }
        }
        Ok(self.durable)
    }

    /// Seals the active segment (sync) and starts the next. With [`Config::early_rotation`]
    /// the old segment is not synced: it becomes pending, and the next sync makes it durable
    /// before the active one counts (docs/FORMAT.md, "Early successors").
    fn rotate(&mut self) -> Result<(), AppendError<S::Error>> {
        if !self.segments.reserve_one() {
            return Err(AppendError::SegmentTableFull {
                capacity: self.segments.len(),
            });
        }
        // The ids after the last one a segment may have are the start slots'.
        let last = self.active().id;
        if crate::format::is_start_slot(last.saturating_add(1)) {
            return Err(AppendError::OutOfSegmentIds { last });
        }
        // Constant `false` without walden-core's feature `early-rotation` (whose absence
        // `Config::validate` enforces), so a device's build links none of the early path.
        let early = cfg!(feature = "early-rotation") && self.config.early_rotation;
        if !early {
            self.sync()?;
        }
        let old = self.segments.len() - 1;
        let id = last + 1;
        let info = self.create_segment(id, self.next_lsn, false, early)?;
        #[cfg(feature = "encrypt")]
        {
            self.fresh = Some((id, self.rewinds));
        }
        // The successor is durable (header and directory entry synced): now seal the old
        // segment with a record naming it. A seal therefore proves the successor existed, so
        // a missing successor is found on open (`MissingNewestSegment`); a crash before the
        // seal is durable leaves a segment without one, which is legal.
        let old_id = self.segments[old].id;
        if self.write_meta(old, Meta::Seal { successor: id })? {
            if !early {
                self.guarded(Op::Sync, Some(old_id), |s| s.sync(old_id))?;
                self.counters.syncs += 1;
            }
            self.segments[old].sealed = true;
        }
        #[cfg(feature = "early-rotation")]
        if early {
            // The old segment's unsynced records (and its seal) wait for the next sync.
            self.pending.get_or_insert(old_id);
            self.dirty = false;
        }
        // Cannot fail: checked for room above.
        let _ = self.segments.push(info);
        self.counters.rotations += 1;
        Ok(())
    }

    /// Removes whole segments whose records are all below `lsn` (retention). The segment
    /// being appended to is never removed. Returns how many segments were removed.
    ///
    /// Needs walden-core's feature `start-slots` (on by default); without it this fails with
    /// [`TruncateError::NotBuiltIn`] and changes nothing.
    #[cfg(feature = "start-slots")]
    pub fn truncate_front(&mut self, lsn: Lsn) -> Result<usize, TruncateError<S::Error>> {
        self.check()?;
        let doomed = self.segments[1..]
            .iter()
            .take_while(|s| s.first_lsn <= lsn)
            .count();
        if doomed > 0 {
            // Segments an early rotation left unsynced are made whole first, so the log never
            // starts at a segment whose predecessor's end is still in question.
            self.sync_pending()?;
            // Record durably where the log starts before removing anything, so a segment
            // missing from the front for any other reason is found on open.
            self.record_start(self.segments[doomed].id)?;
        }
        let mut removed = 0;
        while self.segments.len() > 1 && self.segments[1].first_lsn <= lsn {
            let id = self.segments[0].id;
            self.guarded(Op::Remove, Some(id), |s| s.remove(id))?;
            // One directory sync per removal keeps the survivors a contiguous run of ids.
            self.guarded(Op::SyncDir, None, |s| s.sync_dir())?;
            self.segments.remove(0);
            removed += 1;
        }
        self.counters.segments_removed += removed as u64;
        Ok(removed)
    }

    /// Removes whole segments whose records are all below `lsn` (retention): not in this
    /// build. walden-core's feature `start-slots` is off, so this fails with
    /// [`TruncateError::NotBuiltIn`] and changes nothing.
    #[cfg(not(feature = "start-slots"))]
    // Not in the builds mutation testing runs (start slots on): its mutants would be missed
    // trivially. The embedded program's build without start slots (scripts/qemu.sh) checks it.
    #[cfg_attr(mutants, mutants::skip)]
    pub fn truncate_front(&mut self, lsn: Lsn) -> Result<usize, TruncateError<S::Error>> {
        let _ = lsn;
        Err(TruncateError::NotBuiltIn)
    }

    /// Removes every record after `lsn`, durably (raft-style rewind). The next append gets
    /// `lsn + 1`. Fails with [`TruncateError::InsideBatch`] rather than split an atomic batch.
    pub fn truncate_back(&mut self, lsn: Lsn) -> Result<(), TruncateError<S::Error>> {
        self.check()?;
        if lsn >= self.last_lsn() {
            return Ok(());
        }
        let first = self.first_lsn();
        if lsn.next() < first {
            return Err(TruncateError::OutOfRange { lsn, first });
        }
        // The new durable LSN below vouches for every record before the cut: segments an
        // early rotation left unsynced are made durable first.
        self.sync_pending()?;
        let cut = lsn.next();
        let k = self
            .segments
            .iter()
            .rposition(|s| s.first_lsn <= cut)
            .unwrap_or(0);
        let offset = match self.locate(k, cut)? {
            Located::At { offset, .. } => offset,
            Located::InBatch { batch_start } => {
                return Err(TruncateError::InsideBatch { batch_start });
            }
        };
        // From the first change on, the records after `lsn` may be gone after a crash: the
        // durable LSN no longer vouches for them, also if a step below fails and poisons the
        // log (it used to stay at the old end until the cut was complete).
        self.durable = self.durable.min(lsn);
        // Seals first: a segment left newest must not name a successor that is gone (a crash
        // in between would read as a removed segment). A sealed segment without a seal is
        // what a crash during rotation leaves, so every intermediate state is legal. (The
        // newest segment has no seal.)
        for j in (k..self.segments.len()).rev() {
            if self.segments[j].sealed {
                let SegmentInfo { id, end, .. } = self.segments[j];
                self.guarded(Op::Truncate, Some(id), |s| s.truncate(id, end))?;
                self.guarded(Op::Sync, Some(id), |s| s.sync(id))?;
                self.counters.bytes_truncated += (RECORD_HEADER_LEN + META_LEN) as u64;
                self.segments[j].sealed = false;
            }
        }
        while self.segments.len() > k + 1 {
            let id = self.active().id;
            self.counters.bytes_truncated += self.active().end;
            self.guarded(Op::Remove, Some(id), |s| s.remove(id))?;
            self.guarded(Op::SyncDir, None, |s| s.sync_dir())?;
            self.segments.pop();
        }
        let id = self.segments[k].id;
        self.guarded(Op::Truncate, Some(id), |s| s.truncate(id, offset))?;
        self.guarded(Op::Sync, Some(id), |s| s.sync(id))?;
        self.counters.bytes_truncated += self.segments[k].end - offset;
        self.segments[k].end = offset;
        self.next_lsn = cut;
        self.durable = lsn;
        self.rewinds += 1;
        self.dirty = false;
        self.unsynced_records = 0;
        self.unsynced_bytes = 0;
        Ok(())
    }

    /// Finds the record `lsn` in segment `k` by walking record headers.
    pub(crate) fn locate(&self, k: usize, lsn: Lsn) -> Result<Located, LocateError<S::Error>> {
        let seg = self.segments[k];
        let mut cursor = RecordCursor::new(seg.keys(u32::MAX), seg.first_lsn);
        let mut buf = [0u8; RECORD_HEADER_LEN];
        loop {
            let corrupt = |detail, offset| Corruption {
                case: Case::SealedSegmentDamaged,
                segment: seg.id,
                offset,
                lsn: Some(lsn),
                detail: crate::error::detail(detail),
            };
            if cursor.at_end() || cursor.next_lsn() > lsn {
                return Err(LocateError::Corrupted(corrupt(
                    "LSN not found in its segment",
                    cursor.offset(),
                )));
            }
            let n = crate::storage::read_full(&self.storage, seg.id, cursor.offset(), &mut buf)
                .map_err(|error| {
                    LocateError::Storage(IoFailure {
                        op: Op::Read,
                        segment: Some(seg.id),
                        error,
                    })
                })?;
            let at = cursor
                .header(&buf[..n])
                .map_err(|f| LocateError::Corrupted(corrupt(f.describe(), cursor.offset())))?;
            if !at.is_meta() && at.header.lsn == lsn {
                return Ok(match cursor.open_batch() {
                    Some((_, batch_start)) => Located::InBatch { batch_start },
                    None => Located::At { offset: at.offset },
                });
            }
            cursor
                .accept(&at, None)
                .map_err(|f| LocateError::Corrupted(corrupt(f.describe(), at.offset)))?;
        }
    }
}

/// Where a record is.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Located {
    At { offset: u64 },
    InBatch { batch_start: Lsn },
}

/// Why a record could not be found.
#[derive(Clone, Copy, Debug)]
pub(crate) enum LocateError<E> {
    Corrupted(Corruption),
    Storage(IoFailure<E>),
}

impl<E> From<LocateError<E>> for TruncateError<E> {
    fn from(e: LocateError<E>) -> Self {
        match e {
            LocateError::Corrupted(c) => TruncateError::Corrupted(c),
            LocateError::Storage(s) => TruncateError::Storage(s),
        }
    }
}
