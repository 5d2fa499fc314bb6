//! What every server of the legacy device paths (central, and the gateways' local proxy) reads
//! the same way: the `mac` of `/device/credentials`, Basic credentials, and the answers.
//!
//! Spec: `legacy-sensocampus.md` §3. Devices only look at the status code, so every refusal is
//! `403` with an empty body; answers are JSON with `Content-Type: application/json`.

use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use neosens_protocol::Mac;

/// The last value of `name` in a form-encoded string (Django's `QueryDict.get`).
pub fn form_value(encoded: &[u8], name: &str) -> Option<String> {
    form_urlencoded::parse(encoded).filter(|(k, _)| k == name).last().map(|(_, v)| v.into_owned())
}

/// The MAC of a `/device/credentials` request: `mac` from the form body of a POST, from the
/// query string otherwise; at most 17 characters (the 2016 form field's `max_length`).
pub fn credentials_mac(method: &Method, query: Option<&str>, body: &[u8]) -> Option<Mac> {
    let raw = if *method == Method::POST {
        form_value(body, "mac")
    } else {
        query.and_then(|q| form_value(q.as_bytes(), "mac"))
    };
    raw.filter(|m| m.chars().count() <= 17).and_then(|m| m.parse::<Mac>().ok())
}

/// `login`, `password` of an `Authorization: Basic …` header (scheme in any case, split on the
/// first `:`), as the 2016 `device_auth` decorator read them.
pub fn basic_auth(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (login, password) = text.split_once(':')?;
    Some((login.to_owned(), password.to_owned()))
}

/// The fields of a `/device/logger` form body (Python's `logging.handlers.HTTPHandler` posts a
/// LogRecord's attributes form-encoded); `None` when they do not make one.
pub fn log_form(body: &[u8]) -> Option<neosens_protocol::legacy::LogRecord> {
    let fields: serde_json::Map<String, serde_json::Value> = form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), serde_json::Value::String(v.into_owned())))
        .collect();
    serde_json::from_value(serde_json::Value::Object(fields)).ok()
}

/// The legacy refusal: 403, empty body.
pub fn forbidden() -> Response {
    StatusCode::FORBIDDEN.into_response()
}

/// A legacy JSON answer.
pub fn json_body(body: String) -> Response {
    ([(CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_macs_and_basic_credentials_like_2016() {
        let mac = credentials_mac(&Method::GET, Some("mac=24%3A0A%3Ac4%3A12%3A34%3A56"), b"").unwrap();
        assert_eq!(mac.to_string(), "24:0A:C4:12:34:56");
        assert!(credentials_mac(&Method::POST, None, b"mac=24:0a:c4:12:34:56").is_some());
        assert!(credentials_mac(&Method::GET, Some("mac=24:0a:c4:12:34:56:7"), b"").is_none(), "18 chars");
        assert!(credentials_mac(&Method::GET, Some("mac=zz"), b"").is_none());
        assert!(
            credentials_mac(&Method::GET, None, b"mac=24:0a:c4:12:34:56").is_none(),
            "GET reads the query"
        );
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_static("basic c2Vuc286YTpi"));
        assert_eq!(basic_auth(&h), Some(("senso".into(), "a:b".into())));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        assert_eq!(basic_auth(&h), None);
        h.insert(AUTHORIZATION, HeaderValue::from_static("Basic !!!"));
        assert_eq!(basic_auth(&h), None);
    }
}
