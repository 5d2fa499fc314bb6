//! A bearer token for the operational endpoints (`/metrics`, `/readyz`): they tell a stranger
//! how many devices there are, which gateways are down and what the broker link does. Open by
//! default (a campus scraper on the same network), closed with `[http] metrics_token`.

use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Shortest token accepted (as for the admin token: guessing must be hopeless).
pub const MIN_SCRAPE_TOKEN: usize = 16;

/// The token `/metrics` and `/readyz` require, if any; only its SHA-256 digest is kept, and
/// digests are compared (so the comparison's time tells nothing about the token).
#[derive(Clone, Default)]
pub struct ScrapeToken {
    digest: Option<[u8; 32]>,
}

impl std::fmt::Debug for ScrapeToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.digest.is_some() { "ScrapeToken(required)" } else { "ScrapeToken(open)" })
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref());
    out
}

impl ScrapeToken {
    /// Open (`None`), or requiring `token`; an error names the setting when it is too short.
    pub fn new(token: Option<&str>) -> Result<Self, String> {
        match token {
            None => Ok(ScrapeToken::default()),
            Some(t) if t.len() < MIN_SCRAPE_TOKEN => {
                Err(format!("[http] metrics_token: at least {MIN_SCRAPE_TOKEN} characters"))
            }
            Some(t) => Ok(ScrapeToken { digest: Some(digest(t.as_bytes())) }),
        }
    }

    /// Whether a request with these headers may read (`Authorization: Bearer <token>`, as
    /// Prometheus sends with `authorization: {credentials: …}`).
    pub fn allows(&self, headers: &HeaderMap) -> bool {
        let Some(expected) = &self.digest else { return true };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        given.is_some_and(|g| digest(g.as_bytes()) == *expected)
    }

    /// A middleware answering 401 (with `WWW-Authenticate: Bearer`) to requests it does not
    /// allow: `router.route_layer(axum::middleware::from_fn(move |r, n| t.clone().guard(r, n)))`.
    pub async fn guard(self, request: Request, next: Next) -> Response {
        if self.allows(request.headers()) {
            next.run(request).await
        } else {
            (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")], "a bearer token is required\n")
                .into_response()
        }
    }
}

/// `routes` behind `token` (unchanged when it is open).
pub fn guarded<S: Clone + Send + Sync + 'static>(
    routes: axum::Router<S>,
    token: ScrapeToken,
) -> axum::Router<S> {
    if token.digest.is_none() {
        return routes;
    }
    routes.route_layer(axum::middleware::from_fn(move |request: Request, next: Next| {
        token.clone().guard(request, next)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, v.parse().unwrap());
        h
    }

    #[test]
    fn open_by_default_and_exact_when_set() {
        assert!(ScrapeToken::new(None).unwrap().allows(&HeaderMap::new()));
        assert!(ScrapeToken::new(Some("short")).unwrap_err().contains("metrics_token"));
        let t = ScrapeToken::new(Some("scrape-token-0123456789")).unwrap();
        assert!(t.allows(&bearer("Bearer scrape-token-0123456789")));
        for wrong in ["Bearer scrape-token-012345678", "Basic c2NyYXBl", "Bearer ", "scrape-token-0123456789"]
        {
            assert!(!t.allows(&bearer(wrong)), "{wrong}");
        }
        assert!(!t.allows(&HeaderMap::new()));
        assert_eq!(format!("{t:?}"), "ScrapeToken(required)", "never the token");
    }
}
