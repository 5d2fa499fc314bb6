//! `mqtt://[user[:password]@]host[:port]` and `mqtts://…` broker addresses.

use std::sync::Arc;

/// A parsed broker address.
#[derive(Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    /// Host name or address.
    pub host: String,
    /// Port (1883 for `mqtt`, 8883 for `mqtts` by default).
    pub port: u16,
    /// Whether to use TLS.
    pub tls: bool,
    /// Username and password, percent-decoded.
    pub credentials: Option<(String, String)>,
}

impl std::fmt::Debug for BrokerUrl {
    /// Never prints the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        let user = self.credentials.as_ref().map(|(u, _)| format!("{u}:***@")).unwrap_or_default();
        write!(f, "{scheme}://{user}{}:{}", self.host, self.port)
    }
}

/// A broker URL that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("invalid broker URL {url:?}: {reason} (expected mqtt://[user:password@]host[:port] or mqtts://…)")]
pub struct UrlError {
    url: String,
    reason: String,
}

impl std::str::FromStr for BrokerUrl {
    type Err = UrlError;

    fn from_str(s: &str) -> Result<Self, UrlError> {
        let fail = |reason: &str| UrlError { url: redact(s), reason: reason.to_owned() };
        let url = url::Url::parse(s).map_err(|e| fail(&e.to_string()))?;
        let tls = match url.scheme() {
            "mqtt" | "tcp" => false,
            "mqtts" | "ssl" => true,
            other => return Err(fail(&format!("unknown scheme {other:?}"))),
        };
        let host = url.host_str().filter(|h| !h.is_empty()).ok_or_else(|| fail("no host"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
        if url.path() != "" && url.path() != "/" {
            return Err(fail("a broker URL has no path"));
        }
        // Userinfo is percent-encoded (RFC 3986 §3.2.1), not form-encoded: a `+` is a plus sign.
        let decode = |part: &str, what: &str| {
            percent_encoding::percent_decode_str(part)
                .decode_utf8()
                .map(|v| v.into_owned())
                .map_err(|_| fail(&format!("the {what} is not UTF-8 once percent-decoded")))
        };
        let credentials = if url.username().is_empty() {
            None
        } else {
            let user = decode(url.username(), "user name")?;
            let pass = url.password().map(|p| decode(p, "password")).transpose()?.unwrap_or_default();
            Some((user, pass))
        };
        Ok(BrokerUrl { host, port: url.port().unwrap_or(if tls { 8883 } else { 1883 }), tls, credentials })
    }
}

/// The URL with its password hidden, for error messages.
fn redact(s: &str) -> String {
    match url::Url::parse(s) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => s.to_owned(),
    }
}

impl BrokerUrl {
    /// The rustls client configuration for `mqtts`: the system's trusted roots, ring provider.
    pub fn tls_config(&self) -> Option<Arc<rustls::ClientConfig>> {
        if !self.tls {
            return None;
        }
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .ok()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Some(Arc::new(config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_broker_urls() {
        let u: BrokerUrl = "mqtt://neosens:p%40ss@broker.example:1884".parse().unwrap();
        assert_eq!((u.host.as_str(), u.port, u.tls), ("broker.example", 1884, false));
        assert_eq!(u.credentials, Some(("neosens".into(), "p@ss".into())));
        assert_eq!(format!("{u:?}"), "mqtt://neosens:***@broker.example:1884");
        let d: BrokerUrl = "mqtt://127.0.0.1".parse().unwrap();
        assert_eq!((d.port, d.credentials), (1883, None));
        let t: BrokerUrl = "mqtts://[::1]".parse().unwrap();
        assert_eq!((t.host.as_str(), t.port, t.tls), ("::1", 8883, true));
        assert!(t.tls_config().is_some());
        for bad in ["", "http://x", "mqtt://", "mqtt://h:99999", "mqtt://h/path", "broker:1883"] {
            assert!(bad.parse::<BrokerUrl>().is_err(), "{bad:?}");
        }
        let err = "http://u:secret@h".parse::<BrokerUrl>().unwrap_err().to_string();
        assert!(!err.contains("secret"), "{err}");
    }

    #[test]
    fn credentials_are_percent_decoded_not_form_decoded() {
        // A `+` in a password stays a plus sign (form decoding made it a space).
        let u: BrokerUrl = "mqtt://central:a+b%2Bc%20d@h".parse().unwrap();
        assert_eq!(u.credentials, Some(("central".into(), "a+b+c d".into())));
        let u: BrokerUrl = "mqtt://us%3Aer+1:%C3%A9t%C3%A9@h".parse().unwrap();
        assert_eq!(u.credentials, Some(("us:er+1".into(), "été".into())));
        let u: BrokerUrl = "mqtt://only-user@h".parse().unwrap();
        assert_eq!(u.credentials, Some(("only-user".into(), String::new())));
        // Bytes that are not UTF-8 are refused by name, without echoing the password.
        let err = "mqtt://u:%FF%FEsecret@h".parse::<BrokerUrl>().unwrap_err().to_string();
        assert!(err.contains("password is not UTF-8"), "{err}");
        assert!(!err.contains("secret"), "{err}");
    }
}
