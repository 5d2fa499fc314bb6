//! Handler tests: the whole router, called in-process with `Router::oneshot` (no socket), over a
//! real registry in a temporary directory. They pin what each answer looks like — status, JSON
//! error body, legacy status codes — where the end-to-end tests drive the real binary.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::{AppState, PASSWORD_THREADS, PASSWORDS_WAITING, SCAN_POLICY, Sessions, Throttle};
use crate::registry::{NewBuilding, NewGateway, ScopeSpec, test_registry};

const ADMIN: &str = "handler-test-admin-token";

/// The app over a fixture registry (building `U4`, room `302`, type `esp32`, one device), an
/// MQTT link to nowhere, and an admin token; the directory must outlive it.
async fn app(dir: &std::path::Path) -> (axum::Router, AppState) {
    let dir = dir.to_owned();
    let (registry, firmware, bulk) = neosens_runtime::blocking::run(move || {
        let (registry, _, _) = test_registry(&dir, 1);
        registry.bootstrap_admin(Some(ADMIN)).unwrap();
        let firmware = crate::firmware::Firmware::open(
            &dir.join("firmware"),
            registry.shared_store(),
            crate::firmware::FirmwareConfig::default(),
        )
        .unwrap();
        let bulk = crate::bulk::BulkOps::open(registry.shared_store()).unwrap();
        (registry, firmware, bulk)
    })
    .await;
    let link = neosens_runtime::mqtt::LinkConfig::new("mqtt://127.0.0.1:1".parse().unwrap(), "handler-test");
    let (mqtt, _inbound) = neosens_runtime::mqtt::start(link, CancellationToken::new());
    let config = Arc::new(crate::Config::default());
    let monitor = crate::monitor::Monitor::default();
    let gateways = crate::gateway_health::GatewayHealth::default();
    let unclaimed = crate::unclaimed::Unclaimed::default();
    let tasks: Arc<neosens_runtime::supervisor::TaskHealth> = Arc::default();
    let sources = crate::metrics::Sources {
        link: mqtt.clone(),
        ingest: Arc::default(),
        registry: Arc::clone(&registry),
        monitor: monitor.clone(),
        webhook: None,
        gateways: gateways.clone(),
        unclaimed: unclaimed.clone(),
        connections: Arc::default(),
        firmware: firmware.clone(),
    };
    let state = AppState {
        leadership: crate::leader::Leadership::always(),
        metrics: Arc::new(crate::metrics::Metrics::new(sources, Arc::clone(&tasks))),
        sessions: Arc::new(Sessions::new(&config.auth)),
        scans: Arc::new(Throttle::new(SCAN_POLICY)),
        unclaimed,
        scrape: neosens_runtime::http::ScrapeToken::new(None).unwrap(),
        notices: tokio::sync::mpsc::channel(8).0,
        boots: tokio::sync::mpsc::channel(8).0,
        passwords: neosens_runtime::workers::Workers::start("password", PASSWORD_THREADS, PASSWORDS_WAITING)
            .unwrap(),
        device_networks: Arc::new(Vec::new()),
        config,
        registry,
        firmware,
        mqtt,
        monitor,
        gateways,
        tasks,
        directory: None,
        bulk,
    };
    (super::router(state.clone(), false), state)
}

/// One request; returns the status and the body as JSON (`Null` when it is not JSON).
async fn call(
    app: &axum::Router,
    method: &str,
    uri: &str,
    bearer: bool,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(uri);
    if bearer {
        request = request.header(header::AUTHORIZATION, format!("Bearer {ADMIN}"));
    }
    let body = match body {
        Some(v) => {
            request = request.header(header::CONTENT_TYPE, "application/json");
            Body::from(v.to_string())
        }
        None => Body::empty(),
    };
    let mut request = request.body(body).unwrap();
    // What the listener adds to every request.
    request.extensions_mut().insert(ConnectInfo(SocketAddr::from(([10, 0, 0, 7], 40000))));
    let answer = app.clone().oneshot(request).await.unwrap();
    let status = answer.status();
    let bytes = axum::body::to_bytes(answer.into_body(), 1 << 20).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test]
async fn api_errors_have_one_shape_with_the_field_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _) = app(dir.path()).await;
    let (status, body) = call(&app, "GET", "/api/v1/devices", false, None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("unauthorized")));

    let (status, body) = call(&app, "GET", "/api/v1/devices?sort=password", true, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        (body["error"]["code"].as_str(), body["error"]["field"].as_str()),
        (Some("invalid_field"), Some("sort"))
    );

    let device = json!({"uid": "not-a-mac", "type": "esp32", "rooms": []});
    let (status, body) = call(&app, "POST", "/api/v1/devices", true, Some(device)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"]["field"].is_string(), "{body}");

    let (status, body) = call(&app, "GET", "/api/v1/devices/24:0a:c4:ff:ff:ff", true, None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));

    let (status, body) = call(&app, "POST", "/api/v1/devices", true, Some(json!({"uid": 1}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "malformed bodies are JSON errors too: {body}");
    assert_eq!(body["error"]["code"], "bad_request");
}

#[tokio::test]
async fn listings_sort_and_page_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _) = app(dir.path()).await;
    let (status, body) = call(&app, "GET", "/api/v1/devices?sort=-uid&limit=1", true, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["items"].as_array().map(Vec::len), body["total"].as_u64()),
        (Some(1), Some(1)),
        "{body}"
    );
    assert_eq!(body["items"][0]["uid"], "24:0A:C4:00:00:00");
}

#[tokio::test]
async fn a_building_a_gateway_covers_cannot_be_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let (app, state) = app(dir.path()).await;
    // An empty building (one with rooms is refused for that first).
    let input = NewBuilding { site: None, name: "Annex".into(), description: String::new() };
    let building = state.registry.blocking(move |r| r.create_building(input)).await.unwrap().id;
    let gateway = NewGateway {
        local_broker: None,
        config: Default::default(),
        name: "gw-u4".into(),
        scope: ScopeSpec::Buildings(vec![*building.as_uuid()]),
    };
    state.registry.blocking(move |r| r.create_gateway(gateway)).await.unwrap();
    let (status, body) = call(&app, "DELETE", &format!("/api/v1/buildings/{building}"), true, None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("gw-u4"), "{body}");
}

#[tokio::test]
async fn legacy_paths_answer_with_the_firmware_status_codes() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _) = app(dir.path()).await;
    // No Basic credentials, an unknown MAC, a malformed MAC: 403, as the 2016 server answered.
    for uri in ["/device/config", "/device/credentials?mac=24:0a:c4:ff:ff:ff", "/device/credentials?mac=zz"] {
        let (status, _) = call(&app, "GET", uri, false, None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{uri}");
    }
    let (status, body) = call(&app, "GET", "/device/credentials?mac=24:0a:c4:00:00:00", false, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["login"], "senso_240ac4000000");
    assert!(body["password"].is_string(), "the first answer carries the password: {body}");
}

#[tokio::test]
async fn readiness_reports_each_check() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _) = app(dir.path()).await;
    let (status, body) = call(&app, "GET", "/readyz", false, None).await;
    // The broker link goes nowhere: not ready, and the body says which check failed.
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(
        (body["checks"]["store"]["ok"].as_bool(), body["checks"]["broker_link"]["ok"].as_bool()),
        (Some(true), Some(false))
    );
    assert_eq!(body["checks"]["tasks"]["ok"], true);
}

/// A legacy credentials request as a board sends it, with its `User-Agent`.
async fn board_asks(app: &axum::Router, mac: &str) -> StatusCode {
    let mut request = Request::builder()
        .uri(format!("/device/credentials?mac={mac}"))
        .header(header::USER_AGENT, "ESP32HTTPClient")
        .body(Body::empty())
        .unwrap();
    request.extensions_mut().insert(ConnectInfo(SocketAddr::from(([10, 0, 0, 42], 40000))));
    app.clone().oneshot(request).await.unwrap().status()
}

/// An unregistered board asking for its credentials lands in the inbox; adopted in one step,
/// its next retry gets them.
#[tokio::test]
async fn an_unclaimed_board_is_adopted_and_its_next_retry_gets_its_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let (app, state) = app(dir.path()).await;
    let mac = "24:0a:c4:aa:bb:01";
    assert_eq!(board_asks(&app, mac).await, StatusCode::FORBIDDEN);
    assert_eq!(board_asks(&app, mac).await, StatusCode::FORBIDDEN);
    let (status, body) = call(&app, "GET", "/api/v1/unclaimed", true, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let entry = &body["items"][0];
    assert_eq!(
        (&entry["mac"], &entry["count"], &entry["source"]),
        (&json!("24:0A:C4:AA:BB:01"), &json!(2), &json!("10.0.0.42"))
    );
    assert_eq!(
        (&entry["user_agent"], &entry["board"], &entry["gateway"]),
        (&json!("ESP32HTTPClient"), &json!("esp32"), &Value::Null)
    );

    let (_, rooms) = call(&app, "GET", "/api/v1/rooms", true, None).await;
    let adopt = json!({"type": "esp32", "rooms": [rooms["items"][0]["id"]], "description": "hall"});
    let (status, body) =
        call(&app, "POST", "/api/v1/unclaimed/24:0a:c4:aa:bb:99/adopt", true, Some(adopt.clone())).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "only a MAC of the inbox: {body}");
    let (status, body) =
        call(&app, "POST", &format!("/api/v1/unclaimed/{mac}/adopt"), true, Some(adopt.clone())).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["uid"], "24:0A:C4:AA:BB:01");
    assert_eq!(board_asks(&app, mac).await, StatusCode::OK, "the next retry gets its credentials");
    let (_, body) = call(&app, "GET", "/api/v1/unclaimed", true, None).await;
    assert_eq!(body["items"], json!([]), "adopted: out of the inbox");
    assert_eq!(state.unclaimed.len(), 0);

    // Dismissed: gone until it asks again.
    assert_eq!(board_asks(&app, "24:0a:c4:aa:bb:02").await, StatusCode::FORBIDDEN);
    let (status, _) = call(&app, "DELETE", "/api/v1/unclaimed/24:0a:c4:aa:bb:02", true, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = call(&app, "DELETE", "/api/v1/unclaimed/24:0a:c4:aa:bb:02", true, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(&app, "POST", "/api/v1/unclaimed/not-a-mac/adopt", true, Some(adopt)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(&app, "GET", "/api/v1/unclaimed", false, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// A scanner trying MACs from one address is throttled before it fills the inbox.
#[tokio::test]
async fn a_scanner_adds_a_bounded_number_of_entries() {
    let dir = tempfile::tempdir().unwrap();
    let (app, state) = app(dir.path()).await;
    for n in 0..200u32 {
        let _ = board_asks(&app, &format!("24:0a:c4:00:{:02x}:{:02x}", n / 256 + 1, n % 256)).await;
    }
    let kept = state.unclaimed.len();
    assert!(kept <= SCAN_POLICY.free_failures as usize + 1, "{kept} entries from one source");
    assert!(kept > 0);
}

/// A gateway's health report is bounded: more than 32 forwarders, a malformed or repeated EUI,
/// more than 64 unclaimed MACs or a MAC that is not one, more than 256 node order outcomes or a
/// DevEUI that is not one are refused whole; a good one feeds the gateway's health and the
/// adoption inbox.
#[tokio::test]
async fn gateway_health_reports_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let (app, state) = app(dir.path()).await;
    let (secret, gateway_id) = state
        .registry
        .blocking(|r| {
            let building =
                r.create_building(NewBuilding { site: None, name: "GW".into(), description: String::new() })?;
            let gateway = r.create_gateway(NewGateway {
                local_broker: None,
                config: Default::default(),
                name: "gw-h".into(),
                scope: ScopeSpec::Buildings(vec![*building.id.as_uuid()]),
            })?;
            let token = r.start_enrolment(gateway.id)?.token;
            let secret = r.enroll_gateway(&token)?.expect("enrolled").secret;
            Ok::<_, crate::registry::RegistryError>((secret, gateway.id))
        })
        .await
        .unwrap();
    let report = |forwarders: Vec<Value>, unclaimed: Vec<Value>| {
        json!({"outbox_depth": 0, "outbox_oldest_s": 0, "outbox_dropped": 0, "version": "t",
            "forwarders": forwarders, "unclaimed": unclaimed})
    };
    let post = |body: Value| {
        let request = Request::builder()
            .method("POST")
            .uri("/api/v1/edge/health")
            .header(header::AUTHORIZATION, format!("Bearer {secret}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let app = app.clone();
        async move {
            let mut request = request;
            request.extensions_mut().insert(ConnectInfo(SocketAddr::from(([10, 0, 0, 9], 40000))));
            let answer = app.oneshot(request).await.unwrap();
            let status = answer.status();
            let bytes = axum::body::to_bytes(answer.into_body(), 1 << 20).await.unwrap();
            (status, serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null))
        }
    };
    let forwarder = |eui: String| {
        json!({"eui": eui, "silent_s": 1, "pull_age_s": null, "stat_age_s": null,
        "datagrams": 1, "uplinks": 1, "rx_received": 0, "rx_ok": 0, "rx_forwarded": 0, "tx_requested": 0,
        "tx_emitted": 0, "ack_ratio": null, "position": null})
    };
    let unclaimed = |n: usize| {
        json!({"mac": format!("24:0a:c4:00:{:02x}:{:02x}", n / 256, n % 256),
        "last_seen_age_s": 5, "count": 2, "source": "192.168.1.7", "user_agent": "ESP32HTTPClient"})
    };
    let too_many: Vec<Value> = (0..33).map(|n| forwarder(format!("{n:016x}"))).collect();
    for (body, field) in [
        (report(too_many, vec![]), "forwarders"),
        (report(vec![forwarder("AA555A0000000101".into())], vec![]), "forwarders"),
        (
            report(vec![forwarder("aa555a0000000101".into()), forwarder("aa555a0000000101".into())], vec![]),
            "forwarders",
        ),
        (report(vec![], (0..65).map(unclaimed).collect()), "unclaimed"),
        (
            report(
                vec![],
                vec![
                    json!({"mac": "not-a-mac", "last_seen_age_s": 0, "count": 1, "source": "x", "user_agent": null}),
                ],
            ),
            "unclaimed",
        ),
    ] {
        let (status, answer) = post(body).await;
        assert_eq!(
            (status, answer["error"]["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some(field)),
            "{answer}"
        );
    }
    let mut newer = report(vec![], vec![]);
    newer["config"] = json!({"effective": {"agent": {"status_period_s": 60, "watchdog_s": 5}, "radio": {}},
        "overridden": [], "rejected": null, "restart_pending": false});
    assert_eq!(post(newer).await.0, StatusCode::NO_CONTENT, "a newer agent's settings report is taken");
    // One too large is dropped, the rest of the report kept.
    let mut huge = report(vec![], vec![]);
    huge["config"] = json!({"effective": {}, "overridden": [], "rejected": "x".repeat(9000)});
    huge["outbox_depth"] = json!(7);
    assert_eq!(post(huge).await.0, StatusCode::NO_CONTENT);
    let kept = state.gateways.get(gateway_id).and_then(|c| c.report).unwrap();
    assert_eq!(kept.outbox_depth, 7);
    let shown = kept.config.expect("the last settings report that fitted stays");
    assert_eq!(shown.effective.agent.status_period_s, Some(60));
    // Node order outcomes: at most 256, each naming a DevEUI in lowercase hex.
    let outcome = |dev_eui: &str| {
        json!({"dev_eui": dev_eui, "reference": null, "f_port": 1, "data": "00", "confirmed": false,
            "state": "sent", "f_cnt_down": 1, "detail": null, "age_s": 0})
    };
    let with_downlinks = |downlinks: Vec<Value>| {
        let mut r = report(vec![], vec![]);
        r["downlinks"] = Value::Array(downlinks);
        r
    };
    for downlinks in
        [vec![outcome("70b3d57ed0000001"); 257], vec![outcome("70B3D57ED0000001")], vec![outcome("x")]]
    {
        let (status, answer) = post(with_downlinks(downlinks)).await;
        assert_eq!((status, answer["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("downlinks")));
    }
    let (status, _) = post(with_downlinks(vec![outcome("70b3d57ed0000001"); 256])).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "256 outcomes of a node that is not there: nothing recorded");
    assert_eq!(state.unclaimed.len(), 0, "a refused report changes nothing");
    let (status, _) = post(report(vec![forwarder("aa555a0000000101".into())], vec![unclaimed(1)])).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let inbox = state.unclaimed.list(crate::model::Timestamp::now().millis());
    assert_eq!((inbox.len(), inbox[0].count, inbox[0].gateway.is_some()), (1, 2, true));
}
