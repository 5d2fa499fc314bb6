//! A gateway in real life: the real `neosens-central` and `neosens-edge` binaries and a real
//! Mosquitto. The gateway enrols, syncs its scope, proxies provisioning byte for byte while
//! central is up, keeps provisioning devices while central is down (a staged password handed
//! over exactly once, then reported), survives `kill -9`, and publishes its own status.

use std::net::SocketAddr;

use base64::Engine;
use neosens_runtime::testing::{Mosquitto, RawResponse, raw_http, wait_until};
use serde_json::json;

mod common;

use common::client::wire::{DeviceStatus, LegacyCredentials};
use common::client::{ApiClient, parse_bytes, parse_raw};
use common::{EDGE, metric, start_central, start_edge};

const MAC_A: &str = "24:0a:c4:00:00:0a";
const MAC_B: &str = "24:0a:c4:00:00:0b";
const GATEWAY_MAC: &str = "b8:27:eb:00:00:01";

fn credentials(addr: SocketAddr, mac: &str) -> RawResponse {
    raw_http(
        addr,
        format!("GET /device/credentials?mac={mac} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
}

fn config(addr: SocketAddr, login: &str, password: &str) -> RawResponse {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{login}:{password}"));
    raw_http(
        addr,
        format!("GET /device/config HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
}

/// `POST /device/logger` as the Raspberry Pi client sends it (Basic auth, a form `LogRecord`).
fn log_line(addr: SocketAddr, login: &str, password: &str, msg: &str) -> RawResponse {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{login}:{password}"));
    let body = format!("levelno=40&levelname=ERROR&name=neocampus&msg={msg}&exc_info=None");
    raw_http(
        addr,
        format!("POST /device/logger HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
            .as_bytes(),
    )
}

fn login(mac: &str) -> String {
    format!("senso_{}", mac.replace(':', ""))
}

#[test]
fn a_gateway_provisions_devices_with_central_up_and_down_and_loses_nothing() {
    let mosquitto = Mosquitto::start("");
    let central_dir = tempfile::tempdir().unwrap();
    let port = neosens_runtime::testing::free_port();
    let mut central = start_central(central_dir.path(), port, &mosquitto.url());
    let c = central.addr("http");

    // The registry: a room with two devices and the gateway's own box; a gateway for the building.
    let admin = ApiClient::admin(c);
    let building = admin.create_building(json!({"name": "IRIT2"})).expect("building IRIT2");
    let room = admin.create_room(json!({"building": building.id, "name": "366"})).expect("room 366");
    admin.create_device_type(json!({"name": "esp32"})).expect("type esp32");
    admin
        .create_device_type(json!({"name": "rpi3", "orders": ["status", "reboot", "update"]}))
        .expect("type rpi3");
    for (mac, kind) in [(MAC_A, "esp32"), (MAC_B, "esp32"), (GATEWAY_MAC, "rpi3")] {
        admin
            .create_device(json!({"uid": mac, "type": kind, "rooms": [room.id]}))
            .unwrap_or_else(|e| panic!("device {mac}: {e}"));
    }
    let gw = admin
        .create_gateway(json!({"name": "gw-irit2", "scope": {"buildings": [building.id]}}))
        .expect("the gateway");
    let token = admin.enrolment(&gw.id).expect("an enrolment token").token;

    // Enrolment through the real command line.
    let edge_dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(EDGE)
        .args(["enroll", "--central", &format!("http://{c}"), "--token", &token])
        .env("NEOSENS_EDGE_DATA_DIR", edge_dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success(), "plain http:// is refused without --insecure");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("https://") && said.contains("--insecure"), "{said}");
    let out = std::process::Command::new(EDGE)
        .args(["enroll", "--central", &format!("http://{c}"), "--token", &token])
        .arg("--insecure")
        .env("NEOSENS_EDGE_DATA_DIR", edge_dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("gw-irit2"));
    let config_file = edge_dir.path().join("edge.toml");
    std::fs::write(
        &config_file,
        format!("[central]\ntimeout_ms = 500\nsync_wait_s = 2\n[agent]\nmac = \"{GATEWAY_MAC}\"\nstatus_period_s = 10\n"),
    )
    .unwrap();
    let witness = neosens_runtime::testing::MqttWitness::subscribe(mosquitto.addr(), "irit2/366/device");
    let mut edge = start_edge(edge_dir.path(), &config_file, &mosquitto.url());
    let e = edge.addr("http");
    wait_until("the gateway synced its scope", || metric(e, "neosens_edge_devices_cached") == 3.0);

    // The gateway is a device of its room: its status reaches central, and it follows orders.
    let gateway_status = |payload: &[u8]| DeviceStatus::of(GATEWAY_MAC, payload);
    let is_gateway_status = |_: &str, payload: &[u8]| gateway_status(payload).is_some();
    let first_status = gateway_status(&witness.next(is_gateway_status)).unwrap();
    assert_eq!(
        (first_status.hardware.as_deref(), first_status.devices),
        (Some(neosens_protocol::agent_build::agent_hardware(std::env::consts::ARCH).as_str()), Some(3)),
        "{first_status:?}"
    );
    wait_until("central ingested the gateway's status", || {
        admin.last_status(GATEWAY_MAC).as_deref() == Some("running")
    });
    admin.send_order(GATEWAY_MAC, json!({"order": "status"})).expect("the order accepted");
    let answer = gateway_status(&witness.next(is_gateway_status)).unwrap();
    assert!(answer.msg_id > first_status.msg_id, "a fresh status answers the order: {answer:?}");

    // Online: central's answers, byte for byte, through the gateway.
    let first = credentials(e, MAC_A);
    assert_eq!(first.status, 200);
    let creds: LegacyCredentials = parse_raw("the first credentials", &first);
    let password_a = creds.password.expect("first delivery through the gateway");
    let via_gateway = config(e, &login(MAC_A), &password_a);
    let direct = config(c, &login(MAC_A), &password_a);
    assert_eq!((via_gateway.status, &via_gateway.body), (200, &direct.body));
    assert_eq!(via_gateway.header("content-type"), Some("application/json"));
    assert_eq!(credentials(e, "00:00:00:00:00:01").status, 403, "unknown MAC");
    // … and in central's adoption inbox, with the gateway it came through and the board's
    // User-Agent (forwarded as the device sent it).
    let asked = raw_http(
        e,
        b"GET /device/credentials?mac=24:0a:c4:00:00:99 HTTP/1.1\r\nHost: x\r\nUser-Agent: ESP32HTTPClient\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(asked.status, 403);
    let (_, inbox) = admin.raw("GET", "/api/v1/unclaimed", None);
    let entry = inbox["items"].as_array().unwrap().iter().find(|d| d["mac"] == "24:0A:C4:00:00:99").cloned();
    let entry = entry.unwrap_or_else(|| panic!("not in the inbox: {inbox}"));
    assert_eq!((&entry["board"], &entry["source"]), (&json!("esp32"), &json!("127.0.0.1")), "{entry}");
    assert!(entry["gateway"].is_string(), "through the gateway: {entry}");
    wait_until("central's delivery synced to the gateway", || {
        metric(e, "neosens_edge_sync_revision") == metric(c, "neosens_registry_revision")
    });

    // Central goes down: the gateway answers from its cache.
    central.signal_and_wait("TERM");
    let offline = config(e, &login(MAC_A), &password_a);
    assert_eq!((offline.status, &offline.body), (200, &direct.body), "the same bytes as central's");
    assert_eq!(config(e, &login(MAC_A), "wrong").status, 403);
    assert_eq!(credentials(e, "00:00:00:00:00:01").status, 403, "unknown MAC, offline too");
    assert_eq!(credentials(e, MAC_A).text(), format!("{{\"login\": \"{}\"}}", login(MAC_A)));
    let staged = credentials(e, MAC_B);
    assert_eq!(staged.status, 200);
    let password_b = parse_raw::<LegacyCredentials>("the staged credentials", &staged)
        .password
        .expect("the staged password, handed over by the gateway");
    assert_eq!(credentials(e, MAC_B).text(), format!("{{\"login\": \"{}\"}}", login(MAC_B)), "exactly once");
    assert_eq!(config(e, &login(MAC_B), &password_b).status, 200, "and it is the right one");
    // A device log line is kept to relay, without the device's credentials.
    assert_eq!(log_line(e, &login(MAC_B), &password_b, "offline-boom").status, 200);
    assert_eq!(log_line(e, &login(MAC_B), "wrong", "forged").status, 403);
    let file = |name: &str| std::fs::read(edge_dir.path().join(name)).unwrap();
    let (queue, registry) = (file("edge.redb"), file("registry.redb"));
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{}:{password_b}", login(MAC_B)));
    let holds = |on_disk: &[u8], needle: &[u8]| on_disk.windows(needle.len()).any(|w| w == needle);
    assert!(holds(&queue, b"offline-boom"), "the line is queued on disk");
    for on_disk in [&queue, &registry] {
        assert!(
            !holds(on_disk, basic.as_bytes()) && !holds(on_disk, password_b.as_bytes()),
            "the device's credentials are not"
        );
    }
    assert!(holds(&registry, login(MAC_B).as_bytes()), "the registry copy is where it is looked for");

    // kill -9: the cache and the delivery record survive.
    edge.signal_and_wait("KILL");
    let mut edge = start_edge(edge_dir.path(), &config_file, &mosquitto.url());
    let e = edge.addr("http");
    assert_eq!(credentials(e, MAC_B).text(), format!("{{\"login\": \"{}\"}}", login(MAC_B)), "still once");
    assert_eq!(config(e, &login(MAC_B), &password_b).status, 200);
    // A new board calls home while central is away: kept for central's adoption inbox.
    assert_eq!(credentials(e, "24:0a:c4:00:00:77").status, 403);

    // Its status keeps going out while central is down (through the outbox, to the broker), with
    // ids that go on increasing across the kill.
    let after_kill =
        witness.next(|_, payload| gateway_status(payload).is_some_and(|s| s.msg_id > answer.msg_id));
    let after_kill: DeviceStatus = parse_bytes("the gateway's status after the kill", &after_kill);
    assert_eq!(after_kill.status, "running");
    // Central comes back: the offline delivery is reported, and central never hands B's password out.
    let central = start_central(central_dir.path(), port, &mosquitto.url());
    let c = central.addr("http");
    let admin = ApiClient::admin(c);
    wait_until("the offline delivery reached central", || {
        credentials(c, MAC_B).text() == format!("{{\"login\": \"{}\"}}", login(MAC_B))
    });
    assert_eq!(config(c, &login(MAC_B), &password_b).status, 200, "central knows the same password");
    wait_until("the offline log line reached central, relayed by the gateway", || {
        let logs = admin.device_logs(MAC_B).expect("the device's logs");
        logs.iter().any(|l| l.record.get("msg").is_some_and(|m| m == "offline-boom"))
    });
    wait_until("the gateway is up in central's view", || admin.gateway(&gw.id).expect("the gateway").up);
    wait_until("the board that called home offline is in central's inbox, through the gateway", || {
        let (_, inbox) = admin.raw("GET", "/api/v1/unclaimed", None);
        inbox["items"].as_array().is_some_and(|items| {
            items.iter().any(|d| d["mac"] == "24:0A:C4:00:00:77" && d["gateway"] == gw.id.as_str())
        })
    });
    edge.signal_and_wait("TERM");
}
