//! The decoder against the formats' public examples, the writer, and hostile bytes.

use super::*;
use alloc::string::ToString;
use alloc::vec::Vec;

fn bytes(text: &str) -> Vec<u8> {
    let digits: alloc::string::String = text.split_whitespace().collect();
    crate::hex::decode(&digits, "test payload").unwrap()
}

fn all(format: Format, payload: &[u8]) -> Result<Vec<Reading<'_>>, DecodeError> {
    decode(format, payload).collect()
}

fn values(format: Format, payload: &[u8]) -> Vec<(&'static str, u8, Value<'_>, &'static str)> {
    all(format, payload).unwrap().into_iter().map(|r| (r.kind, r.channel, r.value, r.units)).collect()
}

#[test]
fn cayenne_vectors_of_the_spec() {
    // cayenne-docs LORA.md (spec/lorawan-vectors.md).
    let payload = bytes("03 67 01 10 05 67 00 FF");
    assert_eq!(
        values(Format::Cayenne, &payload),
        [
            ("temperature", 3, Value::Number(27.2), "celsius"),
            ("temperature", 5, Value::Number(25.5), "celsius")
        ]
    );
    assert_eq!(values(Format::Cayenne, &bytes("01 67 FF D7"))[0].2, Value::Number(-4.1));
    let acc = bytes("06 71 04 D2 FB 2E 00 00");
    assert_eq!(
        values(Format::Cayenne, &acc),
        [("accelerometer", 6, Value::Axes { x: 1.234, y: -1.234, z: 0.0 }, "G")]
    );
    let gps = bytes("01 88 06 76 5F F2 96 0A 00 03 E8");
    assert_eq!(
        values(Format::Cayenne, &gps)[0].2,
        Value::Position { lat: 42.3519, lon: -87.9094, alt: 10.0 }
    );
    let mixed =
        bytes("01 00 01  02 02 FF 38  03 65 01 2C  04 66 01  05 68 5B  06 73 27 9B  07 86 00 64 FF 9C 00 00");
    assert_eq!(
        values(Format::Cayenne, &mixed),
        [
            ("digital", 1, Value::Integer(1), ""),
            ("analog", 2, Value::Number(-2.0), ""),
            ("luminosity", 3, Value::Integer(300), "lux"),
            ("presence", 4, Value::Integer(1), ""),
            ("humidity", 5, Value::Number(45.5), "%r.H."),
            ("pressure", 6, Value::Number(1013.9), "hPa"),
            ("gyrometer", 7, Value::Axes { x: 1.0, y: -1.0, z: 0.0 }, "°/s"),
        ]
    );
}

#[test]
fn neocampus_extended_format() {
    // Byte 0 = 1, byte 1 skipped; temperature 20 + 6×0.25, humidity 45 %, luminosity 300 lux
    // (LSB first), pressure 990 + 23 mBar, temperature below the reference (two's complement).
    let payload = bytes("01 00  08 01 06  09 02 5A  05 03 2C 01  10 04 17  08 05 F8");
    assert_eq!(
        values(Format::Neocampus, &payload),
        [
            ("temperature", 1, Value::Number(21.5), "celsius"),
            ("humidity", 2, Value::Number(45.0), "%r.H."),
            ("luminosity", 3, Value::Integer(300), "lux"),
            ("pressure", 4, Value::Integer(1013), "mBar"),
            ("temperature", 5, Value::Number(18.0), "celsius"),
        ]
    );
    let more =
        bytes("01 00  0C 01 01 02 03 04 05 06 07 08 09  0D 02 10 00 80  0F 03 01 02 03  12 04 FE FF FF FF");
    assert_eq!(
        values(Format::Neocampus, &more),
        [
            ("gps", 1, Value::Raw(&[1, 2, 3, 4, 5, 6, 7, 8, 9]), ""),
            ("energy", 2, Value::Number(16.5), "W/m2"),
            ("weight", 3, Value::Integer(0x030201), "g"),
            ("generic", 4, Value::Integer(-2), ""),
        ]
    );
    assert!(all(Format::Neocampus, &[0x01, 0x00]).unwrap().is_empty(), "a header alone: no reading");
}

#[test]
fn neocampus_matches_the_deployed_decoders_public_test() {
    // fthiebolt/loradecoder app/tests/test_decoder.py (2021): its encoder's payload and the
    // values its comment expects — 421 lux, −10.8 °C written as 0x85 (n = −123 in two's
    // complement, so −10.75 °C), 5 %, 6000 ppm, energy 60.80 W/m2.
    let payload = bytes(
        "01 1E  05 39 A5 01  08 44 0E  09 44 3F  08 FF 85  09 FF 0A  0A FF 70 17  06 FF FF  0D FF 3C 00 CC",
    );
    assert_eq!(
        values(Format::Neocampus, &payload),
        [
            ("luminosity", 0x39, Value::Integer(421), "lux"),
            ("temperature", 0x44, Value::Number(23.5), "celsius"),
            ("humidity", 0x44, Value::Number(31.5), "%r.H."),
            ("temperature", 0xFF, Value::Number(-10.75), "celsius"),
            ("humidity", 0xFF, Value::Number(5.0), "%r.H."),
            ("co2", 0xFF, Value::Integer(6000), "ppm"),
            ("presence", 0xFF, Value::Integer(255), ""),
            ("energy", 0xFF, Value::Number(60.8), "W/m2"),
        ]
    );
    // UV shares energy's rule and unit; 2 decimals (60 + 1/256 = 60.0039 → 60.0).
    assert_eq!(
        values(Format::Neocampus, &bytes("01 00  0E 01 3C 00 01")),
        [("uv", 1, Value::Number(60.0), "W/m2")]
    );
}

#[test]
fn neocampus_temperatures_are_twos_complement_across_the_whole_byte() {
    // Every byte decodes to 20 + int8 × 0.25: 15 °C (0xEC) is not −7 °C, the range ends at
    // −12 °C (0x80) and 51.75 °C (0x7F), and the writer encodes each of them back to its byte.
    for byte in 0u8..=255 {
        let expected = 20.0 + f64::from(byte as i8) * 0.25;
        let payload = [0x01, 0x00, 8, 1, byte];
        assert_eq!(
            values(Format::Neocampus, &payload),
            [("temperature", 1, Value::Number(expected), "celsius")]
        );
        let mut buf = [0u8; 5];
        LppWriter::neocampus(&mut buf).unwrap().temperature(1, expected as f32).unwrap();
        assert_eq!(buf[4], byte, "{expected} °C");
    }
    assert_eq!(values(Format::Neocampus, &bytes("01 00 08 01 EC"))[0].2, Value::Number(15.0));
}

#[test]
fn malformed_payloads_are_errors_with_the_offset_and_end_the_iteration() {
    let cases: &[(Format, &str, DecodeError)] = &[
        (Format::Cayenne, "03 67 01", DecodeError::Truncated(2)),
        (Format::Cayenne, "03", DecodeError::Truncated(0)),
        (Format::Cayenne, "03 99 00", DecodeError::UnknownType { kind: 0x99, offset: 1 }),
        (Format::Cayenne, "03 67 01 10 05", DecodeError::Truncated(4)),
        (Format::Neocampus, "", DecodeError::Truncated(0)),
        (Format::Neocampus, "02 00", DecodeError::NotNeocampus(2)),
        (Format::Neocampus, "01 00 08", DecodeError::Truncated(2)),
        (Format::Neocampus, "01 00 63 01 00", DecodeError::UnknownType { kind: 0x63, offset: 2 }),
    ];
    for (format, payload, error) in cases {
        assert_eq!(all(*format, &bytes(payload)).unwrap_err(), *error, "{format:?} {payload}");
    }
    assert!(all(Format::Cayenne, &[]).unwrap().is_empty());
    // The good reading before the error comes out, then the error, then nothing.
    let payload = bytes("03 67 01 10 05 99");
    let mut readings = decode(Format::Cayenne, &payload);
    assert!(matches!(readings.next(), Some(Ok(Reading { channel: 3, .. }))));
    assert_eq!(readings.next(), Some(Err(DecodeError::UnknownType { kind: 0x99, offset: 5 })));
    assert_eq!(readings.next(), None);
    assert_eq!(
        DecodeError::UnknownType { kind: 0x99, offset: 1 }.to_string(),
        "unknown type 0x99 at offset 1"
    );
}

#[test]
fn any_bytes_get_an_answer_never_a_panic() {
    for n in 0..=255u8 {
        for len in 0..12 {
            let mut payload = alloc::vec![n; len];
            let _ = all(Format::Cayenne, &payload);
            if let Some(first) = payload.first_mut() {
                *first = 1;
            }
            let _ = all(Format::Neocampus, &payload);
        }
    }
}

#[test]
fn what_the_writer_encodes_decodes_to_the_same_values() {
    let mut buf = [0u8; 32];
    let mut w = LppWriter::neocampus(&mut buf).unwrap();
    w.temperature(1, 17.25).unwrap().humidity(1, 45.5).unwrap().luminosity(2, 640).unwrap();
    w.co2(1, 812).unwrap().presence(3, true).unwrap();
    assert_eq!(
        values(Format::Neocampus, w.as_bytes()),
        [
            ("temperature", 1, Value::Number(17.25), "celsius"),
            ("humidity", 1, Value::Number(45.5), "%r.H."),
            ("luminosity", 2, Value::Integer(640), "lux"),
            ("co2", 1, Value::Integer(812), "ppm"),
            ("presence", 3, Value::Integer(1), ""),
        ]
    );
    let mut buf = [0u8; 32];
    let mut w = LppWriter::cayenne(&mut buf);
    w.temperature(3, -4.1).unwrap().humidity(4, 62.0).unwrap().luminosity(5, 1200).unwrap();
    let got: Vec<Value<'_>> = values(Format::Cayenne, w.as_bytes()).into_iter().map(|r| r.2).collect();
    assert_eq!(got, [Value::Number(-4.1), Value::Number(62.0), Value::Integer(1200)]);
}

#[test]
fn rounding_is_f64_round_without_std() {
    let mut x = -70_000.0f64;
    while x < 70_000.0 {
        for v in [x, x + 0.5, x - 0.5, x * 0.1, x * 0.01, x * 0.001, x * 0.0001] {
            assert_eq!(round_half_away(v).to_bits(), v.round().to_bits(), "{v}");
        }
        x += 0.37;
    }
    for v in [0.49999999999999994, -0.49999999999999994, 4.5e15, -4.5e15, 1e300, f64::INFINITY, -0.0] {
        assert_eq!(round_half_away(v).to_bits(), v.round().to_bits(), "{v}");
    }
    assert!(round_half_away(f64::NAN).is_nan());
}
