//! Two `neosens-central` replicas on one PostgreSQL database and one Mosquitto with dynamic
//! security (real servers started here): statuses are split between them and each ingested
//! once; the leader is `kill -9`ed and the other takes over the monitor and the broker's
//! dynamic security, with no alert notified twice and no status lost.

mod common;

use std::net::SocketAddr;
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use common::client::ApiClient;
use common::dynsec::{ADMIN_PASSWORD, ADMIN_USER, broker};
use common::{LOGIN, MAC, api, first_password, metric, register_example, start_replica};
use neosens_runtime::testing::postgres::Postgres;
use neosens_runtime::testing::{DEADLINE, wait_until};
use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use serde_json::{Value, json};

/// The example device's status; `firmware` below 240101 breaks the test's rule.
fn device_status(firmware: u32) -> String {
    json!({"frequency": 1800, "status": "running", "heap": 171_204, "firmware": firmware,
        "unitID": MAC})
    .to_string()
}

/// An MQTT client; its received messages (topic, JSON payload, or the text of one that is
/// not JSON) on the channel, `None` once connected.
fn client(
    broker: SocketAddr,
    id: &str,
    user: &str,
    password: &str,
) -> (Client, Receiver<Option<(String, Value)>>) {
    let mut options = MqttOptions::new(id, broker.ip().to_string(), broker.port());
    options.set_keep_alive(Duration::from_secs(60));
    options.set_credentials(user, password);
    let (client, mut connection) = Client::new(options, 100);
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for event in connection.iter() {
            let seen = match event {
                Ok(Event::Incoming(Packet::ConnAck(a))) if a.code == rumqttc::ConnectReturnCode::Success => {
                    None
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let text = || Value::String(String::from_utf8_lossy(&p.payload).into_owned());
                    Some((p.topic.clone(), serde_json::from_slice(&p.payload).unwrap_or_else(|_| text())))
                }
                Ok(_) => continue,
                Err(_) => return,
            };
            if tx.send(seen).is_err() {
                return;
            }
        }
    });
    (client, rx)
}

/// The device connected with `password`, once the leader's dynamic-security driver made its
/// broker account (retried until then).
fn device(broker: SocketAddr, password: &str) -> (Client, Receiver<Option<(String, Value)>>) {
    let deadline = Instant::now() + DEADLINE;
    for attempt in 0.. {
        let (c, rx) = client(broker, &format!("neOSensor_3456_{attempt:x}"), LOGIN, password);
        if matches!(rx.recv_timeout(Duration::from_secs(2)), Ok(None)) {
            return (c, rx);
        }
        assert!(Instant::now() < deadline, "the device never got its broker account");
        // Refused at once until then: a few attempts a second, as a device retries.
        std::thread::park_timeout(Duration::from_millis(50));
    }
    unreachable!()
}

/// Central's state topic (`[mqtt] state_topic`'s default).
const STATE_TOPIC: &str = "neosens/central/state";

/// Waits for `expected` on the state topic, skipping other states until then.
fn next_state(states: &Receiver<Option<(String, Value)>>, expected: &str) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match states.recv_timeout(left) {
            Ok(Some((topic, _))) if topic != STATE_TOPIC => panic!("unexpected message on {topic}"),
            Ok(Some((_, Value::String(s)))) if s == expected => return,
            Ok(_) => {}
            Err(e) => panic!("central's state never became {expected}: {e}"),
        }
    }
}

fn processed(addr: SocketAddr) -> f64 {
    metric(addr, "neosens_status_processed_total").unwrap_or(0.0)
}

fn leads(addr: SocketAddr) -> bool {
    metric(addr, "neosens_leader") == Some(1.0)
}

#[test]
fn the_other_replica_takes_over_when_the_leader_dies() {
    let mosquitto = broker();
    let pg = Postgres::start();
    let db = format!("{}?sslmode=disable", pg.database("central"));
    let mqtt = format!("mqtt://{ADMIN_USER}:{ADMIN_PASSWORD}@127.0.0.1:{}", mosquitto.port);
    let env =
        [("NEOSENS_DATABASE_URL", db.as_str()), ("NEOSENS_MQTT_URL", &mqtt), ("NEOSENS_MQTT_DYNSEC", "true")];
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut a = start_replica(a_dir.path(), None, &env);
    let a_http = a.addr("http");
    wait_until("A, started first, leads", || leads(a_http));
    let b = start_replica(b_dir.path(), Some(a_dir.path()), &env);
    let b_http = b.addr("http");
    let (admin_a, admin_b) = (ApiClient::admin(a_http), ApiClient::admin(b_http));

    register_example(a_http);
    let rule =
        json!({"status_rules": [{"name": "old_firmware", "field": "firmware", "op": "lt", "value": 240101}]});
    admin_a.patch_device_type("esp32", rule).expect("the rule");
    // The device gets its account once the leader has driven the broker — after central's own
    // role was granted, which disconnects every client of central's login, as the watcher is.
    let (sensor, connection) = device(mosquitto.addr(), &first_password(a_http, MAC));
    let (watcher, notifications) = client(mosquitto.addr(), "watcher", ADMIN_USER, ADMIN_PASSWORD);
    assert!(matches!(notifications.recv_timeout(DEADLINE), Ok(None)));
    watcher.subscribe("neosens/alerts", QoS::AtLeastOnce).unwrap();
    // Subscribed once its own probe comes back.
    loop {
        watcher.publish("neosens/alerts", QoS::AtLeastOnce, false, "{\"probe\":true}").unwrap();
        match notifications.recv_timeout(Duration::from_millis(500)) {
            Ok(Some((_, body))) if body["probe"] == true => break,
            Ok(other) => panic!("unexpected before any alert: {other:?}"),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(e) => panic!("the watcher lost its connection: {e}"),
        }
    }
    while notifications.recv_timeout(Duration::from_millis(200)).is_ok() {}
    assert!(!leads(b_http), "one leader at a time");
    // Central's retained state, shared by the replicas.
    let (state_watcher, states) = client(mosquitto.addr(), "state-watcher", ADMIN_USER, ADMIN_PASSWORD);
    assert!(matches!(states.recv_timeout(DEADLINE), Ok(None)));
    state_watcher.subscribe(STATE_TOPIC, QoS::AtLeastOnce).unwrap();
    next_state(&states, "online");

    // 100 statuses while both run: split between them, each ingested once.
    for _ in 0..100 {
        sensor.publish("irit2/366/device", QoS::AtMostOnce, false, device_status(231_027)).unwrap();
    }
    wait_until("100 statuses ingested", || processed(a_http) + processed(b_http) >= 100.0);
    let (by_a, by_b) = (processed(a_http), processed(b_http));
    assert_eq!(by_a + by_b, 100.0, "each status ingested once (A {by_a}, B {by_b})");
    assert!(by_a > 0.0 && by_b > 0.0, "the statuses are split (A {by_a}, B {by_b})");

    // The failure alert: notified once by the leader, shown by both, acknowledged through B.
    let opened = notifications.recv_timeout(DEADLINE).expect("the alert is notified").expect("a message");
    assert_eq!(opened.1["event"], "opened", "{opened:?}");
    let id = opened.1["alert"]["id"].as_u64().expect("an alert id");
    wait_until("B shows the leader's alert", || admin_b.alerts().is_ok_and(|a| a.iter().any(|x| x.id == id)));
    admin_b.ack_alert(id, json!({})).expect("acknowledged through B").expect("B knows the alert");
    wait_until("the leader takes the acknowledgement made through B", || {
        admin_a.alerts().is_ok_and(|a| a.iter().any(|x| x.id == id && x.ack.is_some()))
    });

    // Bulk operations (and firmware, campaigns) are the leader's: B sends them away.
    assert_eq!(neosens_runtime::testing::http_get(a_http, "/leader").status, 200);
    assert_eq!(neosens_runtime::testing::http_get(b_http, "/leader").status, 503);
    let (status, refused) = api(b_http, "GET", "/api/v1/bulk-operations", None);
    assert_eq!(status, 503, "{refused}");
    assert!(refused.to_string().contains("GET /leader"), "{refused}");
    let mut operation = json!({"target": {"devices": [MAC]}, "action": "move", "room": "irit2/366"});
    let (_, preview) = api(a_http, "POST", "/api/v1/bulk-operations/preview", Some(operation.clone()));
    operation["confirm"] = preview["confirm"].clone();
    let (status, done) = api(a_http, "POST", "/api/v1/bulk-operations", Some(operation));
    assert_eq!(status, 201, "{done}");

    // The leader dies; statuses sent once the broker knows it all reach B. Mosquitto publishes
    // A's last will as it drops A's connection; a status it reads in that same pass of its loop
    // can still go to A's share of the subscription, and is lost (QoS 0): the statuses wait
    // for the will.
    let before = processed(b_http);
    a.signal_and_wait("KILL");
    let killed = Instant::now();
    next_state(&states, "offline");
    for _ in 0..50 {
        sensor.publish("irit2/366/device", QoS::AtMostOnce, false, device_status(231_027)).unwrap();
    }
    wait_until("B leads", || leads(b_http));
    eprintln!("B took over {:?} after the leader was killed", killed.elapsed());
    let deadline = Instant::now() + DEADLINE;
    while processed(b_http) < before + 50.0 {
        // What to look at if it never comes: how many did, the device's link, B's own account.
        assert!(
            Instant::now() < deadline,
            "B ingested {} of the 50 statuses sent meanwhile; the device's link: {:?}; B's warnings: {:#?}",
            processed(b_http) - before,
            connection.try_recv(),
            b.logs()
                .into_iter()
                .filter(|l| l["level"] != "INFO" && l["level"] != "DEBUG")
                .collect::<Vec<_>>()
        );
        std::thread::park_timeout(Duration::from_millis(5));
    }
    assert_eq!(processed(b_http), before + 50.0, "each status sent during the takeover ingested once");
    // B, still up, says so again over A's last will.
    next_state(&states, "online");

    let (status, operations) = api(b_http, "GET", "/api/v1/bulk-operations", None);
    assert_eq!(status, 200, "the new leader serves the bulk operations: {operations}");
    assert!(
        operations.to_string().contains(done["id"].to_string().as_str()),
        "A's operation, read at the takeover: {operations}"
    );

    // The open alert is B's now: still failing, not notified again; resolved once, by B.
    sensor.publish("irit2/366/device", QoS::AtMostOnce, false, device_status(250_101)).unwrap();
    let resolved =
        notifications.recv_timeout(DEADLINE).expect("the resolution is notified").expect("a message");
    assert_eq!(
        (resolved.1["event"].as_str(), resolved.1["alert"]["id"].as_u64()),
        (Some("resolved"), Some(id))
    );
    let alert = admin_b.all_alerts().unwrap().into_iter().find(|x| x.id == id).expect("kept");
    assert!(alert.ack.is_some(), "the acknowledgement survived the takeover");

    // The new leader reconciled the broker without disconnecting the device (its client was
    // up to date); then B drives it: a new password, set through B, lets the device in.
    assert!(
        matches!(connection.try_recv(), Err(std::sync::mpsc::TryRecvError::Empty)),
        "the takeover disconnected the device"
    );
    admin_b.reset_credentials(MAC).expect("credentials reset");
    let _again = device(mosquitto.addr(), &first_password(b_http, MAC));
    assert!(
        notifications.try_recv().is_err(),
        "no alert was notified twice: {:?}",
        notifications.try_iter().collect::<Vec<_>>()
    );
}
