//! `/api/v1`: the admin API. JSON in and out, bearer tokens with roles, JSON errors.
//!
//! Roles: `viewer` reads; `operator` also edits devices (and sends orders, resets credentials);
//! `admin` also edits the structure (sites, buildings, rooms, types) and tokens.

mod alerts;
mod audit;
mod bulk;
mod bulk_format;
mod bulk_ops;
mod campaigns;
mod devices;
mod edge;
mod edge_firmware;
mod firmware;
mod fleet;
mod gateways;
mod history;
mod locations;
mod openapi;
mod orders;
pub(crate) mod schema;
mod session;
mod tokens;
mod types;
mod unclaimed;
mod users;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use serde::Serialize;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;

use super::AppState;
use super::error::ApiError;
use super::extract::SiteAuth;

/// Largest request body: device configurations are at most 1023 bytes once served; a schema
/// or a batch can be larger, a megabyte is plenty.
const MAX_BODY: usize = 1024 * 1024;

/// A list answer: `{"items": [...]}` (an object, so fields can be added without breaking clients).
#[derive(Serialize)]
pub(super) struct Items<T> {
    items: Vec<T>,
}

pub(super) fn items<T>(items: Vec<T>) -> axum::Json<Items<T>> {
    axum::Json(Items { items })
}

/// Where the admin API lives; handlers' OpenAPI paths are relative to it.
const PREFIX: &str = "/api/v1";

/// Every handler of `/api/v1`, each registered with its OpenAPI operation (`utoipa-axum`): the
/// path list of the document is collected from the routes themselves, not kept by hand.
fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(locations::routes())
        .merge(types::routes())
        .merge(bulk::routes())
        .merge(bulk_ops::routes())
        .merge(devices::routes())
        .merge(history::routes())
        .merge(alerts::routes())
        .merge(gateways::routes())
        .merge(edge::routes())
        .merge(edge_firmware::routes())
        .merge(orders::routes())
        .merge(tokens::routes())
        .merge(users::routes())
        .merge(unclaimed::routes())
        .merge(fleet::routes())
        .merge(firmware::routes())
        .merge(campaigns::routes())
        .merge(audit::routes())
        .merge(session::routes())
}

/// The OpenAPI document of `/api/v1` (what `GET /api/v1/openapi.json` answers).
pub(super) fn openapi_document() -> utoipa::openapi::OpenApi {
    openapi::finish(api_routes().into_openapi(), PREFIX)
}

pub(super) fn routes() -> Router<AppState> {
    let (api, document) = api_routes().split_for_parts();
    let document = openapi::finish(document, PREFIX);
    let api = api
        .route("/openapi.json", axum::routing::get(openapi::serve(&document)))
        // Nothing under /api/v1 answers without a token, not even "no such path".
        .fallback(|_auth: SiteAuth| async {
            ApiError::NotFound("no such API path; see /api/v1/openapi.json".into())
        })
        .method_not_allowed_fallback(|_auth: SiteAuth| async {
            ApiError::MethodNotAllowed("this path does not take this method; see /api/v1/openapi.json".into())
        })
        .layer(DefaultBodyLimit::max(MAX_BODY));
    Router::new().nest(PREFIX, api)
}
