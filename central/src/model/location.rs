//! Sites, buildings and rooms: where devices are, and so which MQTT topics they use.

use neosens_protocol::ids::{BuildingId, RoomId, SiteId};
use serde::{Deserialize, Serialize};

/// A site: the default campus (`ut3`) or one "abroad" (topics under `abroad/<slug>/`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Site {
    /// Id.
    pub id: SiteId,
    /// Short name used in topics; unique.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Exactly one site is the default one.
    pub is_default: bool,
}

/// A building of a site. The special building `outside` holds outdoor areas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Building {
    /// Id.
    pub id: BuildingId,
    /// The site.
    pub site: SiteId,
    /// Display name; unique within the site.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Whether this is the site's `outside` building (topics `outside/<area>`).
    pub outside: bool,
}

/// How a room's base topic is decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RoomTopic {
    /// Derived from the site, building and room names (the legacy rule); follows renames.
    Derived,
    /// Kept as stored in the 2016 database, where devices and consumers already use it; follows
    /// the rule again only when an operator asks for it.
    Imported(String),
}

/// A room of a building, or an outdoor area.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Room {
    /// Id.
    pub id: RoomId,
    /// The building.
    pub building: BuildingId,
    /// Display name; unique within the building.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Where its base topic comes from.
    pub topic: RoomTopic,
}
