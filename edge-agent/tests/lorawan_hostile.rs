//! The LoRaWAN pipeline against a hostile radio neighbourhood and a failing disk: floods of
//! frames with random device addresses leave no state behind, PHYPayloads longer than LoRaWAN
//! allows are dropped, the duplicate window is bounded by count, a `PUSH_ACK` is only sent for
//! what was stored, and frame counters follow the node's session (a new session counts from
//! central's counter; without a counter of its own the gateway takes central's as the floor).

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use base64::Engine;
use common::disk::TestDisk;
use lorawan::creator::DataPayloadCreator;
use lorawan::keys::{AppSKey, NewSKey};
use lorawan::parser::FCtrl;
use neosens_edge::cache::Cache;
use neosens_edge::lorawan::{LoraStats, MAX_RECENT_FRAMES, Pipeline};
use neosens_edge::outbox::{Limits, Outbox};
use neosens_edge::self_test::{AbpNode, NODE_ROOM, room_snapshot};
use neosens_protocol::sync::{BatchKind, Change, DeviceRecord, SyncBatch};
use neosens_runtime::keys::Keys;

const NWK: &str = "44024241ed4ce9a68c6a8bc055233fd3";
const APP: &str = "ec925802ae430ca77fd3dd73cb2cc588";
const NEW_NWK: &str = "000102030405060708090a0b0c0d0e0f";
const NEW_APP: &str = "f0e0d0c0b0a090807060504030201000";
const ADDR: u32 = 0x49be_7df1;

fn key(hex: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

/// An unconfirmed uplink of `addr` with this counter, under these keys.
fn frame(addr: u32, f_cnt: u32, nwk: &str, app: &str) -> Vec<u8> {
    let mut phy = DataPayloadCreator::new();
    phy.set_uplink(true)
        .set_f_port(1)
        .set_dev_addr(&addr.to_le_bytes())
        .set_fctrl(&FCtrl::new(0, true))
        .set_fcnt(f_cnt);
    phy.build(b"\x01\x67\x00\xe1", &[], &NewSKey::from(key(nwk)), &AppSKey::from(key(app))).unwrap().to_vec()
}

/// A PUSH_DATA datagram carrying these frames.
fn push(frames: &[Vec<u8>]) -> Vec<u8> {
    let rxpk: Vec<serde_json::Value> = frames
        .iter()
        .map(|f| serde_json::json!({"stat": 1, "rssi": -57, "lsnr": 9.5, "data": base64::engine::general_purpose::STANDARD.encode(f)}))
        .collect();
    let mut d = vec![2, 0x12, 0x34, 0x00, 0xaa, 0x55, 0x5a, 0, 0, 0, 0, 1];
    d.extend_from_slice(serde_json::json!({"rxpk": rxpk}).to_string().as_bytes());
    d
}

fn keys() -> Keys {
    Keys::from_bytes(&[7; 32], &[8; 32], ring::rand::SystemRandom::new())
}

/// Node 1 on [`ADDR`] with these keys and central's counter.
fn node(keys: &Keys, nwk: &str, app: &str, f_cnt_up: u32) -> DeviceRecord {
    let mut record = AbpNode {
        n: 1,
        dev_addr: "49BE7DF1",
        nwk_s_key: nwk,
        app_s_key: app,
        codec: "cayenne_lpp",
        room: NODE_ROOM,
    }
    .record(keys)
    .unwrap();
    if let Some(session) = record.lorawan.as_mut() {
        session.f_cnt_up = f_cnt_up;
    }
    record
}

struct Rig {
    cache: Cache,
    outbox: Outbox,
    stats: Arc<LoraStats>,
    pipeline: Pipeline,
}

fn rig_on(cache: Cache, record: DeviceRecord) -> Rig {
    cache.apply(&room_snapshot(vec![record]), 1).unwrap();
    let outbox =
        Outbox::open(cache.database(), Limits { max_messages: 100_000, max_age_ms: 3_600_000 }).unwrap();
    let stats = Arc::new(LoraStats::default());
    let pipeline = Pipeline::new(cache.clone(), Arc::new(keys()), outbox.clone(), Arc::clone(&stats));
    Rig { cache, outbox, stats, pipeline }
}

fn count(stats: &LoraStats, outcome: &str) -> u64 {
    stats.frames.lock().get(outcome).copied().unwrap_or(0)
}

#[test]
fn random_addresses_leave_no_state_and_the_duplicate_window_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let r = rig_on(Cache::open(dir.path()).unwrap(), node(&keys(), NWK, APP, 0));
    let mut rng = fastrand::Rng::with_seed(14);
    let total = 3 * MAX_RECENT_FRAMES;
    for chunk in 0..total / 8 {
        let frames: Vec<Vec<u8>> =
            (0..8).map(|i| frame(rng.u32(..), (chunk * 8 + i) as u32, NEW_NWK, NEW_APP)).collect();
        let ack = r.pipeline.handle(&push(&frames));
        assert!(ack.is_some(), "a datagram of unknown frames is still acknowledged (nothing to store)");
    }
    // Several addresses may collide with the node's by chance: none does with this seed.
    assert_eq!(count(&r.stats, "unknown_dev_addr"), total as u64);
    assert_eq!(r.stats.open_addresses.load(Ordering::Relaxed), 0, "no session state for unknown addresses");
    let recent = r.stats.recent_frames.load(Ordering::Relaxed);
    assert!(recent <= MAX_RECENT_FRAMES, "duplicate window holds {recent} frames, over its bound");
    // The node still gets through, and is the only address remembered.
    assert!(r.pipeline.handle(&push(&[frame(ADDR, 1, NWK, APP)])).is_some());
    assert_eq!(count(&r.stats, "decoded"), 1);
    assert_eq!(r.stats.open_addresses.load(Ordering::Relaxed), 1);
}

#[test]
fn a_phy_payload_over_255_bytes_is_dropped_before_decoding() {
    let dir = tempfile::tempdir().unwrap();
    let r = rig_on(Cache::open(dir.path()).unwrap(), node(&keys(), NWK, APP, 0));
    let mut long = frame(ADDR, 1, NWK, APP);
    long.resize(256, 0xaa);
    r.pipeline.handle(&push(&[long]));
    assert_eq!((count(&r.stats, "oversized"), count(&r.stats, "mic_invalid")), (1, 0));
    assert_eq!(r.stats.recent_frames.load(Ordering::Relaxed), 0, "not even remembered");
}

#[test]
fn a_new_session_starts_again_from_centrals_counter() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys();
    let r = rig_on(Cache::open(dir.path()).unwrap(), node(&k, NWK, APP, 0));
    r.pipeline.handle(&push(&[frame(ADDR, 500, NWK, APP)]));
    assert_eq!(count(&r.stats, "decoded"), 1);
    // The node is personalised again (new keys, counters from 0): central syncs the new session.
    let renewed = SyncBatch {
        revision: 2,
        kind: BatchKind::Delta,
        more: false,
        changes: vec![Change::UpsertDevice(Box::new(node(&k, NEW_NWK, NEW_APP, 0)))],
    };
    r.cache.apply(&renewed, 2).unwrap();
    r.pipeline.handle(&push(&[frame(ADDR, 1, NEW_NWK, NEW_APP)]));
    assert_eq!(
        (count(&r.stats, "decoded"), count(&r.stats, "replay")),
        (2, 0),
        "not a replay of the old session"
    );
    // The new session's counter is the one kept, also across a restart.
    drop(r);
    let r = rig_on(Cache::open(dir.path()).unwrap(), node(&k, NEW_NWK, NEW_APP, 0));
    r.pipeline.handle(&push(&[frame(ADDR, 1, NEW_NWK, NEW_APP)]));
    r.pipeline.handle(&push(&[frame(ADDR, 2, NEW_NWK, NEW_APP)]));
    assert_eq!((count(&r.stats, "replay"), count(&r.stats, "decoded")), (1, 1));
}

#[test]
fn without_a_counter_of_its_own_the_gateway_takes_centrals_as_the_floor() {
    let dir = tempfile::tempdir().unwrap();
    let r = rig_on(Cache::open(dir.path()).unwrap(), node(&keys(), NWK, APP, 50));
    // A frame central already had (counter 40, 50), recorded before this gateway took the node.
    r.pipeline.handle(&push(&[frame(ADDR, 40, NWK, APP)]));
    r.pipeline.handle(&push(&[frame(ADDR, 50, NWK, APP)]));
    assert_eq!(count(&r.stats, "replay"), 2);
    r.pipeline.handle(&push(&[frame(ADDR, 51, NWK, APP)]));
    assert_eq!(count(&r.stats, "decoded"), 1);
}

#[test]
fn counters_stored_by_the_previous_version_still_hold() {
    let dir = tempfile::tempdir().unwrap();
    {
        // What the previous version left: counter 500 for node 1, in the table without sessions.
        let cache = Cache::open(dir.path()).unwrap();
        let db = cache.database();
        let txn = db.begin_write().unwrap();
        {
            let mut old =
                txn.open_table(redb::TableDefinition::<[u8; 16], u32>::new("lorawan_f_cnt")).unwrap();
            old.insert([1u8; 16], 500).unwrap();
        }
        txn.commit().unwrap();
    }
    let r = rig_on(Cache::open(dir.path()).unwrap(), node(&keys(), NWK, APP, 0));
    r.pipeline.handle(&push(&[frame(ADDR, 499, NWK, APP)]));
    r.pipeline.handle(&push(&[frame(ADDR, 501, NWK, APP)]));
    assert_eq!((count(&r.stats, "replay"), count(&r.stats, "decoded")), (1, 1));
}

#[test]
fn no_push_ack_for_frames_that_were_not_stored() {
    let (disk, control) = TestDisk::new();
    let r = rig_on(Cache::open_on(disk).unwrap(), node(&keys(), NWK, APP, 0));
    assert_eq!(r.pipeline.handle(&push(&[frame(ADDR, 1, NWK, APP)])), Some([2, 0x12, 0x34, 0x01]));
    control.failing.store(true, Ordering::Relaxed);
    let pull = [2, 0, 7, 0x02, 0xaa, 0x55, 0x5a, 0, 0, 0, 0, 1];
    let answers = r.pipeline.handle_batch(&[&push(&[frame(ADDR, 2, NWK, APP)]), &pull]);
    assert_eq!(
        answers,
        vec![None, Some([2, 0, 7, 0x04])],
        "no PUSH_ACK for an unstored frame; PULL_ACK still"
    );
    assert_eq!(count(&r.stats, "storage"), 1);
    assert_eq!(r.outbox.depth(0).unwrap().0, 2, "only the first frame's reading and status");
}
