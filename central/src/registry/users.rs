//! Users: people who sign in to the dashboard, with argon2id password hashes.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};

use super::state::State;
use super::{Registry, RegistryError, site_rights};
use crate::model::{EntityKind, Record, Role, Timestamp, User, UserId, new_uuid};
use crate::store::Write;

/// Shortest password accepted.
const MIN_PASSWORD: usize = 10;

/// A new user.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Login name: 1 to 64 characters among letters, digits, `.`, `-`, `_`, `@`.
    pub username: String,
    /// Password (at least 10 characters). Stored as an argon2id hash only.
    pub password: String,
    /// Role.
    pub role: Role,
    /// Slugs of the sites the role is limited to (none: the whole campus).
    pub sites: Vec<String>,
}

/// Changes to a user.
#[derive(Debug, Clone, Default)]
pub struct UserChanges {
    /// New password.
    pub password: Option<String>,
    /// New role.
    pub role: Option<Role>,
    /// New site limits (slugs; an empty list: the whole campus).
    pub sites: Option<Vec<String>>,
}

/// A user, without the password hash.
#[derive(Debug, Clone)]
pub struct UserInfo {
    /// Id.
    pub id: UserId,
    /// Login name.
    pub username: String,
    /// Role.
    pub role: Role,
    /// Creation time.
    pub created_at: String,
    /// Whether the directory (LDAP) checks its password.
    pub directory: bool,
    /// Slugs of the sites its role is limited to (empty: the whole campus).
    pub sites: Vec<String>,
}

impl UserInfo {
    pub(super) fn of(state: &State, u: &User) -> Self {
        UserInfo {
            id: u.id,
            username: u.username.clone(),
            role: u.role,
            created_at: u.created_at.to_rfc3339(),
            directory: u.is_directory(),
            sites: site_rights::slugs_of(state, &u.sites),
        }
    }
}

pub(super) fn check_username(name: &str) -> Result<(), RegistryError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'@'));
    if ok {
        Ok(())
    } else {
        Err(RegistryError::invalid(
            "username",
            "1 to 64 characters among letters, digits, '.', '-', '_', '@'",
        ))
    }
}

impl Registry {
    fn hash_password(&self, password: &str) -> Result<String, RegistryError> {
        if password.chars().count() < MIN_PASSWORD {
            return Err(RegistryError::invalid("password", format!("at least {MIN_PASSWORD} characters")));
        }
        let salt_bytes: [u8; 16] = self.keys.random()?;
        let salt = SaltString::encode_b64(&salt_bytes)
            .map_err(|e| RegistryError::invalid("password", e.to_string()))?;
        // Argon2::default() is argon2id, version 0x13, with the RFC 9106 second recommended
        // parameters (19 MiB, 2 passes).
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| RegistryError::invalid("password", e.to_string()))
    }

    /// Every user.
    pub fn users(&self) -> Vec<UserInfo> {
        let state = self.state.read();
        let mut v: Vec<UserInfo> = state.users.values().map(|u| UserInfo::of(&state, u)).collect();
        v.sort_by(|a, b| a.username.cmp(&b.username));
        v
    }

    /// A user.
    pub fn user(&self, id: UserId) -> Result<UserInfo, RegistryError> {
        let state = self.state.read();
        state
            .users
            .get(&id)
            .map(|u| UserInfo::of(&state, u))
            .ok_or_else(|| RegistryError::not_found(format!("user {}", id.0)))
    }

    /// Creates a user.
    pub fn create_user(&self, input: NewUser) -> Result<UserInfo, RegistryError> {
        check_username(&input.username)?;
        let password_hash = self.hash_password(&input.password)?;
        self.mutate(|state| {
            if state.users.values().any(|u| u.username.eq_ignore_ascii_case(&input.username)) {
                return Err(RegistryError::conflict(format!("user {:?} exists", input.username)));
            }
            let user = User {
                id: UserId(new_uuid()),
                username: input.username.clone(),
                password_hash: password_hash.clone(),
                role: input.role,
                created_at: Timestamp::now(),
                sites: site_rights::resolve_grants(state, input.role, &input.sites, &[])?,
            };
            let view = UserInfo::of(state, &user);
            Ok((vec![Write::Put(Record::User(user))], view))
        })
    }

    /// Changes a user's password or role.
    pub fn update_user(&self, id: UserId, patch: UserChanges) -> Result<UserInfo, RegistryError> {
        let hash = patch.password.as_deref().map(|p| self.hash_password(p)).transpose()?;
        self.mutate(|state| {
            let mut user = state
                .users
                .get(&id)
                .cloned()
                .ok_or_else(|| RegistryError::not_found(format!("user {}", id.0)))?;
            if let Some(h) = hash.clone() {
                user.password_hash = h;
            }
            if let Some(r) = patch.role {
                user.role = r;
            }
            if let Some(sites) = &patch.sites {
                user.sites = site_rights::resolve_grants(state, user.role, sites, &user.sites)?;
            } else if user.role == Role::Admin && !user.sites.is_empty() {
                return Err(RegistryError::invalid(
                    "role",
                    "an admin is campus-wide; clear the user's sites in the same change",
                ));
            }
            let view = UserInfo::of(state, &user);
            Ok((vec![Write::Put(Record::User(user))], view))
        })
    }

    /// Deletes a user.
    pub fn delete_user(&self, id: UserId) -> Result<(), RegistryError> {
        self.mutate(|state| {
            if !state.users.contains_key(&id) {
                return Err(RegistryError::not_found(format!("user {}", id.0)));
            }
            Ok((vec![Write::Delete(EntityKind::User, id.to_bytes())], ()))
        })
    }

    /// Makes sure someone can sign in to the dashboard on first start: when no user exists, the
    /// user `admin` is created with `configured` (from `NEOSENS_ADMIN_PASSWORD`) or a generated
    /// password, returned so the caller prints it, once.
    pub fn bootstrap_user(&self, configured: Option<&str>) -> Result<Option<String>, RegistryError> {
        if !self.state.read().users.is_empty() {
            return Ok(None);
        }
        let generated = match configured {
            Some(_) => None,
            None => Some(self.keys.new_token()?),
        };
        let password = configured.or(generated.as_deref()).unwrap_or_default().to_owned();
        let input = NewUser { username: "admin".into(), password, role: Role::Admin, sites: Vec::new() };
        self.create_user(input).map_err(|e| match e {
            RegistryError::Invalid { message, .. } => {
                RegistryError::invalid("NEOSENS_ADMIN_PASSWORD", message)
            }
            other => other,
        })?;
        Ok(generated)
    }

    /// The user with this id, as stored (for sessions: its current role).
    pub fn user_record(&self, id: UserId) -> Option<User> {
        self.state.read().users.get(&id).cloned()
    }

    /// The user with this name and password, if both match (constant-time hash comparison).
    ///
    /// An unknown name costs the same argon2id verification as a known one (against a fixed
    /// hash), so answer times do not tell which user names exist.
    pub fn verify_user(&self, username: &str, password: &str) -> Option<UserInfo> {
        static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let state = self.state.read();
        let user = state
            .users
            .values()
            .find(|u| u.username.eq_ignore_ascii_case(username))
            .map(|u| (u.password_hash.clone(), UserInfo::of(&state, u)));
        drop(state);
        let hash = match &user {
            Some((hash, _)) => hash.as_str(),
            None => DECOY.get_or_init(|| {
                let salt = SaltString::encode_b64(b"neosens-decoy-salt").expect("a valid salt");
                Argon2::default()
                    .hash_password(b"no user has this password", &salt)
                    .map(|h| h.to_string())
                    .unwrap_or_default()
            }),
        };
        let verified = PasswordHash::new(hash).is_ok_and(|p| verify_in_place(&p, password.as_bytes()));
        user.filter(|_| verified).map(|(_, info)| info)
    }
}

/// Verifies `password` against a PHC argon2 hash with this thread's own memory blocks (19 MiB
/// with the default parameters), allocated once and reused.
///
/// `PasswordVerifier::verify_password` allocates them anew each time; with glibc, a freed block
/// that size stays in the thread's arena (the mmap threshold rises to meet it), and a sign-in
/// flood left central at 376 MB resident (measured: `edge-agent/benches/attack_soak.rs`). Checks
/// run on the two password threads (`http::PASSWORD_THREADS`), so this holds at most 2 × 19 MiB.
fn verify_in_place(hash: &PasswordHash<'_>, password: &[u8]) -> bool {
    use argon2::password_hash::Output;
    thread_local! {
        static BLOCKS: std::cell::RefCell<Vec<argon2::Block>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else { return false };
    let Ok(algorithm) = argon2::Algorithm::try_from(hash.algorithm) else { return false };
    let version = match hash.version.map(argon2::Version::try_from) {
        None => argon2::Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let Ok(params) = argon2::Params::try_from(hash) else { return false };
    // Refuse parameters far above ours: a stored hash is ours, but a damaged one must not make
    // a sign-in allocate gigabytes.
    if params.m_cost() > 4 * argon2::Params::DEFAULT_M_COST || params.t_cost() > 16 {
        return false;
    }
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else { return false };
    let mut out = vec![0u8; expected.len()];
    let hashed = BLOCKS.with(|blocks| {
        let mut blocks = blocks.borrow_mut();
        blocks.resize(params.block_count(), argon2::Block::default());
        Argon2::new(algorithm, version, params.clone()).hash_password_into_with_memory(
            password,
            salt,
            &mut out,
            &mut blocks[..],
        )
    });
    // `Output` compares in constant time.
    hashed.is_ok() && Output::new(&out).is_ok_and(|computed| computed == expected)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::secrets::ServerKeys;
    use crate::store::RedbStore;

    #[test]
    fn passwords_are_argon2id_and_verify() {
        let dir = tempfile::tempdir().unwrap();
        let keys = Arc::new(ServerKeys::load_or_create(dir.path()).unwrap());
        let registry = Registry::open(Arc::new(RedbStore::open(dir.path()).unwrap()), keys).unwrap();
        let u = registry
            .create_user(NewUser {
                username: "alice".into(),
                password: "correct horse".into(),
                role: Role::Operator,
                sites: Vec::new(),
            })
            .unwrap();
        let stored = registry.state.read().users[&u.id].password_hash.clone();
        assert!(stored.starts_with("$argon2id$v=19$"), "{stored}");
        assert_eq!(registry.verify_user("alice", "correct horse").map(|v| v.id), Some(u.id));
        assert_eq!(registry.verify_user("ALICE", "correct horse").map(|v| v.id), Some(u.id));
        assert!(registry.verify_user("alice", "wrong horse!").is_none());
        assert!(registry.verify_user("bob", "correct horse").is_none());
        // The in-place check agrees with the crate's own, and refuses what it cannot afford.
        let hash = PasswordHash::new(&stored).unwrap();
        assert!(verify_in_place(&hash, b"correct horse") && !verify_in_place(&hash, b"correct horsf"));
        let greedy = stored.replace("m=19456", "m=4194304");
        assert!(!verify_in_place(&PasswordHash::new(&greedy).unwrap(), b"correct horse"), "4 GiB refused");
        let short = registry.create_user(NewUser {
            username: "b".into(),
            password: "short".into(),
            role: Role::Viewer,
            sites: Vec::new(),
        });
        assert!(matches!(short, Err(RegistryError::Invalid { ref field, .. }) if field == "password"));
        let dup = registry.create_user(NewUser {
            username: "Alice".into(),
            password: "0123456789".into(),
            role: Role::Viewer,
            sites: Vec::new(),
        });
        assert!(matches!(dup, Err(RegistryError::Conflict { .. })));
        registry
            .update_user(
                u.id,
                UserChanges { password: Some("battery staple".into()), ..UserChanges::default() },
            )
            .unwrap();
        assert!(registry.verify_user("alice", "correct horse").is_none());
        assert!(registry.verify_user("alice", "battery staple").is_some());
    }
}
