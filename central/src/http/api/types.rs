//! `/api/v1/device-types`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Serialize;
use serde_json::Value;

use super::items;
use super::schema::device_types::{DeviceTypeInput, DeviceTypePatch};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{ApiJson, Auth, SiteAuth};
use crate::model::{DeviceType, Role};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this module, each with its OpenAPI operation (paths relative to `/api/v1`).
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list, create)).routes(routes!(get_one, update, delete))
}

/// A device type with its schema as JSON (stored as text).
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct TypeView {
    #[schema(format = Uuid)]
    id: String,
    name: String,
    description: String,
    config_schema: Option<Value>,
    status_period_s: u32,
    outdated_after_s: u32,
    orders: Vec<String>,
    status_rules: Vec<super::schema::device_types::StatusRuleSpec>,
    /// How its LoRaWAN nodes' payloads read (nodes whose codec is `layout`).
    payload_layout: Option<neosens_protocol::layout::PayloadLayout>,
}

impl From<DeviceType> for TypeView {
    fn from(t: DeviceType) -> Self {
        TypeView {
            id: t.id.to_string(),
            name: t.name,
            description: t.description,
            config_schema: t.config_schema.and_then(|s| serde_json::from_str(&s).ok()),
            status_period_s: t.status_period_s,
            outdated_after_s: t.outdated_after_s,
            status_rules: t
                .status_rules
                .iter()
                .map(|r| crate::model::StatusRuleSpec::from(r).into())
                .collect(),
            orders: t.orders,
            payload_layout: t.payload_layout,
        }
    }
}

#[utoipa::path(get, path = "/device-types", tag = "device-types", responses((status = 200, body = inline(Object)), crate::http::error::CommonErrors), security(("bearer" = [])))]
async fn list(State(s): State<AppState>, _auth: SiteAuth) -> impl IntoResponse {
    items(s.registry.device_types().into_iter().map(TypeView::from).collect())
}

#[utoipa::path(get, path = "/device-types/{id}", tag = "device-types", params(("id" = String, Path, description = "Type id or name")), responses((status = 200, body = TypeView), crate::http::error::CommonErrors, (status = 404, description = "Not found", body = crate::http::error::ErrorBody)), security(("bearer" = [])))]
async fn get_one(
    State(s): State<AppState>,
    _auth: SiteAuth,
    Path(key): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(TypeView::from(s.registry.device_type(&key)?)))
}

#[utoipa::path(post, path = "/device-types", tag = "device-types", request_body = crate::http::api::schema::device_types::DeviceTypeInput, responses((status = 201, body = TypeView), crate::http::error::CommonErrors, (status = 409, description = "Duplicate, or a reference in the way", body = crate::http::error::ErrorBody)), security(("bearer" = [])))]
async fn create(
    State(s): State<AppState>,
    auth: Auth,
    ApiJson(input): ApiJson<DeviceTypeInput>,
) -> Result<impl IntoResponse, ApiError> {
    auth.require(Role::Admin)?;
    Ok((
        StatusCode::CREATED,
        Json(TypeView::from(s.registry.acting(&auth.0, move |r| r.create_device_type(input.into())).await?)),
    ))
}

#[utoipa::path(patch, path = "/device-types/{id}", tag = "device-types", params(("id" = String, Path, description = "Type id or name")), request_body = crate::http::api::schema::device_types::DeviceTypePatch, responses((status = 200, body = TypeView), crate::http::error::CommonErrors, (status = 404, description = "Not found", body = crate::http::error::ErrorBody)), security(("bearer" = [])))]
async fn update(
    State(s): State<AppState>,
    auth: Auth,
    Path(key): Path<String>,
    ApiJson(patch): ApiJson<DeviceTypePatch>,
) -> Result<impl IntoResponse, ApiError> {
    auth.require(Role::Admin)?;
    Ok(Json(TypeView::from(
        s.registry.acting(&auth.0, move |r| r.update_device_type(&key, patch.into())).await?,
    )))
}

#[utoipa::path(delete, path = "/device-types/{id}", tag = "device-types", params(("id" = String, Path, description = "Type id or name")), responses((status = 204, description = "Deleted"), crate::http::error::CommonErrors, (status = 404, description = "Not found", body = crate::http::error::ErrorBody), (status = 409, description = "Duplicate, or a reference in the way", body = crate::http::error::ErrorBody)), security(("bearer" = [])))]
async fn delete(
    State(s): State<AppState>,
    auth: Auth,
    Path(key): Path<String>,
) -> Result<StatusCode, ApiError> {
    auth.require(Role::Admin)?;
    s.registry.acting(&auth.0, move |r| r.delete_device_type(&key)).await?;
    Ok(StatusCode::NO_CONTENT)
}
