//! The firmware update path against the request bytes of the real updaters: the boot-time
//! check `GET /images/<hw>/<board>/default.json` as `neOCampusOTA()` sends it (client-sequence
//! §B) and the image download as arduino-esp32's `HTTPUpdate` and the ESP8266
//! `ESP8266httpUpdate` send it (HTTP/1.0, MAC headers), with an image uploaded and a campaign
//! in two waves created through the admin API of the real binary. (The request bytes are
//! `neosens_runtime::testing::updater`'s.)

mod common;

use std::net::SocketAddr;

use common::{ADMIN, MAC, api, register_example, start};
use neosens_runtime::testing::{RawResponse, raw_http, updater};
use serde_json::{Value, json};

const SECOND_MAC: &str = "24:0a:c4:00:00:02";

fn esp32_check(addr: SocketAddr) -> RawResponse {
    raw_http(addr, &updater::esp32_check("esp32", "neOSensor"))
}

fn esp8266_check(addr: SocketAddr) -> RawResponse {
    raw_http(addr, &updater::esp8266_check("esp8266", "neOSensor"))
}

fn esp32_update(addr: SocketAddr, path: &str, mac: &str) -> RawResponse {
    raw_http(addr, &updater::esp32_update(path, mac))
}

fn esp8266_update(addr: SocketAddr, path: &str, mac: &str, sketch_md5: &str) -> RawResponse {
    raw_http(addr, &updater::esp8266_update(path, mac, sketch_md5))
}

fn upload(addr: SocketAddr, query: &str, content: &[u8]) -> RawResponse {
    raw_http(addr, &updater::upload(query, ADMIN, content))
}

fn image_bytes() -> Vec<u8> {
    updater::esp_image(200_000)
}

#[test]
fn unmodified_updaters_follow_the_waves_of_a_campaign() {
    let dir = tempfile::tempdir().unwrap();
    let central = start(dir.path());
    let addr = central.addr("http");
    let (room, _) = register_example(addr);
    let (status, _) = api(
        addr,
        "POST",
        "/api/v1/devices",
        Some(json!({"uid": SECOND_MAC, "type": "esp32", "rooms": [room]})),
    );
    assert_eq!(status, 201);

    // No campaign: 404, which the firmware takes as "no update".
    let none = esp32_check(addr);
    assert_eq!((none.status, none.body.len()), (404, 0), "{}", none.text());

    let content = image_bytes();
    let refused = upload(addr, "hardware=esp32&board=neOSensor&revision=240101", b"\x7fELF not an ESP image");
    assert_eq!(refused.status, 400, "{}", refused.text());
    assert!(refused.text().contains("0xE9"), "{}", refused.text());
    let uploaded = upload(addr, "hardware=esp32&board=neOSensor&revision=240101&notes=spring", &content);
    assert_eq!(uploaded.status, 201, "{}", uploaded.text());
    let image: Value = serde_json::from_slice(&uploaded.body).unwrap();
    let sha = image["sha256"].as_str().unwrap().to_owned();
    let md5 = image["md5"].as_str().unwrap().to_owned();
    assert_eq!(image["size"], content.len());

    let (status, campaign) = api(
        addr,
        "POST",
        "/api/v1/campaigns",
        Some(json!({"name": "spring", "image": sha, "target": {"type": "esp32"},
                    "waves": [{"until_percent": 50}, {"until_percent": 100}]})),
    );
    assert_eq!(status, 201, "{campaign}");
    assert_eq!((campaign["devices"].as_u64(), campaign["reached"].as_u64()), (Some(2), Some(1)));

    // The check: exact bytes, within the firmware's 512-byte buffer.
    let check = esp32_check(addr);
    let path = format!("/images/esp32/neOSensor/{sha}.bin");
    let expected = format!(r#"{{"revision":240101,"image":"http://neocampus.univ-tlse3.fr{path}"}}"#);
    assert_eq!((check.status, check.text()), (200, expected.clone()));
    assert_eq!(check.header("content-type"), Some("application/json"));
    assert_eq!(check.header("content-length"), Some(expected.len().to_string().as_str()));
    assert!(check.body.len() <= 511);
    assert_eq!(esp8266_check(addr).status, 404, "no campaign for esp8266 boards");

    // One device is in the first wave, the other is told "no update" (304).
    let answers = [esp32_update(addr, &path, MAC), esp32_update(addr, &path, SECOND_MAC)];
    let served: Vec<&RawResponse> = answers.iter().filter(|r| r.status == 200).collect();
    assert_eq!(served.len(), 1, "{:?}", answers.iter().map(|r| r.status).collect::<Vec<_>>());
    assert!(answers.iter().any(|r| r.status == 304 && r.body.is_empty()));
    let image_answer = served[0];
    assert_eq!(image_answer.body, content, "the image, whole");
    assert_eq!(image_answer.header("content-length"), Some(content.len().to_string().as_str()));
    assert_eq!(image_answer.header("content-type"), Some("application/octet-stream"));
    assert_eq!(image_answer.header("x-md5"), Some(md5.as_str()));
    assert_eq!(image_answer.header("transfer-encoding"), None, "the updaters need Content-Length");

    // Not a device's updater (no MAC, or garbage); an unknown MAC; a device already running it.
    assert_eq!(raw_http(addr, format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes()).status, 403);
    let garbage = format!("GET {path} HTTP/1.0\r\nHost: x\r\nx-ESP32-STA-MAC: zz:not-a-mac\r\n\r\n");
    assert_eq!(raw_http(addr, garbage.as_bytes()).status, 403);
    assert_eq!(esp32_update(addr, &path, "24:0a:c4:99:99:99").status, 304);
    assert_eq!(esp8266_update(addr, &path, MAC, &md5).status, 304);
    assert_eq!(esp32_update(addr, "/images/esp32/neOSensor/abc.bin", MAC).status, 404);

    // The second wave, by hand: both devices get it (the ESP8266 updater's headers work too).
    let id = campaign["id"].as_u64().unwrap();
    let (status, advanced) =
        api(addr, "POST", &format!("/api/v1/campaigns/{id}/actions"), Some(json!({"action": "advance"})));
    assert_eq!((status, advanced["reached"].as_u64()), (200, Some(2)), "{advanced}");
    assert_eq!(esp32_update(addr, &path, SECOND_MAC).status, 200);
    assert_eq!(esp8266_update(addr, &path, SECOND_MAC, "0123456789abcdef0123456789abcdef").status, 200);

    // Paused: the check answers 404 again; the image cannot be deleted while the campaign is open.
    let (status, _) =
        api(addr, "POST", &format!("/api/v1/campaigns/{id}/actions"), Some(json!({"action": "pause"})));
    assert_eq!(status, 200);
    assert_eq!(esp32_check(addr).status, 404);
    let (status, body) = api(addr, "DELETE", &format!("/api/v1/firmware/{sha}"), None);
    assert_eq!(status, 409, "{body}");
    let (status, revisions) = api(addr, "GET", "/api/v1/firmware/revisions", None);
    assert_eq!(status, 200, "{revisions}");
    assert!(revisions["now"].is_array() && revisions["history"].is_array(), "{revisions}");
    let metrics = raw_http(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").text();
    assert!(metrics.contains("neosens_firmware_campaigns{state=\"paused\"} 1"), "{metrics}");
    assert!(metrics.contains("neosens_firmware_images 1"), "{metrics}");
    assert!(
        metrics.contains("neosens_provisioning_requests_total{path=\"firmware_image\",outcome=\"served\"} 3"),
        "{metrics}"
    );
}

#[test]
fn malformed_uploads_and_campaigns_get_json_errors() {
    let dir = tempfile::tempdir().unwrap();
    let central = start(dir.path());
    let addr = central.addr("http");
    for (query, why) in [
        ("board=neOSensor&revision=1", "hardware missing"),
        ("hardware=esp32&board=neOSensor&revision=x", "revision not a number"),
        ("hardware=esp32&board=neOSensor&revision=1&color=red", "unknown parameter"),
        ("hardware=esp32&board=..%2F..%2Fetc&revision=1", "a path in the board name"),
    ] {
        let r = upload(addr, query, &image_bytes());
        assert_eq!(r.status, 400, "{why}: {}", r.text());
        let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        assert!(body["error"]["message"].is_string(), "{why}: a JSON error, got {}", r.text());
    }
    let empty = upload(addr, "hardware=esp32&board=neOSensor&revision=1", b"");
    assert_eq!(empty.status, 400, "{}", empty.text());
    for body in [
        json!({"name": "x", "image": "00", "target": {}}),
        json!({"name": "x", "image": "zz", "target": {}, "waves": [{"until_percent": 100}]}),
        json!({"name": "x", "image": "00", "target": {"colour": "blue"}}),
        json!({"name": "", "target": {}}),
    ] {
        let (status, answer) = api(addr, "POST", "/api/v1/campaigns", Some(body.clone()));
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(answer["error"]["message"].is_string(), "{answer}");
    }
    let (status, answer) =
        api(addr, "POST", "/api/v1/campaigns/1/actions", Some(json!({"action": "explode"})));
    assert!(status == 400 || status == 404, "{status} {answer}");
    let (status, _) = api(addr, "GET", "/api/v1/campaigns/99/devices?stage=lost", None);
    assert_eq!(status, 404);
    let (status, _) = api(addr, "DELETE", "/api/v1/firmware/not-a-sha", None);
    assert_eq!(status, 404);
}
