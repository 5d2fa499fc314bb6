//! Test doubles of the hardware traits: a pin that records what it was set to and when, and an
//! I2C bus whose devices are closures answering like the real chips.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::{HalError, I2cBus, OutputPin};

/// Records every level set, with the (tokio, possibly paused) time it was set at.
#[derive(Debug, Clone, Default)]
pub struct RecordingPin {
    /// `(time since creation, on)` for each `set`.
    pub log: Arc<Mutex<Vec<(std::time::Duration, bool)>>>,
    started: Option<tokio::time::Instant>,
}

impl RecordingPin {
    /// A pin whose times count from now.
    pub fn new() -> Self {
        RecordingPin { log: Arc::default(), started: Some(tokio::time::Instant::now()) }
    }

    /// What was recorded.
    pub fn entries(&self) -> Vec<(std::time::Duration, bool)> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl OutputPin for RecordingPin {
    fn set(&mut self, on: bool) -> Result<(), HalError> {
        let at = self.started.map(|s| s.elapsed()).unwrap_or_default();
        if let Ok(mut l) = self.log.lock() {
            l.push((at, on));
        }
        Ok(())
    }
}

/// A device on the fake bus: given the last bytes written to it, fills a read.
pub type Device = Box<dyn FnMut(&[u8], &mut [u8]) -> Result<(), String> + Send>;

/// An I2C bus with scripted devices; addresses without a device fail like an absent chip (NACK).
#[derive(Default)]
pub struct FakeBus {
    devices: HashMap<u8, (Device, Vec<u8>)>,
    /// Every write, in order: `(address, bytes)`.
    pub writes: Vec<(u8, Vec<u8>)>,
}

impl FakeBus {
    /// An empty bus.
    pub fn new() -> Self {
        FakeBus::default()
    }

    /// Puts a device at `address`.
    pub fn with(mut self, address: u8, device: Device) -> Self {
        self.devices.insert(address, (device, Vec::new()));
        self
    }

    fn nack(address: u8) -> HalError {
        HalError::I2c { bus: "fake".into(), address, reason: "no acknowledge".into() }
    }
}

impl I2cBus for FakeBus {
    fn write(&mut self, address: u8, bytes: &[u8]) -> Result<(), HalError> {
        let (_, last) = self.devices.get_mut(&address).ok_or_else(|| Self::nack(address))?;
        last.clear();
        last.extend_from_slice(bytes);
        self.writes.push((address, bytes.to_vec()));
        Ok(())
    }

    fn read(&mut self, address: u8, buf: &mut [u8]) -> Result<(), HalError> {
        let (device, last) = self.devices.get_mut(&address).ok_or_else(|| Self::nack(address))?;
        device(last, buf).map_err(|reason| HalError::I2c { bus: "fake".into(), address, reason })
    }

    fn write_read(&mut self, address: u8, bytes: &[u8], buf: &mut [u8]) -> Result<(), HalError> {
        self.write(address, bytes)?;
        self.read(address, buf)
    }
}
