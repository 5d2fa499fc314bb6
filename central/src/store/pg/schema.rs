//! The PostgreSQL schema, as versioned migrations run at start (and by `neosens-central
//! migrate`): the missing steps in one transaction (PostgreSQL's DDL is transactional: a failed
//! step leaves the previous version whole), under an advisory lock so that replicas starting
//! together never run one twice.
//!
//! Records are `json` documents (the model's serde shape, readable with `->>` in `psql`) keyed
//! by their UUID. `json` rather than `jsonb`: it keeps the text as written, so a `\u0000` that a
//! device put in a log line is stored like any other character (`jsonb` refuses it).

use super::{PgStore, pg_error};
use crate::store::StoreError;

/// Advisory lock key held while migrating ("neosens" in ASCII, as a number).
const MIGRATION_LOCK: i64 = 0x006e_656f_7365_6e73;

/// The steps, in order: step `n` brings the schema to version `n + 1`. Never edit a step that
/// has shipped; add one.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: the registry, its change log, statuses and everything kept per device.
    r#"
    CREATE TABLE neosens_revision (
        only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
        revision bigint NOT NULL
    );
    INSERT INTO neosens_revision (revision) VALUES (0);
    CREATE TABLE sites (id uuid PRIMARY KEY, body json NOT NULL);
    CREATE TABLE buildings (id uuid PRIMARY KEY, body json NOT NULL);
    CREATE TABLE rooms (id uuid PRIMARY KEY, body json NOT NULL);
    CREATE TABLE device_types (id uuid PRIMARY KEY, body json NOT NULL);
    CREATE TABLE devices (id uuid PRIMARY KEY, body json NOT NULL);
    CREATE TABLE gateways (id uuid PRIMARY KEY, body json NOT NULL);
    CREATE TABLE users (id uuid PRIMARY KEY, body json NOT NULL);
    CREATE TABLE api_tokens (id uuid PRIMARY KEY, body json NOT NULL);
    CREATE TABLE changes (
        revision bigint PRIMARY KEY,
        kind text NOT NULL,
        id uuid NOT NULL,
        deleted boolean NOT NULL
    );
    CREATE TABLE device_statuses (device uuid PRIMARY KEY, body json NOT NULL);
    CREATE TABLE status_history (
        device uuid NOT NULL,
        at_ms bigint NOT NULL,
        payload bytea NOT NULL,
        PRIMARY KEY (device, at_ms)
    );
    CREATE TABLE device_logs (
        device uuid NOT NULL,
        seq bigserial NOT NULL,
        body json NOT NULL,
        PRIMARY KEY (device, seq)
    );
    CREATE TABLE device_orders (
        device uuid NOT NULL,
        seq bigserial NOT NULL,
        body json NOT NULL,
        PRIMARY KEY (device, seq)
    );
    CREATE TABLE alerts (id bigint PRIMARY KEY, body json NOT NULL);
    CREATE TABLE user_settings (user_id uuid PRIMARY KEY, settings text NOT NULL);
    CREATE TABLE firmware_images (sha256 bytea PRIMARY KEY, body json NOT NULL);
    CREATE TABLE campaigns (id bigint PRIMARY KEY, body json NOT NULL);
    CREATE TABLE campaign_progress (
        campaign bigint NOT NULL,
        device uuid NOT NULL,
        body json NOT NULL,
        PRIMARY KEY (campaign, device)
    );
    CREATE TABLE firmware_census (at_ms bigint PRIMARY KEY, body json NOT NULL);
    CREATE TABLE neosens_audit_seq (
        only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
        last bigint NOT NULL
    );
    INSERT INTO neosens_audit_seq (last) VALUES (0);
    CREATE TABLE audit (id bigint PRIMARY KEY, at_ms bigint NOT NULL, body json NOT NULL);
    CREATE INDEX audit_at ON audit (at_ms);
    CREATE TABLE bulk_operations (id bigint PRIMARY KEY, body json NOT NULL);
    "#,
    // 2: replicas — statuses numbered by batch (each replica reads what the others ingested),
    // what replicas that do not lead saw for the monitor, dashboard sessions and sign-in
    // throttles, the server keys' check value.
    r#"
    CREATE TABLE neosens_status_seq (
        only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
        last bigint NOT NULL
    );
    INSERT INTO neosens_status_seq (last) VALUES (0);
    ALTER TABLE device_statuses ADD COLUMN seq bigint NOT NULL DEFAULT 0;
    CREATE INDEX device_statuses_seq ON device_statuses (seq);
    CREATE TABLE relayed_to_leader (seq bigserial PRIMARY KEY, body text NOT NULL);
    CREATE TABLE dashboard_sessions (
        token_hash bytea PRIMARY KEY,
        user_id uuid NOT NULL,
        csrf text NOT NULL,
        last_used_ms bigint NOT NULL
    );
    CREATE INDEX dashboard_sessions_user ON dashboard_sessions (user_id);
    CREATE INDEX dashboard_sessions_used ON dashboard_sessions (last_used_ms);
    CREATE TABLE sign_in_throttle (
        scope text NOT NULL,
        key text NOT NULL,
        failures integer NOT NULL,
        last_ms bigint NOT NULL,
        locked_until_ms bigint NOT NULL,
        PRIMARY KEY (scope, key)
    );
    CREATE TABLE neosens_keys (
        only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
        key_check bytea NOT NULL
    );
    "#,
];

/// The schema version this build writes.
pub fn version() -> u32 {
    u32::try_from(MIGRATIONS.len()).unwrap_or(u32::MAX)
}

impl PgStore {
    /// Brings the database to [`version`]: the missing steps in one transaction, under an
    /// advisory lock (a second replica waits, then finds nothing to do). Returns the steps run.
    pub fn migrate(&self) -> Result<u32, StoreError> {
        let mut conn = self.connection()?;
        let mut txn = conn.transaction().map_err(pg_error)?;
        txn.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).map_err(pg_error)?;
        txn.batch_execute("CREATE TABLE IF NOT EXISTS neosens_schema (version integer NOT NULL)")
            .map_err(pg_error)?;
        let found: Option<i32> =
            txn.query_opt("SELECT version FROM neosens_schema", &[]).map_err(pg_error)?.map(|row| row.get(0));
        let found = u32::try_from(found.unwrap_or(0)).unwrap_or(0);
        if found > version() {
            return Err(StoreError::TooNew { found, supported: version() });
        }
        for (step, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
            txn.batch_execute(sql)
                .map_err(|e| StoreError::Backend(format!("migration to version {}: {e}", step + 1)))?;
            let v = i32::try_from(step + 1).unwrap_or(i32::MAX);
            txn.execute("DELETE FROM neosens_schema", &[]).map_err(pg_error)?;
            txn.execute("INSERT INTO neosens_schema (version) VALUES ($1)", &[&v]).map_err(pg_error)?;
            tracing::info!(version = v, "database schema migrated");
        }
        txn.commit().map_err(pg_error)?;
        Ok(version() - found)
    }

    /// The schema version in the database (0 when empty).
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        let mut conn = self.connection()?;
        let exists: bool =
            conn.query_one("SELECT to_regclass('neosens_schema') IS NOT NULL", &[]).map_err(pg_error)?.get(0);
        if !exists {
            return Ok(0);
        }
        let v: Option<i32> =
            conn.query_opt("SELECT version FROM neosens_schema", &[]).map_err(pg_error)?.map(|r| r.get(0));
        Ok(u32::try_from(v.unwrap_or(0)).unwrap_or(0))
    }
}
