//! The legacy device paths, byte-compatible with the 2016 sensOCampus server.
//!
//! Spec: `legacy-sensocampus.md` §2, §3.1–§3.5, §8. Devices only look at the status code, so
//! every refusal is `403` with an empty body (the firmware then retries and reboots); what
//! went wrong is logged at debug level with its reason. Answers are JSON printed exactly as
//! Python's `json.dumps` did, with `Content-Type: application/json` and a `Content-Length`.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, RawQuery, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use base64::Engine;
use neosens_protocol::Mac;
use neosens_protocol::legacy::{LogRecord, MAX_HTTP_BODY};

use super::AppState;
use crate::metrics::ProvisioningLabels;
use crate::registry::ConfigOutcome;

/// Largest `/device/logger` body accepted (a Python LogRecord is well under 4 KiB).
const MAX_LOGGER_BODY: usize = 64 * 1024;

pub(super) fn routes() -> Router<AppState> {
    // The 2016 URL patterns had no `$`: `/device/config/` matched as well.
    Router::new()
        .route("/device/credentials", any(credentials))
        .route("/device/credentials/", any(credentials))
        .route("/device/config", any(config))
        .route("/device/config/", any(config))
        .route("/device/logger", post(logger).layer(DefaultBodyLimit::max(MAX_LOGGER_BODY)))
        .route("/device/logger/", post(logger).layer(DefaultBodyLimit::max(MAX_LOGGER_BODY)))
}

fn count(state: &AppState, path: &'static str, outcome: &'static str) {
    state.metrics.provisioning.get_or_create(&ProvisioningLabels { path, outcome }).inc();
}

fn forbidden() -> Response {
    StatusCode::FORBIDDEN.into_response()
}

fn json_body(body: String) -> Response {
    ([(CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}

/// The last value of `name` in a form-encoded string (Django's `QueryDict.get`).
fn form_value(encoded: &[u8], name: &str) -> Option<String> {
    form_urlencoded::parse(encoded).filter(|(k, _)| k == name).last().map(|(_, v)| v.into_owned())
}

/// `GET|POST|… /device/credentials?mac=…` (§3.1).
async fn credentials(
    State(state): State<AppState>,
    method: Method,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let raw = if method == Method::POST {
        form_value(&body, "mac")
    } else {
        query.as_deref().and_then(|q| form_value(q.as_bytes(), "mac"))
    };
    // The 2016 form field had max_length=17; anything longer was invalid.
    let Some(mac) = raw.filter(|m| m.chars().count() <= 17).and_then(|m| m.parse::<Mac>().ok()) else {
        tracing::debug!(outcome = "invalid_mac", "credentials refused");
        count(&state, "credentials", "invalid_mac");
        return forbidden();
    };
    match state.registry.legacy_credentials(mac) {
        Ok(Some(creds)) => {
            count(&state, "credentials", if creds.password.is_some() { "delivered" } else { "served" });
            json_body(creds.to_legacy_json())
        }
        Ok(None) => {
            tracing::debug!(%mac, outcome = "unknown_mac", "credentials refused");
            count(&state, "credentials", "unknown_mac");
            forbidden()
        }
        Err(e) => {
            tracing::error!(%mac, error = %e, "credentials failed");
            count(&state, "credentials", "error");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// `login`, `password` of an `Authorization: Basic …` header (scheme in any case, split on the
/// first `:`), as the 2016 `device_auth` decorator read them.
fn basic_auth(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (login, password) = text.split_once(':')?;
    Some((login.to_owned(), password.to_owned()))
}

fn refusal(state: &AppState, outcome: &ConfigOutcome, path: &'static str, login: &str) -> Response {
    let reason = match outcome {
        ConfigOutcome::UnknownLogin => "unknown_login",
        ConfigOutcome::WrongSecret => "wrong_secret",
        ConfigOutcome::Disabled => "disabled",
        ConfigOutcome::Served(_) => "served",
    };
    tracing::debug!(path, login, outcome = reason, "device refused");
    count(state, path.trim_start_matches("/device/"), reason);
    forbidden()
}

/// `GET|… /device/config` with Basic auth (§3.2).
async fn config(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some((login, password)) = basic_auth(&headers) else {
        tracing::debug!(path = "/device/config", outcome = "no_basic_auth", "device refused");
        count(&state, "config", "no_basic_auth");
        return forbidden();
    };
    match state.registry.legacy_config(&login, &password) {
        ConfigOutcome::Served(answer) => {
            count(&state, "config", "served");
            let body = answer.to_legacy_json();
            if answer.topics.is_empty() {
                tracing::warn!(%login, "device has no room: its firmware gets no base topic");
            }
            if body.len() > MAX_HTTP_BODY {
                // Saved configurations are checked against the limit; a later rename can still
                // push the answer over it. Serve it (as 2016 did) but say why the device fails.
                tracing::warn!(%login, size = body.len(), limit = MAX_HTTP_BODY, "config answer over the firmware's limit");
            }
            json_body(body)
        }
        other => refusal(&state, &other, "/device/config", &login),
    }
}

/// `POST /device/logger` with Basic auth and a form-encoded Python `LogRecord` (§3.5).
async fn logger(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some((login, password)) = basic_auth(&headers) else { return forbidden() };
    let fields: serde_json::Map<String, serde_json::Value> = form_urlencoded::parse(&body)
        .map(|(k, v)| (k.into_owned(), serde_json::Value::String(v.into_owned())))
        .collect();
    let Ok(record) = serde_json::from_value::<LogRecord>(serde_json::Value::Object(fields)) else {
        return forbidden();
    };
    match state.registry.legacy_log(&login, &password, record, peer.ip().to_string()) {
        Ok(Ok(())) => {
            count(&state, "logger", "served");
            StatusCode::OK.into_response()
        }
        Ok(Err(outcome)) => refusal(&state, &outcome, "/device/logger", &login),
        Err(e) => {
            tracing::error!(%login, error = %e, "storing a device log failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
