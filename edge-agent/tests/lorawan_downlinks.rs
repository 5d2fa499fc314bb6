//! Confirmed uplinks acknowledged in the node's receive windows: the pipeline over a real
//! database, datagrams as a packet forwarder sends them (its keep-alive first: its downlink
//! path), and the `PULL_RESP`s it gives back, read as the node would (MIC with its NwkSKey,
//! ACK bit, downlink counter). The counter survives a restart; a failed RX1 falls back to RX2.
//! ADR: a node with margin is asked for a faster data rate (`LinkADRReq`), until it answers.

use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine;
use lorawan::creator::DataPayloadCreator;
use lorawan::keys::{AES128, AppSKey, NewSKey};
use lorawan::maccommands::SerializableMacCommand;
use lorawan::parser::{DataHeader, DataPayload, FCtrl, PhyPayload};
use neosens_edge::cache::Cache;
use neosens_edge::lorawan::{LoraStats, Pipeline};
use neosens_edge::outbox::{Limits, Outbox};
use neosens_edge::self_test::{AbpNode, NODE_ROOM, room_snapshot};
use neosens_runtime::keys::Keys;
use serde_json::{Value, json};

/// Public vector 1's session (`spec/lorawan-vectors.md`).
const NWK: [u8; 16] =
    [0x44, 0x02, 0x42, 0x41, 0xed, 0x4c, 0xe9, 0xa6, 0x8c, 0x6a, 0x8b, 0xc0, 0x55, 0x23, 0x3f, 0xd3];
const APP: [u8; 16] =
    [0xec, 0x92, 0x58, 0x02, 0xae, 0x43, 0x0c, 0xa7, 0x7f, 0xd3, 0xdd, 0x73, 0xcb, 0x2c, 0xc5, 0x88];
const DEV_ADDR: u32 = 0x49be_7df1;

fn forwarder_downlink() -> SocketAddr {
    "192.168.1.20:41000".parse().unwrap()
}

fn pipeline(dir: &std::path::Path) -> (Pipeline, Arc<LoraStats>) {
    let (p, stats, _) = pipeline_and_outbox(dir);
    (p, stats)
}

fn pipeline_and_outbox(dir: &std::path::Path) -> (Pipeline, Arc<LoraStats>, Outbox) {
    let cache = Cache::open(dir).unwrap();
    let keys = Keys::from_bytes(&[7; 32], &[8; 32], ring::rand::SystemRandom::new());
    let node = AbpNode {
        n: 1,
        dev_addr: "49BE7DF1",
        nwk_s_key: "44024241ed4ce9a68c6a8bc055233fd3",
        app_s_key: "ec925802ae430ca77fd3dd73cb2cc588",
        codec: "hex",
        room: NODE_ROOM,
    };
    cache.apply(&room_snapshot(vec![node.record(&keys).unwrap()]), 1).unwrap();
    let outbox =
        Outbox::open(cache.database(), Limits { max_messages: 1000, max_age_ms: 3_600_000 }).unwrap();
    let stats = Arc::new(LoraStats::default());
    (Pipeline::new(cache, Arc::new(keys), outbox.clone(), Arc::clone(&stats)), stats, outbox)
}

/// An uplink frame of the node, confirmed or not.
fn uplink(f_cnt: u32, confirmed: bool) -> Vec<u8> {
    uplink_with(f_cnt, confirmed, b"hi", &[])
}

/// An uplink frame with this payload and these MAC commands in FOpts.
fn uplink_with(
    f_cnt: u32,
    confirmed: bool,
    payload: &[u8],
    commands: &[&dyn SerializableMacCommand],
) -> Vec<u8> {
    let mut phy = DataPayloadCreator::new();
    phy.set_confirmed(confirmed)
        .set_uplink(true)
        .set_f_port(1)
        .set_dev_addr(&DEV_ADDR.to_le_bytes())
        .set_fctrl(&FCtrl::new(0, true))
        .set_fcnt(f_cnt);
    phy.build(payload, commands, &NewSKey::from(NWK), &AppSKey::from(APP)).unwrap().to_vec()
}

fn push(frame: &[u8], tmst: u32) -> Vec<u8> {
    push_at(frame, tmst, "SF9BW125", 8.0)
}

/// A PUSH_DATA of `frame` heard at this data rate and SNR.
fn push_at(frame: &[u8], tmst: u32, datr: &str, snr: f64) -> Vec<u8> {
    let rxpk = json!({"rxpk": [{"tmst": tmst, "freq": 868.3, "stat": 1, "modu": "LORA", "datr": datr,
        "codr": "4/5", "rssi": -70, "lsnr": snr, "size": frame.len(),
        "data": base64::engine::general_purpose::STANDARD.encode(frame)}]});
    let mut d = vec![2, 0x12, 0x34, 0x00, 0xaa, 0x55, 0x5a, 0, 0, 0, 0, 1];
    d.extend_from_slice(rxpk.to_string().as_bytes());
    d
}

const PULL: [u8; 12] = [2, 0x56, 0x78, 0x02, 0xaa, 0x55, 0x5a, 0, 0, 0, 0, 1];

fn tx_ack(token: [u8; 2], error: &str) -> Vec<u8> {
    let mut d = vec![2, token[0], token[1], 0x05, 0xaa, 0x55, 0x5a, 0, 0, 0, 0, 1];
    d.extend_from_slice(json!({"txpk_ack": {"error": error}}).to_string().as_bytes());
    d
}

/// A `PULL_RESP`'s `txpk`, and the frame it carries read as the node reads it: (ACK bit,
/// downlink counter), after checking the MIC with its NwkSKey.
fn read_pull_resp(datagram: &[u8]) -> (Value, bool, u16) {
    assert_eq!(datagram[3], 0x03, "PULL_RESP");
    let txpk = serde_json::from_slice::<Value>(&datagram[4..]).unwrap()["txpk"].clone();
    let phy = base64::engine::general_purpose::STANDARD.decode(txpk["data"].as_str().unwrap()).unwrap();
    assert_eq!(txpk["size"].as_u64(), Some(phy.len() as u64));
    let Ok(PhyPayload::Data(DataPayload::Encrypted(frame))) = lorawan::parser::parse(phy) else { panic!() };
    let f_cnt = frame.fhdr().fcnt();
    assert!(frame.validate_mic(&AES128(NWK), u32::from(f_cnt)), "the node's NwkSKey signs it");
    assert!(!frame.is_uplink());
    (txpk, frame.fhdr().fctrl().ack(), f_cnt)
}

fn count(stats: &LoraStats, outcome: &str) -> u64 {
    stats.downlinks.lock().get(outcome).copied().unwrap_or(0)
}

#[test]
fn a_confirmed_uplink_is_acknowledged_in_rx1_and_the_counter_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (p, stats) = pipeline(dir.path());
    // Without a keep-alive from its forwarder, no path: counted, nothing sent.
    let handled = p.handle_datagrams(&[(&push(&uplink(1, true), 5_000_000), None)]);
    assert_eq!((handled.answers[0].map(|a| a[3]), handled.downlinks.len()), (Some(0x01), 0));
    assert_eq!(count(&stats, "no_downlink_path"), 1);

    let handled = p.handle_datagrams(&[
        (&PULL, Some(forwarder_downlink())),
        (&push(&uplink(2, true), 10_000_000), Some("192.168.1.20:41001".parse().unwrap())),
        (&push(&uplink(3, false), 12_000_000), None),
    ]);
    assert_eq!(
        handled.answers.iter().map(|a| a.map(|a| a[3])).collect::<Vec<_>>(),
        [Some(0x04), Some(0x01), Some(0x01)]
    );
    assert_eq!(handled.downlinks.len(), 1, "an ACK for the confirmed uplink only");
    let out = &handled.downlinks[0];
    assert_eq!(out.to, forwarder_downlink(), "where its keep-alives come from");
    let (txpk, ack, f_cnt) = read_pull_resp(&out.datagram);
    assert!(ack);
    assert_eq!(f_cnt, 0, "the uplink without a path spent no counter");
    assert_eq!(
        (txpk["tmst"].as_u64(), txpk["freq"].as_f64(), txpk["datr"].as_str()),
        (Some(11_000_000), Some(868.3), Some("SF9BW125")),
        "RX1"
    );
    assert_eq!((txpk["ipol"].as_bool(), txpk["powe"].as_i64()), (Some(true), Some(14)));
    let handled = p.handle_datagrams(&[(&tx_ack([out.datagram[1], out.datagram[2]], "NONE"), None)]);
    assert!(handled.downlinks.is_empty());
    assert_eq!((count(&stats, "ack_scheduled"), count(&stats, "tx_ok")), (1, 1));
    drop(p);

    // Restarted: the counter goes on from what was stored with the uplinks.
    let (p, stats) = pipeline(dir.path());
    let handled = p.handle_datagrams(&[
        (&PULL, Some(forwarder_downlink())),
        (&push(&uplink(4, true), 20_000_000), None),
    ]);
    let (_, _, f_cnt) = read_pull_resp(&handled.downlinks[0].datagram);
    assert_eq!(f_cnt, 1);

    // RX1 too late for the forwarder: the same frame in RX2.
    let rx1 = &handled.downlinks[0].datagram;
    let handled = p.handle_datagrams(&[(&tx_ack([rx1[1], rx1[2]], "TOO_LATE"), None)]);
    assert_eq!(handled.downlinks.len(), 1);
    let (txpk, ack, f_cnt) = read_pull_resp(&handled.downlinks[0].datagram);
    assert_eq!((ack, f_cnt), (true, 1), "the same frame");
    assert_eq!(
        (txpk["tmst"].as_u64(), txpk["freq"].as_f64(), txpk["datr"].as_str()),
        (Some(22_000_000), Some(869.525), Some("SF12BW125")),
        "RX2"
    );
    assert_eq!((count(&stats, "tx_too_late"), count(&stats, "rx2_fallback")), (1, 1));
    // A TX_ACK nobody waits for (a replay, another agent's token) changes nothing.
    let handled = p.handle_datagrams(&[(&tx_ack([rx1[1], rx1[2]], "TOO_LATE"), None)]);
    assert!(handled.downlinks.is_empty());
    assert_eq!(count(&stats, "tx_ack_unknown"), 1);
}

/// A confirmed uplink heard again with the counter last accepted is its node retransmitting
/// (LoRaWAN 1.0.x keeps the counter when the ACK was missed): acknowledged again with the next
/// downlink counter, its data not published twice. Copies from other forwarders (the same bytes
/// within a second) and unconfirmed replays get nothing.
#[test]
fn a_retransmitted_confirmed_uplink_is_acknowledged_again_not_republished() {
    let dir = tempfile::tempdir().unwrap();
    let (p, stats, outbox) = pipeline_and_outbox(dir.path());
    let frame = uplink(7, true);
    let first = p.handle_datagrams(&[(&PULL, Some(forwarder_downlink())), (&push(&frame, 1_000), None)]);
    assert_eq!(read_pull_resp(&first.downlinks[0].datagram).2, 0);
    let published = outbox.depth(0).unwrap().0;
    assert!(published > 0);
    let copy = p.handle_datagrams(&[(&push(&frame, 1_000), None)]);
    assert!(copy.downlinks.is_empty(), "another forwarder's copy");
    // The node's retry (its transmitted bytes may differ: here its payload).
    let retry = p.handle_datagrams(&[(&push(&uplink_with(7, true, b"hi again", &[]), 3_000_000), None)]);
    assert_eq!(retry.answers[0].map(|a| a[3]), Some(0x01));
    assert_eq!(read_pull_resp(&retry.downlinks[0].datagram).2, 1, "the next downlink counter");
    assert_eq!(outbox.depth(0).unwrap().0, published, "its data is not published twice");
    let frames = |outcome: &str| stats.frames.lock().get(outcome).copied().unwrap_or(0);
    assert_eq!((frames("retransmission"), frames("duplicate"), count(&stats, "ack_scheduled")), (1, 1, 2));
    // An unconfirmed frame with that counter is a replay.
    assert!(p.handle_datagrams(&[(&push(&uplink(7, false), 4_000_000), None)]).downlinks.is_empty());
    assert_eq!(frames("replay"), 1);
    let next = p.handle_datagrams(&[(&push(&uplink(8, true), 5_000_000), None)]);
    assert_eq!(read_pull_resp(&next.downlinks[0].datagram).2, 2);
}

/// MAC commands: a `LinkCheckReq` (in an unconfirmed uplink) is answered with `LinkCheckAns` in
/// that uplink's RX1; the first uplink of a node asks it `DevStatusReq` (once a day), and its
/// `DevStatusAns` puts battery and margin into its status at once.
#[test]
fn link_checks_answered_and_device_status_asked_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (p, stats, outbox) = pipeline_and_outbox(dir.path());
    let build =
        |f_cnt: u32, commands: &[&dyn SerializableMacCommand]| uplink_with(f_cnt, false, b"hi", commands);
    // First uplink: nothing asked, but the node's status is due: DevStatusReq alone.
    let first =
        p.handle_datagrams(&[(&PULL, Some(forwarder_downlink())), (&push(&build(1, &[]), 1_000), None)]);
    let fopts = |datagram: &[u8]| {
        let txpk = serde_json::from_slice::<Value>(&datagram[4..]).unwrap()["txpk"].clone();
        let phy = base64::engine::general_purpose::STANDARD.decode(txpk["data"].as_str().unwrap()).unwrap();
        phy[8..8 + usize::from(phy[5] & 0x0f)].to_vec()
    };
    assert_eq!(fopts(&first.downlinks[0].datagram), [0x06], "DevStatusReq");
    assert!(!read_pull_resp(&first.downlinks[0].datagram).1, "no ACK: the uplink was unconfirmed");
    // A LinkCheckReq: answered (SNR 8 dB at SF9: 20 dB above the floor, one forwarder).
    let link_check = lorawan::maccommandcreator::LinkCheckReqCreator::new();
    let second = p.handle_datagrams(&[(&push(&build(2, &[&link_check]), 2_000), None)]);
    assert_eq!(fopts(&second.downlinks[0].datagram), [0x02, 20, 1], "LinkCheckAns");
    assert_eq!(count(&stats, "mac_scheduled"), 2);
    // Its DevStatusAns: battery 127 (50 %), margin −3 dB, in the status relayed now.
    let _ = outbox.peek(0, 100).map(|r| outbox.acknowledge(&r.iter().map(|(id, _)| *id).collect::<Vec<_>>()));
    let mut answer = lorawan::maccommandcreator::DevStatusAnsCreator::new();
    answer.set_battery(127).set_margin(-3).unwrap();
    let third = p.handle_datagrams(&[(&push(&build(3, &[&answer]), 3_000), None)]);
    assert!(third.downlinks.is_empty(), "nothing asked, nothing due");
    let records = outbox.peek(0, 100).unwrap();
    let status = records.iter().find(|(_, r)| r.topic.ends_with("/device")).expect("the node's status");
    let status: Value = serde_json::from_slice(&status.1.payload).unwrap();
    assert_eq!(
        (&status["battery"], &status["external_power"], &status["margin"]),
        (&json!(50.0), &json!(false), &json!(-3))
    );
}

/// An uplink with these FCtrl bits (0x80 ADR, 0x40 ADRACKReq) and FOpts commands.
fn uplink_fctrl(f_cnt: u32, fctrl: u8, commands: &[&dyn SerializableMacCommand]) -> Vec<u8> {
    let mut phy = DataPayloadCreator::new();
    phy.set_uplink(true)
        .set_f_port(1)
        .set_dev_addr(&DEV_ADDR.to_le_bytes())
        .set_fctrl(&FCtrl::new(fctrl, true))
        .set_fcnt(f_cnt);
    phy.build(b"hi", commands, &NewSKey::from(NWK), &AppSKey::from(APP)).unwrap().to_vec()
}

/// The FOpts of a `PULL_RESP`'s frame.
fn fopts(datagram: &[u8]) -> Vec<u8> {
    let (txpk, _, _) = read_pull_resp(datagram);
    let phy = base64::engine::general_purpose::STANDARD.decode(txpk["data"].as_str().unwrap()).unwrap();
    phy[8..8 + usize::from(phy[5] & 0x0f)].to_vec()
}

/// ADR (ChirpStack's default algorithm): a node with FCtrl.ADR heard at SF12 with 15 dB above
/// floor and installation margin is asked for DR5 (SF7), all channels on, one transmission;
/// once it answers and sends at SF7 within the margin, nothing more is asked. `ADRACKReq` gets
/// a downlink of its own.
#[test]
fn adr_asks_a_node_with_margin_for_a_faster_data_rate() {
    let dir = tempfile::tempdir().unwrap();
    let (p, stats) = pipeline(dir.path());
    p.handle_datagrams(&[(&PULL, Some(forwarder_downlink()))]);
    let handled =
        p.handle_datagrams(&[(&push_at(&uplink_fctrl(1, 0x80, &[]), 1_000, "SF12BW125", 5.0), None)]);
    assert_eq!(handled.downlinks.len(), 1, "a LinkADRReq");
    // CID 3; DR5, TXPower 0; ChMask 0x00ff; ChMaskCntl 6 (all defined channels), NbTrans 1;
    // then the first uplink's DevStatusReq.
    assert_eq!(fopts(&handled.downlinks[0].datagram), [0x03, 0x50, 0xff, 0x00, 0x61, 0x06]);
    assert_eq!(count(&stats, "adr_requested"), 1);

    // The node accepts (LinkADRAns: mask, data rate, power) and sends at SF7, 2.5 dB over.
    let mut ans = lorawan::maccommandcreator::LinkADRAnsCreator::new();
    ans.set_channel_mask_ack(true).set_data_rate_ack(true).set_tx_power_ack(true);
    let handled =
        p.handle_datagrams(&[(&push_at(&uplink_fctrl(2, 0x80, &[&ans]), 2_000, "SF7BW125", 5.0), None)]);
    assert!(handled.downlinks.is_empty(), "nothing more to ask");
    // Without ADR on at the node, nothing is asked whatever the margin.
    let handled = p.handle_datagrams(&[(&push_at(&uplink_fctrl(3, 0, &[]), 3_000, "SF12BW125", 9.0), None)]);
    assert!(handled.downlinks.is_empty());
    // ADRACKReq: a downlink, empty, so the node knows it is heard.
    let handled =
        p.handle_datagrams(&[(&push_at(&uplink_fctrl(4, 0xc0, &[]), 4_000, "SF7BW125", 5.0), None)]);
    assert_eq!(handled.downlinks.len(), 1);
    assert_eq!(fopts(&handled.downlinks[0].datagram), Vec::<u8>::new());
    assert_eq!(count(&stats, "adr_requested"), 1);

    // ADR off at the gateway: never asked.
    let dir = tempfile::tempdir().unwrap();
    let (p, _) = pipeline(dir.path());
    let p = p.with_adr(None);
    p.handle_datagrams(&[(&PULL, Some(forwarder_downlink()))]);
    let handled =
        p.handle_datagrams(&[(&push_at(&uplink_fctrl(1, 0x80, &[]), 1_000, "SF12BW125", 5.0), None)]);
    assert_eq!(fopts(&handled.downlinks[0].datagram), [0x06], "the DevStatusReq alone");
}
