//! The in-flight window of an acknowledged publisher: which of the caller's messages are out,
//! under which MQTT packet id, and which the broker acknowledged. Pure state, no I/O (the shape
//! of rumqttc's own `state.rs`), so every transition is unit-tested.
//!
//! The caller numbers its messages (an outbox's ids, increasing). The connection assigns packet
//! ids in the order publishes are requested (`sent(pkid)` as it encodes each); a PUBACK names
//! the packet id. So: requested ids wait in order for their packet id, then wait by packet
//! id for their PUBACK. After a connection loss everything not acknowledged is forgotten here and
//! sent again from the caller's store, in order (over a clean session, nothing is sent twice by
//! two mechanisms).

use std::collections::{HashMap, VecDeque};

/// Messages out at once, at most.
#[derive(Debug)]
pub struct Window {
    capacity: usize,
    /// Requested, in order, not yet given a packet id.
    unassigned: VecDeque<u64>,
    /// Sent, by packet id, waiting for their PUBACK.
    by_pkid: HashMap<u16, u64>,
    /// The highest id requested since the last reset: the next read starts after it.
    last_requested: u64,
    /// Acknowledged, not yet taken by the caller.
    acked: Vec<u64>,
}

impl Window {
    /// A window of `capacity` messages (keep it far under the packet id space, so that packet
    /// ids never wrap onto a message still out).
    pub fn new(capacity: usize) -> Self {
        Window {
            capacity: capacity.max(1),
            unassigned: VecDeque::new(),
            by_pkid: HashMap::new(),
            last_requested: 0,
            acked: Vec::new(),
        }
    }

    /// How many more messages may be requested now.
    pub fn room(&self) -> usize {
        self.capacity.saturating_sub(self.unassigned.len() + self.by_pkid.len())
    }

    /// Nothing is out.
    pub fn is_idle(&self) -> bool {
        self.unassigned.is_empty() && self.by_pkid.is_empty()
    }

    /// Messages out (requested or sent, not acknowledged).
    pub fn in_flight(&self) -> usize {
        self.unassigned.len() + self.by_pkid.len()
    }

    /// The id after which the next messages are to be read.
    pub fn last_requested(&self) -> u64 {
        self.last_requested
    }

    /// Message `id` was handed to the client. Ids must increase.
    pub fn requested(&mut self, id: u64) {
        debug_assert!(id > self.last_requested || self.last_requested == 0, "ids increase");
        self.unassigned.push_back(id);
        self.last_requested = id;
    }

    /// The client sent the oldest requested message under `pkid`; `false` when nothing waited
    /// for a packet id (a publish that is not ours).
    pub fn sent(&mut self, pkid: u16) -> bool {
        match self.unassigned.pop_front() {
            Some(id) => {
                self.by_pkid.insert(pkid, id);
                true
            }
            None => false,
        }
    }

    /// A PUBACK for `pkid`; returns the message it acknowledges (`None` for an unknown or
    /// repeated packet id, which a broker may send after a reconnection).
    pub fn acknowledged(&mut self, pkid: u16) -> Option<u64> {
        let id = self.by_pkid.remove(&pkid)?;
        self.acked.push(id);
        Some(id)
    }

    /// Acknowledged messages not yet taken.
    pub fn pending_acks(&self) -> usize {
        self.acked.len()
    }

    /// Takes the acknowledged ids (for the caller to remove from its store).
    pub fn take_acked(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.acked)
    }

    /// Gives back acknowledged ids taken and not removed yet (to take again later).
    pub fn keep_acked(&mut self, ids: Vec<u64>) {
        if self.acked.is_empty() {
            self.acked = ids;
        } else {
            self.acked.extend(ids);
        }
    }

    /// The connection is gone: forgets what was out (it is read again from the caller's store,
    /// from the start); acknowledgements already received are kept for the caller to take.
    /// Returns how many messages were out.
    pub fn reset(&mut self) -> usize {
        let lost = self.in_flight();
        self.unassigned.clear();
        self.by_pkid.clear();
        self.last_requested = 0;
        lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_flow_request_send_acknowledge_in_order() {
        let mut w = Window::new(3);
        assert!(w.is_idle());
        assert_eq!(w.room(), 3);
        for id in [10, 11, 12] {
            w.requested(id);
        }
        assert_eq!((w.room(), w.last_requested(), w.in_flight()), (0, 12, 3));
        assert!(w.sent(1) && w.sent(2) && w.sent(3));
        assert!(!w.sent(4), "a publish of someone else's");
        // PUBACKs may come in any order.
        assert_eq!(w.acknowledged(2), Some(11));
        assert_eq!(w.acknowledged(1), Some(10));
        assert_eq!(w.acknowledged(1), None, "a repeated PUBACK acknowledges nothing more");
        assert_eq!(w.acknowledged(99), None);
        assert_eq!((w.room(), w.pending_acks()), (2, 2));
        assert_eq!(w.take_acked(), vec![11, 10]);
        assert_eq!(w.pending_acks(), 0);
        // What the store could not remove at once is kept for the next flush.
        w.keep_acked(vec![10]);
        assert_eq!(w.acknowledged(3), Some(12));
        assert_eq!(w.pending_acks(), 2);
        assert_eq!(w.take_acked(), vec![10, 12]);
        assert!(w.is_idle());
    }

    #[test]
    fn a_connection_loss_forgets_what_was_out_and_keeps_the_acks() {
        let mut w = Window::new(8);
        for id in 1..=5 {
            w.requested(id);
        }
        for pkid in 1..=3 {
            assert!(w.sent(pkid));
        }
        assert_eq!(w.acknowledged(1), Some(1));
        assert_eq!(w.reset(), 4, "2 and 3 sent, 4 and 5 requested");
        assert!(w.is_idle());
        assert_eq!(w.last_requested(), 0, "read again from the start");
        assert_eq!(w.acknowledged(2), None, "a PUBACK from the old connection");
        assert_eq!(w.take_acked(), vec![1], "what was acknowledged before the loss is still removed");
        // After the reset, ids start again from the store's oldest.
        w.requested(2);
        assert!(w.sent(1));
        assert_eq!(w.acknowledged(1), Some(2));
    }

    #[test]
    fn the_window_is_bounded() {
        let mut w = Window::new(0);
        assert_eq!(w.room(), 1, "a zero window still moves");
        w.requested(1);
        assert_eq!(w.room(), 0);
        let mut w = Window::new(64);
        for id in 1..=64 {
            w.requested(id);
        }
        assert_eq!(w.room(), 0, "never more than the capacity out");
    }
}
