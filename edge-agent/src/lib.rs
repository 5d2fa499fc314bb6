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
//! | [`uplink`] | the outbox on the runtime's acknowledged MQTT link; orders in |
//! | [`lorawan`] | Semtech UDP and serial modems: MIC, decryption, codecs, counters; class A downlinks (ACKs, MAC commands); packet-forwarder health |
//! | [`hal`] | the gateway's own hardware: status LED, I2C sensors |
//! | [`self_test`] | `self-test`: a build proves itself where it runs |
//! | [`status`] | the gateway as a device of its room: status and orders |
//! | [`update`] | agent updates: signed builds installed from campaigns, the launcher that rolls back |
//! | [`managed`] | settings from central, laid under the local file; reported; applied |
//! | [`metrics`], [`http`] | `/metrics`, `/healthz`, the LAN router |
//!
//! [`run`] is the whole agent given its bound listener and a shutdown token ([`run_on`] takes
//! the cache database too); its long-lived tasks run under `neosens_runtime::supervisor`, and
//! every write to the disk goes through the blocking pool (docs/architecture.md).

pub mod cache;
pub mod central;
pub mod cli;
pub mod config;
pub mod credentials;
pub mod firmware;
pub mod hal;
pub mod http;
pub mod local_broker;
pub mod lorawan;
pub mod managed;
pub mod metrics;
pub mod outbox;
pub mod proxy;
pub mod self_test;
pub mod status;
pub mod sync;
pub mod unclaimed;
pub mod update;
pub mod uplink;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use neosens_runtime::supervisor::Supervisor;
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

/// Opens the firmware cache (`<data_dir>/firmware`) and, once enrolled, the task that keeps it
/// in step with central (and takes up the builds of this gateway's agent updates), the build
/// reports, and a new build's health signal to the launcher.
async fn start_firmware_cache(
    config: &Config,
    links: &CentralLinks,
    mac: Option<neosens_protocol::Mac>,
    tasks: &mut Supervisor,
) -> anyhow::Result<firmware::FirmwareCache> {
    let (dir, settings) = (config.storage.data_dir.join("firmware"), config.firmware.clone());
    let cache = neosens_runtime::blocking::run(move || firmware::FirmwareCache::open(&dir, settings))
        .await
        .context("opening the firmware cache (<data_dir>/firmware)")?;
    if let Some(central) = &links.central {
        let key = config.update.key()?;
        let updater = update::Updater::new(&config.storage.data_dir, key, mac, tasks.shutdown().clone());
        let (f, c, stop) = (cache.clone(), central.clone(), tasks.shutdown().clone());
        tasks.restartable("firmware cache", move || {
            firmware::run(f.clone(), c.clone(), updater.clone(), stop.clone())
        });
        let (dir, c, stop) = (config.storage.data_dir.clone(), central.clone(), tasks.shutdown().clone());
        tasks
            .restartable("build reports", move || update::send_reports(dir.clone(), c.clone(), stop.clone()));
        let uplink = links.subscriber.is_some().then(|| Arc::clone(&links.uplink));
        let (sync, stop) = (Arc::clone(&links.sync), tasks.shutdown().clone());
        tasks.restartable("health signal", move || {
            update::signal_health(Arc::clone(&sync), uplink.clone(), stop.clone())
        });
    }
    Ok(cache)
}

/// Local-broker mode (docs/edge.md, "Remote sites"): the task that keeps the gateway's
/// Mosquitto in step with the registry copy, bridged to the uplink's broker with the gateway's
/// login. Restartable: it holds clones, and stops a Mosquitto left behind before starting one.
fn start_local_broker(
    config: &Config,
    storage: &Storage,
    links: &CentralLinks,
    state: &Arc<local_broker::LocalBroker>,
    tasks: &mut Supervisor,
) -> anyhow::Result<()> {
    config.local_broker.advertised()?;
    let Some(creds) = &storage.creds else { return Ok(()) };
    if config.local_broker.enabled == Some(false) {
        return Ok(());
    }
    // Without a bridge the site's devices would be cut off from central: no local broker then.
    let Some(url) = uplink_url(config, creds)? else { return Ok(()) };
    let (username, password) = url.credentials.clone().unwrap_or_default();
    let upstream =
        local_broker::Upstream { host: url.host, port: url.port, tls: url.tls, username, password };
    if let Err(e) = upstream.check() {
        tracing::error!(error = %e, "[mqtt] url: local-broker mode is unavailable");
        return Ok(());
    }
    let state = Arc::clone(state);
    let ctx = local_broker::Context {
        config: config.local_broker.clone(),
        dir: config.storage.data_dir.join("broker"),
        cache: storage.cache.clone(),
        sync: Arc::clone(&links.sync),
        upstream,
        state: Arc::clone(&state),
    };
    let stop = tasks.shutdown().clone();
    tasks.restartable("local broker", move || {
        let (ctx, stop) = (ctx.clone(), stop.clone());
        async move {
            if let Err(e) = local_broker::run(ctx, stop).await {
                tracing::error!(error = %e, "local broker");
            }
        }
    });
    Ok(())
}

/// Runs the agent on `listener` until `shutdown` is cancelled (or a critical task fails), then
/// drains for at most [`DRAIN_DEADLINE`], with the cache in `[storage] data_dir`.
pub async fn run(config: Config, listener: TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let dir = config.storage.data_dir.clone();
    let cache = neosens_runtime::blocking::run(move || -> anyhow::Result<cache::Cache> {
        neosens_runtime::data_dir::prepare(&dir, "[storage] data_dir or NEOSENS_EDGE_DATA_DIR")?;
        Ok(cache::Cache::open(&dir)?)
    })
    .await?;
    run_on(config, cache, listener, shutdown).await
}

/// [`run`] on a given cache database (tests put a slow or failing disk under the agent this
/// way). A table of contents: each step is a function below. `local` is the configuration of
/// the file and options; the agent runs with central's settings laid under it.
pub async fn run_on(
    local: Arc<Config>,
    cache: cache::Cache,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let (config, settings) = managed::start(&local, &cache).await?;
    let config = Arc::new(config);
    let addr = listener.local_addr().context("reading the LAN listener's address")?;
    let mut tasks = Supervisor::new(shutdown.clone());
    let app = match start(local, Arc::clone(&config), &settings, cache, addr, &mut tasks).await {
        Ok(app) => app,
        Err(e) => {
            // Settings from central this gateway cannot start with are set aside for the next
            // start; what did start stops (the local broker's Mosquitto saves its queue).
            managed::failed_at_start(&config.storage.data_dir, &settings, &e).await;
            shutdown.cancel();
            let _ = tasks.finish(DRAIN_DEADLINE).await;
            return Err(e);
        }
    };
    managed::started(&config.storage.data_dir, &settings).await;
    neosens_runtime::systemd::Notifier::from_env().ready(shutdown.clone());
    let served = neosens_runtime::http::serve(
        "LAN listener",
        listener,
        app,
        config.http.limits(),
        Arc::default(),
        shutdown.clone(),
        DRAIN_DEADLINE,
    )
    .await;
    shutdown.cancel();
    let finished = tasks.finish(DRAIN_DEADLINE).await;
    served?;
    finished?;
    tracing::info!("neosens-edge stopped");
    Ok(())
}

/// Opens the storage and starts every task under `tasks`; the LAN router to serve.
async fn start(
    local: Arc<Config>,
    config: Arc<Config>,
    settings: &Arc<managed::Settings>,
    cache: cache::Cache,
    addr: std::net::SocketAddr,
    tasks: &mut Supervisor,
) -> anyhow::Result<axum::Router> {
    let scrape = neosens_runtime::http::ScrapeToken::new(config.http.metrics_token.as_deref())
        .map_err(anyhow::Error::msg)?;
    let storage = open_storage(&config, cache).await?;
    // Shared by the LoRaWAN listener and the health reports (its packet forwarders), and by the
    // legacy proxy and the reports (unregistered MACs asked offline).
    let lorawan = Arc::new(lorawan::LoraStats::default());
    let unclaimed = Arc::new(unclaimed::UnclaimedHere::default());
    let local_broker = Arc::new(local_broker::LocalBroker::default());
    let reported = sync::Reported {
        lorawan: Arc::clone(&lorawan),
        unclaimed: Arc::clone(&unclaimed),
        local_broker: Arc::clone(&local_broker),
        settings: Arc::clone(settings),
    };
    let mut links = start_central_links(&config, &storage, reported, tasks)?;
    if links.central.is_some() {
        let (cache, sync, stop) = (storage.cache.clone(), Arc::clone(&links.sync), tasks.shutdown().clone());
        let settings = Arc::clone(settings);
        tasks.restartable("settings from central", move || {
            managed::follow(
                Arc::clone(&local),
                cache.clone(),
                Arc::clone(&settings),
                Arc::clone(&sync),
                stop.clone(),
            )
        });
    }
    let mac = gateway_mac(&config)?;
    let firmware = start_firmware_cache(&config, &links, mac, tasks).await?;
    let udp_addr = start_lorawan(&config, &storage, links.keys.as_ref(), &lorawan, tasks).await?;
    hal::gateway::start(
        &config.hal,
        hal::gateway::Links {
            enrolled: storage.creds.is_some(),
            sync: Arc::clone(&links.sync),
            uplink: Arc::clone(&links.uplink),
            cache: storage.cache.clone(),
            outbox: storage.outbox.clone(),
            mac,
        },
        tasks,
    )?;
    start_local_broker(&config, &storage, &links, &local_broker, tasks)?;
    let orders = route_orders(&storage, &mut links, &lorawan, tasks);
    start_status(&config, &storage, &links, orders, mac, tasks);
    log_serving(&config, addr, udp_addr, &storage)?;
    let proxy = proxy::Proxy::new(storage.cache.clone(), links.central, links.keys)
        .with_unclaimed(unclaimed)
        .with_local_broker(Arc::clone(&local_broker));
    let metrics = metrics::Sources {
        cache: storage.cache,
        outbox: storage.outbox,
        sync: links.sync,
        uplink: links.uplink,
        proxy: proxy.clone(),
        lorawan,
        tasks: tasks.health(),
        firmware: firmware.clone(),
        local_broker,
    };
    Ok(http::router(http::AppState { config, proxy, metrics, scrape, firmware }))
}

/// The gateway's disk: the cache, the outbox (stamped with the gateway's relay key once
/// enrolled) and the enrolment.
struct Storage {
    cache: cache::Cache,
    outbox: outbox::Outbox,
    creds: Option<credentials::GatewayCredentials>,
}

/// Opens the outbox in the cache's database and reads the enrolment, on the blocking pool (the
/// outbox commits its tables).
async fn open_storage(config: &Arc<Config>, cache: cache::Cache) -> anyhow::Result<Storage> {
    let config = Arc::clone(config);
    neosens_runtime::blocking::run(move || {
        let dir = &config.storage.data_dir;
        neosens_runtime::data_dir::prepare(dir, "[storage] data_dir or NEOSENS_EDGE_DATA_DIR")?;
        let limits = outbox::Limits {
            max_messages: config.outbox.max_messages.max(1),
            max_age_ms: config.outbox.max_age_s.saturating_mul(1000),
        };
        let outbox =
            outbox::Outbox::open(cache.database(), limits)?.with_journal(&dir.join(outbox::JOURNAL_FILE))?;
        let creds = match credentials::GatewayCredentials::load(dir) {
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
        Ok(Storage { cache, outbox, creds })
    })
    .await
}

/// What the links to central and its broker hand to the rest.
struct CentralLinks {
    central: Option<central::Central>,
    keys: Option<Arc<neosens_runtime::keys::Keys>>,
    sync: Arc<sync::SyncStats>,
    uplink: Arc<uplink::UplinkStats>,
    resync: Arc<tokio::sync::Notify>,
    subscriber: Option<uplink::Subscriber>,
    /// Orders from the uplink, for the status task (taken by it).
    orders: Option<tokio::sync::mpsc::Receiver<uplink::Inbound>>,
}

/// Once enrolled: the sync and the reports (restartable: they hold nothing but clones) and the
/// uplink that drains the outbox (critical: it owns the order channel).
fn start_central_links(
    config: &Config,
    storage: &Storage,
    reported: sync::Reported,
    tasks: &mut Supervisor,
) -> anyhow::Result<CentralLinks> {
    let sync_stats = Arc::new(sync::SyncStats::default());
    sync_stats.revision.store(storage.cache.revision()?, std::sync::atomic::Ordering::Relaxed);
    let (orders_tx, orders) = tokio::sync::mpsc::channel(64);
    let mut links = CentralLinks {
        central: None,
        keys: None,
        sync: sync_stats,
        uplink: Arc::new(uplink::UplinkStats::default()),
        resync: Arc::new(tokio::sync::Notify::new()),
        subscriber: None,
        orders: Some(orders),
    };
    let Some(creds) = &storage.creds else { return Ok(links) };
    let url = config.central.url.clone().unwrap_or_else(|| creds.central_url.clone());
    let forward_timeout = Duration::from_millis(config.central.timeout_ms.max(100));
    let client = central::Central::new(&url, Some(creds.secret.clone()), forward_timeout)?;
    links.keys = Some(Arc::new(creds.keys().map_err(|e| anyhow::anyhow!("{}: {e}", credentials::FILE))?));
    let wait = Duration::from_secs(config.central.sync_wait_s.clamp(1, 60));
    let (c, cache, stats, resync, stop) = (
        client.clone(),
        storage.cache.clone(),
        Arc::clone(&links.sync),
        Arc::clone(&links.resync),
        tasks.shutdown().clone(),
    );
    tasks.restartable("sync", move || {
        sync::run(c.clone(), cache.clone(), Arc::clone(&stats), wait, Arc::clone(&resync), stop.clone())
    });
    let (c, cache, outbox, stop) =
        (client.clone(), storage.cache.clone(), storage.outbox.clone(), tasks.shutdown().clone());
    tasks.restartable("reports", move || {
        sync::report(c.clone(), cache.clone(), outbox.clone(), reported.clone(), stop.clone())
    });
    tracing::info!(central = %url, gateway = %creds.name, "central configured");
    links.central = Some(client);
    match uplink_url(config, creds)? {
        Some(url) => {
            // Orders: its room's command topic, once the first sync tells it (status module).
            let uplink_config = uplink::UplinkConfig {
                url,
                client_id: format!("neosens-edge-{}", creds.name),
                subscriptions: Vec::new(),
            };
            let (sub, more) = uplink::Subscriber::channel();
            links.subscriber = Some(sub);
            let drain = uplink::run(
                uplink_config,
                storage.outbox.clone(),
                Arc::clone(&links.uplink),
                orders_tx,
                more,
                tasks.shutdown().clone(),
            );
            tasks.critical("uplink", drain);
        }
        None => tracing::warn!(
            "no broker configured ([mqtt] url or NEOSENS_EDGE_MQTT_URL): the outbox keeps everything"
        ),
    }
    Ok(links)
}

/// The packet-forwarder listener (critical: it owns the socket) and the serial modem
/// (restartable: a restart opens the port again, e.g. after the USB modem was replugged).
async fn start_lorawan(
    config: &Config,
    storage: &Storage,
    keys: Option<&Arc<neosens_runtime::keys::Keys>>,
    stats: &Arc<lorawan::LoraStats>,
    tasks: &mut Supervisor,
) -> anyhow::Result<Option<std::net::SocketAddr>> {
    let Some(keys) = keys else { return Ok(None) };
    let adr = config.lorawan.adr.then_some(f64::from(config.lorawan.adr_margin_db));
    let pipeline = Arc::new(
        lorawan::Pipeline::new(
            storage.cache.clone(),
            Arc::clone(keys),
            storage.outbox.clone(),
            Arc::clone(stats),
        )
        .with_adr(adr),
    );
    let mut udp_addr = None;
    if let Some(bind) = config.lorawan.udp_bind {
        let socket = tokio::net::UdpSocket::bind(bind).await.with_context(|| {
            format!(
                "binding the packet-forwarder listener {bind} ([lorawan] udp_bind or NEOSENS_EDGE_UDP_BIND)"
            )
        })?;
        udp_addr = Some(socket.local_addr()?);
        tasks.critical(
            "lorawan listener",
            lorawan::run(socket, Arc::clone(&pipeline), tasks.shutdown().clone()),
        );
    }
    if let Some(path) = &config.lorawan.serial_port {
        let protocol_name = config.lorawan.serial_protocol.clone();
        if lorawan::modem::protocol(&protocol_name).is_none() {
            anyhow::bail!("[lorawan] serial_protocol {protocol_name:?}: rn2483 or hex_lines");
        }
        let baud = config.lorawan.serial_baud;
        let first = lorawan::modem::open(path, baud)
            .with_context(|| format!("opening the LoRa modem {} ([lorawan] serial_port)", path.display()))?;
        let (path, stop, mut port) = (path.clone(), tasks.shutdown().clone(), Some(first));
        tasks.restartable("lora modem", move || {
            let port = port.take().map_or_else(|| lorawan::modem::open(&path, baud), Ok);
            let protocol = lorawan::modem::protocol(&protocol_name);
            let (pipeline, name, stop) =
                (Arc::clone(&pipeline), format!("serial:{}", path.display()), stop.clone());
            async move {
                match (port, protocol) {
                    (Ok(port), Some(protocol)) => {
                        lorawan::modem::run(port, protocol, pipeline, name, stop).await
                    }
                    (_, None) => {}
                    (Err(e), _) => tracing::warn!(modem = %name, error = %e, "opening the LoRa modem"),
                }
            }
        });
    }
    Ok(udp_addr)
}

/// Sorts what the uplink receives: node orders to the LoRaWAN queue, the rest to the gateway's
/// status task (critical: it owns the uplink's inbound channel); the status task's channel.
fn route_orders(
    storage: &Storage,
    links: &mut CentralLinks,
    lorawan: &Arc<lorawan::LoraStats>,
    tasks: &mut Supervisor,
) -> Option<tokio::sync::mpsc::Receiver<uplink::Inbound>> {
    let inbound = links.orders.take()?;
    let (to_status, orders) = tokio::sync::mpsc::channel(64);
    let route = lorawan::commands::route(
        inbound,
        to_status,
        storage.cache.clone(),
        Arc::clone(lorawan),
        links.subscriber.clone(),
        Arc::clone(&links.sync),
        tasks.shutdown().clone(),
    );
    tasks.critical("order routing", route);
    Some(orders)
}

/// `[agent] mac`, or the MAC of the gateway's interface.
pub fn gateway_mac(config: &Config) -> anyhow::Result<Option<neosens_protocol::Mac>> {
    match &config.agent.mac {
        Some(m) => Ok(Some(
            m.parse::<neosens_protocol::Mac>().map_err(|e| anyhow::anyhow!("[agent] mac {m:?}: {e:?}"))?,
        )),
        None => Ok(status::detect_mac()),
    }
}

/// The gateway as a device of its room (critical: it owns the order channel).
fn start_status(
    config: &Config,
    storage: &Storage,
    links: &CentralLinks,
    orders: Option<tokio::sync::mpsc::Receiver<uplink::Inbound>>,
    mac: Option<neosens_protocol::Mac>,
    tasks: &mut Supervisor,
) {
    let (Some(mac), Some(orders)) = (mac, orders) else {
        return tracing::warn!(
            "no MAC found for the gateway ([agent] mac): it publishes no status of its own"
        );
    };
    let sources = status::StatusSources {
        cache: storage.cache.clone(),
        outbox: storage.outbox.clone(),
        sync: Arc::clone(&links.sync),
        uplink: Arc::clone(&links.uplink),
        data_dir: config.storage.data_dir.clone(),
        subscriber: links.subscriber.clone(),
    };
    let period = Duration::from_secs(config.agent.status_period_s.max(10));
    let run = status::run(
        sources,
        mac,
        period,
        config.agent.reboot_command.clone(),
        Arc::clone(&links.resync),
        orders,
        tasks.shutdown().clone(),
    );
    tasks.critical("gateway status", run);
}

fn log_serving(
    config: &Config,
    addr: std::net::SocketAddr,
    udp_addr: Option<std::net::SocketAddr>,
    storage: &Storage,
) -> anyhow::Result<()> {
    let build = neosens_runtime::build_info!();
    tracing::info!(
        http = %addr,
        udp = udp_addr.map(|a| a.to_string()),
        data_dir = %config.storage.data_dir.display(),
        revision = storage.cache.revision()?,
        devices = storage.cache.device_count()?,
        enrolled = storage.creds.is_some(),
        version = build.version,
        git = build.git,
        target = build.target,
        "neosens-edge serving"
    );
    Ok(())
}
