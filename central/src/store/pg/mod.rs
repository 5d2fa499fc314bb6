//! The PostgreSQL store (`NEOSENS_DATABASE_URL=postgres://…`): the same [`Store`] contract as
//! the embedded redb file, for several central processes sharing one database.
//!
//! Every method runs on a pooled connection from the blocking pool (the trait is synchronous,
//! like redb's), and every write is one transaction that has committed — with PostgreSQL's own
//! durability (`synchronous_commit`) — before the method returns: a change acknowledged to a
//! client is in the database. Registry batches take the revision row's lock first, so batches
//! from any number of replicas get consecutive, unique revision numbers in commit order.
//!
//! [`Store`]: super::Store

pub mod copy;
mod extras;
mod fleet;
mod registry;
mod schema;
mod sessions;
mod shared;

use std::str::FromStr;
use std::time::{Duration, Instant};

use postgres::types::Json;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{CommitSnapshot, CommitTimes, StoreError, StoreStats};
use crate::model::EntityKind;

pub use schema::version as schema_version_of_build;

/// Connections per process by default: the blocking pool's writers plus the readers of the
/// API; PostgreSQL's default `max_connections` (100) then carries a dozen replicas.
pub const DEFAULT_POOL_SIZE: u32 = 8;

/// How long a caller waits for a free connection (or for the database to answer a new one)
/// before the operation fails with an error naming the database.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

type Pool = r2d2::Pool<r2d2_postgres::PostgresConnectionManager<tokio_postgres_rustls::MakeRustlsConnect>>;
type Connection = r2d2::PooledConnection<
    r2d2_postgres::PostgresConnectionManager<tokio_postgres_rustls::MakeRustlsConnect>,
>;

/// How to reach the database.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// `postgres://user:password@host:port/dbname?sslmode=require` (libpq URL or key=value
    /// form, as the `postgres` crate parses it).
    pub url: String,
    /// PEM file of the certificate authorities trusted for the database's TLS certificate;
    /// the system's roots when unset.
    pub ca_file: Option<std::path::PathBuf>,
    /// Connections kept at most.
    pub pool_size: u32,
}

/// The PostgreSQL-backed [`super::Store`].
pub struct PgStore {
    /// Always there until the store is dropped (see `Drop`).
    pool: Option<Pool>,
    /// How to connect, for the change listener's own connection.
    config: postgres::Config,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    /// Commit durations of write transactions (for `/metrics`).
    writes: CommitTimes,
    /// How much of the audit trail is kept (set from the configuration).
    audit_retention: parking_lot::RwLock<crate::audit::AuditRetention>,
    /// The database's size as last measured, and when (ms since `started`): `/metrics` reads
    /// it from an async worker, which must not wait on the database.
    size: std::sync::atomic::AtomicU64,
    size_measured_ms: std::sync::atomic::AtomicU64,
    started: Instant,
}

/// How often the database size is measured again (after a commit, on the blocking pool).
const SIZE_REFRESH: Duration = Duration::from_secs(30);

/// A database error, with the detail PostgreSQL gave (the `Display` of the client's error only
/// says "db error").
pub(super) fn pg_error(e: postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(db) => StoreError::Backend(format!("postgresql: {} ({})", db.message(), db.code().code())),
        None => {
            let mut text = format!("postgresql: {e}");
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                text.push_str(&format!(": {c}"));
                cause = c.source();
            }
            StoreError::Backend(text)
        }
    }
}

/// A stored document that does not decode into the model.
pub(super) fn corrupt(
    kind: EntityKind,
    key: impl std::fmt::Display,
    e: impl std::fmt::Display,
) -> StoreError {
    StoreError::Corrupt { kind, key: key.to_string(), reason: e.to_string() }
}

/// Reads a `json` column into `T`, naming the record when it does not fit.
pub(super) fn from_json<T: DeserializeOwned>(
    row: &postgres::Row,
    column: usize,
    kind: EntityKind,
    key: impl std::fmt::Display,
) -> Result<T, StoreError> {
    let Json(value): Json<serde_json::Value> = row.try_get(column).map_err(|e| corrupt(kind, &key, e))?;
    serde_json::from_value(value).map_err(|e| corrupt(kind, key, e))
}

/// A value as a `json` parameter.
pub(super) fn json<T: Serialize>(value: &T) -> Result<Json<serde_json::Value>, StoreError> {
    serde_json::to_value(value).map(Json).map_err(|e| StoreError::Backend(format!("encoding a record: {e}")))
}

/// A 16-byte key as the `uuid` it is stored as.
pub(super) fn uuid(key: [u8; 16]) -> uuid::Uuid {
    uuid::Uuid::from_bytes(key)
}

/// The table of a kind of record.
pub(super) fn table(kind: EntityKind) -> &'static str {
    match kind {
        EntityKind::Site => "sites",
        EntityKind::Building => "buildings",
        EntityKind::Room => "rooms",
        EntityKind::DeviceType => "device_types",
        EntityKind::Device => "devices",
        EntityKind::Gateway => "gateways",
        EntityKind::User => "users",
        EntityKind::Token => "api_tokens",
    }
}

/// A kind's name in the change log: the audit trail's (the model's serde name: `device_type` …).
pub(super) use crate::audit::kind_name;

/// The kind a change-log name stands for.
pub(super) fn kind_of(name: &str) -> Option<EntityKind> {
    EntityKind::ALL.into_iter().find(|k| kind_name(*k) == name)
}

/// A session's settings added to the URL's own `options`: a write waits at most this long for
/// the revision row's lock, and a transaction left open by a stalled process is ended.
const SESSION_OPTIONS: &str = "-c lock_timeout=10s -c idle_in_transaction_session_timeout=60s";

/// Bounds every wait on the database link, where the URL does not set them: connecting, a
/// silent peer (TCP keepalives, unacknowledged data), a lock, a transaction another process
/// left open. Without them a replica cut off while holding the revision row's lock would stall
/// every other replica's writes until its TCP connection times out (hours).
fn bound_waits(config: &mut postgres::Config) {
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(Duration::from_secs(30));
    }
    config.keepalives(true);
    config.keepalives_idle(Duration::from_secs(30));
    if config.get_keepalives_interval().is_none() {
        config.keepalives_interval(Duration::from_secs(10));
    }
    if config.get_keepalives_retries().is_none() {
        config.keepalives_retries(3);
    }
    let options = match config.get_options() {
        Some(own) => format!("{own} {SESSION_OPTIONS}"),
        None => SESSION_OPTIONS.to_owned(),
    };
    config.options(&options);
}

/// TLS for the database link: rustls on ring, trusting `ca_file` or the system's roots.
fn tls(ca_file: Option<&std::path::Path>) -> Result<tokio_postgres_rustls::MakeRustlsConnect, StoreError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let pem = std::fs::read(path)
                .map_err(|e| StoreError::Backend(format!("database CA file {}: {e}", path.display())))?;
            for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(&pem) {
                let cert = cert
                    .map_err(|e| StoreError::Backend(format!("database CA file {}: {e}", path.display())))?;
                roots.add(cert).map_err(|e| StoreError::Backend(format!("{}: {e}", path.display())))?;
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                // A system root rustls cannot parse is skipped, as every rustls client does.
                let _ = roots.add(cert);
            }
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Backend(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

impl PgStore {
    /// Connects (checking that the database answers) and migrates it to this build's schema.
    pub fn connect(options: &PgOptions) -> Result<Self, StoreError> {
        let mut config = postgres::Config::from_str(&options.url)
            .map_err(|e| StoreError::Backend(format!("database URL: {e}")))?;
        bound_waits(&mut config);
        let tls = tls(options.ca_file.as_deref())?;
        // One connection first, for the real reason when the database cannot be reached (the
        // pool would only say it timed out).
        {
            use r2d2::ManageConnection;
            let probe = r2d2_postgres::PostgresConnectionManager::new(config.clone(), tls.clone());
            probe.connect().map_err(|e| match pg_error(e) {
                StoreError::Backend(reason) => {
                    StoreError::Backend(format!("connecting to the database: {reason}"))
                }
                other => other,
            })?;
        }
        let manager = r2d2_postgres::PostgresConnectionManager::new(config.clone(), tls.clone());
        let pool = r2d2::Pool::builder()
            .max_size(options.pool_size.max(1))
            .min_idle(Some(1))
            .connection_timeout(CONNECT_TIMEOUT)
            // r2d2 logs failed connections through `log`; the error reaches the caller anyway.
            .error_handler(Box::new(r2d2::NopErrorHandler))
            .build(manager)
            .map_err(|e| StoreError::Backend(format!("connecting to the database: {e}")))?;
        let store = PgStore {
            pool: Some(pool),
            config,
            tls,
            writes: CommitTimes::default(),
            audit_retention: parking_lot::RwLock::new(crate::audit::AuditRetention::default()),
            size: std::sync::atomic::AtomicU64::new(0),
            size_measured_ms: std::sync::atomic::AtomicU64::new(0),
            started: Instant::now(),
        };
        let ran = store.migrate()?;
        store.measure_size();
        tracing::info!(schema = schema::version(), steps_run = ran, "PostgreSQL store ready");
        Ok(store)
    }

    /// A pooled connection; async code must come through the blocking pool (it waits on the
    /// network).
    #[track_caller]
    pub(super) fn connection(&self) -> Result<Connection, StoreError> {
        neosens_runtime::blocking::assert_off_async_worker("a central store access");
        self.pool().get().map_err(|e| StoreError::Backend(format!("no database connection: {e}")))
    }

    fn pool(&self) -> &Pool {
        self.pool.as_ref().expect("the pool lives as long as the store")
    }

    /// Commits a write transaction, timing it.
    pub(super) fn commit(&self, txn: postgres::Transaction<'_>, started: Instant) -> Result<(), StoreError> {
        txn.commit().map_err(pg_error)?;
        self.writes.observe(started.elapsed());
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.size_measured_ms.load(std::sync::atomic::Ordering::Relaxed);
        if now.saturating_sub(last) >= SIZE_REFRESH.as_millis() as u64 {
            self.size_measured_ms.store(now, std::sync::atomic::Ordering::Relaxed);
            self.measure_size();
        }
        Ok(())
    }

    /// Measures the database's size (`pg_database_size`), kept for [`StoreStats::size_bytes`].
    fn measure_size(&self) {
        // Never waits for a connection: the caller may hold the last one (the next commit
        // measures instead).
        let Some(mut conn) = self.pool().try_get() else { return };
        if let Ok(row) = conn.query_one("SELECT pg_database_size(current_database())", &[]) {
            let bytes: i64 = row.get(0);
            self.size.store(u64::try_from(bytes).unwrap_or(0), std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// The audit retention in force.
    pub(super) fn audit_retention(&self) -> crate::audit::AuditRetention {
        *self.audit_retention.read()
    }

    /// Sets the audit retention.
    pub(super) fn set_retention(&self, retention: crate::audit::AuditRetention) {
        *self.audit_retention.write() = retention;
    }
}

/// A connection outside the pool, for a session whose state matters (a `LISTEN`, an advisory
/// lock): the session ends when this is dropped.
pub(super) struct OwnConnection {
    /// Always there until dropped (see `Drop`).
    client: Option<postgres::Client>,
}

impl OwnConnection {
    /// The client.
    pub(super) fn client(&mut self) -> &mut postgres::Client {
        self.client.as_mut().expect("the client lives as long as the connection")
    }
}

impl Drop for OwnConnection {
    /// Closing the synchronous client runs a small runtime of its own, which tokio forbids on
    /// an async worker (where an aborted task drops it): on a thread of its own.
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let _ = std::thread::Builder::new().name("pg-session-close".into()).spawn(move || drop(client));
        }
    }
}

impl PgStore {
    /// A new connection outside the pool, `setup` run on it first.
    pub(super) fn own_connection(&self, setup: &str) -> Result<OwnConnection, StoreError> {
        neosens_runtime::blocking::assert_off_async_worker("a database session");
        let mut client = self.config.connect(self.tls.clone()).map_err(pg_error)?;
        client.batch_execute(setup).map_err(pg_error)?;
        Ok(OwnConnection { client: Some(client) })
    }
}

/// Notifications of new revisions from every process writing the database (`LISTEN
/// neosens_changes`), on a connection of its own.
pub struct PgListener(OwnConnection);

impl PgStore {
    /// A connection listening for new revisions.
    pub fn listener(&self) -> Result<PgListener, StoreError> {
        Ok(PgListener(self.own_connection("LISTEN neosens_changes")?))
    }
}

impl super::ChangeListener for PgListener {
    fn wait(&mut self, timeout: Duration) -> Result<Option<u64>, StoreError> {
        use postgres::fallible_iterator::FallibleIterator;
        let client = self.0.client();
        // The payload is the revision committed (see `log_changes`); one that does not parse
        // still means "something changed" (0: the caller catches up).
        let revision = |n: postgres::Notification| n.payload().parse::<u64>().unwrap_or(0);
        let came = {
            let mut notifications = client.notifications();
            let mut came = notifications.timeout_iter(timeout).next().map_err(pg_error)?.map(revision);
            // Several commits may have notified at once: one catch-up reads them all.
            while let Some(n) = notifications.iter().next().map_err(pg_error)? {
                came = came.max(Some(revision(n)));
            }
            came
        };
        if client.is_closed() {
            return Err(StoreError::Backend("postgresql: the listening connection closed".into()));
        }
        Ok(came)
    }
}

impl Drop for PgStore {
    /// Closing a connection of the synchronous client runs a small runtime of its own, which
    /// tokio forbids on an async worker (where central drops its store at shutdown): the pool
    /// is dropped on a thread of its own.
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            let closing = std::thread::Builder::new().name("pg-close".into()).spawn(move || drop(pool));
            if let Ok(handle) = closing {
                let _ = handle.join();
            }
        }
    }
}

impl StoreStats for PgStore {
    /// The size last measured (at most [`SIZE_REFRESH`] old while writes happen).
    fn size_bytes(&self) -> u64 {
        self.size.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn commit_times(&self) -> Option<CommitSnapshot> {
        Some(self.writes.snapshot())
    }
}

#[cfg(test)]
mod tests;
