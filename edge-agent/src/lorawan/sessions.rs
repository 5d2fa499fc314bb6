//! Opening a device address's sessions from the registry copy, with their last stored frame
//! counters (the journal's tail's when newer than redb's).

use std::sync::Arc;
use std::time::Duration;

use super::{MAX_OPEN_ADDRESSES, Nodes, Pipeline, frame, join};
use crate::cache::SessionCounter;
use crate::outbox::Pending;

impl Pipeline {
    /// The sessions of a device address (opened from the cache on first use, dropped when the
    /// registry revision changes), with their last counters.
    pub(super) fn candidates(
        &self,
        nodes: &mut Nodes,
        dev_addr: u32,
    ) -> Result<frame::Candidates, frame::Reject> {
        if !nodes.by_addr.contains_key(&dev_addr) {
            // The counters of the journal's tail are newer than redb's; when the tail went into
            // redb between the two reads, redb is read again.
            let opened = loop {
                let generation = self.outbox.tail_generation();
                if let Some(opened) = self.open_sessions(dev_addr, generation)? {
                    break opened;
                }
            };
            if opened.is_empty() {
                // Not one of ours: nothing remembered (a flood of random addresses costs a
                // lookup each, and no memory).
                return Ok(frame::Candidates::new());
            }
            let mut sessions = Vec::with_capacity(opened.len());
            for (node, last) in opened {
                if let Some(l) = last {
                    nodes.last.entry(node.id).or_insert(l);
                }
                sessions.push(node);
            }
            if nodes.by_addr.len() >= MAX_OPEN_ADDRESSES {
                // Sessions are opened again when needed; the counters stay (one per node of the
                // scope: bounded by it), since this batch's are not stored yet.
                nodes.by_addr.clear();
            }
            nodes.by_addr.insert(dev_addr, sessions);
        }
        let sessions = nodes.by_addr.get(&dev_addr).map(Vec::as_slice).unwrap_or_default();
        Ok(sessions
            .iter()
            .map(|n| frame::Candidate {
                node: Arc::clone(n),
                last: nodes.last.get(&n.id).and_then(|c| c.for_session(n.session)),
            })
            .collect())
    }

    /// A stored counter of `node`: the tail's when it has one, else `stored`'s (read after
    /// `generation` was); `None` when the tail went into redb meanwhile (read again).
    pub(super) fn newest_counter(
        &self,
        up: bool,
        node: neosens_protocol::ids::DeviceId,
        generation: u64,
        stored: Option<SessionCounter>,
    ) -> Option<Option<SessionCounter>> {
        match self.outbox.pending_counter(up, node, generation) {
            Pending::Newer(c) => Some(Some(c)),
            Pending::None => Some(stored),
            Pending::Stale => None,
        }
    }

    /// The sessions of a device address with their stored counters, read from the cache as of
    /// the tail's `generation`; `None` when the tail went into redb meanwhile.
    #[allow(clippy::type_complexity)]
    fn open_sessions(
        &self,
        dev_addr: u32,
        generation: u64,
    ) -> Result<Option<Vec<(Arc<frame::NodeSession>, Option<SessionCounter>)>>, frame::Reject> {
        let mut opened = Vec::new();
        for (record, last) in self.cache.nodes_by_dev_addr(dev_addr)? {
            // A join answered here, newer than central's session: that session is over.
            if self.local_session(record.id.to_bytes())?.is_some() {
                continue;
            }
            let (base, status_every) = self.placement(&record)?;
            if let Some(mut node) = frame::NodeSession::open(&record, base, status_every, &self.keys) {
                node.layout = self.layout_of(&record, &node.codec)?;
                let Some(last) = self.newest_counter(true, node.id, generation, last) else {
                    return Ok(None);
                };
                opened.push((Arc::new(node), last));
            }
        }
        for device in self.cache.local_sessions_by_dev_addr(dev_addr)? {
            let (Some(local), Some(record)) =
                (self.local_session(device)?, self.cache.device_record(device)?)
            else {
                continue;
            };
            let (base, status_every) = self.placement(&record)?;
            let layout = self.layout_of(&record, &local.session.codec)?;
            if let Some(mut node) = join::local_node(local, record, base, status_every, &self.keys) {
                node.layout = layout;
                let stored = self.cache.f_cnt(node.id)?;
                let Some(last) = self.newest_counter(true, node.id, generation, stored) else {
                    return Ok(None);
                };
                opened.push((Arc::new(node), last));
            }
        }
        Ok(Some(opened))
    }

    /// A node's main room's base topic, and how often its status goes.
    pub(super) fn placement(
        &self,
        record: &neosens_protocol::sync::DeviceRecord,
    ) -> Result<(Option<String>, Duration), crate::cache::CacheError> {
        let base = match record.rooms.first() {
            Some(room) => self.cache.room(*room)?.map(|r| r.base_topic),
            None => None,
        };
        Ok((base, frame::status_every(self.cache.device_type(record.device_type)?.as_ref())))
    }

    /// The node's type's payload layout, when its codec is `layout`.
    pub(super) fn layout_of(
        &self,
        record: &neosens_protocol::sync::DeviceRecord,
        codec: &str,
    ) -> Result<Option<Arc<neosens_protocol::layout::PayloadLayout>>, crate::cache::CacheError> {
        if codec != neosens_protocol::edge::Codec::Layout.as_str() {
            return Ok(None);
        }
        Ok(self.cache.layout(record.device_type)?.map(Arc::new))
    }

    /// The session a join answered here gave the node, while it is newer than central's.
    pub(super) fn local_session(
        &self,
        device: [u8; 16],
    ) -> Result<Option<crate::cache::LocalSession>, crate::cache::CacheError> {
        let Some(local) = self.cache.local_session(device)? else { return Ok(None) };
        let central = self.cache.otaa_of(device)?.and_then(|o| o.last_join);
        Ok(join::local_wins(&local, central.as_ref()).then_some(local))
    }
}
