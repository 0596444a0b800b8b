//! Timing, latency histograms and the result rows every workload produces.

use std::{io, time::Instant};

use core::time::Duration;

use hdrhistogram::Histogram;

/// Quantiles kept for the latency-distribution chart.
pub(crate) const CHART_QUANTILES: [f64; 9] =
    [0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9999, 1.0];

/// Latencies in nanoseconds, 1 ns to 100 s, 3 significant digits.
pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000_000, 3).unwrap_or_else(|_| {
        // The bounds above are valid constants; this arm is unreachable in practice.
        Histogram::new(3).unwrap_or_else(|_| unreachable!("3 significant digits is valid"))
    })
}

/// Records one latency sample, saturating at the histogram's range.
pub(crate) fn record(hist: &mut Histogram<u64>, elapsed: Duration) {
    let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX).max(1);
    hist.saturating_record(ns);
}

/// What one measured run did.
#[derive(Clone, Debug)]
pub(crate) struct Summary {
    /// Records processed.
    pub(crate) records: u64,
    /// Payload bytes processed.
    pub(crate) bytes: u64,
    /// Wall time of the whole run.
    pub(crate) elapsed: Duration,
    /// Per-operation latency quantiles `(q, ns)` (empty when not sampled).
    pub(crate) quantiles: Vec<(f64, u64)>,
    /// CPU-seconds (user + system, every thread of the process) per second of `elapsed`, if
    /// measured.
    pub(crate) cpu: Option<f64>,
}

impl Summary {
    /// Builds a summary, reading the quantiles out of `hist`.
    pub(crate) fn new(records: u64, bytes: u64, elapsed: Duration, hist: &Histogram<u64>) -> Self {
        let quantiles = if hist.is_empty() {
            Vec::new()
        } else {
            CHART_QUANTILES
                .iter()
                .map(|&q| (q, hist.value_at_quantile(q)))
                .collect()
        };
        Summary {
            records,
            bytes,
            elapsed,
            quantiles,
            cpu: None,
        }
    }

    /// Adds the CPU spent since `cpu_before` (a [`cpu_seconds`] reading at the start).
    pub(crate) fn with_cpu(mut self, cpu_before: Option<f64>) -> Self {
        let secs = self.elapsed.as_secs_f64();
        self.cpu = match (cpu_before, cpu_seconds()) {
            (Some(before), Some(now)) if secs > 0.0 => Some((now - before).max(0.0) / secs),
            _ => None,
        };
        self
    }

    /// Records per second over the whole run.
    pub(crate) fn records_per_sec(&self) -> f64 {
        self.records as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Payload megabytes (10^6) per second over the whole run.
    pub(crate) fn mb_per_sec(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The latency at quantile `q`, if sampled.
    pub(crate) fn latency(&self, q: f64) -> Option<Duration> {
        self.quantiles
            .iter()
            .find(|(at, _)| (*at - q).abs() < 1e-9)
            .map(|&(_, ns)| Duration::from_nanos(ns))
    }
}

/// How long and how often a timed loop runs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Budget {
    /// Stop once this much time has passed (and `min_ops` are done).
    pub(crate) time: Duration,
    /// Always do at least this many operations.
    pub(crate) min_ops: u64,
    /// Never do more than this many operations.
    pub(crate) max_ops: u64,
}

/// Runs `op` until the budget is spent, timing each call. `op` returns `(records, bytes)` done.
pub(crate) fn timed_loop(
    budget: Budget,
    mut op: impl FnMut(u64) -> io::Result<(u64, u64)>,
) -> io::Result<Summary> {
    let mut hist = histogram();
    let (mut records, mut bytes, mut ops) = (0u64, 0u64, 0u64);
    let cpu = cpu_seconds();
    let start = Instant::now();
    while ops < budget.max_ops && (ops < budget.min_ops || start.elapsed() < budget.time) {
        let t = Instant::now();
        let (r, b) = op(ops)?;
        record(&mut hist, t.elapsed());
        records += r;
        bytes += b;
        ops += 1;
    }
    Ok(Summary::new(records, bytes, start.elapsed(), &hist).with_cpu(cpu))
}

/// User + system CPU time of this process so far, in seconds (from `/proc/self/stat`, in
/// clock ticks of 10 ms; `None` where that file does not exist).
pub(crate) fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let (_, after) = stat.rsplit_once(')')?;
    let mut fields = after.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some((user + system) as f64 / 100.0)
}

/// The outcome of one workload case for one subject.
#[derive(Clone, Debug)]
pub(crate) enum Outcome {
    /// It ran; here is what it did.
    Measured(Summary),
    /// The subject cannot do this workload, for this reason.
    NotApplicable(String),
    /// It was attempted and failed with this error.
    Failed(String),
}

/// One line of the results table.
#[derive(Clone, Debug)]
pub(crate) struct Row {
    /// Workload group, e.g. "1. fsync every append".
    pub(crate) workload: &'static str,
    /// The case within the group, e.g. "128 B".
    pub(crate) case: String,
    /// The subject's name.
    pub(crate) subject: &'static str,
    /// What happened.
    pub(crate) outcome: Outcome,
    /// The physical limit for this case in records/s, from the limits measured in the same run.
    pub(crate) limit_records_per_sec: Option<f64>,
    /// Whether this row competes for "best peer": false for a peer whose "durable" append does
    /// not fsync, on workloads where durability is the point.
    pub(crate) counts_for_best: bool,
}

impl Row {
    /// The measured summary, if any.
    pub(crate) fn summary(&self) -> Option<&Summary> {
        match &self.outcome {
            Outcome::Measured(s) => Some(s),
            _ => None,
        }
    }
}

/// Best records/s among the competing rows of the same workload and case.
pub(crate) fn best_peer(rows: &[Row], workload: &str, case: &str) -> Option<f64> {
    rows.iter()
        .filter(|r| r.workload == workload && r.case == case && r.counts_for_best)
        .filter_map(|r| r.summary().map(Summary::records_per_sec))
        .fold(None, |best: Option<f64>, v| {
            Some(best.map_or(v, |b| b.max(v)))
        })
}

/// Formats a byte count as B / KiB / MiB / GiB.
pub(crate) fn size_label(bytes: usize) -> String {
    match bytes {
        b if b >= 1 << 30 && b % (1 << 30) == 0 => format!("{} GiB", b >> 30),
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timed_loop_respects_min_and_max() {
        let budget = Budget {
            time: Duration::ZERO,
            min_ops: 3,
            max_ops: 5,
        };
        let s = timed_loop(budget, |_| Ok((2, 10))).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((s.records, s.bytes), (6, 30));
        assert!(s.latency(0.5).is_some());
    }

    #[test]
    fn size_labels() {
        assert_eq!(size_label(128), "128 B");
        assert_eq!(size_label(4096), "4 KiB");
        assert_eq!(size_label(256 << 10), "256 KiB");
        assert_eq!(size_label(1 << 30), "1 GiB");
    }
}
