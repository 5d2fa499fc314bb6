//! Two `neosens-central` processes on one PostgreSQL database (a real server started here): a
//! device created through one provisions through the other, concurrent changes of one device
//! through both lose nothing, and a first password is handed over once across them.

mod common;

use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::Instant;

use common::{MAC, api, register_example, start_replica};
use neosens_runtime::testing::postgres::Postgres;
use neosens_runtime::testing::{ServiceProcess, raw_http, wait_until};
use serde_json::json;

fn replica(data: &Path, url: &str, keys_from: Option<&Path>) -> ServiceProcess {
    start_replica(data, keys_from, &[("NEOSENS_DATABASE_URL", url)])
}

fn credentials(addr: std::net::SocketAddr, mac: &str) -> (u16, serde_json::Value) {
    let r =
        raw_http(addr, format!("GET /device/credentials?mac={mac} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
    (r.status, serde_json::from_slice(&r.body).unwrap_or_default())
}

#[test]
fn two_replicas_share_one_database() {
    let pg = Postgres::start();
    let url = format!("{}?sslmode=disable", pg.database("central"));
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = replica(a_dir.path(), &url, None);
    let b = replica(b_dir.path(), &url, Some(a_dir.path()));
    let (a, b) = (a.addr("http"), b.addr("http"));

    // Created through A, provisioned through B as soon as B has read the change.
    let (room, device) = register_example(a);
    let created = Instant::now();
    wait_until("B knows the device", || api(b, "GET", &format!("/api/v1/devices/{device}"), None).0 == 200);
    eprintln!("a device created through A was visible through B after {:?}", created.elapsed());

    // Its first password, asked from both at once: handed over exactly once.
    let barrier = Arc::new(Barrier::new(2));
    let asks: Vec<_> = [a, b]
        .into_iter()
        .map(|addr| {
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                credentials(addr, MAC)
            })
        })
        .collect();
    let answers: Vec<_> = asks.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(answers.iter().all(|(status, _)| *status == 200), "{answers:?}");
    let with_password = answers.iter().filter(|(_, body)| body.get("password").is_some()).count();
    assert_eq!(with_password, 1, "the first password went out {with_password} times: {answers:?}");

    // The same device changed through both at once, ten times: every change stays.
    for round in 0..10u32 {
        let barrier = Arc::new(Barrier::new(2));
        let patches = [
            (a, json!({"description": format!("round {round}")})),
            (b, json!({"outdated_after_s": 3600 + round})),
        ];
        let threads: Vec<_> = patches
            .into_iter()
            .map(|(addr, body)| {
                let (barrier, device) = (Arc::clone(&barrier), device.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    api(addr, "PATCH", &format!("/api/v1/devices/{device}"), Some(body))
                })
            })
            .collect();
        for t in threads {
            let (status, body) = t.join().unwrap();
            assert_eq!(status, 200, "{body}");
        }
        for addr in [a, b] {
            wait_until("both changes on both replicas", || {
                let (_, d) = api(addr, "GET", &format!("/api/v1/devices/{device}"), None);
                d["description"] == json!(format!("round {round}"))
                    && d["outdated_after_s"] == json!(3600 + round)
            });
        }
    }

    // Two devices with one MAC, created through both at once: one wins, the other is refused.
    let barrier = Arc::new(Barrier::new(2));
    let creates: Vec<_> = [a, b]
        .into_iter()
        .map(|addr| {
            let (barrier, room) = (Arc::clone(&barrier), room.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let body = json!({"uid": "24:0a:c4:99:99:99", "type": "esp32", "rooms": [room]});
                api(addr, "POST", "/api/v1/devices", Some(body)).0
            })
        })
        .collect();
    let mut statuses: Vec<u16> = creates.into_iter().map(|t| t.join().unwrap()).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 409], "one MAC, one device");

    // A third replica with keys of its own would refuse every device: it refuses to start.
    let c_dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(common::BIN)
        .env("NEOSENS_DATA_DIR", c_dir.path())
        .env("NEOSENS_DATABASE_URL", &url)
        .env("NEOSENS_HTTP_BIND", "127.0.0.1:0")
        .env("NEOSENS_EMBEDDED_MQTT_BIND", "127.0.0.1:0")
        .output()
        .unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "a replica with other keys served: {said}");
    assert!(said.contains("not those the database was written with"), "{said}");
}

/// A dashboard request with a session cookie (and its CSRF token on changes).
fn with_session(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    cookie: &str,
    csrf: &str,
    body: Option<&str>,
) -> neosens_runtime::testing::RawResponse {
    let body = body.unwrap_or("");
    raw_http(
        addr,
        format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\nX-CSRF-Token: {csrf}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
}

#[test]
fn dashboard_sessions_and_sign_in_throttles_are_shared() {
    const PASSWORD: &str = "replicated admin pw";
    let pg = Postgres::start();
    let url = format!("{}?sslmode=disable", pg.database("central"));
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let env = [("NEOSENS_DATABASE_URL", url.as_str()), ("NEOSENS_ADMIN_PASSWORD", PASSWORD)];
    let a = start_replica(a_dir.path(), None, &env);
    let b = start_replica(b_dir.path(), Some(a_dir.path()), &env);
    let (a, b) = (a.addr("http"), b.addr("http"));
    let sign_in = |addr, password: &str| {
        let body = json!({"username": "admin", "password": password}).to_string();
        with_session(addr, "POST", "/api/v1/session", "", "", Some(&body))
    };

    // Signed in through A, known to B; signed out through B, gone from A too.
    let r = sign_in(a, PASSWORD);
    assert_eq!(r.status, 200, "{}", r.text());
    let cookie = r.header("set-cookie").unwrap().split(';').next().unwrap().to_owned();
    let csrf = serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["csrf_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        with_session(b, "GET", "/api/v1/session", &cookie, "", None).status,
        200,
        "B knows A's session"
    );
    assert_eq!(with_session(b, "DELETE", "/api/v1/session", &cookie, &csrf, None).status, 204);
    assert_eq!(
        with_session(a, "GET", "/api/v1/session", &cookie, "", None).status,
        401,
        "signed out everywhere"
    );

    // A guesser alternating between the replicas meets one count: 5 free failures in all.
    for n in 0..6 {
        assert_eq!(sign_in(if n % 2 == 0 { a } else { b }, "guess").status, 401);
    }
    let locked = sign_in(a, PASSWORD);
    assert_eq!(locked.status, 429, "the sixth failure, through either replica, locks: {}", locked.text());
}
