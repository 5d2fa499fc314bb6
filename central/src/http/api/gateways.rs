//! `/api/v1/gateways`: edge gateways and their scope.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use neosens_protocol::ids::GatewayId;

use super::items;
use super::schema::gateways::{GatewayInput, GatewayPatch, GatewayView};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{ApiJson, Auth};
use crate::model::Role;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this module, each with its OpenAPI operation (paths relative to `/api/v1`).
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list, create)).routes(routes!(get_one, update, delete))
}

fn gateway_id(s: &str) -> Result<GatewayId, ApiError> {
    s.parse().map_err(|_| ApiError::NotFound(format!("gateway {s} not found")))
}

#[utoipa::path(get, path = "/gateways", tag = "gateways", responses((status = 200, body = inline(Object)), crate::http::error::CommonErrors), security(("bearer" = [])))]
async fn list(State(s): State<AppState>, _auth: Auth) -> impl IntoResponse {
    items(s.registry.gateways().into_iter().map(|g| with_health(&s, g.into())).collect())
}

/// A gateway with what central knows of its health.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(super) struct GatewayWithHealth {
    #[serde(flatten)]
    gateway: GatewayView,
    /// Whether it has been in touch in the last 150 s.
    up: bool,
    /// Last contact, revision applied, last report, packet forwarders (`null` if not in touch
    /// since central started).
    health: Option<crate::gateway_health::Contact>,
}

fn with_health(s: &AppState, gateway: GatewayView) -> GatewayWithHealth {
    let now = crate::model::Timestamp::now().millis();
    let health = s.gateways.get(gateway.id).map(|h| h.as_of(now));
    let up = health.as_ref().is_some_and(|h| h.is_up(now));
    GatewayWithHealth { gateway, up, health }
}

#[utoipa::path(get, path = "/gateways/{id}", tag = "gateways", params(("id" = String, Path, description = "Gateway id")), responses((status = 200, body = GatewayWithHealth), crate::http::error::CommonErrors, (status = 404, description = "Not found", body = crate::http::error::ErrorBody)), security(("bearer" = [])))]
async fn get_one(
    State(s): State<AppState>,
    _auth: Auth,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(with_health(&s, s.registry.gateway(gateway_id(&id)?)?.into())))
}

#[utoipa::path(post, path = "/gateways", tag = "gateways", request_body = crate::http::api::schema::gateways::GatewayInput, responses((status = 201, body = crate::http::api::schema::gateways::GatewayView), crate::http::error::CommonErrors, (status = 409, description = "Duplicate, or a reference in the way", body = crate::http::error::ErrorBody)), security(("bearer" = [])))]
async fn create(
    State(s): State<AppState>,
    auth: Auth,
    ApiJson(input): ApiJson<GatewayInput>,
) -> Result<impl IntoResponse, ApiError> {
    auth.require(Role::Admin)?;
    Ok((
        StatusCode::CREATED,
        Json(GatewayView::from(s.registry.acting(&auth.0, move |r| r.create_gateway(input.into())).await?)),
    ))
}

#[utoipa::path(patch, path = "/gateways/{id}", tag = "gateways", params(("id" = String, Path, description = "Gateway id")), request_body = crate::http::api::schema::gateways::GatewayPatch, responses((status = 200, body = crate::http::api::schema::gateways::GatewayView), crate::http::error::CommonErrors, (status = 404, description = "Not found", body = crate::http::error::ErrorBody), (status = 409, description = "Duplicate, or a reference in the way", body = crate::http::error::ErrorBody)), security(("bearer" = [])))]
async fn update(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<GatewayPatch>,
) -> Result<impl IntoResponse, ApiError> {
    auth.require(Role::Admin)?;
    Ok(Json({
        let gateway = gateway_id(&id)?;
        GatewayView::from(s.registry.acting(&auth.0, move |r| r.update_gateway(gateway, patch.into())).await?)
    }))
}

#[utoipa::path(delete, path = "/gateways/{id}", tag = "gateways", params(("id" = String, Path, description = "Gateway id")), responses((status = 204, description = "Deleted"), crate::http::error::CommonErrors, (status = 404, description = "Not found", body = crate::http::error::ErrorBody)), security(("bearer" = [])))]
async fn delete(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    auth.require(Role::Admin)?;
    let gateway = gateway_id(&id)?;
    s.registry.acting(&auth.0, move |r| r.delete_gateway(gateway)).await?;
    // Its health goes with it (and the monitor resolves its forwarders' alerts).
    s.gateways.forget(gateway);
    Ok(StatusCode::NO_CONTENT)
}
