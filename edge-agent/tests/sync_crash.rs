//! A gateway killed (`kill -9`) while a snapshot of several pages arrives keeps serving the
//! previous complete state, never a mix; started again, it finishes the snapshot. Real
//! binaries, a real registry imported from a 2016 export, real sockets.

mod common;

#[path = "../../central/benches/support/export.rs"]
mod export;

use std::collections::HashMap;
use std::path::Path;

use neosens_runtime::testing::{ServiceProcess, http_json, wait_until};
use serde_json::json;

use common::{ADMIN, EDGE, central_binary, metric};

/// Devices in the registry: three snapshot pages for a gateway of the whole site.
const DEVICES: u64 = 6_000;
/// Of which in building B0 (rooms 1–25 of 500).
const IN_B0: f64 = 300.0;

fn central(data: &Path, port: u16) -> ServiceProcess {
    let mut env: HashMap<String, String> =
        neosens_runtime::testing::postgres::central_store_env(data).into_iter().collect();
    env.extend([
        ("NEOSENS_HTTP_BIND".to_owned(), format!("127.0.0.1:{port}")),
        ("NEOSENS_DATA_DIR".to_owned(), data.to_string_lossy().into_owned()),
        ("NEOSENS_ADMIN_TOKEN".to_owned(), ADMIN.to_owned()),
        ("NEOSENS_EMBEDDED_MQTT_BIND".to_owned(), "127.0.0.1:0".to_owned()),
    ]);
    ServiceProcess::spawn(&central_binary(), &[], &env)
}

fn agent(data: &Path) -> ServiceProcess {
    let env = HashMap::from([
        ("NEOSENS_EDGE_HTTP_BIND".to_owned(), "127.0.0.1:0".to_owned()),
        ("NEOSENS_EDGE_UDP_BIND".to_owned(), "127.0.0.1:0".to_owned()),
        ("NEOSENS_EDGE_DATA_DIR".to_owned(), data.to_string_lossy().into_owned()),
        ("NEOSENS_LOG".to_owned(), "warn,neosens_edge=info".to_owned()),
    ]);
    ServiceProcess::spawn(Path::new(EDGE), &[], &env)
}

fn synced(line: &serde_json::Value, more: bool) -> bool {
    line["message"] == json!("registry synced") && line["more"] == json!(more)
}

#[test]
fn a_snapshot_cut_by_kill_9_leaves_the_previous_state_then_completes() {
    let central_dir = tempfile::tempdir().unwrap();
    let export_file = central_dir.path().join("export.json");
    std::fs::write(&export_file, export::synthetic_export(DEVICES)).unwrap();
    let imported = std::process::Command::new(central_binary())
        .args(["import-legacy", export_file.to_str().unwrap()])
        .env("NEOSENS_DATA_DIR", central_dir.path())
        .envs(neosens_runtime::testing::postgres::central_store_env(central_dir.path()))
        .output()
        .unwrap();
    assert!(imported.status.success(), "{}", String::from_utf8_lossy(&imported.stderr));
    let port = neosens_runtime::testing::free_port();
    let mut c = central(central_dir.path(), port);
    let addr = c.addr("http");

    // A gateway of building B0 holds its 300 devices.
    let (_, buildings) = http_json(addr, "GET", "/api/v1/buildings", Some(ADMIN), None);
    let b0 = buildings["items"].as_array().unwrap().iter().find(|b| b["name"] == "B0").expect("building B0");
    let edge_dir = common::enrolled_gateway(addr, "gw-crash", json!({"buildings": [b0["id"]]}));
    let mut edge = agent(edge_dir.path());
    let e = edge.addr("http");
    // The devices are counted from the cache as soon as they are committed, the revision a
    // moment later, once the sync notes it: both, or the old revision may read 0.
    wait_until("the gateway holds building B0", || {
        metric(e, "neosens_edge_devices_cached") == IN_B0 && metric(e, "neosens_edge_sync_revision") > 0.0
    });
    let old_revision = metric(e, "neosens_edge_sync_revision");

    // Its scope grows to the whole site: a snapshot of 6,000 devices in pages. Killed as soon as
    // the first page is written.
    let (_, gateways) = http_json(addr, "GET", "/api/v1/gateways", Some(ADMIN), None);
    let gw = gateways["items"].as_array().unwrap().iter().find(|g| g["name"] == "gw-crash").unwrap().clone();
    let (status, answer) = http_json(
        addr,
        "PATCH",
        &format!("/api/v1/gateways/{}", gw["id"].as_str().unwrap()),
        Some(ADMIN),
        Some(&json!({"scope": {"site": "ut3"}})),
    );
    assert_eq!(status, 200, "{answer}");
    edge.wait_for_log(|l| synced(l, true));
    edge.signal_and_wait("KILL");

    // Central away: the gateway serves from its cache, which holds one whole state. The kill
    // may have come after the last page (then the new state), never in between.
    c.signal_and_wait("TERM");
    let mut edge = agent(edge_dir.path());
    let e = edge.addr("http");
    let cached = metric(e, "neosens_edge_devices_cached");
    let revision = metric(e, "neosens_edge_sync_revision");
    eprintln!("after kill -9 mid-snapshot: {cached} devices at revision {revision}");
    assert!(
        (cached, revision) == (IN_B0, old_revision) || (cached == DEVICES as f64 && revision > old_revision),
        "after kill -9 mid-snapshot: {cached} devices at revision {revision} (before: {IN_B0} at {old_revision})"
    );

    // Central back: the snapshot starts again and completes.
    let _c = central(central_dir.path(), port);
    wait_until("the whole site synced", || metric(e, "neosens_edge_devices_cached") == DEVICES as f64);
    assert!(metric(e, "neosens_edge_sync_revision") > old_revision);
    edge.signal_and_wait("TERM");
}
