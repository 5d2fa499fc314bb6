//! Part of the attack suite (docs/security.md): a gateway has one secret per use — its API
//! secret for `/api/v1/edge/*`, an MQTT password of its own for the broker — so that one leaking
//! opens nothing else. The broker's old login (the API secret) is accepted only while a fleet is
//! upgraded, when the operator says so.

mod common;

use std::net::SocketAddr;

use common::client::wire::{BrokerAnswer, EnrolGrant};
use common::client::{ApiClient, parse_raw};
use common::start_with;
use neosens_runtime::testing::raw_http;
use serde_json::json;

/// Enrols a gateway; returns its grant.
fn enrolled(addr: SocketAddr) -> EnrolGrant {
    let admin = ApiClient::admin(addr);
    let gw = admin.create_gateway(json!({"name": "gw-u4", "scope": {"site": "ut3"}})).expect("gateway");
    let token = admin.enrolment(&gw.id).expect("an enrolment token").token;
    ApiClient::anonymous(addr).enroll(&token).expect("enrolled")
}

/// Mosquitto's question (go-auth JSON): may this login connect?
fn broker_allows(addr: SocketAddr, user: &str, password: &str) -> bool {
    let body = json!({"username": user, "password": password, "clientid": "neosens-edge-gw-u4"}).to_string();
    let r = raw_http(
        addr,
        format!("POST /mqtt/auth HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
            .as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    parse_raw::<BrokerAnswer>("/mqtt/auth", &r).ok
}

/// Whether this bearer token may sync (the answer is postcard, only the status is read).
fn api_allows(addr: SocketAddr, bearer: &str) -> bool {
    let r = raw_http(
        addr,
        format!("GET /api/v1/edge/sync?since=0 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {bearer}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    );
    r.status == 200
}

#[test]
fn each_gateway_secret_opens_one_door() {
    let dir = tempfile::tempdir().unwrap();
    let central = start_with(dir.path(), &[]);
    let addr = central.addr("http");
    let grant = enrolled(addr);
    let (user, mqtt, secret) =
        (grant.mqtt_username.as_str(), grant.mqtt_password.as_str(), grant.secret.as_str());
    assert!(mqtt.starts_with("nsm_") && secret.starts_with("nsg_") && mqtt != secret, "{grant:?}");
    assert!(broker_allows(addr, user, mqtt), "the MQTT password logs in to the broker");
    assert!(!broker_allows(addr, user, secret), "the API secret does not");
    assert!(api_allows(addr, secret), "the API secret is the bearer token");
    assert!(!api_allows(addr, mqtt), "the MQTT password is not");
}

#[test]
fn api_secrets_on_the_broker_only_while_a_fleet_is_upgraded() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("central.toml");
    std::fs::write(&config, "[mqtt]\naccept_gateway_api_secrets = true\n").unwrap();
    let central = start_with(&dir.path().join("data"), &[("NEOSENS_CONFIG", config.to_str().unwrap())]);
    let addr = central.addr("http");
    let grant = enrolled(addr);
    let user = grant.mqtt_username.as_str();
    assert!(broker_allows(addr, user, &grant.secret), "an agent of the previous version");
    assert!(broker_allows(addr, user, &grant.mqtt_password));
    assert!(!broker_allows(addr, user, "nsg_not-its-secret"));
}
