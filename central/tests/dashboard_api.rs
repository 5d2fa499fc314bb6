//! What the dashboard relies on, over real HTTP: sign-in with a password, the session cookie's
//! attributes, the CSRF token on changes, per-user settings, the fleet summary's ETag, the
//! embedded app, the API reference and their security headers.

mod common;

use std::net::SocketAddr;

use common::client::wire::{Fleet, Me, OrderRecord, SignedIn};
use common::client::{ApiClient, parse_raw};
use common::{register_example, start_with};
use neosens_runtime::testing::{RawResponse, raw_http};
use serde_json::{Value, json};

const PASSWORD: &str = "dashboard admin pw";

fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> RawResponse {
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    for (k, v) in headers {
        text.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        text.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", b.len()));
    }
    text.push_str("\r\n");
    text.push_str(body.unwrap_or(""));
    raw_http(addr, text.as_bytes())
}

/// A free-form JSON body (the per-user settings are whatever the dashboard saved).
fn json_of(r: &RawResponse) -> Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", r.text()))
}

/// Signs in; returns the `Cookie` header value and the CSRF token.
fn sign_in(addr: SocketAddr, user: &str, password: &str) -> (String, String) {
    let body = json!({"username": user, "password": password}).to_string();
    let r = request(addr, "POST", "/api/v1/session", &[], Some(&body));
    assert_eq!(r.status, 200, "{}", r.text());
    let set_cookie = r.header("set-cookie").expect("a session cookie").to_owned();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(attr), "{set_cookie}");
    }
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let signed_in: SignedIn = parse_raw("sign-in", &r);
    (cookie, signed_in.csrf_token)
}

#[test]
fn sessions_csrf_settings_and_roles() {
    let dir = tempfile::tempdir().unwrap();
    let central = start_with(dir.path(), &[("NEOSENS_ADMIN_PASSWORD", PASSWORD)]);
    let addr = central.addr("http");
    let admin = ApiClient::admin(addr);
    register_example(addr);

    // Wrong passwords, malformed bodies, no session.
    let bad = json!({"username": "admin", "password": "not the password"}).to_string();
    let r = request(addr, "POST", "/api/v1/session", &[], Some(&bad));
    assert_eq!(r.status, 401);
    assert!(r.header("set-cookie").is_none());
    assert_eq!(request(addr, "POST", "/api/v1/session", &[], Some("{\"username\":")).status, 400);
    assert_eq!(request(addr, "GET", "/api/v1/session", &[], None).status, 401);
    let forged = [("Cookie", "neosens_session=forged")];
    assert_eq!(request(addr, "GET", "/api/v1/devices", &forged, None).status, 401);

    let (cookie, csrf) = sign_in(addr, "admin", PASSWORD);
    let with_cookie = [("Cookie", cookie.as_str())];
    let me: Me = parse_raw("who am I", &request(addr, "GET", "/api/v1/session", &with_cookie, None));
    assert_eq!((me.username.as_str(), me.role.as_str()), ("admin", "admin"));
    assert_eq!(request(addr, "GET", "/api/v1/devices", &with_cookie, None).status, 200);

    // A change without the CSRF token (what a cross-site form would send) is refused.
    let order = json!({"order": "status"}).to_string();
    let path = format!("/api/v1/devices/{}/orders", common::MAC);
    let r = request(addr, "POST", &path, &with_cookie, Some(&order));
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("X-CSRF-Token"), "{}", r.text());
    let wrong = [("Cookie", cookie.as_str()), ("X-CSRF-Token", "guess")];
    assert_eq!(request(addr, "POST", &path, &wrong, Some(&order)).status, 403);
    let good = [("Cookie", cookie.as_str()), ("X-CSRF-Token", csrf.as_str())];
    let r = request(addr, "POST", &path, &good, Some(&order));
    assert_eq!(r.status, 202, "{}", r.text());
    let record: OrderRecord = parse_raw("the order", &r);
    assert_eq!(record.by, "admin", "orders are recorded under the user's name");

    // Settings: saved per user, an object, bounded.
    assert_eq!(json_of(&request(addr, "GET", "/api/v1/session/settings", &with_cookie, None)), json!({}));
    let settings = json!({"devices": {"columns": ["uid", "status:heap"]}}).to_string();
    assert_eq!(request(addr, "PUT", "/api/v1/session/settings", &good, Some(&settings)).status, 200);
    assert_eq!(
        json_of(&request(addr, "GET", "/api/v1/session/settings", &with_cookie, None))["devices"]["columns"]
            [1],
        "status:heap"
    );
    assert_eq!(request(addr, "PUT", "/api/v1/session/settings", &good, Some("[1,2]")).status, 400);
    let huge = json!({"x": "y".repeat(70_000)}).to_string();
    assert_eq!(request(addr, "PUT", "/api/v1/session/settings", &good, Some(&huge)).status, 413);
    let err = admin.refused("GET", "/api/v1/session/settings", None);
    assert_eq!(err.status, 400, "tokens have no settings: {err:?}");

    // A viewer signs in, reads, and cannot send orders even with a valid CSRF token.
    admin
        .create_user(json!({"username": "vera", "password": "viewer password", "role": "viewer"}))
        .expect("a viewer");
    let (vcookie, vcsrf) = sign_in(addr, "vera", "viewer password");
    let viewer = [("Cookie", vcookie.as_str()), ("X-CSRF-Token", vcsrf.as_str())];
    assert_eq!(request(addr, "GET", "/api/v1/devices", &viewer, None).status, 200);
    assert_eq!(request(addr, "POST", &path, &viewer, Some(&order)).status, 403);
    assert_eq!(
        json_of(&request(addr, "GET", "/api/v1/session/settings", &viewer, None)),
        json!({}),
        "settings are per user"
    );

    // Sign-out ends the session; a password change ends the user's other sessions.
    assert_eq!(request(addr, "DELETE", "/api/v1/session", &viewer, None).status, 204);
    assert_eq!(request(addr, "GET", "/api/v1/devices", &viewer, None).status, 401);
    let users = admin.users().expect("users");
    let admin_user = users.iter().find(|u| u.username == "admin").unwrap();
    admin.patch_user(&admin_user.id, json!({"password": "a new password!"})).expect("password changed");
    assert_eq!(request(addr, "GET", "/api/v1/devices", &with_cookie, None).status, 401);
}

#[test]
fn fleet_summary_etag_and_the_embedded_app() {
    let dir = tempfile::tempdir().unwrap();
    let central = start_with(dir.path(), &[]);
    let addr = central.addr("http");
    let admin = ApiClient::admin(addr);
    register_example(addr);
    let auth = format!("Bearer {}", common::ADMIN);
    let r = request(addr, "GET", "/api/v1/fleet", &[("Authorization", &auth)], None);
    assert_eq!(r.status, 200);
    let fleet: Fleet = parse_raw("the fleet", &r);
    assert_eq!(fleet.total.never_seen, 1, "{fleet:?}");
    let building = fleet.sites[0].buildings.iter().find(|b| b.name == "IRIT2").unwrap();
    assert_eq!(building.rooms[0].name, "366");
    assert_eq!(building.rooms[0].counts.never_seen, 1);
    let etag = r.header("etag").expect("an ETag").to_owned();
    let again =
        request(addr, "GET", "/api/v1/fleet", &[("Authorization", &auth), ("If-None-Match", &etag)], None);
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    // A change in the fleet changes the ETag.
    admin.disable_device(common::MAC).expect("disabled");
    let changed =
        request(addr, "GET", "/api/v1/fleet", &[("Authorization", &auth), ("If-None-Match", &etag)], None);
    assert_eq!(changed.status, 200);
    assert_eq!(parse_raw::<Fleet>("the fleet", &changed).total.disabled, 1);

    // Sorting and a bad sort key.
    assert_eq!(admin.devices("sort=-last_seen").expect("sorted").total, 1);
    let err = admin.devices("sort=password").unwrap_err();
    assert_eq!((err.status, err.field.as_deref()), (400, Some("sort")));

    // The app (or the page saying how to build it) at /, with a strict CSP.
    let index = request(addr, "GET", "/", &[], None);
    assert_eq!(index.status, 200);
    assert!(index.text().contains("<html"), "{}", index.text());
    let csp = index.header("content-security-policy").expect("a CSP");
    assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(index.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(request(addr, "GET", "/assets/nothing.js", &[], None).status, 404);
    if let Some(asset) = index.text().split("src=\"").nth(1).and_then(|s| s.split('"').next()) {
        let r = request(addr, "GET", asset, &[], None);
        assert_eq!(r.status, 200, "{asset}");
        assert!(r.header("cache-control").unwrap().contains("immutable"));
        assert!(r.header("content-type").unwrap().starts_with("text/javascript"));
    }

    // The API reference, without a session or token (the document it renders is public too),
    // under the same strict CSP but for the empty <style> element styled-components needs.
    let docs = request(addr, "GET", "/api/docs", &[], None);
    assert_eq!(docs.status, 200, "{}", docs.text());
    assert!(docs.text().contains("<html"), "{}", docs.text());
    let csp = docs.header("content-security-policy").expect("a CSP");
    assert!(csp.contains("script-src 'self';") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(!csp.contains("unsafe"), "{csp}");
    assert!(csp.contains("'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='"), "{csp}");
    assert_eq!(request(addr, "GET", "/api/v1/openapi.json", &[], None).status, 200);
}
