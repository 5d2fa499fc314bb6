//! The fleet at a glance: device counts by state for every site, building and room, the view
//! the dashboard's overview polls. Computed from memory in one pass (about a millisecond for
//! 10k devices), so it needs no cache of its own.

use std::collections::HashMap;

use neosens_protocol::ids::{BuildingId, RoomId, SiteId};

use super::Registry;
use super::devices::{DeviceState, state_of, threshold};
use crate::model::Timestamp;

/// How many devices are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateTally {
    /// Seen within their threshold.
    pub ok: usize,
    /// Not seen for longer than their threshold.
    pub outdated: usize,
    /// Registered, never heard from.
    pub never_seen: usize,
    /// Disabled by an operator.
    pub disabled: usize,
}

impl StateTally {
    fn add(&mut self, state: DeviceState) {
        match state {
            DeviceState::Ok => self.ok += 1,
            DeviceState::Outdated => self.outdated += 1,
            DeviceState::NeverSeen => self.never_seen += 1,
            DeviceState::Disabled => self.disabled += 1,
        }
    }

    fn merge(&mut self, other: StateTally) {
        self.ok += other.ok;
        self.outdated += other.outdated;
        self.never_seen += other.never_seen;
        self.disabled += other.disabled;
    }
}

/// A room and its devices' states (by main room).
#[derive(Debug, Clone)]
pub struct RoomFleet {
    /// Id.
    pub id: RoomId,
    /// Name.
    pub name: String,
    /// Counts.
    pub counts: StateTally,
}

/// A building, its rooms, and their sum.
#[derive(Debug, Clone)]
pub struct BuildingFleet {
    /// Id.
    pub id: BuildingId,
    /// Name.
    pub name: String,
    /// Counts over its rooms.
    pub counts: StateTally,
    /// Rooms, by name.
    pub rooms: Vec<RoomFleet>,
}

/// A site, its buildings, and their sum.
#[derive(Debug, Clone)]
pub struct SiteFleet {
    /// Id.
    pub id: SiteId,
    /// Slug.
    pub slug: String,
    /// Name.
    pub name: String,
    /// Counts over its buildings.
    pub counts: StateTally,
    /// Buildings, by name.
    pub buildings: Vec<BuildingFleet>,
}

/// The whole fleet.
#[derive(Debug, Clone)]
pub struct Fleet {
    /// Every device.
    pub total: StateTally,
    /// Devices without a room (counted in `total` only).
    pub unplaced: StateTally,
    /// Sites, by name.
    pub sites: Vec<SiteFleet>,
}

impl Registry {
    /// Counts by state per site, building and room (a device counts in its main room).
    pub fn fleet_summary(&self) -> Fleet {
        let state = self.state.read();
        let now = Timestamp::now();
        let mut by_room: HashMap<RoomId, StateTally> = HashMap::new();
        let mut total = StateTally::default();
        let mut unplaced = StateTally::default();
        for entry in state.devices.values() {
            let d = &entry.record;
            let s = state_of(d, state.statuses.get(&d.id), threshold(&state, d), now);
            total.add(s);
            match d.rooms.first().filter(|r| state.rooms.contains_key(r)) {
                Some(room) => by_room.entry(*room).or_default().add(s),
                None => unplaced.add(s),
            }
        }
        let mut buildings: HashMap<BuildingId, BuildingFleet> = state
            .buildings
            .values()
            .map(|b| {
                let summary = BuildingFleet {
                    id: b.id,
                    name: b.name.clone(),
                    counts: StateTally::default(),
                    rooms: Vec::new(),
                };
                (b.id, summary)
            })
            .collect();
        for room in state.rooms.values() {
            if let Some(b) = buildings.get_mut(&room.building) {
                let counts = by_room.get(&room.id).copied().unwrap_or_default();
                b.counts.merge(counts);
                b.rooms.push(RoomFleet { id: room.id, name: room.name.clone(), counts });
            }
        }
        let mut sites: HashMap<SiteId, SiteFleet> = state
            .sites
            .values()
            .map(|s| {
                let summary = SiteFleet {
                    id: s.id,
                    slug: s.slug.clone(),
                    name: s.name.clone(),
                    counts: StateTally::default(),
                    buildings: Vec::new(),
                };
                (s.id, summary)
            })
            .collect();
        for (_, mut b) in buildings {
            let site = state.buildings.get(&b.id).map(|x| x.site);
            if let Some(s) = site.and_then(|id| sites.get_mut(&id)) {
                b.rooms.sort_by(|x, y| x.name.cmp(&y.name));
                s.counts.merge(b.counts);
                s.buildings.push(b);
            }
        }
        let mut sites: Vec<SiteFleet> = sites.into_values().collect();
        for s in &mut sites {
            s.buildings.sort_by(|x, y| x.name.cmp(&y.name));
        }
        sites.sort_by(|x, y| x.name.cmp(&y.name));
        Fleet { total, unplaced, sites }
    }
}

impl Fleet {
    /// The part `scope` sees: its sites only, and their sum as the total (unplaced devices are
    /// on no site, so campus-wide).
    pub fn within(mut self, scope: &crate::model::Scope) -> Fleet {
        if scope.is_campus() {
            return self;
        }
        self.sites.retain(|s| scope.covers(s.id));
        self.unplaced = StateTally::default();
        self.total = StateTally::default();
        for s in &self.sites {
            self.total.merge(s.counts);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::test_registry;

    #[test]
    fn counts_add_up_per_room_building_and_site() {
        let dir = tempfile::tempdir().unwrap();
        let (registry, _, _) = test_registry(dir.path(), 30);
        let summary = registry.fleet_summary();
        let placed: usize = summary
            .sites
            .iter()
            .flat_map(|s| &s.buildings)
            .flat_map(|b| &b.rooms)
            .map(|r| r.counts.ok + r.counts.outdated + r.counts.never_seen + r.counts.disabled)
            .sum();
        let total = summary.total;
        assert_eq!(total.ok + total.outdated + total.never_seen + total.disabled, 30);
        let unplaced = summary.unplaced;
        assert_eq!(placed + unplaced.ok + unplaced.outdated + unplaced.never_seen + unplaced.disabled, 30);
        for site in &summary.sites {
            let mut sum = StateTally::default();
            for b in &site.buildings {
                let mut rooms = StateTally::default();
                b.rooms.iter().for_each(|r| rooms.merge(r.counts));
                assert_eq!(rooms, b.counts, "building {} is the sum of its rooms", b.name);
                sum.merge(b.counts);
            }
            assert_eq!(sum, site.counts, "site {} is the sum of its buildings", site.name);
        }
        assert_eq!(total.never_seen, 30, "the fixture's devices were never heard from");
    }
}
