//! Devices in bulk over real HTTP, from the real binary: a 1,000-device CSV with 3 bad rows,
//! checked by a dry run that writes nothing, then imported; an export that imports back
//! unchanged; a JSON import; files refused whole; rights; and the audit trail of the import.

mod common;

use std::net::SocketAddr;

use common::{ADMIN, api, start};
use neosens_runtime::testing::{RawResponse, http_json, raw_http};
use serde_json::{Value, json};

fn post(addr: SocketAddr, path: &str, token: &str, content_type: &str, body: &str) -> RawResponse {
    let request = format!(
        "POST /api/v1{path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {token}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    raw_http(addr, request.as_bytes())
}

fn json_of(r: &RawResponse) -> Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", r.text()))
}

fn get(addr: SocketAddr, path: &str) -> RawResponse {
    let request = format!(
        "GET /api/v1{path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {ADMIN}\r\n\r\n"
    );
    raw_http(addr, request.as_bytes())
}

fn fleet_csv() -> String {
    let mut csv = String::from("uid,type,rooms,description,enabled,config\n");
    for i in 0..1000u32 {
        let room = if i % 2 == 0 { "u4/101" } else { "u4/102;u4/101" };
        csv.push_str(&format!(
            "24:0a:c4:10:{:02x}:{:02x},esp32,{room},\"board {i}, floor 1\",true,\n",
            i >> 8,
            i & 0xff
        ));
    }
    // Three bad rows: an unknown room, a broken MAC, a configuration that is not the zones' shape.
    csv = csv.replacen("24:0a:c4:10:00:0a,esp32,u4/101", "24:0a:c4:10:00:0a,esp32,u4/999", 1);
    csv = csv.replacen("24:0a:c4:10:01:f4,", "24:0a:c4:10:1:zz,", 1);
    csv =
        csv.replacen("\"board 900, floor 1\",true,", "\"board 900, floor 1\",true,\"{\"\"zones\"\": 1}\"", 1);
    csv
}

#[test]
fn a_thousand_devices_from_csv_with_three_bad_rows() {
    let dir = tempfile::tempdir().unwrap();
    let central = start(dir.path());
    let addr = central.addr("http");
    let (_, b) = api(addr, "POST", "/api/v1/buildings", Some(json!({"name": "U4"})));
    for room in ["101", "102"] {
        let (status, r) =
            api(addr, "POST", "/api/v1/rooms", Some(json!({"building": b["id"], "name": room})));
        assert_eq!(status, 201, "{r}");
    }
    api(addr, "POST", "/api/v1/device-types", Some(json!({"name": "esp32"})));
    let csv = fleet_csv();

    let dry = post(addr, "/devices/import.csv?dry_run=true", ADMIN, "text/csv", &csv);
    assert_eq!(dry.status, 200, "{}", dry.text());
    let report = json_of(&dry);
    assert_eq!(
        (
            report["dry_run"].as_bool(),
            report["rows"].as_u64(),
            report["created"].as_u64(),
            report["failed"].as_u64()
        ),
        (Some(true), Some(1000), Some(997), Some(3)),
        "{}",
        report["errors"]
    );
    let errors: Vec<(u64, &str)> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["row"].as_u64().unwrap(), e["field"].as_str().unwrap()))
        .collect();
    assert_eq!(errors, [(11, "rooms[0]"), (501, "uid"), (901, "config")]);
    assert_eq!(report["changes"].as_array().unwrap().len(), 997);
    let (_, listing) = api(addr, "GET", "/api/v1/devices?limit=1", None);
    assert_eq!(listing["total"], 0, "the dry run wrote nothing");

    let real = json_of(&post(addr, "/devices/import.csv", ADMIN, "text/csv", &csv));
    assert_eq!(
        (real["dry_run"].as_bool(), real["created"].as_u64(), real["failed"].as_u64()),
        (Some(false), Some(997), Some(3))
    );
    let (_, listing) = api(addr, "GET", "/api/v1/devices?limit=1", None);
    assert_eq!(listing["total"], 997);
    let (_, one) = api(addr, "GET", "/api/v1/devices/24:0a:c4:10:00:01", None);
    assert_eq!(one["rooms"].as_array().unwrap().len(), 2);
    assert_eq!(one["description"], "board 1, floor 1");

    // An export of a filter imports back unchanged; edited, it changes what was edited.
    let export = get(addr, &format!("/devices/export.csv?building={}", b["id"].as_str().unwrap()));
    assert_eq!(export.status, 200);
    assert!(export.header("content-type").unwrap().starts_with("text/csv"));
    let exported = export.text();
    assert_eq!(exported.lines().count(), 998, "header and 997 devices");
    let again = json_of(&post(addr, "/devices/import.csv", ADMIN, "text/csv", &exported));
    assert_eq!(
        (again["unchanged"].as_u64(), again["created"].as_u64(), again["updated"].as_u64()),
        (Some(997), Some(0), Some(0))
    );
    let edited = exported.replacen(",true,", ",false,", 5);
    let changed = json_of(&post(addr, "/devices/import.csv", ADMIN, "text/csv", &edited));
    assert_eq!(changed["updated"], 5);
    assert_eq!(changed["changes"][0]["fields"], json!(["enabled"]));

    // JSON, the same way.
    let (status, json_export) = api(addr, "GET", "/api/v1/devices/export.json?q=24:0A:C4:10:00:0", None);
    assert_eq!(status, 200);
    let mut rows = json_export.as_array().unwrap().clone();
    assert!(!rows.is_empty());
    rows[0]["description"] = json!("relabelled");
    let r = post(addr, "/devices/import.json", ADMIN, "application/json", &Value::Array(rows).to_string());
    assert_eq!(json_of(&r)["updated"], 1, "{}", r.text());

    // Files refused whole, with what to fix.
    let r = post(addr, "/devices/import.csv", ADMIN, "text/csv", "mac,type\n24:0a:c4:00:00:01,esp32\n");
    assert_eq!(r.status, 400);
    assert!(
        json_of(&r)["error"]["message"].as_str().unwrap().contains("unknown column \"mac\""),
        "{}",
        r.text()
    );
    let r = post(addr, "/devices/import.json", ADMIN, "application/json", "{\"uid\": 1}");
    assert_eq!(r.status, 400);

    // Viewers export, operators import.
    let (_, token) = api(addr, "POST", "/api/v1/tokens", Some(json!({"name": "reader", "role": "viewer"})));
    let viewer = token["token"].as_str().unwrap();
    assert_eq!(post(addr, "/devices/import.csv?dry_run=true", viewer, "text/csv", &exported).status, 403);
    assert_eq!(http_json(addr, "GET", "/api/v1/devices/export.json", Some(viewer), None).0, 200);

    // Each device the import created or changed is in the trail, as the token's import.
    let (_, trail) = api(addr, "GET", "/api/v1/audit?action=device.import&limit=500", None);
    assert_eq!(trail["items"].as_array().unwrap().len(), 500);
    assert_eq!(trail["items"][0]["actor"]["kind"], "token");
}
