//! Unit tests of the location rules (`locations.rs`): names, slugs, the default site, base topics
//! that follow renames (or are kept when imported) and never collide, and deletions that would
//! leave something behind. On a real redb store; plain `#[test]`s (the store refuses async
//! workers in debug builds).

use neosens_protocol::ids::BuildingId;

use super::*;
use crate::registry::test_support::{
    assert_conflict, assert_invalid, assert_not_found, assert_unchanged, device_input, fingerprint, reopen,
    room_302,
};
use crate::registry::{DeviceChanges, NewGateway, ScopeSpec, test_registry};

fn building(registry: &Registry, site: Option<&str>, name: &str) -> BuildingId {
    let input = NewBuilding { site: site.map(str::to_owned), name: name.into(), description: String::new() };
    registry.create_building(input).unwrap().id
}

fn room_input(building: BuildingId, name: &str, topic: Option<&str>) -> NewRoom {
    NewRoom { building, name: name.into(), description: String::new(), topic: topic.map(str::to_owned) }
}

fn topic_of(registry: &Registry, room: RoomId) -> String {
    registry.room(room).unwrap().base_topic.expect("every room has a topic")
}

#[test]
fn the_default_site_is_created_once_with_its_outside_building_and_stays() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, u4, _) = test_registry(dir.path(), 0);
    let sites = registry.sites();
    assert_eq!(sites.len(), 1);
    let default = &sites[0];
    assert_eq!((default.slug.as_str(), default.is_default), (DEFAULT_SITE_SLUG, true));
    let names: Vec<String> =
        registry.buildings(Some(DEFAULT_SITE_SLUG)).unwrap().into_iter().map(|b| b.name).collect();
    assert_eq!(names, ["outside", "U4"], "the outside building, then the fixture's, by name");
    assert_eq!(
        registry.building(u4).unwrap().site,
        default.id,
        "a building without a site goes to the default one"
    );

    let before = fingerprint(&registry);
    assert_conflict(registry.delete_site(DEFAULT_SITE_SLUG), "default site");
    let outside = registry.buildings(None).unwrap().into_iter().find(|b| b.outside).unwrap();
    assert_conflict(registry.delete_building(outside.id), "goes with its site");
    assert_invalid(
        registry
            .update_building(outside.id, BuildingChanges { name: Some("yard".into()), ..Default::default() }),
        "name",
    );
    // A reopen finds the default site and does not create another.
    let registry = assert_unchanged(dir.path(), registry, &before);
    assert_eq!(registry.sites(), sites);

    // Outdoor areas of the default site are `outside/<area>`.
    let parking = registry.create_room(room_input(outside.id, "Parking Nord", None)).unwrap();
    assert_eq!(parking.base_topic.as_deref(), Some("outside/parking_nord"));
}

#[test]
fn site_slugs_are_topic_levels_and_unique() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, _, _) = test_registry(dir.path(), 0);
    let before = fingerprint(&registry);
    for slug in ["", "Tlse", "tl se", "tlse-2", &"s".repeat(33)] {
        assert_invalid(registry.create_site(NewSite { slug: slug.into(), name: "Toulouse".into() }), "slug");
    }
    assert_conflict(
        registry.create_site(NewSite { slug: DEFAULT_SITE_SLUG.into(), name: "Again".into() }),
        "exists",
    );
    assert_invalid(registry.create_site(NewSite { slug: "tlse".into(), name: "  ".into() }), "name");
    let registry = assert_unchanged(dir.path(), registry, &before);

    let longest = "s".repeat(32);
    registry.create_site(NewSite { slug: longest.clone(), name: "Long".into() }).unwrap();
    let site = registry.create_site(NewSite { slug: "tlse_2".into(), name: " Toulouse 2 ".into() }).unwrap();
    assert_eq!((site.name.as_str(), site.is_default), ("Toulouse 2", false), "names are trimmed");
    assert_eq!(registry.site(&site.id.to_string()).unwrap(), site, "found by id and by slug");
    assert_eq!(registry.site("tlse_2").unwrap(), site);
    let site_buildings = registry.buildings(Some("tlse_2")).unwrap();
    assert!(site_buildings.len() == 1 && site_buildings[0].outside, "a new site has its outside building");

    // Topics abroad carry the slug, and follow it.
    let b = building(&registry, Some("tlse_2"), "B1");
    let room = registry.create_room(room_input(b, "R1", None)).unwrap().id;
    let area = registry.create_room(room_input(site_buildings[0].id, "Jardin", None)).unwrap().id;
    assert_eq!(
        (topic_of(&registry, room), topic_of(&registry, area)),
        ("abroad/tlse_2/b1/r1".into(), "abroad/tlse_2/outside/jardin".into())
    );
    let before = fingerprint(&registry);
    assert_conflict(
        registry.update_site("tlse_2", SiteChanges { slug: Some(longest), ..Default::default() }),
        "exists",
    );
    assert_invalid(
        registry.update_site("tlse_2", SiteChanges { slug: Some("Bad".into()), ..Default::default() }),
        "slug",
    );
    assert_not_found(registry.update_site("nowhere", SiteChanges::default()));
    let registry = assert_unchanged(dir.path(), registry, &before);
    registry
        .update_site(&site.id.to_string(), SiteChanges { slug: Some("tls".into()), ..Default::default() })
        .unwrap();
    assert_eq!(topic_of(&registry, room), "abroad/tls/b1/r1");
    let registry = reopen(dir.path(), registry);
    assert_eq!(topic_of(&registry, area), "abroad/tls/outside/jardin", "recomputed the same at start");
}

#[test]
fn names_are_trimmed_bounded_and_unique_where_they_live() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, u4, _) = test_registry(dir.path(), 0);
    let before = fingerprint(&registry);
    for name in ["", "   ", "!!!", &"é".repeat(MAX_NAME_LEN + 1)] {
        assert_invalid(
            registry.create_building(NewBuilding {
                site: None,
                name: name.into(),
                description: String::new(),
            }),
            "name",
        );
        assert_invalid(registry.create_room(room_input(u4, name, None)), "name");
    }
    assert_conflict(
        registry.create_building(NewBuilding { site: None, name: "u4".into(), description: String::new() }),
        "already has a building",
    );
    assert_conflict(registry.create_room(room_input(u4, " 302 ", None)), "already has a room");
    let unknown = BuildingId::from_uuid(crate::model::new_uuid());
    assert_invalid(registry.create_room(room_input(unknown, "1", None)), "building");
    assert_not_found(registry.create_building(NewBuilding {
        site: Some("nowhere".into()),
        name: "B".into(),
        description: String::new(),
    }));
    let registry = assert_unchanged(dir.path(), registry, &before);

    // MAX_NAME_LEN counts characters, not bytes.
    let longest = "é".repeat(MAX_NAME_LEN);
    let b = building(&registry, None, &format!("  {longest} "));
    assert_eq!(registry.building(b).unwrap().name, longest);
    // The same names elsewhere are fine: another site, another building.
    registry.create_site(NewSite { slug: "far".into(), name: "Far".into() }).unwrap();
    let far_u4 = building(&registry, Some("far"), "U4");
    assert_eq!(
        registry.create_room(room_input(far_u4, "302", None)).unwrap().base_topic.as_deref(),
        Some("abroad/far/u4/302")
    );
    // Renaming into a sibling's name is refused like creating it.
    let u5 = building(&registry, None, "U5");
    let before = fingerprint(&registry);
    assert_conflict(
        registry.update_building(u5, BuildingChanges { name: Some("U4".into()), ..Default::default() }),
        "already has a building",
    );
    let r1 = registry.create_room(room_input(u5, "1", None)).unwrap().id;
    registry.create_room(room_input(u5, "2", None)).unwrap();
    let before_rename = fingerprint(&registry);
    assert_conflict(
        registry.update_room(r1, RoomChanges { name: Some("2".into()), ..Default::default() }),
        "already has a room",
    );
    assert_eq!(fingerprint(&registry), before_rename);
    assert_ne!(before_rename, before);
}

#[test]
fn derived_topics_follow_renames_and_devices_keep_their_identity() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, u4, ids) = test_registry(dir.path(), 2);
    let room = room_302(&registry);
    let view = registry.room(room).unwrap();
    assert_eq!((view.base_topic.as_deref(), view.topic_source, view.devices), (Some("u4/302"), "derived", 2));

    let renamed = registry
        .update_building(u4, BuildingChanges { name: Some("Bâtiment U4".into()), ..Default::default() })
        .unwrap();
    assert_eq!(renamed.name, "Bâtiment U4");
    assert_eq!(topic_of(&registry, room), "batiment_u4/302");
    let renamed = registry
        .update_room(
            room,
            RoomChanges {
                name: Some("Salle Café".into()),
                description: Some("coffee".into()),
                follow_rule: false,
            },
        )
        .unwrap();
    assert_eq!(
        (renamed.base_topic.as_deref(), renamed.description.as_str()),
        (Some("batiment_u4/salle_cafe"), "coffee")
    );
    for id in &ids {
        let device = registry.device(&id.to_string()).unwrap();
        assert_eq!(
            (device.id, device.base_topic.as_deref()),
            (*id, Some("batiment_u4/salle_cafe")),
            "the device follows its room"
        );
    }
    let registry = reopen(dir.path(), registry);
    assert_eq!(topic_of(&registry, room), "batiment_u4/salle_cafe");
    assert_eq!(
        registry.device(&ids[0].to_string()).unwrap().base_topic.as_deref(),
        Some("batiment_u4/salle_cafe")
    );
}

#[test]
fn imported_topics_are_kept_until_an_operator_asks_for_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, u4, _) = test_registry(dir.path(), 0);
    let before = fingerprint(&registry);
    for bad in ["", "a//b", "/a", "a/+/b", "a/#"] {
        assert_invalid(registry.create_room(room_input(u4, "old", Some(bad))), "topic");
    }
    let registry = assert_unchanged(dir.path(), registry, &before);

    let kept = registry.create_room(room_input(u4, "Old 12", Some("U4/Old-12"))).unwrap();
    assert_eq!((kept.base_topic.as_deref(), kept.topic_source), (Some("U4/Old-12"), "kept"));
    registry
        .update_building(u4, BuildingChanges { name: Some("U4 bis".into()), ..Default::default() })
        .unwrap();
    let view = registry
        .update_room(kept.id, RoomChanges { name: Some("Old 13".into()), ..Default::default() })
        .unwrap();
    assert_eq!(view.base_topic.as_deref(), Some("U4/Old-12"), "renames do not move a kept topic");
    let registry = reopen(dir.path(), registry);
    assert_eq!(topic_of(&registry, kept.id), "U4/Old-12");
    let view =
        registry.update_room(kept.id, RoomChanges { follow_rule: true, ..Default::default() }).unwrap();
    assert_eq!((view.base_topic.as_deref(), view.topic_source), (Some("u4_bis/old_13"), "derived"));
}

#[test]
fn two_rooms_never_share_a_topic() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, u4, _) = test_registry(dir.path(), 0);
    let x1 = building(&registry, None, "X 1");
    let x2 = building(&registry, None, "X-2");
    registry.create_room(room_input(x1, "r", None)).unwrap();
    registry.create_room(room_input(x2, "r", None)).unwrap();
    registry.create_room(room_input(u4, "Salle 1", None)).unwrap();
    let s2 = registry.create_room(room_input(u4, "Salle 2", None)).unwrap().id;
    let other = building(&registry, None, "IRIT");
    registry.create_room(room_input(other, "404", Some("u4/404"))).unwrap();

    let before = fingerprint(&registry);
    // Different names, one sanitized topic: by creation, by a room rename, by a building rename.
    assert_conflict(
        registry.create_room(room_input(u4, "salle-1", None)),
        "would share the topic \"u4/salle_1\"",
    );
    let to_salle_1 = RoomChanges { name: Some("Salle_1".into()), ..Default::default() };
    assert_conflict(registry.update_room(s2, to_salle_1), "would share the topic \"u4/salle_1\"");
    assert_conflict(
        registry.update_room(s2, RoomChanges { name: Some("SALLE 1".into()), ..Default::default() }),
        "already has a room",
    );
    assert_conflict(
        registry.update_building(x2, BuildingChanges { name: Some("X_1".into()), ..Default::default() }),
        "would share the topic \"x_1/r\"",
    );
    // A kept topic blocks the room the rule would give it, and the other way round.
    assert_conflict(registry.create_room(room_input(u4, "404", None)), "would share the topic \"u4/404\"");
    assert_conflict(registry.create_room(room_input(other, "302", Some("u4/302"))), "would share the topic");
    assert_unchanged(dir.path(), registry, &before);
}

#[test]
fn what_still_holds_something_cannot_be_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, _, _) = test_registry(dir.path(), 0);
    let site = registry.create_site(NewSite { slug: "far".into(), name: "Far".into() }).unwrap();
    let b = building(&registry, Some("far"), "B");
    let room = registry.create_room(room_input(b, "1", None)).unwrap().id;
    let device =
        registry.create_device(device_input("24:0a:c4:00:00:70", vec![room_302(&registry), room])).unwrap();

    let before = fingerprint(&registry);
    assert_conflict(registry.delete_room(room), "still has 1 device");
    assert_conflict(registry.delete_building(b), "still has rooms");
    assert_conflict(registry.delete_site("far"), "still has buildings or rooms");
    assert_not_found(registry.delete_room(RoomId::from_uuid(crate::model::new_uuid())));
    assert_not_found(registry.delete_building(BuildingId::from_uuid(crate::model::new_uuid())));
    assert_not_found(registry.delete_site("nowhere"));
    let registry = assert_unchanged(dir.path(), registry, &before);

    // An area in the site's outside building holds the site too.
    let outside = registry.buildings(Some("far")).unwrap().into_iter().find(|b| b.outside).unwrap();
    let area = registry.create_room(room_input(outside.id, "yard", None)).unwrap().id;
    // Emptied in order, everything goes, the outside building with its site.
    registry
        .update_device(
            &device.id.to_string(),
            DeviceChanges { rooms: Some(vec![room_302(&registry)]), ..Default::default() },
        )
        .unwrap();
    registry.delete_room(room).unwrap();
    registry.delete_building(b).unwrap();
    assert_conflict(registry.delete_site(&site.id.to_string()), "still has buildings or rooms");
    registry.delete_room(area).unwrap();
    registry.delete_site(&site.id.to_string()).unwrap();
    let registry = reopen(dir.path(), registry);
    assert_not_found(registry.site("far"));
    assert_not_found(registry.building(outside.id));
    assert_eq!(registry.sites().len(), 1);
}

#[test]
fn a_building_or_site_in_a_gateway_scope_cannot_be_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, _, _) = test_registry(dir.path(), 0);
    registry.create_site(NewSite { slug: "far".into(), name: "Far".into() }).unwrap();
    let empty = building(&registry, None, "Empty");
    let by_building = NewGateway {
        local_broker: None,
        config: Default::default(),
        name: "gw1".into(),
        scope: ScopeSpec::Buildings(vec![*empty.as_uuid()]),
    };
    registry.create_gateway(by_building).unwrap();
    registry
        .create_gateway(NewGateway {
            local_broker: None,
            config: Default::default(),
            name: "gw2".into(),
            scope: ScopeSpec::Site("far".into()),
        })
        .unwrap();
    let before = fingerprint(&registry);
    assert_conflict(registry.delete_building(empty), "gw1");
    assert_conflict(registry.delete_site("far"), "gw2");
    assert_unchanged(dir.path(), registry, &before);
}
