//! The downlinks that answer uplinks, from the pipeline's side — the ACK of a confirmed uplink,
//! `LinkCheckAns`, the daily `DevStatusReq` ([`super::mac`]), the node's next order
//! ([`super::orders`]) — in one frame per uplink: the
//! downlink counter each takes (stored with the batch), the `PULL_RESP`s once the batch is
//! stored, and the `TX_ACK`s that answer them ([`super::downlink`] has the protocol).

use std::sync::Arc;
use std::time::Instant;

use super::{Accepted, Nodes, Pipeline, adr, downlink, frame, mac, orders, semtech};
use crate::cache::{CacheError, SessionCounter};

/// A downlink answering an uplink, to send once the batch is stored.
#[derive(Debug)]
pub(super) struct AckWanted {
    node: Arc<frame::NodeSession>,
    dev_addr: u32,
    f_cnt_down: u32,
    /// FCtrl.ACK (a confirmed uplink).
    ack: bool,
    /// `LinkCheckAns` (margin, gateways).
    link_check: Option<(u8, u8)>,
    /// `DevStatusReq`.
    dev_status_req: bool,
    /// The node order it carries.
    pub(super) order: Option<orders::Taken>,
    /// `LinkADRReq`.
    adr: Option<adr::Settings>,
    /// The downlink path of the forwarder that heard the uplink.
    to: std::net::SocketAddr,
    tmst: Option<u32>,
    rx1: Option<semtech::TxWindow>,
}

impl Pipeline {
    /// A `TX_ACK`: counted, and an RX1 that failed asked again in RX2.
    pub(super) fn tx_ack(&self, token: u16, error: Option<&str>, now: Instant) -> Option<downlink::Outgoing> {
        let (outcome, order) = self.downlinks.lock().tx_ack(token, error, now);
        let label = error.map_or("tx_ok", downlink::tx_error_label);
        match outcome {
            downlink::TxOutcome::Emitted => {
                self.stats.downlink(label);
                if let Some(id) = order {
                    self.stats.orders.tx_result(id, orders::TxResult::Emitted, now);
                }
            }
            downlink::TxOutcome::Failed => {
                self.stats.downlink(label);
                if let Some(id) = order {
                    self.stats.orders.tx_result(id, orders::TxResult::Failed, now);
                }
            }
            downlink::TxOutcome::Rx2(out) => {
                self.stats.downlink(label);
                self.stats.downlink("rx2_fallback");
                return Some(out);
            }
            downlink::TxOutcome::Unknown => self.stats.downlink("tx_ack_unknown"),
        }
        None
    }

    /// The `PULL_RESP`s of the ACKs of a stored batch, through the forwarders that heard them.
    pub(super) fn acks(&self, acks: Vec<AckWanted>, now: Instant) -> Vec<downlink::Outgoing> {
        let mut out = Vec::new();
        for ack in acks {
            let to = ack.to;
            let mut link = lorawan::maccommandcreator::LinkCheckAnsCreator::new();
            let status = lorawan::maccommandcreator::DevStatusReqCreator::new();
            let link_adr = ack.adr.map(|s| s.command());
            let mut commands: Vec<&dyn lorawan::maccommands::SerializableMacCommand> = Vec::new();
            if let Some(request) = &link_adr {
                commands.push(request);
            }
            if let Some((margin, gateways)) = ack.link_check {
                link.set_margin(margin).set_gateway_count(gateways);
                commands.push(&link);
            }
            if ack.dev_status_req {
                commands.push(&status);
            }
            let data = ack.order.as_ref().map(|o| frame::AppData {
                f_port: o.f_port,
                payload: &o.data,
                confirmed: o.confirmed,
            });
            let tag = ack.order.as_ref().map(|o| o.id);
            let frame = ack.node.downlink_frame(ack.dev_addr, ack.f_cnt_down, ack.ack, &commands, data);
            let scheduled =
                frame.and_then(|f| self.downlinks.lock().schedule(to, ack.tmst, ack.rx1, &f, tag, now));
            match scheduled {
                Some(resp) => {
                    let label = match (&ack.order, ack.ack) {
                        (Some(_), _) => "order_scheduled",
                        (None, true) => "ack_scheduled",
                        (None, false) => "mac_scheduled",
                    };
                    self.stats.downlink(label);
                    if ack.adr.is_some() {
                        self.stats.downlink("adr_requested");
                    }
                    out.push(resp);
                }
                None => {
                    self.stats.downlink("no_timestamp");
                    if let Some(id) = tag {
                        self.stats.orders.put_back(id);
                    }
                }
            }
        }
        out
    }

    /// The next downlink counter of `node` (0 after a new session), noted as used.
    fn next_f_cnt_down(&self, nodes: &mut Nodes, node: &frame::NodeSession) -> Result<u32, CacheError> {
        let last = match nodes.f_cnt_down.get(&node.id) {
            Some(c) => Some(*c),
            None => loop {
                let generation = self.outbox.tail_generation();
                let stored = self.cache.f_cnt_down(node.id)?;
                if let Some(newest) = self.newest_counter(false, node.id, generation, stored) {
                    break newest;
                }
            },
        };
        let next = last
            .and_then(|c| (c.session == node.session).then_some(c.f_cnt))
            .map_or(0, |l| l.wrapping_add(1));
        nodes.f_cnt_down.insert(node.id, SessionCounter { session: node.session, f_cnt: next });
        Ok(next)
    }

    /// Notes the downlink an accepted uplink calls for, if any — its ACK (confirmed), a
    /// `LinkCheckAns` (it asked), a `DevStatusReq` (due) — with the downlink counter it takes.
    pub(super) fn want_downlink(
        &self,
        nodes: &mut Nodes,
        uplink: &frame::Uplink,
        packet: &semtech::RxPacket,
        gateway: &str,
        accepted: &mut Accepted,
        now: Instant,
    ) {
        // Without a path (no keep-alive from that forwarder lately) nothing can be sent: no
        // downlink counter is spent, and the status request waits for a path.
        let Some(to) = self.stats.forwarders.downlink_path(gateway, downlink::PATH_FRESH_FOR, now) else {
            if uplink.confirmed || uplink.mac.link_check {
                tracing::debug!(%gateway, dev_eui = %uplink.node.dev_eui, "no downlink path to answer an uplink");
                self.stats.downlink("no_downlink_path");
            }
            return;
        };
        let link_check =
            uplink.mac.link_check.then(|| (mac::link_margin(packet.snr, packet.datarate.as_deref()), 1));
        let dev_status_req = nodes.dev_status_due(uplink.node.id, now);
        let link_adr = self.adr_request(nodes, uplink, packet);
        let rx1 = downlink::rx1(packet.tmst, packet.frequency, packet.datarate.as_deref());
        // Room for a node order: the window's data rate, less the MAC commands in FOpts.
        let datarate = rx1.as_ref().map_or(downlink::RX2_DATARATE, |w| w.datarate.as_str());
        let fopts = if link_check.is_some() { 3 } else { 0 }
            + usize::from(dev_status_req)
            + if link_adr.is_some() { 5 } else { 0 };
        let room = orders::max_payload(datarate).saturating_sub(fopts);
        let dev_eui = uplink.node.dev_eui.as_str();
        let order_fits = self.stats.orders.next_fits(dev_eui, room, now);
        // ADRACKReq: the node asks for any downlink, to know it is still heard.
        let mac_wanted = link_check.is_some() || dev_status_req || link_adr.is_some() || uplink.adr_ack_req;
        if !uplink.confirmed && !mac_wanted && !order_fits {
            return;
        }
        match self.next_f_cnt_down(nodes, &uplink.node) {
            Ok(f_cnt_down) => {
                let order = order_fits
                    .then(|| self.stats.orders.take(dev_eui, uplink.f_port, room, f_cnt_down, now))
                    .flatten();
                accepted.down_counters.push((
                    uplink.node.id,
                    SessionCounter { session: uplink.node.session, f_cnt: f_cnt_down },
                ));
                accepted.acks.push(AckWanted {
                    node: Arc::clone(&uplink.node),
                    dev_addr: uplink.dev_addr,
                    f_cnt_down,
                    ack: uplink.confirmed,
                    link_check,
                    dev_status_req,
                    order,
                    adr: link_adr,
                    to,
                    tmst: packet.tmst,
                    rx1,
                });
            }
            Err(e) => {
                tracing::error!(error = %e, "reading a node's downlink counter: its downlink is not sent")
            }
        }
    }

    /// Notes what an accepted uplink says for ADR: the node's answer to its last request, and
    /// the uplink's SNR when the node has ADR on.
    pub(super) fn note_adr(&self, nodes: &mut Nodes, uplink: &frame::Uplink, packet: &semtech::RxPacket) {
        if let Some(status) = uplink.mac.link_adr {
            if let Some(node) = nodes.adr.get_mut(&uplink.node.id) {
                node.answered(adr::AdrAnswer::from_status(status));
            }
        }
        if let (Some(_), true, Some(snr)) = (self.adr_margin_db, uplink.adr, packet.snr) {
            nodes.adr.entry(uplink.node.id).or_default().observe(uplink.f_cnt, snr);
        }
    }

    /// The `LinkADRReq` an uplink calls for (ADR on at both ends, settings to change).
    fn adr_request(
        &self,
        nodes: &mut Nodes,
        uplink: &frame::Uplink,
        packet: &semtech::RxPacket,
    ) -> Option<adr::Settings> {
        let margin = self.adr_margin_db.filter(|_| uplink.adr && !uplink.retransmission)?;
        let dr = packet.datarate.as_deref().and_then(adr::data_rate)?;
        nodes.adr.get_mut(&uplink.node.id)?.decide(dr, margin)
    }
}
