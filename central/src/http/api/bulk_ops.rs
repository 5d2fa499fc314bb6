//! `/api/v1/bulk-operations`: one action on the devices of a filter or a list. A preview says
//! how many devices it reaches and gives a confirmation code for exactly that action on exactly
//! those devices; the operation runs only with that code (so a filter whose devices changed in
//! between, or an action edited after the preview, is caught), and is recorded with each
//! device's outcome.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::items;
use crate::bulk::{MAX_BULK_DEVICES, ORDERS_PER_SECOND, action_name};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{ApiJson, ApiQuery, SiteAuth};
use crate::model::{Actor, BulkAction, BulkOperation, BulkOutcome, Role, Scope};
use crate::registry::{DeviceQuery, Registry};

/// Device uids shown in a preview.
const PREVIEW_SAMPLE: usize = 20;

/// The routes of this module, each with its OpenAPI operation (paths relative to `/api/v1`).
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(preview)).routes(routes!(list, create)).routes(routes!(get_one))
}

/// The devices acted on: the listing's filters, a list of uids or ids, or both (the listed
/// devices the filter matches). At least one must be given.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BulkTarget {
    site: Option<String>,
    building: Option<String>,
    room: Option<String>,
    #[serde(rename = "type")]
    device_type: Option<String>,
    state: Option<super::schema::devices::DeviceState>,
    enabled: Option<bool>,
    q: Option<String>,
    devices: Option<Vec<String>>,
}

/// What is done to each device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ActionKind {
    /// Move to `room` (its only room).
    Move,
    /// Change to `type`.
    SetType,
    /// Enable.
    Enable,
    /// Disable.
    Disable,
    /// New secrets, delivered at each device's next `/device/credentials`.
    ResetCredentials,
    /// Send `order` (with `value`), paced.
    Order,
}

/// A bulk operation as asked.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BulkInput {
    target: BulkTarget,
    action: ActionKind,
    /// For `move`: the room, by id or base topic.
    room: Option<String>,
    /// For `set_type`: the type, by name or id.
    #[serde(rename = "type")]
    device_type: Option<String>,
    /// For `order`: the device order (`frequency`, `reboot`, `status` …).
    order: Option<String>,
    /// For `order`: its value.
    value: Option<Value>,
    /// The `confirm` code of the preview of this very operation: required to run it.
    confirm: Option<String>,
}

/// What a bulk operation would reach.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct PreviewView {
    /// Devices it reaches now.
    devices: usize,
    /// The first of them.
    sample: Vec<String>,
    /// The action, as the operation will be named.
    action: &'static str,
    /// For orders: how long sending takes at the pace (seconds).
    order_seconds: Option<u64>,
    /// Give it back as `confirm` to run this action on these devices.
    confirm: String,
}

/// The confirmation code of an action on a set of devices: any change to either changes it.
fn confirmation(action: &BulkAction, devices: &[[u8; 16]]) -> String {
    let mut sorted = devices.to_vec();
    sorted.sort_unstable();
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(format!("{action:?}").as_bytes());
    for d in &sorted {
        ctx.update(d);
    }
    neosens_protocol::hex::encode(&ctx.finish().as_ref()[..12])
}

/// One device's outcome.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct DeviceOutcomeView {
    /// Its id.
    id: String,
    /// Its uid now (absent once deleted).
    uid: Option<String>,
    /// `pending`, `done` or `failed`.
    outcome: &'static str,
    /// Why it failed.
    message: Option<String>,
}

/// A bulk operation.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct BulkView {
    id: u64,
    /// When it was confirmed (RFC 3339).
    at: String,
    /// Who confirmed it.
    by: String,
    /// `move`, `set_type`, `enable`, `disable`, `reset_credentials`, `order`.
    action: &'static str,
    /// The action's details (`frequency 900`, the room, the type).
    detail: String,
    /// The target as given.
    target: String,
    /// Devices reached.
    devices: usize,
    done: usize,
    failed: usize,
    pending: usize,
    /// When every device had its outcome (RFC 3339).
    finished_at: Option<String>,
    /// Each device's outcome (on `GET /bulk-operations/{id}`; failed ones first, at most 1,000).
    outcomes: Option<Vec<DeviceOutcomeView>>,
}

fn detail(action: &BulkAction) -> String {
    match action {
        BulkAction::Move { room } => format!("to room {}", uuid::Uuid::from_bytes(*room)),
        BulkAction::SetType { device_type } => format!("to type {}", uuid::Uuid::from_bytes(*device_type)),
        BulkAction::Order { order, value } => {
            format!("{order}{}", value.as_deref().map(|v| format!(" {v}")).unwrap_or_default())
        }
        _ => String::new(),
    }
}

fn view(op: &BulkOperation, outcomes: Option<Vec<DeviceOutcomeView>>) -> BulkView {
    let count = |f: fn(&BulkOutcome) -> bool| op.outcomes.iter().filter(|o| f(o)).count();
    BulkView {
        id: op.id,
        at: op.at.to_rfc3339(),
        by: op.by.name(),
        action: action_name(&op.action),
        detail: detail(&op.action),
        target: op.target.clone(),
        devices: op.devices.len(),
        done: count(|o| *o == BulkOutcome::Done),
        failed: count(|o| matches!(o, BulkOutcome::Failed(_))),
        pending: count(|o| *o == BulkOutcome::Pending),
        finished_at: op.finished_at.map(|t| t.to_rfc3339()),
        outcomes,
    }
}

fn outcome_name(o: &BulkOutcome) -> &'static str {
    match o {
        BulkOutcome::Pending => "pending",
        BulkOutcome::Done => "done",
        BulkOutcome::Failed(_) => "failed",
    }
}

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::Invalid { field: field.into(), message: message.into() }
}

/// The devices a target lists by key (at most [`MAX_BULK_DEVICES`]), each one `scope` may act on.
fn listed_devices(
    registry: &Registry,
    keys: &[String],
    scope: &Scope,
) -> Result<std::collections::HashSet<[u8; 16]>, ApiError> {
    if keys.len() > MAX_BULK_DEVICES {
        return Err(invalid("target.devices", format!("at most {MAX_BULK_DEVICES}")));
    }
    keys.iter()
        .map(|k| {
            let id = registry.changeable_device(k, scope).map_err(|e| match e {
                crate::registry::RegistryError::Forbidden { .. } => {
                    invalid("target.devices", format!("{k} is also in a room of another site"))
                }
                _ => invalid("target.devices", format!("no device {k}")),
            })?;
            Ok(id.to_bytes())
        })
        .collect()
}

/// The devices of a target (all states, enabled or not) and a description of it.
/// Only devices `scope` sees are reached, whatever the filter or list says.
fn resolve_target(
    registry: &Registry,
    t: &BulkTarget,
    scope: &Scope,
) -> Result<(Vec<[u8; 16]>, String), ApiError> {
    let building = t
        .building
        .as_deref()
        .map(|b| b.parse().map_err(|_| invalid("target.building", "not a building id")))
        .transpose()?;
    let room = t
        .room
        .as_deref()
        .map(|r| registry.room_id(r).ok_or_else(|| invalid("target.room", format!("no room {r}"))))
        .transpose()?;
    let query = DeviceQuery {
        site: t.site.clone(),
        building,
        room,
        device_type: t.device_type.clone(),
        state: t.state.map(Into::into),
        enabled: t.enabled,
        q: t.q.clone(),
        scope: scope.clone(),
        ..DeviceQuery::default()
    };
    let mut described: Vec<String> = [
        ("site", &t.site),
        ("building", &t.building),
        ("room", &t.room),
        ("type", &t.device_type),
        ("q", &t.q),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k} {v}")))
    .collect();
    if let Some(s) = t.state {
        described.push(format!("state {:?}", crate::registry::DeviceState::from(s)).to_lowercase());
    }
    if let Some(e) = t.enabled {
        described.push(if e { "enabled".into() } else { "disabled".into() });
    }
    let filtered = !described.is_empty();
    let listed = t.devices.as_deref().map(|keys| listed_devices(registry, keys, scope)).transpose()?;
    if let Some(keys) = &t.devices {
        described.push(format!("{} devices listed", keys.len()));
    }
    if !filtered && listed.is_none() {
        return Err(invalid(
            "target",
            "give a filter (site, building, room, type, state, enabled, q) or a list of devices",
        ));
    }
    let matching: Vec<[u8; 16]> = if filtered {
        // Only devices the caller may act on: one also in a room of another site is left out.
        let ids = registry.matching_device_ids(&query, MAX_BULK_DEVICES)?;
        registry.only_changeable(scope, ids).into_iter().map(|d| d.to_bytes()).collect()
    } else {
        Vec::new()
    };
    let devices = match listed {
        Some(ids) if filtered => matching.into_iter().filter(|d| ids.contains(d)).collect(),
        Some(ids) => {
            let mut v: Vec<[u8; 16]> = ids.into_iter().collect();
            v.sort_unstable();
            v
        }
        None => matching,
    };
    Ok((devices, described.join(", ")))
}

fn action_of(registry: &Registry, input: &BulkInput, scope: &Scope) -> Result<BulkAction, ApiError> {
    Ok(match input.action {
        ActionKind::Move => {
            let r = input.room.as_deref().ok_or_else(|| invalid("room", "`move` needs a room"))?;
            let room = registry
                .room_id(r)
                .and_then(|id| registry.room(id).ok())
                .filter(|room| room.site.is_some_and(|site| scope.covers(site)))
                .ok_or_else(|| invalid("room", format!("no room {r}")))?;
            BulkAction::Move { room: room.id.to_bytes() }
        }
        ActionKind::SetType => {
            let t = input.device_type.as_deref().ok_or_else(|| invalid("type", "`set_type` needs a type"))?;
            BulkAction::SetType {
                device_type: registry
                    .device_type_id(t)
                    .ok_or_else(|| invalid("type", format!("no device type {t}")))?
                    .to_bytes(),
            }
        }
        ActionKind::Enable => BulkAction::SetEnabled { enabled: true },
        ActionKind::Disable => BulkAction::SetEnabled { enabled: false },
        ActionKind::ResetCredentials => BulkAction::ResetCredentials,
        ActionKind::Order => {
            let order = input.order.clone().ok_or_else(|| invalid("order", "`order` needs an order"))?;
            if order == crate::registry::REINSTALL {
                return Err(invalid(
                    "order",
                    "in bulk, use the reset_credentials action, then a reboot order",
                ));
            }
            BulkAction::Order { order, value: input.value.as_ref().map(Value::to_string) }
        }
    })
}

/// What an operation would reach, without running it.
#[utoipa::path(post, path = "/bulk-operations/preview", tag = "devices", request_body = BulkInput,
    responses((status = 200, body = PreviewView), crate::http::error::CommonErrors), security(("bearer" = [])))]
async fn preview(
    State(s): State<AppState>,
    auth: SiteAuth,
    ApiJson(input): ApiJson<BulkInput>,
) -> Result<Json<PreviewView>, ApiError> {
    auth.require(Role::Operator)?;
    let scope = auth.0.scope.clone();
    let view = s
        .registry
        .blocking(move |r| -> Result<PreviewView, ApiError> {
            let action = action_of(r, &input, &scope)?;
            let (devices, _) = resolve_target(r, &input.target, &scope)?;
            let sample =
                r.device_uids(&devices[..devices.len().min(PREVIEW_SAMPLE)]).into_iter().flatten().collect();
            let order_seconds = matches!(action, BulkAction::Order { .. })
                .then(|| (devices.len() as u64).div_ceil(u64::from(ORDERS_PER_SECOND)));
            let confirm = confirmation(&action, &devices);
            Ok(PreviewView {
                devices: devices.len(),
                sample,
                action: action_name(&action),
                order_seconds,
                confirm,
            })
        })
        .await?;
    Ok(Json(view))
}

/// Runs an operation confirmed with the number of devices its preview announced. Registry
/// actions are done when it answers (201); orders go out at 20 per second (202), their outcomes
/// following in `GET /bulk-operations/{id}`.
#[utoipa::path(post, path = "/bulk-operations", tag = "devices", request_body = BulkInput,
    responses((status = 201, description = "Done", body = BulkView), (status = 202, description = "Orders queued", body = BulkView),
        crate::http::error::CommonErrors,
        (status = 409, description = "The target reaches another number of devices than confirmed: preview again", body = crate::http::error::ErrorBody)),
    security(("bearer" = [])))]
async fn create(
    State(s): State<AppState>,
    auth: SiteAuth,
    ApiJson(input): ApiJson<BulkInput>,
) -> Result<impl IntoResponse, ApiError> {
    auth.require(Role::Operator)?;
    let bulk = s.bulk.clone();
    let scope = auth.0.scope.clone();
    let op = s
        .registry
        .acting(&auth.0, move |r| -> Result<BulkOperation, ApiError> {
            let action = action_of(r, &input, &scope)?;
            let (devices, target) = resolve_target(r, &input.target, &scope)?;
            let confirmed = input.confirm.as_deref().ok_or_else(|| {
                invalid(
                    "confirm",
                    format!("preview it first and give its `confirm` code ({} devices now)", devices.len()),
                )
            })?;
            if confirmed != confirmation(&action, &devices) {
                return Err(ApiError::Conflict(format!(
                    "the action or its devices changed since the preview ({} devices now): preview again",
                    devices.len()
                )));
            }
            Ok(bulk.start(r, action, target, devices)?)
        })
        .await?;
    let status = if op.finished_at.is_some() { StatusCode::CREATED } else { StatusCode::ACCEPTED };
    Ok((status, Json(view(&op, None))))
}

/// The kept operations (the last 50), newest first.
#[utoipa::path(get, path = "/bulk-operations", tag = "devices",
    responses((status = 200, body = inline(Object)), crate::http::error::CommonErrors), security(("bearer" = [])))]
async fn list(State(s): State<AppState>, auth: SiteAuth) -> impl IntoResponse {
    // Counting the outcomes of 50 operations of up to 100,000 devices: on the blocking pool.
    let bulk = s.bulk.clone();
    let views = neosens_runtime::blocking::run(move || {
        bulk.list(|o| mine(&auth, o).then(|| view(o, None))).into_iter().flatten().collect()
    });
    items(views.await)
}

/// Whether `auth` may see `op`: anyone campus-wide; a site-limited caller, its own operations.
fn mine(auth: &SiteAuth, op: &BulkOperation) -> bool {
    auth.0.scope.is_campus() || op.by == Actor::from(&auth.0)
}

/// Paging of an operation's outcomes.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct OutcomeQuery {
    /// `failed`, `pending` or `done`: only those.
    outcome: Option<String>,
    /// Outcomes listed (default and at most 1,000).
    limit: Option<usize>,
}

/// An operation with each device's outcome (failed first).
#[utoipa::path(get, path = "/bulk-operations/{id}", tag = "devices", params(("id" = u64, Path, description = "Its number"), OutcomeQuery),
    responses((status = 200, body = BulkView), crate::http::error::CommonErrors,
        (status = 404, description = "Not found (or no longer kept)", body = crate::http::error::ErrorBody)),
    security(("bearer" = [])))]
async fn get_one(
    State(s): State<AppState>,
    auth: SiteAuth,
    Path(id): Path<u64>,
    ApiQuery(q): ApiQuery<OutcomeQuery>,
) -> Result<Json<BulkView>, ApiError> {
    let limit = q.limit.unwrap_or(1000).min(1000);
    let (registry, bulk) = (s.registry.clone(), s.bulk.clone());
    let view = neosens_runtime::blocking::run(move || {
        bulk.get(id, |op| {
            if !mine(&auth, op) {
                return None;
            }
            if limit == 0 {
                return Some(view(op, Some(Vec::new())));
            }
            // The rows to show first (failed, then pending, then done), at most `limit`; only
            // their uids are looked up, under the operation's lock for as short as that.
            let mut picked: Vec<usize> = (0..op.devices.len())
                .filter(|&i| q.outcome.as_deref().is_none_or(|want| want == outcome_name(&op.outcomes[i])))
                .collect();
            picked.sort_by_key(|&i| match op.outcomes[i] {
                BulkOutcome::Failed(_) => 0,
                BulkOutcome::Pending => 1,
                BulkOutcome::Done => 2,
            });
            picked.truncate(limit);
            let devices: Vec<[u8; 16]> = picked.iter().map(|&i| op.devices[i]).collect();
            let uids = registry.device_uids(&devices);
            let rows: Vec<DeviceOutcomeView> = picked
                .iter()
                .zip(uids)
                .map(|(&i, uid)| DeviceOutcomeView {
                    id: uuid::Uuid::from_bytes(op.devices[i]).to_string(),
                    uid,
                    outcome: outcome_name(&op.outcomes[i]),
                    message: match &op.outcomes[i] {
                        BulkOutcome::Failed(m) => Some(m.clone()),
                        _ => None,
                    },
                })
                .collect();
            Some(view(op, Some(rows)))
        })
        .flatten()
    })
    .await
    .ok_or_else(|| ApiError::NotFound(format!("bulk operation {id}")))?;
    Ok(Json(view))
}
