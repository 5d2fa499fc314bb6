//! API tokens and users.

use neosens_protocol::ids::DeviceId;

use super::{Registry, RegistryError, site_rights};
use crate::model::{ApiToken, EntityKind, Record, Role, Scope, Timestamp, TokenId, new_uuid};
use crate::store::Write;

/// How a caller proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// A bearer token.
    Token(TokenId),
    /// A dashboard session of this user.
    Session(crate::model::UserId),
}

/// Who is calling the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The credential used.
    pub via: Credential,
    /// The token's name or the user's login.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// Where the role applies.
    pub scope: Scope,
}

/// A token just created: the only time its text is shown.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// Id.
    pub id: TokenId,
    /// Name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// The slugs of the sites the role is limited to (empty: the whole campus).
    pub sites: Vec<String>,
    /// The bearer token. Store it now: only its hash is kept.
    pub token: String,
}

/// A token as listed (never its text).
#[derive(Debug, Clone)]
pub struct TokenInfo {
    /// The record.
    pub token: ApiToken,
    /// The slugs of its sites (empty: the whole campus).
    pub sites: Vec<String>,
}

impl Registry {
    /// The principal of a bearer token, if the token is known.
    pub fn authenticate_token(&self, token: &str) -> Option<Principal> {
        let hash = self.keys.hash(token.as_bytes());
        let state = self.state.read();
        let t = state.token_by_hash.get(&hash).and_then(|id| state.tokens.get(id))?;
        Some(Principal { via: Credential::Token(t.id), name: t.name.clone(), role: t.role, scope: t.scope() })
    }

    /// Creates a token with `role`, limited to the sites named by `sites` (slugs; none: the
    /// whole campus); returns its text once.
    pub fn create_token(
        &self,
        name: &str,
        role: Role,
        sites: &[String],
    ) -> Result<IssuedToken, RegistryError> {
        let name = name.trim();
        if name.is_empty() || name.len() > 64 {
            return Err(RegistryError::invalid("name", "1 to 64 characters"));
        }
        let text = self.keys.new_token()?;
        self.insert_token(name, role, sites, &text)
    }

    fn insert_token(
        &self,
        name: &str,
        role: Role,
        sites: &[String],
        text: &str,
    ) -> Result<IssuedToken, RegistryError> {
        let hash = self.keys.hash(text.as_bytes());
        self.mutate(|state| {
            if state.token_by_hash.contains_key(&hash) {
                return Err(RegistryError::conflict("this token exists already"));
            }
            let token = ApiToken {
                id: TokenId(new_uuid()),
                name: name.to_owned(),
                role,
                hash,
                created_at: Timestamp::now(),
                sites: site_rights::resolve_grants(state, role, sites, &[])?,
            };
            let created = IssuedToken {
                id: token.id,
                name: token.name.clone(),
                role,
                sites: site_rights::slugs_of(state, &token.sites),
                token: text.to_owned(),
            };
            Ok((vec![Write::Put(Record::Token(token))], created))
        })
    }

    /// Tokens (never their text).
    pub fn tokens(&self) -> Vec<TokenInfo> {
        let state = self.state.read();
        let mut v: Vec<TokenInfo> = state
            .tokens
            .values()
            .map(|t| TokenInfo { token: t.clone(), sites: site_rights::slugs_of(&state, &t.sites) })
            .collect();
        v.sort_by_key(|t| t.token.created_at);
        v
    }

    /// Revokes a token.
    pub fn delete_token(&self, id: TokenId) -> Result<(), RegistryError> {
        self.mutate(|state| {
            if !state.tokens.contains_key(&id) {
                return Err(RegistryError::not_found(format!("token {}", id.0)));
            }
            Ok((vec![Write::Delete(EntityKind::Token, id.to_bytes())], ()))
        })
    }

    /// Makes sure an admin can get in on first start: with `configured` (from
    /// `NEOSENS_ADMIN_TOKEN`), that token is an admin token; without it and with no admin token at
    /// all, a new one is created and returned so the caller prints it, once.
    pub fn bootstrap_admin(&self, configured: Option<&str>) -> Result<Option<String>, RegistryError> {
        if let Some(text) = configured {
            if text.len() < 16 {
                return Err(RegistryError::invalid("NEOSENS_ADMIN_TOKEN", "at least 16 characters"));
            }
            match self.authenticate_token(text) {
                Some(p) if p.role == Role::Admin => {}
                Some(_) => {
                    return Err(RegistryError::conflict(
                        "NEOSENS_ADMIN_TOKEN is registered with a lower role",
                    ));
                }
                None => {
                    self.insert_token("bootstrap (NEOSENS_ADMIN_TOKEN)", Role::Admin, &[], text)?;
                }
            }
            return Ok(None);
        }
        if self.state.read().tokens.values().any(|t| t.role == Role::Admin && t.sites.is_empty()) {
            return Ok(None);
        }
        Ok(Some(self.create_token("bootstrap", Role::Admin, &[])?.token))
    }

    /// Ids of every device (for benchmarks and bulk tools).
    pub fn device_ids(&self) -> Vec<DeviceId> {
        self.state.read().devices.keys().copied().collect()
    }
}
