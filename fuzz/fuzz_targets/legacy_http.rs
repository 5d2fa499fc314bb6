//! What the legacy device paths read from a request, on any bytes: the `mac` of
//! `/device/credentials` (query string of a GET, form body of a POST), `Authorization: Basic`
//! credentials, a `/device/logger` form — and the answers a device (or the gateway's proxy)
//! parses back: credentials, config, orders. An answer or a refusal, never a panic.
#![no_main]

use axum::http::{HeaderMap, HeaderValue, Method, header::AUTHORIZATION};
use libfuzzer_sys::fuzz_target;
use neosens_protocol::legacy::{Command, ConfigResponse, Credentials};
use neosens_runtime::legacy_http::{basic_auth, credentials_mac, form_value, log_form};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = credentials_mac(&Method::GET, Some(&text), data);
    let _ = credentials_mac(&Method::POST, None, data);
    let _ = form_value(data, "mac");
    let _ = log_form(data);
    if let Ok(value) = HeaderValue::from_bytes(data) {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, value);
        let _ = basic_auth(&headers);
    }
    let _ = Credentials::parse(data);
    let _ = ConfigResponse::parse(data);
    let _ = Command::parse(data);
});
