//! Benchmark of the registry's budgets (DESIGN.md §6), against the real release binary:
//!
//! - start with 100k devices registered: < 1 s to ready, < 200 MB RSS;
//! - `GET /device/config` with a valid Basic login: ≥ 20,000 req/s;
//! - broker ACL checks (`POST /mqtt/acl`): ≥ 40,000 req/s, p99 < 2 ms.
//!
//! Run: `cargo bench -p neosens-central --bench provisioning` (or `scripts/bench`).
//! Options (environment): `BENCH_DEVICES` (100000), `BENCH_SECONDS` (10), `BENCH_CONNECTIONS` (64),
//! `BENCH_ACL_CONNECTIONS` (16), `BENCH_REPLICAS` (1; 2 with `NEOSENS_TEST_STORE=postgres`: two
//! central processes on one database, connections and API writes alternating between them).
//! The load generator runs on the same 2-core machine as the server, over loopback: the
//! figures are what one such machine does with both halves on it.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use neosens_runtime::testing::ServiceProcess;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod support;

use support::{BIN, mac, password, rss_kib, store_env, store_label, synthetic_export};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

struct Load {
    requests: u64,
    errors: u64,
    latencies_us: Vec<u32>,
    elapsed: Duration,
}

/// `GET /device/config` with the Basic login of device `d`, as the ESP32 sends it.
fn config_request(d: u64, keep_alive: bool) -> String {
    let login = format!("senso_{}", mac(d).replace(':', "").to_lowercase());
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{login}:{}", password(d)));
    let conn = if keep_alive { "keep-alive" } else { "close" };
    format!(
        "GET /device/config HTTP/1.1\r\nHost: bench\r\nUser-Agent: ESP32HTTPClient\r\nConnection: {conn}\r\nAccept-Encoding: identity;q=1,chunked;q=0.1,*;q=0\r\nAuthorization: Basic {basic}\r\n\r\n"
    )
}

/// `POST /mqtt/acl` as mosquitto-go-auth sends it: device `d` publishing on its room.
fn acl_request(d: u64, _keep_alive: bool) -> String {
    let login = format!("senso_{}", mac(d).replace(':', "").to_lowercase());
    let room = d % 500;
    let body = format!(
        r#"{{"username":"{login}","clientid":"neOSensor_{d:x}","topic":"b{}/{}/temperature","acc":2}}"#,
        room / 25,
        room % 25
    );
    format!(
        "POST /mqtt/acl HTTP/1.1\r\nHost: bench\r\nUser-Agent: mosquitto-2.0.11\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// `connections` clients sending `request(device, keep_alive)` for `duration`, over `devices`
/// (spread), keep-alive or one connection per request.
/// API writes one after the other, as an operator's script does: `PATCH` of a device's
/// description through the admin API, each a committed registry batch (with its audit entry).
fn api_writes(report: &mut String, addrs: &[std::net::SocketAddr], n: u64) {
    let writes = env_or("BENCH_API_WRITES", 500);
    let mut latencies_us: Vec<u32> = Vec::with_capacity(writes as usize);
    let started = Instant::now();
    for i in 0..writes {
        let addr = addrs[i as usize % addrs.len()];
        let path = format!("/api/v1/devices/{}", mac(i % n.max(1)));
        let body = serde_json::json!({"description": format!("bench write {i}")});
        let t0 = Instant::now();
        let (status, answer) = neosens_runtime::testing::http_json(
            addr,
            "PATCH",
            &path,
            Some("bench-admin-token-0123456789"),
            Some(&body),
        );
        assert_eq!(status, 200, "{answer}");
        latencies_us.push(u32::try_from(t0.elapsed().as_micros()).unwrap_or(u32::MAX));
    }
    latencies_us.sort_unstable();
    let _ = writeln!(
        report,
        "PATCH /api/v1/devices/{{mac}} one after the other: {:.0} writes/s ({writes} writes), latency p50 {:.2} ms, p99 {:.2} ms",
        writes as f64 / started.elapsed().as_secs_f64(),
        pct(&latencies_us, 0.50),
        pct(&latencies_us, 0.99),
    );
    if addrs.len() > 1 {
        visibility(report, addrs, n);
    }
}

/// With two replicas: how long after a write through one returns the other serves it.
fn visibility(report: &mut String, addrs: &[std::net::SocketAddr], n: u64) {
    let mut delays_us: Vec<u32> = Vec::new();
    for i in 0..100u64 {
        let path = format!("/api/v1/devices/{}", mac(i % n.max(1)));
        let text = format!("seen elsewhere {i}");
        let body = serde_json::json!({"description": text});
        let token = Some("bench-admin-token-0123456789");
        let (status, _) = neosens_runtime::testing::http_json(addrs[0], "PATCH", &path, token, Some(&body));
        assert_eq!(status, 200);
        let t0 = Instant::now();
        loop {
            let (_, d) = neosens_runtime::testing::http_json(addrs[1], "GET", &path, token, None);
            if d["description"] == text.as_str() {
                break;
            }
            assert!(t0.elapsed() < Duration::from_secs(10), "the other replica never caught up");
        }
        delays_us.push(u32::try_from(t0.elapsed().as_micros()).unwrap_or(u32::MAX));
    }
    delays_us.sort_unstable();
    let _ = writeln!(
        report,
        "a write through replica 1, served by replica 2 after: p50 {:.2} ms, p99 {:.2} ms (100 writes)",
        pct(&delays_us, 0.50),
        pct(&delays_us, 0.99),
    );
}

async fn load(
    addrs: Vec<std::net::SocketAddr>,
    devices: u64,
    connections: u64,
    duration: Duration,
    keep_alive: bool,
    request: fn(u64, bool) -> String,
) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..connections {
        let (stop, errors) = (Arc::clone(&stop), Arc::clone(&errors));
        let addr = addrs[c as usize % addrs.len()];
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(1 << 16);
            let mut stream: Option<tokio::net::TcpStream> = None;
            let mut buf = vec![0u8; 4096];
            let mut i = c;
            while !stop.load(Ordering::Relaxed) {
                let d = (i * 7919) % devices;
                i += connections;
                let request = request(d, keep_alive);
                let t0 = Instant::now();
                let s = match stream.as_mut() {
                    Some(s) => s,
                    None => match tokio::net::TcpStream::connect(addr).await {
                        Ok(s) => stream.insert(s),
                        Err(_) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                    },
                };
                let ok = async {
                    s.write_all(request.as_bytes()).await.ok()?;
                    let mut got = 0;
                    loop {
                        let n = s.read(&mut buf[got..]).await.ok()?;
                        if n == 0 {
                            return None;
                        }
                        got += n;
                        let text = std::str::from_utf8(&buf[..got]).ok()?;
                        if let Some(head_end) = text.find("\r\n\r\n") {
                            let len: usize = text[..head_end]
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length: "))
                                .and_then(|v| v.trim().parse().ok())?;
                            if got >= head_end + 4 + len {
                                // Both answers must be grants: a 200 for the config, `{"ok":true}` for the ACL.
                                let body = &text[head_end + 4..head_end + 4 + len];
                                return (text.starts_with("HTTP/1.1 200") && !body.contains("\"ok\":false"))
                                    .then_some(());
                            }
                        }
                    }
                }
                .await;
                if ok.is_some() {
                    latencies.push(t0.elapsed().as_micros() as u32);
                } else {
                    errors.fetch_add(1, Ordering::Relaxed);
                    stream = None;
                }
                if !keep_alive {
                    stream = None;
                }
            }
            latencies
        }));
    }
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies_us = Vec::new();
    for t in tasks {
        latencies_us.extend(t.await.unwrap());
    }
    let elapsed = start.elapsed();
    latencies_us.sort_unstable();
    Load {
        requests: latencies_us.len() as u64,
        errors: errors.load(Ordering::Relaxed),
        latencies_us,
        elapsed,
    }
}

fn pct(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let n = env_or("BENCH_DEVICES", 100_000);
    let seconds = env_or("BENCH_SECONDS", 10);
    let connections = env_or("BENCH_CONNECTIONS", 64);
    let dir = tempfile::tempdir().unwrap();
    let mut report = String::new();
    let _ = writeln!(
        report,
        "neosens-central provisioning benchmark ({n} devices, {connections} connections, {seconds} s per run, store: {})",
        store_label()
    );

    let export = dir.path().join("export.json");
    std::fs::write(&export, synthetic_export(n)).unwrap();
    let store = store_env(&dir.path().join("data"));
    let t0 = Instant::now();
    let out = Command::new(BIN)
        .args(["import-legacy", export.to_str().unwrap(), "--json"])
        .env("NEOSENS_DATA_DIR", dir.path().join("data"))
        .envs(store.iter().cloned())
        .env("NEOSENS_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let _ = writeln!(report, "import-legacy of {n} devices: {:.2} s", t0.elapsed().as_secs_f64());
    let db = std::fs::metadata(dir.path().join("data/central.redb")).map(|m| m.len()).unwrap_or(0);
    if db > 0 {
        let _ = writeln!(report, "database file: {:.1} MB", db as f64 / 1e6);
    }

    let mut env: HashMap<String, String> = store.into_iter().collect();
    env.extend([
        ("NEOSENS_HTTP_BIND".into(), "127.0.0.1:0".into()),
        ("NEOSENS_DATA_DIR".into(), dir.path().join("data").to_string_lossy().into_owned()),
        ("NEOSENS_ADMIN_TOKEN".into(), "bench-admin-token-0123456789".into()),
        ("NEOSENS_EMBEDDED_MQTT_BIND".into(), "127.0.0.1:0".into()),
    ]);
    let t0 = Instant::now();
    let central = ServiceProcess::spawn(Path::new(BIN), &[], &env);
    let ready = t0.elapsed();
    let loaded_ms = central
        .logs()
        .iter()
        .find(|l| l["message"] == "registry loaded")
        .and_then(|l| l["elapsed_ms"].as_u64())
        .unwrap_or(0);
    let _ = writeln!(
        report,
        "start to ready (spawn → serving): {:.0} ms (registry load {loaded_ms} ms); budget < 1000 ms",
        ready.as_secs_f64() * 1000.0
    );
    let _ =
        writeln!(report, "RSS when ready: {:.1} MB; budget < 200 MB", rss_kib(central.pid()) as f64 / 1024.0);

    // More replicas on the same database (and data directory: the same keys).
    let replicas = env_or("BENCH_REPLICAS", 1).max(1);
    assert!(replicas == 1 || store_label() != "redb", "BENCH_REPLICAS > 1 needs NEOSENS_TEST_STORE=postgres");
    let others: Vec<ServiceProcess> =
        (1..replicas).map(|_| ServiceProcess::spawn(Path::new(BIN), &[], &env)).collect();
    let addr = central.addr("http");
    let addrs: Vec<std::net::SocketAddr> =
        std::iter::once(addr).chain(others.iter().map(|o| o.addr("http"))).collect();
    if replicas > 1 {
        let _ = writeln!(report, "replicas: {replicas} (connections and API writes alternate between them)");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    for (label, keep_alive) in [("keep-alive", true), ("one request per connection (as the firmware)", false)]
    {
        let r = runtime.block_on(load(
            addrs.clone(),
            n,
            connections,
            Duration::from_secs(seconds),
            keep_alive,
            config_request,
        ));
        let _ = writeln!(
            report,
            "GET /device/config, Basic auth, {label}: {:.0} req/s ({} ok, {} errors), latency p50 {:.2} ms, p99 {:.2} ms{}",
            r.requests as f64 / r.elapsed.as_secs_f64(),
            r.requests,
            r.errors,
            pct(&r.latencies_us, 0.50),
            pct(&r.latencies_us, 0.99),
            if keep_alive { "; budget ≥ 20000 req/s" } else { "" },
        );
    }
    // Mosquitto runs its auth plug-in from its single event loop and go-auth calls out
    // synchronously, so the broker keeps few checks in flight: 16 concurrent is already generous.
    let acl_connections = env_or("BENCH_ACL_CONNECTIONS", 16);
    let r = runtime.block_on(load(
        addrs.clone(),
        n,
        acl_connections,
        Duration::from_secs(seconds),
        true,
        acl_request,
    ));
    let _ = writeln!(
        report,
        "POST /mqtt/acl (go-auth JSON, publish allowed), keep-alive, {acl_connections} connections: {:.0} req/s ({} ok, {} errors), latency p50 {:.2} ms, p99 {:.2} ms; budget ≥ 40000 req/s, p99 < 2 ms",
        r.requests as f64 / r.elapsed.as_secs_f64(),
        r.requests,
        r.errors,
        pct(&r.latencies_us, 0.50),
        pct(&r.latencies_us, 0.99),
    );

    // Cross-check with wrk when it is installed (scripts/bench installs it): one device's login.
    let basic = base64::engine::general_purpose::STANDARD.encode(format!(
        "senso_{}:{}",
        mac(0).replace(':', "").to_lowercase(),
        password(0)
    ));
    match Command::new("wrk")
        .args([
            "-t1",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "-H",
            &format!("Authorization: Basic {basic}"),
        ])
        .arg(format!("http://{addr}/device/config"))
        .output()
    {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            for line in text
                .lines()
                .filter(|l| l.contains("Requests/sec") || l.contains("Latency") || l.contains("Non-2xx"))
            {
                let _ = writeln!(report, "wrk -t1 -c{connections}: {}", line.trim());
            }
        }
        _ => {
            let _ = writeln!(report, "wrk not installed: cross-check skipped");
        }
    }
    api_writes(&mut report, &addrs, n);
    let _ = writeln!(report, "RSS after load: {:.1} MB", rss_kib(central.pid()) as f64 / 1024.0);
    print!("{report}");
}
