//! `/api/v1/alerts`: outage alerts, acknowledged or silenced by operators.

use axum::Json;
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use serde::Deserialize;

use super::items;
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{ApiJson, ApiQuery, SiteAuth};
use crate::model::{Role, Timestamp};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this module, each with its OpenAPI operation (paths relative to `/api/v1`).
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list)).routes(routes!(acknowledge))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct AlertQuery {
    /// `open` (default) or `all` (with the last 1000 resolved).
    state: Option<String>,
}

/// Open alerts (and recent resolved ones with `state=all`).
#[utoipa::path(get, path = "/alerts", tag = "alerts", params(AlertQuery),
    responses((status = 200, body = inline(Object)), crate::http::error::CommonErrors), security(("bearer" = [])))]
pub(super) async fn list(
    State(s): State<AppState>,
    auth: SiteAuth,
    ApiQuery(q): ApiQuery<AlertQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let all = match q.state.as_deref() {
        None | Some("open") => false,
        Some("all") => true,
        Some(other) => {
            return Err(ApiError::Invalid {
                field: "state".into(),
                message: format!("open or all, not {other:?}"),
            });
        }
    };
    let visible = |a: &crate::monitor::AlertView| {
        s.registry.sees_place(&auth.0.scope, a.alert.building, a.alert.device)
    };
    Ok(items(s.monitor.alerts(all).into_iter().filter(visible).collect()))
}

/// An acknowledgement.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AckInput {
    /// Mute its notifications for this many minutes (1 to 10080).
    silence_minutes: Option<u32>,
}

/// Acknowledges an alert, optionally silencing it.
#[utoipa::path(post, path = "/alerts/{id}/ack", tag = "alerts",
    params(("id" = u64, Path, description = "Alert id")), request_body = AckInput,
    responses((status = 200, body = inline(Object)), crate::http::error::CommonErrors,
        (status = 404, description = "Not found", body = crate::http::error::ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn acknowledge(
    State(s): State<AppState>,
    auth: SiteAuth,
    Path(id): Path<u64>,
    ApiJson(input): ApiJson<AckInput>,
) -> Result<impl IntoResponse, ApiError> {
    auth.require(Role::Operator)?;
    if input.silence_minutes.is_some_and(|m| !(1..=10_080).contains(&m)) {
        return Err(ApiError::Invalid {
            field: "silence_minutes".into(),
            message: "1 to 10080 (a week)".into(),
        });
    }
    let found = s.monitor.alerts(true).into_iter().find(|a| a.alert.id == id);
    let Some(found) =
        found.filter(|a| s.registry.sees_place(&auth.0.scope, a.alert.building, a.alert.device))
    else {
        return Err(ApiError::NotFound(format!("alert {id} not found")));
    };
    if !s.registry.may_act_on_place(&auth.0.scope, found.alert.building, found.alert.device) {
        return Err(ApiError::Forbidden(format!("alert {id} is also about another site than yours")));
    }
    let acked = s
        .monitor
        .acknowledge(id, &auth.0.name, input.silence_minutes, Timestamp::now().millis())
        .await
        .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("storing an acknowledgement")))?;
    if acked.is_none() {
        return Err(ApiError::NotFound(format!("alert {id} not found")));
    }
    tracing::info!(alert = id, by = %auth.0.name, silence_minutes = input.silence_minutes, "alert acknowledged");
    Ok(Json(s.monitor.alerts(true).into_iter().find(|a| a.alert.id == id)))
}
