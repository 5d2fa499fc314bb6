//! The JSON forms of users and API tokens (`/api/v1/users`, `/api/v1/tokens`).

use serde::{Deserialize, Serialize};

use crate::model::{Role, TokenId, UserId};
use crate::registry;

/// A new user.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserInput {
    /// Login name: 1 to 64 characters among letters, digits, `.`, `-`, `_`, `@`.
    pub(crate) username: String,
    /// Password (at least 10 characters). Stored as an argon2id hash only.
    pub(crate) password: String,
    /// Role.
    pub(crate) role: Role,
}

/// Changes to a user.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserPatch {
    /// New password.
    pub(crate) password: Option<String>,
    /// New role.
    pub(crate) role: Option<Role>,
}

/// A user as the API shows it (never the hash).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct UserView {
    /// Id.
    #[schema(value_type = String, format = Uuid)]
    pub(crate) id: UserId,
    /// Login name.
    pub(crate) username: String,
    /// Role.
    pub(crate) role: Role,
    /// Creation time.
    pub(crate) created_at: String,
}

/// A token just created: the only time its text is shown.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct TokenCreated {
    /// Id.
    #[schema(value_type = String, format = Uuid)]
    pub(crate) id: TokenId,
    /// Name.
    pub(crate) name: String,
    /// Role.
    pub(crate) role: Role,
    /// The bearer token. Store it now: only its hash is kept.
    pub(crate) token: String,
}

impl From<UserInput> for registry::NewUser {
    fn from(v: UserInput) -> Self {
        registry::NewUser { username: v.username, password: v.password, role: v.role }
    }
}

impl From<UserPatch> for registry::UserChanges {
    fn from(v: UserPatch) -> Self {
        registry::UserChanges { password: v.password, role: v.role }
    }
}

impl From<registry::UserInfo> for UserView {
    fn from(v: registry::UserInfo) -> Self {
        UserView { id: v.id, username: v.username, role: v.role, created_at: v.created_at }
    }
}

impl From<registry::IssuedToken> for TokenCreated {
    fn from(v: registry::IssuedToken) -> Self {
        TokenCreated { id: v.id, name: v.name, role: v.role, token: v.token }
    }
}
