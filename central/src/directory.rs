//! Sign-in against the university's directory (LDAP): find the person's entry, bind as it with
//! the password they typed (a *simple bind*, over LDAPS or StartTLS), read their groups, and map
//! them to a role.
//!
//! Local accounts are checked first and are never overridden (the `admin` created at first start
//! stays a break-glass account that works while the directory is down). A name with no local
//! account goes to the directory; on success it gets a record marked as a directory user
//! ([`crate::registry::DIRECTORY_PASSWORD_MARK`]), whose role follows its groups at each
//! sign-in. CAS or OpenID Connect would plug in at the same place: another [`DirectoryUser`]
//! source, the same record and role mapping (docs/security.md).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ldap3::{LdapConnAsync, LdapConnSettings, LdapError, Scope, SearchEntry, ldap_escape};
use serde::{Deserialize, Serialize};

use crate::model::Role;

/// `[ldap]`: where the directory is and how its groups map to roles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LdapConfig {
    /// `ldaps://ldap.univ-tlse3.fr` (TLS from the start) or `ldap://…` with `starttls = true`.
    pub url: String,
    /// Upgrade an `ldap://` connection with StartTLS before anything is sent.
    pub starttls: bool,
    /// Accept `ldap://` without StartTLS: passwords then cross the network in clear. Only for a
    /// directory on the same host.
    pub allow_plain: bool,
    /// A PEM file of certificate authorities to trust beside the system's (a campus CA).
    pub ca_file: Option<PathBuf>,
    /// The account that searches for people (`cn=neosens,ou=services,dc=…`); unset, an
    /// anonymous search.
    pub bind_dn: Option<String>,
    /// A file holding that account's password (e.g. a systemd credential); the environment
    /// variable `NEOSENS_LDAP_BIND_PASSWORD` wins over it.
    pub bind_password_file: Option<PathBuf>,
    /// Where people are searched (subtree).
    pub base_dn: String,
    /// How a person is found; `{username}` is replaced by the typed name, escaped (RFC 4515).
    pub user_filter: String,
    /// An attribute of the person's entry that lists its groups (`memberOf`); empty: none.
    pub group_attribute: String,
    /// Where groups are searched for the person, in addition; unset: not searched.
    pub group_base_dn: Option<String>,
    /// How the person's groups are found under `group_base_dn`; `{dn}` is the person's DN.
    pub group_filter: String,
    /// Seconds for connecting and for each operation.
    pub timeout_s: u32,
    /// Which groups give which role; a person gets the highest of theirs, and cannot sign in
    /// with none.
    pub groups: Vec<GroupRole>,
}

impl Default for LdapConfig {
    fn default() -> Self {
        LdapConfig {
            url: String::new(),
            starttls: false,
            allow_plain: false,
            ca_file: None,
            bind_dn: None,
            bind_password_file: None,
            base_dn: String::new(),
            user_filter: "(&(objectClass=person)(uid={username}))".into(),
            group_attribute: "memberOf".into(),
            group_base_dn: None,
            group_filter: "(&(objectClass=groupOfNames)(member={dn}))".into(),
            timeout_s: 5,
            groups: Vec::new(),
        }
    }
}

/// One group's role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupRole {
    /// The group's DN (compared without regard to case or spaces after commas).
    pub dn: String,
    /// `viewer`, `operator` or `admin`.
    pub role: Role,
    /// The slugs of the sites the role is limited to (`["carcassonne"]`); empty or absent: the
    /// whole campus. Never with `admin`, which is campus-wide.
    #[serde(default)]
    pub sites: Vec<String>,
}

/// Why a directory sign-in did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// Unknown name, wrong password, empty password, or a name that matches several people.
    #[error("wrong user name or password")]
    Refused,
    /// The person is known but in no group that has a role.
    #[error("signed in, but in no directory group that has a role in neosens: ask an administrator")]
    NoRole,
    /// The directory did not answer, or answered with an error.
    #[error("the directory is unreachable or failing: {0}")]
    Unavailable(String),
    /// [`MAX_CHECKS`] checks are already in flight, or one for this name.
    #[error("too many directory sign-ins at once")]
    Busy,
}

/// Directory checks in flight at most, and one per name; more are told to retry at once. So a
/// name's guesses run one after the other, each failure counted by the sign-in throttle before
/// the next can start, and the university's own lockout policy sees no more than neosens lets
/// through.
pub const MAX_CHECKS: usize = 4;

/// A person the directory accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryUser {
    /// Their entry.
    pub dn: String,
    /// The role of their groups.
    pub role: Role,
    /// The sites that role is limited to (slugs; empty: the whole campus).
    pub sites: Vec<String>,
}

/// The directory, ready to check sign-ins.
pub struct Directory {
    config: LdapConfig,
    tls: Arc<rustls::ClientConfig>,
    bind_password: Option<String>,
    checks: tokio::sync::Semaphore,
    /// Names being checked now (lower case), at most [`MAX_CHECKS`].
    in_flight: parking_lot::Mutex<std::collections::HashSet<String>>,
}

/// A name's place among the checks in flight, given back when the check ends.
struct InFlight<'a>(&'a Directory, String);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.lock().remove(&self.1);
    }
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory").field("url", &self.config.url).finish_non_exhaustive()
    }
}

/// A DN as compared: lower case, no spaces around `,` and `=`.
fn normal_dn(dn: &str) -> String {
    dn.split(',')
        .map(|rdn| rdn.split('=').map(str::trim).collect::<Vec<_>>().join("="))
        .collect::<Vec<_>>()
        .join(",")
        .to_lowercase()
}

/// The grant of `groups` in `mapping`: the highest role among the mapped groups; campus-wide
/// if a campus-wide group gives it, otherwise limited to the sites of the groups that give it
/// (a person has one role, on the campus or on some sites: lower grants are not kept beside it).
pub fn grant_of(mapping: &[GroupRole], groups: &[String]) -> Option<(Role, Vec<String>)> {
    let groups: Vec<String> = groups.iter().map(|g| normal_dn(g)).collect();
    let matched: Vec<&GroupRole> = mapping.iter().filter(|m| groups.contains(&normal_dn(&m.dn))).collect();
    let role = matched.iter().map(|m| m.role).max()?;
    let giving: Vec<&&GroupRole> = matched.iter().filter(|m| m.role == role).collect();
    if giving.iter().any(|m| m.sites.is_empty()) {
        return Some((role, Vec::new()));
    }
    let mut sites: Vec<String> =
        giving.iter().flat_map(|m| m.sites.iter().map(|s| s.to_lowercase())).collect();
    sites.sort();
    sites.dedup();
    Some((role, sites))
}

fn unavailable(e: LdapError) -> DirectoryError {
    DirectoryError::Unavailable(e.to_string())
}

/// LDAP result code 49: invalidCredentials (RFC 4511 §4.1.9).
const INVALID_CREDENTIALS: u32 = 49;

impl Directory {
    /// Checks the configuration and reads its files; errors say which key to fix.
    pub fn new(config: &LdapConfig) -> anyhow::Result<Self> {
        use anyhow::{Context, bail};
        let url = url::Url::parse(&config.url).with_context(|| format!("[ldap] url {:?}", config.url))?;
        match url.scheme() {
            "ldaps" if config.starttls => {
                bail!("[ldap] starttls is for ldap:// URLs; ldaps:// is TLS already")
            }
            "ldaps" => {}
            "ldap" if config.starttls => {}
            "ldap" if config.allow_plain => {
                let host = url.host_str().unwrap_or("");
                if !matches!(host, "localhost" | "127.0.0.1" | "[::1]" | "::1") {
                    bail!("[ldap] allow_plain is for a directory on this host (localhost): {host} is not");
                }
            }
            "ldap" => bail!(
                "[ldap] url is ldap:// without TLS: set starttls = true, use ldaps://, or (same host only) allow_plain = true"
            ),
            other => bail!("[ldap] url: {other}:// is not LDAP (ldap:// or ldaps://)"),
        }
        if config.base_dn.trim().is_empty() {
            bail!("[ldap] base_dn is empty: where are people searched?");
        }
        if !config.user_filter.contains("{username}") {
            bail!("[ldap] user_filter must contain {{username}}");
        }
        if config.group_base_dn.is_some() && !config.group_filter.contains("{dn}") {
            bail!("[ldap] group_filter must contain {{dn}}");
        }
        if config.groups.is_empty() {
            bail!("[ldap] has no [[ldap.groups]]: nobody could sign in");
        }
        if let Some(g) = config.groups.iter().find(|g| g.role == Role::Admin && !g.sites.is_empty()) {
            bail!("[[ldap.groups]] {:?}: admin is campus-wide; remove its sites or map it to operator", g.dn);
        }
        let bind_password = match (std::env::var("NEOSENS_LDAP_BIND_PASSWORD"), &config.bind_password_file) {
            (Ok(p), _) => Some(p),
            (Err(_), Some(file)) => Some(
                std::fs::read_to_string(file)
                    .with_context(|| format!("[ldap] bind_password_file {}", file.display()))?
                    .trim_end_matches(['\r', '\n'])
                    .to_owned(),
            ),
            (Err(_), None) => None,
        };
        if config.bind_dn.is_some() && bind_password.as_deref().is_none_or(str::is_empty) {
            bail!(
                "[ldap] bind_dn is set but no password: set bind_password_file or NEOSENS_LDAP_BIND_PASSWORD"
            );
        }
        let tls = tls_config(config.ca_file.as_deref())?;
        Ok(Directory {
            config: config.clone(),
            tls,
            bind_password,
            checks: tokio::sync::Semaphore::new(MAX_CHECKS),
            in_flight: parking_lot::Mutex::new(std::collections::HashSet::new()),
        })
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(u64::from(self.config.timeout_s.max(1)))
    }

    /// Checks `username` and `password` against the directory.
    pub async fn authenticate(
        &self,
        username: &str,
        password: &str,
    ) -> Result<DirectoryUser, DirectoryError> {
        // An empty password is an unauthenticated bind, which many servers accept (RFC 4513
        // §5.1.2): it must never count as a sign-in.
        if password.is_empty() || username.is_empty() {
            return Err(DirectoryError::Refused);
        }
        let _slot = self.checks.try_acquire().map_err(|_| DirectoryError::Busy)?;
        let name = username.to_lowercase();
        if !self.in_flight.lock().insert(name.clone()) {
            return Err(DirectoryError::Busy);
        }
        let _name = InFlight(self, name);
        let settings = LdapConnSettings::new()
            .set_conn_timeout(self.timeout())
            .set_starttls(self.config.starttls)
            .set_config(Arc::clone(&self.tls));
        let (conn, mut ldap) =
            LdapConnAsync::with_settings(settings, &self.config.url).await.map_err(unavailable)?;
        ldap3::drive!(conn);
        let outcome = self.check(&mut ldap, username, password).await;
        let _ = ldap.unbind().await;
        outcome
    }

    async fn service_bind(&self, ldap: &mut ldap3::Ldap) -> Result<(), DirectoryError> {
        if let (Some(dn), Some(pw)) = (&self.config.bind_dn, &self.bind_password) {
            let r = ldap.with_timeout(self.timeout()).simple_bind(dn, pw).await.map_err(unavailable)?;
            r.success()
                .map_err(|e| DirectoryError::Unavailable(format!("the search account's bind: {e}")))?;
        }
        Ok(())
    }

    async fn check(
        &self,
        ldap: &mut ldap3::Ldap,
        username: &str,
        password: &str,
    ) -> Result<DirectoryUser, DirectoryError> {
        self.service_bind(ldap).await?;
        let filter = self.config.user_filter.replace("{username}", &ldap_escape(username));
        let attrs: Vec<&str> = if self.config.group_attribute.is_empty() {
            vec!["1.1"]
        } else {
            vec![&self.config.group_attribute]
        };
        let (found, _) = ldap
            .with_timeout(self.timeout())
            .search(&self.config.base_dn, Scope::Subtree, &filter, attrs)
            .await
            .map_err(unavailable)?
            .success()
            .map_err(unavailable)?;
        let [entry] = <[_; 1]>::try_from(found).map_err(|found| {
            if found.len() > 1 {
                tracing::warn!(matches = found.len(), "a directory sign-in name matches several entries");
            }
            DirectoryError::Refused
        })?;
        let entry = SearchEntry::construct(entry);
        let bound =
            ldap.with_timeout(self.timeout()).simple_bind(&entry.dn, password).await.map_err(unavailable)?;
        if bound.rc == INVALID_CREDENTIALS {
            return Err(DirectoryError::Refused);
        }
        bound.success().map_err(unavailable)?;
        let mut groups: Vec<String> = entry
            .attrs
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(&self.config.group_attribute))
            .flat_map(|(_, v)| v.iter().cloned())
            .collect();
        if let Some(base) = &self.config.group_base_dn {
            self.service_bind(ldap).await?;
            let filter = self.config.group_filter.replace("{dn}", &ldap_escape(&entry.dn));
            let (found, _) = ldap
                .with_timeout(self.timeout())
                .search(base, Scope::Subtree, &filter, vec!["1.1"])
                .await
                .map_err(unavailable)?
                .success()
                .map_err(unavailable)?;
            groups.extend(found.into_iter().map(|e| SearchEntry::construct(e).dn));
        }
        let (role, sites) = grant_of(&self.config.groups, &groups).ok_or(DirectoryError::NoRole)?;
        Ok(DirectoryUser { dn: entry.dn, role, sites })
    }
}

/// The system's trusted roots, plus `ca_file`'s; the ring provider, as everywhere in neosens.
fn tls_config(ca_file: Option<&std::path::Path>) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    use anyhow::Context;
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(file) = ca_file {
        let mut added = 0;
        for cert in CertificateDer::pem_file_iter(file)
            .with_context(|| format!("[ldap] ca_file {}", file.display()))?
        {
            roots
                .add(cert.with_context(|| format!("[ldap] ca_file {}", file.display()))?)
                .with_context(|| format!("[ldap] ca_file {}: not a usable CA certificate", file.display()))?;
            added += 1;
        }
        if added == 0 {
            anyhow::bail!("[ldap] ca_file {} holds no PEM certificate", file.display());
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping() -> Vec<GroupRole> {
        vec![
            group("cn=neosens-operators,ou=groups,dc=example,dc=org", Role::Operator, &[]),
            group("cn=neosens-admins,ou=groups,dc=example,dc=org", Role::Admin, &[]),
        ]
    }

    fn group(dn: &str, role: Role, sites: &[&str]) -> GroupRole {
        GroupRole { dn: dn.into(), role, sites: sites.iter().map(|s| (*s).to_owned()).collect() }
    }

    #[test]
    fn site_groups_limit_the_role_unless_a_campus_group_gives_it() {
        let carcassonne =
            group("cn=carcassonne-ops,ou=groups,dc=example,dc=org", Role::Operator, &["Carcassonne"]);
        let albi = group("cn=albi-ops,ou=groups,dc=example,dc=org", Role::Operator, &["albi"]);
        let viewers = group("cn=viewers,ou=groups,dc=example,dc=org", Role::Viewer, &[]);
        let mapping = [mapping(), vec![carcassonne.clone(), albi.clone(), viewers.clone()]].concat();
        let of = |groups: &[&GroupRole]| {
            grant_of(&mapping, &groups.iter().map(|g| g.dn.clone()).collect::<Vec<_>>())
        };
        assert_eq!(of(&[&carcassonne]), Some((Role::Operator, vec!["carcassonne".to_owned()])));
        assert_eq!(
            of(&[&albi, &carcassonne, &viewers]),
            Some((Role::Operator, vec!["albi".to_owned(), "carcassonne".to_owned()])),
            "the highest role, on the union of the sites that give it"
        );
        assert_eq!(of(&[&viewers]), Some((Role::Viewer, Vec::new())));
        assert_eq!(of(&[&carcassonne, &mapping[0]]), Some((Role::Operator, Vec::new())), "campus-wide wins");
    }

    #[test]
    fn the_highest_role_of_the_mapped_groups_wins_whatever_the_case_and_spaces() {
        let groups = vec![
            "CN=neosens-operators, OU=Groups, DC=example, DC=org".to_owned(),
            "cn=staff,ou=groups,dc=example,dc=org".to_owned(),
        ];
        let role_of = |groups: &[String]| grant_of(&mapping(), groups).map(|(role, _)| role);
        assert_eq!(role_of(&groups), Some(Role::Operator));
        let both = [groups, vec!["cn=neosens-admins,ou=groups,dc=example,dc=org".to_owned()]].concat();
        assert_eq!(role_of(&both), Some(Role::Admin));
        assert_eq!(role_of(&["cn=staff,ou=groups,dc=example,dc=org".to_owned()]), None);
        assert_eq!(role_of(&[]), None);
    }

    fn config(url: &str) -> LdapConfig {
        LdapConfig {
            url: url.into(),
            base_dn: "dc=example,dc=org".into(),
            groups: mapping(),
            ..LdapConfig::default()
        }
    }

    #[test]
    fn a_configuration_that_would_leak_or_lock_everyone_out_is_refused_with_the_key_to_fix() {
        let err = |c: LdapConfig| Directory::new(&c).unwrap_err().to_string();
        assert!(err(config("ldap://ldap.example.org")).contains("starttls = true"));
        assert!(
            err(LdapConfig { starttls: true, ..config("ldaps://ldap.example.org") }).contains("TLS already")
        );
        assert!(err(config("http://ldap.example.org")).contains("not LDAP"));
        assert!(
            err(LdapConfig { groups: Vec::new(), ..config("ldaps://ldap.example.org") })
                .contains("[[ldap.groups]]")
        );
        assert!(
            err(LdapConfig { user_filter: "(uid=*)".into(), ..config("ldaps://x") }).contains("{username}")
        );
        let site_admin = vec![group("cn=a,dc=example,dc=org", Role::Admin, &["albi"])];
        assert!(err(LdapConfig { groups: site_admin, ..config("ldaps://x") }).contains("campus-wide"));
        assert!(
            err(LdapConfig { bind_dn: Some("cn=svc".into()), ..config("ldaps://x") })
                .contains("bind_password_file")
        );
        assert!(
            err(LdapConfig { ca_file: Some("/nonexistent.pem".into()), ..config("ldaps://x") })
                .contains("ca_file")
        );
        let empty = std::env::temp_dir().join(format!("neosens-empty-ldap-pw-{}", std::process::id()));
        std::fs::write(&empty, "\n").unwrap();
        let no_password = LdapConfig {
            bind_dn: Some("cn=svc".into()),
            bind_password_file: Some(empty.clone()),
            ..config("ldaps://x")
        };
        assert!(err(no_password).contains("no password"), "an empty password file is no anonymous bind");
        let _ = std::fs::remove_file(empty);
        assert!(
            err(LdapConfig { allow_plain: true, ..config("ldap://ldap.example.org") }).contains("this host")
        );
        assert!(Directory::new(&LdapConfig { allow_plain: true, ..config("ldap://127.0.0.1:389") }).is_ok());
        assert!(Directory::new(&config("ldaps://ldap.example.org")).is_ok());
        assert!(Directory::new(&LdapConfig { starttls: true, ..config("ldap://ldap.example.org") }).is_ok());
    }

    #[test]
    fn an_empty_password_is_refused_before_any_connection() {
        let directory = Directory::new(&config("ldaps://192.0.2.1:1")).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let out = runtime.block_on(directory.authenticate("alice", ""));
        assert!(matches!(out, Err(DirectoryError::Refused)), "{out:?}");
    }

    #[test]
    fn a_name_already_being_checked_is_told_to_retry_without_a_connection() {
        let directory = Directory::new(&config("ldaps://192.0.2.1:1")).unwrap();
        directory.in_flight.lock().insert("alice".into());
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let out = runtime.block_on(directory.authenticate("Alice", "a guess"));
        assert!(matches!(out, Err(DirectoryError::Busy)), "{out:?}");
        assert_eq!(directory.checks.available_permits(), MAX_CHECKS, "the slot is given back");
    }

    #[test]
    fn names_are_escaped_in_filters() {
        assert_eq!(ldap_escape("alice)(uid=*"), "alice\\29\\28uid=\\2a");
    }
}
