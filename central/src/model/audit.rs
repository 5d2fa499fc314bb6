//! The audit trail's records: who changed what, when, with the fields before and after.

use serde::{Deserialize, Serialize};

use super::Timestamp;

/// Who did something. Kept by value (a name as it was then), so an entry still reads right after
/// the user, token or gateway is renamed or deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Actor {
    /// A dashboard user (session), or someone signing in under that name.
    User {
        /// The user's id, when the name is a known user.
        id: Option<[u8; 16]>,
        /// The user name.
        name: String,
    },
    /// An API token.
    Token {
        /// The token's id.
        id: [u8; 16],
        /// Its name.
        name: String,
    },
    /// A gateway, on its own behalf (enrolment, deliveries, OTAA joins).
    Gateway {
        /// The gateway's id.
        id: [u8; 16],
    },
    /// A device, over the legacy API (its credentials handed over).
    Device {
        /// Its MAC (or uid).
        uid: String,
    },
    /// Central itself (a scheduler, the first start, a command-line tool).
    System {
        /// Which part ("campaigns", "bootstrap", …).
        component: String,
    },
}

impl Actor {
    /// The kind, as the API names it: `user`, `token`, `gateway`, `device`, `system`.
    pub fn kind(&self) -> &'static str {
        match self {
            Actor::User { .. } => "user",
            Actor::Token { .. } => "token",
            Actor::Gateway { .. } => "gateway",
            Actor::Device { .. } => "device",
            Actor::System { .. } => "system",
        }
    }

    /// The name shown: user name, token name, gateway id, device uid, component.
    pub fn name(&self) -> String {
        match self {
            Actor::User { name, .. } | Actor::Token { name, .. } => name.clone(),
            Actor::Gateway { id } => uuid::Uuid::from_bytes(*id).to_string(),
            Actor::Device { uid } => uid.clone(),
            Actor::System { component } => component.clone(),
        }
    }
}

/// One field that changed: its value before and after, as JSON text (`null` when absent).
/// Secrets show as `"(secret)"`: the entry says they changed, never what they are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldChange {
    /// The field's name in the record (`enabled`, `rooms`, `config` …).
    pub field: String,
    /// Its JSON before (`null` on creation).
    pub before: String,
    /// Its JSON after (`null` on deletion).
    pub after: String,
}

/// One entry of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Sequence number, given by the store (0 until stored); newer entries have larger ids.
    pub id: u64,
    /// When.
    pub at: Timestamp,
    /// Who.
    pub actor: Actor,
    /// What: `<kind>.<verb>`, e.g. `device.update`, `order.send`, `session.sign_in`.
    pub action: String,
    /// The kind of thing acted on (`device`, `room`, `campaign` …), empty when none.
    pub target_kind: String,
    /// Its id (UUID or number), empty when none.
    pub target_id: String,
    /// A readable name for it (a MAC, a room name), as it was then.
    pub target: String,
    /// The fields that changed.
    pub changes: Vec<FieldChange>,
    /// Anything else worth keeping (an order's outcome, why a sign-in failed).
    pub detail: String,
}
