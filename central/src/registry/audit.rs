//! The registry's part of the audit trail: the entries of each committed batch (built from the
//! state before and the writes), entries for what is not a record change, and reading the trail.

use std::sync::Arc;

use neosens_protocol::ids::{BuildingId, DeviceId, DeviceTypeId, GatewayId, RoomId, SiteId};

use super::state::State;
use super::{Principal, Registry, RegistryError, site_rights};
use crate::audit::{self, record_entry};
use crate::model::{Actor, AuditEntry, EntityKind, Record, Scope, Timestamp, TokenId, UserId};
use crate::store::{AuditPage, Write};

/// A record as the state holds it now, if it exists.
fn current_record(state: &State, kind: EntityKind, key: [u8; 16]) -> Option<Record> {
    let uuid = uuid::Uuid::from_bytes(key);
    match kind {
        EntityKind::Site => state.sites.get(&SiteId::from_bytes(key)).cloned().map(Record::Site),
        EntityKind::Building => {
            state.buildings.get(&BuildingId::from_bytes(key)).cloned().map(Record::Building)
        }
        EntityKind::Room => state.rooms.get(&RoomId::from_bytes(key)).cloned().map(Record::Room),
        EntityKind::DeviceType => {
            state.types.get(&DeviceTypeId::from_bytes(key)).map(|t| Record::DeviceType(t.record.clone()))
        }
        EntityKind::Device => {
            state.devices.get(&DeviceId::from_bytes(key)).map(|d| Record::Device(Box::new(d.record.clone())))
        }
        EntityKind::Gateway => {
            state.gateways.get(&GatewayId::from_bytes(key)).map(|g| Record::Gateway(Box::new(g.clone())))
        }
        EntityKind::User => state.users.get(&UserId(uuid)).cloned().map(Record::User),
        EntityKind::Token => state.tokens.get(&TokenId(uuid)).cloned().map(Record::Token),
    }
}

/// The entries describing `writes` against `state` (the state they apply to), by the current
/// actor. A write that changes nothing (the same record put again) gets no entry.
pub(super) fn entries_for(state: &State, writes: &[Write], action: Option<&str>) -> Vec<AuditEntry> {
    let actor = audit::current_actor();
    let at = Timestamp::now();
    writes
        .iter()
        .filter_map(|write| {
            let (kind, key, after) = match write {
                Write::Put(record) => (record.kind(), record.key(), Some(record)),
                Write::Delete(kind, key) => (*kind, *key, None),
            };
            let before = current_record(state, kind, key);
            if before.is_none() && after.is_none() {
                return None;
            }
            let entry = record_entry(kind, key, before.as_ref(), after, action, at, &actor);
            let unchanged = before.is_some() && after.is_some() && entry.changes.is_empty();
            (!unchanged || action.is_some()).then_some(entry)
        })
        .collect()
}

/// Who does a piece of work, and how far its changes may reach.
#[derive(Debug, Clone)]
pub struct Acting {
    actor: Actor,
    scope: Scope,
}

impl From<Actor> for Acting {
    /// Central's own work, a gateway's, a device's: campus-wide.
    fn from(actor: Actor) -> Self {
        Acting { actor, scope: Scope::Campus }
    }
}

impl From<&Principal> for Acting {
    /// A user or token: its own rights per site.
    fn from(p: &Principal) -> Self {
        Acting { actor: Actor::from(p), scope: p.scope.clone() }
    }
}

impl Registry {
    /// Runs `work` on the blocking pool as `acting`: every change it makes is recorded as theirs,
    /// and refused where it reaches outside their sites.
    pub async fn acting<T: Send + 'static>(
        self: &Arc<Self>,
        acting: impl Into<Acting>,
        work: impl FnOnce(&Registry) -> T + Send + 'static,
    ) -> T {
        let Acting { actor, scope } = acting.into();
        self.blocking(move |r| audit::acting(actor, || site_rights::within(scope, || work(r)))).await
    }

    /// Records entries about something other than a record change (an order, a sign-in).
    pub fn record_audit(&self, entries: &[AuditEntry]) -> Result<(), RegistryError> {
        Ok(self.store.append_audit(entries)?)
    }

    /// A page of the trail, newest first (see [`crate::store::AuditStore::audit_page`]).
    pub fn audit_page(
        &self,
        before: Option<u64>,
        limit: usize,
        keep: &dyn Fn(&AuditEntry) -> bool,
    ) -> Result<AuditPage, RegistryError> {
        Ok(self.store.audit_page(before, limit, keep)?)
    }
}
