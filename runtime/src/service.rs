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
    telemetry::init(log).map_err(StartError::from)?;
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(StartError::Runtime)?;
    runtime.block_on(async move {
        let listener =
            TcpListener::bind(addr).await.map_err(|source| StartError::Bind { addr, hint, source })?;
        let shutdown = CancellationToken::new();
        tokio::spawn(crate::shutdown::cancel_on_signal(shutdown.clone()));
        service(listener, shutdown).await
    })
}
