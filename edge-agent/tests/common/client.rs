//! A small typed client for central's JSON API, as the gateway's end-to-end tests use it: each
//! call checks the success status the API documents and reads the answer into the test-local
//! wire structs of [`wire`], or returns the API's error body as an [`ApiFailure`]. (The edge
//! tests cannot share central's test module; this is the part they need.) [`ApiClient::raw`] is
//! the escape hatch for a check of the exact answer.

use std::fmt;
use std::net::SocketAddr;

use neosens_runtime::testing::{RawResponse, http_json};
use serde::de::DeserializeOwned;
use serde_json::Value;

pub(crate) mod wire;

use wire::{
    Building, Device, DeviceLog, DeviceType, EnrolmentToken, Gateway, GatewayStatus, Items, OrderRecord, Room,
};

/// An API error answer: the status and `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiFailure {
    pub status: u16,
    /// Stable machine-readable code (`conflict`, `invalid_field` …).
    pub code: String,
    pub message: String,
}

impl fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)
    }
}

/// The error body's shape; every refusal of the API has one.
#[derive(serde::Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(serde::Deserialize)]
struct ErrorDetail {
    code: String,
    message: String,
}

/// A call's outcome: the typed answer, or the API's refusal.
pub(crate) type ApiResult<T> = Result<T, ApiFailure>;

/// Reads a JSON body into `T`, panicking with the body when it does not fit (a wire change).
pub(crate) fn parse<T: DeserializeOwned>(what: &str, body: &Value) -> T {
    serde_json::from_value(body.clone())
        .unwrap_or_else(|e| panic!("{what}: the answer does not read as expected ({e}): {body}"))
}

/// Reads the body of a raw response (or an MQTT payload's bytes) into `T`.
pub(crate) fn parse_bytes<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> T {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("{what}: not the expected JSON ({e}): {}", String::from_utf8_lossy(bytes)))
}

/// Reads the body of a raw response into `T`.
pub(crate) fn parse_raw<T: DeserializeOwned>(what: &str, response: &RawResponse) -> T {
    parse_bytes(what, &response.body)
}

/// Central's API at `addr`, as the holder of `token`.
#[derive(Debug, Clone)]
pub(crate) struct ApiClient {
    pub addr: SocketAddr,
    pub token: Option<String>,
}

impl ApiClient {
    /// The bootstrap admin (`NEOSENS_ADMIN_TOKEN` of [`super::start_central`]).
    pub(crate) fn admin(addr: SocketAddr) -> Self {
        ApiClient { addr, token: Some(super::ADMIN.to_owned()) }
    }

    /// The escape hatch: any method, path and JSON body; the status and the parsed body (`null`
    /// when empty), unchecked.
    pub(crate) fn raw(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        http_json(self.addr, method, path, self.token.as_deref(), body.as_ref())
    }

    /// A call expected to answer `success` with a body of type `T`, or an API error.
    pub(crate) fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        success: u16,
    ) -> ApiResult<T> {
        let what = format!("{method} {path}");
        let (status, answer) = self.raw(method, path, body);
        if status == success {
            return Ok(parse(&what, &answer));
        }
        assert!(status >= 400, "{what}: {status} where {success} was expected: {answer}");
        let parsed: ErrorBody = serde_json::from_value(answer.clone())
            .unwrap_or_else(|e| panic!("{what}: {status} without an API error body ({e}): {answer}"));
        Err(ApiFailure { status, code: parsed.error.code, message: parsed.error.message })
    }

    fn list<T: DeserializeOwned>(&self, path: &str) -> ApiResult<Vec<T>> {
        self.call::<Items<T>>("GET", path, None, 200).map(|page| page.items)
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
