//! CPU per LoRaWAN uplink, from the UDP datagram to the outbox record (budget < 20 µs on x86-64):
//! datagram parsing, base64, PHYPayload parse, session lookup by DevAddr in redb, counter rebuild,
//! MIC, decryption, Cayenne decoding, JSON readings and status, and the durable append (readings
//! and frame counters in one transaction per datagram).
//!
//! `cargo bench -p neosens-edge --bench uplink`; `BENCH_NODES`, `BENCH_DATAGRAMS`, `BENCH_FRAMES`
//! (frames per datagram: forwarders batch what they heard) and `BENCH_BURST` (datagrams waiting
//! together, stored in one transaction; 1 = a commit per datagram) change the load.

mod support;

use std::sync::Arc;
use std::time::Instant;

use base64::Engine;
use neosens_edge::cache::Cache;
use neosens_edge::lorawan::{LoraStats, Pipeline, frame};
use neosens_edge::outbox::{Limits, Outbox};
use neosens_protocol::ids::{BuildingId, DeviceId, DeviceTypeId, RoomId};
use neosens_protocol::sync::{
    BatchKind, Change, DeviceRecord, LorawanSession, RoomRecord, SyncBatch, WireUid,
};
use neosens_runtime::keys::Keys;
use support::{abp_frame, abp_frame_confirmed, app, nwk};

const BUDGET_US: f64 = 20.0;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// CPU time of this process so far, microseconds (user + system, nanosecond clock).
fn cpu_us() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    t.tv_sec as f64 * 1e6 + t.tv_nsec as f64 / 1e3
}

fn main() {
    let nodes = env("BENCH_NODES", 1_000) as u32;
    let datagrams = env("BENCH_DATAGRAMS", 2_000);
    let per_datagram = env("BENCH_FRAMES", 8);
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let keys = Keys::from_bytes(&[7; 32], &[8; 32], ring::rand::SystemRandom::new());
    let room = RoomId::from_bytes([3; 16]);
    let mut changes = vec![Change::UpsertRoom(RoomRecord {
        id: room,
        building: BuildingId::from_bytes([2; 16]),
        name: "302".into(),
        base_topic: "u4/302".into(),
    })];
    for n in 0..nodes {
        let mut idb = [0u8; 16];
        idb[..4].copy_from_slice(&n.to_be_bytes());
        let id = DeviceId::from_bytes(idb);
        let seal = |k: [u8; 16], which: &str| {
            keys.seal(&k, &neosens_protocol::sync::lorawan_key_context(id.to_bytes(), which)).unwrap()
        };
        changes.push(Change::UpsertDevice(Box::new(DeviceRecord {
            id,
            uid: WireUid::Lorawan(neosens_protocol::DevEui::from_be_bytes([
                0x70,
                0xb3,
                0xd5,
                0x7e,
                0,
                0,
                (n >> 8) as u8,
                n as u8,
            ])),
            device_type: DeviceTypeId::from_bytes([9; 16]),
            rooms: vec![room],
            enabled: true,
            config_body: "{}".into(),
            mqtt: None,
            login: format!("lorawan_{n}"),
            secret_hash: [0; 32],
            credentials_delivered: true,
            staged_secret: None,
            lorawan: Some(LorawanSession {
                dev_addr: (0x2600_0000 + n).into(),
                nwk_s_key: seal(nwk(n), "nwk"),
                app_s_key: seal(app(n), "app"),
                f_cnt_up: 0,
                relax_f_cnt: false,
                codec: "cayenne_lpp".into(),
            }),
        })));
    }
    cache.apply(&SyncBatch { revision: 1, kind: BatchKind::Snapshot, more: false, changes }, 1).unwrap();
    let outbox =
        Outbox::open(cache.database(), Limits { max_messages: 10_000_000, max_age_ms: u64::MAX / 2 })
            .and_then(|o| o.with_journal(&dir.path().join(neosens_edge::outbox::JOURNAL_FILE)))
            .unwrap();
    let stats = Arc::new(LoraStats::default());
    let keys_for_bench = Keys::from_bytes(&[7; 32], &[8; 32], ring::rand::SystemRandom::new());
    let cache_for_bench = cache.clone();
    let pipeline = Pipeline::new(cache, Arc::new(keys), outbox.clone(), Arc::clone(&stats));

    // Frames as the nodes send them: temperature and humidity in Cayenne LPP, counters rising.
    let payload = [0x01, 0x67, 0x01, 0x10, 0x02, 0x68, 0x5a];
    let total = datagrams * per_datagram;
    let mut all = Vec::with_capacity(datagrams as usize);
    let mut frames: Vec<Vec<u8>> = Vec::new();
    for d in 0..datagrams {
        let mut rxpk = Vec::new();
        for f in 0..per_datagram {
            let i = d * per_datagram + f;
            let n = (i % u64::from(nodes)) as u32;
            let f_cnt = (i / u64::from(nodes)) as u32 + 1;
            let bytes = abp_frame(n, f_cnt, &payload);
            frames.push(bytes.clone());
            rxpk.push(serde_json::json!({"tmst": i, "freq": 868.1, "stat": 1, "datr": "SF7BW125", "rssi": -80, "lsnr": 5.5,
                "data": base64::engine::general_purpose::STANDARD.encode(&bytes)}));
        }
        let mut datagram = vec![2, (d >> 8) as u8, d as u8, 0, 0xaa, 0x55, 0x5a, 0, 0, 0, 0, 1];
        datagram.extend_from_slice(serde_json::json!({"rxpk": rxpk}).to_string().as_bytes());
        all.push(datagram);
    }

    // The frame alone (parse, MIC, decryption), sessions already open: what the radio side costs.
    let sessions: std::collections::HashMap<u32, Arc<frame::NodeSession>> = (0..nodes)
        .map(|n| {
            let record = cache_for_bench.nodes_by_dev_addr(0x2600_0000 + n).unwrap().remove(0).0;
            (
                0x2600_0000 + n,
                Arc::new(
                    frame::NodeSession::open(&record, None, frame::DEFAULT_STATUS_EVERY, &keys_for_bench)
                        .unwrap(),
                ),
            )
        })
        .collect();
    let cpu_frames = cpu_us();
    for phy in &frames {
        let uplink = frame::decode(phy, |addr| {
            Ok(frame::Candidates::from_iter([frame::Candidate {
                node: Arc::clone(&sessions[&addr]),
                last: None,
            }]))
        });
        assert!(uplink.is_ok());
    }
    let frame_us = (cpu_us() - cpu_frames) / frames.len() as f64;

    // As the listener sees them under load: datagrams waiting together are stored together.
    let burst = env("BENCH_BURST", 16) as usize;
    let cpu0 = cpu_us();
    let t0 = Instant::now();
    for chunk in all.chunks(burst) {
        let refs: Vec<&[u8]> = chunk.iter().map(Vec::as_slice).collect();
        pipeline.handle_batch(&refs);
    }
    let wall = t0.elapsed();
    let cpu = cpu_us() - cpu0;
    let decoded = stats.frames.lock().get("decoded").copied().unwrap_or(0);
    assert_eq!(decoded, total, "every frame decoded: {:?}", stats.frames.lock());
    let (depth, _) = outbox.depth(0).unwrap();
    let per_uplink = cpu / total as f64;
    println!(
        "neosens-edge LoRaWAN uplink benchmark ({nodes} nodes, {datagrams} datagrams × {per_datagram} frames, {burst} datagrams per transaction)"
    );
    println!(
        "decoded {decoded} uplinks → {depth} outbox records (2 readings each; a status with a node's first uplink)"
    );
    println!(
        "CPU: {:.1} µs per uplink, datagram to outbox record (budget < {BUDGET_US} µs): {}",
        per_uplink,
        if per_uplink < BUDGET_US { "ok" } else { "OVER" }
    );
    println!("of which the frame alone (parse, MIC, decryption): {frame_us:.1} µs");
    println!(
        "wall: {:.2} s, {:.0} uplinks/s (durable commits included)",
        wall.as_secs_f64(),
        total as f64 / wall.as_secs_f64()
    );
    downlinks(&pipeline, &stats, nodes, (datagrams * per_datagram / u64::from(nodes)) as u32 + 1, burst);
    joins(&pipeline, &stats, &cache_for_bench, &keys_for_bench, nodes, burst);
}

/// CPU per OTAA join: every node joins (its credentials synced first), 8 join requests per
/// datagram, each checked, answered and its session stored with the batch.
fn joins(pipeline: &Pipeline, stats: &LoraStats, cache: &Cache, keys: &Keys, nodes: u32, burst: usize) {
    let app_key = |n: u32| {
        let mut k = [0x33; 16];
        k[..4].copy_from_slice(&n.to_be_bytes());
        k
    };
    let dev_eui = |n: u32| [0x70, 0xb3, 0xd5, 0x7e, 0, 0, (n >> 8) as u8, n as u8];
    let changes = (0..nodes)
        .map(|n| {
            let mut idb = [0u8; 16];
            idb[..4].copy_from_slice(&n.to_be_bytes());
            let id = DeviceId::from_bytes(idb);
            let context = neosens_protocol::sync::lorawan_key_context(id.to_bytes(), "appkey");
            Change::SetOtaa(
                id,
                Some(neosens_protocol::sync::OtaaRecord {
                    join_eui: [1; 8],
                    app_key: keys.seal(&app_key(n), &context).unwrap(),
                    codec: "cayenne_lpp".into(),
                    last_join: None,
                }),
            )
        })
        .collect();
    cache.apply(&SyncBatch { revision: 2, kind: BatchKind::Delta, more: false, changes }, 2).unwrap();
    let all: Vec<Vec<u8>> = (0..nodes)
        .collect::<Vec<_>>()
        .chunks(8)
        .enumerate()
        .map(|(t, ns)| {
            let requests = ns.iter().map(|n| {
                let keys = neosens_lora_node::otaa::OtaaKeys {
                    dev_eui: dev_eui(*n),
                    join_eui: [1; 8],
                    app_key: app_key(*n),
                };
                neosens_lora_node::otaa::join_request(&keys, 7)
            });
            datagram_of(requests, t as u16)
        })
        .collect();
    let cpu0 = cpu_us();
    let sent = handle_in_bursts(pipeline, &all, burst);
    let cpu = cpu_us() - cpu0;
    let accepted = stats.frames.lock().get("join_accepted").copied().unwrap_or(0);
    println!(
        "OTAA join: {:.1} µs per join request answered ({accepted} accepted, {sent} join-accepts)",
        cpu / f64::from(nodes)
    );
}

/// Hands the datagrams to the pipeline `burst` at a time; the downlinks they gave.
fn handle_in_bursts(pipeline: &Pipeline, all: &[Vec<u8>], burst: usize) -> usize {
    let mut sent = 0;
    for chunk in all.chunks(burst) {
        let with: Vec<(&[u8], Option<std::net::SocketAddr>)> =
            chunk.iter().map(|d| (d.as_slice(), None)).collect();
        sent += pipeline.handle_datagrams(&with).downlinks.len();
    }
    sent
}

/// One datagram of `per` frames from consecutive nodes, counter `f_cnt`.
fn datagram_of(frames: impl Iterator<Item = Vec<u8>>, token: u16) -> Vec<u8> {
    let rxpk: Vec<_> = frames
        .enumerate()
        .map(|(i, bytes)| {
            serde_json::json!({"tmst": 1_000_000 + i, "freq": 868.1, "stat": 1, "datr": "SF7BW125", "rssi": -80,
                "lsnr": 5.5, "data": base64::engine::general_purpose::STANDARD.encode(&bytes)})
        })
        .collect();
    let mut d = vec![2, (token >> 8) as u8, token as u8, 0, 0xaa, 0x55, 0x5a, 0, 0, 0, 0, 1];
    d.extend_from_slice(serde_json::json!({"rxpk": rxpk}).to_string().as_bytes());
    d
}

/// CPU per uplink that gets a downlink: confirmed uplinks and their ACKs, then uplinks that
/// carry each node's queued order (frames of 8 per datagram, `burst` datagrams per store),
/// through the forwarder's downlink path (its `PULL_DATA` first).
fn downlinks(pipeline: &Pipeline, stats: &LoraStats, nodes: u32, first_f_cnt: u32, burst: usize) {
    let path: std::net::SocketAddr = "127.0.0.1:41700".parse().unwrap();
    pipeline.handle_datagrams(&[(&[2, 0, 1, 2, 0xaa, 0x55, 0x5a, 0, 0, 0, 0, 1], Some(path))]);
    let payload = [0x01, 0x67, 0x01, 0x10, 0x02, 0x68, 0x5a];
    let run = |label: &str, confirmed: bool, f_cnt: u32, queue_orders: bool| {
        let all: Vec<Vec<u8>> = (0..nodes)
            .collect::<Vec<_>>()
            .chunks(8)
            .enumerate()
            .map(|(t, ns)| {
                datagram_of(ns.iter().map(|n| abp_frame_confirmed(*n, f_cnt, &payload, confirmed)), t as u16)
            })
            .collect();
        let cpu0 = cpu_us();
        if queue_orders {
            for n in 0..nodes {
                let dev_eui = format!("70b3d57e0000{:04x}", n & 0xffff);
                let command =
                    neosens_edge::lorawan::orders::parse_command(dev_eui, br#"{"data":"0a0b","port":10}"#);
                stats.orders.queue(command.unwrap(), Instant::now());
            }
        }
        let sent = handle_in_bursts(pipeline, &all, burst);
        let cpu = cpu_us() - cpu0;
        println!(
            "{label}: {:.1} µs per uplink with its downlink ({sent} PULL_RESPs for {nodes} uplinks)",
            cpu / f64::from(nodes)
        );
    };
    run("confirmed uplink + ACK", true, first_f_cnt, false);
    run("uplink + queued order (queueing included)", false, first_f_cnt + 1, true);
    println!("downlinks by outcome: {:?}", stats.downlinks.lock());
}
