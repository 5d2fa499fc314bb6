//! Rights per site in the registry: what a site-limited principal sees and may change, through
//! every path a change takes (one device, an import row, a bulk action).

use neosens_protocol::ids::RoomId;

use super::*;
use crate::model::{BulkAction, BulkOutcome, Scope};
use crate::registry::test_support::{assert_not_found, device_input, fingerprint, room_302};
use crate::registry::{DeviceChanges, DeviceQuery, DeviceRow, NewBuilding, NewRoom, NewSite, test_registry};

/// The fixture's campus (`ut3`, room U4/302, 3 devices) plus site `carcassonne` with room
/// `iut/101` and one device in it.
fn two_sites() -> (tempfile::TempDir, std::sync::Arc<super::super::Registry>, RoomId, Scope) {
    let dir = tempfile::tempdir().unwrap();
    let (registry, _, _) = test_registry(dir.path(), 3);
    let site =
        registry.create_site(NewSite { slug: "carcassonne".into(), name: "Carcassonne".into() }).unwrap();
    let building = registry
        .create_building(NewBuilding {
            site: Some("carcassonne".into()),
            name: "iut".into(),
            description: String::new(),
        })
        .unwrap();
    let room = registry
        .create_room(NewRoom {
            building: building.id,
            name: "101".into(),
            description: String::new(),
            topic: None,
        })
        .unwrap();
    registry.create_device(device_input("24:0a:c4:00:01:01", vec![room.id])).unwrap();
    (dir, registry, room.id, Scope::of(&[site.id]))
}

fn as_scope<T>(scope: &Scope, work: impl FnOnce() -> T) -> T {
    within(scope.clone(), work)
}

#[test]
fn a_site_limited_caller_lists_and_sees_only_its_sites_devices() {
    let (_dir, registry, _, carcassonne) = two_sites();
    let (all, total) = registry.devices(&DeviceQuery::default()).unwrap();
    assert_eq!((all.len(), total), (4, 4));
    let (mine, total) =
        registry.devices(&DeviceQuery { scope: carcassonne.clone(), ..Default::default() }).unwrap();
    assert_eq!(total, 1);
    assert_eq!(mine[0].uid, "24:0A:C4:00:01:01");
    assert!(registry.device_within("24:0a:c4:00:01:01", &carcassonne).is_ok());
    assert_not_found(registry.device_within("24:0a:c4:00:00:00", &carcassonne));
    assert_not_found(registry.visible_device("24:0a:c4:00:00:00", &carcassonne));
    let export =
        registry.export_devices(&DeviceQuery { scope: carcassonne.clone(), ..Default::default() }).unwrap();
    assert_eq!(export.len(), 1);
    let fleet = registry.fleet_summary().within(&carcassonne);
    assert_eq!(fleet.sites.len(), 1);
    assert_eq!(fleet.total.never_seen, 1);
}

#[test]
fn a_site_limited_caller_changes_nothing_outside_its_sites() {
    let (_dir, registry, room_101, carcassonne) = two_sites();
    let campus_room = room_302(&registry);
    let before = fingerprint(&registry);
    as_scope(&carcassonne, || {
        // Another site's device: as if absent.
        let patch = DeviceChanges { description: Some("mine now".into()), ..Default::default() };
        assert_not_found(registry.update_device("24:0a:c4:00:00:00", patch));
        assert_not_found(registry.delete_device("24:0a:c4:00:00:01"));
        assert_not_found(registry.reset_credentials("24:0a:c4:00:00:02"));
        // Its own device, moved away: refused.
        let away = DeviceChanges { rooms: Some(vec![campus_room]), ..Default::default() };
        let e = registry.update_device("24:0a:c4:00:01:01", away).unwrap_err();
        assert!(matches!(e, RegistryError::Forbidden { .. }), "{e:?}");
        // A new device elsewhere, or nowhere: refused.
        let e = registry.create_device(device_input("24:0a:c4:00:01:02", vec![campus_room])).unwrap_err();
        assert!(matches!(e, RegistryError::Forbidden { .. }), "{e:?}");
        assert!(registry.create_device(device_input("24:0a:c4:00:01:03", vec![])).is_err());
        // The structure is campus-wide.
        let e = registry.create_site(NewSite { slug: "albi".into(), name: "Albi".into() }).unwrap_err();
        assert!(matches!(e, RegistryError::Forbidden { .. }), "{e:?}");
    });
    assert_eq!(fingerprint(&registry), before, "nothing was written");
    as_scope(&carcassonne, || {
        registry.create_device(device_input("24:0a:c4:00:01:04", vec![room_101])).unwrap();
        let patch = DeviceChanges { enabled: Some(false), ..Default::default() };
        registry.update_device("24:0a:c4:00:01:01", patch).unwrap();
    });
}

#[test]
fn import_rows_and_bulk_actions_outside_the_sites_fail_alone() {
    let (_dir, registry, _, carcassonne) = two_sites();
    let row = |uid: &str, room: &str| DeviceRow {
        uid: uid.into(),
        device_type: Some("esp32".into()),
        rooms: Some(vec![room.into()]),
        ..DeviceRow::default()
    };
    let rows = vec![
        row("24:0a:c4:00:02:01", "abroad/carcassonne/iut/101"),
        row("24:0a:c4:00:02:02", "u4/302"),
        row("24:0a:c4:00:00:00", "abroad/carcassonne/iut/101"),
    ];
    let report = as_scope(&carcassonne, || registry.import_devices(&rows, false)).unwrap();
    assert_eq!((report.created, report.failed), (1, 2), "{:?}", report.details);
    let messages: Vec<String> = report.details.iter().map(|d| format!("{:?}", d.outcome)).collect();
    assert!(messages[1].contains("outside your rights"), "{messages:?}");
    let ids: Vec<[u8; 16]> = ["24:0a:c4:00:02:01", "24:0a:c4:00:00:00"]
        .iter()
        .map(|k| registry.device_id(k).unwrap().to_bytes())
        .collect();
    let outcomes =
        as_scope(&carcassonne, || registry.apply_bulk(&BulkAction::SetEnabled { enabled: false }, &ids))
            .unwrap();
    assert_eq!(outcomes[0], BulkOutcome::Done);
    assert!(matches!(&outcomes[1], BulkOutcome::Failed(m) if m.contains("not found")), "{outcomes:?}");
    assert!(registry.device("24:0a:c4:00:00:00").unwrap().enabled, "the campus device is untouched");
}

#[test]
fn grants_name_known_sites_and_never_make_a_site_admin() {
    let (_dir, registry, _, carcassonne) = two_sites();
    let token = registry.create_token("carcassonne ops", Role::Operator, &["Carcassonne".into()]).unwrap();
    assert_eq!(token.sites, ["carcassonne"]);
    let principal = registry.authenticate_token(&token.token).unwrap();
    assert_eq!(principal.scope, carcassonne);
    let e = registry.create_token("x", Role::Admin, &["carcassonne".into()]).unwrap_err();
    assert!(matches!(e, RegistryError::Invalid { ref field, .. } if field == "sites"), "{e:?}");
    let e = registry.create_token("x", Role::Viewer, &["albi".into()]).unwrap_err();
    assert!(matches!(e, RegistryError::Invalid { ref field, .. } if field == "sites"), "{e:?}");
    let too_many: Vec<String> = (0..=MAX_GRANTED_SITES).map(|i| format!("s{i}")).collect();
    assert!(registry.create_token("x", Role::Viewer, &too_many).is_err());
    let user = registry
        .create_user(crate::registry::NewUser {
            username: "carla".into(),
            password: "a long password".into(),
            role: Role::Operator,
            sites: vec!["carcassonne".into()],
        })
        .unwrap();
    assert_eq!(user.sites, ["carcassonne"]);
    let promote = crate::registry::UserChanges { role: Some(Role::Admin), ..Default::default() };
    assert!(registry.update_user(user.id, promote).is_err(), "an admin is campus-wide");
    // A deleted site stays in the grant by id (narrowing, never widening) and can be sent back.
    registry.create_site(NewSite { slug: "albi".into(), name: "Albi".into() }).unwrap();
    let sites = Some(vec!["carcassonne".into(), "albi".into()]);
    registry.update_user(user.id, crate::registry::UserChanges { sites, ..Default::default() }).unwrap();
    registry.delete_site("albi").unwrap();
    let shown = registry.user(user.id).unwrap().sites;
    assert_eq!(shown.len(), 2);
    let same = crate::registry::UserChanges { sites: Some(shown.clone()), ..Default::default() };
    assert_eq!(registry.update_user(user.id, same).unwrap().sites, shown);
    let widen = crate::registry::UserChanges {
        role: Some(Role::Admin),
        sites: Some(Vec::new()),
        ..Default::default()
    };
    assert!(registry.update_user(user.id, widen).unwrap().sites.is_empty());
}

#[test]
fn a_scope_is_never_widened_by_an_empty_or_deleted_site() {
    let (_dir, registry, _, carcassonne) = two_sites();
    assert!(Scope::of(&[]).is_campus());
    let Scope::Sites(sites) = &carcassonne else { panic!("site-limited") };
    let gone = neosens_protocol::ids::SiteId::from_bytes([9; 16]);
    let only_gone = Scope::of(&[gone]);
    assert!(!only_gone.is_campus() && !sites.contains(&gone));
    assert_eq!(registry.devices(&DeviceQuery { scope: only_gone, ..Default::default() }).unwrap().1, 0);
    assert_eq!(current_scope(), Scope::Campus, "central's own work is campus-wide");
    as_scope(&carcassonne, || assert_eq!(current_scope(), carcassonne));
    assert_eq!(current_scope(), Scope::Campus, "restored after the work");
}

#[test]
fn an_alert_about_a_board_on_two_sites_is_seen_but_not_acted_on() {
    let (_dir, registry, room_101, carcassonne) = two_sites();
    let campus_room = room_302(&registry);
    let shared =
        registry.create_device(device_input("24:0a:c4:00:01:0b", vec![room_101, campus_room])).unwrap();
    let iut = registry.room(room_101).unwrap().building;
    // A failure alert names the device and its main room's building (here, on carcassonne).
    assert!(registry.sees_place(&carcassonne, Some(iut), Some(shared.id)));
    assert!(
        !registry.may_act_on_place(&carcassonne, Some(iut), Some(shared.id)),
        "its other room is the campus's"
    );
    let own = registry.device_id("24:0a:c4:00:01:01").unwrap();
    assert!(registry.may_act_on_place(&carcassonne, Some(iut), Some(own)));
    assert!(registry.may_act_on_place(&carcassonne, Some(iut), None), "an outage of its building");
    assert!(!registry.sees_place(&carcassonne, None, None), "a silent forwarder is campus-wide");
}
