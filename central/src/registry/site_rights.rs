//! Rights per site: which devices a site-limited user or token sees and may change.
//!
//! Reads take the caller's [`Scope`] explicitly (listings, a device's page). Writes are checked
//! in one place, [`Registry::mutate_as`](super::Registry), against the scope of the work running
//! on this thread ([`within`], set by [`Registry::acting`](super::Registry::acting) from the
//! principal): whatever path a change takes — one device, a bulk action, an import row — a
//! site-limited caller can only change devices whose rooms are all on its sites, and nothing
//! else in the registry.

use std::cell::RefCell;

use neosens_protocol::ids::{BuildingId, DeviceId, SiteId};

use super::RegistryError;
use super::state::State;
use crate::model::{Device, EntityKind, Record, Role, Scope};
use crate::store::Write;

/// Sites one user or token may be limited to: enough for every site of a federation, small
/// enough that checks stay cheap.
pub const MAX_GRANTED_SITES: usize = 64;

thread_local! {
    static SCOPE: RefCell<Scope> = const { RefCell::new(Scope::Campus) };
}

/// Runs `work` with `scope` as the reach of the changes it makes on this thread.
pub(crate) fn within<T>(scope: Scope, work: impl FnOnce() -> T) -> T {
    struct Restore(Option<Scope>);
    impl Drop for Restore {
        fn drop(&mut self) {
            if let Some(previous) = self.0.take() {
                SCOPE.with(|s| *s.borrow_mut() = previous);
            }
        }
    }
    let _restore = Restore(Some(SCOPE.with(|s| s.replace(scope))));
    work()
}

/// The scope set by [`within`] on this thread: the whole campus for central's own work.
pub(crate) fn current_scope() -> Scope {
    SCOPE.with(|s| s.borrow().clone())
}

/// The sites of a device's rooms (a room or building since deleted counts as no site).
pub(crate) fn device_sites<'a>(state: &'a State, device: &'a Device) -> impl Iterator<Item = SiteId> + 'a {
    device
        .rooms
        .iter()
        .filter_map(|r| state.rooms.get(r))
        .filter_map(|room| state.buildings.get(&room.building))
        .map(|b| b.site)
}

/// Whether `scope` sees `device`: the campus sees all; a site-limited caller sees the devices
/// with a room on one of its sites (never the unplaced ones).
pub(crate) fn sees(state: &State, scope: &Scope, device: &Device) -> bool {
    match scope {
        Scope::Campus => true,
        Scope::Sites(_) => device_sites(state, device).any(|s| scope.covers(s)),
    }
}

/// Whether `scope` may change `device`: every room of it on its sites, and at least one room.
fn may_change(state: &State, scope: &Scope, device: &Device) -> bool {
    match scope {
        Scope::Campus => true,
        Scope::Sites(_) => {
            // Every room placed (on a building that still exists), each on one of its sites.
            let mut placed = 0;
            let all_covered = device_sites(state, device).all(|s| {
                placed += 1;
                scope.covers(s)
            });
            all_covered && placed > 0 && placed == device.rooms.len()
        }
    }
}

fn outside(scope: &Scope) -> RegistryError {
    let reach = match scope {
        Scope::Campus => "the campus".to_owned(),
        Scope::Sites(s) => format!("{} site(s)", s.len()),
    };
    RegistryError::Forbidden {
        message: format!(
            "this change reaches outside your sites: your rights cover {reach}; place the device only \
             in rooms of your sites, or ask a campus-wide operator"
        ),
    }
}

/// Refuses writes outside `scope`: for a site-limited caller, only devices it may change, before
/// and after. A device it cannot see is "not found", as in its listings.
pub(crate) fn check_writes(state: &State, scope: &Scope, writes: &[Write]) -> Result<(), RegistryError> {
    if scope.is_campus() {
        return Ok(());
    }
    for write in writes {
        let (id, new) = match write {
            Write::Put(Record::Device(d)) => (d.id, Some(d.as_ref())),
            Write::Delete(EntityKind::Device, key) => (DeviceId::from_bytes(*key), None),
            Write::Put(_) | Write::Delete(..) => return Err(outside(scope)),
        };
        check_device(state, scope, state.devices.get(&id).map(|e| &e.record), new)?;
    }
    Ok(())
}

/// Refuses a change of one device (from `old`, to `new`; `None`: absent) outside `scope`.
pub(crate) fn check_device(
    state: &State,
    scope: &Scope,
    old: Option<&Device>,
    new: Option<&Device>,
) -> Result<(), RegistryError> {
    if let Some(old) = old {
        if !sees(state, scope, old) {
            return Err(RegistryError::not_found(format!("device {}", old.uid)));
        }
        if !may_change(state, scope, old) {
            return Err(outside(scope));
        }
    }
    match new {
        Some(new) if !may_change(state, scope, new) => Err(outside(scope)),
        _ => Ok(()),
    }
}

impl super::Registry {
    /// The id of a device `scope` may act on — change it, order it: not found when it does not
    /// see it, refused when it sees it but a room of it is on another site (an order goes to the
    /// device's main room, which could be that other site's).
    pub fn changeable_device(&self, key: &str, scope: &Scope) -> Result<DeviceId, RegistryError> {
        let state = self.state.read();
        let device = super::devices::resolve_device(&state, key)
            .map(|e| &e.record)
            .filter(|d| sees(&state, scope, d))
            .ok_or_else(|| RegistryError::not_found(format!("device {key}")))?;
        if !may_change(&state, scope, device) {
            return Err(outside(scope));
        }
        Ok(device.id)
    }

    /// The devices of `ids` that `scope` may act on, in their order.
    pub fn only_changeable(&self, scope: &Scope, ids: Vec<DeviceId>) -> Vec<DeviceId> {
        if scope.is_campus() {
            return ids;
        }
        let state = self.state.read();
        ids.into_iter()
            .filter(|id| state.devices.get(id).is_some_and(|e| may_change(&state, scope, &e.record)))
            .collect()
    }

    /// Whether `scope` may act on something placed in `building` or about `device` (acknowledge
    /// an alert): about a device, a device it may change (its building is only its main room's);
    /// about a building alone, the building on its sites.
    pub fn may_act_on_place(
        &self,
        scope: &Scope,
        building: Option<BuildingId>,
        device: Option<DeviceId>,
    ) -> bool {
        match device {
            Some(device) => self.place_check(scope, None, Some(device), may_change),
            None => self.place_check(scope, building, None, may_change),
        }
    }

    /// Whether `scope` sees something placed in `building` or about `device` (an alert): a
    /// site-limited caller sees it when the building is on its sites or it sees the device; what
    /// is about neither (a silent forwarder) is campus-wide.
    pub fn sees_place(&self, scope: &Scope, building: Option<BuildingId>, device: Option<DeviceId>) -> bool {
        self.place_check(scope, building, device, sees)
    }

    fn place_check(
        &self,
        scope: &Scope,
        building: Option<BuildingId>,
        device: Option<DeviceId>,
        device_check: fn(&State, &Scope, &Device) -> bool,
    ) -> bool {
        if scope.is_campus() {
            return true;
        }
        let state = self.state.read();
        building.and_then(|b| state.buildings.get(&b)).is_some_and(|b| scope.covers(b.site))
            || device
                .and_then(|d| state.devices.get(&d))
                .is_some_and(|d| device_check(&state, scope, &d.record))
    }
}

/// Resolves the site slugs granted to a user or token; refuses unknown sites, too many, and a
/// site-limited admin (administration is campus-wide: users, tokens, the structure). An id among
/// `kept` (the grant as it stands) is kept even when its site was deleted, so a grant shown with
/// a deleted site's id can be sent back unchanged without widening.
pub(crate) fn resolve_grants(
    state: &State,
    role: Role,
    slugs: &[String],
    kept: &[SiteId],
) -> Result<Vec<SiteId>, RegistryError> {
    if slugs.len() > MAX_GRANTED_SITES {
        return Err(RegistryError::invalid("sites", format!("at most {MAX_GRANTED_SITES} sites")));
    }
    if !slugs.is_empty() && role == Role::Admin {
        return Err(RegistryError::invalid(
            "sites",
            "an admin is campus-wide; limit a viewer or an operator to sites instead",
        ));
    }
    let mut ids = Vec::with_capacity(slugs.len());
    for slug in slugs {
        if let Some(id) = slug.trim().parse::<SiteId>().ok().filter(|id| kept.contains(id)) {
            if !ids.contains(&id) {
                ids.push(id);
            }
            continue;
        }
        let site = state
            .sites
            .values()
            .find(|s| s.slug.eq_ignore_ascii_case(slug.trim()) || s.id.to_string() == slug.trim())
            .ok_or_else(|| RegistryError::invalid("sites", format!("no site {slug:?}")))?;
        if !ids.contains(&site.id) {
            ids.push(site.id);
        }
    }
    Ok(ids)
}

/// The slugs of granted sites, for views (a deleted site shows as its id: it still narrows).
pub(crate) fn slugs_of(state: &State, sites: &[SiteId]) -> Vec<String> {
    sites.iter().map(|id| state.sites.get(id).map_or_else(|| id.to_string(), |s| s.slug.clone())).collect()
}

#[cfg(test)]
#[path = "site_rights_tests.rs"]
mod tests;
