//! Dashboard sessions: a user signs in with a password (argon2id) and gets an HttpOnly,
//! SameSite=Strict cookie; requests that change something must also carry the session's CSRF
//! token in `X-CSRF-Token` (double protection: a cross-site page neither sends the cookie nor
//! knows the token).
//!
//! Sessions live in memory — a restart of central signs everyone out, which is the safe failure
//! — or, when replicas share a PostgreSQL store, in the database (the SHA-256 of each token,
//! never the token), so that any replica behind the load balancer knows them and a sign-out or
//! a password change ends them everywhere. The session's role is read from the user record at
//! each request, so a demotion or a deleted user takes effect at once.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine;
use parking_lot::Mutex;
use ring::rand::{SecureRandom, SystemRandom};

use crate::config::AuthConfig;
use crate::model::UserId;

/// Name of the session cookie.
pub(crate) const COOKIE: &str = "neosens_session";

/// Header carrying the CSRF token on state-changing requests.
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";

/// Sessions kept at most; the least recently used goes first beyond this.
const MAX_SESSIONS: usize = 10_000;

#[derive(Debug, Clone)]
struct Session {
    user: UserId,
    csrf: String,
    last_used: Instant,
}

/// A signed-in session, as a request sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// The user.
    pub user: UserId,
    /// The token state-changing requests must repeat in `X-CSRF-Token`.
    pub csrf: String,
}

/// Sign-in failures per user name: 5 free in 15 min, then locks from 1 s doubling to 5 min.
const USER_POLICY: super::throttle::Policy = super::throttle::Policy {
    free_failures: 5,
    window: Duration::from_secs(900),
    max_lock: Duration::from_secs(300),
    max_keys: 10_000,
};

/// Sign-in failures per client address: 20 free in 15 min (several people behind one NAT),
/// then the same locks.
const CLIENT_POLICY: super::throttle::Policy = super::throttle::Policy { free_failures: 20, ..USER_POLICY };

/// A shared session's last use is written at most this often (not at every request).
const REFRESH: Duration = Duration::from_secs(60);

/// The open sessions, and the sign-in throttles.
pub struct Sessions {
    /// Sign-in failures per user name (lower-cased).
    pub users: super::throttle::SignInThrottle,
    /// Sign-in failures per client address.
    pub clients: super::throttle::SignInThrottle,
    by_token: Mutex<HashMap<String, Session>>,
    idle: Duration,
    secure_cookie: bool,
    random: SystemRandom,
    /// Where sessions live when replicas share the store (`None`: in `by_token`).
    shared: Option<std::sync::Arc<dyn crate::store::Store>>,
}

fn token_hash(token: &str) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn random_token(random: &SystemRandom) -> String {
    let mut bytes = [0u8; 32];
    // The system RNG fails only when the OS has none: nothing sensible can continue then.
    random.fill(&mut bytes).expect("the operating system's random number generator failed");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Compares two secrets in time independent of where they differ.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Sessions {
    /// No sessions yet; kept in this process.
    pub fn new(config: &AuthConfig) -> Self {
        use super::throttle::{SignInThrottle, Throttle};
        Sessions {
            users: SignInThrottle::Memory(Throttle::new(USER_POLICY)),
            clients: SignInThrottle::Memory(Throttle::new(CLIENT_POLICY)),
            by_token: Mutex::new(HashMap::new()),
            idle: Duration::from_secs(u64::from(config.session_idle_minutes.max(1)) * 60),
            secure_cookie: config.secure_cookie,
            random: SystemRandom::new(),
            shared: None,
        }
    }

    /// Sessions and sign-in throttles kept in `store`, which other replicas share.
    pub fn shared(config: &AuthConfig, store: std::sync::Arc<dyn crate::store::Store>) -> Self {
        use super::throttle::SignInThrottle;
        let throttle =
            |scope, policy| SignInThrottle::Shared { scope, policy, store: std::sync::Arc::clone(&store) };
        Sessions {
            users: throttle("users", USER_POLICY),
            clients: throttle("clients", CLIENT_POLICY),
            shared: Some(std::sync::Arc::clone(&store)),
            ..Sessions::new(config)
        }
    }

    /// Opens a session for `user`; returns the cookie value and the session.
    pub async fn open(&self, user: UserId) -> Result<(String, SessionInfo), crate::store::StoreError> {
        let token = random_token(&self.random);
        let csrf = random_token(&self.random);
        if let Some(store) = self.shared.clone() {
            let (hash, idle) = (token_hash(&token), millis(self.idle));
            let stored = crate::store::StoredSession { user: *user.0.as_bytes(), csrf: csrf.clone() };
            let now = crate::model::Timestamp::now().millis();
            neosens_runtime::blocking::run(move || {
                store.put_session(&hash, &stored, now, idle, MAX_SESSIONS)
            })
            .await?;
            return Ok((token, SessionInfo { user, csrf }));
        }
        let now = Instant::now();
        let mut map = self.by_token.lock();
        map.retain(|_, s| now.duration_since(s.last_used) < self.idle);
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map.iter().min_by_key(|(_, s)| s.last_used).map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(token.clone(), Session { user, csrf: csrf.clone(), last_used: now });
        Ok((token, SessionInfo { user, csrf }))
    }

    /// The live session of a cookie value, renewed (sliding idle timeout). A shared store that
    /// cannot be read signs the request out (logged).
    pub async fn touch(&self, token: &str) -> Option<SessionInfo> {
        if let Some(store) = self.shared.clone() {
            let (hash, idle, now) =
                (token_hash(token), millis(self.idle), crate::model::Timestamp::now().millis());
            let found = neosens_runtime::blocking::run(move || {
                store.touch_session(&hash, now, idle, millis(REFRESH))
            })
            .await
            .inspect_err(|e| tracing::warn!(error = %e, "cannot read the dashboard sessions"))
            .ok()??;
            let user = UserId(uuid::Uuid::from_bytes(found.user));
            return Some(SessionInfo { user, csrf: found.csrf });
        }
        let now = Instant::now();
        let mut map = self.by_token.lock();
        let session = map.get_mut(token)?;
        if now.duration_since(session.last_used) >= self.idle {
            map.remove(token);
            return None;
        }
        session.last_used = now;
        Some(SessionInfo { user: session.user, csrf: session.csrf.clone() })
    }

    /// Ends a session.
    pub async fn close(&self, token: &str) {
        self.by_token.lock().remove(token);
        self.forget(Some(token_hash(token)), None).await;
    }

    /// Ends every session of a user (password changed, user deleted).
    pub async fn close_user(&self, user: UserId) {
        self.by_token.lock().retain(|_, s| s.user != user);
        self.forget(None, Some(*user.0.as_bytes())).await;
    }

    async fn forget(&self, hash: Option<[u8; 32]>, user: Option<[u8; 16]>) {
        let Some(store) = self.shared.clone() else { return };
        if let Err(e) =
            neosens_runtime::blocking::run(move || store.delete_sessions(hash.as_ref(), user)).await
        {
            tracing::error!(error = %e, "cannot end dashboard sessions in the database");
        }
    }

    /// The `Set-Cookie` value that installs `token`.
    pub fn set_cookie(&self, token: &str) -> HeaderValue {
        let secure = if self.secure_cookie { "; Secure" } else { "" };
        let value = format!(
            "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            self.idle.as_secs()
        );
        HeaderValue::from_str(&value).expect("the cookie is made of base64url and ASCII attributes")
    }

    /// The `Set-Cookie` value that removes the cookie.
    pub fn clear_cookie(&self) -> HeaderValue {
        let secure = if self.secure_cookie { "; Secure" } else { "" };
        HeaderValue::from_str(&format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"))
            .expect("ASCII")
    }
}

/// The session cookie's value in a request, if any.
pub(crate) fn cookie_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|v| !v.is_empty())
}

/// Whether a request carries the session's CSRF token.
pub(crate) fn csrf_matches(headers: &HeaderMap, session: &SessionInfo) -> bool {
    headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|given| same_secret(given.trim(), &session.csrf))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions(idle_minutes: u32) -> Sessions {
        Sessions::new(&AuthConfig { session_idle_minutes: idle_minutes, ..AuthConfig::default() })
    }

    #[tokio::test]
    async fn a_session_is_found_by_its_cookie_and_closed() {
        let s = sessions(10);
        let user = UserId(uuid::Uuid::new_v4());
        let (token, info) = s.open(user).await.unwrap();
        assert_eq!(token.len(), 43, "32 random bytes in base64url");
        assert_ne!(token, info.csrf);
        assert_eq!(s.touch(&token).await, Some(info.clone()));
        assert_eq!(s.touch("forged").await, None);
        s.close(&token).await;
        assert_eq!(s.touch(&token).await, None);
        let (t2, _) = s.open(user).await.unwrap();
        s.close_user(user).await;
        assert_eq!(s.touch(&t2).await, None);
    }

    #[test]
    fn cookies_are_parsed_among_others_and_malformed_ones_ignored() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("theme=dark; neosens_session=abc ; x=1"));
        assert_eq!(cookie_token(&h), Some("abc"));
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("neosens_session=; junk; =; neosens_sessionx=1"));
        assert_eq!(cookie_token(&h), None);
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=b"));
        h.append(header::COOKIE, HeaderValue::from_static("neosens_session=second"));
        assert_eq!(cookie_token(&h), Some("second"));
    }

    #[test]
    fn the_csrf_token_must_match_exactly() {
        let info = SessionInfo { user: UserId(uuid::Uuid::nil()), csrf: "secret-token".into() };
        let mut h = HeaderMap::new();
        assert!(!csrf_matches(&h, &info));
        h.insert(CSRF_HEADER, HeaderValue::from_static("secret-tokem"));
        assert!(!csrf_matches(&h, &info));
        h.insert(CSRF_HEADER, HeaderValue::from_static("secret-token"));
        assert!(csrf_matches(&h, &info));
    }

    #[test]
    fn cookie_attributes_keep_it_away_from_scripts_and_other_sites() {
        let s = sessions(60);
        let v = s.set_cookie("tok");
        let v = v.to_str().unwrap();
        for attr in ["neosens_session=tok", "HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=3600"] {
            assert!(v.contains(attr), "{v}");
        }
        assert!(!v.contains("Secure"));
        let secure = Sessions::new(&AuthConfig { secure_cookie: true, ..AuthConfig::default() });
        assert!(secure.set_cookie("t").to_str().unwrap().ends_with("; Secure"));
    }
}
