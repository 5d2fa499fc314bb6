//! What gateways do with central: enrol once with a one-time token, then authenticate with
//! their secret, sync their share of the registry, and report the first-time credentials they
//! delivered while central was out of reach.
//!
//! At enrolment a gateway gets, besides its secret, a key pair of its own. Central keeps that
//! pair sealed and uses it at sync time: device secrets travel as HMACs under the gateway's hash
//! key (it checks Basic auth offline), and undelivered secrets sealed with its sealing key, bound
//! to the device id (it hands them over offline, once). Central's own keys never leave central.

use base64::Engine;
use neosens_protocol::ids::{DeviceId, GatewayId};
use neosens_runtime::keys::Keys;

use super::gateways::building_in_scope;
use super::state::{DeviceEntry, State};
use super::{Registry, RegistryError};
use crate::model::{Enrolment, Gateway, GatewayCredentials, Record, Timestamp};
use crate::store::Write;

/// How long an enrolment token stays valid.
pub const ENROLMENT_TTL_MS: i64 = 24 * 3600 * 1000;

/// Prefix of enrolment tokens.
pub const ENROLMENT_PREFIX: &str = "nse_";

/// Prefix of gateway API secrets (bearer tokens; the MQTT password is another secret).
pub const GATEWAY_SECRET_PREFIX: &str = "nsg_";

/// Prefix of gateways' MQTT usernames (`gw-<gateway id>`).
pub const GATEWAY_USERNAME_PREFIX: &str = "gw-";

/// A one-time enrolment token, shown once.
#[derive(Debug, Clone)]
pub struct IssuedEnrolment {
    /// The token, for `neosens-edge enroll --token`.
    pub token: String,
    /// It is refused after this (RFC 3339).
    pub expires_at: String,
}

/// What a gateway receives when it enrols: defined with the other gateway contracts.
pub use neosens_protocol::edge::EnrolmentGrant;

/// The MQTT username of a gateway.
pub fn gateway_username(id: GatewayId) -> String {
    format!("{GATEWAY_USERNAME_PREFIX}{id}")
}

fn random_token(keys: &Keys, prefix: &str) -> Result<String, RegistryError> {
    let bytes: [u8; 32] = keys.random()?;
    Ok(format!("{prefix}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)))
}

/// What a gateway's sealed secret is bound to (not its key pair's context).
pub(crate) fn secret_context(id: GatewayId) -> Vec<u8> {
    let mut c = id.to_bytes().to_vec();
    c.extend_from_slice(b"/secret");
    c
}

/// Whether a device has a room in the scope.
pub(crate) fn device_in_scope(state: &State, gateway: &Gateway, entry: &DeviceEntry) -> bool {
    entry.record.rooms.iter().any(|r| {
        state.rooms.get(r).is_some_and(|room| building_in_scope(state, &gateway.scope, room.building))
    })
}

impl Registry {
    /// Stores the device log lines a gateway relays (accepted while central was out of its
    /// reach, the device authenticated by the gateway): each for an enabled device of the
    /// gateway's scope, with a body that is a `LogRecord`. Returns (stored, refused).
    pub fn edge_logs(
        &self,
        id: GatewayId,
        logs: &[neosens_protocol::edge::RelayedLog],
    ) -> Result<(usize, usize), RegistryError> {
        let now = Timestamp::now();
        let entries: Vec<crate::store::DeviceLogEntry> = {
            let state = self.state.read();
            let g =
                state.gateways.get(&id).ok_or_else(|| RegistryError::not_found(format!("gateway {id}")))?;
            logs.iter()
                .filter_map(|l| {
                    let e = state
                        .devices
                        .get(&l.device)
                        .filter(|e| e.record.enabled && device_in_scope(&state, g, e))?;
                    Some(crate::store::DeviceLogEntry {
                        device: e.record.id.to_bytes(),
                        // A gateway's clock may be ahead: never a line from the future.
                        received_at: Timestamp(l.received_at_ms.min(now.millis())),
                        remote_addr: super::provisioning::stored_addr(&l.device_addr),
                        record: neosens_runtime::legacy_http::log_form(l.body.as_bytes())?,
                    })
                })
                .collect()
        };
        for entry in &entries {
            self.store.append_device_log(entry)?;
        }
        Ok((entries.len(), logs.len() - entries.len()))
    }

    /// Issues a one-time enrolment token for a gateway (replacing a pending one). Enrolling again
    /// later replaces the gateway's credentials: the old ones stop working.
    pub fn start_enrolment(&self, id: GatewayId) -> Result<IssuedEnrolment, RegistryError> {
        let token = random_token(&self.keys, ENROLMENT_PREFIX)?;
        let expires_at = Timestamp(Timestamp::now().millis() + ENROLMENT_TTL_MS);
        let token_hash = self.keys.hash(token.as_bytes());
        self.mutate_as(Some("gateway.start_enrolment"), |state| {
            let mut g = state
                .gateways
                .get(&id)
                .cloned()
                .ok_or_else(|| RegistryError::not_found(format!("gateway {id}")))?;
            g.enrolment = Some(Enrolment { token_hash, expires_at });
            Ok((vec![Write::Put(Record::Gateway(Box::new(g)))], ()))
        })?;
        tracing::info!(gateway = %id, "enrolment token issued");
        Ok(IssuedEnrolment { token, expires_at: expires_at.to_rfc3339() })
    }

    /// Exchanges an enrolment token for the gateway's credentials; `None` if the token is unknown,
    /// used or expired.
    pub fn enroll_gateway(&self, token: &str) -> Result<Option<EnrolmentGrant>, RegistryError> {
        let now = Timestamp::now();
        let secret = random_token(&self.keys, GATEWAY_SECRET_PREFIX)?;
        let pair: [u8; 64] = self.keys.random()?;
        // Recorded as the gateway's own act: whoever holds its token is enrolling it.
        let enrolling = self.state.read().gateways.values().find_map(|g| {
            g.enrolment
                .as_ref()
                .is_some_and(|e| {
                    e.expires_at.millis() > now.millis() && self.keys.verify(token.as_bytes(), &e.token_hash)
                })
                .then_some(g.id)
        });
        let Some(enrolling) = enrolling else { return Ok(None) };
        let actor = crate::model::Actor::Gateway { id: enrolling.to_bytes() };
        crate::audit::acting(actor, || {
            self.mutate_as(Some("gateway.enrol"), |state| {
                let found = state.gateways.values().find(|g| {
                    g.enrolment.as_ref().is_some_and(|e| {
                        e.expires_at.millis() > now.millis()
                            && self.keys.verify(token.as_bytes(), &e.token_hash)
                    })
                });
                let Some(g) = found else { return Ok((vec![], None)) };
                let mut g = g.clone();
                g.enrolment = None;
                g.credentials = Some(GatewayCredentials {
                    secret_hash: self.keys.hash(secret.as_bytes()),
                    sealed_secret: self.keys.seal(secret.as_bytes(), &secret_context(g.id))?,
                    keys: self.keys.seal(&pair, &g.id.to_bytes())?,
                    enrolled_at: now,
                });
                let grant = EnrolmentGrant {
                    gateway_id: g.id.to_string(),
                    name: g.name.clone(),
                    secret: secret.clone(),
                    mqtt_username: gateway_username(g.id),
                    mqtt_password: neosens_runtime::gateway_secrets::mqtt_password(&Keys::from_bytes(
                        &pair[..32].try_into().unwrap_or([0; 32]),
                        &pair[32..].try_into().unwrap_or([0; 32]),
                        ring::rand::SystemRandom::new(),
                    )),
                    keys: neosens_protocol::hex::encode(&pair),
                };
                tracing::info!(gateway = %g.id, name = %g.name, "gateway enrolled");
                Ok((vec![Write::Put(Record::Gateway(Box::new(g)))], Some(grant)))
            })
        })
    }

    /// The gateway whose secret this is.
    pub fn authenticate_gateway(&self, secret: &str) -> Option<GatewayId> {
        if !secret.starts_with(GATEWAY_SECRET_PREFIX) {
            return None;
        }
        let state = self.state.read();
        state
            .gateways
            .values()
            .find(|g| {
                g.credentials.as_ref().is_some_and(|c| self.keys.verify(secret.as_bytes(), &c.secret_hash))
            })
            .map(|g| g.id)
    }

    /// The forwarding key of an enrolled gateway: what the relay stamps of the statuses it
    /// relays verify with ([`neosens_runtime::relay`]).
    pub fn relay_key(&self, gateway: GatewayId) -> Option<neosens_runtime::relay::RelayKey> {
        let g = self.state.read().gateways.get(&gateway)?.clone();
        let keys = self.gateway_keys(&g).ok()?;
        Some(neosens_runtime::relay::RelayKey::derive(&keys))
    }

    /// Whether `device` has a room in the scope of `gateway` (it is one of the devices that
    /// gateway relays for).
    pub fn gateway_covers(&self, gateway: GatewayId, device: DeviceId) -> bool {
        let state = self.state.read();
        match (state.gateways.get(&gateway), state.devices.get(&device)) {
            (Some(g), Some(entry)) => device_in_scope(&state, g, entry),
            _ => false,
        }
    }

    /// The MACs of those `devices` that are in the scope of `gateway` (what its LAN listener
    /// identifies updaters by); all of them at once, under one lock.
    pub fn scope_macs(&self, gateway: GatewayId, devices: &[[u8; 16]]) -> Vec<neosens_protocol::ids::Mac> {
        let state = self.state.read();
        let Some(g) = state.gateways.get(&gateway) else { return Vec::new() };
        devices
            .iter()
            .filter_map(|d| state.devices.get(&DeviceId::from_bytes(*d)))
            .filter(|entry| device_in_scope(&state, g, entry))
            .filter_map(|entry| match entry.record.uid {
                neosens_protocol::DeviceUid::Ethernet(mac) => Some(mac),
                _ => None,
            })
            .collect()
    }

    /// The gateways whose scope holds `device` (its site's gateways).
    pub fn gateways_covering(&self, device: DeviceId) -> Vec<GatewayId> {
        let state = self.state.read();
        let Some(entry) = state.devices.get(&device) else { return Vec::new() };
        state.gateways.values().filter(|g| device_in_scope(&state, g, entry)).map(|g| g.id).collect()
    }

    /// Whether a device is registered.
    pub fn has_device(&self, id: DeviceId) -> bool {
        self.state.read().devices.contains_key(&id)
    }

    /// The gateway's own key pair.
    pub(super) fn gateway_keys(&self, g: &Gateway) -> Result<Keys, RegistryError> {
        let c = g.credentials.as_ref().ok_or_else(|| RegistryError::not_found("gateway credentials"))?;
        let pair = self.keys.open(&c.keys, &g.id.to_bytes())?;
        let (hash, seal) = pair.split_at(32);
        let (Ok(hash), Ok(seal)) = (<[u8; 32]>::try_from(hash), <[u8; 32]>::try_from(seal)) else {
            return Err(crate::secrets::KeyError::Unseal.into());
        };
        Ok(Keys::from_bytes(&hash, &seal, ring::rand::SystemRandom::new()))
    }

    /// Marks as delivered the first-time credentials a gateway handed over while central was out
    /// of reach; returns how many were still undelivered. Devices outside its scope are ignored.
    pub fn edge_deliveries(&self, id: GatewayId, devices: &[DeviceId]) -> Result<usize, RegistryError> {
        let actor = crate::model::Actor::Gateway { id: id.to_bytes() };
        crate::audit::acting(actor, || self.deliveries(id, devices))
    }

    fn deliveries(&self, id: GatewayId, devices: &[DeviceId]) -> Result<usize, RegistryError> {
        self.mutate_as(Some("device.provision"), |state| {
            let g =
                state.gateways.get(&id).ok_or_else(|| RegistryError::not_found(format!("gateway {id}")))?;
            let mut writes = Vec::new();
            for d in devices {
                let Some(e) = state.devices.get(d).filter(|e| device_in_scope(state, g, e)) else { continue };
                if !e.record.credentials_delivered {
                    let mut record = e.record.clone();
                    record.credentials_delivered = true;
                    record.updated_at = Timestamp::now();
                    tracing::info!(device = %record.uid, gateway = %id, "credentials delivered by a gateway");
                    writes.push(Write::Put(Record::Device(Box::new(record))));
                }
            }
            let n = writes.len();
            Ok((writes, n))
        })
    }
}
