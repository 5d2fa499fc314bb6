//! The adoption inbox: MACs that are not registered and ask for their credentials
//! (`/device/credentials`, at central or through a gateway) — new boards calling home. An
//! operator adopts one (room, type) in one step and its next retry gets its credentials: nobody
//! types a MAC.
//!
//! Bounded and short-lived by construction: [`MAX_UNCLAIMED`] MACs, each forgotten
//! [`FORGET_AFTER_MS`] after it last asked; when full, the one that asked least recently makes
//! room. A scanner is throttled per source before it gets here (the legacy path's scan limiter),
//! so one address can only add a few entries. Kept in memory: a board that keeps asking shows
//! up again after a restart of central at its next retry (every few seconds to minutes).

use std::collections::HashMap;
use std::sync::Arc;

use neosens_protocol::ids::{GatewayId, Mac};
use parking_lot::Mutex;
use serde::Serialize;

/// MACs kept at most.
pub const MAX_UNCLAIMED: usize = 1000;

/// A MAC that has not asked for this long is forgotten (24 h: a board left unpowered, or a
/// neighbour's that asked once).
pub const FORGET_AFTER_MS: i64 = 24 * 3600 * 1000;

/// Longest `User-Agent` kept (the firmware's are `ESP32HTTPClient`, `ESP8266HTTPClient`,
/// `python-requests/x`).
const MAX_USER_AGENT: usize = 128;

/// An unregistered MAC that asked for its credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct UnclaimedDevice {
    /// The MAC it asked with.
    #[schema(value_type = String, example = "24:0a:c4:12:34:56")]
    pub mac: Mac,
    /// First time it asked (since it was last forgotten), ms since the epoch.
    pub first_seen_ms: i64,
    /// Last time.
    pub last_seen_ms: i64,
    /// How many times.
    pub count: u64,
    /// The address it asked from (as its gateway named it, when through one).
    pub source: String,
    /// The gateway it asked through, if any.
    #[schema(value_type = Option<String>)]
    pub gateway: Option<GatewayId>,
    /// Its `User-Agent`, as sent (trimmed to 128 characters).
    pub user_agent: Option<String>,
    /// What the `User-Agent` says it is: `esp32`, `esp8266`, `rpi` (the Python client), or
    /// `null`.
    pub board: Option<&'static str>,
}

/// The board a `User-Agent` names (`spec/client-sequence.md`).
fn board_of(user_agent: &str) -> Option<&'static str> {
    if user_agent.starts_with("ESP32") {
        Some("esp32")
    } else if user_agent.starts_with("ESP8266") {
        Some("esp8266")
    } else if user_agent.starts_with("python-requests") {
        Some("rpi")
    } else {
        None
    }
}

/// Who asked, and how.
#[derive(Debug, Clone, Default)]
pub struct Asker {
    /// The device's address.
    pub source: String,
    /// The gateway it came through.
    pub gateway: Option<GatewayId>,
    /// Its `User-Agent`.
    pub user_agent: Option<String>,
}

/// The inbox (cheap to clone: shared).
#[derive(Debug, Clone, Default)]
pub struct Unclaimed {
    inner: Arc<Mutex<HashMap<Mac, UnclaimedDevice>>>,
}

impl Unclaimed {
    /// `mac` is not registered and asked at `now`.
    pub fn asked(&self, mac: Mac, asker: Asker, now: i64) {
        self.merge(mac, asker, now, 1);
    }

    /// `mac` is not registered and asked `count` times, last at `at` (a gateway's report of
    /// what it heard while central was out of reach).
    pub fn merge(&self, mac: Mac, asker: Asker, at: i64, count: u64) {
        let now = at;
        let user_agent = asker.user_agent.map(|ua| ua.chars().take(MAX_USER_AGENT).collect::<String>());
        let mut map = self.inner.lock();
        if !map.contains_key(&mac) && map.len() >= MAX_UNCLAIMED {
            map.retain(|_, d| now - d.last_seen_ms < FORGET_AFTER_MS);
            if map.len() >= MAX_UNCLAIMED {
                if let Some(oldest) = map.values().min_by_key(|d| d.last_seen_ms).map(|d| d.mac) {
                    map.remove(&oldest);
                }
            }
        }
        let entry = map.entry(mac).or_insert_with(|| UnclaimedDevice {
            mac,
            first_seen_ms: now,
            last_seen_ms: now,
            count: 0,
            source: String::new(),
            gateway: None,
            user_agent: None,
            board: None,
        });
        entry.first_seen_ms = entry.first_seen_ms.min(now);
        entry.count = entry.count.saturating_add(count);
        if now >= entry.last_seen_ms {
            entry.last_seen_ms = now;
            entry.source = asker.source;
            entry.gateway = asker.gateway;
            entry.board = user_agent.as_deref().and_then(board_of);
            entry.user_agent = user_agent;
        }
    }

    /// The MACs that asked within [`FORGET_AFTER_MS`], most recent first (the others are
    /// forgotten now).
    pub fn list(&self, now: i64) -> Vec<UnclaimedDevice> {
        let mut map = self.inner.lock();
        map.retain(|_, d| now - d.last_seen_ms < FORGET_AFTER_MS);
        let mut out: Vec<UnclaimedDevice> = map.values().cloned().collect();
        out.sort_by(|a, b| b.last_seen_ms.cmp(&a.last_seen_ms).then(a.mac.cmp(&b.mac)));
        out
    }

    /// One MAC's entry.
    pub fn get(&self, mac: Mac) -> Option<UnclaimedDevice> {
        self.inner.lock().get(&mac).cloned()
    }

    /// Removes a MAC (adopted, or dismissed); whether it was there.
    pub fn remove(&self, mac: Mac) -> bool {
        self.inner.lock().remove(&mac).is_some()
    }

    /// MACs held now.
    pub fn len(&self) -> usize {
        self.inner.lock().len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(n: u32) -> Mac {
        let b = n.to_be_bytes();
        Mac::from_bytes([0x24, 0x0a, b[0], b[1], b[2], b[3]])
    }

    fn asker(source: &str, ua: Option<&str>) -> Asker {
        Asker { source: source.into(), gateway: None, user_agent: ua.map(str::to_owned) }
    }

    #[test]
    fn a_mac_asking_again_is_counted_with_its_latest_source_and_board() {
        let inbox = Unclaimed::default();
        inbox.asked(mac(1), asker("10.0.0.5", Some("ESP8266HTTPClient")), 1_000);
        let gw = GatewayId::from_bytes([9; 16]);
        let through = Asker {
            source: "192.168.1.7".into(),
            gateway: Some(gw),
            user_agent: Some("ESP32HTTPClient".into()),
        };
        inbox.asked(mac(1), through, 5_000);
        inbox.asked(mac(2), asker("10.0.0.6", Some("python-requests/2.31.0")), 3_000);
        let list = inbox.list(6_000);
        assert_eq!(list.iter().map(|d| d.mac).collect::<Vec<_>>(), [mac(1), mac(2)], "most recent first");
        let d = &list[0];
        assert_eq!((d.first_seen_ms, d.last_seen_ms, d.count), (1_000, 5_000, 2));
        assert_eq!((d.source.as_str(), d.gateway, d.board), ("192.168.1.7", Some(gw), Some("esp32")));
        assert_eq!(list[1].board, Some("rpi"));
        inbox.asked(mac(3), asker("x", Some(&"é".repeat(1000))), 6_000);
        let odd = inbox.get(mac(3)).unwrap();
        assert_eq!((odd.user_agent.unwrap().chars().count(), odd.board), (MAX_USER_AGENT, None));
        assert!(inbox.remove(mac(3)) && !inbox.remove(mac(3)));
        // A gateway's report of what it heard offline: counts add up, the newest source wins.
        let gw2 = GatewayId::from_bytes([8; 16]);
        let offline = Asker { source: "192.168.9.9".into(), gateway: Some(gw2), user_agent: None };
        inbox.merge(mac(1), offline.clone(), 500, 4);
        let d = inbox.get(mac(1)).unwrap();
        assert_eq!((d.first_seen_ms, d.last_seen_ms, d.count, d.gateway), (500, 5_000, 6, Some(gw)));
        inbox.merge(mac(1), offline, 7_000, 1);
        assert_eq!(inbox.get(mac(1)).unwrap().gateway, Some(gw2));
    }

    /// Past the bound, the MAC that asked least recently makes room; a day of silence forgets.
    #[test]
    fn the_inbox_is_bounded_and_forgets() {
        let inbox = Unclaimed::default();
        for n in 0..(MAX_UNCLAIMED as u32 * 3) {
            inbox.asked(mac(n), asker("10.0.0.1", None), i64::from(n));
        }
        assert_eq!(inbox.len(), MAX_UNCLAIMED);
        let list = inbox.list(10_000);
        assert_eq!(list.last().unwrap().mac, mac(MAX_UNCLAIMED as u32 * 2), "the newest thousand are kept");
        assert!(inbox.list(MAX_UNCLAIMED as i64 * 3 + FORGET_AFTER_MS).is_empty());
        assert!(inbox.is_empty());
    }
}
