//! Counters and latency histograms of a [`SharedWal`](crate::SharedWal), as plain data that
//! serializes with `serde`.

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::{Deserialize, Serialize};
use walden_core::Counters;

/// Buckets of a [`Histogram`]: bucket `i` counts values `v` with `ilog2(v) == i - 1`
/// (bucket 0 holds zero), so every power of two has its own bucket.
const BUCKETS: usize = 65;

/// A lock-free log2 histogram, recorded from any thread.
pub(crate) struct Histogram {
    buckets: [AtomicU64; BUCKETS],
    sum: AtomicU64,
    max: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            buckets: core::array::from_fn(|_| AtomicU64::new(0)),
            sum: AtomicU64::new(0),
            max: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    pub(crate) fn record(&self, v: u64) {
        let i = if v == 0 { 0 } else { v.ilog2() as usize + 1 };
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum.fetch_add(v, Relaxed);
        self.max.fetch_max(v, Relaxed);
    }

    pub(crate) fn snapshot(&self) -> HistogramSnapshot {
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Relaxed)).collect();
        let count: u64 = counts.iter().sum();
        // A quantile is its bucket's upper bound, but never above the largest value seen (the
        // top bucket of 262,143 ns reported a p50 above a max of 223,894).
        let max = self.max.load(Relaxed);
        let quantile = |q: f64| -> u64 {
            if count == 0 {
                return 0;
            }
            let rank = ((count as f64) * q).ceil().max(1.0) as u64;
            let mut seen = 0;
            for (i, c) in counts.iter().enumerate() {
                seen += c;
                if seen >= rank {
                    return upper_bound(i).min(max);
                }
            }
            max
        };
        HistogramSnapshot {
            count,
            sum: self.sum.load(Relaxed),
            max,
            p50: quantile(0.5),
            p90: quantile(0.9),
            p99: quantile(0.99),
            p999: quantile(0.999),
            buckets: counts
                .iter()
                .enumerate()
                .filter(|(_, c)| **c > 0)
                .map(|(i, c)| Bucket {
                    le: upper_bound(i),
                    count: *c,
                })
                .collect(),
        }
    }
}

/// The largest value bucket `i` holds.
fn upper_bound(i: usize) -> u64 {
    match i {
        0 => 0,
        64.. => u64::MAX,
        _ => (1u64 << i) - 1,
    }
}

/// One non-empty bucket: `count` values `<= le` (and above the previous bucket's `le`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    /// Inclusive upper bound of the bucket.
    pub le: u64,
    /// Values in it.
    pub count: u64,
}

/// A histogram at one moment. Quantiles are bucket upper bounds (within a factor of two), never
/// above `max`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistogramSnapshot {
    /// Values recorded.
    pub count: u64,
    /// Their sum.
    pub sum: u64,
    /// The largest.
    pub max: u64,
    /// Median (upper bound of its bucket).
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// The non-empty buckets, smallest first.
    pub buckets: Vec<Bucket>,
}

impl HistogramSnapshot {
    /// The mean, or zero when empty.
    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum as f64 / self.count as f64
        }
    }
}

/// What the log has done since it was opened.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Metrics {
    /// Records appended.
    pub appends: u64,
    /// Batches of two or more records appended.
    pub batches: u64,
    /// Payload bytes appended.
    pub bytes_appended: u64,
    /// Successful segment syncs the core log completed: its own (rotations, `sync`, recovery)
    /// and those a group-commit leader ran for it, so every group commit below is counted here
    /// too (the two are not to be added: `core_syncs` is the total).
    pub core_syncs: u64,
    /// Group commits: syncs done by a group-commit leader (each covers one group; each that
    /// succeeds is also counted in `core_syncs`, once per segment it synced).
    pub group_commits: u64,
    /// Rotations to a new segment.
    pub rotations: u64,
    /// Segments removed by `truncate_front`.
    pub segments_removed: u64,
    /// Records found by recovery at open.
    pub records_recovered: u64,
    /// Bytes cut by recovery or `truncate_back`.
    pub bytes_truncated: u64,
    /// Corruption found by recovery or by reads.
    pub corruption_events: u64,
    /// The highest LSN known durable.
    pub durable_lsn: u64,
    /// The last LSN appended.
    pub last_lsn: u64,
    /// Whether the log is poisoned.
    pub poisoned: bool,
    /// Nanoseconds from the start of an append (or `wait_durable`) until it was durable.
    pub append_to_durable_ns: HistogramSnapshot,
    /// Nanoseconds a group-commit sync took (flush + fdatasync).
    pub sync_ns: HistogramSnapshot,
    /// Records made durable by one group commit.
    pub group_records: HistogramSnapshot,
    /// Durability waiters released by one group commit (the leader included).
    pub group_waiters: HistogramSnapshot,
}

/// The live side of [`Metrics`].
#[derive(Default)]
pub(crate) struct Recorder {
    pub(crate) group_commits: AtomicU64,
    pub(crate) read_corruption: AtomicU64,
    pub(crate) append_to_durable: Histogram,
    pub(crate) sync: Histogram,
    pub(crate) group_records: Histogram,
    pub(crate) group_waiters: Histogram,
}

impl Recorder {
    pub(crate) fn snapshot(&self, c: Counters, durable: u64, last: u64, poisoned: bool) -> Metrics {
        Metrics {
            appends: c.appends,
            batches: c.batches,
            bytes_appended: c.bytes_appended,
            core_syncs: c.syncs,
            group_commits: self.group_commits.load(Relaxed),
            rotations: c.rotations,
            segments_removed: c.segments_removed,
            records_recovered: c.records_recovered,
            bytes_truncated: c.bytes_truncated,
            corruption_events: c.corruption_events + self.read_corruption.load(Relaxed),
            durable_lsn: durable,
            last_lsn: last,
            poisoned,
            append_to_durable_ns: self.append_to_durable.snapshot(),
            sync_ns: self.sync.snapshot(),
            group_records: self.group_records.snapshot(),
            group_waiters: self.group_waiters.snapshot(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_and_quantiles() {
        let h = Histogram::default();
        for v in [0, 1, 2, 3, 4, 1000, 1000, 1000] {
            h.record(v);
        }
        let s = h.snapshot();
        assert_eq!(s.count, 8);
        assert_eq!(s.max, 1000);
        assert_eq!(s.sum, 3010);
        assert_eq!(s.p50, 3); // the 4th value (3) is in bucket [2, 3]
        // In the bucket [512, 1023], capped at the largest value seen.
        assert_eq!(s.p99, 1000);
        assert_eq!(s.buckets.first(), Some(&Bucket { le: 0, count: 1 }));
        assert_eq!(upper_bound(64), u64::MAX);
        h.record(u64::MAX);
        assert_eq!(h.snapshot().max, u64::MAX);
    }
}
