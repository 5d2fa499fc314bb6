//! The JSON forms of sites, buildings and rooms (`/api/v1/sites`, `/buildings`, `/rooms`).

use neosens_protocol::ids::{BuildingId, RoomId, SiteId};
use serde::{Deserialize, Serialize};

use crate::registry;

/// A new site.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SiteInput {
    /// Short name used in topics: lowercase letters, digits and `_`.
    pub(crate) slug: String,
    /// Display name.
    pub(crate) name: String,
}

/// Changes to a site.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SitePatch {
    /// New slug (topics of every room of the site follow).
    pub(crate) slug: Option<String>,
    /// New display name.
    pub(crate) name: Option<String>,
}

/// A new building.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BuildingInput {
    /// The site (id or slug); the default site when absent.
    pub(crate) site: Option<String>,
    /// Display name.
    pub(crate) name: String,
    /// Free text.
    #[serde(default)]
    pub(crate) description: String,
}

/// Changes to a building.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BuildingPatch {
    /// New name (derived topics of its rooms follow).
    pub(crate) name: Option<String>,
    /// New description.
    pub(crate) description: Option<String>,
}

/// A new room (or outdoor area, in a site's `outside` building).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RoomInput {
    /// The building id.
    #[schema(value_type = String, format = Uuid)]
    pub(crate) building: BuildingId,
    /// Display name.
    pub(crate) name: String,
    /// Free text.
    #[serde(default)]
    pub(crate) description: String,
    /// A topic to keep instead of the derived one (rooms moved from another system).
    pub(crate) topic: Option<String>,
}

/// Changes to a room.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RoomPatch {
    /// New name (its derived topic follows).
    pub(crate) name: Option<String>,
    /// New description.
    pub(crate) description: Option<String>,
    /// `true`: drop a kept (imported) topic and follow the naming rule from now on.
    #[serde(default)]
    pub(crate) follow_rule: bool,
}

/// A room as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct RoomView {
    /// Id.
    #[schema(value_type = String, format = Uuid)]
    pub(crate) id: RoomId,
    /// Building id.
    #[schema(value_type = String, format = Uuid)]
    pub(crate) building: BuildingId,
    /// Site id.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub(crate) site: Option<SiteId>,
    /// Name.
    pub(crate) name: String,
    /// Description.
    pub(crate) description: String,
    /// Its base topic.
    pub(crate) base_topic: Option<String>,
    /// `derived` (follows renames) or `kept` (imported as stored).
    pub(crate) topic_source: &'static str,
    /// Number of devices in it.
    pub(crate) devices: usize,
}

impl From<SiteInput> for registry::NewSite {
    fn from(v: SiteInput) -> Self {
        registry::NewSite { slug: v.slug, name: v.name }
    }
}

impl From<SitePatch> for registry::SiteChanges {
    fn from(v: SitePatch) -> Self {
        registry::SiteChanges { slug: v.slug, name: v.name }
    }
}

impl From<BuildingInput> for registry::NewBuilding {
    fn from(v: BuildingInput) -> Self {
        registry::NewBuilding { site: v.site, name: v.name, description: v.description }
    }
}

impl From<BuildingPatch> for registry::BuildingChanges {
    fn from(v: BuildingPatch) -> Self {
        registry::BuildingChanges { name: v.name, description: v.description }
    }
}

impl From<RoomInput> for registry::NewRoom {
    fn from(v: RoomInput) -> Self {
        registry::NewRoom { building: v.building, name: v.name, description: v.description, topic: v.topic }
    }
}

impl From<RoomPatch> for registry::RoomChanges {
    fn from(v: RoomPatch) -> Self {
        registry::RoomChanges { name: v.name, description: v.description, follow_rule: v.follow_rule }
    }
}

impl From<registry::RoomInfo> for RoomView {
    fn from(v: registry::RoomInfo) -> Self {
        RoomView {
            id: v.id,
            building: v.building,
            site: v.site,
            name: v.name,
            description: v.description,
            base_topic: v.base_topic,
            topic_source: v.topic_source,
            devices: v.devices,
        }
    }
}

/// A site: the default campus (`ut3`) or one "abroad" (topics under `abroad/<slug>/`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct Site {
    /// Id.
    #[schema(value_type = String, format = Uuid)]
    pub(crate) id: SiteId,
    /// Short name used in topics; unique.
    pub(crate) slug: String,
    /// Display name.
    pub(crate) name: String,
    /// Exactly one site is the default one.
    pub(crate) is_default: bool,
}

impl From<crate::model::Site> for Site {
    fn from(v: crate::model::Site) -> Self {
        Site { id: v.id, slug: v.slug, name: v.name, is_default: v.is_default }
    }
}

/// A building of a site. The special building `outside` holds outdoor areas.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct Building {
    /// Id.
    #[schema(value_type = String, format = Uuid)]
    pub(crate) id: BuildingId,
    /// The site.
    #[schema(value_type = String, format = Uuid)]
    pub(crate) site: SiteId,
    /// Display name; unique within the site.
    pub(crate) name: String,
    /// Free text.
    pub(crate) description: String,
    /// Whether this is the site's `outside` building (topics `outside/<area>`).
    pub(crate) outside: bool,
}

impl From<crate::model::Building> for Building {
    fn from(v: crate::model::Building) -> Self {
        Building { id: v.id, site: v.site, name: v.name, description: v.description, outside: v.outside }
    }
}
