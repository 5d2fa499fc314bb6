//! Unregistered MACs that asked this gateway for their credentials while central was out of
//! reach (online, the request goes to central, whose adoption inbox sees it). Kept here, the
//! most recent [`MAX_UNCLAIMED_REPORTED`], and handed to central with the next health report,
//! so a board calling home at a site cut off from central still shows up to be adopted.

use std::collections::HashMap;
use std::time::Instant;

use neosens_protocol::edge::{MAX_UNCLAIMED_REPORTED, UnclaimedReport};
use neosens_protocol::ids::Mac;
use parking_lot::Mutex;

/// Longest `User-Agent` kept.
const MAX_USER_AGENT: usize = 128;

#[derive(Debug, Clone)]
struct Asked {
    last: Instant,
    count: u64,
    source: String,
    user_agent: Option<String>,
}

/// The MACs kept until reported.
#[derive(Debug, Default)]
pub struct UnclaimedHere {
    by_mac: Mutex<HashMap<Mac, Asked>>,
}

impl UnclaimedHere {
    /// `mac`, unknown here, asked from `source` at `now`.
    pub fn asked(&self, mac: Mac, source: &str, user_agent: Option<&str>, now: Instant) {
        let mut map = self.by_mac.lock();
        if !map.contains_key(&mac) && map.len() >= MAX_UNCLAIMED_REPORTED {
            if let Some(oldest) = map.iter().min_by_key(|(_, a)| a.last).map(|(m, _)| *m) {
                map.remove(&oldest);
            }
        }
        let entry = map.entry(mac).or_insert_with(|| Asked {
            last: now,
            count: 0,
            source: String::new(),
            user_agent: None,
        });
        entry.last = entry.last.max(now);
        entry.count = entry.count.saturating_add(1);
        entry.source = source.chars().take(64).collect();
        entry.user_agent = user_agent.map(|ua| ua.chars().take(MAX_USER_AGENT).collect());
    }

    /// Everything kept, for a report (taken out: [`Self::put_back`] if the report fails).
    pub fn take(&self, now: Instant) -> Vec<UnclaimedReport> {
        let taken = std::mem::take(&mut *self.by_mac.lock());
        let mut out: Vec<UnclaimedReport> = taken
            .into_iter()
            .map(|(mac, a)| UnclaimedReport {
                mac: mac.to_string(),
                last_seen_age_s: now.saturating_duration_since(a.last).as_secs(),
                count: a.count,
                source: a.source,
                user_agent: a.user_agent,
            })
            .collect();
        out.sort_by(|a, b| a.mac.cmp(&b.mac));
        out
    }

    /// A report that did not reach central: its MACs are kept for the next one (those asked
    /// meanwhile keep their newer figures; the bound holds). `taken` is when [`Self::take`]
    /// measured its ages.
    pub fn put_back(&self, reports: Vec<UnclaimedReport>, taken: Instant) {
        let now = taken;
        for r in reports {
            let Ok(mac) = r.mac.parse::<Mac>() else { continue };
            let at = now.checked_sub(std::time::Duration::from_secs(r.last_seen_age_s)).unwrap_or(now);
            let mut map = self.by_mac.lock();
            if map.contains_key(&mac) || map.len() >= MAX_UNCLAIMED_REPORTED {
                continue;
            }
            map.insert(mac, Asked { last: at, count: r.count, source: r.source, user_agent: r.user_agent });
        }
    }

    /// MACs kept now.
    pub fn len(&self) -> usize {
        self.by_mac.lock().len()
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn mac(n: u16) -> Mac {
        let [a, b] = n.to_be_bytes();
        Mac::from_bytes([0x24, 0x0a, 0xc4, 0, a, b])
    }

    #[test]
    fn kept_until_reported_put_back_when_central_is_away_and_bounded() {
        let here = UnclaimedHere::default();
        let t0 = Instant::now();
        here.asked(mac(1), "192.168.1.7", Some("ESP32HTTPClient"), t0);
        here.asked(mac(1), "192.168.1.8", Some("ESP32HTTPClient"), t0 + Duration::from_secs(10));
        let report = here.take(t0 + Duration::from_secs(15));
        assert_eq!(report.len(), 1);
        assert_eq!(
            (report[0].mac.as_str(), report[0].count, report[0].last_seen_age_s),
            ("24:0A:C4:00:00:01", 2, 5)
        );
        assert_eq!(report[0].source, "192.168.1.8");
        assert!(here.is_empty(), "taken");
        here.put_back(report, t0 + Duration::from_secs(15));
        assert_eq!(here.take(t0 + Duration::from_secs(20))[0].last_seen_age_s, 10, "its time kept");
        for n in 0..(MAX_UNCLAIMED_REPORTED as u16 * 3) {
            here.asked(mac(n), "x", None, t0 + Duration::from_secs(u64::from(n)));
        }
        assert_eq!(here.len(), MAX_UNCLAIMED_REPORTED);
        let kept = here.take(t0 + Duration::from_secs(1000));
        assert!(
            kept.iter()
                .all(|r| r.mac.as_str() >= mac(MAX_UNCLAIMED_REPORTED as u16 * 2).to_string().as_str()),
            "the most recent"
        );
    }
}
