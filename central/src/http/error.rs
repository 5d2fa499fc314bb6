//! The one error type of `/api/v1`: status, JSON body and logging in one place.
//!
//! Body: `{"error": {"code": "...", "message": "...", "field"?: "...", "details"?: [...]}}`.
//! Internal failures are logged with their cause and answered with a generic message.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::registry::RegistryError;

/// An `/api/v1` error.
#[derive(Debug)]
pub enum ApiError {
    /// 400: a field is wrong.
    Invalid {
        /// The field.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// 400: the request itself is malformed (not JSON, wrong types).
    BadRequest(String),
    /// 401: no or unknown token.
    Unauthorized,
    /// 401 with a specific message (an enrolment token refused).
    UnauthorizedBecause(String),
    /// 403: the token's role is too low.
    Forbidden(String),
    /// 404.
    NotFound(String),
    /// 405: the path exists, the method does not.
    MethodNotAllowed(String),
    /// 409: duplicate or a reference in the way.
    Conflict(String),
    /// 413: body too large.
    TooLarge(String),
    /// 422: a configuration breaks its schema or limits.
    Unprocessable(Vec<String>),
    /// 429: too many attempts; retry after this many seconds (`Retry-After`).
    TooManyRequests {
        /// What to tell the client.
        message: String,
        /// Seconds to wait.
        retry_after_s: u64,
    },
    /// 503: a dependency (the broker link) is down; retry later.
    Unavailable(String),
    /// 503: the directory (LDAP) did not answer a sign-in; local accounts still work.
    DirectoryUnavailable(String),
    /// 503: what this path serves lives on the leading replica (see `crate::leader`).
    NotLeader(String),
    /// 500: logged with its whole chain of causes, not detailed to the client.
    Internal(anyhow::Error),
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Invalid { .. } => (StatusCode::BAD_REQUEST, "invalid_field"),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::Unauthorized | ApiError::UnauthorizedBecause(_) => {
                (StatusCode::UNAUTHORIZED, "unauthorized")
            }
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::Unprocessable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "schema_violation"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "broker_unavailable"),
            ApiError::DirectoryUnavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "directory_unavailable"),
            ApiError::NotLeader(_) => (StatusCode::SERVICE_UNAVAILABLE, "not_leader"),
            ApiError::TooManyRequests { .. } => (StatusCode::TOO_MANY_REQUESTS, "too_many_requests"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::NotFound { what } => ApiError::NotFound(format!("{what} not found")),
            RegistryError::Conflict { message } => ApiError::Conflict(message),
            RegistryError::Invalid { field, message } => ApiError::Invalid { field, message },
            RegistryError::Config { errors } => ApiError::Unprocessable(errors),
            RegistryError::Forbidden { message } => ApiError::Forbidden(message),
            e @ (RegistryError::Store(_) | RegistryError::Keys(_)) => ApiError::Internal(e.into()),
        }
    }
}

impl From<crate::firmware::FirmwareError> for ApiError {
    fn from(e: crate::firmware::FirmwareError) -> Self {
        use crate::firmware::{FirmwareError, ReceiveError};
        match e {
            FirmwareError::Invalid { field, message } => ApiError::Invalid { field: field.into(), message },
            FirmwareError::NotFound(what) => ApiError::NotFound(format!("{what} not found")),
            FirmwareError::Conflict(message) => ApiError::Conflict(message),
            FirmwareError::Receive(e @ ReceiveError::TooLarge(_)) => ApiError::TooLarge(e.to_string()),
            FirmwareError::Receive(e @ (ReceiveError::Empty | ReceiveError::Body(_))) => {
                ApiError::BadRequest(e.to_string())
            }
            e @ (FirmwareError::Receive(ReceiveError::Disk(_))
            | FirmwareError::Store(_)
            | FirmwareError::Disk(_)) => ApiError::Internal(e.into()),
        }
    }
}

/// The body of every `/api/v1` error.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code (`invalid_field`, `conflict`, `schema_violation` …).
    pub code: &'static str,
    /// What is wrong and, where possible, how to fix it.
    pub message: String,
    /// The offending field, for `invalid_field`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Every violation, for `schema_violation`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Vec<String>>,
}

/// The errors any `/api/v1` route may answer, for the OpenAPI document.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // documents responses; never constructed
pub(crate) enum CommonErrors {
    /// Invalid input: malformed JSON, unknown field, or a field named in `field`.
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// No or unknown bearer token.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// The token's role is too low.
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// The body is larger than 1 MiB.
    #[response(status = 413)]
    TooLarge(ErrorBody),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.parts();
        let retry_after = match &self {
            ApiError::TooManyRequests { retry_after_s, .. } => Some(*retry_after_s),
            _ => None,
        };
        let detail = |message: String| ErrorDetail { code, message, field: None, details: None };
        let detail = match self {
            ApiError::Invalid { field, message } => {
                ErrorDetail { field: Some(field.clone()), ..detail(format!("{field}: {message}")) }
            }
            ApiError::Unprocessable(errors) => ErrorDetail {
                details: Some(errors.clone()),
                ..detail(format!("configuration rejected: {}", errors.join("; ")))
            },
            ApiError::Unauthorized => detail(
                "a valid bearer token (Authorization: Bearer <token>) or a dashboard session is required"
                    .into(),
            ),
            ApiError::Internal(cause) => {
                // `{:#}`: the context and every source ("storage: … : No space left on device").
                tracing::error!(cause = format!("{cause:#}"), "internal error answering an API request");
                detail("internal error; the server log has the details".into())
            }
            ApiError::BadRequest(m)
            | ApiError::UnauthorizedBecause(m)
            | ApiError::Forbidden(m)
            | ApiError::NotFound(m)
            | ApiError::MethodNotAllowed(m)
            | ApiError::Unavailable(m)
            | ApiError::DirectoryUnavailable(m)
            | ApiError::NotLeader(m)
            | ApiError::Conflict(m)
            | ApiError::TooLarge(m)
            | ApiError::TooManyRequests { message: m, .. } => detail(m),
        };
        let mut response = (status, Json(ErrorBody { error: detail })).into_response();
        if let Some(s) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
