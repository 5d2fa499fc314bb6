//! What a batch of datagrams lets through, gathered for one store: the readings and statuses
//! it relays (written into one text per batch), the counters that let them through, the
//! frames, the ACKs and join answers due once stored. Kept from one batch to the next
//! ([`Accepted::recycle`]), so a batch allocates nothing for its lists.

use serde_json::json;

use super::{Pipeline, acks, codec, frame, join, semtech};
use crate::cache::SessionCounter;

/// The longest list of messages (and of counters, frames) kept from one batch to the next.
const SPARE_MESSAGES: usize = 4096;
/// The most text kept from one batch to the next (a full batch of readings is about half).
const SPARE_TEXT: usize = 1 << 20;

/// What a batch let through, to store together.
#[derive(Debug, Default)]
pub(super) struct Accepted {
    /// The readings and statuses to relay.
    pub(super) messages: BatchMessages,
    /// The counters that let them through.
    pub(super) counters: Vec<(neosens_protocol::ids::DeviceId, SessionCounter)>,
    /// The frames' bytes (forgotten by the dedupe window if the store fails).
    pub(super) frames: Vec<Vec<u8>>,
    /// Confirmed uplinks to acknowledge once stored.
    pub(super) acks: Vec<acks::AckWanted>,
    /// The downlink counters those ACKs use (stored with the rest).
    pub(super) down_counters: Vec<(neosens_protocol::ids::DeviceId, SessionCounter)>,
    /// Join requests answered (their sessions stored with the rest, then the accepts sent).
    pub(super) joins: Vec<join::Answered>,
}

impl Accepted {
    /// Emptied for the next batch, its lists' room kept up to [`SPARE_MESSAGES`] entries and
    /// [`SPARE_TEXT`] bytes (a list grown past that by an unusual batch is let go).
    pub(super) fn recycle(mut self) -> Self {
        empty(&mut self.messages.text, SPARE_TEXT);
        empty(&mut self.messages.ends, SPARE_MESSAGES);
        empty(&mut self.counters, SPARE_MESSAGES);
        empty(&mut self.frames, SPARE_MESSAGES);
        empty(&mut self.acks, SPARE_MESSAGES);
        empty(&mut self.down_counters, SPARE_MESSAGES);
        empty(&mut self.joins, SPARE_MESSAGES);
        self
    }

    /// Whether there is anything to store.
    pub(super) fn has_work(&self) -> bool {
        !(self.counters.is_empty()
            && self.messages.is_empty()
            && self.down_counters.is_empty()
            && self.joins.is_empty())
    }
}

/// Emptied, and let go when it grew past `keep` entries.
fn empty<T>(list: &mut Vec<T>, keep: usize) {
    list.clear();
    if list.capacity() > keep {
        *list = Vec::new();
    }
}

/// A batch's messages: topics and JSON bodies written one after the other into one text.
///
/// Why not a `(String, String)` per message: two allocations a reading, of sizes glibc's
/// per-thread cache holds only seven of, so most went through its slow path (`_int_malloc`):
/// about a twentieth of the agent's CPU at 50 datagrams/s. The outbox copies each message out
/// once anyway (in `Pipeline::store`).
#[derive(Debug, Default)]
pub(super) struct BatchMessages {
    /// Topic, then body, of each message in turn. Bytes, since serde_json writes into an
    /// `io::Write`; only `str` is ever written (topics) or UTF-8 (serde_json's output).
    text: Vec<u8>,
    /// Where each message's topic ends and its body ends, in `text` (the topic starts where
    /// the previous body ended).
    ends: Vec<(usize, usize)>,
}

impl BatchMessages {
    pub(super) fn len(&self) -> usize {
        self.ends.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Room for `n` more messages (their text grows as needed, and is kept between batches).
    pub(super) fn reserve(&mut self, n: usize) {
        self.ends.reserve(n.min(SPARE_MESSAGES));
    }

    /// Message `i`: its topic (`<base>/<leaf>`) and its body (a JSON object's text).
    pub(super) fn get(&self, i: usize) -> (&str, &[u8]) {
        let start = if i == 0 { 0 } else { self.ends[i - 1].1 };
        let (topic_end, body_end) = self.ends[i];
        // Only whole `str`s are written as topics.
        let topic = std::str::from_utf8(&self.text[start..topic_end]).unwrap_or_default();
        (topic, &self.text[topic_end..body_end])
    }

    /// Adds `<base>/<leaf>` with `body` serialised as JSON; nothing when it does not serialise.
    pub(super) fn push<T: serde::Serialize + ?Sized>(&mut self, base: &str, leaf: &str, body: &T) {
        let start = self.text.len();
        self.text.extend_from_slice(base.as_bytes());
        self.text.push(b'/');
        self.text.extend_from_slice(leaf.as_bytes());
        let topic_end = self.text.len();
        if serde_json::to_writer(&mut self.text, body).is_err() {
            self.text.truncate(start);
            return;
        }
        self.ends.push((topic_end, self.text.len()));
    }

    /// Writes message `i`'s topic, and its body with `{"msg_id":<id>,` in place of its opening
    /// brace (as the outbox stores it), into `topic` and `payload` (emptied first: they may be
    /// an earlier message's buffers).
    pub(super) fn stamp_into(&self, i: usize, id: u64, topic: &mut String, payload: &mut Vec<u8>) {
        let (text, body) = self.get(i);
        topic.clear();
        payload.clear();
        topic.push_str(text);
        payload.reserve(body.len() + 32);
        payload.extend_from_slice(b"{\"msg_id\":");
        push_decimal(payload, id);
        payload.push(b',');
        payload.extend_from_slice(body.get(1..).unwrap_or_default());
    }

    /// The messages' ranges in the text, for tests.
    #[cfg(test)]
    fn spans(&self) -> Vec<(std::ops::Range<usize>, std::ops::Range<usize>)> {
        (0..self.len())
            .map(|i| {
                let start = if i == 0 { 0 } else { self.ends[i - 1].1 };
                (start..self.ends[i].0, self.ends[i].0..self.ends[i].1)
            })
            .collect()
    }
}

/// Appends `n` in decimal, without the formatting machinery (`write!` cost about 1 % of the
/// agent's CPU here, one per message).
fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// A reading as the neOCampus sensors publish it, fields in their order.
#[derive(serde::Serialize)]
struct ReadingBody<'a> {
    value: &'a serde_json::Value,
    value_units: &'a str,
    #[serde(rename = "subID")]
    sub_id: &'a str,
    #[serde(rename = "unitID")]
    unit_id: &'a str,
}

impl Pipeline {
    /// The readings of an accepted uplink, and the node's status when `with_status`.
    pub(super) fn messages(
        &self,
        uplink: &frame::Uplink,
        packet: &semtech::RxPacket,
        gateway: &str,
        with_status: bool,
        out: &mut BatchMessages,
    ) {
        let Some(base) = &uplink.node.base_topic else { return };
        let codec = uplink.node.codec.as_str();
        if uplink.f_port.is_some_and(|p| p > 0) && !uplink.payload.is_empty() {
            match codec::decode(codec, &uplink.payload, uplink.node.layout.as_deref()) {
                Ok(readings) => {
                    for r in readings {
                        let body = ReadingBody {
                            value: &r.value,
                            value_units: &r.units,
                            sub_id: &r.sub_id,
                            unit_id: &uplink.node.dev_eui,
                        };
                        // A struct serialises straight into the text (no map built per reading).
                        out.push(base, &r.kind, &body);
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, dev_eui = %uplink.node.dev_eui, "payload does not decode");
                    self.stats.frame("codec_error");
                }
            }
        }
        if !with_status {
            return;
        }
        let mut status = json!({
            "status": "running",
            "unitID": uplink.node.dev_eui,
            "f_cnt": uplink.f_cnt,
            "f_port": uplink.f_port,
            "rssi": packet.rssi,
            "snr": packet.snr,
            "frequency": packet.frequency,
            "datarate": packet.datarate,
            "gateway": gateway,
        });
        if let (Some(answer), Some(fields)) = (uplink.mac.dev_status, status.as_object_mut()) {
            for (name, value) in answer.status_fields() {
                fields.insert(name.to_owned(), value);
            }
        }
        out.push(base, "device", &status);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Messages come back as pushed, each stamped as the outbox stores it; one that does not
    /// serialise leaves nothing behind; recycling keeps the room, not the messages.
    #[test]
    fn a_batch_keeps_its_messages_in_one_text() {
        let mut batch = BatchMessages::default();
        batch.push("u4/302", "temperature", &json!({"value": 21.5}));
        batch.push("u4/302", "device", &json!({"status": "running", "unitID": "é\"x"}));
        // A map with a non-string key does not serialise.
        let bad: std::collections::BTreeMap<(u8, u8), u8> = [((1, 2), 3)].into();
        batch.push("u4/302", "bad", &bad);
        batch.push("u4/303", "humidity", &json!({"value": 40}));
        assert_eq!(batch.len(), 3);
        assert_eq!(batch.get(0), ("u4/302/temperature", &br#"{"value":21.5}"#[..]));
        assert_eq!(batch.get(1).0, "u4/302/device");
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(batch.get(1).1).unwrap(),
            json!({"status": "running", "unitID": "é\"x"})
        );
        assert_eq!(batch.get(2), ("u4/303/humidity", &br#"{"value":40}"#[..]));
        let spans = batch.spans();
        assert_eq!(spans[1].0.start, spans[0].1.end, "no bytes between messages");
        assert_eq!(spans[2].1.end, batch.text.len(), "nothing left of the one that failed");
        let (mut topic, mut payload) = (String::new(), Vec::new());
        batch.stamp_into(2, 77, &mut topic, &mut payload);
        assert_eq!(
            (topic.as_str(), payload.as_slice()),
            ("u4/303/humidity", &br#"{"msg_id":77,"value":40}"#[..])
        );

        let accepted = Accepted { messages: batch, ..Accepted::default() };
        let accepted = accepted.recycle();
        assert!(accepted.messages.is_empty() && !accepted.has_work());
        assert!(accepted.messages.text.capacity() > 0, "the text's room is kept");
    }

    #[test]
    fn ids_are_written_in_decimal() {
        for n in [0, 7, 10, 99, 100, 12_345, u64::from(u32::MAX), u64::MAX - 1, u64::MAX] {
            let mut out = b"x".to_vec();
            push_decimal(&mut out, n);
            assert_eq!(out, format!("x{n}").into_bytes());
        }
    }

    /// A batch that grew past the bounds gives its room back.
    #[test]
    fn an_unusual_batch_does_not_stay_in_memory() {
        let mut accepted = Accepted::default();
        for i in 0..SPARE_MESSAGES + 1 {
            accepted.messages.push("base", "leaf", &json!({"i": i, "pad": "x".repeat(300)}));
        }
        assert!(accepted.messages.text.len() > SPARE_TEXT);
        let accepted = accepted.recycle();
        assert_eq!(accepted.messages.text.capacity(), 0);
        assert_eq!(accepted.messages.ends.capacity(), 0);
    }
}
