//! The JSON forms of gateways and their enrolment tokens (`/api/v1/gateways`).

use neosens_protocol::gateway_config::{MANAGED_KEYS, ManagedConfig};
use neosens_protocol::ids::GatewayId;
use serde::{Deserialize, Serialize};

use crate::model::GatewayScope;
use crate::registry;

/// A gateway's scope in the API: `{"site": "<id or slug>"}` or `{"buildings": ["<id>", …]}`.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum ScopeInput {
    /// A whole site.
    Site(String),
    /// Some buildings.
    Buildings(Vec<uuid::Uuid>),
}

/// A new gateway.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct GatewayInput {
    /// Unique name.
    pub(crate) name: String,
    /// What it serves.
    pub(crate) scope: ScopeInput,
    /// Local-broker mode: the gateway's Mosquitto as the scope's devices reach it (docs/edge.md,
    /// "Remote sites"). Absent: the devices use central's broker.
    #[serde(default)]
    pub(crate) local_broker: Option<LocalBrokerInput>,
    /// Its agent's settings (keys of its configuration file; docs/edge.md, "Settings from
    /// central"). Absent: none, the gateway's file decides.
    #[serde(default, deserialize_with = "strict_config")]
    pub(crate) config: ManagedConfig,
}

/// A gateway's local broker, as the devices of its scope are given it in their credentials.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LocalBrokerInput {
    /// Host name or address of the gateway on the site's LAN (at most 63 characters).
    pub(crate) host: String,
    /// TCP port of its local broker (1883 usually).
    pub(crate) port: u16,
}

impl From<LocalBrokerInput> for crate::model::LocalBroker {
    fn from(v: LocalBrokerInput) -> Self {
        crate::model::LocalBroker { host: v.host, port: v.port }
    }
}

impl From<crate::model::LocalBroker> for LocalBrokerInput {
    fn from(v: crate::model::LocalBroker) -> Self {
        LocalBrokerInput { host: v.host, port: v.port }
    }
}

/// Changes to a gateway.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct GatewayPatch {
    /// New name.
    pub(crate) name: Option<String>,
    /// New scope (devices leaving it are removed from the gateway at its next sync).
    pub(crate) scope: Option<ScopeInput>,
    /// Local-broker mode on (or moved), or off with `null`. The gateway gets it at its next sync.
    #[serde(default, deserialize_with = "super::present")]
    pub(crate) local_broker: Option<Option<LocalBrokerInput>>,
    /// Its agent's settings, replaced as a whole (`{}` or `null` clears them). The gateway
    /// gets them at its next sync.
    #[serde(default, deserialize_with = "strict_config_change")]
    pub(crate) config: Option<Option<ManagedConfig>>,
}

/// Why `value` is not settings central may set: a key that is not one of them
/// (`agent.reboot_command`), or a section that is not an object.
fn not_settings(value: &serde_json::Value) -> Option<String> {
    let Some(sections) = value.as_object() else { return Some("an object of sections".into()) };
    for (section, keys) in sections {
        let Some(keys) = keys.as_object() else {
            return Some(format!("{section}: an object of keys"));
        };
        for key in keys.keys() {
            let dotted = format!("{section}.{key}");
            if !MANAGED_KEYS.contains(&dotted.as_str()) {
                return Some(format!(
                    "{dotted} is not a setting central can set (those are: {})",
                    MANAGED_KEYS.join(", ")
                ));
            }
        }
    }
    None
}

/// A gateway's settings from the API (`null`: none), refused with the key when one is not a
/// setting central may set (the type itself ignores unknown keys, for the reports of newer
/// agents).
fn strict_config<'de, D: serde::Deserializer<'de>>(d: D) -> Result<ManagedConfig, D::Error> {
    let value = serde_json::Value::deserialize(d)?;
    if value.is_null() {
        return Ok(ManagedConfig::default());
    }
    if let Some(why) = not_settings(&value) {
        return Err(serde::de::Error::custom(format!("config: {why}")));
    }
    serde_json::from_value(value).map_err(serde::de::Error::custom)
}

/// [`strict_config`] for a change: `null` clears the settings.
fn strict_config_change<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<ManagedConfig>>, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Null => Ok(Some(None)),
        value => strict_config(value).map(|c| Some(Some(c))).map_err(serde::de::Error::custom),
    }
}

/// A gateway as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct GatewayView {
    /// Id.
    #[schema(value_type = String, format = Uuid)]
    pub(crate) id: GatewayId,
    /// Name.
    pub(crate) name: String,
    /// Scope: `{"site": "<id>"}` or `{"buildings": [...]}`.
    pub(crate) scope: serde_json::Value,
    /// Devices in its scope now.
    pub(crate) devices: usize,
    /// Creation time.
    pub(crate) created_at: String,
    /// When it enrolled (`null`: not yet; issue a token with `POST /api/v1/gateways/{id}/enrolment`).
    pub(crate) enrolled_at: Option<String>,
    /// Expiry of a pending enrolment token.
    pub(crate) enrolment_expires_at: Option<String>,
    /// Its MQTT username.
    pub(crate) mqtt_username: String,
    /// Its local broker (local-broker mode), or `null`: its devices use central's broker.
    pub(crate) local_broker: Option<LocalBrokerInput>,
    /// Its agent's settings set here (`null`: not set; what it runs with is in its health
    /// report, `health.report.config`).
    pub(crate) config: ManagedConfig,
}

/// A one-time enrolment token, shown once.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct EnrolmentToken {
    /// The token, for `neosens-edge enroll --token`.
    pub(crate) token: String,
    /// It is refused after this (RFC 3339).
    pub(crate) expires_at: String,
}

impl From<ScopeInput> for registry::ScopeSpec {
    fn from(v: ScopeInput) -> Self {
        match v {
            ScopeInput::Site(key) => registry::ScopeSpec::Site(key),
            ScopeInput::Buildings(list) => registry::ScopeSpec::Buildings(list),
        }
    }
}

impl From<GatewayInput> for registry::NewGateway {
    fn from(v: GatewayInput) -> Self {
        registry::NewGateway {
            name: v.name,
            scope: v.scope.into(),
            local_broker: v.local_broker.map(Into::into),
            config: v.config,
        }
    }
}

impl From<GatewayPatch> for registry::GatewayChanges {
    fn from(v: GatewayPatch) -> Self {
        registry::GatewayChanges {
            name: v.name,
            scope: v.scope.map(Into::into),
            local_broker: v.local_broker.map(|b| b.map(Into::into)),
            config: v.config.map(Option::unwrap_or_default),
        }
    }
}

impl From<registry::GatewayInfo> for GatewayView {
    fn from(v: registry::GatewayInfo) -> Self {
        let scope = match &v.scope {
            GatewayScope::Site(s) => serde_json::json!({"site": s}),
            GatewayScope::Buildings(b) => serde_json::json!({"buildings": b}),
        };
        GatewayView {
            id: v.id,
            name: v.name,
            scope,
            devices: v.devices,
            created_at: v.created_at,
            enrolled_at: v.enrolled_at,
            enrolment_expires_at: v.enrolment_expires_at,
            mqtt_username: v.mqtt_username,
            local_broker: v.local_broker.map(Into::into),
            config: v.config,
        }
    }
}

impl From<registry::IssuedEnrolment> for EnrolmentToken {
    fn from(v: registry::IssuedEnrolment) -> Self {
        EnrolmentToken { token: v.token, expires_at: v.expires_at }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_central_cannot_set_are_refused_with_their_key() {
        for (body, key) in [
            (
                r#"{"name": "gw", "scope": {"site": "ut3"}, "config": {"agent": {"reboot_command": "x"}}}"#,
                "agent.reboot_command",
            ),
            (r#"{"name": "gw", "scope": {"site": "ut3"}, "config": {"mqtt": {"url": "x"}}}"#, "mqtt.url"),
            (r#"{"name": "gw", "scope": {"site": "ut3"}, "config": {"storage": 1}}"#, "storage"),
        ] {
            let err = serde_json::from_str::<GatewayInput>(body).unwrap_err().to_string();
            assert!(err.contains(key), "{body}: {err}");
        }
        let ok: GatewayInput = serde_json::from_str(
            r#"{"name": "gw", "scope": {"site": "ut3"}, "config": {"agent": {"status_period_s": 60}}}"#,
        )
        .unwrap();
        assert_eq!(ok.config.agent.status_period_s, Some(60));
        let cleared: GatewayPatch = serde_json::from_str(r#"{"config": null}"#).unwrap();
        assert!(matches!(cleared.config, Some(None)));
        let absent: GatewayPatch = serde_json::from_str("{}").unwrap();
        assert!(absent.config.is_none());
        assert!(serde_json::from_str::<GatewayPatch>(r#"{"config": {"hal": {"gpio": 1}}}"#).is_err());
        let array = r#"{"config": {"agent": [60], "hal": {"gpio": 1}}}"#;
        assert!(
            serde_json::from_str::<GatewayPatch>(array).unwrap_err().to_string().contains("agent: an object")
        );
        let none: GatewayInput =
            serde_json::from_str(r#"{"name": "gw", "scope": {"site": "ut3"}, "config": null}"#).unwrap();
        assert!(none.config.is_empty());
    }
}
