//! The JSON form of the fleet summary (`/api/v1/fleet`): device states counted per site,
//! building and room.

use neosens_protocol::ids::{BuildingId, RoomId, SiteId};
use serde::Serialize;

use crate::registry;

/// How many devices are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub(crate) struct StateCounts {
    /// Seen within their threshold.
    pub(crate) ok: usize,
    /// Not seen for longer than their threshold.
    pub(crate) outdated: usize,
    /// Registered, never heard from.
    pub(crate) never_seen: usize,
    /// Disabled by an operator.
    pub(crate) disabled: usize,
}

/// A room and its devices' states (by main room).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct RoomSummary {
    /// Id.
    #[schema(value_type = String, format = Uuid)]
    pub(crate) id: RoomId,
    /// Name.
    pub(crate) name: String,
    /// Counts.
    pub(crate) counts: StateCounts,
}

/// A building, its rooms, and their sum.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct BuildingSummary {
    /// Id.
    #[schema(value_type = String, format = Uuid)]
    pub(crate) id: BuildingId,
    /// Name.
    pub(crate) name: String,
    /// Counts over its rooms.
    pub(crate) counts: StateCounts,
    /// Rooms, by name.
    pub(crate) rooms: Vec<RoomSummary>,
    /// Served by a gateway in local-broker mode that is out of reach: its devices' statuses
    /// wait on the gateway (no outage alert is raised for them meanwhile).
    pub(crate) disconnected: bool,
}

/// A site, its buildings, and their sum.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct SiteSummary {
    /// Id.
    #[schema(value_type = String, format = Uuid)]
    pub(crate) id: SiteId,
    /// Slug.
    pub(crate) slug: String,
    /// Name.
    pub(crate) name: String,
    /// Counts over its buildings.
    pub(crate) counts: StateCounts,
    /// Buildings, by name.
    pub(crate) buildings: Vec<BuildingSummary>,
    /// Some of its buildings are disconnected (their gateway out of reach).
    pub(crate) disconnected: bool,
}

/// The whole fleet.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct FleetSummary {
    /// Every device.
    pub(crate) total: StateCounts,
    /// Devices without a room (counted in `total` only).
    pub(crate) unplaced: StateCounts,
    /// Sites, by name.
    pub(crate) sites: Vec<SiteSummary>,
}

impl From<registry::StateTally> for StateCounts {
    fn from(v: registry::StateTally) -> Self {
        StateCounts { ok: v.ok, outdated: v.outdated, never_seen: v.never_seen, disabled: v.disabled }
    }
}

impl From<registry::RoomFleet> for RoomSummary {
    fn from(v: registry::RoomFleet) -> Self {
        RoomSummary { id: v.id, name: v.name, counts: v.counts.into() }
    }
}

impl From<registry::BuildingFleet> for BuildingSummary {
    fn from(v: registry::BuildingFleet) -> Self {
        BuildingSummary {
            id: v.id,
            name: v.name,
            counts: v.counts.into(),
            rooms: v.rooms.into_iter().map(Into::into).collect(),
            disconnected: false,
        }
    }
}

impl From<registry::SiteFleet> for SiteSummary {
    fn from(v: registry::SiteFleet) -> Self {
        SiteSummary {
            id: v.id,
            slug: v.slug,
            name: v.name,
            counts: v.counts.into(),
            buildings: v.buildings.into_iter().map(Into::into).collect(),
            disconnected: false,
        }
    }
}

impl From<registry::Fleet> for FleetSummary {
    fn from(v: registry::Fleet) -> Self {
        FleetSummary {
            total: v.total.into(),
            unplaced: v.unplaced.into(),
            sites: v.sites.into_iter().map(Into::into).collect(),
        }
    }
}

impl FleetSummary {
    /// Marks the disconnected buildings, and their sites.
    pub(crate) fn mark_disconnected(&mut self, buildings: &std::collections::HashSet<BuildingId>) {
        for site in &mut self.sites {
            for b in &mut site.buildings {
                b.disconnected = buildings.contains(&b.id);
            }
            site.disconnected = site.buildings.iter().any(|b| b.disconnected);
        }
    }
}
