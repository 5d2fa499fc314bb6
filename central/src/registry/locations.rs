//! Sites, buildings and rooms, and the rule that keeps their base topics unique and current.

use neosens_protocol::ids::{BuildingId, RoomId, SiteId};
use neosens_protocol::location::{BaseTopic, OUTSIDE};

use super::state::State;
use super::{DEFAULT_SITE_SLUG, Registry, RegistryError};
use crate::model::{Building, EntityKind, GatewayScope, Record, Room, RoomTopic, Site, new_uuid};
use crate::store::Write;

/// Longest site, building and room names (the 2016 server's column size).
pub const MAX_NAME_LEN: usize = 64;

/// A new site.
#[derive(Debug, Clone)]
pub struct NewSite {
    /// Short name used in topics: lowercase letters, digits and `_`.
    pub slug: String,
    /// Display name.
    pub name: String,
}

/// Changes to a site.
#[derive(Debug, Clone, Default)]
pub struct SiteChanges {
    /// New slug (topics of every room of the site follow).
    pub slug: Option<String>,
    /// New display name.
    pub name: Option<String>,
}

/// A new building.
#[derive(Debug, Clone)]
pub struct NewBuilding {
    /// The site (id or slug); the default site when absent.
    pub site: Option<String>,
    /// Display name.
    pub name: String,
    /// Free text.
    pub description: String,
}

/// Changes to a building.
#[derive(Debug, Clone, Default)]
pub struct BuildingChanges {
    /// New name (derived topics of its rooms follow).
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
}

/// A new room (or outdoor area, in a site's `outside` building).
#[derive(Debug, Clone)]
pub struct NewRoom {
    /// The building id.
    pub building: BuildingId,
    /// Display name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// A topic to keep instead of the derived one (rooms moved from another system).
    pub topic: Option<String>,
}

/// Changes to a room.
#[derive(Debug, Clone, Default)]
pub struct RoomChanges {
    /// New name (its derived topic follows).
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// `true`: drop a kept (imported) topic and follow the naming rule from now on.
    pub follow_rule: bool,
}

/// A room with its derived topic and its number of devices.
#[derive(Debug, Clone)]
pub struct RoomInfo {
    /// Id.
    pub id: RoomId,
    /// Building id.
    pub building: BuildingId,
    /// Site id.
    pub site: Option<SiteId>,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Its base topic.
    pub base_topic: Option<String>,
    /// `derived` (follows renames) or `kept` (imported as stored).
    pub topic_source: &'static str,
    /// Number of devices in it.
    pub devices: usize,
}

fn check_name(field: &str, name: &str) -> Result<String, RegistryError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(RegistryError::invalid(field, "must not be empty"));
    }
    if name.chars().count() > MAX_NAME_LEN {
        return Err(RegistryError::invalid(field, format!("at most {MAX_NAME_LEN} characters")));
    }
    if neosens_protocol::sanitize(name).trim_matches('_').is_empty() {
        return Err(RegistryError::invalid(
            field,
            "needs at least one letter or digit (it becomes a topic level)",
        ));
    }
    Ok(name.to_owned())
}

fn check_slug(slug: &str) -> Result<String, RegistryError> {
    let ok = !slug.is_empty()
        && slug.len() <= 32
        && slug.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(slug.to_owned())
    } else {
        Err(RegistryError::invalid("slug", "1 to 32 characters among a-z, 0-9 and _ (it is a topic level)"))
    }
}

/// Checks that after `puts` every room still has a topic and no two rooms share one.
fn check_topics(state: &State, puts: &[Record]) -> Result<(), RegistryError> {
    let mut view = State {
        sites: state.sites.clone(),
        buildings: state.buildings.clone(),
        rooms: state.rooms.clone(),
        ..State::default()
    };
    view.apply(puts.iter().cloned().map(Write::Put).collect(), 0);
    let mut seen = std::collections::HashMap::new();
    for room in view.rooms.values() {
        let Some(topic) = view.room_topics.get(&room.id) else {
            return Err(RegistryError::invalid(
                "name",
                format!("room {:?} would have no valid topic", room.name),
            ));
        };
        if let Some(other) = seen.insert(topic.clone(), room.id) {
            let other = &view.rooms[&other].name;
            return Err(RegistryError::conflict(format!(
                "rooms {:?} and {other:?} would share the topic {topic:?}; choose another name",
                room.name
            )));
        }
    }
    Ok(())
}

impl Registry {
    pub(super) fn ensure_default_site(&self) -> Result<(), RegistryError> {
        if self.state.read().default_site().is_some() {
            return Ok(());
        }
        let site = Site {
            id: SiteId::from_uuid(new_uuid()),
            slug: DEFAULT_SITE_SLUG.into(),
            name: "Université Toulouse 3".into(),
            is_default: true,
        };
        tracing::info!(slug = DEFAULT_SITE_SLUG, "first start: creating the default site");
        self.mutate(|_| Ok((with_outside(site.clone()), ())))
    }

    /// Every site.
    pub fn sites(&self) -> Vec<Site> {
        let mut v: Vec<Site> = self.state.read().sites.values().cloned().collect();
        v.sort_by(|a, b| b.is_default.cmp(&a.is_default).then_with(|| a.slug.cmp(&b.slug)));
        v
    }

    /// A site by id or slug.
    pub fn site(&self, key: &str) -> Result<Site, RegistryError> {
        let state = self.state.read();
        resolve_site(&state, key).cloned()
    }

    /// Creates a site (with its `outside` building).
    pub fn create_site(&self, input: NewSite) -> Result<Site, RegistryError> {
        let slug = check_slug(&input.slug)?;
        let name = check_name("name", &input.name)?;
        self.mutate(|state| {
            if state.sites.values().any(|s| s.slug == slug) {
                return Err(RegistryError::conflict(format!("a site with slug {slug:?} exists")));
            }
            let site = Site {
                id: SiteId::from_uuid(new_uuid()),
                slug: slug.clone(),
                name: name.clone(),
                is_default: false,
            };
            Ok((with_outside(site.clone()), site))
        })
    }

    /// Changes a site; topics of its rooms follow a new slug.
    pub fn update_site(&self, key: &str, patch: SiteChanges) -> Result<Site, RegistryError> {
        let slug = patch.slug.as_deref().map(check_slug).transpose()?;
        let name = patch.name.as_deref().map(|n| check_name("name", n)).transpose()?;
        self.mutate(|state| {
            let mut site = resolve_site(state, key)?.clone();
            if let Some(slug) = slug.clone() {
                if state.sites.values().any(|s| s.slug == slug && s.id != site.id) {
                    return Err(RegistryError::conflict(format!("a site with slug {slug:?} exists")));
                }
                site.slug = slug;
            }
            if let Some(name) = name.clone() {
                site.name = name;
            }
            let puts = vec![Record::Site(site.clone())];
            check_topics(state, &puts)?;
            Ok((puts.into_iter().map(Write::Put).collect(), site))
        })
    }

    /// Deletes an empty site (not the default one).
    pub fn delete_site(&self, key: &str) -> Result<(), RegistryError> {
        self.mutate(|state| {
            let site = resolve_site(state, key)?;
            if site.is_default {
                return Err(RegistryError::conflict("the default site cannot be deleted"));
            }
            if let Some(g) = state.gateways.values().find(|g| g.scope == GatewayScope::Site(site.id)) {
                return Err(RegistryError::conflict(format!(
                    "site {:?} is the scope of gateway {:?}: change its scope first",
                    site.slug, g.name
                )));
            }
            let buildings: Vec<&Building> = state.buildings.values().filter(|b| b.site == site.id).collect();
            if buildings.iter().any(|b| !b.outside)
                || state.rooms.values().any(|r| buildings.iter().any(|b| b.id == r.building))
            {
                return Err(RegistryError::conflict(format!(
                    "site {:?} still has buildings or rooms",
                    site.slug
                )));
            }
            let mut writes: Vec<Write> =
                buildings.iter().map(|b| Write::Delete(EntityKind::Building, b.id.to_bytes())).collect();
            writes.push(Write::Delete(EntityKind::Site, site.id.to_bytes()));
            Ok((writes, ()))
        })
    }

    /// Buildings, optionally of one site (id or slug).
    pub fn buildings(&self, site: Option<&str>) -> Result<Vec<Building>, RegistryError> {
        let state = self.state.read();
        let site = site.map(|s| resolve_site(&state, s).map(|s| s.id)).transpose()?;
        let mut v: Vec<Building> =
            state.buildings.values().filter(|b| site.is_none_or(|s| b.site == s)).cloned().collect();
        v.sort_by_cached_key(|b| b.name.to_lowercase());
        Ok(v)
    }

    /// A building.
    pub fn building(&self, id: BuildingId) -> Result<Building, RegistryError> {
        self.state
            .read()
            .buildings
            .get(&id)
            .cloned()
            .ok_or_else(|| RegistryError::not_found(format!("building {id}")))
    }

    /// Creates a building.
    pub fn create_building(&self, input: NewBuilding) -> Result<Building, RegistryError> {
        let name = check_name("name", &input.name)?;
        self.mutate(|state| {
            let site = match &input.site {
                Some(key) => resolve_site(state, key)?,
                None => state.default_site().ok_or_else(|| RegistryError::not_found("default site"))?,
            };
            if state.buildings.values().any(|b| b.site == site.id && b.name.eq_ignore_ascii_case(&name)) {
                return Err(RegistryError::conflict(format!(
                    "site {:?} already has a building {name:?}",
                    site.slug
                )));
            }
            let building = Building {
                id: BuildingId::from_uuid(new_uuid()),
                site: site.id,
                name: name.clone(),
                description: input.description.clone(),
                outside: false,
            };
            Ok((vec![Write::Put(Record::Building(building.clone()))], building))
        })
    }

    /// Changes a building; derived topics of its rooms follow a new name.
    pub fn update_building(&self, id: BuildingId, patch: BuildingChanges) -> Result<Building, RegistryError> {
        let name = patch.name.as_deref().map(|n| check_name("name", n)).transpose()?;
        self.mutate(|state| {
            let mut building = state
                .buildings
                .get(&id)
                .cloned()
                .ok_or_else(|| RegistryError::not_found(format!("building {id}")))?;
            if let Some(name) = name.clone() {
                if building.outside {
                    return Err(RegistryError::invalid(
                        "name",
                        format!("the {OUTSIDE} building keeps its name"),
                    ));
                }
                if state
                    .buildings
                    .values()
                    .any(|b| b.site == building.site && b.id != id && b.name.eq_ignore_ascii_case(&name))
                {
                    return Err(RegistryError::conflict(format!(
                        "this site already has a building {name:?}"
                    )));
                }
                building.name = name;
            }
            if let Some(d) = patch.description.clone() {
                building.description = d;
            }
            let puts = vec![Record::Building(building.clone())];
            check_topics(state, &puts)?;
            Ok((puts.into_iter().map(Write::Put).collect(), building))
        })
    }

    /// Deletes a building without rooms.
    pub fn delete_building(&self, id: BuildingId) -> Result<(), RegistryError> {
        self.mutate(|state| {
            let building =
                state.buildings.get(&id).ok_or_else(|| RegistryError::not_found(format!("building {id}")))?;
            if building.outside {
                return Err(RegistryError::conflict(format!("the {OUTSIDE} building goes with its site")));
            }
            if state.rooms.values().any(|r| r.building == id) {
                return Err(RegistryError::conflict(format!("building {:?} still has rooms", building.name)));
            }
            let scoped = |g: &&crate::model::Gateway| matches!(&g.scope, GatewayScope::Buildings(b) if b.contains(&id));
            if let Some(g) = state.gateways.values().find(scoped) {
                return Err(RegistryError::conflict(format!(
                    "building {:?} is in the scope of gateway {:?}: change its scope first",
                    building.name, g.name
                )));
            }
            Ok((vec![Write::Delete(EntityKind::Building, id.to_bytes())], ()))
        })
    }

    /// Rooms, optionally of one building.
    pub fn rooms(&self, building: Option<BuildingId>) -> Vec<RoomInfo> {
        let state = self.state.read();
        let mut v: Vec<RoomInfo> = state
            .rooms
            .values()
            .filter(|r| building.is_none_or(|b| r.building == b))
            .map(|r| room_view(&state, r))
            .collect();
        v.sort_by(|a, b| a.base_topic.cmp(&b.base_topic));
        v
    }

    /// A room.
    pub fn room(&self, id: RoomId) -> Result<RoomInfo, RegistryError> {
        let state = self.state.read();
        state
            .rooms
            .get(&id)
            .map(|r| room_view(&state, r))
            .ok_or_else(|| RegistryError::not_found(format!("room {id}")))
    }

    /// Creates a room.
    pub fn create_room(&self, input: NewRoom) -> Result<RoomInfo, RegistryError> {
        let name = check_name("name", &input.name)?;
        let topic = match input.topic.as_deref() {
            Some(t) => RoomTopic::Imported(
                BaseTopic::from_stored(t)
                    .map_err(|e| RegistryError::invalid("topic", e.to_string()))?
                    .as_str()
                    .to_owned(),
            ),
            None => RoomTopic::Derived,
        };
        let id = self.mutate(|state| {
            if !state.buildings.contains_key(&input.building) {
                return Err(RegistryError::invalid("building", format!("no building {}", input.building)));
            }
            if state
                .rooms
                .values()
                .any(|r| r.building == input.building && r.name.eq_ignore_ascii_case(&name))
            {
                return Err(RegistryError::conflict(format!("this building already has a room {name:?}")));
            }
            let room = Room {
                id: RoomId::from_uuid(new_uuid()),
                building: input.building,
                name: name.clone(),
                description: input.description.clone(),
                topic: topic.clone(),
            };
            let puts = vec![Record::Room(room.clone())];
            check_topics(state, &puts)?;
            Ok((puts.into_iter().map(Write::Put).collect(), room.id))
        })?;
        self.room(id)
    }

    /// Changes a room; its derived topic follows a new name.
    pub fn update_room(&self, id: RoomId, patch: RoomChanges) -> Result<RoomInfo, RegistryError> {
        let name = patch.name.as_deref().map(|n| check_name("name", n)).transpose()?;
        self.mutate(|state| {
            let mut room = state
                .rooms
                .get(&id)
                .cloned()
                .ok_or_else(|| RegistryError::not_found(format!("room {id}")))?;
            if let Some(name) = name.clone() {
                if state
                    .rooms
                    .values()
                    .any(|r| r.building == room.building && r.id != id && r.name.eq_ignore_ascii_case(&name))
                {
                    return Err(RegistryError::conflict(format!(
                        "this building already has a room {name:?}"
                    )));
                }
                room.name = name;
            }
            if let Some(d) = patch.description.clone() {
                room.description = d;
            }
            if patch.follow_rule {
                room.topic = RoomTopic::Derived;
            }
            let puts = vec![Record::Room(room)];
            check_topics(state, &puts)?;
            Ok((puts.into_iter().map(Write::Put).collect(), ()))
        })?;
        self.room(id)
    }

    /// Deletes a room no device is in.
    pub fn delete_room(&self, id: RoomId) -> Result<(), RegistryError> {
        self.mutate(|state| {
            let room = state.rooms.get(&id).ok_or_else(|| RegistryError::not_found(format!("room {id}")))?;
            let devices = state.by_room.get(&id).map_or(0, |s| s.len());
            if devices > 0 {
                return Err(RegistryError::conflict(format!(
                    "room {:?} still has {devices} device(s)",
                    room.name
                )));
            }
            Ok((vec![Write::Delete(EntityKind::Room, id.to_bytes())], ()))
        })
    }
}

/// A new site and its `outside` building.
fn with_outside(site: Site) -> Vec<Write> {
    let outside = Building {
        id: BuildingId::from_uuid(new_uuid()),
        site: site.id,
        name: OUTSIDE.into(),
        description: "Outdoor areas".into(),
        outside: true,
    };
    vec![Write::Put(Record::Site(site)), Write::Put(Record::Building(outside))]
}

pub(super) fn resolve_site<'a>(state: &'a State, key: &str) -> Result<&'a Site, RegistryError> {
    let by_id = key.parse::<SiteId>().ok().and_then(|id| state.sites.get(&id));
    by_id
        .or_else(|| state.sites.values().find(|s| s.slug == key))
        .ok_or_else(|| RegistryError::not_found(format!("site {key}")))
}

pub(super) fn room_view(state: &State, room: &Room) -> RoomInfo {
    RoomInfo {
        id: room.id,
        building: room.building,
        site: state.buildings.get(&room.building).map(|b| b.site),
        name: room.name.clone(),
        description: room.description.clone(),
        base_topic: state.room_topics.get(&room.id).cloned(),
        topic_source: match room.topic {
            RoomTopic::Derived => "derived",
            RoomTopic::Imported(_) => "kept",
        },
        devices: state.by_room.get(&room.id).map_or(0, |s| s.len()),
    }
}

#[cfg(test)]
#[path = "locations_tests.rs"]
mod tests;
