//! Dashboard sessions and sign-in throttles in PostgreSQL, so that every replica behind the
//! load balancer knows a session opened on another, and a password guesser meets one count
//! however the balancer spreads its attempts.

use std::time::Instant;

use super::{PgStore, pg_error, uuid};
use crate::store::{SessionStore, StoreError, StoredSession, ThrottleRule};

impl SessionStore for PgStore {
    fn put_session(
        &self,
        token_hash: &[u8; 32],
        session: &StoredSession,
        now_ms: i64,
        idle_ms: i64,
        max: usize,
    ) -> Result<(), StoreError> {
        let started = Instant::now();
        let mut conn = self.connection()?;
        let mut txn = conn.transaction().map_err(pg_error)?;
        txn.execute("DELETE FROM dashboard_sessions WHERE last_used_ms <= $1", &[&(now_ms - idle_ms)])
            .map_err(pg_error)?;
        // Room for this one: the least recently used go first.
        let keep = i64::try_from(max.saturating_sub(1)).unwrap_or(i64::MAX);
        txn.execute(
            "DELETE FROM dashboard_sessions WHERE token_hash IN (SELECT token_hash FROM dashboard_sessions \
             ORDER BY last_used_ms DESC OFFSET $1)",
            &[&keep],
        )
        .map_err(pg_error)?;
        txn.execute(
            "INSERT INTO dashboard_sessions (token_hash, user_id, csrf, last_used_ms) VALUES ($1, $2, $3, $4)",
            &[&token_hash.as_slice(), &uuid(session.user), &session.csrf, &now_ms],
        )
        .map_err(pg_error)?;
        self.commit(txn, started)
    }

    fn touch_session(
        &self,
        token_hash: &[u8; 32],
        now_ms: i64,
        idle_ms: i64,
        refresh_ms: i64,
    ) -> Result<Option<StoredSession>, StoreError> {
        let mut conn = self.connection()?;
        let Some(row) = conn
            .query_opt(
                "SELECT user_id, csrf, last_used_ms FROM dashboard_sessions WHERE token_hash = $1",
                &[&token_hash.as_slice()],
            )
            .map_err(pg_error)?
        else {
            return Ok(None);
        };
        let (user, csrf, last_used): (uuid::Uuid, String, i64) = (row.get(0), row.get(1), row.get(2));
        if now_ms - last_used >= idle_ms {
            conn.execute("DELETE FROM dashboard_sessions WHERE token_hash = $1", &[&token_hash.as_slice()])
                .map_err(pg_error)?;
            return Ok(None);
        }
        if now_ms - last_used >= refresh_ms {
            conn.execute(
                "UPDATE dashboard_sessions SET last_used_ms = greatest(last_used_ms, $2) WHERE token_hash = $1",
                &[&token_hash.as_slice(), &now_ms],
            )
            .map_err(pg_error)?;
        }
        Ok(Some(StoredSession { user: *user.as_bytes(), csrf }))
    }

    fn delete_sessions(
        &self,
        token_hash: Option<&[u8; 32]>,
        user: Option<[u8; 16]>,
    ) -> Result<(), StoreError> {
        let mut conn = self.connection()?;
        if let Some(hash) = token_hash {
            conn.execute("DELETE FROM dashboard_sessions WHERE token_hash = $1", &[&hash.as_slice()])
                .map_err(pg_error)?;
        }
        if let Some(user) = user {
            conn.execute("DELETE FROM dashboard_sessions WHERE user_id = $1", &[&uuid(user)])
                .map_err(pg_error)?;
        }
        Ok(())
    }

    fn throttle_locked_until(&self, scope: &str, key: &str, now_ms: i64) -> Result<Option<i64>, StoreError> {
        let mut conn = self.connection()?;
        let row = conn
            .query_opt(
                "SELECT locked_until_ms FROM sign_in_throttle WHERE scope = $1 AND key = $2 AND locked_until_ms > $3",
                &[&scope, &key, &now_ms],
            )
            .map_err(pg_error)?;
        Ok(row.map(|r| r.get(0)))
    }

    fn throttle_failed(
        &self,
        scope: &str,
        key: &str,
        now_ms: i64,
        rule: &ThrottleRule,
    ) -> Result<(), StoreError> {
        let started = Instant::now();
        let mut conn = self.connection()?;
        let mut txn = conn.transaction().map_err(pg_error)?;
        // A new key: room made, then a row of no failures that two replicas' first failures
        // both lock and count (neither overwrites the other).
        let known = txn
            .query_opt("SELECT 1 FROM sign_in_throttle WHERE scope = $1 AND key = $2", &[&scope, &key])
            .map_err(pg_error)?
            .is_some();
        if !known {
            make_room(&mut txn, scope, now_ms, rule)?;
            txn.execute(
                "INSERT INTO sign_in_throttle (scope, key, failures, last_ms, locked_until_ms) \
                 VALUES ($1, $2, 0, $3, $3) ON CONFLICT DO NOTHING",
                &[&scope, &key, &now_ms],
            )
            .map_err(pg_error)?;
        }
        let row = txn
            .query_one(
                "SELECT failures, last_ms, locked_until_ms FROM sign_in_throttle WHERE scope = $1 AND key = $2 FOR UPDATE",
                &[&scope, &key],
            )
            .map_err(pg_error)?;
        let (failures, last, locked_until): (i32, i64, i64) = (row.get(0), row.get(1), row.get(2));
        // Failures older than the window are forgotten, unless a lock still runs.
        let fresh = now_ms - last < rule.window_ms || locked_until > now_ms;
        let failures = if fresh { u32::try_from(failures).unwrap_or(0) + 1 } else { 1 };
        let locked_until = now_ms + rule.lock_ms(failures);
        txn.execute(
            "UPDATE sign_in_throttle SET failures = $3, last_ms = $4, locked_until_ms = $5 WHERE scope = $1 AND key = $2",
            &[&scope, &key, &i32::try_from(failures).unwrap_or(i32::MAX), &now_ms, &locked_until],
        )
        .map_err(pg_error)?;
        self.commit(txn, started)
    }

    fn throttle_forget(&self, scope: &str, key: &str) -> Result<(), StoreError> {
        let mut conn = self.connection()?;
        conn.execute("DELETE FROM sign_in_throttle WHERE scope = $1 AND key = $2", &[&scope, &key])
            .map_err(pg_error)?;
        Ok(())
    }
}

/// Before a new key: at most `rule.max_keys` per scope — expired keys go first, then the one
/// that failed longest ago (a spray of names can make the throttle forget one, never grow).
fn make_room(
    txn: &mut postgres::Transaction<'_>,
    scope: &str,
    now_ms: i64,
    rule: &ThrottleRule,
) -> Result<(), StoreError> {
    let count: i64 = txn
        .query_one("SELECT count(*) FROM sign_in_throttle WHERE scope = $1", &[&scope])
        .map_err(pg_error)?
        .get(0);
    if usize::try_from(count).unwrap_or(0) < rule.max_keys {
        return Ok(());
    }
    txn.execute(
        "DELETE FROM sign_in_throttle WHERE scope = $1 AND last_ms <= $2 AND locked_until_ms <= $3",
        &[&scope, &(now_ms - rule.window_ms), &now_ms],
    )
    .map_err(pg_error)?;
    let keep = i64::try_from(rule.max_keys.saturating_sub(1)).unwrap_or(i64::MAX);
    txn.execute(
        "DELETE FROM sign_in_throttle WHERE scope = $1 AND key IN (SELECT key FROM sign_in_throttle \
         WHERE scope = $1 ORDER BY last_ms DESC OFFSET $2)",
        &[&scope, &keep],
    )
    .map_err(pg_error)?;
    Ok(())
}
