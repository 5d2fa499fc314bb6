//! `/api/v1/devices/import.csv|json` and `/api/v1/devices/export.csv|json`: devices in bulk.
//! An import is checked row by row (`dry_run=true` says what would change and writes nothing);
//! the good rows land in one transaction and each bad one is reported with its field. An export
//! takes the device listing's filters and imports back as it is.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::bulk_format::{self, Parsed};
use super::schema::devices::DeviceFilter;
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{ApiQuery, SiteAuth};
use crate::model::Role;
use crate::registry::{BulkReport, DeviceRow, Registry, RowOutcome};

/// Largest import file (100,000 devices of a few hundred bytes each fit well below it).
const MAX_IMPORT_BYTES: usize = 64 << 20;

/// Refused rows listed in an answer at most (`failed` counts them all).
const MAX_LISTED_ERRORS: usize = 1_000;

/// The routes of this module, each with its OpenAPI operation (paths relative to `/api/v1`).
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(import_csv))
        .routes(routes!(import_json))
        .routes(routes!(export_csv))
        .routes(routes!(export_json))
}

/// Options of an import.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ImportParams {
    /// Check every row and say what would change, writing nothing.
    #[serde(default)]
    dry_run: bool,
}

/// A refused row.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct RowError {
    /// Row number in the file (1 = the first data row, after the header).
    row: usize,
    /// Its uid, as written.
    uid: String,
    /// The field at fault (`uid`, `type`, `rooms[0]`, `config`, `enabled` …).
    field: String,
    /// What is wrong.
    message: String,
}

/// A row that creates or changes a device.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct RowChange {
    /// Row number in the file.
    row: usize,
    /// Its uid.
    uid: String,
    /// `create` or `update`.
    action: &'static str,
    /// For updates, the fields that change.
    fields: Vec<&'static str>,
}

/// What an import did (or, in a dry run, would do).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ImportView {
    /// Nothing was written.
    dry_run: bool,
    /// Data rows read.
    rows: usize,
    /// Devices created.
    created: usize,
    /// Devices changed.
    updated: usize,
    /// Rows that change nothing.
    unchanged: usize,
    /// Rows refused.
    failed: usize,
    /// The refused rows, the first 1,000.
    errors: Vec<RowError>,
    /// The first 1,000 creations and updates.
    changes: Vec<RowChange>,
}

fn view(report: BulkReport, numbers: &[usize], problems: Vec<bulk_format::RowProblem>) -> ImportView {
    let mut errors: Vec<RowError> = problems
        .into_iter()
        .map(|p| RowError { row: p.row, uid: p.uid, field: p.field, message: p.message })
        .collect();
    let mut changes = Vec::new();
    for d in report.details {
        let row = numbers.get(d.row - 1).copied().unwrap_or(d.row);
        match d.outcome {
            RowOutcome::Error { field, message } => errors.push(RowError { row, uid: d.uid, field, message }),
            RowOutcome::Create => {
                changes.push(RowChange { row, uid: d.uid, action: "create", fields: Vec::new() })
            }
            RowOutcome::Update(fields) => {
                changes.push(RowChange { row, uid: d.uid, action: "update", fields })
            }
            RowOutcome::Unchanged => {}
        }
    }
    errors.sort_by_key(|e| e.row);
    let failed = errors.len();
    errors.truncate(MAX_LISTED_ERRORS);
    ImportView {
        dry_run: report.dry_run,
        rows: report.rows + failed - report.failed,
        created: report.created,
        updated: report.updated,
        unchanged: report.unchanged,
        failed,
        errors,
        changes,
    }
}

fn import(registry: &Registry, parsed: Parsed, dry_run: bool) -> Result<ImportView, ApiError> {
    let (rows, problems) = parsed;
    let (numbers, rows): (Vec<usize>, Vec<DeviceRow>) = rows.into_iter().unzip();
    let report = registry.import_devices(&rows, dry_run)?;
    tracing::info!(
        dry_run,
        created = report.created,
        updated = report.updated,
        failed = report.failed + problems.len(),
        "devices imported"
    );
    Ok(view(report, &numbers, problems))
}

/// Reads, checks and imports a file as `auth` (an operator); the parsing and the import on the
/// blocking pool.
async fn import_file(
    s: AppState,
    auth: SiteAuth,
    dry_run: bool,
    body: Body,
    read: fn(&str) -> Result<Parsed, bulk_format::FileProblem>,
) -> Result<Json<ImportView>, ApiError> {
    auth.require(Role::Operator)?;
    let bytes = read_body(body).await?;
    let view = s
        .registry
        .acting(&auth.0, move |r| {
            let parsed = read(text_of(&bytes)?).map_err(|e| ApiError::BadRequest(e.0))?;
            import(r, parsed, dry_run)
        })
        .await?;
    Ok(Json(view))
}

async fn read_body(body: Body) -> Result<axum::body::Bytes, ApiError> {
    axum::body::to_bytes(body, MAX_IMPORT_BYTES).await.map_err(|_| {
        ApiError::TooLarge(format!("an import file is at most {} MiB: split it", MAX_IMPORT_BYTES >> 20))
    })
}

/// The file as text (checked on the blocking pool with the rest of the import: up to 64 MiB).
fn text_of(bytes: &[u8]) -> Result<&str, ApiError> {
    std::str::from_utf8(bytes).map_err(|e| ApiError::BadRequest(format!("the file is not UTF-8 text: {e}")))
}

/// Imports devices from CSV: a header row naming the columns (`uid` required; `type`, `rooms` as
/// base topics or ids separated by `;`, `description`, `enabled`, `config` as JSON,
/// `outdated_after_s`), one device per row, created or updated by uid. An empty cell leaves the
/// field as it is. At most 100,000 rows and 64 MiB.
#[utoipa::path(post, path = "/devices/import.csv", tag = "devices", params(ImportParams),
    request_body(content = String, content_type = "text/csv"),
    responses((status = 200, description = "What was (or would be) imported, every refused row with its field", body = ImportView),
        crate::http::error::CommonErrors,
        (status = 413, description = "Larger than 64 MiB", body = crate::http::error::ErrorBody)),
    security(("bearer" = [])))]
async fn import_csv(
    State(s): State<AppState>,
    auth: SiteAuth,
    ApiQuery(params): ApiQuery<ImportParams>,
    body: Body,
) -> Result<Json<ImportView>, ApiError> {
    import_file(s, auth, params.dry_run, body, bulk_format::read_csv).await
}

/// Imports devices from JSON: an array of objects with the CSV's columns as keys (`rooms` an
/// array; `outdated_after_s` `null` for the type's).
#[utoipa::path(post, path = "/devices/import.json", tag = "devices", params(ImportParams),
    request_body(content = Object, content_type = "application/json"),
    responses((status = 200, description = "What was (or would be) imported", body = ImportView),
        crate::http::error::CommonErrors,
        (status = 413, description = "Larger than 64 MiB", body = crate::http::error::ErrorBody)),
    security(("bearer" = [])))]
async fn import_json(
    State(s): State<AppState>,
    auth: SiteAuth,
    ApiQuery(params): ApiQuery<ImportParams>,
    body: Body,
) -> Result<Json<ImportView>, ApiError> {
    import_file(s, auth, params.dry_run, body, bulk_format::read_json).await
}

async fn export_rows(
    s: &AppState,
    auth: &SiteAuth,
    filter: DeviceFilter,
) -> Result<Vec<DeviceRow>, ApiError> {
    let query = crate::registry::DeviceQuery { scope: auth.0.scope.clone(), ..filter.into() };
    Ok(s.registry.blocking(move |r| r.export_devices(&query)).await?)
}

/// Every device the listing's filters match (paging ignored), as CSV that imports back.
#[utoipa::path(get, path = "/devices/export.csv", tag = "devices", params(DeviceFilter),
    responses((status = 200, description = "The devices, one per row, rooms by base topic", content_type = "text/csv", body = String),
        crate::http::error::CommonErrors),
    security(("bearer" = [])))]
async fn export_csv(
    State(s): State<AppState>,
    auth: SiteAuth,
    ApiQuery(filter): ApiQuery<DeviceFilter>,
) -> Result<impl IntoResponse, ApiError> {
    let rows = export_rows(&s, &auth, filter).await?;
    let bytes = neosens_runtime::blocking::run(move || bulk_format::write_csv(&rows))
        .await
        .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("writing the CSV export")))?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"devices.csv\""),
        ],
        bytes,
    ))
}

/// Every device the listing's filters match, as the JSON array `import.json` reads.
#[utoipa::path(get, path = "/devices/export.json", tag = "devices", params(DeviceFilter),
    responses((status = 200, description = "The devices", body = Object), crate::http::error::CommonErrors),
    security(("bearer" = [])))]
async fn export_json(
    State(s): State<AppState>,
    auth: SiteAuth,
    ApiQuery(filter): ApiQuery<DeviceFilter>,
) -> Result<impl IntoResponse, ApiError> {
    let rows = export_rows(&s, &auth, filter).await?;
    let body = neosens_runtime::blocking::run(move || bulk_format::to_json(&rows).to_string()).await;
    Ok((
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"devices.json\""),
        ],
        body,
    ))
}
