//! neosens central: the registry of sites, buildings, rooms, device types, devices and gateways
//! of a campus IoT fleet, and every interface around it.
//!
//! ## Layout
//!
//! | module | role |
//! |---|---|
//! | [`cli`] | command line: global options (each with an environment variable) and subcommands |
//! | [`config`] | typed configuration: TOML file, then command line / environment on top |
//! | [`import_legacy`] | `import-legacy`: the 2016 sensOCampus database, from a `dumpdata` export |
//! | [`http`] | the HTTP router (health for now; the legacy and admin APIs come next) |
//! | `otel` (feature `otel`) | OpenTelemetry export of the spans over OTLP/HTTP |
//!
//! Shutdown, logging and data-directory checks come from `neosens-runtime`, shared with the edge
//! agent.
//!
//! [`run`] is the whole service given a bound listener and a shutdown token: `main` binds the
//! configured address, tests bind `127.0.0.1:0`.

pub mod bootstrap;
pub mod broker;
pub mod cli;
pub mod config;
pub mod gateway_health;
pub mod http;
pub mod import_legacy;
pub mod ingest;
pub mod metrics;
pub mod model;
pub mod monitor;
#[cfg(feature = "otel")]
pub mod otel;
pub mod registry;
pub mod secrets;
pub mod store;

use std::time::Duration;

use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::Config;

/// How long in-flight requests may take to finish once shutdown starts.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

/// Runs central on `listener` until `shutdown` is cancelled, then drains for at most
/// [`DRAIN_DEADLINE`].
pub async fn run(config: Config, listener: TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    let scrape = neosens_runtime::http::ScrapeToken::new(config.http.metrics_token.as_deref())
        .map_err(anyhow::Error::msg)?;
    let device_networks = Arc::new(config.alerts.networks().map_err(anyhow::Error::msg)?);
    let registry = open_registry(&config)?;
    let token = registry.bootstrap_admin(config.auth.admin_token.as_deref())?;
    let password = registry.bootstrap_user(config.auth.admin_password.as_deref())?;
    if token.is_some() || password.is_some() {
        bootstrap::hand_over(&config.storage.data_dir, token.as_deref(), password.as_deref())?;
    }
    let addr = listener.local_addr().context("reading the HTTP listener's address")?;
    let broker_listener = match config.broker_auth.bind {
        Some(bind) => Some(
            TcpListener::bind(bind)
                .await
                .with_context(|| format!("binding the broker-auth listener on {bind} (set [broker_auth] bind or NEOSENS_BROKER_AUTH_BIND)"))?,
        ),
        None => None,
    };
    let broker_addr = broker_listener.as_ref().map(|l| l.local_addr()).transpose()?;
    registry.reserve_logins(&config.mqtt.reserved_logins);
    registry.accept_gateway_api_secrets(config.mqtt.accept_gateway_api_secrets);
    let link = broker::connect(&config.mqtt, &registry, shutdown.clone())?;
    let shadowed = registry.devices_with_reserved_logins();
    if !shadowed.is_empty() {
        tracing::warn!(
            count = shadowed.len(),
            logins = ?shadowed.iter().take(10).collect::<Vec<_>>(),
            "devices have logins reserved for service accounts: they cannot connect until re-registered with another login"
        );
    }
    let build = neosens_runtime::build_info!();
    tracing::info!(
        http = %addr,
        broker_auth = %broker_addr.map_or_else(|| addr.to_string(), |a| a.to_string()),
        mqtt = %link.address,
        embedded_broker = link.embedded,
        data_dir = %config.storage.data_dir.display(),
        version = build.version,
        git = build.git,
        target = build.target,
        "neosens-central serving"
    );
    telemetry_note(&config.telemetry);
    let ingest_stats = Arc::new(ingest::IngestStats::default());
    // One reader of the link, two consumers: the plug-in's answers and everything else.
    let (status_tx, status_rx) = tokio::sync::mpsc::channel(10_000);
    let (control_tx, control_rx) = tokio::sync::mpsc::channel(100);
    let mut inbound = link.inbound;
    tokio::spawn(async move {
        while let Some(message) = inbound.recv().await {
            if message.topic.starts_with("$CONTROL/") {
                // Without dynamic security nobody listens there: drop.
                let _ = control_tx.send(message).await;
            } else if status_tx.send(message).await.is_err() {
                break;
            }
        }
    });
    let monitor = monitor::Monitor::open(registry.shared_store())?;
    let (seen_tx, seen_rx) = tokio::sync::mpsc::channel(64);
    let webhook = config.alerts.webhook_url.as_ref().map(|url| {
        monitor::webhook::Webhook::start(
            monitor::webhook::WebhookConfig {
                url: url.clone(),
                timeout: std::time::Duration::from_secs(config.alerts.webhook_timeout_s.max(1)),
                attempts: config.alerts.webhook_attempts.max(1),
                first_backoff: std::time::Duration::from_secs(1),
            },
            shutdown.clone(),
        )
    });
    let delivery = monitor::Delivery {
        link: link.handle.clone(),
        topic: config.alerts.mqtt_topic.clone(),
        webhook: webhook.clone(),
    };
    let (notices, notices_rx) = tokio::sync::mpsc::channel(monitor::NOTICE_QUEUE);
    tokio::spawn(monitor::run(
        Arc::clone(&registry),
        monitor.clone(),
        seen_rx,
        notices_rx,
        delivery,
        shutdown.clone(),
    ));
    let ingest = tokio::spawn(ingest::run(
        Arc::clone(&registry),
        link.handle.clone(),
        status_rx,
        Arc::clone(&ingest_stats),
        seen_tx,
        shutdown.clone(),
    ));
    match (&link.username, config.mqtt.dynamic_security && !link.embedded) {
        (Some(user), true) => {
            tokio::spawn(broker::dynsec::run(
                Arc::clone(&registry),
                link.handle.clone(),
                control_rx,
                user.clone(),
                shutdown.clone(),
            ));
        }
        (None, true) => anyhow::bail!(
            "dynamic security needs central's admin login in the broker URL (mqtt://user:password@host:port)"
        ),
        _ => drop(control_rx),
    }
    let gateways = gateway_health::GatewayHealth::default();
    let limits = config.http.limits();
    let connections = Arc::new(neosens_runtime::http::ConnectionStats::default());
    let metrics = Arc::new(metrics::Metrics::new(metrics::Sources {
        link: link.handle.clone(),
        ingest: Arc::clone(&ingest_stats),
        registry: Arc::clone(&registry),
        monitor: monitor.clone(),
        webhook: webhook.map(|w| w.stats),
        gateways: gateways.clone(),
        connections: Arc::clone(&connections),
    }));
    let state = http::AppState {
        sessions: Arc::new(http::Sessions::new(&config.auth)),
        scans: Arc::new(http::Throttle::new(http::SCAN_POLICY)),
        scrape,
        notices,
        device_networks,
        passwords: neosens_runtime::workers::Workers::start(
            "password",
            http::PASSWORD_THREADS,
            http::PASSWORDS_WAITING,
        )
        .context("starting the password-check threads")?,
        config: Arc::new(config),
        registry,
        mqtt: link.handle,
        metrics,
        monitor,
        gateways,
    };
    let app = http::router(state.clone(), broker_listener.is_some());
    neosens_runtime::systemd::Notifier::from_env().ready(shutdown.clone());
    let main = neosens_runtime::http::serve(
        "HTTP listener",
        listener,
        app,
        limits.clone(),
        connections,
        shutdown.clone(),
        DRAIN_DEADLINE,
    );
    match broker_listener {
        Some(l) => {
            let broker = neosens_runtime::http::serve(
                "broker-auth listener",
                l,
                http::broker_auth_router(state),
                limits,
                Arc::default(),
                shutdown,
                DRAIN_DEADLINE,
            );
            let (a, b) = tokio::join!(main, broker);
            a?;
            b?;
        }
        None => main.await?,
    }
    // The last batch of statuses is written before the process ends.
    if neosens_runtime::shutdown::drain("status ingestion", DRAIN_DEADLINE, ingest).await.is_none() {
        tracing::warn!("status ingestion did not finish: its last batch may be lost");
    }
    tracing::info!("neosens-central stopped");
    Ok(())
}

/// Says where spans are exported, or that this build cannot export the spans it was asked to.
fn telemetry_note(config: &config::TelemetryConfig) {
    #[cfg(feature = "otel")]
    if let Some(endpoint) = otel::endpoint(config) {
        tracing::info!(endpoint = %endpoint, "exporting spans over OTLP/HTTP");
    }
    #[cfg(not(feature = "otel"))]
    if config.otlp_endpoint.is_some() || std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_some() {
        tracing::warn!(
            "an OTLP endpoint is configured but this build has no OpenTelemetry export (cargo feature `otel`): spans are not exported"
        );
    }
}

/// Opens the data directory, the keys, the store and the registry.
pub fn open_registry(config: &Config) -> anyhow::Result<Arc<registry::Registry>> {
    let dir = &config.storage.data_dir;
    neosens_runtime::data_dir::prepare(dir, "[storage] data_dir or NEOSENS_DATA_DIR")?;
    let started = std::time::Instant::now();
    let keys = Arc::new(secrets::ServerKeys::load_or_create(dir)?);
    let store: Arc<dyn store::Store> = Arc::new(store::RedbStore::open(dir)?);
    let registry = Arc::new(registry::Registry::open(store, keys)?);
    tracing::info!(
        devices = registry.device_count(),
        revision = registry.revision(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "registry loaded"
    );
    Ok(registry)
}
