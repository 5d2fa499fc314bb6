//! Mosquitto's authentication backend: the go-auth JSON contract and the 2016 form contract
//! answer the same decisions (spec `broker-auth.md` §2–§4, §8; `legacy-sensocampus.md` §3.6).

mod common;

use std::net::SocketAddr;

use common::client::wire::BrokerAnswer;
use common::client::{ApiClient, parse};
use common::{LOGIN, MAC, first_password, register_example, start, start_with};
use neosens_runtime::testing::raw_http;
use serde_json::{Value, json};

fn post(addr: SocketAddr, path: &str, content_type: &str, body: &str) -> (u16, String) {
    let r = raw_http(
        addr,
        format!("POST {path} HTTP/1.1\r\nHost: x\r\nUser-Agent: mosquitto-2.0.11\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}", body.len()).as_bytes(),
    );
    (r.status, r.text())
}

/// A go-auth question; the answer stays a `Value` where the test compares it whole (a refusal
/// must not tell an unknown user from a wrong password by any field).
fn goauth(addr: SocketAddr, path: &str, body: Value) -> (u16, Value) {
    let (status, text) = post(addr, path, "application/json", &body.to_string());
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A go-auth question expected to be answered `status`, read as go-auth reads it.
fn goauth_answer(addr: SocketAddr, path: &str, body: Value, status: u16) -> BrokerAnswer {
    let what = format!("{path} {body}");
    let (got, answer) = goauth(addr, path, body);
    assert_eq!(got, status, "{what}: {answer}");
    parse(&what, &answer)
}

fn ok(addr: SocketAddr, path: &str, body: Value) -> bool {
    goauth_answer(addr, path, body, 200).ok
}

fn acl(addr: SocketAddr, topic: &str, acc: i64) -> bool {
    ok(
        addr,
        "/mqtt/acl",
        json!({"username": LOGIN, "clientid": "neOSensor_3456_8f1c", "topic": topic, "acc": acc}),
    )
}

#[test]
fn goauth_json_contract() {
    let dir = tempfile::tempdir().unwrap();
    let central = start(dir.path());
    let addr = central.addr("http");
    register_example(addr);
    let password = first_password(addr, MAC);

    // CONNECT: every module's connection uses the same login with its own client id.
    for client in ["neOSensor_3456_8f1c", "neOSensor_3456_a2", "neOSensor_3456_ffff"] {
        assert!(ok(addr, "/mqtt/auth", json!({"username": LOGIN, "password": password, "clientid": client})));
    }
    let (_, denied) =
        goauth(addr, "/mqtt/auth", json!({"username": LOGIN, "password": "wrong", "clientid": "c"}));
    assert_eq!(denied, json!({"ok": false, "error": "bad_credentials"}));
    let (_, unknown) = goauth(
        addr,
        "/mqtt/auth",
        json!({"username": "senso_000000000000", "password": password, "clientid": "c"}),
    );
    assert_eq!(unknown, denied, "an unknown user reads as a wrong password");
    for (user, client) in [
        ("senso_+", "c"),
        ("senso_#", "c"),
        ("a/b", "c"),
        (LOGIN, "c+"),
        (LOGIN, "c#"),
        (LOGIN, "c/d"),
        ("", "c"),
    ] {
        assert!(
            !ok(addr, "/mqtt/auth", json!({"username": user, "password": password, "clientid": client})),
            "{user} {client}"
        );
    }

    // ACL: publish one level under its room; subscribe/read its command topics; nothing else.
    let cases: &[(&str, i64, bool)] = &[
        ("irit2/366/device", 2, true),
        ("irit2/366/temperature", 2, true),
        ("irit2/366/temperature/extra", 2, false),
        ("irit2/366", 2, false),
        ("irit2/366/", 2, false),
        ("irit2/367/temperature", 2, false),
        ("irit2/366/+", 2, false),
        ("u4/302/device", 2, false),
        ("irit2/366/+/command", 4, true),
        ("irit2/366/device/command", 4, true),
        ("irit2/366/temperature/command", 4, true),
        ("#", 4, false),
        ("irit2/366/#", 4, false),
        ("irit2/+/device/command", 4, false),
        ("irit2/366/+", 4, false),
        ("+/+/device", 4, false),
        ("irit2/366/device/command", 1, true),
        ("irit2/366/device", 1, false),
        ("irit2/367/device/command", 1, false),
    ];
    for (topic, acc, expected) in cases {
        assert_eq!(acl(addr, topic, *acc), *expected, "acc {acc} on {topic}");
    }
    // `acc` as a string (the README's example), and a form body (`params_mode form`).
    assert!(ok(
        addr,
        "/mqtt/acl",
        json!({"username": LOGIN, "clientid": "c", "topic": "irit2/366/device", "acc": "2"})
    ));
    let (status, text) = post(
        addr,
        "/mqtt/acl",
        "application/x-www-form-urlencoded",
        &format!("username={LOGIN}&clientid=c&topic=irit2%2F366%2Fdevice&acc=2"),
    );
    assert_eq!((status, text.as_str()), (200, r#"{"ok":true}"#));
    // Superuser: nobody.
    assert_eq!(goauth(addr, "/mqtt/superuser", json!({"username": LOGIN})), (200, json!({"ok": false})));

    // Malformed: 400, never 5xx (go-auth retries errors and never caches them).
    for body in [
        json!({"username": LOGIN, "clientid": "c", "topic": "irit2/366/device", "acc": 3}),
        json!({"username": LOGIN, "clientid": "c", "topic": "irit2/366/device", "acc": 0}),
        json!({"username": LOGIN, "clientid": "c", "topic": "irit2/366/device", "acc": 8}),
        json!({"username": LOGIN, "clientid": "c", "topic": "irit2/366/device", "acc": "write"}),
        json!({"username": LOGIN, "clientid": "c", "acc": 2}),
        json!({"clientid": "c", "topic": "t", "acc": 2}),
        json!([1, 2]),
    ] {
        assert!(!goauth_answer(addr, "/mqtt/acl", body.clone(), 400).ok, "{body}");
    }
    for (path, body) in [
        ("/mqtt/auth", "{"),
        ("/mqtt/auth", "{\"password\": \"x\"}"),
        ("/mqtt/superuser", "{}"),
        ("/mqtt/acl", ""),
    ] {
        assert_eq!(post(addr, path, "application/json", body).0, 400, "{path} {body}");
    }

    // Disabled: refused at once, connection and ACL.
    ApiClient::admin(addr).disable_device(MAC).expect("disabled");
    let disabled = goauth_answer(
        addr,
        "/mqtt/auth",
        json!({"username": LOGIN, "password": password, "clientid": "c"}),
        200,
    );
    assert_eq!((disabled.ok, disabled.error.as_deref()), (false, Some("disabled")));
    assert!(!acl(addr, "irit2/366/device", 2));
}

#[test]
fn legacy_form_contract() {
    let dir = tempfile::tempdir().unwrap();
    let central = start(dir.path());
    let addr = central.addr("http");
    register_example(addr);
    let password = first_password(addr, MAC);
    let form = "application/x-www-form-urlencoded";
    let auth = |pw: &str| {
        post(
            addr,
            "/mqtt_auth/auth",
            form,
            &format!("username={LOGIN}&password={pw}&topic=&acc=&clientid=neOSensor_3456_8f1c"),
        )
        .0
    };
    assert_eq!(auth(&password), 200);
    assert_eq!(auth("wrong"), 403);
    let acl = |topic: &str, acc: &str| {
        post(
            addr,
            "/mqtt_auth/acl",
            form,
            &format!("username={LOGIN}&password=&topic={topic}&acc={acc}&clientid=neOSensor_3456_8f1c"),
        )
        .0
    };
    assert_eq!(acl("irit2/366/temperature", "2"), 200);
    assert_eq!(acl("irit2/366/device/command", "1"), 200);
    assert_eq!(acl("irit2/366/%2B/command", "4"), 200);
    assert_eq!(acl("irit2/367/temperature", "2"), 403);
    assert_eq!(acl("%23", "4"), 403);
    assert_eq!(acl("irit2/366/temperature", "3"), 400);
    assert_eq!(acl("irit2/366/temperature", ""), 400);
    assert_eq!(post(addr, "/mqtt_auth/superuser", form, &format!("username={LOGIN}")).0, 403);
    assert_eq!(post(addr, "/mqtt_auth/superuser", form, "").0, 400);
    assert_eq!(post(addr, "/mqtt_auth/acl", form, "username=x").0, 400);
    let get = raw_http(addr, b"GET /mqtt_auth/auth HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(get.status, 405, "POST only, as the 2016 views");
}

#[test]
fn a_listener_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let central = start_with(dir.path(), &[("NEOSENS_BROKER_AUTH_BIND", "127.0.0.1:0")]);
    let (main, broker) = (central.addr("http"), central.addr("broker_auth"));
    assert_ne!(main, broker);
    register_example(main);
    let password = first_password(main, MAC);
    let body = json!({"username": LOGIN, "password": password, "clientid": "c"});
    assert!(ok(broker, "/mqtt/auth", body.clone()));
    assert_eq!(goauth(main, "/mqtt/auth", body).0, 404, "not on the public listener");
}
