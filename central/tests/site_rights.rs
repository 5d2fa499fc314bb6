//! Rights per site over real HTTP, from the real binary with a real Mosquitto: an operator token
//! limited to `carcassonne` sees and changes that site's devices and orders them (the order
//! seen on the broker), and is refused on the campus's — listings, a device's page, changes,
//! orders, exports, import rows, bulk targets — and on campus-wide routes; all in the audit trail.

mod common;

use std::net::SocketAddr;

use common::{api, start_with};
use neosens_runtime::testing::{Mosquitto, MqttWitness, RawResponse, http_json, raw_http};
use serde_json::{Value, json};

const CAMPUS: [&str; 3] = ["24:0a:c4:30:00:00", "24:0a:c4:30:00:01", "24:0a:c4:30:00:02"];
const CARCASSONNE: [&str; 2] = ["24:0a:c4:31:00:00", "24:0a:c4:31:00:01"];

fn as_token(addr: SocketAddr, token: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    http_json(addr, method, &format!("/api/v1{path}"), Some(token), body.as_ref())
}

fn raw(addr: SocketAddr, token: &str, method: &str, path: &str, csv: &str) -> RawResponse {
    let request = format!(
        "{method} /api/v1{path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {token}\r\nContent-Type: text/csv\r\nContent-Length: {}\r\n\r\n{csv}",
        csv.len()
    );
    raw_http(addr, request.as_bytes())
}

/// Two sites: the campus (`u4/302`, three boards) and `carcassonne` (`iut/101`, two boards).
fn two_sites(addr: SocketAddr) -> Value {
    let (_, u4) = api(addr, "POST", "/api/v1/buildings", Some(json!({"name": "U4"})));
    let (_, r302) = api(addr, "POST", "/api/v1/rooms", Some(json!({"building": u4["id"], "name": "302"})));
    let (s, _) =
        api(addr, "POST", "/api/v1/sites", Some(json!({"slug": "carcassonne", "name": "Carcassonne"})));
    assert_eq!(s, 201);
    let (_, iut) =
        api(addr, "POST", "/api/v1/buildings", Some(json!({"site": "carcassonne", "name": "iut"})));
    let (_, r101) = api(addr, "POST", "/api/v1/rooms", Some(json!({"building": iut["id"], "name": "101"})));
    api(addr, "POST", "/api/v1/device-types", Some(json!({"name": "esp32"})));
    for (uids, room) in [(&CAMPUS[..], &r302), (&CARCASSONNE[..], &r101)] {
        for uid in uids {
            let body = json!({"uid": uid, "type": "esp32", "rooms": [room["id"]]});
            let (s, d) = api(addr, "POST", "/api/v1/devices", Some(body));
            assert_eq!(s, 201, "{d}");
        }
    }
    r302["id"].clone()
}

fn uids(page: &Value) -> Vec<String> {
    page["items"].as_array().unwrap().iter().map(|d| d["uid"].as_str().unwrap().to_lowercase()).collect()
}

#[test]
fn a_site_limited_operator_works_on_its_site_and_is_refused_on_the_others() {
    let mosquitto = Mosquitto::start("");
    let dir = tempfile::tempdir().unwrap();
    let central = start_with(dir.path(), &[("NEOSENS_MQTT_URL", &mosquitto.url())]);
    let addr = central.addr("http");
    let campus_room = two_sites(addr);
    let body = json!({"name": "carcassonne ops", "role": "operator", "sites": ["carcassonne"]});
    let (s, created) = api(addr, "POST", "/api/v1/tokens", Some(body));
    assert_eq!((s, &created["sites"]), (201, &json!(["carcassonne"])), "{created}");
    let ops = created["token"].as_str().unwrap().to_owned();
    let call = |method: &str, path: &str, body: Option<Value>| as_token(addr, &ops, method, path, body);

    // What it sees: its site's devices, rooms and site only.
    let (s, page) = call("GET", "/devices", None);
    assert_eq!((s, page["total"].as_u64()), (200, Some(2)), "{page}");
    assert_eq!(uids(&page), CARCASSONNE);
    let (_, sites) = call("GET", "/sites", None);
    let slugs: Vec<&str> =
        sites["items"].as_array().unwrap().iter().map(|s| s["slug"].as_str().unwrap()).collect();
    assert_eq!(slugs, ["carcassonne"]);
    let (_, rooms) = call("GET", "/rooms", None);
    assert_eq!(rooms["items"].as_array().unwrap().len(), 1);
    let (_, fleet) = call("GET", "/fleet", None);
    assert_eq!(fleet["sites"].as_array().unwrap().len(), 1, "{fleet}");

    // Another site's device is not there for it, whatever it tries.
    let other = CAMPUS[0];
    for (method, path, body) in [
        ("GET", format!("/devices/{other}"), None),
        ("GET", format!("/devices/{other}/timeline"), None),
        ("GET", format!("/devices/{other}/orders"), None),
        ("PATCH", format!("/devices/{other}"), Some(json!({"description": "mine"}))),
        ("POST", format!("/devices/{other}/disable"), None),
        ("POST", format!("/devices/{other}/credentials/reset"), None),
        ("POST", format!("/devices/{other}/orders"), Some(json!({"order": "reboot"}))),
        ("DELETE", format!("/devices/{other}"), None),
    ] {
        let (s, e) = call(method, &path, body);
        assert_eq!(s, 404, "{method} {path}: {e}");
    }
    let (s, e) = call(
        "POST",
        "/devices",
        Some(json!({"uid": "24:0a:c4:30:00:09", "type": "esp32", "rooms": [campus_room]})),
    );
    assert!(s == 403 || s == 422, "a device placed on another site: {s} {e}");
    let (s, e) =
        call("PATCH", &format!("/devices/{}", CARCASSONNE[0]), Some(json!({"rooms": [campus_room]})));
    assert!(s == 403 || s == 422, "moved to another site: {s} {e}");
    // Campus-wide routes are refused, with the reason.
    for path in ["/gateways", "/audit", "/users", "/tokens", "/unclaimed", "/campaigns"] {
        let (s, e) = call("GET", path, None);
        assert_eq!(s, 403, "{path}: {e}");
    }
    let (_, e) = call("GET", "/gateways", None);
    assert!(e["error"]["message"].as_str().unwrap_or_default().contains("campus-wide"), "{e}");

    // Bulk: exports, import rows and bulk targets stop at its sites.
    let export = raw(addr, &ops, "GET", "/devices/export.csv", "");
    assert_eq!(export.status, 200);
    assert_eq!(export.text().lines().count(), 1 + CARCASSONNE.len(), "{}", export.text());
    let csv = format!(
        "uid,type,rooms\n24:0a:c4:31:00:05,esp32,abroad/carcassonne/iut/101\n24:0a:c4:31:00:06,esp32,u4/302\n{other},esp32,abroad/carcassonne/iut/101\n"
    );
    let imported: Value =
        serde_json::from_slice(&raw(addr, &ops, "POST", "/devices/import.csv", &csv).body).unwrap();
    assert_eq!((imported["created"].as_u64(), imported["failed"].as_u64()), (Some(1), Some(2)), "{imported}");
    let (_, preview) = call(
        "POST",
        "/bulk-operations/preview",
        Some(json!({"target": {"site": "ut3"}, "action": "disable"})),
    );
    assert_eq!(preview["devices"].as_u64(), Some(0), "{preview}");
    let (s, _) = call(
        "POST",
        "/bulk-operations/preview",
        Some(json!({"target": {"devices": [other]}, "action": "disable"})),
    );
    assert_eq!(s, 400, "not a device it sees");

    // On its own site it works: a change and an order that reaches the board's topic.
    let (s, d) = call("PATCH", &format!("/devices/{}", CARCASSONNE[0]), Some(json!({"description": "hall"})));
    assert_eq!((s, d["description"].as_str()), (200, Some("hall")), "{d}");
    let witness = MqttWitness::subscribe(mosquitto.addr(), "abroad/carcassonne/iut/101/device/command");
    let (s, order) = call(
        "POST",
        &format!("/devices/{}/orders", CARCASSONNE[1]),
        Some(json!({"order": "frequency", "value": 900})),
    );
    assert_eq!(s, 202, "{order}");
    let seen: Value = serde_json::from_slice(&witness.next(|_, _| true)).unwrap();
    assert_eq!(seen["order"], "frequency");

    // A board also in a room of the campus: seen, but neither changed nor ordered (its order
    // would go to its main room, on the campus), and left out of bulk targets.
    let (_, r101) = api(addr, "GET", "/api/v1/rooms", None);
    let r101 = r101["items"].as_array().unwrap().iter().find(|r| r["name"] == "101").unwrap()["id"].clone();
    let both = json!({"uid": "24:0a:c4:31:00:0b", "type": "esp32", "rooms": [campus_room, r101]});
    assert_eq!(api(addr, "POST", "/api/v1/devices", Some(both)).0, 201);
    let shared = "24:0a:c4:31:00:0b";
    assert_eq!(call("GET", &format!("/devices/{shared}"), None).0, 200);
    let (s, e) = call("POST", &format!("/devices/{shared}/orders"), Some(json!({"order": "reboot"})));
    assert_eq!(s, 403, "{e}");
    assert_eq!(call("PATCH", &format!("/devices/{shared}"), Some(json!({"description": "x"}))).0, 403);
    let (s, _) = call(
        "POST",
        "/bulk-operations/preview",
        Some(json!({"target": {"devices": [shared]}, "action": "disable"})),
    );
    assert_eq!(s, 400);
    let (_, preview) = call(
        "POST",
        "/bulk-operations/preview",
        Some(json!({"target": {"site": "carcassonne"}, "action": "disable"})),
    );
    assert_eq!(preview["devices"].as_u64(), Some(3), "its own three boards, not the shared one: {preview}");

    // The admin sees everything, and what the limited operator did, in the audit trail.
    let (_, all) = api(addr, "GET", "/api/v1/devices", None);
    assert_eq!(all["total"].as_u64(), Some(7));
    let (_, trail) = api(addr, "GET", "/api/v1/audit?actor=carcassonne%20ops", None);
    let actions: Vec<&str> =
        trail["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    for action in ["order.send", "device.update", "device.import"] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
    let (s, e) = api(
        addr,
        "POST",
        "/api/v1/tokens",
        Some(json!({"name": "x", "role": "admin", "sites": ["carcassonne"]})),
    );
    assert_eq!(s, 400, "an admin is campus-wide: {e}");
}
