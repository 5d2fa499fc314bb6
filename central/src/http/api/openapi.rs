//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document of `/api/v1`, derived from the
//! handlers' annotations and the request/response types themselves, so it cannot drift.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{alerts, devices, edge, fleet, gateways, locations, orders, session, tokens, types, users};

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "neosens central API",
        description = "Admin API of neosens-central: the registry of sites, buildings, rooms, device types, devices, gateways, users and tokens. Bearer tokens (or a dashboard session cookie with X-CSRF-Token on changes) with roles viewer < operator < admin. Errors are JSON: {\"error\": {\"code\", \"message\", \"field\"?, \"details\"?}}."
    ),
    paths(
        locations::list_sites, locations::get_site, locations::create_site, locations::update_site, locations::delete_site,
        locations::list_buildings, locations::get_building, locations::create_building, locations::update_building, locations::delete_building,
        locations::list_rooms, locations::get_room, locations::create_room, locations::update_room, locations::delete_room,
        types::list, types::get_one, types::create, types::update, types::delete,
        devices::list, devices::get_one, devices::create, devices::update, devices::delete,
        devices::reset_credentials, devices::enable, devices::disable, devices::logs,
        orders::send, orders::history,
        alerts::list, alerts::acknowledge,
        gateways::list, gateways::get_one, gateways::create, gateways::update, gateways::delete,
        edge::start_enrolment, edge::enroll, edge::sync, edge::deliveries, edge::health,
        tokens::list, tokens::create, tokens::remove,
        users::list, users::get_one, users::create, users::update, users::delete,
        fleet::summary,
        session::sign_in, session::current, session::sign_out, session::settings, session::save_settings,
    ),
    components(schemas(crate::registry::DeviceState, crate::registry::ScopeInput, crate::model::MqttEndpoint)),
    modifiers(&BearerAuth),
    tags(
        (name = "locations", description = "Sites, buildings, rooms and their MQTT base topics"),
        (name = "device-types", description = "Device types, their configuration schema and timing"),
        (name = "devices", description = "Devices: identity, placement, configuration, credentials"),
        (name = "gateways", description = "Edge gateways and their scope"),
        (name = "edge", description = "What gateways call: enrolment, sync, delivery reports, health"),
        (name = "alerts", description = "Outage alerts: devices past their threshold, grouped by building"),
        (name = "access", description = "API tokens and dashboard users"),
    )
)]
pub(super) struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

pub(super) async fn document() -> Json<utoipa::openapi::OpenApi> {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    Json(doc)
}
