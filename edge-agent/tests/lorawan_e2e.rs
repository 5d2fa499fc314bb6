//! LoRaWAN end to end: a node registered in central with its ABP session, a real gateway agent
//! that syncs it, a test packet forwarder that sends PUSH_DATA over UDP, and a real Mosquitto
//! that receives the decoded reading; central ingests the node's status like any device's.

mod common;

use std::net::UdpSocket;

use base64::Engine;

use common::client::wire::{DeviceStatus, Reading};
use common::client::{ApiClient, parse_bytes};
use common::{enrolled_gateway, metric, register_vector_node, start_central, start_edge};
use neosens_runtime::testing::{DEADLINE, Mosquitto, MqttWitness, wait_until};
use serde_json::json;

const DEV_EUI: &str = "70B3D57ED0000001";
/// Public vector 1 (`spec/lorawan-vectors.md`): DevAddr 49be7df1, FCnt 2, port 1, "test".
const VECTOR_1: &str = "QPF9vkkAAgABlUN4disR/w0=";
/// Vector 1's session keys.
const NWK_1: [u8; 16] =
    [0x44, 0x02, 0x42, 0x41, 0xed, 0x4c, 0xe9, 0xa6, 0x8c, 0x6a, 0x8b, 0xc0, 0x55, 0x23, 0x3f, 0xd3];
const APP_1: [u8; 16] =
    [0xec, 0x92, 0x58, 0x02, 0xae, 0x43, 0x0c, 0xa7, 0x7f, 0xd3, 0xdd, 0x73, 0xcb, 0x2c, 0xc5, 0x88];

#[test]
fn an_uplink_from_a_forwarder_reaches_the_broker_decoded() {
    let mosquitto = Mosquitto::start("");
    let central_dir = tempfile::tempdir().unwrap();
    let central = start_central(central_dir.path(), 0, &mosquitto.url());
    let c = central.addr("http");
    let building = register_vector_node(c);

    let edge_dir = enrolled_gateway(c, "gw-irit2", json!({"buildings": [building.id]}));
    let config = edge_dir.path().join("edge.toml");
    std::fs::write(&config, "[central]\nsync_wait_s = 2\n").unwrap();
    let witness = MqttWitness::subscribe(mosquitto.addr(), "irit2/366/#");
    let edge = start_edge(edge_dir.path(), &config, &mosquitto.url());
    let e = edge.addr("http");
    let udp = edge.addr("udp");
    wait_until("the node synced to the gateway", || metric(e, "neosens_edge_devices_cached") == 1.0);

    // A packet forwarder: PUSH_DATA, answered by PUSH_ACK with the same token.
    let forwarder = UdpSocket::bind("127.0.0.1:0").unwrap();
    forwarder.set_read_timeout(Some(DEADLINE)).unwrap();
    let rxpk = json!({"rxpk": [{"tmst": 1, "freq": 868.1, "stat": 1, "modu": "LORA", "datr": "SF7BW125",
        "rssi": -61, "lsnr": 7.2, "size": 17, "data": VECTOR_1}]});
    let mut datagram = vec![2, 0x42, 0x17, 0x00, 0xaa, 0x55, 0x5a, 0, 0, 0, 0, 1];
    datagram.extend_from_slice(rxpk.to_string().as_bytes());
    forwarder.send_to(&datagram, udp).unwrap();
    let mut ack = [0u8; 16];
    let (n, _) = forwarder.recv_from(&mut ack).expect("PUSH_ACK");
    assert_eq!(&ack[..n], &[2, 0x42, 0x17, 0x01]);

    let reading: Reading = parse_bytes("the reading", &witness.next(|topic, _| topic == "irit2/366/raw"));
    assert_eq!(reading.value, "74657374", "\"test\", decrypted with the AppSKey");
    assert_eq!(reading.unit_id, DEV_EUI.to_lowercase());
    let status: DeviceStatus =
        parse_bytes("the node's status", &witness.next(|topic, _| topic == "irit2/366/device"));
    assert_eq!((status.f_cnt, status.rssi), (Some(2), Some(-61.0)));
    assert!(status.relay.is_some(), "the gateway stamps the statuses it relays: {status:?}");

    // The node is a device like the others: central ingested its status.
    wait_until("central ingested the node's status", || {
        ApiClient::admin(c).last_status(DEV_EUI).as_deref() == Some("running")
    });
    assert_eq!(metric(c, "neosens_status_untrusted_msg_id_total"), 0.0, "central trusts its gateway's stamp");
    // The same frame again (another forwarder, or a replay): not published twice.
    forwarder.send_to(&datagram, udp).unwrap();
    let _ = forwarder.recv_from(&mut ack);
    wait_until("the duplicate counted", || {
        metric(e, "neosens_edge_lorawan_frames_total{outcome=\"duplicate\"}") == 1.0
    });
    assert_eq!(metric(e, "neosens_edge_lorawan_frames_total{outcome=\"decoded\"}"), 1.0);

    // Forwarder health: a second forwarder of the site sends its `stat`, then its keep-alive;
    // both forwarders reach central with the gateway's report (at once: a forwarder heard for
    // the first time does not wait for the next round).
    let stat = json!({"stat": {"time": "2026-12-05 08:59:28 GMT", "lati": 43.5617, "long": 1.4689, "alti": 150,
        "rxnb": 3, "rxok": 2, "rxfw": 2, "ackr": 100.0, "dwnb": 0, "txnb": 0}});
    let mut push = vec![2, 0x43, 0x18, 0x00, 0xaa, 0x55, 0x5a, 0, 0, 0, 0, 2];
    push.extend_from_slice(stat.to_string().as_bytes());
    forwarder.send_to(&push, udp).unwrap();
    let (n, _) = forwarder.recv_from(&mut ack).expect("PUSH_ACK of the stat");
    assert_eq!(&ack[..n], &[2, 0x43, 0x18, 0x01]);
    forwarder.send_to(&[2, 0x44, 0x19, 0x02, 0xaa, 0x55, 0x5a, 0, 0, 0, 0, 2], udp).unwrap();
    let (n, _) = forwarder.recv_from(&mut ack).expect("PULL_ACK");
    assert_eq!(&ack[..n], &[2, 0x44, 0x19, 0x04]);
    let admin = ApiClient::admin(c);
    let forwarders = || {
        let (_, gateways) = admin.raw("GET", "/api/v1/gateways", None);
        gateways["items"][0]["health"]["forwarders"].as_array().cloned().unwrap_or_default()
    };
    wait_until("central shows the gateway's two packet forwarders", || forwarders().len() == 2);
    let f = forwarders();
    assert_eq!(
        (&f[0]["eui"], &f[0]["uplinks"], &f[0]["silent"]),
        (&json!("aa555a0000000001"), &json!(2), &json!(false))
    );
    assert_eq!(
        (&f[1]["eui"], &f[1]["rx_received"], &f[1]["rx_ok"]),
        (&json!("aa555a0000000002"), &json!(3), &json!(2))
    );
    assert_eq!((&f[1]["position"]["altitude"], &f[1]["ack_ratio"]), (&json!(150), &json!(100.0)), "{}", f[1]);
    assert!(f[1]["last_stat_ms"].as_i64().is_some(), "{}", f[1]);
    assert_eq!(metric(c, "neosens_forwarder_up{gateway=\"gw-irit2\",eui=\"aa555a0000000001\"}"), 1.0);
    assert_eq!(metric(e, "neosens_edge_lorawan_forwarders"), 2.0);

    // A confirmed uplink is acknowledged in RX1, through the forwarder's downlink socket (the one
    // its keep-alives come from), and the forwarder's TX_ACK is counted.
    let downstream = UdpSocket::bind("127.0.0.1:0").unwrap();
    downstream.set_read_timeout(Some(DEADLINE)).unwrap();
    downstream.send_to(&[2, 0x45, 0x1a, 0x02, 0xaa, 0x55, 0x5a, 0, 0, 0, 0, 1], udp).unwrap();
    let (n, _) = downstream.recv_from(&mut ack).expect("PULL_ACK");
    assert_eq!(&ack[..n], &[2, 0x45, 0x1a, 0x04]);
    let mut confirmed = lorawan::creator::DataPayloadCreator::new();
    confirmed
        .set_confirmed(true)
        .set_uplink(true)
        .set_f_port(1)
        .set_dev_addr(&0x49be_7df1u32.to_le_bytes())
        .set_fctrl(&lorawan::parser::FCtrl::new(0, true))
        .set_fcnt(10);
    let frame = confirmed
        .build(b"ok", &[], &lorawan::keys::NewSKey::from(NWK_1), &lorawan::keys::AppSKey::from(APP_1))
        .unwrap();
    let rxpk = json!({"rxpk": [{"tmst": 7_000_000u32, "freq": 868.5, "stat": 1, "modu": "LORA", "datr": "SF10BW125",
        "rssi": -80, "lsnr": 3.0, "size": frame.len(), "data": base64::engine::general_purpose::STANDARD.encode(frame)}]});
    let mut datagram = vec![2, 0x46, 0x1b, 0x00, 0xaa, 0x55, 0x5a, 0, 0, 0, 0, 1];
    datagram.extend_from_slice(rxpk.to_string().as_bytes());
    forwarder.send_to(&datagram, udp).unwrap();
    let _ = forwarder.recv_from(&mut ack).expect("PUSH_ACK of the confirmed uplink");
    let mut resp = [0u8; 2048];
    let (n, _) = downstream.recv_from(&mut resp).expect("the ACK's PULL_RESP");
    assert_eq!(resp[3], 0x03, "PULL_RESP");
    let txpk = &serde_json::from_slice::<serde_json::Value>(&resp[4..n]).unwrap()["txpk"];
    assert_eq!(
        (txpk["tmst"].as_u64(), txpk["freq"].as_f64(), txpk["datr"].as_str()),
        (Some(8_000_000), Some(868.5), Some("SF10BW125"))
    );
    let phy = base64::engine::general_purpose::STANDARD.decode(txpk["data"].as_str().unwrap()).unwrap();
    let Ok(lorawan::parser::PhyPayload::Data(lorawan::parser::DataPayload::Encrypted(down))) =
        lorawan::parser::parse(phy)
    else {
        panic!("not a data frame")
    };
    use lorawan::parser::DataHeader;
    assert!(
        down.fhdr().fctrl().ack() && down.validate_mic(&lorawan::keys::AES128(NWK_1), 0),
        "an ACK the node accepts"
    );
    downstream.send_to(&[2, resp[1], resp[2], 0x05, 0xaa, 0x55, 0x5a, 0, 0, 0, 0, 1], udp).unwrap();
    wait_until("the TX_ACK counted", || {
        metric(e, "neosens_edge_lorawan_downlinks_total{outcome=\"tx_ok\"}") == 1.0
    });
}

/// Uplinks acknowledged to the forwarder survive a `kill -9` of the agent right after: every
/// reading reaches the broker after the restart (one acknowledged by the broker but not yet
/// durably removed may come twice, with its `msg_id`), none is lost, and no frame is accepted
/// twice (the counters were stored with the readings).
#[test]
fn acknowledged_uplinks_survive_kill_9() {
    use lorawan::creator::DataPayloadCreator;
    use lorawan::keys::{AppSKey, NewSKey};
    use lorawan::parser::FCtrl;
    use std::collections::BTreeMap;

    const FRAMES: u32 = 40;
    let (nwk, app) = ([0x31; 16], [0x32; 16]);
    let hex = |k: &[u8; 16]| k.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let mosquitto = Mosquitto::start("");
    let central_dir = tempfile::tempdir().unwrap();
    let central = start_central(central_dir.path(), 0, &mosquitto.url());
    let c = central.addr("http");
    let admin = ApiClient::admin(c);
    let building = admin.create_building(json!({"name": "KILL"})).expect("a building");
    let room = admin.create_room(json!({"building": building.id, "name": "9"})).expect("a room");
    admin.create_device_type(json!({"name": "lorawan_node", "orders": []})).expect("the type");
    let (status, node) = admin.raw(
        "POST",
        "/api/v1/devices",
        Some(json!({"uid": "70B3D57ED0000009", "type": "lorawan_node", "rooms": [room.id], "lorawan": {
            "dev_addr": "26000009", "nwk_s_key": hex(&nwk), "app_s_key": hex(&app), "codec": "cayenne_lpp"}})),
    );
    assert_eq!(status, 201, "{node}");
    let edge_dir = enrolled_gateway(c, "gw-kill", json!({"buildings": [building.id]}));
    let config = edge_dir.path().join("edge.toml");
    std::fs::write(&config, "[central]\nsync_wait_s = 2\n").unwrap();
    let witness = MqttWitness::subscribe(mosquitto.addr(), "#");
    let mut edge = start_edge(edge_dir.path(), &config, &mosquitto.url());
    let e = edge.addr("http");
    wait_until("the node synced", || metric(e, "neosens_edge_devices_cached") == 1.0);

    // A forwarder sends frame after frame (temperature = counter / 10 °C), each acknowledged
    // (stored) before the next; the agent is killed right after the last PUSH_ACK.
    let forwarder = UdpSocket::bind("127.0.0.1:0").unwrap();
    forwarder.set_read_timeout(Some(DEADLINE)).unwrap();
    let udp = edge.addr("udp");
    let datagram = |f_cnt: u32| {
        let mut phy = DataPayloadCreator::new();
        phy.set_uplink(true).set_f_port(2).set_dev_addr(&0x2600_0009u32.to_le_bytes());
        phy.set_fctrl(&FCtrl::new(0x80, true)).set_fcnt(f_cnt);
        let payload = [0x01, 0x67, (f_cnt >> 8) as u8, f_cnt as u8];
        let phy = phy.build(&payload, &[], &NewSKey::from(nwk), &AppSKey::from(app)).unwrap().to_vec();
        let data = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &phy);
        let rxpk = json!({"rxpk": [{"tmst": f_cnt, "freq": 868.1, "stat": 1, "datr": "SF7BW125", "rssi": -70,
            "lsnr": 6.0, "data": data}]});
        let mut d = vec![2, (f_cnt >> 8) as u8, f_cnt as u8, 0x00, 0xaa, 0x55, 0x5a, 0, 0, 0, 0, 9];
        d.extend_from_slice(rxpk.to_string().as_bytes());
        d
    };
    for f_cnt in 1..=FRAMES {
        forwarder.send_to(&datagram(f_cnt), udp).unwrap();
        let mut ack = [0u8; 16];
        let (n, _) = forwarder.recv_from(&mut ack).expect("PUSH_ACK");
        assert_eq!(&ack[..n], &[2, (f_cnt >> 8) as u8, f_cnt as u8, 0x01]);
    }
    assert!(!edge.signal_and_wait("KILL").success());
    let edge = start_edge(edge_dir.path(), &config, &mosquitto.url());
    let e = edge.addr("http");

    // Every reading arrives; a repeat carries the same msg_id as its first copy.
    let mut readings: BTreeMap<u64, u64> = BTreeMap::new();
    let mut copies = 0;
    while readings.len() < FRAMES as usize {
        let payload = witness.next(|topic, _| topic.ends_with("/temperature"));
        let reading: Reading = parse_bytes("a reading", &payload);
        let tenths = (reading.value.as_f64().expect("a number") * 10.0).round() as u64;
        let msg_id = reading.msg_id.expect("a msg_id");
        copies += 1;
        if let Some(first) = readings.insert(tenths, msg_id) {
            assert_eq!(first, msg_id, "a repeat is the same message");
        }
    }
    assert_eq!(readings.keys().copied().collect::<Vec<_>>(), (1..=u64::from(FRAMES)).collect::<Vec<_>>());
    eprintln!(
        "{FRAMES} readings, {copies} copies on the broker across the kill; {} stored again from the journal",
        metric(e, "neosens_edge_outbox_journal_replayed_total")
    );
    // The last frame again: its counter was stored with its reading, so it is a replay now.
    forwarder.send_to(&datagram(FRAMES), edge.addr("udp")).unwrap();
    wait_until("the replay counted", || {
        metric(e, "neosens_edge_lorawan_frames_total{outcome=\"replay\"}") == 1.0
    });
}
