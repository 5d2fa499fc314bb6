//! A small typed client for central's JSON API, as the gateway's end-to-end tests use it: each
//! call checks the success status the API documents and reads the answer into the test-local
//! wire structs of [`wire`], or returns the API's error body as an [`ApiFailure`]. (The edge
//! tests cannot share central's test module; this is the part they need.) [`ApiClient::raw`] is
//! the escape hatch for a check of the exact answer.

use std::net::SocketAddr;

use neosens_runtime::testing::api::JsonApi;
use serde_json::Value;

pub(crate) mod wire;

use wire::{
    Building, Device, DeviceLog, DeviceType, EnrolmentToken, Gateway, GatewayStatus, OrderRecord, Room,
};

#[allow(unused_imports)] // each test binary uses a part
pub(crate) use neosens_runtime::testing::api::{ApiFailure, ApiResult, parse, parse_bytes, parse_raw};

/// Central's API at `addr`, as the holder of a token: the shared [`JsonApi`] caller (`raw`,
/// `call`, `list` …) with the resources the gateway's tests need on top.
#[derive(Debug, Clone)]
pub(crate) struct ApiClient(JsonApi);

impl std::ops::Deref for ApiClient {
    type Target = JsonApi;

    fn deref(&self) -> &JsonApi {
        &self.0
    }
}

impl ApiClient {
    /// The bootstrap admin (`NEOSENS_ADMIN_TOKEN` of [`super::start_central`]).
    pub(crate) fn admin(addr: SocketAddr) -> Self {
        ApiClient(JsonApi::new(addr, Some(super::ADMIN)))
    }

    pub(crate) fn create_building(&self, body: Value) -> ApiResult<Building> {
        self.call("POST", "/api/v1/buildings", Some(body), 201)
    }

    pub(crate) fn create_room(&self, body: Value) -> ApiResult<Room> {
        self.call("POST", "/api/v1/rooms", Some(body), 201)
    }

    pub(crate) fn create_device_type(&self, body: Value) -> ApiResult<DeviceType> {
        self.call("POST", "/api/v1/device-types", Some(body), 201)
    }

    pub(crate) fn create_device(&self, body: Value) -> ApiResult<Device> {
        self.call("POST", "/api/v1/devices", Some(body), 201)
    }

    /// A device by id or uid.
    pub(crate) fn device(&self, key: &str) -> ApiResult<Device> {
        self.call("GET", &format!("/api/v1/devices/{key}"), None, 200)
    }

    /// The device's last status (`None` before any).
    pub(crate) fn last_status(&self, key: &str) -> Option<String> {
        self.device(key).unwrap_or_else(|e| panic!("device {key}: {e}")).last_status
    }

    pub(crate) fn device_logs(&self, key: &str) -> ApiResult<Vec<DeviceLog>> {
        self.list(&format!("/api/v1/devices/{key}/logs"))
    }

    /// Sends an order (`202 Accepted` with its record).
    pub(crate) fn send_order(&self, key: &str, body: Value) -> ApiResult<OrderRecord> {
        self.call("POST", &format!("/api/v1/devices/{key}/orders"), Some(body), 202)
    }

    pub(crate) fn create_gateway(&self, body: Value) -> ApiResult<Gateway> {
        self.call("POST", "/api/v1/gateways", Some(body), 201)
    }

    /// A gateway read alone: with whether central sees it up.
    pub(crate) fn gateway(&self, id: &str) -> ApiResult<GatewayStatus> {
        self.call("GET", &format!("/api/v1/gateways/{id}"), None, 200)
    }

    /// A one-time enrolment token for the gateway.
    pub(crate) fn enrolment(&self, gateway: &str) -> ApiResult<EnrolmentToken> {
        self.call("POST", &format!("/api/v1/gateways/{gateway}/enrolment"), None, 201)
    }
}
