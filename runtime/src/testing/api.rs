//! A typed caller of a JSON API for the integration tests of both services: each call checks the
//! success status the API documents and reads the answer into the test's own wire structs, or
//! returns the API's error body as an [`ApiFailure`]. The resource methods (create a device, list
//! gateways …) live with each crate's tests, on a wrapper around [`JsonApi`], with wire structs
//! written on the test side — never the server's types, so that a field renamed on the server
//! fails a test instead of being followed by it.

use std::fmt;
use std::net::SocketAddr;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{RawResponse, http_json, try_http_json};

/// An API error answer: the status and `{"error": {"code", "message", "field"?, "details"?}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiFailure {
    /// HTTP status.
    pub status: u16,
    /// Stable machine-readable code (`conflict`, `invalid_field`, `schema_violation` …).
    pub code: String,
    /// For people.
    pub message: String,
    /// The offending field, for `invalid_field`.
    pub field: Option<String>,
    /// Schema violations, each with its JSON pointer (empty when the body has none).
    pub details: Vec<String>,
}

impl fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)?;
        if let Some(field) = &self.field {
            write!(f, " (field {field})")?;
        }
        Ok(())
    }
}

/// The error body's shape; parsed strictly (every error answer of the API has one).
#[derive(serde::Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(serde::Deserialize)]
struct ErrorDetail {
    code: String,
    message: String,
    field: Option<String>,
    #[serde(default)]
    details: Vec<String>,
}

impl ApiFailure {
    /// Reads an error answer; panics when the body is not the API's error shape (every refusal
    /// of the API is JSON that names the problem).
    pub fn from_answer(what: &str, status: u16, body: Value) -> Self {
        let parsed: ErrorBody = serde_json::from_value(body.clone())
            .unwrap_or_else(|e| panic!("{what}: {status} without an API error body ({e}): {body}"));
        let ErrorDetail { code, message, field, details } = parsed.error;
        ApiFailure { status, code, message, field, details }
    }
}

/// A call's outcome: the typed answer, or the API's refusal.
pub type ApiResult<T> = Result<T, ApiFailure>;

/// A list answer: `{"items": [...]}`.
#[derive(Debug, serde::Deserialize)]
pub struct Items<T> {
    /// The items.
    pub items: Vec<T>,
}

/// Reads a JSON body into `T`, panicking with the body when it does not fit (a wire change).
pub fn parse<T: DeserializeOwned>(what: &str, body: &Value) -> T {
    serde_json::from_value(body.clone())
        .unwrap_or_else(|e| panic!("{what}: the answer does not read as expected ({e}): {body}"))
}

/// Reads bytes (a raw answer's body, an MQTT payload) into `T`.
pub fn parse_bytes<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> T {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("{what}: not the expected JSON ({e}): {}", String::from_utf8_lossy(bytes)))
}

/// Reads the body of a raw response into `T`.
pub fn parse_raw<T: DeserializeOwned>(what: &str, response: &RawResponse) -> T {
    parse_bytes(what, &response.body)
}

/// An answer expected to be `success` with a body of type `T`, or an API error.
fn read_answer<T: DeserializeOwned>(what: &str, status: u16, answer: Value, success: u16) -> ApiResult<T> {
    if status == success {
        return Ok(parse(what, &answer));
    }
    assert!(status >= 400, "{what}: {status} where {success} was expected: {answer}");
    Err(ApiFailure::from_answer(what, status, answer))
}

/// A JSON API at `addr`, as the holder of `token` (or of none).
#[derive(Debug, Clone)]
pub struct JsonApi {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The bearer token sent, if any.
    pub token: Option<String>,
}

impl JsonApi {
    /// A caller with this bearer token, or without credentials.
    pub fn new(addr: SocketAddr, token: Option<&str>) -> Self {
        JsonApi { addr, token: token.map(str::to_owned) }
    }

    /// The escape hatch: any method, path and JSON body; the status and the parsed body (`null`
    /// when empty), unchecked.
    pub fn raw(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        http_json(self.addr, method, path, self.token.as_deref(), body.as_ref())
    }

    /// [`Self::raw`] that reports a transport failure (the server gone) instead of panicking.
    pub fn try_raw(&self, method: &str, path: &str, body: Option<Value>) -> Result<(u16, Value), String> {
        try_http_json(self.addr, method, path, self.token.as_deref(), body.as_ref())
    }

    /// A call expected to answer `success` with a body of type `T`, or an API error.
    pub fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        success: u16,
    ) -> ApiResult<T> {
        let (status, answer) = self.raw(method, path, body);
        read_answer(&format!("{method} {path}"), status, answer, success)
    }

    /// [`Self::call`] that reports a transport failure (the server gone) as the outer `Err`:
    /// for writers racing a `kill -9`.
    pub fn try_call<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        success: u16,
    ) -> Result<ApiResult<T>, String> {
        let (status, answer) = self.try_raw(method, path, body)?;
        Ok(read_answer(&format!("{method} {path}"), status, answer, success))
    }

    /// A call expected to answer `204 No Content`, or an API error.
    pub fn call_empty(&self, method: &str, path: &str, body: Option<Value>) -> ApiResult<()> {
        let what = format!("{method} {path}");
        let (status, answer) = self.raw(method, path, body);
        if status == 204 {
            assert_eq!(answer, Value::Null, "{what}: 204 with a body");
            return Ok(());
        }
        assert!(status >= 400, "{what}: {status} where 204 was expected: {answer}");
        Err(ApiFailure::from_answer(&what, status, answer))
    }

    /// A call expected to be refused: its error (panics on a success).
    pub fn refused(&self, method: &str, path: &str, body: Option<Value>) -> ApiFailure {
        let what = format!("{method} {path}");
        let (status, answer) = self.raw(method, path, body);
        assert!(status >= 400, "{what}: {status} where a refusal was expected: {answer}");
        ApiFailure::from_answer(&what, status, answer)
    }

    /// A list answer's items.
    pub fn list<T: DeserializeOwned>(&self, path: &str) -> ApiResult<Vec<T>> {
        self.call::<Items<T>>("GET", path, None, 200).map(|page| page.items)
    }
}
