//! The HTTP interface: one router, one shared state.
//!
//! | module | paths |
//! |---|---|
//! | `legacy` | `/device/credentials`, `/device/config`, `/device/logger` (byte-compatible with 2016) |
//! | `api` | `/api/v1/…` (admin API, bearer tokens, JSON errors) |
//! | `neosens_runtime::http::healthz` | `/healthz` |

mod api;
mod error;
mod extract;
mod legacy;

use std::sync::Arc;

use axum::Router;

use crate::Config;
use crate::registry::Registry;

pub use error::{ApiError, ErrorBody, ErrorDetail};

/// What every handler can reach: cheap to clone (handles and `Arc`s only).
#[derive(Clone)]
pub struct AppState {
    /// The configuration the service started with.
    pub config: Arc<Config>,
    /// The registry.
    pub registry: Arc<Registry>,
}

/// The router of the whole HTTP interface.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(legacy::routes())
        .merge(api::routes())
        .merge(neosens_runtime::http::healthz(env!("CARGO_PKG_VERSION")))
        .with_state(state)
}
