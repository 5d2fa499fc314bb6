//! People and API clients: users, roles and API tokens.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Timestamp;

/// What a user or token may do. Ordered: each role can do what the ones below it can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read everything.
    Viewer,
    /// Also send orders, acknowledge alerts, edit devices.
    Operator,
    /// Also manage the registry structure, users and tokens.
    Admin,
}

impl Role {
    /// The name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A user id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(pub Uuid);

impl UserId {
    /// As storage key bytes.
    pub fn to_bytes(self) -> [u8; 16] {
        *self.0.as_bytes()
    }
}

/// An API token id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TokenId(pub Uuid);

impl TokenId {
    /// As storage key bytes.
    pub fn to_bytes(self) -> [u8; 16] {
        *self.0.as_bytes()
    }
}

/// A person who signs in to the dashboard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Id.
    pub id: UserId,
    /// Unique login name.
    pub username: String,
    /// argon2id hash in PHC string form.
    pub password_hash: String,
    /// What the user may do.
    pub role: Role,
    /// When the user was created.
    pub created_at: Timestamp,
}

/// A bearer token for `/api/v1`. The token itself is shown once at creation; only its keyed hash
/// is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiToken {
    /// Id.
    pub id: TokenId,
    /// What it is for ("bootstrap", "grafana" …).
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// HMAC-SHA-256 of the token under the server's hash key.
    pub hash: [u8; 32],
    /// When it was created.
    pub created_at: Timestamp,
}
