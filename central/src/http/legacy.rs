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
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use neosens_protocol::legacy::MAX_HTTP_BODY;
use neosens_runtime::legacy_http::{basic_auth, credentials_mac, forbidden, json_body};

use super::AppState;
use crate::metrics::ProvisioningLabels;
use crate::registry::Refusal;

/// Largest `/device/logger` body accepted (a Python LogRecord is well under 4 KiB; a traceback in
/// `exc_text` can take a few more).
const MAX_LOGGER_BODY: usize = 16 * 1024;

/// Largest body on the other legacy paths: the firmware sends none (GET), 1 KiB leaves room for
/// odd clients; more is answered 413 before anything is read.
const MAX_LEGACY_BODY: usize = 1024;

pub(super) fn routes() -> Router<AppState> {
    // The 2016 URL patterns had no `$`: `/device/config/` matched as well.
    Router::new()
        .route("/device/credentials", any(credentials))
        .route("/device/credentials/", any(credentials))
        .route("/device/config", any(config))
        .route("/device/config/", any(config))
        .route_layer(tower_http::limit::RequestBodyLimitLayer::new(MAX_LEGACY_BODY))
        .route("/device/logger", post(logger).layer(DefaultBodyLimit::max(MAX_LOGGER_BODY)))
        .route("/device/logger/", post(logger).layer(DefaultBodyLimit::max(MAX_LOGGER_BODY)))
}

/// A request a gateway forwarded for a device (`X-Neosens-Gateway: <its secret>`): the contact
/// counts in the gateway's health, and the device's address is the one it names
/// (`X-Forwarded-For`). Anything else is a device talking to central directly.
fn forwarded_for(state: &AppState, headers: &HeaderMap) -> Option<String> {
    forwarding_gateway(state, headers).and_then(|(_, source)| source)
}

/// The gateway that forwarded the request, and the device address it names.
fn forwarding_gateway(
    state: &AppState,
    headers: &HeaderMap,
) -> Option<(neosens_protocol::ids::GatewayId, Option<String>)> {
    let secret = headers.get("x-neosens-gateway")?.to_str().ok()?;
    let gateway = state.registry.authenticate_gateway(secret)?;
    state.gateways.contact(gateway, None, crate::model::Timestamp::now().millis());
    let source = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()).map(|v| v.trim().to_owned());
    Some((gateway, source))
}

fn count(state: &AppState, path: &'static str, outcome: &'static str) {
    state.metrics.provisioning.get_or_create(&ProvisioningLabels { path, outcome }).inc();
}

/// `GET|POST|… /device/credentials?mac=…` (§3.1).
async fn credentials(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    // The source: the device's address a gateway names, or the peer's.
    let through = forwarding_gateway(&state, &headers);
    let source: String = through
        .as_ref()
        .and_then(|(_, source)| source.clone())
        .unwrap_or_else(|| peer.ip().to_canonical().to_string())
        .chars()
        .take(64)
        .collect();
    let now = std::time::Instant::now();
    if state.scans.check(&source, now).is_err() {
        count(&state, "credentials", "throttled");
        return forbidden();
    }
    let Some(mac) = credentials_mac(&method, query.as_deref(), &body) else {
        tracing::debug!(outcome = "invalid_mac", "credentials refused");
        count(&state, "credentials", "invalid_mac");
        return forbidden();
    };
    // A first delivery commits (the password goes once): on the blocking pool.
    match state.registry.blocking(move |r| r.legacy_credentials(mac)).await {
        Ok(Some(creds)) => {
            count(&state, "credentials", if creds.password.is_some() { "delivered" } else { "served" });
            if creds.password.is_some() {
                check_delivery_address(&state, mac, &source);
            }
            json_body(creds.to_legacy_json())
        }
        Ok(None) => {
            tracing::debug!(%mac, %source, outcome = "unknown_mac", "credentials refused");
            count(&state, "credentials", "unknown_mac");
            state.scans.failed(&source, now);
            // A new board calling home: in the adoption inbox (a scanner is throttled above
            // before it gets here more than a few times).
            let user_agent = headers.get(axum::http::header::USER_AGENT).and_then(|v| v.to_str().ok());
            let asker = crate::unclaimed::Asker {
                source,
                gateway: through.map(|(gateway, _)| gateway),
                user_agent: user_agent.map(str::to_owned),
            };
            state.unclaimed.asked(mac, asker, crate::model::Timestamp::now().millis());
            forbidden()
        }
        Err(e) => {
            tracing::error!(%mac, error = %e, "credentials failed");
            count(&state, "credentials", "error");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// A first password went to `source`: outside `[alerts] device_networks`, an alert (someone
/// other than the device may have asked for it first; the operator re-sets its credentials).
fn check_delivery_address(state: &AppState, mac: neosens_protocol::ids::Mac, source: &str) {
    if !outside(&state.device_networks, source) {
        return;
    }
    let device = state.registry.device(&mac.to_string()).ok();
    tracing::warn!(%mac, %source, "first password delivered outside the device networks");
    let notice = crate::monitor::Notice {
        kind: crate::model::AlertKind::ForeignDelivery,
        device: device.as_ref().map(|d| d.id),
        building: device.as_ref().and_then(|d| d.rooms.first()).map(|r| r.building),
        detail: format!(
            "first password of {mac} delivered to {source}, outside [alerts] device_networks: if the device did not get it, re-set its credentials"
        ),
    };
    if state.notices.try_send(notice).is_err() {
        tracing::error!(%mac, %source, "alert queue full: foreign delivery not alerted");
    }
}

/// Whether `source` (an address, or what a gateway named) is outside `networks` (none: never;
/// not an address: outside). IPv4-mapped IPv6 addresses count as IPv4.
fn outside(networks: &[ipnet::IpNet], source: &str) -> bool {
    !networks.is_empty()
        && !source
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| networks.iter().any(|n| n.contains(&ip.to_canonical())))
}

fn refusal(state: &AppState, refusal: Refusal, path: &'static str, login: &str) -> Response {
    // One label for both: `/metrics` must not tell which logins exist (docs/security.md).
    let reason = match refusal {
        Refusal::UnknownLogin | Refusal::WrongSecret => "bad_credentials",
        Refusal::Disabled => "disabled",
    };
    tracing::debug!(path, login, outcome = reason, "device refused");
    count(state, path.trim_start_matches("/device/"), reason);
    forbidden()
}

/// `GET|… /device/config` with Basic auth (§3.2).
async fn config(State(state): State<AppState>, headers: HeaderMap) -> Response {
    forwarded_for(&state, &headers);
    let Some((login, password)) = basic_auth(&headers) else {
        tracing::debug!(path = "/device/config", outcome = "no_basic_auth", "device refused");
        count(&state, "config", "no_basic_auth");
        return forbidden();
    };
    match state.registry.legacy_config(&login, &password) {
        Ok(answer) => {
            count(&state, "config", "served");
            // Every boot asks for the configuration once: the monitor counts them (reboot loops).
            if let Some(device) = state.registry.device_id_by_login(&login) {
                let _ = state.boots.try_send(device);
            }
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
        Err(refused) => refusal(&state, refused, "/device/config", &login),
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
    let Some(record) = neosens_runtime::legacy_http::log_form(&body) else {
        return forbidden();
    };
    let remote = forwarded_for(&state, &headers).unwrap_or_else(|| peer.ip().to_string());
    let user = login.clone();
    match state.registry.blocking(move |r| r.legacy_log(&user, &password, record, remote)).await {
        Ok(Ok(())) => {
            count(&state, "logger", "served");
            StatusCode::OK.into_response()
        }
        Ok(Err(refused)) => refusal(&state, refused, "/device/logger", &login),
        Err(e) => {
            tracing::error!(%login, error = %e, "storing a device log failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::outside;

    #[test]
    fn delivery_addresses_inside_and_outside_the_device_networks() {
        let networks: Vec<ipnet::IpNet> =
            crate::config::AlertsConfig::default().networks().expect("the default networks parse");
        for inside in
            ["10.1.2.3", "192.168.1.20", "172.31.255.1", "127.0.0.1", "::ffff:10.0.0.7", "fd12::1", "fe80::1"]
        {
            assert!(!outside(&networks, inside), "{inside}");
        }
        for foreign in ["8.8.8.8", "172.32.0.1", "2001:db8::1", "not-an-address", ""] {
            assert!(outside(&networks, foreign), "{foreign}");
        }
        assert!(!outside(&[], "8.8.8.8"), "no networks configured: no alert");
        let bad =
            crate::config::AlertsConfig { device_networks: vec!["10.0.0.0/33".into()], ..Default::default() };
        assert!(bad.networks().unwrap_err().contains("10.0.0.0/33"));
    }
}
