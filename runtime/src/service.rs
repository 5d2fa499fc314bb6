//! Starting a service process: logs, async runtime, main listener, signals.

use std::future::Future;
use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::telemetry::{self, LogConfig};

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
/// SIGINT/SIGTERM, and runs `service` with the listener and the token until it returns.
///
/// `hint` names the setting that chooses `addr`, so a bind error says what to change.
pub fn run<F, Fut, E>(log: &LogConfig, addr: SocketAddr, hint: &'static str, service: F) -> Result<(), E>
where
    F: FnOnce(TcpListener, CancellationToken) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: From<StartError>,
{
    run_with(log, addr, hint, Threads::PerCore, service)
}

/// [`run`] with a chosen runtime size.
pub fn run_with<F, Fut, E>(
    log: &LogConfig,
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
    telemetry::init(log).map_err(StartError::from)?;
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Threads::Small { workers, blocking } = threads {
        builder.worker_threads(workers.max(1)).max_blocking_threads(blocking.max(1));
    }
    let runtime = builder.enable_all().build().map_err(StartError::Runtime)?;
    runtime.block_on(async move {
        let listener =
            TcpListener::bind(addr).await.map_err(|source| StartError::Bind { addr, hint, source })?;
        let shutdown = CancellationToken::new();
        tokio::spawn(crate::shutdown::cancel_on_signal(shutdown.clone()));
        service(listener, shutdown).await
    })
}
