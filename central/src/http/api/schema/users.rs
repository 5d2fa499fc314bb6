//! The JSON forms of users and API tokens (`/api/v1/users`, `/api/v1/tokens`).

use serde::{Deserialize, Serialize};

use crate::model::{self, TokenId, UserId};
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
    /// Limit the role to these sites (slugs); absent or empty: the whole campus. Not with
    /// `admin`, which is campus-wide.
    #[serde(default)]
    pub(crate) sites: Vec<String>,
}

/// Changes to a user.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserPatch {
    /// New password.
    pub(crate) password: Option<String>,
    /// New role.
    pub(crate) role: Option<Role>,
    /// New site limits (slugs); `[]` for the whole campus.
    pub(crate) sites: Option<Vec<String>>,
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
    /// `local` (a password checked here) or `directory` (signs in against LDAP; its role
    /// follows its directory groups at each sign-in).
    pub(crate) source: &'static str,
    /// The sites its role is limited to (slugs); empty: the whole campus.
    pub(crate) sites: Vec<String>,
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
    /// The sites its role is limited to (slugs); empty: the whole campus.
    pub(crate) sites: Vec<String>,
    /// The bearer token. Store it now: only its hash is kept.
    pub(crate) token: String,
}

impl From<UserInput> for registry::NewUser {
    fn from(v: UserInput) -> Self {
        registry::NewUser { username: v.username, password: v.password, role: v.role.into(), sites: v.sites }
    }
}

impl From<UserPatch> for registry::UserChanges {
    fn from(v: UserPatch) -> Self {
        registry::UserChanges { password: v.password, role: v.role.map(Into::into), sites: v.sites }
    }
}

impl From<registry::UserInfo> for UserView {
    fn from(v: registry::UserInfo) -> Self {
        let source = if v.directory { "directory" } else { "local" };
        UserView {
            id: v.id,
            username: v.username,
            role: v.role.into(),
            created_at: v.created_at,
            source,
            sites: v.sites,
        }
    }
}

impl From<registry::IssuedToken> for TokenCreated {
    fn from(v: registry::IssuedToken) -> Self {
        TokenCreated { id: v.id, name: v.name, role: v.role.into(), sites: v.sites, token: v.token }
    }
}

/// What a user or token may do: `viewer` reads; `operator` also edits devices, sends orders and
/// acknowledges alerts; `admin` also manages the structure, users and tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Role {
    /// Read everything.
    Viewer,
    /// Also send orders, acknowledge alerts, edit devices.
    Operator,
    /// Also manage the registry structure, users and tokens.
    Admin,
}

impl From<Role> for model::Role {
    fn from(v: Role) -> Self {
        match v {
            Role::Viewer => model::Role::Viewer,
            Role::Operator => model::Role::Operator,
            Role::Admin => model::Role::Admin,
        }
    }
}

impl From<model::Role> for Role {
    fn from(v: model::Role) -> Self {
        match v {
            model::Role::Viewer => Role::Viewer,
            model::Role::Operator => Role::Operator,
            model::Role::Admin => Role::Admin,
        }
    }
}
