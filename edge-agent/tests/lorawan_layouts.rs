//! Payload layouts at the gateway: a node whose codec is `layout` is decoded with the layout its
//! device type declares, synced with the type; without one (removed), its payloads count as
//! codec errors and nothing is published.

use std::sync::Arc;

use base64::Engine;
use neosens_edge::cache::Cache;
use neosens_edge::lorawan::{LoraStats, Pipeline};
use neosens_edge::outbox::{Limits, Outbox};
use neosens_edge::self_test::{AbpNode, NODE_ROOM, room_snapshot};
use neosens_protocol::ids::DeviceTypeId;
use neosens_protocol::layout::{Encoding, LayoutRecord, PayloadLayout, RecordOrder};
use neosens_protocol::sync::{BatchKind, Change, DeviceTypeRecord, SyncBatch};
use neosens_runtime::keys::Keys;
use neosens_runtime::mqtt::acked::AckedStore;
use serde_json::{Value, json};

const TYPE: DeviceTypeId = DeviceTypeId::from_bytes([9; 16]);

fn layout() -> PayloadLayout {
    PayloadLayout {
        header: vec![],
        skip: 0,
        order: RecordOrder::TypeFirst,
        records: vec![LayoutRecord {
            type_byte: 1,
            kind: "temperature".into(),
            unit: "celsius".into(),
            encoding: Encoding::Int,
            size: 2,
            signed: true,
            little_endian: true,
            scale: 0.01,
            offset: 0.0,
            decimals: Some(2),
        }],
    }
}

fn uplink(f_cnt: u32, payload: &[u8]) -> Vec<u8> {
    let nwk =
        [0x44, 0x02, 0x42, 0x41, 0xed, 0x4c, 0xe9, 0xa6, 0x8c, 0x6a, 0x8b, 0xc0, 0x55, 0x23, 0x3f, 0xd3];
    let app =
        [0xec, 0x92, 0x58, 0x02, 0xae, 0x43, 0x0c, 0xa7, 0x7f, 0xd3, 0xdd, 0x73, 0xcb, 0x2c, 0xc5, 0x88];
    let mut phy = lorawan::creator::DataPayloadCreator::new();
    phy.set_uplink(true).set_f_port(2).set_dev_addr(&0x49be_7df1u32.to_le_bytes());
    phy.set_fctrl(&lorawan::parser::FCtrl::new(0, true)).set_fcnt(f_cnt);
    let phy = phy
        .build(payload, &[], &lorawan::keys::NewSKey::from(nwk), &lorawan::keys::AppSKey::from(app))
        .unwrap();
    let rxpk = json!({"rxpk": [{"tmst": f_cnt, "freq": 868.1, "stat": 1, "datr": "SF7BW125", "rssi": -70,
        "lsnr": 6.0, "data": base64::engine::general_purpose::STANDARD.encode(phy)}]});
    let mut d = vec![2, 0, f_cnt as u8, 0x00, 0xaa, 0x55, 0x5a, 0, 0, 0, 0, 1];
    d.extend_from_slice(rxpk.to_string().as_bytes());
    d
}

#[test]
fn a_type_s_layout_decodes_its_nodes_payloads() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let keys = Keys::from_bytes(&[7; 32], &[8; 32], ring::rand::SystemRandom::new());
    let node = AbpNode {
        n: 1,
        dev_addr: "49BE7DF1",
        nwk_s_key: "44024241ed4ce9a68c6a8bc055233fd3",
        app_s_key: "ec925802ae430ca77fd3dd73cb2cc588",
        codec: "layout",
        room: NODE_ROOM,
    };
    let mut batch = room_snapshot(vec![node.record(&keys).unwrap()]);
    let device_type = DeviceTypeRecord {
        id: TYPE,
        name: "custom_node".into(),
        status_period_s: 600,
        outdated_after_s: 1800,
    };
    batch.changes.push(Change::UpsertDeviceType(device_type));
    batch.changes.push(Change::SetPayloadLayout(TYPE, Some(layout())));
    cache.apply(&batch, 1).unwrap();
    assert_eq!(cache.layout(TYPE).unwrap(), Some(layout()));
    let outbox = Outbox::open(cache.database(), Limits { max_messages: 100, max_age_ms: 3_600_000 }).unwrap();
    let stats = Arc::new(LoraStats::default());
    let pipeline = Pipeline::new(cache.clone(), Arc::new(keys), outbox.clone(), Arc::clone(&stats));

    // Type 1, channel 5, −2.66 °C in signed hundredths, little-endian.
    pipeline.handle(&uplink(1, &[0x01, 0x05, 0xf6, 0xfe]));
    let stored = outbox.read_after(0, 10).unwrap();
    let reading = stored.iter().find(|m| m.topic == "u4/302/temperature").expect("a reading");
    let body: Value = serde_json::from_slice(&reading.payload).unwrap();
    assert_eq!(
        (&body["value"], &body["value_units"], &body["subID"]),
        (&json!(-2.66), &json!("celsius"), &json!("5"))
    );

    // The layout removed (a delta): the node's next payload is a codec error, nothing published.
    let removed = SyncBatch {
        revision: 2,
        kind: BatchKind::Delta,
        more: false,
        changes: vec![Change::SetPayloadLayout(TYPE, None)],
    };
    cache.apply(&removed, 2).unwrap();
    let before = outbox.read_after(0, 100).unwrap().len();
    pipeline.handle(&uplink(2, &[0x01, 0x05, 0x00, 0x01]));
    assert_eq!(stats.frames.lock().get("codec_error").copied(), Some(1));
    let after = outbox.read_after(0, 100).unwrap();
    assert!(!after[before..].iter().any(|m| m.topic == "u4/302/temperature"));
}
