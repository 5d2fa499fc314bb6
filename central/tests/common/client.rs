//! A typed client for central's JSON API, for the integration tests: each call checks the success
//! status the API documents and reads the answer into the test-local wire structs of [`wire`], or
//! returns the API's error body as an [`ApiFailure`]. Tests that send malformed bytes on purpose
//! or check an exact wire detail use [`ApiClient::raw`].

use std::net::SocketAddr;

use neosens_runtime::testing::api::JsonApi;
use serde_json::{Value, json};

pub(crate) mod wire;

use wire::{
    Alert, BrokerAnswer, Building, DeliveryReport, Device, DeviceLog, DevicePage, DeviceType, EnrolGrant,
    EnrolmentToken, Gateway, GatewayStatus, LogsRelayed, NewToken, OrderRecord, Room, Site, TokenInfo, User,
};

#[allow(unused_imports)] // each test binary uses a part
pub(crate) use neosens_runtime::testing::api::{ApiFailure, ApiResult, parse, parse_raw};

/// Central's API at `addr`, as the holder of a token (or of none): the shared [`JsonApi`] caller
/// (`raw`, `call`, `call_empty`, `refused`, `list` …) with central's resources on top.
#[derive(Debug, Clone)]
pub(crate) struct ApiClient(JsonApi);

impl std::ops::Deref for ApiClient {
    type Target = JsonApi;

    fn deref(&self) -> &JsonApi {
        &self.0
    }
}

impl ApiClient {
    /// The bootstrap admin (`NEOSENS_ADMIN_TOKEN` of [`super::start_with`]).
    pub(crate) fn admin(addr: SocketAddr) -> Self {
        Self::bearer(addr, super::ADMIN)
    }

    /// A caller with this bearer token (an API token, or a gateway's secret).
    pub(crate) fn bearer(addr: SocketAddr, token: &str) -> Self {
        ApiClient(JsonApi::new(addr, Some(token)))
    }

    /// A caller without credentials.
    pub(crate) fn anonymous(addr: SocketAddr) -> Self {
        ApiClient(JsonApi::new(addr, None))
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
