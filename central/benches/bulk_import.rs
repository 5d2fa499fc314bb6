//! Benchmark of a bulk import (issue 19): `BENCH_DEVICES` (100,000) devices in one CSV file
//! posted to the release binary — a dry run, then the import — and the export of them all.
//! Reported: the time of each request as the client sees it, and central's memory (RSS before,
//! peak during, after): the file, its rows and the new records are all held at once.
//!
//! Run: `cargo bench -p neosens-central --bench bulk_import`. Options (environment):
//! `BENCH_DEVICES` (100000).

mod support;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use neosens_runtime::testing::{ServiceProcess, http_json, raw_http};
use serde_json::{Value, json};
use support::{BIN, rss_kib};

const ADMIN: &str = "bench-admin-token-0123456789";
const ROOMS: u64 = 200;

fn mb(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Runs `request` while sampling central's RSS; returns its result, the time and the peak.
fn measured<T>(pid: u32, request: impl FnOnce() -> T) -> (T, Duration, u64) {
    let done = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&done);
    let sampler = std::thread::spawn(move || {
        let mut peak = 0;
        while !flag.load(Ordering::Relaxed) {
            peak = peak.max(rss_kib(pid));
            std::thread::sleep(Duration::from_millis(5));
        }
        peak
    });
    let t0 = Instant::now();
    let out = request();
    let took = t0.elapsed();
    done.store(true, Ordering::Relaxed);
    let peak = sampler.join().unwrap().max(rss_kib(pid));
    (out, took, peak)
}

fn post_csv(addr: std::net::SocketAddr, path: &str, body: &str) -> Value {
    let request = format!(
        "POST /api/v1{path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {ADMIN}\r\nContent-Type: text/csv\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let r = raw_http(addr, request.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    serde_json::from_slice(&r.body).unwrap()
}

fn main() {
    let devices: u64 = std::env::var("BENCH_DEVICES").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
    let env = HashMap::from([
        ("NEOSENS_HTTP_BIND".into(), "127.0.0.1:0".into()),
        ("NEOSENS_DATA_DIR".into(), dir.path().join("data").to_string_lossy().into_owned()),
        ("NEOSENS_ADMIN_TOKEN".into(), ADMIN.into()),
        ("NEOSENS_EMBEDDED_MQTT_BIND".into(), "127.0.0.1:0".into()),
    ]);
    let central = ServiceProcess::spawn(Path::new(BIN), &[], &env);
    let addr = central.addr("http");
    let pid = central.pid();
    let (_, b) = http_json(addr, "POST", "/api/v1/buildings", Some(ADMIN), Some(&json!({"name": "BENCH"})));
    for r in 0..ROOMS {
        let (s, v) = http_json(
            addr,
            "POST",
            "/api/v1/rooms",
            Some(ADMIN),
            Some(&json!({"building": b["id"], "name": r.to_string()})),
        );
        assert_eq!(s, 201, "{v}");
    }
    http_json(addr, "POST", "/api/v1/device-types", Some(ADMIN), Some(&json!({"name": "esp32"})));
    let mut csv = String::from("uid,type,rooms,description,enabled,config\n");
    for i in 0..devices {
        csv.push_str(&format!(
            "24:0a:c4:{:02x}:{:02x}:{:02x},esp32,bench/{},board {i},true,\"[{{\"\"zone\"\":\"\"z{i}\"\",\"\"modules\"\":[]}}]\"\n",
            (i >> 16) & 0xff,
            (i >> 8) & 0xff,
            i & 0xff,
            i % ROOMS
        ));
    }
    println!(
        "{devices} devices, {:.1} MB of CSV, {ROOMS} rooms; central RSS idle {:.1} MB",
        csv.len() as f64 / 1e6,
        mb(rss_kib(pid))
    );
    let (dry, took, peak) = measured(pid, || post_csv(addr, "/devices/import.csv?dry_run=true", &csv));
    println!(
        "dry run : {:>6.2} s ({} would be created, {} refused); RSS peak {:.1} MB, after {:.1} MB",
        took.as_secs_f64(),
        dry["created"],
        dry["failed"],
        mb(peak),
        mb(rss_kib(pid))
    );
    let (real, took, peak) = measured(pid, || post_csv(addr, "/devices/import.csv", &csv));
    println!(
        "import  : {:>6.2} s ({} created, {} refused, {:.0} devices/s); RSS peak {:.1} MB, after {:.1} MB",
        took.as_secs_f64(),
        real["created"],
        real["failed"],
        devices as f64 / took.as_secs_f64(),
        mb(peak),
        mb(rss_kib(pid))
    );
    let (export, took, peak) = measured(pid, || {
        let request = format!(
            "GET /api/v1/devices/export.csv HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {ADMIN}\r\n\r\n"
        );
        raw_http(addr, request.as_bytes())
    });
    println!(
        "export  : {:>6.2} s ({:.1} MB, {} rows); RSS peak {:.1} MB",
        took.as_secs_f64(),
        export.body.len() as f64 / 1e6,
        export.text().lines().count() - 1,
        mb(peak)
    );
    let (again, took, _) = measured(pid, || post_csv(addr, "/devices/import.csv", &export.text()));
    println!("re-import of the export: {:>6.2} s ({} unchanged)", took.as_secs_f64(), again["unchanged"]);
    // What the registry itself holds for these devices: central restarted on them.
    drop(central);
    let central = ServiceProcess::spawn(Path::new(BIN), &[], &env);
    println!("central restarted on {devices} devices: RSS {:.1} MB", mb(rss_kib(central.pid())));
}
