//! `/api/v1/edge/firmware*`: what gateways fetch of the firmware campaigns — the manifest of
//! their scope's share, the images (resumable), and the fetches their devices made.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use neosens_protocol::agent_build::AgentUpdateReport;
use neosens_protocol::edge_firmware::{FirmwareFetches, FirmwareManifest, MAX_REPORTED_FETCHES};
use neosens_protocol::hex;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::edge::GatewayAuth;
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{ApiJson, ApiQuery};
use crate::model::Timestamp;

/// The routes of this module, each with its OpenAPI operation (paths relative to `/api/v1`).
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(manifest))
        .routes(routes!(image))
        .routes(routes!(fetches))
        .routes(routes!(agent_update))
}

/// What the gateway says it has.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct ManifestParams {
    /// The SHA-256 of the images it has cached, comma-separated: when they cover the answer,
    /// central knows the gateway serves the current waves (and sends `upgrade` orders to the
    /// devices of its site).
    cached: Option<String>,
}

/// The running campaigns' images and the devices of the gateway's scope in their started waves.
#[utoipa::path(get, path = "/edge/firmware", tag = "edge", params(ManifestParams),
    responses((status = 200, body = FirmwareManifest), crate::http::error::CommonErrors),
    security(("bearer" = [])))]
async fn manifest(
    State(s): State<AppState>,
    GatewayAuth(id): GatewayAuth,
    ApiQuery(params): ApiQuery<ManifestParams>,
) -> Json<FirmwareManifest> {
    s.gateways.contact(id, None, Timestamp::now().millis());
    // Scope checks over the campaigns' device lists (up to 100,000 ids each): off the async workers.
    let (firmware, registry) = (s.firmware.clone(), s.registry.clone());
    Json(
        neosens_runtime::blocking::run(move || {
            let cached: Vec<&str> = params
                .cached
                .as_deref()
                .unwrap_or("")
                .split(',')
                .filter(|c| !c.is_empty())
                .take(64)
                .collect();
            firmware.manifest(id, &registry, &cached)
        })
        .await,
    )
}

/// An image's content with `x-MD5`; `Range: bytes=N-` resumes an interrupted download (206).
#[utoipa::path(get, path = "/edge/firmware/{sha256}", tag = "edge", params(("sha256" = String, Path, description = "The image's SHA-256")),
    responses((status = 200, description = "The image", content_type = "application/octet-stream"),
        (status = 206, description = "The rest of the image from the asked offset", content_type = "application/octet-stream"),
        crate::http::error::CommonErrors,
        (status = 404, description = "No such image", body = crate::http::error::ErrorBody),
        (status = 416, description = "The offset is past the end")),
    security(("bearer" = [])))]
async fn image(
    State(s): State<AppState>,
    GatewayAuth(id): GatewayAuth,
    Path(sha): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    s.gateways.contact(id, None, Timestamp::now().millis());
    let image = s.firmware.image(&sha)?;
    let from = range_start(headers.get(header::RANGE).and_then(|v| v.to_str().ok()));
    if from > 0 && from >= image.size {
        let range = format!("bytes */{}", image.size);
        return Ok((StatusCode::RANGE_NOT_SATISFIABLE, [(header::CONTENT_RANGE, range)]).into_response());
    }
    s.firmware.count_gateway_transfer(image.size - from);
    tracing::info!(gateway = %id, sha256 = %sha, from, "firmware image sent to a gateway");
    let md5 = hex::encode(&image.md5);
    Ok(crate::http::images::send_file_from(&s.firmware.image_file(&image), image.size, Some(&md5), from)
        .await)
}

/// Fetches of images by devices of the gateway's scope (at most 1000 per call): their campaign
/// progress moves to "downloading".
#[utoipa::path(post, path = "/edge/firmware/fetches", tag = "edge", request_body = FirmwareFetches,
    responses((status = 200, description = "`{\"taken\": n}`: fetches of devices in the gateway's scope and a started wave", body = inline(Object)),
        crate::http::error::CommonErrors),
    security(("bearer" = [])))]
async fn fetches(
    State(s): State<AppState>,
    GatewayAuth(id): GatewayAuth,
    ApiJson(input): ApiJson<FirmwareFetches>,
) -> Result<Json<serde_json::Value>, ApiError> {
    s.gateways.contact(id, None, Timestamp::now().millis());
    if input.fetches.len() > MAX_REPORTED_FETCHES {
        return Err(ApiError::Invalid {
            field: "fetches".into(),
            message: format!("at most {MAX_REPORTED_FETCHES} per call"),
        });
    }
    let taken = s.firmware.gateway_fetches(id, &input.fetches, &s.registry);
    Ok(Json(serde_json::json!({"taken": taken})))
}

/// What became of a gateway build the gateway was offered (installed, refused, rolled back):
/// recorded in its campaign (an event, and the gateway device's stage).
#[utoipa::path(post, path = "/edge/agent-update", tag = "edge", request_body = AgentUpdateReport,
    responses((status = 200, description = "`{\"taken\": true|false}`: false for a campaign, build or device that is not the gateway's to report", body = inline(Object)),
        crate::http::error::CommonErrors),
    security(("bearer" = [])))]
async fn agent_update(
    State(s): State<AppState>,
    GatewayAuth(id): GatewayAuth,
    ApiJson(report): ApiJson<AgentUpdateReport>,
) -> Result<Json<serde_json::Value>, ApiError> {
    s.gateways.contact(id, None, Timestamp::now().millis());
    let (firmware, registry) = (s.firmware.clone(), s.registry.clone());
    let taken =
        neosens_runtime::blocking::run(move || firmware.agent_outcome(id, &report, &registry)).await?;
    Ok(Json(serde_json::json!({"taken": taken})))
}

/// The offset of `Range: bytes=N-` (the only form a resuming gateway sends); anything else is
/// ignored and the whole image is sent, as RFC 9110 allows.
fn range_start(range: Option<&str>) -> u64 {
    range
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_an_open_ended_byte_range_resumes() {
        assert_eq!(super::range_start(Some("bytes=1024-")), 1024);
        for ignored in [
            None,
            Some("bytes=5-10"),
            Some("bytes=-5"),
            Some("items=5-"),
            Some("bytes=x-"),
            Some("bytes=99999999999999999999-"),
        ] {
            assert_eq!(super::range_start(ignored), 0, "{ignored:?}");
        }
    }
}
