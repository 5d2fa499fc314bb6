//! The LAN listener: the legacy provisioning paths devices call, the firmware update path
//! (`/images/…`), `/metrics`, `/healthz`, `/readyz`.

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
    /// The firmware cache (the update path).
    pub firmware: crate::firmware::FirmwareCache,
}

/// The router of the LAN listener.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(crate::proxy::routes())
        .merge(crate::firmware::routes())
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
    let (status, body) = readiness(s.metrics.tasks.failed().as_deref());
    (status, [(axum::http::header::CONTENT_TYPE, "application/json")], body)
}

/// The `/readyz` answer for the first failed task, if any. Written by hand: one small answer
/// does not need a JSON value tree (code size, ARM build).
fn readiness(failed: Option<&str>) -> (axum::http::StatusCode, String) {
    let (status, tasks) = match failed {
        None => (axum::http::StatusCode::OK, r#"{"ok":true}"#.to_owned()),
        Some(e) => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            format!(r#"{{"ok":false,"error":{}}}"#, serde_json::to_string(e).unwrap_or_default()),
        ),
    };
    (status, format!(r#"{{"ready":{},"checks":{{"tasks":{tasks}}}}}"#, failed.is_none()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_names_the_failed_task_in_valid_json() {
        let (status, body) = readiness(None);
        assert_eq!(status, 200);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v, serde_json::json!({"ready": true, "checks": {"tasks": {"ok": true}}}));

        let reason = "uplink panicked: \"quote\" and \\ backslash\nnew line";
        let (status, body) = readiness(Some(reason));
        assert_eq!(status, 503);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"ready": false, "checks": {"tasks": {"ok": false, "error": reason}}})
        );
    }
}
