//! Reading what waits to be sent: the messages below the tail from redb, then the tail's, in
//! id order.

use redb::ReadableDatabase;
use serde::Deserialize;

use super::{OUTBOX, Outbox, OutboxError, OutboxRecord, backend};

/// An [`OutboxRecord`] as stored, borrowed from redb's page: the same bytes (postcard writes a
/// string and a byte vector as a length and the bytes), read without copying.
#[derive(Deserialize)]
struct RecordView<'a> {
    topic: &'a str,
    payload: &'a [u8],
    created_ms: u64,
}

impl Outbox {
    /// Up to `limit` messages after id `after`, oldest first: those in redb, then the tail's.
    pub fn peek(&self, after: u64, limit: usize) -> Result<Vec<(u64, OutboxRecord)>, OutboxError> {
        let mut out = Vec::with_capacity(limit.min(1024));
        self.peek_each(after, limit, |id, topic, payload, created_ms| {
            out.push((id, OutboxRecord { topic: topic.to_owned(), payload: payload.to_vec(), created_ms }));
            true
        })?;
        Ok(out)
    }

    /// The messages [`Self::peek`] returns, handed to `each` by reference (id, topic, payload,
    /// when appended) until it returns `false`: the uplink encodes its publishes straight from
    /// here, with no copy of each message made and dropped on the way. `each` runs under the
    /// tail's lock: it must not call back into the outbox.
    pub fn peek_each(
        &self,
        after: u64,
        limit: usize,
        mut each: impl FnMut(u64, &str, &[u8], u64) -> bool,
    ) -> Result<(), OutboxError> {
        // Held while redb is read: a checkpoint moving the tail into redb meanwhile would hide
        // its messages from both reads.
        let tail = self.tail.lock();
        let first = tail.first_id().unwrap_or(u64::MAX);
        let mut taken = 0;
        if after.saturating_add(1) < first {
            // Only ids below the tail's: while a checkpoint commits, redb holds the tail's
            // messages too, and the tail knows which of them were acknowledged since.
            let txn = self.db.begin_read().map_err(backend)?;
            let table = txn.open_table(OUTBOX).map_err(backend)?;
            for item in table.range(after.saturating_add(1)..first).map_err(backend)?.take(limit) {
                let (k, v) = item.map_err(backend)?;
                let id = k.value();
                let record: RecordView<'_> =
                    postcard::from_bytes(v.value()).map_err(|_| OutboxError::Corrupt(id))?;
                taken += 1;
                if !each(id, record.topic, record.payload, record.created_ms) {
                    return Ok(());
                }
            }
        }
        if taken < limit {
            tail.read_after(after, limit - taken, |m| each(m.id, &m.topic, &m.payload, m.created_ms));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stored record reads back borrowed exactly as it reads back owned.
    #[test]
    fn a_stored_record_reads_the_same_borrowed() {
        let record = OutboxRecord {
            topic: "u4/302/temperature".into(),
            payload: br#"{"msg_id":7,"value":21.5}"#.to_vec(),
            created_ms: 1_700_000_000_123,
        };
        let bytes = postcard::to_allocvec(&record).unwrap();
        let view: RecordView<'_> = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(
            (view.topic, view.payload, view.created_ms),
            (&record.topic[..], &record.payload[..], record.created_ms)
        );
        // Damaged bytes are an error, not a panic.
        for cut in 0..bytes.len() {
            assert!(postcard::from_bytes::<RecordView<'_>>(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }
}
