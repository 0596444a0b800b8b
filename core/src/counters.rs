//! Plain counters of what a log has done since it was opened.

/// Counters since open. Cheap to copy; adapters add latency histograms on top.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Counters {
    /// Records appended.
    pub appends: u64,
    /// `append_batch` calls with two or more records.
    pub batches: u64,
    /// Payload bytes appended.
    pub bytes_appended: u64,
    /// Successful segment syncs.
    pub syncs: u64,
    /// Rotations to a new segment.
    pub rotations: u64,
    /// Segments removed by `truncate_front`.
    pub segments_removed: u64,
    /// Records found by recovery.
    pub records_recovered: u64,
    /// Bytes cut by recovery or `truncate_back`.
    pub bytes_truncated: u64,
    /// Corruption found (refused, or given up under Salvage), by recovery or by reads.
    pub corruption_events: u64,
}
