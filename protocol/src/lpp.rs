//! Sensor payloads for LoRaWAN nodes, written into a caller's buffer (no allocation: this runs
//! on the node's microcontroller). Two formats, both decoded by the edge agent's codecs:
//!
//! - **neOCampus-LPP** (`neocampus_lpp`, the 2016 prototype's "extended Cayenne",
//!   `spec/legacy-sensocampus.md` §6): byte 0 `0x01` (format), byte 1 reserved (`0x00`), then
//!   `[type, channel, value…]` with one-byte temperatures (20 °C ± n × 0.25, bit 7 = sign) and
//!   humidities (n × 0.5 %), little-endian 16-bit values.
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
                let steps = round((celsius - 20.0) / 0.25);
                let byte =
                    if steps < 0.0 { 0x80 | (-steps).min(127.0) as u8 } else { steps.min(127.0) as u8 };
                self.entry(8, 0, channel, &[byte])?;
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
            [0x01, 0x00, 8, 1, 6, 8, 2, 0x88, 9, 1, 91, 5, 1, 0x34, 0x02, 10, 1, 0x2c, 0x03, 6, 1, 1]
        );
    }

    #[test]
    fn out_of_range_values_are_clamped_not_wrapped() {
        let mut buf = [0u8; 16];
        let mut w = LppWriter::neocampus(&mut buf).unwrap();
        w.temperature(1, 80.0).unwrap().temperature(2, -40.0).unwrap().humidity(3, 140.0).unwrap();
        assert_eq!(&w.as_bytes()[2..], [8, 1, 0x7f, 8, 2, 0xff, 9, 3, 0xff]);
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
