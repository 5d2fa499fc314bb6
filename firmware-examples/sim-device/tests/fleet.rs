//! The simulated fleet against the real `neosens-central` (embedded broker): registration,
//! provisioning, statuses on MQTT seen by central, an order obeyed, and a reinstall — the
//! device reboots, provisions again and gets its new password, like a real board.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use neosens_runtime::testing::{ServiceProcess, free_port, http_json, wait_until};
use serde_json::{Value, json};

const SIM: &str = env!("CARGO_BIN_EXE_sim-device");
const ADMIN: &str = "sim-test-admin-token-0123456789";

/// `neosens-central`, built next to this binary by `cargo test --workspace`.
fn central_binary() -> std::path::PathBuf {
    let bin = Path::new(SIM).with_file_name("neosens-central");
    assert!(bin.exists(), "{} not found: run the workspace tests (cargo test --workspace)", bin.display());
    bin
}

struct Sim(Child);

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn api(addr: SocketAddr, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    http_json(addr, method, path, Some(ADMIN), body.as_ref())
}

fn device(addr: SocketAddr, uid: &str) -> Value {
    api(addr, "GET", &format!("/api/v1/devices/{uid}"), None).1
}

#[test]
fn a_simulated_fleet_provisions_reports_and_obeys() {
    let dir = tempfile::tempdir().unwrap();
    let mqtt_port = free_port();
    let mut env: HashMap<String, String> =
        neosens_runtime::testing::postgres::central_store_env(&dir.path().join("data")).into_iter().collect();
    env.extend([
        ("NEOSENS_HTTP_BIND".to_owned(), "127.0.0.1:0".to_owned()),
        ("NEOSENS_DATA_DIR".to_owned(), dir.path().join("data").to_string_lossy().into_owned()),
        ("NEOSENS_ADMIN_TOKEN".to_owned(), ADMIN.to_owned()),
        ("NEOSENS_EMBEDDED_MQTT_BIND".to_owned(), format!("127.0.0.1:{mqtt_port}")),
    ]);
    let central = ServiceProcess::spawn(&central_binary(), &[], &env);
    let addr = central.addr("http");
    let sim = Sim(Command::new(SIM)
        .args(["--central", &format!("http://{addr}"), "--mqtt", &format!("127.0.0.1:{mqtt_port}")])
        .args(["--count", "6", "--pace", "fast", "--period-ms", "300", "--ramp-s", "1"])
        .args(["--buildings", "2", "--rooms-per-building", "2", "--register-with", ADMIN])
        .arg("--state")
        .arg(dir.path().join("sim-state.json"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap());

    // Registered in 4 rooms, then every device provisioned, connected and reporting.
    wait_until("six simulated devices ok", || {
        let (s, fleet) = api(addr, "GET", "/api/v1/fleet", None);
        s == 200 && fleet["total"]["ok"] == 6
    });
    let (_, fleet) = api(addr, "GET", "/api/v1/fleet", None);
    let rooms: Vec<&Value> = fleet["sites"][0]["buildings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["name"].as_str().unwrap().starts_with("SIM-"))
        .flat_map(|b| b["rooms"].as_array().unwrap())
        .collect();
    assert_eq!(rooms.len(), 4);
    assert!(rooms.iter().all(|r| r["counts"]["ok"].as_u64().unwrap() >= 1), "spread over the rooms: {fleet}");
    let first = device(addr, "02:5e:00:00:00:00");
    assert_eq!(first["credentials_delivered"], true);
    assert_eq!(first["last_payload"]["board"], "neOSensor");
    assert_eq!(first["last_payload"]["hardware"], "esp32");

    // An order: the device answers with a status carrying the new period.
    let (s, order) = api(
        addr,
        "POST",
        "/api/v1/devices/02:5e:00:00:00:01/orders",
        Some(json!({"order": "frequency", "value": 3600})),
    );
    assert_eq!(s, 202, "{order}");
    wait_until("the new frequency in the device's status", || {
        device(addr, "02:5e:00:00:00:01")["last_payload"]["frequency"] == 3600
    });

    // Reinstall: new credentials, then reboot; the device provisions again and reports.
    let (s, order) =
        api(addr, "POST", "/api/v1/devices/02:5e:00:00:00:02/orders", Some(json!({"order": "reinstall"})));
    assert_eq!(s, 202, "{order}");
    assert_eq!(device(addr, "02:5e:00:00:00:02")["credentials_delivered"], false);
    wait_until("the reinstalled device back with its new password", || {
        let d = device(addr, "02:5e:00:00:00:02");
        d["credentials_delivered"] == true && d["last_payload"]["status"] == "running" && d["state"] == "ok"
    });
    drop(sim);
}
