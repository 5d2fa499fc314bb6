//! The firmware-update check (spec §3.4): what the boards send and expect on
//! `/images/<hardware>/<board>/…`. Central and the gateways answer it alike, from this one
//! definition.

use alloc::format;
use alloc::string::String;

use crate::ids::Mac;

/// The board's MAC, in the headers of arduino-esp32's `HTTPUpdate` and the ESP8266 updater.
pub const MAC_HEADERS: [&str; 2] = ["x-esp32-sta-mac", "x-esp8266-sta-mac"];

/// The running sketch's MD5, sent by the ESP8266 updater (ESP32 cores send a SHA-256).
pub const SKETCH_MD5_HEADER: &str = "x-esp8266-sketch-md5";

/// The firmware reads the `default.json` answer into 512 bytes.
pub const MAX_CHECK_BODY: usize = 511;

/// The path of an image: `/images/<hardware>/<board>/<sha256>.bin`.
pub fn image_path(hardware: &str, board: &str, sha256_hex: &str) -> String {
    format!("/images/{hardware}/{board}/{sha256_hex}.bin")
}

/// `{"revision":N,"image":"<url>"}`, in that order, or `None` past the firmware's 511 bytes.
pub fn check_body(revision: u64, url: &str) -> Option<String> {
    let mut escaped = String::with_capacity(url.len());
    for c in url.chars() {
        match c {
            '"' => escaped.push_str("\\\""),
            '\\' => escaped.push_str("\\\\"),
            c if (c as u32) < 0x20 => return None,
            c => escaped.push(c),
        }
    }
    let body = format!(r#"{{"revision":{revision},"image":"{escaped}"}}"#);
    (body.len() <= MAX_CHECK_BODY).then_some(body)
}

/// A `Host` header fit to build the image URL from: a name or address and a port, nothing that
/// could turn the URL into another one.
pub fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
}

/// The board's MAC from the updater's headers (`header` looks one up by lowercase name);
/// `None` without one, or with one that is not a MAC.
pub fn updater_mac<'a>(header: impl Fn(&str) -> Option<&'a str>) -> Option<Mac> {
    MAC_HEADERS.iter().find_map(|h| header(h)).and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_check_answer_is_the_firmware_s_shape_and_size() {
        assert_eq!(
            check_body(240101, "http://neocampus.univ-tlse3.fr/images/esp32/neOSensor/ab.bin").as_deref(),
            Some(
                r#"{"revision":240101,"image":"http://neocampus.univ-tlse3.fr/images/esp32/neOSensor/ab.bin"}"#
            )
        );
        assert_eq!(check_body(1, "a\"b").as_deref(), Some(r#"{"revision":1,"image":"a\"b"}"#));
        assert_eq!(check_body(1, "a\nb"), None);
        assert_eq!(check_body(1, &"x".repeat(487)), None, "past 511 bytes");
        assert_eq!(check_body(1, &"x".repeat(486)).map(|b| b.len()), Some(511));
        assert_eq!(image_path("esp32", "neOSensor", "ab"), "/images/esp32/neOSensor/ab.bin");
    }

    #[test]
    fn hosts_and_macs_from_headers() {
        assert!(
            valid_host("neocampus.univ-tlse3.fr") && valid_host("10.0.0.1:8080") && valid_host("[::1]:80")
        );
        for bad in ["", "a/b", "a b", "a@b", "a?b", "é"] {
            assert!(!valid_host(bad), "{bad}");
        }
        let esp32 = |h: &str| (h == "x-esp32-sta-mac").then_some(" 24:0A:C4:12:34:56 ");
        assert_eq!(updater_mac(esp32).map(|m| m.to_string()).as_deref(), Some("24:0A:C4:12:34:56"));
        let esp8266 = |h: &str| (h == "x-esp8266-sta-mac").then_some("5C:CF:7F:00:00:01");
        assert!(updater_mac(esp8266).is_some());
        assert_eq!(updater_mac(|_| Some("zz:not-a-mac")), None);
        assert_eq!(updater_mac(|_| None), None);
    }
}
