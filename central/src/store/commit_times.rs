//! The durations of the store's commits, measured by the store and read by `/metrics`: plain
//! counters, so that the store does not depend on a metrics library (a PostgreSQL store measures
//! the same way).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the buckets, seconds (a last, unbounded bucket follows).
pub const BOUNDS: [f64; 10] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0];

/// Commit durations, by bucket.
#[derive(Debug, Default)]
pub struct CommitTimes {
    /// Commits per bucket (not cumulative); the last is above every bound.
    buckets: [AtomicU64; BOUNDS.len() + 1],
    sum_ns: AtomicU64,
}

/// What [`CommitTimes`] held when it was read.
#[derive(Debug, Clone, PartialEq)]
pub struct CommitSnapshot {
    /// (upper bound in seconds, commits in that bucket); the last bound is `f64::MAX`.
    pub buckets: Vec<(f64, u64)>,
    /// Commits.
    pub count: u64,
    /// Their total duration, seconds.
    pub sum_s: f64,
}

impl CommitTimes {
    /// Counts one commit.
    pub fn observe(&self, took: Duration) {
        let s = took.as_secs_f64();
        let i = BOUNDS.iter().position(|b| s <= *b).unwrap_or(BOUNDS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// The counts now.
    pub fn snapshot(&self) -> CommitSnapshot {
        let bounds = BOUNDS.iter().copied().chain(std::iter::once(f64::MAX));
        let buckets: Vec<(f64, u64)> =
            bounds.zip(&self.buckets).map(|(b, n)| (b, n.load(Ordering::Relaxed))).collect();
        let count = buckets.iter().map(|(_, n)| n).sum();
        CommitSnapshot { buckets, count, sum_s: self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_land_in_their_bucket() {
        let times = CommitTimes::default();
        times.observe(Duration::from_micros(300));
        times.observe(Duration::from_millis(1));
        times.observe(Duration::from_millis(30));
        times.observe(Duration::from_secs(3));
        let s = times.snapshot();
        assert_eq!(s.count, 4);
        assert_eq!(s.buckets.len(), BOUNDS.len() + 1);
        assert_eq!(s.buckets[0], (0.0005, 1));
        assert_eq!(s.buckets[1], (0.001, 1), "a bound is inclusive");
        assert_eq!(s.buckets[6], (0.05, 1));
        assert_eq!(s.buckets[10], (f64::MAX, 1), "above every bound");
        assert!((s.sum_s - 3.0313).abs() < 1e-9, "{}", s.sum_s);
    }
}
