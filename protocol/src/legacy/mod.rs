//! The sensOCampus payloads that devices already on the walls send and expect.
//!
//! Spec: `legacy-sensocampus.md` §3 (HTTP provisioning, the firmware-update check: [`ota`]),
//! §4 (configuration), §5 (MQTT).
//! The rule of thumb: **print exactly** where devices or consumers care (key order, `password`
//! omitted rather than null, integer `port`, Python separators on server answers, compact
//! insertion-order JSON on device messages) and **parse leniently** where devices differ (case of
//! `dest` and `unitID`, RPi vs firmware statuses, unknown fields kept).

mod command;
mod config;
mod credentials;
mod json;
mod logger;
pub mod ota;
mod reading;
mod status;

pub use command::{Command, CommandValue, KnownOrder, OrderValue, publish_packet_len};
pub use config::{ConfigResponse, validate_zones};
pub use credentials::Credentials;
pub use logger::LogRecord;
pub use reading::{ModuleMessage, ReadingValue, SensorReading};
pub use status::{DeviceState, DeviceStatus, FirmwareStatus};

/// The firmware copies HTTP bodies into a 1024-byte buffer with `snprintf`: anything past 1023
/// bytes is cut and the JSON no longer parses (§2).
pub const MAX_HTTP_BODY: usize = 1023;

/// PubSubClient's buffer: a whole MQTT packet, header included, must fit in 256 bytes (§5.7).
pub const MAX_MQTT_PACKET: usize = 256;

/// The firmware parses commands into a `StaticJsonDocument<JSON_OBJECT_SIZE(5)>` (§5.6).
pub const MAX_COMMAND_KEYS: usize = 5;
