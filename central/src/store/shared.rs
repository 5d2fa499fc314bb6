//! What several central processes sharing one store need of it beyond reads and writes: one
//! leader at a time, the statuses the others ingested, dashboard sessions and sign-in throttles
//! every replica sees.

use crate::model::DeviceStatusRecord;

use super::StoreError;

/// A claim to lead the processes sharing a store (PostgreSQL: a session-level advisory lock on
/// a connection of its own). The database releases it when that session ends — the process
/// died, or its link did — so another process can take over; nothing has to expire first.
pub trait LeaderLock: Send {
    /// Tries to take the lock without waiting; whether this session holds it now.
    fn try_acquire(&mut self) -> Result<bool, StoreError>;

    /// One round trip on the session holding the lock: `Ok` while it lives (and with it the
    /// lock); an error once it is lost — the caller must stop leading.
    fn check(&mut self) -> Result<(), StoreError>;
}

/// Statuses stored since a cursor ([`super::RegistryStore::statuses_since`]).
#[derive(Debug, Default)]
pub struct StatusChanges {
    /// The cursor to ask from next time.
    pub cursor: u64,
    /// Each device's last status with the number of the batch that stored it, of the devices
    /// whose status was stored since (one each, at most one per device of the registry: the
    /// bound of one read).
    pub statuses: Vec<(u64, [u8; 16], DeviceStatusRecord)>,
}

/// A dashboard session as a shared store keeps it (its token never: the SHA-256 of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    /// The user.
    pub user: [u8; 16],
    /// The CSRF token state-changing requests repeat.
    pub csrf: String,
}

/// How a sign-in throttle counts (see `http::throttle`), in wall-clock milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct ThrottleRule {
    /// Failures allowed within the window before locking starts.
    pub free_failures: u32,
    /// How long failures are remembered.
    pub window_ms: i64,
    /// The longest lock.
    pub max_lock_ms: i64,
    /// Keys tracked at most per throttle.
    pub max_keys: usize,
}

impl ThrottleRule {
    /// The lock after `failures` failures: none within the free ones, then 1 s, 2 s, 4 s … up
    /// to the ceiling.
    pub fn lock_ms(&self, failures: u32) -> i64 {
        match failures.checked_sub(self.free_failures).filter(|n| *n > 0) {
            Some(over) => (1000i64 << (over - 1).min(20)).min(self.max_lock_ms),
            None => 0,
        }
    }
}

fn not_shared() -> StoreError {
    StoreError::Backend("this store is not shared: sessions and throttles live in memory".into())
}

/// Dashboard sessions and sign-in throttles kept where every replica sees them. A store only
/// one process uses does not keep them (the process does, in memory): the defaults refuse.
pub trait SessionStore: Send + Sync {
    /// Stores a new session, dropping those idle longer than `idle_ms` and the least recently
    /// used beyond `max`.
    fn put_session(
        &self,
        token_hash: &[u8; 32],
        session: &StoredSession,
        now_ms: i64,
        idle_ms: i64,
        max: usize,
    ) -> Result<(), StoreError> {
        let _ = (token_hash, session, now_ms, idle_ms, max);
        Err(not_shared())
    }

    /// The session of a token if it was used within `idle_ms`; its last use is moved to
    /// `now_ms` when older than `refresh_ms` (a write per minute, not per request).
    fn touch_session(
        &self,
        token_hash: &[u8; 32],
        now_ms: i64,
        idle_ms: i64,
        refresh_ms: i64,
    ) -> Result<Option<StoredSession>, StoreError> {
        let _ = (token_hash, now_ms, idle_ms, refresh_ms);
        Err(not_shared())
    }

    /// Ends a session (`token_hash`), or every session of a user.
    fn delete_sessions(
        &self,
        token_hash: Option<&[u8; 32]>,
        user: Option<[u8; 16]>,
    ) -> Result<(), StoreError> {
        let _ = (token_hash, user);
        Err(not_shared())
    }

    /// Until when `key` of throttle `scope` is locked (ms), if it is.
    fn throttle_locked_until(&self, scope: &str, key: &str, now_ms: i64) -> Result<Option<i64>, StoreError> {
        let _ = (scope, key, now_ms);
        Err(not_shared())
    }

    /// Records a failure of `key` under `rule` (bounded by `rule.max_keys` keys per scope).
    fn throttle_failed(
        &self,
        scope: &str,
        key: &str,
        now_ms: i64,
        rule: &ThrottleRule,
    ) -> Result<(), StoreError> {
        let _ = (scope, key, now_ms, rule);
        Err(not_shared())
    }

    /// Forgets `key`'s failures (a success).
    fn throttle_forget(&self, scope: &str, key: &str) -> Result<(), StoreError> {
        let _ = (scope, key);
        Err(not_shared())
    }
}
