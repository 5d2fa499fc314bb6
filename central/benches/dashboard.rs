//! Benchmark of what the dashboard asks of central with a large fleet, against the real release
//! binary: 10,000 devices (imported from a synthetic 2016 export, 500 rooms in 20 buildings), a
//! signed-in session, and the requests the pages poll — the fleet summary (full and 304), a
//! sorted and filtered page of the device table, a text search — one at a time, new connection
//! each (as a browser tab polling would be, without keep-alive: the worst case).
//!
//! Run: `cargo bench -p neosens-central --bench dashboard` (`NEOSENS_BENCH_DEVICES` to change n).

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use neosens_runtime::testing::{RawResponse, ServiceProcess, raw_http};

mod support;
use support::{BIN, synthetic_export};

const ROUNDS: u32 = 200;

fn get(addr: std::net::SocketAddr, path: &str, headers: &str) -> RawResponse {
    raw_http(addr, format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}\r\n").as_bytes())
}

/// Median and 99th percentile of `ROUNDS` requests, and the last answer.
fn measure(
    addr: std::net::SocketAddr,
    path: &str,
    headers: &str,
    expect: u16,
) -> (Duration, Duration, RawResponse) {
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..ROUNDS {
        let t0 = Instant::now();
        let r = get(addr, path, headers);
        times.push(t0.elapsed());
        assert_eq!(r.status, expect, "{path}: {}", r.text());
        last = Some(r);
    }
    times.sort_unstable();
    (times[times.len() / 2], times[times.len() * 99 / 100], last.expect("ROUNDS > 0"))
}

fn main() {
    let n: u64 = std::env::var("NEOSENS_BENCH_DEVICES").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export.json");
    std::fs::write(&export, synthetic_export(n)).unwrap();
    let out = Command::new(BIN)
        .args(["import-legacy", export.to_str().unwrap()])
        .env("NEOSENS_DATA_DIR", dir.path().join("data"))
        .env("NEOSENS_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let env = HashMap::from([
        ("NEOSENS_HTTP_BIND".into(), "127.0.0.1:0".into()),
        ("NEOSENS_DATA_DIR".into(), dir.path().join("data").to_string_lossy().into_owned()),
        ("NEOSENS_ADMIN_TOKEN".into(), "bench-admin-token-0123456789".into()),
        ("NEOSENS_ADMIN_PASSWORD".into(), "bench admin password".into()),
        ("NEOSENS_EMBEDDED_MQTT_BIND".into(), "127.0.0.1:0".into()),
    ]);
    let central = ServiceProcess::spawn(Path::new(BIN), &[], &env);
    let addr = central.addr("http");

    let body = r#"{"username": "admin", "password": "bench admin password"}"#;
    let t0 = Instant::now();
    let r = raw_http(
        addr,
        format!(
            "POST /api/v1/session HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    let sign_in = t0.elapsed();
    assert_eq!(r.status, 200, "{}", r.text());
    let cookie = r.header("set-cookie").unwrap().split(';').next().unwrap().to_owned();
    let cookie = format!("Cookie: {cookie}\r\n");

    println!(
        "neosens-central dashboard requests: {n} devices, 500 rooms, one request at a time, new connection each"
    );
    println!("sign-in (argon2id, 19 MiB, 2 passes): {:.1} ms", sign_in.as_secs_f64() * 1e3);
    let (median, p99, fleet) = measure(addr, "/api/v1/fleet", &cookie, 200);
    println!(
        "GET /api/v1/fleet: median {:.2} ms, p99 {:.2} ms, {} kB",
        median.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        fleet.body.len() / 1000
    );
    let etag = fleet.header("etag").unwrap().to_owned();
    let (median, p99, _) = measure(addr, "/api/v1/fleet", &format!("{cookie}If-None-Match: {etag}\r\n"), 304);
    println!(
        "GET /api/v1/fleet unchanged (304): median {:.2} ms, p99 {:.2} ms",
        median.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3
    );
    for path in [
        "/api/v1/devices?limit=50",
        "/api/v1/devices?limit=50&sort=-last_seen",
        "/api/v1/devices?limit=50&sort=state&site=ut3&offset=5000",
        "/api/v1/devices?limit=50&q=senso_0200000001",
        "/api/v1/devices?limit=50&sort=type",
    ] {
        let (median, p99, page) = measure(addr, path, &cookie, 200);
        let total = serde_json::from_slice::<serde_json::Value>(&page.body)
            .map_or(0, |v| v["total"].as_u64().unwrap_or(0));
        println!(
            "GET {path}: median {:.2} ms, p99 {:.2} ms, {} kB, {total} matching",
            median.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3,
            page.body.len() / 1000
        );
    }
    let index = get(addr, "/", "");
    let text = index.text();
    let mut app = index.body.len();
    for asset in text.split("=\"/assets/").skip(1).filter_map(|s| s.split('"').next()) {
        app += get(addr, &format!("/assets/{asset}"), "").body.len();
    }
    println!("dashboard app (index.html + assets, uncompressed): {} kB", app / 1000);
}
