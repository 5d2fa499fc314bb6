//! Benchmark of central serving a firmware image to many boards at once, as a campaign's wave
//! does (issue 18): `BENCH_CLIENTS` (500) connections each send arduino-esp32's `HTTPUpdate`
//! request (HTTP/1.0, `x-ESP32-STA-MAC`) and read the whole image. Reported: the time for all,
//! the throughput, and central's memory — images are streamed from disk, never held whole, so
//! RSS must not grow with clients × image size.
//!
//! Run: `cargo bench -p neosens-central --bench firmware`. Options (environment):
//! `BENCH_CLIENTS` (500), `BENCH_IMAGE_KB` (1536, an ESP32 app), `BENCH_ROUNDS` (3).
//! Client and server share this 2-core machine over loopback.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use neosens_runtime::testing::{ServiceProcess, http_json, raw_http, updater};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The release binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_neosens-central");

const ADMIN: &str = "bench-admin-token-0123456789";

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn api(addr: std::net::SocketAddr, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    http_json(addr, method, path, Some(ADMIN), body.as_ref())
}

fn mac(i: u64) -> String {
    format!("24:0a:c4:00:{:02x}:{:02x}", i >> 8, i & 0xff)
}

/// One board's download: the bytes of the image it received.
async fn download(addr: std::net::SocketAddr, path: String, mac: String) -> std::io::Result<usize> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = updater::esp32_update(&path, &mac);
    stream.write_all(&request).await?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await?;
    let head = answer.windows(4).position(|w| w == b"\r\n\r\n").map_or(answer.len(), |p| p + 4);
    if !answer.starts_with(b"HTTP/1.0 200") && !answer.starts_with(b"HTTP/1.1 200") {
        return Err(std::io::Error::other(String::from_utf8_lossy(&answer[..head.min(200)]).into_owned()));
    }
    Ok(answer.len() - head)
}

fn main() {
    let clients = env_or("BENCH_CLIENTS", 500);
    let image_kb = env_or("BENCH_IMAGE_KB", 1536);
    let rounds = env_or("BENCH_ROUNDS", 3);
    let dir = tempfile::tempdir().unwrap();
    let env = HashMap::from([
        ("NEOSENS_HTTP_BIND".into(), "127.0.0.1:0".into()),
        ("NEOSENS_DATA_DIR".into(), dir.path().join("data").to_string_lossy().into_owned()),
        ("NEOSENS_ADMIN_TOKEN".into(), ADMIN.into()),
        ("NEOSENS_EMBEDDED_MQTT_BIND".into(), "127.0.0.1:0".into()),
    ]);
    // 500 boards behind one loopback address: above the default 256 connections per client.
    let config = dir.path().join("central.toml");
    std::fs::write(&config, format!("[http]\nmax_connections_per_client = {}\n", clients + 16)).unwrap();
    let central = ServiceProcess::spawn(Path::new(BIN), &["--config", config.to_str().unwrap()], &env);
    let addr = central.addr("http");
    let pid = central.pid();
    let (_, b) = api(addr, "POST", "/api/v1/buildings", Some(json!({"name": "BENCH"})));
    let (_, r) = api(addr, "POST", "/api/v1/rooms", Some(json!({"building": b["id"], "name": "1"})));
    api(addr, "POST", "/api/v1/device-types", Some(json!({"name": "esp32"})));
    for i in 0..clients {
        let (s, v) = api(
            addr,
            "POST",
            "/api/v1/devices",
            Some(json!({"uid": mac(i), "type": "esp32", "rooms": [r["id"]]})),
        );
        assert_eq!(s, 201, "{v}");
    }
    let content = updater::esp_image(usize::try_from(image_kb * 1024).unwrap());
    let upload = updater::upload("hardware=esp32&board=neOSensor&revision=240101", ADMIN, &content);
    let t0 = Instant::now();
    let uploaded = raw_http(addr, &upload);
    assert_eq!(uploaded.status, 201, "{}", uploaded.text());
    println!(
        "upload of {image_kb} KiB: {:.1} ms (streamed, hashed SHA-256 + MD5)",
        t0.elapsed().as_secs_f64() * 1e3
    );
    let sha = serde_json::from_slice::<Value>(&uploaded.body).unwrap()["sha256"].as_str().unwrap().to_owned();
    let (s, v) = api(
        addr,
        "POST",
        "/api/v1/campaigns",
        Some(json!({"name": "bench", "image": sha, "target": {"type": "esp32"}})),
    );
    assert_eq!(s, 201, "{v}");
    let path = format!("/images/esp32/neOSensor/{sha}.bin");
    let idle_rss = status_kib(pid, "VmRSS:");
    println!("central idle: RSS {:.1} MB", idle_rss as f64 / 1024.0);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    for round in 1..=rounds {
        let sampler = std::thread::spawn(move || {
            let mut peak = 0;
            let until = Instant::now() + Duration::from_secs(120);
            while Instant::now() < until {
                peak = peak.max(status_kib(pid, "VmRSS:"));
                if std::fs::read_to_string("/tmp/.neosens-bench-stop").is_ok() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            peak
        });
        let t0 = Instant::now();
        let results = runtime.block_on(async {
            let tasks: Vec<_> =
                (0..clients).map(|i| tokio::spawn(download(addr, path.clone(), mac(i)))).collect();
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.unwrap());
            }
            out
        });
        let took = t0.elapsed();
        std::fs::write("/tmp/.neosens-bench-stop", b"").unwrap();
        let peak = sampler.join().unwrap();
        let _ = std::fs::remove_file("/tmp/.neosens-bench-stop");
        let ok = results.iter().filter(|r| matches!(r, Ok(n) if *n == content.len())).count();
        let bytes = ok as f64 * content.len() as f64;
        println!(
            "round {round}: {clients} concurrent downloads of {image_kb} KiB: {ok} complete in {:.2} s — {:.0} downloads/s, {:.0} MB/s; central RSS peak {:.1} MB (+{:.1} MB over idle)",
            took.as_secs_f64(),
            ok as f64 / took.as_secs_f64(),
            bytes / took.as_secs_f64() / 1e6,
            peak as f64 / 1024.0,
            (peak.saturating_sub(idle_rss)) as f64 / 1024.0,
        );
        if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
            println!("  first failure: {e}");
        }
    }
    println!(
        "held whole in memory, {clients} copies would take {:.0} MB",
        clients as f64 * content.len() as f64 / 1e6
    );
}
