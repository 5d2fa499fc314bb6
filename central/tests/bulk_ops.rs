//! Bulk operations over real HTTP, from the real binary with a real Mosquitto: a `frequency`
//! order to a building previewed, refused without the confirmed count, sent paced to every
//! board (each order seen on the broker) with each device's outcome; a move that fails alone for
//! the board whose configuration does not fit; the operations in the audit trail.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::{api, start_with};
use neosens_runtime::testing::{Mosquitto, MqttWitness};
use serde_json::{Value, json};

const BOARDS: usize = 30;

fn mac(i: usize) -> String {
    format!("24:0a:c4:20:00:{i:02x}")
}

/// Previews `operation` (it reaches `devices`), runs it with the preview's code; the result.
fn run(addr: std::net::SocketAddr, mut operation: Value, devices: u64) -> Value {
    let (status, preview) = api(addr, "POST", "/api/v1/bulk-operations/preview", Some(operation.clone()));
    assert_eq!((status, preview["devices"].as_u64()), (200, Some(devices)), "{preview}");
    operation["confirm"] = preview["confirm"].clone();
    let (status, done) = api(addr, "POST", "/api/v1/bulk-operations", Some(operation));
    assert_eq!(status, 201, "{done}");
    done
}

#[test]
fn a_paced_order_to_a_building_and_a_move_with_per_device_outcomes() {
    let mosquitto = Mosquitto::start("");
    let dir = tempfile::tempdir().unwrap();
    let central = start_with(dir.path(), &[("NEOSENS_MQTT_URL", &mosquitto.url())]);
    let addr = central.addr("http");
    let (_, u4) = api(addr, "POST", "/api/v1/buildings", Some(json!({"name": "U4"})));
    let (_, u3) = api(addr, "POST", "/api/v1/buildings", Some(json!({"name": "U3"})));
    let (_, r302) = api(addr, "POST", "/api/v1/rooms", Some(json!({"building": u4["id"], "name": "302"})));
    let (_, r101) = api(addr, "POST", "/api/v1/rooms", Some(json!({"building": u3["id"], "name": "101"})));
    api(addr, "POST", "/api/v1/device-types", Some(json!({"name": "esp32"})));
    for i in 0..BOARDS {
        let (s, d) = api(
            addr,
            "POST",
            "/api/v1/devices",
            Some(json!({"uid": mac(i), "type": "esp32", "rooms": [r302["id"]]})),
        );
        assert_eq!(s, 201, "{d}");
    }
    let (_, other) = api(
        addr,
        "POST",
        "/api/v1/devices",
        Some(json!({"uid": "24:0a:c4:20:01:00", "type": "esp32", "rooms": [r101["id"]]})),
    );

    let order =
        json!({"target": {"building": u4["id"]}, "action": "order", "order": "frequency", "value": 900});
    let (status, preview) = api(addr, "POST", "/api/v1/bulk-operations/preview", Some(order.clone()));
    assert_eq!(status, 200, "{preview}");
    assert_eq!(
        (preview["devices"].as_u64(), preview["order_seconds"].as_u64()),
        (Some(BOARDS as u64), Some(2))
    );
    assert_eq!(preview["sample"].as_array().unwrap().len(), 20);
    let (status, body) = api(addr, "POST", "/api/v1/bulk-operations", Some(order.clone()));
    assert_eq!(status, 400, "no confirmation, no operation: {body}");
    // The code confirms this action on these devices only: another value is another operation.
    let mut edited = order.clone();
    edited["value"] = json!(3600);
    edited["confirm"] = preview["confirm"].clone();
    assert_eq!(api(addr, "POST", "/api/v1/bulk-operations", Some(edited)).0, 409);

    let witness = MqttWitness::subscribe(mosquitto.addr(), "u4/302/device/command");
    let mut confirmed = order.clone();
    confirmed["confirm"] = preview["confirm"].clone();
    let t0 = Instant::now();
    let (status, op) = api(addr, "POST", "/api/v1/bulk-operations", Some(confirmed));
    assert_eq!(status, 202, "{op}");
    let mut seen = HashSet::new();
    while seen.len() < BOARDS {
        let payload = witness.next(|_, _| true);
        let command: Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!((command["order"].as_str(), command["value"].as_u64()), (Some("frequency"), Some(900)));
        seen.insert(command["dest"].as_str().unwrap().to_owned());
    }
    // 30 orders at 20 per second: at least 1.45 s between the first and the last.
    assert!(t0.elapsed() >= Duration::from_millis(1400), "paced: {:?}", t0.elapsed());
    let path = format!("/api/v1/bulk-operations/{}", op["id"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let done = loop {
        let (_, v) = api(addr, "GET", &path, None);
        if v["finished_at"].is_string() || Instant::now() > deadline {
            break v;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        (done["done"].as_u64(), done["failed"].as_u64(), done["pending"].as_u64()),
        (Some(BOARDS as u64), Some(0), Some(0)),
        "{done}"
    );
    assert_eq!(done["outcomes"].as_array().unwrap().len(), BOARDS);
    let (_, history) = api(addr, "GET", &format!("/api/v1/devices/{}/orders", mac(3)), None);
    assert!(
        history["items"][0]["by"].as_str().unwrap().starts_with(&format!("bulk {} by", op["id"])),
        "{history}"
    );

    // A move of a list: five boards of U4 and the one already in U3/101.
    let mut listed: Vec<String> = (0..5).map(mac).collect();
    listed.push(other["uid"].as_str().unwrap().to_owned());
    let moved = run(addr, json!({"target": {"devices": listed}, "action": "move", "room": "u3/101"}), 6);
    assert_eq!((moved["done"].as_u64(), moved["failed"].as_u64()), (Some(6), Some(0)));
    let (_, d) = api(addr, "GET", &format!("/api/v1/devices/{}", mac(2)), None);
    assert_eq!(d["rooms"][0]["id"], r101["id"]);
    run(addr, json!({"target": {"room": "u3/101"}, "action": "disable"}), 6);
    let (_, listing) = api(addr, "GET", "/api/v1/devices?enabled=false", None);
    assert_eq!(listing["total"], 6);

    // Recorded: the operations and each device's change.
    let (_, ops) = api(addr, "GET", "/api/v1/bulk-operations", None);
    let actions: Vec<&str> =
        ops["items"].as_array().unwrap().iter().map(|o| o["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["disable", "move", "order"]);
    let (_, trail) = api(addr, "GET", "/api/v1/audit?action=bulk.", None);
    assert_eq!(trail["items"].as_array().unwrap().len(), 3);
    // The board already in u3/101 had nothing to change: five moves recorded.
    let (_, moves) = api(addr, "GET", "/api/v1/audit?action=device.bulk_move", None);
    assert_eq!(moves["items"].as_array().unwrap().len(), 5);
    let (status, _) =
        api(addr, "POST", "/api/v1/bulk-operations/preview", Some(json!({"target": {}, "action": "enable"})));
    assert_eq!(status, 400, "no target, no operation on the whole campus by accident");
}
