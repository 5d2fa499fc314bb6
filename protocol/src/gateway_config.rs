//! The gateway settings central manages: the keys of the agent's configuration file
//! (`neosens-edge configfile`) that an operator may set per gateway in central, defined once for
//! both ends. Central takes them on its API (JSON, these names), keeps them with the gateway and
//! sends them by sync in their wire form ([`ManagedConfig::to_wire`]: a version byte, then
//! postcard); the agent lays them under its own file (a key set in the file, or on its command
//! line, wins) and reports what it runs with.
//!
//! Deliberately absent: every key that names a program to run (`[agent] reboot_command`,
//! `[local_broker] mosquitto`), or the gateway's storage, its central and its broker — a
//! central that is broken into must not be able to make gateways run commands or move them
//! elsewhere. The local broker's address has its own setting (`local_broker` on the gateway).

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

/// Longest wire form of settings an agent accepts from sync.
pub const MAX_WIRE_BYTES: usize = 8 * 1024;
/// The version of [`ManagedConfig`]'s wire form this build writes and reads: raised with every
/// change of its fields, so that an older agent refuses a newer form whole (and says so) instead
/// of misreading it.
pub const WIRE_VERSION: u8 = 1;
/// Most local sensors one gateway declares.
pub const MAX_SENSORS: usize = 8;

/// The settings central may set for one gateway; `None`: not set (the gateway's file, or the
/// agent's default, decides). Unknown keys are ignored when read (a newer agent's report), so
/// central's API checks them itself against [`MANAGED_KEYS`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct ManagedConfig {
    /// `[log]`.
    pub log: ManagedLog,
    /// `[agent]`.
    pub agent: ManagedAgent,
    /// `[lorawan]`.
    pub lorawan: ManagedLorawan,
    /// `[hal]`.
    pub hal: ManagedHal,
}

/// `[log]` as central may set it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct ManagedLog {
    /// `tracing` directives, e.g. `info,neosens_edge=debug` (applied without a restart).
    pub filter: Option<String>,
}

/// `[agent]` as central may set it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct ManagedAgent {
    /// Seconds between two statuses of the gateway (10 to 86400).
    pub status_period_s: Option<u64>,
}

/// `[lorawan]` as central may set it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct ManagedLorawan {
    /// The packet-forwarder listener, `address:port`, or `off`.
    pub udp_bind: Option<String>,
    /// A serial LoRa modem: a device under `/dev/`, or `off`.
    pub serial_port: Option<String>,
    /// Its speed, bits per second (1200 to 921600).
    pub serial_baud: Option<u32>,
    /// Its line protocol: `rn2483` or `hex_lines`.
    pub serial_protocol: Option<String>,
    /// Adaptive data rate for the nodes that ask for it.
    pub adr: Option<bool>,
    /// ADR's installation margin, dB (0 to 30).
    pub adr_margin_db: Option<u8>,
}

/// `[hal]` as central may set it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct ManagedHal {
    /// The status LED's GPIO line, `chip:line` (`gpiochip0:17`), or `off`.
    pub status_led: Option<String>,
    /// The LED lights when the line is low.
    pub status_led_active_low: Option<bool>,
    /// The I2C bus of local sensors (`/dev/i2c-1`), or `off`.
    pub i2c_bus: Option<String>,
    /// Local sensors on that bus (`sht3x@0x44`, `mcp9808@0x18`), at most [`MAX_SENSORS`].
    pub sensors: Option<Vec<String>>,
    /// Seconds between two measurements (1 to 86400).
    pub sensor_period_s: Option<u64>,
}

/// The word that turns an optional listener, port or line off.
pub const OFF: &str = "off";

/// A setting that does not hold: which key (`lorawan.udp_bind`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingError {
    /// The dotted key.
    pub key: &'static str,
    /// What it must be.
    pub reason: String,
}

impl core::fmt::Display for SettingError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}: {}", self.key, self.reason)
    }
}

fn fail(key: &'static str, reason: &str) -> SettingError {
    SettingError { key, reason: reason.into() }
}

fn range<T: PartialOrd + Copy>(
    key: &'static str,
    v: Option<T>,
    lo: T,
    hi: T,
    what: &str,
) -> Result<(), SettingError> {
    match v {
        Some(v) if v < lo || v > hi => Err(fail(key, what)),
        _ => Ok(()),
    }
}

/// A device path: `/dev/` then 1 to 32 of `[A-Za-z0-9_.-/]`, no `..`; or [`OFF`].
fn device_path(key: &'static str, v: Option<&str>) -> Result<(), SettingError> {
    let Some(v) = v else { return Ok(()) };
    let rest = v.strip_prefix("/dev/").unwrap_or("");
    let plain = rest.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.' | b'/'));
    if v == OFF || (!rest.is_empty() && rest.len() <= 32 && plain && !rest.contains("..")) {
        return Ok(());
    }
    Err(fail(key, "a device under /dev/ (e.g. /dev/ttyUSB0), or \"off\""))
}

/// The local sensor models the agent drives (`[hal] sensors`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SensorModel {
    /// Sensirion SHT30/31/35: temperature and humidity (0x44 or 0x45).
    Sht3x,
    /// Microchip MCP9808: temperature (0x18 to 0x1F).
    Mcp9808,
}

/// A sensor as `[hal] sensors` names it — `sht3x@0x44`, `mcp9808@0x18`, or the model alone
/// for its default address — read the same by central (which refuses what the agent would)
/// and by the agent: its model and 7-bit address, or why not.
pub fn parse_sensor(s: &str) -> Result<(SensorModel, u8), String> {
    let (name, address) = match s.trim().split_once('@') {
        Some((n, a)) => (n.trim(), Some(a.trim())),
        None => (s.trim(), None),
    };
    let (model, default, valid): (_, u8, &[u8]) = match name.to_ascii_lowercase().as_str() {
        "sht3x" | "sht30" | "sht31" | "sht35" => (SensorModel::Sht3x, 0x44, &[0x44, 0x45]),
        "mcp9808" => (SensorModel::Mcp9808, 0x18, &[0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f]),
        other => return Err(format!("unknown sensor {other:?}")),
    };
    let address = match address {
        None => default,
        Some(a) => {
            let parsed = match a.strip_prefix("0x").or_else(|| a.strip_prefix("0X")) {
                Some(hex) => u8::from_str_radix(hex, 16),
                None => a.parse(),
            };
            parsed.map_err(|_| format!("{a:?} is not an address"))?
        }
    };
    if !valid.contains(&address) {
        return Err(format!("this sensor answers only at {valid:02x?}"));
    }
    Ok((model, address))
}

impl ManagedConfig {
    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        *self == ManagedConfig::default()
    }

    /// Checks every value set: central refuses a setting that does not hold (with its key), and
    /// an agent refuses a document that does not (applying none of it).
    pub fn check(&self) -> Result<(), SettingError> {
        if let Some(f) = &self.log.filter {
            let plain = f.bytes().all(|c| c.is_ascii_graphic());
            if f.is_empty() || f.len() > 256 || !plain {
                return Err(fail(
                    "log.filter",
                    "1 to 256 characters of directives, e.g. info,neosens_edge=debug",
                ));
            }
        }
        range("agent.status_period_s", self.agent.status_period_s, 10, 86_400, "10 to 86400 seconds")?;
        let l = &self.lorawan;
        if let Some(bind) = &l.udp_bind
            && bind != OFF
            && bind.parse::<core::net::SocketAddr>().is_err()
        {
            return Err(fail("lorawan.udp_bind", "address:port (0.0.0.0:1700), or \"off\""));
        }
        device_path("lorawan.serial_port", l.serial_port.as_deref())?;
        range("lorawan.serial_baud", l.serial_baud, 1_200, 921_600, "1200 to 921600")?;
        if let Some(p) = &l.serial_protocol
            && !matches!(p.as_str(), "rn2483" | "hex_lines")
        {
            return Err(fail("lorawan.serial_protocol", "rn2483 or hex_lines"));
        }
        range("lorawan.adr_margin_db", l.adr_margin_db, 0, 30, "0 to 30 dB")?;
        let h = &self.hal;
        if let Some(led) = &h.status_led {
            let (chip, line) = led.split_once(':').unwrap_or(("", ""));
            let chip_ok =
                !chip.is_empty() && chip.len() <= 24 && chip.bytes().all(|c| c.is_ascii_alphanumeric());
            if led != OFF && !(chip_ok && line.parse::<u16>().is_ok()) {
                return Err(fail("hal.status_led", "chip:line (gpiochip0:17), or \"off\""));
            }
        }
        device_path("hal.i2c_bus", h.i2c_bus.as_deref())?;
        if let Some(sensors) = &h.sensors {
            if sensors.len() > MAX_SENSORS {
                return Err(fail("hal.sensors", &format!("at most {MAX_SENSORS} sensors")));
            }
            for sensor in sensors {
                parse_sensor(sensor).map_err(|reason| SettingError {
                    key: "hal.sensors",
                    reason: format!("{sensor:?}: {reason}; e.g. sht3x@0x44 or mcp9808@0x18"),
                })?;
            }
        }
        range("hal.sensor_period_s", h.sensor_period_s, 1, 86_400, "1 to 86400 seconds")?;
        Ok(())
    }

    /// The wire form sync carries: empty when nothing is set, else [`WIRE_VERSION`] then the
    /// postcard encoding.
    pub fn to_wire(&self) -> Vec<u8> {
        if self.is_empty() {
            return Vec::new();
        }
        let mut out = alloc::vec![WIRE_VERSION];
        // Encoding owned strings, numbers and options into a Vec cannot fail.
        out.extend(postcard::to_allocvec(self).unwrap_or_default());
        out
    }

    /// Reads a wire form (`Ok(None)`: nothing set), and checks its values.
    pub fn from_wire(bytes: &[u8]) -> Result<Option<ManagedConfig>, String> {
        let Some((&version, body)) = bytes.split_first() else { return Ok(None) };
        if bytes.len() > MAX_WIRE_BYTES {
            return Err(format!("{} bytes, more than the {MAX_WIRE_BYTES} read", bytes.len()));
        }
        if version != WIRE_VERSION {
            return Err(format!(
                "settings of version {version}; this agent reads version {WIRE_VERSION} (update it)"
            ));
        }
        let config: ManagedConfig = match postcard::take_from_bytes(body) {
            Ok((config, [])) => config,
            Ok(_) => return Err("trailing bytes after the settings".into()),
            Err(e) => return Err(format!("unreadable settings: {e}")),
        };
        config.check().map_err(|e| e.to_string())?;
        Ok(Some(config))
    }

    /// The dotted keys whose values differ between `self` and `other`, in the file's order.
    pub fn keys_differing(&self, other: &ManagedConfig) -> Vec<&'static str> {
        let (a, b) = (self, other);
        [
            ("log.filter", a.log.filter != b.log.filter),
            ("agent.status_period_s", a.agent.status_period_s != b.agent.status_period_s),
            ("lorawan.udp_bind", a.lorawan.udp_bind != b.lorawan.udp_bind),
            ("lorawan.serial_port", a.lorawan.serial_port != b.lorawan.serial_port),
            ("lorawan.serial_baud", a.lorawan.serial_baud != b.lorawan.serial_baud),
            ("lorawan.serial_protocol", a.lorawan.serial_protocol != b.lorawan.serial_protocol),
            ("lorawan.adr", a.lorawan.adr != b.lorawan.adr),
            ("lorawan.adr_margin_db", a.lorawan.adr_margin_db != b.lorawan.adr_margin_db),
            ("hal.status_led", a.hal.status_led != b.hal.status_led),
            ("hal.status_led_active_low", a.hal.status_led_active_low != b.hal.status_led_active_low),
            ("hal.i2c_bus", a.hal.i2c_bus != b.hal.i2c_bus),
            ("hal.sensors", a.hal.sensors != b.hal.sensors),
            ("hal.sensor_period_s", a.hal.sensor_period_s != b.hal.sensor_period_s),
        ]
        .into_iter()
        .filter_map(|(k, differs)| differs.then_some(k))
        .collect()
    }

    /// The dotted keys set, in the file's order (`log.filter`, `agent.status_period_s`, …).
    pub fn keys_set(&self) -> Vec<&'static str> {
        let (l, h) = (&self.lorawan, &self.hal);
        [
            ("log.filter", self.log.filter.is_some()),
            ("agent.status_period_s", self.agent.status_period_s.is_some()),
            ("lorawan.udp_bind", l.udp_bind.is_some()),
            ("lorawan.serial_port", l.serial_port.is_some()),
            ("lorawan.serial_baud", l.serial_baud.is_some()),
            ("lorawan.serial_protocol", l.serial_protocol.is_some()),
            ("lorawan.adr", l.adr.is_some()),
            ("lorawan.adr_margin_db", l.adr_margin_db.is_some()),
            ("hal.status_led", h.status_led.is_some()),
            ("hal.status_led_active_low", h.status_led_active_low.is_some()),
            ("hal.i2c_bus", h.i2c_bus.is_some()),
            ("hal.sensors", h.sensors.is_some()),
            ("hal.sensor_period_s", h.sensor_period_s.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, set)| set.then_some(k))
        .collect()
    }
}

/// Every key central may set, dotted.
pub const MANAGED_KEYS: [&str; 13] = [
    "log.filter",
    "agent.status_period_s",
    "lorawan.udp_bind",
    "lorawan.serial_port",
    "lorawan.serial_baud",
    "lorawan.serial_protocol",
    "lorawan.adr",
    "lorawan.adr_margin_db",
    "hal.status_led",
    "hal.status_led_active_low",
    "hal.i2c_bus",
    "hal.sensors",
    "hal.sensor_period_s",
];

/// What an agent runs with, as it reports it to central (`config` in its health report).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct ConfigReport {
    /// The effective value of every managed key (`off` for what is off).
    pub effective: ManagedConfig,
    /// Keys central sets that the gateway's own file (or command line) overrides.
    #[serde(default)]
    pub overridden: Vec<String>,
    /// Why central's settings were not applied at all, when they were not (a document this
    /// agent cannot read: an older agent, a key it does not know).
    #[serde(default)]
    pub rejected: Option<String>,
    /// Central's settings changed since the agent started and it will restart to apply them.
    #[serde(default)]
    pub restart_pending: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(f: impl FnOnce(&mut ManagedConfig)) -> ManagedConfig {
        let mut c = ManagedConfig::default();
        f(&mut c);
        c
    }

    #[test]
    fn good_values_pass_and_every_bad_one_names_its_key() {
        let good = with(|c| {
            c.log.filter = Some("info,neosens_edge=debug".into());
            c.agent.status_period_s = Some(60);
            c.lorawan.udp_bind = Some("0.0.0.0:1700".into());
            c.lorawan.serial_port = Some("/dev/ttyUSB0".into());
            c.lorawan.serial_baud = Some(57_600);
            c.lorawan.serial_protocol = Some("hex_lines".into());
            c.lorawan.adr_margin_db = Some(10);
            c.hal.status_led = Some("gpiochip0:17".into());
            c.hal.i2c_bus = Some("/dev/i2c-1".into());
            c.hal.sensors = Some(alloc::vec!["sht3x@0x44".into(), "mcp9808".into()]);
            c.hal.sensor_period_s = Some(60);
        });
        assert_eq!(good.check(), Ok(()));
        assert_eq!(good.keys_set().len(), 11);
        let off = with(|c| {
            c.lorawan.udp_bind = Some(OFF.into());
            c.lorawan.serial_port = Some(OFF.into());
            c.hal.status_led = Some(OFF.into());
            c.hal.i2c_bus = Some(OFF.into());
        });
        assert_eq!(off.check(), Ok(()));
        let bad: [(ManagedConfig, &str); 16] = [
            (with(|c| c.log.filter = Some(String::new())), "log.filter"),
            (with(|c| c.log.filter = Some("info\nwarn".into())), "log.filter"),
            (with(|c| c.log.filter = Some("x".repeat(257))), "log.filter"),
            (with(|c| c.agent.status_period_s = Some(1)), "agent.status_period_s"),
            (with(|c| c.lorawan.udp_bind = Some("0.0.0.0".into())), "lorawan.udp_bind"),
            (with(|c| c.lorawan.serial_port = Some("/etc/shadow".into())), "lorawan.serial_port"),
            (with(|c| c.lorawan.serial_port = Some("/dev/../etc/shadow".into())), "lorawan.serial_port"),
            (with(|c| c.lorawan.serial_baud = Some(0)), "lorawan.serial_baud"),
            (with(|c| c.lorawan.serial_protocol = Some("at".into())), "lorawan.serial_protocol"),
            (with(|c| c.lorawan.adr_margin_db = Some(31)), "lorawan.adr_margin_db"),
            (with(|c| c.hal.status_led = Some("gpiochip0".into())), "hal.status_led"),
            (with(|c| c.hal.sensors = Some(alloc::vec!["sht3x@44".into()])), "hal.sensors"),
            (with(|c| c.hal.sensors = Some(alloc::vec!["bme280@0x76".into()])), "hal.sensors"),
            (with(|c| c.hal.sensors = Some(alloc::vec!["mcp9808@0x44".into()])), "hal.sensors"),
            (with(|c| c.hal.sensors = Some(alloc::vec!["sht3x".into(); MAX_SENSORS + 1])), "hal.sensors"),
            (with(|c| c.hal.sensor_period_s = Some(0)), "hal.sensor_period_s"),
        ];
        for (config, key) in bad {
            assert_eq!(config.check().map_err(|e| e.key), Err(key), "{config:?}");
        }
    }

    #[test]
    fn every_managed_key_is_listed_once() {
        let all = with(|c| {
            c.log.filter = Some("info".into());
            c.agent.status_period_s = Some(60);
            c.lorawan = ManagedLorawan {
                udp_bind: Some(OFF.into()),
                serial_port: Some(OFF.into()),
                serial_baud: Some(9600),
                serial_protocol: Some("rn2483".into()),
                adr: Some(true),
                adr_margin_db: Some(5),
            };
            c.hal = ManagedHal {
                status_led: Some(OFF.into()),
                status_led_active_low: Some(true),
                i2c_bus: Some(OFF.into()),
                sensors: Some(Vec::new()),
                sensor_period_s: Some(5),
            };
        });
        assert_eq!(all.keys_set(), MANAGED_KEYS.to_vec());
        assert_eq!(all.keys_differing(&ManagedConfig::default()), MANAGED_KEYS.to_vec());
        assert!(all.keys_differing(&all).is_empty());
        assert!(ManagedConfig::default().is_empty() && ManagedConfig::default().keys_set().is_empty());
    }

    #[test]
    fn the_wire_form_round_trips_and_refuses_what_it_cannot_read() {
        assert_eq!(ManagedConfig::default().to_wire(), Vec::<u8>::new());
        assert_eq!(ManagedConfig::from_wire(&[]), Ok(None));
        let config = with(|c| {
            c.agent.status_period_s = Some(60);
            c.hal.sensors = Some(alloc::vec!["sht3x@0x44".into()]);
        });
        let wire = config.to_wire();
        assert_eq!(wire[0], WIRE_VERSION);
        assert_eq!(ManagedConfig::from_wire(&wire), Ok(Some(config.clone())));
        let mut newer = wire.clone();
        newer[0] = WIRE_VERSION + 1;
        assert!(ManagedConfig::from_wire(&newer).unwrap_err().contains("version 2"));
        let mut longer = wire.clone();
        longer.push(0);
        assert!(ManagedConfig::from_wire(&longer).unwrap_err().contains("trailing"));
        assert!(ManagedConfig::from_wire(&wire[..wire.len() - 3]).is_err(), "truncated");
        let bad = with(|c| c.agent.status_period_s = Some(1)).to_wire();
        assert!(ManagedConfig::from_wire(&bad).unwrap_err().contains("agent.status_period_s"));
        assert!(ManagedConfig::from_wire(&alloc::vec![WIRE_VERSION; MAX_WIRE_BYTES + 1]).is_err());
        // Any bytes: an error or settings that hold, never a panic.
        for len in 0..64u8 {
            let bytes: Vec<u8> = (0..len).map(|i| i.wrapping_mul(37) ^ len).collect();
            if let Ok(Some(c)) = ManagedConfig::from_wire(&bytes) {
                assert_eq!(c.check(), Ok(()));
            }
        }
    }

    #[test]
    fn a_newer_agents_keys_are_ignored_when_read() {
        let newer = r#"{"agent": {"status_period_s": 30, "reboot_command": "x"}, "radio": {"power": 14}}"#;
        let read: ManagedConfig = serde_json::from_str(newer).unwrap();
        assert_eq!(read.keys_set(), ["agent.status_period_s"]);
    }
}
