//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document of `/api/v1`, derived from the
//! handlers' annotations and the request/response types themselves, so it cannot drift. The
//! paths come from the router (`utoipa-axum`, see `api_routes`); this module holds what is not
//! any one handler's: title, tags, security scheme, shared schemas.

use axum::body::Bytes;
use axum::http::HeaderName;
use axum::http::header::CONTENT_TYPE;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "neosens central API",
        description = "Admin API of neosens-central: the registry of sites, buildings, rooms, device types, devices, gateways, users and tokens. Bearer tokens (or a dashboard session cookie with X-CSRF-Token on changes) with roles viewer < operator < admin. Errors are JSON: {\"error\": {\"code\", \"message\", \"field\"?, \"details\"?}}."
    ),
    components(schemas(crate::http::api::schema::devices::DeviceState, crate::http::api::schema::gateways::ScopeInput, crate::http::api::schema::gateways::LocalBrokerInput, crate::http::api::schema::devices::MqttEndpoint, crate::unclaimed::UnclaimedDevice, super::campaigns::DeviceCampaignView, super::campaigns::CampaignDeviceView)),
    modifiers(&BearerAuth),
    tags(
        (name = "locations", description = "Sites, buildings, rooms and their MQTT base topics"),
        (name = "device-types", description = "Device types, their configuration schema and timing"),
        (name = "devices", description = "Devices: identity, placement, configuration, credentials"),
        (name = "gateways", description = "Edge gateways and their scope"),
        (name = "edge", description = "What gateways call: enrolment, sync, delivery reports, health"),
        (name = "alerts", description = "Outage alerts: devices past their threshold, grouped by building"),
        (name = "access", description = "API tokens and dashboard users"),
        (name = "firmware", description = "Firmware images and the campaigns that roll them out in waves"),
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

/// The collected document made whole: paths under `prefix`, this build's version.
pub(super) fn finish(mut doc: utoipa::openapi::OpenApi, prefix: &str) -> utoipa::openapi::OpenApi {
    let paths = std::mem::take(&mut doc.paths.paths);
    doc.paths.paths = paths.into_iter().map(|(path, item)| (format!("{prefix}{path}"), item)).collect();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc
}

/// The handler of `GET /api/v1/openapi.json`: the document, serialised once.
pub(super) fn serve(
    doc: &utoipa::openapi::OpenApi,
) -> impl Fn() -> std::future::Ready<([(HeaderName, &'static str); 1], Bytes)> + Clone + Send + Sync + 'static
{
    let body = Bytes::from(serde_json::to_vec(doc).unwrap_or_default());
    move || std::future::ready(([(CONTENT_TYPE, "application/json")], body.clone()))
}
