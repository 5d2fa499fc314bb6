//! The edge agent's footprint with 10,000 devices in its scope: time to sync them, resident
//! memory (budget < 12 MB), CPU while idle (no busy loops), and provisioning answers from the
//! cache with central down. Real binaries (release), real sockets.
//!
//! `cargo bench -p neosens-edge --bench footprint` (`BENCH_DEVICES` changes the fleet size).

#[path = "../../central/benches/support/export.rs"]
mod export;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine;
use neosens_runtime::testing::{ServiceProcess, http_json, raw_http, wait_until};
use serde_json::json;

const EDGE: &str = env!("CARGO_BIN_EXE_neosens-edge");
const ADMIN: &str = "bench-admin-token-0123456789";
const RSS_BUDGET_KIB: u64 = 12 * 1024;

/// The release `neosens-central` next to the agent, brought up to date (cargo builds it only if
/// it changed).
fn central_binary() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let ok = std::process::Command::new(cargo)
        .args(["build", "--release", "-p", "neosens-central", "--bin", "neosens-central"])
        .status()
        .expect("building neosens-central");
    assert!(ok.success());
    Path::new(EDGE).with_file_name("neosens-central")
}

fn proc_field(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// CPU time used by a process so far, in clock ticks (utime + stime).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn metric(addr: std::net::SocketAddr, name: &str) -> f64 {
    let text = neosens_runtime::testing::http_get(addr, "/metrics").text();
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')).and_then(|v| v.parse().ok()))
        .unwrap_or(-1.0)
}

fn main() {
    let n: u64 = std::env::var("BENCH_DEVICES").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let central_dir = tempfile::tempdir().unwrap();
    let export_file = central_dir.path().join("export.json");
    std::fs::write(&export_file, export::synthetic_export(n)).unwrap();
    let central_bin = central_binary();
    let imported = std::process::Command::new(&central_bin)
        .args(["import-legacy", export_file.to_str().unwrap()])
        .env("NEOSENS_DATA_DIR", central_dir.path())
        .output()
        .unwrap();
    assert!(imported.status.success(), "{}", String::from_utf8_lossy(&imported.stderr));
    let env = HashMap::from([
        ("NEOSENS_HTTP_BIND".to_owned(), "127.0.0.1:0".to_owned()),
        ("NEOSENS_DATA_DIR".to_owned(), central_dir.path().to_string_lossy().into_owned()),
        ("NEOSENS_ADMIN_TOKEN".to_owned(), ADMIN.to_owned()),
        ("NEOSENS_EMBEDDED_MQTT_BIND".to_owned(), "127.0.0.1:0".to_owned()),
        ("NEOSENS_LOG".to_owned(), "warn,neosens_central=info".to_owned()),
    ]);
    let mut central = ServiceProcess::spawn(&central_bin, &[], &env);
    let c = central.addr("http");
    let (status, gw) = http_json(
        c,
        "POST",
        "/api/v1/gateways",
        Some(ADMIN),
        Some(&json!({"name": "gw-bench", "scope": {"site": "ut3"}})),
    );
    assert_eq!(status, 201, "{gw}");
    let (_, token) = http_json(
        c,
        "POST",
        &format!("/api/v1/gateways/{}/enrolment", gw["id"].as_str().unwrap()),
        Some(ADMIN),
        None,
    );

    let edge_dir = tempfile::tempdir().unwrap();
    let enrolled = std::process::Command::new(EDGE)
        .args(["enroll", "--central", &format!("http://{c}"), "--token", token["token"].as_str().unwrap()])
        .env("NEOSENS_EDGE_DATA_DIR", edge_dir.path())
        .output()
        .unwrap();
    assert!(enrolled.status.success(), "{}", String::from_utf8_lossy(&enrolled.stderr));
    let edge_env = HashMap::from([
        ("NEOSENS_EDGE_HTTP_BIND".to_owned(), "127.0.0.1:0".to_owned()),
        ("NEOSENS_EDGE_DATA_DIR".to_owned(), edge_dir.path().to_string_lossy().into_owned()),
        ("NEOSENS_LOG".to_owned(), "warn,neosens_edge=info".to_owned()),
    ]);
    let started = Instant::now();
    let mut edge = ServiceProcess::spawn(Path::new(EDGE), &[], &edge_env);
    let e = edge.addr("http");
    let pid = edge.pid();
    wait_until("the scope synced", || metric(e, "neosens_edge_devices_cached") == n as f64);
    let synced = started.elapsed();
    let rss_synced = proc_field(pid, "VmRSS:");
    let hwm = proc_field(pid, "VmHWM:");

    // Idle: no requests, central up (the agent waits in its long-poll).
    let ticks = cpu_ticks(pid);
    let idle = Duration::from_secs(10);
    let t0 = Instant::now();
    std::thread::sleep(idle); // measuring over a fixed wall-clock window is the point here
    let idle_ticks = cpu_ticks(pid) - ticks;
    let idle_cpu_pct = idle_ticks as f64 * 10.0 / t0.elapsed().as_millis() as f64 * 100.0;

    // Provisioning from the cache, central down.
    central.signal_and_wait("TERM");
    let requests = 2_000u64;
    let t0 = Instant::now();
    for i in 0..requests {
        let m = export::mac(i % n);
        let auth = base64::engine::general_purpose::STANDARD.encode(format!(
            "senso_{}:{}",
            m.replace(':', "").to_lowercase(),
            export::password(i % n)
        ));
        let r = raw_http(
            e,
            format!("GET /device/config HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        );
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let offline = t0.elapsed();
    let rss_after = proc_field(pid, "VmRSS:");
    let size = std::fs::metadata(edge_dir.path().join("edge.redb")).map(|m| m.len()).unwrap_or(0);
    edge.signal_and_wait("TERM");

    println!("neosens-edge footprint benchmark ({n} devices in scope)");
    println!("enrol + start + first sync of {n} devices: {:.2} s", synced.as_secs_f64());
    println!("local database: {:.1} MB", size as f64 / 1e6);
    println!(
        "resident memory after sync: {:.1} MB (peak {:.1} MB); budget < {} MB: {}",
        rss_synced as f64 / 1024.0,
        hwm as f64 / 1024.0,
        RSS_BUDGET_KIB / 1024,
        if rss_synced < RSS_BUDGET_KIB { "ok" } else { "OVER" }
    );
    println!("idle CPU over {} s: {idle_ticks} ticks ({idle_cpu_pct:.2} % of a core)", idle.as_secs());
    println!(
        "/device/config from the cache (central down, one connection per request): {requests} in {:.2} s = {:.0} req/s, {:.0} µs each",
        offline.as_secs_f64(),
        requests as f64 / offline.as_secs_f64(),
        offline.as_micros() as f64 / requests as f64
    );
    println!("resident memory after serving: {:.1} MB", rss_after as f64 / 1024.0);
}
