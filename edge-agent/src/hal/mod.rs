//! Hardware on the gateway itself: a status LED whose blink pattern tells the link state, and
//! optional local sensors on I2C published as neOCampus readings, like a neOSensor would.
//!
//! The code that decides (patterns, sensor protocols, CRCs, conversions) works on small traits
//! ([`OutputPin`], [`I2cBus`]) and is tested against fakes ([`fake`]); the Linux side
//! ([`linux`]) implements them with the kernel's character devices — `gpiocdev` for GPIO lines
//! (`/dev/gpiochipN`, the same on a Raspberry Pi and a Jetson) and `i2cdev` for `/dev/i2c-N`.
//! Serial lines (LoRa modems) are the third kind of hardware: [`crate::lorawan::modem`] opens
//! them with `tokio-serial` and speaks through its `LineProtocol` trait.

pub mod fake;
pub mod gateway;
pub mod led;
pub mod linux;
pub mod sensors;

/// A hardware access that failed.
#[derive(Debug, thiserror::Error)]
pub enum HalError {
    /// A GPIO line could not be requested or set.
    #[error("GPIO {line}: {reason}")]
    Gpio {
        /// `chip:offset`.
        line: String,
        /// What the kernel said.
        reason: String,
    },
    /// An I2C transfer failed (no device at the address, bus error).
    #[error("I2C {bus} address {address:#04x}: {reason}")]
    I2c {
        /// The bus device.
        bus: String,
        /// The 7-bit address.
        address: u8,
        /// What the kernel said.
        reason: String,
    },
    /// A sensor answered with a bad checksum or impossible data.
    #[error("{sensor} at {address:#04x}: {reason}")]
    Sensor {
        /// Its kind.
        sensor: &'static str,
        /// Its address.
        address: u8,
        /// What is wrong.
        reason: String,
    },
    /// A setting is malformed.
    #[error("{setting}: {reason}")]
    Config {
        /// The setting.
        setting: &'static str,
        /// What is wrong and how it should look.
        reason: String,
    },
}

/// A GPIO line driven as an output.
pub trait OutputPin: Send {
    /// Drives the line: `true` = LED on (active level, polarity handled by the implementation).
    fn set(&mut self, on: bool) -> Result<(), HalError>;
}

/// An I2C bus master.
pub trait I2cBus: Send {
    /// Writes `bytes` to the device at `address`.
    fn write(&mut self, address: u8, bytes: &[u8]) -> Result<(), HalError>;
    /// Reads `buf.len()` bytes from the device at `address`.
    fn read(&mut self, address: u8, buf: &mut [u8]) -> Result<(), HalError>;
    /// Writes then reads, with a repeated start (register reads).
    fn write_read(&mut self, address: u8, bytes: &[u8], buf: &mut [u8]) -> Result<(), HalError>;
}

/// A GPIO line as configured: `gpiochip0:17` (chip device name or path, line offset).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineSpec {
    /// `/dev/gpiochip0`.
    pub chip: std::path::PathBuf,
    /// Line offset on the chip.
    pub offset: u32,
}

impl std::str::FromStr for LineSpec {
    type Err = HalError;

    fn from_str(s: &str) -> Result<Self, HalError> {
        let bad = |reason: &str| HalError::Config {
            setting: "[hal] status_led",
            reason: format!("{s:?}: {reason}; expected chip:line such as \"gpiochip0:17\""),
        };
        let (chip, offset) = s.rsplit_once(':').ok_or_else(|| bad("no ':'"))?;
        let offset = offset.trim().parse().map_err(|_| bad("the line is not a number"))?;
        let chip = chip.trim();
        if chip.is_empty() {
            return Err(bad("no chip"));
        }
        let chip = if chip.starts_with('/') { chip.into() } else { std::path::Path::new("/dev").join(chip) };
        Ok(LineSpec { chip, offset })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpio_lines_parse_with_clear_refusals() {
        let l: LineSpec = "gpiochip0:17".parse().unwrap();
        assert_eq!((l.chip.to_str(), l.offset), (Some("/dev/gpiochip0"), 17));
        let l: LineSpec = "/dev/gpiochip2:5".parse().unwrap();
        assert_eq!((l.chip.to_str(), l.offset), (Some("/dev/gpiochip2"), 5));
        for bad in ["gpiochip0", ":4", "gpiochip0:x", "gpiochip0:-1", ""] {
            let e = bad.parse::<LineSpec>().unwrap_err().to_string();
            assert!(e.contains("[hal] status_led") && e.contains("gpiochip0:17"), "{bad}: {e}");
        }
    }
}
