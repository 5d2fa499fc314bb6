//! The gateway's part of the attack suite (docs/security.md), against the real binary: a flood
//! of LoRaWAN frames with random device addresses on the packet-forwarder port leaves no state
//! behind and keeps the agent's memory under its bound, while the scope's node still gets
//! through; `/metrics` on the LAN listener can require a token.

mod common;

use std::net::UdpSocket;

use common::{enrolled_gateway, register_vector_node, start_central, start_edge};
use neosens_runtime::testing::{DEADLINE, raw_http, wait_until};
use serde_json::json;

/// Resident memory the agent may reach under the flood (it idles at ~12 MB; the dedupe window's
/// bound alone is ~2 MiB).
const RSS_BOUND_KB: u64 = 64 * 1024;

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// A PUSH_DATA datagram of 8 unconfirmed uplinks of the right shape: random addresses and
/// counters, a MIC that matches nothing.
fn random_push(rng: &mut fastrand::Rng, token: u16) -> Vec<u8> {
    use base64::Engine;
    let rxpk: Vec<serde_json::Value> = (0..8)
        .map(|_| {
            let mut phy = vec![0x40];
            phy.extend_from_slice(&rng.u32(..).to_le_bytes());
            phy.push(0x00);
            phy.extend_from_slice(&rng.u16(..).to_le_bytes());
            phy.push(1);
            phy.extend((0..12).map(|_| rng.u8(..)));
            json!({"stat": 1, "rssi": -90, "lsnr": 1.5, "data": base64::engine::general_purpose::STANDARD.encode(&phy)})
        })
        .collect();
    let [hi, lo] = token.to_be_bytes();
    let mut d = vec![2, hi, lo, 0x00, 0xaa, 0x55, 0x5a, 0, 0, 0, 0, 1];
    d.extend_from_slice(json!({"rxpk": rxpk}).to_string().as_bytes());
    d
}

#[test]
fn a_flood_of_random_dev_addrs_leaves_no_state_and_memory_bounded() {
    let central_dir = tempfile::tempdir().unwrap();
    // No broker: the outbox keeps what the node sends.
    let central = start_central(central_dir.path(), 0, "mqtt://127.0.0.1:1");
    let c = central.addr("http");
    let building = register_vector_node(c);
    let edge_dir = enrolled_gateway(c, "gw-irit2", json!({"buildings": [building.id]}));
    let config = edge_dir.path().join("edge.toml");
    std::fs::write(
        &config,
        "[central]\nsync_wait_s = 2\n[http]\nmetrics_token = \"scrape-token-0123456789\"\n",
    )
    .unwrap();
    let edge = start_edge(edge_dir.path(), &config, "mqtt://127.0.0.1:1");
    let e = edge.addr("http");
    let udp = edge.addr("udp");

    // /metrics on the devices' LAN wants the token.
    let scrape = |auth: &str| {
        raw_http(e, format!("GET /metrics HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n").as_bytes())
    };
    assert_eq!(scrape("").status, 401);
    assert_eq!(scrape("Authorization: Bearer scrape-token-0123456789\r\n").status, 200);
    let metrics_token = "Bearer scrape-token-0123456789";
    let m = |name: &str| {
        let text = scrape(&format!("Authorization: {metrics_token}\r\n")).text();
        text.lines()
            .find_map(|l| {
                l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')).and_then(|v| v.parse::<f64>().ok())
            })
            .unwrap_or(-1.0)
    };
    wait_until("the node synced to the gateway", || m("neosens_edge_devices_cached") == 1.0);

    // The flood: 100,000 frames in 12,500 datagrams, as fast as one socket sends them; PUSH_ACKs
    // are read on the way (a forwarder waits for none, nor does this one).
    let forwarder = UdpSocket::bind("127.0.0.1:0").unwrap();
    forwarder.set_nonblocking(true).unwrap();
    let mut rng = fastrand::Rng::with_seed(14);
    let mut acks = 0u64;
    let mut buf = [0u8; 64];
    let before = rss_kb(edge.pid());
    let mut peak = before;
    for token in 0..12_500u16 {
        let _ = forwarder.send_to(&random_push(&mut rng, token), udp);
        while forwarder.recv_from(&mut buf).is_ok() {
            acks += 1;
        }
        if token % 500 == 0 {
            peak = peak.max(rss_kb(edge.pid()));
        }
    }
    forwarder.set_nonblocking(false).unwrap();
    forwarder.set_read_timeout(Some(std::time::Duration::from_millis(200))).unwrap();
    while forwarder.recv_from(&mut buf).is_ok() {
        acks += 1;
    }
    peak = peak.max(rss_kb(edge.pid()));
    let unknown = "neosens_edge_lorawan_frames_total{outcome=\"unknown_dev_addr\"}";
    assert!(m(unknown) > 0.0, "the flood reached the pipeline");
    assert!(acks > 0, "datagrams were acknowledged");
    assert!(peak < RSS_BOUND_KB, "RSS {before} kB before, peak {peak} kB: over the {RSS_BOUND_KB} kB bound");
    assert_eq!(m("neosens_edge_lorawan_open_addresses"), 0.0, "no session state for unknown addresses");
    assert!(m("neosens_edge_lorawan_dedupe_frames") <= 4096.0);

    // The node of the scope still gets through (public vector 1).
    let mut datagram = vec![2, 0x42, 0x17, 0x00, 0xaa, 0x55, 0x5a, 0, 0, 0, 0, 1];
    datagram.extend_from_slice(
        json!({"rxpk": [{"stat": 1, "rssi": -61, "lsnr": 7.2, "data": "QPF9vkkAAgABlUN4disR/w0="}]})
            .to_string()
            .as_bytes(),
    );
    forwarder.set_read_timeout(Some(DEADLINE)).unwrap();
    forwarder.send_to(&datagram, udp).unwrap();
    let decoded = "neosens_edge_lorawan_frames_total{outcome=\"decoded\"}";
    // (The gauge is set once the datagram's batch is stored, just after the frame is counted.)
    wait_until("the node's frame decoded, its session the only one open", || {
        m(decoded) == 1.0 && m("neosens_edge_lorawan_open_addresses") == 1.0
    });
    eprintln!("flood: {acks} PUSH_ACKs, RSS {before} kB before, peak {peak} kB (bound {RSS_BOUND_KB} kB)");
}
