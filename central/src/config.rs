//! Configuration: typed, defaulted, documented, layered.
//!
//! Layers, lowest first: built-in defaults, the TOML file (`--config FILE`), then command-line
//! options, each of which also reads an environment variable (`NEOSENS_DATA_DIR` …), so tools and
//! tests start the binary without writing files. Unknown keys in the file are errors: a typo must
//! not silently fall back to a default.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub use neosens_runtime::config_file::ConfigError;
use neosens_runtime::config_file::quoted;
use neosens_runtime::telemetry::LogConfig;
use serde::{Deserialize, Serialize};

/// Everything central reads at start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where data lives.
    pub storage: StorageConfig,
    /// The HTTP listener.
    pub http: HttpConfig,
    /// Access to the admin API.
    pub auth: AuthConfig,
    /// The broker's authentication backend.
    pub broker_auth: BrokerAuthConfig,
    /// The MQTT link.
    pub mqtt: MqttConfig,
    /// Alerts.
    pub alerts: AlertsConfig,
    /// Logging.
    pub log: LogConfig,
    /// Trace export.
    pub telemetry: TelemetryConfig,
    /// Firmware images.
    pub firmware: crate::firmware::FirmwareConfig,
    /// The audit trail.
    pub audit: AuditConfig,
    /// Each device's status history.
    pub history: crate::registry::HistoryConfig,
    /// Dashboard sign-in against the university's directory; unset, local accounts only.
    pub ldap: Option<crate::directory::LdapConfig>,
}

/// `[audit]`: how much of the audit trail is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// Entries kept at most (the oldest go first); at least 1.
    pub max_entries: u64,
    /// Entries older than this many days are removed.
    pub max_age_days: u32,
}

impl Default for AuditConfig {
    fn default() -> Self {
        let d = crate::audit::AuditRetention::default();
        AuditConfig { max_entries: d.max_entries, max_age_days: d.max_age_days }
    }
}

impl AuditConfig {
    /// As the store takes it.
    pub fn retention(&self) -> crate::audit::AuditRetention {
        crate::audit::AuditRetention { max_entries: self.max_entries.max(1), max_age_days: self.max_age_days }
    }
}

/// `[telemetry]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Base URL of an OpenTelemetry collector's OTLP/HTTP receiver (`http://collector:4318`;
    /// spans go to `…/v1/traces`). `OTEL_EXPORTER_OTLP_ENDPOINT` wins over it. Used only by
    /// builds with the `otel` feature; others say at start that they ignore it.
    pub otlp_endpoint: Option<String>,
}

/// `[mqtt]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttConfig {
    /// The broker, `mqtt://[user:password@]host:port` or `mqtts://…`. Unset: central starts its
    /// embedded broker (for trying neosens, not for production).
    pub url: Option<String>,
    /// Central's MQTT client id.
    pub client_id: String,
    /// Retained `online`/`offline` state of central.
    pub state_topic: String,
    /// Where the embedded broker listens when no `url` is set: loopback by default (it enforces
    /// no topic ACLs); `0.0.0.0:1883` lets devices of the LAN in, for a trial.
    pub embedded_bind: SocketAddr,
    /// Drive the broker's dynamic-security plug-in (central's login must be its admin).
    pub dynamic_security: bool,
    /// Broker logins no device may have, besides central's own and `gw-*` (the broker's admin,
    /// monitoring or bridge users).
    pub reserved_logins: Vec<String>,
    /// Let gateways log in to the broker with their API secret too (agents older than their
    /// own MQTT passwords), while a fleet is upgraded; off by default.
    pub accept_gateway_api_secrets: bool,
    /// The shared-subscription group of replicas sharing one database: each status goes to one
    /// of them (`$share/<group>/…`). Unused by a central alone on its store.
    pub shared_group: String,
}

/// Logins reserved by default: the names broker administrators give their own accounts.
pub const DEFAULT_RESERVED_LOGINS: [&str; 3] = ["admin", "root", "mosquitto"];

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            url: None,
            client_id: "neosens-central".into(),
            state_topic: "neosens/central/state".into(),
            embedded_bind: SocketAddr::from(([127, 0, 0, 1], 1883)),
            dynamic_security: false,
            reserved_logins: DEFAULT_RESERVED_LOGINS.iter().map(|l| (*l).to_owned()).collect(),
            accept_gateway_api_secrets: false,
            shared_group: "neosens-central".into(),
        }
    }
}

/// Private and local networks (RFC 1918, loopback, IPv6 unique-local and link-local): where a
/// campus's devices are unless told otherwise; a first password to a public address is news.
pub const DEFAULT_DEVICE_NETWORKS: [&str; 7] =
    ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "::1/128", "fc00::/7", "fe80::/10"];

/// `[alerts]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    /// MQTT topic on which alert changes are published (JSON).
    pub mqtt_topic: String,
    /// URL that receives each alert change as a JSON POST.
    pub webhook_url: Option<String>,
    /// Seconds allowed to each webhook attempt.
    pub webhook_timeout_s: u64,
    /// Attempts per alert (back-off 1 s, 2 s, 4 s … between them).
    pub webhook_attempts: u32,
    /// The networks devices ask for their credentials from (CIDR): a first password handed to
    /// an address outside them raises a `foreign_delivery` alert. Empty: no such alert.
    pub device_networks: Vec<String>,
    /// What makes a reboot loop (`[alerts.reboot_loop]`), per device type too.
    pub reboot_loop: crate::monitor::RebootLoopConfig,
    /// Minutes a gateway in local-broker mode may be out of touch (its site "disconnected", its
    /// devices' outages held) before a `site_disconnected` alert opens.
    pub site_disconnected_after_min: u32,
}

impl AlertsConfig {
    /// [`Self::device_networks`], parsed; the error names the entry to fix.
    pub fn networks(&self) -> Result<Vec<ipnet::IpNet>, String> {
        self.device_networks
            .iter()
            .map(|n| {
                n.trim().parse::<ipnet::IpNet>().or_else(|_| n.trim().parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| format!("[alerts] device_networks: {n:?} is not a network (10.0.0.0/8, fd00::/8) nor an address"))
            })
            .collect()
    }
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            mqtt_topic: "neosens/alerts".into(),
            webhook_url: None,
            webhook_timeout_s: 5,
            webhook_attempts: 5,
            device_networks: DEFAULT_DEVICE_NETWORKS.iter().map(|n| (*n).to_owned()).collect(),
            reboot_loop: crate::monitor::RebootLoopConfig::default(),
            site_disconnected_after_min: 60,
        }
    }
}

/// `[broker_auth]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerAuthConfig {
    /// A listener of its own for `/mqtt/*` and `/mqtt_auth/*` (e.g. `127.0.0.1:8081`), on an
    /// address only the broker reaches. Unset: they are served on the main HTTP listener, to
    /// loopback peers only unless `public`.
    pub bind: Option<SocketAddr>,
    /// Without `bind`, answer the broker-auth paths on the main listener to any peer (a broker on
    /// another host), not only loopback ones. Service accounts are still only answered to
    /// loopback peers: give a remote broker a `bind` of its own instead where possible.
    pub public: bool,
}

/// `[auth]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// A bootstrap admin token, registered at start. Without it, an admin token is generated on
    /// first start and printed once.
    pub admin_token: Option<String>,
    /// Password of the dashboard user `admin`, created at start when no user exists. Without
    /// it, a password is generated on first start and printed once.
    pub admin_password: Option<String>,
    /// A dashboard session ends after this many minutes without a request.
    pub session_idle_minutes: u32,
    /// Mark the session cookie `Secure` (only sent over HTTPS): set it when central is behind
    /// a TLS proxy.
    pub secure_cookie: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            admin_token: None,
            admin_password: None,
            session_idle_minutes: 720,
            secure_cookie: false,
        }
    }
}

/// `[storage]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Directory of the embedded database and key files; created at start.
    pub data_dir: PathBuf,
    /// PostgreSQL instead of the embedded database (`postgres://user:password@host/db`), for
    /// several central replicas sharing one database.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    /// Certificate authorities (PEM) trusted for the database's certificate; the system's
    /// roots when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_ca_file: Option<PathBuf>,
    /// Connections to the database kept at most by this process.
    pub database_pool_size: u32,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            data_dir: PathBuf::from("./data"),
            database_url: None,
            database_ca_file: None,
            database_pool_size: crate::store::pg::DEFAULT_POOL_SIZE,
        }
    }
}

/// `[http]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Address of the API, legacy device paths, metrics and dashboard.
    pub bind: SocketAddr,
    /// Connections served at once (the unit's `LimitNOFILE` leaves room for them).
    pub max_connections: usize,
    /// Connections one client address may hold at once; raise it behind a reverse proxy.
    pub max_connections_per_client: usize,
    /// A bearer token `/metrics` and `/readyz` then require (at least 16 characters); open
    /// without one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_token: Option<String>,
}

impl HttpConfig {
    /// The listener's bounds: these caps, and the fixed timeouts and head size of
    /// [`neosens_runtime::http::Limits`] (docs/security.md).
    pub fn limits(&self) -> neosens_runtime::http::Limits {
        neosens_runtime::http::Limits::with_caps(
            self.max_connections,
            self.max_connections_per_client,
            std::time::Duration::from_secs(75),
        )
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            bind: SocketAddr::from(([0, 0, 0, 0], 8080)),
            max_connections: 4096,
            max_connections_per_client: 256,
            metrics_token: None,
        }
    }
}

impl Config {
    /// Reads a TOML file over the defaults.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        neosens_runtime::config_file::load(path)
    }

    /// Parses TOML text over the defaults.
    pub fn from_toml(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }
}

/// The commented configuration file, filled with the values of `config` (so `configfile` with
/// `--config old.toml` upgrades an old file with every new option documented).
pub fn template(config: &Config) -> String {
    let mut t = String::new();
    let _ = write!(
        t,
        r#"# neosens-central configuration.
#
# Every option can also be set on the command line or by an environment variable, which win
# over this file: see `neosens-central --help`.

[storage]
# Directory of the embedded database and key files. Created at start; must be writable.
# Environment: NEOSENS_DATA_DIR
data_dir = {data_dir}
# PostgreSQL instead of the embedded database, for several central replicas sharing one
# (docs/deploy.md). Migrated at start (or alone: `neosens-central migrate`); an embedded
# database moves into an empty one with `neosens-central copy-store`. TLS is used whenever the
# server offers it, and its certificate is then verified (`sslmode=require` insists on TLS).
# The key files stay in data_dir: every replica needs the same ones.
# Environment: NEOSENS_DATABASE_URL
{database_url}
# Certificate authorities (PEM) trusted for the database's certificate (default: the system's).
{database_ca}
# Connections to the database kept at most by this process.
database_pool_size = {database_pool}

[http]
# Address of the HTTP listener: legacy device paths (/device/*), admin API (/api/v1),
# metrics, health and the dashboard. Devices expect port 80 (put a proxy or a port
# redirection in front, or run with CAP_NET_BIND_SERVICE).
# Environment: NEOSENS_HTTP_BIND
bind = {bind}
# Connections served at once, and per client address (raise the latter behind a reverse proxy,
# which relays every client from one address). Requests also have fixed deadlines: 10 s for
# the head, 10 s between body chunks, 75 s in all (docs/security.md).
max_connections = {http_max}
max_connections_per_client = {http_per_client}
# A bearer token /metrics and /readyz then require (at least 16 characters; Prometheus:
# `authorization: {{credentials: …}}`). Without it they are open to whoever reaches the
# listener: set one when that is more than your monitoring network. (Never printed here.)
# Environment: NEOSENS_METRICS_TOKEN
# metrics_token = "..."

[auth]
# A bootstrap admin token for /api/v1 (at least 16 characters), registered at start. Without it,
# the first start generates one and prints it once on standard output. Prefer the environment
# variable to keeping a secret in this file. (Never printed here.)
# Environment: NEOSENS_ADMIN_TOKEN
# admin_token = "..."

# The dashboard's first user: when no user exists, the user `admin` is created with this
# password (at least 10 characters); without it, the first start generates one and prints it
# once on standard output. Manage users afterwards in the dashboard or /api/v1/users.
# Environment: NEOSENS_ADMIN_PASSWORD
# admin_password = "..."

# A dashboard session ends after this many minutes without a request.
session_idle_minutes = {session_idle_minutes}

# Mark the session cookie Secure (sent over HTTPS only): set it when central is served behind
# a TLS proxy, as it should be in production.
secure_cookie = {secure_cookie}

[mqtt]
# The broker central connects to: mqtt://[user:password@]host:port, or mqtts://… for TLS.
# The user/password are central's own broker login (Mosquitto asks central's broker-auth
# backend about it too: central recognises it). Unset: an embedded broker is started on
# embedded_bind; it authenticates devices against the registry but enforces no topic ACLs,
# so it is for trying neosens, not for production.
# Environment: NEOSENS_MQTT_URL
{mqtt_url}
client_id = {mqtt_client_id}
# Retained "online"/"offline" state of central (last will: "offline"). Replicas sharing a
# database share it: it reads "offline" once every replica is gone (a dead machine is noticed by
# the broker at its keep-alive timeout, 45 s).
state_topic = {mqtt_state_topic}
# Environment: NEOSENS_EMBEDDED_MQTT_BIND
embedded_bind = {mqtt_embedded_bind}
# Keep Mosquitto's dynamic-security plug-in in step with the registry (clients, roles, ACLs,
# disabling). Central's login in `url` must be the plug-in's admin. See docs/mosquitto.md.
# Environment: NEOSENS_MQTT_DYNSEC
dynamic_security = {mqtt_dynsec}
# Broker logins no device may be given (registering, importing): accounts that are not devices.
# Central's own login and gateways' gw-* are always reserved.
reserved_logins = {mqtt_reserved}
# Gateways log in to the broker with an MQTT password of their own, derived from their key pair
# (never with their API secret). Agents older than that use their API secret: while such a fleet
# is upgraded, true accepts it too (docs/security.md).
accept_gateway_api_secrets = {mqtt_legacy_gw}
# Replicas sharing one PostgreSQL database ingest statuses through an MQTT shared subscription
# of this group ($share/<group>/…): each status reaches one of them. Each replica's client id
# is then client_id plus a suffix of its own (the broker allows one connection per id).
shared_group = {mqtt_shared_group}

[alerts]
# Outage alerts (devices past their threshold and a grace period, grouped by building) are
# published here as JSON: {{"event": "opened"|"updated"|"resolved", "alert": {{…}}}}.
mqtt_topic = {alerts_topic}
# The same JSON POSTed to a webhook (chat bridge, paging service …), with retries.
# Environment: NEOSENS_ALERT_WEBHOOK
{alerts_webhook}
webhook_timeout_s = {alerts_timeout}
webhook_attempts = {alerts_attempts}
# The networks devices ask for their credentials from (CIDR or single addresses; the address a
# gateway relays for its devices counts). A first password handed to an address outside them
# raises a "foreign_delivery" alert: someone else may have asked for it first (re-set the
# device's credentials). Default: private and local networks. [] turns the alert off.
device_networks = {alerts_networks}
# A gateway in local-broker mode out of touch makes its site "disconnected": its devices'
# outages are held (their statuses queue at the site). Past this many minutes a
# "site_disconnected" alert opens, resolved when the gateway is back.
site_disconnected_after_min = {alerts_site_after}

# A device that boots this many times within window_min minutes (each boot asks central for its
# configuration) raises a "reboot_loop" alert, resolved after a window without a boot.
# [alerts.reboot_loop]
# boots = 5
# window_min = 30
# [alerts.reboot_loop.types.rpi]
# boots = 3
# window_min = 60

[broker_auth]
# Mosquitto's authentication backend (/mqtt/* for mosquitto-go-auth, /mqtt_auth/* for the 2016
# plug-in) answers whether a password is right: serve it on a listener only the broker reaches.
# Unset: served on the main HTTP listener, to loopback peers only (a broker on this host;
# requests relayed by a proxy, with Forwarded/X-Forwarded-For, are not loopback ones).
# See docs/mosquitto.md and docs/security.md.
# Environment: NEOSENS_BROKER_AUTH_BIND
{broker_auth_bind}
# Without bind: answer any peer on the main listener (a broker on another host). Central's own
# login is still only answered to loopback peers.
public = {broker_auth_public}

[log]
# `tracing` filter directives, e.g. "info" or "info,neosens_central=debug". Re-read on SIGHUP
# (`systemctl reload neosens-central`); a filter that does not parse keeps the current one.
# "info,neosens_runtime::http=debug" logs every HTTP response with its request id.
# Environment: NEOSENS_LOG (wins over this file, also on reload)
filter = {filter}
# "text" for people, "json" for log pipelines.
# Environment: NEOSENS_LOG_FORMAT
format = {format}

[telemetry]
# Export spans (HTTP requests, status batches) to an OpenTelemetry collector over OTLP/HTTP,
# e.g. "http://localhost:4318" (sent to /v1/traces). Only in builds with the `otel` feature.
# The service's name is OTEL_SERVICE_NAME, default "neosens-central".
# Environment: OTEL_EXPORTER_OTLP_ENDPOINT (wins over this file)
{otlp_endpoint}

[firmware]
# Firmware images (POST /api/v1/firmware) live in <data_dir>/firmware, named by their SHA-256.
# Largest image accepted, in bytes (an ESP32 app is 1-2 MB; gateway builds are larger).
max_image_bytes = {fw_max_image}
# Most bytes all images together may take; delete unused images to make room.
max_total_bytes = {fw_max_total}
# Base URL put in the devices' update check answers (/images/<hw>/<board>/default.json), e.g.
# "http://neocampus.univ-tlse3.fr". Unset: the Host the device asked, which is right when that
# name reaches central (DNS or a proxy: docs/firmware.md). Keep it short: the answer must fit
# the firmware's 511 bytes.
{fw_public_url}

[audit]
# The audit trail (GET /api/v1/audit): who changed what, with the fields before and after.
# Entries kept at most; the oldest go first (an entry takes ~290 bytes on disk: 1,000,000 ≈ 290 MB).
max_entries = {audit_max_entries}
# Entries older than this many days are removed.
max_age_days = {audit_max_age}

[history]
# Each device's statuses, shown on its timeline and charts (one a minute at most). Kept per
# device: at most max_statuses, none older than max_age_days before its newest. A neOSensor
# status takes ~600 bytes on disk: the defaults hold 30 days at one status per 30 min, about
# 0.9 MB a device (cargo bench -p neosens-central --bench history); lower them for large fleets.
max_statuses = {history_max}
max_age_days = {history_days}
# Per device type, by name:
# [history.types.esp32]
# max_statuses = 500
# max_age_days = 7

# Dashboard sign-in against the university's directory (LDAP). Local accounts (the first
# `admin`) are checked first and keep working while the directory is down. A person with no
# local account is searched under base_dn, bound with their own password over LDAPS or
# StartTLS, and gets the highest role of their groups (none: refused). docs/security.md.
# [ldap]
# url = "ldaps://ldap.univ-tlse3.fr"      # or "ldap://…" with starttls = true
# starttls = false
# ca_file = "/etc/neosens/campus-ca.pem"  # beside the system's roots
# bind_dn = "cn=neosens,ou=services,dc=univ-tlse3,dc=fr"   # unset: anonymous search
# bind_password_file = "/etc/neosens/ldap-password"        # or NEOSENS_LDAP_BIND_PASSWORD
# base_dn = "ou=people,dc=univ-tlse3,dc=fr"
# user_filter = "(&(objectClass=person)(uid={{username}}))"
# group_attribute = "memberOf"
# group_base_dn = "ou=groups,dc=univ-tlse3,dc=fr"          # also search groups naming the person
# group_filter = "(&(objectClass=groupOfNames)(member={{dn}}))"
# timeout_s = 5
# [[ldap.groups]]
# dn = "cn=neocampus-admins,ou=groups,dc=univ-tlse3,dc=fr"
# role = "admin"
# [[ldap.groups]]
# dn = "cn=neocampus-operators,ou=groups,dc=univ-tlse3,dc=fr"
# role = "operator"
# [[ldap.groups]]                                          # a role on some sites only
# dn = "cn=iut-carcassonne-tech,ou=groups,dc=univ-tlse3,dc=fr"
# role = "operator"
# sites = ["carcassonne"]                                  # slugs; never with admin
"#,
        audit_max_entries = config.audit.max_entries,
        history_max = config.history.max_statuses,
        history_days = config.history.max_age_days,
        audit_max_age = config.audit.max_age_days,
        data_dir = quoted(&config.storage.data_dir.to_string_lossy()),
        database_url = match &config.storage.database_url {
            Some(url) => format!("database_url = {}", quoted(url)),
            None =>
                "# database_url = \"postgres://neosens:secret@db.example.org:5432/neosens?sslmode=require\""
                    .to_owned(),
        },
        database_ca = match &config.storage.database_ca_file {
            Some(path) => format!("database_ca_file = {}", quoted(&path.to_string_lossy())),
            None => "# database_ca_file = \"/etc/neosens/database-ca.pem\"".to_owned(),
        },
        database_pool = config.storage.database_pool_size,
        bind = quoted(&config.http.bind.to_string()),
        http_max = config.http.max_connections,
        http_per_client = config.http.max_connections_per_client,
        filter = quoted(&config.log.filter),
        mqtt_url = match &config.mqtt.url {
            Some(url) => format!("url = {}", quoted(url)),
            None => "# url = \"mqtt://neosens-central:secret@localhost:1883\"".to_owned(),
        },
        mqtt_client_id = quoted(&config.mqtt.client_id),
        alerts_topic = quoted(&config.alerts.mqtt_topic),
        alerts_site_after = config.alerts.site_disconnected_after_min,
        alerts_webhook = match &config.alerts.webhook_url {
            Some(url) => format!("webhook_url = {}", quoted(url)),
            None => "# webhook_url = \"https://chat.example.org/hooks/neosens\"".to_owned(),
        },
        alerts_timeout = config.alerts.webhook_timeout_s,
        alerts_attempts = config.alerts.webhook_attempts,
        alerts_networks = toml::Value::Array(
            config.alerts.device_networks.iter().map(|n| toml::Value::String(n.clone())).collect()
        ),
        mqtt_state_topic = quoted(&config.mqtt.state_topic),
        mqtt_embedded_bind = quoted(&config.mqtt.embedded_bind.to_string()),
        mqtt_dynsec = config.mqtt.dynamic_security,
        mqtt_legacy_gw = config.mqtt.accept_gateway_api_secrets,
        mqtt_shared_group = quoted(&config.mqtt.shared_group),
        mqtt_reserved = toml::Value::Array(
            config.mqtt.reserved_logins.iter().map(|l| toml::Value::String(l.clone())).collect()
        ),
        broker_auth_public = config.broker_auth.public,
        broker_auth_bind = match config.broker_auth.bind {
            Some(addr) => format!("bind = {}", quoted(&addr.to_string())),
            None => "# bind = \"127.0.0.1:8081\"".to_owned(),
        },
        format = quoted(config.log.format.as_str()),
        fw_max_image = config.firmware.max_image_bytes,
        fw_max_total = config.firmware.max_total_bytes,
        fw_public_url = match &config.firmware.public_url {
            Some(url) => format!("public_url = {}", quoted(url)),
            None => "# public_url = \"http://neocampus.univ-tlse3.fr\"".to_owned(),
        },
        otlp_endpoint = match &config.telemetry.otlp_endpoint {
            Some(url) => format!("otlp_endpoint = {}", quoted(url)),
            None => "# otlp_endpoint = \"http://localhost:4318\"".to_owned(),
        },
        session_idle_minutes = config.auth.session_idle_minutes,
        secure_cookie = config.auth.secure_cookie,
    );
    t
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
