//! Unit tests of the 2016 import planning (`import.rs`) against the `test_registry` fixture
//! (building `U4`, room `302`, devices `24:0a:c4:00:00:<n>`): what is created, matched, updated
//! or rejected and why, that a second run changes nothing, and that a dry run writes nothing.
//! Plain `#[test]`s: the import commits to the store, which debug builds refuse on async workers.

use neosens_protocol::Mac;
use serde_json::json;

use super::*;
use crate::import_legacy::dump::{LegacyBuilding, LegacyLocation, LegacyPermission, LegacyType};
use crate::registry::test_support::{assert_unchanged, fingerprint, reopen, room_302};
use crate::registry::{DeviceState, Refusal, test_registry};

const LAST_UPDATE: &str = "2021-05-06T08:52:13.394Z";

fn location(pk: i64, building: i64, room: &str, topic: &str) -> LegacyLocation {
    LegacyLocation { pk, building, room: room.into(), topic: topic.into() }
}

/// A device of type pk 1 with password `pw-<pk>`, already delivered, default broker.
fn device(pk: i64, mac: &str, login: &str, locations: Vec<i64>) -> LegacyDevice {
    LegacyDevice {
        pk,
        mac: mac.into(),
        device_type: Some(1),
        description: String::new(),
        locations,
        last_update: None,
        last_status: None,
        enabled: true,
        login: login.into(),
        password: format!("pw-{pk}"),
        modules: "[]".into(),
        credentials_delivered: true,
        mqtt_defaults: true,
        mqtt_server: None,
        mqtt_port: None,
    }
}

fn permission(pk: i64, device: i64, kind: &str, topic: &str) -> LegacyPermission {
    LegacyPermission { pk, device, topic: topic.into(), permission_type: kind.into() }
}

/// One type, a new building (IRIT2) and the fixture's `U4` (spelled `u4`), a new room, the
/// fixture's `302` with its own topic, and a room of a building the export lacks; two good
/// devices and one of each kind of bad one; standard, custom and orphan permissions.
fn export() -> LegacyExport {
    let mut e = LegacyExport { other_rows: 5, log_messages: 2, ..LegacyExport::default() };
    e.bad_rows.push(("devices.device pk=\"x\"".into(), "pk is not an integer: \"x\"".into()));
    e.types.insert(1, LegacyType { pk: 1, name: "ESP32 neOSensor".into(), description: String::new() });
    let irit2 = LegacyBuilding {
        pk: 1,
        name: "IRIT2".into(),
        description: "IRIT, bâtiment 2".into(),
        topic: "irit2".into(),
    };
    e.buildings.insert(1, irit2);
    e.buildings.insert(
        2,
        LegacyBuilding { pk: 2, name: "u4".into(), description: String::new(), topic: "u4".into() },
    );
    e.locations.insert(1, location(1, 1, "366", "irit2/366"));
    e.locations.insert(2, location(2, 2, "302", "u4/302"));
    e.locations.insert(3, location(3, 99, "1", "ghost/1"));
    let first = LegacyDevice {
        last_update: Some(LAST_UPDATE.into()),
        last_status: Some("running".into()),
        ..device(1, "24:0A:C4:12:34:56", "senso_240ac4123456", vec![1])
    };
    let second = LegacyDevice {
        enabled: false,
        modules: "not json".into(),
        mqtt_defaults: false,
        mqtt_server: Some("mqtt.example".into()),
        mqtt_port: Some(8883),
        ..device(2, "24:0A:C4:12:34:57", "senso_240ac4123457", vec![2, 1])
    };
    e.devices = vec![
        first,
        second,
        device(3, "24:0A:C4:12:34", "senso_3", vec![1]),
        LegacyDevice { device_type: Some(99), ..device(4, "24:0A:C4:12:34:58", "senso_4", vec![1]) },
        device(5, "24:0A:C4:12:34:59", "senso_240ac4000000", vec![1]),
        device(6, "24:0A:C4:12:34:5A", "gw-sneaky", vec![1]),
        device(7, "24:0A:C4:12:34:5B", "senso_7", vec![3]),
    ];
    e.permissions = vec![
        permission(1, 1, "PUB", "irit2/366/+"),
        permission(2, 1, "SUB", "irit2/366/+/command"),
        permission(3, 2, "ALL", "#"),
        permission(4, 3, "PUB", "irit2/366/+"),
    ];
    e
}

fn counts(c: Counts) -> (usize, usize, usize) {
    (c.created, c.updated, c.unchanged)
}

/// The report's rows (rejected or warnings) as "row: reason" lines.
fn lines(rows: &[(String, String)]) -> Vec<String> {
    rows.iter().map(|(row, why)| format!("{row}: {why}")).collect()
}

#[track_caller]
fn assert_row(rows: &[(String, String)], row: &str, reason: &str) {
    let lines = lines(rows);
    assert!(
        lines.iter().any(|l| l.contains(row) && l.contains(reason)),
        "no {row:?} with {reason:?} in {lines:#?}"
    );
}

fn run(registry: &Registry, export: &LegacyExport) -> ImportReport {
    registry.import_legacy(export, false, &mut |_, _| {}).unwrap()
}

#[test]
fn a_first_import_creates_matches_and_rejects_row_by_row() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, _, _) = test_registry(dir.path(), 1);
    let mut heard = Vec::new();
    let report =
        registry.import_legacy(&export(), false, &mut |done, total| heard.push((done, total))).unwrap();
    assert_eq!(heard, [(0, 7), (7, 7)], "progress at the start and the end");
    assert!(!report.dry_run);
    assert_eq!(counts(report.types), (1, 0, 0));
    assert_eq!(counts(report.buildings), (1, 0, 1), "`u4` is the fixture's U4");
    assert_eq!(counts(report.rooms), (1, 0, 1), "`302` is the fixture's room");
    assert_eq!(counts(report.devices), (2, 0, 0));
    assert_eq!((report.standard_permissions, report.skipped_rows), (2, 7));
    assert_eq!(report.rejected.len(), 7, "{:#?}", lines(&report.rejected));
    assert_row(&report.rejected, "devices.device pk=\"x\"", "not an integer");
    assert_row(&report.rejected, "devices.location pk=3", "building pk=99 is not in the export");
    assert_row(&report.rejected, "devices.device pk=3", "invalid MAC");
    assert_row(&report.rejected, "devices.device pk=4", "type pk=Some(99)");
    assert_row(&report.rejected, "devices.device pk=5", "belongs to another device");
    assert_row(&report.rejected, "devices.device pk=6", "reserved");
    assert_row(&report.rejected, "devices.device pk=7", "location pk=3 was not imported");
    assert_eq!(report.warnings.len(), 3, "{:#?}", lines(&report.warnings));
    assert_row(&report.warnings, "devices.device pk=2", "not JSON");
    assert_row(&report.warnings, "devices.permission pk=3", "custom ALL permission on \"#\"");
    assert_row(&report.warnings, "devices.permission pk=4", "device pk=3 was not imported");

    // What landed, as the API and the legacy paths see it.
    let registry = reopen(dir.path(), registry);
    let first = registry.device("24:0a:c4:12:34:56").unwrap();
    assert_eq!(
        (first.device_type.as_str(), first.base_topic.as_deref()),
        ("esp32_neosensor", Some("irit2/366"))
    );
    assert_eq!(
        (first.last_status.as_deref(), first.last_seen.as_deref()),
        (Some("running"), Some(LAST_UPDATE))
    );
    assert!(first.credentials_delivered && first.enabled && first.rooms[0].topic_source == "kept");
    match registry.legacy_config("senso_240ac4123456", "pw-1") {
        Ok(answer) => assert_eq!(answer.topics, ["irit2/366"]),
        other => panic!("the old password opens /device/config: {other:?}"),
    }
    let mac: Mac = "24:0a:c4:12:34:56".parse().unwrap();
    assert_eq!(registry.legacy_credentials(mac).unwrap().unwrap().password, None, "delivered in 2016");
    let second = registry.device("24:0A:C4:12:34:57").unwrap();
    assert_eq!(
        second.rooms.iter().map(|r| r.id).collect::<Vec<_>>()[0],
        room_302(&registry),
        "database order kept"
    );
    assert_eq!((second.state, second.config.clone()), (DeviceState::Disabled, json!([])));
    assert_eq!(second.mqtt.map(|m| (m.server, m.port)), Some(("mqtt.example".into(), 8883)));
    assert_eq!(
        registry.device_type("esp32_neosensor").unwrap().description,
        "ESP32 neOSensor",
        "the name when no description"
    );
}

#[test]
fn importing_twice_changes_nothing_the_second_time() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, _, _) = test_registry(dir.path(), 1);
    let first = run(&registry, &export());
    let after_first = fingerprint(&registry);
    let second = run(&registry, &export());
    assert!(second.changes_nothing(), "{second:#?}");
    assert_eq!(
        [second.types, second.buildings, second.rooms, second.devices].map(counts),
        [(0, 0, 1), (0, 0, 2), (0, 0, 2), (0, 0, 2)]
    );
    assert_eq!(
        (lines(&second.rejected), second.standard_permissions),
        (lines(&first.rejected), first.standard_permissions)
    );
    // Not one write: the same revision, the same records, in memory and in the store.
    let registry = assert_unchanged(dir.path(), registry, &after_first);
    assert!(run(&registry, &export()).changes_nothing(), "after a restart too");
    assert_eq!(fingerprint(&registry), after_first);
}

#[test]
fn a_dry_run_reports_the_same_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, _, _) = test_registry(dir.path(), 1);
    let before = fingerprint(&registry);
    let dry = registry.import_legacy(&export(), true, &mut |_, _| {}).unwrap();
    assert!(dry.dry_run);
    let registry = assert_unchanged(dir.path(), registry, &before);
    let real = run(&registry, &export());
    assert_eq!(
        [dry.types, dry.buildings, dry.rooms, dry.devices].map(counts),
        [real.types, real.buildings, real.rooms, real.devices].map(counts),
        "the dry run predicted the real one"
    );
    assert_eq!((lines(&dry.rejected), lines(&dry.warnings)), (lines(&real.rejected), lines(&real.warnings)));
}

#[test]
fn changed_rows_update_the_records_they_match() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, _, _) = test_registry(dir.path(), 1);
    run(&registry, &export());
    let before = registry.device("24:0A:C4:12:34:56").unwrap();
    let mut changed = export();
    changed.types.get_mut(&1).unwrap().description = "neOSensor boards".into();
    changed.buildings.get_mut(&1).unwrap().description = "renovated".into();
    let d = &mut changed.devices[0];
    (d.description, d.password, d.enabled) = ("window".into(), "pw-new".into(), false);
    let report = run(&registry, &changed);
    assert_eq!(
        [report.types, report.buildings, report.devices].map(counts),
        [(0, 1, 0), (0, 1, 1), (0, 1, 1)]
    );
    let after = registry.device("24:0A:C4:12:34:56").unwrap();
    assert_eq!(
        (after.id, &after.created_at, after.credentials_delivered),
        (before.id, &before.created_at, true)
    );
    assert_eq!((after.description.as_str(), after.state), ("window", DeviceState::Disabled));
    assert_eq!(registry.legacy_config("senso_240ac4123456", "pw-1"), Err(Refusal::WrongSecret));
    assert_eq!(
        registry.legacy_config("senso_240ac4123456", "pw-new"),
        Err(Refusal::Disabled),
        "the new password verifies"
    );
    assert_eq!(registry.device_type("esp32_neosensor").unwrap().description, "neOSensor boards");
}

#[test]
fn an_existing_room_keeps_its_topic_and_colliding_topics_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, _, _) = test_registry(dir.path(), 0);
    let mut e = export();
    e.devices.clear();
    e.permissions.clear();
    e.locations.insert(2, location(2, 2, "302", "u4/room302"));
    e.locations.insert(10, location(10, 1, "A", "irit2/a"));
    e.locations.insert(11, location(11, 1, "B", "irit2/a"));
    e.locations.insert(12, location(12, 1, "C", "u4/302"));
    e.locations.insert(13, location(13, 1, "D", "irit2//d"));
    e.devices = vec![
        device(1, "24:0A:C4:00:10:01", "senso_a", vec![10]),
        device(2, "24:0A:C4:00:10:02", "senso_a", vec![10]),
        device(3, "24:0A:C4:00:10:03", "senso_c", vec![11]),
    ];
    let report = run(&registry, &e);
    assert_eq!(counts(report.rooms), (2, 0, 1), "366 and A created, 302 matched");
    assert_row(&report.warnings, "devices.location pk=2", "another topic");
    assert_eq!(
        registry.room(room_302(&registry)).unwrap().base_topic.as_deref(),
        Some("u4/302"),
        "the registry's topic stays"
    );
    assert_row(&report.rejected, "devices.location pk=11", "\"irit2/a\" belongs to another room");
    assert_row(&report.rejected, "devices.location pk=12", "\"u4/302\" belongs to another room");
    assert_row(&report.rejected, "devices.location pk=13", "topic \"irit2//d\"");
    assert_row(&report.rejected, "devices.device pk=2", "login \"senso_a\" belongs to another device");
    assert_row(&report.rejected, "devices.device pk=3", "location pk=11 was not imported");
    assert_eq!(counts(report.devices), (1, 0, 0));
    let topics: Vec<Option<String>> = registry.rooms(None).into_iter().map(|r| r.base_topic).collect();
    let mut unique = topics.clone();
    unique.dedup();
    assert_eq!(topics, unique, "no two rooms share a topic");
}

#[test]
fn last_statuses_only_move_forward() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, _, _) = test_registry(dir.path(), 0);
    let at = |when: &str| {
        let mut e = export();
        e.devices[0].last_update = Some(when.into());
        e
    };
    run(&registry, &at(LAST_UPDATE));
    let seen = |r: &Registry| r.device("24:0A:C4:12:34:56").unwrap().last_seen;
    let older = run(&registry, &at("2020-01-01T00:00:00Z"));
    assert!(older.changes_nothing());
    assert_eq!(seen(&registry).as_deref(), Some(LAST_UPDATE), "an older export does not go back in time");
    run(&registry, &at("2022-01-01T00:00:00Z"));
    let registry = reopen(dir.path(), registry);
    assert_eq!(seen(&registry).as_deref(), Some("2022-01-01T00:00:00Z"), "a newer one moves it, durably");
}

#[test]
fn odd_rows_are_reported_and_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, _, _) = test_registry(dir.path(), 0);
    let long_login = "l".repeat(40);
    let big_modules = json!([{"modules": [
        {"module": "m", "unit": "u", "params": [{"param": "p", "value": "x".repeat(1100)}]}
    ]}]);
    let device = |pk: i64, fields: Value| {
        let model = "devices.device";
        json!({ "model": model, "pk": pk, "fields": fields })
    };
    let rows = json!([
        {"model": "devices.type", "pk": 1, "fields": {"name": "!!!", "description": null}},
        {"model": "devices.building", "pk": 1,
            "fields": {"name": "IRIT2", "description": null, "topic": "irit2"}},
        {"model": "devices.location", "pk": 1,
            "fields": {"building": 1, "room": "366", "topic": "irit2/366"}},
        {"model": "devices.device", "pk": "abc", "fields": {"mac": "24:0A:C4:00:20:01"}},
        device(2, json!({"mac": "24:0A:C4:00:20:02", "locations": "oops"})),
        device(3, json!({"mac": "24:0A:C4:00:20:03", "type": 1, "login": long_login,
            "password": "", "credentials_delivered": true, "mqtt_defaults": false, "mqtt_server": "b",
            "mqtt_port": 70000, "modules": "{\"a\": 1}"})),
        device(4, json!({"mac": "24:0A:C4:00:20:04", "type": 1, "login": "senso_4",
            "password": "p", "locations": [1], "modules": big_modules.to_string()})),
        device(5, json!({"mac": "24:0A:C4:00:20:05", "type": 1, "login": "", "password": "p"})),
        {"model": "devices.logmessage", "pk": 1, "fields": {}},
        {"model": "auth.user", "pk": 1, "fields": {}}
    ]);
    let export = LegacyExport::parse(rows.to_string().as_bytes(), |_, _| {}).unwrap();
    let report = run(&registry, &export);
    assert_eq!(report.skipped_rows, 2);
    assert_row(&report.rejected, "devices.device pk=\"abc\"", "pk is not an integer");
    assert_row(&report.rejected, "devices.device pk=2", "'locations' is not a list");
    assert_row(&report.rejected, "devices.device pk=5", "cannot be an MQTT username");
    assert_eq!(report.rejected.len(), 3, "{:#?}", lines(&report.rejected));
    for reason in
        ["the firmware cuts it", "no location", "legacy shape", "is not a port", "new secret was generated"]
    {
        assert_row(&report.warnings, "devices.device pk=3", reason);
    }
    assert_row(&report.warnings, "devices.device pk=4", "breaks the firmware limit: config body");
    assert_eq!(report.warnings.len(), 6, "{:#?}", lines(&report.warnings));
    assert_eq!((counts(report.types), counts(report.devices)), ((1, 0, 0), (2, 0, 0)));
    assert_eq!(
        registry.device_type("type_1").unwrap().name,
        "type_1",
        "a name with no letter gets one from its pk"
    );
    let odd = registry.device("24:0A:C4:00:20:03").unwrap();
    assert_eq!(
        (odd.login, odd.credentials_delivered, odd.mqtt, odd.base_topic),
        (long_login, false, None, None)
    );
    assert_eq!(odd.config, json!({"a": 1}), "kept as it was");
}
