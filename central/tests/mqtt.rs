//! Central and a broker: statuses ingested through the embedded broker and through a real
//! Mosquitto, with both restarting under it.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{LOGIN, MAC, api, first_password, register_example, start, start_with};
use neosens_runtime::testing::{Mosquitto, wait_until};
use rumqttc::{Client, ConnectReturnCode, Event, MqttOptions, Packet, QoS};
use serde_json::{Value, json};

const STATUS: &str = r#"{"frequency":1800,"time":"2023-10-27 10:15:02 +0200","status":"running","modules":3,"heap":171204,"hardware":"esp32","firmware":231027,"board":"neOSensor","board_rev":1.2,"unitID":"24:0a:c4:12:34:56"}"#;

/// A device connection as the firmware opens it: its login, clean session, keep-alive 60 s.
/// Returns the client once connected, or the refusal (a CONNACK code, or the connection closed
/// without one, as the embedded broker does).
fn device(broker: SocketAddr, client_id: &str, password: &str) -> Result<Client, String> {
    let mut options = MqttOptions::new(client_id, broker.ip().to_string(), broker.port());
    options.set_keep_alive(Duration::from_secs(60));
    options.set_credentials(LOGIN, password);
    let (client, mut connection) = Client::new(options, 10);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for event in connection.iter() {
            match event {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(ack.code);
                    }
                }
                Err(e) => {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(match e {
                            rumqttc::ConnectionError::ConnectionRefused(code) => code,
                            _ => ConnectReturnCode::NotAuthorized,
                        });
                    }
                    return;
                }
                Ok(_) => {}
            }
        }
    });
    match rx.recv_timeout(neosens_runtime::testing::DEADLINE) {
        Ok(ConnectReturnCode::Success) => Ok(client),
        Ok(code) => Err(format!("{code:?}")),
        Err(_) => Err("connection closed without CONNACK".into()),
    }
}

fn last_status(addr: SocketAddr) -> Value {
    api(addr, "GET", &format!("/api/v1/devices/{MAC}"), None).1
}

#[test]
fn a_device_status_through_the_embedded_broker() {
    let dir = tempfile::tempdir().unwrap();
    let central = start(dir.path());
    let addr = central.addr("http");
    assert_eq!(central.serving["embedded_broker"], true);
    let broker: SocketAddr = central.addr("mqtt");
    register_example(addr);
    let password = first_password(addr, MAC);

    assert!(device(broker, "neOSensor_3456_8f1c", "wrong").is_err(), "a wrong password is refused");
    let client =
        device(broker, "neOSensor_3456_8f1c", &password).expect("the device connects with its credentials");
    client.publish("irit2/366/device", QoS::AtMostOnce, false, STATUS).unwrap();
    wait_until("status stored", || last_status(addr)["last_status"] == "running");
    let d = last_status(addr);
    assert_eq!(d["state"], "ok");
    assert_eq!(d["last_payload"]["heap"], 171_204);
    assert!(d["last_seen"].as_str().is_some());
}

#[test]
fn statuses_through_mosquitto_survive_broker_and_central_restarts() {
    let mut mosquitto = Mosquitto::start("");
    let dir = tempfile::tempdir().unwrap();
    let url = mosquitto.url();
    let env = [("NEOSENS_MQTT_URL", url.as_str())];
    let mut central = start_with(dir.path(), &env);
    let addr = central.addr("http");
    assert_eq!(central.serving["embedded_broker"], false);
    register_example(addr);
    // A second room and device, to see that nothing is stored against the wrong one.
    let (_, building) = api(addr, "GET", "/api/v1/buildings", None);
    let irit2 =
        building["items"].as_array().unwrap().iter().find(|b| b["name"] == "IRIT2").unwrap()["id"].clone();
    let (_, room) = api(addr, "POST", "/api/v1/rooms", Some(json!({"building": irit2, "name": "367"})));
    api(
        addr,
        "POST",
        "/api/v1/devices",
        Some(json!({"uid": "24:0a:c4:00:00:01", "type": "esp32", "rooms": [room["id"]]})),
    );

    let broker = mosquitto.addr();
    let publish = |payload: &str, topic: &str| {
        let client = device(broker, &format!("sim_{}", fastrand::u32(..)), "anonymous-broker").unwrap();
        client.publish(topic, QoS::AtLeastOnce, false, payload).unwrap();
        client
    };
    // Garbage, an unknown device, and a status on another device's room: dropped, counted.
    let _a = publish("not json", "irit2/366/device");
    let _b = publish(&STATUS.replace("24:0a:c4:12:34:56", "aa:bb:cc:dd:ee:ff"), "irit2/366/device");
    let _c = publish(STATUS, "irit2/367/device");
    let _d = publish(STATUS, "irit2/366/device");
    wait_until("status stored", || last_status(addr)["last_status"] == "running");
    let (_, other) = api(addr, "GET", "/api/v1/devices/24:0a:c4:00:00:01", None);
    assert_eq!(other["last_status"], Value::Null, "never stored against the wrong device");

    // Broker restart: central's link comes back by itself and ingests again.
    mosquitto.restart();
    let rebooting = STATUS.replace("\"running\"", "\"rebooting\"");
    wait_until("ingestion after a broker restart", || {
        let _c = publish(&rebooting, "irit2/366/device");
        std::thread::park_timeout(Duration::from_millis(50));
        last_status(addr)["last_status"] == "rebooting"
    });

    // Central restart: what it stored is there, and it ingests again.
    assert!(central.signal_and_wait("TERM").success());
    let central = start_with(dir.path(), &env);
    let addr = central.addr("http");
    assert_eq!(last_status(addr)["last_status"], "rebooting");
    wait_until("ingestion after a central restart", || {
        let _c = publish(STATUS, "irit2/366/device");
        std::thread::park_timeout(Duration::from_millis(50));
        last_status(addr)["last_status"] == "running"
    });
}
