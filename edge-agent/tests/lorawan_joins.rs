//! OTAA joins at the pipeline, over a real database: the public join-request vector
//! (`spec/lorawan-vectors.md`) answered with a join-accept in RX1 (`tmst` + 5 s) that the node
//! reads into the same session the gateway keeps; the node's next uplink decoded with it and
//! reported; and each reason a join request goes unanswered — unknown DevEUI, another JoinEUI,
//! a MIC that fails, no downlink path, and a DevNonce replayed after a restart of the agent.

use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine;
use neosens_edge::cache::Cache;
use neosens_edge::lorawan::{LoraStats, Pipeline};
use neosens_edge::outbox::{Limits, Outbox};
use neosens_edge::self_test::{NODE_ROOM, room_snapshot};
use neosens_lora_node::otaa::{self, OtaaKeys};
use neosens_protocol::ids::{DeviceId, DeviceTypeId};
use neosens_protocol::sync::{BatchKind, Change, DeviceRecord, OtaaRecord, SyncBatch, WireUid};
use neosens_runtime::keys::Keys;
use serde_json::json;

/// The public join request: JoinEUI AA13693363343639, DevEUI 3331383274356905, DevNonce 0x8904.
const JOIN_REQUEST: &str = "0039363463336913AA05693574323831330489C65B1304";
const KEYS: OtaaKeys = OtaaKeys {
    dev_eui: [0x33, 0x31, 0x38, 0x32, 0x74, 0x35, 0x69, 0x05],
    join_eui: [0xaa, 0x13, 0x69, 0x33, 0x63, 0x34, 0x36, 0x39],
    app_key: [0x98, 0x92, 0x9b, 0x92, 0xc4, 0x9e, 0xdb, 0xa9, 0x67, 0x6d, 0x64, 0x6d, 0x3b, 0x61, 0x24, 0x56],
};
const NODE: DeviceId = DeviceId::from_bytes([0x0a; 16]);

fn keys() -> Keys {
    Keys::from_bytes(&[7; 32], &[8; 32], ring::rand::SystemRandom::new())
}

/// The node of the vector, registered with this JoinEUI and AppKey.
fn register(cache: &Cache, join_eui: [u8; 8], app_key: [u8; 16], revision: u64) {
    let keys = keys();
    let record = DeviceRecord {
        id: NODE,
        uid: WireUid::Lorawan(neosens_protocol::DevEui::from_be_bytes(KEYS.dev_eui)),
        device_type: DeviceTypeId::from_bytes([9; 16]),
        rooms: vec![NODE_ROOM],
        enabled: true,
        config_body: "{}".into(),
        mqtt: None,
        login: "lora_node".into(),
        secret_hash: [0; 32],
        credentials_delivered: true,
        staged_secret: None,
        lorawan: None,
    };
    let context = neosens_protocol::sync::lorawan_key_context(NODE.to_bytes(), "appkey");
    let otaa = OtaaRecord {
        join_eui,
        app_key: keys.seal(&app_key, &context).unwrap(),
        codec: "hex".into(),
        last_join: None,
    };
    let mut batch = room_snapshot(vec![record]);
    batch.changes.push(Change::SetOtaa(NODE, Some(otaa)));
    if revision > 1 {
        batch = SyncBatch { revision, kind: BatchKind::Delta, more: false, changes: batch.changes };
    }
    cache.apply(&batch, revision).unwrap();
}

fn pipeline(cache: &Cache) -> (Pipeline, Arc<LoraStats>) {
    let outbox =
        Outbox::open(cache.database(), Limits { max_messages: 1000, max_age_ms: 3_600_000 }).unwrap();
    let stats = Arc::new(LoraStats::default());
    (Pipeline::new(cache.clone(), Arc::new(keys()), outbox, Arc::clone(&stats)), stats)
}

fn push(frame: &[u8], tmst: u32) -> Vec<u8> {
    let rxpk = json!({"rxpk": [{"tmst": tmst, "freq": 868.3, "stat": 1, "modu": "LORA", "datr": "SF9BW125",
        "rssi": -70, "lsnr": 8.0, "data": base64::engine::general_purpose::STANDARD.encode(frame)}]});
    let mut d = vec![2, 0x12, 0x34, 0x00, 0xaa, 0x55, 0x5a, 0, 0, 0, 0, 1];
    d.extend_from_slice(rxpk.to_string().as_bytes());
    d
}

const PULL: [u8; 12] = [2, 0x56, 0x78, 0x02, 0xaa, 0x55, 0x5a, 0, 0, 0, 0, 1];

fn path() -> SocketAddr {
    "192.168.1.20:41000".parse().unwrap()
}

fn count(stats: &LoraStats, outcome: &str) -> u64 {
    stats.frames.lock().get(outcome).copied().unwrap_or(0)
}

fn request() -> Vec<u8> {
    neosens_protocol::hex::decode(JOIN_REQUEST, "join request").unwrap()
}

#[test]
fn the_public_join_request_is_answered_and_its_session_works() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    register(&cache, KEYS.join_eui, KEYS.app_key, 1);
    let (p, stats) = pipeline(&cache);
    p.handle_datagrams(&[(&PULL, Some(path()))]);
    let handled = p.handle_datagrams(&[(&push(&request(), 1_000_000), None)]);
    assert_eq!(handled.answers[0].map(|a| a[3]), Some(0x01), "PUSH_ACK: the join is stored");
    assert_eq!(handled.downlinks.len(), 1);
    let (txpk, phy) = otaa::pull_resp(&handled.downlinks[0].datagram).unwrap();
    assert_eq!(
        (txpk["tmst"].as_u64(), txpk["freq"].as_f64(), txpk["datr"].as_str()),
        (Some(6_000_000), Some(868.3), Some("SF9BW125")),
        "RX1 exactly JOIN_ACCEPT_DELAY1 after the request's tmst"
    );
    assert_eq!((phy.len(), phy[0]), (17, 0x20), "a join-accept without CFList");
    let session = otaa::accept(&KEYS, 0x8904, &phy).expect("the node reads it");
    assert_eq!(session.dev_addr >> 25, 0, "NwkID 0 of NetID 000000");
    assert_eq!(count(&stats, "join_accepted"), 1);

    // The node's first uplink with the session it derived: decoded, and the join reported.
    let up = neosens_lora_node::uplink(&session, 1, 2, b"\x01\x02");
    p.handle_datagrams(&[(&push(&up, 3_000_000), None)]);
    assert_eq!(count(&stats, "decoded"), 1);
    let reports = stats.joins.take();
    assert_eq!(reports.len(), 1);
    assert_eq!((reports[0].device, reports[0].dev_nonce, reports[0].f_cnt_up), (NODE, 0x8904, 1));
    assert_eq!(reports[0].dev_addr, format!("{:08X}", session.dev_addr));
    // Reported once per run of the agent.
    p.handle_datagrams(&[(&push(&neosens_lora_node::uplink(&session, 2, 2, b"\x03"), 4_000_000), None)]);
    assert!(stats.joins.take().is_empty());

    // After a restart (a fresh duplicate window), the same request is a replay: its DevNonce
    // was stored with the join.
    drop(p);
    let (p, stats) = pipeline(&cache);
    p.handle_datagrams(&[(&PULL, Some(path()))]);
    let handled = p.handle_datagrams(&[(&push(&request(), 9_000_000), None)]);
    assert!(handled.downlinks.is_empty());
    assert_eq!(count(&stats, "join_replay"), 1);
    // The session survives the restart.
    p.handle_datagrams(&[(&push(&neosens_lora_node::uplink(&session, 3, 2, b"\x04"), 10_000_000), None)]);
    assert_eq!(count(&stats, "decoded"), 1);
}

#[test]
fn join_requests_left_unanswered_say_why() {
    // No node with that DevEUI.
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    cache.apply(&room_snapshot(vec![]), 1).unwrap();
    let (p, stats) = pipeline(&cache);
    p.handle_datagrams(&[(&PULL, Some(path())), (&push(&request(), 1), None)]);
    assert_eq!(count(&stats, "join_unknown_dev_eui"), 1);

    // Another JoinEUI; another AppKey (the MIC fails); no keep-alive from the forwarder.
    for (join_eui, app_key, keep_alive, outcome) in [
        ([1; 8], KEYS.app_key, true, "join_eui_mismatch"),
        (KEYS.join_eui, [5; 16], true, "join_mic_invalid"),
        (KEYS.join_eui, KEYS.app_key, false, "join_no_downlink_path"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        register(&cache, join_eui, app_key, 1);
        let (p, stats) = pipeline(&cache);
        if keep_alive {
            p.handle_datagrams(&[(&PULL, Some(path()))]);
        }
        let handled = p.handle_datagrams(&[(&push(&request(), 1), None)]);
        assert_eq!((count(&stats, outcome), handled.downlinks.len()), (1, 0), "{outcome}");
        assert_eq!(handled.answers[0].map(|a| a[3]), Some(0x01), "still acknowledged to the forwarder");
    }
}
