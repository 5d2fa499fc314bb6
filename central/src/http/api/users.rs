//! `/api/v1/users`: dashboard accounts (admin only). Password hashes never leave the server.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;

use super::items;
use super::schema::users::{UserInput, UserPatch, UserView};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{ApiJson, Auth};
use crate::model::{Actor, Role, UserId};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this module, each with its OpenAPI operation (paths relative to `/api/v1`).
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list, create)).routes(routes!(get_one, update, delete))
}

fn user_id(s: &str) -> Result<UserId, ApiError> {
    s.parse().map(UserId).map_err(|_| ApiError::NotFound(format!("user {s} not found")))
}

#[utoipa::path(get, path = "/users", tag = "access", responses((status = 200, body = inline(Object)), crate::http::error::CommonErrors), security(("bearer" = [])))]
async fn list(State(s): State<AppState>, auth: Auth) -> Result<impl IntoResponse, ApiError> {
    auth.require(Role::Admin)?;
    Ok(items(s.registry.users().into_iter().map(UserView::from).collect()))
}

#[utoipa::path(get, path = "/users/{id}", tag = "access", params(("id" = String, Path, description = "User id")), responses((status = 200, body = crate::http::api::schema::users::UserView), crate::http::error::CommonErrors, (status = 404, description = "Not found", body = crate::http::error::ErrorBody)), security(("bearer" = [])))]
async fn get_one(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    auth.require(Role::Admin)?;
    Ok(Json(UserView::from(s.registry.user(user_id(&id)?)?)))
}

/// Hashing runs on the password workers (argon2id: 19 MiB, tens of ms); when they are all busy
/// (a sign-in flood), the admin is told to retry.
fn busy(e: neosens_runtime::workers::WorkersError) -> ApiError {
    match e {
        neosens_runtime::workers::WorkersError::Busy(_) => ApiError::TooManyRequests {
            message: "password checks are busy: retry in a second".into(),
            retry_after_s: 1,
        },
        other => ApiError::Internal(anyhow::Error::new(other).context("password hashing")),
    }
}

#[utoipa::path(post, path = "/users", tag = "access", request_body = crate::http::api::schema::users::UserInput, responses((status = 201, body = crate::http::api::schema::users::UserView), crate::http::error::CommonErrors, (status = 409, description = "Duplicate, or a reference in the way", body = crate::http::error::ErrorBody)), security(("bearer" = [])))]
async fn create(
    State(s): State<AppState>,
    auth: Auth,
    ApiJson(input): ApiJson<UserInput>,
) -> Result<impl IntoResponse, ApiError> {
    auth.require(Role::Admin)?;
    let registry = Arc::clone(&s.registry);
    let actor = Actor::from(&auth.0);
    let user = s
        .passwords
        .run(move || crate::audit::acting(actor, || registry.create_user(input.into())))
        .await
        .map_err(busy)??;
    tracing::info!(user = %user.username, role = %user.role, by = %auth.0.name, "user created");
    Ok((StatusCode::CREATED, Json(UserView::from(user))))
}

#[utoipa::path(patch, path = "/users/{id}", tag = "access", params(("id" = String, Path, description = "User id")), request_body = crate::http::api::schema::users::UserPatch, responses((status = 200, body = crate::http::api::schema::users::UserView), crate::http::error::CommonErrors, (status = 404, description = "Not found", body = crate::http::error::ErrorBody)), security(("bearer" = [])))]
async fn update(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<UserPatch>,
) -> Result<impl IntoResponse, ApiError> {
    auth.require(Role::Admin)?;
    let id = user_id(&id)?;
    let password_changed = patch.password.is_some();
    let registry = Arc::clone(&s.registry);
    let actor = Actor::from(&auth.0);
    let user = s
        .passwords
        .run(move || crate::audit::acting(actor, || registry.update_user(id, patch.into())))
        .await
        .map_err(busy)??;
    if password_changed {
        // A new password signs the user out everywhere.
        s.sessions.close_user(id).await;
    }
    Ok(Json(UserView::from(user)))
}

#[utoipa::path(delete, path = "/users/{id}", tag = "access", params(("id" = String, Path, description = "User id")), responses((status = 204, description = "Deleted"), crate::http::error::CommonErrors, (status = 404, description = "Not found", body = crate::http::error::ErrorBody)), security(("bearer" = [])))]
async fn delete(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    auth.require(Role::Admin)?;
    let id = user_id(&id)?;
    s.registry.acting(&auth.0, move |r| r.delete_user(id)).await?;
    s.sessions.close_user(id).await;
    if let Err(e) = s.registry.blocking(move |r| r.put_user_settings(id, None)).await {
        tracing::warn!(error = %e, "a deleted user's dashboard settings stay on disk");
    }
    Ok(StatusCode::NO_CONTENT)
}
