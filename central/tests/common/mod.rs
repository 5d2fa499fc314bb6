//! What the integration tests share: starting the real binary and registering the spec's
//! running example (building `IRIT2`, room `366`, type `esp32`, device `24:0a:c4:12:34:56`).

#![allow(dead_code)] // each test binary uses a part

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;

use neosens_runtime::testing::{ServiceProcess, http_json, raw_http};
use serde_json::{Value, json};

use client::ApiClient;
use client::wire::LegacyCredentials;

pub(crate) mod client;
pub(crate) mod dynsec;

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_neosens-central");
pub(crate) const ADMIN: &str = "test-admin-token-0123456789";
pub(crate) const MAC: &str = "24:0a:c4:12:34:56";
pub(crate) const LOGIN: &str = "senso_240ac4123456";

/// The store the suite runs against (`NEOSENS_TEST_STORE`, see
/// [`neosens_runtime::testing::postgres::central_store_env`]).
pub(crate) fn store_env(data: &Path) -> Vec<(String, String)> {
    neosens_runtime::testing::postgres::central_store_env(data)
}

/// Starts central on `data` with loopback listeners and the test admin token; `extra` adds or
/// overrides environment variables.
pub(crate) fn start_with(data: &Path, extra: &[(&str, &str)]) -> ServiceProcess {
    let mut env: HashMap<String, String> = store_env(data).into_iter().collect();
    env.extend([
        ("NEOSENS_HTTP_BIND".to_owned(), "127.0.0.1:0".to_owned()),
        ("NEOSENS_DATA_DIR".to_owned(), data.to_string_lossy().into_owned()),
        ("NEOSENS_ADMIN_TOKEN".to_owned(), ADMIN.to_owned()),
        // The embedded broker on a free loopback port (tests run side by side).
        ("NEOSENS_EMBEDDED_MQTT_BIND".to_owned(), "127.0.0.1:0".to_owned()),
    ]);
    for (k, v) in extra {
        env.insert((*k).to_owned(), (*v).to_owned());
    }
    ServiceProcess::spawn(Path::new(BIN), &[], &env)
}

/// Starts central on `data`.
pub(crate) fn start(data: &Path) -> ServiceProcess {
    start_with(data, &[])
}

/// An admin API call.
pub(crate) fn api(addr: SocketAddr, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    http_json(addr, method, path, Some(ADMIN), body.as_ref())
}

/// Registers the running example; returns (room id, device id).
pub(crate) fn register_example(addr: SocketAddr) -> (String, String) {
    let admin = ApiClient::admin(addr);
    let building = admin.create_building(json!({"name": "IRIT2"})).expect("building IRIT2");
    let room = admin.create_room(json!({"building": building.id, "name": "366"})).expect("room 366");
    admin.create_device_type(json!({"name": "esp32"})).expect("type esp32");
    let device =
        admin.create_device(json!({"uid": MAC, "type": "esp32", "rooms": [room.id]})).expect("the device");
    (room.id, device.id)
}

/// The device's first `/device/credentials` answer: its password.
pub(crate) fn first_password(addr: SocketAddr, mac: &str) -> String {
    let r =
        raw_http(addr, format!("GET /device/credentials?mac={mac} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    let body: LegacyCredentials = client::parse_raw("first credentials", &r);
    body.password.expect("first answer has the password")
}

/// Starts a replica on its own data directory with the keys of `keys_from` (every replica
/// needs the same keys: they verify the secrets stored in the shared database).
pub(crate) fn start_replica(data: &Path, keys_from: Option<&Path>, extra: &[(&str, &str)]) -> ServiceProcess {
    if let Some(from) = keys_from {
        std::fs::create_dir_all(data.join("keys")).unwrap();
        for name in ["hash.key", "seal.key"] {
            std::fs::copy(from.join("keys").join(name), data.join("keys").join(name)).unwrap();
        }
    }
    start_with(data, extra)
}

/// The value of an unlabelled series on `/metrics` (`None`: not there).
pub(crate) fn metric(addr: SocketAddr, name: &str) -> Option<f64> {
    let r = raw_http(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let text = r.text();
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}
