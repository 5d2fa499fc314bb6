//! Part of the attack suite (docs/security.md): a device publishing in its room cannot make
//! central drop another device's statuses with a forged `msg_id`. Central trusts a `msg_id` only
//! with a valid relay stamp of a gateway whose scope holds the device, and a reinstalled gateway
//! (a new outbox epoch, numbering from 1 again) is not taken for a replay. Real central, real
//! Mosquitto.

mod common;

use std::net::SocketAddr;

use common::client::ApiClient;
use common::{MAC, register_example, start_with};
use neosens_runtime::keys::Keys;
use neosens_runtime::relay::RelayKey;
use neosens_runtime::testing::{Mosquitto, http_get, wait_until};
use serde_json::json;

const TOPIC: &str = "irit2/366/device";

fn sample(metrics: &str, series: &str) -> f64 {
    metrics.lines().find_map(|l| l.strip_prefix(series)).and_then(|v| v.trim().parse().ok()).unwrap_or(0.0)
}

/// Enrols a gateway scoped to `building`; returns its id and forwarding key.
fn enrolled(addr: SocketAddr, name: &str, building: &str) -> (String, RelayKey) {
    let admin = ApiClient::admin(addr);
    let gw =
        admin.create_gateway(json!({"name": name, "scope": {"buildings": [building]}})).expect("gateway");
    let token = admin.enrolment(&gw.id).expect("an enrolment token").token;
    let grant = ApiClient::anonymous(addr).enroll(&token).expect("enrolled");
    let hex = &grant.keys;
    let bytes: Vec<u8> =
        (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
    let keys = Keys::from_bytes(
        &bytes[..32].try_into().unwrap(),
        &bytes[32..].try_into().unwrap(),
        ring::rand::SystemRandom::new(),
    );
    (gw.id, RelayKey::derive(&keys))
}

struct Publisher {
    client: rumqttc::Client,
    connection: rumqttc::Connection,
}

impl Publisher {
    fn new(broker: SocketAddr) -> Self {
        let options = rumqttc::MqttOptions::new("neighbour", "127.0.0.1", broker.port());
        let (client, connection) = rumqttc::Client::new(options, 10);
        Publisher { client, connection }
    }

    /// Publishes a status of the test device (QoS 1, waits for the broker's PUBACK).
    fn status(&mut self, status: &str, msg_id: Option<u64>, relay: Option<String>) {
        let mut body = json!({"status": status, "unitID": MAC});
        if let Some(m) = msg_id {
            body["msg_id"] = json!(m);
        }
        if let Some(r) = relay {
            body["relay"] = json!(r);
        }
        self.client.publish(TOPIC, rumqttc::QoS::AtLeastOnce, false, body.to_string()).unwrap();
        for event in self.connection.iter() {
            match event {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) => return,
                Ok(_) => {}
                Err(e) => panic!("publishing: {e}"),
            }
        }
    }
}

#[test]
fn forged_msg_ids_cannot_silence_a_device_and_a_reinstalled_gateway_is_heard() {
    let mosquitto = Mosquitto::start("");
    let dir = tempfile::tempdir().unwrap();
    let central = start_with(dir.path(), &[("NEOSENS_MQTT_URL", &mosquitto.url())]);
    let addr = central.addr("http");
    let admin = ApiClient::admin(addr);
    register_example(addr);
    let irit2 = admin.building_named("IRIT2").id;
    let u4 = admin.create_building(json!({"name": "U4"})).expect("building U4");
    let (gw, key) = enrolled(addr, "gw-irit2", &irit2);
    let (other_gw, other_key) = enrolled(addr, "gw-u4", &u4.id);
    let last_status = || admin.device(MAC).expect("the device").last_status.unwrap_or_default();
    let metric = |series: &str| sample(&http_get(addr, "/metrics").text(), series);
    let untrusted = "neosens_status_untrusted_msg_id_total";
    let duplicates = "neosens_status_dropped_total{reason=\"duplicate\"}";
    let mut p = Publisher::new(mosquitto.addr());
    wait_until("central subscribed", || {
        p.status("hello", None, None);
        last_status() == "hello"
    });

    // A neighbour forges a huge msg_id, without a stamp: kept as a status, its id ignored.
    p.status("forged", Some(1 << 60), None);
    wait_until("the forged status counted as untrusted", || metric(untrusted) >= 1.0);
    // ... so the device's gateway is still heard (before: dropped as "already seen", forever).
    p.status("stamped-5", Some(5), Some(key.stamp(&gw, 0xe1, 5, TOPIC)));
    wait_until("the gateway's status stored", || last_status() == "stamped-5");
    // A real duplicate (sent again after a gateway crash) is dropped.
    p.status("stamped-5-again", Some(5), Some(key.stamp(&gw, 0xe1, 5, TOPIC)));
    wait_until("the duplicate dropped", || metric(duplicates) >= 1.0);
    assert_eq!(last_status(), "stamped-5");
    // A stamp with a made-up tag, or by a gateway whose scope does not hold the device: untrusted.
    let forged_tag = format!("{gw}.00000000000000e1.{}", "ab".repeat(16));
    p.status("forged-tag", Some(1 << 60), Some(forged_tag));
    p.status("other-gateway", Some(1 << 60), Some(other_key.stamp(&other_gw, 0xe1, 1 << 60, TOPIC)));
    wait_until("both counted as untrusted", || metric(untrusted) >= 3.0);
    p.status("stamped-6", Some(6), Some(key.stamp(&gw, 0xe1, 6, TOPIC)));
    wait_until("the gateway still heard", || last_status() == "stamped-6");
    // The gateway is reinstalled: a new epoch, numbering from 1 again.
    p.status("reinstalled-1", Some(1), Some(key.stamp(&gw, 0xe2, 1, TOPIC)));
    wait_until("the reinstalled gateway heard", || last_status() == "reinstalled-1");
    assert_eq!(metric(duplicates), 1.0, "{}", http_get(addr, "/metrics").text());
}
