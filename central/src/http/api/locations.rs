//! `/api/v1/sites`, `/api/v1/buildings`, `/api/v1/rooms`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use neosens_protocol::ids::{BuildingId, RoomId};
use serde::Deserialize;

use super::items;
use super::schema::locations::{
    Building, BuildingInput, BuildingPatch, RoomInput, RoomPatch, RoomView, Site, SiteInput, SitePatch,
};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{ApiJson, ApiQuery, Auth, SiteAuth};
use crate::model::Role;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this module, each with its OpenAPI operation (paths relative to `/api/v1`).
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_sites, create_site))
        .routes(routes!(get_site, update_site, delete_site))
        .routes(routes!(list_buildings, create_building))
        .routes(routes!(get_building, update_building, delete_building))
        .routes(routes!(list_rooms, create_room))
        .routes(routes!(get_room, update_room, delete_room))
}

fn id<T: std::str::FromStr>(what: &str, s: &str) -> Result<T, ApiError> {
    s.parse().map_err(|_| ApiError::NotFound(format!("{what} {s} not found (ids are UUIDs)")))
}

#[utoipa::path(get, path = "/sites", tag = "locations", responses((status = 200, description = "Every site, the default one first", body = inline(Object)), crate::http::error::CommonErrors), security(("bearer" = [])))]
async fn list_sites(State(s): State<AppState>, auth: SiteAuth) -> impl IntoResponse {
    items(s.registry.sites().into_iter().filter(|x| auth.0.scope.covers(x.id)).map(Site::from).collect())
}

#[utoipa::path(get, path = "/sites/{id}", tag = "locations", params(("id" = String, Path, description = "Site id or slug")), responses((status = 200, body = crate::http::api::schema::locations::Site), crate::http::error::CommonErrors, (status = 404, description = "Not found", body = crate::http::error::ErrorBody)), security(("bearer" = [])))]
async fn get_site(
    State(s): State<AppState>,
    auth: SiteAuth,
    Path(key): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let site = s.registry.site(&key)?;
    if !auth.0.scope.covers(site.id) {
        return Err(ApiError::NotFound(format!("site {key} not found")));
    }
    Ok(Json(Site::from(site)))
}

#[utoipa::path(post, path = "/sites", tag = "locations", request_body = crate::http::api::schema::locations::SiteInput, responses((status = 201, description = "Created, with its outside building", body = crate::http::api::schema::locations::Site), crate::http::error::CommonErrors, (status = 409, description = "Duplicate, or a reference in the way", body = crate::http::error::ErrorBody)), security(("bearer" = [])))]
async fn create_site(
    State(s): State<AppState>,
    auth: Auth,
    ApiJson(input): ApiJson<SiteInput>,
) -> Result<impl IntoResponse, ApiError> {
    auth.require(Role::Admin)?;
    Ok((
        StatusCode::CREATED,
        Json(Site::from(s.registry.acting(&auth.0, move |r| r.create_site(input.into())).await?)),
    ))
}

#[utoipa::path(patch, path = "/sites/{id}", tag = "locations", params(("id" = String, Path, description = "Site id or slug")), request_body = crate::http::api::schema::locations::SitePatch, responses((status = 200, body = crate::http::api::schema::locations::Site), crate::http::error::CommonErrors, (status = 404, description = "Not found", body = crate::http::error::ErrorBody), (status = 409, description = "Duplicate, or a reference in the way", body = crate::http::error::ErrorBody)), security(("bearer" = [])))]
async fn update_site(
    State(s): State<AppState>,
    auth: Auth,
    Path(key): Path<String>,
    ApiJson(patch): ApiJson<SitePatch>,
) -> Result<impl IntoResponse, ApiError> {
    auth.require(Role::Admin)?;
    Ok(Json(Site::from(s.registry.acting(&auth.0, move |r| r.update_site(&key, patch.into())).await?)))
}

#[utoipa::path(delete, path = "/sites/{id}", tag = "locations", params(("id" = String, Path, description = "Site id or slug")), responses((status = 204, description = "Deleted"), crate::http::error::CommonErrors, (status = 404, description = "Not found", body = crate::http::error::ErrorBody), (status = 409, description = "Duplicate, or a reference in the way", body = crate::http::error::ErrorBody)), security(("bearer" = [])))]
async fn delete_site(
    State(s): State<AppState>,
    auth: Auth,
    Path(key): Path<String>,
) -> Result<StatusCode, ApiError> {
    auth.require(Role::Admin)?;
    s.registry.acting(&auth.0, move |r| r.delete_site(&key)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BuildingQuery {
    site: Option<String>,
}

#[utoipa::path(get, path = "/buildings", tag = "locations", params(("site" = Option<String>, Query, description = "Site id or slug")), responses((status = 200, body = inline(Object)), crate::http::error::CommonErrors), security(("bearer" = [])))]
async fn list_buildings(
    State(s): State<AppState>,
    auth: SiteAuth,
    ApiQuery(q): ApiQuery<BuildingQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let buildings = s.registry.buildings(q.site.as_deref())?.into_iter();
    Ok(items(buildings.filter(|b| auth.0.scope.covers(b.site)).map(Building::from).collect()))
}

#[utoipa::path(get, path = "/buildings/{id}", tag = "locations", params(("id" = String, Path, description = "Building id")), responses((status = 200, body = crate::http::api::schema::locations::Building), crate::http::error::CommonErrors, (status = 404, description = "Not found", body = crate::http::error::ErrorBody)), security(("bearer" = [])))]
async fn get_building(
    State(s): State<AppState>,
    auth: SiteAuth,
    Path(key): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let building = s.registry.building(id::<BuildingId>("building", &key)?)?;
    if !auth.0.scope.covers(building.site) {
        return Err(ApiError::NotFound(format!("building {key} not found")));
    }
    Ok(Json(Building::from(building)))
}

#[utoipa::path(post, path = "/buildings", tag = "locations", request_body = crate::http::api::schema::locations::BuildingInput, responses((status = 201, body = crate::http::api::schema::locations::Building), crate::http::error::CommonErrors, (status = 409, description = "Duplicate, or a reference in the way", body = crate::http::error::ErrorBody)), security(("bearer" = [])))]
async fn create_building(
    State(s): State<AppState>,
    auth: Auth,
    ApiJson(input): ApiJson<BuildingInput>,
) -> Result<impl IntoResponse, ApiError> {
    auth.require(Role::Admin)?;
    Ok((
        StatusCode::CREATED,
        Json(Building::from(s.registry.acting(&auth.0, move |r| r.create_building(input.into())).await?)),
    ))
}

#[utoipa::path(patch, path = "/buildings/{id}", tag = "locations", params(("id" = String, Path, description = "Building id")), request_body = crate::http::api::schema::locations::BuildingPatch, responses((status = 200, description = "Updated; derived topics of its rooms follow", body = crate::http::api::schema::locations::Building), crate::http::error::CommonErrors, (status = 404, description = "Not found", body = crate::http::error::ErrorBody), (status = 409, description = "Duplicate, or a reference in the way", body = crate::http::error::ErrorBody)), security(("bearer" = [])))]
async fn update_building(
    State(s): State<AppState>,
    auth: Auth,
    Path(key): Path<String>,
    ApiJson(patch): ApiJson<BuildingPatch>,
) -> Result<impl IntoResponse, ApiError> {
    auth.require(Role::Admin)?;
    Ok(Json({
        let building = id("building", &key)?;
        Building::from(s.registry.acting(&auth.0, move |r| r.update_building(building, patch.into())).await?)
    }))
}

#[utoipa::path(delete, path = "/buildings/{id}", tag = "locations", params(("id" = String, Path, description = "Building id")), responses((status = 204, description = "Deleted"), crate::http::error::CommonErrors, (status = 404, description = "Not found", body = crate::http::error::ErrorBody), (status = 409, description = "Duplicate, or a reference in the way", body = crate::http::error::ErrorBody)), security(("bearer" = [])))]
async fn delete_building(
    State(s): State<AppState>,
    auth: Auth,
    Path(key): Path<String>,
) -> Result<StatusCode, ApiError> {
    auth.require(Role::Admin)?;
    let building = id("building", &key)?;
    s.registry.acting(&auth.0, move |r| r.delete_building(building)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoomQuery {
    building: Option<BuildingId>,
}

#[utoipa::path(get, path = "/rooms", tag = "locations", params(("building" = Option<String>, Query, description = "Building id")), responses((status = 200, body = inline(Object)), crate::http::error::CommonErrors), security(("bearer" = [])))]
async fn list_rooms(
    State(s): State<AppState>,
    auth: SiteAuth,
    ApiQuery(q): ApiQuery<RoomQuery>,
) -> impl IntoResponse {
    let rooms = s.registry.rooms(q.building).into_iter();
    items(rooms.filter(|r| r.site.is_some_and(|x| auth.0.scope.covers(x))).map(RoomView::from).collect())
}

#[utoipa::path(get, path = "/rooms/{id}", tag = "locations", params(("id" = String, Path, description = "Room id")), responses((status = 200, body = crate::http::api::schema::locations::RoomView), crate::http::error::CommonErrors, (status = 404, description = "Not found", body = crate::http::error::ErrorBody)), security(("bearer" = [])))]
async fn get_room(
    State(s): State<AppState>,
    auth: SiteAuth,
    Path(key): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let room = s.registry.room(id::<RoomId>("room", &key)?)?;
    if !room.site.is_some_and(|x| auth.0.scope.covers(x)) {
        return Err(ApiError::NotFound(format!("room {key} not found")));
    }
    Ok(Json(RoomView::from(room)))
}

#[utoipa::path(post, path = "/rooms", tag = "locations", request_body = crate::http::api::schema::locations::RoomInput, responses((status = 201, body = crate::http::api::schema::locations::RoomView), crate::http::error::CommonErrors, (status = 409, description = "Duplicate, or a reference in the way", body = crate::http::error::ErrorBody)), security(("bearer" = [])))]
async fn create_room(
    State(s): State<AppState>,
    auth: Auth,
    ApiJson(input): ApiJson<RoomInput>,
) -> Result<impl IntoResponse, ApiError> {
    auth.require(Role::Admin)?;
    Ok((
        StatusCode::CREATED,
        Json(RoomView::from(s.registry.acting(&auth.0, move |r| r.create_room(input.into())).await?)),
    ))
}

#[utoipa::path(patch, path = "/rooms/{id}", tag = "locations", params(("id" = String, Path, description = "Room id")), request_body = crate::http::api::schema::locations::RoomPatch, responses((status = 200, body = crate::http::api::schema::locations::RoomView), crate::http::error::CommonErrors, (status = 404, description = "Not found", body = crate::http::error::ErrorBody), (status = 409, description = "Duplicate, or a reference in the way", body = crate::http::error::ErrorBody)), security(("bearer" = [])))]
async fn update_room(
    State(s): State<AppState>,
    auth: Auth,
    Path(key): Path<String>,
    ApiJson(patch): ApiJson<RoomPatch>,
) -> Result<impl IntoResponse, ApiError> {
    auth.require(Role::Admin)?;
    Ok(Json({
        let room = id("room", &key)?;
        RoomView::from(s.registry.acting(&auth.0, move |r| r.update_room(room, patch.into())).await?)
    }))
}

#[utoipa::path(delete, path = "/rooms/{id}", tag = "locations", params(("id" = String, Path, description = "Room id")), responses((status = 204, description = "Deleted"), crate::http::error::CommonErrors, (status = 404, description = "Not found", body = crate::http::error::ErrorBody), (status = 409, description = "Duplicate, or a reference in the way", body = crate::http::error::ErrorBody)), security(("bearer" = [])))]
async fn delete_room(
    State(s): State<AppState>,
    auth: Auth,
    Path(key): Path<String>,
) -> Result<StatusCode, ApiError> {
    auth.require(Role::Admin)?;
    let room = id("room", &key)?;
    s.registry.acting(&auth.0, move |r| r.delete_room(room)).await?;
    Ok(StatusCode::NO_CONTENT)
}
