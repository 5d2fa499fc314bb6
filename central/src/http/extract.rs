//! Extractors whose rejections speak the API's JSON error format.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::Method;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::{AppState, session};
use crate::model::Role;
use crate::registry::{Credential, Principal};

/// A JSON body; malformed or oversized bodies become API errors naming the problem.
pub(crate) struct ApiJson<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(JsonRejection::BytesRejection(e))
                if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE =>
            {
                Err(ApiError::TooLarge(format!("request body too large: {e}")))
            }
            Err(e) => Err(ApiError::BadRequest(e.body_text())),
        }
    }
}

/// Query parameters; bad ones become API errors.
pub(crate) struct ApiQuery<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(q) => Ok(ApiQuery(q.0)),
            Err(e @ QueryRejection::FailedToDeserializeQueryString(_)) => {
                Err(ApiError::BadRequest(e.body_text()))
            }
            Err(e) => Err(ApiError::BadRequest(e.body_text())),
        }
    }
}

/// The caller of an `/api/v1` route, from its bearer token or dashboard session, with rights on
/// the whole campus. A site-limited caller is refused: routes that serve it take [`SiteAuth`] and
/// narrow what they show, so a route not written for rights per site never leaks another site.
pub(crate) struct Auth(pub(crate) Principal);

/// The caller of a route that respects rights per site: campus-wide or site-limited, the route
/// narrows what it shows to [`Principal::scope`] (and the registry refuses changes outside it).
pub(crate) struct SiteAuth(pub(crate) Principal);

impl SiteAuth {
    /// Refuses callers below `role` (on their sites).
    pub(crate) fn require(&self, role: Role) -> Result<(), ApiError> {
        require(&self.0, role)
    }
}

fn require(p: &Principal, role: Role) -> Result<(), ApiError> {
    if p.role >= role {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!("this needs the {role} role; {:?} is {}", p.name, p.role)))
    }
}

impl Auth {
    /// Refuses callers below `role`.
    pub(crate) fn require(&self, role: Role) -> Result<(), ApiError> {
        require(&self.0, role)
    }
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let SiteAuth(principal) = SiteAuth::from_request_parts(parts, state).await?;
        if !principal.scope.is_campus() {
            return Err(ApiError::Forbidden(format!(
                "this is campus-wide and {:?} has rights on some sites only: ask a campus-wide {}",
                principal.name, principal.role
            )));
        }
        Ok(Auth(principal))
    }
}

impl FromRequestParts<AppState> for SiteAuth {
    type Rejection = ApiError;

    /// A bearer token when there is an `Authorization` header; otherwise the dashboard session
    /// cookie, with the session's CSRF token required on anything but GET and HEAD.
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(header) = parts.headers.get(AUTHORIZATION) {
            let header = header.to_str().map_err(|_| ApiError::Unauthorized)?;
            let (scheme, token) = header.split_once(' ').ok_or(ApiError::Unauthorized)?;
            if !scheme.eq_ignore_ascii_case("bearer") {
                return Err(ApiError::Unauthorized);
            }
            return state
                .registry
                .authenticate_token(token.trim())
                .map(SiteAuth)
                .ok_or(ApiError::Unauthorized);
        }
        let token = session::cookie_token(&parts.headers).ok_or(ApiError::Unauthorized)?;
        let info = state.sessions.touch(token).await.ok_or(ApiError::Unauthorized)?;
        let user = state.registry.user_record(info.user).ok_or(ApiError::Unauthorized)?;
        if !matches!(parts.method, Method::GET | Method::HEAD)
            && !session::csrf_matches(&parts.headers, &info)
        {
            return Err(ApiError::Forbidden(
                "this request needs the session's CSRF token in X-CSRF-Token (from GET /api/v1/session)"
                    .into(),
            ));
        }
        let scope = user.scope();
        Ok(SiteAuth(Principal {
            via: Credential::Session(user.id),
            name: user.username,
            role: user.role,
            scope,
        }))
    }
}
