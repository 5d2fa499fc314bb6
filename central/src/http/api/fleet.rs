//! `GET /api/v1/fleet`: device counts by state per site, building and room — what the
//! dashboard's overview polls. Answers carry an ETag; a poll whose `If-None-Match` still
//! matches gets an empty 304, so a dashboard left open costs a hash, not a transfer.

use std::hash::{DefaultHasher, Hash, Hasher};

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::SiteAuth;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::schema::fleet::FleetSummary;

/// The routes of this module, each with its OpenAPI operation (paths relative to `/api/v1`).
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(summary))
}

/// A strong validator of a JSON body.
pub(super) fn etag_of(body: &[u8]) -> String {
    let mut hasher = DefaultHasher::new();
    body.hash(&mut hasher);
    format!("\"{:016x}\"", hasher.finish())
}

/// `body` as JSON with its ETag, or 304 when the client has it already.
pub(super) fn with_etag(headers: &HeaderMap, body: Vec<u8>) -> Response {
    let etag = etag_of(&body);
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let etag = HeaderValue::from_str(&etag).expect("hex in quotes");
    let cache = (header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if matches {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag), cache]).into_response();
    }
    let json = (header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    ([(header::ETAG, etag), cache, json], body).into_response()
}

#[utoipa::path(get, path = "/fleet", tag = "devices",
    responses((status = 200, description = "Counts by state per site, building and room; with an ETag", body = FleetSummary),
        (status = 304, description = "Unchanged since the ETag in If-None-Match"),
        crate::http::error::CommonErrors),
    security(("bearer" = [])))]
async fn summary(
    State(s): State<AppState>,
    auth: SiteAuth,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let mut fleet = FleetSummary::from(s.registry.fleet_summary().within(&auth.0.scope));
    let now = crate::model::Timestamp::now().millis();
    fleet.mark_disconnected(&crate::gateway_health::disconnected_buildings(&s.registry, &s.gateways, now));
    let body = serde_json::to_vec(&fleet)
        .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("encoding the fleet summary")))?;
    Ok(with_etag(&headers, body))
}
