//! People and API clients: users, roles and API tokens.

use std::collections::BTreeSet;
use std::fmt;

use neosens_protocol::ids::SiteId;

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
    /// The sites the role is limited to; empty for every site (see [`Scope`]).
    pub sites: Vec<SiteId>,
}

impl User {
    /// Where the user's role applies.
    pub fn scope(&self) -> Scope {
        Scope::of(&self.sites)
    }
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
    /// The sites the role is limited to; empty for every site (see [`Scope`]).
    pub sites: Vec<SiteId>,
}

impl ApiToken {
    /// Where the token's role applies.
    pub fn scope(&self) -> Scope {
        Scope::of(&self.sites)
    }
}

/// Where a user's or token's role applies: the whole campus, or only some sites ("operator of
/// carcassonne"). A site-limited principal sees nothing of other sites — their devices, rooms,
/// alerts — and campus-wide things (gateways, users, audit, campaigns) are refused to it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Scope {
    /// Every site.
    #[default]
    Campus,
    /// Only these sites. Never empty: an empty list stored means [`Scope::Campus`], and the ids
    /// are kept as stored, so a deleted site narrows the scope rather than widening it.
    Sites(BTreeSet<SiteId>),
}

impl Scope {
    /// The scope of a stored site list (empty: the whole campus).
    pub fn of(sites: &[SiteId]) -> Scope {
        if sites.is_empty() { Scope::Campus } else { Scope::Sites(sites.iter().copied().collect()) }
    }

    /// Whether `site` is within the scope.
    pub fn covers(&self, site: SiteId) -> bool {
        match self {
            Scope::Campus => true,
            Scope::Sites(sites) => sites.contains(&site),
        }
    }

    /// Whether this is the whole campus.
    pub fn is_campus(&self) -> bool {
        matches!(self, Scope::Campus)
    }
}

/// A user as stored up to schema 7, before rights per site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserV7 {
    /// Id.
    pub id: UserId,
    /// Login name.
    pub username: String,
    /// Password hash.
    pub password_hash: String,
    /// Role.
    pub role: Role,
    /// Creation time.
    pub created_at: Timestamp,
}

impl From<UserV7> for User {
    fn from(v: UserV7) -> Self {
        User {
            id: v.id,
            username: v.username,
            password_hash: v.password_hash,
            role: v.role,
            created_at: v.created_at,
            sites: Vec::new(),
        }
    }
}

/// An API token as stored up to schema 7, before rights per site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiTokenV7 {
    /// Id.
    pub id: TokenId,
    /// Name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Keyed hash.
    pub hash: [u8; 32],
    /// Creation time.
    pub created_at: Timestamp,
}

impl From<ApiTokenV7> for ApiToken {
    fn from(v: ApiTokenV7) -> Self {
        ApiToken {
            id: v.id,
            name: v.name,
            role: v.role,
            hash: v.hash,
            created_at: v.created_at,
            sites: Vec::new(),
        }
    }
}
