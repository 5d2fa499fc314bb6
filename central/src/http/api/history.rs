//! `/api/v1/devices/{id}/history` (its statuses, for charts) and `/api/v1/devices/{id}/timeline`
//! (statuses, orders, changes, log lines and silences, newest first).

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{ApiQuery, SiteAuth};
use crate::model::Timestamp;

/// Statuses or events per answer at most.
const MAX_LIMIT: usize = 2000;

/// The routes of this module, each with its OpenAPI operation (paths relative to `/api/v1`).
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(history)).routes(routes!(timeline))
}

/// A window of statuses.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct HistoryQuery {
    /// Not before (RFC 3339).
    since: Option<String>,
    /// Before (RFC 3339).
    until: Option<String>,
    /// Statuses at most, newest first (default 500, at most 2,000).
    limit: Option<usize>,
}

/// One status as stored.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct StatusPoint {
    /// When it was seen (RFC 3339).
    at: String,
    /// The payload as received (parsed).
    #[schema(value_type = Object)]
    payload: Value,
}

fn time(field: &str, v: Option<&str>, default: i64) -> Result<i64, ApiError> {
    match v {
        None => Ok(default),
        Some(v) => Timestamp::parse_rfc3339(v)
            .map(Timestamp::millis)
            .ok_or_else(|| ApiError::BadRequest(format!("{field}: {v:?} is not an RFC 3339 time"))),
    }
}

fn parsed(text: String) -> Value {
    serde_json::from_str(&text).unwrap_or(Value::String(text))
}

/// The device's statuses, newest first — what its charts draw.
#[utoipa::path(get, path = "/devices/{id}/history", tag = "devices",
    params(("id" = String, Path, description = "Internal UUID or uid"), HistoryQuery),
    responses((status = 200, body = inline(Object)), crate::http::error::CommonErrors,
        (status = 404, description = "Not found", body = crate::http::error::ErrorBody)),
    security(("bearer" = [])))]
async fn history(
    State(s): State<AppState>,
    auth: SiteAuth,
    Path(key): Path<String>,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> Result<Json<super::Items<StatusPoint>>, ApiError> {
    s.registry.visible_device(&key, &auth.0.scope)?;
    let since = time("since", q.since.as_deref(), i64::MIN)?;
    let until = time("until", q.until.as_deref(), i64::MAX)?;
    let limit = q.limit.unwrap_or(500).clamp(1, MAX_LIMIT);
    let points = s.registry.blocking(move |r| r.status_history(&key, since, until, limit)).await?;
    Ok(super::items(
        points
            .into_iter()
            .map(|(at, p)| StatusPoint { at: Timestamp(at).to_rfc3339(), payload: parsed(p) })
            .collect(),
    ))
}

/// How many events.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct TimelineQuery {
    /// Events at most, newest first (default 200, at most 2,000).
    limit: Option<usize>,
}

/// One event of a device's timeline.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct EventView {
    /// When (RFC 3339).
    at: String,
    /// `status`, `order`, `change` (registry changes and provisioning, from the audit trail),
    /// `log`, `silent` (past its threshold without a status) or `back`.
    kind: &'static str,
    /// One line.
    summary: String,
    /// The status payload, the order's topic and payload, the fields changed.
    #[schema(value_type = Object)]
    detail: Value,
}

/// The device's last events, newest first: statuses, orders, changes, log lines, silences.
#[utoipa::path(get, path = "/devices/{id}/timeline", tag = "devices",
    params(("id" = String, Path, description = "Internal UUID or uid"), TimelineQuery),
    responses((status = 200, body = inline(Object)), crate::http::error::CommonErrors,
        (status = 404, description = "Not found", body = crate::http::error::ErrorBody)),
    security(("bearer" = [])))]
async fn timeline(
    State(s): State<AppState>,
    auth: SiteAuth,
    Path(key): Path<String>,
    ApiQuery(q): ApiQuery<TimelineQuery>,
) -> Result<Json<super::Items<EventView>>, ApiError> {
    s.registry.visible_device(&key, &auth.0.scope)?;
    let limit = q.limit.unwrap_or(200).clamp(1, MAX_LIMIT);
    let events = s.registry.blocking(move |r| r.timeline(&key, limit)).await?;
    Ok(super::items(
        events
            .into_iter()
            .map(|e| EventView {
                at: Timestamp(e.at_ms).to_rfc3339(),
                kind: e.kind,
                summary: e.summary,
                detail: e.detail,
            })
            .collect(),
    ))
}
