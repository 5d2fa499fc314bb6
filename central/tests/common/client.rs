//! A typed client for central's JSON API, for the integration tests: each call checks the success
//! status the API documents and reads the answer into the test-local wire structs of [`wire`], or
//! returns the API's error body as an [`ApiFailure`]. Tests that send malformed bytes on purpose
//! or check an exact wire detail use [`ApiClient::raw`].

use std::fmt;
use std::net::SocketAddr;

use neosens_runtime::testing::{RawResponse, http_json, try_http_json};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

pub(crate) mod wire;

use wire::{
    Alert, BrokerAnswer, Building, DeliveryReport, Device, DeviceLog, DevicePage, DeviceType, EnrolGrant,
    EnrolmentToken, Gateway, GatewayStatus, Items, LogsRelayed, NewToken, OrderRecord, Room, Site, TokenInfo,
    User,
};

/// An API error answer: the status and `{"error": {"code", "message", "field"?, "details"?}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiFailure {
    pub status: u16,
    /// Stable machine-readable code (`conflict`, `invalid_field`, `schema_violation` …).
    pub code: String,
    pub message: String,
    /// The offending field, for `invalid_field`.
    pub field: Option<String>,
    /// Schema violations, each with its JSON pointer (empty when the body has none).
    pub details: Vec<String>,
}

impl fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)?;
        if let Some(field) = &self.field {
            write!(f, " (field {field})")?;
        }
        Ok(())
    }
}

/// The error body's shape; parsed strictly (every error answer of the API has one).
#[derive(serde::Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(serde::Deserialize)]
struct ErrorDetail {
    code: String,
    message: String,
    field: Option<String>,
    #[serde(default)]
    details: Vec<String>,
}

impl ApiFailure {
    /// Reads an error answer; panics when the body is not the API's error shape (every refusal
    /// of the API is JSON that names the problem).
    pub(crate) fn from_answer(what: &str, status: u16, body: Value) -> Self {
        let parsed: ErrorBody = serde_json::from_value(body.clone())
            .unwrap_or_else(|e| panic!("{what}: {status} without an API error body ({e}): {body}"));
        let ErrorDetail { code, message, field, details } = parsed.error;
        ApiFailure { status, code, message, field, details }
    }
}

/// A call's outcome: the typed answer, or the API's refusal.
pub(crate) type ApiResult<T> = Result<T, ApiFailure>;

/// Reads a JSON body into `T`, panicking with the body when it does not fit (a wire change).
pub(crate) fn parse<T: DeserializeOwned>(what: &str, body: &Value) -> T {
    serde_json::from_value(body.clone())
        .unwrap_or_else(|e| panic!("{what}: the answer does not read as expected ({e}): {body}"))
}

/// Reads the body of a raw response into `T`.
pub(crate) fn parse_raw<T: DeserializeOwned>(what: &str, response: &RawResponse) -> T {
    serde_json::from_slice(&response.body)
        .unwrap_or_else(|e| panic!("{what}: not the expected JSON ({e}): {}", response.text()))
}

/// An answer expected to be `success` with a body of type `T`, or an API error.
fn read_answer<T: DeserializeOwned>(what: &str, status: u16, answer: Value, success: u16) -> ApiResult<T> {
    if status == success {
        return Ok(parse(what, &answer));
    }
    assert!(status >= 400, "{what}: {status} where {success} was expected: {answer}");
    Err(ApiFailure::from_answer(what, status, answer))
}

/// Central's API at `addr`, as the holder of `token` (or of none).
#[derive(Debug, Clone)]
pub(crate) struct ApiClient {
    pub addr: SocketAddr,
    pub token: Option<String>,
}

impl ApiClient {
    /// The bootstrap admin (`NEOSENS_ADMIN_TOKEN` of [`super::start_with`]).
    pub(crate) fn admin(addr: SocketAddr) -> Self {
        Self::bearer(addr, super::ADMIN)
    }

    /// A caller with this bearer token (an API token, or a gateway's secret).
    pub(crate) fn bearer(addr: SocketAddr, token: &str) -> Self {
        ApiClient { addr, token: Some(token.to_owned()) }
    }

    /// A caller without credentials.
    pub(crate) fn anonymous(addr: SocketAddr) -> Self {
        ApiClient { addr, token: None }
    }

    /// The escape hatch: any method, path and JSON body; the status and the parsed body (`null`
    /// when empty), unchecked.
    pub(crate) fn raw(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        http_json(self.addr, method, path, self.token.as_deref(), body.as_ref())
    }

    /// [`Self::raw`] that reports a transport failure (the server gone) instead of panicking.
    pub(crate) fn try_raw(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value), String> {
        try_http_json(self.addr, method, path, self.token.as_deref(), body.as_ref())
    }

    /// A call expected to answer `success` with a body of type `T`, or an API error.
    pub(crate) fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        success: u16,
    ) -> ApiResult<T> {
        let (status, answer) = self.raw(method, path, body);
        read_answer(&format!("{method} {path}"), status, answer, success)
    }

    /// [`Self::call`] that reports a transport failure (the server gone) as the outer `Err`:
    /// for writers racing a `kill -9`.
    pub(crate) fn try_call<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        success: u16,
    ) -> Result<ApiResult<T>, String> {
        let (status, answer) = self.try_raw(method, path, body)?;
        Ok(read_answer(&format!("{method} {path}"), status, answer, success))
    }

    /// A call expected to answer `204 No Content`, or an API error.
    pub(crate) fn call_empty(&self, method: &str, path: &str, body: Option<Value>) -> ApiResult<()> {
        let what = format!("{method} {path}");
        let (status, answer) = self.raw(method, path, body);
        if status == 204 {
            assert_eq!(answer, Value::Null, "{what}: 204 with a body");
            return Ok(());
        }
        assert!(status >= 400, "{what}: {status} where 204 was expected: {answer}");
        Err(ApiFailure::from_answer(&what, status, answer))
    }

    /// A call expected to be refused: its error (panics on a success).
    pub(crate) fn refused(&self, method: &str, path: &str, body: Option<Value>) -> ApiFailure {
        let what = format!("{method} {path}");
        let (status, answer) = self.raw(method, path, body);
        assert!(status >= 400, "{what}: {status} where a refusal was expected: {answer}");
        ApiFailure::from_answer(&what, status, answer)
    }

    fn list<T: DeserializeOwned>(&self, path: &str) -> ApiResult<Vec<T>> {
        self.call::<Items<T>>("GET", path, None, 200).map(|page| page.items)
    }

    // Sites, buildings, rooms.

    pub(crate) fn create_site(&self, body: Value) -> ApiResult<Site> {
        self.call("POST", "/api/v1/sites", Some(body), 201)
    }

    pub(crate) fn sites(&self) -> ApiResult<Vec<Site>> {
        self.list("/api/v1/sites")
    }

    pub(crate) fn delete_site(&self, key: &str) -> ApiResult<()> {
        self.call_empty("DELETE", &format!("/api/v1/sites/{key}"), None)
    }

    pub(crate) fn create_building(&self, body: Value) -> ApiResult<Building> {
        self.call("POST", "/api/v1/buildings", Some(body), 201)
    }

    /// Buildings, of one site when `site` is given.
    pub(crate) fn buildings(&self, site: Option<&str>) -> ApiResult<Vec<Building>> {
        match site {
            Some(site) => self.list(&format!("/api/v1/buildings?site={site}")),
            None => self.list("/api/v1/buildings"),
        }
    }

    /// The building with this name; panics if there is none.
    pub(crate) fn building_named(&self, name: &str) -> Building {
        let all = self.buildings(None).expect("buildings");
        all.into_iter().find(|b| b.name == name).unwrap_or_else(|| panic!("no building {name}"))
    }

    pub(crate) fn patch_building(&self, id: &str, body: Value) -> ApiResult<Building> {
        self.call("PATCH", &format!("/api/v1/buildings/{id}"), Some(body), 200)
    }

    pub(crate) fn delete_building(&self, id: &str) -> ApiResult<()> {
        self.call_empty("DELETE", &format!("/api/v1/buildings/{id}"), None)
    }

    pub(crate) fn create_room(&self, body: Value) -> ApiResult<Room> {
        self.call("POST", "/api/v1/rooms", Some(body), 201)
    }

    pub(crate) fn rooms(&self) -> ApiResult<Vec<Room>> {
        self.list("/api/v1/rooms")
    }

    /// A room by id.
    pub(crate) fn room(&self, id: &str) -> ApiResult<Room> {
        self.call("GET", &format!("/api/v1/rooms/{id}"), None, 200)
    }

    pub(crate) fn delete_room(&self, id: &str) -> ApiResult<()> {
        self.call_empty("DELETE", &format!("/api/v1/rooms/{id}"), None)
    }

    // Device types and devices.

    pub(crate) fn create_device_type(&self, body: Value) -> ApiResult<DeviceType> {
        self.call("POST", "/api/v1/device-types", Some(body), 201)
    }

    pub(crate) fn patch_device_type(&self, key: &str, body: Value) -> ApiResult<DeviceType> {
        self.call("PATCH", &format!("/api/v1/device-types/{key}"), Some(body), 200)
    }

    pub(crate) fn create_device(&self, body: Value) -> ApiResult<Device> {
        self.call("POST", "/api/v1/devices", Some(body), 201)
    }

    /// [`Self::create_device`] that reports a transport failure (the server gone) as the outer
    /// `Err`.
    pub(crate) fn try_create_device(&self, body: Value) -> Result<ApiResult<Device>, String> {
        self.try_call("POST", "/api/v1/devices", Some(body), 201)
    }

    /// A page of devices; `query` is the query string without `?` (empty for none).
    pub(crate) fn devices(&self, query: &str) -> ApiResult<DevicePage> {
        let path =
            if query.is_empty() { "/api/v1/devices".to_owned() } else { format!("/api/v1/devices?{query}") };
        self.call("GET", &path, None, 200)
    }

    /// A device by id or uid.
    pub(crate) fn device(&self, key: &str) -> ApiResult<Device> {
        self.call("GET", &format!("/api/v1/devices/{key}"), None, 200)
    }

    pub(crate) fn patch_device(&self, key: &str, body: Value) -> ApiResult<Device> {
        self.call("PATCH", &format!("/api/v1/devices/{key}"), Some(body), 200)
    }

    pub(crate) fn delete_device(&self, key: &str) -> ApiResult<()> {
        self.call_empty("DELETE", &format!("/api/v1/devices/{key}"), None)
    }

    pub(crate) fn disable_device(&self, key: &str) -> ApiResult<Device> {
        self.call("POST", &format!("/api/v1/devices/{key}/disable"), None, 200)
    }

    pub(crate) fn enable_device(&self, key: &str) -> ApiResult<Device> {
        self.call("POST", &format!("/api/v1/devices/{key}/enable"), None, 200)
    }

    pub(crate) fn reset_credentials(&self, key: &str) -> ApiResult<Device> {
        self.call("POST", &format!("/api/v1/devices/{key}/credentials/reset"), None, 200)
    }

    pub(crate) fn device_logs(&self, key: &str) -> ApiResult<Vec<DeviceLog>> {
        self.list(&format!("/api/v1/devices/{key}/logs"))
    }

    /// Sends an order (`202 Accepted` with its record).
    pub(crate) fn send_order(&self, key: &str, body: Value) -> ApiResult<OrderRecord> {
        self.call("POST", &format!("/api/v1/devices/{key}/orders"), Some(body), 202)
    }

    /// The device's order history, newest first.
    pub(crate) fn orders(&self, key: &str) -> ApiResult<Vec<OrderRecord>> {
        self.list(&format!("/api/v1/devices/{key}/orders"))
    }

    // Gateways and the edge API.

    pub(crate) fn create_gateway(&self, body: Value) -> ApiResult<Gateway> {
        self.call("POST", "/api/v1/gateways", Some(body), 201)
    }

    pub(crate) fn gateways(&self) -> ApiResult<Vec<GatewayStatus>> {
        self.list("/api/v1/gateways")
    }

    pub(crate) fn gateway(&self, id: &str) -> ApiResult<GatewayStatus> {
        self.call("GET", &format!("/api/v1/gateways/{id}"), None, 200)
    }

    pub(crate) fn delete_gateway(&self, id: &str) -> ApiResult<()> {
        self.call_empty("DELETE", &format!("/api/v1/gateways/{id}"), None)
    }

    /// A one-time enrolment token for the gateway.
    pub(crate) fn enrolment(&self, gateway: &str) -> ApiResult<EnrolmentToken> {
        self.call("POST", &format!("/api/v1/gateways/{gateway}/enrolment"), None, 201)
    }

    /// A gateway's enrolment (no credentials but the token).
    pub(crate) fn enroll(&self, token: &str) -> ApiResult<EnrolGrant> {
        self.call("POST", "/api/v1/edge/enroll", Some(json!({"token": token})), 200)
    }

    /// A gateway's report of passwords delivered offline (as the gateway).
    pub(crate) fn report_deliveries(&self, devices: &[&str]) -> ApiResult<DeliveryReport> {
        self.call("POST", "/api/v1/edge/deliveries", Some(json!({"devices": devices})), 200)
    }

    /// A gateway's health report (as the gateway).
    pub(crate) fn report_health(&self, body: Value) -> ApiResult<()> {
        self.call_empty("POST", "/api/v1/edge/health", Some(body))
    }

    /// Device log lines a gateway relays (as the gateway): `{"logs": [...]}`.
    pub(crate) fn relay_logs(&self, logs: Vec<Value>) -> ApiResult<LogsRelayed> {
        self.call("POST", "/api/v1/edge/logs", Some(json!({"logs": logs})), 200)
    }

    // Tokens and users.

    pub(crate) fn create_token(&self, body: Value) -> ApiResult<NewToken> {
        self.call("POST", "/api/v1/tokens", Some(body), 201)
    }

    pub(crate) fn tokens(&self) -> ApiResult<Vec<TokenInfo>> {
        self.list("/api/v1/tokens")
    }

    pub(crate) fn delete_token(&self, id: &str) -> ApiResult<()> {
        self.call_empty("DELETE", &format!("/api/v1/tokens/{id}"), None)
    }

    pub(crate) fn create_user(&self, body: Value) -> ApiResult<User> {
        self.call("POST", "/api/v1/users", Some(body), 201)
    }

    pub(crate) fn users(&self) -> ApiResult<Vec<User>> {
        self.list("/api/v1/users")
    }

    pub(crate) fn patch_user(&self, id: &str, body: Value) -> ApiResult<User> {
        self.call("PATCH", &format!("/api/v1/users/{id}"), Some(body), 200)
    }

    // Monitoring and the broker's questions.

    /// Open alerts.
    pub(crate) fn alerts(&self) -> ApiResult<Vec<Alert>> {
        self.list("/api/v1/alerts")
    }

    /// Open alerts and the last resolved ones (`state=all`).
    pub(crate) fn all_alerts(&self) -> ApiResult<Vec<Alert>> {
        self.list("/api/v1/alerts?state=all")
    }

    /// Acknowledges an alert; the alert as it is now (`null` when it is gone from the list).
    pub(crate) fn ack_alert(&self, id: u64, body: Value) -> ApiResult<Option<Alert>> {
        self.call("POST", &format!("/api/v1/alerts/{id}/ack"), Some(body), 200)
    }

    /// A go-auth question (`/mqtt/auth`, `/mqtt/acl`, `/mqtt/superuser`): always `200` and
    /// `{"ok": …}`, whatever the answer.
    pub(crate) fn broker_allows(&self, path: &str, body: Value) -> bool {
        let (status, answer) = self.raw("POST", path, Some(body));
        assert_eq!(status, 200, "POST {path}: {answer}");
        parse::<BrokerAnswer>(path, &answer).ok
    }
}
