//! `/api/v1/firmware` (images) and `/api/v1/campaigns` (their rollouts): images are uploaded
//! by admins, campaigns run by operators.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use neosens_protocol::hex;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::items;
use crate::firmware::{CampaignAction, CampaignInput, ImageInput, MAX_CAMPAIGN_DEVICES};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{ApiJson, ApiQuery, Auth};
use crate::model::{Campaign, CampaignState, FirmwareImage, Role};

/// The routes of this module, each with its OpenAPI operation (paths relative to `/api/v1`).
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(upload, list_images))
        .routes(routes!(get_image, delete_image))
        .routes(routes!(image_content))
        .routes(routes!(create_campaign, list_campaigns))
        .routes(routes!(get_campaign))
        .routes(routes!(act))
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
}

impl From<FirmwareImage> for ImageView {
    fn from(i: FirmwareImage) -> Self {
        ImageView {
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
    let input = ImageInput {
        hardware: params.hardware,
        board: params.board,
        revision: params.revision,
        notes: params.notes,
    };
    let image = s.firmware.upload(input, body, &auth.0.name).await?;
    Ok((StatusCode::CREATED, Json(ImageView::from(image))))
}

#[utoipa::path(get, path = "/firmware", tag = "firmware",
    responses((status = 200, description = "Images, newest first", body = inline(Object)), crate::http::error::CommonErrors),
    security(("bearer" = [])))]
async fn list_images(State(s): State<AppState>, _auth: Auth) -> impl IntoResponse {
    items(s.firmware.images().into_iter().map(ImageView::from).collect())
}

#[utoipa::path(get, path = "/firmware/{sha256}", tag = "firmware", params(("sha256" = String, Path, description = "The image's SHA-256")),
    responses((status = 200, body = ImageView), crate::http::error::CommonErrors, (status = 404, description = "Not found", body = crate::http::error::ErrorBody)),
    security(("bearer" = [])))]
async fn get_image(
    State(s): State<AppState>,
    _auth: Auth,
    Path(sha): Path<String>,
) -> Result<Json<ImageView>, ApiError> {
    Ok(Json(s.firmware.image(&sha)?.into()))
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
    let firmware = s.firmware.clone();
    neosens_runtime::blocking::run(move || firmware.delete_image(&sha, &auth.0.name)).await?;
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

/// A wave as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct WaveView {
    /// Cumulative share of the devices.
    until_percent: u8,
    /// Devices reached once it has started, counting earlier waves.
    devices: usize,
    /// Seconds after its start at which the next starts by itself.
    soak_s: Option<u32>,
    /// RFC 3339, once started.
    started_at: Option<String>,
}

/// An event of a campaign.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct EventView {
    /// RFC 3339.
    at: String,
    /// Who.
    by: String,
    /// What.
    what: String,
}

/// A campaign as the API shows it (its device list aside).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct CampaignView {
    /// Its number.
    id: u64,
    /// Its name.
    name: String,
    /// The image's SHA-256.
    image: String,
    /// `running`, `paused`, `halted`, `cancelled` or `finished`.
    state: &'static str,
    /// Devices targeted.
    devices: usize,
    /// Devices of the started waves.
    reached: usize,
    /// Its waves.
    waves: Vec<WaveView>,
    /// Failed share of a wave that halts it.
    failure_threshold_percent: u8,
    /// What happened, oldest first.
    events: Vec<EventView>,
}

fn state_name(state: CampaignState) -> &'static str {
    match state {
        CampaignState::Running => "running",
        CampaignState::Paused => "paused",
        CampaignState::Halted => "halted",
        CampaignState::Cancelled => "cancelled",
        CampaignState::Finished => "finished",
    }
}

impl From<Campaign> for CampaignView {
    fn from(c: Campaign) -> Self {
        let waves = c
            .waves
            .iter()
            .enumerate()
            .map(|(i, w)| WaveView {
                until_percent: w.until_percent,
                devices: c.cut(i),
                soak_s: w.soak_s,
                started_at: c.wave_started_at.get(i).map(|t| t.to_rfc3339()),
            })
            .collect();
        CampaignView {
            id: c.id,
            name: c.name.clone(),
            image: hex::encode(&c.image),
            state: state_name(c.state),
            devices: c.devices.len(),
            reached: c.reached(),
            waves,
            failure_threshold_percent: c.failure_threshold_percent,
            events: c
                .events
                .into_iter()
                .map(|e| EventView { at: e.at.to_rfc3339(), by: e.by, what: e.what })
                .collect(),
        }
    }
}

/// Creates a campaign and starts its first wave: devices of started waves get the image at
/// their next boot (`default.json`), the others are told "no update".
#[utoipa::path(post, path = "/campaigns", tag = "firmware", request_body = CampaignInput,
    responses((status = 201, body = CampaignView), crate::http::error::CommonErrors,
        (status = 409, description = "Another campaign is open for this hardware and board", body = crate::http::error::ErrorBody)),
    security(("bearer" = [])))]
async fn create_campaign(
    State(s): State<AppState>,
    auth: Auth,
    ApiJson(input): ApiJson<CampaignInput>,
) -> Result<impl IntoResponse, ApiError> {
    auth.require(Role::Operator)?;
    let (registry, firmware) = (s.registry.clone(), s.firmware.clone());
    let campaign = neosens_runtime::blocking::run(move || -> Result<Campaign, ApiError> {
        let mut devices: Vec<[u8; 16]> = registry
            .matching_device_ids(&input.target.query(), MAX_CAMPAIGN_DEVICES)?
            .into_iter()
            .map(|d| d.to_bytes())
            .collect();
        if let Some(listed) = &input.target.devices {
            let mut chosen = Vec::with_capacity(listed.len());
            for key in listed {
                let id = registry.device_id(key).ok_or_else(|| ApiError::Invalid {
                    field: "target.devices".into(),
                    message: format!("no device {key}"),
                })?;
                chosen.push(id.to_bytes());
            }
            devices.retain(|d| chosen.contains(d));
        }
        Ok(firmware.create_campaign(input, devices, &auth.0.name)?)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(CampaignView::from(campaign))))
}

#[utoipa::path(get, path = "/campaigns", tag = "firmware",
    responses((status = 200, description = "Campaigns, newest first", body = inline(Object)), crate::http::error::CommonErrors),
    security(("bearer" = [])))]
async fn list_campaigns(State(s): State<AppState>, _auth: Auth) -> impl IntoResponse {
    items(s.firmware.campaigns().into_iter().map(CampaignView::from).collect())
}

#[utoipa::path(get, path = "/campaigns/{id}", tag = "firmware", params(("id" = u64, Path, description = "The campaign's number")),
    responses((status = 200, body = CampaignView), crate::http::error::CommonErrors, (status = 404, description = "Not found", body = crate::http::error::ErrorBody)),
    security(("bearer" = [])))]
async fn get_campaign(
    State(s): State<AppState>,
    _auth: Auth,
    Path(id): Path<u64>,
) -> Result<Json<CampaignView>, ApiError> {
    Ok(Json(s.firmware.campaign(id)?.into()))
}

/// An operator's action on a campaign.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ActionInput {
    /// `advance` (start the next wave now), `pause`, `resume` or `cancel`.
    action: CampaignAction,
}

/// Advances, pauses, resumes or cancels a campaign; recorded with who did it.
#[utoipa::path(post, path = "/campaigns/{id}/actions", tag = "firmware", params(("id" = u64, Path, description = "The campaign's number")),
    request_body = ActionInput,
    responses((status = 200, body = CampaignView), crate::http::error::CommonErrors,
        (status = 404, description = "Not found", body = crate::http::error::ErrorBody),
        (status = 409, description = "Not possible in its state", body = crate::http::error::ErrorBody)),
    security(("bearer" = [])))]
async fn act(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<u64>,
    ApiJson(input): ApiJson<ActionInput>,
) -> Result<Json<CampaignView>, ApiError> {
    auth.require(Role::Operator)?;
    let firmware = s.firmware.clone();
    let campaign =
        neosens_runtime::blocking::run(move || firmware.act(id, input.action, &auth.0.name)).await?;
    Ok(Json(campaign.into()))
}
