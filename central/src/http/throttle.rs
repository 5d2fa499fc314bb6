//! Slowing down guessing: failed attempts counted per key (a user name, a client address), and
//! past a few free ones each more failure locks the key for a while, doubling up to a ceiling.
//!
//! Bounded: at most `max_keys` keys are tracked. When full, keys whose failures are older than
//! the window and that are not locked go first; if every key is fresh (a distributed attack),
//! the key failed longest ago is forgotten — an attacker spraying keys can make the throttle
//! forget one, never make it grow.
//!
//! Sign-in throttles ([`SignInThrottle`]) live in the store when replicas share one; the scan
//! throttle of the legacy device path stays in each process (no database round trip on that
//! path: a scanner gets the free failures once per replica).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// How a throttle counts.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Failures allowed within `window` before locking starts.
    pub free_failures: u32,
    /// How long failures are remembered.
    pub window: Duration,
    /// The longest lock.
    pub max_lock: Duration,
    /// Keys tracked at most.
    pub max_keys: usize,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last: Instant,
    locked_until: Instant,
}

/// Failed attempts per key.
#[derive(Debug)]
pub struct Throttle {
    policy: Policy,
    entries: Mutex<HashMap<String, Entry>>,
}

impl Throttle {
    /// An empty throttle.
    pub fn new(policy: Policy) -> Self {
        Throttle { policy, entries: Mutex::new(HashMap::new()) }
    }

    /// `Err(wait)` while `key` is locked.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), Duration> {
        match self.entries.lock().get(key) {
            Some(e) if e.locked_until > now => Err(e.locked_until - now),
            _ => Ok(()),
        }
    }

    /// Records a failure of `key`: past the free ones, it locks the key for 1 s, 2 s, 4 s …
    /// up to the policy's ceiling.
    pub fn failed(&self, key: &str, now: Instant) {
        let mut entries = self.entries.lock();
        if !entries.contains_key(key) && entries.len() >= self.policy.max_keys {
            let window = self.policy.window;
            entries.retain(|_, e| e.locked_until > now || now.duration_since(e.last) < window);
            if entries.len() >= self.policy.max_keys {
                if let Some(oldest) = entries.iter().min_by_key(|(_, e)| e.last).map(|(k, _)| k.clone()) {
                    entries.remove(&oldest);
                }
            }
        }
        let entry =
            entries.entry(key.to_owned()).or_insert(Entry { failures: 0, last: now, locked_until: now });
        if now.duration_since(entry.last) >= self.policy.window && entry.locked_until <= now {
            entry.failures = 0;
        }
        entry.failures += 1;
        entry.last = now;
        if let Some(over) = entry.failures.checked_sub(self.policy.free_failures).filter(|n| *n > 0) {
            let lock = Duration::from_secs(1u64 << (over - 1).min(20)).min(self.policy.max_lock);
            entry.locked_until = now + lock;
        }
    }

    /// A success forgets `key`'s failures.
    pub fn succeeded(&self, key: &str) {
        self.entries.lock().remove(key);
    }

    /// Keys tracked now.
    pub fn tracked(&self) -> usize {
        self.entries.lock().len()
    }
}

impl Policy {
    /// The same counting in wall-clock milliseconds, for a store that keeps it.
    pub fn rule(&self) -> crate::store::ThrottleRule {
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        crate::store::ThrottleRule {
            free_failures: self.free_failures,
            window_ms: ms(self.window),
            max_lock_ms: ms(self.max_lock),
            max_keys: self.max_keys,
        }
    }
}

/// A sign-in throttle: in memory, or in the store the replicas share (every replica counts the
/// same failures: a guesser gains nothing from the load balancer spreading its attempts).
pub enum SignInThrottle {
    /// This process only.
    Memory(Throttle),
    /// In the shared store, under `scope`.
    Shared {
        /// The throttle's name in the store.
        scope: &'static str,
        /// How it counts.
        policy: Policy,
        /// The store.
        store: std::sync::Arc<dyn crate::store::Store>,
    },
}

fn now_ms() -> i64 {
    crate::model::Timestamp::now().millis()
}

impl SignInThrottle {
    /// `Err(wait)` while `key` is locked. A store that cannot be read does not lock anyone out
    /// (logged): the sign-in fails further on if the store is down.
    pub async fn check(&self, key: &str) -> Result<(), Duration> {
        let (scope, store) = match self {
            SignInThrottle::Memory(t) => return t.check(key, Instant::now()),
            SignInThrottle::Shared { scope, store, .. } => (*scope, std::sync::Arc::clone(store)),
        };
        let (key, now) = (key.to_owned(), now_ms());
        match neosens_runtime::blocking::run(move || store.throttle_locked_until(scope, &key, now)).await {
            Ok(Some(until)) => Err(Duration::from_millis(u64::try_from(until - now).unwrap_or(0))),
            Ok(None) => Ok(()),
            Err(e) => {
                tracing::warn!(error = %e, throttle = scope, "cannot read a sign-in throttle");
                Ok(())
            }
        }
    }

    /// Records a failure of `key`.
    pub async fn failed(&self, key: &str) {
        let (scope, policy, store) = match self {
            SignInThrottle::Memory(t) => return t.failed(key, Instant::now()),
            SignInThrottle::Shared { scope, policy, store } => {
                (*scope, *policy, std::sync::Arc::clone(store))
            }
        };
        let key = key.to_owned();
        let rule = policy.rule();
        if let Err(e) =
            neosens_runtime::blocking::run(move || store.throttle_failed(scope, &key, now_ms(), &rule)).await
        {
            tracing::warn!(error = %e, throttle = scope, "cannot record a sign-in failure");
        }
    }

    /// A success forgets `key`'s failures.
    pub async fn succeeded(&self, key: &str) {
        let (scope, store) = match self {
            SignInThrottle::Memory(t) => return t.succeeded(key),
            SignInThrottle::Shared { scope, store, .. } => (*scope, std::sync::Arc::clone(store)),
        };
        let key = key.to_owned();
        if let Err(e) = neosens_runtime::blocking::run(move || store.throttle_forget(scope, &key)).await {
            tracing::warn!(error = %e, throttle = scope, "cannot clear a sign-in throttle");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(max_keys: usize) -> Policy {
        Policy {
            free_failures: 3,
            window: Duration::from_secs(900),
            max_lock: Duration::from_secs(60),
            max_keys,
        }
    }

    #[test]
    fn locks_grow_after_the_free_failures_and_a_success_clears_them() {
        let t = Throttle::new(policy(10));
        let now = Instant::now();
        for _ in 0..3 {
            assert!(t.check("alice", now).is_ok());
            t.failed("alice", now);
        }
        assert!(t.check("alice", now).is_ok(), "three free failures");
        t.failed("alice", now);
        assert_eq!(t.check("alice", now), Err(Duration::from_secs(1)));
        let later = now + Duration::from_secs(1);
        assert!(t.check("alice", later).is_ok(), "the lock ends");
        t.failed("alice", later);
        assert_eq!(t.check("alice", later), Err(Duration::from_secs(2)), "and doubles");
        for _ in 0..20 {
            t.failed("alice", later);
        }
        assert_eq!(t.check("alice", later), Err(Duration::from_secs(60)), "up to the ceiling");
        assert!(t.check("bob", later).is_ok(), "per key");
        t.succeeded("alice");
        assert!(t.check("alice", later).is_ok());
    }

    #[test]
    fn failures_are_forgotten_after_the_window() {
        let t = Throttle::new(policy(10));
        let now = Instant::now();
        for _ in 0..3 {
            t.failed("alice", now);
        }
        let next_day = now + Duration::from_secs(86_400);
        t.failed("alice", next_day);
        assert!(t.check("alice", next_day).is_ok(), "a new window starts");
    }

    #[test]
    fn a_spray_of_keys_never_grows_it_past_its_bound() {
        let t = Throttle::new(policy(100));
        let now = Instant::now();
        for _ in 0..10 {
            t.failed("alice", now);
        }
        for i in 0..10_000 {
            t.failed(&format!("spray-{i}"), now + Duration::from_millis(i + 1));
        }
        assert_eq!(t.tracked(), 100);
    }
}
