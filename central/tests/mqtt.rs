//! Central and a broker: statuses ingested through the embedded broker and through a real
//! Mosquitto, with both restarting under it.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::client::wire::{Device, Ready};
use common::client::{ApiClient, parse_raw};
use common::{LOGIN, MAC, first_password, register_example, start, start_with};
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

/// The example device as the API shows it now.
fn the_device(addr: SocketAddr) -> Device {
    ApiClient::admin(addr).device(MAC).expect("the example device")
}

/// The example device's last status text.
fn last_status(addr: SocketAddr) -> Option<String> {
    the_device(addr).last_status
}

#[test]
fn a_device_status_through_the_embedded_broker() {
    let dir = tempfile::tempdir().unwrap();
    let central = start(dir.path());
    let addr = central.addr("http");
    assert_eq!(central.serving["embedded_broker"], true);
    let broker: SocketAddr = central.addr("mqtt");
    let admin = ApiClient::admin(addr);
    register_example(addr);
    let password = first_password(addr, MAC);
    // A failure-state rule: firmware older than 2024 raises an alert.
    let rule =
        json!({"status_rules": [{"name": "old_firmware", "field": "firmware", "op": "lt", "value": 240101}]});
    let t = admin.patch_device_type("esp32", rule).expect("the rule");
    let r = &t.status_rules[0];
    assert_eq!((r.name.as_str(), r.field.as_str(), r.op.as_str()), ("old_firmware", "firmware", "lt"));
    assert_eq!(r.value, json!(240101));
    let bad = json!({"status_rules": [{"name": "x", "field": "heap", "op": "lt", "value": "low"}]});
    let err = admin.patch_device_type("esp32", bad).unwrap_err();
    assert_eq!((err.status, err.field.as_deref()), (400, Some("status_rules[0]")), "{err:?}");

    assert!(device(broker, "neOSensor_3456_8f1c", "wrong").is_err(), "a wrong password is refused");
    let client =
        device(broker, "neOSensor_3456_8f1c", &password).expect("the device connects with its credentials");
    client.publish("irit2/366/device", QoS::AtMostOnce, false, STATUS).unwrap();
    wait_until("status stored", || last_status(addr).as_deref() == Some("running"));
    let d = the_device(addr);
    assert_eq!(d.state, "ok");
    let metrics = neosens_runtime::testing::raw_http(
        addr,
        format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nAccept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    assert_eq!(metrics.status, 200);
    let text = metrics.text();
    for line in [
        "neosens_mqtt_connected 1",
        "neosens_status_stored_total 1",
        "neosens_provisioning_requests_total{path=\"credentials\",outcome=\"delivered\"} 1",
        "neosens_devices 1",
        "neosens_devices_by_state{state=\"ok\",type=\"esp32\",site=\"ut3\"} 1",
        "neosens_devices_outdated 0",
        "neosens_alerts_open{kind=\"outage\"} 0",
        "neosens_alerts_open{kind=\"failure\"} 1",
        "neosens_webhook_deliveries_total{outcome=\"failed\"} 0",
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} missing from /metrics:\n{text}");
    }
    assert!(text.ends_with("# EOF\n"), "OpenMetrics text ends with # EOF");
    assert!(text.contains("neosens_store_size_bytes "), "{text}");
    assert!(text.contains("neosens_store_write_duration_seconds_count "), "{text}");
    let alerts = admin.alerts().expect("alerts");
    let alert = &alerts[0];
    assert_eq!((alert.kind.as_str(), alert.rule.as_deref()), ("failure", Some("old_firmware")), "{alerts:?}");
    assert_eq!(alert.detail.as_deref(), Some("firmware = 231027 (< 240101)"));
    assert!(
        text.lines().any(|l| l.starts_with("neosens_http_request_duration_seconds_count{route=\"/api/v1/devices/{id}\",method=\"GET\",status=\"2xx\"}")),
        "latency by route pattern, not by raw path:\n{text}"
    );
    let ready = neosens_runtime::testing::http_get(addr, "/readyz");
    assert_eq!(ready.status, 200, "{}", ready.text());
    let ready: Ready = parse_raw("/readyz", &ready);
    assert_eq!((ready.checks.store.ok, ready.checks.broker_link.ok), (true, true));
    // The payload is the device's status as it sent it: free-form, read by key.
    let payload = d.last_payload.as_ref().expect("the last payload");
    assert_eq!(payload["heap"], 171_204);
    assert!(d.last_seen.is_some());
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
    let admin = ApiClient::admin(addr);
    register_example(addr);
    // A second room and device, to see that nothing is stored against the wrong one.
    let irit2 = admin.building_named("IRIT2").id;
    let room = admin.create_room(json!({"building": irit2, "name": "367"})).expect("room 367");
    admin
        .create_device(json!({"uid": "24:0a:c4:00:00:01", "type": "esp32", "rooms": [room.id]}))
        .expect("a second device");

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
    wait_until("status stored", || last_status(addr).as_deref() == Some("running"));
    let other = admin.device("24:0a:c4:00:00:01").expect("the second device");
    assert_eq!(other.last_status, None, "never stored against the wrong device");

    // Broker restart: central's link comes back by itself and ingests again.
    mosquitto.restart();
    let rebooting = STATUS.replace("\"running\"", "\"rebooting\"");
    wait_until("ingestion after a broker restart", || {
        let _c = publish(&rebooting, "irit2/366/device");
        std::thread::park_timeout(Duration::from_millis(50));
        last_status(addr).as_deref() == Some("rebooting")
    });

    // Central restart: what it stored is there, and it ingests again.
    assert!(central.signal_and_wait("TERM").success());
    let central = start_with(dir.path(), &env);
    let addr = central.addr("http");
    assert_eq!(last_status(addr).as_deref(), Some("rebooting"));
    wait_until("ingestion after a central restart", || {
        let _c = publish(STATUS, "irit2/366/device");
        std::thread::park_timeout(Duration::from_millis(50));
        last_status(addr).as_deref() == Some("running")
    });
}

/// A device connection that subscribes like the firmware's device module and collects orders.
fn listening_device(
    broker: SocketAddr,
    password: &str,
    filter: &str,
) -> std::sync::mpsc::Receiver<(String, String)> {
    let mut options = MqttOptions::new("neOSensor_3456_1", broker.ip().to_string(), broker.port());
    options.set_keep_alive(Duration::from_secs(60));
    options.set_credentials(LOGIN, password);
    let (client, mut connection) = Client::new(options, 10);
    client.subscribe(filter, QoS::AtMostOnce).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let (subscribed, is_subscribed) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _client = client;
        for event in connection.iter() {
            match event {
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    let _ = subscribed.send(());
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if tx.send((p.topic.clone(), String::from_utf8_lossy(&p.payload).into_owned())).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    is_subscribed.recv_timeout(neosens_runtime::testing::DEADLINE).expect("SubAck");
    rx
}

#[test]
fn orders_reach_the_device_with_the_exact_bytes_and_are_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let central = start(dir.path());
    let addr = central.addr("http");
    register_example(addr);
    let password = first_password(addr, MAC);
    let orders = listening_device(central.addr("mqtt"), &password, "irit2/366/+/command");
    let next = || orders.recv_timeout(neosens_runtime::testing::DEADLINE).expect("order received");
    let admin = ApiClient::admin(addr);
    let send = |body: Value| admin.send_order(MAC, body);

    // Until the link is up: 503, nothing sent.
    wait_until("central's link up", || match send(json!({"order": "status"})) {
        Ok(_) => true,
        Err(e) if e.status == 503 => false,
        Err(e) => panic!("{e}"),
    });
    assert_eq!(
        next(),
        ("irit2/366/device/command".into(), r#"{"dest": "24:0A:C4:12:34:56", "order": "status"}"#.into())
    );
    let record = send(json!({"order": "frequency", "value": 900})).expect("sent");
    assert_eq!(record.outcome, "sent", "{record:?}");
    assert_eq!(next().1, r#"{"dest": "24:0A:C4:12:34:56", "order": "frequency", "value": 900}"#);
    send(json!({"order": "acquire", "module": "temperature", "dest": "auto_3456"})).expect("sent");
    assert_eq!(
        next(),
        ("irit2/366/temperature/command".into(), r#"{"dest": "auto_3456", "order": "acquire"}"#.into())
    );

    // Refused before anything is sent: unknown or unsupported orders, bad values, too big.
    for (body, field) in [
        (json!({"order": "fly"}), "order"),
        (json!({"order": "update"}), "order"),
        (json!({"order": "frequency", "value": 60}), "value"),
        (json!({"order": "frequency", "value": "900"}), "value"),
        (json!({"order": "status", "value": 1}), "value"),
        (json!({"order": "upgrade", "value": format!("http://x/{}", "f".repeat(250))}), "order"),
        (json!({"order": "acquire", "module": "a/b"}), "module"),
    ] {
        let err = send(body.clone()).unwrap_err();
        assert_eq!((err.status, err.field.as_deref()), (400, Some(field)), "{body}: {err:?}");
    }
    let err =
        send(json!({"order": "upgrade", "value": format!("http://x/{}", "f".repeat(250))})).unwrap_err();
    assert!(err.message.contains("over the device limit of 256"), "{err:?}");

    // Reinstall: new credentials, not delivered, then reboot.
    let record = send(json!({"order": "reinstall"})).expect("sent");
    assert_eq!(record.order, "reinstall", "{record:?}");
    assert_eq!(next().1, r#"{"dest": "24:0A:C4:12:34:56", "order": "reboot"}"#);
    assert!(!admin.device(MAC).expect("the device").credentials_delivered);
    assert_ne!(first_password(addr, MAC), password, "the device provisions again and gets a new password");

    // Every order is in the history, newest first, with who sent it.
    let items = admin.orders(MAC).expect("the history");
    let names: Vec<&str> = items.iter().map(|o| o.order.as_str()).collect();
    assert_eq!(&names[..4], ["reinstall", "acquire", "frequency", "status"], "{items:?}");
    assert!(items.iter().all(|o| o.by == "bootstrap (NEOSENS_ADMIN_TOKEN)" && o.outcome == "sent"));
    assert_eq!(items[0].payload, r#"{"dest": "24:0A:C4:12:34:56", "order": "reboot"}"#);
}
