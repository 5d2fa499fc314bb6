//! Node orders end to end: an operator's `downlink` order through central's API, over a real
//! Mosquitto to the real gateway agent that serves the node, out in the downlink that answers
//! the node's next uplink (RX1 at the uplink's `tmst` + 1 s), acknowledged by the node, and each
//! step back in the node's order history; then the neOCampus convention (`{"data": "<hex>"}` on
//! `<base>/<DevEUI>/command`) from any MQTT client the broker lets publish there, also while
//! central is stopped.

mod common;

use std::net::{SocketAddr, UdpSocket};

use base64::Engine;
use common::client::ApiClient;
use common::{enrolled_gateway, metric, register_vector_node, start_central, start_edge};
use lorawan::parser::{DataHeader, DataPayload, FRMPayload, MHDRAble, MType, PhyPayload};
use neosens_runtime::testing::{DEADLINE, Mosquitto, wait_until};
use serde_json::{Value, json};

const DEV_EUI: &str = "70B3D57ED0000001";
const DEV_ADDR: u32 = 0x49be_7df1;
/// Public vector 1's session keys (`spec/lorawan-vectors.md`).
const NWK_1: [u8; 16] =
    [0x44, 0x02, 0x42, 0x41, 0xed, 0x4c, 0xe9, 0xa6, 0x8c, 0x6a, 0x8b, 0xc0, 0x55, 0x23, 0x3f, 0xd3];
const APP_1: [u8; 16] =
    [0xec, 0x92, 0x58, 0x02, 0xae, 0x43, 0x0c, 0xa7, 0x7f, 0xd3, 0xdd, 0x73, 0xcb, 0x2c, 0xc5, 0x88];

/// A PUSH_DATA with one uplink of the vector node: counter `f_cnt`, FCtrl.ACK when `ack`.
fn uplink(f_cnt: u32, ack: bool, tmst: u32) -> Vec<u8> {
    let mut phy = lorawan::creator::DataPayloadCreator::new();
    let mut fctrl = lorawan::parser::FCtrl::new(0, true);
    if ack {
        fctrl.set_ack();
    }
    phy.set_uplink(true)
        .set_f_port(2)
        .set_dev_addr(&DEV_ADDR.to_le_bytes())
        .set_fctrl(&fctrl)
        .set_fcnt(f_cnt);
    let phy = phy
        .build(b"hi", &[], &lorawan::keys::NewSKey::from(NWK_1), &lorawan::keys::AppSKey::from(APP_1))
        .unwrap()
        .to_vec();
    let rxpk = json!({"rxpk": [{"tmst": tmst, "freq": 868.3, "stat": 1, "modu": "LORA", "datr": "SF9BW125",
        "rssi": -70, "lsnr": 5.0, "size": phy.len(), "data": base64::engine::general_purpose::STANDARD.encode(phy)}]});
    let mut d = vec![2, (f_cnt >> 8) as u8, f_cnt as u8, 0x00, 0xaa, 0x55, 0x5a, 0, 0, 0, 0, 1];
    d.extend_from_slice(rxpk.to_string().as_bytes());
    d
}

/// The `txpk` of a PULL_RESP, and its frame.
fn pull_resp(datagram: &[u8]) -> (Value, Vec<u8>) {
    assert_eq!(datagram[3], 0x03, "PULL_RESP");
    let txpk = serde_json::from_slice::<Value>(&datagram[4..]).unwrap()["txpk"].clone();
    let phy = base64::engine::general_purpose::STANDARD.decode(txpk["data"].as_str().unwrap()).unwrap();
    (txpk, phy)
}

/// The frame's MType, counter (MIC checked with it), port and clear payload.
fn open_downlink(phy: Vec<u8>, f_cnt_down: u32) -> (MType, Option<u8>, Vec<u8>) {
    let Ok(PhyPayload::Data(DataPayload::Encrypted(down))) = lorawan::parser::parse(phy) else {
        panic!("not a data frame")
    };
    assert!(down.validate_mic(&lorawan::keys::AES128(NWK_1), f_cnt_down), "a MIC the node accepts");
    let mtype = down.mhdr().mtype();
    let port = down.f_port();
    let plain =
        down.decrypt(Some(&lorawan::keys::AES128(NWK_1)), Some(&lorawan::keys::AES128(APP_1)), f_cnt_down);
    let data = match plain.unwrap().frm_payload() {
        FRMPayload::Data(d) => d.to_vec(),
        _ => Vec::new(),
    };
    (mtype, port, data)
}

/// Publishes one message with QoS 1 as an anonymous client, once the broker acknowledged it.
fn publish(broker: SocketAddr, topic: &str, payload: &str) {
    let options = rumqttc::MqttOptions::new("order-sender", broker.ip().to_string(), broker.port());
    let (client, mut connection) = rumqttc::Client::new(options, 10);
    client.publish(topic, rumqttc::QoS::AtLeastOnce, false, payload.as_bytes().to_vec()).unwrap();
    loop {
        match connection.recv_timeout(DEADLINE) {
            Ok(Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_)))) => return,
            Ok(Ok(_)) => {}
            other => panic!("publishing {topic}: {other:?}"),
        }
    }
}

#[test]
fn an_order_from_the_api_reaches_the_node_with_its_next_uplink() {
    let mosquitto = Mosquitto::start("");
    let central_dir = tempfile::tempdir().unwrap();
    let mut central = start_central(central_dir.path(), 0, &mosquitto.url());
    let c = central.addr("http");
    let building = register_vector_node(c);
    let edge_dir = enrolled_gateway(c, "gw-orders", json!({"buildings": [building.id]}));
    let config = edge_dir.path().join("edge.toml");
    std::fs::write(&config, "[central]\nsync_wait_s = 2\n").unwrap();
    let edge = start_edge(edge_dir.path(), &config, &mosquitto.url());
    let (e, udp) = (edge.addr("http"), edge.addr("udp"));
    wait_until("the node synced", || metric(e, "neosens_edge_devices_cached") == 1.0);
    // The gateway follows the node's room (`irit2/366/+/command`) once it knows the node.
    wait_until("the gateway follows the node's command topics", || {
        metric(e, "neosens_edge_uplink_subscriptions_total{outcome=\"granted\"}") >= 1.0
    });
    assert_eq!(metric(e, "neosens_edge_uplink_subscriptions_total{outcome=\"refused\"}"), 0.0);

    // The forwarder's keep-alive gives the downlink path.
    let forwarder = UdpSocket::bind("127.0.0.1:0").unwrap();
    forwarder.set_read_timeout(Some(DEADLINE)).unwrap();
    forwarder.send_to(&[2, 0, 1, 0x02, 0xaa, 0x55, 0x5a, 0, 0, 0, 0, 1], udp).unwrap();
    let mut buf = [0u8; 2048];
    let (n, _) = forwarder.recv_from(&mut buf).expect("PULL_ACK");
    assert_eq!(&buf[..n], &[2, 0, 1, 0x04]);

    // Malformed orders are refused by central with the field at fault.
    let admin = ApiClient::admin(c);
    let path = format!("/api/v1/devices/{DEV_EUI}/orders");
    for bad in [
        json!({"order": "downlink"}),
        json!({"order": "downlink", "value": {"data": "0g"}}),
        json!({"order": "downlink", "value": {"data": "01", "f_port": 0}}),
        json!({"order": "downlink", "value": {"data": "00".repeat(223)}}),
        json!({"order": "downlink", "value": {"data": "01", "fport": 2}}),
    ] {
        let (status, body) = admin.raw("POST", &path, Some(bad.clone()));
        assert_eq!((status, body["error"]["field"].as_str()), (400, Some("value")), "{bad}: {body}");
    }
    let (status, order) = admin.raw(
        "POST",
        &path,
        Some(json!({"order": "downlink", "value": {"f_port": 10, "data": "0102", "confirmed": true}})),
    );
    assert_eq!(status, 202, "{order}");
    let reference = order["dest"].as_str().expect("the order's reference").to_owned();
    assert_eq!(order["topic"], json!("irit2/366/70b3d57ed0000001/command"));
    assert_eq!(order["outcome"], json!("published: waits for the node's next uplink"));
    wait_until("the gateway queued the order", || metric(e, "neosens_edge_lorawan_orders_queued") == 1.0);

    // The node's next uplink opens its windows: the order goes in RX1, confirmed, on port 10.
    forwarder.send_to(&uplink(20, false, 5_000_000), udp).unwrap();
    let (n, _) = forwarder.recv_from(&mut buf).expect("PUSH_ACK");
    assert_eq!(&buf[..n], &[2, 0, 20, 0x01]);
    let (n, _) = forwarder.recv_from(&mut buf).expect("the order's PULL_RESP");
    let (txpk, phy) = pull_resp(&buf[..n]);
    assert_eq!(
        (txpk["tmst"].as_u64(), txpk["freq"].as_f64(), txpk["datr"].as_str()),
        (Some(6_000_000), Some(868.3), Some("SF9BW125")),
        "RX1: the uplink's tmst + 1 s, its channel and data rate"
    );
    let (mtype, port, data) = open_downlink(phy, 0);
    assert_eq!((mtype, port, data), (MType::ConfirmedDataDown, Some(10), vec![1, 2]));
    forwarder.send_to(&[2, buf[1], buf[2], 0x05, 0xaa, 0x55, 0x5a, 0, 0, 0, 0, 1], udp).unwrap();
    assert_eq!(metric(e, "neosens_edge_lorawan_orders_queued"), 0.0);

    // The node acknowledges it in its next uplink.
    forwarder.send_to(&uplink(21, true, 9_000_000), udp).unwrap();
    let (n, _) = forwarder.recv_from(&mut buf).expect("PUSH_ACK");
    assert_eq!(&buf[..n], &[2, 0, 21, 0x01]);

    // Each step is in the node's order history, newest first, under the order's reference.
    let steps = || -> Vec<String> {
        let (_, history) = admin.raw("GET", &path, None);
        history["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|o| o["dest"] == json!(reference))
            .map(|o| o["outcome"].as_str().unwrap().to_owned())
            .collect()
    };
    wait_until("the gateway reported the order acknowledged", || {
        steps().first().map(String::as_str) == Some("acknowledged, FCntDown 0")
    });
    assert_eq!(
        steps(),
        [
            "acknowledged, FCntDown 0",
            "sent, FCntDown 0",
            "queued at the gateway",
            "published: waits for the node's next uplink"
        ]
    );
    let (_, history) = admin.raw("GET", &path, None);
    let sent = &history["items"][1];
    assert_eq!(sent["by"], json!("gateway gw-orders"));
    assert_eq!(
        serde_json::from_str::<Value>(sent["value"].as_str().unwrap()).unwrap(),
        json!({"f_port": 10, "data": "0102", "confirmed": true})
    );

    // The neOCampus convention from any client with the rights: data alone, the port of the
    // node's last uplink (2), unconfirmed.
    publish(mosquitto.addr(), "irit2/366/70b3d57ed0000001/command", r#"{"data":"ff"}"#);
    wait_until("the gateway queued the command", || metric(e, "neosens_edge_lorawan_orders_queued") == 1.0);
    forwarder.send_to(&uplink(22, false, 12_000_000), udp).unwrap();
    let (_, _) = forwarder.recv_from(&mut buf).expect("PUSH_ACK");
    let (n, _) = forwarder.recv_from(&mut buf).expect("the command's PULL_RESP");
    let (txpk, phy) = pull_resp(&buf[..n]);
    assert_eq!(txpk["tmst"].as_u64(), Some(13_000_000));
    assert_eq!(open_downlink(phy, 1), (MType::UnconfirmedDataDown, Some(2), vec![0xff]));
    // A forwarder that never answers the PULL_RESP: the frame counts as sent all the same.
    wait_until("the command reported sent", || {
        let (_, history) = admin.raw("GET", &path, None);
        history["items"][0]["outcome"] == json!("sent, FCntDown 1")
    });
    // A malformed command is refused, and the refusal recorded.
    publish(mosquitto.addr(), "irit2/366/70b3d57ed0000001/command", r#"{"data":"xyz","ref":"bad-1"}"#);
    wait_until("the refusal recorded", || {
        let (_, history) = admin.raw("GET", &path, None);
        history["items"][0]["outcome"] == json!("refused: \"data\" is not hex")
            && history["items"][0]["dest"] == json!("bad-1")
    });
    assert_eq!(metric(e, "neosens_edge_lorawan_downlinks_total{outcome=\"order_malformed\"}"), 1.0);

    // Central stopped: a command still reaches the node through its gateway (the broker is up),
    // and its steps reach the order history once central is back.
    assert!(central.signal_and_wait("TERM").success());
    publish(
        mosquitto.addr(),
        "irit2/366/70b3d57ed0000001/command",
        r#"{"data":"abcd","port":5,"ref":"offline-1"}"#,
    );
    wait_until("the gateway queued the command", || metric(e, "neosens_edge_lorawan_orders_queued") == 1.0);
    forwarder.send_to(&uplink(23, false, 15_000_000), udp).unwrap();
    let (_, _) = forwarder.recv_from(&mut buf).expect("PUSH_ACK");
    let (n, _) = forwarder.recv_from(&mut buf).expect("the command's PULL_RESP");
    let (_, phy) = pull_resp(&buf[..n]);
    assert_eq!(open_downlink(phy, 2), (MType::UnconfirmedDataDown, Some(5), vec![0xab, 0xcd]));
    forwarder.send_to(&[2, buf[1], buf[2], 0x05, 0xaa, 0x55, 0x5a, 0, 0, 0, 0, 1], udp).unwrap();
    let _central = start_central(central_dir.path(), c.port(), &mosquitto.url());
    let offline_steps = || -> Vec<String> {
        let Ok((_, history)) = admin.try_raw("GET", &path, None) else { return Vec::new() };
        history["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter(|o| o["dest"] == json!("offline-1"))
                    .map(|o| o["outcome"].as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    wait_until("the offline steps reached central", || offline_steps().len() == 2);
    assert_eq!(offline_steps(), ["sent, FCntDown 2", "queued at the gateway"]);
}
