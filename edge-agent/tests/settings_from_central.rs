//! Settings from central end to end, with real `neosens-central`, `neosens-edge` and Mosquitto:
//! an operator sets a gateway's settings on central's API; the agent gets them by sync, lays
//! them under its own file (the file wins where it sets a key), restarts to apply what opens at
//! start (it exits 75, systemd's `Restart=always` is played here), swaps a new log filter in
//! place, reports what it runs with, and starts with them while central is out of reach.

use std::collections::HashMap;
use std::net::SocketAddr;

use neosens_runtime::testing::{Mosquitto, ServiceProcess, http_json, wait_until};
use serde_json::{Value, json};

mod common;

use common::{ADMIN, enrolled_gateway, start_central, start_edge};

fn api(addr: SocketAddr, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    http_json(addr, method, path, Some(ADMIN), body.as_ref())
}

/// The gateway's view on central's API.
fn gateway(central: SocketAddr, id: &str) -> Value {
    let (status, body) = api(central, "GET", &format!("/api/v1/gateways/{id}"), None);
    assert_eq!(status, 200, "{body}");
    body
}

/// What the agent last reported it runs with.
fn reported(central: SocketAddr, id: &str) -> Value {
    gateway(central, id)["health"]["report"]["config"].clone()
}

/// The settings after the filter-only change.
fn settings_after_filter() -> Value {
    json!({"log": {"filter": "info,rumqttc=warn"}, "agent": {"status_period_s": 60},
        "lorawan": {"adr_margin_db": 5, "udp_bind": "off"}, "hal": {"sensor_period_s": 30}})
}

/// The agent's environment as `start_edge` sets it; `udp`: with its UDP listener on a free port
/// (which pins `lorawan.udp_bind`).
fn edge_env(data: &std::path::Path, mqtt: &str, udp: bool) -> HashMap<String, String> {
    let mut env = HashMap::from([
        ("NEOSENS_EDGE_HTTP_BIND".to_owned(), "127.0.0.1:0".to_owned()),
        ("NEOSENS_EDGE_DATA_DIR".to_owned(), data.to_string_lossy().into_owned()),
        ("NEOSENS_EDGE_MQTT_URL".to_owned(), mqtt.to_owned()),
        ("NEOSENS_LOG_FORMAT".to_owned(), "json".to_owned()),
    ]);
    if udp {
        env.insert("NEOSENS_EDGE_UDP_BIND".to_owned(), "127.0.0.1:0".to_owned());
    }
    env
}

fn message_is(line: &Value, text: &str) -> bool {
    line["message"].as_str().or_else(|| line["fields"]["message"].as_str()) == Some(text)
}

#[test]
fn settings_set_in_central_reach_the_gateway_under_its_own_file() {
    let mosquitto = Mosquitto::start("");
    let central_dir = tempfile::tempdir().unwrap();
    let mut central_process = start_central(central_dir.path(), 0, &mosquitto.url());
    let c = central_process.addr("http");
    let (status, building) = api(c, "POST", "/api/v1/buildings", Some(json!({"name": "CARCA"})));
    assert_eq!(status, 201, "{building}");
    let data = enrolled_gateway(c, "gw-carca", json!({"buildings": [building["id"]]}));
    let (_, list) = api(c, "GET", "/api/v1/gateways", None);
    let id = list["items"][0]["id"].as_str().unwrap().to_owned();
    let config = data.path().join("edge.toml");
    // The gateway's own file sets the sensor period: that key stays the file's.
    std::fs::write(&config, "[central]\ntimeout_ms = 500\nsync_wait_s = 2\n[hal]\nsensor_period_s = 120\n")
        .unwrap();
    let mut agent = start_edge(data.path(), &config, &mosquitto.url());
    wait_until("the agent's first report", || reported(c, &id)["effective"]["agent"].is_object());
    assert_eq!(reported(c, &id)["effective"]["agent"]["status_period_s"], 300, "the default");

    // A setting that does not hold is refused with its key; nothing reaches the gateway.
    let bad = json!({"config": {"lorawan": {"udp_bind": "1700"}}});
    let (status, body) = api(c, "PATCH", &format!("/api/v1/gateways/{id}"), Some(bad));
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("config.lorawan.udp_bind"), "{body}");
    let bad = json!({"config": {"agent": {"reboot_command": "rm -rf /"}}});
    let (status, body) = api(c, "PATCH", &format!("/api/v1/gateways/{id}"), Some(bad));
    assert!(status == 400 || status == 422, "{status} {body}");

    // Settings that open at start: the agent restarts to apply them.
    let settings = json!({
        "log": {"filter": "info,neosens_edge=debug"},
        "agent": {"status_period_s": 60},
        "lorawan": {"adr_margin_db": 5, "udp_bind": "off"},
        "hal": {"sensor_period_s": 30},
    });
    let (status, body) =
        api(c, "PATCH", &format!("/api/v1/gateways/{id}"), Some(json!({"config": settings.clone()})));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["config"]["agent"]["status_period_s"], 60);
    let exit = agent.wait();
    assert_eq!(exit.code(), Some(75), "the agent stops to be started again with its new settings: {exit}");
    agent = start_edge(data.path(), &config, &mosquitto.url());
    wait_until("the report of the new settings", || {
        reported(c, &id)["effective"]["agent"]["status_period_s"] == 60
    });
    let report = reported(c, &id);
    let effective = &report["effective"];
    assert_eq!(effective["lorawan"]["adr_margin_db"], 5);
    assert_eq!(effective["hal"]["sensor_period_s"], 120, "the file wins: {report}");
    assert_eq!(effective["log"]["filter"], "info,neosens_edge=debug");
    let overridden: Vec<&str> =
        report["overridden"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    // The test harness sets the UDP listener by environment (NEOSENS_EDGE_UDP_BIND): it wins too.
    assert_eq!(overridden, ["lorawan.udp_bind", "hal.sensor_period_s"], "{report}");
    assert_eq!(report["rejected"], Value::Null);
    assert!(agent.logs().iter().any(|l| message_is(l, "log filter from central's settings")));

    // A new log filter alone changes in place: no restart.
    let pid = agent.pid();
    let filter_only = json!({"config": settings_after_filter()});
    let (status, body) = api(c, "PATCH", &format!("/api/v1/gateways/{id}"), Some(filter_only));
    assert_eq!(status, 200, "{body}");
    wait_until("the new filter reported", || {
        reported(c, &id)["effective"]["log"]["filter"] == "info,rumqttc=warn"
    });
    assert_eq!(reported(c, &id)["restart_pending"], false);
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists(), "still the same process");

    // Settings this gateway cannot start with (sensors, but no I2C bus in its file): the start
    // fails once, they are set aside, and the next start runs with the local configuration and
    // says why — the gateway stays reachable for central's correction.
    let broken = json!({"config": {"log": {"filter": "info,rumqttc=warn"}, "agent": {"status_period_s": 60},
        "lorawan": {"adr_margin_db": 5, "udp_bind": "off"}, "hal": {"sensor_period_s": 30, "sensors": ["sht3x@0x44"]}}});
    let (status, body) = api(c, "PATCH", &format!("/api/v1/gateways/{id}"), Some(broken));
    assert_eq!(status, 200, "{body}");
    assert_eq!(agent.wait().code(), Some(75));
    let failed = std::process::Command::new(common::EDGE)
        .args(["--config", config.to_str().unwrap()])
        .envs(edge_env(data.path(), &mosquitto.url(), true))
        .output()
        .unwrap();
    assert_eq!(
        failed.status.code(),
        Some(1),
        "the start with sensors and no bus fails (a failure of the build's, counted by the launcher)"
    );
    let record = std::fs::read_to_string(data.path().join("central-settings.failed")).unwrap();
    assert!(record.contains("i2c_bus"), "recorded for this build and boot: {record}");
    assert!(
        String::from_utf8_lossy(&failed.stderr).contains("i2c_bus"),
        "{}",
        String::from_utf8_lossy(&failed.stderr)
    );
    agent = start_edge(data.path(), &config, &mosquitto.url());
    wait_until("the report of the settings set aside", || {
        reported(c, &id)["rejected"]
            .as_str()
            .is_some_and(|r| r.contains("failed to start") && r.contains("i2c_bus"))
    });
    assert_eq!(reported(c, &id)["effective"]["agent"]["status_period_s"], 300, "the local configuration");
    // Corrected in central: applied at the next start (a restart, since they differ).
    let fixed = json!({"config": settings_after_filter()});
    let (status, body) = api(c, "PATCH", &format!("/api/v1/gateways/{id}"), Some(fixed));
    assert_eq!(status, 200, "{body}");
    assert_eq!(agent.wait().code(), Some(75));
    agent = start_edge(data.path(), &config, &mosquitto.url());
    wait_until("the corrected settings applied", || {
        let r = reported(c, &id);
        r["rejected"].is_null() && r["effective"]["agent"]["status_period_s"] == 60
    });

    // Central out of reach: the agent starts again with the settings kept in its copy.
    agent.signal_and_wait("TERM");
    central_process.signal_and_wait("TERM");
    let agent = ServiceProcess::spawn(
        std::path::Path::new(common::EDGE),
        &["--config", config.to_str().unwrap()],
        &edge_env(data.path(), &mosquitto.url(), false),
    );
    // Without NEOSENS_EDGE_UDP_BIND this time: central's "off" applies, and its log filter.
    let serving = &agent.serving;
    assert!(serving.get("udp").is_none(), "no packet-forwarder listener: {serving:?}");
    assert!(agent.logs().iter().any(|l| message_is(l, "log filter from central's settings")));
}
