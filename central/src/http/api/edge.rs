//! `/api/v1/edge/*`: what gateways call — enrolment (with a one-time token), the sync long-poll
//! (postcard bodies), reports of credentials delivered offline, and their health figures. Every
//! authenticated call counts as a contact in the gateway's health.

use std::time::Duration;

use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use neosens_protocol::edge::{
    Deliveries, DeliveriesAnswer, EnrolmentGrant, EnrolmentRequest, HealthReport, JoinReports,
    MAX_DOWNLINK_OUTCOMES, MAX_FORWARDERS, MAX_JOIN_REPORTS, MAX_RELAYED_LOGS, MAX_UNCLAIMED_REPORTED,
    RelayedLogs, RelayedLogsAnswer,
};
use neosens_protocol::ids::{DeviceId, GatewayId};
use serde::Deserialize;

use super::schema::gateways::EnrolmentToken;
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{ApiJson, ApiQuery, Auth};
use crate::model::{Role, Timestamp};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Longest long-poll a gateway may ask for.
pub(super) const MAX_WAIT_S: u64 = 60;

/// The routes of this module, each with its OpenAPI operation (paths relative to `/api/v1`).
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start_enrolment))
        .routes(routes!(enroll))
        .routes(routes!(sync))
        .routes(routes!(deliveries))
        .routes(routes!(health))
        .routes(routes!(logs))
        .routes(routes!(joins))
}

/// An authenticated gateway (`Authorization: Bearer nsg_…`).
pub(crate) struct GatewayAuth(pub(crate) GatewayId);

impl FromRequestParts<AppState> for GatewayAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        let token = header.and_then(|h| h.split_once(' ')).filter(|(s, _)| s.eq_ignore_ascii_case("bearer"));
        let id = token
            .and_then(|(_, t)| state.registry.authenticate_gateway(t.trim()))
            .ok_or(ApiError::Unauthorized)?;
        Ok(GatewayAuth(id))
    }
}

/// Issues a one-time enrolment token for a gateway (valid 24 h; replaces a pending one).
#[utoipa::path(post, path = "/gateways/{id}/enrolment", tag = "gateways",
    params(("id" = String, Path, description = "Gateway id")),
    responses((status = 201, body = EnrolmentToken), crate::http::error::CommonErrors,
        (status = 404, description = "Not found", body = crate::http::error::ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn start_enrolment(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    auth.require(Role::Admin)?;
    let id: GatewayId = id.parse().map_err(|_| ApiError::NotFound(format!("gateway {id} not found")))?;
    Ok((
        StatusCode::CREATED,
        Json(EnrolmentToken::from(s.registry.acting(&auth.0, move |r| r.start_enrolment(id)).await?)),
    ))
}

/// Exchanges a one-time token for the gateway's credentials (shown once).
#[utoipa::path(post, path = "/edge/enroll", tag = "edge", request_body = EnrolmentRequest,
    responses((status = 200, body = EnrolmentGrant),
        (status = 401, description = "Unknown, used or expired token", body = crate::http::error::ErrorBody)))]
pub(super) async fn enroll(
    State(s): State<AppState>,
    ApiJson(input): ApiJson<EnrolmentRequest>,
) -> Result<impl IntoResponse, ApiError> {
    match s.registry.blocking(move |r| r.enroll_gateway(input.token.trim())).await? {
        Some(grant) => {
            if let Ok(id) = grant.gateway_id.parse() {
                s.gateways.contact(id, None, Timestamp::now().millis());
            }
            Ok(Json(grant))
        }
        None => Err(ApiError::UnauthorizedBecause(
            "enrolment token unknown, already used or expired: ask an admin for a new one".into(),
        )),
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct SyncQuery {
    /// The revision the gateway has applied (0: none, send a snapshot).
    since: Option<u64>,
    /// Seconds to wait for a change before answering 204 (0 to 60).
    wait: Option<u64>,
    /// The next page of a snapshot: the last device id received.
    #[param(value_type = Option<String>)]
    after: Option<DeviceId>,
    /// `1`: the agent answers OTAA joins and decodes payload layouts, and reads the `SetOtaa` and
    /// `SetPayloadLayout` changes (older agents do not ask, and never receive them). `2`: also
    /// `SetGatewaySettings` and `SetBrokerAccount` (agents that run a local broker). `3`: also
    /// `SetGatewayConfig` (agents that take their settings from central).
    ext: Option<u8>,
}

/// The gateway's share of the registry since `since`: a postcard body (`application/x-postcard`,
/// version first), or 204 when nothing changed within `wait` seconds.
#[utoipa::path(get, path = "/edge/sync", tag = "edge", params(SyncQuery),
    responses((status = 200, description = "A sync batch (postcard)", content_type = "application/x-postcard"),
        (status = 204, description = "Nothing new"), crate::http::error::CommonErrors),
    security(("bearer" = [])))]
pub(super) async fn sync(
    State(s): State<AppState>,
    GatewayAuth(id): GatewayAuth,
    ApiQuery(q): ApiQuery<SyncQuery>,
) -> Result<Response, ApiError> {
    let since = q.since.unwrap_or(0);
    let wait = q.wait.unwrap_or(0);
    if wait > MAX_WAIT_S {
        return Err(ApiError::Invalid {
            field: "wait".into(),
            message: format!("0 to {MAX_WAIT_S} seconds"),
        });
    }
    s.gateways.contact(id, Some(since), Timestamp::now().millis());
    let mut revisions = s.registry.watch_revision();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
    loop {
        revisions.borrow_and_update();
        let registry = std::sync::Arc::clone(&s.registry);
        let after = q.after;
        let ext = q.ext.unwrap_or(0).min(3);
        // Built and encoded on the blocking pool: a snapshot page is thousands of device
        // records, each with its secret unsealed and hashed for the gateway.
        let built = neosens_runtime::blocking::run(move || {
            let started = std::time::Instant::now();
            let Some(batch) = registry.edge_sync(id, since, after, ext)? else { return Ok(None) };
            let build = started.elapsed();
            let body = batch
                .encode()
                .map_err(|e| ApiError::Internal(anyhow::anyhow!("encoding a sync batch: {e:?}")))?;
            Ok::<_, ApiError>(Some((batch, body, build, started.elapsed() - build)))
        })
        .await?;
        if let Some((batch, body, build, encode)) = built {
            tracing::debug!(gateway = %id, since, revision = batch.revision, kind = ?batch.kind,
                changes = batch.changes.len(), bytes = body.len(), build_ms = build.as_secs_f64() * 1e3,
                encode_ms = encode.as_secs_f64() * 1e3, "sync batch");
            return Ok(([(header::CONTENT_TYPE, neosens_protocol::sync::CONTENT_TYPE)], body).into_response());
        }
        match tokio::time::timeout_at(deadline, revisions.changed()).await {
            Ok(Ok(())) => continue,
            _ => return Ok(StatusCode::NO_CONTENT.into_response()),
        }
    }
}

/// Marks them delivered: central will not hand those passwords out again.
#[utoipa::path(post, path = "/edge/deliveries", tag = "edge", request_body = Deliveries,
    responses((status = 200, body = DeliveriesAnswer), crate::http::error::CommonErrors),
    security(("bearer" = [])))]
pub(super) async fn deliveries(
    State(s): State<AppState>,
    GatewayAuth(id): GatewayAuth,
    ApiJson(input): ApiJson<Deliveries>,
) -> Result<impl IntoResponse, ApiError> {
    s.gateways.contact(id, None, Timestamp::now().millis());
    let reported = input.devices.len();
    let marked = s.registry.blocking(move |r| r.edge_deliveries(id, &input.devices)).await?;
    Ok(Json(DeliveriesAnswer { reported: reported as u64, newly_delivered: marked as u64 }))
}

/// Device log lines the gateway accepted while central was out of reach (at most 100 per
/// call, each a form-encoded `LogRecord` of an enabled device of its scope).
#[utoipa::path(post, path = "/edge/logs", tag = "edge",
    request_body = RelayedLogs,
    responses((status = 200, body = RelayedLogsAnswer),
        crate::http::error::CommonErrors),
    security(("bearer" = [])))]
pub(super) async fn logs(
    State(s): State<AppState>,
    GatewayAuth(id): GatewayAuth,
    ApiJson(input): ApiJson<RelayedLogs>,
) -> Result<impl IntoResponse, ApiError> {
    s.gateways.contact(id, None, Timestamp::now().millis());
    let max = MAX_RELAYED_LOGS;
    if input.logs.len() > max {
        return Err(ApiError::Invalid {
            field: "logs".into(),
            message: format!("at most {max} lines per call"),
        });
    }
    // One store commit per line: on the blocking pool, not on an async worker.
    let registry = std::sync::Arc::clone(&s.registry);
    let (stored, refused) =
        neosens_runtime::blocking::run(move || registry.edge_logs(id, &input.logs)).await?;
    Ok(Json(RelayedLogsAnswer { stored: stored as u64, refused: refused as u64 }))
}

/// Sessions of OTAA joins the gateway answered, once the node used them (at most 64 per call):
/// each becomes its node's session, unless central holds a newer join, and reaches the other
/// gateways of the scope with their next sync. Keys are sealed with the gateway's key; a node
/// outside its scope or without OTAA credentials is skipped.
#[utoipa::path(post, path = "/edge/joins", tag = "edge", request_body = JoinReports,
    responses((status = 204, description = "Recorded"), crate::http::error::CommonErrors),
    security(("bearer" = [])))]
pub(super) async fn joins(
    State(s): State<AppState>,
    GatewayAuth(id): GatewayAuth,
    ApiJson(input): ApiJson<JoinReports>,
) -> Result<StatusCode, ApiError> {
    s.gateways.contact(id, None, Timestamp::now().millis());
    if input.joins.len() > MAX_JOIN_REPORTS {
        let message = format!("{} joins: at most {MAX_JOIN_REPORTS}", input.joins.len());
        return Err(ApiError::Invalid { field: "joins".into(), message });
    }
    let now = Timestamp::now().millis();
    s.registry.blocking(move |r| r.record_joins(id, &input.joins, now)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The largest report of a gateway's settings kept (`config` in its health report).
const MAX_CONFIG_REPORT_BYTES: usize = 8 * 1024;

/// When an oversized settings report was last logged (milliseconds), and how many were dropped
/// since without a line of their own.
static OVERSIZED_WARNED_MS: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(i64::MIN / 2);
static OVERSIZED_SILENCED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The gateway's own figures (outbox depth and age, version, the packet forwarders it hears),
/// shown per gateway in the API and `/metrics`; the unregistered MACs that asked it while
/// central was out of reach (at most 64), into the adoption inbox; and what became of node
/// orders (at most 256), into the nodes' order histories. At most `MAX_FORWARDERS` (32) forwarders, each
/// with an EUI of 16 lowercase hex digits: anything else is refused whole (400), since the
/// figures feed metric labels and alerts.
#[utoipa::path(post, path = "/edge/health", tag = "edge", request_body = HealthReport,
    responses((status = 204, description = "Recorded"), crate::http::error::CommonErrors),
    security(("bearer" = [])))]
pub(super) async fn health(
    State(s): State<AppState>,
    GatewayAuth(id): GatewayAuth,
    ApiJson(mut report): ApiJson<HealthReport>,
) -> Result<StatusCode, ApiError> {
    let invalid = |message: String| ApiError::Invalid { field: "forwarders".into(), message };
    if report.forwarders.len() > MAX_FORWARDERS {
        return Err(invalid(format!("{} forwarders: at most {MAX_FORWARDERS}", report.forwarders.len())));
    }
    if let Some(f) = report.forwarders.iter().find(|f| !f.eui_is_valid()) {
        return Err(invalid(format!("gateway EUI {:?}: 16 lowercase hex digits", f.eui)));
    }
    let mut euis: Vec<&str> = report.forwarders.iter().map(|f| f.eui.as_str()).collect();
    euis.sort_unstable();
    if euis.windows(2).any(|w| w[0] == w[1]) {
        return Err(invalid("a gateway EUI is listed twice".into()));
    }
    // The settings it runs with: kept per gateway, so bounded (a whole report is a few hundred
    // bytes). One too large is dropped, not the report: the outbox and forwarder figures still
    // matter to the operator, and a newer agent may report more than this central knows. The
    // last one that fitted stays shown.
    let config_bytes =
        report.config.as_ref().map_or(0, |c| serde_json::to_vec(c).map_or(usize::MAX, |v| v.len()));
    if config_bytes > MAX_CONFIG_REPORT_BYTES {
        use std::sync::atomic::Ordering::Relaxed;
        let now = Timestamp::now().millis();
        // Once per 10 minutes at most (such a gateway sends one every 30 s), with how many
        // were dropped meanwhile, from any gateway.
        let last = OVERSIZED_WARNED_MS.load(Relaxed);
        if now.saturating_sub(last) >= 600_000
            && OVERSIZED_WARNED_MS.compare_exchange(last, now, Relaxed, Relaxed).is_ok()
        {
            let also_dropped = OVERSIZED_SILENCED.swap(0, Relaxed);
            tracing::warn!(gateway = %id, bytes = config_bytes, max = MAX_CONFIG_REPORT_BYTES, also_dropped,
                "settings report too large: dropped, the rest of the health report kept");
        } else {
            OVERSIZED_SILENCED.fetch_add(1, Relaxed);
        }
        report.config = s.gateways.get(id).and_then(|c| c.report).and_then(|r| r.config);
    }
    if report.unclaimed.len() > MAX_UNCLAIMED_REPORTED {
        let message = format!("{} MACs: at most {MAX_UNCLAIMED_REPORTED}", report.unclaimed.len());
        return Err(ApiError::Invalid { field: "unclaimed".into(), message });
    }
    let mut unclaimed = Vec::with_capacity(report.unclaimed.len());
    for u in std::mem::take(&mut report.unclaimed) {
        let mac: neosens_protocol::ids::Mac = u.mac.parse().map_err(|_| ApiError::Invalid {
            field: "unclaimed".into(),
            message: format!("{:?} is not a MAC", u.mac),
        })?;
        unclaimed.push((mac, u));
    }
    if report.downlinks.len() > MAX_DOWNLINK_OUTCOMES {
        let message = format!("{} outcomes: at most {MAX_DOWNLINK_OUTCOMES}", report.downlinks.len());
        return Err(ApiError::Invalid { field: "downlinks".into(), message });
    }
    if let Some(o) = report.downlinks.iter().find(|o| !is_eui(&o.dev_eui)) {
        let message = format!("DevEUI {:?}: 16 lowercase hex digits", o.dev_eui);
        return Err(ApiError::Invalid { field: "downlinks".into(), message });
    }
    let now = Timestamp::now().millis();
    let downlinks = std::mem::take(&mut report.downlinks);
    if !downlinks.is_empty() {
        // What became of node orders: into the nodes' order histories.
        s.registry.blocking(move |r| r.record_downlink_outcomes(id, &downlinks, now)).await?;
    }
    // What the gateway heard while central was out of reach: into the adoption inbox.
    for (mac, u) in unclaimed {
        let at =
            now.saturating_sub(i64::try_from(u.last_seen_age_s.saturating_mul(1000)).unwrap_or(i64::MAX));
        let asker = crate::unclaimed::Asker {
            source: u.source.chars().take(64).collect(),
            gateway: Some(id),
            user_agent: u.user_agent,
        };
        s.unclaimed.merge(mac, asker, at, u.count.max(1));
    }
    // Its local broker: its devices are given it while it runs (checked as an admin's setting).
    s.registry.site_report(id, report.local_broker.as_ref(), now);
    s.gateways.report(id, report, now);
    Ok(StatusCode::NO_CONTENT)
}

/// 16 lowercase hex digits.
fn is_eui(s: &str) -> bool {
    s.len() == 16 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}
