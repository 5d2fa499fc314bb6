//! The attack suite's floods for minutes on end (docs/security.md), against the real release
//! binaries — central with 10,000 devices and its embedded broker, a gateway scoped to all of
//! them — while legitimate devices keep provisioning: resident memory of both sampled every
//! 10 s, and the latency of the legitimate requests, minute by minute. Measured, not asserted.
//!
//! `cargo bench -p neosens-edge --bench attack_soak` (`BENCH_SECONDS`, default 600;
//! `BENCH_DEVICES`, default 10,000). One 2-core machine plays attackers, devices and servers.
//!
//! The floods, each paced (per second): 200 requests with invented methods and 100 credential
//! scans of random MACs (one connection each) and 20 sign-in guesses on central; 300 slowloris
//! connections to central and 100 to the gateway (a header byte every 2 s, reopened when cut);
//! 20 endless `/device/logger` bodies (1 KiB every 100 ms); 2,000 packet-forwarder datagrams of 8
//! frames with random DevAddrs to the gateway; 200 forged statuses (random `unitID` of the fleet,
//! random `msg_id`, no stamp) and a 60 KB retained one every 10 s on central's broker. Legitimate:
//! `GET /device/config` with a valid Basic login, 200/s on central (4 keep-alive connections)
//! and 100/s on the gateway (one connection per request, as the firmware).

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use neosens_runtime::testing::wait_until;
use parking_lot::Mutex;
use serde_json::json;
use support::{Fleet, export, metric, proc_field};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn rss_kib(pid: u32) -> u64 {
    proc_field(pid, "VmRSS:")
}

fn basic(d: u64) -> String {
    let login = format!("senso_{}", export::mac(d).replace(':', "").to_lowercase());
    base64::engine::general_purpose::STANDARD.encode(format!("{login}:{}", export::password(d)))
}

/// Counters of what was sent, and the legitimate latencies (µs) of the current minute.
#[derive(Default)]
struct Tally {
    sent: HashMap<&'static str, AtomicU64>,
    central_us: Mutex<Vec<u32>>,
    gateway_us: Mutex<Vec<u32>>,
    legit_errors: AtomicU64,
}

impl Tally {
    fn new() -> Self {
        let names =
            ["methods", "scans", "sign_ins", "slowloris", "bodies", "datagrams", "statuses", "retained"];
        Tally { sent: names.iter().map(|n| (*n, AtomicU64::new(0))).collect(), ..Tally::default() }
    }
    fn add(&self, what: &'static str) {
        if let Some(c) = self.sent.get(what) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Each attacker connects from an address of its own in 127.0.0.0/8 (the legitimate devices from
/// 127.0.0.1), as on a campus network: the per-client connection caps then apply to each, and the
/// figures do not mix a cap hit by an attacker with a refusal of a device.
const METHODS_FROM: [u8; 4] = [127, 0, 0, 2];
const SCANS_FROM: [u8; 4] = [127, 0, 0, 3];
const SIGN_INS_FROM: [u8; 4] = [127, 0, 0, 4];
const SLOWLORIS_FROM: [u8; 4] = [127, 0, 0, 5];
const GATEWAY_SLOWLORIS_FROM: [u8; 4] = [127, 0, 0, 6];
const BODIES_FROM: [u8; 4] = [127, 0, 0, 7];

async fn connect_from(from: [u8; 4], addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((from, 0)))?;
    socket.connect(addr).await
}

/// Sends one request on a new connection and reads until the server closes or 2 s pass.
async fn one_shot(from: [u8; 4], addr: SocketAddr, request: String) {
    let Ok(Ok(mut s)) = tokio::time::timeout(Duration::from_secs(2), connect_from(from, addr)).await else {
        return;
    };
    let _ = s.write_all(request.as_bytes()).await;
    let mut buf = [0u8; 2048];
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
    })
    .await;
}

/// `rate` per second of `make()` until `stop`.
fn paced(
    stop: &Arc<AtomicBool>,
    rate: u64,
    mut make: impl FnMut(&mut fastrand::Rng) -> tokio::task::JoinHandle<()> + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    let stop = Arc::clone(stop);
    tokio::spawn(async move {
        let mut rng = fastrand::Rng::new();
        let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate.max(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        while !stop.load(Ordering::Relaxed) {
            tick.tick().await;
            drop(make(&mut rng));
        }
    })
}

/// `n` slowloris connections to `addr`: a request line, then one header byte every 2 s; a
/// connection the server cuts is opened again.
fn slowloris(
    from: [u8; 4],
    stop: &Arc<AtomicBool>,
    addr: SocketAddr,
    n: usize,
    tally: &Arc<Tally>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..n)
        .map(|i| {
            let (stop, tally) = (Arc::clone(stop), Arc::clone(tally));
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(i as u64 * 7)).await;
                while !stop.load(Ordering::Relaxed) {
                    let Ok(mut s) = connect_from(from, addr).await else {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    };
                    tally.add("slowloris");
                    if s.write_all(b"GET /device/config HTTP/1.1\r\nX-a: ").await.is_err() {
                        continue;
                    }
                    while !stop.load(Ordering::Relaxed) {
                        tokio::time::sleep(Duration::from_secs(2)).await;
                        if s.write_all(b"a").await.is_err() {
                            break;
                        }
                    }
                }
            })
        })
        .collect()
}

/// `n` connections each sending a body that never ends (1 KiB every 100 ms).
fn endless_bodies(
    stop: &Arc<AtomicBool>,
    addr: SocketAddr,
    n: usize,
    tally: &Arc<Tally>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..n)
        .map(|_| {
            let (stop, tally) = (Arc::clone(stop), Arc::clone(tally));
            tokio::spawn(async move {
                let chunk = vec![b'a'; 1024];
                while !stop.load(Ordering::Relaxed) {
                    let Ok(mut s) = connect_from(BODIES_FROM, addr).await else {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    };
                    tally.add("bodies");
                    let head = format!("POST /device/logger HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000000\r\n\r\n", basic(0));
                    if s.write_all(head.as_bytes()).await.is_err() {
                        continue;
                    }
                    while !stop.load(Ordering::Relaxed) && s.write_all(&chunk).await.is_ok() {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            })
        })
        .collect()
}

/// Legitimate devices asking for their config.
#[derive(Clone, Copy)]
struct Legit {
    addr: SocketAddr,
    devices: u64,
    /// Requests per second, all connections together.
    rate: u64,
    connections: u64,
    keep_alive: bool,
    /// Central (or the gateway): where the latencies go.
    central: bool,
}

/// Legitimate `/device/config` requests, `rate` per second over `connections`, keep-alive or not.
fn legitimate(stop: &Arc<AtomicBool>, legit: Legit, tally: &Arc<Tally>) -> Vec<tokio::task::JoinHandle<()>> {
    let Legit { addr, devices, rate, connections, keep_alive, central } = legit;
    (0..connections)
        .map(|c| {
            let (stop, tally) = (Arc::clone(stop), Arc::clone(tally));
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 * connections / rate.max(1)));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut stream: Option<TcpStream> = None;
                let mut buf = vec![0u8; 8192];
                let mut i = c;
                while !stop.load(Ordering::Relaxed) {
                    tick.tick().await;
                    let d = (i * 7919) % devices;
                    i += connections;
                    let conn = if keep_alive { "keep-alive" } else { "close" };
                    let request = format!("GET /device/config HTTP/1.1\r\nHost: x\r\nUser-Agent: ESP32HTTPClient\r\nConnection: {conn}\r\nAuthorization: Basic {}\r\n\r\n", basic(d));
                    let t0 = Instant::now();
                    let answered = tokio::time::timeout(Duration::from_secs(10), async {
                        if stream.is_none() {
                            stream = Some(TcpStream::connect(addr).await.ok()?);
                        }
                        let s = stream.as_mut()?;
                        s.write_all(request.as_bytes()).await.ok()?;
                        let mut got = 0;
                        loop {
                            let n = s.read(&mut buf[got..]).await.ok()?;
                            if n == 0 {
                                return None;
                            }
                            got += n;
                            let text = std::str::from_utf8(&buf[..got]).ok()?;
                            if let Some(end) = text.find("\r\n\r\n") {
                                let len: usize = text[..end]
                                    .lines()
                                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length: ").map(str::to_owned))
                                    .and_then(|v| v.trim().parse().ok())?;
                                if got >= end + 4 + len {
                                    return text.starts_with("HTTP/1.1 200").then_some(());
                                }
                            }
                        }
                    })
                    .await;
                    if !keep_alive {
                        stream = None;
                    }
                    match answered {
                        Ok(Some(())) => {
                            let us = t0.elapsed().as_micros() as u32;
                            if central { tally.central_us.lock().push(us) } else { tally.gateway_us.lock().push(us) }
                        }
                        _ => {
                            tally.legit_errors.fetch_add(1, Ordering::Relaxed);
                            stream = None;
                        }
                    }
                }
            })
        })
        .collect()
}

fn random_datagram(rng: &mut fastrand::Rng) -> Vec<u8> {
    let rxpk: Vec<serde_json::Value> = (0..8)
        .map(|_| {
            let mut phy = vec![0x40];
            phy.extend_from_slice(&rng.u32(..).to_le_bytes());
            phy.extend_from_slice(&[0, rng.u8(..), rng.u8(..), 1]);
            phy.extend((0..12).map(|_| rng.u8(..)));
            json!({"stat": 1, "rssi": -90, "lsnr": 1.5, "data": base64::engine::general_purpose::STANDARD.encode(&phy)})
        })
        .collect();
    let mut d = vec![2, rng.u8(..), rng.u8(..), 0, 0xaa, 0x55, 0x5a, 0, 0, 0, 0, 1];
    d.extend_from_slice(json!({"rxpk": rxpk}).to_string().as_bytes());
    d
}

fn pct(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    f64::from(sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]) / 1000.0
}

fn main() {
    let n: u64 = std::env::var("BENCH_DEVICES").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let seconds: u64 = std::env::var("BENCH_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(600);
    let fleet = Fleet::start(n);
    let central = &fleet.central;
    let c = central.addr("http");
    let broker = central.addr("mqtt");
    let (edge, _edge_dir) = fleet.gateway("gw-soak");
    let e = edge.addr("http");
    let udp = edge.addr("udp");
    wait_until("the scope synced", || metric(e, "neosens_edge_devices_cached") == n as f64);
    let (central_pid, edge_pid) = (central.pid(), edge.pid());

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::new());
    println!("neosens attack soak: {n} devices, {seconds} s of floods (central {c}, gateway {e})");
    println!(
        "minute | central RSS MB (min–max) | gateway RSS MB | central config p50/p99 ms | gateway config p50/p99 ms | legit errors"
    );
    let mut samples: Vec<(u64, u64)> = Vec::new();
    runtime.block_on(async {
        let mut tasks = Vec::new();
        let t = Arc::clone(&tally);
        tasks.push(paced(&stop, 200, move |rng| {
            t.add("methods");
            let request = format!("X{}METHOD /device/credentials?mac=02:00:00:00:00:01 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", rng.u32(..));
            tokio::spawn(one_shot(METHODS_FROM, c, request))
        }));
        let t = Arc::clone(&tally);
        tasks.push(paced(&stop, 100, move |rng| {
            t.add("scans");
            let request = format!("GET /device/credentials?mac=02:{:02x}:{:02x}:{:02x}:{:02x}:{:02x} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", rng.u8(..), rng.u8(..), rng.u8(..), rng.u8(..), rng.u8(..));
            tokio::spawn(one_shot(SCANS_FROM, c, request))
        }));
        let t = Arc::clone(&tally);
        tasks.push(paced(&stop, 20, move |rng| {
            t.add("sign_ins");
            let body = json!({"username": format!("admin{}", rng.u8(..)), "password": format!("guess-{}", rng.u32(..))}).to_string();
            let request = format!("POST /api/v1/session HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
            tokio::spawn(one_shot(SIGN_INS_FROM, c, request))
        }));
        tasks.extend(slowloris(SLOWLORIS_FROM, &stop, c, 300, &tally));
        tasks.extend(slowloris(GATEWAY_SLOWLORIS_FROM, &stop, e, 100, &tally));
        tasks.extend(endless_bodies(&stop, c, 20, &tally));
        // Datagrams: a non-blocking socket, sent in bursts of 20 every 10 ms.
        {
            let (stop, t) = (Arc::clone(&stop), Arc::clone(&tally));
            tasks.push(tokio::spawn(async move {
                let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
                let mut rng = fastrand::Rng::new();
                let mut tick = tokio::time::interval(Duration::from_millis(10));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                let mut buf = [0u8; 64];
                while !stop.load(Ordering::Relaxed) {
                    tick.tick().await;
                    for _ in 0..20 {
                        let _ = socket.send_to(&random_datagram(&mut rng), udp).await;
                        t.add("datagrams");
                    }
                    while socket.try_recv_from(&mut buf).is_ok() {}
                }
            }));
        }
        // Forged statuses on central's broker, with device 0's login (the embedded broker has no ACLs).
        {
            let (stop, t) = (Arc::clone(&stop), Arc::clone(&tally));
            tasks.push(tokio::spawn(async move {
                let login = format!("senso_{}", export::mac(0).replace(':', "").to_lowercase());
                let mut options = rumqttc::MqttOptions::new("neOSensor_soak", broker.ip().to_string(), broker.port());
                options.set_credentials(login, export::password(0));
                options.set_max_packet_size(256 * 1024, 256 * 1024);
                let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 1000);
                let poll = tokio::spawn(async move {
                    loop {
                        if eventloop.poll().await.is_err() {
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                });
                let mut rng = fastrand::Rng::new();
                let mut tick = tokio::time::interval(Duration::from_millis(5));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    tick.tick().await;
                    i += 1;
                    let d = rng.u64(..n);
                    let body = json!({"status": "forged", "unitID": export::mac(d), "msg_id": rng.u64(..)}).to_string();
                    if client.try_publish(format!("{}/device", export::topic_of(d)), rumqttc::QoS::AtMostOnce, false, body).is_ok() {
                        t.add("statuses");
                    }
                    if i % 2000 == 0 {
                        let big = format!("{{\"status\":\"{}\",\"unitID\":\"{}\"}}", "x".repeat(60_000), export::mac(d));
                        if client.try_publish(format!("{}/device", export::topic_of(d)), rumqttc::QoS::AtLeastOnce, true, big).is_ok() {
                            t.add("retained");
                        }
                    }
                }
                poll.abort();
            }));
        }
        let devices = n;
        let on_central = Legit { addr: c, devices, rate: 200, connections: 4, keep_alive: true, central: true };
        tasks.extend(legitimate(&stop, on_central, &tally));
        let on_gateway = Legit { addr: e, devices, rate: 100, connections: 2, keep_alive: false, central: false };
        tasks.extend(legitimate(&stop, on_gateway, &tally));

        let started = Instant::now();
        let mut minute = 0u64;
        let (mut c_min, mut c_max, mut e_min, mut e_max) = (u64::MAX, 0, u64::MAX, 0);
        let mut all_central = Vec::new();
        let mut all_gateway = Vec::new();
        let mut sample = tokio::time::interval(Duration::from_secs(10));
        while started.elapsed() < Duration::from_secs(seconds) {
            sample.tick().await;
            let (cr, er) = (rss_kib(central_pid), rss_kib(edge_pid));
            samples.push((cr, er));
            (c_min, c_max, e_min, e_max) = (c_min.min(cr), c_max.max(cr), e_min.min(er), e_max.max(er));
            let elapsed = started.elapsed().as_secs();
            if elapsed / 60 > minute || started.elapsed() >= Duration::from_secs(seconds) {
                minute = elapsed / 60;
                let mut cu = std::mem::take(&mut *tally.central_us.lock());
                let mut gu = std::mem::take(&mut *tally.gateway_us.lock());
                cu.sort_unstable();
                gu.sort_unstable();
                println!(
                    "{:>6} | {:.1}–{:.1} | {:.1}–{:.1} | {:.2} / {:.2} ({} ok) | {:.2} / {:.2} ({} ok) | {}",
                    elapsed / 60,
                    c_min as f64 / 1024.0,
                    c_max as f64 / 1024.0,
                    e_min as f64 / 1024.0,
                    e_max as f64 / 1024.0,
                    pct(&cu, 0.5),
                    pct(&cu, 0.99),
                    cu.len(),
                    pct(&gu, 0.5),
                    pct(&gu, 0.99),
                    gu.len(),
                    tally.legit_errors.load(Ordering::Relaxed),
                );
                all_central.extend(cu);
                all_gateway.extend(gu);
                (c_min, c_max, e_min, e_max) = (u64::MAX, 0, u64::MAX, 0);
            }
        }
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            t.abort();
        }
        all_central.sort_unstable();
        all_gateway.sort_unstable();
        let sent: Vec<String> =
            tally.sent.iter().map(|(k, v)| format!("{k} {}", v.load(Ordering::Relaxed))).collect();
        println!("sent: {}", sent.join(", "));
        let first = samples.first().copied().unwrap_or_default();
        let last = samples.last().copied().unwrap_or_default();
        let peak = samples.iter().fold((0, 0), |(a, b), (c, e)| (a.max(*c), b.max(*e)));
        println!(
            "central RSS: {:.1} MB at the first sample, {:.1} MB at the last, peak {:.1} MB",
            first.0 as f64 / 1024.0,
            last.0 as f64 / 1024.0,
            peak.0 as f64 / 1024.0
        );
        println!(
            "gateway RSS: {:.1} MB at the first sample, {:.1} MB at the last, peak {:.1} MB",
            first.1 as f64 / 1024.0,
            last.1 as f64 / 1024.0,
            peak.1 as f64 / 1024.0
        );
        println!(
            "legitimate /device/config over the whole run: central {} ok, p50 {:.2} ms, p99 {:.2} ms; gateway {} ok, p50 {:.2} ms, p99 {:.2} ms; {} errors",
            all_central.len(),
            pct(&all_central, 0.5),
            pct(&all_central, 0.99),
            all_gateway.len(),
            pct(&all_gateway, 0.5),
            pct(&all_gateway, 0.99),
            tally.legit_errors.load(Ordering::Relaxed)
        );
    });
    for (name, addr) in [("central", c), ("gateway", e)] {
        let text = neosens_runtime::testing::http_get(addr, "/metrics").text();
        for line in text.lines().filter(|l| {
            l.starts_with("neosens_http_connections_refused_total")
                || l.starts_with("neosens_provisioning_requests_total")
                || l.starts_with("neosens_status_dropped_total")
                || l.starts_with("neosens_status_untrusted_msg_id_total")
                || l.starts_with("neosens_edge_lorawan_open_addresses")
                || l.starts_with("neosens_edge_lorawan_dedupe_frames")
                || l.starts_with("neosens_edge_http_connections_refused_total")
        }) {
            println!("{name}: {line}");
        }
    }
    drop(runtime);
}
