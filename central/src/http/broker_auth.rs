//! The broker's authentication backend: two contracts, one set of decisions.
//!
//! - mosquitto-go-auth HTTP backend: `POST /mqtt/auth`, `/mqtt/superuser`, `/mqtt/acl`, JSON
//!   (or form, with `auth_opt_http_params_mode form`) in, `200 {"ok": bool, "error"?}` out.
//! - the 2016 form contract (jpmens' auth plug-in): `POST /mqtt_auth/auth`, `/superuser`, `/acl`;
//!   the status is the answer: 200 allow, 403 deny.
//!
//! Malformed requests get 400, never 5xx: go-auth caches denials but retries and never caches
//! errors, so a 5xx is kept for real internal failures (spec `broker-auth.md` §4, §8).
//!
//! These paths are a password oracle, so who may ask is narrowed ([`Trust`]):
//! - on their own listener (`[broker_auth] bind`, an address only the broker reaches): everyone
//!   it lets in, central's own service account included;
//! - on the main listener: loopback peers only (a broker on the same host), others get 404 as if
//!   the paths did not exist — unless `[broker_auth] public`, and even then service accounts are
//!   answered to loopback peers only. A request relayed by a proxy (`Forwarded`,
//!   `X-Forwarded-For`, `X-Real-IP`) is never a loopback one, whatever its socket says.
//!
//! Refusals say `bad_credentials` both for an unknown user and a wrong password, in answers and
//! in metrics, and take the same work (one keyed hash): nobody learns which logins exist.

use axum::Extension;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::AppState;
use crate::metrics::AuthLabels;
use crate::registry::{Access, Decision};

/// What a broker-auth request may learn, decided from where it comes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Trust {
    /// The broker: every account, service accounts included.
    Broker,
    /// A peer that may ask about devices and gateways only (`[broker_auth] public`).
    DevicesOnly,
}

/// The broker-auth paths of the dedicated listener: every peer is the broker.
pub(super) fn dedicated_routes() -> Router<AppState> {
    routes().layer(axum::Extension(Trust::Broker))
}

/// The broker-auth paths on the main listener: for loopback peers, and with `public` for
/// others too (devices and gateways only).
pub(super) fn main_listener_routes(public: bool) -> Router<AppState> {
    routes().layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| async move {
            let trust = if local_peer(&request) {
                Trust::Broker
            } else if public {
                Trust::DevicesOnly
            } else {
                return StatusCode::NOT_FOUND.into_response();
            };
            let mut request = request;
            request.extensions_mut().insert(trust);
            next.run(request).await
        },
    ))
}

/// Whether the request comes straight from this host: a loopback socket peer, and no header a
/// reverse proxy adds (through a proxy on this host, every client would look local).
fn local_peer(request: &axum::extract::Request) -> bool {
    let relayed =
        ["forwarded", "x-forwarded-for", "x-real-ip"].iter().any(|h| request.headers().contains_key(*h));
    let peer = request.extensions().get::<axum::extract::ConnectInfo<std::net::SocketAddr>>();
    !relayed && peer.is_some_and(|p| p.0.ip().to_canonical().is_loopback())
}

fn routes() -> Router<AppState> {
    Router::new()
        .route("/mqtt/auth", post(goauth_user))
        .route("/mqtt/superuser", post(goauth_superuser))
        .route("/mqtt/acl", post(goauth_acl))
        .route("/mqtt_auth/auth", post(legacy_user))
        .route("/mqtt_auth/superuser", post(legacy_superuser))
        .route("/mqtt_auth/acl", post(legacy_acl))
}

#[derive(Deserialize)]
struct UserRequest {
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    clientid: String,
}

#[derive(Deserialize)]
struct SuperuserRequest {
    #[allow(dead_code)] // required, so a malformed body is told apart; no superusers exist
    username: String,
}

/// `acc` is a JSON number from go-auth, a decimal string in form bodies (and in the README).
#[derive(Deserialize)]
#[serde(untagged)]
enum Acc {
    Number(i64),
    Text(String),
}

#[derive(Deserialize)]
struct AclRequest {
    username: String,
    #[serde(default)]
    clientid: String,
    topic: String,
    acc: Acc,
}

impl AclRequest {
    fn access(&self) -> Result<Access, String> {
        let n = match &self.acc {
            Acc::Number(n) => Some(*n),
            Acc::Text(t) => t.trim().parse().ok(),
        };
        n.and_then(Access::from_acc)
            .ok_or_else(|| "acc must be 1 (read), 2 (publish) or 4 (subscribe)".to_owned())
    }
}

/// Parses a JSON or form-encoded body (by `Content-Type`; JSON when absent).
fn parse<T: DeserializeOwned>(headers: &HeaderMap, body: &[u8]) -> Result<T, String> {
    let form = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if form {
        let fields: serde_json::Map<String, Value> = form_urlencoded::parse(body)
            .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
            .collect();
        serde_json::from_value(Value::Object(fields)).map_err(|e| format!("form body: {e}"))
    } else {
        serde_json::from_slice(body).map_err(|e| format!("JSON body: {e}"))
    }
}

fn goauth_answer(decision: Decision) -> Response {
    match decision {
        Decision::Allow => axum::Json(json!({"ok": true})).into_response(),
        Decision::Deny(reason) => axum::Json(json!({"ok": false, "error": reason.public()})).into_response(),
    }
}

fn goauth_malformed(error: String) -> Response {
    tracing::debug!(%error, "malformed broker-auth request");
    (StatusCode::BAD_REQUEST, axum::Json(json!({"ok": false, "error": error}))).into_response()
}

fn legacy_answer(decision: Decision) -> Response {
    match decision {
        Decision::Allow => StatusCode::OK.into_response(),
        Decision::Deny(_) => StatusCode::FORBIDDEN.into_response(),
    }
}

fn count(s: &AppState, contract: &'static str, check: &'static str, outcome: &'static str) {
    s.metrics.broker_auth.get_or_create(&AuthLabels { contract, check, outcome }).inc();
}

fn log(
    s: &AppState,
    contract: &'static str,
    check: &'static str,
    username: &str,
    topic: Option<&str>,
    decision: Decision,
) -> Decision {
    let outcome = match decision {
        Decision::Allow => "allow",
        Decision::Deny(reason) => {
            tracing::debug!(check, username, topic, reason = reason.as_str(), "broker refused");
            reason.public()
        }
    };
    count(s, contract, check, outcome);
    decision
}

/// A service account asked about by a peer that may not learn of it: answered as an unknown
/// user, after the same work.
fn hidden(s: &AppState, trust: Trust, username: &str, password: &str) -> Option<Decision> {
    (trust != Trust::Broker && s.registry.is_service_account(username)).then(|| {
        let _ = s.registry.keys().verify(password.as_bytes(), &[0; 32]);
        Decision::Deny(crate::registry::DenyReason::UnknownUser)
    })
}

fn user_decision(s: &AppState, trust: Trust, contract: &'static str, r: &UserRequest) -> Decision {
    let decision = hidden(s, trust, &r.username, &r.password)
        .unwrap_or_else(|| s.registry.broker_authenticate(&r.username, &r.password, &r.clientid));
    log(s, contract, "auth", &r.username, None, decision)
}

fn acl_decision(
    s: &AppState,
    trust: Trust,
    contract: &'static str,
    r: &AclRequest,
    access: Access,
) -> Decision {
    let decision = hidden(s, trust, &r.username, "")
        .unwrap_or_else(|| s.registry.broker_authorize(&r.username, &r.clientid, &r.topic, access));
    log(s, contract, "acl", &r.username, Some(&r.topic), decision)
}

async fn goauth_user(
    State(s): State<AppState>,
    trust: Extension<Trust>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match parse::<UserRequest>(&headers, &body) {
        Ok(r) => goauth_answer(user_decision(&s, trust.0, "goauth", &r)),
        Err(e) => {
            count(&s, "goauth", "auth", "malformed");
            goauth_malformed(e)
        }
    }
}

/// No superusers: central's own rights are answered by the ACL check, so configure go-auth
/// without `http_superuser_uri` and save one request per ACL miss.
async fn goauth_superuser(headers: HeaderMap, body: Bytes) -> Response {
    match parse::<SuperuserRequest>(&headers, &body) {
        Ok(_) => axum::Json(json!({"ok": false})).into_response(),
        Err(e) => goauth_malformed(e),
    }
}

async fn goauth_acl(
    State(s): State<AppState>,
    trust: Extension<Trust>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match parse::<AclRequest>(&headers, &body).and_then(|r| r.access().map(|a| (r, a))) {
        Ok((r, access)) => goauth_answer(acl_decision(&s, trust.0, "goauth", &r, access)),
        Err(e) => {
            count(&s, "goauth", "acl", "malformed");
            goauth_malformed(e)
        }
    }
}

async fn legacy_user(
    State(s): State<AppState>,
    trust: Extension<Trust>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match parse::<UserRequest>(&headers, &body) {
        Ok(r) => legacy_answer(user_decision(&s, trust.0, "legacy", &r)),
        Err(_) => {
            count(&s, "legacy", "auth", "malformed");
            StatusCode::BAD_REQUEST.into_response()
        }
    }
}

/// "No superusers for now", as in 2016: always 403 (400 for a malformed form).
async fn legacy_superuser(headers: HeaderMap, body: Bytes) -> Response {
    match parse::<SuperuserRequest>(&headers, &body) {
        Ok(_) => StatusCode::FORBIDDEN.into_response(),
        Err(_) => StatusCode::BAD_REQUEST.into_response(),
    }
}

async fn legacy_acl(
    State(s): State<AppState>,
    trust: Extension<Trust>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match parse::<AclRequest>(&headers, &body).and_then(|r| r.access().map(|a| (r, a))) {
        Ok((r, access)) => legacy_answer(acl_decision(&s, trust.0, "legacy", &r, access)),
        Err(_) => {
            count(&s, "legacy", "acl", "malformed");
            StatusCode::BAD_REQUEST.into_response()
        }
    }
}
