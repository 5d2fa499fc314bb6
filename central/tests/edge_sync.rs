//! Central's side of gateways: enrolment with a one-time token, the sync long-poll (snapshot,
//! deltas, devices leaving the scope), offline delivery reports, health, and broker rights.

mod common;

use std::net::SocketAddr;

use common::{MAC, api, register_example, start};
use neosens_protocol::sync::{BatchKind, Change, SyncBatch};
use neosens_runtime::keys::Keys;
use neosens_runtime::testing::{http_json, raw_http};
use serde_json::{Value, json};

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

fn keys_of(grant: &Value) -> Keys {
    let hex = grant["keys"].as_str().unwrap();
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
    let (room, device) = register_example(addr);
    let (_, building) = api(addr, "GET", "/api/v1/buildings", None);
    let irit2 =
        building["items"].as_array().unwrap().iter().find(|b| b["name"] == "IRIT2").unwrap()["id"].clone();
    let (status, gw) = api(
        addr,
        "POST",
        "/api/v1/gateways",
        Some(json!({"name": "gw-irit2", "scope": {"buildings": [irit2]}})),
    );
    assert_eq!(status, 201, "{gw}");
    let gw_id = gw["id"].as_str().unwrap().to_owned();
    assert_eq!(gw["enrolled_at"], Value::Null);

    // Enrolment: one token, used once.
    let (status, token) = api(addr, "POST", &format!("/api/v1/gateways/{gw_id}/enrolment"), None);
    assert_eq!(status, 201, "{token}");
    let token = token["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("nse_"));
    let (status, grant) =
        http_json(addr, "POST", "/api/v1/edge/enroll", None, Some(&json!({"token": token})));
    assert_eq!(status, 200, "{grant}");
    assert_eq!(
        (grant["gateway_id"].as_str(), grant["name"].as_str()),
        (Some(gw_id.as_str()), Some("gw-irit2"))
    );
    let (status, again) =
        http_json(addr, "POST", "/api/v1/edge/enroll", None, Some(&json!({"token": token})));
    assert_eq!(status, 401, "a token works once: {again}");
    assert!(again["error"]["message"].as_str().unwrap().contains("ask an admin"));
    let secret = grant["secret"].as_str().unwrap().to_owned();
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
    let (status, _) = api(addr, "POST", &format!("/api/v1/devices/{device}/disable"), None);
    assert_eq!(status, 200);
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
    let (status, report) = http_json(
        addr,
        "POST",
        "/api/v1/edge/deliveries",
        Some(&secret),
        Some(&json!({"devices": [device]})),
    );
    assert_eq!((status, report["newly_delivered"].as_u64()), (200, Some(1)), "{report}");
    let r =
        raw_http(addr, format!("GET /device/credentials?mac={MAC} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
    assert_eq!(r.text(), "{\"login\": \"senso_240ac4123456\"}");

    // The device moves out of the scope: the gateway is told to drop it (a snapshot without it,
    // since a room changed building or a device changed rooms).
    let (_, other) = api(addr, "POST", "/api/v1/buildings", Some(json!({"name": "U4"})));
    let (_, u4_room) =
        api(addr, "POST", "/api/v1/rooms", Some(json!({"building": other["id"], "name": "302"})));
    let (status, moved) =
        api(addr, "PATCH", &format!("/api/v1/devices/{device}"), Some(json!({"rooms": [u4_room["id"]]})));
    assert_eq!(status, 200, "{moved}");
    let (_, next) = sync(addr, &secret, delta.revision, 0);
    let next = next.unwrap();
    let gone = next.changes.iter().any(|c| matches!(c, Change::DeleteDevice(id) if id.to_string() == device));
    let snapshot_without = next.kind == BatchKind::Snapshot
        && !next.changes.iter().any(|c| matches!(c, Change::UpsertDevice(d) if d.id.to_string() == device));
    assert!(gone || snapshot_without, "{next:?}");
    let _ = room;

    // Health: reported figures and the contact show in the API and /metrics.
    let (status, _) = http_json(
        addr,
        "POST",
        "/api/v1/edge/health",
        Some(&secret),
        Some(&json!({"outbox_depth": 12, "outbox_oldest_s": 40, "outbox_dropped": 0, "version": "0.1.0"})),
    );
    assert_eq!(status, 204);
    let (_, view) = api(addr, "GET", &format!("/api/v1/gateways/{gw_id}"), None);
    assert_eq!(
        (view["up"].as_bool(), view["health"]["report"]["outbox_depth"].as_u64()),
        (Some(true), Some(12))
    );
    assert!(view["enrolled_at"].is_string());
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
    register_example(addr);
    let (status, gw) =
        api(addr, "POST", "/api/v1/gateways", Some(json!({"name": "gw-ut3", "scope": {"site": "ut3"}})));
    assert_eq!(status, 201);
    let (_, token) =
        api(addr, "POST", &format!("/api/v1/gateways/{}/enrolment", gw["id"].as_str().unwrap()), None);
    let (_, grant) =
        http_json(addr, "POST", "/api/v1/edge/enroll", None, Some(&json!({"token": token["token"]})));
    let user = grant["mqtt_username"].as_str().unwrap();
    let secret = grant["mqtt_password"].as_str().unwrap();
    // go-auth's JSON contract: 200 and `{"ok": …}`.
    let ask = |path: &str, body: Value| http_json(addr, "POST", path, None, Some(&body)).1["ok"] == true;
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
