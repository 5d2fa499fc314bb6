//! `GET /device/credentials?mac=…` answer (§3.1).

use alloc::format;
use alloc::string::String;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::json::{get_str_strict, parse_object};
use crate::{Error, pyjson};

/// The MQTT login of a device, its password until it has been delivered once, and a broker to
/// move the device to.
///
/// Printed as the 2016 server did: keys `login`, `password`, `server`, `port` in that order, Python
/// separators, absent keys omitted — never `"password": null`, which the firmware would take as
/// "present" and store as a NULL password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    /// The MQTT username (`senso_<12 hex>` for MAC devices). Always sent.
    pub login: String,
    /// The MQTT password: sent exactly once, until the device is marked delivered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Broker host to move the device to. The firmware keeps it for good once received.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// Broker port (a JSON integer: the firmware reads a string as 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

impl Credentials {
    /// Credentials with a login and, while undelivered, the password; `mqtt` moves the device to
    /// a custom broker (the 2016 server sent `server` and `port` together or not at all).
    pub fn new(login: String, password: Option<String>, mqtt: Option<(String, u16)>) -> Self {
        let (server, port) = match mqtt {
            Some((server, port)) => (Some(server), Some(port)),
            None => (None, None),
        };
        Credentials { login, password, server, port }
    }

    /// The exact body the 2016 server sent.
    pub fn to_legacy_json(&self) -> String {
        let mut map = serde_json::Map::new();
        map.insert("login".into(), Value::String(self.login.clone()));
        if let Some(p) = &self.password {
            map.insert("password".into(), Value::String(p.clone()));
        }
        if let Some(s) = &self.server {
            map.insert("server".into(), Value::String(s.clone()));
        }
        if let Some(p) = self.port {
            map.insert("port".into(), Value::from(p));
        }
        pyjson::to_string(&Value::Object(map))
    }

    /// Parses an answer as a device would, but strictly on types: `login` is a required string,
    /// `password`/`server` optional strings, `port` an optional integer in 0..=65535.
    pub fn parse(body: &[u8]) -> Result<Self, Error> {
        let map = parse_object(body)?;
        let login =
            get_str_strict(&map, "login")?.ok_or_else(|| Error::InvalidJson("missing 'login'".into()))?;
        let password = get_str_strict(&map, "password")?;
        let server = get_str_strict(&map, "server")?;
        let port = match map.get("port") {
            None => None,
            Some(v) => Some(v.as_u64().and_then(|p| u16::try_from(p).ok()).ok_or_else(|| {
                Error::InvalidJson(format!("'port' must be an integer in 0..=65535, got {v}"))
            })?),
        };
        Ok(Credentials { login, password, server, port })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOGIN: &str = "senso_240ac4123456";
    const PASSWORD: &str = "0f8e6b0a-2c1d-4e8f-9a7b-3c2d1e0f4a5b";

    #[test]
    fn exact_bytes_of_the_spec_examples() {
        let first = Credentials::new(LOGIN.into(), Some(PASSWORD.into()), None);
        assert_eq!(
            first.to_legacy_json(),
            r#"{"login": "senso_240ac4123456", "password": "0f8e6b0a-2c1d-4e8f-9a7b-3c2d1e0f4a5b"}"#
        );
        let later = Credentials::new(LOGIN.into(), None, None);
        assert_eq!(later.to_legacy_json(), r#"{"login": "senso_240ac4123456"}"#);
        let moved = Credentials::new(LOGIN.into(), None, Some(("neocampus.univ-tlse3.fr".into(), 10883)));
        assert_eq!(
            moved.to_legacy_json(),
            r#"{"login": "senso_240ac4123456", "server": "neocampus.univ-tlse3.fr", "port": 10883}"#
        );
        let all = Credentials::new(LOGIN.into(), Some("p".into()), Some(("h".into(), 1883)));
        assert_eq!(
            all.to_legacy_json(),
            r#"{"login": "senso_240ac4123456", "password": "p", "server": "h", "port": 1883}"#
        );
    }

    #[test]
    fn parses_what_it_prints() {
        for c in [
            Credentials::new(LOGIN.into(), Some(PASSWORD.into()), None),
            Credentials::new(LOGIN.into(), None, Some(("h".into(), 10883))),
        ] {
            assert_eq!(Credentials::parse(c.to_legacy_json().as_bytes()), Ok(c));
        }
    }

    #[test]
    fn refuses_malformed_answers() {
        let cases = [
            "",
            "[]",
            "{",
            r#"{"password": "p"}"#,
            r#"{"login": 5.5e300, "x": [}"#,
            r#"{"login": null}"#,
            r#"{"login": "l", "password": null}"#,
            r#"{"login": "l", "port": "1883"}"#,
            r#"{"login": "l", "port": 70000}"#,
            r#"{"login": "l", "port": -1}"#,
            r#"{"login": "l", "server": 3}"#,
        ];
        for input in cases {
            assert!(Credentials::parse(input.as_bytes()).is_err(), "input {input:?}");
        }
    }
}
