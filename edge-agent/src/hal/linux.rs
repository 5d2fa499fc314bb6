//! The traits on Linux: GPIO lines through the character device (`/dev/gpiochipN`, requested
//! as outputs and released when dropped), I2C through `/dev/i2c-N` with combined transfers.

use std::path::Path;

use gpiocdev::line::Value;
use i2cdev::core::{I2CMessage, I2CTransfer};
use i2cdev::linux::{LinuxI2CBus, LinuxI2CMessage};

use super::{HalError, I2cBus, LineSpec, OutputPin};

/// An LED (or any output) on a GPIO line.
pub struct GpioOutput {
    request: gpiocdev::Request,
    line: String,
    active_low: bool,
}

impl GpioOutput {
    /// Requests the line as an output, off, under the consumer name `neosens-edge`.
    pub fn open(spec: &LineSpec, active_low: bool) -> Result<Self, HalError> {
        let line = format!("{}:{}", spec.chip.display(), spec.offset);
        let request = gpiocdev::Request::builder()
            .on_chip(&spec.chip)
            .with_consumer("neosens-edge")
            .with_line(spec.offset)
            .as_output(if active_low { Value::Active } else { Value::Inactive })
            .request()
            .map_err(|e| HalError::Gpio { line: line.clone(), reason: e.to_string() })?;
        Ok(GpioOutput { request, line, active_low })
    }
}

impl OutputPin for GpioOutput {
    fn set(&mut self, on: bool) -> Result<(), HalError> {
        let value = if on != self.active_low { Value::Active } else { Value::Inactive };
        self.request
            .set_lone_value(value)
            .map_err(|e| HalError::Gpio { line: self.line.clone(), reason: e.to_string() })
    }
}

/// An I2C bus (`/dev/i2c-1` on a Raspberry Pi's header, `/dev/i2c-1` or `-8` on a Jetson).
pub struct LinuxI2c {
    bus: LinuxI2CBus,
    path: String,
}

impl LinuxI2c {
    /// Opens the bus.
    pub fn open(path: &Path) -> Result<Self, HalError> {
        let bus = LinuxI2CBus::new(path).map_err(|e| HalError::I2c {
            bus: path.display().to_string(),
            address: 0,
            reason: format!("{e} (is the i2c-dev module loaded and the bus enabled?)"),
        })?;
        Ok(LinuxI2c { bus, path: path.display().to_string() })
    }

    fn transfer(&mut self, address: u8, messages: &mut [LinuxI2CMessage<'_>]) -> Result<(), HalError> {
        self.bus.transfer(messages).map(|_| ()).map_err(|e| HalError::I2c {
            bus: self.path.clone(),
            address,
            reason: e.to_string(),
        })
    }
}

impl I2cBus for LinuxI2c {
    fn write(&mut self, address: u8, bytes: &[u8]) -> Result<(), HalError> {
        self.transfer(address, &mut [LinuxI2CMessage::write(bytes).with_address(u16::from(address))])
    }

    fn read(&mut self, address: u8, buf: &mut [u8]) -> Result<(), HalError> {
        self.transfer(address, &mut [LinuxI2CMessage::read(buf).with_address(u16::from(address))])
    }

    fn write_read(&mut self, address: u8, bytes: &[u8], buf: &mut [u8]) -> Result<(), HalError> {
        let a = u16::from(address);
        self.transfer(
            address,
            &mut [LinuxI2CMessage::write(bytes).with_address(a), LinuxI2CMessage::read(buf).with_address(a)],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_devices_are_named_in_the_error() {
        let e = LinuxI2c::open(Path::new("/dev/i2c-does-not-exist")).err().unwrap().to_string();
        assert!(e.contains("/dev/i2c-does-not-exist") && e.contains("i2c-dev"), "{e}");
        let spec = LineSpec { chip: "/dev/gpiochip-does-not-exist".into(), offset: 17 };
        let e = GpioOutput::open(&spec, false).err().unwrap().to_string();
        assert!(e.contains("/dev/gpiochip-does-not-exist:17"), "{e}");
    }
}
