//! Configuration: typed, defaulted, documented, layered.
//!
//! Layers, lowest first: built-in defaults, the TOML file (`--config FILE`), then command-line
//! options, each of which also reads an environment variable (`NEOSENS_EDGE_DATA_DIR` …).
//! Unknown keys in the file are errors: a typo must not silently fall back to a default.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub use neosens_runtime::config_file::ConfigError;
use neosens_runtime::config_file::quoted;
use neosens_runtime::telemetry::LogConfig;
use serde::{Deserialize, Serialize};

/// Everything the agent reads at start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the local registry cache and outbox live.
    pub storage: StorageConfig,
    /// How to reach central.
    pub central: CentralConfig,
    /// The LAN listener devices provision through.
    pub http: HttpConfig,
    /// The upstream broker.
    pub mqtt: MqttConfig,
    /// The outbox's bounds.
    pub outbox: OutboxConfig,
    /// The gateway as a device of its room.
    pub agent: AgentConfig,
    /// LoRaWAN radio input.
    pub lorawan: LorawanConfig,
    /// `[hal]`: the gateway's own hardware (status LED, local sensors).
    pub hal: HalConfig,
    /// `[firmware]`: the cache of firmware images served to the devices of the LAN.
    pub firmware: crate::firmware::FirmwareConfig,
    /// `[update]`: the agent's own updates (signed builds, rolled back unless healthy).
    pub update: crate::update::UpdateConfig,
    /// `[local_broker]`: the site's devices on a Mosquitto of the gateway, bridged to central's.
    pub local_broker: crate::local_broker::LocalBrokerConfig,
    /// Logging.
    pub log: LogConfig,
    /// The keys central may set (`agent.status_period_s`, …) that the file or the command line
    /// set here: they win over central's settings (`crate::managed`). Not a key of the file.
    #[serde(skip)]
    pub pinned: BTreeSet<String>,
}

/// `[storage]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Directory of the local database and credentials; created at start.
    pub data_dir: PathBuf,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig { data_dir: PathBuf::from("./edge-data") }
    }
}

/// `[central]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CentralConfig {
    /// Base URL of neosens-central, e.g. `https://neosens.example.org` (default: the one the
    /// gateway enrolled with).
    pub url: Option<String>,
    /// How long a device request forwarded to central may take before the cache answers, ms.
    pub timeout_ms: u64,
    /// Longest sync long-poll, seconds (1 to 60).
    pub sync_wait_s: u64,
}

impl Default for CentralConfig {
    fn default() -> Self {
        CentralConfig { url: None, timeout_ms: 2_000, sync_wait_s: 55 }
    }
}

/// `[mqtt]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct MqttConfig {
    /// The broker the outbox drains to (`mqtt://host:port`, `mqtts://…`); the gateway's own login
    /// is used unless the URL carries one. Unset: nothing is sent upstream (it waits).
    pub url: Option<String>,
}

/// `[outbox]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutboxConfig {
    /// Most messages kept; the oldest are dropped (and counted) past it.
    pub max_messages: u64,
    /// Oldest message kept, seconds; older ones are dropped (and counted).
    pub max_age_s: u64,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig { max_messages: 1_000_000, max_age_s: 7 * 24 * 3600 }
    }
}

/// `[lorawan]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LorawanConfig {
    /// Address of the Semtech UDP listener (packet forwarders); `"off"` turns it off.
    #[serde(deserialize_with = "listener_or_off")]
    pub udp_bind: Option<SocketAddr>,
    /// A serial LoRa modem (`/dev/ttyUSB0`), read beside the packet forwarders; `"off"`: none.
    #[serde(deserialize_with = "present::lorawan_serial_port")]
    pub serial_port: Option<PathBuf>,
    /// Its speed.
    #[serde(deserialize_with = "present::lorawan_serial_baud")]
    pub serial_baud: u32,
    /// Its line protocol: `rn2483` or `hex_lines`.
    #[serde(deserialize_with = "present::lorawan_serial_protocol")]
    pub serial_protocol: String,
    /// Adaptive data rate for the nodes that ask for it (FCtrl.ADR): `LinkADRReq`s in their
    /// downlinks.
    #[serde(deserialize_with = "present::lorawan_adr")]
    pub adr: bool,
    /// ADR's installation margin, dB: the SNR kept above the demodulation floor.
    #[serde(deserialize_with = "present::lorawan_adr_margin_db")]
    pub adr_margin_db: u8,
}

impl Default for LorawanConfig {
    fn default() -> Self {
        LorawanConfig {
            udp_bind: Some(SocketAddr::from(([0, 0, 0, 0], 1700))),
            serial_port: None,
            serial_baud: 57_600,
            serial_protocol: "rn2483".into(),
            adr: true,
            adr_margin_db: 10,
        }
    }
}

/// `[agent]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentConfig {
    /// The gateway's MAC, as registered in central as a device of its room (default: the first
    /// network interface's). Its status goes to that device's base topic.
    pub mac: Option<String>,
    /// Seconds between two statuses of the gateway.
    #[serde(deserialize_with = "present::agent_status_period_s")]
    pub status_period_s: u64,
    /// Command run for the `reboot` order (e.g. `systemctl reboot`); unset: the order is refused.
    pub reboot_command: Option<String>,
}

/// `[hal]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HalConfig {
    /// GPIO line of a status LED, `chip:line` (`gpiochip0:17`); unset or `"off"`: no LED.
    #[serde(deserialize_with = "present::hal_status_led")]
    pub status_led: Option<String>,
    /// The LED lights when the line is low.
    #[serde(deserialize_with = "present::hal_status_led_active_low")]
    pub status_led_active_low: bool,
    /// I2C bus of local sensors (`/dev/i2c-1`); `"off"`: none.
    #[serde(deserialize_with = "present::hal_i2c_bus")]
    pub i2c_bus: Option<PathBuf>,
    /// Sensors on that bus: `sht3x@0x44`, `mcp9808@0x18`.
    #[serde(deserialize_with = "present::hal_sensors")]
    pub sensors: Vec<String>,
    /// Seconds between two measurements.
    #[serde(deserialize_with = "present::hal_sensor_period_s")]
    pub sensor_period_s: u64,
}

impl Default for HalConfig {
    fn default() -> Self {
        HalConfig {
            status_led: None,
            status_led_active_low: false,
            i2c_bus: None,
            sensors: Vec::new(),
            sensor_period_s: 60,
        }
    }
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig { mac: None, status_period_s: 300, reboot_command: None }
    }
}

/// `[http]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Address of the LAN listener (legacy provisioning paths, metrics, health). Devices expect
    /// port 80.
    pub bind: SocketAddr,
    /// Connections served at once (the unit's `LimitNOFILE` leaves room for them).
    pub max_connections: usize,
    /// Connections one client address may hold at once; raise it behind a reverse proxy.
    pub max_connections_per_client: usize,
    /// A bearer token `/metrics` then requires (at least 16 characters); open without one.
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
            std::time::Duration::from_secs(30),
        )
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            bind: SocketAddr::from(([0, 0, 0, 0], 80)),
            max_connections: 512,
            max_connections_per_client: 32,
            metrics_token: None,
        }
    }
}

/// The keys central may set, each noting that the file sets it ([`config_file::present`]): the
/// file wins over central's settings there.
mod present {
    macro_rules! present {
        ($($name:ident: $ty:ty = $key:literal),* $(,)?) => {$(
            pub(super) fn $name<'de, D: serde::Deserializer<'de>>(d: D) -> Result<$ty, D::Error> {
                neosens_runtime::config_file::present($key, d)
            }
        )*};
    }
    /// `"off"` turns an optional device off here too, over central's setting.
    fn off_or(value: Option<String>) -> Option<String> {
        value.filter(|v| v != neosens_protocol::gateway_config::OFF)
    }
    pub(super) fn lorawan_serial_port<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<std::path::PathBuf>, D::Error> {
        Ok(off_or(neosens_runtime::config_file::present("lorawan.serial_port", d)?).map(Into::into))
    }
    pub(super) fn hal_status_led<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        Ok(off_or(neosens_runtime::config_file::present("hal.status_led", d)?))
    }
    pub(super) fn hal_i2c_bus<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<std::path::PathBuf>, D::Error> {
        Ok(off_or(neosens_runtime::config_file::present("hal.i2c_bus", d)?).map(Into::into))
    }
    present! {
        lorawan_serial_baud: u32 = "lorawan.serial_baud",
        lorawan_serial_protocol: String = "lorawan.serial_protocol",
        lorawan_adr: bool = "lorawan.adr",
        lorawan_adr_margin_db: u8 = "lorawan.adr_margin_db",
        agent_status_period_s: u64 = "agent.status_period_s",
        hal_status_led_active_low: bool = "hal.status_led_active_low",
        hal_sensors: Vec<String> = "hal.sensors",
        hal_sensor_period_s: u64 = "hal.sensor_period_s",
    }
}

/// `"address:port"`, or `"off"` (a key central may set: noted as the file's).
fn listener_or_off<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    let text: String = neosens_runtime::config_file::present("lorawan.udp_bind", d)?;
    if text == neosens_protocol::gateway_config::OFF {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|e| serde::de::Error::custom(format!("{text:?}: {e}; expected \"address:port\" or \"off\"")))
}

impl Config {
    /// Reads a TOML file over the defaults; the keys central may set that it sets are pinned.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let (config, keys) =
            neosens_runtime::config_file::recording(|| neosens_runtime::config_file::load::<Config>(path));
        Ok(Config { pinned: keys.into_iter().map(str::to_owned).collect(), ..config? })
    }

    /// Parses TOML text over the defaults (nothing pinned).
    pub fn from_toml(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }

    /// [`Config::from_toml`], with the keys central may set that the text sets pinned.
    pub fn from_toml_pinned(text: &str) -> Result<Self, toml::de::Error> {
        let (config, keys) = neosens_runtime::config_file::recording(|| Config::from_toml(text));
        Ok(Config { pinned: keys.into_iter().map(str::to_owned).collect(), ..config? })
    }
}

/// The commented configuration file, filled with the values of `config`.
pub fn template(config: &Config) -> String {
    let mut t = String::new();
    let central = match &config.central.url {
        Some(url) => format!("url = {}", quoted(url)),
        None => String::from("# url = \"https://neosens.example.org\""),
    };
    let sensors_list =
        format!("[{}]", config.hal.sensors.iter().map(|s| quoted(s)).collect::<Vec<_>>().join(", "));
    let optional = |key: &str, value: &Option<String>, example: &str| match value {
        Some(v) => format!("{key} = {}", quoted(v)),
        None => format!("# {key} = {}", quoted(example)),
    };
    // A key central may set is commented out at its default (central's setting, if any, then
    // applies), and written out once the file or an option sets it (it then wins).
    let defaults = Config::default();
    let managed = |key: &str, value: String, at_default: bool| {
        let name = key.split_once('.').map_or(key, |(_, name)| name);
        if at_default && !config.pinned.contains(key) {
            format!("# {name} = {value}")
        } else {
            format!("{name} = {value}")
        }
    };
    let _ = write!(
        t,
        r#"# neosens-edge configuration.
#
# Every option can also be set on the command line or by an environment variable, which win
# over this file: see `neosens-edge --help`.
#
# Settings from central (docs/edge.md#settings-from-central): the keys shown commented out at
# their default ([log] filter, [agent] status_period_s, most of [lorawan] and [hal]) take the
# value set for this gateway in central, if any. Uncommented here, a key wins over central's.

[storage]
# Directory of the local registry cache, the outbox and the gateway's credentials.
# Created at start; must be writable. Keep it on persistent storage.
# Environment: NEOSENS_EDGE_DATA_DIR
data_dir = {data_dir}

[central]
# Base URL of neosens-central (default: the one `neosens-edge enroll` recorded).
# Environment: NEOSENS_EDGE_CENTRAL_URL
{central}
# A device request forwarded to central waits this long (ms) before the cache answers.
timeout_ms = {timeout_ms}
# Longest sync long-poll, seconds (1 to 60).
sync_wait_s = {sync_wait_s}

[mqtt]
# Broker the outbox drains to; the gateway's own login (from enrolment) is used unless the URL
# carries one. Unset: messages wait in the outbox.
# Environment: NEOSENS_EDGE_MQTT_URL
{mqtt_url}

[outbox]
# Bounds: past them the oldest messages are dropped, and counted in /metrics.
max_messages = {max_messages}
max_age_s = {max_age_s}

[lorawan]
# Semtech UDP packet-forwarder listener (the concentrator's forwarder sends PUSH_DATA here),
# or "off".
# Environment: NEOSENS_EDGE_UDP_BIND
{udp_bind}
# A serial LoRa modem read beside the forwarders ("off": none, whatever central sets): its
# port, speed and line protocol
# ("rn2483": Microchip RN2483/RN2903 in radio mode; "hex_lines": one frame per line in hex).
{serial_port}
{serial_baud}
{serial_protocol}
# Adaptive data rate (ChirpStack's default algorithm) for nodes with ADR on: the fastest data
# rate, then the lowest power, that keep this margin (dB) above the demodulation floor.
{adr}
{adr_margin_db}

[agent]
# The gateway's MAC as registered in central (a device of its room): its status goes to that
# device's base topic. Default: the MAC of the first network interface.
{mac}
# Seconds between two statuses of the gateway.
{status_period_s}
# Command the `reboot` order runs; unset: the order is refused (and logged).
{reboot}

[hal]
# A status LED on a GPIO line, "chip:line" (gpiochip0:17 is GPIO17, pin 11, on a Raspberry Pi;
# "off": none, whatever central sets):
# steady = central and broker reached, slow blink = broker down, fast blink = central down,
# double flash = both down, short heartbeat = not enrolled. Works on Pi and Jetson alike
# (GPIO character device). The service needs access to /dev/gpiochipN.
{status_led}
{status_led_active_low}
# Local sensors on the gateway's I2C bus, published as neOCampus readings of its room
# (<room>/temperature, <room>/humidity, subID = I2C address in decimal), as a neOSensor would.
{i2c_bus}
{sensors}
# Seconds between two measurements (values are sent on a change of 0.15 or every 30 min).
{sensor_period_s}

[firmware]
# Images of the firmware campaigns that target this gateway's scope, fetched once from central
# (resumable, checked by SHA-256) into <data_dir>/firmware and served to the devices of the LAN
# on /images/<hardware>/<board>/… — also while central is out of reach (docs/firmware.md).
# Most bytes the cached images take; an image that does not fit is not cached.
cache_bytes = {fw_cache_bytes}
# Seconds between two looks at central's list of images for this gateway.
poll_s = {fw_poll_s}

[update]
# Agent updates: gateway builds rolled out by firmware campaigns over the gateways' own devices
# (docs/edge.md#agent-updates). A build is installed only when signed by this ed25519 public key
# (64 hex digits: `neosens-central agent-key public --key FILE`); unset, builds are refused.
{update_key}
# Seconds a new build has to become healthy (synced with central, connected to the broker)
# before the launcher stops it and starts the previous one again.
health_deadline_s = {health_deadline_s}

[local_broker]
# Local-broker mode (docs/edge.md#remote-sites): the scope's devices publish to a Mosquitto on
# this gateway, bridged to the [mqtt] broker with the gateway's login, so that a WAN outage
# loses nothing. Set per gateway in central; `enabled = false` here keeps this gateway out.
# Needs Debian's mosquitto package (its own service disabled) and [mqtt] url (the bridge).
{lb_enabled}
# host:port the devices are given in /device/credentials (default: the address set in central).
{lb_advertise}
# Where the local broker listens (the devices' LAN). Mosquitto runs as the agent's child.
listen = {lb_listen}
mosquitto = {lb_mosquitto}
# The bridge's queue while central's broker is out of reach: past either bound, the newest
# messages are dropped. Kept in memory and saved to <data_dir>/broker/db every
# autosave_interval_s seconds (and at every stop).
max_queued_messages = {lb_messages}
max_queued_bytes = {lb_bytes}
autosave_interval_s = {lb_autosave}

[http]
# LAN listener: the legacy provisioning paths devices call (/device/*), the firmware update
# path (/images/*), /metrics, /healthz.
# The firmware calls port 80 (needs CAP_NET_BIND_SERVICE, see systemd/neosens-edge.service).
# Environment: NEOSENS_EDGE_HTTP_BIND
bind = {bind}
# Connections served at once, and per client address. Requests also have fixed deadlines:
# 10 s for the head, 10 s between body chunks, 30 s in all (docs/security.md).
max_connections = {http_max}
max_connections_per_client = {http_per_client}
# A bearer token /metrics then requires (at least 16 characters): the listener is on the
# devices' LAN, where anyone could otherwise read the gateway's counters. (Never printed here.)
# Environment: NEOSENS_EDGE_METRICS_TOKEN
# metrics_token = "..."

[log]
# `tracing` filter directives, e.g. "info" or "info,neosens_edge=debug". Re-read on SIGHUP
# (`systemctl reload neosens-edge`); a filter that does not parse keeps the current one.
# Environment: NEOSENS_LOG (wins over this file, also on reload)
{filter}
# "text" for people, "json" for log pipelines.
# Environment: NEOSENS_LOG_FORMAT
format = {format}
"#,
        data_dir = quoted(&config.storage.data_dir.to_string_lossy()),
        fw_cache_bytes = config.firmware.cache_bytes,
        fw_poll_s = config.firmware.poll_s,
        update_key = optional("public_key", &config.update.public_key, &"0".repeat(64)),
        health_deadline_s = config.update.health_deadline_s,
        lb_enabled = match config.local_broker.enabled {
            Some(on) => format!("enabled = {on}"),
            None => String::from("# enabled = false"),
        },
        lb_advertise = optional("advertise", &config.local_broker.advertise, "192.168.1.2:1883"),
        lb_listen = quoted(&config.local_broker.listen.to_string()),
        lb_mosquitto = quoted(&config.local_broker.mosquitto.to_string_lossy()),
        lb_messages = config.local_broker.max_queued_messages,
        lb_bytes = config.local_broker.max_queued_bytes,
        lb_autosave = config.local_broker.autosave_interval_s,
        timeout_ms = config.central.timeout_ms,
        sync_wait_s = config.central.sync_wait_s,
        mqtt_url = optional("url", &config.mqtt.url, "mqtt://broker.example.org:1883"),
        max_messages = config.outbox.max_messages,
        max_age_s = config.outbox.max_age_s,
        mac = optional("mac", &config.agent.mac, "b8:27:eb:12:34:56"),
        status_period_s = managed(
            "agent.status_period_s",
            config.agent.status_period_s.to_string(),
            config.agent.status_period_s == defaults.agent.status_period_s
        ),
        serial_port = match &config.lorawan.serial_port {
            Some(p) => format!("serial_port = {}", quoted(&p.to_string_lossy())),
            None if config.pinned.contains("lorawan.serial_port") => String::from("serial_port = \"off\""),
            None => String::from("# serial_port = \"/dev/ttyUSB0\""),
        },
        serial_baud = managed(
            "lorawan.serial_baud",
            config.lorawan.serial_baud.to_string(),
            config.lorawan.serial_baud == defaults.lorawan.serial_baud
        ),
        serial_protocol = managed(
            "lorawan.serial_protocol",
            quoted(&config.lorawan.serial_protocol),
            config.lorawan.serial_protocol == defaults.lorawan.serial_protocol
        ),
        adr = managed(
            "lorawan.adr",
            config.lorawan.adr.to_string(),
            config.lorawan.adr == defaults.lorawan.adr
        ),
        adr_margin_db = managed(
            "lorawan.adr_margin_db",
            config.lorawan.adr_margin_db.to_string(),
            config.lorawan.adr_margin_db == defaults.lorawan.adr_margin_db
        ),
        udp_bind = managed(
            "lorawan.udp_bind",
            quoted(&config.lorawan.udp_bind.map_or_else(|| "off".to_owned(), |a| a.to_string())),
            config.lorawan.udp_bind == defaults.lorawan.udp_bind
        ),
        reboot = optional("reboot_command", &config.agent.reboot_command, "systemctl reboot"),
        status_led = match &config.hal.status_led {
            None if config.pinned.contains("hal.status_led") => String::from("status_led = \"off\""),
            led => optional("status_led", led, "gpiochip0:17"),
        },
        status_led_active_low = managed(
            "hal.status_led_active_low",
            config.hal.status_led_active_low.to_string(),
            config.hal.status_led_active_low == defaults.hal.status_led_active_low
        ),
        i2c_bus = match &config.hal.i2c_bus {
            Some(p) => format!("i2c_bus = {}", quoted(&p.to_string_lossy())),
            None if config.pinned.contains("hal.i2c_bus") => String::from("i2c_bus = \"off\""),
            None => String::from("# i2c_bus = \"/dev/i2c-1\""),
        },
        sensors = managed("hal.sensors", sensors_list, config.hal.sensors.is_empty()),
        sensor_period_s = managed(
            "hal.sensor_period_s",
            config.hal.sensor_period_s.to_string(),
            config.hal.sensor_period_s == defaults.hal.sensor_period_s
        ),
        bind = quoted(&config.http.bind.to_string()),
        http_max = config.http.max_connections,
        http_per_client = config.http.max_connections_per_client,
        filter = managed("log.filter", quoted(&config.log.filter), config.log.filter == defaults.log.filter),
        format = quoted(config.log.format.as_str()),
    );
    t
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
