//! The attack suite: what a hostile device, a LAN neighbour or a careless operator can try
//! against the real binary, each a regression test of a bound or a refusal (docs/security.md).

mod common;

use std::net::SocketAddr;

use common::client::ApiClient;
use common::client::wire::Alert;
use common::{LOGIN, MAC, first_password, register_example, start, start_with};
use neosens_runtime::testing::{http_get, raw_http};
use serde_json::{Value, json};

/// The series of one metric family in the classic text exposition.
fn series<'a>(metrics: &'a str, family: &str) -> Vec<&'a str> {
    metrics.lines().filter(|l| l.starts_with(family) && !l.starts_with('#')).collect()
}

/// Invented HTTP methods cannot create metric series: they are all counted as `other`.
#[test]
fn method_floods_do_not_grow_the_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let central = start(dir.path());
    let addr = central.addr("http");
    let count = "neosens_http_request_duration_seconds_count";
    let send = |method: &str| {
        raw_http(
            addr,
            format!(
                "{method} /device/credentials?mac={MAC} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
    };
    send("XMETHOD0");
    let before = series(&http_get(addr, "/metrics").text(), count).len();
    for i in 1..200 {
        let r = send(&format!("XMETHOD{i}abc"));
        assert!(r.status >= 400, "an invented method is refused: {}", r.status);
    }
    let metrics = http_get(addr, "/metrics").text();
    assert!(!metrics.contains("XMETHOD"), "no invented method in a label");
    let after = series(&metrics, count);
    assert!(
        after.iter().any(|l| l.contains("method=\"other\"")),
        "invented methods are counted as other: {after:?}"
    );
    // At most the /metrics scrape itself added a series.
    assert!(after.len() <= before + 1, "{before} series before, {} after: {after:?}", after.len());
}

/// One broker-auth request, optionally as relayed by a reverse proxy. The answer stays a
/// `Value`: the tests compare refusals whole, so that no field can tell them apart.
fn ask(addr: SocketAddr, path: &str, body: &Value, relayed: bool) -> (u16, Value) {
    let body = body.to_string();
    let proxy = if relayed { "X-Forwarded-For: 198.51.100.7\r\n" } else { "" };
    let r = raw_http(
        addr,
        format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\n{proxy}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    (r.status, serde_json::from_slice(&r.body).unwrap_or(Value::Null))
}

/// The broker-auth paths are for the broker: not reachable from the network by default, and
/// never an oracle of which logins exist or of central's own account.
#[test]
fn broker_auth_is_for_the_broker_and_no_login_oracle() {
    let dir = tempfile::tempdir().unwrap();
    let central = start(dir.path());
    let addr = central.addr("http");
    register_example(addr);
    let password = first_password(addr, MAC);
    let auth = |user: &str, password: &str| json!({"username": user, "password": password, "clientid": "c"});

    // From this host (the broker beside central): answered, and a refusal never says whether
    // the user exists — central's own account (the embedded broker's), a device, or nobody.
    let (status, central_guess) = ask(addr, "/mqtt/auth", &auth("neosens-central", "guess"), false);
    assert_eq!(status, 200);
    let (_, device_guess) = ask(addr, "/mqtt/auth", &auth(LOGIN, "guess"), false);
    let (_, nobody) = ask(addr, "/mqtt/auth", &auth("senso_000000000000", "guess"), false);
    assert_eq!(central_guess, json!({"ok": false, "error": "bad_credentials"}));
    assert_eq!(device_guess, central_guess);
    assert_eq!(nobody, central_guess);
    assert_eq!(ask(addr, "/mqtt/auth", &auth(LOGIN, &password), false).1, json!({"ok": true}));
    let metrics = http_get(addr, "/metrics").text();
    assert!(
        !metrics.contains("unknown_user") && !metrics.contains("wrong_secret"),
        "metrics do not tell them apart either"
    );

    // Through a proxy (or from another host): the paths do not exist.
    let (status, _) = ask(addr, "/mqtt/auth", &auth(LOGIN, &password), true);
    assert_eq!(status, 404, "broker auth is not on the public listener by default");
    let acl = json!({"username": "neosens-central", "clientid": "c", "topic": "#", "acc": 4});
    assert_eq!(ask(addr, "/mqtt/acl", &acl, true).0, 404);
}

/// With `[broker_auth] public`, other hosts may ask about devices, never about service accounts.
#[test]
fn public_broker_auth_hides_service_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("central.toml");
    std::fs::write(&config, "[broker_auth]\npublic = true\n").unwrap();
    let central = start_with(&dir.path().join("data"), &[("NEOSENS_CONFIG", config.to_str().unwrap())]);
    let addr = central.addr("http");
    register_example(addr);
    let password = first_password(addr, MAC);
    let device = json!({"username": LOGIN, "password": password, "clientid": "c"});
    assert_eq!(ask(addr, "/mqtt/auth", &device, true), (200, json!({"ok": true})));
    let acl = json!({"username": "neosens-central", "clientid": "c", "topic": "#", "acc": 4});
    assert_eq!(ask(addr, "/mqtt/acl", &acl, true).1, json!({"ok": false, "error": "bad_credentials"}));
    assert_eq!(ask(addr, "/mqtt/acl", &acl, false).1, json!({"ok": true}), "the broker beside central");
}

/// No device can be registered with the login of central, a gateway, the broker's admin or a
/// configured reserved account: with dynamic security it would take that account over.
#[test]
fn device_logins_cannot_take_service_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("central.toml");
    std::fs::write(&config, "[mqtt]\nreserved_logins = [\"ops-monitor\"]\n").unwrap();
    let central = start_with(&dir.path().join("data"), &[("NEOSENS_CONFIG", config.to_str().unwrap())]);
    let addr = central.addr("http");
    let admin = ApiClient::admin(addr);
    let (room, _) = register_example(addr);
    for (n, login) in ["neosens-central", "gw-1", "gw-anything", "ops-monitor"].iter().enumerate() {
        let device =
            json!({"uid": format!("24:0a:c4:00:00:0{n}"), "type": "esp32", "rooms": [room], "login": login});
        let err = admin.create_device(device).unwrap_err();
        assert_eq!(err.status, 400, "{login}: {err:?}");
        assert_eq!(err.field.as_deref(), Some("login"), "{err:?}");
        assert!(err.message.contains("reserved"), "{err:?}");
    }
    let fine = json!({"uid": "24:0a:c4:00:00:09", "type": "esp32", "rooms": [room], "login": "ops-monitor2"});
    admin.create_device(fine).expect("a login that is not reserved");
}

/// The value of a metric sample line (`name{labels} value`) in a scrape, 0 when absent.
fn sample(metrics: &str, prefix: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Publishes on a broker as an anonymous client and waits for the broker's acknowledgement.
fn publish_and_wait(broker: SocketAddr, topic: &str, payload: Vec<u8>, retain: bool) {
    let mut options =
        rumqttc::MqttOptions::new(format!("attacker-{}", payload.len()), "127.0.0.1", broker.port());
    options.set_max_packet_size(4 * 1024 * 1024, 4 * 1024 * 1024);
    let (client, mut connection) = rumqttc::Client::new(options, 10);
    client.publish(topic, rumqttc::QoS::AtLeastOnce, retain, payload).unwrap();
    for event in connection.iter() {
        match event {
            Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) => break,
            Ok(_) => {}
            Err(e) => panic!("publishing on {topic}: {e}"),
        }
    }
    client.disconnect().unwrap();
}

/// One device cannot silence the fleet: a 2 MB retained message on a status topic, which a
/// broker without limits keeps and sends to central at every (re)connection, is dropped,
/// counted and removed, and central's link stays up; so is a small retained status.
#[test]
fn a_retained_oversized_status_does_not_keep_central_offline() {
    let mosquitto = neosens_runtime::testing::Mosquitto::start("");
    let broker = mosquitto.addr();
    publish_and_wait(broker, "irit2/366/device", vec![b'x'; 2 * 1024 * 1024], true);
    publish_and_wait(
        broker,
        "irit2/367/device",
        br#"{"unitID":"24:0a:c4:12:34:56","status":"x"}"#.to_vec(),
        true,
    );

    let dir = tempfile::tempdir().unwrap();
    let central = start_with(dir.path(), &[("NEOSENS_MQTT_URL", &mosquitto.url())]);
    let addr = central.addr("http");
    register_example(addr);
    neosens_runtime::testing::wait_until("both retained messages dropped and cleared", || {
        let m = http_get(addr, "/metrics").text();
        sample(&m, "neosens_status_dropped_total{reason=\"too_large\"}") >= 1.0
            && sample(&m, "neosens_status_dropped_total{reason=\"retained\"}") >= 1.0
            && sample(&m, "neosens_status_retained_cleared_total") >= 2.0
    });
    // The link works: a device's status goes through and is stored.
    let status = br#"{"status":"running","unitID":"24:0a:c4:12:34:56","frequency":1800}"#;
    publish_and_wait(broker, "irit2/366/device", status.to_vec(), false);
    let admin = ApiClient::admin(addr);
    neosens_runtime::testing::wait_until("status recorded", || {
        admin.device(MAC).expect("the device").last_status.as_deref() == Some("running")
    });
    let metrics = http_get(addr, "/metrics").text();
    assert_eq!(sample(&metrics, "neosens_mqtt_connects_total"), 1.0, "central never lost its link");

    // The broker holds nothing any more: a new subscriber gets no retained message.
    let mut options = rumqttc::MqttOptions::new("witness", "127.0.0.1", broker.port());
    options.set_max_packet_size(4 * 1024 * 1024, 4 * 1024 * 1024);
    let (client, mut connection) = rumqttc::Client::new(options, 10);
    client.subscribe("irit2/+/device", rumqttc::QoS::AtMostOnce).unwrap();
    let mut subscribed = false;
    while let Ok(Ok(event)) = connection.recv_timeout(std::time::Duration::from_millis(500)) {
        match event {
            rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_)) => subscribed = true,
            rumqttc::Event::Incoming(rumqttc::Packet::Publish(p)) => {
                assert!(!p.retain, "a retained message is left on {}", p.topic)
            }
            _ => {}
        }
    }
    assert!(subscribed);
}

/// The shipped Mosquitto configurations refuse oversized publishes: their sender is disconnected
/// and nothing reaches the subscribers.
#[test]
fn shipped_mosquitto_bounds_refuse_oversized_publishes() {
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/mosquitto/go-auth.conf"))
            .unwrap();
    let bounds: Vec<&str> = shipped.lines().filter(|l| l.starts_with("max_")).collect();
    assert!(bounds.iter().any(|l| l.starts_with("max_packet_size")), "{bounds:?}");
    let mosquitto = neosens_runtime::testing::Mosquitto::start(&bounds.join("\n"));
    let mut options = rumqttc::MqttOptions::new("big", "127.0.0.1", mosquitto.port);
    options.set_max_packet_size(4 * 1024 * 1024, 4 * 1024 * 1024);
    let (client, mut connection) = rumqttc::Client::new(options, 10);
    client.publish("irit2/366/device", rumqttc::QoS::AtLeastOnce, true, vec![b'x'; 128 * 1024]).unwrap();
    let refused = loop {
        match connection.recv_timeout(neosens_runtime::testing::DEADLINE) {
            Ok(Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_)))) => break false,
            Ok(Ok(_)) => {}
            Ok(Err(_)) | Err(_) => break true,
        }
    };
    assert!(refused, "a 128 KiB publish is refused by the shipped bounds");
}

/// A gateway relays device log lines in its own name, for the devices of its scope only, and
/// in bounded batches.
#[test]
fn gateways_relay_logs_for_their_scope_only() {
    let dir = tempfile::tempdir().unwrap();
    let central = start(dir.path());
    let addr = central.addr("http");
    let admin = ApiClient::admin(addr);
    let (_, device) = register_example(addr);
    let other_building = admin.create_building(json!({"name": "U4"})).expect("building U4");
    let gw = admin
        .create_gateway(json!({"name": "gw-u4", "scope": {"buildings": [other_building.id]}}))
        .expect("gateway");
    let token = admin.enrolment(&gw.id).expect("an enrolment token").token;
    let grant = ApiClient::anonymous(addr).enroll(&token).expect("enrolled");
    let gateway = ApiClient::bearer(addr, &grant.secret);
    let line = json!({"device": device, "received_at_ms": 1, "device_addr": "10.0.0.7", "body": "msg=forged&levelno=40"});
    let relayed = gateway.relay_logs(vec![line.clone()]).expect("relayed");
    assert_eq!((relayed.stored, relayed.refused), (0, 1), "not a device of its scope: {relayed:?}");
    assert!(admin.device_logs(MAC).expect("logs").is_empty());
    let flood: Vec<Value> = (0..101).map(|_| line.clone()).collect();
    assert_eq!(gateway.relay_logs(flood).unwrap_err().status, 400, "at most 100 lines a call");
    let stranger = ApiClient::bearer(addr, "nsg_not-a-secret");
    assert_eq!(stranger.relay_logs(Vec::new()).unwrap_err().status, 401);
}

/// Bodies are bounded per route to what the firmware sends: refused before they are read.
#[test]
fn legacy_routes_refuse_bodies_beyond_what_devices_send() {
    let dir = tempfile::tempdir().unwrap();
    let central = start(dir.path());
    let addr = central.addr("http");
    let post = |path: &str, len: usize| {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
        );
        let mut request = head.into_bytes();
        request.extend(std::iter::repeat_n(b'a', len));
        raw_http(addr, &request).status
    };
    assert_eq!(post(&format!("/device/credentials?mac={MAC}"), 4096), 413);
    assert_eq!(post("/device/config", 4096), 413);
    assert_eq!(post("/device/logger", 17 * 1024), 413);
    assert_eq!(
        post("/device/logger", 1024),
        403,
        "a small body is read, and refused for its missing credentials"
    );
}

/// Password guessing at the dashboard's sign-in is throttled per user name (then per client
/// address), said with 429 and `Retry-After`, and the log never keeps what was typed as a user
/// name.
#[test]
fn sign_in_guessing_is_slow_and_visible() {
    let dir = tempfile::tempdir().unwrap();
    let central = start_with(dir.path(), &[("NEOSENS_ADMIN_PASSWORD", "the right password")]);
    let addr = central.addr("http");
    let sign_in = |user: &str, password: &str| {
        let body = json!({"username": user, "password": password}).to_string();
        raw_http(
            addr,
            format!(
                "POST /api/v1/session HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
    };
    for _ in 0..5 {
        assert_eq!(sign_in("admin", "guess").status, 401);
    }
    assert_eq!(sign_in("admin", "guess").status, 401, "the sixth failure is answered, and locks");
    let locked = sign_in("admin", "the right password");
    assert_eq!(locked.status, 429, "even the right password waits: {}", locked.text());
    assert!(locked.header("retry-after").and_then(|v| v.parse::<u64>().ok()).is_some_and(|s| s >= 1));
    // Another user name from the same address is not locked by admin's failures …
    assert_eq!(sign_in("hunter2-typed-as-a-user", "guess").status, 401);
    // … until the address itself has failed too often.
    let mut statuses = Vec::new();
    for i in 0..20 {
        statuses.push(sign_in(&format!("user{i}"), "guess").status);
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    let log = central.logs().iter().map(ToString::to_string).collect::<String>();
    assert!(log.contains("dashboard sign-in refused"), "refusals are logged");
    assert!(!log.contains("hunter2-typed-as-a-user"), "but not the user name typed");
}

/// Scanning `/device/credentials` for MACs that exist is rate-limited per source and counted.
#[test]
fn credential_scans_are_throttled_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let central = start(dir.path());
    let addr = central.addr("http");
    register_example(addr);
    let ask = |mac: &str| {
        raw_http(
            addr,
            format!("GET /device/credentials?mac={mac} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .status
    };
    for i in 0..40 {
        assert_eq!(ask(&format!("02:00:00:00:00:{i:02x}")), 403);
    }
    let metrics = http_get(addr, "/metrics").text();
    let throttled =
        sample(&metrics, "neosens_provisioning_requests_total{path=\"credentials\",outcome=\"throttled\"}");
    assert!(throttled >= 1.0, "{}", series(&metrics, "neosens_provisioning_requests_total").join("\n"));
    assert_eq!(ask(MAC), 403, "while the scanner is locked, a registered MAC from it is refused too");
}

/// With `[http] metrics_token`, `/metrics` and `/readyz` answer only to the bearer of it;
/// `/healthz` stays open (systemd and load balancers read it).
#[test]
fn metrics_and_readiness_can_require_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let token = "scrape-token-0123456789";
    let central = start_with(dir.path(), &[("NEOSENS_METRICS_TOKEN", token)]);
    let addr = central.addr("http");
    let get = |path: &str, bearer: Option<&str>| {
        let auth = bearer.map(|b| format!("Authorization: Bearer {b}\r\n")).unwrap_or_default();
        raw_http(
            addr,
            format!("GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n").as_bytes(),
        )
    };
    for path in ["/metrics", "/readyz"] {
        let refused = get(path, None);
        assert_eq!(refused.status, 401, "{path} without the token");
        assert_eq!(refused.header("www-authenticate"), Some("Bearer"));
        assert_eq!(get(path, Some("scrape-token-wrong")).status, 401, "{path} with another token");
        assert!(matches!(get(path, Some(token)).status, 200 | 503), "{path} with the token");
    }
    assert!(get("/metrics", Some(token)).text().contains("neosens_http_open_connections"));
    assert_eq!(get("/healthz", None).status, 200);
}

/// A first password handed to an address outside `[alerts] device_networks` opens a
/// `foreign_delivery` alert naming the device; acknowledging it resolves it. Later answers
/// (no password) raise nothing.
#[test]
fn a_first_password_outside_the_device_networks_is_alerted() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("central.toml");
    // The test's requests come from 127.0.0.1: outside this campus's networks.
    std::fs::write(&config, "[alerts]\ndevice_networks = [\"10.0.0.0/8\", \"fd00::/8\"]\n").unwrap();
    let data = dir.path().join("data");
    let central = start_with(&data, &[("NEOSENS_CONFIG", config.to_str().unwrap())]);
    let addr = central.addr("http");
    let admin = ApiClient::admin(addr);
    let (_, device) = register_example(addr);
    first_password(addr, MAC);
    let foreign = || -> Vec<Alert> {
        let alerts = admin.all_alerts().expect("alerts");
        alerts.into_iter().filter(|a| a.kind == "foreign_delivery").collect()
    };
    neosens_runtime::testing::wait_until("a foreign_delivery alert", || !foreign().is_empty());
    let alert = foreign().remove(0);
    assert_eq!((alert.state.as_str(), alert.device.as_deref()), ("open", Some(device.as_str())), "{alert:?}");
    assert!(alert.detail.as_deref().is_some_and(|d| d.contains("127.0.0.1")), "{alert:?}");
    // The next answers carry no password: no new alert.
    first_password_again(addr);
    admin.ack_alert(alert.id, json!({})).expect("acknowledged");
    let after = foreign();
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0].state, "resolved", "acknowledged: resolved");
}

fn first_password_again(addr: SocketAddr) {
    let r = raw_http(
        addr,
        format!("GET /device/credentials?mac={MAC} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    );
    assert_eq!(r.status, 200);
    assert!(!r.text().contains("password"), "{}", r.text());
}
