//! The LAN listener: the legacy provisioning paths devices call, `/metrics`, `/healthz`,
//! `/readyz`.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::response::IntoResponse;

use crate::Config;
use crate::proxy::Proxy;

/// What every handler can reach: cheap to clone (handles and `Arc`s only).
#[derive(Clone)]
pub struct AppState {
    /// The configuration the service started with.
    pub config: Arc<Config>,
    /// The provisioning proxy.
    pub proxy: Proxy,
    /// What `/metrics` reads.
    pub metrics: crate::metrics::Sources,
    /// What `/metrics` requires (`[http] metrics_token`).
    pub scrape: neosens_runtime::http::ScrapeToken,
}

/// The router of the LAN listener.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(crate::proxy::routes())
        .merge(neosens_runtime::http::guarded(
            Router::new()
                .route("/metrics", axum::routing::get(metrics))
                .route("/readyz", axum::routing::get(readyz)),
            state.scrape.clone(),
        ))
        .merge(neosens_runtime::http::healthz(neosens_runtime::build_info!()))
        .with_state(state)
}

async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        crate::metrics::render(&s.metrics),
    )
}

/// `GET /readyz`: 200 while every critical task runs, 503 with the failed one's name once one
/// stopped (the agent is then shutting down so that systemd restarts it).
async fn readyz(State(s): State<AppState>) -> impl IntoResponse {
    let failed = s.metrics.tasks.failed();
    let status = if failed.is_none() {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    // Written by hand: one small answer does not need a JSON value tree (code size, ARM build).
    let tasks = match &failed {
        None => r#"{"ok":true}"#.to_owned(),
        Some(e) => format!(r#"{{"ok":false,"error":{}}}"#, serde_json::to_string(e).unwrap_or_default()),
    };
    let body = format!(r#"{{"ready":{},"checks":{{"tasks":{tasks}}}}}"#, failed.is_none());
    (status, [(axum::http::header::CONTENT_TYPE, "application/json")], body.to_string())
}
