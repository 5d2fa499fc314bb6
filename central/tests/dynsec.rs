//! Central driving Mosquitto's dynamic-security plug-in: the broker itself enforces the device's
//! rights, orders reach it with the exact bytes, disabling it disconnects it.

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use common::client::ApiClient;
use common::dynsec::{ADMIN_PASSWORD, ADMIN_USER, broker};
use common::{LOGIN, MAC, first_password, register_example, start_with};
use neosens_runtime::testing::{DEADLINE, ServiceProcess, message, wait_until};
use rumqttc::{Client, Event, MqttOptions, Packet, QoS, SubscribeReasonCode};
use serde_json::json;

const STATUS: &str = r#"{"frequency":1800,"time":"2023-10-27 10:15:02 +0200","status":"running","modules":3,"heap":171204,"hardware":"esp32","firmware":231027,"board":"neOSensor","board_rev":1.2,"unitID":"24:0a:c4:12:34:56"}"#;

enum Seen {
    Connected(bool),
    SubAck(Vec<SubscribeReasonCode>),
    Message(String, String),
    Gone,
}

fn client(broker: SocketAddr, id: &str, user: &str, password: &str) -> (Client, Receiver<Seen>) {
    let mut options = MqttOptions::new(id, broker.ip().to_string(), broker.port());
    options.set_keep_alive(Duration::from_secs(60));
    options.set_credentials(user, password);
    let (client, mut connection) = Client::new(options, 10);
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for event in connection.iter() {
            let seen = match event {
                Ok(Event::Incoming(Packet::ConnAck(a))) => {
                    Seen::Connected(a.code == rumqttc::ConnectReturnCode::Success)
                }
                Ok(Event::Incoming(Packet::SubAck(s))) => Seen::SubAck(s.return_codes),
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    Seen::Message(p.topic.clone(), String::from_utf8_lossy(&p.payload).into_owned())
                }
                Ok(_) => continue,
                Err(rumqttc::ConnectionError::ConnectionRefused(_)) => Seen::Connected(false),
                Err(_) => Seen::Gone,
            };
            let gone = matches!(seen, Seen::Gone | Seen::Connected(false));
            if tx.send(seen).is_err() || gone {
                return;
            }
        }
    });
    (client, rx)
}

fn connected(rx: &Receiver<Seen>) -> bool {
    matches!(rx.recv_timeout(DEADLINE), Ok(Seen::Connected(true)))
}

/// How many full reconciliations central has logged.
fn reconciliations(central: &ServiceProcess) -> usize {
    let done = |l: &serde_json::Value| message(l) == Some("dynamic security reconciled with the registry");
    central.logs().iter().filter(|l| done(l)).count()
}

#[test]
fn the_broker_enforces_what_the_registry_says() {
    let mosquitto = broker();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("mqtt://{ADMIN_USER}:{ADMIN_PASSWORD}@127.0.0.1:{}", mosquitto.port);
    let central = start_with(dir.path(), &[("NEOSENS_MQTT_URL", &url), ("NEOSENS_MQTT_DYNSEC", "true")]);
    let addr = central.addr("http");
    let admin = ApiClient::admin(addr);
    register_example(addr);
    // The room the device moves to below, made now: a room change reconciles everything, and the
    // move must be followed on its own.
    let before_room = reconciliations(&central);
    let first_room = admin.rooms().unwrap().into_iter().find(|r| r.name == "366").expect("room 366");
    let next_room =
        admin.create_room(json!({"building": first_room.building, "name": "367"})).expect("room 367");
    wait_until("the new room reconciled", || reconciliations(&central) > before_room);
    let password = first_password(addr, MAC);
    let broker = mosquitto.addr();

    // The device's client appears in the broker shortly after its registration.
    let mut attempt = 0;
    let (device, events) = loop {
        attempt += 1;
        let (c, rx) = client(broker, &format!("neOSensor_3456_{attempt:x}"), LOGIN, &password);
        if connected(&rx) {
            break (c, rx);
        }
        if attempt >= 500 {
            panic!("the device never got its broker account; central said: {:#?}", central.logs());
        }
        std::thread::park_timeout(Duration::from_millis(20));
    };
    let (_wrong, refused) = client(broker, "neOSensor_3456_x", LOGIN, "wrong");
    assert!(!connected(&refused), "a wrong password is refused by the broker");

    // Its subscriptions: its command topics yes, `#` no.
    device.subscribe("irit2/366/+/command", QoS::AtMostOnce).unwrap();
    device.subscribe("#", QoS::AtMostOnce).unwrap();
    let mut acks = Vec::new();
    while acks.len() < 2 {
        if let Ok(Seen::SubAck(codes)) = events.recv_timeout(DEADLINE) {
            acks.extend(codes);
        }
    }
    assert!(matches!(acks[0], SubscribeReasonCode::Success(_)), "{acks:?}");
    assert_eq!(acks[1], SubscribeReasonCode::Failure, "no `#` for a device");

    // Publishing: another room is refused by the broker (a watcher with every right sees only
    // the allowed message), its own room goes through and central records the status.
    let (watcher, watched) = client(broker, "watcher", ADMIN_USER, ADMIN_PASSWORD);
    assert!(connected(&watched));
    watcher.subscribe("irit2/+/temperature", QoS::AtMostOnce).unwrap();
    assert!(matches!(watched.recv_timeout(DEADLINE), Ok(Seen::SubAck(_))));
    device.publish("irit2/367/temperature", QoS::AtMostOnce, false, "not allowed").unwrap();
    device.publish("irit2/366/temperature", QoS::AtMostOnce, false, "allowed").unwrap();
    match watched.recv_timeout(DEADLINE) {
        Ok(Seen::Message(topic, payload)) => {
            assert_eq!((topic.as_str(), payload.as_str()), ("irit2/366/temperature", "allowed"))
        }
        _ => panic!("the allowed publish did not arrive"),
    }
    device.publish("irit2/366/device", QoS::AtMostOnce, false, STATUS).unwrap();
    wait_until("status recorded", || {
        admin.device(MAC).expect("the device").last_status.as_deref() == Some("running")
    });

    // An order reaches it, byte for byte.
    admin.send_order(MAC, json!({"order": "status"})).expect("the order accepted");
    let order = loop {
        match events.recv_timeout(DEADLINE) {
            Ok(Seen::Message(topic, payload)) => break (topic, payload),
            Ok(_) => continue,
            Err(_) => panic!("no order received"),
        }
    };
    assert_eq!(
        order,
        ("irit2/366/device/command".into(), r#"{"dest": "24:0A:C4:12:34:56", "order": "status"}"#.into())
    );

    // Moved to another room, it keeps its connection and gets the new room's rights: the
    // new ACLs alone are sent (the plug-in disconnects a client at a password or client command).
    // Through the change-by-change path: no reconciliation meanwhile.
    let before_move = reconciliations(&central);
    admin.patch_device(MAC, json!({"rooms": [next_room.id]})).expect("moved");
    wait_until("the move reaches the broker", || {
        device
            .publish("irit2/367/temperature", QoS::AtMostOnce, false, "moved")
            .expect("the device still connected");
        matches!(watched.recv_timeout(Duration::from_millis(100)), Ok(Seen::Message(t, _)) if t == "irit2/367/temperature")
    });
    assert!(
        events.try_iter().all(|e| !matches!(e, Seen::Gone | Seen::Connected(_))),
        "the move disconnected the device"
    );
    device.publish("irit2/366/temperature", QoS::AtMostOnce, false, "left").unwrap();
    device.publish("irit2/367/temperature", QoS::AtMostOnce, false, "here").unwrap();
    loop {
        match watched.recv_timeout(DEADLINE) {
            Ok(Seen::Message(topic, payload)) if payload == "moved" => {
                assert_eq!(topic, "irit2/367/temperature")
            }
            Ok(Seen::Message(topic, payload)) => {
                assert_eq!(
                    (topic.as_str(), payload.as_str()),
                    ("irit2/367/temperature", "here"),
                    "the old room is closed"
                );
                break;
            }
            _ => panic!("the new room's publish did not arrive"),
        }
    }

    assert_eq!(reconciliations(&central), before_move, "the move went through a reconciliation");

    // Disabling it disconnects it at once.
    admin.disable_device(MAC).expect("disabled");
    let gone = loop {
        match events.recv_timeout(DEADLINE) {
            Ok(Seen::Gone) | Ok(Seen::Connected(false)) => break true,
            Ok(_) => continue,
            Err(_) => break false,
        }
    };
    assert!(gone, "the disabled device was not disconnected");
    let (_c, again) = client(broker, "neOSensor_3456_y", LOGIN, &password);
    assert!(!connected(&again), "a disabled device cannot reconnect");

    // An enrolled gateway gets an account with the rights of its scope's rooms.
    let gw = admin.create_gateway(json!({"name": "gw-ut3", "scope": {"site": "ut3"}})).expect("gateway");
    let token = admin.enrolment(&gw.id).expect("an enrolment token").token;
    let grant = ApiClient::anonymous(addr).enroll(&token).expect("enrolled");
    let (user, secret) = (grant.mqtt_username.as_str(), grant.mqtt_password.as_str());
    let mut attempt = 0;
    let (gateway, gw_events) = loop {
        attempt += 1;
        let (c, rx) = client(broker, &format!("gw-{attempt:x}"), user, secret);
        if connected(&rx) {
            break (c, rx);
        }
        assert!(
            attempt < 500,
            "the gateway never got its broker account; central said: {:#?}",
            central.logs()
        );
        std::thread::park_timeout(Duration::from_millis(20));
    };
    // Its account exists now; its API secret is not its broker password.
    let (_c, refused) = client(broker, "gw-api-secret", user, &grant.secret);
    assert!(!connected(&refused), "the gateway's API secret opened a broker session");
    gateway.subscribe("irit2/366/device/command", QoS::AtMostOnce).unwrap();
    gateway.subscribe("#", QoS::AtMostOnce).unwrap();
    let mut acks = Vec::new();
    while acks.len() < 2 {
        if let Ok(Seen::SubAck(codes)) = gw_events.recv_timeout(DEADLINE) {
            acks.extend(codes);
        }
    }
    assert!(matches!(acks[0], SubscribeReasonCode::Success(_)), "its rooms' commands: {acks:?}");
    assert_eq!(acks[1], SubscribeReasonCode::Failure, "no `#` for a gateway either");
    gateway.publish("irit2/366/temperature", QoS::AtMostOnce, false, "relayed").unwrap();
    match watched.recv_timeout(DEADLINE) {
        Ok(Seen::Message(topic, payload)) => {
            assert_eq!((topic.as_str(), payload.as_str()), ("irit2/366/temperature", "relayed"))
        }
        _ => panic!("the gateway's relayed reading did not arrive"),
    }
    // The plug-in took every command central sent (none refused, none unanswered).
    let refused: Vec<_> = central
        .logs()
        .into_iter()
        .filter(|l| message(l).is_some_and(|m| m.contains("refused a command") || m.contains("did not take")))
        .collect();
    assert!(refused.is_empty(), "{refused:#?}");
}

/// A broker client central did not create (an operator's monitoring account) is never changed,
/// even when a device is registered with its name: its password keeps working, the device's
/// does not, and central says why.
#[test]
fn clients_central_did_not_create_are_left_alone() {
    let mosquitto = broker();
    let status = Command::new("mosquitto_ctrl")
        .args(["-h", "127.0.0.1", "-p", &mosquitto.port.to_string(), "-u", ADMIN_USER, "-P", ADMIN_PASSWORD])
        .args(["dynsec", "createClient", "ops-monitor", "-p", "ops-password"])
        .stdout(std::process::Stdio::null())
        .status()
        .expect("mosquitto_ctrl");
    assert!(status.success(), "the operator's client is created");
    let dir = tempfile::tempdir().unwrap();
    let url = format!("mqtt://{ADMIN_USER}:{ADMIN_PASSWORD}@127.0.0.1:{}", mosquitto.port);
    let mut central = start_with(dir.path(), &[("NEOSENS_MQTT_URL", &url), ("NEOSENS_MQTT_DYNSEC", "true")]);
    let addr = central.addr("http");
    let (room, _) = register_example(addr);
    let device =
        json!({"uid": "24:0a:c4:00:00:01", "type": "esp32", "rooms": [room], "login": "ops-monitor"});
    ApiClient::admin(addr).create_device(device).expect("the device, with the operator's login");
    let password = first_password(addr, "24:0a:c4:00:00:01");
    central.wait_for_log(|line| {
        line["login"] == "ops-monitor"
            && neosens_runtime::testing::message(line).is_some_and(|m| m.contains("did not create"))
    });
    // The example device, registered before, did get its account: the driver is working.
    let example = first_password(addr, MAC);
    let broker = mosquitto.addr();
    let mut attempt = 0;
    while !connected(&client(broker, &format!("example-{attempt}"), LOGIN, &example).1) {
        attempt += 1;
        assert!(attempt < 500, "the example device never got its broker account");
        std::thread::park_timeout(Duration::from_millis(20));
    }
    assert!(
        connected(&client(broker, "ops", "ops-monitor", "ops-password").1),
        "the operator's password holds"
    );
    assert!(!connected(&client(broker, "dev", "ops-monitor", &password).1), "the device's does not");
}
