//! The admin API over real HTTP: auth and roles, JSON errors, the model rules.

mod common;

use common::client::wire::Room;
use common::client::{ApiClient, ApiFailure, parse};
use common::{ADMIN, start};
use neosens_runtime::testing::raw_http;
use serde_json::{Value, json};

/// A room `name` in the building `building`, created if needed.
fn room(admin: &ApiClient, building: &str, name: &str) -> Room {
    let b = match admin.create_building(json!({"name": building})) {
        Ok(b) => b,
        Err(e) if e.status == 409 => admin.building_named(building),
        Err(e) => panic!("building {building}: {e}"),
    };
    admin.create_room(json!({"building": b.id, "name": name})).expect("the room")
}

#[test]
fn tokens_and_roles() {
    let dir = tempfile::tempdir().unwrap();
    let central = start(dir.path());
    let addr = central.addr("http");
    let admin = ApiClient::admin(addr);
    let anonymous = ApiClient::anonymous(addr);

    let err = anonymous.devices("").unwrap_err();
    assert_eq!((err.status, err.code.as_str()), (401, "unauthorized"));
    let raw = raw_http(addr, b"GET /api/v1/sites HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(raw.header("www-authenticate"), Some("Bearer"));
    assert_eq!(ApiClient::bearer(addr, "nst_unknown").devices("").unwrap_err().status, 401);
    // Not even an unknown path or a wrong method answers without a token.
    assert_eq!(anonymous.raw("GET", "/api/v1/nothing", None).0, 401);
    assert_eq!(anonymous.raw("PUT", "/api/v1/sites", None).0, 401);
    let err = admin.refused("PUT", "/api/v1/sites", None);
    assert_eq!((err.status, err.code.as_str()), (405, "method_not_allowed"));

    let viewer = admin.create_token(json!({"name": "grafana", "role": "viewer"})).expect("a viewer token");
    assert!(viewer.token.starts_with("nst_"));
    let viewer = ApiClient::bearer(addr, &viewer.token);
    viewer.sites().expect("a viewer reads");
    let err = viewer.create_building(json!({"name": "U4"})).unwrap_err();
    assert_eq!((err.status, err.code.as_str()), (403, "forbidden"));
    assert!(err.message.contains("admin"), "{err:?}");

    let listed = admin.tokens().expect("tokens");
    assert_eq!(listed.len(), 2);
    // On the wire: neither the token's text nor its hash is ever listed.
    let (status, tokens) = admin.raw("GET", "/api/v1/tokens", None);
    assert_eq!(status, 200);
    assert!(
        tokens["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t.get("token").is_none() && t.get("hash").is_none()),
        "token texts never listed: {tokens}"
    );
    let grafana = listed.iter().find(|t| t.name == "grafana").unwrap();
    assert_eq!(grafana.role, "viewer");
    admin.delete_token(&grafana.id).expect("revoked");
    assert_eq!(viewer.sites().unwrap_err().status, 401, "revoked at once");
}

#[test]
fn errors_are_json_and_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let central = start(dir.path());
    let addr = central.addr("http");
    let admin = ApiClient::admin(addr);
    let r = room(&admin, "U4", "302");
    assert_eq!(r.base_topic.as_deref(), Some("u4/302"));
    admin.create_device_type(json!({"name": "esp32"})).expect("type");
    let device = json!({"uid": "24:0a:c4:12:34:56", "type": "esp32", "rooms": [r.id]});
    admin.create_device(device.clone()).expect("the device");

    // 409: the same MAC twice, in another form.
    let mut dup = device.clone();
    dup["uid"] = json!("24-0A-C4-12-34-56");
    let err = admin.create_device(dup).unwrap_err();
    assert_eq!((err.status, err.code.as_str()), (409, "conflict"), "{err:?}");

    // 400 with the field named.
    let mut bad = device.clone();
    bad["uid"] = json!("24:0a:c4:12:34");
    let err = admin.create_device(bad).unwrap_err();
    assert_eq!((err.status, err.field.as_deref()), (400, Some("uid")), "{err:?}");
    let mut no_room = device.clone();
    no_room["uid"] = json!("24:0a:c4:12:34:57");
    no_room["rooms"] = json!([]);
    let err = admin.create_device(no_room).unwrap_err();
    assert_eq!((err.status, err.field.as_deref()), (400, Some("rooms")), "{err:?}");

    // 400 on malformed JSON and unknown fields, 413 on oversized bodies, 404 on unknown things.
    let raw = raw_http(addr, format!("POST /api/v1/devices HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN}\r\nContent-Type: application/json\r\nContent-Length: 9\r\nConnection: close\r\n\r\n{{\"uid\": [").as_bytes());
    assert_eq!(raw.status, 400);
    let body: Value = serde_json::from_slice(&raw.body).unwrap();
    assert_eq!(ApiFailure::from_answer("malformed JSON", raw.status, body).code, "bad_request");
    let err = admin.create_device_type(json!({"name": "x", "colour": "red"})).unwrap_err();
    assert_eq!(err.status, 400, "{err:?}");
    assert!(err.message.contains("colour"), "{err:?}");
    let huge = json!({"name": "big", "description": "x".repeat(2 * 1024 * 1024)});
    let err = admin.create_device_type(huge).unwrap_err();
    assert_eq!((err.status, err.code.as_str()), (413, "payload_too_large"));
    assert_eq!(admin.device("24:0a:c4:00:00:00").unwrap_err().status, 404);
    assert_eq!(admin.raw("GET", "/api/v1/nothing", None).0, 404);
    let err = admin.devices("state=purple").unwrap_err();
    assert_eq!((err.status, err.code.as_str()), (400, "bad_request"));
}

#[test]
fn configurations_are_checked_against_shape_schema_and_size() {
    let dir = tempfile::tempdir().unwrap();
    let central = start(dir.path());
    let addr = central.addr("http");
    let admin = ApiClient::admin(addr);
    let r = room(&admin, "U4", "302");
    let schema = json!({"type": "array", "maxItems": 1, "items": {"type": "object", "properties": {"modules": {"type": "array", "items": {"properties": {"frequency": {"type": "integer", "minimum": 30}}}}}}});
    let t = admin.create_device_type(json!({"name": "airquality", "config_schema": schema})).expect("type");
    assert_eq!(t.name, "airquality");
    let err = admin.create_device_type(json!({"name": "broken", "config_schema": {"type": 12}})).unwrap_err();
    assert_eq!((err.status, err.field.as_deref()), (400, Some("config_schema")), "{err:?}");

    let device = |config: Value| json!({"uid": "24:0a:c4:12:34:56", "type": "airquality", "rooms": [r.id], "config": config});
    let module = |frequency: i64| json!({"module": "airquality", "unit": "pm_sds011", "frequency": frequency, "params": []});

    // The type's schema: 422 with the JSON pointer.
    let err = admin.create_device(device(json!([{"modules": [module(5)]}]))).unwrap_err();
    assert_eq!((err.status, err.code.as_str()), (422, "schema_violation"), "{err:?}");
    assert!(err.details[0].contains("/0/modules/0/frequency"), "{err:?}");
    // The legacy shape.
    let err = admin.create_device(device(json!([{"modules": [{"module": "x"}]}]))).unwrap_err();
    assert_eq!(err.status, 422, "{err:?}");
    assert!(err.message.contains("/0/modules/0/unit"), "{err:?}");
    // The firmware's 1023-byte answer, with by how much it is over.
    let params: Vec<Value> = (0..60).map(|i| json!({"param": format!("p{i}"), "value": i})).collect();
    let big =
        json!([{"modules": [{"module": "digital", "unit": "gpio", "frequency": 60, "params": params}]}]);
    let err = admin.create_device(device(big)).unwrap_err();
    assert_eq!(err.status, 422, "{err:?}");
    assert!(err.message.contains("over the device limit of 1023"), "{}", err.message);

    // A good one, then nothing was stored by the refused attempts.
    admin.create_device(device(json!([{"modules": [module(60)]}]))).expect("a valid configuration");
    assert_eq!(admin.devices("").expect("devices").total, 1);
}

#[test]
fn topics_follow_renames_and_stay_unique() {
    let dir = tempfile::tempdir().unwrap();
    let central = start(dir.path());
    let addr = central.addr("http");
    let admin = ApiClient::admin(addr);
    let r = room(&admin, "Bâtiment U4", "Salle 302");
    assert_eq!(r.base_topic.as_deref(), Some("batiment_u4/salle_302"));
    admin.create_device_type(json!({"name": "esp32"})).expect("type");
    admin
        .create_device(json!({"uid": "24:0a:c4:12:34:56", "type": "esp32", "rooms": [r.id]}))
        .expect("device");

    let b = admin.patch_building(&r.building, json!({"name": "U4"})).expect("renamed");
    assert_eq!(b.name, "U4");
    let d = admin.device("24:0a:c4:12:34:56").expect("the device");
    assert_eq!(d.base_topic.as_deref(), Some("u4/salle_302"), "the device follows its room");

    // Another site: abroad topics; outdoor areas.
    let site = admin.create_site(json!({"slug": "carcassonne", "name": "IUT Carcassonne"})).expect("site");
    assert_eq!((site.slug.as_str(), site.name.as_str()), ("carcassonne", "IUT Carcassonne"));
    let b = admin.create_building(json!({"site": "carcassonne", "name": "IUT"})).expect("building");
    let abroad = admin.create_room(json!({"building": b.id, "name": "101"})).expect("room");
    assert_eq!(abroad.base_topic.as_deref(), Some("abroad/carcassonne/iut/101"));
    let buildings = admin.buildings(Some("ut3")).expect("buildings");
    let outside = buildings.iter().find(|b| b.outside).unwrap();
    let area = admin.create_room(json!({"building": outside.id, "name": "Ambient"})).expect("area");
    assert_eq!(area.base_topic.as_deref(), Some("outside/ambient"));

    // Two rooms may not share a topic: `Salle 302` and `salle-302` both give `salle_302`.
    let err = admin.create_room(json!({"building": r.building, "name": "salle-302"})).unwrap_err();
    assert_eq!((err.status, err.code.as_str()), (409, "conflict"), "{err:?}");
    // References: a room with devices, a building with rooms, the default site.
    assert_eq!(admin.delete_room(&r.id).unwrap_err().status, 409);
    assert_eq!(admin.delete_building(&r.building).unwrap_err().status, 409);
    assert_eq!(admin.delete_site("ut3").unwrap_err().status, 409);
    admin.delete_device("24:0a:c4:12:34:56").expect("device deleted");
    admin.delete_room(&r.id).expect("room deleted");

    // Listing filters.
    assert_eq!(admin.devices("site=carcassonne&state=never_seen&q=24").expect("devices").total, 0);
}

#[test]
fn the_openapi_document_is_public_and_complete() {
    let dir = tempfile::tempdir().unwrap();
    let central = start(dir.path());
    let addr = central.addr("http");
    // A document, read as one: its structure is what the test checks.
    let (status, doc) = ApiClient::anonymous(addr).raw("GET", "/api/v1/openapi.json", None);
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
    let admin = ApiClient::admin(addr);

    // On the wire: neither the password nor its hash is ever shown.
    let (status, user) = admin.raw(
        "POST",
        "/api/v1/users",
        Some(json!({"username": "alice", "password": "correct horse", "role": "operator"})),
    );
    assert_eq!(status, 201, "{user}");
    assert!(user.get("password").is_none() && user.get("password_hash").is_none(), "{user}");
    let user: common::client::wire::User = parse("the new user", &user);
    assert_eq!((user.username.as_str(), user.role.as_str()), ("alice", "operator"));
    let err =
        admin.create_user(json!({"username": "bob", "password": "short", "role": "viewer"})).unwrap_err();
    assert_eq!((err.status, err.field.as_deref()), (400, Some("password")));
    admin.patch_user(&user.id, json!({"role": "admin"})).expect("promoted");
    assert_eq!(admin.users().expect("users")[0].role, "admin");

    let r = room(&admin, "U4", "302");
    admin.create_device_type(json!({"name": "esp32"})).expect("type");
    admin
        .create_device(json!({"uid": "24:0a:c4:12:34:56", "type": "esp32", "rooms": [r.id]}))
        .expect("device");
    let gw =
        admin.create_gateway(json!({"name": "gw-u4", "scope": {"buildings": [r.building]}})).expect("gw-u4");
    assert_eq!(gw.devices, 1);
    let site_gw = admin.create_gateway(json!({"name": "gw-ut3", "scope": {"site": "ut3"}})).expect("gw-ut3");
    assert_eq!(site_gw.devices, 1);
    let err = admin.create_gateway(json!({"name": "GW-U4", "scope": {"site": "ut3"}})).unwrap_err();
    assert_eq!((err.status, err.code.as_str()), (409, "conflict"));
    let err = admin.create_gateway(json!({"name": "x", "scope": {"buildings": []}})).unwrap_err();
    assert_eq!((err.status, err.field.as_deref()), (400, Some("scope.buildings")));
    admin.delete_gateway(&gw.id).expect("deleted");
    assert_eq!(admin.gateways().expect("gateways").len(), 1);
}
