//! What the end-to-end tests share: the real binaries, started on loopback ports.

#![allow(dead_code)] // each test binary uses a part

pub(crate) mod client;
pub(crate) mod disk;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use neosens_runtime::testing::ServiceProcess;
use serde_json::{Value, json};

use client::wire::{Building, Device};
use client::{ApiClient, parse};

pub(crate) const ADMIN: &str = "test-admin-token-0123456789";
pub(crate) const EDGE: &str = env!("CARGO_BIN_EXE_neosens-edge");

/// `neosens-central` next to this package's binary: `cargo test --workspace` (the test command)
/// builds both. (Building it from here would use another feature set than the test build and
/// rebuild it at every run.)
pub(crate) fn central_binary() -> PathBuf {
    let bin = Path::new(EDGE).with_file_name("neosens-central");
    assert!(
        bin.exists(),
        "{} not found: run the workspace tests (cargo test --workspace), which build it",
        bin.display()
    );
    bin
}

/// Central on `127.0.0.1:<port>`: 0 unless the test restarts it on the same address (its
/// address is then read from its log, `addr("http")`; a port picked beforehand may be taken
/// by then).
pub(crate) fn start_central(data: &Path, port: u16, mqtt: &str) -> ServiceProcess {
    start_central_with(data, port, mqtt, &[])
}

/// [`start_central`] with more environment (`NEOSENS_CONFIG` …).
pub(crate) fn start_central_with(
    data: &Path,
    port: u16,
    mqtt: &str,
    extra: &[(&str, &str)],
) -> ServiceProcess {
    let mut env: HashMap<String, String> =
        neosens_runtime::testing::postgres::central_store_env(data).into_iter().collect();
    env.extend([
        ("NEOSENS_MQTT_URL".to_owned(), mqtt.to_owned()),
        ("NEOSENS_HTTP_BIND".to_owned(), format!("127.0.0.1:{port}")),
        ("NEOSENS_DATA_DIR".to_owned(), data.to_string_lossy().into_owned()),
        ("NEOSENS_ADMIN_TOKEN".to_owned(), ADMIN.to_owned()),
        ("NEOSENS_EMBEDDED_MQTT_BIND".to_owned(), "127.0.0.1:0".to_owned()),
    ]);
    env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    ServiceProcess::spawn(&central_binary(), &[], &env)
}

pub(crate) fn start_edge(data: &Path, config: &Path, mqtt: &str) -> ServiceProcess {
    let env = HashMap::from([
        ("NEOSENS_EDGE_HTTP_BIND".to_owned(), "127.0.0.1:0".to_owned()),
        ("NEOSENS_EDGE_UDP_BIND".to_owned(), "127.0.0.1:0".to_owned()),
        ("NEOSENS_EDGE_DATA_DIR".to_owned(), data.to_string_lossy().into_owned()),
        ("NEOSENS_EDGE_MQTT_URL".to_owned(), mqtt.to_owned()),
    ]);
    ServiceProcess::spawn(Path::new(EDGE), &["--config", config.to_str().unwrap()], &env)
}

pub(crate) fn metric(addr: SocketAddr, name: &str) -> f64 {
    let text = neosens_runtime::testing::http_get(addr, "/metrics").text();
    text.lines()
        .find_map(|l| {
            l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')).and_then(|v| v.parse().ok())
        })
        .unwrap_or(-1.0)
}

/// Enrols a gateway with this scope through the real command line; returns its data directory.
pub(crate) fn enrolled_gateway(central: SocketAddr, name: &str, scope: Value) -> tempfile::TempDir {
    let admin = ApiClient::admin(central);
    let gw = admin.create_gateway(json!({"name": name, "scope": scope})).expect("the gateway");
    let token = admin.enrolment(&gw.id).expect("an enrolment token").token;
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(EDGE)
        .args(["enroll", "--central", &format!("http://{central}"), "--token", &token, "--insecure"])
        .env("NEOSENS_EDGE_DATA_DIR", dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains(name));
    dir
}

/// Registers the LoRaWAN node of public vector 1 (`spec/lorawan-vectors.md`: DevAddr 49BE7DF1,
/// DevEUI 70B3D57ED0000001, `hex` codec) in room 366 of a new building IRIT2; returns the
/// building.
pub(crate) fn register_vector_node(central: SocketAddr) -> Building {
    let admin = ApiClient::admin(central);
    let building = admin.create_building(json!({"name": "IRIT2"})).expect("building IRIT2");
    let room = admin.create_room(json!({"building": building.id, "name": "366"})).expect("room 366");
    admin.create_device_type(json!({"name": "lorawan_node", "orders": []})).expect("type lorawan_node");
    // Raw first: no key may appear anywhere in the answer, whatever its fields.
    let (status, node) = admin.raw(
        "POST",
        "/api/v1/devices",
        Some(json!({"uid": "70B3D57ED0000001", "type": "lorawan_node", "rooms": [room.id], "lorawan": {
            "dev_addr": "49BE7DF1", "nwk_s_key": "44024241ed4ce9a68c6a8bc055233fd3",
            "app_s_key": "ec925802ae430ca77fd3dd73cb2cc588", "codec": "hex"}})),
    );
    assert_eq!(status, 201, "{node}");
    assert!(!node.to_string().contains("44024241"), "{node}");
    let node: Device = parse("the LoRaWAN node", &node);
    let session = node.lorawan.expect("a LoRaWAN session");
    assert_eq!(session.keys, "sealed", "keys are never shown again: {session:?}");
    building
}
