//! Local sensors on the gateway's I2C bus, published as neOCampus readings exactly as a neOSensor
//! publishes them: `<room>/temperature` and `<room>/humidity`, `subID` = the I2C address in
//! decimal (`"68"` for an SHT3x at 0x44, `"24"` for an MCP9808 at 0x18), `unitID` =
//! `auto_<mac4>` of the gateway, temperatures with three decimals; sent when a value moved by
//! 0.15 or more, or 30 minutes after the last send (the firmware's rule).

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use neosens_protocol::legacy::{ReadingValue, SensorReading};
use tokio_util::sync::CancellationToken;

use super::{HalError, I2cBus};

/// The sensors the agent knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SensorKind {
    /// Sensirion SHT30/31/35: temperature and humidity (0x44 or 0x45).
    Sht3x,
    /// Microchip MCP9808: temperature (0x18 to 0x1F).
    Mcp9808,
}

/// A configured sensor: `sht3x@0x44`, `mcp9808@0x18` (`sht3x`, `mcp9808` alone: their default
/// address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SensorSpec {
    /// What it is.
    pub kind: SensorKind,
    /// Its 7-bit address.
    pub address: u8,
}

impl FromStr for SensorSpec {
    type Err = HalError;

    fn from_str(s: &str) -> Result<Self, HalError> {
        let bad = |reason: String| HalError::Config {
            setting: "[hal] sensors",
            reason: format!("{s:?}: {reason}; expected \"sht3x@0x44\" or \"mcp9808@0x18\""),
        };
        let (model, address) = neosens_protocol::gateway_config::parse_sensor(s).map_err(bad)?;
        let kind = match model {
            neosens_protocol::gateway_config::SensorModel::Sht3x => SensorKind::Sht3x,
            neosens_protocol::gateway_config::SensorModel::Mcp9808 => SensorKind::Mcp9808,
        };
        Ok(SensorSpec { kind, address })
    }
}

/// One measurement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measurement {
    /// °C.
    pub temperature: f64,
    /// % r.H., for sensors that measure it.
    pub humidity: Option<f64>,
}

/// CRC-8 of the SHT3x (polynomial 0x31, initial value 0xFF).
pub fn sht3x_crc(data: &[u8]) -> u8 {
    let mut crc = 0xFFu8;
    for &b in data {
        crc ^= b;
        for _ in 0..8 {
            crc = if crc & 0x80 != 0 { (crc << 1) ^ 0x31 } else { crc << 1 };
        }
    }
    crc
}

/// Converts an SHT3x answer (T msb, lsb, crc, RH msb, lsb, crc), checking both CRCs.
pub fn sht3x_convert(address: u8, raw: &[u8; 6]) -> Result<Measurement, HalError> {
    let bad = |reason: String| HalError::Sensor { sensor: "SHT3x", address, reason };
    for (word, name) in [(&raw[0..3], "temperature"), (&raw[3..6], "humidity")] {
        let crc = sht3x_crc(&word[..2]);
        if crc != word[2] {
            return Err(bad(format!("{name} checksum {:#04x}, expected {crc:#04x}", word[2])));
        }
    }
    let t = f64::from(u16::from_be_bytes([raw[0], raw[1]]));
    let rh = f64::from(u16::from_be_bytes([raw[3], raw[4]]));
    Ok(Measurement { temperature: -45.0 + 175.0 * t / 65535.0, humidity: Some(100.0 * rh / 65535.0) })
}

/// Converts the MCP9808's ambient temperature register (0x05).
pub fn mcp9808_convert(raw: [u8; 2]) -> f64 {
    let upper = raw[0] & 0x1F;
    let t = f64::from(upper & 0x0F) * 16.0 + f64::from(raw[1]) / 16.0;
    if upper & 0x10 != 0 { t - 256.0 } else { t }
}

/// Measures once (blocking: the SHT3x needs 15 ms to convert).
pub fn measure(bus: &mut dyn I2cBus, spec: SensorSpec) -> Result<Measurement, HalError> {
    match spec.kind {
        SensorKind::Sht3x => {
            // Single shot, high repeatability, no clock stretching.
            bus.write(spec.address, &[0x24, 0x00])?;
            std::thread::sleep(Duration::from_millis(16));
            let mut raw = [0u8; 6];
            bus.read(spec.address, &mut raw)?;
            sht3x_convert(spec.address, &raw)
        }
        SensorKind::Mcp9808 => {
            let mut raw = [0u8; 2];
            bus.write_read(spec.address, &[0x05], &mut raw)?;
            Ok(Measurement { temperature: mcp9808_convert(raw), humidity: None })
        }
    }
}

/// The readings of a measurement, as `(kind, payload)`.
pub fn payloads(spec: SensorSpec, m: &Measurement, unit_id: &str) -> Vec<(&'static str, f64, String)> {
    let sub = spec.address.to_string();
    let t = (m.temperature * 1000.0).round() / 1000.0;
    let mut out = vec![(
        "temperature",
        t,
        SensorReading::new(ReadingValue::Fixed { value: t, decimals: 3 }, Some("celsius"), &sub, unit_id)
            .to_json(),
    )];
    if let Some(h) = m.humidity {
        let h = h.round();
        out.push((
            "humidity",
            h,
            SensorReading::new(ReadingValue::Int(h as i64), Some("%r.H."), &sub, unit_id).to_json(),
        ));
    }
    out
}

/// The firmware's sending rule, per (kind, sensor).
#[derive(Debug, Default)]
pub struct ChangeFilter {
    last: HashMap<(&'static str, u8), (f64, Instant)>,
}

impl ChangeFilter {
    /// Whether `value` is to be sent now (and if so, remembers it).
    pub fn should_send(&mut self, kind: &'static str, address: u8, value: f64, now: Instant) -> bool {
        let send = match self.last.get(&(kind, address)) {
            None => true,
            Some((v, at)) => {
                (value - v).abs() >= 0.15 || now.duration_since(*at) >= Duration::from_secs(1800)
            }
        };
        if send {
            self.last.insert((kind, address), (value, now));
        }
        send
    }
}

/// Measures every `period` (the firmware's 60 s cooldown by default) and hands what is due to
/// `publish(kind, payload)`, until `shutdown`. A sensor that fails is reported once, then again
/// when it recovers.
pub async fn run(
    bus: Box<dyn I2cBus>,
    sensors: Vec<SensorSpec>,
    unit_id: String,
    period: Duration,
    publish: impl Fn(&'static str, String) + Send + Sync + 'static,
    shutdown: CancellationToken,
) {
    let bus = Arc::new(Mutex::new(bus));
    // Publishing appends to the outbox (a commit): done on the blocking pool, once per round.
    let publish = Arc::new(publish);
    let mut filter = ChangeFilter::default();
    let mut failing: HashMap<u8, bool> = HashMap::new();
    let mut tick = tokio::time::interval(period);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let (bus2, list) = (Arc::clone(&bus), sensors.clone());
        let results = tokio::task::spawn_blocking(move || {
            let mut bus = bus2.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            list.iter().map(|s| (*s, measure(bus.as_mut(), *s))).collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        let now = Instant::now();
        let mut outgoing = Vec::new();
        for (spec, result) in results {
            let was_failing = failing.insert(spec.address, result.is_err()).unwrap_or(false);
            match result {
                Ok(m) => {
                    if was_failing {
                        tracing::info!(address = spec.address, "gateway sensor answers again");
                    }
                    for (kind, value, payload) in payloads(spec, &m, &unit_id) {
                        if filter.should_send(kind, spec.address, value, now) {
                            outgoing.push((kind, payload));
                        }
                    }
                }
                Err(e) if !was_failing => tracing::warn!(error = %e, "gateway sensor"),
                Err(_) => {}
            }
        }
        if !outgoing.is_empty() {
            let publish = Arc::clone(&publish);
            neosens_runtime::blocking::run(move || {
                outgoing.into_iter().for_each(|(kind, payload)| publish(kind, payload))
            })
            .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hal::fake::FakeBus;

    /// An SHT3x answering `t_raw`/`rh_raw` to a single-shot measurement.
    fn sht3x(t_raw: u16, rh_raw: u16, corrupt: bool) -> crate::hal::fake::Device {
        Box::new(move |last, buf| {
            if last != [0x24, 0x00] {
                return Err(format!("unexpected command {last:02x?}"));
            }
            let [a, b] = t_raw.to_be_bytes();
            let [c, d] = rh_raw.to_be_bytes();
            let t_crc = sht3x_crc(&[a, b]) ^ u8::from(corrupt);
            buf.copy_from_slice(&[a, b, t_crc, c, d, sht3x_crc(&[c, d])]);
            Ok(())
        })
    }

    #[test]
    fn sht3x_crc_matches_the_datasheet_example() {
        assert_eq!(sht3x_crc(&[0xBE, 0xEF]), 0x92);
    }

    #[test]
    fn conversions_follow_the_datasheets() {
        let mut bus = FakeBus::new().with(0x44, sht3x(0x6666, 0x8000, false));
        let spec: SensorSpec = "sht3x".parse().unwrap();
        let m = measure(&mut bus, spec).unwrap();
        assert!((m.temperature - 25.0).abs() < 0.01, "{m:?}");
        assert!((m.humidity.unwrap() - 50.0).abs() < 0.01, "{m:?}");
        assert_eq!(bus.writes, [(0x44, vec![0x24, 0x00])]);
        // MCP9808: 0x01 0x94 = 25.25 °C; sign bit set: 0x1F 0xF0 = -1.0 °C; flag bits ignored.
        assert_eq!(mcp9808_convert([0x01, 0x94]), 25.25);
        assert_eq!(mcp9808_convert([0x1F, 0xF0]), -1.0);
        assert_eq!(mcp9808_convert([0xE1, 0x94]), 25.25);
        let mut bus = FakeBus::new().with(
            0x18,
            Box::new(|last, buf| {
                if last == [0x05] {
                    buf.copy_from_slice(&[0x01, 0x94]);
                    Ok(())
                } else {
                    Err("wrong register".into())
                }
            }),
        );
        let m = measure(&mut bus, "mcp9808@0x18".parse().unwrap()).unwrap();
        assert_eq!((m.temperature, m.humidity), (25.25, None));
    }

    #[test]
    fn bad_answers_and_absent_chips_are_errors_not_values() {
        let mut bus = FakeBus::new().with(0x44, sht3x(0x6666, 0x8000, true));
        let e = measure(&mut bus, "sht3x@0x44".parse().unwrap()).unwrap_err().to_string();
        assert!(e.contains("checksum"), "{e}");
        let e = measure(&mut bus, "sht3x@0x45".parse().unwrap()).unwrap_err().to_string();
        assert!(e.contains("0x45"), "{e}");
    }

    #[test]
    fn readings_are_the_firmware_payloads() {
        let spec = SensorSpec { kind: SensorKind::Sht3x, address: 0x44 };
        let out = payloads(spec, &Measurement { temperature: 21.52, humidity: Some(48.4) }, "auto_3456");
        assert_eq!(out[0].2, r#"{"value":21.520,"value_units":"celsius","subID":"68","unitID":"auto_3456"}"#);
        assert_eq!(out[1].2, r#"{"value":48,"value_units":"%r.H.","subID":"68","unitID":"auto_3456"}"#);
    }

    #[test]
    fn values_are_sent_on_change_or_every_half_hour() {
        let mut f = ChangeFilter::default();
        let t0 = Instant::now();
        assert!(f.should_send("temperature", 0x44, 21.0, t0));
        assert!(!f.should_send("temperature", 0x44, 21.1, t0 + Duration::from_secs(60)));
        assert!(f.should_send("temperature", 0x44, 21.16, t0 + Duration::from_secs(120)));
        assert!(f.should_send("temperature", 0x18, 21.16, t0 + Duration::from_secs(120)), "per sensor");
        assert!(f.should_send("temperature", 0x44, 21.16, t0 + Duration::from_secs(120 + 1800)));
    }

    #[test]
    fn sensor_settings_parse_with_clear_refusals() {
        assert_eq!(
            "SHT31@0x45".parse::<SensorSpec>().unwrap(),
            SensorSpec { kind: SensorKind::Sht3x, address: 0x45 }
        );
        assert_eq!("mcp9808@25".parse::<SensorSpec>().unwrap().address, 0x19);
        for bad in ["bme280", "sht3x@0x18", "mcp9808@zz", "sht3x@0x444"] {
            let e = bad.parse::<SensorSpec>().unwrap_err().to_string();
            assert!(e.contains("[hal] sensors"), "{bad}: {e}");
        }
    }

    // Several threads: the test polls with a blocking wait while the task runs.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_task_publishes_what_is_due() {
        let bus = FakeBus::new().with(0x44, sht3x(0x6666, 0x8000, false));
        let sent = Arc::new(Mutex::new(Vec::new()));
        let s = Arc::clone(&sent);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run(
            Box::new(bus),
            vec!["sht3x@0x44".parse().unwrap(), "mcp9808@0x18".parse().unwrap()],
            "auto_3456".into(),
            Duration::from_millis(20),
            move |kind, payload| s.lock().unwrap().push((kind, payload)),
            shutdown.clone(),
        ));
        neosens_runtime::testing::wait_until("two readings", || sent.lock().unwrap().len() >= 2);
        shutdown.cancel();
        task.await.unwrap();
        let sent = sent.lock().unwrap();
        assert_eq!(
            sent.len(),
            2,
            "unchanged values are not sent again, the absent MCP9808 sends nothing: {sent:?}"
        );
        assert_eq!((sent[0].0, sent[1].0), ("temperature", "humidity"));
    }
}
