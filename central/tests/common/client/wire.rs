//! The answers of central's API as the integration tests read them: written here, independent of
//! the server's own view types, so that a change on the wire (a renamed or retyped field) fails a
//! test instead of following silently. Only the fields tests read; unknown fields are ignored so
//! that adding one never breaks a test.

use serde::Deserialize;
use serde_json::{Map, Value};

/// `GET /api/v1/devices`: a page of devices and how many match in all.
#[derive(Debug, Deserialize)]
pub(crate) struct DevicePage {
    pub items: Vec<Device>,
    pub total: u64,
}

/// A site.
#[derive(Debug, Deserialize)]
pub(crate) struct Site {
    pub slug: String,
    pub name: String,
}

/// A building.
#[derive(Debug, Deserialize)]
pub(crate) struct Building {
    pub id: String,
    pub name: String,
    /// The site's outdoor-areas building.
    pub outside: bool,
}

/// A room.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Room {
    pub id: String,
    /// How many devices are in it.
    pub devices: u64,
    pub building: String,
    pub name: String,
    pub base_topic: Option<String>,
    /// `derived` or `kept`.
    pub topic_source: String,
}

/// A device type.
#[derive(Debug, Deserialize)]
pub(crate) struct DeviceType {
    pub name: String,
    pub status_rules: Vec<StatusRule>,
}

/// A failure-state rule of a device type.
#[derive(Debug, Deserialize)]
pub(crate) struct StatusRule {
    pub name: String,
    pub field: String,
    pub op: String,
    pub value: Value,
}

/// A device.
#[derive(Debug, Deserialize)]
pub(crate) struct Device {
    pub id: String,
    /// The MAC (upper case) or other unique id.
    pub uid: String,
    #[serde(rename = "type")]
    pub device_type: String,
    pub login: String,
    pub credentials_delivered: bool,
    /// `ok`, `outdated`, `never_seen` or `disabled`.
    pub state: String,
    pub base_topic: Option<String>,
    pub last_seen: Option<String>,
    pub last_status: Option<String>,
    /// The last status as the device sent it (free-form).
    pub last_payload: Option<Map<String, Value>>,
}

/// A stored log record (`POST /device/logger`).
#[derive(Debug, Deserialize)]
pub(crate) struct DeviceLog {
    /// The Python logging record's fields as posted (free-form).
    pub record: Map<String, Value>,
    pub remote_addr: String,
}

/// An order as recorded (and the answer to sending one).
#[derive(Debug, Deserialize)]
pub(crate) struct OrderRecord {
    pub order: String,
    pub by: String,
    /// `sent` or why not.
    pub outcome: String,
    /// The exact bytes published.
    pub payload: String,
}

/// A gateway as created or listed.
#[derive(Debug, Deserialize)]
pub(crate) struct Gateway {
    pub id: String,
    /// Devices in its scope now.
    pub devices: u64,
    pub enrolled_at: Option<String>,
}

/// A gateway read alone: with what central knows of its health.
#[derive(Debug, Deserialize)]
pub(crate) struct GatewayStatus {
    #[serde(flatten)]
    pub gateway: Gateway,
    pub up: bool,
    pub health: Option<GatewayContact>,
}

/// The gateway's last contact.
#[derive(Debug, Deserialize)]
pub(crate) struct GatewayContact {
    pub report: Option<HealthReport>,
}

/// What a gateway reports of itself.
#[derive(Debug, Deserialize)]
pub(crate) struct HealthReport {
    pub outbox_depth: u64,
}

/// `POST /api/v1/gateways/{id}/enrolment`.
#[derive(Debug, Deserialize)]
pub(crate) struct EnrolmentToken {
    pub token: String,
}

/// `POST /api/v1/edge/enroll`: what a gateway receives once.
#[derive(Debug, Deserialize)]
pub(crate) struct EnrolGrant {
    pub gateway_id: String,
    pub name: String,
    /// Its bearer secret for the edge API.
    pub secret: String,
    /// The key material, hex.
    pub keys: String,
    pub mqtt_username: String,
    pub mqtt_password: String,
}

/// `POST /api/v1/edge/deliveries`.
#[derive(Debug, Deserialize)]
pub(crate) struct DeliveryReport {
    pub newly_delivered: u64,
}

/// `POST /api/v1/edge/logs`: relayed log lines stored, and refused (not of the gateway's scope).
#[derive(Debug, Deserialize)]
pub(crate) struct LogsRelayed {
    pub stored: u64,
    pub refused: u64,
}

/// An API token as listed.
#[derive(Debug, Deserialize)]
pub(crate) struct TokenInfo {
    pub id: String,
    pub name: String,
    pub role: String,
}

/// A new API token: its text, shown once.
#[derive(Debug, Deserialize)]
pub(crate) struct NewToken {
    pub token: String,
}

/// A user.
#[derive(Debug, Deserialize)]
pub(crate) struct User {
    pub id: String,
    pub username: String,
    pub role: String,
}

/// An alert.
#[derive(Debug, Deserialize)]
pub(crate) struct Alert {
    pub id: u64,
    /// `outage`, `failure`, `foreign_delivery` …
    pub kind: String,
    /// `open` or `resolved`.
    pub state: String,
    /// The device concerned (failures, notices).
    pub device: Option<String>,
    pub rule: Option<String>,
    pub detail: Option<String>,
    /// The operator's acknowledgement (its fields are not read here).
    pub ack: Option<serde_json::Value>,
}

/// Devices by state (those the tests count).
#[derive(Debug, Deserialize)]
pub(crate) struct StateCounts {
    pub never_seen: u64,
    pub disabled: u64,
}

/// `GET /api/v1/fleet`.
#[derive(Debug, Deserialize)]
pub(crate) struct Fleet {
    pub total: StateCounts,
    pub sites: Vec<FleetSite>,
}

/// A site in the fleet summary.
#[derive(Debug, Deserialize)]
pub(crate) struct FleetSite {
    pub buildings: Vec<FleetBuilding>,
}

/// A building in the fleet summary.
#[derive(Debug, Deserialize)]
pub(crate) struct FleetBuilding {
    pub name: String,
    pub rooms: Vec<FleetRoom>,
}

/// A room in the fleet summary.
#[derive(Debug, Deserialize)]
pub(crate) struct FleetRoom {
    pub name: String,
    pub counts: StateCounts,
}

/// `POST /api/v1/session`.
#[derive(Debug, Deserialize)]
pub(crate) struct SignedIn {
    pub csrf_token: String,
}

/// `GET /api/v1/session`: who is signed in.
#[derive(Debug, Deserialize)]
pub(crate) struct Me {
    pub username: String,
    pub role: String,
}

/// go-auth's JSON contract on `/mqtt/auth`, `/mqtt/acl`, `/mqtt/superuser`.
#[derive(Debug, Deserialize)]
pub(crate) struct BrokerAnswer {
    pub ok: bool,
    /// Why not (`bad_credentials`, `disabled` …), on some refusals.
    pub error: Option<String>,
}

/// `/readyz`.
#[derive(Debug, Deserialize)]
pub(crate) struct Ready {
    pub checks: ReadyChecks,
}

/// The checks `/readyz` runs.
#[derive(Debug, Deserialize)]
pub(crate) struct ReadyChecks {
    pub store: Check,
    pub broker_link: Check,
}

/// One readiness check.
#[derive(Debug, Deserialize)]
pub(crate) struct Check {
    pub ok: bool,
}

/// The device's first `/device/credentials` answer (the legacy shape; exact bytes are checked
/// where they matter).
#[derive(Debug, Deserialize)]
pub(crate) struct LegacyCredentials {
    pub login: String,
    pub password: Option<String>,
}

/// `import-legacy --json`: what was imported.
#[derive(Debug, Deserialize)]
pub(crate) struct ImportReport {
    pub dry_run: bool,
    pub types: ImportCounts,
    pub buildings: ImportCounts,
    pub rooms: ImportCounts,
    pub devices: ImportCounts,
    /// `(row, why)` pairs.
    pub rejected: Vec<(String, String)>,
    /// `(row, what)` pairs.
    pub warnings: Vec<(String, String)>,
    pub standard_permissions: u64,
    pub skipped_rows: u64,
}

/// Created, updated and unchanged rows of one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub(crate) struct ImportCounts {
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
}
