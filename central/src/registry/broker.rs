//! Broker authentication and authorization decisions, from memory.
//!
//! Mosquitto asks on every cache miss (CONNECT, SUBSCRIBE, each PUBLISH, each delivery), so every
//! answer is a hash lookup and, for passwords, one HMAC (spec `broker-auth.md`). The rules, the
//! same behind every contract (go-auth JSON, the legacy form plug-in, dynamic security):
//!
//! - a device (enabled, right secret) may publish `<base>/<kind>` and subscribe to / read
//!   `<base>/<kind>/command` (or the filter `<base>/+/command`) for each of its rooms — nothing
//!   else: no `#`, no other room, no deeper level. Several connections with the same login and
//!   different client ids are fine (the firmware opens one per module);
//! - a gateway (enrolled, right secret; username `gw-<id>`) has the rights of every device of its
//!   scope: `<base>/<kind>` and `<base>/<kind>/command` for each room of its buildings — it
//!   relays the statuses and readings of its devices and LoRaWAN nodes, and their orders;
//! - a service account (central itself) may do anything;
//! - usernames or client ids holding `+`, `#` or `/` are refused.

use parking_lot::RwLock;

use super::Registry;
use super::state::State;
use crate::model::Device;

/// What a client wants to do with a topic (`acc` in the plug-in contracts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `1`: a message on the topic is about to be delivered to the client.
    Read,
    /// `2`: the client publishes on the topic (its Will topic too).
    Publish,
    /// `4`: the client subscribes with this filter.
    Subscribe,
}

impl Access {
    /// From the plug-in's `acc` number; `None` for values Mosquitto never sends (0, 3, 8 …).
    pub fn from_acc(acc: i64) -> Option<Self> {
        match acc {
            1 => Some(Access::Read),
            2 => Some(Access::Publish),
            4 => Some(Access::Subscribe),
            _ => None,
        }
    }
}

/// A decision, with the reason for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Allowed.
    Allow,
    /// Refused, and why.
    Deny(DenyReason),
}

/// Why a broker request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyReason {
    /// Username or client id with `+`, `#` or `/`, or empty.
    BadIdentity,
    /// No device or service account with this username.
    UnknownUser,
    /// Wrong password.
    WrongSecret,
    /// The device is disabled.
    Disabled,
    /// The topic is outside the device's rights.
    Topic,
}

impl DenyReason {
    /// What the client (and `/metrics`) may learn: an unknown user and a wrong password are the
    /// same `bad_credentials`, so neither the answer nor a counter tells which logins exist.
    /// The precise reason ([`DenyReason::as_str`]) is only in debug logs.
    pub fn public(self) -> &'static str {
        match self {
            DenyReason::UnknownUser | DenyReason::WrongSecret => "bad_credentials",
            other => other.as_str(),
        }
    }

    /// A short label for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            DenyReason::BadIdentity => "bad_identity",
            DenyReason::UnknownUser => "unknown_user",
            DenyReason::WrongSecret => "wrong_secret",
            DenyReason::Disabled => "disabled",
            DenyReason::Topic => "topic_not_allowed",
        }
    }
}

/// A broker account that is not a device: central itself (and, later, gateways).
#[derive(Debug, Clone)]
pub struct ServiceAccount {
    /// MQTT username.
    pub username: String,
    /// Keyed hash of its password.
    pub password_hash: [u8; 32],
}

/// Service accounts known to the broker backend, and the logins no device may take. A handful
/// of entries, all from the configuration (never from the network).
#[derive(Debug, Default)]
pub(crate) struct ServiceAccounts {
    accounts: RwLock<Vec<ServiceAccount>>,
    reserved: RwLock<Vec<String>>,
    /// `[mqtt] accept_gateway_api_secrets`: gateways enrolled before MQTT passwords of their own
    /// may still log in with their API secret (while they are being upgraded).
    legacy_gateway_logins: std::sync::atomic::AtomicBool,
}

fn bad_identity(s: &str) -> bool {
    s.contains(['+', '#', '/'])
}

/// Whether `level` is one plain topic level (non-empty, no separator, no wildcard).
fn plain_level(level: &str) -> bool {
    !level.is_empty() && !level.contains(['/', '+', '#'])
}

/// Whether `access` on `topic` is one a device of a room with base topic `base` may do.
fn room_rights(base: &str, topic: &str, access: Access) -> bool {
    let Some(rest) = topic.strip_prefix(base).and_then(|t| t.strip_prefix('/')) else {
        return false;
    };
    match access {
        Access::Publish => plain_level(rest),
        Access::Read => rest.strip_suffix("/command").is_some_and(plain_level),
        Access::Subscribe => rest == "+/command" || rest.strip_suffix("/command").is_some_and(plain_level),
    }
}

fn device_rights(state: &State, device: &Device, topic: &str, access: Access) -> bool {
    device.rooms.iter().filter_map(|r| state.room_topics.get(r)).any(|base| room_rights(base, topic, access))
}

/// The rights of a gateway: those of any room of its scope.
fn gateway_rights(state: &State, gateway: &crate::model::Gateway, topic: &str, access: Access) -> bool {
    state.rooms.values().any(|room| {
        super::gateways::building_in_scope(state, &gateway.scope, room.building)
            && state.room_topics.get(&room.id).is_some_and(|base| room_rights(base, topic, access))
    })
}

/// The enrolled gateway a username names (`gw-<id>`).
fn gateway_of<'a>(state: &'a State, username: &str) -> Option<&'a crate::model::Gateway> {
    let id = username.strip_prefix(super::GATEWAY_USERNAME_PREFIX)?.parse().ok()?;
    state.gateways.get(&id).filter(|g| g.credentials.is_some())
}

impl Registry {
    /// Registers a service account (central's own broker login, which is also the
    /// dynamic-security admin), replacing one of the same name. Its name becomes reserved.
    pub fn add_service_account(&self, username: &str, password: &str) {
        let account = ServiceAccount {
            username: username.to_owned(),
            password_hash: self.keys.hash(password.as_bytes()),
        };
        let mut accounts = self.service_accounts.accounts.write();
        accounts.retain(|a| a.username != username);
        accounts.push(account);
    }

    /// Lets gateways log in to the broker with their API secret as well as their own MQTT
    /// password: for a fleet upgraded gateway by gateway (agents before this version use the
    /// former). Off by default: a leaked API secret then opens no broker session.
    pub fn accept_gateway_api_secrets(&self, accept: bool) {
        self.service_accounts.legacy_gateway_logins.store(accept, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether `password` is the MQTT password of gateway `g` (or, when allowed, its API secret).
    fn gateway_password_ok(&self, g: &crate::model::Gateway, password: &str) -> bool {
        let Some(c) = &g.credentials else { return false };
        let derived = self.gateway_keys(g).map(|k| neosens_runtime::gateway_secrets::mqtt_password(&k));
        // Compared as keyed hashes (constant time), the same work whichever way it goes.
        let mqtt_ok =
            derived.is_ok_and(|d| self.keys.verify(password.as_bytes(), &self.keys.hash(d.as_bytes())));
        let legacy = self.service_accounts.legacy_gateway_logins.load(std::sync::atomic::Ordering::Relaxed);
        mqtt_ok || (legacy && self.keys.verify(password.as_bytes(), &c.secret_hash))
    }

    /// Reserves broker logins for accounts that are not devices (`[mqtt] reserved_logins`: the
    /// broker's admin, monitoring users …), in addition to the service accounts and `gw-*`.
    pub fn reserve_logins(&self, logins: &[String]) {
        let mut reserved = self.service_accounts.reserved.write();
        for login in logins {
            if !reserved.contains(login) {
                reserved.push(login.clone());
            }
        }
    }

    /// Whether `login` belongs to an account that is not a device: a service account, a gateway
    /// (`gw-` prefix, enrolled or not) or a configured reserved login. No device may have it, and
    /// a device stored with it before it was reserved is never an account (broker-auth, the
    /// embedded broker and dynamic security all skip it).
    pub fn login_reserved(&self, login: &str) -> bool {
        login.starts_with(super::GATEWAY_USERNAME_PREFIX)
            || self.service_accounts.accounts.read().iter().any(|a| a.username == login)
            || self.service_accounts.reserved.read().iter().any(|r| r == login)
    }

    /// Logins of stored devices that are reserved (registered before the reservation): they
    /// are not accounts, and the operator should give those devices other logins.
    pub fn devices_with_reserved_logins(&self) -> Vec<String> {
        let state = self.state.read();
        let mut logins: Vec<String> =
            state.by_login.keys().filter(|l| self.login_reserved(l)).cloned().collect();
        logins.sort();
        logins
    }

    /// Whether `username` is a service account's.
    pub fn is_service_account(&self, username: &str) -> bool {
        self.service_account(username).is_some()
    }

    fn service_account(&self, username: &str) -> Option<ServiceAccount> {
        self.service_accounts.accounts.read().iter().find(|a| a.username == username).cloned()
    }

    /// CONNECT: may this username/password connect with this client id?
    pub fn broker_authenticate(&self, username: &str, password: &str, client_id: &str) -> Decision {
        if username.is_empty() || bad_identity(username) || bad_identity(client_id) {
            return Decision::Deny(DenyReason::BadIdentity);
        }
        if let Some(account) = self.service_account(username) {
            return if self.keys.verify(password.as_bytes(), &account.password_hash) {
                Decision::Allow
            } else {
                Decision::Deny(DenyReason::WrongSecret)
            };
        }
        let state = self.state.read();
        if let Some(g) = gateway_of(&state, username) {
            let g = g.clone();
            drop(state);
            return if self.gateway_password_ok(&g, password) {
                Decision::Allow
            } else {
                Decision::Deny(DenyReason::WrongSecret)
            };
        }
        let device = state.by_login.get(username).and_then(|id| state.devices.get(id));
        let Some(entry) = device.filter(|_| !self.login_reserved(username)) else {
            // The same work as a wrong password, so the time taken does not tell them apart.
            let _ = self.keys.verify(password.as_bytes(), &[0; 32]);
            return Decision::Deny(DenyReason::UnknownUser);
        };
        if !self.keys.verify(password.as_bytes(), &entry.record.secret.hash) {
            Decision::Deny(DenyReason::WrongSecret)
        } else if !entry.record.enabled {
            Decision::Deny(DenyReason::Disabled)
        } else {
            Decision::Allow
        }
    }

    /// ACL: may this (already authenticated) username do `access` on `topic`? Decided from the
    /// username, never from the client id (which the client chooses).
    pub fn broker_authorize(&self, username: &str, client_id: &str, topic: &str, access: Access) -> Decision {
        if username.is_empty() || bad_identity(username) || bad_identity(client_id) {
            return Decision::Deny(DenyReason::BadIdentity);
        }
        if self.service_account(username).is_some() {
            return Decision::Allow;
        }
        let state = self.state.read();
        if let Some(g) = gateway_of(&state, username) {
            return if gateway_rights(&state, g, topic, access) {
                Decision::Allow
            } else {
                Decision::Deny(DenyReason::Topic)
            };
        }
        let device = state.by_login.get(username).and_then(|id| state.devices.get(id));
        let Some(entry) = device.filter(|_| !self.login_reserved(username)) else {
            return Decision::Deny(DenyReason::UnknownUser);
        };
        if !entry.record.enabled {
            return Decision::Deny(DenyReason::Disabled);
        }
        if device_rights(&state, &entry.record, topic, access) {
            Decision::Allow
        } else {
            Decision::Deny(DenyReason::Topic)
        }
    }
}
