//! `/api/v1/campaigns`: firmware images rolled out in waves, run by operators; their progress
//! per wave and per device.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use neosens_protocol::hex;
use neosens_protocol::ids::DeviceId;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::items;
use crate::firmware::{CampaignAction, CampaignInput, Firmware, MAX_CAMPAIGN_DEVICES, StageCounts};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{ApiJson, ApiQuery, Auth, SiteAuth};
use crate::model::{Actor, AuditEntry, Campaign, CampaignState, Role, Stage};

/// The routes of this module, each with its OpenAPI operation (paths relative to `/api/v1`).
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_campaign, list_campaigns))
        .routes(routes!(get_campaign))
        .routes(routes!(campaign_devices))
        .routes(routes!(act))
        .routes(routes!(device_firmware))
}

/// A wave as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct WaveView {
    /// Cumulative share of the devices.
    until_percent: u8,
    /// Its own devices by stage, once started.
    progress: Option<StageCounts>,
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
    /// Seconds a device has, from fetching the image, to report the new revision.
    deadline_s: u32,
    /// Devices of the started waves by stage.
    progress: StageCounts,
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

impl CampaignView {
    /// Counts every device of the campaign's started waves: built on the blocking pool.
    fn new(c: &Campaign, firmware: &Firmware) -> Self {
        let counts = firmware.stage_counts(c);
        let mut progress = StageCounts::default();
        for w in &counts {
            progress.pending += w.pending;
            progress.downloading += w.downloading;
            progress.done += w.done;
            progress.failed += w.failed;
        }
        let waves = c
            .waves
            .iter()
            .enumerate()
            .map(|(i, w)| WaveView {
                until_percent: w.until_percent,
                progress: counts.get(i).copied(),
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
            deadline_s: c.deadline_s,
            progress,
            events: c
                .events
                .iter()
                .map(|e| EventView { at: e.at.to_rfc3339(), by: e.by.clone(), what: e.what.clone() })
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
    let campaign = neosens_runtime::blocking::run(move || -> Result<CampaignView, ApiError> {
        let devices = target_devices(&registry, &input.target)?;
        let campaign = firmware.create_campaign(input, devices, &auth.0.name)?;
        let detail = format!("{} devices in {} waves", campaign.devices.len(), campaign.waves.len());
        let entry = crate::audit::event(
            "campaign.create",
            "campaign",
            campaign.id.to_string(),
            campaign.name.clone(),
            detail,
        );
        registry.record_audit(&[AuditEntry { actor: Actor::from(&auth.0), ..entry }])?;
        Ok(CampaignView::new(&campaign, &firmware))
    })
    .await?;
    Ok((StatusCode::CREATED, Json(campaign)))
}

/// The enabled devices a target names: its filter's, those of its list, or those of both.
fn target_devices(
    registry: &crate::registry::Registry,
    target: &crate::firmware::CampaignTarget,
) -> Result<Vec<[u8; 16]>, ApiError> {
    let listed = match &target.devices {
        None => None,
        Some(keys) if keys.len() > MAX_CAMPAIGN_DEVICES => {
            return Err(ApiError::Invalid {
                field: "target.devices".into(),
                message: format!("at most {MAX_CAMPAIGN_DEVICES} devices"),
            });
        }
        Some(keys) => {
            let mut ids = std::collections::HashSet::with_capacity(keys.len());
            for key in keys {
                let id = registry.device_id(key).ok_or_else(|| ApiError::Invalid {
                    field: "target.devices".into(),
                    message: format!("no device {key}"),
                })?;
                ids.insert(id.to_bytes());
            }
            Some(ids)
        }
    };
    let filtered = target.device_type.is_some()
        || target.site.is_some()
        || target.building.is_some()
        || target.room.is_some()
        || target.q.is_some();
    let matching = |max: usize| -> Result<Vec<[u8; 16]>, ApiError> {
        Ok(registry.matching_device_ids(&target.query(), max)?.into_iter().map(|d| d.to_bytes()).collect())
    };
    Ok(match listed {
        None => matching(MAX_CAMPAIGN_DEVICES)?,
        Some(ids) if filtered => matching(usize::MAX)?.into_iter().filter(|d| ids.contains(d)).collect(),
        // A list alone: its enabled devices.
        Some(ids) => {
            let enabled: std::collections::HashSet<[u8; 16]> = matching(usize::MAX)?.into_iter().collect();
            ids.into_iter().filter(|d| enabled.contains(d)).collect()
        }
    })
}

#[utoipa::path(get, path = "/campaigns", tag = "firmware",
    responses((status = 200, description = "Campaigns, newest first", body = inline(Object)), crate::http::error::CommonErrors),
    security(("bearer" = [])))]
async fn list_campaigns(State(s): State<AppState>, _auth: Auth) -> impl IntoResponse {
    let firmware = s.firmware.clone();
    items(
        neosens_runtime::blocking::run(move || {
            firmware.campaigns().iter().map(|c| CampaignView::new(c, &firmware)).collect()
        })
        .await,
    )
}

#[utoipa::path(get, path = "/campaigns/{id}", tag = "firmware", params(("id" = u64, Path, description = "The campaign's number")),
    responses((status = 200, body = CampaignView), crate::http::error::CommonErrors, (status = 404, description = "Not found", body = crate::http::error::ErrorBody)),
    security(("bearer" = [])))]
async fn get_campaign(
    State(s): State<AppState>,
    _auth: Auth,
    Path(id): Path<u64>,
) -> Result<Json<CampaignView>, ApiError> {
    let firmware = s.firmware.clone();
    let view = neosens_runtime::blocking::run(move || {
        firmware.campaign_shared(id).map(|c| CampaignView::new(&c, &firmware))
    })
    .await?;
    Ok(Json(view))
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
    let (registry, firmware) = (s.registry.clone(), s.firmware.clone());
    let view = neosens_runtime::blocking::run(move || -> Result<CampaignView, ApiError> {
        let campaign = firmware.act(id, input.action, &auth.0.name)?;
        let action = format!("campaign.{:?}", input.action).to_lowercase();
        let entry = crate::audit::event(
            &action,
            "campaign",
            id.to_string(),
            campaign.name.clone(),
            format!("now {:?}", campaign.state).to_lowercase(),
        );
        registry.record_audit(&[AuditEntry { actor: Actor::from(&auth.0), ..entry }])?;
        Ok(CampaignView::new(&campaign, &firmware))
    })
    .await?;
    Ok(Json(view))
}

/// A device of a campaign and where it is.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct CampaignDeviceView {
    /// Internal id.
    id: String,
    /// Its uid (MAC), when still registered.
    uid: Option<String>,
    /// Its wave, from 1.
    wave: usize,
    /// `pending`, `downloading`, `done`, `failed_old_revision`, `failed_deadline`,
    /// `failed_outdated` or `failed_refused` (a gateway refused its build).
    stage: &'static str,
    /// Since when (RFC 3339), once it left `pending`.
    since: Option<String>,
    /// When it last fetched the image.
    fetched_at: Option<String>,
    /// The revision it last reported.
    reported: Option<u64>,
}

/// Filters of a campaign's device list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeviceFilter {
    /// Only this stage: `pending`, `downloading`, `done` or `failed` (both kinds).
    stage: Option<String>,
    /// Page size (default 100, at most 1000).
    limit: Option<usize>,
    /// Rows to skip.
    offset: Option<usize>,
}

fn stage_name(stage: Stage) -> &'static str {
    match stage {
        Stage::Pending => "pending",
        Stage::Downloading => "downloading",
        Stage::Done => "done",
        Stage::FailedDeadline => "failed_deadline",
        Stage::FailedOldRevision => "failed_old_revision",
        Stage::FailedOutdated => "failed_outdated",
        Stage::FailedRefused => "failed_refused",
    }
}

/// The devices of a campaign's started waves, in wave order, with their stage.
#[utoipa::path(get, path = "/campaigns/{id}/devices", tag = "firmware", params(("id" = u64, Path, description = "The campaign's number"), DeviceFilter),
    responses((status = 200, description = "`{items, total}`", body = inline(Object)), crate::http::error::CommonErrors,
        (status = 404, description = "Not found", body = crate::http::error::ErrorBody)),
    security(("bearer" = [])))]
async fn campaign_devices(
    State(s): State<AppState>,
    _auth: Auth,
    Path(id): Path<u64>,
    ApiQuery(filter): ApiQuery<DeviceFilter>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let campaign = s.firmware.campaign_shared(id)?;
    let wanted = match filter.stage.as_deref() {
        None => None,
        Some(st @ ("pending" | "downloading" | "done" | "failed")) => Some(st),
        Some(_) => {
            return Err(ApiError::Invalid {
                field: "stage".into(),
                message: "pending, downloading, done or failed".into(),
            });
        }
    };
    let matching: Vec<_> = s
        .firmware
        .device_progress(&campaign)
        .into_iter()
        .filter(|(_, _, p)| {
            let stage = p.map_or(Stage::Pending, |p| p.stage);
            wanted.is_none_or(|w| if w == "failed" { stage.failed() } else { stage_name(stage) == w })
        })
        .collect();
    let total = matching.len();
    let page: Vec<CampaignDeviceView> = matching
        .into_iter()
        .skip(filter.offset.unwrap_or(0))
        .take(filter.limit.unwrap_or(100).min(1000))
        .map(|(device, wave, p)| {
            let id = DeviceId::from_bytes(device);
            CampaignDeviceView {
                id: id.to_string(),
                uid: s.registry.device(&id.to_string()).ok().map(|d| d.uid),
                wave: wave + 1,
                stage: stage_name(p.map_or(Stage::Pending, |p| p.stage)),
                since: p.filter(|p| p.stage != Stage::Pending).map(|p| p.since.to_rfc3339()),
                fetched_at: p.and_then(|p| p.fetched_at).map(|t| t.to_rfc3339()),
                reported: p.and_then(|p| p.reported),
            }
        })
        .collect();
    Ok(Json(serde_json::json!({"items": page, "total": total})))
}

/// A campaign as one of its devices sees it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct DeviceCampaignView {
    /// The campaign.
    campaign: u64,
    /// Its name.
    name: String,
    /// Its state.
    state: &'static str,
    /// The image's SHA-256.
    image: String,
    /// The image's revision.
    revision: Option<u64>,
    /// The device's wave, from 1.
    wave: usize,
    /// Whether that wave started.
    wave_started: bool,
    /// `pending`, `downloading`, `done`, `failed_…`.
    stage: &'static str,
    /// Since when, once it left `pending`.
    since: Option<String>,
    /// The revision it last reported.
    reported: Option<u64>,
}

/// The firmware campaigns that target a device (at most 50, newest first), with its stage in
/// each: its firmware history.
#[utoipa::path(get, path = "/devices/{id}/firmware", tag = "firmware",
    params(("id" = String, Path, description = "Internal UUID or uid")),
    responses((status = 200, description = "`{items}`", body = inline(Object)), crate::http::error::CommonErrors,
        (status = 404, description = "Not found", body = crate::http::error::ErrorBody)),
    security(("bearer" = [])))]
async fn device_firmware(
    State(s): State<AppState>,
    auth: SiteAuth,
    Path(key): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let id = s.registry.visible_device(&key, &auth.0.scope)?;
    let images = s.firmware.images();
    let rows = s
        .firmware
        .device_campaigns(id.to_bytes())
        .into_iter()
        .map(|(c, wave, wave_started, p)| DeviceCampaignView {
            campaign: c.id,
            name: c.name.clone(),
            state: state_name(c.state),
            image: hex::encode(&c.image),
            revision: images.iter().find(|i| i.sha256 == c.image).map(|i| i.revision),
            wave: wave + 1,
            wave_started,
            stage: stage_name(p.map_or(Stage::Pending, |p| p.stage)),
            since: p.filter(|p| p.stage != Stage::Pending).map(|p| p.since.to_rfc3339()),
            reported: p.and_then(|p| p.reported),
        })
        .collect();
    Ok(items(rows))
}
