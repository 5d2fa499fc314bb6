//! neosens edge agent: runs on Raspberry Pi and Jetson gateways, keeps the gateway's share of
//! the registry on its disk, answers device provisioning on the LAN (also while central is
//! unreachable), and relays everything upstream through an on-disk outbox.
//!
//! ## Layout
//!
//! | module | role |
//! |---|---|
//! | [`cli`] | command line: global options (each with an environment variable) and subcommands |
//! | [`config`] | typed configuration: TOML file, then command line / environment on top |
//! | [`credentials`] | the gateway's enrolment (`gateway.json`, 0600) |
//! | [`central`] | HTTP client of central: enrolment, sync, reports, forwarding |
//! | [`cache`] | the registry share in redb, applied one batch per transaction |
//! | [`sync`] | the sync long-poll and the reports to central |
//! | [`proxy`] | the legacy provisioning paths: central first, the cache when it is out of reach |
//! | [`outbox`] | the durable upstream queue |
//! | [`uplink`] | the MQTT connection that drains the outbox and receives orders |
//! | [`status`] | the gateway as a device of its room: status and orders |
//! | [`metrics`], [`http`] | `/metrics`, `/healthz`, the LAN router |
//!
//! [`run`] is the whole agent given its bound listener and a shutdown token.

pub mod cache;
pub mod central;
pub mod cli;
pub mod config;
pub mod credentials;
pub mod hal;
pub mod http;
pub mod lorawan;
pub mod metrics;
pub mod outbox;
pub mod proxy;
pub mod self_test;
pub mod status;
pub mod sync;
pub mod uplink;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::Config;

/// How long in-flight requests may take to finish once shutdown starts.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(5);

/// Exchanges a one-time token for the gateway's credentials and stores them in `data_dir`.
pub async fn enroll(
    data_dir: &Path,
    central_url: &str,
    token: &str,
) -> anyhow::Result<credentials::GatewayCredentials> {
    neosens_runtime::data_dir::prepare(data_dir, "[storage] data_dir or NEOSENS_EDGE_DATA_DIR")?;
    let client = central::Central::new(central_url, None, Duration::from_secs(30))?;
    let grant = client.enroll(token.trim()).await?;
    let creds = credentials::GatewayCredentials::from_grant(central_url, grant);
    creds
        .save(data_dir)
        .with_context(|| format!("writing {}", data_dir.join(credentials::FILE).display()))?;
    tracing::info!(gateway = %creds.gateway_id, name = %creds.name, "enrolled");
    Ok(creds)
}

/// The broker URL of the uplink: the configured one, with the gateway's login unless it has one.
fn uplink_url(
    config: &Config,
    creds: &credentials::GatewayCredentials,
) -> anyhow::Result<Option<neosens_runtime::mqtt::BrokerUrl>> {
    let Some(text) = &config.mqtt.url else { return Ok(None) };
    let mut url: neosens_runtime::mqtt::BrokerUrl =
        text.parse().with_context(|| format!("[mqtt] url or NEOSENS_EDGE_MQTT_URL {text:?}"))?;
    if url.credentials.is_none() {
        // Its MQTT password, derived from its key pair: never its API secret.
        let keys = creds.keys().map_err(|e| anyhow::anyhow!("{}: {e}", credentials::FILE))?;
        url.credentials =
            Some((creds.mqtt_username.clone(), neosens_runtime::gateway_secrets::mqtt_password(&keys)));
    }
    Ok(Some(url))
}

/// Runs the agent on `listener` until `shutdown` is cancelled, then drains for at most
/// [`DRAIN_DEADLINE`].
pub async fn run(config: Config, listener: TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    let scrape = neosens_runtime::http::ScrapeToken::new(config.http.metrics_token.as_deref())
        .map_err(anyhow::Error::msg)?;
    let dir = config.storage.data_dir.clone();
    neosens_runtime::data_dir::prepare(&dir, "[storage] data_dir or NEOSENS_EDGE_DATA_DIR")?;
    let addr = listener.local_addr().context("reading the LAN listener's address")?;
    let cache = cache::Cache::open(&dir)?;
    let limits = outbox::Limits {
        max_messages: config.outbox.max_messages.max(1),
        max_age_ms: config.outbox.max_age_s.saturating_mul(1000),
    };
    let outbox = outbox::Outbox::open(cache.database(), limits)?;
    let sync_stats = Arc::new(sync::SyncStats::default());
    sync_stats.revision.store(cache.revision()?, std::sync::atomic::Ordering::Relaxed);
    let uplink_stats = Arc::new(uplink::UplinkStats::default());

    let creds = match credentials::GatewayCredentials::load(&dir) {
        Ok(c) => Some(c),
        Err(credentials::CredentialsError::Missing(path)) => {
            tracing::warn!(path = %path.display(), "not enrolled: serving from the cache only (neosens-edge enroll --central URL --token TOKEN)");
            None
        }
        Err(e) => return Err(e.into()),
    };
    // Statuses relayed in the gateway's name carry its stamp (central trusts their msg_id then).
    let outbox = match &creds {
        Some(c) => {
            let keys = c.keys().map_err(|e| anyhow::anyhow!("{}: {e}", credentials::FILE))?;
            outbox.stamped_by(&c.gateway_id, neosens_runtime::relay::RelayKey::derive(&keys))
        }
        None => outbox,
    };
    let forward_timeout = Duration::from_millis(config.central.timeout_ms.max(100));
    let mut central_client = None;
    let mut keys = None;
    let resync = Arc::new(tokio::sync::Notify::new());
    let mac = match &config.agent.mac {
        Some(m) => Some(
            m.parse::<neosens_protocol::Mac>().map_err(|e| anyhow::anyhow!("[agent] mac {m:?}: {e:?}"))?,
        ),
        None => status::detect_mac(),
    };
    let (orders_tx, orders_rx) = tokio::sync::mpsc::channel(64);
    let mut subscriber = None;
    if let Some(creds) = &creds {
        let url = config.central.url.clone().unwrap_or_else(|| creds.central_url.clone());
        let client = central::Central::new(&url, Some(creds.secret.clone()), forward_timeout)?;
        keys = Some(Arc::new(creds.keys().map_err(|e| anyhow::anyhow!("{}: {e}", credentials::FILE))?));
        let wait = Duration::from_secs(config.central.sync_wait_s.clamp(1, 60));
        tokio::spawn(sync::run(
            client.clone(),
            cache.clone(),
            Arc::clone(&sync_stats),
            wait,
            Arc::clone(&resync),
            shutdown.clone(),
        ));
        tokio::spawn(sync::report(client.clone(), cache.clone(), outbox.clone(), shutdown.clone()));
        tracing::info!(central = %url, gateway = %creds.name, "central configured");
        central_client = Some(client);
        match uplink_url(&config, creds)? {
            Some(url) => {
                // Orders: its room's command topic, once the first sync tells it (status module).
                let uplink_config = uplink::UplinkConfig {
                    url,
                    client_id: format!("neosens-edge-{}", creds.name),
                    subscriptions: Vec::new(),
                };
                let (sub, more) = uplink::Subscriber::channel();
                subscriber = Some(sub);
                tokio::spawn(uplink::run(
                    uplink_config,
                    outbox.clone(),
                    Arc::clone(&uplink_stats),
                    orders_tx,
                    more,
                    shutdown.clone(),
                ));
            }
            None => tracing::warn!(
                "no broker configured ([mqtt] url or NEOSENS_EDGE_MQTT_URL): the outbox keeps everything"
            ),
        }
    }
    let lora_stats = Arc::new(lorawan::LoraStats::default());
    let mut udp_addr = None;
    if let Some(keys) = &keys {
        let pipeline = Arc::new(lorawan::Pipeline::new(
            cache.clone(),
            Arc::clone(keys),
            outbox.clone(),
            Arc::clone(&lora_stats),
        ));
        if let Some(bind) = config.lorawan.udp_bind {
            let socket = tokio::net::UdpSocket::bind(bind).await.with_context(|| {
                format!("binding the packet-forwarder listener {bind} ([lorawan] udp_bind or NEOSENS_EDGE_UDP_BIND)")
            })?;
            udp_addr = Some(socket.local_addr()?);
            tokio::spawn(lorawan::run(socket, Arc::clone(&pipeline), shutdown.clone()));
        }
        if let Some(path) = &config.lorawan.serial_port {
            let protocol = lorawan::modem::protocol(&config.lorawan.serial_protocol).ok_or_else(|| {
                anyhow::anyhow!(
                    "[lorawan] serial_protocol {:?}: rn2483 or hex_lines",
                    config.lorawan.serial_protocol
                )
            })?;
            let port = lorawan::modem::open(path, config.lorawan.serial_baud).with_context(|| {
                format!("opening the LoRa modem {} ([lorawan] serial_port)", path.display())
            })?;
            let name = format!("serial:{}", path.display());
            tokio::spawn(lorawan::modem::run(port, protocol, pipeline, name, shutdown.clone()));
        }
    }
    hal::gateway::start(
        &config.hal,
        hal::gateway::Links {
            enrolled: creds.is_some(),
            sync: Arc::clone(&sync_stats),
            uplink: Arc::clone(&uplink_stats),
            cache: cache.clone(),
            outbox: outbox.clone(),
            mac,
        },
        &shutdown,
    )?;
    let status_sources = status::StatusSources {
        cache: cache.clone(),
        outbox: outbox.clone(),
        sync: Arc::clone(&sync_stats),
        uplink: Arc::clone(&uplink_stats),
        data_dir: dir.clone(),
        subscriber,
    };
    match mac {
        Some(mac) => {
            let period = Duration::from_secs(config.agent.status_period_s.max(10));
            tokio::spawn(status::run(
                status_sources,
                mac,
                period,
                config.agent.reboot_command.clone(),
                Arc::clone(&resync),
                orders_rx,
                shutdown.clone(),
            ));
        }
        None => {
            tracing::warn!("no MAC found for the gateway ([agent] mac): it publishes no status of its own")
        }
    }
    let build = neosens_runtime::build_info!();
    tracing::info!(
        http = %addr,
        udp = udp_addr.map(|a| a.to_string()),
        data_dir = %dir.display(),
        revision = cache.revision()?,
        devices = cache.device_count()?,
        enrolled = creds.is_some(),
        version = build.version,
        git = build.git,
        target = build.target,
        "neosens-edge serving"
    );
    let proxy = proxy::Proxy::new(cache.clone(), central_client, keys);
    let metrics = metrics::Sources {
        cache,
        outbox,
        sync: sync_stats,
        uplink: uplink_stats,
        proxy: proxy.clone(),
        lorawan: lora_stats,
    };
    let limits = config.http.limits();
    let app = http::router(http::AppState { config: Arc::new(config), proxy, metrics, scrape });
    neosens_runtime::systemd::Notifier::from_env().ready(shutdown.clone());
    neosens_runtime::http::serve(
        "LAN listener",
        listener,
        app,
        limits,
        Arc::default(),
        shutdown,
        DRAIN_DEADLINE,
    )
    .await?;
    tracing::info!("neosens-edge stopped");
    Ok(())
}
