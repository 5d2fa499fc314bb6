//! Central's side of gateways: enrolment with a one-time token, the sync long-poll (snapshot,
//! deltas, devices leaving the scope), offline delivery reports, health, and broker rights.

mod common;

use std::net::SocketAddr;

use common::client::ApiClient;
use common::client::wire::EnrolGrant;
use common::{MAC, register_example, start};
use neosens_protocol::sync::{BatchKind, Change, SyncBatch};
use neosens_runtime::keys::Keys;
use neosens_runtime::testing::raw_http;
use serde_json::json;

fn sync(addr: SocketAddr, secret: &str, since: u64, wait: u64) -> (u16, Option<SyncBatch>) {
    let r = raw_http(
        addr,
        format!(
            "GET /api/v1/edge/sync?since={since}&wait={wait} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {secret}\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    );
    if r.status == 200 {
        assert_eq!(r.header("content-type"), Some("application/x-postcard"));
        (200, Some(SyncBatch::decode(&r.body).expect("a valid sync body")))
    } else {
        (r.status, None)
    }
}

fn keys_of(grant: &EnrolGrant) -> Keys {
    let hex = &grant.keys;
    let bytes: Vec<u8> =
        (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
    Keys::from_bytes(
        &bytes[..32].try_into().unwrap(),
        &bytes[32..].try_into().unwrap(),
        ring::rand::SystemRandom::new(),
    )
}

#[test]
fn a_gateway_enrols_syncs_its_scope_and_reports_deliveries() {
    let dir = tempfile::tempdir().unwrap();
    let central = start(dir.path());
    let addr = central.addr("http");
    let admin = ApiClient::admin(addr);
    let (room, device) = register_example(addr);
    let irit2 = admin.building_named("IRIT2").id;
    let gw =
        admin.create_gateway(json!({"name": "gw-irit2", "scope": {"buildings": [irit2]}})).expect("gateway");
    let gw_id = gw.id;
    assert_eq!(gw.enrolled_at, None);

    // Enrolment: one token, used once.
    let token = admin.enrolment(&gw_id).expect("an enrolment token").token;
    assert!(token.starts_with("nse_"));
    let anonymous = ApiClient::anonymous(addr);
    let grant = anonymous.enroll(&token).expect("enrolled");
    assert_eq!((grant.gateway_id.as_str(), grant.name.as_str()), (gw_id.as_str(), "gw-irit2"));
    let again = anonymous.enroll(&token).unwrap_err();
    assert_eq!(again.status, 401, "a token works once: {again:?}");
    assert!(again.message.contains("ask an admin"), "{again:?}");
    let secret = grant.secret.clone();
    let gateway = ApiClient::bearer(addr, &secret);
    let keys = keys_of(&grant);

    // Not a gateway: refused.
    assert_eq!(sync(addr, "nsg_wrong", 0, 0).0, 401);
    assert_eq!(sync(addr, common::ADMIN, 0, 0).0, 401, "an admin token is not a gateway's");

    // First sync: a snapshot of its scope, with the device's secret verifiable and staged.
    let (_, batch) = sync(addr, &secret, 0, 0);
    let batch = batch.unwrap();
    assert_eq!(batch.kind, BatchKind::Snapshot);
    let devices: Vec<_> = batch
        .changes
        .iter()
        .filter_map(|c| if let Change::UpsertDevice(d) = c { Some(d) } else { None })
        .collect();
    assert_eq!(devices.len(), 1);
    let d = devices[0];
    assert_eq!(d.id.to_string(), device);
    assert!(d.config_body.contains("\"topics\": [\"irit2/366\"]"), "{}", d.config_body);
    let staged = d.staged_secret.as_ref().expect("not delivered yet: staged for the gateway");
    let password = keys.open(staged, &d.id.to_bytes()).unwrap();
    assert!(keys.verify(&password, &d.secret_hash), "the hash is under the gateway's key");
    assert!(batch.changes.iter().any(|c| matches!(c, Change::UpsertRoom(r) if r.base_topic == "irit2/366")));

    // Up to date: 204 after the wait.
    assert_eq!(sync(addr, &secret, batch.revision, 1).0, 204);

    // A change while the gateway waits: the long-poll answers with a delta.
    let rev = batch.revision;
    let waiter = std::thread::spawn({
        let secret = secret.clone();
        move || sync(addr, &secret, rev, 30)
    });
    admin.disable_device(&device).expect("disabled");
    let (status, delta) = waiter.join().unwrap();
    assert_eq!(status, 200);
    let delta = delta.unwrap();
    assert_eq!(delta.kind, BatchKind::Delta);
    assert!(
        matches!(delta.changes.as_slice(), [Change::UpsertDevice(d)] if !d.enabled),
        "{:?}",
        delta.changes
    );

    // Delivered offline, reported: central no longer hands the password out.
    let report = gateway.report_deliveries(&[&device]).expect("deliveries reported");
    assert_eq!(report.newly_delivered, 1, "{report:?}");
    let r =
        raw_http(addr, format!("GET /device/credentials?mac={MAC} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
    assert_eq!(r.text(), "{\"login\": \"senso_240ac4123456\"}");

    // The device moves out of the scope: the gateway is told to drop it (a snapshot without it,
    // since a room changed building or a device changed rooms).
    let other = admin.create_building(json!({"name": "U4"})).expect("building");
    let u4_room = admin.create_room(json!({"building": other.id, "name": "302"})).expect("room");
    let moved = admin.patch_device(&device, json!({"rooms": [u4_room.id]})).expect("moved");
    assert_eq!(moved.base_topic.as_deref(), Some("u4/302"));
    let (_, next) = sync(addr, &secret, delta.revision, 0);
    let next = next.unwrap();
    let gone = next.changes.iter().any(|c| matches!(c, Change::DeleteDevice(id) if id.to_string() == device));
    let snapshot_without = next.kind == BatchKind::Snapshot
        && !next.changes.iter().any(|c| matches!(c, Change::UpsertDevice(d) if d.id.to_string() == device));
    assert!(gone || snapshot_without, "{next:?}");
    let _ = room;

    // Health: reported figures and the contact show in the API and /metrics.
    gateway
        .report_health(
            json!({"outbox_depth": 12, "outbox_oldest_s": 40, "outbox_dropped": 0, "version": "0.1.0"}),
        )
        .expect("health reported");
    let view = admin.gateway(&gw_id).expect("the gateway");
    let depth = view.health.as_ref().and_then(|h| h.report.as_ref()).map(|r| r.outbox_depth);
    assert_eq!((view.up, depth), (true, Some(12)));
    assert!(view.gateway.enrolled_at.is_some());
    let metrics = neosens_runtime::testing::http_get(addr, "/metrics").text();
    for line in [
        "neosens_gateway_up{gateway=\"gw-irit2\"} 1",
        "neosens_gateway_outbox_depth{gateway=\"gw-irit2\"} 12",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} missing:\n{metrics}");
    }
}

#[test]
fn a_gateway_has_the_broker_rights_of_its_scope_only() {
    let dir = tempfile::tempdir().unwrap();
    let central = start(dir.path());
    let addr = central.addr("http");
    let admin = ApiClient::admin(addr);
    register_example(addr);
    let gw = admin.create_gateway(json!({"name": "gw-ut3", "scope": {"site": "ut3"}})).expect("gateway");
    let token = admin.enrolment(&gw.id).expect("an enrolment token").token;
    let anonymous = ApiClient::anonymous(addr);
    let grant = anonymous.enroll(&token).expect("enrolled");
    let user = grant.mqtt_username.as_str();
    let secret = grant.mqtt_password.as_str();
    // go-auth's JSON contract: 200 and `{"ok": …}`.
    let ask = |path: &str, body: serde_json::Value| anonymous.broker_allows(path, body);
    assert!(ask("/mqtt/auth", json!({"username": user, "password": secret, "clientid": "gw"})));
    assert!(!ask("/mqtt/auth", json!({"username": user, "password": "nope", "clientid": "gw"})));
    let acl = |topic: &str, acc: i64| {
        ask("/mqtt/acl", json!({"username": user, "clientid": "gw", "topic": topic, "acc": acc}))
    };
    assert!(acl("irit2/366/device", 2), "relays statuses of its rooms");
    assert!(acl("irit2/366/temperature", 2));
    assert!(acl("irit2/366/device/command", 4), "follows orders of its rooms");
    assert!(!acl("irit2/367/device", 2), "no such room");
    assert!(!acl("#", 4));
    assert!(!ask("/mqtt/superuser", json!({"username": user})));
}
