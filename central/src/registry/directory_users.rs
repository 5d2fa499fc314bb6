//! Users who sign in against the university's directory (LDAP): they have a record here, so
//! sessions, roles and the audit trail work as for anyone, but no password — their `password_hash`
//! holds a mark that no password verifies (as `!` in `/etc/shadow`), and their role follows their
//! directory groups at each sign-in.

use super::users::check_username;
use super::{Registry, RegistryError, UserInfo};
use crate::model::{Record, Role, Timestamp, User, UserId, new_uuid};
use crate::store::Write;

/// What a directory user's `password_hash` holds: not a PHC string, so it never verifies.
pub const DIRECTORY_PASSWORD_MARK: &str = "!directory";

/// Where a user's password is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserSource {
    /// Here, against an argon2id hash (local accounts, the break-glass `admin`).
    Local,
    /// In the directory.
    Directory,
}

impl User {
    /// Whether the directory checks this user's password.
    pub fn is_directory(&self) -> bool {
        self.password_hash == DIRECTORY_PASSWORD_MARK
    }
}

impl Registry {
    /// Where `username`'s password is checked, if such a user exists (any case).
    pub fn user_source(&self, username: &str) -> Option<UserSource> {
        let state = self.state.read();
        let user = state.users.values().find(|u| u.username.eq_ignore_ascii_case(username))?;
        Some(if user.is_directory() { UserSource::Directory } else { UserSource::Local })
    }

    /// After the directory accepted `username` with `role`, limited to the sites named `sites`
    /// (slugs; none: the whole campus): its record, created at the first sign-in, its role and
    /// sites updated at the next ones. A local user of that name is never taken over.
    pub fn directory_sign_in(
        &self,
        username: &str,
        role: Role,
        sites: &[String],
    ) -> Result<UserInfo, RegistryError> {
        check_username(username)?;
        self.mutate(|state| {
            let sites = super::site_rights::resolve_grants(state, role, sites, &[])?;
            let existing = state.users.values().find(|u| u.username.eq_ignore_ascii_case(username));
            let user = match existing {
                Some(u) if !u.is_directory() => {
                    return Err(RegistryError::conflict(format!(
                        "{username:?} is a local user: the directory does not sign it in"
                    )));
                }
                Some(u) if u.role == role && u.sites == sites => {
                    return Ok((Vec::new(), UserInfo::of(state, u)));
                }
                Some(u) => User { role, sites, ..u.clone() },
                None => User {
                    id: UserId(new_uuid()),
                    username: username.to_owned(),
                    password_hash: DIRECTORY_PASSWORD_MARK.to_owned(),
                    role,
                    created_at: Timestamp::now(),
                    sites,
                },
            };
            let info = UserInfo::of(state, &user);
            Ok((vec![Write::Put(Record::User(user))], info))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{NewUser, test_registry};

    #[test]
    fn a_directory_user_is_created_then_follows_its_groups_and_never_verifies_locally() {
        let dir = tempfile::tempdir().unwrap();
        let (registry, _, _) = test_registry(dir.path(), 0);
        assert_eq!(registry.user_source("alice"), None);
        let first = registry.directory_sign_in("alice", Role::Operator, &[]).unwrap();
        assert_eq!((first.role, first.directory), (Role::Operator, true));
        assert_eq!(registry.user_source("ALICE"), Some(UserSource::Directory));
        let again = registry.directory_sign_in("Alice", Role::Admin, &[]).unwrap();
        assert_eq!((again.id, again.role), (first.id, Role::Admin));
        let limited = registry.directory_sign_in("alice", Role::Operator, &["ut3".into()]).unwrap();
        assert_eq!((limited.id, limited.sites.as_slice()), (first.id, ["ut3".to_owned()].as_slice()));
        assert!(registry.directory_sign_in("alice", Role::Operator, &["nowhere".into()]).is_err());
        assert!(registry.verify_user("alice", DIRECTORY_PASSWORD_MARK).is_none());
        assert!(registry.verify_user("alice", "").is_none());
    }

    #[test]
    fn a_local_user_is_not_taken_over_by_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let (registry, _, _) = test_registry(dir.path(), 0);
        registry
            .create_user(NewUser {
                username: "admin".into(),
                password: "break glass pw".into(),
                role: Role::Admin,
                sites: Vec::new(),
            })
            .unwrap();
        assert_eq!(registry.user_source("admin"), Some(UserSource::Local));
        assert!(matches!(
            registry.directory_sign_in("admin", Role::Viewer, &[]),
            Err(RegistryError::Conflict { .. })
        ));
        assert!(registry.directory_sign_in("bad name!", Role::Viewer, &[]).is_err());
    }
}
