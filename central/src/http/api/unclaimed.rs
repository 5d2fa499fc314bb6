//! `/api/v1/unclaimed`: the adoption inbox — unregistered MACs that asked for their
//! credentials — and adoption in one step (room, type): the board's next retry gets its
//! credentials.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use neosens_protocol::ids::{Mac, RoomId};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::items;
use super::schema::devices::{DeviceInput, DeviceView};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{ApiJson, Auth};
use crate::model::{Role, Timestamp};

/// The routes of this module, each with its OpenAPI operation (paths relative to `/api/v1`).
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list)).routes(routes!(dismiss)).routes(routes!(adopt))
}

/// What an operator gives to adopt a board: where it is and what it is.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AdoptInput {
    /// Device type, by name or id.
    #[serde(rename = "type")]
    device_type: String,
    /// Room ids, main room first (at least one).
    #[schema(value_type = Vec<String>)]
    rooms: Vec<RoomId>,
    /// Free text.
    #[serde(default)]
    description: String,
    /// Configuration: the legacy array of zones (default `[]`).
    config: Option<serde_json::Value>,
    /// Outdated threshold overriding the type's, in seconds.
    outdated_after_s: Option<u32>,
}

fn mac_of(s: &str) -> Result<Mac, ApiError> {
    s.parse().map_err(|_| ApiError::NotFound(format!("{s} is not a MAC")))
}

#[utoipa::path(get, path = "/unclaimed", tag = "devices",
    responses((status = 200, description = "Unregistered MACs that asked for their credentials in the last 24 h, most recent first (at most 1000)", body = inline(Object)), crate::http::error::CommonErrors),
    security(("bearer" = [])))]
async fn list(State(s): State<AppState>, _auth: Auth) -> impl IntoResponse {
    items(s.unclaimed.list(Timestamp::now().millis()))
}

#[utoipa::path(delete, path = "/unclaimed/{mac}", tag = "devices", params(("mac" = String, Path, description = "The MAC")),
    responses((status = 204, description = "Dismissed (it comes back if it asks again)"), crate::http::error::CommonErrors, (status = 404, description = "Not in the inbox", body = crate::http::error::ErrorBody)),
    security(("bearer" = [])))]
async fn dismiss(
    State(s): State<AppState>,
    auth: Auth,
    Path(mac): Path<String>,
) -> Result<StatusCode, ApiError> {
    auth.require(Role::Operator)?;
    let mac = mac_of(&mac)?;
    if !s.unclaimed.remove(mac) {
        return Err(ApiError::NotFound(format!("{mac} is not in the inbox")));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Registers the board under its MAC (a new secret, delivered at its next retry) and takes it
/// out of the inbox; the source it asked from is no longer throttled, so that retry is answered.
#[utoipa::path(post, path = "/unclaimed/{mac}/adopt", tag = "devices", params(("mac" = String, Path, description = "The MAC")),
    request_body = AdoptInput,
    responses((status = 201, description = "Registered; its next retry gets its credentials", body = crate::http::api::schema::devices::DeviceView), crate::http::error::CommonErrors,
        (status = 404, description = "Not in the inbox", body = crate::http::error::ErrorBody),
        (status = 409, description = "Registered meanwhile, or a reference in the way", body = crate::http::error::ErrorBody),
        (status = 422, description = "Configuration breaks its schema, the legacy shape or the 1023-byte limit", body = crate::http::error::ErrorBody)),
    security(("bearer" = [])))]
async fn adopt(
    State(s): State<AppState>,
    auth: Auth,
    Path(mac): Path<String>,
    ApiJson(input): ApiJson<AdoptInput>,
) -> Result<impl IntoResponse, ApiError> {
    auth.require(Role::Operator)?;
    let mac = mac_of(&mac)?;
    let Some(asked) = s.unclaimed.get(mac) else {
        return Err(ApiError::NotFound(format!("{mac} is not in the inbox")));
    };
    let device = DeviceInput {
        uid: mac.to_string(),
        uid_kind: None,
        device_type: input.device_type,
        description: input.description,
        rooms: input.rooms,
        enabled: Some(true),
        config: input.config,
        mqtt: None,
        login: None,
        outdated_after_s: input.outdated_after_s,
        lorawan: None,
        otaa: None,
    };
    let device = s.registry.acting(&auth.0, move |r| r.create_device(device.into())).await?;
    s.unclaimed.remove(mac);
    s.scans.succeeded(&asked.source);
    tracing::info!(device = %device.uid, by = %auth.0.name, source = %asked.source, "unclaimed device adopted");
    Ok((StatusCode::CREATED, Json(DeviceView::from(device))))
}
