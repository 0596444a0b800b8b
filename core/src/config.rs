//! Log configuration, validated before anything touches storage.

use core::fmt;
use core::time::Duration;

use crate::checksum::ChecksumAlgorithm;
use crate::format::{RECORD_HEADER_LEN, SEGMENT_HEADER_LEN};

/// When appended records are made durable: the one durability setting of a log.
///
/// A core [`Wal`](crate::Wal) carries it out itself (it syncs inside `append` when the policy
/// says so) except [`SyncPolicy::Interval`], which needs a clock and a thread; walden-std's
/// `SharedWal` carries out every policy with group commit and a flusher thread, and walden-std's
/// `Wal` every policy but `Interval`. A policy a log cannot carry out is refused when it is
/// opened, before anything on storage is touched ([`ConfigError::NeedsFlusher`] from a core
/// `Wal`, `Error::InvalidOptions` from walden-std's `Wal`): no setting is silently ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SyncPolicy {
    /// Every `append` and `append_batch` syncs before it returns.
    Always,
    /// Only an explicit `sync()` makes records durable (and a rotation, unless
    /// [`Config::early_rotation`] is on, as walden-std's default options have it).
    Manual,
    /// Sync after this many records have been appended since the last sync.
    EveryRecords(u32),
    /// Sync after this many record bytes have been appended since the last sync: each
    /// record counts its payload's length plus its 32-byte header, so empty records count too.
    EveryBytes(u64),
    /// A background flusher syncs whatever is unsynced at this interval (the usual choice is
    /// [`SyncPolicy::DEFAULT_INTERVAL`]). Only walden-std's `SharedWal` has one; every other
    /// log refuses this policy ([`ConfigError::NeedsFlusher`] from a core `Wal`,
    /// `Error::InvalidOptions` from walden-std's `Wal`).
    Interval(Duration),
}

impl SyncPolicy {
    /// The usual flusher interval for [`SyncPolicy::Interval`], 200 ms.
    pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(200);
}

/// What recovery does with damage it finds. See `docs/FORMAT.md`, "Recovery decision table".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RecoveryPolicy {
    /// Any invalid byte is an error, even a torn tail from an ordinary crash.
    Strict,
    /// Cut a torn tail (bytes no record proves acknowledged) and report it; any other damage is
    /// an error. Damage to the last records synced together, with nothing synced after them,
    /// cannot be told from a torn tail and is cut as one (`docs/FORMAT.md`, "What is still
    /// ambiguous"); [`RecoveryPolicy::Strict`] refuses instead.
    #[default]
    TolerateTornTail,
    /// Keep the longest valid prefix of the log and report exactly what was lost.
    Salvage,
}

/// How a log is opened and written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Config {
    /// Rotate to a new segment once a segment reaches this many bytes. A single record or batch
    /// larger than this still goes into one (fresh) segment. A sealed segment ends with a
    /// 48-byte seal after its records, so on fixed-size media (raw flash) a segment needs
    /// room for `segment_size + 48` bytes (`walden-flash` reports the size to use).
    pub segment_size: u64,
    /// The largest payload accepted by `append`, and trusted by recovery.
    pub max_record_size: u32,
    /// The largest total payload of one `append_batch`.
    pub max_batch_size: u64,
    /// The checksum of records in new segments. Existing segments keep their own.
    pub checksum: ChecksumAlgorithm,
    /// When records are made durable.
    pub sync_policy: SyncPolicy,
    /// What recovery does with damage.
    pub recovery: RecoveryPolicy,
    /// Entropy for per-segment salts and the log id. Adapters fill it from the OS; give a
    /// different value each open where you can (a constant still works for plaintext logs:
    /// salts also mix in the segment id and the log position). An encrypted log's nonces need
    /// more: the entropy given to `Wal::set_keys` (feature `encrypt`) at every open.
    pub salt_seed: u64,
    /// Rotate without syncing the old segment first: the successor is created with the header's
    /// `early` flag, and the old segment's unsynced records become durable with the next
    /// [`crate::Wal::sync`] (which syncs such pending segments before the active one), not on
    /// the writer's path. Recovery then judges the old segment's end by `ack_gap` evidence, like
    /// the newest segment's (`docs/FORMAT.md`, "Early successors"). Default off: a rotation
    /// syncs the old segment whole first (walden-std's `Options::config` says what early
    /// rotation costs at open there). Needs walden-core's feature `early-rotation` (default
    /// on): without it `validate` refuses `true` with
    /// [`ConfigError::EarlyRotationNotBuiltIn`].
    pub early_rotation: bool,
    /// Records (and each record of a batch) at least this long are stored LZ4-compressed when
    /// that makes them shorter (format version 3); 0 turns compression off. Default 4 KiB.
    /// A record of 64 KiB or more is compressed only if 4 KiB at its start or at its middle
    /// shrink: incompressible large records then cost two small attempts, not a whole one.
    /// Compressing needs a scratch buffer ([`crate::Wal::append_batch_in`]).
    #[cfg(feature = "compress")]
    pub compress_threshold: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self::new()
    }
}

/// The default [`Config::compress_threshold`]: 4 KiB (raft-engine's, after TiKV measured it).
#[cfg(feature = "compress")]
pub const DEFAULT_COMPRESS_THRESHOLD: u32 = 4096;

/// The smallest allowed segment size.
pub(crate) const MIN_SEGMENT_SIZE: u64 = (SEGMENT_HEADER_LEN + RECORD_HEADER_LEN) as u64;

impl Config {
    /// The defaults, sized for a server: 64 MiB segments, records up to 16 MiB, batches up to
    /// 256 MiB, CRC-32C, a sync on every append, torn tails cut. A `const fn`, so a
    /// configuration can be a `const` or `static` (see also [`Config::small_device`]):
    ///
    /// ```
    /// use walden_core::{Config, SyncPolicy};
    /// const CONFIG: Config = Config::new()
    ///     .with_segment_size(1 << 20)
    ///     .with_sync_policy(SyncPolicy::EveryRecords(16));
    /// const _: () = assert!(CONFIG.validate().is_ok()); // checked when compiling
    /// ```
    pub const fn new() -> Self {
        Self {
            segment_size: 64 * 1024 * 1024,
            max_record_size: 16 * 1024 * 1024,
            max_batch_size: 256 * 1024 * 1024,
            checksum: ChecksumAlgorithm::Crc32c,
            sync_policy: SyncPolicy::Always,
            recovery: RecoveryPolicy::TolerateTornTail,
            salt_seed: 0x5745_4c44_454e_0001,
            early_rotation: false,
            #[cfg(feature = "compress")]
            compress_threshold: DEFAULT_COMPRESS_THRESHOLD,
        }
    }

    /// Settings for a microcontroller whose segments are `segment_size` bytes (for raw flash,
    /// one or a few erase blocks: `walden-flash` tells the size to use). Records up to a
    /// quarter of a segment's payload space (so a rotation never wastes more than a quarter),
    /// batches up to half of it (a batch also needs 32 bytes of header per record in one
    /// segment), CRC-32C (the one algorithm always built in), a sync on every append, torn
    /// tails cut. Every field keeps its setter, and
    /// the result is checked like any other ([`Config::validate`]).
    ///
    /// ```
    /// use walden_core::Config;
    /// const CONFIG: Config = Config::small_device(4096).with_salt_seed(0x1234);
    /// const _: () = assert!(CONFIG.validate().is_ok());
    /// assert_eq!(CONFIG.max_record_size, 1000);
    /// ```
    pub const fn small_device(segment_size: u64) -> Self {
        let framing = (SEGMENT_HEADER_LEN + RECORD_HEADER_LEN) as u64;
        let payload = segment_size.saturating_sub(framing);
        let record = payload / 4;
        let record = if record > MAX_RECORD_SIZE_LIMIT as u64 {
            MAX_RECORD_SIZE_LIMIT
        } else if record == 0 {
            1
        } else {
            record as u32
        };
        // Half the payload space: a batch must fit an empty segment with a 32-byte header per
        // record, and on fixed-size media one that does not fails (and poisons the log).
        let batch = if payload / 2 < record as u64 {
            record as u64
        } else {
            payload / 2
        };
        Self::new()
            .with_segment_size(segment_size)
            .with_max_record_size(record)
            .with_max_batch_size(batch)
    }

    /// The most bytes one segment of this configuration may need on media whose segments
    /// cannot grow: `segment_size` (rotation keeps records within it) or the largest record
    /// alone in an empty segment, whichever is more, plus the seal. Plaintext: an encrypted
    /// record's tag, like a batch's headers, is checked as it is appended
    /// (`AppendError::BatchDoesNotFit`), since whether a log encrypts is not known at open.
    pub(crate) const fn segment_needs(&self) -> u64 {
        let record = (crate::format::SEGMENT_HEADER_LEN + crate::format::RECORD_HEADER_LEN) as u64
            + self.max_record_size as u64;
        let data = if record > self.segment_size {
            record
        } else {
            self.segment_size
        };
        data.saturating_add(crate::format::SEAL_LEN)
    }

    /// Checks every field; called by `Wal::open` before anything touches storage. A `const fn`,
    /// so a `const` configuration can be checked when compiling.
    pub const fn validate(&self) -> Result<(), ConfigError> {
        if self.segment_size < MIN_SEGMENT_SIZE {
            return Err(ConfigError::SegmentTooSmall {
                min: MIN_SEGMENT_SIZE,
            });
        }
        if self.max_record_size == 0 || self.max_record_size > MAX_RECORD_SIZE_LIMIT {
            return Err(ConfigError::RecordSizeLimit {
                max: MAX_RECORD_SIZE_LIMIT,
            });
        }
        if self.max_batch_size < self.max_record_size as u64 {
            return Err(ConfigError::BatchSmallerThanRecord);
        }
        if !self.checksum.is_available() {
            return Err(ConfigError::ChecksumNotBuiltIn {
                algorithm: self.checksum,
            });
        }
        if matches!(self.recovery, RecoveryPolicy::Salvage) && !cfg!(feature = "salvage") {
            return Err(ConfigError::SalvageNotBuiltIn);
        }
        if self.early_rotation && !cfg!(feature = "early-rotation") {
            return Err(ConfigError::EarlyRotationNotBuiltIn);
        }
        match self.sync_policy {
            SyncPolicy::EveryRecords(0) | SyncPolicy::EveryBytes(0) => {
                Err(ConfigError::ZeroSyncInterval)
            }
            SyncPolicy::Interval(every) if every.is_zero() => Err(ConfigError::ZeroSyncInterval),
            _ => Ok(()),
        }
    }

    /// Builder-style setter for [`Config::compress_threshold`] (0: no compression).
    #[cfg(feature = "compress")]
    #[must_use]
    pub const fn with_compress_threshold(mut self, bytes: u32) -> Self {
        self.compress_threshold = bytes;
        self
    }

    /// Builder-style setter for [`Config::segment_size`].
    #[must_use]
    pub const fn with_segment_size(mut self, bytes: u64) -> Self {
        self.segment_size = bytes;
        self
    }

    /// Builder-style setter for [`Config::max_record_size`].
    #[must_use]
    pub const fn with_max_record_size(mut self, bytes: u32) -> Self {
        self.max_record_size = bytes;
        self
    }

    /// Builder-style setter for [`Config::max_batch_size`].
    #[must_use]
    pub const fn with_max_batch_size(mut self, bytes: u64) -> Self {
        self.max_batch_size = bytes;
        self
    }

    /// Builder-style setter for [`Config::checksum`].
    #[must_use]
    pub const fn with_checksum(mut self, alg: ChecksumAlgorithm) -> Self {
        self.checksum = alg;
        self
    }

    /// Builder-style setter for [`Config::sync_policy`].
    #[must_use]
    pub const fn with_sync_policy(mut self, policy: SyncPolicy) -> Self {
        self.sync_policy = policy;
        self
    }

    /// Builder-style setter for [`Config::recovery`].
    #[must_use]
    pub const fn with_recovery(mut self, policy: RecoveryPolicy) -> Self {
        self.recovery = policy;
        self
    }

    /// Builder-style setter for [`Config::salt_seed`].
    #[must_use]
    pub const fn with_salt_seed(mut self, seed: u64) -> Self {
        self.salt_seed = seed;
        self
    }

    /// Builder-style setter for [`Config::early_rotation`].
    #[must_use]
    pub const fn with_early_rotation(mut self, early: bool) -> Self {
        self.early_rotation = early;
        self
    }
}

/// The hard ceiling on `max_record_size` (1 GiB): lengths above it are never trusted.
pub const MAX_RECORD_SIZE_LIMIT: u32 = 1 << 30;

/// A configuration that cannot work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ConfigError {
    /// `segment_size` is below the minimum.
    SegmentTooSmall {
        /// The minimum.
        min: u64,
    },
    /// `max_record_size` is zero or above the hard limit.
    RecordSizeLimit {
        /// The hard limit.
        max: u32,
    },
    /// `max_batch_size` is smaller than `max_record_size`.
    BatchSmallerThanRecord,
    /// `SyncPolicy::EveryRecords(0)`, `EveryBytes(0)` or `Interval(0)`.
    ZeroSyncInterval,
    /// `SyncPolicy::Interval` on a log without a flusher thread (a core `Wal`, walden-std's
    /// `Wal`): use walden-std's `SharedWal`, or another policy.
    NeedsFlusher,
    /// `checksum` is not compiled into this build (walden-core features `crc32`, `crc64`).
    ChecksumNotBuiltIn {
        /// The algorithm asked for.
        algorithm: ChecksumAlgorithm,
    },
    /// `RecoveryPolicy::Salvage` is not compiled into this build (walden-core feature
    /// `salvage`).
    SalvageNotBuiltIn,
    /// `early_rotation` is not compiled into this build (walden-core feature
    /// `early-rotation`).
    EarlyRotationNotBuiltIn,
    /// The storage's segments cannot grow ([`Storage::segment_capacity`](crate::Storage)),
    /// and a segment of this configuration would not fit one: `segment_size` plus the 48-byte
    /// seal, or a record of `max_record_size` with its header in an empty segment plus the
    /// seal. Nothing was touched. (An encrypted record's tag is checked when it is appended.)
    LargerThanStorage {
        /// The bytes a segment may need.
        needed: u64,
        /// What one segment of the storage holds.
        capacity: u64,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SegmentTooSmall { min } => write!(f, "segment_size must be at least {min} bytes"),
            Self::RecordSizeLimit { max } => {
                write!(f, "max_record_size must be between 1 and {max} bytes")
            }
            Self::BatchSmallerThanRecord => {
                f.write_str("max_batch_size must be at least max_record_size")
            }
            Self::ZeroSyncInterval => f.write_str("a sync interval of zero is not allowed"),
            Self::LargerThanStorage { needed, capacity } => write!(
                f,
                "a segment may need {needed} bytes (segment_size and its seal, or the largest record in an empty segment) but the storage's segments hold {capacity}"
            ),
            Self::NeedsFlusher => f.write_str(
                "SyncPolicy::Interval needs a flusher thread: open the log as a walden-std SharedWal, or choose another policy",
            ),
            Self::ChecksumNotBuiltIn { algorithm } => write!(
                f,
                "checksum {} is not built in (walden-core features crc32, crc64)",
                algorithm.name()
            ),
            Self::SalvageNotBuiltIn => f.write_str(
                "RecoveryPolicy::Salvage is not built in (walden-core feature salvage)",
            ),
            Self::EarlyRotationNotBuiltIn => f.write_str(
                "early_rotation is not built in (walden-core feature early-rotation)",
            ),
        }
    }
}

impl core::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_bad_values_are_rejected() {
        assert_eq!(Config::default().validate(), Ok(()));
        assert!(matches!(
            Config::default().with_segment_size(10).validate(),
            Err(ConfigError::SegmentTooSmall { .. })
        ));
        assert!(matches!(
            Config::default().with_max_record_size(0).validate(),
            Err(ConfigError::RecordSizeLimit { .. })
        ));
        assert!(matches!(
            Config::default().with_max_record_size(u32::MAX).validate(),
            Err(ConfigError::RecordSizeLimit { .. })
        ));
        assert_eq!(
            Config::default()
                .with_sync_policy(SyncPolicy::EveryRecords(0))
                .validate(),
            Err(ConfigError::ZeroSyncInterval)
        );
        let c = Config {
            max_batch_size: 1,
            ..Config::default()
        };
        assert_eq!(c.validate(), Err(ConfigError::BatchSmallerThanRecord));
    }

    #[test]
    fn small_device_limits_are_the_documented_fractions_of_the_payload_space() {
        // Payload space = segment − 64-byte segment header − one 32-byte record header;
        // records get a quarter of it (at least 1 byte, at most the format's limit), batches
        // half (never less than one largest record).
        for (segment, record, batch) in [
            (96, 1, 1),
            (97, 1, 1),
            (99, 1, 1),
            (104, 2, 4),
            (4096, 1000, 2000),
            ((1 << 32) + 96 + 4, MAX_RECORD_SIZE_LIMIT, (1 << 31) + 2),
        ] {
            let c = Config::small_device(segment);
            assert_eq!(
                (c.max_record_size, c.max_batch_size),
                (record, batch),
                "segment size {segment}"
            );
        }
    }

    #[test]
    fn small_device_settings_are_valid_for_any_segment_size() {
        for size in [MIN_SEGMENT_SIZE, 128, 512, 2048, 4096, 65_536, 1 << 40] {
            let c = Config::small_device(size);
            assert_eq!(c.validate(), Ok(()), "segment size {size}");
            assert_eq!(c.segment_size, size);
            assert!(u64::from(c.max_record_size) <= c.max_batch_size);
            assert!(c.max_batch_size <= size.saturating_sub(96).max(1));
        }
        assert_eq!(
            Config::small_device(10).validate(),
            Err(ConfigError::SegmentTooSmall {
                min: MIN_SEGMENT_SIZE
            })
        );
        assert_eq!(Config::new(), Config::default());
    }

    #[test]
    fn a_checksum_that_is_not_built_in_is_refused() {
        for alg in [
            ChecksumAlgorithm::Crc32c,
            ChecksumAlgorithm::Crc32,
            ChecksumAlgorithm::Crc64,
        ] {
            let got = Config::new().with_checksum(alg).validate();
            if alg.is_available() {
                assert_eq!(got, Ok(()));
            } else {
                assert_eq!(got, Err(ConfigError::ChecksumNotBuiltIn { algorithm: alg }));
            }
        }
    }

    #[test]
    fn salvage_only_where_built_in() {
        let c = Config::default().with_recovery(RecoveryPolicy::Salvage);
        let expected = if cfg!(feature = "salvage") {
            Ok(())
        } else {
            Err(ConfigError::SalvageNotBuiltIn)
        };
        assert_eq!(c.validate(), expected);
        let strict = c.with_recovery(RecoveryPolicy::Strict);
        assert_eq!(strict.validate(), Ok(()));
    }

    #[test]
    fn early_rotation_only_where_built_in() {
        let c = Config::default().with_early_rotation(true);
        let expected = if cfg!(feature = "early-rotation") {
            Ok(())
        } else {
            Err(ConfigError::EarlyRotationNotBuiltIn)
        };
        assert_eq!(c.validate(), expected);
        assert_eq!(c.with_early_rotation(false).validate(), Ok(()));
    }

    #[test]
    fn every_limit_is_inclusive() {
        // The smallest segment holds a header and one empty record, and is accepted.
        assert_eq!(MIN_SEGMENT_SIZE, 96);
        let c = Config::default();
        assert_eq!(c.with_segment_size(96).validate(), Ok(()));
        assert_eq!(
            c.with_segment_size(95).validate(),
            Err(ConfigError::SegmentTooSmall { min: 96 })
        );
        let c = c.with_max_batch_size(u64::from(MAX_RECORD_SIZE_LIMIT));
        assert_eq!(
            c.with_max_record_size(MAX_RECORD_SIZE_LIMIT).validate(),
            Ok(())
        );
        assert_eq!(
            c.with_max_record_size(MAX_RECORD_SIZE_LIMIT + 1).validate(),
            Err(ConfigError::RecordSizeLimit { max: 1 << 30 })
        );
        assert_eq!(c.with_max_record_size(1).validate(), Ok(()));
        // A batch limit equal to the record limit admits a batch of one largest record.
        let c = Config::default().with_max_record_size(1000);
        assert_eq!(c.with_max_batch_size(1000).validate(), Ok(()));
        assert_eq!(
            c.with_max_batch_size(999).validate(),
            Err(ConfigError::BatchSmallerThanRecord)
        );
        for policy in [SyncPolicy::EveryRecords(1), SyncPolicy::EveryBytes(1)] {
            assert_eq!(c.with_sync_policy(policy).validate(), Ok(()));
        }
        assert_eq!(
            c.with_sync_policy(SyncPolicy::EveryBytes(0)).validate(),
            Err(ConfigError::ZeroSyncInterval)
        );
        assert_eq!(
            c.with_sync_policy(SyncPolicy::Interval(Duration::ZERO))
                .validate(),
            Err(ConfigError::ZeroSyncInterval)
        );
        assert_eq!(
            c.with_sync_policy(SyncPolicy::Interval(SyncPolicy::DEFAULT_INTERVAL))
                .validate(),
            Ok(())
        );
    }

    #[test]
    fn errors_say_what_to_change() {
        use std::string::ToString;
        for (e, says) in [
            (
                ConfigError::SegmentTooSmall { min: 96 },
                "segment_size must be at least 96 bytes",
            ),
            (
                ConfigError::RecordSizeLimit { max: 1 << 30 },
                "max_record_size must be between 1 and 1073741824 bytes",
            ),
            (
                ConfigError::BatchSmallerThanRecord,
                "max_batch_size must be at least max_record_size",
            ),
            (
                ConfigError::ZeroSyncInterval,
                "a sync interval of zero is not allowed",
            ),
            (
                ConfigError::EarlyRotationNotBuiltIn,
                "early_rotation is not built in (walden-core feature early-rotation)",
            ),
        ] {
            assert_eq!(e.to_string(), says);
        }
    }
}
