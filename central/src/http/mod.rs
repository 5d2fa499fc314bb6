//! The HTTP interface: one router, one shared state.
//!
//! | module | paths |
//! |---|---|
//! | `legacy` | `/device/credentials`, `/device/config`, `/device/logger` (byte-compatible with 2016) |
//! | `api` | `/api/v1/…` (admin API, bearer tokens, JSON errors) |
//! | `broker_auth` | `/mqtt/*` (go-auth) and `/mqtt_auth/*` (2016 plug-in): Mosquitto's auth backend |
//! | `neosens_runtime::http::healthz` | `/healthz` |

mod api;
mod broker_auth;
mod error;
mod extract;
mod legacy;

use std::sync::Arc;

use axum::Router;

use crate::Config;
use crate::registry::Registry;

pub use error::{ApiError, ErrorBody, ErrorDetail};

/// What every handler can reach: cheap to clone (handles and `Arc`s only).
#[derive(Clone)]
pub struct AppState {
    /// The configuration the service started with.
    pub config: Arc<Config>,
    /// The registry.
    pub registry: Arc<Registry>,
    /// The link to the broker (orders go out through it).
    pub mqtt: neosens_runtime::mqtt::MqttHandle,
    /// Metrics.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Device states and alerts.
    pub monitor: crate::monitor::Monitor,
}

/// The router of the main HTTP listener; with `broker_auth_apart`, without the broker-auth
/// paths (served by [`broker_auth_router`] on their own listener).
pub fn router(state: AppState, broker_auth_apart: bool) -> Router {
    let router = Router::new()
        .merge(legacy::routes())
        .merge(api::routes())
        .merge(neosens_runtime::http::healthz(env!("CARGO_PKG_VERSION")))
        .route("/metrics", axum::routing::get(metrics));
    let router = if broker_auth_apart { router } else { router.merge(broker_auth::routes()) };
    router.with_state(state)
}

/// The broker-auth paths alone, for a listener only the broker can reach.
pub fn broker_auth_router(state: AppState) -> Router {
    broker_auth::routes().merge(neosens_runtime::http::healthz(env!("CARGO_PKG_VERSION"))).with_state(state)
}

/// `GET /metrics`: OpenMetrics text.
async fn metrics(
    axum::extract::State(s): axum::extract::State<AppState>,
) -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        s.metrics.render(),
    )
}
