//! What the gateway pays per LoRaWAN uplink, end to end, side by side with ChirpStack's
//! `chirpstack-mqtt-forwarder` (4.6.0, built from its public source by
//! `scripts/build-chirpstack-forwarder`): the same Semtech UDP datagrams (8 ABP frames each from
//! 1,000 registered nodes, Cayenne LPP temperature + humidity, ADR off) sent to the real agent
//! and to the forwarder at 50, 250 and 500 datagrams/s, both publishing to one real Mosquitto,
//! after a warm-up round that has each node heard once (steady state: its first status and its
//! daily `DevStatusReq` are behind it). Measured from outside: each process's CPU (user +
//! system, `/proc/<pid>/stat`) from before the first datagram until everything it was sent is
//! acknowledged and on the broker, divided by the uplinks; the broker's CPU over the same
//! window; the messages each put on the broker (counted by a subscriber to `#`); and the
//! downlinks (`PULL_RESP`) the agent sent. Then both sit idle for a minute with the packet
//! forwarder's keep-alives (`PULL_DATA` every 10 s) and their CPU ticks are counted.
//!
//! `cargo bench -p neosens-edge --bench uplink_e2e`. `BENCH_RATES=50,250,500`,
//! `BENCH_SECONDS=30` (per rate and process), `BENCH_IDLE_SECONDS=60`, `BENCH_NODES=1000`,
//! `BENCH_FORWARDER=<path>` (default: where the build script puts it),
//! `BENCH_EDGE_BIN=<path>` (default: the release agent; e.g. the static musl one),
//! `BENCH_CENTRAL_BIN=<path>` (default: the release central, rebuilt if needed).
//! The agent and the forwarder take turns at each rate (never both at once: each has the two
//! cores and the broker to itself while it is measured).

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use neosens_runtime::testing::{Mosquitto, http_json};
use serde_json::json;
use support::{ADMIN, EDGE, Fleet, abp_frame_without_adr, app, metric, nwk};

/// Frames per datagram: a busy forwarder batches what it heard.
const FRAMES: usize = 8;
/// The room the nodes are in: its topics are the agent's uplink messages.
const BASE_TOPIC: &str = "bench/lab/";
/// ChirpStack's topic prefix (EU868).
const FORWARDER_PREFIX: &str = "eu868/";
/// Datagrams per second of the warm-up round.
const WARM_UP_RATE: u64 = 100;
/// How long everything sent may take to be acknowledged and reach the broker.
const DRAIN: Duration = Duration::from_secs(120);

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// CPU ticks (user + system) of a process so far, and the ticks per second.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the process runs");
    // After the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn ticks_per_second() -> f64 {
    let out = std::process::Command::new("getconf").arg("CLK_TCK").output().expect("getconf");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(100.0)
}

/// Polls `condition` until it holds, or panics naming `what` after `timeout`.
fn poll(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(Instant::now() < deadline, "not within {timeout:?}: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Frames as the nodes send them, counters rising, round robin over the nodes.
struct Traffic {
    nodes: u32,
    next: u64,
}

impl Traffic {
    /// The next `count` PUSH_DATA datagrams of gateway `eui`.
    fn datagrams(&mut self, count: usize, eui: [u8; 8]) -> Vec<Vec<u8>> {
        let engine = base64::engine::general_purpose::STANDARD;
        (0..count)
            .map(|d| {
                let rxpk: Vec<_> = (0..FRAMES)
                    .map(|_| {
                        let i = self.next;
                        self.next += 1;
                        let n = (i % u64::from(self.nodes)) as u32;
                        let f_cnt = (i / u64::from(self.nodes)) as u32 + 1;
                        // 21.0 to 27.3 °C, 40 to 71.5 %RH.
                        let payload =
                            [0x01, 0x67, 0x00, 210 + (i % 64) as u8, 0x02, 0x68, 80 + (i % 64) as u8];
                        let bytes = abp_frame_without_adr(n, f_cnt, &payload);
                        json!({"tmst": (i * 1_000) as u32, "chan": 2, "rfch": 0, "freq": 868.5, "stat": 1,
                            "modu": "LORA", "datr": "SF7BW125", "codr": "4/5", "rssi": -80, "lsnr": 5.5,
                            "size": bytes.len(), "data": engine.encode(&bytes)})
                    })
                    .collect();
                let mut datagram = vec![2, (d >> 8) as u8, d as u8, 0];
                datagram.extend_from_slice(&eui);
                datagram.extend_from_slice(json!({"rxpk": rxpk}).to_string().as_bytes());
                datagram
            })
            .collect()
    }
}

/// Messages seen on the broker, by who put them there.
#[derive(Default)]
struct Counts {
    agent: AtomicU64,
    forwarder: AtomicU64,
    /// The forwarder's connection state messages (it connects once it learnt the gateway).
    forwarder_states: AtomicU64,
}

/// Subscribes to everything (QoS 0) and counts.
fn count_messages(broker: SocketAddr) -> Arc<Counts> {
    let counts = Arc::new(Counts::default());
    let mut options = rumqttc::MqttOptions::new("bench-counter", broker.ip().to_string(), broker.port());
    options.set_keep_alive(Duration::from_secs(30));
    let (client, mut connection) = rumqttc::Client::new(options, 1_000);
    let (subscribed, is_subscribed) = std::sync::mpsc::channel();
    let c = Arc::clone(&counts);
    std::thread::spawn(move || {
        for event in connection.iter() {
            match event {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => {
                    let _ = client.subscribe("#", rumqttc::QoS::AtMostOnce);
                }
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) => {
                    let _ = subscribed.send(());
                }
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                    if p.topic.starts_with(BASE_TOPIC) {
                        c.agent.fetch_add(1, Ordering::Relaxed);
                    } else if p.topic.starts_with(FORWARDER_PREFIX) && p.topic.contains("/event/up") {
                        c.forwarder.fetch_add(1, Ordering::Relaxed);
                    } else if p.topic.starts_with(FORWARDER_PREFIX) && p.topic.ends_with("/state/conn") {
                        c.forwarder_states.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(_) => {}
                // The broker stopped (the end of the run); a loss during a run shows as a drain timeout.
                Err(_) => return,
            }
        }
    });
    is_subscribed.recv_timeout(Duration::from_secs(30)).expect("the counter subscribed");
    counts
}

/// One process under test: where its datagrams go and what it answered.
struct Target {
    name: String,
    pid: u32,
    to: SocketAddr,
    socket: UdpSocket,
    eui: [u8; 8],
    push_acks: Arc<AtomicU64>,
    /// `PULL_RESP`s received: the downlinks it sent.
    pull_resps: Arc<AtomicU64>,
}

impl Target {
    fn new(name: &str, pid: u32, to: SocketAddr, eui: [u8; 8]) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (push_acks, pull_resps) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let rx = socket.try_clone().unwrap();
        let (acks, resps) = (Arc::clone(&push_acks), Arc::clone(&pull_resps));
        std::thread::spawn(move || {
            // Only the header is read (a longer datagram is truncated).
            let mut buf = [0u8; 64];
            while let Ok(n) = rx.recv(&mut buf) {
                let counter = match buf[3] {
                    _ if n < 4 => continue,
                    1 => &acks,
                    3 => &resps,
                    _ => continue,
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        });
        Target { name: name.to_owned(), pid, to, socket, eui, push_acks, pull_resps }
    }

    /// The packet forwarder's keep-alive, which also tells ChirpStack's forwarder the gateway.
    fn pull_data(&self) {
        let mut datagram = vec![2, 0, 0, 2];
        datagram.extend_from_slice(&self.eui);
        self.socket.send_to(&datagram, self.to).unwrap();
    }
}

/// How CPU is read: the broker's process, and microseconds per clock tick.
#[derive(Clone, Copy)]
struct Meter {
    broker_pid: u32,
    tick_us: f64,
}

/// What one process cost at one rate.
struct Measure {
    uplinks: u64,
    cpu_us: f64,
    broker_us: f64,
    messages: u64,
    acked: u64,
    downlinks: u64,
}

/// Sends `datagrams` to `target` at `rate` per second, waits until all are acknowledged and
/// their messages are on the broker (`drained`), and measures.
fn run_phase(
    target: &Target,
    datagrams: &[Vec<u8>],
    rate: u64,
    meter: Meter,
    on_broker: impl Fn() -> u64,
    drained: impl Fn() -> bool,
) -> Measure {
    let Meter { broker_pid, tick_us } = meter;
    target.pull_data();
    let (cpu0, broker0, messages0, acks0) =
        (cpu_ticks(target.pid), cpu_ticks(broker_pid), on_broker(), target.push_acks.load(Ordering::Relaxed));
    let downlinks0 = target.pull_resps.load(Ordering::Relaxed);
    let start = Instant::now();
    let mut last_pull = start;
    for (i, datagram) in datagrams.iter().enumerate() {
        let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
        // Pacing the load generator (not waiting for a condition).
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        if last_pull.elapsed() >= Duration::from_secs(10) {
            target.pull_data();
            last_pull = Instant::now();
        }
        target.socket.send_to(datagram, target.to).unwrap();
    }
    let sent = datagrams.len() as u64;
    let acked = || target.push_acks.load(Ordering::Relaxed) - acks0;
    poll(&format!("{}: every datagram acknowledged", target.name), DRAIN, || acked() >= sent);
    poll(&format!("{}: everything on the broker", target.name), DRAIN, &drained);
    let (cpu1, broker1) = (cpu_ticks(target.pid), cpu_ticks(broker_pid));
    let uplinks = sent * FRAMES as u64;
    Measure {
        uplinks,
        cpu_us: (cpu1 - cpu0) as f64 * tick_us / uplinks as f64,
        broker_us: (broker1 - broker0) as f64 * tick_us / uplinks as f64,
        messages: on_broker() - messages0,
        acked: acked(),
        downlinks: target.pull_resps.load(Ordering::Relaxed) - downlinks0,
    }
}

/// The forwarder binary: `BENCH_FORWARDER`, or where `scripts/build-chirpstack-forwarder` puts it.
fn forwarder_binary() -> Option<PathBuf> {
    let path = std::env::var("BENCH_FORWARDER").map(PathBuf::from).unwrap_or_else(|_| {
        let target = Path::new(EDGE).ancestors().nth(2).map(Path::to_path_buf).unwrap_or_default();
        target.join("chirpstack-mqtt-forwarder/release/chirpstack-mqtt-forwarder")
    });
    path.exists().then_some(path)
}

/// Starts ChirpStack's forwarder on a loopback UDP port, publishing to `broker`.
fn start_forwarder(bin: &Path, broker: SocketAddr, dir: &Path) -> (std::process::Child, SocketAddr) {
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = udp.local_addr().unwrap();
    drop(udp);
    let config = dir.join("chirpstack-mqtt-forwarder.toml");
    std::fs::write(
        &config,
        format!(
            "[logging]\nlevel=\"warn\"\n[backend]\nenabled=\"semtech_udp\"\n[backend.semtech_udp]\nbind=\"{addr}\"\n\
             [mqtt]\ntopic_prefix=\"eu868\"\nserver=\"tcp://{broker}\"\n"
        ),
    )
    .unwrap();
    let child = std::process::Command::new(bin)
        .args(["-c", config.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("starting chirpstack-mqtt-forwarder");
    (child, addr)
}

/// Central with the nodes registered, and the agent of a gateway scoped to their building.
fn start_agent(
    broker: &Mosquitto,
    nodes: u32,
    bin: &Path,
) -> (Fleet, neosens_runtime::testing::ServiceProcess, tempfile::TempDir) {
    let url = broker.url();
    let fleet = Fleet::start_with(0, &[("NEOSENS_MQTT_URL", &url)]);
    let c = fleet.central.addr("http");
    let post = |path: &str, body: serde_json::Value| {
        let (status, answer) = http_json(c, "POST", path, Some(ADMIN), Some(&body));
        assert_eq!(status, 201, "{path}: {answer}");
        answer
    };
    let building = post("/api/v1/buildings", json!({"name": "bench"}));
    let room = post("/api/v1/rooms", json!({"building": building["id"], "name": "lab"}));
    post("/api/v1/device-types", json!({"name": "lorawan_node", "orders": []}));
    for n in 0..nodes {
        post(
            "/api/v1/devices",
            json!({"uid": format!("70B3D57E{n:08X}"), "type": "lorawan_node", "rooms": [room["id"]],
                "lorawan": {"dev_addr": format!("{:08X}", 0x2600_0000 + n), "nwk_s_key": hex(&nwk(n)),
                    "app_s_key": hex(&app(n)), "codec": "cayenne_lpp"}}),
        );
    }
    let (edge, dir) = fleet.gateway_scoped(
        bin,
        "gw-bench",
        json!({"buildings": [building["id"]]}),
        &[("NEOSENS_EDGE_MQTT_URL", &url)],
    );
    let e = edge.addr("http");
    poll("the nodes synced to the gateway", Duration::from_secs(60), || {
        metric(e, "neosens_edge_devices_cached") == f64::from(nodes)
    });
    poll("the gateway's uplink connected", Duration::from_secs(30), || {
        metric(e, "neosens_edge_uplink_connected") == 1.0
    });
    (fleet, edge, dir)
}

fn print_row(rate: u64, agent: &Measure, forwarder: Option<&Measure>) {
    let per = |m: &Measure| m.messages as f64 / m.uplinks as f64;
    match forwarder {
        Some(f) => println!(
            "| {rate} | {:.1} µs | {:.1} µs | {:.2}× | {:.1} µs | {:.1} µs | {:.2} | {:.2} | {} |",
            agent.cpu_us,
            f.cpu_us,
            agent.cpu_us / f.cpu_us,
            agent.broker_us,
            f.broker_us,
            per(agent),
            per(f),
            agent.downlinks
        ),
        None => println!(
            "| {rate} | {:.1} µs | – | – | {:.1} µs | – | {:.2} | – | {} |",
            agent.cpu_us,
            agent.broker_us,
            per(agent),
            agent.downlinks
        ),
    }
    for (who, m) in std::iter::once(("agent", agent)).chain(forwarder.map(|f| ("forwarder", f))) {
        if m.acked < m.uplinks / FRAMES as u64 {
            println!("  ({who}: only {} of {} datagrams acknowledged)", m.acked, m.uplinks / FRAMES as u64);
        }
    }
}

/// Both processes at one rate, the forwarder first, on the same datagrams.
fn measure_rate(
    rate: u64,
    datagrams: &[Vec<u8>],
    agent: &Target,
    agent_http: SocketAddr,
    forwarder: Option<&Target>,
    counts: &Counts,
    meter: Meter,
) -> (Measure, Option<Measure>) {
    let f = forwarder.map(|t| {
        let mut same = datagrams.to_vec();
        for d in &mut same {
            d[4..12].copy_from_slice(&t.eui);
        }
        let expected = counts.forwarder.load(Ordering::Relaxed) + (same.len() * FRAMES) as u64;
        run_phase(
            t,
            &same,
            rate,
            meter,
            || counts.forwarder.load(Ordering::Relaxed),
            || counts.forwarder.load(Ordering::Relaxed) >= expected,
        )
    });
    // Every message the broker acknowledged, then the subscriber caught up (it lags the
    // broker's PUBACK by a delivery: settled when its count stops moving).
    let last_seen = AtomicU64::new(u64::MAX);
    let drained = || {
        let outbox_empty = metric(agent_http, "neosens_edge_outbox_depth") == 0.0;
        let seen = counts.agent.load(Ordering::Relaxed);
        outbox_empty && last_seen.swap(seen, Ordering::Relaxed) == seen
    };
    let a = run_phase(agent, datagrams, rate, meter, || counts.agent.load(Ordering::Relaxed), drained);
    (a, f)
}

/// CPU ticks of each process over `seconds` with nothing to send but the packet forwarders'
/// keep-alives, once the agent settled what the last run left (its removals' commit, a second
/// after the link went quiet).
fn idle_ticks(targets: &[&Target], seconds: u64) {
    std::thread::sleep(Duration::from_secs(3));
    let before: Vec<u64> = targets.iter().map(|t| cpu_ticks(t.pid)).collect();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(seconds) {
        for t in targets {
            t.pull_data();
        }
        std::thread::sleep(Duration::from_secs(10).min(Duration::from_secs(seconds)));
    }
    for (t, before) in targets.iter().zip(before) {
        println!(
            "idle {seconds} s with PULL_DATA every 10 s: {} {} CPU ticks",
            t.name,
            cpu_ticks(t.pid) - before
        );
    }
}

fn main() {
    let rates: Vec<u64> = std::env::var("BENCH_RATES")
        .unwrap_or_else(|_| "50,250,500".into())
        .split(',')
        .filter_map(|r| r.trim().parse().ok())
        .collect();
    let seconds = env("BENCH_SECONDS", 30);
    let idle_seconds = env("BENCH_IDLE_SECONDS", 60);
    let nodes = env("BENCH_NODES", 1_000) as u32;
    let edge_bin = std::env::var("BENCH_EDGE_BIN").map(PathBuf::from).unwrap_or_else(|_| EDGE.into());

    let broker = Mosquitto::start("max_queued_messages 1000000\n");
    let meter =
        Meter { broker_pid: broker.pid().expect("mosquitto runs"), tick_us: 1e6 / ticks_per_second() };
    let counts = count_messages(broker.addr());
    let (_fleet, edge, _edge_dir) = start_agent(&broker, nodes, &edge_bin);
    let e = edge.addr("http");
    let agent = Target::new("neosens-edge", edge.pid(), edge.addr("udp"), [0xaa, 0x55, 0x5a, 0, 0, 0, 0, 1]);
    let forwarder_dir = tempfile::tempdir().unwrap();
    let forwarder = forwarder_binary().map(|bin| {
        let (child, addr) = start_forwarder(&bin, broker.addr(), forwarder_dir.path());
        (child, Target::new("chirpstack-mqtt-forwarder", 0, addr, [0xaa, 0x55, 0x5a, 0, 0, 0, 0, 2]))
    });
    let mut forwarder = forwarder.map(|(child, mut t)| {
        t.pid = child.id();
        // It connects to the broker only once a PULL_DATA told it the gateway.
        poll("the forwarder connected", Duration::from_secs(30), || {
            t.pull_data();
            counts.forwarder_states.load(Ordering::Relaxed) > 0
        });
        (child, t)
    });
    if forwarder.is_none() {
        println!(
            "(no chirpstack-mqtt-forwarder: scripts/build-chirpstack-forwarder builds it; the agent alone)"
        );
    }

    println!(
        "LoRaWAN uplinks end to end: {nodes} ABP nodes, {FRAMES} frames per datagram, {seconds} s per rate and process, agent {}",
        edge_bin.display()
    );
    println!(
        "| datagrams/s (×{FRAMES}) | neosens-edge CPU/uplink | forwarder CPU/uplink | ratio | Mosquitto (edge) | Mosquitto (forwarder) | messages/uplink (edge) | (forwarder) | downlinks (edge) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut traffic = Traffic { nodes, next: 0 };
    // Steady state: every node heard once before the measure (its first status, the daily
    // `DevStatusReq` a node gets at its first uplink), as on a gateway that has been running.
    let warm_up = traffic.datagrams((nodes as usize).div_ceil(FRAMES), agent.eui);
    let forwarder_target = forwarder.as_ref().map(|(_, t)| t);
    let (w, _) = measure_rate(WARM_UP_RATE, &warm_up, &agent, e, forwarder_target, &counts, meter);
    println!("(warm-up, not measured: one uplink per node, {} downlinks from the agent)", w.downlinks);
    for rate in rates {
        let datagrams = traffic.datagrams((rate * seconds) as usize, agent.eui);
        let (a, f) = measure_rate(rate, &datagrams, &agent, e, forwarder_target, &counts, meter);
        print_row(rate, &a, f.as_ref());
    }
    let targets: Vec<&Target> = std::iter::once(&agent).chain(forwarder.as_ref().map(|(_, t)| t)).collect();
    idle_ticks(&targets, idle_seconds);
    if let Some((child, _)) = &mut forwarder {
        let _ = child.kill();
        let _ = child.wait();
    }
}
