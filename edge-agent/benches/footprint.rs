//! The edge agent's footprint with 10,000 devices in its scope: time to sync them, resident
//! memory (budget < 12 MB), CPU while idle (no busy loops), and provisioning answers from the
//! cache with central down. Real binaries (release), real sockets.
//!
//! `cargo bench -p neosens-edge --bench footprint` (`BENCH_DEVICES` changes the fleet size;
//! `BENCH_EDGE_BIN=<absolute path>` measures another agent build, e.g. the static musl one
//! `cross/build` ships: `$PWD/target/x86_64-unknown-linux-musl/min-size/neosens-edge`; benches
//! run from `edge-agent/`). `BENCH_LOCAL_BROKER=1` puts the gateway in local-broker mode:
//! its Mosquitto then holds an account per device, and its memory is reported beside the
//! agent's.

mod support;

use std::time::{Duration, Instant};

use base64::Engine;
use neosens_runtime::testing::{raw_http, wait_until};
use support::{Fleet, export, metric, proc_field};

const RSS_BUDGET_KIB: u64 = 12 * 1024;

/// CPU time used by a process so far, in clock ticks (utime + stime).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// The first child process of `pid` (the local broker), if any.
fn child_of(pid: u32) -> Option<u32> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    tasks.flatten().find_map(|t| {
        let children = std::fs::read_to_string(t.path().join("children")).ok()?;
        children.split_whitespace().next()?.parse().ok()
    })
}

fn main() {
    let n: u64 = std::env::var("BENCH_DEVICES").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let mut fleet = Fleet::start(n);
    let started = Instant::now();
    let bin = std::env::var("BENCH_EDGE_BIN").map(std::path::PathBuf::from).ok();
    let local_broker = std::env::var_os("BENCH_LOCAL_BROKER").is_some();
    let agent = bin.clone().unwrap_or_else(|| std::path::PathBuf::from(support::EDGE));
    let config_dir = tempfile::tempdir().unwrap();
    // Local-broker mode needs a broker upstream for its bridge (central's is embedded here).
    let upstream = local_broker.then(|| neosens_runtime::testing::Mosquitto::start(""));
    let (mut edge, edge_dir) = if let Some(upstream) = &upstream {
        let port = neosens_runtime::testing::free_port();
        let config = config_dir.path().join("edge.toml");
        std::fs::write(
            &config,
            format!("[local_broker]\nlisten = \"127.0.0.1:{port}\"\nmosquitto = \"mosquitto\"\n"),
        )
        .unwrap();
        let body = serde_json::json!({"name": "gw-bench", "scope": {"site": "ut3"},
            "local_broker": {"host": "127.0.0.1", "port": port}});
        let env =
            [("NEOSENS_EDGE_CONFIG", config.to_str().unwrap()), ("NEOSENS_EDGE_MQTT_URL", &upstream.url())];
        fleet.gateway_created(&agent, body, &env)
    } else {
        fleet.gateway_with(&agent, "gw-bench")
    };
    let e = edge.addr("http");
    let pid = edge.pid();
    wait_until("the scope synced", || metric(e, "neosens_edge_devices_cached") == n as f64);
    if local_broker {
        wait_until("the local broker's accounts written", || {
            metric(e, "neosens_edge_local_broker_accounts") == n as f64
                && metric(e, "neosens_edge_local_broker_up") == 1.0
        });
    }
    let synced = started.elapsed();
    let mosquitto = local_broker.then(|| child_of(pid)).flatten();
    let rss_synced = proc_field(pid, "VmRSS:");
    let hwm = proc_field(pid, "VmHWM:");

    // Idle: no requests, central up (the agent waits in its long-poll).
    let ticks = cpu_ticks(pid);
    let idle = Duration::from_secs(10);
    let t0 = Instant::now();
    std::thread::sleep(idle); // measuring over a fixed wall-clock window is the point here
    let idle_ticks = cpu_ticks(pid) - ticks;
    let mosquitto_rss = mosquitto.map(|m| proc_field(m, "VmRSS:"));
    let idle_cpu_pct = idle_ticks as f64 * 10.0 / t0.elapsed().as_millis() as f64 * 100.0;

    // Provisioning from the cache, central down.
    fleet.central.signal_and_wait("TERM");
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
    // The agent's databases: the registry copy (`registry.redb`), the outbox and the rest.
    let size: u64 = std::fs::read_dir(edge_dir.path())
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "redb"))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    edge.signal_and_wait("TERM");

    println!("neosens-edge footprint benchmark ({n} devices in scope)");
    if let Some(bin) = &bin {
        println!("agent: {}", bin.display());
    }
    println!("enrol + start + first sync of {n} devices: {:.2} s", synced.as_secs_f64());
    println!("local databases: {:.1} MB", size as f64 / 1e6);
    println!(
        "resident memory after sync: {:.1} MB (peak {:.1} MB); budget < {} MB: {}",
        rss_synced as f64 / 1024.0,
        hwm as f64 / 1024.0,
        RSS_BUDGET_KIB / 1024,
        if rss_synced < RSS_BUDGET_KIB { "ok" } else { "OVER" }
    );
    if let Some(rss) = mosquitto_rss {
        println!("local broker (Mosquitto, {n} accounts) resident memory: {:.1} MB", rss as f64 / 1024.0);
    }
    println!("idle CPU over {} s: {idle_ticks} ticks ({idle_cpu_pct:.2} % of a core)", idle.as_secs());
    println!(
        "/device/config from the cache (central down, one connection per request): {requests} in {:.2} s = {:.0} req/s, {:.0} µs each",
        offline.as_secs_f64(),
        requests as f64 / offline.as_secs_f64(),
        offline.as_micros() as f64 / requests as f64
    );
    println!("resident memory after serving: {:.1} MB", rss_after as f64 / 1024.0);
}
