//! The audit trail over real HTTP, from the real binary: registry changes with the fields before
//! and after (secrets hidden), a credential reset and the device's provisioning, an order, sign-ins
//! that worked and one that did not, filters, paging, rights, and a restart that keeps it all.

mod common;

use std::time::{Duration, Instant};

use common::{ADMIN, MAC, api, first_password, register_example, start_with};
use neosens_runtime::testing::http_json;
use serde_json::{Value, json};

const PASSWORD: &str = "audit admin password";

fn audit(addr: std::net::SocketAddr, query: &str) -> Value {
    let (status, body) = api(addr, "GET", &format!("/api/v1/audit{query}"), None);
    assert_eq!(status, 200, "{body}");
    body
}

fn actions(page: &Value) -> Vec<String> {
    page["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap().to_owned()).collect()
}

/// Sends `frequency` once central's broker link is up (the embedded broker starts with it).
fn send_order(addr: std::net::SocketAddr, device: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let order = json!({"order": "frequency", "value": 900});
        let (status, body) = api(addr, "POST", &format!("/api/v1/devices/{device}/orders"), Some(order));
        if status != 503 || Instant::now() > deadline {
            assert_eq!(status, 202, "{body}");
            return body;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn sign_in(addr: std::net::SocketAddr, password: &str) -> u16 {
    let body = json!({"username": "admin", "password": password});
    http_json(addr, "POST", "/api/v1/session", None, Some(&body)).0
}

#[test]
fn who_changed_what_and_when() {
    let dir = tempfile::tempdir().unwrap();
    let central = start_with(dir.path(), &[("NEOSENS_ADMIN_PASSWORD", PASSWORD)]);
    let addr = central.addr("http");
    let (_room, device) = register_example(addr);

    let (status, body) =
        api(addr, "PATCH", &format!("/api/v1/devices/{device}"), Some(json!({"enabled": false})));
    assert_eq!(status, 200, "{body}");
    let (status, body) = api(addr, "POST", &format!("/api/v1/devices/{device}/credentials/reset"), None);
    assert_eq!(status, 200, "{body}");
    let password = first_password(addr, MAC);
    send_order(addr, &device);
    assert_eq!(sign_in(addr, "not the password"), 401);
    assert_eq!(sign_in(addr, PASSWORD), 200);

    let page = audit(addr, "");
    let newest: Vec<String> = actions(&page).into_iter().take(6).collect();
    assert_eq!(
        newest,
        [
            "session.sign_in",
            "session.sign_in_failed",
            "order.send",
            "device.provision",
            "device.reset_credentials",
            "device.update"
        ]
    );
    let items = page["items"].as_array().unwrap();
    let update = &items[5];
    assert_eq!(update["actor"]["kind"], "token", "{update}");
    assert_eq!(
        (update["target_kind"].as_str(), update["target"].as_str()),
        (Some("device"), Some(MAC.to_uppercase().as_str()))
    );
    assert_eq!(update["changes"], json!([{"field": "enabled", "before": true, "after": false}]));
    let reset = &items[4];
    assert_eq!(
        reset["changes"].as_array().unwrap().iter().find(|c| c["field"] == "secret").unwrap()["after"],
        "(secret)"
    );
    let provision = &items[3];
    assert_eq!(
        (provision["actor"]["kind"].as_str(), provision["actor"]["name"].as_str()),
        (Some("device"), Some(MAC.to_uppercase().as_str()))
    );
    let order = &items[2];
    assert!(order["detail"].as_str().unwrap().starts_with("frequency 900 on "), "{order}");
    assert_eq!(items[1]["actor"]["name"], "admin");
    assert!(items[1]["detail"].as_str().unwrap().starts_with("from 127.0.0.1"), "{}", items[1]);
    let text = page.to_string();
    assert!(!text.contains(&password) && !text.contains("argon2"), "no secret in the trail");

    // Filters and paging.
    assert_eq!(actions(&audit(addr, "?action=session.")), ["session.sign_in", "session.sign_in_failed"]);
    assert_eq!(actions(&audit(addr, "?actor_kind=device")), ["device.provision"]);
    let for_mac = audit(addr, &format!("?target={MAC}"));
    assert_eq!(actions(&for_mac).len(), 5, "{for_mac}");
    let first = audit(addr, "?limit=2");
    let before = first["next_before"].as_u64().expect("more pages");
    let second = audit(addr, &format!("?limit=2&before={before}"));
    assert_eq!(actions(&second), ["order.send", "device.provision"]);
    let (status, body) = api(addr, "GET", "/api/v1/audit?since=yesterday", None);
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("RFC 3339"), "{body}");

    // A viewer reads devices, not the trail.
    let (status, token) =
        api(addr, "POST", "/api/v1/tokens", Some(json!({"name": "wall", "role": "viewer"})));
    assert_eq!(status, 201, "{token}");
    let viewer = token["token"].as_str().unwrap();
    assert_eq!(http_json(addr, "GET", "/api/v1/audit", Some(viewer), None).0, 403);
    let created = audit(addr, "?action=token.create");
    let token_fields: Vec<&str> = created["items"][0]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert!(token_fields.contains(&"hash") && token_fields.contains(&"role"), "{created}");
    assert_eq!(
        created["items"][0]["changes"].as_array().unwrap().iter().find(|c| c["field"] == "hash").unwrap()["after"],
        "(secret)"
    );

    // Kept across a restart; numbering goes on.
    let total = audit(addr, "")["total"].as_u64().unwrap();
    drop(central);
    let central = start_with(dir.path(), &[]);
    let addr = central.addr("http");
    let (status, _) = api(addr, "DELETE", &format!("/api/v1/devices/{device}"), None);
    assert_eq!(status, 204);
    let after = audit(addr, "?limit=1");
    assert_eq!(after["total"].as_u64().unwrap(), total + 1);
    assert_eq!(after["items"][0]["action"], "device.delete");
    assert!(after["items"][0]["id"].as_u64().unwrap() > total);
    let _ = ADMIN;
}
