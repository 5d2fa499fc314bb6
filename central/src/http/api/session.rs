//! `/api/v1/session`: dashboard sign-in (argon2id password → session cookie), the current
//! session, sign-out, and the user's saved dashboard settings.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{ApiJson, Auth};
use crate::http::session::{SessionInfo, cookie_token};
use crate::model::{Role, UserId};
use crate::registry::Credential;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Largest settings document a user may save.
const MAX_SETTINGS: usize = 64 * 1024;

/// A user name as logs show it: a short keyed-free digest, so repeated attempts can be told
/// together without the log keeping what was typed (often a password in the wrong field).
fn user_digest(username: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, username.as_bytes());
    neosens_protocol::hex::encode(&digest.as_ref()[..4])
}

fn too_many(wait: std::time::Duration) -> ApiError {
    let retry_after_s = wait.as_secs().max(1);
    ApiError::TooManyRequests {
        message: format!("too many failed sign-ins: retry in {retry_after_s} s"),
        retry_after_s,
    }
}

/// The routes of this module, each with its OpenAPI operation (paths relative to `/api/v1`).
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(current, sign_in, sign_out)).routes(routes!(settings, save_settings))
}

/// Sign-in request.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SignIn {
    username: String,
    password: String,
}

/// The signed-in user and the token to repeat in `X-CSRF-Token`.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct SessionView {
    #[schema(value_type = String, format = Uuid)]
    user_id: UserId,
    username: String,
    role: super::schema::users::Role,
    csrf_token: String,
}

fn view(user_id: UserId, username: String, role: Role, info: &SessionInfo) -> SessionView {
    SessionView { user_id, username, role: role.into(), csrf_token: info.csrf.clone() }
}

#[utoipa::path(post, path = "/session", tag = "access", request_body = SignIn,
    responses((status = 200, description = "Signed in; the session cookie is set", body = SessionView),
        (status = 401, description = "Wrong user name or password", body = crate::http::error::ErrorBody),
        (status = 429, description = "Too many failed sign-ins for this user name or client address: retry after `Retry-After` seconds", body = crate::http::error::ErrorBody)))]
async fn sign_in(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiJson(input): ApiJson<SignIn>,
) -> Result<impl IntoResponse, ApiError> {
    if input.username.len() > 64 || input.password.len() > 1024 {
        return Err(ApiError::UnauthorizedBecause("wrong user name or password".into()));
    }
    let user_key = input.username.to_lowercase();
    let client_key = peer.ip().to_canonical().to_string();
    let now = Instant::now();
    if let Err(wait) = s.sessions.users.check(&user_key, now).and(s.sessions.clients.check(&client_key, now))
    {
        tracing::warn!(user = %user_digest(&user_key), client = %client_key, "dashboard sign-in throttled");
        return Err(too_many(wait));
    }
    // On the password workers (2 threads, 16 waiting): a flood is told to retry (429) at once
    // and holds neither memory nor connections.
    let registry = Arc::clone(&s.registry);
    let username = input.username.clone();
    let user = match s.passwords.run(move || registry.verify_user(&username, &input.password)).await {
        Ok(user) => user,
        Err(neosens_runtime::workers::WorkersError::Busy(_)) => {
            return Err(too_many(std::time::Duration::from_secs(1)));
        }
        Err(e) => return Err(ApiError::Internal(anyhow::Error::new(e).context("password check"))),
    };
    let Some(user) = user else {
        s.sessions.users.failed(&user_key, Instant::now());
        s.sessions.clients.failed(&client_key, Instant::now());
        tracing::warn!(user = %user_digest(&user_key), client = %client_key, "dashboard sign-in refused");
        return Err(ApiError::UnauthorizedBecause("wrong user name or password".into()));
    };
    s.sessions.users.succeeded(&user_key);
    let (token, info) = s.sessions.open(user.id);
    tracing::info!(user = %user.username, role = %user.role, "dashboard sign-in");
    let mut headers = HeaderMap::new();
    headers.insert(header::SET_COOKIE, s.sessions.set_cookie(&token));
    headers.insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    Ok((headers, Json(view(user.id, user.username, user.role, &info))))
}

fn session_of(s: &AppState, headers: &HeaderMap) -> Result<SessionInfo, ApiError> {
    cookie_token(headers).and_then(|t| s.sessions.touch(t)).ok_or(ApiError::Unauthorized)
}

#[utoipa::path(get, path = "/session", tag = "access",
    responses((status = 200, description = "The signed-in user", body = SessionView),
        (status = 401, description = "Not signed in", body = crate::http::error::ErrorBody)))]
async fn current(State(s): State<AppState>, headers: HeaderMap) -> Result<impl IntoResponse, ApiError> {
    let info = session_of(&s, &headers)?;
    let user = s.registry.user_record(info.user).ok_or(ApiError::Unauthorized)?;
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(view(user.id, user.username, user.role, &info))))
}

#[utoipa::path(delete, path = "/session", tag = "access",
    responses((status = 204, description = "Signed out; the cookie is cleared"), crate::http::error::CommonErrors))]
async fn sign_out(
    State(s): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    if let Some(token) = cookie_token(&headers) {
        s.sessions.close(token);
    }
    tracing::info!(user = %auth.0.name, "dashboard sign-out");
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, s.sessions.clear_cookie())]))
}

fn session_user(auth: &Auth) -> Result<UserId, ApiError> {
    match auth.0.via {
        Credential::Session(user) => Ok(user),
        Credential::Token(_) => Err(ApiError::BadRequest(
            "settings belong to dashboard users: sign in with POST /api/v1/session".into(),
        )),
    }
}

#[utoipa::path(get, path = "/session/settings", tag = "access",
    responses((status = 200, description = "The user's saved dashboard settings (`{}` when none)", body = inline(Object)), crate::http::error::CommonErrors))]
async fn settings(State(s): State<AppState>, auth: Auth) -> Result<impl IntoResponse, ApiError> {
    let user = session_user(&auth)?;
    let text = s.registry.blocking(move |r| r.user_settings(user)).await?;
    let value = text
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .unwrap_or_else(|| Value::Object(Default::default()));
    Ok(Json(value))
}

#[utoipa::path(put, path = "/session/settings", tag = "access", request_body = inline(Object),
    responses((status = 200, description = "Saved", body = inline(Object)), crate::http::error::CommonErrors))]
async fn save_settings(
    State(s): State<AppState>,
    auth: Auth,
    ApiJson(value): ApiJson<Value>,
) -> Result<impl IntoResponse, ApiError> {
    let user = session_user(&auth)?;
    if !value.is_object() {
        return Err(ApiError::Invalid { field: "settings".into(), message: "a JSON object".into() });
    }
    let text = value.to_string();
    if text.len() > MAX_SETTINGS {
        return Err(ApiError::TooLarge(format!("settings are limited to {MAX_SETTINGS} bytes")));
    }
    s.registry.blocking(move |r| r.put_user_settings(user, Some(&text))).await?;
    Ok(Json(value))
}
