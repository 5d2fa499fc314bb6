//! Starting a service process: logs, async runtime, main listener, signals.

use std::future::Future;
use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::telemetry::{self, ExtraLayer, LogConfig, LogFilter};

/// Why a service could not start or ended badly.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The log filter does not parse.
    #[error(transparent)]
    Log(#[from] telemetry::FilterError),
    /// The async runtime did not start.
    #[error("starting the async runtime: {0}")]
    Runtime(std::io::Error),
    /// The listener address cannot be bound.
    #[error("binding {addr} (set it with {hint}): {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The setting to fix.
        hint: &'static str,
        /// Why.
        source: std::io::Error,
    },
}

/// Re-reads the log filter as at start (configuration file, then command line and environment
/// on top); the error says why it could not.
pub type FilterSource = Box<dyn Fn() -> Result<String, String> + Send + Sync>;

/// How a service logs.
pub struct Logging {
    /// The `[log]` section in force at start.
    pub config: LogConfig,
    /// Where SIGHUP takes the new filter from.
    pub reload: FilterSource,
    /// Another layer under the filter (central's OpenTelemetry export).
    pub extra: Option<ExtraLayer>,
}

impl std::fmt::Debug for Logging {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logging").field("config", &self.config).finish_non_exhaustive()
    }
}

/// How long a [`Threads::Small`] runtime keeps an idle blocking thread: longer than the
/// gateway's periodic work is apart (30 s), so that work reuses a thread instead of starting one.
const SMALL_BLOCKING_KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(120);

/// How many threads the async runtime uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threads {
    /// One worker per core (central: many clients at once).
    PerCore,
    /// A small runtime for a small machine (a gateway): `workers` workers and at most `blocking`
    /// threads for blocking work. Fewer threads also mean fewer allocator arenas, which is most
    /// of the difference in resident memory on glibc.
    Small {
        /// Worker threads.
        workers: usize,
        /// Most threads for blocking work (database commits).
        blocking: usize,
    },
}

/// Installs logging, starts a multi-threaded runtime, binds `addr`, cancels the shutdown token on
/// SIGINT/SIGTERM, reloads the log filter on SIGHUP, and runs `service` with the listener and
/// the token until it returns.
///
/// `hint` names the setting that chooses `addr`, so a bind error says what to change.
pub fn run<F, Fut, E>(log: Logging, addr: SocketAddr, hint: &'static str, service: F) -> Result<(), E>
where
    F: FnOnce(TcpListener, CancellationToken) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: From<StartError>,
{
    run_with(log, addr, hint, Threads::PerCore, service)
}

/// [`run`] with a chosen runtime size.
pub fn run_with<F, Fut, E>(
    log: Logging,
    addr: SocketAddr,
    hint: &'static str,
    threads: Threads,
    service: F,
) -> Result<(), E>
where
    F: FnOnce(TcpListener, CancellationToken) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: From<StartError>,
{
    let filter = telemetry::init_with(&log.config, log.extra).map_err(StartError::from)?;
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Threads::Small { workers, blocking } = threads {
        // Blocking threads kept through a gateway's quiet periods: with tokio's 10 s default,
        // the work every 30 s (reports, checks) started a thread and ended it each time, most
        // of what an idle agent spent.
        builder
            .worker_threads(workers.max(1))
            .max_blocking_threads(blocking.max(1))
            .thread_keep_alive(SMALL_BLOCKING_KEEP_ALIVE);
    }
    let runtime = builder.enable_all().build().map_err(StartError::Runtime)?;
    runtime.block_on(async move {
        let listener =
            TcpListener::bind(addr).await.map_err(|source| StartError::Bind { addr, hint, source })?;
        let shutdown = CancellationToken::new();
        tokio::spawn(crate::shutdown::cancel_on_signal(shutdown.clone()));
        // Registered here, before the service says it is serving: from then on SIGHUP reloads
        // (its default action would end the process).
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(hangup) => {
                tokio::spawn(reload_on_hangup(hangup, filter, log.reload, shutdown.clone()));
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGHUP; the log filter cannot be reloaded")
            }
        }
        service(listener, shutdown).await
    })
}

/// On each SIGHUP until `shutdown`, takes the filter from `source` and swaps it in. A filter
/// that cannot be read or does not parse is logged as an error and the current one stays: a
/// typo in the file must not silence a running service.
pub async fn reload_on_hangup(
    mut hangup: tokio::signal::unix::Signal,
    filter: LogFilter,
    source: FilterSource,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            got = hangup.recv() => if got.is_none() { return },
        }
        let new = match source() {
            Ok(new) => new,
            Err(error) => {
                tracing::error!(signal = "SIGHUP", %error, "cannot re-read the log filter; keeping the current one");
                continue;
            }
        };
        let old = filter.current().unwrap_or_default();
        match filter.reload(&new) {
            Ok(()) => {
                tracing::info!(signal = "SIGHUP", filter = %new, previous = %old, "log filter reloaded")
            }
            Err(error) => {
                tracing::error!(signal = "SIGHUP", %error, "log filter refused; keeping the current one")
            }
        }
    }
}
