//! A remote site's gateway caches the running campaign's image once and serves the update path
//! to the devices of its LAN, with central's answers byte for byte — and keeps serving it with
//! central down and after its own restart. Real `neosens-central`, `neosens-edge` and Mosquitto.

use std::net::SocketAddr;

use neosens_runtime::testing::{Mosquitto, RawResponse, http_json, raw_http, updater, wait_until};
use serde_json::{Value, json};

mod common;

use common::client::ApiClient;
use common::{ADMIN, enrolled_gateway, metric, start_central, start_edge};

const MAC_A: &str = "24:0a:c4:00:00:0a";
const MAC_B: &str = "24:0a:c4:00:00:0b";

fn check(addr: SocketAddr) -> RawResponse {
    raw_http(addr, &updater::esp32_check("esp32", "neOSensor"))
}

fn update(addr: SocketAddr, path: &str, mac: &str) -> RawResponse {
    raw_http(addr, &updater::esp32_update(path, mac))
}

fn api(addr: SocketAddr, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    http_json(addr, method, path, Some(ADMIN), body.as_ref())
}

#[test]
fn a_gateway_serves_the_campaign_from_its_cache_also_with_central_down() {
    let mosquitto = Mosquitto::start("");
    let central_dir = tempfile::tempdir().unwrap();
    let port = neosens_runtime::testing::free_port();
    let mut central = start_central(central_dir.path(), port, &mosquitto.url());
    let c = central.addr("http");
    let admin = ApiClient::admin(c);
    let building = admin.create_building(json!({"name": "CARCA"})).expect("building");
    let room = admin.create_room(json!({"building": building.id, "name": "101"})).expect("room");
    admin.create_device_type(json!({"name": "esp32"})).expect("type esp32");
    for mac in [MAC_A, MAC_B] {
        admin.create_device(json!({"uid": mac, "type": "esp32", "rooms": [room.id]})).expect("device");
    }

    // An image and a campaign over both devices: one in the first wave, one in the second.
    let content = updater::esp_image(300_000);
    let upload = updater::upload("hardware=esp32&board=neOSensor&revision=240101", ADMIN, &content);
    let uploaded = raw_http(c, &upload);
    assert_eq!(uploaded.status, 201, "{}", uploaded.text());
    let sha = serde_json::from_slice::<Value>(&uploaded.body).unwrap()["sha256"].as_str().unwrap().to_owned();
    let (status, campaign) = api(
        c,
        "POST",
        "/api/v1/campaigns",
        Some(json!({"name": "carca", "image": sha, "target": {"devices": [MAC_A, MAC_B]},
                    "waves": [{"until_percent": 50}, {"until_percent": 100}]})),
    );
    assert_eq!(status, 201, "{campaign}");
    let id = campaign["id"].as_u64().unwrap();

    // The gateway of the building fetches the image once.
    let edge_dir = enrolled_gateway(c, "gw-carca", json!({"buildings": [building.id]}));
    let config = edge_dir.path().join("edge.toml");
    std::fs::write(&config, "[central]\ntimeout_ms = 500\nsync_wait_s = 2\n[firmware]\npoll_s = 1\n")
        .unwrap();
    // A download that broke off halfway before a restart: the gateway resumes it.
    std::fs::create_dir_all(edge_dir.path().join("firmware")).unwrap();
    std::fs::write(edge_dir.path().join(format!("firmware/{sha}.part")), &content[..120_000]).unwrap();
    let mut edge = start_edge(edge_dir.path(), &config, &mosquitto.url());
    let e = edge.addr("http");
    wait_until("the gateway cached the image", || metric(e, "neosens_edge_firmware_images") == 1.0);

    // The same answers as central's, byte for byte.
    let (at_central, at_gateway) = (check(c), check(e));
    assert_eq!((at_gateway.status, &at_gateway.body), (200, &at_central.body), "{}", at_gateway.text());
    assert_eq!(at_gateway.header("content-type"), Some("application/json"));
    let path = format!("/images/esp32/neOSensor/{sha}.bin");
    let answers = [update(e, &path, MAC_A), update(e, &path, MAC_B)];
    let served: Vec<&RawResponse> = answers.iter().filter(|r| r.status == 200).collect();
    assert_eq!(
        served.len(),
        1,
        "one device in the first wave: {:?}",
        answers.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert!(answers.iter().any(|r| r.status == 304), "the other is told no update");
    assert_eq!(served[0].body, content);
    assert_eq!(served[0].header("content-length"), Some(content.len().to_string().as_str()));
    assert_eq!(
        served[0].header("x-md5"),
        update(c, &path, if answers[0].status == 200 { MAC_A } else { MAC_B }).header("x-md5")
    );
    assert_eq!(raw_http(e, format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes()).status, 403);

    // The fetch reaches central's campaign progress.
    wait_until("central knows the device is downloading", || {
        let (_, devices) = api(c, "GET", &format!("/api/v1/campaigns/{id}/devices?stage=downloading"), None);
        devices["total"] == 1
    });

    // The second wave; then central goes away: the gateway serves both devices from its cache.
    let (status, _) =
        api(c, "POST", &format!("/api/v1/campaigns/{id}/actions"), Some(json!({"action": "advance"})));
    assert_eq!(status, 200);
    wait_until("the gateway follows the second wave", || {
        update(e, &path, MAC_B).status == 200 && update(e, &path, MAC_A).status == 200
    });
    let text = raw_http(c, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").text();
    assert!(text.contains("neosens_firmware_gateway_downloads_total 1\n"), "one copy for the site: {text}");
    let rest = content.len() - 120_000;
    assert!(
        text.contains(&format!("neosens_firmware_gateway_bytes_total {rest}\n")),
        "only the missing part was sent: {text}"
    );
    central.signal_and_wait("KILL");
    assert_eq!(check(e).status, 200, "central down: the gateway still answers the check");
    assert_eq!(update(e, &path, MAC_A).body, content);

    // A restarted gateway without central serves what it cached.
    edge.signal_and_wait("TERM");
    let edge = start_edge(edge_dir.path(), &config, &mosquitto.url());
    let e = edge.addr("http");
    assert_eq!((check(e).status, check(e).body), (200, at_central.body));
    assert_eq!(update(e, &path, MAC_B).body, content);
    assert_eq!(metric(e, "neosens_edge_firmware_downloads_total"), 0.0, "nothing downloaded again");
}
