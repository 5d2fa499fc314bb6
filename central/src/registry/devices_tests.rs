//! Unit tests of the device rules (`devices.rs`), on a real redb store in a temporary directory,
//! with the helpers of `test_support.rs`.
//!
//! Plain `#[test]`s: registry methods touch the store, which debug builds refuse on an async
//! worker (`neosens_runtime::blocking`).

use std::fmt::Debug;

use neosens_protocol::ids::{DeviceId, RoomId};
use neosens_protocol::legacy::ConfigResponse;
use neosens_protocol::{Mac, UidKind};
use serde_json::{Value, json};

use super::*;
use crate::model::{DeviceStatusRecord, MqttEndpoint, Timestamp};
use crate::registry::test_support::*;
use crate::registry::{DEFAULT_SITE_SLUG, NewDeviceType, NewRoom, Refusal, test_registry};

/// The `/device/config` zones of one module whose body, with `topics`, is exactly `size` bytes.
fn zones_of_size(topics: &[&str], size: usize) -> Value {
    let zones = |pad: &str| {
        let module = json!({"module": "m", "unit": "u", "params": [{"param": "p", "value": pad}]});
        json!([{ "modules": [module] }])
    };
    let body = |z: Value| {
        ConfigResponse { topics: topics.iter().map(|t| (*t).to_owned()).collect(), zones: z }
            .to_legacy_json()
            .len()
    };
    let pad = "x".repeat(size - body(zones("")));
    let out = zones(&pad);
    assert_eq!(body(out.clone()), size);
    out
}

fn config_errors<T: Debug>(result: Result<T, RegistryError>) -> Vec<String> {
    match result {
        Err(RegistryError::Config { errors }) => errors,
        other => panic!("expected a Config refusal, got {other:?}"),
    }
}

#[test]
fn uid_forms_are_accepted_and_stored_canonically() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, _, _) = test_registry(dir.path(), 0);
    let room = room_302(&registry);
    let cases = [
        (" 24:0a:c4:aa:bb:01 ", "24:0A:C4:AA:BB:01", UidKind::Ethernet, "senso_240ac4aabb01"),
        ("24-0A-C4-AA-BB-02", "24:0A:C4:AA:BB:02", UidKind::Ethernet, "senso_240ac4aabb02"),
        ("240ac4aabb03", "24:0A:C4:AA:BB:03", UidKind::Ethernet, "senso_240ac4aabb03"),
        ("70b3d57ed0000001", "70B3D57ED0000001", UidKind::Lorawan, "lora_70b3d57ed0000001"),
        (
            "9A8B7C6D-5E4F-4321-8FED-CBA987654321",
            "9a8b7c6d-5e4f-4321-8fed-cba987654321",
            UidKind::Uuid,
            "dev_9a8b7c6d5e4f43218fedcba9",
        ),
    ];
    for (input, canonical, kind, login) in cases {
        let view = registry.create_device(device_input(input, vec![room])).unwrap();
        assert_eq!(
            (view.uid.as_str(), view.uid_kind, view.login.as_str()),
            (canonical, kind, login),
            "{input}"
        );
        assert!(view.enabled && !view.credentials_delivered, "{input}");
        assert_eq!(view.base_topic.as_deref(), Some("u4/302"));
        assert_eq!(view.config, json!([]));
        // Found again by its id, its canonical uid and the form it was given in.
        for key in [view.id.to_string(), canonical.to_owned(), input.trim().to_owned()] {
            assert_eq!(registry.device(&key).unwrap().id, view.id, "{key}");
        }
    }
    // An explicit kind decides how the text is read.
    let explicit =
        NewDevice { uid_kind: Some(UidKind::Lorawan), ..device_input("0011223344556677", vec![room]) };
    assert_eq!(registry.create_device(explicit).unwrap().uid_kind, UidKind::Lorawan);

    let before = fingerprint(&registry);
    assert_invalid(registry.create_device(device_input("24:0a:c4:aa:bb", vec![room])), "uid");
    assert_invalid(registry.create_device(device_input("not a uid", vec![room])), "uid");
    let wrong_kind =
        NewDevice { uid_kind: Some(UidKind::Uuid), ..device_input("24:0a:c4:aa:bb:09", vec![room]) };
    assert_invalid(registry.create_device(wrong_kind), "uid");
    assert_unchanged(dir.path(), registry, &before);
}

#[test]
fn a_taken_uid_or_login_is_a_conflict_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, _, ids) = test_registry(dir.path(), 2);
    let room = room_302(&registry);
    let before = fingerprint(&registry);
    // The fixture's first device, in another spelling.
    assert_conflict(registry.create_device(device_input("240AC4000000", vec![room])), "already registered");
    let same_login = NewDevice {
        login: Some("senso_240ac4000001".into()),
        ..device_input("24:0a:c4:00:00:99", vec![room])
    };
    assert_conflict(registry.create_device(same_login), "is taken");
    let registry = assert_unchanged(dir.path(), registry, &before);
    assert_eq!(registry.device_count(), ids.len());
}

#[test]
fn type_rooms_login_and_broker_are_checked_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, _, _) = test_registry(dir.path(), 1);
    let room = room_302(&registry);
    let input = || device_input("24:0a:c4:00:00:50", vec![room]);
    let before = fingerprint(&registry);
    assert_invalid(registry.create_device(NewDevice { device_type: "nope".into(), ..input() }), "type");
    assert_invalid(registry.create_device(NewDevice { rooms: vec![], ..input() }), "rooms");
    let unknown_room = RoomId::from_uuid(crate::model::new_uuid());
    assert_invalid(
        registry.create_device(NewDevice { rooms: vec![room, unknown_room], ..input() }),
        "rooms[1]",
    );
    assert_invalid(registry.create_device(NewDevice { rooms: vec![room, room], ..input() }), "rooms[1]");
    for login in ["", &"l".repeat(MAX_LOGIN_LEN + 1), "a/b", "a b", "x+", "gw-42"] {
        assert_invalid(registry.create_device(NewDevice { login: Some(login.into()), ..input() }), "login");
    }
    let bad_server = MqttEndpoint { server: String::new(), port: 1883 };
    assert_invalid(registry.create_device(NewDevice { mqtt: Some(bad_server), ..input() }), "mqtt.server");
    let bad_port = MqttEndpoint { server: "broker.example".into(), port: 0 };
    assert_invalid(registry.create_device(NewDevice { mqtt: Some(bad_port), ..input() }), "mqtt.port");
    let registry = assert_unchanged(dir.path(), registry, &before);

    // The longest login the firmware holds, and a type named by its id, are fine.
    let type_id = registry.device_type("esp32").unwrap().id.to_string();
    let login = "l".repeat(MAX_LOGIN_LEN);
    let ok = NewDevice { login: Some(login.clone()), device_type: type_id, ..input() };
    let view = registry.create_device(ok).unwrap();
    assert_eq!((view.login, view.device_type.as_str()), (login, "esp32"));
}

#[test]
fn configuration_follows_the_legacy_shape_the_type_schema_and_the_1023_byte_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, building, _) = test_registry(dir.path(), 0);
    let room = room_302(&registry);
    let room_303 = registry
        .create_room(NewRoom { building, name: "303".into(), description: String::new(), topic: None })
        .unwrap()
        .id;
    registry
        .create_device_type(NewDeviceType {
            name: "one_zone".into(),
            description: String::new(),
            config_schema: Some(json!({"type": "array", "maxItems": 1})),
            status_period_s: None,
            outdated_after_s: None,
            orders: None,
            status_rules: Vec::new(),
            payload_layout: None,
        })
        .unwrap();
    let zone = json!({"modules": []});
    let before = fingerprint(&registry);
    let input = |t: &str, config: Value| NewDevice {
        device_type: t.into(),
        config: Some(config),
        ..device_input("24:0a:c4:00:00:60", vec![room])
    };
    // Not the legacy shape: one error with its JSON pointer.
    let errors = config_errors(registry.create_device(input("esp32", json!([{"modules": [{"unit": "u"}]}]))));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("/0/modules/0/module"), "{errors:?}");
    // Against the type's schema, every violation is listed.
    let errors = config_errors(registry.create_device(input("one_zone", json!({"modules": []}))));
    assert_eq!(errors.len(), 2, "the legacy shape and the schema both refuse an object: {errors:?}");
    let errors = config_errors(registry.create_device(input("one_zone", json!([zone, zone]))));
    assert!(errors.len() == 1 && errors[0].starts_with("schema of the device type"), "{errors:?}");
    // The firmware reads 1023 bytes of /device/config answer, not one more.
    let errors = config_errors(registry.create_device(input("esp32", zones_of_size(&["u4/302"], 1024))));
    assert!(errors.len() == 1 && errors[0].starts_with("/device/config answer"), "{errors:?}");
    let registry = assert_unchanged(dir.path(), registry, &before);

    let at_limit = zones_of_size(&["u4/302"], 1023);
    let view = registry.create_device(input("esp32", at_limit.clone())).unwrap();
    assert_eq!(view.config, at_limit);
    let key = view.id.to_string();
    let before = fingerprint(&registry);
    // A second room adds its topic to the answer; a type whose schema the zones break is refused.
    config_errors(
        registry
            .update_device(&key, DeviceChanges { rooms: Some(vec![room, room_303]), ..Default::default() }),
    );
    let two_zones = DeviceChanges { config: Some(json!([zone, zone])), ..Default::default() };
    registry.update_device(&key, two_zones.clone()).unwrap();
    let before_type = fingerprint(&registry);
    config_errors(
        registry.update_device(
            &key,
            DeviceChanges { device_type: Some("one_zone".into()), ..Default::default() },
        ),
    );
    assert_eq!(fingerprint(&registry), before_type);
    assert_ne!(before_type, before, "the accepted patch was committed");
}

#[test]
fn a_patch_changes_only_what_it_names_and_keeps_the_identity() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, _, ids) = test_registry(dir.path(), 1);
    let key = ids[0].to_string();
    let original = registry.device(&key).unwrap();
    let stored = |r: &Registry| r.state.read().devices[&ids[0]].record.clone();
    let (secret, updated_at) = (stored(&registry).secret, stored(&registry).updated_at);

    let described = registry
        .update_device(&key, DeviceChanges { description: Some("window".into()), ..Default::default() })
        .unwrap();
    assert_eq!(described.description, "window");
    assert_eq!(
        (&described.uid, &described.login, &described.created_at, described.enabled, &described.config),
        (&original.uid, &original.login, &original.created_at, original.enabled, &original.config)
    );
    assert_eq!(described.rooms.iter().map(|r| r.id).collect::<Vec<_>>(), vec![room_302(&registry)]);
    assert!(stored(&registry).updated_at >= updated_at);
    assert_eq!(stored(&registry).secret, secret, "a patch never touches the secret");

    // `mqtt` and `outdated_after_s`: absent keeps, a value sets, null goes back to the default.
    let broker = MqttEndpoint { server: "broker.example".into(), port: 8883 };
    let set = DeviceChanges {
        mqtt: Some(Some(broker.clone())),
        outdated_after_s: Some(Some(120)),
        ..Default::default()
    };
    let view = registry.update_device(&key, set).unwrap();
    assert_eq!(
        (view.mqtt.as_ref(), view.outdated_after_s, view.effective_outdated_after_s),
        (Some(&broker), Some(120), 120)
    );
    let view = registry.update_device(&key, DeviceChanges::default()).unwrap();
    assert_eq!((view.mqtt.as_ref(), view.outdated_after_s), (Some(&broker), Some(120)));
    let reset = DeviceChanges { mqtt: Some(None), outdated_after_s: Some(None), ..Default::default() };
    let view = registry.update_device(&key, reset).unwrap();
    assert_eq!((view.mqtt, view.outdated_after_s, view.effective_outdated_after_s), (None, None, 1800));

    // Addressed by its uid, the same device changes; the change survives a reopen.
    let view = registry
        .update_device("24:0A:C4:00:00:00", DeviceChanges { enabled: Some(false), ..Default::default() })
        .unwrap();
    assert_eq!((view.id, view.enabled, view.state), (ids[0], false, DeviceState::Disabled));
    let registry = reopen(dir.path(), registry);
    let view = registry.device(&key).unwrap();
    assert_eq!((view.enabled, view.description.as_str(), view.login), (false, "window", original.login));
}

#[test]
fn refused_patches_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, _, ids) = test_registry(dir.path(), 1);
    let key = ids[0].to_string();
    let before = fingerprint(&registry);
    assert_not_found(registry.update_device("24:0a:c4:ff:ff:ff", DeviceChanges::default()));
    assert_invalid(
        registry
            .update_device(&key, DeviceChanges { device_type: Some("nope".into()), ..Default::default() }),
        "type",
    );
    assert_invalid(
        registry.update_device(&key, DeviceChanges { rooms: Some(vec![]), ..Default::default() }),
        "rooms",
    );
    let port_0 = MqttEndpoint { server: "b".into(), port: 0 };
    assert_invalid(
        registry.update_device(&key, DeviceChanges { mqtt: Some(Some(port_0)), ..Default::default() }),
        "mqtt.port",
    );
    // Several fields at once: one bad field refuses the whole patch.
    let mixed =
        DeviceChanges { description: Some("kept?".into()), config: Some(json!({})), ..Default::default() };
    config_errors(registry.update_device(&key, mixed));
    assert_unchanged(dir.path(), registry, &before);
}

#[test]
fn moving_a_device_moves_its_topic_and_the_room_counts() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, building, ids) = test_registry(dir.path(), 3);
    let r302 = room_302(&registry);
    let r303 = registry
        .create_room(NewRoom { building, name: "303".into(), description: String::new(), topic: None })
        .unwrap()
        .id;
    let key = ids[0].to_string();
    let view = registry
        .update_device(&key, DeviceChanges { rooms: Some(vec![r303, r302]), ..Default::default() })
        .unwrap();
    assert_eq!(view.base_topic.as_deref(), Some("u4/303"), "the main room gives the base topic");
    assert_eq!(view.rooms.iter().map(|r| r.id).collect::<Vec<_>>(), vec![r303, r302]);
    assert_eq!((registry.room(r302).unwrap().devices, registry.room(r303).unwrap().devices), (3, 1));
    let view = registry
        .update_device(&key, DeviceChanges { rooms: Some(vec![r303]), ..Default::default() })
        .unwrap();
    assert_eq!(view.rooms.len(), 1);
    assert_eq!((registry.room(r302).unwrap().devices, registry.room(r303).unwrap().devices), (2, 1));
    // The room index is rebuilt the same from the store.
    let registry = reopen(dir.path(), registry);
    assert_eq!((registry.room(r302).unwrap().devices, registry.room(r303).unwrap().devices), (2, 1));
    let (in_303, total) = registry.devices(&DeviceQuery { room: Some(r303), ..Default::default() }).unwrap();
    assert_eq!((in_303.len(), total, in_303[0].id), (1, 1, ids[0]));
}

#[test]
fn deleting_a_device_frees_its_uid_login_status_and_room() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, _, ids) = test_registry(dir.path(), 1);
    let room = room_302(&registry);
    let seen = DeviceStatusRecord {
        last_seen: Some(Timestamp::now()),
        last_status: Some("running".into()),
        last_payload: None,
    };
    registry.put_statuses(vec![(ids[0], seen)]).unwrap();
    assert_eq!(registry.device(&ids[0].to_string()).unwrap().state, DeviceState::Ok);

    let before = fingerprint(&registry);
    assert_not_found(registry.delete_device("24:0a:c4:ff:ff:ff"));
    assert_conflict(registry.delete_room(room), "still has 1 device");
    let registry = assert_unchanged(dir.path(), registry, &before);

    registry.delete_device("24:0a:c4:00:00:00").unwrap();
    assert_not_found(registry.device(&ids[0].to_string()));
    assert_eq!((registry.device_count(), registry.room(room).unwrap().devices), (0, 0));
    let registry = reopen(dir.path(), registry);
    assert!(registry.last_status(ids[0]).is_none(), "its status went with it, in the store too");
    // Its uid and login are free again: a new registration is a new device, never seen.
    let again = registry.create_device(device_input("24:0a:c4:00:00:00", vec![room])).unwrap();
    assert_ne!(again.id, ids[0]);
    assert_eq!((again.login.as_str(), again.state), ("senso_240ac4000000", DeviceState::NeverSeen));
    registry.delete_device(&again.id.to_string()).unwrap();
    registry.delete_room(room).unwrap();
}

#[test]
fn reset_credentials_issues_a_new_secret_delivered_once() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, _, ids) = test_registry(dir.path(), 1);
    let mac: Mac = "24:0a:c4:00:00:00".parse().unwrap();
    let first = registry.legacy_credentials(mac).unwrap().unwrap();
    let old = first.password.clone().expect("the first delivery carries the secret");
    assert_eq!(registry.legacy_credentials(mac).unwrap().unwrap().password, None, "only once");
    assert!(registry.device(&ids[0].to_string()).unwrap().credentials_delivered);
    assert!(registry.legacy_config(&first.login, &old).is_ok());

    let view = registry.reset_credentials(&mac.to_string()).unwrap();
    assert_eq!(
        (view.id, view.credentials_delivered, view.login.as_str()),
        (ids[0], false, first.login.as_str())
    );
    assert_eq!(
        registry.legacy_config(&first.login, &old),
        Err(Refusal::WrongSecret),
        "the old secret stops at once"
    );
    let registry = reopen(dir.path(), registry);
    let new = registry.legacy_credentials(mac).unwrap().unwrap().password.expect("the new secret, once");
    assert_ne!(new, old);
    assert!(registry.legacy_config(&first.login, &new).is_ok());
    assert_not_found(registry.reset_credentials("24:0a:c4:ff:ff:ff"));
}

#[test]
fn the_state_follows_last_seen_the_threshold_and_enabled() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, _, ids) = test_registry(dir.path(), 3);
    let ago = |s: i64| DeviceStatusRecord {
        last_seen: Some(Timestamp(Timestamp::now().millis() - s * 1000)),
        ..Default::default()
    };
    registry.put_statuses(vec![(ids[0], ago(200)), (ids[1], ago(2000))]).unwrap();
    let state = |id: DeviceId| registry.device(&id.to_string()).unwrap().state;
    assert_eq!(
        [state(ids[0]), state(ids[1]), state(ids[2])],
        [DeviceState::Ok, DeviceState::Outdated, DeviceState::NeverSeen],
        "the type's 1800 s threshold"
    );
    let shorter = DeviceChanges { outdated_after_s: Some(Some(120)), ..Default::default() };
    registry.update_device(&ids[0].to_string(), shorter).unwrap();
    assert_eq!(state(ids[0]), DeviceState::Outdated, "the device's own threshold wins");
    registry
        .update_device(&ids[1].to_string(), DeviceChanges { enabled: Some(false), ..Default::default() })
        .unwrap();
    assert_eq!(state(ids[1]), DeviceState::Disabled, "disabled whatever its last status");

    let by_state = |s| registry.devices(&DeviceQuery { state: Some(s), ..Default::default() }).unwrap().1;
    assert_eq!(
        [DeviceState::Ok, DeviceState::Outdated, DeviceState::NeverSeen, DeviceState::Disabled].map(by_state),
        [0, 1, 1, 1]
    );
    let sorted =
        registry.devices(&DeviceQuery { sort: Some("state".into()), ..Default::default() }).unwrap().0;
    assert_eq!(sorted.iter().map(|d| d.id).collect::<Vec<_>>(), vec![ids[0], ids[2], ids[1]], "worst first");
}

#[test]
fn listings_filter_sort_and_page() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, building, ids) = test_registry(dir.path(), 6);
    for (i, id) in ids.iter().enumerate() {
        let patch = DeviceChanges {
            description: Some(format!("Bench {}", 5 - i)),
            enabled: Some(i % 2 == 0),
            ..Default::default()
        };
        registry.update_device(&id.to_string(), patch).unwrap();
    }
    let list = |f: DeviceQuery| registry.devices(&f).unwrap();
    let uids = |v: &[DeviceInfo]| v.iter().map(|d| d.uid.clone()).collect::<Vec<_>>();

    let (all, total) = list(DeviceQuery::default());
    assert_eq!((all.len(), total), (6, 6));
    assert!(uids(&all).windows(2).all(|w| w[0] < w[1]), "sorted by uid by default");
    let (desc, _) = list(DeviceQuery { sort: Some("-uid".into()), ..Default::default() });
    assert_eq!(uids(&desc), uids(&all).into_iter().rev().collect::<Vec<_>>());
    let (by_text, _) = list(DeviceQuery { sort: Some("description".into()), ..Default::default() });
    assert_eq!(by_text[0].description, "Bench 0");

    let (page, total) = list(DeviceQuery { limit: Some(2), offset: Some(3), ..Default::default() });
    assert_eq!((uids(&page), total), (uids(&all[3..5]), 6), "a page, and the count of all matches");
    let (past_end, total) = list(DeviceQuery { offset: Some(10), ..Default::default() });
    assert_eq!((past_end.len(), total), (0, 6));

    let count = |f: DeviceQuery| list(f).1;
    assert_eq!(count(DeviceQuery { enabled: Some(false), ..Default::default() }), 3);
    assert_eq!(count(DeviceQuery { q: Some("BENCH 3".into()), ..Default::default() }), 1, "case-insensitive");
    assert_eq!(
        count(DeviceQuery { q: Some("senso_240ac40000".into()), ..Default::default() }),
        6,
        "the login"
    );
    assert_eq!(count(DeviceQuery { q: Some("00:00:05".into()), ..Default::default() }), 1, "the uid");
    assert_eq!(count(DeviceQuery { device_type: Some("esp32".into()), ..Default::default() }), 6);
    assert_eq!(count(DeviceQuery { building: Some(building), ..Default::default() }), 6);
    assert_eq!(count(DeviceQuery { site: Some(DEFAULT_SITE_SLUG.into()), ..Default::default() }), 6);
    let site =
        registry.create_site(crate::registry::NewSite { slug: "far".into(), name: "Far".into() }).unwrap();
    assert_eq!(count(DeviceQuery { site: Some(site.id.to_string()), ..Default::default() }), 0);

    assert_invalid(
        registry.devices(&DeviceQuery { sort: Some("colour".into()), ..Default::default() }),
        "sort",
    );
    assert_invalid(
        registry.devices(&DeviceQuery { device_type: Some("nope".into()), ..Default::default() }),
        "type",
    );
    assert_not_found(registry.devices(&DeviceQuery { site: Some("nowhere".into()), ..Default::default() }));
}

#[test]
fn a_page_holds_at_most_max_page_devices() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, _, ids) = test_registry(dir.path(), 1);
    // MAX_PAGE + 1 more devices in one batch (registering them one by one is one commit each).
    let template = registry.state.read().devices[&ids[0]].record.clone();
    let writes: Vec<_> = (1..=MAX_PAGE as u32 + 1)
        .map(|n| {
            let mac = Mac::from_bytes([0x02, 0, 0, (n >> 16) as u8, (n >> 8) as u8, n as u8]);
            let uid = neosens_protocol::DeviceUid::Ethernet(mac);
            let id = DeviceId::from_uuid(crate::model::new_uuid());
            let device = crate::model::Device { id, uid, login: mac.legacy_login(), ..template.clone() };
            crate::store::Write::Put(crate::model::Record::Device(Box::new(device)))
        })
        .collect();
    registry.mutate(|_| Ok((writes.clone(), ()))).unwrap();
    let (page, total) =
        registry.devices(&DeviceQuery { limit: Some(usize::MAX), ..Default::default() }).unwrap();
    assert_eq!((page.len(), total), (MAX_PAGE, MAX_PAGE + 2));
    let (page, _) = registry.devices(&DeviceQuery::default()).unwrap();
    assert_eq!(page.len(), 100, "the default page");
}

#[test]
fn deleting_a_device_drops_its_log_lines_and_orders() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, _, ids) = test_registry(dir.path(), 2);
    let mac: Mac = "24:0a:c4:00:00:00".parse().unwrap();
    let credentials = registry.legacy_credentials(mac).unwrap().unwrap();
    let password = credentials.password.unwrap();
    let record = neosens_protocol::legacy::LogRecord::default();
    registry.legacy_log(&credentials.login, &password, record, "10.0.0.1".into()).unwrap().unwrap();
    assert_eq!(registry.device_logs(&mac.to_string(), 10).unwrap().len(), 1);
    let order = crate::model::OrderRecord {
        at: crate::model::Timestamp::now(),
        by: "test".into(),
        order: "status".into(),
        value: None,
        module: "device".into(),
        dest: mac.to_string(),
        topic: "u4/302/device/command".into(),
        payload: "{}".into(),
        outcome: "sent".into(),
    };
    registry.store.append_order(ids[0].to_bytes(), &order).unwrap();
    // Another device's history stays.
    let other = ids[1];
    registry.store.append_order(other.to_bytes(), &order).unwrap();
    registry.delete_device(&ids[0].to_string()).unwrap();
    assert!(registry.store.device_logs(ids[0].to_bytes(), 10).unwrap().is_empty());
    assert!(registry.store.device_orders(ids[0].to_bytes(), 10).unwrap().is_empty());
    assert_eq!(registry.store.device_orders(other.to_bytes(), 10).unwrap().len(), 1);
}
