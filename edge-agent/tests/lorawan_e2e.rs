//! LoRaWAN end to end: a node registered in central with its ABP session, a real gateway agent
//! that syncs it, a test packet forwarder that sends PUSH_DATA over UDP, and a real Mosquitto
//! that receives the decoded reading; central ingests the node's status like any device's.

mod common;

use std::net::UdpSocket;

use common::client::wire::{DeviceStatus, Reading};
use common::client::{ApiClient, parse_bytes};
use common::{enrolled_gateway, metric, register_vector_node, start_central, start_edge};
use neosens_runtime::testing::{DEADLINE, Mosquitto, MqttWitness, wait_until};
use serde_json::json;

const DEV_EUI: &str = "70B3D57ED0000001";
/// Public vector 1 (`spec/lorawan-vectors.md`): DevAddr 49be7df1, FCnt 2, port 1, "test".
const VECTOR_1: &str = "QPF9vkkAAgABlUN4disR/w0=";

#[test]
fn an_uplink_from_a_forwarder_reaches_the_broker_decoded() {
    let mosquitto = Mosquitto::start("");
    let central_dir = tempfile::tempdir().unwrap();
    let central = start_central(central_dir.path(), neosens_runtime::testing::free_port(), &mosquitto.url());
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
}
