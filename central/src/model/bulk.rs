//! Bulk operations: one action on many devices, recorded once with each device's outcome.

use serde::{Deserialize, Serialize};

use super::{Actor, Timestamp};

/// What a bulk operation does to each device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BulkAction {
    /// Moves each device to this room (its only room).
    Move {
        /// The room's id.
        room: [u8; 16],
    },
    /// Sets each device's type (by id).
    SetType {
        /// The type's id.
        device_type: [u8; 16],
    },
    /// Enables or disables each device.
    SetEnabled {
        /// Enabled after.
        enabled: bool,
    },
    /// Gives each device a new secret, delivered at its next `/device/credentials`.
    ResetCredentials,
    /// Sends each device an order, paced.
    Order {
        /// The order's name.
        order: String,
        /// Its value, as JSON text.
        value: Option<String>,
    },
}

/// A device's outcome in an operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BulkOutcome {
    /// Not done yet (orders wait for their turn).
    Pending,
    /// Done (changed, or the order published).
    Done,
    /// Not done, and why.
    Failed(String),
}

/// One bulk operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BulkOperation {
    /// Its number.
    pub id: u64,
    /// When it was confirmed.
    pub at: Timestamp,
    /// Who confirmed it.
    pub by: Actor,
    /// What it does.
    pub action: BulkAction,
    /// The target as the operator gave it ("building U4", "3 devices listed").
    pub target: String,
    /// The devices, in the order they are worked on.
    pub devices: Vec<[u8; 16]>,
    /// Each device's outcome, by position in `devices`.
    pub outcomes: Vec<BulkOutcome>,
    /// When every device had its outcome.
    pub finished_at: Option<Timestamp>,
}
