//! `/api/v1/devices`: `{id}` is the internal UUID or the device uid (MAC, DevEUI).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Serialize;
use serde_json::json;

use super::schema::devices::{DeviceFilter, DeviceInput, DevicePatch, DeviceView};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{ApiJson, ApiQuery, SiteAuth};
use crate::model::Role;
use crate::store::DeviceLogEntry;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this module, each with its OpenAPI operation (paths relative to `/api/v1`).
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get_one, update, delete))
        .routes(routes!(reset_credentials))
        .routes(routes!(enable))
        .routes(routes!(disable))
        .routes(routes!(logs))
}

/// One page of a device listing.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct Page {
    items: Vec<DeviceView>,
    total: usize,
    limit: usize,
    offset: usize,
}

#[utoipa::path(get, path = "/devices", tag = "devices", params(crate::http::api::schema::devices::DeviceFilter), responses((status = 200, description = "One page, sorted by uid", body = Page), crate::http::error::CommonErrors), security(("bearer" = [])))]
async fn list(
    State(s): State<AppState>,
    auth: SiteAuth,
    ApiQuery(filter): ApiQuery<DeviceFilter>,
) -> Result<impl IntoResponse, ApiError> {
    let limit = filter.limit.unwrap_or(100).min(crate::registry::MAX_PAGE);
    let offset = filter.offset.unwrap_or(0);
    let query = crate::registry::DeviceQuery { scope: auth.0.scope.clone(), ..filter.into() };
    let (items, total) = s.registry.devices(&query)?;
    Ok(Json(Page { items: items.into_iter().map(DeviceView::from).collect(), total, limit, offset }))
}

#[utoipa::path(get, path = "/devices/{id}", tag = "devices", params(("id" = String, Path, description = "Internal UUID or uid (MAC, DevEUI)")), responses((status = 200, body = crate::http::api::schema::devices::DeviceView), crate::http::error::CommonErrors, (status = 404, description = "Not found", body = crate::http::error::ErrorBody)), security(("bearer" = [])))]
async fn get_one(
    State(s): State<AppState>,
    auth: SiteAuth,
    Path(key): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(DeviceView::from(s.registry.device_within(&key, &auth.0.scope)?)))
}

#[utoipa::path(post, path = "/devices", tag = "devices", request_body = crate::http::api::schema::devices::DeviceInput, responses((status = 201, description = "Registered, with a new undelivered secret", body = crate::http::api::schema::devices::DeviceView), crate::http::error::CommonErrors, (status = 409, description = "Duplicate, or a reference in the way", body = crate::http::error::ErrorBody), (status = 422, description = "Configuration breaks its schema, the legacy shape or the 1023-byte limit", body = crate::http::error::ErrorBody)), security(("bearer" = [])))]
async fn create(
    State(s): State<AppState>,
    auth: SiteAuth,
    ApiJson(input): ApiJson<DeviceInput>,
) -> Result<impl IntoResponse, ApiError> {
    auth.require(Role::Operator)?;
    let device = s.registry.acting(&auth.0, move |r| r.create_device(input.into())).await?;
    tracing::info!(device = %device.uid, by = %auth.0.name, "device registered");
    Ok((StatusCode::CREATED, Json(DeviceView::from(device))))
}

#[utoipa::path(patch, path = "/devices/{id}", tag = "devices", params(("id" = String, Path, description = "Internal UUID or uid")), request_body = crate::http::api::schema::devices::DevicePatch, responses((status = 200, body = crate::http::api::schema::devices::DeviceView), crate::http::error::CommonErrors, (status = 404, description = "Not found", body = crate::http::error::ErrorBody), (status = 422, description = "Configuration breaks its schema, the legacy shape or the 1023-byte limit", body = crate::http::error::ErrorBody)), security(("bearer" = [])))]
async fn update(
    State(s): State<AppState>,
    auth: SiteAuth,
    Path(key): Path<String>,
    ApiJson(patch): ApiJson<DevicePatch>,
) -> Result<impl IntoResponse, ApiError> {
    auth.require(Role::Operator)?;
    Ok(Json(DeviceView::from(
        s.registry.acting(&auth.0, move |r| r.update_device(&key, patch.into())).await?,
    )))
}

#[utoipa::path(delete, path = "/devices/{id}", tag = "devices", params(("id" = String, Path, description = "Internal UUID or uid")), responses((status = 204, description = "Deleted"), crate::http::error::CommonErrors, (status = 404, description = "Not found", body = crate::http::error::ErrorBody)), security(("bearer" = [])))]
async fn delete(
    State(s): State<AppState>,
    auth: SiteAuth,
    Path(key): Path<String>,
) -> Result<StatusCode, ApiError> {
    auth.require(Role::Operator)?;
    let deleted = key.clone();
    s.registry.acting(&auth.0, move |r| r.delete_device(&deleted)).await?;
    tracing::info!(device = %key, by = %auth.0.name, "device deleted");
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/devices/{id}/credentials/reset", tag = "devices", params(("id" = String, Path, description = "Internal UUID or uid")), responses((status = 200, description = "New secret, delivered at the next /device/credentials call", body = crate::http::api::schema::devices::DeviceView), crate::http::error::CommonErrors, (status = 404, description = "Not found", body = crate::http::error::ErrorBody)), security(("bearer" = [])))]
async fn reset_credentials(
    State(s): State<AppState>,
    auth: SiteAuth,
    Path(key): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    auth.require(Role::Operator)?;
    Ok(Json(DeviceView::from(s.registry.acting(&auth.0, move |r| r.reset_credentials(&key)).await?)))
}

async fn set_enabled(
    s: &AppState,
    auth: &SiteAuth,
    key: &str,
    enabled: bool,
) -> Result<DeviceView, ApiError> {
    auth.require(Role::Operator)?;
    let key = key.to_owned();
    let patch = crate::registry::DeviceChanges { enabled: Some(enabled), ..Default::default() };
    Ok(DeviceView::from(s.registry.acting(&auth.0, move |r| r.update_device(&key, patch)).await?))
}

#[utoipa::path(post, path = "/devices/{id}/enable", tag = "devices", params(("id" = String, Path, description = "Internal UUID or uid")), responses((status = 200, body = crate::http::api::schema::devices::DeviceView), crate::http::error::CommonErrors, (status = 404, description = "Not found", body = crate::http::error::ErrorBody)), security(("bearer" = [])))]
async fn enable(
    State(s): State<AppState>,
    auth: SiteAuth,
    Path(key): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(set_enabled(&s, &auth, &key, true).await?))
}

#[utoipa::path(post, path = "/devices/{id}/disable", tag = "devices", params(("id" = String, Path, description = "Internal UUID or uid")), responses((status = 200, description = "Disabled: no config, no broker access", body = crate::http::api::schema::devices::DeviceView), crate::http::error::CommonErrors, (status = 404, description = "Not found", body = crate::http::error::ErrorBody)), security(("bearer" = [])))]
async fn disable(
    State(s): State<AppState>,
    auth: SiteAuth,
    Path(key): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(set_enabled(&s, &auth, &key, false).await?))
}

#[utoipa::path(get, path = "/devices/{id}/logs", tag = "devices", params(("id" = String, Path, description = "Internal UUID or uid")), responses((status = 200, description = "Last 200 lines sent to /device/logger, newest first", body = inline(Object)), crate::http::error::CommonErrors, (status = 404, description = "Not found", body = crate::http::error::ErrorBody)), security(("bearer" = [])))]
async fn logs(
    State(s): State<AppState>,
    auth: SiteAuth,
    Path(key): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    s.registry.visible_device(&key, &auth.0.scope)?;
    let entries = s.registry.blocking(move |r| r.device_logs(&key, 200)).await?;
    let items: Vec<_> = entries
        .into_iter()
        .map(|e: DeviceLogEntry| json!({"received_at": e.received_at.to_rfc3339(), "remote_addr": e.remote_addr, "record": e.record}))
        .collect();
    Ok(Json(json!({"items": items})))
}
