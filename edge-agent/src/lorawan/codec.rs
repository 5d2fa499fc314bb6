//! Payload codecs: an uplink's application payload into neOCampus readings — the kind (the
//! topic's last level, `temperature` …), the value with its units, and the `subID` (the channel).
//!
//! The codecs are [`neosens_protocol::edge::Codec`], named by central in each node's synced
//! session; the LPP formats are decoded by [`neosens_protocol::lpp::decode`], next to the encoder
//! the nodes use. What is left here is the JSON of a reading's value:
//!
//! - Cayenne LPP, standard types (myDevices' table).
//! - The neOCampus extended Cayenne format of the 2016 LoRa prototype (`legacy-sensocampus.md`
//!   §6): byte 0 is `0x01`, decoding starts at offset 2, then `[type, channel, value…]`.
//! - Raw hex.
//!
//! A payload that does not decode is an error with the offset, never a panic.

use std::borrow::Cow;

use neosens_protocol::edge::Codec;
use neosens_protocol::hex;
use neosens_protocol::layout::PayloadLayout;
use neosens_protocol::lpp::{self, DecodeError, Format};
use serde_json::{Value, json};

/// One reading.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// Kind: the last level of the topic (`temperature`, `humidity`, `luminosity` …).
    pub kind: Cow<'static, str>,
    /// The `subID`: the LPP channel.
    pub sub_id: String,
    /// The value (a number, or an object for vectors and positions).
    pub value: Value,
    /// Its units.
    pub units: Cow<'static, str>,
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
    /// The payload does not start with its layout's header.
    #[error("the payload does not start with its layout's header")]
    WrongHeader,
    /// The node's codec is its type's layout, and its type declares none (yet).
    #[error("its device type declares no payload layout")]
    NoLayout,
}

impl From<DecodeError> for CodecError {
    fn from(e: DecodeError) -> Self {
        match e {
            DecodeError::UnknownType { kind, offset } => CodecError::UnknownType { kind, offset },
            DecodeError::Truncated(offset) => CodecError::Truncated(offset),
            DecodeError::NotNeocampus(b) => CodecError::NotNeocampus(b),
            DecodeError::WrongHeader => CodecError::WrongHeader,
        }
    }
}

/// A decoded LPP value as the JSON of a neOCampus reading: numbers stay integers or decimals as
/// decoded, vectors and positions are objects, neOCampus-LPP's raw GPS bytes are hex.
fn json_value(value: lpp::Value<'_>) -> Value {
    match value {
        lpp::Value::Integer(n) => json!(n),
        lpp::Value::Number(x) => json!(x),
        lpp::Value::Axes { x, y, z } => json!({"x": x, "y": y, "z": z}),
        lpp::Value::Position { lat, lon, alt } => json!({"lat": lat, "lon": lon, "alt": alt}),
        lpp::Value::Raw(bytes) => json!({"raw": hex::encode(bytes)}),
    }
}

fn lpp_readings(format: Format, payload: &[u8]) -> Result<Vec<Reading>, CodecError> {
    lpp::decode(format, payload)
        .map(|r| {
            let r = r?;
            Ok(Reading {
                kind: Cow::Borrowed(r.kind),
                sub_id: r.channel.to_string(),
                value: json_value(r.value),
                units: Cow::Borrowed(r.units),
            })
        })
        .collect()
}

/// Decodes a Cayenne LPP payload.
pub fn cayenne_lpp(payload: &[u8]) -> Result<Vec<Reading>, CodecError> {
    lpp_readings(Format::Cayenne, payload)
}

/// Decodes the neOCampus extended Cayenne format of the 2016 prototype.
pub fn neocampus_lpp(payload: &[u8]) -> Result<Vec<Reading>, CodecError> {
    lpp_readings(Format::Neocampus, payload)
}

/// Decodes with a device type's payload layout.
pub fn with_layout(layout: &PayloadLayout, payload: &[u8]) -> Result<Vec<Reading>, CodecError> {
    Ok(layout
        .decode(payload)?
        .into_iter()
        .map(|(record, channel, value)| Reading {
            kind: Cow::Owned(record.kind.clone()),
            sub_id: channel.to_string(),
            value: json_value(value),
            units: Cow::Owned(record.unit.clone()),
        })
        .collect())
}

/// Decodes with `codec` (`layout`: the node's type's, if it declares one).
pub fn decode_with(
    codec: Codec,
    payload: &[u8],
    layout: Option<&PayloadLayout>,
) -> Result<Vec<Reading>, CodecError> {
    match (codec, codec.lpp_format()) {
        (_, Some(format)) => lpp_readings(format, payload),
        (Codec::Layout, None) => with_layout(layout.ok_or(CodecError::NoLayout)?, payload),
        _ => Ok(vec![Reading {
            kind: Cow::Borrowed("raw"),
            sub_id: String::new(),
            value: json!(hex::encode(payload)),
            units: Cow::Borrowed("hex"),
        }]),
    }
}

/// Decodes with the codec named as in a synced session (`cayenne_lpp`, `neocampus_lpp`, `hex`,
/// `layout`).
pub fn decode(
    codec: &str,
    payload: &[u8],
    layout: Option<&PayloadLayout>,
) -> Result<Vec<Reading>, CodecError> {
    let codec: Codec = codec.parse().map_err(|_| CodecError::UnknownCodec(codec.to_owned()))?;
    decode_with(codec, payload, layout)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(text: &str) -> Vec<u8> {
        let digits: String = text.split_whitespace().collect();
        hex::decode(&digits, "test payload").unwrap()
    }

    #[test]
    fn cayenne_vectors_of_the_spec() {
        let r = cayenne_lpp(&bytes("03 67 01 10 05 67 00 FF")).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(
            (r[0].kind.as_ref(), r[0].sub_id.as_str(), &r[0].value, r[0].units.as_ref()),
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
        assert!(matches!(decode("nope", &[], None), Err(CodecError::UnknownCodec(_))));
        assert_eq!(decode("layout", &[1], None), Err(CodecError::NoLayout), "a type without a layout");
        // Any bytes: an answer, never a panic.
        for n in 0..=255u8 {
            let _ = cayenne_lpp(&[n, n, n, n, n]);
            let _ = neocampus_lpp(&[1, n, n, n, n, n, n]);
        }
    }

    #[test]
    fn neocampus_extended_format() {
        // Byte 0 = 1, byte 1 skipped; temperature 20 + 6×0.25, humidity 45 %, luminosity 300 lux
        // (LSB first), pressure 990 + 23 mBar, temperature below the reference (two's
        // complement: 0xF8 = −8 steps).
        let r = neocampus_lpp(&bytes("01 00  08 01 06  09 02 5A  05 03 2C 01  10 04 17  08 05 F8")).unwrap();
        let got: Vec<(&str, &str, Value, &str)> = r
            .iter()
            .map(|r| (r.kind.as_ref(), r.sub_id.as_str(), r.value.clone(), r.units.as_ref()))
            .collect();
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
        assert_eq!(decode("hex", &[0xde, 0xad], None).unwrap()[0].value, json!("dead"));
        // The same table as a layout reads the same readings.
        let layout = neosens_protocol::layout::neocampus_lpp();
        let payload = bytes("01 00  08 01 06  09 02 5A  05 03 2C 01  10 04 17  08 05 F8");
        assert_eq!(decode("layout", &payload, Some(&layout)).unwrap(), r);
    }

    #[test]
    fn values_print_as_readings_always_carried_them() {
        // The text of each value in the published JSON: integers stay integers, measures keep a
        // decimal point, raw bytes are lowercase hex.
        let text = |codec, payload: &str| -> Vec<String> {
            decode_with(codec, &bytes(payload), None).unwrap().iter().map(|r| r.value.to_string()).collect()
        };
        assert_eq!(
            text(Codec::CayenneLpp, "01 68 5A  02 65 01 2C  03 71 04 D2 FB 2E 00 00  04 67 00 00"),
            ["45.0", "300", r#"{"x":1.234,"y":-1.234,"z":0.0}"#, "0.0"]
        );
        assert_eq!(
            text(Codec::NeocampusLpp, "01 00  0C 01 01 02 03 04 05 06 07 08 AB  12 02 FE FF FF FF"),
            [r#"{"raw":"0102030405060708ab"}"#, "-2"]
        );
        let raw = decode_with(Codec::Hex, &[0x01, 0xAB], None).unwrap();
        assert_eq!((raw[0].kind.as_ref(), raw[0].sub_id.as_str(), raw[0].units.as_ref()), ("raw", "", "hex"));
        assert_eq!(raw[0].value.to_string(), r#""01ab""#);
        for codec in Codec::ALL {
            let expected = !matches!(codec, Codec::NeocampusLpp | Codec::Layout);
            assert_eq!(decode(codec.as_str(), &[], None).is_ok(), expected, "{codec}");
        }
    }
}
