//! The registry's records, as stored and as the rest of central sees them.
//!
//! Records are plain data; the rules that keep them consistent (unique MACs, topics that follow
//! renames, configurations that match their type's schema) live in [`crate::registry`].

mod access;
mod alert;
mod audit;
mod bulk;
mod device;
mod device_type;
mod firmware;
mod gateway;
mod location;
mod lorawan;
mod order;
mod status_rule;
mod timestamp;

pub use access::{ApiToken, ApiTokenV7, Role, Scope, TokenId, User, UserId, UserV7};
pub use alert::{Ack, AlertKind, AlertRecord};
pub use audit::{Actor, AuditEntry, FieldChange};
pub use bulk::{BulkAction, BulkOperation, BulkOutcome};
pub use device::{Device, DeviceSecret, DeviceStatusRecord, DeviceV2, DeviceV3, MqttEndpoint};
pub use device_type::{
    DEFAULT_STATUS_PERIOD_S, DeviceType, DeviceTypeV1, DeviceTypeV2, DeviceTypeV3, firmware_orders,
};
pub use firmware::{
    Campaign, CampaignEvent, CampaignState, DeviceProgress, ESP_HARDWARE, ESP_IMAGE_MAGIC, FirmwareImage,
    MAX_CAMPAIGN_EVENTS, MAX_WAVES, RevisionCount, Stage, Wave, wave_order,
};
pub use gateway::{
    Enrolment, Gateway, GatewayCredentials, GatewayScope, GatewaySettings, GatewaySettingsV9, GatewayV2,
    GatewayV8, GatewayV9, LocalBroker,
};
pub use location::{Building, Room, RoomTopic, Site};
pub use lorawan::{Codec, LastJoin, LorawanSession, OtaaKeys};
pub use order::OrderRecord;
pub use status_rule::{MAX_RULES, RuleOp, RuleValue, StatusRule, StatusRuleSpec};
pub use timestamp::Timestamp;

/// The kinds of record the store keeps, in the change log and as table names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntityKind {
    /// [`Site`]
    Site,
    /// [`Building`]
    Building,
    /// [`Room`]
    Room,
    /// [`DeviceType`]
    DeviceType,
    /// [`Device`]
    Device,
    /// [`Gateway`]
    Gateway,
    /// [`User`]
    User,
    /// [`ApiToken`]
    Token,
}

impl EntityKind {
    /// Every kind, parents before children (a room's building and site come before it, a
    /// device's type and rooms before it).
    pub const ALL: [EntityKind; 8] = [
        EntityKind::Site,
        EntityKind::Building,
        EntityKind::Room,
        EntityKind::DeviceType,
        EntityKind::Device,
        EntityKind::Gateway,
        EntityKind::User,
        EntityKind::Token,
    ];
}

/// Any record, for store batches.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// A site.
    Site(Site),
    /// A building.
    Building(Building),
    /// A room.
    Room(Room),
    /// A device type.
    DeviceType(DeviceType),
    /// A device.
    Device(Box<Device>),
    /// A gateway.
    Gateway(Box<Gateway>),
    /// A user.
    User(User),
    /// An API token.
    Token(ApiToken),
}

impl Record {
    /// Its kind.
    pub fn kind(&self) -> EntityKind {
        match self {
            Record::Site(_) => EntityKind::Site,
            Record::Building(_) => EntityKind::Building,
            Record::Room(_) => EntityKind::Room,
            Record::DeviceType(_) => EntityKind::DeviceType,
            Record::Device(_) => EntityKind::Device,
            Record::Gateway(_) => EntityKind::Gateway,
            Record::User(_) => EntityKind::User,
            Record::Token(_) => EntityKind::Token,
        }
    }

    /// Its id as 16 bytes (every record id is a UUID).
    pub fn key(&self) -> [u8; 16] {
        match self {
            Record::Site(r) => r.id.to_bytes(),
            Record::Building(r) => r.id.to_bytes(),
            Record::Room(r) => r.id.to_bytes(),
            Record::DeviceType(r) => r.id.to_bytes(),
            Record::Device(r) => r.id.to_bytes(),
            Record::Gateway(r) => r.id.to_bytes(),
            Record::User(r) => r.id.to_bytes(),
            Record::Token(r) => r.id.to_bytes(),
        }
    }
}

/// A new random UUID (v4) for a record id.
pub fn new_uuid() -> uuid::Uuid {
    uuid::Uuid::new_v4()
}
