//! A device registered through the admin API provisions exactly like a neOSensor against the
//! 2016 server: the request bytes of `client-sequence.md`, one request per connection, and the
//! answers byte for byte (spec `legacy-sensocampus.md` §3).

mod common;

use std::net::SocketAddr;

use base64::Engine;
use common::client::wire::LegacyCredentials;
use common::client::{ApiClient, parse_raw};
use common::{register_example, start};
use neosens_runtime::testing::{RawResponse, raw_http};
use serde_json::{Value, json};

/// `GET /device/credentials` exactly as the ESP32 firmware sends it (§C step 9).
fn esp32_credentials(addr: SocketAddr, mac: &str) -> RawResponse {
    let request = format!(
        "GET /device/credentials?mac={mac} HTTP/1.1\r\nHost: sensocampus.univ-tlse3.fr\r\nUser-Agent: ESP32HTTPClient\r\nConnection: keep-alive\r\nAccept-Encoding: identity;q=1,chunked;q=0.1,*;q=0\r\n\r\n"
    );
    raw_http(addr, request.as_bytes())
}

/// `GET /device/config` as the ESP32 sends it (§C step 11).
fn esp32_config(addr: SocketAddr, login: &str, password: &str) -> RawResponse {
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{login}:{password}"));
    let request = format!(
        "GET /device/config HTTP/1.1\r\nHost: sensocampus.univ-tlse3.fr\r\nUser-Agent: ESP32HTTPClient\r\nConnection: keep-alive\r\nAccept-Encoding: identity;q=1,chunked;q=0.1,*;q=0\r\nAuthorization: Basic {basic}\r\n\r\n"
    );
    raw_http(addr, request.as_bytes())
}

/// `GET /device/config` as the ESP8266 sends it: `Authorization` before `Connection`.
fn esp8266_config(addr: SocketAddr, login: &str, password: &str) -> RawResponse {
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{login}:{password}"));
    let request = format!(
        "GET /device/config HTTP/1.1\r\nHost: sensocampus.univ-tlse3.fr\r\nUser-Agent: ESP8266HTTPClient\r\nAccept-Encoding: identity;q=1,chunked;q=0.1,*;q=0\r\nAuthorization: Basic {basic}\r\nConnection: keep-alive\r\n\r\n"
    );
    raw_http(addr, request.as_bytes())
}

/// The password in a first `/device/credentials` answer (its exact bytes are checked apart).
fn password_of(r: &RawResponse) -> String {
    let answer: LegacyCredentials = parse_raw("credentials", r);
    assert_eq!(answer.login, "senso_240ac4123456");
    answer.password.expect("the first answer carries the password")
}

fn assert_forbidden(r: &RawResponse, what: &str) {
    assert_eq!(r.status, 403, "{what}: {}", r.text());
    assert!(r.body.is_empty(), "{what}: 403 with an empty body, got {:?}", r.text());
}

fn assert_json_answer(r: &RawResponse, expected: &str, what: &str) {
    assert_eq!(r.status, 200, "{what}: {}", r.text());
    assert_eq!(r.text(), expected, "{what}");
    assert_eq!(r.header("content-type"), Some("application/json"), "{what}");
    assert_eq!(r.header("content-length"), Some(expected.len().to_string().as_str()), "{what}");
}

#[test]
fn a_registered_device_provisions_like_against_the_2016_server() {
    let dir = tempfile::tempdir().unwrap();
    let central = start(dir.path());
    let addr = central.addr("http");
    let admin = ApiClient::admin(addr);
    let (_, device_id) = register_example(addr);
    let device = admin.device("24:0a:c4:12:34:56").expect("the device");
    assert_eq!(
        (device.login.as_str(), device.credentials_delivered, device.state.as_str()),
        ("senso_240ac4123456", false, "never_seen")
    );

    // First boot: login and password, exactly once.
    let first = esp32_credentials(addr, "24:0a:c4:12:34:56");
    assert_eq!(first.status, 200, "{}", first.text());
    let password = password_of(&first);
    assert_eq!(uuid::Uuid::parse_str(&password).unwrap().get_version_num(), 4);
    assert_json_answer(
        &first,
        &format!(r#"{{"login": "senso_240ac4123456", "password": "{password}"}}"#),
        "first credentials",
    );

    // Every later boot: the login alone; never `"password": null`.
    let later = esp32_credentials(addr, "24:0a:c4:12:34:56");
    assert_json_answer(&later, r#"{"login": "senso_240ac4123456"}"#, "second credentials");
    assert!(admin.device("24:0a:c4:12:34:56").expect("the device").credentials_delivered);

    // Config with Basic auth, from both cores.
    let expected = r#"{"topics": ["irit2/366"], "zones": []}"#;
    assert_json_answer(&esp32_config(addr, "senso_240ac4123456", &password), expected, "ESP32 config");
    assert_json_answer(&esp8266_config(addr, "senso_240ac4123456", &password), expected, "ESP8266 config");
    // Any method, and the trailing-slash form the 2016 URL patterns matched.
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("senso_240ac4123456:{password}"));
    let post = raw_http(addr, format!("POST /device/config/ HTTP/1.1\r\nHost: x\r\nAuthorization: basic {basic}\r\nContent-Length: 0\r\n\r\n").as_bytes());
    assert_json_answer(&post, expected, "POST /device/config/ with a lowercase scheme");

    // The Raspberry Pi client: percent-encoded colons, requests' headers.
    let rpi = raw_http(
        addr,
        b"GET /device/credentials?mac=24%3A0a%3Ac4%3A12%3A34%3A56 HTTP/1.1\r\nHost: sensocampus.univ-tlse3.fr\r\nUser-Agent: python-requests/2.31.0\r\nAccept-Encoding: gzip, deflate\r\nAccept: */*\r\nConnection: keep-alive\r\n\r\n",
    );
    assert_json_answer(&rpi, r#"{"login": "senso_240ac4123456"}"#, "RPi credentials");
    // POST with a form body, as the 2016 view also read it.
    let form = raw_http(
        addr,
        b"POST /device/credentials HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 21\r\n\r\nmac=24-0A-C4-12-34-56",
    );
    assert_json_answer(&form, r#"{"login": "senso_240ac4123456"}"#, "POST form credentials");

    // Configuration zones come back with Python's separators and escapes.
    let zones = json!([{"topic": "irit2/366", "modules": [{"module": "airquality", "unit": "pm_sds011", "frequency": 120, "params": [{"param": "type", "value": 32}, {"param": "unit", "value": "µg/m3"}]}]}]);
    let updated = admin.patch_device("24:0A:C4:12:34:56", json!({"config": zones})).expect("configured");
    assert_eq!(updated.id, device_id, "the uid in any case names the device");
    assert_json_answer(
        &esp32_config(addr, "senso_240ac4123456", &password),
        r#"{"topics": ["irit2/366"], "zones": [{"topic": "irit2/366", "modules": [{"module": "airquality", "unit": "pm_sds011", "frequency": 120, "params": [{"param": "type", "value": 32}, {"param": "unit", "value": "\u00b5g/m3"}]}]}]}"#,
        "config with zones",
    );
}

#[test]
fn refusals_are_403_with_an_empty_body() {
    let dir = tempfile::tempdir().unwrap();
    let central = start(dir.path());
    let addr = central.addr("http");
    let admin = ApiClient::admin(addr);
    register_example(addr);
    let password = password_of(&esp32_credentials(addr, "24:0a:c4:12:34:56"));

    for mac in [
        "24:0a:c4:12:34:57",
        "240ac4123456",
        "24:0a:c4:12:34",
        "zz:0a:c4:12:34:56",
        "",
        "24:0a:c4:12:34:56:00",
        "%ff%fe",
    ] {
        assert_forbidden(&esp32_credentials(addr, mac), &format!("credentials for {mac:?}"));
    }
    assert_forbidden(
        &raw_http(addr, b"GET /device/credentials HTTP/1.1\r\nHost: x\r\n\r\n"),
        "credentials without mac",
    );
    assert_forbidden(&esp32_config(addr, "senso_240ac4123456", "wrong"), "wrong password");
    assert_forbidden(&esp32_config(addr, "senso_000000000000", &password), "unknown login");
    assert_forbidden(
        &raw_http(addr, b"GET /device/config HTTP/1.1\r\nHost: x\r\n\r\n"),
        "config without auth",
    );
    assert_forbidden(
        &raw_http(
            addr,
            b"GET /device/config HTTP/1.1\r\nHost: x\r\nAuthorization: Basic !!!notbase64\r\n\r\n",
        ),
        "config with garbage auth",
    );
    assert_forbidden(
        &raw_http(addr, b"GET /device/config HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer abc\r\n\r\n"),
        "config with another scheme",
    );

    // Disabled: still its credentials (as in 2016), no config.
    let disabled = admin.disable_device("24:0a:c4:12:34:56").expect("disabled");
    assert_eq!(disabled.state, "disabled");
    assert_eq!(esp32_credentials(addr, "24:0a:c4:12:34:56").status, 200);
    assert_forbidden(&esp32_config(addr, "senso_240ac4123456", &password), "disabled device");
    admin.enable_device("24:0a:c4:12:34:56").expect("enabled");
    assert_eq!(esp32_config(addr, "senso_240ac4123456", &password).status, 200);

    // Reset: a new secret, delivered once again; the old one stops working.
    let reset = admin.reset_credentials("24:0a:c4:12:34:56").expect("reset");
    assert!(!reset.credentials_delivered);
    assert_forbidden(&esp32_config(addr, "senso_240ac4123456", &password), "old password after reset");
    let new_password = password_of(&esp32_credentials(addr, "24:0a:c4:12:34:56"));
    assert_ne!(new_password, password);
    assert_eq!(esp32_config(addr, "senso_240ac4123456", &new_password).status, 200);
}

#[test]
fn raspberry_pi_logs_are_stored() {
    let dir = tempfile::tempdir().unwrap();
    let central = start(dir.path());
    let addr = central.addr("http");
    register_example(addr);
    let password = password_of(&esp32_credentials(addr, "24:0a:c4:12:34:56"));
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("senso_240ac4123456:{password}"));
    let form = "name=root&msg=disk+full&levelname=ERROR&levelno=40&exc_info=None&funcName=check&lineno=12";
    let post = |auth: &str| {
        raw_http(
            addr,
            format!("POST /device/logger HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}", form.len()).as_bytes(),
        )
    };
    assert_eq!(post(&basic).status, 200);
    assert_forbidden(&post("d3Jvbmc6d3Jvbmc="), "logger with wrong credentials");
    let get = raw_http(
        addr,
        format!("GET /device/logger HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {basic}\r\n\r\n").as_bytes(),
    );
    assert_eq!(get.status, 405, "the 2016 view was POST-only");

    let logs = ApiClient::admin(addr).device_logs("24:0a:c4:12:34:56").expect("logs");
    // The record is the logger's form as posted: free-form, read by key (`exc_info` present).
    let record = &logs[0].record;
    assert_eq!((record["msg"].as_str(), record["levelname"].as_str()), (Some("disk full"), Some("ERROR")));
    assert_eq!(record["exc_info"], Value::Null, "'None' is stored as null");
    assert_eq!(logs[0].remote_addr, "127.0.0.1");
}

#[test]
fn everything_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let password = {
        let mut central = start(dir.path());
        let addr = central.addr("http");
        register_example(addr);
        let password = password_of(&esp32_credentials(addr, "24:0a:c4:12:34:56"));
        assert!(central.signal_and_wait("TERM").success());
        password
    };
    let central = start(dir.path());
    let addr = central.addr("http");
    assert_json_answer(
        &esp32_credentials(addr, "24:0a:c4:12:34:56"),
        r#"{"login": "senso_240ac4123456"}"#,
        "after restart",
    );
    assert_json_answer(
        &esp32_config(addr, "senso_240ac4123456", &password),
        r#"{"topics": ["irit2/366"], "zones": []}"#,
        "config after restart",
    );
    let sites = ApiClient::admin(addr).sites().expect("sites");
    assert_eq!(sites.len(), 1, "the default site is created once: {sites:?}");
}

/// A board that keeps booting (each boot asks for its configuration) raises a reboot-loop alert
/// with the rule of its type; others do not.
#[test]
fn a_board_booting_over_and_over_raises_a_reboot_loop_alert() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("central.toml");
    std::fs::write(&config, "[alerts.reboot_loop.types.esp32]\nboots = 3\nwindow_min = 10\n").unwrap();
    let data = dir.path().join("data");
    let mut env: std::collections::HashMap<String, String> = common::store_env(&data).into_iter().collect();
    env.extend([
        ("NEOSENS_HTTP_BIND".to_owned(), "127.0.0.1:0".to_owned()),
        ("NEOSENS_DATA_DIR".to_owned(), data.to_string_lossy().into_owned()),
        ("NEOSENS_ADMIN_TOKEN".to_owned(), common::ADMIN.to_owned()),
        ("NEOSENS_EMBEDDED_MQTT_BIND".to_owned(), "127.0.0.1:0".to_owned()),
    ]);
    let central = neosens_runtime::testing::ServiceProcess::spawn(
        std::path::Path::new(common::BIN),
        &["--config", &config.to_string_lossy()],
        &env,
    );
    let addr = central.addr("http");
    let (_, device) = register_example(addr);
    let password = common::first_password(addr, common::MAC);
    let loops = || {
        let (_, alerts) = common::api(addr, "GET", "/api/v1/alerts", None);
        alerts["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["kind"] == "reboot_loop")
            .cloned()
            .collect::<Vec<Value>>()
    };
    for boot in 0..2 {
        assert_eq!(esp32_config(addr, common::LOGIN, &password).status, 200, "boot {boot}");
    }
    assert!(loops().is_empty(), "two boots are no loop");
    assert_eq!(esp32_config(addr, common::LOGIN, &password).status, 200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while loops().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let alerts = loops();
    assert_eq!(alerts.len(), 1, "one alert for the loop");
    assert_eq!(alerts[0]["device"], json!(device));
    assert_eq!(alerts[0]["detail"], "3 boots within 10 min");
    // A wrong password is no boot.
    assert_eq!(esp32_config(addr, common::LOGIN, "wrong").status, 403);
}
