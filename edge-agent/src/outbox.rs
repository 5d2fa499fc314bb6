//! The outbox: everything the gateway sends upstream over MQTT waits here, in redb, until the
//! broker acknowledged it.
//!
//! - A message is appended durably (committed) before anything acknowledges it locally.
//! - It is sent in order, QoS 1, and removed only on the broker's PUBACK ([`crate::uplink`]).
//!   Removals are not durable by themselves (no disk sync of their own): the next durable commit
//!   (an append to redb, a journal checkpoint, or [`Outbox::settle`] once the link is quiet)
//!   makes them durable. A crash before
//!   that sends the acknowledged messages again, which their ids make harmless (below); it cannot
//!   lose one.
//! - Each has an id (its sequence number, never reused), carried in the payloads the agent builds
//!   (`msg_id`), so that central can recognise a message sent again after a crash between the
//!   broker's PUBACK and the removal.
//! - Bounded: at most `max_messages` (the oldest are dropped to make room) and `max_age` (older
//!   ones are dropped); both are counted, by reason, in `/metrics`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::cache::{CacheError, begin_write};

mod journal;
mod journaled;
mod read;
mod tail;

pub use journal::{
    CHECKPOINT_RECORDS as JOURNAL_CHECKPOINT_RECORDS, FILE as JOURNAL_FILE, PREFILLED as JOURNAL_PREFILLED,
};
pub use tail::Pending;

/// Why the outbox could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// The storage engine failed (I/O, a full disk …).
    #[error("outbox: {0}")]
    Backend(String),
    /// A stored message does not decode.
    #[error("outbox: message {0} does not decode (written by an incompatible build, or damaged)")]
    Corrupt(u64),
    /// The write committed with an append (the LoRaWAN counters) failed.
    #[error(transparent)]
    Cache(#[from] CacheError),
}

const OUTBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("outbox");
const OUTBOX_META: TableDefinition<&str, u64> = TableDefinition::new("outbox_meta");
const META_SEQ: &str = "seq";
/// The journal sequence number of the last batch applied from the journal ([`journal`]).
const META_JSEQ: &str = "journal_seq";
/// A random number drawn when the outbox is created: a reinstalled gateway (a new database)
/// numbers its messages from 1 again under another epoch, which central tells apart.
const META_EPOCH: &str = "epoch";

fn backend(e: impl std::fmt::Display) -> OutboxError {
    OutboxError::Backend(e.to_string())
}

/// One message waiting to go upstream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxRecord {
    /// The MQTT topic.
    pub topic: String,
    /// The payload.
    pub payload: Vec<u8>,
    /// When it was appended, ms since the epoch.
    pub created_ms: u64,
}

/// Bounds of the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most messages kept.
    pub max_messages: u64,
    /// Oldest message kept, ms.
    pub max_age_ms: u64,
}

/// Counters, for metrics and the gateway's status.
#[derive(Debug, Default)]
pub struct OutboxStats {
    /// Messages appended.
    pub appended: AtomicU64,
    /// Messages the broker acknowledged (and removed).
    pub acknowledged: AtomicU64,
    /// Messages dropped because the outbox was full.
    pub dropped_full: AtomicU64,
    /// Messages dropped because they were too old.
    pub dropped_expired: AtomicU64,
    /// Messages stored again at start from the journal (their redb commit was lost).
    pub journal_replayed: AtomicU64,
    /// Checkpoints of the journal (durable redb commits that let it start over).
    pub journal_checkpoints: AtomicU64,
}

/// Who stamps: the gateway's id and forwarding key.
#[derive(Debug)]
struct Relay {
    gateway: String,
    key: neosens_runtime::relay::RelayKey,
}

/// The outbox handle (cheap to clone).
#[derive(Clone)]
pub struct Outbox {
    db: Arc<Database>,
    limits: Limits,
    epoch: u64,
    relay: Option<Arc<Relay>>,
    /// Woken on each append.
    pub(crate) ready: Arc<Notify>,
    /// The last id appended (the link reads the store only when it has more).
    last_id: Arc<AtomicU64>,
    /// Removals committed without a disk sync since the last durable commit of the outbox.
    unsettled: Arc<AtomicBool>,
    /// The journal's last record number when the link last asked to settle: settling
    /// checkpoints only once no batch came in between (see [`Outbox::settle`]).
    settle_mark: Arc<AtomicU64>,
    /// The write-ahead journal of uplink batches, when the agent keeps one
    /// ([`Outbox::with_journal`]).
    journal: Option<Arc<parking_lot::Mutex<journal::Journal>>>,
    /// The journalled batches not in redb yet ([`tail`]); locked after the journal, never
    /// held across a disk write.
    tail: Arc<parking_lot::Mutex<tail::Tail>>,
    /// Counters.
    pub stats: Arc<OutboxStats>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox").field("limits", &self.limits).finish_non_exhaustive()
    }
}

impl Outbox {
    /// The outbox in this database.
    pub fn open(db: Arc<Database>, limits: Limits) -> Result<Self, OutboxError> {
        let txn = begin_write(&db).map_err(backend)?;
        txn.open_table(OUTBOX).map_err(backend)?;
        let (epoch, last_id) = {
            let mut meta = txn.open_table(OUTBOX_META).map_err(backend)?;
            let last_id = meta.get(META_SEQ).map_err(backend)?.map_or(0, |v| v.value());
            let stored = meta.get(META_EPOCH).map_err(backend)?.map(|v| v.value());
            let epoch = match stored {
                Some(e) => e,
                None => {
                    let e = fastrand::u64(1..);
                    meta.insert(META_EPOCH, e).map_err(backend)?;
                    e
                }
            };
            (epoch, last_id)
        };
        txn.commit().map_err(backend)?;
        Ok(Outbox {
            db,
            limits,
            epoch,
            relay: None,
            ready: Arc::new(Notify::new()),
            last_id: Arc::new(AtomicU64::new(last_id)),
            unsettled: Arc::default(),
            settle_mark: Arc::default(),
            journal: None,
            tail: Arc::default(),
            stats: Arc::default(),
        })
    }

    /// This outbox stamping the statuses it relays (`<base>/device` topics) with the gateway's
    /// forwarding key ([`neosens_runtime::relay`]): central trusts their `msg_id` only then.
    #[must_use]
    pub fn stamped_by(mut self, gateway: &str, key: neosens_runtime::relay::RelayKey) -> Self {
        self.relay = Some(Arc::new(Relay { gateway: gateway.to_owned(), key }));
        self
    }

    /// The outbox's epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// `payload` with its stamp when it is a status relayed under a gateway's name.
    fn stamp(&self, topic: &str, msg_id: u64, payload: Vec<u8>) -> Vec<u8> {
        match &self.relay {
            Some(r) if topic.ends_with("/device") => {
                let stamp = r.key.stamp(&r.gateway, self.epoch, msg_id, topic);
                neosens_runtime::relay::insert_field(payload, &stamp)
            }
            _ => payload,
        }
    }

    /// Appends messages durably, in order; returns their ids. Makes room by dropping the oldest
    /// messages when the outbox is full.
    pub fn append(&self, messages: &[(String, Vec<u8>)], now_ms: u64) -> Result<Vec<u64>, OutboxError> {
        self.append_with(messages.len(), now_ms, |i, _| messages[i].clone())
    }

    /// Appends `n` messages built from their id (so that a payload can carry it).
    pub fn append_with(
        &self,
        n: usize,
        now_ms: u64,
        build: impl Fn(usize, u64) -> (String, Vec<u8>),
    ) -> Result<Vec<u64>, OutboxError> {
        self.append_and(n, now_ms, build, |_| Ok(()))
    }

    /// [`append_with`](Self::append_with), with more writes (`also`) in the same transaction.
    /// The journal's tail goes into redb first, in the same commit: ids stay in order, and the
    /// counters written by `also` are the newest.
    pub fn append_and(
        &self,
        n: usize,
        now_ms: u64,
        build: impl Fn(usize, u64) -> (String, Vec<u8>),
        also: impl FnOnce(&redb::WriteTransaction) -> Result<(), CacheError>,
    ) -> Result<Vec<u64>, OutboxError> {
        let mut journal = self.journal.as_ref().map(|j| j.lock());
        self.append_and_locked(journal.as_deref_mut(), n, now_ms, build, also)
    }

    /// [`Self::append_and`] with the journal's lock held.
    fn append_and_locked(
        &self,
        journal: Option<&mut journal::Journal>,
        n: usize,
        now_ms: u64,
        build: impl Fn(usize, u64) -> (String, Vec<u8>),
        also: impl FnOnce(&redb::WriteTransaction) -> Result<(), CacheError>,
    ) -> Result<Vec<u64>, OutboxError> {
        let txn = begin_write(&self.db).map_err(backend)?;
        let written = match journal.as_deref() {
            Some(j) => Some(self.write_tail(&txn, j)?),
            None => None,
        };
        also(&txn)?;
        let mut ids = Vec::with_capacity(n);
        let dropped;
        {
            let mut meta = txn.open_table(OUTBOX_META).map_err(backend)?;
            let mut table = txn.open_table(OUTBOX).map_err(backend)?;
            let mut seq = meta.get(META_SEQ).map_err(backend)?.map_or(0, |v| v.value());
            for i in 0..n {
                seq += 1;
                let (topic, payload) = build(i, seq);
                let payload = self.stamp(&topic, seq, payload);
                let record = OutboxRecord { topic, payload, created_ms: now_ms };
                let bytes = postcard::to_allocvec(&record).map_err(backend)?;
                table.insert(seq, bytes.as_slice()).map_err(backend)?;
                ids.push(seq);
            }
            meta.insert(META_SEQ, seq).map_err(backend)?;
            dropped = self.make_room(&mut table)?;
        }
        txn.commit().map_err(backend)?;
        self.unsettled.store(false, Ordering::Relaxed);
        // The tail forgets what this commit wrote before the link is woken: a read in between
        // would find the new ids neither in the tail nor (below its first id) in redb.
        if let (Some(journal), Some(written)) = (journal, written) {
            self.tail_written(journal, written);
        }
        self.appended(&ids, dropped);
        Ok(ids)
    }

    /// Drops the oldest messages past the count limit; returns how many.
    fn make_room(&self, table: &mut redb::Table<u64, &[u8]>) -> Result<u64, OutboxError> {
        let mut dropped = 0;
        let len = table.len().map_err(backend)?;
        if len > self.limits.max_messages {
            for _ in 0..len - self.limits.max_messages {
                if table.pop_first().map_err(backend)?.is_some() {
                    dropped += 1;
                }
            }
        }
        Ok(dropped)
    }

    /// Counts a committed append and wakes the link.
    fn appended(&self, ids: &[u64], dropped: u64) {
        if let Some(last) = ids.last() {
            self.last_id.fetch_max(*last, Ordering::Release);
        }
        self.stats.appended.fetch_add(ids.len() as u64, Ordering::Relaxed);
        self.count_dropped(dropped);
        self.ready.notify_one();
    }

    fn count_dropped(&self, dropped: u64) {
        if dropped > 0 {
            self.stats.dropped_full.fetch_add(dropped, Ordering::Relaxed);
            tracing::warn!(dropped, limit = self.limits.max_messages, "outbox full: oldest messages dropped");
        }
    }

    /// Which redb generation the tail's counters go with ([`Self::pending_counter`]).
    pub fn tail_generation(&self) -> u64 {
        self.tail.lock().generation
    }

    /// A node's uplink (`up`) or downlink counter waiting in the tail, newer than redb's, as of
    /// `generation` (read before redb: [`Pending::Stale`] when the tail went into redb since).
    pub fn pending_counter(
        &self,
        up: bool,
        node: neosens_protocol::ids::DeviceId,
        generation: u64,
    ) -> Pending {
        self.tail.lock().counter(up, node, generation)
    }

    /// The last id appended so far (0 for none).
    pub fn last_id(&self) -> u64 {
        self.last_id.load(Ordering::Acquire)
    }

    /// Removes messages the broker acknowledged, without a disk sync: the next durable commit
    /// (an append, or [`Self::settle`]) makes the removal durable.
    pub fn acknowledge(&self, ids: &[u64]) -> Result<(), OutboxError> {
        let mut stored = Vec::new();
        let mut in_tail = 0;
        {
            let mut tail = self.tail.lock();
            for id in ids {
                if tail.acknowledge(*id) {
                    in_tail += 1;
                } else {
                    stored.push(*id);
                }
            }
        }
        let removed = self.remove_stored(&stored)?;
        self.stats.acknowledged.fetch_add(in_tail + removed, Ordering::Relaxed);
        Ok(())
    }

    /// Acknowledges the messages of `ids` the tail holds (in memory: no disk, a short lock) and
    /// takes them out of `ids`; the rest are for [`Self::acknowledge`].
    pub fn acknowledge_in_memory(&self, ids: &mut Vec<u64>) {
        let before = ids.len();
        {
            let mut tail = self.tail.lock();
            ids.retain(|id| !tail.acknowledge(*id));
        }
        self.stats.acknowledged.fetch_add((before - ids.len()) as u64, Ordering::Relaxed);
    }

    /// Removes messages from redb without a disk sync; returns how many it held.
    fn remove_stored(&self, ids: &[u64]) -> Result<u64, OutboxError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let mut txn = begin_write(&self.db).map_err(backend)?;
        txn.set_durability(redb::Durability::None).map_err(backend)?;
        let mut removed = 0;
        {
            let mut table = txn.open_table(OUTBOX).map_err(backend)?;
            for id in ids {
                if table.remove(*id).map_err(backend)?.is_some() {
                    removed += 1;
                }
            }
        }
        txn.commit().map_err(backend)?;
        self.unsettled.store(true, Ordering::Relaxed);
        Ok(removed)
    }

    /// Called by the link a while after its last removals ([`neosens_runtime::mqtt::acked`]):
    /// makes the removals since the last durable commit durable (one commit; nothing when an
    /// append already did). When the broker acknowledged everything in the tail and no batch
    /// came in since the previous call (the gateway is quiet), a checkpoint instead: a crash
    /// then sends nothing again, and the journal starts over. While batches keep coming, the
    /// journal's own bound checkpoints ([`journal::CHECKPOINT_RECORDS`]): a checkpoint per
    /// settling was a durable redb commit a second at 50 datagrams/s, a twentieth of the
    /// agent's CPU (`cargo bench -p neosens-edge --bench uplink_e2e`). Returns `false` when it
    /// wants to be called again (batches came in: the tail is not settled yet).
    pub fn settle(&self) -> Result<bool, OutboxError> {
        let all_acknowledged = {
            let tail = self.tail.lock();
            tail.depth().0 == 0 && !tail.is_empty()
        };
        if all_acknowledged {
            let last_jseq = self.journal.as_ref().map_or(0, |j| j.lock().last_jseq);
            if self.settle_mark.swap(last_jseq, Ordering::Relaxed) != last_jseq {
                return Ok(false);
            }
            return self.checkpoint().map(|()| true);
        }
        if !self.unsettled.swap(false, Ordering::Relaxed) {
            return Ok(true);
        }
        let committed = begin_write(&self.db).map_err(backend).and_then(|t| t.commit().map_err(backend));
        if committed.is_err() {
            self.unsettled.store(true, Ordering::Relaxed);
        }
        committed.map(|()| true)
    }

    /// Drops messages older than the age limit; returns how many.
    pub fn expire(&self, now_ms: u64) -> Result<u64, OutboxError> {
        let cutoff = now_ms.saturating_sub(self.limits.max_age_ms);
        // The tail's messages are expired in redb, after a checkpoint.
        if self.tail.lock().depth().1.is_some_and(|oldest| oldest < cutoff) {
            self.checkpoint()?;
        }
        // Usually nothing is that old: a read says so without a commit (a disk sync every
        // report round would be the idle gateway's main cost).
        if self.oldest_ms()?.is_none_or(|oldest| oldest >= cutoff) {
            return Ok(0);
        }
        let txn = begin_write(&self.db).map_err(backend)?;
        let mut dropped = 0;
        {
            let mut table = txn.open_table(OUTBOX).map_err(backend)?;
            loop {
                let Some((k, v)) = table.first().map_err(backend)? else { break };
                let record: OutboxRecord =
                    postcard::from_bytes(v.value()).map_err(|_| OutboxError::Corrupt(k.value()))?;
                drop(k);
                drop(v);
                if record.created_ms >= cutoff {
                    break;
                }
                table.pop_first().map_err(backend)?;
                dropped += 1;
            }
        }
        txn.commit().map_err(backend)?;
        self.unsettled.store(false, Ordering::Relaxed);
        if dropped > 0 {
            self.stats.dropped_expired.fetch_add(dropped, Ordering::Relaxed);
            tracing::warn!(
                dropped,
                max_age_s = self.limits.max_age_ms / 1000,
                "outbox: messages too old dropped"
            );
        }
        Ok(dropped)
    }

    /// When the oldest message was appended, ms since the epoch (`None`: the outbox is empty).
    fn oldest_ms(&self) -> Result<Option<u64>, OutboxError> {
        let txn = self.db.begin_read().map_err(backend)?;
        oldest_in(&txn.open_table(OUTBOX).map_err(backend)?)
    }

    /// (messages waiting, age of the oldest in seconds).
    pub fn depth(&self, now_ms: u64) -> Result<(u64, u64), OutboxError> {
        let (in_tail, tail_oldest) = self.tail.lock().depth();
        let txn = self.db.begin_read().map_err(backend)?;
        let table = txn.open_table(OUTBOX).map_err(backend)?;
        let len = table.len().map_err(backend)?;
        let oldest = match (oldest_in(&table)?, tail_oldest) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Ok((len + in_tail, oldest.map_or(0, |created| now_ms.saturating_sub(created) / 1000)))
    }
}

/// When the first message of `table` was appended (`None`: empty).
fn oldest_in(table: &impl ReadableTable<u64, &'static [u8]>) -> Result<Option<u64>, OutboxError> {
    let Some((k, v)) = table.first().map_err(backend)? else { return Ok(None) };
    let record: OutboxRecord =
        postcard::from_bytes(v.value()).map_err(|_| OutboxError::Corrupt(k.value()))?;
    Ok(Some(record.created_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outbox(dir: &std::path::Path, max_messages: u64) -> Outbox {
        let cache = crate::cache::Cache::open(dir).unwrap();
        Outbox::open(cache.database(), Limits { max_messages, max_age_ms: 60_000 }).unwrap()
    }

    #[test]
    fn in_order_until_acknowledged_and_across_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let o = outbox(dir.path(), 100);
        let ids = o.append(&[("a/b".into(), b"1".to_vec()), ("a/b".into(), b"2".to_vec())], 1_000).unwrap();
        assert_eq!(ids, [1, 2]);
        let peeked = o.peek(0, 10).unwrap();
        assert_eq!(
            peeked.iter().map(|(_, r)| r.payload.clone()).collect::<Vec<_>>(),
            [b"1".to_vec(), b"2".to_vec()]
        );
        assert_eq!(o.peek(1, 10).unwrap().len(), 1, "after an id");
        o.acknowledge(&[1]).unwrap();
        drop(o);
        let o = outbox(dir.path(), 100);
        assert_eq!(o.peek(0, 10).unwrap().iter().map(|(id, _)| *id).collect::<Vec<_>>(), [2]);
        assert_eq!(o.append(&[("a/b".into(), b"3".to_vec())], 2_000).unwrap(), [3], "ids are never reused");
        assert_eq!(o.depth(31_000).unwrap(), (2, 30));
    }

    /// A removal is seen at once and made durable by the next durable commit ([`Outbox::settle`]
    /// here); the last id follows the appends and survives a reopen.
    #[test]
    fn removals_settle_and_the_last_id_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let o = outbox(dir.path(), 100);
        assert_eq!(o.last_id(), 0);
        let ids = o.append(&[("a/b".into(), b"1".to_vec()), ("a/b".into(), b"2".to_vec())], 0).unwrap();
        assert_eq!(o.last_id(), 2);
        o.acknowledge(&ids[..1]).unwrap();
        assert_eq!(o.peek(0, 10).unwrap().iter().map(|(id, _)| *id).collect::<Vec<_>>(), [2]);
        o.settle().unwrap();
        o.settle().unwrap();
        drop(o);
        let o = outbox(dir.path(), 100);
        assert_eq!(o.peek(0, 10).unwrap().iter().map(|(id, _)| *id).collect::<Vec<_>>(), [2]);
        assert_eq!(o.last_id(), 2);
    }

    /// Relayed statuses carry the gateway's stamp of their id, topic and the outbox's epoch;
    /// readings do not; the epoch is kept across a reopen, and a new database draws another.
    #[test]
    fn statuses_are_stamped_under_the_outbox_epoch() {
        use neosens_runtime::relay::{self, RelayKey};
        let keys =
            || neosens_runtime::keys::Keys::from_bytes(&[1; 32], &[2; 32], ring::rand::SystemRandom::new());
        let dir = tempfile::tempdir().unwrap();
        let o = outbox(dir.path(), 100).stamped_by("gw-1", RelayKey::derive(&keys()));
        let epoch = o.epoch();
        let ids = o
            .append_with(2, 0, |i, id| {
                let topic = if i == 0 { "u4/302/device" } else { "u4/302/temperature" };
                (topic.into(), format!("{{\"msg_id\":{id},\"status\":\"running\"}}").into_bytes())
            })
            .unwrap();
        let peeked = o.peek(0, 10).unwrap();
        let status: serde_json::Value = serde_json::from_slice(&peeked[0].1.payload).unwrap();
        let stamp = relay::parse(status["relay"].as_str().expect("a status is stamped")).unwrap();
        assert_eq!((stamp.gateway, stamp.epoch, status["msg_id"].as_u64()), ("gw-1", epoch, Some(ids[0])));
        assert!(RelayKey::derive(&keys()).verify(&stamp, ids[0], "u4/302/device"));
        let reading: serde_json::Value = serde_json::from_slice(&peeked[1].1.payload).unwrap();
        assert_eq!(reading.get("relay"), None, "readings are not stamped");
        drop(o);
        assert_eq!(outbox(dir.path(), 100).epoch(), epoch, "kept across a reopen");
        let reinstalled = tempfile::tempdir().unwrap();
        assert_ne!(outbox(reinstalled.path(), 100).epoch(), epoch, "a new database, a new epoch");
    }

    #[test]
    fn bounded_by_count_and_age_with_the_drops_counted() {
        let dir = tempfile::tempdir().unwrap();
        let o = outbox(dir.path(), 3);
        let built =
            o.append_with(5, 0, |_, id| ("t".into(), format!("{{\"msg_id\":{id}}}").into_bytes())).unwrap();
        assert_eq!(built, [1, 2, 3, 4, 5]);
        let kept: Vec<u64> = o.peek(0, 10).unwrap().iter().map(|(id, _)| *id).collect();
        assert_eq!(kept, [3, 4, 5], "the oldest make room");
        assert_eq!(o.peek(0, 1).unwrap()[0].1.payload, b"{\"msg_id\":3}");
        assert_eq!(o.stats.dropped_full.load(Ordering::Relaxed), 2);
        o.append(&[("t".into(), vec![])], 50_000).unwrap();
        assert_eq!(o.expire(70_000).unwrap(), 2, "older than a minute");
        assert_eq!(o.peek(0, 10).unwrap().len(), 1);
        assert_eq!(o.stats.dropped_expired.load(Ordering::Relaxed), 2);
    }
}
