//! Edge gateways and the share of the registry each one holds.

use neosens_protocol::ids::{BuildingId, GatewayId, SiteId};
use serde::{Deserialize, Serialize};

use super::Timestamp;

/// What part of the registry a gateway serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum GatewayScope {
    /// A whole site.
    Site(SiteId),
    /// Some buildings.
    Buildings(Vec<BuildingId>),
}

/// An edge gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gateway {
    /// Id.
    pub id: GatewayId,
    /// Unique name.
    pub name: String,
    /// Its scope.
    pub scope: GatewayScope,
    /// When it was created.
    pub created_at: Timestamp,
}
