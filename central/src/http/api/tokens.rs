//! `/api/v1/tokens`: bearer tokens. A token's text is shown once, when it is created.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;

use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{ApiJson, Auth};
use crate::model::{Role, TokenId};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::schema::users::TokenCreated;

/// The routes of this module, each with its OpenAPI operation (paths relative to `/api/v1`).
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list, create)).routes(routes!(remove))
}

/// A new token.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct TokenInput {
    name: String,
    role: super::schema::users::Role,
    /// Limit the role to these sites (slugs); absent or empty: the whole campus. Not with
    /// `admin`, which is campus-wide.
    #[serde(default)]
    sites: Vec<String>,
}

#[utoipa::path(get, path = "/tokens", tag = "access", responses((status = 200, description = "Tokens, never their text", body = inline(Object)), crate::http::error::CommonErrors), security(("bearer" = [])))]
async fn list(State(s): State<AppState>, auth: Auth) -> Result<impl IntoResponse, ApiError> {
    auth.require(Role::Admin)?;
    let items: Vec<_> = s
        .registry
        .tokens()
        .into_iter()
        .map(|t| json!({"id": t.token.id, "name": t.token.name, "role": super::schema::users::Role::from(t.token.role), "sites": t.sites, "created_at": t.token.created_at.to_rfc3339()}))
        .collect();
    Ok(Json(json!({"items": items})))
}

#[utoipa::path(post, path = "/tokens", tag = "access", request_body = TokenInput, responses((status = 201, description = "The token text, shown once", body = TokenCreated), crate::http::error::CommonErrors), security(("bearer" = [])))]
async fn create(
    State(s): State<AppState>,
    auth: Auth,
    ApiJson(input): ApiJson<TokenInput>,
) -> Result<impl IntoResponse, ApiError> {
    auth.require(Role::Admin)?;
    let created = s
        .registry
        .acting(&auth.0, move |r| r.create_token(&input.name, input.role.into(), &input.sites))
        .await?;
    tracing::info!(token = %created.name, role = %created.role, by = %auth.0.name, "API token created");
    Ok((StatusCode::CREATED, Json(TokenCreated::from(created))))
}

#[utoipa::path(delete, path = "/tokens/{id}", tag = "access", params(("id" = String, Path, description = "Token id")), responses((status = 204, description = "Revoked"), crate::http::error::CommonErrors, (status = 404, description = "Not found", body = crate::http::error::ErrorBody)), security(("bearer" = [])))]
async fn remove(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    auth.require(Role::Admin)?;
    let id = id.parse().map(TokenId).map_err(|_| ApiError::NotFound(format!("token {id} not found")))?;
    s.registry.acting(&auth.0, move |r| r.delete_token(id)).await?;
    Ok(StatusCode::NO_CONTENT)
}
