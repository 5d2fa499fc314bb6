//! Benchmark of status ingestion through a real Mosquitto (DESIGN.md §6: ≥ 50,000 device
//! statuses/s on 2 cores with 100k devices registered), with the same broker's delivery to a plain
//! subscriber in the same run as the yardstick.
//!
//! Run: `cargo bench -p neosens-central --bench ingest` (or `scripts/bench`).
//! Options: `BENCH_DEVICES` (100000), `BENCH_SECONDS` (10), `BENCH_PUBLISHERS` (4),
//! `BENCH_REPLICAS` (1; 2 with `NEOSENS_TEST_STORE=postgres`: two central processes on one
//! database share the statuses through an MQTT shared subscription).
//! Mosquitto, central, the publishers and the subscriber share the machine's 2 cores.

mod support;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use neosens_runtime::testing::{Mosquitto, ServiceProcess, http_get};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use support::{BIN, mac, store_env, store_label, synthetic_export, topic_of};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A counter summed over the replicas' `/metrics`.
fn metric(addrs: &[std::net::SocketAddr], name: &str) -> u64 {
    addrs.iter().map(|a| metric_of(*a, name)).sum()
}

/// A counter from one central's `/metrics`.
fn metric_of(addr: std::net::SocketAddr, name: &str) -> u64 {
    let text = http_get(addr, "/metrics").text();
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

fn status(i: u64) -> String {
    format!(
        r#"{{"frequency":1800,"time":"2023-10-27 10:15:02 +0200","status":"running","modules":3,"heap":171204,"hardware":"esp32","firmware":231027,"board":"neOSensor","board_rev":1.2,"unitID":"{}"}}"#,
        mac(i).to_lowercase()
    )
}

fn client(port: u16, id: &str) -> (AsyncClient, rumqttc::EventLoop) {
    let mut options = MqttOptions::new(id, "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(30));
    options.set_max_packet_size(1 << 20, 1 << 20);
    AsyncClient::new(options, 10_000)
}

fn main() {
    let n = env_or("BENCH_DEVICES", 100_000);
    let seconds = env_or("BENCH_SECONDS", 10);
    let publishers = env_or("BENCH_PUBLISHERS", 4);
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export.json");
    std::fs::write(&export, synthetic_export(n)).unwrap();
    let store = store_env(&dir.path().join("data"));
    println!("store: {}", store_label());
    let out = Command::new(BIN)
        .args(["import-legacy", export.to_str().unwrap(), "--json"])
        .env("NEOSENS_DATA_DIR", dir.path().join("data"))
        .envs(store.iter().cloned())
        .env("NEOSENS_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // No limit on queued messages: the yardstick is what the broker delivers, not what it drops.
    let mosquitto = Mosquitto::start("max_queued_messages 0\nmax_inflight_messages 0");
    let mut env: HashMap<String, String> = store.into_iter().collect();
    env.extend([
        ("NEOSENS_HTTP_BIND".into(), "127.0.0.1:0".into()),
        ("NEOSENS_DATA_DIR".into(), dir.path().join("data").to_string_lossy().into_owned()),
        ("NEOSENS_ADMIN_TOKEN".into(), "bench-admin-token-0123456789".into()),
        ("NEOSENS_MQTT_URL".into(), mosquitto.url()),
    ]);
    let replicas = env_or("BENCH_REPLICAS", 1).max(1);
    assert!(replicas == 1 || store_label() != "redb", "BENCH_REPLICAS > 1 needs NEOSENS_TEST_STORE=postgres");
    let centrals: Vec<ServiceProcess> =
        (0..replicas).map(|_| ServiceProcess::spawn(Path::new(BIN), &[], &env)).collect();
    let addrs: Vec<std::net::SocketAddr> = centrals.iter().map(|c| c.addr("http")).collect();
    let addr = addrs.as_slice();

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        // The yardstick: a plain subscriber on the same topics.
        let received = Arc::new(AtomicU64::new(0));
        let (sub, mut sub_loop) = client(mosquitto.port, "plain-subscriber");
        sub.subscribe("+/+/device", QoS::AtMostOnce).await.unwrap();
        let counter = Arc::clone(&received);
        tokio::spawn(async move {
            let _sub = sub;
            while let Ok(event) = sub_loop.poll().await {
                if let Event::Incoming(Packet::Publish(_)) = event {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        // Central is subscribed once a probe status goes through.
        let (probe, mut probe_loop) = client(mosquitto.port, "probe");
        tokio::spawn(async move { while probe_loop.poll().await.is_ok() {} });
        let deadline = Instant::now() + Duration::from_secs(30);
        // Every replica subscribed: each has had a probe status (a shared subscription spreads them).
        while addr.iter().any(|a| metric_of(*a, "neosens_status_processed_total") == 0) {
            assert!(Instant::now() < deadline, "central never received a status");
            probe.publish(format!("{}/device", topic_of(0)), QoS::AtMostOnce, false, status(0)).await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let base_central = metric(addr, "neosens_status_processed_total");
        let base_sub = received.load(Ordering::Relaxed);

        let stop = Arc::new(AtomicBool::new(false));
        let published = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let mut tasks = Vec::new();
        for p in 0..publishers {
            let (c, mut l) = client(mosquitto.port, &format!("publisher-{p}"));
            tokio::spawn(async move { while l.poll().await.is_ok() {} });
            let (stop, published) = (Arc::clone(&stop), Arc::clone(&published));
            tasks.push(tokio::spawn(async move {
                let mut i = p;
                while !stop.load(Ordering::Relaxed) {
                    let d = i % n;
                    if c.publish(format!("{}/device", topic_of(d)), QoS::AtMostOnce, false, status(d)).await.is_err() {
                        break;
                    }
                    published.fetch_add(1, Ordering::Relaxed);
                    i += publishers;
                }
            }));
        }
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            let _ = t.await;
        }
        let publish_window = started.elapsed();
        // Let the queues drain: until both counts stop moving for a second.
        let mut last = (0, 0);
        let mut quiet_since = Instant::now();
        let drained = loop {
            let now = (metric(addr, "neosens_status_processed_total"), received.load(Ordering::Relaxed));
            if now != last {
                last = now;
                quiet_since = Instant::now();
            } else if quiet_since.elapsed() > Duration::from_secs(1) {
                break quiet_since - started;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let total = published.load(Ordering::Relaxed);
        let central_n = last.0 - base_central;
        let sub_n = last.1 - base_sub;
        let secs = drained.as_secs_f64();
        println!("neosens-central status ingestion through Mosquitto ({n} devices registered, {publishers} publishers, QoS 0)");
        println!(
            "published: {total} statuses in {:.2} s ({:.0}/s)",
            publish_window.as_secs_f64(),
            total as f64 / publish_window.as_secs_f64()
        );
        println!("plain subscriber: {sub_n} received, {:.0}/s until drained ({secs:.2} s)", sub_n as f64 / secs);
        println!(
            "central: {central_n} ingested, {:.0}/s until drained; {:.1}% of what the broker delivered to the plain subscriber; budget ≥ 50000/s",
            central_n as f64 / secs,
            100.0 * central_n as f64 / sub_n.max(1) as f64
        );
        if addr.len() > 1 {
            let per: Vec<String> = addr
                .iter()
                .map(|a| metric_of(*a, "neosens_status_processed_total").to_string())
                .collect();
            println!("replicas: {} (statuses processed by each: {})", addr.len(), per.join(", "));
        }
        println!(
            "central: {} stored in {} batches; dropped unknown_device {}",
            metric(addr, "neosens_status_stored_total"),
            metric(addr, "neosens_status_batches_total"),
            metric(addr, "neosens_status_dropped_total{reason=\"unknown_device\"}")
        );
    });
}
