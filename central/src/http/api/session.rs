//! `/api/v1/session`: dashboard sign-in (argon2id password → session cookie), the current
//! session, sign-out, and the user's saved dashboard settings.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::directory::DirectoryError;
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{ApiJson, SiteAuth};
use crate::http::session::{SessionInfo, cookie_token};
use crate::model::{Actor, UserId};
use crate::registry::{Credential, UserInfo, UserSource};
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
    /// The sites the role is limited to (slugs); empty: the whole campus.
    sites: Vec<String>,
    csrf_token: String,
}

fn view(user: UserInfo, info: &SessionInfo) -> SessionView {
    SessionView {
        user_id: user.id,
        username: user.username,
        role: user.role.into(),
        sites: user.sites,
        csrf_token: info.csrf.clone(),
    }
}

#[utoipa::path(post, path = "/session", tag = "access", request_body = SignIn,
    responses((status = 200, description = "Signed in; the session cookie is set", body = SessionView),
        (status = 401, description = "Wrong user name or password", body = crate::http::error::ErrorBody),
        (status = 403, description = "The directory accepted the password, but the person is in no group that has a role", body = crate::http::error::ErrorBody),
        (status = 503, description = "The directory (`[ldap]`) did not answer: directory accounts cannot sign in now; local ones can", body = crate::http::error::ErrorBody),
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
    let locked = match s.sessions.users.check(&user_key).await {
        Ok(()) => s.sessions.clients.check(&client_key).await,
        locked => locked,
    };
    if let Err(wait) = locked {
        tracing::warn!(user = %user_digest(&user_key), client = %client_key, "dashboard sign-in throttled");
        return Err(too_many(wait));
    }
    let checked = check_password(&s, &input).await;
    let refusal = match &checked {
        Ok(Some(_)) => None,
        Ok(None) => Some("wrong user name or password".to_owned()),
        Err(ApiError::Forbidden(why)) => Some(why.clone()),
        Err(_) => None,
    };
    if let Some(why) = refusal {
        if matches!(checked, Ok(None)) {
            s.sessions.users.failed(&user_key).await;
            s.sessions.clients.failed(&client_key).await;
        }
        tracing::warn!(user = %user_digest(&user_key), client = %client_key, reason = %why, "dashboard sign-in refused");
        let mut entry = sign_in_entry("session.sign_in_failed", None, &input.username, &client_key);
        entry.detail = format!("{}: {why}", entry.detail);
        if let Err(e) = s.registry.blocking(move |r| r.record_audit(&[entry])).await {
            tracing::warn!(error = %e, "a refused sign-in is not in the audit trail");
        }
    }
    let Some((user, source)) = checked? else {
        return Err(ApiError::UnauthorizedBecause("wrong user name or password".into()));
    };
    let mut entry = sign_in_entry("session.sign_in", Some(user.id), &user.username, &client_key);
    entry.detail = format!("{} ({source})", entry.detail);
    s.registry.blocking(move |r| r.record_audit(&[entry])).await?;
    s.sessions.users.succeeded(&user_key).await;
    let (token, info) = s
        .sessions
        .open(user.id)
        .await
        .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("opening a session")))?;
    tracing::info!(user = %user.username, role = %user.role, "dashboard sign-in");
    let mut headers = HeaderMap::new();
    headers.insert(header::SET_COOKIE, s.sessions.set_cookie(&token));
    headers.insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    Ok((headers, Json(view(user, &info))))
}

/// Checks the password where it lives: here for local accounts (argon2id, on the password
/// workers — 2 threads, 16 waiting, so a flood is told to retry at once and holds neither memory
/// nor connections), in the directory for anyone else when `[ldap]` is set. `Ok(None)` is a
/// wrong name or password; a directory person in no mapped group is `Forbidden`.
async fn check_password(s: &AppState, input: &SignIn) -> Result<Option<(UserInfo, &'static str)>, ApiError> {
    let local = s.registry.user_source(&input.username) == Some(UserSource::Local);
    if let Some(directory) = s.directory.as_ref().filter(|_| !local) {
        let found = match directory.authenticate(&input.username, &input.password).await {
            Ok(found) => found,
            Err(DirectoryError::Refused) => return Ok(None),
            Err(DirectoryError::Busy) => return Err(too_many(std::time::Duration::from_secs(1))),
            Err(e @ DirectoryError::NoRole) => return Err(ApiError::Forbidden(e.to_string())),
            Err(DirectoryError::Unavailable(why)) => {
                tracing::warn!(error = %why, "the directory did not answer a sign-in");
                return Err(ApiError::DirectoryUnavailable(
                    "the directory is unreachable: directory accounts cannot sign in now (local accounts can)".into(),
                ));
            }
        };
        tracing::info!(dn = %found.dn, role = %found.role, sites = ?found.sites, "directory sign-in");
        let name = input.username.clone();
        let actor = Actor::User { id: None, name: name.clone() };
        let user = s
            .registry
            .acting(actor, move |r| r.directory_sign_in(&name, found.role, &found.sites))
            .await
            .map_err(|e| match e {
                crate::registry::RegistryError::Invalid { field, message } if field == "sites" => {
                    ApiError::Forbidden(format!(
                        "the sites of your directory groups are refused ({message}): ask an administrator"
                    ))
                }
                other => other.into(),
            })?;
        return Ok(Some((user, "directory")));
    }
    let registry = Arc::clone(&s.registry);
    let (username, password) = (input.username.clone(), input.password.clone());
    match s.passwords.run(move || registry.verify_user(&username, &password)).await {
        Ok(user) => Ok(user.map(|u| (u, "local"))),
        Err(neosens_runtime::workers::WorkersError::Busy(_)) => {
            Err(too_many(std::time::Duration::from_secs(1)))
        }
        Err(e) => Err(ApiError::Internal(anyhow::Error::new(e).context("password check"))),
    }
}

/// The audit entry of a sign-in (or of a refused one, under the name that was tried).
fn sign_in_entry(action: &str, id: Option<UserId>, name: &str, client: &str) -> crate::model::AuditEntry {
    crate::model::AuditEntry {
        actor: crate::model::Actor::User { id: id.map(|id| id.0.into_bytes()), name: name.to_owned() },
        ..crate::audit::event(
            action,
            "user",
            id.map(|id| id.0.to_string()).unwrap_or_default(),
            name.to_owned(),
            format!("from {client}"),
        )
    }
}

async fn session_of(s: &AppState, headers: &HeaderMap) -> Result<SessionInfo, ApiError> {
    let token = cookie_token(headers).ok_or(ApiError::Unauthorized)?;
    s.sessions.touch(token).await.ok_or(ApiError::Unauthorized)
}

#[utoipa::path(get, path = "/session", tag = "access",
    responses((status = 200, description = "The signed-in user", body = SessionView),
        (status = 401, description = "Not signed in", body = crate::http::error::ErrorBody)))]
async fn current(State(s): State<AppState>, headers: HeaderMap) -> Result<impl IntoResponse, ApiError> {
    let info = session_of(&s, &headers).await?;
    let user = s.registry.user(info.user).map_err(|_| ApiError::Unauthorized)?;
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(view(user, &info))))
}

#[utoipa::path(delete, path = "/session", tag = "access",
    responses((status = 204, description = "Signed out; the cookie is cleared"), crate::http::error::CommonErrors))]
async fn sign_out(
    State(s): State<AppState>,
    auth: SiteAuth,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    if let Some(token) = cookie_token(&headers) {
        s.sessions.close(token).await;
    }
    tracing::info!(user = %auth.0.name, "dashboard sign-out");
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, s.sessions.clear_cookie())]))
}

fn session_user(auth: &SiteAuth) -> Result<UserId, ApiError> {
    match auth.0.via {
        Credential::Session(user) => Ok(user),
        Credential::Token(_) => Err(ApiError::BadRequest(
            "settings belong to dashboard users: sign in with POST /api/v1/session".into(),
        )),
    }
}

#[utoipa::path(get, path = "/session/settings", tag = "access",
    responses((status = 200, description = "The user's saved dashboard settings (`{}` when none)", body = inline(Object)), crate::http::error::CommonErrors))]
async fn settings(State(s): State<AppState>, auth: SiteAuth) -> Result<impl IntoResponse, ApiError> {
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
    auth: SiteAuth,
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
