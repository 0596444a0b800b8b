//! Log configuration, validated before anything touches storage.

use core::fmt;

use crate::checksum::ChecksumAlgorithm;
use crate::format::{RECORD_HEADER_LEN, SEGMENT_HEADER_LEN};

/// When appended records are made durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SyncPolicy {
    /// Every `append` and `append_batch` syncs before it returns.
    Always,
    /// Only an explicit `sync()` (or a rotation) makes records durable.
    Manual,
    /// Sync after this many records have been appended since the last sync.
    EveryRecords(u32),
    /// Sync after this many payload bytes have been appended since the last sync.
    EveryBytes(u64),
}

/// What recovery does with damage it finds. See `docs/FORMAT.md`, "Recovery decision table".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecoveryPolicy {
    /// Any invalid byte is an error, even a torn tail from an ordinary crash.
    Strict,
    /// Cut a torn tail (bytes no record proves acknowledged) and report it; any other damage is
    /// an error.
    #[default]
    TolerateTornTail,
    /// Keep the longest valid prefix of the log and report exactly what was lost.
    Salvage,
}

/// How a log is opened and written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Rotate to a new segment once a segment reaches this many bytes. A single record or batch
    /// larger than this still goes into one (fresh) segment.
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
    /// different value each open where you can (a constant still works: salts also mix in the
    /// segment id and the log position).
    pub salt_seed: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            segment_size: 64 * 1024 * 1024,
            max_record_size: 16 * 1024 * 1024,
            max_batch_size: 256 * 1024 * 1024,
            checksum: ChecksumAlgorithm::Crc32c,
            sync_policy: SyncPolicy::Always,
            recovery: RecoveryPolicy::TolerateTornTail,
            salt_seed: 0x5745_4c44_454e_0001,
        }
    }
}

/// The smallest allowed segment size.
pub const MIN_SEGMENT_SIZE: u64 = (SEGMENT_HEADER_LEN + RECORD_HEADER_LEN) as u64;

impl Config {
    /// Checks every field; called by `Wal::open` before anything touches storage.
    pub fn validate(&self) -> Result<(), ConfigError> {
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
        if self.max_batch_size < u64::from(self.max_record_size) {
            return Err(ConfigError::BatchSmallerThanRecord);
        }
        match self.sync_policy {
            SyncPolicy::EveryRecords(0) | SyncPolicy::EveryBytes(0) => {
                Err(ConfigError::ZeroSyncInterval)
            }
            _ => Ok(()),
        }
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
}

/// The hard ceiling on `max_record_size` (1 GiB): lengths above it are never trusted.
pub const MAX_RECORD_SIZE_LIMIT: u32 = 1 << 30;

/// A configuration that cannot work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
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
    /// `SyncPolicy::EveryRecords(0)` or `EveryBytes(0)`.
    ZeroSyncInterval,
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
        ] {
            assert_eq!(e.to_string(), says);
        }
    }
}
