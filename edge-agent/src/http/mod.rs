//! The HTTP interface: one router, one shared state.
//!
//! Routes live next to their handlers, one module per area; this file only assembles them.

use std::sync::Arc;

use axum::Router;

use crate::Config;

/// What every handler can reach: cheap to clone (handles and `Arc`s only).
#[derive(Clone)]
pub struct AppState {
    /// The configuration the service started with.
    pub config: Arc<Config>,
}

impl AppState {
    /// State for a service started with `config`.
    pub fn new(config: Config) -> Self {
        AppState { config: Arc::new(config) }
    }
}

/// The router of the LAN listener.
pub fn router(state: AppState) -> Router {
    Router::new().merge(neosens_runtime::http::healthz(env!("CARGO_PKG_VERSION"))).with_state(state)
}
