//! One simulated neOSensor: boot (provisioning), one MQTT connection per module, the main loop
//! (status, readings, orders), and reboots on order — over and over until shutdown.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use neosens_protocol::ids::Mac;
use neosens_protocol::legacy::{Command, CommandValue, FirmwareStatus, ReadingValue, SensorReading};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::ota;
use crate::provisioning::{StateFile, provision};
use crate::{FleetStats, Pace};

/// The modules of a neOSensor with an SHT3x (0x44) and an MCP9808 (0x18), in the firmware's
/// list order: each gets its own MQTT connection.
const MODULES: [&str; 3] = ["device", "temperature", "humidity"];

/// What every simulated device shares.
pub struct Fleet {
    /// HTTP client for provisioning.
    pub http: reqwest::Client,
    /// Base URL of central (or a gateway's LAN listener).
    pub central: String,
    /// Base URL of the firmware-update check (`neocampus.univ-tlse3.fr` for the real boards:
    /// central, or the gateway of the devices' site).
    pub images: String,
    /// Broker to use when central names none.
    pub mqtt: (String, u16),
    /// Timing.
    pub pace: Pace,
    /// Stored credentials.
    pub state: StateFile,
    /// Counters.
    pub stats: FleetStats,
}

/// A message for the device's main loop.
enum Inbound {
    /// The device module's connection is up (CONNACK).
    Connected,
    /// A PUBLISH on a module's command topic.
    Command { module: &'static str, payload: Vec<u8> },
}

/// Waits for every task (their results do not matter here).
async fn join_all(tasks: Vec<tokio::task::JoinHandle<()>>) {
    for t in tasks {
        let _ = t.await;
    }
}

/// `%Y-%m-%d %H:%M:%S %z`, as the firmware prints its local time.
fn firmware_time() -> String {
    let now = time::OffsetDateTime::now_utc();
    let format = time::macros::format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second] [offset_hour sign:mandatory][offset_minute]"
    );
    now.format(&format).unwrap_or_else(|_| "1970-01-01 00:00:00 +0000".into())
}

/// The room's climate as this device's sensors see it: a slow random walk around its own values.
#[derive(Debug, Clone)]
pub struct Climate {
    /// °C.
    pub temperature: f64,
    /// % r.H.
    pub humidity: f64,
}

impl Climate {
    /// A room between 19 and 23 °C, 35 and 60 %.
    pub fn new() -> Self {
        Climate { temperature: 19.0 + fastrand::f64() * 4.0, humidity: 35.0 + fastrand::f64() * 25.0 }
    }

    /// One step of drift.
    pub fn step(&mut self) {
        self.temperature = (self.temperature + (fastrand::f64() - 0.5) * 0.3).clamp(15.0, 30.0);
        self.humidity = (self.humidity + (fastrand::f64() - 0.5) * 1.0).clamp(20.0, 80.0);
    }
}

impl Default for Climate {
    fn default() -> Self {
        Self::new()
    }
}

/// The payloads of one round of readings: temperature from both sensors (MCP9808 at 0x18 = 24,
/// SHT3x at 0x44 = 68), humidity from the SHT3x; temperatures with three decimals.
pub fn readings(mac: Mac, climate: &Climate) -> Vec<(&'static str, String)> {
    let unit = mac.module_unit_id("auto");
    let t = |offset: f64, sub: &str| {
        let value = ReadingValue::Fixed {
            value: ((climate.temperature + offset) * 1000.0).round() / 1000.0,
            decimals: 3,
        };
        SensorReading::new(value, Some("celsius"), sub, &unit).to_json()
    };
    vec![
        ("temperature", t(0.0, "24")),
        ("temperature", t(0.145, "68")),
        (
            "humidity",
            SensorReading::new(
                ReadingValue::Int(climate.humidity.round() as i64),
                Some("%r.H."),
                "68",
                &unit,
            )
            .to_json(),
        ),
    ]
}

/// The device module's status.
pub fn status(mac: Mac, frequency: u32, state: &str, firmware: u64) -> String {
    FirmwareStatus {
        frequency,
        time: firmware_time(),
        status: state.into(),
        modules: MODULES.len() as u32,
        heap: 160_000 + fastrand::u32(..20_000),
        hardware: "esp32".into(),
        firmware: u32::try_from(firmware).unwrap_or(u32::MAX),
        board: "neOSensor".into(),
        board_rev: 1.2,
        unit_id: format!("{mac:x}"),
    }
    .to_json()
}

fn connect(
    mac: Mac,
    server: &(String, u16),
    login: &str,
    password: &str,
) -> Vec<(&'static str, AsyncClient, EventLoop)> {
    MODULES
        .iter()
        .map(|module| {
            let client_id = format!("neOSensor_{}_{:x}", mac.mac4(), fastrand::u16(..));
            let mut options = MqttOptions::new(client_id, server.0.clone(), server.1);
            options.set_credentials(login, password);
            options.set_keep_alive(Duration::from_secs(60));
            options.set_clean_session(true);
            let (client, eventloop) = AsyncClient::new(options, 16);
            (*module, client, eventloop)
        })
        .collect()
}

async fn pause(pace: Pace, realistic: Duration, fast: Duration, shutdown: &CancellationToken) -> bool {
    let d = match pace {
        Pace::Realistic => realistic,
        Pace::Fast { .. } => fast,
    };
    tokio::select! {
        () = shutdown.cancelled() => false,
        () = tokio::time::sleep(d) => true,
    }
}

/// Runs one device until `shutdown`.
pub async fn run(fleet: Arc<Fleet>, mac: Mac, shutdown: CancellationToken) {
    let mut device =
        Device { mac, climate: Climate::new(), frequency: 1800, firmware: ota::FACTORY_REVISION };
    loop {
        device.firmware = fleet.state.get(mac).and_then(|s| s.firmware).unwrap_or(ota::FACTORY_REVISION);
        // Boot: the firmware-update check first; a transport failure there means a reboot.
        match update_check(&fleet, mac, device.firmware).await {
            Boot::On => {}
            Boot::Reboot => {
                fleet.stats.reboots.fetch_add(1, Ordering::Relaxed);
                if !pause(
                    fleet.pace,
                    Duration::from_millis(2000 + fastrand::u64(..10_000)),
                    Duration::from_millis(200),
                    &shutdown,
                )
                .await
                {
                    return;
                }
                continue;
            }
        }
        // Then provisioning, retried as the firmware does (10–50 s, here shortened when fast).
        let Some(provisioned) = provision_until_done(&fleet, mac, &shutdown).await else { return };
        let Some(topic) = provisioned.config.base_topic().map(str::to_owned) else {
            eprintln!("sim-device {mac:x}: its configuration names no topic (no room?); retrying later");
            if !pause(fleet.pace, Duration::from_secs(60), Duration::from_secs(1), &shutdown).await {
                return;
            }
            continue;
        };
        let server = match (&provisioned.stored.server, provisioned.stored.port) {
            (Some(host), port) => (host.clone(), port.unwrap_or(1883)),
            (None, _) => fleet.mqtt.clone(),
        };
        let mut links = Links::connect(&fleet, mac, &server, &provisioned.stored, &topic).await;
        let connected = device.live(&fleet, &mut links, &shutdown).await;
        links.close().await;
        if connected {
            fleet.stats.online.fetch_sub(1, Ordering::Relaxed);
        }
        if shutdown.is_cancelled() {
            return;
        }
        fleet.stats.reboots.fetch_add(1, Ordering::Relaxed);
        // delay(2000 + random(10000)), then back to step 1.
        let wait = Duration::from_millis(2000 + fastrand::u64(..10_000));
        if !pause(fleet.pace, wait, Duration::from_millis(50), &shutdown).await {
            return;
        }
    }
}

enum Boot {
    On,
    Reboot,
}

/// `neOCampusOTA()`: the check, and the update when one is offered.
async fn update_check(fleet: &Fleet, mac: Mac, running: u64) -> Boot {
    match ota::boot_check(&fleet.http, &fleet.images, mac, running).await {
        Ok(ota::Outcome::Updated(revision)) => {
            fleet.stats.updates.fetch_add(1, Ordering::Relaxed);
            if let Err(e) = fleet.state.set_firmware(mac, revision) {
                eprintln!("sim-device {mac:x}: storing its new revision: {e:#}");
            }
            Boot::Reboot
        }
        Ok(ota::Outcome::NotInWave) => {
            fleet.stats.not_in_wave.fetch_add(1, Ordering::Relaxed);
            Boot::On
        }
        Ok(ota::Outcome::RolledBack) => {
            fleet.stats.update_failures.fetch_add(1, Ordering::Relaxed);
            eprintln!("sim-device {mac:x}: the new image does not boot; rolled back to {running}");
            Boot::On
        }
        Ok(ota::Outcome::Failed(why)) => {
            fleet.stats.update_failures.fetch_add(1, Ordering::Relaxed);
            eprintln!("sim-device {mac:x}: update failed: {why}");
            Boot::On
        }
        Ok(ota::Outcome::NoUpdate) => Boot::On,
        Err(e) => {
            eprintln!("sim-device {mac:x}: update check: {e:#}; rebooting, as the firmware does");
            Boot::Reboot
        }
    }
}

/// Provisioning, retried until it succeeds; `None` at shutdown.
async fn provision_until_done(
    fleet: &Fleet,
    mac: Mac,
    shutdown: &CancellationToken,
) -> Option<crate::provisioning::Provisioned> {
    loop {
        match provision(&fleet.http, &fleet.central, mac, &fleet.state).await {
            Ok(p) => return Some(p),
            Err(e) => {
                fleet.stats.provisioning_failures.fetch_add(1, Ordering::Relaxed);
                eprintln!("sim-device {mac:x}: {e:#}");
                let wait = Duration::from_secs(10 + fastrand::u64(..40));
                if !pause(fleet.pace, wait, Duration::from_millis(500), shutdown).await {
                    return None;
                }
            }
        }
    }
}

/// The MQTT connections of one boot: one per module, each polled by its own task.
struct Links {
    fleet: Arc<Fleet>,
    topic: String,
    clients: Vec<(&'static str, AsyncClient)>,
    pollers: Vec<tokio::task::JoinHandle<()>>,
    inbound: mpsc::Receiver<Inbound>,
    /// Stops the pollers.
    reboot: CancellationToken,
    /// Set before our own DISCONNECTs: the connection errors that follow are not failures.
    closing: CancellationToken,
}

impl Links {
    async fn connect(
        fleet: &Arc<Fleet>,
        mac: Mac,
        server: &(String, u16),
        stored: &crate::provisioning::Stored,
        topic: &str,
    ) -> Links {
        let (tx, inbound) = mpsc::channel(64);
        let (reboot, closing) = (CancellationToken::new(), CancellationToken::new());
        let mut links = Links {
            fleet: Arc::clone(fleet),
            topic: topic.to_owned(),
            clients: Vec::new(),
            pollers: Vec::new(),
            inbound,
            reboot,
            closing,
        };
        for (module, client, eventloop) in connect(mac, server, &stored.login, &stored.password) {
            let _ = client.subscribe(format!("{topic}/{module}/command"), QoS::AtMostOnce).await;
            links.clients.push((module, client));
            let poller = poll(
                module,
                eventloop,
                tx.clone(),
                links.reboot.clone(),
                links.closing.clone(),
                Arc::clone(fleet),
            );
            links.pollers.push(tokio::spawn(poller));
        }
        links
    }

    /// Publishes on `<room>/<module>` through that module's connection, and counts it.
    async fn send(&self, module: &'static str, payload: String) {
        let Some(client) = self.clients.iter().find(|(m, _)| *m == module).or_else(|| self.clients.first())
        else {
            return;
        };
        let topic = format!("{}/{module}", self.topic);
        if client.1.publish(topic, QoS::AtMostOnce, false, payload).await.is_ok() {
            let counter =
                if module == "device" { &self.fleet.stats.statuses } else { &self.fleet.stats.readings };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Stops every connection (UNSUBSCRIBE is implied by DISCONNECT of a clean session). Each
    /// ends once its DISCONNECT is sent (or it was down anyway); a broker that does not answer at
    /// all does not hold the reboot for more than a second.
    async fn close(self) {
        self.closing.cancel();
        for (_, client) in &self.clients {
            let _ = client.disconnect().await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), join_all(self.pollers)).await;
        self.reboot.cancel();
    }
}

/// Polls one module's connection: CONNACK of the device module and commands go to the main loop.
async fn poll(
    module: &'static str,
    mut eventloop: EventLoop,
    tx: mpsc::Sender<Inbound>,
    stop: CancellationToken,
    closing: CancellationToken,
    fleet: Arc<Fleet>,
) {
    loop {
        let event = tokio::select! {
            () = stop.cancelled() => return,
            e = eventloop.poll() => e,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) if module == "device" => {
                let _ = tx.send(Inbound::Connected).await;
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let _ = tx.send(Inbound::Command { module, payload: p.payload.to_vec() }).await;
            }
            // Our DISCONNECT is on the wire: this connection is done.
            Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
            Ok(_) => {}
            Err(_) if closing.is_cancelled() => return,
            Err(_) => {
                fleet.stats.mqtt_errors.fetch_add(1, Ordering::Relaxed);
                // The firmware retries after 10, 20, 30 s; the next poll reconnects.
                let wait = match fleet.pace {
                    Pace::Realistic => Duration::from_secs(10),
                    Pace::Fast { .. } => Duration::from_millis(500),
                };
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
}

/// What a device keeps across reboots.
struct Device {
    mac: Mac,
    climate: Climate,
    frequency: u32,
    /// The revision it runs (reported in its statuses).
    firmware: u64,
}

impl Device {
    /// The main loop of one boot: statuses, readings and orders until a reboot order or
    /// shutdown. Returns whether it got online (counted in `online`).
    async fn live(&mut self, fleet: &Fleet, links: &mut Links, shutdown: &CancellationToken) -> bool {
        let (status_every, sensor_every) = match fleet.pace {
            Pace::Realistic => (Duration::from_secs(u64::from(self.frequency)), Duration::from_secs(60)),
            Pace::Fast { period } => (period, period),
        };
        let mut status_timer = tokio::time::interval(status_every);
        status_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Sensors give their first stable value about 9 s after start.
        let first_reading = match fleet.pace {
            Pace::Realistic => Duration::from_secs(9),
            Pace::Fast { period } => period,
        };
        let mut sensor_timer =
            tokio::time::interval_at(tokio::time::Instant::now() + first_reading, sensor_every);
        let mut connected = false;
        let mut last_sent: Option<(Climate, tokio::time::Instant)> = None;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return connected,
                Some(message) = links.inbound.recv() => match message {
                    Inbound::Connected => {
                        if !connected {
                            connected = true;
                            fleet.stats.online.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Inbound::Command { module, payload } => {
                        if self.obey(fleet, links, module, &payload, &mut status_timer).await == Obeyed::Reboot {
                            return connected;
                        }
                    }
                },
                _ = status_timer.tick(), if connected => {
                    links.send("device", status(self.mac, self.frequency, "running", self.firmware)).await;
                }
                _ = sensor_timer.tick(), if connected => self.sense(fleet, links, &mut last_sent).await,
            }
        }
    }

    /// A command on one of the module's topics, as the firmware handles it.
    async fn obey(
        &mut self,
        fleet: &Fleet,
        links: &Links,
        module: &'static str,
        payload: &[u8],
        status_timer: &mut tokio::time::Interval,
    ) -> Obeyed {
        let Ok(command) = Command::parse(payload) else { return Obeyed::Done };
        let me = if module == "device" { format!("{:x}", self.mac) } else { self.mac.module_unit_id("auto") };
        if !command.addresses_module(&me) {
            return Obeyed::Done;
        }
        fleet.stats.orders.fetch_add(1, Ordering::Relaxed);
        match (module, command.order.as_str()) {
            ("device", "status") => {
                links.send("device", status(self.mac, self.frequency, "running", self.firmware)).await
            }
            ("device", "frequency") => {
                if let Some(CommandValue::Int(v)) = command.value {
                    self.frequency = v.clamp(900, 21_600) as u32;
                    if fleet.pace == Pace::Realistic {
                        *status_timer = tokio::time::interval(Duration::from_secs(u64::from(self.frequency)));
                        status_timer.tick().await;
                    }
                }
                links.send("device", status(self.mac, self.frequency, "running", self.firmware)).await;
            }
            // Without a URL the firmware runs its boot-time check; the simulator does the same
            // for a URL too (it reboots into the check, which campaigns answer).
            ("device", "upgrade") => {
                links.send("device", status(self.mac, self.frequency, "upgrading", self.firmware)).await;
                return Obeyed::Reboot;
            }
            ("device", "reboot" | "restart") => {
                links.send("device", status(self.mac, self.frequency, "rebooting", self.firmware)).await;
                return Obeyed::Reboot;
            }
            (_, "acquire") if module != "device" => {
                for (kind, payload) in readings(self.mac, &self.climate) {
                    if kind == module {
                        links.send(kind, payload).await;
                    }
                }
            }
            _ => {}
        }
        Obeyed::Done
    }

    /// A sensor tick: the climate moves; readings go out when they changed enough (or every
    /// 30 minutes), as the firmware's filter does; always when fast.
    async fn sense(
        &mut self,
        fleet: &Fleet,
        links: &Links,
        last_sent: &mut Option<(Climate, tokio::time::Instant)>,
    ) {
        self.climate.step();
        let now = tokio::time::Instant::now();
        let due = match (&*last_sent, fleet.pace) {
            (_, Pace::Fast { .. }) | (None, _) => true,
            (Some((sent, at)), Pace::Realistic) => {
                (sent.temperature - self.climate.temperature).abs() >= 0.15
                    || (sent.humidity - self.climate.humidity).abs() >= 0.15
                    || now.duration_since(*at) >= Duration::from_secs(1800)
            }
        };
        if due {
            for (kind, payload) in readings(self.mac, &self.climate) {
                links.send(kind, payload).await;
                // 20 ms between two sensors' messages, as the firmware.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            *last_sent = Some((self.climate.clone(), now));
        }
    }
}

/// What a command asks of the main loop.
#[derive(Debug, PartialEq, Eq)]
enum Obeyed {
    Done,
    Reboot,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_follow_the_firmware() {
        let mac = Mac::parse_lenient("24:0a:c4:12:34:56").unwrap();
        let s: serde_json::Value = serde_json::from_str(&status(mac, 900, "running", 231_027)).unwrap();
        assert_eq!((s["frequency"].as_u64(), s["unitID"].as_str()), (Some(900), Some("24:0a:c4:12:34:56")));
        assert!(
            status(mac, 1800, "running", 231_027).ends_with("\"unitID\":\"24:0a:c4:12:34:56\"}"),
            "unitID last"
        );
        let climate = Climate { temperature: 21.52, humidity: 48.4 };
        let r = readings(mac, &climate);
        assert_eq!(
            r[0],
            (
                "temperature",
                r#"{"value":21.520,"value_units":"celsius","subID":"24","unitID":"auto_3456"}"#.to_owned()
            )
        );
        assert_eq!(
            r[2],
            (
                "humidity",
                r#"{"value":48,"value_units":"%r.H.","subID":"68","unitID":"auto_3456"}"#.to_owned()
            )
        );
        let t = firmware_time();
        assert_eq!(t.len(), "2023-10-27 10:15:02 +0000".len(), "{t}");
    }
}
