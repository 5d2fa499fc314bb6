//! neosens central: the registry of sites, buildings, rooms, device types, devices and gateways
//! of a campus IoT fleet, and every interface around it.
//!
//! ## Layout
//!
//! | module | role |
//! |---|---|
//! | [`cli`] | command line: global options (each with an environment variable) and subcommands |
//! | [`config`] | typed configuration: TOML file, then command line / environment on top |
//! | [`model`] | the stored records (postcard, never a JSON body): sites, buildings, rooms, device types, devices, gateways, users, alerts |
//! | [`registry`] | the records in memory, the rules, every change committed through the store first |
//! | [`store`] | persistence behind a trait (redb today): atomic batches, change log, histories |
//! | [`secrets`] | server keys: HMAC hashes of secrets, AES-GCM sealing, tokens |
//! | [`audit`] | the audit trail: who changed what, when, fields before and after; the actor of the current work |
//! | [`directory`] | dashboard sign-in against the university's LDAP directory, groups mapped to roles |
//! | [`bulk`] | bulk operations on devices: confirmed once, paced orders, each device's outcome recorded |
//! | [`bootstrap`] | the first admin's token or password, handed over once |
//! | [`http`] | the routers: legacy device paths, `/api/v1` (OpenAPI; its JSON forms in `http::api::schema`, apart from the registry's plain values), broker auth, dashboard, health |
//! | [`broker`] | the MQTT link, the embedded default broker, Mosquitto dynamic security |
//! | [`ingest`] | device statuses from MQTT, checked, deduplicated and stored in batches |
//! | [`monitor`] | outdated devices, alerts (tracker, deadlines, webhook) |
//! | [`gateway_health`] | what each gateway last reported |
//! | [`unclaimed`] | the adoption inbox: unregistered MACs that asked for credentials |
//! | [`firmware`] | firmware images, campaigns in waves, the legacy update check (`/images/…`) |
//! | [`metrics`] | `/metrics`: bounded label sets only |
//! | [`import_legacy`] | `import-legacy`: the 2016 sensOCampus database, from a `dumpdata` export |
//! | `otel` (feature `otel`) | OpenTelemetry export of the spans over OTLP/HTTP |
//!
//! Shutdown, logging, the supervisor of long-lived tasks, the one path to the disk (the blocking
//! pool) and data-directory checks come from `neosens-runtime`, shared with the edge agent
//! (docs/architecture.md).
//!
//! [`run`] is the whole service given a bound listener and a shutdown token: `main` binds the
//! configured address, tests bind `127.0.0.1:0`; [`run_on`] takes the store too.

pub mod agent_key;
pub mod audit;
pub mod bootstrap;
pub mod broker;
pub mod bulk;
pub mod cli;
pub mod config;
pub mod directory;
pub mod firmware;
pub mod gateway_health;
pub mod http;
pub mod import_legacy;
pub mod ingest;
pub mod leader;
mod leader_tasks;
pub mod metrics;
pub mod model;
pub mod monitor;
#[cfg(feature = "otel")]
pub mod otel;
pub mod registry;
pub mod secrets;
pub mod store;
pub mod store_tools;
pub mod unclaimed;

use std::time::Duration;

use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::Config;

/// How long in-flight requests may take to finish once shutdown starts.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

/// Runs central on `listener` until `shutdown` is cancelled (or a critical task fails), then
/// drains for at most [`DRAIN_DEADLINE`], with the store of `[storage] data_dir`.
pub async fn run(config: Config, listener: TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let opening = Arc::clone(&config);
    let store = neosens_runtime::blocking::run(move || open_store(&opening)).await?;
    run_on(config, store, listener, shutdown).await
}

/// [`run`] on a given store (tests put a slow or failing disk under central this way). A table
/// of contents: each step is a function below.
pub async fn run_on(
    config: Arc<Config>,
    store: Arc<dyn store::Store>,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let scrape = neosens_runtime::http::ScrapeToken::new(config.http.metrics_token.as_deref())
        .map_err(anyhow::Error::msg)?;
    let device_networks = Arc::new(config.alerts.networks().map_err(anyhow::Error::msg)?);
    let registry = start_registry(&config, Arc::clone(&store)).await?;
    let bulk = {
        let store = Arc::clone(&store);
        neosens_runtime::blocking::run(move || bulk::BulkOps::open(store))
            .await
            .context("loading bulk operations")?
    };
    let firmware = open_firmware(&config, Arc::clone(&store)).await?;
    let broker_listener = bind_broker_auth(&config).await?;
    let mut tasks = neosens_runtime::supervisor::Supervisor::new(shutdown.clone());
    let mut leadership = leader::start(&store, leader_tasks::takeover(&firmware, &bulk), &mut tasks);
    // Alone on its database, a process leads before it serves (a few ms: one lock attempt).
    leadership.decided(Duration::from_secs(3)).await;
    let link = start_broker_link(&replica_mqtt(&config, leadership.is_shared()), &registry, &mut tasks)?;
    log_serving(&config, &listener, broker_listener.as_ref(), &link);
    let pipelines =
        start_pipelines(&config, &registry, &firmware, link, leadership.clone(), &mut tasks).await?;
    leader_tasks::start_campaign_schedule(&firmware, &registry, &pipelines.mqtt, &leadership, &mut tasks);
    let (r, stop) = (Arc::clone(&registry), tasks.shutdown().clone());
    tasks.restartable("replica follower", move || {
        registry::follow_other_replicas(Arc::clone(&r), stop.clone())
    });
    leader_tasks::start_bulk_sender(&bulk, &registry, &pipelines.mqtt, &leadership, &mut tasks);
    // Reads the CA and password files and the system's roots: on the blocking pool.
    let directory = match config.ldap.clone() {
        Some(ldap) => {
            Some(Arc::new(neosens_runtime::blocking::run(move || directory::Directory::new(&ldap)).await?))
        }
        None => None,
    };
    let state = http::AppState {
        leadership,
        bulk,
        directory,
        sessions: Arc::new(if store.shared() {
            http::Sessions::shared(&config.auth, Arc::clone(&store))
        } else {
            http::Sessions::new(&config.auth)
        }),
        scans: Arc::new(http::Throttle::new(http::SCAN_POLICY)),
        unclaimed: pipelines.unclaimed,
        scrape,
        notices: pipelines.notices,
        boots: pipelines.boots,
        device_networks,
        passwords: neosens_runtime::workers::Workers::start(
            "password",
            http::PASSWORD_THREADS,
            http::PASSWORDS_WAITING,
        )
        .context("starting the password-check threads")?,
        metrics: pipelines.metrics,
        config,
        registry,
        firmware,
        mqtt: pipelines.mqtt,
        monitor: pipelines.monitor,
        gateways: pipelines.gateways,
        tasks: tasks.health(),
    };
    neosens_runtime::systemd::Notifier::from_env().ready(shutdown.clone());
    let served = serve(state, listener, broker_listener, pipelines.connections, shutdown.clone()).await;
    // Also on a listener error: stop the tasks (the last batch of statuses is written).
    shutdown.cancel();
    let finished = tasks.finish(DRAIN_DEADLINE).await;
    served?;
    finished?;
    tracing::info!("neosens-central stopped");
    Ok(())
}

/// Opens the registry (on the blocking pool: it reads the whole store) and hands the first
/// admin's token or password over when it creates them.
async fn start_registry(
    config: &Arc<Config>,
    store: Arc<dyn store::Store>,
) -> anyhow::Result<Arc<registry::Registry>> {
    let config = Arc::clone(config);
    neosens_runtime::blocking::run(move || {
        let registry = open_registry_on(&config, store)?;
        let token = registry.bootstrap_admin(config.auth.admin_token.as_deref())?;
        let password = registry.bootstrap_user(config.auth.admin_password.as_deref())?;
        if token.is_some() || password.is_some() {
            bootstrap::hand_over(&config.storage.data_dir, token.as_deref(), password.as_deref())?;
        }
        registry.reserve_logins(&config.mqtt.reserved_logins);
        registry.accept_gateway_api_secrets(config.mqtt.accept_gateway_api_secrets);
        Ok(registry)
    })
    .await
}

/// Opens the firmware images and campaigns (`<data_dir>/firmware`), on the blocking pool.
async fn open_firmware(
    config: &Arc<Config>,
    store: Arc<dyn store::Store>,
) -> anyhow::Result<firmware::Firmware> {
    let dir = config.storage.data_dir.join("firmware");
    let settings = config.firmware.clone();
    neosens_runtime::blocking::run(move || firmware::Firmware::open(&dir, store, settings))
        .await
        .context("opening the firmware images (<data_dir>/firmware)")
}

/// The MQTT settings of this process: replicas sharing a store each connect to the broker with
/// a client id of their own (one connection per id: the broker would disconnect the other).
fn replica_mqtt(config: &Config, shared: bool) -> Config {
    let mut config = config.clone();
    if shared && config.mqtt.url.is_some() {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        config.mqtt.client_id =
            format!("{}-{:x}-{:x}", config.mqtt.client_id, std::process::id(), nanos.subsec_nanos() & 0xffff);
    }
    config
}

/// The separate broker-auth listener, when `[broker_auth] bind` asks for one.
async fn bind_broker_auth(config: &Config) -> anyhow::Result<Option<TcpListener>> {
    let Some(bind) = config.broker_auth.bind else { return Ok(None) };
    let listener = TcpListener::bind(bind).await.with_context(|| {
        format!(
            "binding the broker-auth listener on {bind} (set [broker_auth] bind or NEOSENS_BROKER_AUTH_BIND)"
        )
    })?;
    Ok(Some(listener))
}

/// Connects to the broker (starting the embedded one without a URL); its event loop is critical.
fn start_broker_link(
    config: &Config,
    registry: &Arc<registry::Registry>,
    tasks: &mut neosens_runtime::supervisor::Supervisor,
) -> anyhow::Result<broker::BrokerLink> {
    let mut link = broker::connect(&config.mqtt, registry, tasks.shutdown().clone())?;
    let event_loop = std::mem::replace(&mut link.event_loop, Box::pin(async {}));
    tasks.critical("mqtt link", event_loop);
    let shadowed = registry.devices_with_reserved_logins();
    if !shadowed.is_empty() {
        tracing::warn!(
            count = shadowed.len(),
            logins = ?shadowed.iter().take(10).collect::<Vec<_>>(),
            "devices have logins reserved for service accounts: they cannot connect until re-registered with another login"
        );
    }
    Ok(link)
}

fn log_serving(
    config: &Config,
    listener: &TcpListener,
    broker_listener: Option<&TcpListener>,
    link: &broker::BrokerLink,
) {
    let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let broker_auth =
        broker_listener.and_then(|l| l.local_addr().ok()).map_or_else(|| addr.clone(), |a| a.to_string());
    let build = neosens_runtime::build_info!();
    tracing::info!(
        http = %addr,
        broker_auth = %broker_auth,
        mqtt = %link.address,
        embedded_broker = link.embedded,
        data_dir = %config.storage.data_dir.display(),
        version = build.version,
        git = build.git,
        target = build.target,
        "neosens-central serving"
    );
    telemetry_note(&config.telemetry);
}

/// What the MQTT pipelines hand to the HTTP side.
struct Pipelines {
    mqtt: neosens_runtime::mqtt::MqttHandle,
    monitor: monitor::Monitor,
    notices: tokio::sync::mpsc::Sender<monitor::Notice>,
    boots: tokio::sync::mpsc::Sender<neosens_protocol::ids::DeviceId>,
    gateways: gateway_health::GatewayHealth,
    unclaimed: unclaimed::Unclaimed,
    metrics: Arc<metrics::Metrics>,
    connections: Arc<neosens_runtime::http::ConnectionStats>,
}

/// Starts what follows the broker and the registry — the splitter of inbound messages, status
/// ingestion, the monitor, dynamic security — all critical: without one of them central would
/// answer requests while silently no longer doing its job.
async fn start_pipelines(
    config: &Config,
    registry: &Arc<registry::Registry>,
    firmware: &firmware::Firmware,
    link: broker::BrokerLink,
    leadership: leader::Leadership,
    tasks: &mut neosens_runtime::supervisor::Supervisor,
) -> anyhow::Result<Pipelines> {
    let shutdown = tasks.shutdown().clone();
    // One reader of the link, two consumers: the plug-in's answers and everything else.
    let (status_tx, status_rx) = tokio::sync::mpsc::channel(10_000);
    let (control_tx, control_rx) = tokio::sync::mpsc::channel(100);
    let state = listen_shared_state(config, (&link.handle, link.embedded), &leadership, tasks).await?;
    tasks.critical("inbound splitter", split_inbound(link.inbound, status_tx, control_tx, state));
    // Read at start, before any task runs: the monitor's alerts come from the store.
    let store = registry.alert_store();
    let monitor = neosens_runtime::blocking::run(move || monitor::Monitor::open(store)).await?;
    let (seen_tx, seen_rx) = tokio::sync::mpsc::channel(64);
    let webhook = start_webhook(config, tasks);
    let delivery = monitor::Delivery {
        link: link.handle.clone(),
        topic: config.alerts.mqtt_topic.clone(),
        webhook: webhook.clone(),
    };
    let (notices, notices_rx) = tokio::sync::mpsc::channel(monitor::NOTICE_QUEUE);
    let (boots, boots_rx) = tokio::sync::mpsc::channel(monitor::BOOT_QUEUE);
    // What gateways report of themselves: the API and metrics read it, the monitor watches
    // their packet forwarders in it.
    let gateways = gateway_health::GatewayHealth::default();
    let inputs = monitor::Inputs {
        seen: seen_rx,
        notices: notices_rx,
        gateways: gateways.clone(),
        boots: boots_rx,
        reboot_loop: config.alerts.reboot_loop.clone(),
        site_disconnected_after_ms: i64::from(config.alerts.site_disconnected_after_min.max(1)) * 60_000,
    };
    let follow = monitor::run(
        Arc::clone(registry),
        monitor.clone(),
        inputs,
        delivery,
        leadership.clone(),
        shutdown.clone(),
    );
    tasks.critical("monitor", follow);
    let ingest_stats = start_ingestion(
        config,
        registry,
        (&link.handle, link.embedded),
        status_rx,
        seen_tx,
        &leadership,
        tasks,
    );
    start_dynsec(
        config,
        registry,
        (&link.handle, link.username.as_deref(), link.embedded),
        control_rx,
        leadership,
        tasks,
    )?;
    let connections = Arc::new(neosens_runtime::http::ConnectionStats::default());
    let unclaimed = unclaimed::Unclaimed::default();
    let metrics = Arc::new(metrics::Metrics::new(
        metrics::Sources {
            link: link.handle.clone(),
            ingest: ingest_stats,
            registry: Arc::clone(registry),
            monitor: monitor.clone(),
            webhook: webhook.map(|w| w.stats),
            gateways: gateways.clone(),
            unclaimed: unclaimed.clone(),
            connections: Arc::clone(&connections),
            firmware: firmware.clone(),
        },
        tasks.health(),
    ));
    Ok(Pipelines { mqtt: link.handle, monitor, notices, boots, gateways, unclaimed, metrics, connections })
}

/// Replicas sharing a store share central's state topic: each keeps it `online` (a task of its
/// own, critical). `None` for a central alone on its store or on the embedded broker.
async fn listen_shared_state(
    config: &Config,
    (link, embedded): (&neosens_runtime::mqtt::MqttHandle, bool),
    leadership: &leader::Leadership,
    tasks: &mut neosens_runtime::supervisor::Supervisor,
) -> anyhow::Result<Option<broker::state::SharedState>> {
    if !leadership.is_shared() || embedded {
        return Ok(None);
    }
    let topic = config.mqtt.state_topic.clone();
    let (state, answering) =
        broker::state::SharedState::listen(topic, link.clone(), tasks.shutdown().clone()).await?;
    tasks.critical("shared state", answering);
    Ok(Some(state))
}

/// Status ingestion (critical) and, with replicas sharing a store, the follower of the
/// statuses the others ingested: each status reaches one replica (an MQTT shared
/// subscription), every replica reads the others' from the store.
fn start_ingestion(
    config: &Config,
    registry: &Arc<registry::Registry>,
    (link, embedded): (&neosens_runtime::mqtt::MqttHandle, bool),
    statuses: tokio::sync::mpsc::Receiver<neosens_runtime::mqtt::Message>,
    seen: tokio::sync::mpsc::Sender<Vec<monitor::Seen>>,
    leadership: &leader::Leadership,
    tasks: &mut neosens_runtime::supervisor::Supervisor,
) -> Arc<ingest::IngestStats> {
    let stats = Arc::new(ingest::IngestStats::default());
    let group = (leadership.is_shared() && !embedded).then(|| config.mqtt.shared_group.clone());
    let (r, s, stop) = (Arc::clone(registry), seen.clone(), tasks.shutdown().clone());
    tasks.restartable("status follower", move || {
        registry::follow_statuses(Arc::clone(&r), s.clone(), stop.clone())
    });
    let ingest = ingest::run(
        Arc::clone(registry),
        link.clone(),
        statuses,
        Arc::clone(&stats),
        seen,
        group,
        tasks.shutdown().clone(),
    );
    tasks.critical("status ingestion", ingest);
    stats
}

/// The dynamic-security driver (critical), when `[mqtt] dynamic_security` asks for it and the
/// broker is Mosquitto; the plug-in's answers (`control`) are dropped otherwise.
fn start_dynsec(
    config: &Config,
    registry: &Arc<registry::Registry>,
    (link, username, embedded): (&neosens_runtime::mqtt::MqttHandle, Option<&str>, bool),
    control: tokio::sync::mpsc::Receiver<neosens_runtime::mqtt::Message>,
    leadership: leader::Leadership,
    tasks: &mut neosens_runtime::supervisor::Supervisor,
) -> anyhow::Result<()> {
    match (username, config.mqtt.dynamic_security && !embedded) {
        (Some(user), true) => {
            let dynsec = broker::dynsec::run(
                Arc::clone(registry),
                link.clone(),
                control,
                user.to_owned(),
                leadership,
                tasks.shutdown().clone(),
            );
            tasks.critical("dynamic security", dynsec);
            Ok(())
        }
        (None, true) => anyhow::bail!(
            "dynamic security needs central's admin login in the broker URL (mqtt://user:password@host:port)"
        ),
        _ => Ok(()),
    }
}

/// The alert webhook and its delivery worker (critical), when `[alerts] webhook_url` is set.
fn start_webhook(
    config: &Config,
    tasks: &mut neosens_runtime::supervisor::Supervisor,
) -> Option<monitor::webhook::Webhook> {
    let url = config.alerts.webhook_url.as_ref()?;
    let (hook, worker) = monitor::webhook::Webhook::new(
        monitor::webhook::WebhookConfig {
            url: url.clone(),
            timeout: Duration::from_secs(config.alerts.webhook_timeout_s.max(1)),
            attempts: config.alerts.webhook_attempts.max(1),
            first_backoff: Duration::from_secs(1),
        },
        tasks.shutdown().clone(),
    );
    tasks.critical("alert webhook", worker);
    Some(hook)
}

/// Sends `$CONTROL/…` answers to dynamic security, the shared state topic's messages to
/// `state` (replicas only), and everything else to ingestion.
async fn split_inbound(
    mut inbound: tokio::sync::mpsc::Receiver<neosens_runtime::mqtt::Message>,
    statuses: tokio::sync::mpsc::Sender<neosens_runtime::mqtt::Message>,
    control: tokio::sync::mpsc::Sender<neosens_runtime::mqtt::Message>,
    state: Option<broker::state::SharedState>,
) {
    while let Some(message) = inbound.recv().await {
        if let Some(state) = state.as_ref().filter(|s| s.owns(&message)) {
            state.read(&message);
        } else if message.topic.starts_with("$CONTROL/") {
            // Without dynamic security nobody listens there: dropped.
            let _ = control.send(message).await;
        } else if statuses.send(message).await.is_err() {
            break;
        }
    }
}

/// Serves the HTTP listener, and the broker-auth one when it is separate, until `shutdown`.
async fn serve(
    state: http::AppState,
    listener: TcpListener,
    broker_listener: Option<TcpListener>,
    connections: Arc<neosens_runtime::http::ConnectionStats>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let limits = state.config.http.limits();
    let app = http::router(state.clone(), broker_listener.is_some());
    let main = neosens_runtime::http::serve(
        "HTTP listener",
        listener,
        app,
        limits.clone(),
        connections,
        shutdown.clone(),
        DRAIN_DEADLINE,
    );
    let Some(l) = broker_listener else { return Ok(main.await?) };
    let auth_router = http::broker_auth_router(state);
    let broker = neosens_runtime::http::serve(
        "broker-auth listener",
        l,
        auth_router,
        limits,
        Arc::default(),
        shutdown,
        DRAIN_DEADLINE,
    );
    let (a, b) = tokio::join!(main, broker);
    a?;
    Ok(b?)
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

/// Opens the data directory and the store: PostgreSQL when `[storage] database_url` is set
/// (migrated to this build's schema), else the embedded database in the data directory.
pub fn open_store(config: &Config) -> anyhow::Result<Arc<dyn store::Store>> {
    let dir = &config.storage.data_dir;
    neosens_runtime::data_dir::prepare(dir, "[storage] data_dir or NEOSENS_DATA_DIR")?;
    match store_tools::pg_options(config) {
        Some(options) => {
            Ok(Arc::new(store::PgStore::connect(&options).map_err(|e| {
                anyhow::anyhow!("{e} (check [storage] database_url or NEOSENS_DATABASE_URL)")
            })?))
        }
        None => Ok(Arc::new(store::RedbStore::open(dir)?)),
    }
}

/// Opens the data directory, the keys, the store and the registry.
pub fn open_registry(config: &Config) -> anyhow::Result<Arc<registry::Registry>> {
    open_registry_on(config, open_store(config)?)
}

/// Opens the keys (in the data directory) and the registry on `store`.
pub fn open_registry_on(
    config: &Config,
    store: Arc<dyn store::Store>,
) -> anyhow::Result<Arc<registry::Registry>> {
    let dir = &config.storage.data_dir;
    neosens_runtime::data_dir::prepare(dir, "[storage] data_dir or NEOSENS_DATA_DIR")?;
    let started = std::time::Instant::now();
    let keys = Arc::new(open_keys(dir, store.as_ref())?);
    store.set_audit_retention(config.audit.retention());
    let registry = Arc::new(registry::Registry::open(store, keys)?);
    registry.set_history(config.history.clone());
    tracing::info!(
        devices = registry.device_count(),
        revision = registry.revision(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "registry loaded"
    );
    Ok(registry)
}

/// Opens (or creates) the server keys of `dir` and checks them against those `store` was
/// written with (replicas on one database must all have the same `keys/`).
pub fn open_keys(dir: &std::path::Path, store: &dyn store::Store) -> anyhow::Result<secrets::ServerKeys> {
    let keys = secrets::ServerKeys::load_or_create(dir)?;
    if !store.check_keys(&keys.hash(KEY_CHECK_INPUT))? {
        anyhow::bail!(
            "the server keys in {} are not those the database was written with: give every replica \
             the same keys/ folder (hash.key and seal.key of the first one), then start again",
            dir.join("keys").display()
        );
    }
    Ok(keys)
}

/// What the keys' check value is the keyed hash of (never a secret of any record).
const KEY_CHECK_INPUT: &[u8] = b"neosens server keys check v1";
