//! Uplink batches through the write-ahead journal ([`super::journal`]): durable with one small
//! synced write, applied to redb without a sync of its own, checkpointed now and then.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use neosens_protocol::ids::DeviceId;
use redb::ReadableTable;

use super::journal::{CounterEntry, Entry, Journal};
use super::tail::Snapshot;
use super::{META_JSEQ, META_SEQ, OUTBOX, OUTBOX_META, Outbox, OutboxError, backend};
use crate::cache::{SessionCounter, begin_write};

/// Largest batch, in messages, that goes through the journal: more than the listener's largest
/// batch (64 datagrams of a few frames, a few messages each). Since journalled batches wait in
/// memory and what the broker acknowledged never reaches redb, the journal is the cheaper path
/// at every size (`cargo bench -p neosens-edge --bench uplink_e2e` at 500 datagrams/s, batches
/// of 240 messages: a durable redb commit per batch, its messages read back from redb and
/// removed there, took about a third of the agent's CPU). Bigger appends commit to redb directly.
const JOURNAL_MAX_MESSAGES: usize = 2048;

/// An [`super::OutboxRecord`] by reference: the same bytes without copying the message.
#[derive(serde::Serialize)]
struct RecordRef<'a> {
    topic: &'a str,
    payload: &'a [u8],
    created_ms: u64,
}

/// Frame counters to store with a batch: (node, counter).
pub(super) type Counters<'a> = &'a [(DeviceId, SessionCounter)];

impl Outbox {
    /// This outbox with its write-ahead journal at `path` (created when missing). Batches the
    /// previous run made durable in the journal but whose redb commit a crash lost are stored
    /// again first, with their ids, and made durable.
    pub fn with_journal(mut self, path: &Path) -> Result<Self, OutboxError> {
        let (mut journal, mut entries) =
            Journal::open(path).map_err(|e| backend(format!("journal {}: {e}", path.display())))?;
        entries.retain(|e| e.epoch == self.epoch);
        let txn = begin_write(&self.db).map_err(backend)?;
        let applied = read_meta(&txn, META_JSEQ)?;
        let (mut previous, mut batches, mut replayed) = (applied, 0u64, 0u64);
        for entry in entries.iter().filter(|e| e.jseq > applied) {
            // Written in increasing order: a smaller one is a stale record behind the new ones.
            if entry.jseq <= previous {
                break;
            }
            previous = entry.jseq;
            // A batch whose ids a durable commit used since (its own commit had failed and it
            // could not be taken back; never acknowledged) is left out: replaying it would
            // overwrite those messages.
            if entry.first_id <= read_meta(&txn, META_SEQ)? {
                tracing::warn!(jseq = entry.jseq, "outbox journal: a batch that failed to store is left out");
                continue;
            }
            self.apply(&txn, entry)?;
            batches += 1;
            replayed += entry.messages.len() as u64;
        }
        // New records number after everything the file holds, stored or left out, and the
        // database records that number: no hole for the next start to wait on.
        journal.last_jseq = entries.iter().map(|e| e.jseq).max().unwrap_or(0);
        journal.last_id = entries.iter().map(|e| e.first_id + e.messages.len() as u64 - 1).max().unwrap_or(0);
        settle_jseq(&txn, journal.last_jseq)?;
        let last_id = read_meta(&txn, META_SEQ)?;
        txn.commit().map_err(backend)?;
        journal.rewind();
        if batches > 0 {
            tracing::warn!(
                batches,
                messages = replayed,
                "outbox journal: batches stored again after a crash"
            );
        }
        self.stats.journal_replayed.fetch_add(replayed, Ordering::Relaxed);
        self.last_id.fetch_max(last_id, Ordering::Release);
        self.journal = Some(Arc::new(parking_lot::Mutex::new(journal)));
        Ok(self)
    }

    /// Appends `n` messages built from their id, with the frame counters that let them through
    /// (`up`) and those their answers use (`down`), durably: through the journal when the
    /// outbox has one (one synced write; the batch then waits in the [tail](super::tail) until
    /// a checkpoint) and the batch is small, else in one durable redb commit.
    pub fn append_journaled(
        &self,
        n: usize,
        now_ms: u64,
        build: impl Fn(usize, u64) -> (String, Vec<u8>),
        up: Counters<'_>,
        down: Counters<'_>,
    ) -> Result<Vec<u64>, OutboxError> {
        let fill = |i: usize, id: u64, topic: &mut String, payload: &mut Vec<u8>| {
            (*topic, *payload) = build(i, id);
        };
        // `build` makes its own buffers: none borrowed from the tail only to be dropped.
        self.append_journaled_filled(n, now_ms, fill, up, down, false)
    }

    /// [`Self::append_journaled`], with each message written by `fill` into an empty topic and
    /// payload buffer, usually an acknowledged message's: a batch of readings then allocates
    /// nothing for its messages (a relayed status still gets a new payload for its stamp).
    /// `fill` runs under the journal's lock: it must not call the outbox.
    pub fn append_journaled_into(
        &self,
        n: usize,
        now_ms: u64,
        fill: impl Fn(usize, u64, &mut String, &mut Vec<u8>),
        up: Counters<'_>,
        down: Counters<'_>,
    ) -> Result<Vec<u64>, OutboxError> {
        self.append_journaled_filled(n, now_ms, fill, up, down, true)
    }

    fn append_journaled_filled(
        &self,
        n: usize,
        now_ms: u64,
        fill: impl Fn(usize, u64, &mut String, &mut Vec<u8>),
        up: Counters<'_>,
        down: Counters<'_>,
        recycled: bool,
    ) -> Result<Vec<u64>, OutboxError> {
        let build = |i: usize, id: u64| {
            let (mut topic, mut payload) = (String::new(), Vec::new());
            fill(i, id, &mut topic, &mut payload);
            (topic, payload)
        };
        let also = |txn: &redb::WriteTransaction| {
            crate::cache::write_f_cnts(txn, up)?;
            crate::cache::write_f_cnt_downs(txn, down)
        };
        let Some(journal) = &self.journal else { return self.append_and(n, now_ms, build, also) };
        if n > JOURNAL_MAX_MESSAGES {
            return self.append_and(n, now_ms, build, also);
        }
        let mut journal = journal.lock();
        if journal.due() {
            // Before this batch (the checkpoint is a commit of its own). When it fails, so does
            // the batch: the journal and the tail never grow past their bound.
            self.checkpoint_locked(&mut journal)?;
        }
        // Appends hold the journal's lock: the last id is the last one handed out.
        let seq = self.last_id().max(journal.last_id);
        let mut messages = std::mem::take(&mut journal.spare_messages);
        let mut buffers = std::mem::take(&mut journal.spare_buffers);
        if recycled && buffers.len() < n {
            self.tail.lock().lend(n - buffers.len(), &mut buffers);
        }
        messages.extend((0..n).map(|i| {
            let id = seq + 1 + i as u64;
            let (mut topic, mut payload) = buffers.pop().unwrap_or_default();
            fill(i, id, &mut topic, &mut payload);
            let payload = self.stamp(&topic, id, payload);
            (topic, payload)
        }));
        journal.spare_buffers = buffers;
        let counters = |c: Counters<'_>| -> Vec<CounterEntry> {
            c.iter().map(|(id, c)| (id.to_bytes(), c.session, c.f_cnt)).collect()
        };
        let entry = Entry {
            epoch: self.epoch,
            jseq: journal.last_jseq + 1,
            created_ms: now_ms,
            first_id: seq + 1,
            messages,
            up: counters(up),
            down: counters(down),
        };
        match journal.append_entry(&entry) {
            Ok(Some(_)) => {}
            Ok(None) => return self.append_and_locked(Some(&mut journal), n, now_ms, build, also),
            Err(e) => return Err(backend(format!("journal: {e}"))),
        }
        journal.last_jseq = entry.jseq;
        journal.last_id = entry.first_id + n as u64 - 1;
        let ids: Vec<u64> = (entry.first_id..entry.first_id + n as u64).collect();
        let spare = self.tail.lock().push(entry);
        if spare.capacity() <= JOURNAL_MAX_MESSAGES {
            journal.spare_messages = spare;
        }
        self.appended(&ids, 0);
        Ok(ids)
    }

    /// Makes everything durable in redb and lets the journal start over; a no-op without a
    /// journal. (Batches call it when the journal is full, and the link once everything was
    /// acknowledged.)
    pub fn checkpoint(&self) -> Result<(), OutboxError> {
        match &self.journal {
            Some(journal) => self.checkpoint_locked(&mut journal.lock()),
            None => Ok(()),
        }
    }

    pub(super) fn checkpoint_locked(&self, journal: &mut Journal) -> Result<(), OutboxError> {
        let txn = begin_write(&self.db).map_err(backend)?;
        let written = self.write_tail(&txn, journal)?;
        txn.commit().map_err(backend)?;
        self.tail_written(journal, written);
        self.stats.journal_checkpoints.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Writes the tail into `txn` (what is not acknowledged yet, and the newest counters), with
    /// the journal's last number: once `txn` commits, the journal holds nothing redb lacks.
    pub(super) fn write_tail(
        &self,
        txn: &redb::WriteTransaction,
        journal: &Journal,
    ) -> Result<(Snapshot, u64), OutboxError> {
        let snapshot = self.tail.lock().snapshot();
        crate::cache::write_f_cnts(txn, &snapshot.up)?;
        crate::cache::write_f_cnt_downs(txn, &snapshot.down)?;
        let mut meta = txn.open_table(OUTBOX_META).map_err(backend)?;
        let mut table = txn.open_table(OUTBOX).map_err(backend)?;
        for (id, topic, payload, created_ms) in &snapshot.messages {
            let record = RecordRef { topic, payload, created_ms: *created_ms };
            let bytes = postcard::to_allocvec(&record).map_err(backend)?;
            table.insert(*id, bytes.as_slice()).map_err(backend)?;
        }
        let seq = meta.get(META_SEQ).map_err(backend)?.map_or(0, |v| v.value());
        meta.insert(META_SEQ, seq.max(snapshot.last_id).max(journal.last_id)).map_err(backend)?;
        let jseq = meta.get(META_JSEQ).map_err(backend)?.map_or(0, |v| v.value());
        meta.insert(META_JSEQ, jseq.max(journal.last_jseq)).map_err(backend)?;
        let dropped = self.make_room(&mut table)?;
        Ok((snapshot, dropped))
    }

    /// After the commit of [`Self::write_tail`]'s transaction: the tail forgets what it wrote,
    /// the journal starts over, and what the broker acknowledged meanwhile is removed from redb
    /// (if that fails, they are sent again: their ids make it harmless).
    pub(super) fn tail_written(&self, journal: &mut Journal, (snapshot, dropped): (Snapshot, u64)) {
        self.unsettled.store(false, Ordering::Relaxed);
        journal.rewind();
        let acked_since = self.tail.lock().written(&snapshot);
        self.count_dropped(dropped);
        if let Err(e) = self.remove_stored(&acked_since) {
            tracing::warn!(error = %e, messages = acked_since.len(), "outbox: acknowledged messages not removed; they go again");
        }
    }

    /// Stores one journal batch in `txn`: its messages under their ids, its counters, its
    /// sequence number; returns how many old messages made room.
    fn apply(&self, txn: &redb::WriteTransaction, entry: &Entry) -> Result<u64, OutboxError> {
        let counters = |c: &[CounterEntry]| -> Vec<(DeviceId, SessionCounter)> {
            c.iter()
                .map(|(id, session, f_cnt)| {
                    (DeviceId::from_bytes(*id), SessionCounter { session: *session, f_cnt: *f_cnt })
                })
                .collect()
        };
        crate::cache::write_f_cnts(txn, &counters(&entry.up))?;
        crate::cache::write_f_cnt_downs(txn, &counters(&entry.down))?;
        let mut meta = txn.open_table(OUTBOX_META).map_err(backend)?;
        let mut table = txn.open_table(OUTBOX).map_err(backend)?;
        let mut id = entry.first_id;
        for (topic, payload) in &entry.messages {
            let record = RecordRef { topic, payload, created_ms: entry.created_ms };
            let bytes = postcard::to_allocvec(&record).map_err(backend)?;
            table.insert(id, bytes.as_slice()).map_err(backend)?;
            id += 1;
        }
        let seq = meta.get(META_SEQ).map_err(backend)?.map_or(0, |v| v.value());
        meta.insert(META_SEQ, seq.max(id - 1)).map_err(backend)?;
        meta.insert(META_JSEQ, entry.jseq).map_err(backend)?;
        self.make_room(&mut table)
    }
}

/// A number of the outbox's table (0 when absent).
fn read_meta(txn: &redb::WriteTransaction, key: &str) -> Result<u64, OutboxError> {
    let meta = txn.open_table(OUTBOX_META).map_err(backend)?;
    Ok(meta.get(key).map_err(backend)?.map_or(0, |v| v.value()))
}

/// Records `jseq` as the last journal number stored, unless a higher one is: the numbers handed
/// out but not stored (failed, left out) are settled with it.
fn settle_jseq(txn: &redb::WriteTransaction, jseq: u64) -> Result<(), OutboxError> {
    if jseq > read_meta(txn, META_JSEQ)? {
        txn.open_table(OUTBOX_META).map_err(backend)?.insert(META_JSEQ, jseq).map_err(backend)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_by_reference_encodes_as_the_stored_record() {
        let owned = super::super::OutboxRecord {
            topic: "u4/302/co2".into(),
            payload: vec![0, 1, 255],
            created_ms: 1 << 40,
        };
        let borrowed =
            RecordRef { topic: &owned.topic, payload: &owned.payload, created_ms: owned.created_ms };
        assert_eq!(postcard::to_allocvec(&borrowed).unwrap(), postcard::to_allocvec(&owned).unwrap());
    }
}
