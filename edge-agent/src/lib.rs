//! neosens edge agent: runs on Raspberry Pi and Jetson gateways, keeps the gateway's share of
//! the registry on its disk, answers device provisioning on the LAN (also while central is
//! unreachable), decodes LoRaWAN uplinks and relays everything upstream through an on-disk outbox.
//!
//! ## Layout
//!
//! | module | role |
//! |---|---|
//! | [`cli`] | command line: global options (each with an environment variable) and subcommands |
//! | [`config`] | typed configuration: TOML file, then command line / environment on top |
//! | [`http`] | the LAN listener (health for now; the legacy provisioning proxy comes next) |
//!
//! [`run`] is the whole agent given its bound listener and a shutdown token.

pub mod cli;
pub mod config;
pub mod http;

use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::Config;

/// How long in-flight requests may take to finish once shutdown starts.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(5);

/// Runs the agent on `listener` until `shutdown` is cancelled, then drains for at most
/// [`DRAIN_DEADLINE`].
pub async fn run(config: Config, listener: TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    neosens_runtime::data_dir::prepare(
        &config.storage.data_dir,
        "[storage] data_dir or NEOSENS_EDGE_DATA_DIR",
    )?;
    let addr = listener.local_addr().context("reading the LAN listener's address")?;
    match &config.central.url {
        Some(url) => tracing::info!(central = %url, "central configured"),
        None => tracing::warn!("no central URL configured (NEOSENS_EDGE_CENTRAL_URL): the agent cannot sync"),
    }
    tracing::info!(http = %addr, data_dir = %config.storage.data_dir.display(), version = env!("CARGO_PKG_VERSION"), "neosens-edge serving");

    let app = http::router(http::AppState::new(config));
    neosens_runtime::systemd::Notifier::from_env().ready(shutdown.clone());
    neosens_runtime::http::serve("LAN listener", listener, app, shutdown, DRAIN_DEADLINE).await?;
    tracing::info!("neosens-edge stopped");
    Ok(())
}
