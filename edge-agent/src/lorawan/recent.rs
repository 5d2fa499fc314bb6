//! The duplicate window: the same frame heard by several forwarders counts once, and a confirmed
//! uplink heard again later is its node retrying (it did not hear the ACK).

use std::collections::HashMap;
use std::hash::BuildHasher as _;
use std::time::{Duration, Instant};

/// How long the same frame heard by several forwarders counts as one.
pub const DEDUPE_WINDOW: Duration = Duration::from_secs(5);

/// Frames remembered for deduplication at most, whatever the traffic: a flood of random frames
/// pushes the oldest out early (a fingerprint and two instants each: under 200 kB with the set
/// and the queue), a real site hears a few hundred frames in [`DEDUPE_WINDOW`].
pub const MAX_RECENT_FRAMES: usize = 4096;

/// Frames heard in the last [`DEDUPE_WINDOW`], [`MAX_RECENT_FRAMES`] at most: a set for lookups,
/// a queue in arrival order for expiry (amortised O(1) per frame, whatever the traffic). Frames
/// are known by a 64-bit fingerprint under a key drawn at start (SipHash): no copy of each frame
/// twice, and nobody outside can make two frames share one.
#[derive(Debug, Default)]
pub(super) struct Recent {
    keyed: std::hash::RandomState,
    /// Frame → when it was (last) taken as new.
    seen: HashMap<u64, Instant>,
    pub(super) order: std::collections::VecDeque<(Instant, u64)>,
}

/// A copy of a frame heard within this of the first is another forwarder's copy; later, a
/// confirmed uplink's identical frame is the node retransmitting it (it did not hear the ACK:
/// the earliest it can retry is after RX2, 2 s after its uplink).
pub const RETRANSMISSION_AFTER: Duration = Duration::from_secs(1);

impl Recent {
    /// How `phy` stands against the frames heard recently (and remembers it).
    pub(super) fn check(&mut self, phy: &[u8], now: Instant) -> Recency {
        while let Some((at, _)) = self.order.front() {
            if now.duration_since(*at) < DEDUPE_WINDOW && self.order.len() < MAX_RECENT_FRAMES {
                break;
            }
            if let Some((_, old)) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        let fingerprint = self.keyed.hash_one(phy);
        if let Some(first) = self.seen.get_mut(&fingerprint) {
            // MType 100: confirmed data up.
            let confirmed = phy.first().is_some_and(|mhdr| mhdr >> 5 == 0b100);
            if confirmed && now.duration_since(*first) >= RETRANSMISSION_AFTER {
                *first = now;
                return Recency::Retry;
            }
            return Recency::Copy;
        }
        self.seen.insert(fingerprint, now);
        self.order.push_back((now, fingerprint));
        Recency::New
    }

    /// Forgets `phy` (its store failed: the frame may come again).
    pub(super) fn forget(&mut self, phy: &[u8]) {
        self.seen.remove(&self.keyed.hash_one(phy));
    }
}

/// How a frame stands against the ones heard recently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Recency {
    /// Not heard within the window.
    New,
    /// Another copy of one just heard.
    Copy,
    /// A confirmed uplink heard again after [`RETRANSMISSION_AFTER`]: its node asks again.
    Retry,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Copies within a second are other forwarders'; a confirmed uplink heard again later is
    /// its node retrying (an unconfirmed one is only ever a copy).
    #[test]
    fn copies_and_retransmissions() {
        let mut recent = Recent::default();
        let t0 = Instant::now();
        let confirmed = [0x80, 1, 2, 3];
        let unconfirmed = [0x40, 1, 2, 3];
        assert_eq!(recent.check(&confirmed, t0), Recency::New);
        assert_eq!(recent.check(&unconfirmed, t0), Recency::New);
        let soon = t0 + Duration::from_millis(300);
        assert_eq!(
            (recent.check(&confirmed, soon), recent.check(&unconfirmed, soon)),
            (Recency::Copy, Recency::Copy)
        );
        let later = t0 + RETRANSMISSION_AFTER;
        assert_eq!(
            (recent.check(&confirmed, later), recent.check(&unconfirmed, later)),
            (Recency::Retry, Recency::Copy)
        );
        assert_eq!(
            recent.check(&confirmed, later + Duration::from_millis(300)),
            Recency::Copy,
            "a copy of the retry"
        );
        assert_eq!(
            recent.check(&confirmed, t0 + DEDUPE_WINDOW + Duration::from_secs(1)),
            Recency::New,
            "out of the window"
        );
    }
}
