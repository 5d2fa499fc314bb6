//! `/api/v1/firmware`: firmware images, uploaded by admins (their rollouts: `campaigns`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use neosens_protocol::hex;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::items;
use crate::firmware::ImageInput;
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{ApiQuery, Auth};
use crate::model::{FirmwareImage, Role};

/// The routes of this module, each with its OpenAPI operation (paths relative to `/api/v1`).
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(upload, list_images))
        .routes(routes!(get_image, delete_image))
        .routes(routes!(image_content))
        .routes(routes!(revisions))
}

/// A census sample.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct CensusSample {
    /// RFC 3339.
    at: String,
    /// Devices per hardware, board and revision.
    counts: Vec<crate::model::RevisionCount>,
}

/// The fleet's firmware revisions.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct RevisionsView {
    /// Now: devices per hardware, board and revision their last statuses report.
    now: Vec<crate::model::RevisionCount>,
    /// Hourly samples of the last 90 days, oldest first.
    history: Vec<CensusSample>,
}

/// The fleet's firmware revisions now and over the last 90 days (hourly).
#[utoipa::path(get, path = "/firmware/revisions", tag = "firmware",
    responses((status = 200, body = RevisionsView), crate::http::error::CommonErrors),
    security(("bearer" = [])))]
async fn revisions(State(s): State<AppState>, _auth: Auth) -> Json<RevisionsView> {
    let now = s.registry.blocking(|r| r.firmware_census()).await;
    let history = s
        .firmware
        .census_history()
        .into_iter()
        .map(|(at, counts)| CensusSample { at: crate::model::Timestamp(at).to_rfc3339(), counts })
        .collect();
    Json(RevisionsView { now, history })
}

/// An image as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ImageView {
    /// SHA-256 of the content (its id), hex.
    sha256: String,
    /// MD5, hex (the `x-MD5` devices check).
    md5: String,
    /// Bytes.
    size: u64,
    /// `esp32`, `esp8266`, …
    hardware: String,
    /// Board name.
    board: String,
    /// Revision.
    revision: u64,
    /// Free text.
    notes: String,
    /// RFC 3339.
    uploaded_at: String,
    /// Who.
    uploaded_by: String,
    /// A gateway build's signature, hex (absent for device images).
    #[serde(skip_serializing_if = "Option::is_none")]
    signature: Option<String>,
}

impl ImageView {
    fn of(i: FirmwareImage, firmware: &crate::firmware::Firmware) -> Self {
        ImageView {
            signature: firmware.signature(&i.sha256).map(|s| hex::encode(&s)),
            sha256: hex::encode(&i.sha256),
            md5: hex::encode(&i.md5),
            size: i.size,
            hardware: i.hardware,
            board: i.board,
            revision: i.revision,
            notes: i.notes,
            uploaded_at: i.uploaded_at.to_rfc3339(),
            uploaded_by: i.uploaded_by,
        }
    }
}

/// What describes an upload (the body is the image itself).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct UploadParams {
    /// `esp32`, `esp8266`, or any other name (`rpi`, `gateway-aarch64` …).
    hardware: String,
    /// Board name (`neOSensor`, `AirQuality` …).
    board: String,
    /// The revision devices compare with theirs (ESP: above 231027 to be taken).
    revision: u64,
    /// Free text.
    #[serde(default)]
    notes: String,
    /// A gateway build's detached ed25519 signature, 128 hex digits (`neosens-central agent-key
    /// sign`); required for hardware `neosens-edge-*`, refused for others.
    signature: Option<String>,
}

/// Uploads an image: the request body is the file (`application/octet-stream`), streamed to
/// disk and named by its SHA-256. ESP images must start with `0xE9`.
#[utoipa::path(post, path = "/firmware", tag = "firmware", params(UploadParams),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 201, body = ImageView), crate::http::error::CommonErrors,
        (status = 409, description = "Same content, or same hardware/board/revision, already stored", body = crate::http::error::ErrorBody),
        (status = 413, description = "Larger than [firmware] max_image_bytes", body = crate::http::error::ErrorBody)),
    security(("bearer" = [])))]
async fn upload(
    State(s): State<AppState>,
    auth: Auth,
    ApiQuery(params): ApiQuery<UploadParams>,
    body: axum::body::Body,
) -> Result<impl IntoResponse, ApiError> {
    auth.require(Role::Admin)?;
    let signature = match params.signature.as_deref().map(|s| hex::decode_array::<64>(s.trim(), "signature"))
    {
        None => None,
        Some(Ok(signature)) => Some(signature),
        Some(Err(_)) => {
            return Err(ApiError::Invalid { field: "signature".into(), message: "128 hex digits".into() });
        }
    };
    let input = ImageInput {
        hardware: params.hardware,
        board: params.board,
        revision: params.revision,
        notes: params.notes,
        signature,
    };
    let image = s.firmware.upload(input, body, &auth.0.name).await?;
    let entry = crate::audit::event(
        "firmware.upload",
        "firmware",
        neosens_protocol::hex::encode(&image.sha256),
        format!("{}/{} revision {}", image.hardware, image.board, image.revision),
        format!("{} bytes", image.size),
    );
    let entry = crate::model::AuditEntry { actor: crate::model::Actor::from(&auth.0), ..entry };
    s.registry.blocking(move |r| r.record_audit(&[entry])).await?;
    Ok((StatusCode::CREATED, Json(ImageView::of(image, &s.firmware))))
}

#[utoipa::path(get, path = "/firmware", tag = "firmware",
    responses((status = 200, description = "Images, newest first", body = inline(Object)), crate::http::error::CommonErrors),
    security(("bearer" = [])))]
async fn list_images(State(s): State<AppState>, _auth: Auth) -> impl IntoResponse {
    items(s.firmware.images().into_iter().map(|i| ImageView::of(i, &s.firmware)).collect())
}

#[utoipa::path(get, path = "/firmware/{sha256}", tag = "firmware", params(("sha256" = String, Path, description = "The image's SHA-256")),
    responses((status = 200, body = ImageView), crate::http::error::CommonErrors, (status = 404, description = "Not found", body = crate::http::error::ErrorBody)),
    security(("bearer" = [])))]
async fn get_image(
    State(s): State<AppState>,
    _auth: Auth,
    Path(sha): Path<String>,
) -> Result<Json<ImageView>, ApiError> {
    Ok(Json(ImageView::of(s.firmware.image(&sha)?, &s.firmware)))
}

/// Deletes an image no open campaign uses.
#[utoipa::path(delete, path = "/firmware/{sha256}", tag = "firmware", params(("sha256" = String, Path, description = "The image's SHA-256")),
    responses((status = 204, description = "Deleted"), crate::http::error::CommonErrors,
        (status = 404, description = "Not found", body = crate::http::error::ErrorBody),
        (status = 409, description = "An open campaign uses it", body = crate::http::error::ErrorBody)),
    security(("bearer" = [])))]
async fn delete_image(
    State(s): State<AppState>,
    auth: Auth,
    Path(sha): Path<String>,
) -> Result<StatusCode, ApiError> {
    auth.require(Role::Admin)?;
    let (registry, firmware) = (s.registry.clone(), s.firmware.clone());
    neosens_runtime::blocking::run(move || -> Result<(), ApiError> {
        firmware.delete_image(&sha, &auth.0.name)?;
        let entry =
            crate::audit::event("firmware.delete", "firmware", sha.clone(), sha.clone(), String::new());
        Ok(registry.record_audit(&[crate::model::AuditEntry {
            actor: crate::model::Actor::from(&auth.0),
            ..entry
        }])?)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The image's content, with `x-MD5`.
#[utoipa::path(get, path = "/firmware/{sha256}/content", tag = "firmware", params(("sha256" = String, Path, description = "The image's SHA-256")),
    responses((status = 200, description = "The file", content_type = "application/octet-stream"), crate::http::error::CommonErrors,
        (status = 404, description = "Not found", body = crate::http::error::ErrorBody)),
    security(("bearer" = [])))]
async fn image_content(
    State(s): State<AppState>,
    _auth: Auth,
    Path(sha): Path<String>,
) -> Result<axum::response::Response, ApiError> {
    let image = s.firmware.image(&sha)?;
    let md5 = hex::encode(&image.md5);
    Ok(crate::http::images::send_file(&s.firmware.image_file(&image), image.size, Some(&md5)).await)
}
