//! OTAA end to end: a node registered in central with its JoinEUI and AppKey, two real gateway
//! agents of its building, a real Mosquitto. The node joins through the first (join-accept in
//! RX1 at the join request's `tmst` + 5 s, session keys the node derives itself), its uplinks
//! are decoded, the session reaches central and the second gateway, which decodes the node's
//! next uplink without a new join. A replayed join request is refused; with central stopped the
//! node joins again, its new session works at once, the old one no longer, and central learns
//! the new session once it is back.

mod common;

use std::net::{SocketAddr, UdpSocket};

use common::client::wire::Reading;
use common::client::{ApiClient, parse_bytes};
use common::{enrolled_gateway, metric, start_central, start_edge};
use neosens_lora_node::otaa::{self, OtaaKeys};
use neosens_lora_node::{Session, cayenne, push_data, uplink};
use neosens_runtime::testing::{DEADLINE, Mosquitto, MqttWitness, ServiceProcess, wait_until};
use serde_json::{Value, json};

const DEV_EUI: &str = "70B3D57ED00000AA";
const KEYS: OtaaKeys = OtaaKeys {
    dev_eui: [0x70, 0xb3, 0xd5, 0x7e, 0xd0, 0, 0, 0xaa],
    join_eui: [0x70, 0xb3, 0xd5, 0x7e, 0xd0, 0, 0, 0x01],
    app_key: [0x2b, 0x7e, 0x15, 0x16, 0x28, 0xae, 0xd2, 0xa6, 0xab, 0xf7, 0x15, 0x88, 0x09, 0xcf, 0x4f, 0x3c],
};
const EUI_A: [u8; 8] = [0xaa, 0x55, 0x5a, 0, 0, 0, 0, 0x0a];
const EUI_B: [u8; 8] = [0xaa, 0x55, 0x5a, 0, 0, 0, 0, 0x0b];

/// A packet forwarder: its socket (the downlink path, once its keep-alive went) and the agent;
/// the `PULL_RESP`s that came while it waited for something else.
struct Forwarder {
    socket: UdpSocket,
    agent: SocketAddr,
    eui: [u8; 8],
    stashed: std::cell::RefCell<Vec<Vec<u8>>>,
}

impl Forwarder {
    fn new(agent: &ServiceProcess, eui: [u8; 8]) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_read_timeout(Some(DEADLINE)).unwrap();
        let f = Forwarder { socket, agent: agent.addr("udp"), eui, stashed: Default::default() };
        f.socket.send_to(&otaa::pull_data(1, eui), f.agent).unwrap();
        let mut buf = [0u8; 64];
        let (n, _) = f.socket.recv_from(&mut buf).expect("PULL_ACK");
        assert_eq!(buf[3], 0x04, "{:?}", &buf[..n]);
        f
    }

    /// The next datagram from the agent.
    fn receive(&self) -> Vec<u8> {
        let mut buf = [0u8; 2048];
        let (n, _) = self.socket.recv_from(&mut buf).expect("a datagram from the agent");
        buf[..n].to_vec()
    }

    /// Sends a frame heard at `tmst` (the token carries it: `tmst` = token × 1000) and waits
    /// for its PUSH_ACK (downlinks meanwhile are kept).
    fn push(&self, phy: &[u8], token: u16) {
        self.socket.send_to(&push_data(token, self.eui, phy, -70, 7.5), self.agent).unwrap();
        loop {
            let d = self.receive();
            if d == [2, (token >> 8) as u8, token as u8, 0x01] {
                return;
            }
            assert_eq!(d[3], 0x03, "a PUSH_ACK or a PULL_RESP: {d:?}");
            self.stashed.borrow_mut().push(d);
        }
    }

    /// The next join-accept's `PULL_RESP` (other downlinks are left aside).
    fn join_accept(&self) -> Vec<u8> {
        let is_accept = |d: &[u8]| otaa::pull_resp(d).is_some_and(|(_, phy)| phy.first() == Some(&0x20));
        if let Some(i) = self.stashed.borrow().iter().position(|d| is_accept(d)) {
            return self.stashed.borrow_mut().remove(i);
        }
        loop {
            let d = self.receive();
            if is_accept(&d) {
                return d;
            }
        }
    }

    /// A join through this forwarder: the accept's `PULL_RESP` checked against the request's
    /// `tmst`, answered with a TX_ACK; the session the node derives.
    fn join(&self, dev_nonce: u16) -> Session {
        self.push(&otaa::join_request(&KEYS, dev_nonce), dev_nonce);
        let resp = self.join_accept();
        let (txpk, phy) = otaa::pull_resp(&resp).expect("a PULL_RESP");
        assert_eq!(
            (txpk["tmst"].as_u64(), txpk["freq"].as_f64(), txpk["datr"].as_str(), txpk["ipol"].as_bool()),
            (Some(u64::from(dev_nonce) * 1000 + 5_000_000), Some(868.1), Some("SF7BW125"), Some(true)),
            "RX1: JOIN_ACCEPT_DELAY1 (5 s) after the request, its channel and data rate"
        );
        self.socket.send_to(&otaa::tx_ack(&resp, self.eui), self.agent).unwrap();
        otaa::accept(&KEYS, dev_nonce, &phy).expect("a join-accept the node reads")
    }
}

fn node_view(c: SocketAddr) -> Value {
    ApiClient::admin(c).raw("GET", &format!("/api/v1/devices/{DEV_EUI}"), None).1
}

#[test]
fn a_node_joins_at_the_gateway_roams_and_joins_again_while_central_is_stopped() {
    let mosquitto = Mosquitto::start("");
    let central_dir = tempfile::tempdir().unwrap();
    let port = neosens_runtime::testing::free_port();
    let mut central = start_central(central_dir.path(), port, &mosquitto.url());
    let c = central.addr("http");
    let admin = ApiClient::admin(c);
    let building = admin.create_building(json!({"name": "OTAA"})).expect("a building");
    let room = admin.create_room(json!({"building": building.id, "name": "101"})).expect("a room");
    admin.create_device_type(json!({"name": "cubecell", "orders": []})).expect("the type");
    let (status, node) = admin.raw(
        "POST",
        "/api/v1/devices",
        Some(json!({"uid": DEV_EUI, "type": "cubecell", "rooms": [room.id], "otaa": {
            "join_eui": "70B3D57ED0000001", "app_key": "2b7e151628aed2a6abf7158809cf4f3c", "codec": "cayenne_lpp"}})),
    );
    assert_eq!(status, 201, "{node}");
    assert!(!node.to_string().contains("2b7e1516"), "the AppKey is never shown: {node}");
    assert_eq!(node["otaa"]["app_key"], json!("sealed"));
    assert_eq!(node["lorawan"], Value::Null, "no session before a join");

    let scope = json!({"buildings": [building.id]});
    let (dir_a, dir_b) =
        (enrolled_gateway(c, "gw-otaa-a", scope.clone()), enrolled_gateway(c, "gw-otaa-b", scope));
    let config = |dir: &tempfile::TempDir| {
        let path = dir.path().join("edge.toml");
        std::fs::write(&path, "[central]\nsync_wait_s = 2\n").unwrap();
        path
    };
    let (config_a, config_b) = (config(&dir_a), config(&dir_b));
    let witness = MqttWitness::subscribe(mosquitto.addr(), "otaa/101/#");
    let edge_a = start_edge(dir_a.path(), &config_a, &mosquitto.url());
    let edge_b = start_edge(dir_b.path(), &config_b, &mosquitto.url());
    let (a, b) = (edge_a.addr("http"), edge_b.addr("http"));
    wait_until("both gateways synced the node", || {
        metric(a, "neosens_edge_devices_cached") == 1.0 && metric(b, "neosens_edge_devices_cached") == 1.0
    });
    let (fwd_a, fwd_b) = (Forwarder::new(&edge_a, EUI_A), Forwarder::new(&edge_b, EUI_B));

    // The join, answered by gateway A; the node's first uplink with its session is decoded.
    let first = fwd_a.join(1);
    fwd_a.push(&uplink(&first, 1, 2, &cayenne(21.5, 40.0)), 10);
    let reading: Reading = parse_bytes("a reading", &witness.next(|t, _| t == "otaa/101/temperature"));
    assert_eq!((reading.value.as_f64(), reading.unit_id.as_str()), (Some(21.5), "70b3d57ed00000aa"));

    // Central takes the session the node used; gateway B gets it and decodes the node's next
    // uplink, without a join.
    let dev_addr = format!("{:08X}", first.dev_addr);
    wait_until("central holds the joined session", || node_view(c)["lorawan"]["dev_addr"] == json!(dev_addr));
    assert_eq!(node_view(c)["otaa"]["last_join_dev_nonce"], json!(1));
    fwd_b.push(&uplink(&first, 2, 2, &cayenne(22.0, 41.0)), 11);
    let reading: Reading = parse_bytes("a reading", &witness.next(|t, _| t == "otaa/101/temperature"));
    assert_eq!(reading.value.as_f64(), Some(22.0), "decoded at gateway B");
    assert_eq!(
        metric(b, "neosens_edge_lorawan_frames_total{outcome=\"join_accepted\"}"),
        -1.0,
        "no join at B"
    );

    // The join request replayed through gateway B: its DevNonce is the one of the join central
    // holds, so no accept. (Through A within 5 s it is only another copy of the same frame.)
    fwd_b.push(&otaa::join_request(&KEYS, 1), 1);
    wait_until("the replay refused", || {
        metric(b, "neosens_edge_lorawan_frames_total{outcome=\"join_replay\"}") == 1.0
    });

    // Central stopped: the node joins again through A, and its new session works at once.
    assert!(central.signal_and_wait("TERM").success());
    let second = fwd_a.join(2);
    assert_ne!((second.dev_addr, second.nwk_s_key), (first.dev_addr, first.nwk_s_key));
    fwd_a.push(&uplink(&second, 1, 2, &cayenne(23.0, 42.0)), 12);
    let reading: Reading = parse_bytes("a reading", &witness.next(|t, _| t == "otaa/101/temperature"));
    assert_eq!(reading.value.as_f64(), Some(23.0));
    // The old session ended with the new join.
    let decoded = metric(a, "neosens_edge_lorawan_frames_total{outcome=\"decoded\"}");
    fwd_a.push(&uplink(&first, 3, 2, &cayenne(1.0, 1.0)), 13);
    wait_until("the old session's frame refused", || {
        metric(a, "neosens_edge_lorawan_frames_total{outcome=\"unknown_dev_addr\"}") >= 1.0
            || metric(a, "neosens_edge_lorawan_frames_total{outcome=\"mic_invalid\"}") >= 1.0
    });
    assert_eq!(metric(a, "neosens_edge_lorawan_frames_total{outcome=\"decoded\"}"), decoded);

    // Central back: the new session reaches it.
    let _central = start_central(central_dir.path(), port, &mosquitto.url());
    let dev_addr = format!("{:08X}", second.dev_addr);
    wait_until("central holds the new session", || {
        ApiClient::admin(c).try_raw("GET", &format!("/api/v1/devices/{DEV_EUI}"), None).is_ok_and(|(_, v)| {
            v["lorawan"]["dev_addr"] == json!(dev_addr) && v["otaa"]["last_join_dev_nonce"] == json!(2)
        })
    });
}
