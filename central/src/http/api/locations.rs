//! `/api/v1/sites`, `/api/v1/buildings`, `/api/v1/rooms`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use neosens_protocol::ids::{BuildingId, RoomId};
use serde::Deserialize;

use super::items;
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{ApiJson, ApiQuery, Auth};
use crate::model::Role;
use crate::registry::{BuildingInput, BuildingPatch, RoomInput, RoomPatch, SiteInput, SitePatch};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/sites", get(list_sites).post(create_site))
        .route("/sites/{id}", get(get_site).patch(update_site).delete(delete_site))
        .route("/buildings", get(list_buildings).post(create_building))
        .route("/buildings/{id}", get(get_building).patch(update_building).delete(delete_building))
        .route("/rooms", get(list_rooms).post(create_room))
        .route("/rooms/{id}", get(get_room).patch(update_room).delete(delete_room))
}

fn id<T: std::str::FromStr>(what: &str, s: &str) -> Result<T, ApiError> {
    s.parse().map_err(|_| ApiError::NotFound(format!("{what} {s} not found (ids are UUIDs)")))
}

async fn list_sites(State(s): State<AppState>, _auth: Auth) -> impl IntoResponse {
    items(s.registry.sites())
}

async fn get_site(
    State(s): State<AppState>,
    _auth: Auth,
    Path(key): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(s.registry.site(&key)?))
}

async fn create_site(
    State(s): State<AppState>,
    auth: Auth,
    ApiJson(input): ApiJson<SiteInput>,
) -> Result<impl IntoResponse, ApiError> {
    auth.require(Role::Admin)?;
    Ok((StatusCode::CREATED, Json(s.registry.create_site(input)?)))
}

async fn update_site(
    State(s): State<AppState>,
    auth: Auth,
    Path(key): Path<String>,
    ApiJson(patch): ApiJson<SitePatch>,
) -> Result<impl IntoResponse, ApiError> {
    auth.require(Role::Admin)?;
    Ok(Json(s.registry.update_site(&key, patch)?))
}

async fn delete_site(
    State(s): State<AppState>,
    auth: Auth,
    Path(key): Path<String>,
) -> Result<StatusCode, ApiError> {
    auth.require(Role::Admin)?;
    s.registry.delete_site(&key)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BuildingQuery {
    site: Option<String>,
}

async fn list_buildings(
    State(s): State<AppState>,
    _auth: Auth,
    ApiQuery(q): ApiQuery<BuildingQuery>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(items(s.registry.buildings(q.site.as_deref())?))
}

async fn get_building(
    State(s): State<AppState>,
    _auth: Auth,
    Path(key): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(s.registry.building(id::<BuildingId>("building", &key)?)?))
}

async fn create_building(
    State(s): State<AppState>,
    auth: Auth,
    ApiJson(input): ApiJson<BuildingInput>,
) -> Result<impl IntoResponse, ApiError> {
    auth.require(Role::Admin)?;
    Ok((StatusCode::CREATED, Json(s.registry.create_building(input)?)))
}

async fn update_building(
    State(s): State<AppState>,
    auth: Auth,
    Path(key): Path<String>,
    ApiJson(patch): ApiJson<BuildingPatch>,
) -> Result<impl IntoResponse, ApiError> {
    auth.require(Role::Admin)?;
    Ok(Json(s.registry.update_building(id("building", &key)?, patch)?))
}

async fn delete_building(
    State(s): State<AppState>,
    auth: Auth,
    Path(key): Path<String>,
) -> Result<StatusCode, ApiError> {
    auth.require(Role::Admin)?;
    s.registry.delete_building(id("building", &key)?)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoomQuery {
    building: Option<BuildingId>,
}

async fn list_rooms(
    State(s): State<AppState>,
    _auth: Auth,
    ApiQuery(q): ApiQuery<RoomQuery>,
) -> impl IntoResponse {
    items(s.registry.rooms(q.building))
}

async fn get_room(
    State(s): State<AppState>,
    _auth: Auth,
    Path(key): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(s.registry.room(id::<RoomId>("room", &key)?)?))
}

async fn create_room(
    State(s): State<AppState>,
    auth: Auth,
    ApiJson(input): ApiJson<RoomInput>,
) -> Result<impl IntoResponse, ApiError> {
    auth.require(Role::Admin)?;
    Ok((StatusCode::CREATED, Json(s.registry.create_room(input)?)))
}

async fn update_room(
    State(s): State<AppState>,
    auth: Auth,
    Path(key): Path<String>,
    ApiJson(patch): ApiJson<RoomPatch>,
) -> Result<impl IntoResponse, ApiError> {
    auth.require(Role::Admin)?;
    Ok(Json(s.registry.update_room(id("room", &key)?, patch)?))
}

async fn delete_room(
    State(s): State<AppState>,
    auth: Auth,
    Path(key): Path<String>,
) -> Result<StatusCode, ApiError> {
    auth.require(Role::Admin)?;
    s.registry.delete_room(id("room", &key)?)?;
    Ok(StatusCode::NO_CONTENT)
}
