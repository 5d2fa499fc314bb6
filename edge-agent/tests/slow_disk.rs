//! A slow disk must not stall the gateway: its runtime has one async worker, and a commit on a
//! tired SD card takes a second or more. While the cache commits a first-time delivery (central
//! is down, the gateway hands the staged password over itself), `/healthz` and the packet
//! forwarder's `PULL_ACK`s keep coming; the delivery itself is answered once it is stored.
//! Before storage work moved to the blocking pool, the delivery's commit ran on the worker.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::client::wire::LegacyCredentials;
use common::client::{ApiClient, parse_bytes};
use common::disk::TestDisk;
use common::{enrolled_gateway, metric, start_central};
use neosens_edge::cache::Cache;
use neosens_runtime::testing::{Mosquitto, raw_http, wait_until};
use serde_json::json;

/// The commit time of the slow disk.
const COMMIT: Duration = Duration::from_millis(1500);
/// Far below one commit: an answer that waited for the disk cannot come in under it.
const ANSWER_BOUND: Duration = Duration::from_millis(500);
const MAC: &str = "24:0a:c4:00:00:0a";

/// A PULL_DATA round trip: how long the agent took to answer it.
fn pull(udp: &UdpSocket, agent: SocketAddr, token: u16) -> Duration {
    let [hi, lo] = token.to_be_bytes();
    let started = Instant::now();
    udp.send_to(&[2, hi, lo, 0x02, 0xaa, 0x55, 0x5a, 0, 0, 0, 0, 1], agent).unwrap();
    let mut buf = [0u8; 64];
    let (n, _) = udp.recv_from(&mut buf).expect("a PULL_ACK");
    assert_eq!(&buf[..n], &[2, hi, lo, 0x04]);
    started.elapsed()
}

#[test]
fn health_and_pull_acks_answer_while_the_disk_is_slow() {
    // Central and its broker, a device in a room, the gateway enrolled for its building.
    let mosquitto = Mosquitto::start("");
    let central_dir = tempfile::tempdir().unwrap();
    let central = start_central(central_dir.path(), 0, &mosquitto.url());
    let c = central.addr("http");
    let admin = ApiClient::admin(c);
    let building = admin.create_building(json!({"name": "IRIT2"})).expect("building IRIT2");
    let room = admin.create_room(json!({"building": building.id, "name": "366"})).expect("room 366");
    admin.create_device_type(json!({"name": "esp32"})).expect("type esp32");
    admin.create_device(json!({"uid": MAC, "type": "esp32", "rooms": [room.id]})).expect("the device");
    let gateway_dir = enrolled_gateway(c, "gw-slow", json!({"buildings": [building.id]}));

    // The agent, in this process, on one async worker and a disk that can turn slow.
    let (disk, control) = TestDisk::new();
    let cache = Cache::open_on(disk).unwrap();
    let udp_port = neosens_runtime::testing::free_port();
    let mut config = neosens_edge::Config::default();
    config.storage.data_dir = gateway_dir.path().to_owned();
    config.lorawan.udp_bind = Some(SocketAddr::from(([127, 0, 0, 1], udp_port)));
    config.central.timeout_ms = 500;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let agent = listener.local_addr().unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let task = runtime.spawn(neosens_edge::run_on(Arc::new(config), cache, listener, shutdown.clone()));
    wait_until("the device synced to the gateway", || {
        std::net::TcpStream::connect(agent).is_ok() && metric(agent, "neosens_edge_devices_cached") == 1.0
    });

    // Central goes away: the gateway delivers the staged password itself, a slow commit.
    drop(central);
    control.delay_ms.store(COMMIT.as_millis() as u64, Ordering::SeqCst);
    let delivery = std::thread::spawn(move || {
        let request =
            format!("GET /device/credentials?mac={MAC} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let started = Instant::now();
        let answer = raw_http(agent, request.as_bytes());
        (answer.status, answer.text(), started.elapsed())
    });
    wait_until("a commit in progress", || control.syncing.load(Ordering::SeqCst) > 0);

    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let forwarder = SocketAddr::from(([127, 0, 0, 1], udp_port));
    let mut slowest = Duration::ZERO;
    for token in 0..5u16 {
        let started = Instant::now();
        assert_eq!(
            raw_http(agent, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").status,
            200
        );
        slowest = slowest.max(started.elapsed()).max(pull(&udp, forwarder, token));
    }
    assert!(
        control.syncing.load(Ordering::SeqCst) > 0,
        "the answers were measured while the commit was in progress"
    );
    assert!(slowest < ANSWER_BOUND, "health + PULL_ACK took {slowest:?} behind a {COMMIT:?} commit");

    // The delivery was answered once stored, with the password.
    let (status, body, took) = delivery.join().unwrap();
    assert_eq!(status, 200, "{body}");
    let answer: LegacyCredentials = parse_bytes("the delivery", body.as_bytes());
    assert!(answer.password.as_deref().is_some_and(|p| !p.is_empty()), "{body}");
    assert!(took >= COMMIT, "answered after its commit ({took:?})");
    shutdown.cancel();
    runtime.block_on(task).unwrap().unwrap();
}
