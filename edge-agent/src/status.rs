//! The gateway as a device of its room: registered in central under its MAC like any Raspberry
//! Pi, it publishes a neOCampus status on its room's `<base>/device` every period (through the
//! outbox, like everything else), with its own fields, and follows orders on
//! `<base>/device/command`: `status` (publish now), `reboot` (the configured command), `update`
//! (sync now).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use neosens_protocol::Mac;
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use crate::cache::Cache;
use crate::outbox::Outbox;
use crate::sync::SyncStats;
use crate::uplink::{Inbound, UplinkStats};

/// What the status reads.
#[derive(Clone)]
pub struct StatusSources {
    /// The cache (to find its own room, count devices).
    pub cache: Cache,
    /// The outbox.
    pub outbox: Outbox,
    /// Sync counters.
    pub sync: Arc<SyncStats>,
    /// Uplink counters.
    pub uplink: Arc<UplinkStats>,
    /// Data directory (free disk).
    pub data_dir: PathBuf,
    /// The uplink's subscriptions (none without a broker).
    pub subscriber: Option<crate::uplink::Subscriber>,
}

/// The MAC of the first network interface with a real one (`eth0` first), for the default
/// identity of the gateway.
pub fn detect_mac() -> Option<Mac> {
    let mut names: Vec<String> = std::fs::read_dir("/sys/class/net")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n != "lo")
        .collect();
    names.sort_by_key(|n| (!n.starts_with("eth") && !n.starts_with("en"), n.clone()));
    names.iter().find_map(|n| {
        let text = std::fs::read_to_string(format!("/sys/class/net/{n}/address")).ok()?;
        text.trim().parse::<Mac>().ok().filter(|m| m.to_string() != "00:00:00:00:00:00")
    })
}

fn cpu_temperature() -> Option<f64> {
    let text = std::fs::read_to_string("/sys/class/thermal/thermal_zone0/temp").ok()?;
    text.trim().parse::<f64>().ok().map(|milli| (milli / 100.0).round() / 10.0)
}

fn free_disk_mb(dir: &std::path::Path) -> Option<u64> {
    let s = rustix::fs::statvfs(dir).ok()?;
    Some(s.f_bavail.saturating_mul(s.f_frsize) / (1024 * 1024))
}

fn now() -> (u64, String) {
    let t = time::OffsetDateTime::now_utc();
    let ms = (t.unix_timestamp_nanos() / 1_000_000) as u64;
    let text = t
        .format(time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] +0000"))
        .unwrap_or_default();
    (ms, text)
}

/// The gateway's base topic: its device's main room, if it is registered in the scope.
pub(crate) fn base_topic(cache: &Cache, mac: Mac) -> Option<String> {
    let device = cache.device_by_mac(mac).ok()??;
    let room = *device.record.rooms.first()?;
    cache.room(room).ok()?.map(|r| r.base_topic)
}

/// The status payload (neOCampus status fields, then the gateway's own).
pub fn status_payload(src: &StatusSources, mac: Mac, period_s: u64, status: &str, msg_id: u64) -> Value {
    let (now_ms, time) = now();
    let (depth, oldest) = src.outbox.depth(now_ms).unwrap_or_default();
    let last_sync = src.sync.last_success_s.load(Ordering::Relaxed);
    json!({
        "frequency": period_s,
        "time": time,
        "status": status,
        // As a device reports its firmware: the build's target and revision (what campaigns of
        // gateway builds follow, docs/edge.md#agent-updates), and the version in words.
        "hardware": crate::update::own_hardware(),
        "board": neosens_protocol::agent_build::AGENT_BOARD,
        "firmware": crate::update::running_revision(),
        "version": env!("CARGO_PKG_VERSION"),
        "unitID": mac.to_string().to_lowercase(),
        "msg_id": msg_id,
        "sync_revision": src.sync.revision.load(Ordering::Relaxed),
        "sync_lag_s": if last_sync == 0 { Value::Null } else { json!((now_ms / 1000).saturating_sub(last_sync)) },
        "devices": src.cache.device_count().unwrap_or_default(),
        "outbox_depth": depth,
        "outbox_oldest_s": oldest,
        "uplink_connects": src.uplink.connects.load(Ordering::Relaxed),
        "uplink_published": src.uplink.published.load(Ordering::Relaxed),
        "cpu_temp": cpu_temperature(),
        "disk_free_mb": free_disk_mb(&src.data_dir),
    })
}

/// Appends a status to the outbox, and makes sure the uplink listens to the gateway's command
/// topic; `false` when the gateway is not registered in its scope.
pub async fn publish_status(src: &StatusSources, mac: Mac, period_s: u64, status: &str) -> bool {
    let Some(base) = base_topic(&src.cache, mac) else { return false };
    if let Some(s) = &src.subscriber {
        s.subscribe(&format!("{base}/device/command"));
    }
    let topic = format!("{base}/device");
    let (now_ms, _) = now();
    // The payload names its outbox id, so it is built inside the append (one commit, on the
    // blocking pool).
    let (sources, status) = (src.clone(), status.to_owned());
    let appended = neosens_runtime::blocking::run(move || {
        sources.outbox.append_with(1, now_ms, |_, id| {
            (topic.clone(), status_payload(&sources, mac, period_s, &status, id).to_string().into_bytes())
        })
    })
    .await;
    if let Err(e) = appended {
        tracing::error!(error = %e, "appending the gateway status to the outbox");
    }
    true
}

/// An order addressed to the gateway, from `<base>/device/command`.
fn order_for(message: &Inbound, mac: Mac) -> Option<String> {
    if !message.topic.ends_with("/device/command") {
        return None;
    }
    let v: Value = serde_json::from_slice(&message.payload).ok()?;
    let dest = v.get("dest")?.as_str()?;
    let ours = dest.eq_ignore_ascii_case("all") || dest.parse::<Mac>().is_ok_and(|d| d == mac);
    ours.then(|| v.get("order")?.as_str().map(str::to_lowercase)).flatten()
}

/// Publishes the status every period and follows orders, until `shutdown`.
pub async fn run(
    src: StatusSources,
    mac: Mac,
    period: Duration,
    reboot_command: Option<String>,
    resync: Arc<Notify>,
    mut orders: mpsc::Receiver<Inbound>,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(period);
    let mut warned = false;
    let mut published = false;
    let sync = Arc::clone(&src.sync);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {
                published = publish_status(&src, mac, period.as_secs(), "running").await;
                if !published && !warned {
                    tracing::warn!(%mac, "this gateway is not registered as a device of its scope: register its MAC in a room to see it in the dashboard");
                    warned = true;
                }
            }
            // Before the first sync the gateway does not know its room: say it as soon as it does.
            () = sync.synced.notified(), if !published => {
                published = publish_status(&src, mac, period.as_secs(), "running").await;
            }
            // Without an uplink (not enrolled, no broker) the channel is closed: statuses go on.
            Some(message) = orders.recv() => {
                let Some(order) = order_for(&message, mac) else { continue };
                tracing::info!(order = %order, topic = %message.topic, "order received");
                match order.as_str() {
                    "status" => { publish_status(&src, mac, period.as_secs(), "running").await; }
                    "update" => resync.notify_one(),
                    // A campaign's wave reached the gateway: its build is looked for now.
                    "upgrade" => crate::firmware::check_now(),
                    "reboot" | "restart" => match &reboot_command {
                        Some(cmd) => {
                            publish_status(&src, mac, period.as_secs(), "rebooting").await;
                            let cmd = cmd.clone();
                            // Waited for off the runtime, so that it leaves no zombie behind.
                            tokio::task::spawn_blocking(move || {
                                match std::process::Command::new("/bin/sh").arg("-c").arg(&cmd).status() {
                                    Ok(s) if s.success() => {}
                                    Ok(s) => tracing::error!(command = %cmd, status = %s, "reboot command failed"),
                                    Err(e) => tracing::error!(command = %cmd, error = %e, "reboot command failed"),
                                }
                            });
                        }
                        None => tracing::warn!("reboot order refused: no [agent] reboot_command configured"),
                    },
                    other => tracing::info!(order = other, "order not handled by the gateway"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_are_taken_when_addressed_to_the_gateway() {
        let mac: Mac = "b8:27:eb:12:34:56".parse().unwrap();
        let msg = |payload: &str| Inbound {
            topic: "u4/302/device/command".into(),
            payload: bytes::Bytes::copy_from_slice(payload.as_bytes()),
            retain: false,
        };
        assert_eq!(
            order_for(&msg(r#"{"dest":"B8:27:EB:12:34:56","order":"status"}"#), mac).as_deref(),
            Some("status")
        );
        assert_eq!(order_for(&msg(r#"{"dest":"all","order":"Update"}"#), mac).as_deref(), Some("update"));
        assert_eq!(order_for(&msg(r#"{"dest":"24:0A:C4:12:34:56","order":"reboot"}"#), mac), None);
        assert_eq!(order_for(&msg("garbage"), mac), None);
        assert_eq!(order_for(&msg(r#"{"dest":5}"#), mac), None);
    }
}
