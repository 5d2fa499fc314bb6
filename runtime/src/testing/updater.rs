//! The requests of the firmware-update path as the real boards send them (spec §3.4,
//! client-sequence §B), and an image upload: shared by the tests and benchmarks of central, the
//! gateway and the simulated fleet.

/// The ESP32 firmware's boot-time check, byte for byte (`neOCampusOTA()`, HTTP/1.1).
pub fn esp32_check(hardware: &str, board: &str) -> Vec<u8> {
    format!(
        "GET /images/{hardware}/{board}/default.json HTTP/1.1\r\nHost: neocampus.univ-tlse3.fr\r\nUser-Agent: ESP32HTTPClient\r\nConnection: keep-alive\r\nAccept-Encoding: identity;q=1,chunked;q=0.1,*;q=0\r\n\r\n"
    )
    .into_bytes()
}

/// The ESP8266 firmware's: header order Host, User-Agent, Accept-Encoding, Connection.
pub fn esp8266_check(hardware: &str, board: &str) -> Vec<u8> {
    format!(
        "GET /images/{hardware}/{board}/default.json HTTP/1.1\r\nHost: neocampus.univ-tlse3.fr\r\nUser-Agent: ESP8266HTTPClient\r\nAccept-Encoding: identity;q=1,chunked;q=0.1,*;q=0\r\nConnection: keep-alive\r\n\r\n"
    )
    .into_bytes()
}

/// arduino-esp32's `HTTPUpdate::handleUpdate` download of `path` (HTTP/1.0, `x-ESP32-*`).
pub fn esp32_update(path: &str, mac: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.0\r\nHost: neocampus.univ-tlse3.fr\r\nUser-Agent: ESP32-http-Update\r\nConnection: close\r\nCache-Control: no-cache\r\nx-ESP32-STA-MAC: {}\r\nx-ESP32-AP-MAC: 24:0A:C4:00:00:FF\r\nx-ESP32-free-space: 1966080\r\nx-ESP32-sketch-size: 912384\r\nx-ESP32-sketch-sha256: 6B86B273FF34FCE19D6B804EFF5A3F5747ADA4EAA22F1D49C01E52DDB7875B4B\r\nx-ESP32-chip-size: 4194304\r\nx-ESP32-sdk-version: v4.4.5\r\nx-ESP32-mode: sketch\r\n\r\n",
        mac.to_uppercase()
    )
    .into_bytes()
}

/// The ESP8266 updater's download, with the running sketch's MD5.
pub fn esp8266_update(path: &str, mac: &str, sketch_md5: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.0\r\nHost: neocampus.univ-tlse3.fr\r\nUser-Agent: ESP8266-http-Update\r\nConnection: close\r\nx-ESP8266-Chip-ID: 1234567\r\nx-ESP8266-STA-MAC: {}\r\nx-ESP8266-AP-MAC: 26:0A:C4:00:00:02\r\nx-ESP8266-free-space: 2084864\r\nx-ESP8266-sketch-size: 412304\r\nx-ESP8266-sketch-md5: {sketch_md5}\r\nx-ESP8266-chip-size: 4194304\r\nx-ESP8266-sdk-version: 2.2.2-dev(38a443e)\r\nx-ESP8266-mode: sketch\r\n\r\n",
        mac.to_uppercase()
    )
    .into_bytes()
}

/// `POST /api/v1/firmware?<query>` with `content` as the body and an admin `token`.
pub fn upload(query: &str, token: &str, content: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "POST /api/v1/firmware?{query} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        content.len()
    )
    .into_bytes();
    request.extend_from_slice(content);
    request
}

/// An ESP image of `len` bytes: `0xE9`, then a pattern.
pub fn esp_image(len: usize) -> Vec<u8> {
    let mut content: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    if let Some(first) = content.first_mut() {
        *first = 0xE9;
    }
    content
}
