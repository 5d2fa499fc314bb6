//! The LAN listener: the legacy provisioning paths devices call, `/metrics`, `/healthz`.

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
            Router::new().route("/metrics", axum::routing::get(metrics)),
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
