//! The HTTP interface: one router, one shared state.
//!
//! | module | paths |
//! |---|---|
//! | `legacy` | `/device/credentials`, `/device/config`, `/device/logger` (byte-compatible with 2016) |
//! | `images` | `/images/<hardware>/<board>/default.json` and image files: the firmware's update check (§3.4) |
//! | `api` | `/api/v1/…` (admin API, bearer tokens, JSON errors) |
//! | `broker_auth` | `/mqtt/*` (go-auth) and `/mqtt_auth/*` (2016 plug-in): Mosquitto's auth backend |
//! | `dashboard` | `/`, `/assets/*`, `/api/docs`: the React dashboard and the API reference, embedded in the binary |
//! | `neosens_runtime::http::healthz` | `/healthz` |

mod api;
mod broker_auth;
mod dashboard;
mod error;
mod extract;
mod images;
mod legacy;
mod session;
mod throttle;

/// `/device/credentials` for unknown MACs per source address: 30 free in 15 min (a device not
/// registered yet retries at each boot), then locks from 1 s doubling to 5 min, during which
/// every credentials request of that source is refused (and counted as `throttled`).
pub const SCAN_POLICY: Policy = Policy {
    free_failures: 30,
    window: std::time::Duration::from_secs(900),
    max_lock: std::time::Duration::from_secs(300),
    max_keys: 10_000,
};

use std::sync::Arc;

use axum::Router;

use crate::Config;
use crate::registry::Registry;

pub use error::{ApiError, ErrorBody, ErrorDetail};
pub use session::Sessions;
pub use throttle::{Policy, Throttle};

/// Threads checking and hashing dashboard passwords at once: each argon2id run takes 19 MiB and
/// tens of milliseconds of a core; a burst of sign-ins must not starve the rest of central, nor
/// leave 19 MiB in the allocator arena of every thread it touched.
pub const PASSWORD_THREADS: usize = 2;

/// Password checks waiting at most; more sign-ins are told to retry (429) at once.
pub const PASSWORDS_WAITING: usize = 16;

/// What every handler can reach: cheap to clone (handles and `Arc`s only).
#[derive(Clone)]
pub struct AppState {
    /// The configuration the service started with.
    pub config: Arc<Config>,
    /// Whether this replica leads (always, alone on its store).
    pub leadership: crate::leader::Leadership,
    /// The registry.
    pub registry: Arc<Registry>,
    /// Firmware images and campaigns.
    pub firmware: crate::firmware::Firmware,
    /// The link to the broker (orders go out through it).
    pub mqtt: neosens_runtime::mqtt::MqttHandle,
    /// Metrics.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Device states and alerts.
    pub monitor: crate::monitor::Monitor,
    /// Gateways' health.
    pub gateways: crate::gateway_health::GatewayHealth,
    /// Dashboard sessions.
    pub sessions: Arc<Sessions>,
    /// `/device/credentials` requests for unknown MACs, per source address.
    pub scans: Arc<Throttle>,
    /// Unknown MACs that asked for credentials: the adoption inbox.
    pub unclaimed: crate::unclaimed::Unclaimed,
    /// What `/metrics` and `/readyz` require (`[http] metrics_token`).
    pub scrape: neosens_runtime::http::ScrapeToken,
    /// Alerts raised by handlers, to the monitor.
    pub notices: tokio::sync::mpsc::Sender<crate::monitor::Notice>,
    /// Devices booting (their configuration answered), to the monitor.
    pub boots: tokio::sync::mpsc::Sender<neosens_protocol::ids::DeviceId>,
    /// The threads that check and hash dashboard passwords (argon2id).
    pub passwords: neosens_runtime::workers::Workers,
    /// `[alerts] device_networks`, parsed.
    pub device_networks: Arc<Vec<ipnet::IpNet>>,
    /// The supervisor's view of the background tasks (`/readyz`).
    pub tasks: Arc<neosens_runtime::supervisor::TaskHealth>,
    /// Bulk operations on devices.
    pub bulk: crate::bulk::BulkOps,
    /// The university's directory for dashboard sign-ins (`[ldap]`), when configured.
    pub directory: Option<Arc<crate::directory::Directory>>,
}

/// The router of the main HTTP listener; with `broker_auth_apart`, without the broker-auth
/// paths (served by [`broker_auth_router`] on their own listener).
pub fn router(state: AppState, broker_auth_apart: bool) -> Router {
    let router = Router::new()
        .merge(legacy::routes())
        .merge(images::routes())
        .merge(api::routes())
        .merge(dashboard::routes())
        .merge(neosens_runtime::http::healthz(neosens_runtime::build_info!()))
        .merge(neosens_runtime::http::guarded(
            Router::new()
                .route("/metrics", axum::routing::get(metrics))
                .route("/readyz", axum::routing::get(readyz))
                .route("/leader", axum::routing::get(leader)),
            state.scrape.clone(),
        ));
    let router = if broker_auth_apart {
        router
    } else {
        router.merge(broker_auth::main_listener_routes(state.config.broker_auth.public))
    };
    router
        .layer(axum::middleware::from_fn_with_state(state.clone(), leader_only))
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// Whether `path` serves state that lives on the leading replica: firmware images, campaigns
/// and bulk operations (loaded by a replica when it takes the lead), the device paths that read
/// them, and the gateways' paths and views (their health reports are kept in the leader's
/// memory, where its monitor watches their packet forwarders), and the fleet summary (which
/// marks the sites whose local-broker gateway those reports say is out of reach).
pub fn leader_path(path: &str) -> bool {
    const PREFIXES: [&str; 7] = [
        "/api/v1/fleet",
        "/api/v1/firmware",
        "/api/v1/campaigns",
        "/api/v1/bulk-operations",
        "/api/v1/edge/",
        "/api/v1/gateways",
        "/images/",
    ];
    PREFIXES.iter().any(|p| path.starts_with(p))
        || (path.starts_with("/api/v1/devices/") && path.ends_with("/firmware"))
}

/// A replica that does not lead answers the leader's paths with 503, naming the way out (the
/// load balancer sends them to the replica whose `GET /leader` answers 200: deploy/ha).
async fn leader_only(
    axum::extract::State(s): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if s.leadership.is_leading() || !leader_path(request.uri().path()) {
        return next.run(request).await;
    }
    error::ApiError::NotLeader(
        "this replica does not lead: firmware, campaigns, bulk operations and gateways are served \
         by the leading replica (the one whose GET /leader answers 200; see docs/deploy.md)"
            .into(),
    )
    .into_response()
}

/// `GET /leader`: 200 on the replica that leads, 503 on the others (a load balancer's health
/// check for the leader's paths, see [`leader_path`]).
async fn leader(
    axum::extract::State(s): axum::extract::State<AppState>,
) -> impl axum::response::IntoResponse {
    let leading = s.leadership.is_leading();
    let status =
        if leading { axum::http::StatusCode::OK } else { axum::http::StatusCode::SERVICE_UNAVAILABLE };
    (status, axum::Json(serde_json::json!({ "leading": leading })))
}

/// The OpenAPI document of `/api/v1`, as `GET /api/v1/openapi.json` serves it (also printed by
/// `neosens-central openapi`, from which the dashboard's TypeScript types are generated).
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    api::openapi_document()
}

/// The broker-auth paths alone, for a listener only the broker can reach.
pub fn broker_auth_router(state: AppState) -> Router {
    broker_auth::dedicated_routes()
        .merge(neosens_runtime::http::healthz(neosens_runtime::build_info!()))
        .with_state(state)
}

/// `GET /metrics`: OpenMetrics text for scrapers that ask for it (Prometheus does), the classic
/// Prometheus text format (0.0.4) for the others (`curl`, `promtool check metrics`, older tools).
async fn metrics(
    axum::extract::State(s): axum::extract::State<AppState>,
    headers: axum::http::HeaderMap,
) -> impl axum::response::IntoResponse {
    let accept = headers.get(axum::http::header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    if accept.contains("application/openmetrics-text") {
        (
            [(
                axum::http::header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            s.metrics.render(),
        )
    } else {
        (
            [(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
            crate::metrics::to_classic_text(&s.metrics.render()),
        )
    }
}

/// `GET /readyz`: 200 when the store answers and the broker link is up, 503 otherwise, with the
/// detail of each check (for load balancers, systemd, and people).
async fn readyz(
    axum::extract::State(s): axum::extract::State<AppState>,
) -> impl axum::response::IntoResponse {
    let store = s.registry.blocking(|r| r.probe_store()).await.map_err(|e| e.to_string());
    let broker = s.mqtt.stats().connected();
    let failed = s.tasks.failed();
    let ready = store.is_ok() && broker && failed.is_none();
    let body = serde_json::json!({
        "ready": ready,
        "checks": {
            "store": match &store { Ok(()) => serde_json::json!({"ok": true}), Err(e) => serde_json::json!({"ok": false, "error": e}) },
            "broker_link": {"ok": broker},
            "tasks": match &failed { None => serde_json::json!({"ok": true}), Some(e) => serde_json::json!({"ok": false, "error": e}) },
        },
        "devices": s.registry.device_count(),
        "revision": s.registry.revision(),
    });
    let status = if ready { axum::http::StatusCode::OK } else { axum::http::StatusCode::SERVICE_UNAVAILABLE };
    (status, axum::Json(body))
}

/// Records each request's duration under its route pattern, method and status class: labels
/// from fixed sets (the router's patterns or `unmatched`, [`crate::metrics::method_label`], five
/// classes), so no request can add a series.
async fn observe(
    axum::extract::State(s): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = crate::metrics::method_label(request.method());
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    let status = match response.status().as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    s.metrics
        .http
        .get_or_create(&crate::metrics::HttpLabels { route, method, status })
        .observe(started.elapsed().as_secs_f64());
    response
}

#[cfg(test)]
#[path = "handler_tests.rs"]
mod handler_tests;
