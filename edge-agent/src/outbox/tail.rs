//! The outbox's tail: the journalled batches not yet written into redb, kept in memory.
//!
//! A batch is durable once its journal record is synced ([`super::journal`]); writing it into
//! redb as well, batch by batch, cost more CPU than everything else the gateway does with an
//! uplink (B-tree pages copied for each message and frame counter, a commit per batch, then a
//! removal commit once the broker acknowledged it). So the tail holds those batches in memory:
//! the link reads its messages from here and acknowledges them here, and a checkpoint writes
//! what is still unacknowledged, and the newest frame counters, into redb in one durable commit
//! before the journal starts over. Messages acknowledged before that never touch redb.
//!
//! Invariants (every write of redb's outbox or counters that is not a checkpoint absorbs the
//! tail first, under the journal's lock):
//! - every id in the tail is above every id in redb, and the tail's ids follow each other;
//! - a counter in the tail is newer than the same node's in redb.
//!
//! Bounded by the journal's checkpoint: at most [`super::journal::CHECKPOINT_RECORDS`] batches,
//! and at most [`super::journal::CHECKPOINT_BYTES`] of them plus one record.

use std::collections::{HashMap, VecDeque};

use neosens_protocol::ids::DeviceId;

use super::journal::{CounterEntry, Entry};
use crate::cache::SessionCounter;

/// One message of the tail.
#[derive(Debug)]
pub(super) struct TailMessage {
    pub(super) id: u64,
    pub(super) topic: String,
    pub(super) payload: Vec<u8>,
    pub(super) created_ms: u64,
    /// The broker acknowledged it.
    pub(super) acked: bool,
}

/// What a checkpoint takes from the tail to write into redb.
#[derive(Debug, Default)]
pub(super) struct Snapshot {
    /// Messages in the tail when it was taken (the ones it covers).
    pub(super) covered: usize,
    /// The highest id covered (0: none).
    pub(super) last_id: u64,
    /// The unacknowledged messages: (id, topic, payload, created_ms).
    pub(super) messages: Vec<(u64, String, Vec<u8>, u64)>,
    /// The newest uplink counters.
    pub(super) up: Vec<(DeviceId, SessionCounter)>,
    /// The newest downlink counters.
    pub(super) down: Vec<(DeviceId, SessionCounter)>,
}

/// A counter the tail was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pending {
    /// The tail has this node's newest counter.
    Newer(SessionCounter),
    /// The tail has none: redb's is the newest.
    None,
    /// The tail was written into redb since the given generation: read redb again.
    Stale,
}

/// The newest counter per node. Keyed by registry ids (a frame counts only once its session
/// checked), so a fast seeded hasher rather than SipHash: a batch inserts one per uplink.
type Counters = HashMap<DeviceId, SessionCounter, foldhash::fast::RandomState>;

/// The most acknowledged messages' buffers kept for the next batches ([`Tail::recycled`]).
const RECYCLED: usize = 512;
/// The largest buffer kept (a topic's or a payload's capacity): a LoRaWAN reading or status is
/// a few hundred bytes; at most `RECYCLED` × 2 × this stays allocated (512 KiB).
const RECYCLED_BYTES: usize = 512;

/// A message's buffers: its topic and its payload.
pub(super) type Buffers = (String, Vec<u8>);

/// The journalled batches not in redb yet.
#[derive(Debug, Default)]
pub(super) struct Tail {
    messages: VecDeque<TailMessage>,
    up: Counters,
    down: Counters,
    /// Acknowledged messages' buffers, emptied, for the next batches' messages to be written
    /// into (lent to [`super::Outbox::append_journaled_into`]). Why: the publisher let go of them on its
    /// thread and the listener allocated new ones on its own, so glibc's per-thread cache never
    /// had one to give back: each message's two allocations took the allocator's slow path
    /// (`_int_malloc`, about a thirtieth of the agent's CPU at 50 datagrams/s). At most
    /// [`RECYCLED`], each of at most [`RECYCLED_BYTES`].
    pub(super) recycled: Vec<Buffers>,
    unacked: u64,
    /// Bumped each time the tail is written into redb (see [`Pending::Stale`]).
    pub(super) generation: u64,
}

fn counters(into: &mut Counters, from: &[CounterEntry]) {
    for (id, session, f_cnt) in from {
        into.insert(DeviceId::from_bytes(*id), SessionCounter { session: *session, f_cnt: *f_cnt });
    }
}

impl Tail {
    /// Moves up to `n` recycled buffers into `into`.
    pub(super) fn lend(&mut self, n: usize, into: &mut Vec<Buffers>) {
        let keep = self.recycled.len().saturating_sub(n);
        into.extend(self.recycled.drain(keep..));
    }

    /// Adds a batch made durable by its journal record; returns its list of messages, emptied,
    /// for the next batch to fill.
    pub(super) fn push(&mut self, mut entry: Entry) -> Vec<(String, Vec<u8>)> {
        counters(&mut self.up, &entry.up);
        counters(&mut self.down, &entry.down);
        for (id, (topic, payload)) in (entry.first_id..).zip(entry.messages.drain(..)) {
            self.messages.push_back(TailMessage {
                id,
                topic,
                payload,
                created_ms: entry.created_ms,
                acked: false,
            });
            self.unacked += 1;
        }
        entry.messages
    }

    /// The id of the first message held (`None`: empty).
    pub(super) fn first_id(&self) -> Option<u64> {
        self.messages.front().map(|m| m.id)
    }

    /// Whether there is anything to write into redb.
    pub(super) fn is_empty(&self) -> bool {
        self.messages.is_empty() && self.up.is_empty() && self.down.is_empty()
    }

    /// The unacknowledged messages after id `after`, at most `limit`, handed to `out` until it
    /// returns `false`.
    pub(super) fn read_after(&self, after: u64, limit: usize, mut out: impl FnMut(&TailMessage) -> bool) {
        let Some(first) = self.first_id() else { return };
        let skip = usize::try_from(after.saturating_add(1).saturating_sub(first)).unwrap_or(usize::MAX);
        for m in self.messages.iter().skip(skip).filter(|m| !m.acked).take(limit) {
            if !out(m) {
                return;
            }
        }
    }

    /// Marks `id` acknowledged; `false` when the tail does not hold it (or it was already).
    pub(super) fn acknowledge(&mut self, id: u64) -> bool {
        let Some(first) = self.first_id() else { return false };
        let Some(index) = id.checked_sub(first).and_then(|i| usize::try_from(i).ok()) else { return false };
        match self.messages.get_mut(index) {
            Some(m) if !m.acked => {
                m.acked = true;
                self.unacked -= 1;
                // Never read again (a checkpoint writes only what is unacknowledged): the tail
                // holds the bytes of what is out, not of everything since the last checkpoint.
                let mut topic = std::mem::take(&mut m.topic);
                let mut payload = std::mem::take(&mut m.payload);
                if self.recycled.len() < RECYCLED
                    && topic.capacity() <= RECYCLED_BYTES
                    && payload.capacity() <= RECYCLED_BYTES
                {
                    topic.clear();
                    payload.clear();
                    self.recycled.push((topic, payload));
                }
                true
            }
            _ => false,
        }
    }

    /// Unacknowledged messages, and when the oldest of them was appended.
    pub(super) fn depth(&self) -> (u64, Option<u64>) {
        (self.unacked, self.messages.iter().find(|m| !m.acked).map(|m| m.created_ms))
    }

    /// A node's newest uplink (`up`) or downlink counter, as of `generation`.
    pub(super) fn counter(&self, up: bool, id: DeviceId, generation: u64) -> Pending {
        if generation != self.generation {
            return Pending::Stale;
        }
        match if up { self.up.get(&id) } else { self.down.get(&id) } {
            Some(c) => Pending::Newer(*c),
            None => Pending::None,
        }
    }

    /// What a checkpoint writes into redb.
    pub(super) fn snapshot(&self) -> Snapshot {
        Snapshot {
            covered: self.messages.len(),
            last_id: self.messages.back().map_or(0, |m| m.id),
            messages: self
                .messages
                .iter()
                .filter(|m| !m.acked)
                .map(|m| (m.id, m.topic.clone(), m.payload.clone(), m.created_ms))
                .collect(),
            up: self.up.iter().map(|(k, v)| (*k, *v)).collect(),
            down: self.down.iter().map(|(k, v)| (*k, *v)).collect(),
        }
    }

    /// Forgets what `snapshot` wrote into redb (committed); returns the ids acknowledged since
    /// it was taken, which redb now holds and must remove.
    pub(super) fn written(&mut self, snapshot: &Snapshot) -> Vec<u64> {
        let mut acked_since = Vec::new();
        for m in self.messages.drain(..snapshot.covered) {
            if m.acked && snapshot.messages.binary_search_by_key(&m.id, |s| s.0).is_ok() {
                acked_since.push(m.id);
            }
            if !m.acked {
                self.unacked -= 1;
            }
        }
        // Appends wait for the journal's lock, held by whoever writes the tail: no counter came
        // in since the snapshot.
        self.up.clear();
        self.down.clear();
        self.generation += 1;
        acked_since
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(first_id: u64, n: usize, f_cnt: u32) -> Entry {
        Entry {
            epoch: 1,
            jseq: first_id,
            created_ms: 1_000 + first_id,
            first_id,
            messages: (0..n).map(|i| (format!("t/{i}"), vec![i as u8])).collect(),
            up: vec![([7; 16], 9, f_cnt)],
            down: vec![([7; 16], 9, f_cnt / 2)],
        }
    }

    fn ids(tail: &Tail, after: u64, limit: usize) -> Vec<u64> {
        let mut out = Vec::new();
        tail.read_after(after, limit, |m| {
            out.push(m.id);
            true
        });
        out
    }

    #[test]
    fn reads_in_order_skipping_what_was_acknowledged() {
        let mut tail = Tail::default();
        tail.push(entry(5, 3, 1));
        tail.push(entry(8, 2, 2));
        assert_eq!(ids(&tail, 0, 10), [5, 6, 7, 8, 9]);
        assert_eq!(ids(&tail, 6, 2), [7, 8]);
        assert_eq!(ids(&tail, 9, 10), Vec::<u64>::new());
        assert!(tail.acknowledge(6));
        assert!(!tail.acknowledge(6), "once");
        assert!(!tail.acknowledge(4) && !tail.acknowledge(10) && !tail.acknowledge(u64::MAX));
        assert_eq!(ids(&tail, 0, 10), [5, 7, 8, 9]);
        assert_eq!(tail.depth(), (4, Some(1_005)));
        let node = DeviceId::from_bytes([7; 16]);
        assert_eq!(tail.counter(true, node, 0), Pending::Newer(SessionCounter { session: 9, f_cnt: 2 }));
        assert_eq!(tail.counter(false, node, 0), Pending::Newer(SessionCounter { session: 9, f_cnt: 1 }));
        assert_eq!(tail.counter(true, DeviceId::from_bytes([1; 16]), 0), Pending::None);
    }

    #[test]
    fn a_checkpoint_takes_the_unacknowledged_and_hands_back_what_was_acknowledged_meanwhile() {
        let mut tail = Tail::default();
        tail.push(entry(1, 4, 3));
        tail.acknowledge(1);
        let snapshot = tail.snapshot();
        assert_eq!(snapshot.messages.iter().map(|m| m.0).collect::<Vec<_>>(), [2, 3, 4]);
        assert_eq!(
            (snapshot.covered, snapshot.last_id, snapshot.up.len(), snapshot.down.len()),
            (4, 4, 1, 1)
        );
        // Acknowledged while the checkpoint commits: redb got it, so it is to be removed there.
        tail.acknowledge(3);
        assert_eq!(tail.written(&snapshot), [3]);
        assert!(tail.is_empty());
        assert_eq!(tail.depth(), (0, None));
        let node = DeviceId::from_bytes([7; 16]);
        assert_eq!(tail.counter(true, node, 0), Pending::Stale, "read redb again");
        assert_eq!(tail.counter(true, node, 1), Pending::None);
        tail.push(entry(5, 1, 4));
        assert_eq!(ids(&tail, 0, 10), [5]);
    }

    /// An acknowledged message's buffers are kept, emptied, for the next batches: at most
    /// [`RECYCLED`], none bigger than [`RECYCLED_BYTES`]; lending moves them out.
    #[test]
    fn acknowledged_buffers_are_recycled_within_their_bounds() {
        let mut tail = Tail::default();
        let n = RECYCLED + 10;
        let mut big = entry(1, n, 1);
        big.messages[0].1 = vec![0; RECYCLED_BYTES + 1];
        tail.push(big);
        for id in 1..=n as u64 {
            assert!(tail.acknowledge(id));
        }
        assert_eq!(tail.recycled.len(), RECYCLED, "the oversized one and those past the bound let go");
        assert!(
            tail.recycled.iter().all(|(t, p)| t.is_empty() && p.is_empty() && p.capacity() <= RECYCLED_BYTES)
        );
        let mut lent = Vec::new();
        tail.lend(3, &mut lent);
        assert_eq!((lent.len(), tail.recycled.len()), (3, RECYCLED - 3));
        tail.lend(usize::MAX, &mut lent);
        assert_eq!((lent.len(), tail.recycled.len()), (RECYCLED, 0));
    }
}
