//! Benchmark of the audit listing over a long trail (issue 19): a store holding `BENCH_ENTRIES`
//! (1,000,000) entries — written through the store as central writes them, ~1 in 1,000 by a
//! second token — then the real binary on it, answering `GET /api/v1/audit` over HTTP:
//! the last 50 entries, the last 50 of one action, the last 50 of the rare actor (it scans far),
//! and a filter that matches nothing (it stops at the scan bound and says where to go on).
//! Reported: time to fill, the store's size per entry, and each query's latency (median, p99).
//!
//! Run: `cargo bench -p neosens-central --bench audit`. Options (environment): `BENCH_ENTRIES`
//! (1000000), `BENCH_QUERIES` (200 per filter).

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use neosens_central::audit::AuditRetention;
use neosens_central::model::{Actor, AuditEntry, FieldChange, Timestamp};
use neosens_central::store::{AuditStore, RedbStore};
use neosens_runtime::testing::{ServiceProcess, http_json};

const BIN: &str = env!("CARGO_BIN_EXE_neosens-central");
const ADMIN: &str = "bench-admin-token-0123456789";

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// An entry like a device update by an operator's token (or, 1 in 1,000, by another one).
fn entry(i: u64, at: i64) -> AuditEntry {
    let rare = i % 1000 == 7;
    AuditEntry {
        id: 0,
        at: Timestamp(at),
        actor: Actor::Token {
            id: [if rare { 2 } else { 1 }; 16],
            name: if rare { "night-batch" } else { "operator" }.into(),
        },
        action: if i % 10 == 0 { "order.send" } else { "device.update" }.into(),
        target_kind: "device".into(),
        target_id: format!("0190a5c4-0000-7000-8000-{:012x}", i % 5000),
        target: format!("24:0A:C4:00:{:02X}:{:02X}", (i % 5000) >> 8, i % 256),
        changes: vec![FieldChange { field: "enabled".into(), before: "true".into(), after: "false".into() }],
        detail: String::new(),
    }
}

fn fill(data: &Path, entries: u64) {
    let store = RedbStore::open(data).unwrap();
    store.set_audit_retention(AuditRetention { max_entries: entries, max_age_days: 400 });
    let t0 = Instant::now();
    let now = Timestamp::now().0;
    let batch = 10_000;
    for start in (0..entries).step_by(batch as usize) {
        let end = (start + batch).min(entries);
        let chunk: Vec<_> =
            (start..end).map(|i| entry(i, now - i64::try_from(entries - i).unwrap() * 1000)).collect();
        store.append_audit(&chunk).unwrap();
        if end % 200_000 == 0 {
            println!("  {end} entries written");
        }
    }
    let size = std::fs::metadata(data.join("central.redb")).unwrap().len();
    println!(
        "filled {entries} entries in {:.1} s; store {:.1} MB, {:.0} bytes per entry",
        t0.elapsed().as_secs_f64(),
        size as f64 / 1e6,
        size as f64 / entries as f64
    );
}

fn measure(addr: std::net::SocketAddr, label: &str, query: &str, queries: u64) {
    let mut times = Vec::new();
    let mut shown = 0;
    for _ in 0..queries {
        let t0 = Instant::now();
        let (status, body) = http_json(addr, "GET", &format!("/api/v1/audit{query}"), Some(ADMIN), None);
        times.push(t0.elapsed());
        assert_eq!(status, 200, "{body}");
        shown = body["items"].as_array().map_or(0, Vec::len);
    }
    times.sort();
    let at = |q: f64| times[((times.len() as f64 - 1.0) * q) as usize];
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{label:<44} {shown:>3} entries   median {:>7.2} ms   p99 {:>7.2} ms",
        ms(at(0.5)),
        ms(at(0.99))
    );
}

fn main() {
    let entries = env_or("BENCH_ENTRIES", 1_000_000);
    let queries = env_or("BENCH_QUERIES", 200);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    fill(&data, entries);
    let env = HashMap::from([
        ("NEOSENS_HTTP_BIND".into(), "127.0.0.1:0".into()),
        ("NEOSENS_DATA_DIR".into(), data.to_string_lossy().into_owned()),
        ("NEOSENS_ADMIN_TOKEN".into(), ADMIN.into()),
        ("NEOSENS_EMBEDDED_MQTT_BIND".into(), "127.0.0.1:0".into()),
    ]);
    let config = dir.path().join("central.toml");
    std::fs::write(&config, format!("[audit]\nmax_entries = {}\n", entries + 1000)).unwrap();
    let central = ServiceProcess::spawn(Path::new(BIN), &["--config", config.to_str().unwrap()], &env);
    let addr = central.addr("http");
    println!("GET /api/v1/audit over {entries} entries, {queries} requests each, one client over loopback:");
    measure(addr, "last 50", "?limit=50", queries);
    measure(addr, "last 50 orders (1 in 10)", "?limit=50&action=order.send", queries);
    measure(addr, "last 50 of a rare token (1 in 1,000)", "?limit=50&actor=night-batch", queries.min(20));
    measure(addr, "one device's last 50 (1 in 5,000)", "?limit=50&target=24:0A:C4:00:00:07", queries.min(20));
    measure(addr, "no match (stops at the 200,000-entry scan)", "?limit=50&actor=nobody", queries.min(10));
}
