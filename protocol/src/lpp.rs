//! Sensor payloads of LoRaWAN nodes: written into a caller's buffer by [`LppWriter`] (no
//! allocation: this runs on the node's microcontroller), and read back by [`decode`] (the edge
//! agent's payload codecs; no allocation either). Two formats:
//!
//! - **neOCampus-LPP** (`neocampus_lpp`, the 2016 prototype's "extended Cayenne",
//!   `spec/legacy-sensocampus.md` §6): byte 0 `0x01` (format), byte 1 reserved (`0x00`), then
//!   `[type, channel, value…]` with one-byte temperatures (20 °C + n × 0.25, n a two's-complement
//!   int8: −12 °C to 51.75 °C), humidities (n × 0.5 %), little-endian 16-bit values, and energy/UV
//!   in W/m2 (16-bit whole part + 1/256 fraction, 2 decimals) as the deployed 2021 decoder
//!   publishes them.
//! - **Cayenne LPP** (`cayenne_lpp`): `[channel, type, value…]`, big-endian, temperature in
//!   0.1 °C (signed), humidity in 0.5 %.
//!
//! Values outside what a format can carry are clamped to its range, never wrapped: a sensor
//! reading 60 °C sends the format's maximum, not a wrong small number.

/// Why a value was not written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LppError {
    /// The buffer is too small for the value.
    BufferFull,
    /// The format has no type for this quantity (CO₂ in Cayenne LPP).
    NotInFormat,
}

impl core::fmt::Display for LppError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            LppError::BufferFull => "the payload buffer is full",
            LppError::NotInFormat => "this payload format has no type for this quantity",
        })
    }
}

#[cfg(feature = "std")]
impl std::error::Error for LppError {}

/// Which format a writer produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// neOCampus-LPP.
    Neocampus,
    /// Cayenne LPP.
    Cayenne,
}

/// Writes readings into `buf`.
#[derive(Debug)]
pub struct LppWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
    format: Format,
}

fn round(x: f32) -> f32 {
    // `f32::round` needs std (libm); this is enough for sensor values.
    if x >= 0.0 { (x + 0.5) as i32 as f32 } else { (x - 0.5) as i32 as f32 }
}

impl<'a> LppWriter<'a> {
    /// A neOCampus-LPP payload (header written now).
    pub fn neocampus(buf: &'a mut [u8]) -> Result<Self, LppError> {
        let mut w = LppWriter { buf, len: 0, format: Format::Neocampus };
        w.put(&[0x01, 0x00])?;
        Ok(w)
    }

    /// A Cayenne LPP payload.
    pub fn cayenne(buf: &'a mut [u8]) -> Self {
        LppWriter { buf, len: 0, format: Format::Cayenne }
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), LppError> {
        let end = self.len + bytes.len();
        self.buf.get_mut(self.len..end).ok_or(LppError::BufferFull)?.copy_from_slice(bytes);
        self.len = end;
        Ok(())
    }

    fn entry(
        &mut self,
        neocampus_type: u8,
        cayenne_type: u8,
        channel: u8,
        value: &[u8],
    ) -> Result<(), LppError> {
        if self.len + 2 + value.len() > self.buf.len() {
            return Err(LppError::BufferFull);
        }
        match self.format {
            Format::Neocampus => self.put(&[neocampus_type, channel])?,
            Format::Cayenne => self.put(&[channel, cayenne_type])?,
        }
        self.put(value)
    }

    /// A temperature, °C.
    pub fn temperature(&mut self, channel: u8, celsius: f32) -> Result<&mut Self, LppError> {
        match self.format {
            Format::Neocampus => {
                // Two's complement, as the public test's encoder writes it (−10.8 °C → 0x85).
                let steps = round((celsius - 20.0) / 0.25).clamp(-128.0, 127.0) as i8;
                self.entry(8, 0, channel, &steps.to_le_bytes())?;
            }
            Format::Cayenne => {
                let tenths = round(celsius * 10.0).clamp(-32768.0, 32767.0) as i16;
                self.entry(0, 0x67, channel, &tenths.to_be_bytes())?;
            }
        }
        Ok(self)
    }

    /// A relative humidity, %.
    pub fn humidity(&mut self, channel: u8, percent: f32) -> Result<&mut Self, LppError> {
        let halves = round(percent * 2.0).clamp(0.0, 255.0) as u8;
        self.entry(9, 0x68, channel, &[halves])?;
        Ok(self)
    }

    /// An illuminance, lux.
    pub fn luminosity(&mut self, channel: u8, lux: u16) -> Result<&mut Self, LppError> {
        match self.format {
            Format::Neocampus => self.entry(5, 0, channel, &lux.to_le_bytes())?,
            Format::Cayenne => self.entry(0, 0x65, channel, &lux.to_be_bytes())?,
        }
        Ok(self)
    }

    /// Presence (a PIR sensor): 0 or 1.
    pub fn presence(&mut self, channel: u8, present: bool) -> Result<&mut Self, LppError> {
        self.entry(6, 0x66, channel, &[u8::from(present)])?;
        Ok(self)
    }

    /// A CO₂ concentration, ppm. neOCampus-LPP only: Cayenne LPP has no CO₂ type.
    pub fn co2(&mut self, channel: u8, ppm: u16) -> Result<&mut Self, LppError> {
        match self.format {
            Format::Neocampus => self.entry(10, 0, channel, &ppm.to_le_bytes())?,
            Format::Cayenne => return Err(LppError::NotInFormat),
        }
        Ok(self)
    }

    /// The payload written so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Its length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing (beyond a header) was written.
    pub fn is_empty(&self) -> bool {
        self.len == 0 || (self.format == Format::Neocampus && self.len == 2)
    }
}

/// Why a payload does not decode: where, never a panic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// A type byte the format does not know.
    UnknownType {
        /// The type byte.
        kind: u8,
        /// Its offset in the payload.
        offset: usize,
    },
    /// The payload ends inside an entry that starts at this offset (or its value does).
    Truncated(usize),
    /// A neOCampus-LPP payload whose first byte is not `0x01`.
    NotNeocampus(u8),
    /// A payload that does not start with its layout's header (`crate::layout`).
    WrongHeader,
}

impl core::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DecodeError::UnknownType { kind, offset } => {
                write!(f, "unknown type {kind:#04x} at offset {offset}")
            }
            DecodeError::Truncated(offset) => write!(f, "truncated value at offset {offset}"),
            DecodeError::NotNeocampus(b) => {
                write!(f, "not the neOCampus format (first byte {b:#04x}, expected 0x01)")
            }
            DecodeError::WrongHeader => f.write_str("the payload does not start with its layout's header"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for DecodeError {}

/// A decoded value, already scaled and rounded to the format's resolution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    /// A whole number: digital levels, presence, lux, ppm, counters.
    Integer(i64),
    /// A measure with a fractional part (°C, %, hPa, Wh …).
    Number(f64),
    /// Three axes: an accelerometer (G) or a gyrometer (°/s).
    Axes {
        /// X.
        x: f64,
        /// Y.
        y: f64,
        /// Z.
        z: f64,
    },
    /// A Cayenne GPS position.
    Position {
        /// Latitude, degrees.
        lat: f64,
        /// Longitude, degrees.
        lon: f64,
        /// Altitude, metres.
        alt: f64,
    },
    /// Bytes the format carries without a defined meaning (neOCampus-LPP's GPS type).
    Raw(&'a [u8]),
}

/// One reading of a payload.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading<'a> {
    /// What it measures: the last level of its neOCampus topic (`temperature`, `humidity` …).
    pub kind: &'static str,
    /// Its channel (the `subID` of its neOCampus reading).
    pub channel: u8,
    /// The value.
    pub value: Value<'a>,
    /// Its units, as neOCampus readings name them (`celsius`, `%r.H.`, `lux` …; empty for none).
    pub units: &'static str,
}

/// The readings of `payload` in `format`, in order; after an error the iterator ends. Collect
/// into `Result<Vec<_>, _>` to take all or nothing.
pub fn decode(format: Format, payload: &[u8]) -> Readings<'_> {
    let (pos, failed) = match (format, payload.first()) {
        (Format::Cayenne, _) => (0, None),
        (Format::Neocampus, Some(0x01)) => (2, None),
        (Format::Neocampus, Some(b)) => (0, Some(DecodeError::NotNeocampus(*b))),
        (Format::Neocampus, None) => (0, Some(DecodeError::Truncated(0))),
    };
    Readings { payload, format, pos, failed }
}

/// The iterator of [`decode`].
#[derive(Debug, Clone)]
pub struct Readings<'a> {
    payload: &'a [u8],
    format: Format,
    pos: usize,
    /// An error found before the first entry (a bad neOCampus header), reported first.
    failed: Option<DecodeError>,
}

impl<'a> Iterator for Readings<'a> {
    type Item = Result<Reading<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(e) = self.failed.take() {
            self.pos = self.payload.len();
            return Some(Err(e));
        }
        if self.pos >= self.payload.len() {
            return None;
        }
        let entry = match self.format {
            Format::Cayenne => cayenne_entry(self.payload, self.pos),
            Format::Neocampus => neocampus_entry(self.payload, self.pos),
        };
        match entry {
            Ok((reading, next)) => {
                self.pos = next;
                Some(Ok(reading))
            }
            Err(e) => {
                self.pos = self.payload.len();
                Some(Err(e))
            }
        }
    }
}

/// Rounds half away from zero, as `f64::round` (which needs std): exact, since the fractional
/// part of a float below 2^52 is itself a float.
fn round_half_away(x: f64) -> f64 {
    const WHOLE: f64 = 4_503_599_627_370_496.0; // 2^52: from here on every float is whole.
    if !(-WHOLE..=WHOLE).contains(&x) {
        // NaN, infinities and floats that are whole already.
        return x;
    }
    let whole = x as i64 as f64;
    let fraction = x - whole;
    let rounded = if fraction >= 0.5 {
        whole + 1.0
    } else if fraction <= -0.5 {
        whole - 1.0
    } else {
        whole
    };
    // -0.4 rounds to -0.0, as with std (JSON prints the sign).
    if rounded == 0.0 && x.is_sign_negative() { -0.0 } else { rounded }
}

/// `x` rounded to `1 / scale` (scale 10 → one decimal).
pub(crate) fn round_to(x: f64, scale: f64) -> f64 {
    round_half_away(x * scale) / scale
}

fn be_signed(b: &[u8]) -> i64 {
    let unsigned = be_unsigned(b);
    let bits = b.len() * 8;
    let sign = 1u64 << (bits - 1);
    if unsigned & sign != 0 { unsigned as i64 - (1i64 << bits) } else { unsigned as i64 }
}

fn be_unsigned(b: &[u8]) -> u64 {
    b.iter().fold(0u64, |acc, x| (acc << 8) | u64::from(*x))
}

/// The entry of a Cayenne LPP payload at `i` (`[channel, type, value…]`, big-endian) and where
/// the next one starts.
fn cayenne_entry(payload: &[u8], i: usize) -> Result<(Reading<'_>, usize), DecodeError> {
    let (Some(&channel), Some(&kind)) = (payload.get(i), payload.get(i + 1)) else {
        return Err(DecodeError::Truncated(i));
    };
    let size = match kind {
        0x00 | 0x01 | 0x66 | 0x68 => 1,
        0x02 | 0x03 | 0x65 | 0x67 | 0x73 => 2,
        0x71 | 0x86 => 6,
        0x88 => 9,
        _ => return Err(DecodeError::UnknownType { kind, offset: i + 1 }),
    };
    let start = i + 2;
    let v = payload.get(start..start + size).ok_or(DecodeError::Truncated(start))?;
    let scaled = |b: &[u8], unit: f64, scale: f64| round_to(be_signed(b) as f64 * unit, scale);
    let axes = |unit: f64, scale: f64| Value::Axes {
        x: scaled(&v[0..2], unit, scale),
        y: scaled(&v[2..4], unit, scale),
        z: scaled(&v[4..6], unit, scale),
    };
    let (kind, value, units) = match kind {
        0x00 => ("digital", Value::Integer(i64::from(v[0])), ""),
        0x01 => ("digital_output", Value::Integer(i64::from(v[0])), ""),
        0x02 => ("analog", Value::Number(scaled(v, 0.01, 100.0)), ""),
        0x03 => ("analog_output", Value::Number(scaled(v, 0.01, 100.0)), ""),
        0x65 => ("luminosity", Value::Integer(be_unsigned(v) as i64), "lux"),
        0x66 => ("presence", Value::Integer(i64::from(v[0])), ""),
        0x67 => ("temperature", Value::Number(scaled(v, 0.1, 10.0)), "celsius"),
        0x68 => ("humidity", Value::Number(round_to(f64::from(v[0]) * 0.5, 10.0)), "%r.H."),
        0x73 => ("pressure", Value::Number(round_to(be_unsigned(v) as f64 * 0.1, 10.0)), "hPa"),
        0x71 => ("accelerometer", axes(0.001, 1000.0), "G"),
        0x86 => ("gyrometer", axes(0.01, 100.0), "°/s"),
        _ => (
            "gps",
            Value::Position {
                lat: scaled(&v[0..3], 0.0001, 10_000.0),
                lon: scaled(&v[3..6], 0.0001, 10_000.0),
                alt: scaled(&v[6..9], 0.01, 100.0),
            },
            "",
        ),
    };
    Ok((Reading { kind, channel, value, units }, start + size))
}

/// The entry of a neOCampus-LPP payload at `i` (`[type, channel, value…]`, little-endian) and
/// where the next one starts.
fn neocampus_entry(payload: &[u8], i: usize) -> Result<(Reading<'_>, usize), DecodeError> {
    let (Some(&kind), Some(&channel)) = (payload.get(i), payload.get(i + 1)) else {
        return Err(DecodeError::Truncated(i));
    };
    let size = match kind {
        1..=4 | 6 | 8 | 9 | 11 | 16 => 1,
        5 | 7 | 10 => 2,
        13..=15 => 3,
        17 | 18 => 4,
        12 => 9,
        _ => return Err(DecodeError::UnknownType { kind, offset: i }),
    };
    let start = i + 2;
    let v = payload.get(start..start + size).ok_or(DecodeError::Truncated(start))?;
    let le16 = i64::from(u16::from_le_bytes([v[0], *v.get(1).unwrap_or(&0)]));
    let byte = Value::Integer(i64::from(v[0]));
    // A 16-bit whole part and a 1/256 fraction, rounded to 2 decimals as the deployed decoder
    // does (its public test: `3C 00 CC` → 60.8).
    let fixed = || Value::Number(round_to(le16 as f64 + f64::from(v[2]) / 256.0, 100.0));
    let (kind, value, units) = match kind {
        1 => ("analog", byte, ""),
        2 => ("analog_output", byte, ""),
        3 => ("digital", byte, ""),
        4 => ("digital_output", byte, ""),
        5 => ("luminosity", Value::Integer(le16), "lux"),
        6 => ("presence", byte, ""),
        7 => ("frequency", Value::Integer(le16), "pers/j"),
        // 20 °C reference, steps of 0.25 °C, a two's-complement int8 (spec §6: the public
        // test's encoder writes 0x85 for −10.8 °C, so 0x85 is −10.75 °C).
        8 => {
            let t = 20.0 + f64::from(i8::from_le_bytes([v[0]])) * 0.25;
            ("temperature", Value::Number(round_to(t, 100.0)), "celsius")
        }
        9 => ("humidity", Value::Number(round_to(f64::from(v[0]) * 0.5, 10.0)), "%r.H."),
        10 => ("co2", Value::Integer(le16), "ppm"),
        11 => ("airquality", byte, ""),
        12 => ("gps", Value::Raw(v), ""),
        13 => ("energy", fixed(), "W/m2"),
        14 => ("uv", fixed(), "W/m2"),
        15 => ("weight", Value::Integer(i64::from(u32::from_le_bytes([v[0], v[1], v[2], 0]))), "g"),
        16 => ("pressure", Value::Integer(990 + i64::from(v[0])), "mBar"),
        17 => ("generic", Value::Integer(i64::from(u32::from_le_bytes([v[0], v[1], v[2], v[3]]))), ""),
        _ => ("generic", Value::Integer(i64::from(i32::from_le_bytes([v[0], v[1], v[2], v[3]]))), ""),
    };
    Ok((Reading { kind, channel, value, units }, start + size))
}

#[cfg(test)]
#[path = "lpp_decode_tests.rs"]
mod decode_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cayenne_matches_the_public_examples() {
        // cayenne-docs LORA.md (spec/lorawan-vectors.md): channel 3 = 27.2 °C, channel 5 = 25.5 °C.
        let mut buf = [0u8; 16];
        let mut w = LppWriter::cayenne(&mut buf);
        w.temperature(3, 27.2).unwrap().temperature(5, 25.5).unwrap();
        assert_eq!(w.as_bytes(), [0x03, 0x67, 0x01, 0x10, 0x05, 0x67, 0x00, 0xFF]);
        let mut buf = [0u8; 4];
        let mut w = LppWriter::cayenne(&mut buf);
        w.temperature(1, -4.1).unwrap();
        assert_eq!(w.as_bytes(), [0x01, 0x67, 0xFF, 0xD7]);
    }

    #[test]
    fn neocampus_scales_and_signs() {
        let mut buf = [0u8; 32];
        let mut w = LppWriter::neocampus(&mut buf).unwrap();
        assert!(w.is_empty());
        w.temperature(1, 21.5).unwrap();
        w.temperature(2, 18.0).unwrap();
        w.humidity(1, 45.5).unwrap();
        w.luminosity(1, 0x0234).unwrap();
        w.co2(1, 812).unwrap();
        w.presence(1, true).unwrap();
        assert_eq!(
            w.as_bytes(),
            [0x01, 0x00, 8, 1, 6, 8, 2, 0xf8, 9, 1, 91, 5, 1, 0x34, 0x02, 10, 1, 0x2c, 0x03, 6, 1, 1]
        );
    }

    #[test]
    fn out_of_range_values_are_clamped_not_wrapped() {
        let mut buf = [0u8; 16];
        let mut w = LppWriter::neocampus(&mut buf).unwrap();
        w.temperature(1, 80.0).unwrap().temperature(2, -40.0).unwrap().humidity(3, 140.0).unwrap();
        assert_eq!(&w.as_bytes()[2..], [8, 1, 0x7f, 8, 2, 0x80, 9, 3, 0xff]);
        let mut buf = [0u8; 4];
        let mut w = LppWriter::cayenne(&mut buf);
        w.humidity(1, -5.0).unwrap();
        assert_eq!(w.as_bytes(), [1, 0x68, 0]);
    }

    #[test]
    fn a_full_buffer_is_an_error_and_keeps_what_was_written() {
        let mut buf = [0u8; 1];
        assert_eq!(LppWriter::neocampus(&mut buf).unwrap_err(), LppError::BufferFull);
        let mut buf = [0u8; 6];
        let mut w = LppWriter::cayenne(&mut buf);
        w.temperature(1, 20.0).unwrap();
        assert_eq!(w.temperature(2, 20.0).unwrap_err(), LppError::BufferFull);
        assert_eq!(w.len(), 4, "no half entry");
        let mut buf = [0u8; 8];
        assert_eq!(LppWriter::cayenne(&mut buf).co2(1, 400).unwrap_err(), LppError::NotInFormat);
    }
}
