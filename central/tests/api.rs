//! The admin API over real HTTP: auth and roles, JSON errors, the model rules.

mod common;

use std::net::SocketAddr;

use common::{ADMIN, api, start};
use neosens_runtime::testing::{http_json, raw_http};
use serde_json::{Value, json};

fn error_code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or_else(|| panic!("not an API error: {v}"))
}

fn room(addr: SocketAddr, building: &str, name: &str) -> Value {
    let (s, b) = api(addr, "POST", "/api/v1/buildings", Some(json!({"name": building})));
    let b = if s == 201 {
        b
    } else {
        let (_, list) = api(addr, "GET", "/api/v1/buildings", None);
        list["items"].as_array().unwrap().iter().find(|x| x["name"] == building).unwrap().clone()
    };
    let (s, r) = api(addr, "POST", "/api/v1/rooms", Some(json!({"building": b["id"], "name": name})));
    assert_eq!(s, 201, "{r}");
    r
}

#[test]
fn tokens_and_roles() {
    let dir = tempfile::tempdir().unwrap();
    let central = start(dir.path());
    let addr = central.addr("http");

    let (status, body) = http_json(addr, "GET", "/api/v1/devices", None, None);
    assert_eq!((status, error_code(&body)), (401, "unauthorized"));
    let raw = raw_http(addr, b"GET /api/v1/sites HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(raw.header("www-authenticate"), Some("Bearer"));
    let (status, _) = http_json(addr, "GET", "/api/v1/devices", Some("nst_unknown"), None);
    assert_eq!(status, 401);
    // Not even an unknown path or a wrong method answers without a token.
    assert_eq!(http_json(addr, "GET", "/api/v1/nothing", None, None).0, 401);
    assert_eq!(http_json(addr, "PUT", "/api/v1/sites", None, None).0, 401);
    let (status, body) = api(addr, "PUT", "/api/v1/sites", None);
    assert_eq!((status, error_code(&body)), (405, "method_not_allowed"));

    let (status, viewer) =
        api(addr, "POST", "/api/v1/tokens", Some(json!({"name": "grafana", "role": "viewer"})));
    assert_eq!(status, 201, "{viewer}");
    let viewer = viewer["token"].as_str().unwrap().to_owned();
    assert!(viewer.starts_with("nst_"));
    let (status, _) = http_json(addr, "GET", "/api/v1/sites", Some(&viewer), None);
    assert_eq!(status, 200);
    let (status, body) =
        http_json(addr, "POST", "/api/v1/buildings", Some(&viewer), Some(&json!({"name": "U4"})));
    assert_eq!((status, error_code(&body)), (403, "forbidden"));
    assert!(body["error"]["message"].as_str().unwrap().contains("admin"), "{body}");

    let (_, tokens) = api(addr, "GET", "/api/v1/tokens", None);
    let listed = tokens["items"].as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert!(
        listed.iter().all(|t| t.get("token").is_none() && t.get("hash").is_none()),
        "token texts never listed: {tokens}"
    );
    let id = listed.iter().find(|t| t["name"] == "grafana").unwrap()["id"].as_str().unwrap().to_owned();
    assert_eq!(api(addr, "DELETE", &format!("/api/v1/tokens/{id}"), None).0, 204);
    assert_eq!(http_json(addr, "GET", "/api/v1/sites", Some(&viewer), None).0, 401, "revoked at once");
}

#[test]
fn errors_are_json_and_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let central = start(dir.path());
    let addr = central.addr("http");
    let r = room(addr, "U4", "302");
    assert_eq!(r["base_topic"], "u4/302");
    api(addr, "POST", "/api/v1/device-types", Some(json!({"name": "esp32"})));
    let device = json!({"uid": "24:0a:c4:12:34:56", "type": "esp32", "rooms": [r["id"]]});
    assert_eq!(api(addr, "POST", "/api/v1/devices", Some(device.clone())).0, 201);

    // 409: the same MAC twice, in another form.
    let mut dup = device.clone();
    dup["uid"] = json!("24-0A-C4-12-34-56");
    let (status, body) = api(addr, "POST", "/api/v1/devices", Some(dup));
    assert_eq!((status, error_code(&body)), (409, "conflict"), "{body}");

    // 400 with the field named.
    let mut bad = device.clone();
    bad["uid"] = json!("24:0a:c4:12:34");
    let (status, body) = api(addr, "POST", "/api/v1/devices", Some(bad));
    assert_eq!((status, body["error"]["field"].as_str()), (400, Some("uid")), "{body}");
    let mut no_room = device.clone();
    no_room["uid"] = json!("24:0a:c4:12:34:57");
    no_room["rooms"] = json!([]);
    let (status, body) = api(addr, "POST", "/api/v1/devices", Some(no_room));
    assert_eq!((status, body["error"]["field"].as_str()), (400, Some("rooms")), "{body}");

    // 400 on malformed JSON and unknown fields, 413 on oversized bodies, 404 on unknown things.
    let raw = raw_http(addr, format!("POST /api/v1/devices HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN}\r\nContent-Type: application/json\r\nContent-Length: 9\r\nConnection: close\r\n\r\n{{\"uid\": [").as_bytes());
    assert_eq!(raw.status, 400);
    assert_eq!(error_code(&serde_json::from_slice(&raw.body).unwrap()), "bad_request");
    let (status, body) =
        api(addr, "POST", "/api/v1/device-types", Some(json!({"name": "x", "colour": "red"})));
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("colour"), "{body}");
    let huge = json!({"name": "big", "description": "x".repeat(2 * 1024 * 1024)});
    let (status, body) = api(addr, "POST", "/api/v1/device-types", Some(huge));
    assert_eq!((status, error_code(&body)), (413, "payload_too_large"));
    assert_eq!(api(addr, "GET", "/api/v1/devices/24:0a:c4:00:00:00", None).0, 404);
    assert_eq!(api(addr, "GET", "/api/v1/nothing", None).0, 404);
    let (status, body) = api(addr, "GET", "/api/v1/devices?state=purple", None);
    assert_eq!((status, error_code(&body)), (400, "bad_request"));
}

#[test]
fn configurations_are_checked_against_shape_schema_and_size() {
    let dir = tempfile::tempdir().unwrap();
    let central = start(dir.path());
    let addr = central.addr("http");
    let r = room(addr, "U4", "302");
    let schema = json!({"type": "array", "maxItems": 1, "items": {"type": "object", "properties": {"modules": {"type": "array", "items": {"properties": {"frequency": {"type": "integer", "minimum": 30}}}}}}});
    let (status, t) = api(
        addr,
        "POST",
        "/api/v1/device-types",
        Some(json!({"name": "airquality", "config_schema": schema})),
    );
    assert_eq!(status, 201, "{t}");
    let (status, body) = api(
        addr,
        "POST",
        "/api/v1/device-types",
        Some(json!({"name": "broken", "config_schema": {"type": 12}})),
    );
    assert_eq!((status, body["error"]["field"].as_str()), (400, Some("config_schema")), "{body}");

    let device = |config: Value| json!({"uid": "24:0a:c4:12:34:56", "type": "airquality", "rooms": [r["id"]], "config": config});
    let module = |frequency: i64| json!({"module": "airquality", "unit": "pm_sds011", "frequency": frequency, "params": []});

    // The type's schema: 422 with the JSON pointer.
    let (status, body) =
        api(addr, "POST", "/api/v1/devices", Some(device(json!([{"modules": [module(5)]}]))));
    assert_eq!((status, error_code(&body)), (422, "schema_violation"), "{body}");
    assert!(body["error"]["details"][0].as_str().unwrap().contains("/0/modules/0/frequency"), "{body}");
    // The legacy shape.
    let (status, body) =
        api(addr, "POST", "/api/v1/devices", Some(device(json!([{"modules": [{"module": "x"}]}]))));
    assert_eq!(status, 422, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("/0/modules/0/unit"), "{body}");
    // The firmware's 1023-byte answer, with by how much it is over.
    let params: Vec<Value> = (0..60).map(|i| json!({"param": format!("p{i}"), "value": i})).collect();
    let big =
        json!([{"modules": [{"module": "digital", "unit": "gpio", "frequency": 60, "params": params}]}]);
    let (status, body) = api(addr, "POST", "/api/v1/devices", Some(device(big)));
    assert_eq!(status, 422, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("over the device limit of 1023"), "{message}");

    // A good one, then nothing was stored by the refused attempts.
    let (status, created) =
        api(addr, "POST", "/api/v1/devices", Some(device(json!([{"modules": [module(60)]}]))));
    assert_eq!(status, 201, "{created}");
    let (_, page) = api(addr, "GET", "/api/v1/devices", None);
    assert_eq!(page["total"], 1);
}

#[test]
fn topics_follow_renames_and_stay_unique() {
    let dir = tempfile::tempdir().unwrap();
    let central = start(dir.path());
    let addr = central.addr("http");
    let r = room(addr, "Bâtiment U4", "Salle 302");
    assert_eq!(r["base_topic"], "batiment_u4/salle_302");
    api(addr, "POST", "/api/v1/device-types", Some(json!({"name": "esp32"})));
    api(
        addr,
        "POST",
        "/api/v1/devices",
        Some(json!({"uid": "24:0a:c4:12:34:56", "type": "esp32", "rooms": [r["id"]]})),
    );

    let (status, b) = api(
        addr,
        "PATCH",
        &format!("/api/v1/buildings/{}", r["building"].as_str().unwrap()),
        Some(json!({"name": "U4"})),
    );
    assert_eq!(status, 200, "{b}");
    let (_, d) = api(addr, "GET", "/api/v1/devices/24:0a:c4:12:34:56", None);
    assert_eq!(d["base_topic"], "u4/salle_302", "the device follows its room");

    // Another site: abroad topics; outdoor areas.
    let (status, site) =
        api(addr, "POST", "/api/v1/sites", Some(json!({"slug": "carcassonne", "name": "IUT Carcassonne"})));
    assert_eq!(status, 201, "{site}");
    let (_, b) = api(addr, "POST", "/api/v1/buildings", Some(json!({"site": "carcassonne", "name": "IUT"})));
    let (_, abroad) = api(addr, "POST", "/api/v1/rooms", Some(json!({"building": b["id"], "name": "101"})));
    assert_eq!(abroad["base_topic"], "abroad/carcassonne/iut/101");
    let (_, buildings) = api(addr, "GET", "/api/v1/buildings?site=ut3", None);
    let outside =
        buildings["items"].as_array().unwrap().iter().find(|b| b["outside"] == true).unwrap().clone();
    let (_, area) =
        api(addr, "POST", "/api/v1/rooms", Some(json!({"building": outside["id"], "name": "Ambient"})));
    assert_eq!(area["base_topic"], "outside/ambient");

    // Two rooms may not share a topic: `Salle 302` and `salle-302` both give `salle_302`.
    let (status, body) =
        api(addr, "POST", "/api/v1/rooms", Some(json!({"building": r["building"], "name": "salle-302"})));
    assert_eq!((status, error_code(&body)), (409, "conflict"), "{body}");
    // References: a room with devices, a building with rooms, the default site.
    assert_eq!(api(addr, "DELETE", &format!("/api/v1/rooms/{}", r["id"].as_str().unwrap()), None).0, 409);
    assert_eq!(
        api(addr, "DELETE", &format!("/api/v1/buildings/{}", r["building"].as_str().unwrap()), None).0,
        409
    );
    assert_eq!(api(addr, "DELETE", "/api/v1/sites/ut3", None).0, 409);
    assert_eq!(api(addr, "DELETE", "/api/v1/devices/24:0a:c4:12:34:56", None).0, 204);
    assert_eq!(api(addr, "DELETE", &format!("/api/v1/rooms/{}", r["id"].as_str().unwrap()), None).0, 204);

    // Listing filters.
    let (_, page) = api(addr, "GET", "/api/v1/devices?site=carcassonne&state=never_seen&q=24", None);
    assert_eq!(page["total"], 0);
}

#[test]
fn the_openapi_document_is_public_and_complete() {
    let dir = tempfile::tempdir().unwrap();
    let central = start(dir.path());
    let addr = central.addr("http");
    let (status, doc) = http_json(addr, "GET", "/api/v1/openapi.json", None, None);
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/api/v1/sites",
        "/api/v1/buildings/{id}",
        "/api/v1/rooms",
        "/api/v1/device-types",
        "/api/v1/devices",
        "/api/v1/devices/{id}",
        "/api/v1/devices/{id}/credentials/reset",
        "/api/v1/gateways",
        "/api/v1/tokens",
        "/api/v1/users/{id}",
    ] {
        assert!(paths.contains_key(path), "{path} missing from the OpenAPI document");
    }
    assert!(
        paths["/api/v1/devices"]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "state")
    );
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    assert!(doc["components"]["schemas"]["DeviceView"]["properties"]["base_topic"].is_object());
}

#[test]
fn users_and_gateways() {
    let dir = tempfile::tempdir().unwrap();
    let central = start(dir.path());
    let addr = central.addr("http");

    let (status, user) = api(
        addr,
        "POST",
        "/api/v1/users",
        Some(json!({"username": "alice", "password": "correct horse", "role": "operator"})),
    );
    assert_eq!(status, 201, "{user}");
    assert!(user.get("password").is_none() && user.get("password_hash").is_none(), "{user}");
    let (status, body) = api(
        addr,
        "POST",
        "/api/v1/users",
        Some(json!({"username": "bob", "password": "short", "role": "viewer"})),
    );
    assert_eq!((status, body["error"]["field"].as_str()), (400, Some("password")));
    let (status, _) = api(
        addr,
        "PATCH",
        &format!("/api/v1/users/{}", user["id"].as_str().unwrap()),
        Some(json!({"role": "admin"})),
    );
    assert_eq!(status, 200);
    let (_, users) = api(addr, "GET", "/api/v1/users", None);
    assert_eq!(users["items"][0]["role"], "admin");

    let r = room(addr, "U4", "302");
    api(addr, "POST", "/api/v1/device-types", Some(json!({"name": "esp32"})));
    api(
        addr,
        "POST",
        "/api/v1/devices",
        Some(json!({"uid": "24:0a:c4:12:34:56", "type": "esp32", "rooms": [r["id"]]})),
    );
    let (status, gw) = api(
        addr,
        "POST",
        "/api/v1/gateways",
        Some(json!({"name": "gw-u4", "scope": {"buildings": [r["building"]]}})),
    );
    assert_eq!(status, 201, "{gw}");
    assert_eq!(gw["devices"], 1);
    let (status, site_gw) =
        api(addr, "POST", "/api/v1/gateways", Some(json!({"name": "gw-ut3", "scope": {"site": "ut3"}})));
    assert_eq!((status, &site_gw["devices"]), (201, &json!(1)));
    let (status, body) =
        api(addr, "POST", "/api/v1/gateways", Some(json!({"name": "GW-U4", "scope": {"site": "ut3"}})));
    assert_eq!((status, error_code(&body)), (409, "conflict"));
    let (status, body) =
        api(addr, "POST", "/api/v1/gateways", Some(json!({"name": "x", "scope": {"buildings": []}})));
    assert_eq!((status, body["error"]["field"].as_str()), (400, Some("scope.buildings")));
    assert_eq!(api(addr, "DELETE", &format!("/api/v1/gateways/{}", gw["id"].as_str().unwrap()), None).0, 204);
    let (_, list) = api(addr, "GET", "/api/v1/gateways", None);
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}
