//! Payload layouts: how a device type's nodes lay out their application payloads, declared in
//! central and decoded by the gateways, so that a new sensor needs no new release. A payload is
//! an optional header, then records `[type, channel, value…]` (or `[channel, type, value…]`);
//! each type byte names a record: its kind (the reading's topic level), unit, and how its value
//! reads — an integer of 1 to 4 bytes (signed or not, either byte order) times a scale plus an
//! offset, rounded to some decimals; an integer followed by a byte of 256ths; or raw bytes. The
//! channel is the reading's `subID`.
//!
//! [`neocampus_lpp`] is the neOCampus-LPP table in this form (its tests check it against the
//! built-in decoder, [`crate::lpp::decode`]).

use alloc::string::String;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::lpp::{DecodeError, Value, round_to};

/// Records a layout holds at most (one per type byte).
pub const MAX_RECORDS: usize = 64;

/// How a device type's payloads read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PayloadLayout {
    /// Bytes a payload starts with (neOCampus-LPP: `[1]`, its format byte); a payload that does
    /// not is refused.
    #[serde(default)]
    pub header: Vec<u8>,
    /// Bytes skipped after the header (neOCampus-LPP: 1, its reserved byte).
    #[serde(default)]
    pub skip: u8,
    /// Whether the type byte comes before the channel (`type_first`, neOCampus-LPP) or after it
    /// (`channel_first`, Cayenne LPP).
    pub order: RecordOrder,
    /// The records, one per type byte.
    pub records: Vec<LayoutRecord>,
}

/// Where a record's type byte stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RecordOrder {
    /// `[type, channel, value…]`.
    TypeFirst,
    /// `[channel, type, value…]`.
    ChannelFirst,
}

/// How a record's value reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// An integer of `size` bytes, times `scale` plus `offset`.
    #[default]
    Int,
    /// An unsigned integer of `size` bytes, then one byte of 256ths (neOCampus energy, UV).
    IntFraction,
    /// `size` bytes, published as hex (`{"raw": "…"}`).
    Raw,
}

fn one() -> f64 {
    1.0
}

/// One record of a layout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LayoutRecord {
    /// The type byte.
    pub type_byte: u8,
    /// The reading's kind: the last level of its topic (`temperature`, `co2` …).
    pub kind: String,
    /// Its unit, as neOCampus readings name them (`celsius`, `ppm` …; empty for none).
    #[serde(default)]
    pub unit: String,
    /// How the value reads.
    #[serde(default)]
    pub encoding: Encoding,
    /// Bytes of the integer (1 to 4; `raw`: 1 to 64).
    pub size: u8,
    /// A two's-complement integer.
    #[serde(default)]
    pub signed: bool,
    /// Least significant byte first.
    #[serde(default)]
    pub little_endian: bool,
    /// Multiplies the integer.
    #[serde(default = "one")]
    pub scale: f64,
    /// Added after the scale.
    #[serde(default)]
    pub offset: f64,
    /// Decimals the value is rounded to (none: as computed).
    #[serde(default)]
    pub decimals: Option<u8>,
}

/// Why a layout is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutError(pub String);

impl core::fmt::Display for LayoutError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.0)
    }
}

fn plain_level(s: &str) -> bool {
    !s.is_empty() && s.len() <= 32 && !s.contains(['/', '+', '#', '\0'])
}

impl LayoutRecord {
    fn check(&self) -> Result<(), LayoutError> {
        let bad = |m: String| Err(LayoutError(m));
        let t = self.type_byte;
        if !plain_level(&self.kind) {
            return bad(alloc::format!("type {t}: kind is one topic level of 1 to 32 characters"));
        }
        if self.unit.len() > 16 {
            return bad(alloc::format!("type {t}: unit is 16 characters at most"));
        }
        let sizes = match self.encoding {
            Encoding::Int => 1..=4,
            Encoding::IntFraction => 1..=3,
            Encoding::Raw => 1..=64,
        };
        if !sizes.contains(&self.size) {
            return bad(alloc::format!("type {t}: size {} (this encoding takes {sizes:?})", self.size));
        }
        if !self.scale.is_finite() || self.scale == 0.0 || !self.offset.is_finite() {
            return bad(alloc::format!("type {t}: scale is a non-zero number, offset a number"));
        }
        if self.decimals.is_some_and(|d| d > 6) {
            return bad(alloc::format!("type {t}: decimals 0 to 6"));
        }
        Ok(())
    }

    /// Bytes of its value.
    fn len(&self) -> usize {
        usize::from(self.size) + usize::from(self.encoding == Encoding::IntFraction)
    }

    fn read<'a>(&self, v: &'a [u8]) -> Value<'a> {
        let int = &v[..usize::from(self.size)];
        let unsigned = if self.little_endian {
            int.iter().rev().fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
        } else {
            int.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
        };
        let bits = int.len() * 8;
        let n = if self.signed && unsigned & (1 << (bits - 1)) != 0 {
            unsigned as i64 - (1i64 << bits)
        } else {
            unsigned as i64
        };
        let rounded = |x: f64| match self.decimals {
            Some(d) => round_to(x, [1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6][usize::from(d.min(6))]),
            None => x,
        };
        match self.encoding {
            Encoding::Raw => Value::Raw(int),
            Encoding::IntFraction => {
                Value::Number(rounded(unsigned as f64 + f64::from(v[usize::from(self.size)]) / 256.0))
            }
            Encoding::Int => {
                let whole = |x: f64| x == (x as i64) as f64;
                if self.decimals.is_none() && whole(self.scale) && whole(self.offset) {
                    Value::Integer(n * self.scale as i64 + self.offset as i64)
                } else {
                    Value::Number(rounded(n as f64 * self.scale + self.offset))
                }
            }
        }
    }
}

impl PayloadLayout {
    /// Whether the layout is one the gateways can decode with: at most [`MAX_RECORDS`], a type
    /// byte once each, sizes within their encoding's, kinds one topic level.
    pub fn check(&self) -> Result<(), LayoutError> {
        if self.records.is_empty() || self.records.len() > MAX_RECORDS {
            return Err(LayoutError(alloc::format!("1 to {MAX_RECORDS} records")));
        }
        if self.header.len() > 8 || self.skip > 8 {
            return Err(LayoutError("a header of 8 bytes at most, 8 bytes skipped at most".into()));
        }
        for (i, r) in self.records.iter().enumerate() {
            r.check()?;
            if self.records[..i].iter().any(|o| o.type_byte == r.type_byte) {
                return Err(LayoutError(alloc::format!("type {} is declared twice", r.type_byte)));
            }
        }
        Ok(())
    }

    /// The readings of `payload`: (record, channel, value), in order; the first error ends it.
    pub fn decode<'a>(
        &'a self,
        payload: &'a [u8],
    ) -> Result<Vec<(&'a LayoutRecord, u8, Value<'a>)>, DecodeError> {
        if !payload.starts_with(&self.header) {
            return Err(if payload.is_empty() {
                DecodeError::Truncated(0)
            } else {
                DecodeError::WrongHeader
            });
        }
        let mut out = Vec::new();
        let mut i = self.header.len() + usize::from(self.skip);
        while i < payload.len() {
            let (Some(&a), Some(&b)) = (payload.get(i), payload.get(i + 1)) else {
                return Err(DecodeError::Truncated(i));
            };
            let (kind, channel, at) = match self.order {
                RecordOrder::TypeFirst => (a, b, i),
                RecordOrder::ChannelFirst => (b, a, i + 1),
            };
            let record = self
                .records
                .iter()
                .find(|r| r.type_byte == kind)
                .ok_or(DecodeError::UnknownType { kind, offset: at })?;
            let start = i + 2;
            let v = payload.get(start..start + record.len()).ok_or(DecodeError::Truncated(start))?;
            out.push((record, channel, record.read(v)));
            i = start + record.len();
        }
        Ok(out)
    }
}

/// The neOCampus-LPP table (`spec/legacy-sensocampus.md` §6) as a layout.
pub fn neocampus_lpp() -> PayloadLayout {
    let rec = |type_byte: u8, kind: &str, unit: &str, size: u8| LayoutRecord {
        type_byte,
        kind: kind.into(),
        unit: unit.into(),
        encoding: Encoding::Int,
        size,
        signed: false,
        little_endian: true,
        scale: 1.0,
        offset: 0.0,
        decimals: None,
    };
    let records = alloc::vec![
        rec(1, "analog", "", 1),
        rec(2, "analog_output", "", 1),
        rec(3, "digital", "", 1),
        rec(4, "digital_output", "", 1),
        rec(5, "luminosity", "lux", 2),
        rec(6, "presence", "", 1),
        rec(7, "frequency", "pers/j", 2),
        LayoutRecord {
            signed: true,
            scale: 0.25,
            offset: 20.0,
            decimals: Some(2),
            ..rec(8, "temperature", "celsius", 1)
        },
        LayoutRecord { scale: 0.5, decimals: Some(1), ..rec(9, "humidity", "%r.H.", 1) },
        rec(10, "co2", "ppm", 2),
        rec(11, "airquality", "", 1),
        LayoutRecord { encoding: Encoding::Raw, ..rec(12, "gps", "", 9) },
        LayoutRecord { encoding: Encoding::IntFraction, decimals: Some(2), ..rec(13, "energy", "W/m2", 2) },
        LayoutRecord { encoding: Encoding::IntFraction, decimals: Some(2), ..rec(14, "uv", "W/m2", 2) },
        rec(15, "weight", "g", 3),
        LayoutRecord { offset: 990.0, ..rec(16, "pressure", "mBar", 1) },
        rec(17, "generic", "", 4),
        LayoutRecord { signed: true, ..rec(18, "generic", "", 4) },
    ];
    PayloadLayout { header: alloc::vec![0x01], skip: 1, order: RecordOrder::TypeFirst, records }
}

#[cfg(test)]
#[path = "layout_tests.rs"]
mod tests;
