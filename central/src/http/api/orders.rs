//! `/api/v1/devices/{id}/orders`: send an order (published on the device's command topic, QoS 0,
//! not retained, as the 2016 server did) and read the order history.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use neosens_runtime::mqtt::Qos;

use super::items;
use super::schema::orders::{OrderRecord, OrderRequest};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{ApiJson, SiteAuth};
use crate::model::Role;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this module, each with its OpenAPI operation (paths relative to `/api/v1`).
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(send, history))
}

/// Sends an order. `reinstall` resets the device's credentials, then sends `reboot`. To a
/// LoRaWAN node: `{"order": "downlink", "value": {"f_port": 1-223, "data": "<hex>",
/// "confirmed": bool}}`, queued at the node's gateways until its next uplink; their reports
/// (queued, sent, acknowledged, expired …) follow in the order history, with the order's
/// reference in `dest`.
#[utoipa::path(post, path = "/devices/{id}/orders", tag = "devices",
    params(("id" = String, Path, description = "Internal UUID or uid")),
    request_body = crate::http::api::schema::orders::OrderRequest,
    responses(
        (status = 202, description = "Published; the record of the order", body = crate::http::api::schema::orders::OrderRecord),
        crate::http::error::CommonErrors,
        (status = 404, description = "Not found", body = crate::http::error::ErrorBody),
        (status = 503, description = "The broker link is down: nothing was sent", body = crate::http::error::ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn send(
    State(s): State<AppState>,
    auth: SiteAuth,
    Path(key): Path<String>,
    ApiJson(request): ApiJson<OrderRequest>,
) -> Result<impl IntoResponse, ApiError> {
    auth.require(Role::Operator)?;
    // Acting, not only seeing: an order goes to the device's main room, on whichever site.
    s.registry.changeable_device(&key, &auth.0.scope)?;
    let order = std::sync::Arc::new(s.registry.prepare_order(&key, &request.into(), &auth.0.name)?);
    let record = |outcome: String| {
        let order = std::sync::Arc::clone(&order);
        s.registry.acting(&auth.0, move |r| r.record_order(&order, &outcome))
    };
    if !s.mqtt.stats().connected() {
        record("not sent: broker link down".into()).await?;
        return Err(ApiError::Unavailable("the broker link is down; the order was not sent".into()));
    }
    if order.reinstall {
        let device = order.device.clone();
        s.registry.acting(&auth.0, move |r| r.reset_credentials(&device)).await?;
    }
    let qos = if order.at_least_once { Qos::AtLeastOnce } else { Qos::AtMostOnce };
    if let Err(e) = s.mqtt.publish(&order.record.topic, order.record.payload.clone(), qos, false).await {
        record(format!("not sent: {e}")).await?;
        return Err(ApiError::Unavailable(format!("the order was not sent: {e}")));
    }
    // A node order waits at the gateways for the node's next uplink; they report what follows.
    let outcome = if order.at_least_once { "published: waits for the node's next uplink" } else { "sent" };
    Ok((StatusCode::ACCEPTED, Json(OrderRecord::from(record(outcome.into()).await?))))
}

/// The device's orders, newest first (at most 200).
#[utoipa::path(get, path = "/devices/{id}/orders", tag = "devices",
    params(("id" = String, Path, description = "Internal UUID or uid")),
    responses((status = 200, body = inline(Object)), crate::http::error::CommonErrors,
        (status = 404, description = "Not found", body = crate::http::error::ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn history(
    State(s): State<AppState>,
    auth: SiteAuth,
    Path(key): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    s.registry.visible_device(&key, &auth.0.scope)?;
    Ok(items(
        s.registry.blocking(move |r| r.orders(&key, 200)).await?.into_iter().map(OrderRecord::from).collect(),
    ))
}
