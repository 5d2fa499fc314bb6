//! `/api/v1/audit`: the audit trail, newest first, filtered and paged.

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{ApiQuery, Auth};
use crate::model::{Actor, AuditEntry, Role, Timestamp};

/// Entries per page by default, and at most.
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 500;

/// The routes of this module, each with its OpenAPI operation (paths relative to `/api/v1`).
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

/// Filters of the trail; all optional, all must match.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditQuery {
    /// Who: part of the actor's name (user, token, gateway id, device MAC), any case.
    actor: Option<String>,
    /// Who, by kind: `user`, `token`, `gateway`, `device`, `system`.
    actor_kind: Option<String>,
    /// What: an action (`device.update`) or its start (`device.`, `session.`).
    action: Option<String>,
    /// On what: the target's id, or part of its name (a MAC, a room), any case.
    target: Option<String>,
    /// On what kind: `device`, `room`, `user`, `campaign` …
    target_kind: Option<String>,
    /// Not before this time (RFC 3339).
    since: Option<String>,
    /// Before this time (RFC 3339).
    until: Option<String>,
    /// Entries older than this id (the `next_before` of the previous page).
    before: Option<u64>,
    /// Entries per page (default 50, at most 500).
    limit: Option<usize>,
}

/// Who did it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct ActorView {
    /// `user`, `token`, `gateway`, `device` or `system`.
    kind: &'static str,
    /// The user name, token name, gateway id, device uid or component.
    name: String,
    /// The user's or token's id, when known.
    id: Option<String>,
}

/// One field that changed.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct FieldChangeView {
    /// The field.
    field: String,
    /// Its value before (`null` on creation; secrets show as `"(secret)"`).
    #[schema(value_type = Object)]
    before: Value,
    /// Its value after (`null` on deletion).
    #[schema(value_type = Object)]
    after: Value,
}

/// One entry.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct AuditView {
    /// Sequence number (newer entries have larger ones).
    id: u64,
    /// When (RFC 3339).
    at: String,
    /// Who.
    actor: ActorView,
    /// What: `device.update`, `order.send`, `session.sign_in` …
    action: String,
    /// The kind of thing acted on (empty when none).
    target_kind: String,
    /// Its id.
    target_id: String,
    /// Its name as it was then.
    target: String,
    /// The fields that changed.
    changes: Vec<FieldChangeView>,
    /// Anything else (an order's outcome, the client of a sign-in).
    detail: String,
}

/// A page of the trail.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct AuditPageView {
    /// Entries, newest first.
    items: Vec<AuditView>,
    /// Pass as `before` for the next (older) page; absent at the end of the trail.
    next_before: Option<u64>,
    /// Entries held in all.
    total: u64,
}

impl From<AuditEntry> for AuditView {
    fn from(e: AuditEntry) -> Self {
        let id = match &e.actor {
            Actor::User { id, .. } => id.map(|b| uuid::Uuid::from_bytes(b).to_string()),
            Actor::Token { id, .. } => Some(uuid::Uuid::from_bytes(*id).to_string()),
            _ => None,
        };
        let parse = |t: &str| serde_json::from_str(t).unwrap_or_else(|_| Value::String(t.to_owned()));
        AuditView {
            id: e.id,
            at: e.at.to_rfc3339(),
            actor: ActorView { kind: e.actor.kind(), name: e.actor.name(), id },
            action: e.action,
            target_kind: e.target_kind,
            target_id: e.target_id,
            target: e.target,
            changes: e
                .changes
                .iter()
                .map(|c| FieldChangeView {
                    field: c.field.clone(),
                    before: parse(&c.before),
                    after: parse(&c.after),
                })
                .collect(),
            detail: e.detail,
        }
    }
}

/// The query as a predicate on entries.
struct Filter {
    actor: Option<String>,
    actor_kind: Option<String>,
    action: Option<String>,
    target: Option<String>,
    target_kind: Option<String>,
    since: Option<Timestamp>,
    until: Option<Timestamp>,
}

fn time(field: &str, value: Option<&str>) -> Result<Option<Timestamp>, ApiError> {
    value
        .map(|v| {
            Timestamp::parse_rfc3339(v).ok_or_else(|| {
                ApiError::BadRequest(format!("{field}: {v:?} is not an RFC 3339 time (2026-12-05T14:00:00Z)"))
            })
        })
        .transpose()
}

impl Filter {
    fn new(q: &AuditQuery) -> Result<Self, ApiError> {
        let lower =
            |v: &Option<String>| v.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_lowercase);
        Ok(Filter {
            actor: lower(&q.actor),
            actor_kind: lower(&q.actor_kind),
            action: lower(&q.action),
            target: lower(&q.target),
            target_kind: lower(&q.target_kind),
            since: time("since", q.since.as_deref())?,
            until: time("until", q.until.as_deref())?,
        })
    }

    fn keeps(&self, e: &AuditEntry) -> bool {
        let has = |hay: &str, needle: &str| hay.to_lowercase().contains(needle);
        self.actor.as_deref().is_none_or(|a| has(&e.actor.name(), a))
            && self.actor_kind.as_deref().is_none_or(|k| e.actor.kind() == k)
            && self
                .action
                .as_deref()
                .is_none_or(|a| e.action == a || (a.ends_with('.') && e.action.starts_with(a)))
            && self.target.as_deref().is_none_or(|t| e.target_id == t || has(&e.target, t))
            && self.target_kind.as_deref().is_none_or(|k| e.target_kind == k)
            && self.since.is_none_or(|s| e.at >= s)
            && self.until.is_none_or(|u| e.at < u)
    }
}

/// The audit trail, newest first. A filter that matches little answers after looking at
/// 200,000 entries with a `next_before` to go on from, so no request scans the whole trail.
#[utoipa::path(get, path = "/audit", tag = "access", params(AuditQuery),
    responses((status = 200, description = "A page of entries", body = AuditPageView), crate::http::error::CommonErrors),
    security(("bearer" = [])))]
async fn list(
    State(s): State<AppState>,
    auth: Auth,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<impl IntoResponse, ApiError> {
    auth.require(Role::Operator)?;
    let filter = Filter::new(&query)?;
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let page = s.registry.blocking(move |r| r.audit_page(query.before, limit, &|e| filter.keeps(e))).await?;
    Ok(Json(AuditPageView {
        items: page.entries.into_iter().map(AuditView::from).collect(),
        next_before: page.next_before,
        total: page.total,
    }))
}
