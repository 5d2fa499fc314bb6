//! What the legacy device paths need: credentials once, configuration after Basic auth, logs.
//!
//! Spec: `legacy-sensocampus.md` §3.1–§3.5. Every refusal is the same to the device (403), but
//! not to the operator: each outcome is named so metrics and logs can tell them apart.

use neosens_protocol::legacy::{ConfigResponse, Credentials, LogRecord};
use neosens_protocol::{DeviceUid, Mac};

use super::{Registry, RegistryError};
use crate::model::{Record, Timestamp};
use crate::store::{DeviceLogEntry, Write};

/// Longest device address kept with a log line (an IPv6 address is at most 45 characters).
const MAX_REMOTE_ADDR: usize = 64;

/// A device's address as stored with its log lines: bounded, whatever a gateway claims.
pub(crate) fn stored_addr(addr: &str) -> String {
    addr.chars().take(MAX_REMOTE_ADDR).collect()
}

/// Why `/device/config` or `/device/logger` refused a device (the legacy paths answer `403` to
/// each; metrics tell `bad_credentials` from `disabled`, never an unknown login from a wrong
/// password).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No device has this login.
    UnknownLogin,
    /// The password does not match.
    WrongSecret,
    /// The device is disabled.
    Disabled,
}

impl Registry {
    /// `/device/credentials`: the login, the secret while it has not been delivered (marking it
    /// delivered before answering, so it goes out exactly once even to concurrent requests), and a
    /// broker other than the default: the device's own, or its gateway's local broker. `None` for an unknown MAC. Disabled devices get their credentials too, as
    /// in 2016; they are refused at `/device/config` and by the broker.
    pub fn legacy_credentials(&self, mac: Mac) -> Result<Option<Credentials>, RegistryError> {
        let uid = DeviceUid::Ethernet(mac);
        let delivered = {
            let state = self.state.read();
            let Some(entry) = state.by_uid.get(&uid).and_then(|id| state.devices.get(id)) else {
                return Ok(None);
            };
            let d = &entry.record;
            if d.credentials_delivered {
                let mqtt = self.credentials_broker(&state, d);
                return Ok(Some(Credentials::new(d.login.clone(), None, mqtt)));
            }
            false
        };
        debug_assert!(!delivered);
        // Not delivered yet: decide under the writer lock, so only one request hands it out.
        let actor = crate::model::Actor::Device { uid: uid.to_string() };
        crate::audit::acting(actor, || self.deliver(uid))
    }

    fn deliver(&self, uid: DeviceUid) -> Result<Option<Credentials>, RegistryError> {
        self.mutate_as(Some("device.provision"), |state| {
            let Some(entry) = state.by_uid.get(&uid).and_then(|id| state.devices.get(id)) else {
                return Ok((vec![], None));
            };
            let d = &entry.record;
            let mqtt = self.credentials_broker(state, d);
            if d.credentials_delivered {
                return Ok((vec![], Some(Credentials::new(d.login.clone(), None, mqtt))));
            }
            let secret = self.keys.open(&d.secret.sealed, &d.id.to_bytes())?;
            let secret = String::from_utf8(secret).map_err(|_| crate::secrets::KeyError::Unseal)?;
            let mut delivered = d.clone();
            delivered.credentials_delivered = true;
            delivered.updated_at = Timestamp::now();
            tracing::info!(device = %d.uid, "credentials delivered");
            Ok((
                vec![Write::Put(Record::Device(Box::new(delivered)))],
                Some(Credentials::new(d.login.clone(), Some(secret), mqtt)),
            ))
        })
    }

    /// Checks Basic credentials the way `/device/config` and `/device/logger` do.
    fn authenticate(&self, login: &str, password: &str) -> Result<crate::model::Device, Refusal> {
        let state = self.state.read();
        let Some(entry) = state.by_login.get(login).and_then(|id| state.devices.get(id)) else {
            return Err(Refusal::UnknownLogin);
        };
        if !self.keys.verify(password.as_bytes(), &entry.record.secret.hash) {
            return Err(Refusal::WrongSecret);
        }
        if !entry.record.enabled {
            return Err(Refusal::Disabled);
        }
        Ok(entry.record.clone())
    }

    /// `/device/config`: topics of the device's rooms (main first) and its zones.
    pub fn legacy_config(&self, login: &str, password: &str) -> Result<ConfigResponse, Refusal> {
        let device = self.authenticate(login, password)?;
        let state = self.state.read();
        let topics = state.device_topics(&device);
        let zones = state.devices.get(&device.id).map(|e| e.zones()).unwrap_or_default();
        Ok(ConfigResponse { topics, zones })
    }

    /// `/device/logger`: stores a log record of an authenticated, enabled device.
    pub fn legacy_log(
        &self,
        login: &str,
        password: &str,
        record: LogRecord,
        remote_addr: String,
    ) -> Result<Result<(), Refusal>, RegistryError> {
        let device = match self.authenticate(login, password) {
            Ok(d) => d,
            Err(outcome) => return Ok(Err(outcome)),
        };
        let entry = DeviceLogEntry {
            device: device.id.to_bytes(),
            received_at: Timestamp::now(),
            remote_addr: stored_addr(&remote_addr),
            record,
        };
        self.store.append_device_log(&entry)?;
        Ok(Ok(()))
    }
}
