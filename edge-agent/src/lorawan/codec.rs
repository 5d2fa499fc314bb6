//! Payload codecs: an uplink's application payload into neOCampus readings — the kind (the
//! topic's last level, `temperature` …), the value with its units, and the `subID` (the channel).
//!
//! - Cayenne LPP, standard types (myDevices' table).
//! - The neOCampus extended Cayenne format of the 2016 LoRa prototype (`legacy-sensocampus.md`
//!   §6): byte 0 is `0x01`, decoding starts at offset 2, then `[type, channel, value…]`.
//! - Raw hex.
//!
//! A payload that does not decode is an error with the offset, never a panic.

use serde_json::{Value, json};

/// One reading.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// Kind: the last level of the topic (`temperature`, `humidity`, `luminosity` …).
    pub kind: &'static str,
    /// The `subID`: the LPP channel.
    pub sub_id: String,
    /// The value (a number, or an object for vectors and positions).
    pub value: Value,
    /// Its units.
    pub units: &'static str,
}

/// Why a payload does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// A type this codec does not know.
    #[error("unknown type {kind:#04x} at offset {offset}")]
    UnknownType {
        /// The type byte.
        kind: u8,
        /// Where.
        offset: usize,
    },
    /// The payload ends inside a value.
    #[error("truncated value at offset {0}")]
    Truncated(usize),
    /// The neOCampus format's first byte is not `0x01`.
    #[error("not the neOCampus format (first byte {0:#04x}, expected 0x01)")]
    NotNeocampus(u8),
    /// An unknown codec name.
    #[error("unknown codec {0:?}")]
    UnknownCodec(String),
}

fn be_signed(b: &[u8]) -> i64 {
    let unsigned = b.iter().fold(0u64, |acc, x| (acc << 8) | u64::from(*x));
    let bits = b.len() * 8;
    let sign = 1u64 << (bits - 1);
    if unsigned & sign != 0 { unsigned as i64 - (1i64 << bits) } else { unsigned as i64 }
}

fn be_unsigned(b: &[u8]) -> u64 {
    b.iter().fold(0u64, |acc, x| (acc << 8) | u64::from(*x))
}

fn round(v: f64, decimals: i32) -> Value {
    let p = 10f64.powi(decimals);
    json!((v * p).round() / p)
}

/// Decodes a Cayenne LPP payload.
pub fn cayenne_lpp(payload: &[u8]) -> Result<Vec<Reading>, CodecError> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < payload.len() {
        if i + 2 > payload.len() {
            return Err(CodecError::Truncated(i));
        }
        let (channel, kind) = (payload[i], payload[i + 1]);
        let size = match kind {
            0x00 | 0x01 | 0x66 | 0x68 => 1,
            0x02 | 0x03 | 0x65 | 0x67 | 0x73 => 2,
            0x71 | 0x86 => 6,
            0x88 => 9,
            _ => return Err(CodecError::UnknownType { kind, offset: i + 1 }),
        };
        let start = i + 2;
        let v = payload.get(start..start + size).ok_or(CodecError::Truncated(start))?;
        let (kind_name, value, units) = match kind {
            0x00 => ("digital", json!(v[0]), ""),
            0x01 => ("digital_output", json!(v[0]), ""),
            0x02 => ("analog", round(be_signed(v) as f64 * 0.01, 2), ""),
            0x03 => ("analog_output", round(be_signed(v) as f64 * 0.01, 2), ""),
            0x65 => ("luminosity", json!(be_unsigned(v)), "lux"),
            0x66 => ("presence", json!(v[0]), ""),
            0x67 => ("temperature", round(be_signed(v) as f64 * 0.1, 1), "celsius"),
            0x68 => ("humidity", round(f64::from(v[0]) * 0.5, 1), "%r.H."),
            0x73 => ("pressure", round(be_unsigned(v) as f64 * 0.1, 1), "hPa"),
            0x71 => (
                "accelerometer",
                json!({"x": round(be_signed(&v[0..2]) as f64 * 0.001, 3), "y": round(be_signed(&v[2..4]) as f64 * 0.001, 3), "z": round(be_signed(&v[4..6]) as f64 * 0.001, 3)}),
                "G",
            ),
            0x86 => (
                "gyrometer",
                json!({"x": round(be_signed(&v[0..2]) as f64 * 0.01, 2), "y": round(be_signed(&v[2..4]) as f64 * 0.01, 2), "z": round(be_signed(&v[4..6]) as f64 * 0.01, 2)}),
                "°/s",
            ),
            _ => (
                "gps",
                json!({"lat": round(be_signed(&v[0..3]) as f64 * 0.0001, 4), "lon": round(be_signed(&v[3..6]) as f64 * 0.0001, 4), "alt": round(be_signed(&v[6..9]) as f64 * 0.01, 2)}),
                "",
            ),
        };
        out.push(Reading { kind: kind_name, sub_id: channel.to_string(), value, units });
        i = start + size;
    }
    Ok(out)
}

/// Decodes the neOCampus extended Cayenne format of the 2016 prototype.
pub fn neocampus_lpp(payload: &[u8]) -> Result<Vec<Reading>, CodecError> {
    match payload.first() {
        Some(0x01) => {}
        Some(b) => return Err(CodecError::NotNeocampus(*b)),
        None => return Err(CodecError::Truncated(0)),
    }
    let mut out = Vec::new();
    let mut i = 2;
    while i < payload.len() {
        if i + 2 > payload.len() {
            return Err(CodecError::Truncated(i));
        }
        let (kind, channel) = (payload[i], payload[i + 1]);
        let size = match kind {
            1..=4 | 6 | 8 | 9 | 11 | 16 => 1,
            5 | 7 | 10 => 2,
            13..=15 => 3,
            17 | 18 => 4,
            12 => 9,
            _ => return Err(CodecError::UnknownType { kind, offset: i }),
        };
        let start = i + 2;
        let v = payload.get(start..start + size).ok_or(CodecError::Truncated(start))?;
        let le16 = |b: &[u8]| u64::from(b[0]) | (u64::from(b[1]) << 8);
        let (kind_name, value, units) = match kind {
            1 => ("analog", json!(v[0]), ""),
            2 => ("analog_output", json!(v[0]), ""),
            3 => ("digital", json!(v[0]), ""),
            4 => ("digital_output", json!(v[0]), ""),
            5 => ("luminosity", json!(le16(v)), "lux"),
            6 => ("presence", json!(v[0]), ""),
            7 => ("frequency", json!(le16(v)), "pers/j"),
            // 20 °C reference, steps of 0.25 °C, bit 7 the sign.
            8 => {
                let steps = f64::from(v[0] & 0x7f) * 0.25;
                let t = if v[0] & 0x80 != 0 { 20.0 - steps } else { 20.0 + steps };
                ("temperature", round(t, 2), "celsius")
            }
            9 => ("humidity", round(f64::from(v[0]) * 0.5, 1), "%r.H."),
            10 => ("co2", json!(le16(v)), "ppm"),
            11 => ("airquality", json!(v[0]), ""),
            12 => ("gps", json!({"raw": hex(v)}), ""),
            13 => ("energy", round(le16(v) as f64 + f64::from(v[2]) / 256.0, 3), "Wh"),
            14 => ("uv", round(le16(v) as f64 + f64::from(v[2]) / 256.0, 3), ""),
            15 => ("weight", json!(u64::from(v[0]) | (u64::from(v[1]) << 8) | (u64::from(v[2]) << 16)), "g"),
            16 => ("pressure", json!(990 + u64::from(v[0])), "mBar"),
            17 => ("generic", json!(u32::from_le_bytes([v[0], v[1], v[2], v[3]])), ""),
            _ => ("generic", json!(i32::from_le_bytes([v[0], v[1], v[2], v[3]])), ""),
        };
        out.push(Reading { kind: kind_name, sub_id: channel.to_string(), value, units });
        i = start + size;
    }
    Ok(out)
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Decodes with the named codec (`cayenne_lpp`, `neocampus_lpp`, `hex`).
pub fn decode(codec: &str, payload: &[u8]) -> Result<Vec<Reading>, CodecError> {
    match codec {
        "cayenne_lpp" => cayenne_lpp(payload),
        "neocampus_lpp" => neocampus_lpp(payload),
        "hex" => {
            Ok(vec![Reading { kind: "raw", sub_id: String::new(), value: json!(hex(payload)), units: "hex" }])
        }
        other => Err(CodecError::UnknownCodec(other.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(hex: &str) -> Vec<u8> {
        let hex: String = hex.split_whitespace().collect();
        (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn cayenne_vectors_of_the_spec() {
        let r = cayenne_lpp(&bytes("03 67 01 10 05 67 00 FF")).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(
            (r[0].kind, r[0].sub_id.as_str(), &r[0].value, r[0].units),
            ("temperature", "3", &json!(27.2), "celsius")
        );
        assert_eq!((r[1].sub_id.as_str(), &r[1].value), ("5", &json!(25.5)));
        assert_eq!(cayenne_lpp(&bytes("01 67 FF D7")).unwrap()[0].value, json!(-4.1));
        let acc = &cayenne_lpp(&bytes("06 71 04 D2 FB 2E 00 00")).unwrap()[0];
        assert_eq!((acc.sub_id.as_str(), &acc.value), ("6", &json!({"x": 1.234, "y": -1.234, "z": 0.0})));
        let gps = &cayenne_lpp(&bytes("01 88 06 76 5F F2 96 0A 00 03 E8")).unwrap()[0];
        assert_eq!(gps.value, json!({"lat": 42.3519, "lon": -87.9094, "alt": 10.0}));
    }

    #[test]
    fn malformed_payloads_are_errors_with_the_offset() {
        assert_eq!(cayenne_lpp(&bytes("03 67 01")), Err(CodecError::Truncated(2)));
        assert_eq!(cayenne_lpp(&bytes("03")), Err(CodecError::Truncated(0)));
        assert_eq!(cayenne_lpp(&bytes("03 99 00")), Err(CodecError::UnknownType { kind: 0x99, offset: 1 }));
        assert!(cayenne_lpp(&[]).unwrap().is_empty());
        assert_eq!(neocampus_lpp(&bytes("02 00")), Err(CodecError::NotNeocampus(2)));
        assert_eq!(neocampus_lpp(&bytes("01 00 08")), Err(CodecError::Truncated(2)));
        assert_eq!(
            neocampus_lpp(&bytes("01 00 63 01 00")),
            Err(CodecError::UnknownType { kind: 0x63, offset: 2 })
        );
        assert!(matches!(decode("nope", &[]), Err(CodecError::UnknownCodec(_))));
        // Any bytes: an answer, never a panic.
        for n in 0..=255u8 {
            let _ = cayenne_lpp(&[n, n, n, n, n]);
            let _ = neocampus_lpp(&[1, n, n, n, n, n, n]);
        }
    }

    #[test]
    fn neocampus_extended_format() {
        // Byte 0 = 1, byte 1 skipped; temperature 20 + 6×0.25, humidity 45 %, luminosity 300 lux
        // (LSB first), pressure 990 + 23 mBar, temperature below the reference (bit 7).
        let r = neocampus_lpp(&bytes("01 00  08 01 06  09 02 5A  05 03 2C 01  10 04 17  08 05 88")).unwrap();
        let got: Vec<(&str, &str, Value, &str)> =
            r.iter().map(|r| (r.kind, r.sub_id.as_str(), r.value.clone(), r.units)).collect();
        assert_eq!(
            got,
            vec![
                ("temperature", "1", json!(21.5), "celsius"),
                ("humidity", "2", json!(45.0), "%r.H."),
                ("luminosity", "3", json!(300), "lux"),
                ("pressure", "4", json!(1013), "mBar"),
                ("temperature", "5", json!(18.0), "celsius"),
            ]
        );
        assert_eq!(decode("hex", &[0xde, 0xad]).unwrap()[0].value, json!("dead"));
    }
}

#[cfg(test)]
mod encoder_agreement {
    //! What nodes encode with `neosens_protocol::lpp` (the STM32 example, the simulated node)
    //! decodes here to the same values.
    use neosens_protocol::lpp::LppWriter;

    #[test]
    fn neocampus_and_cayenne_round_trip() {
        let mut buf = [0u8; 32];
        let mut w = LppWriter::neocampus(&mut buf).unwrap();
        w.temperature(1, 17.25).unwrap().humidity(1, 45.5).unwrap().luminosity(2, 640).unwrap();
        w.co2(1, 812).unwrap().presence(3, true).unwrap();
        let readings = super::neocampus_lpp(w.as_bytes()).unwrap();
        let got: Vec<(&str, String, serde_json::Value)> =
            readings.into_iter().map(|r| (r.kind, r.sub_id, r.value)).collect();
        assert_eq!(
            got,
            vec![
                ("temperature", "1".into(), serde_json::json!(17.25)),
                ("humidity", "1".into(), serde_json::json!(45.5)),
                ("luminosity", "2".into(), serde_json::json!(640)),
                ("co2", "1".into(), serde_json::json!(812)),
                ("presence", "3".into(), serde_json::json!(1)),
            ]
        );
        let mut buf = [0u8; 32];
        let mut w = LppWriter::cayenne(&mut buf);
        w.temperature(3, -4.1).unwrap().humidity(4, 62.0).unwrap().luminosity(5, 1200).unwrap();
        let values: Vec<serde_json::Value> =
            super::cayenne_lpp(w.as_bytes()).unwrap().into_iter().map(|r| r.value).collect();
        assert_eq!(values, [serde_json::json!(-4.1), serde_json::json!(62.0), serde_json::json!(1200)]);
    }
}
