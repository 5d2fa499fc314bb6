//! One back-off for every retry loop (MQTT links, the gateway's sync and reports, webhooks,
//! restarted tasks): doubling from a first delay up to a cap, each delay jittered to between half
//! and one and a half times its nominal value, so a thousand devices or gateways that lost the
//! same server do not come back in step.

use std::time::Duration;

/// A capped, jittered exponential back-off.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    cap: Duration,
    nominal: Duration,
}

impl Backoff {
    /// Starts at `first`, doubles after each delay, never above `cap` (jitter included).
    pub fn new(first: Duration, cap: Duration) -> Self {
        let first = first.min(cap);
        Backoff { first, cap, nominal: first }
    }

    /// The next pause: the current nominal delay, jittered (±50 %, at most the cap); the nominal
    /// delay then doubles.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.nominal.mul_f64(0.5 + fastrand::f64()).min(self.cap);
        self.nominal = (self.nominal * 2).min(self.cap);
        delay
    }

    /// The nominal delay the next pause is drawn around (for logs).
    pub fn current(&self) -> Duration {
        self.nominal
    }

    /// Back to the first delay, after a success.
    pub fn reset(&mut self) {
        self.nominal = self.first;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_with_jitter_up_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(250), Duration::from_secs(30));
        for nominal_ms in [250u64, 500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000] {
            let d = b.next_delay();
            let lo = Duration::from_millis(nominal_ms / 2);
            let hi = Duration::from_millis(nominal_ms * 3 / 2).min(Duration::from_secs(30));
            assert!(d >= lo && d <= hi, "{d:?} not in {lo:?}..={hi:?}");
        }
        assert_eq!(b.current(), Duration::from_secs(30));
        b.reset();
        assert_eq!(b.current(), Duration::from_millis(250));
    }

    #[test]
    fn jitter_spreads_the_delays() {
        let mut delays: Vec<Duration> = (0..50)
            .map(|_| Backoff::new(Duration::from_secs(1), Duration::from_secs(60)).next_delay())
            .collect();
        delays.sort();
        delays.dedup();
        assert!(delays.len() > 40, "fifty clients that failed together retry apart");
    }

    #[test]
    fn a_first_delay_above_the_cap_is_the_cap() {
        let mut b = Backoff::new(Duration::from_secs(90), Duration::from_secs(60));
        assert!(b.next_delay() <= Duration::from_secs(60));
    }
}
