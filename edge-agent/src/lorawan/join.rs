//! OTAA joins answered at the gateway (LoRaWAN 1.0.x, RP002 EU868), also while central is out
//! of reach. A join request of a node whose credentials were synced is checked (JoinEUI, MIC
//! with its AppKey, a DevNonce it has not used), answered with a join-accept through the
//! forwarder that heard it (RX1 = its `tmst` + 5 s on its channel and data rate; RX2, when the
//! forwarder refuses RX1, `tmst` + 6 s on 869.525 MHz SF12), and the session it gives —
//! NwkSKey and AppSKey derived from the AppKey, AppNonce, NetID and DevNonce — is stored with
//! the DevNonce in the batch's transaction, before the accept leaves.
//!
//! The session is this gateway's until central's copy of the node is as recent: the node's
//! first uplink with it has it reported to central ([`JoinReports`]), which makes it the node's
//! session for every gateway of the scope (the node roams without joining again).
//!
//! Choices: NetID `000000` (private network) and a random free DevAddr of NwkID 0; JoinNonce
//! (AppNonce) random; RX1DROffset 0, RX2 DR0, RxDelay 1 s (the defaults the other downlinks
//! use); no CFList (the node keeps the three default EU868 channels every forwarder hears).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use lorawan::keys::{AES128, AppKey};
use lorawan::parser::{JoinAcceptPayload, PhyPayload};
use neosens_protocol::edge::{JoinReport, MAX_JOIN_REPORTS};
use neosens_protocol::sync::{LorawanSession, lorawan_key_context};
use parking_lot::Mutex;
use ring::rand::SecureRandom;

use super::{Accepted, Nodes, Pipeline, downlink, frame, semtech};
use crate::cache::LocalSession;

/// RX1 of a join-accept opens this long after the join request's `tmst` (JOIN_ACCEPT_DELAY1).
pub const JOIN_ACCEPT_DELAY1_US: u32 = 5_000_000;
/// RX2 of a join-accept (JOIN_ACCEPT_DELAY2).
pub const JOIN_ACCEPT_DELAY2_US: u32 = 6_000_000;
/// The NetID of the sessions given: `000000`, a private network's.
pub const NET_ID: [u8; 3] = [0, 0, 0];

/// Joins remembered as reported in this run of the agent at most.
const MAX_REMEMBERED_REPORTS: usize = 65_536;

/// A join answered, to store with its batch, then send.
#[derive(Debug)]
pub(super) struct Answered {
    device: [u8; 16],
    pub(super) local: LocalSession,
    accept: Vec<u8>,
    to: std::net::SocketAddr,
    tmst: u32,
    rx1: Option<semtech::TxWindow>,
}

impl Answered {
    /// The device and its new session (written with the batch).
    pub(super) fn stored(&self) -> ([u8; 16], &LocalSession) {
        (self.device, &self.local)
    }
}

/// Joins to report to central (a join is reported once its session was used, once per run of
/// the agent; central takes a report it already has as a no-op).
#[derive(Debug, Default)]
pub struct JoinReportQueue {
    pending: Mutex<Vec<JoinReport>>,
    reported: Mutex<HashSet<([u8; 16], u16)>>,
    /// Told when a report waits: the health reports send it soon.
    news: tokio::sync::Notify,
}

impl JoinReportQueue {
    /// Resolves when a report waits since the last call.
    pub async fn news(&self) {
        self.news.notified().await;
    }

    /// Reports waiting (taken by the health reports).
    pub fn take(&self) -> Vec<JoinReport> {
        std::mem::take(&mut *self.pending.lock())
    }

    /// Reports whose sending failed: kept for the next round (at most [`MAX_JOIN_REPORTS`]).
    pub fn put_back(&self, mut reports: Vec<JoinReport>) {
        let mut pending = self.pending.lock();
        reports.append(&mut pending);
        reports.truncate(MAX_JOIN_REPORTS);
        *pending = reports;
    }

    /// Notes that a node used the session of a join answered here.
    pub(super) fn used(&self, node: &frame::NodeSession, f_cnt_up: u32, now_ms: u64) {
        let Some(local) = &node.local else { return };
        {
            let mut reported = self.reported.lock();
            // Bounded: past it, sessions are reported again (central takes a repeat as a no-op).
            if reported.len() >= MAX_REMEMBERED_REPORTS {
                reported.clear();
            }
            if !reported.insert((node.id.to_bytes(), local.dev_nonce)) {
                return;
            }
        }
        let mut pending = self.pending.lock();
        if pending.len() >= MAX_JOIN_REPORTS {
            pending.remove(0);
        }
        pending.push(JoinReport {
            device: node.id,
            dev_addr: local.session.dev_addr.to_string(),
            nwk_s_key: local.session.nwk_s_key.clone(),
            app_s_key: local.session.app_s_key.clone(),
            dev_nonce: local.dev_nonce,
            joined_age_s: now_ms.saturating_sub(local.joined_at_ms) / 1000,
            f_cnt_up,
        });
        self.news.notify_one();
    }
}

/// Why a join request was not answered (a frame outcome label).
fn refused(stats: &super::LoraStats, outcome: &'static str, dev_eui: &[u8; 8]) {
    tracing::info!(dev_eui = %neosens_protocol::hex::encode(dev_eui), outcome, "join request not answered");
    stats.frame(outcome);
}

impl Pipeline {
    /// A join request: answered (noted in `accepted`, sent once stored) or refused and counted.
    pub(super) fn join(
        &self,
        nodes: &Nodes,
        packet: &semtech::RxPacket,
        gateway: &str,
        accepted: &mut Accepted,
        now: Instant,
    ) {
        let Ok(PhyPayload::JoinRequest(request)) = lorawan::parser::parse(packet.phy.clone()) else {
            return self.stats.frame("malformed");
        };
        let be = |le: &[u8]| -> [u8; 8] {
            let mut b = [0u8; 8];
            for (i, v) in le.iter().rev().enumerate().take(8) {
                b[i] = *v;
            }
            b
        };
        let dev_eui = be(request.dev_eui().as_ref());
        let join_eui = be(request.app_eui().as_ref());
        let nonce = request.dev_nonce();
        let nonce_bytes: [u8; 2] = [nonce.as_ref()[0], nonce.as_ref()[1]];
        let dev_nonce = u16::from_le_bytes(nonce_bytes);
        let node = match self.cache.otaa_node(dev_eui) {
            Ok(Some(n)) => n,
            Ok(None) => return refused(&self.stats, "join_unknown_dev_eui", &dev_eui),
            Err(e) => return tracing::error!(error = %e, "reading a node's OTAA credentials"),
        };
        if node.otaa.join_eui != join_eui {
            return refused(&self.stats, "join_eui_mismatch", &dev_eui);
        }
        let device = node.record.id.to_bytes();
        let Some(app_key) = self
            .keys
            .open(&node.otaa.app_key, &lorawan_key_context(device, "appkey"))
            .ok()
            .and_then(|k| <[u8; 16]>::try_from(k.as_slice()).ok())
        else {
            return refused(&self.stats, "join_key_unreadable", &dev_eui);
        };
        if !request.validate_mic(&AES128(app_key)) {
            return refused(&self.stats, "join_mic_invalid", &dev_eui);
        }
        let replay = node.otaa.last_join.is_some_and(|j| j.dev_nonce == dev_nonce)
            || accepted.joins.iter().any(|a| a.device == device && a.local.dev_nonce == dev_nonce)
            || self.cache.dev_nonce_used(device, dev_nonce).unwrap_or(true);
        if replay {
            return refused(&self.stats, "join_replay", &dev_eui);
        }
        let (Some(to), Some(tmst)) =
            (self.stats.forwarders.downlink_path(gateway, downlink::PATH_FRESH_FOR, now), packet.tmst)
        else {
            return refused(&self.stats, "join_no_downlink_path", &dev_eui);
        };
        let Some((accept, local)) = self.accept(nodes, &node, app_key, &nonce_bytes, dev_nonce) else {
            return refused(&self.stats, "join_no_address", &dev_eui);
        };
        let rx1 = downlink::rx1(packet.tmst, packet.frequency, packet.datarate.as_deref()).map(|mut w| {
            w.tmst = tmst.wrapping_add(JOIN_ACCEPT_DELAY1_US);
            w
        });
        self.stats.frame("join_accepted");
        accepted.joins.push(Answered { device, local, accept, to, tmst, rx1 });
    }

    /// The join-accept and the session it gives (`None` when no free address was found).
    fn accept(
        &self,
        nodes: &Nodes,
        node: &crate::cache::OtaaNode,
        app_key: [u8; 16],
        nonce_bytes: &[u8],
        dev_nonce: u16,
    ) -> Option<(Vec<u8>, LocalSession)> {
        let rng = ring::rand::SystemRandom::new();
        let mut app_nonce = [0u8; 3];
        rng.fill(&mut app_nonce).ok()?;
        let dev_addr = (0..8).find_map(|_| {
            let mut b = [0u8; 4];
            rng.fill(&mut b).ok()?;
            // NwkID 0 (the 7 high bits) for NetID 000000.
            let addr = u32::from_be_bytes(b) & 0x01ff_ffff;
            let taken = nodes.by_addr.contains_key(&addr) || self.cache.dev_addr_taken(addr).unwrap_or(true);
            (!taken && addr != 0).then_some(addr)
        })?;
        let mut creator = lorawan::creator::JoinAcceptCreator::new();
        creator.set_app_nonce(&app_nonce).set_net_id(&NET_ID).set_dev_addr(&dev_addr.to_le_bytes());
        creator.set_dl_settings(0).set_rx_delay(1);
        // MHDR, AppNonce, NetID, DevAddr, DLSettings, RxDelay, MIC: 17 bytes without a CFList
        // (the creator's buffer holds the 33 of an accept with one).
        let accept = creator.build(&AES128(app_key)).ok()?.get(..17)?.to_vec();
        let Ok(PhyPayload::JoinAccept(JoinAcceptPayload::Encrypted(encrypted))) =
            lorawan::parser::parse(accept.clone())
        else {
            return None;
        };
        let decrypted = encrypted.decrypt(&AppKey::from(app_key));
        let nonce = lorawan::parser::DevNonce::new(nonce_bytes)?;
        let nwk = decrypted.derive_newskey(&nonce, &AppKey::from(app_key));
        let app = decrypted.derive_appskey(&nonce, &AppKey::from(app_key));
        let device = node.record.id.to_bytes();
        let seal = |k: &[u8], which: &str| self.keys.seal(k, &lorawan_key_context(device, which)).ok();
        let session = LorawanSession {
            dev_addr: dev_addr.into(),
            nwk_s_key: seal(nwk.as_ref(), "nwk")?,
            app_s_key: seal(app.as_ref(), "app")?,
            f_cnt_up: 0,
            relax_f_cnt: false,
            codec: node.otaa.codec.clone(),
        };
        let replaces = node.otaa.last_join.map(|j| j.dev_nonce);
        Some((accept, LocalSession { session, dev_nonce, joined_at_ms: super::now_ms(), replaces }))
    }

    /// The `PULL_RESP`s of the joins of a stored batch.
    pub(super) fn join_accepts(&self, joins: Vec<Answered>, now: Instant) -> Vec<downlink::Outgoing> {
        let mut out = Vec::new();
        for join in joins {
            let rx2 =
                downlink::rx2(join.tmst.wrapping_add(JOIN_ACCEPT_DELAY2_US - downlink::RECEIVE_DELAY2_US));
            match self.downlinks.lock().schedule_windows(
                join.to,
                join.rx1,
                Some(rx2),
                &join.accept,
                None,
                now,
            ) {
                Some(resp) => {
                    self.stats.downlink("join_accept_scheduled");
                    out.push(resp);
                }
                None => self.stats.downlink("no_timestamp"),
            }
        }
        out
    }
}

/// Whether the session of a join answered here is to be used rather than central's for the
/// node: central still holds the join this one replaced. Once central holds this join (reported
/// and synced back) or a later one (another gateway's, reported after), central's wins. No
/// clocks are compared: a gateway's clock may be off.
pub fn local_wins(local: &LocalSession, central: Option<&neosens_protocol::sync::LastJoin>) -> bool {
    central.map(|j| j.dev_nonce) == local.replaces
}

/// A session of a join answered here, for the decoder.
pub(super) fn local_node(
    local: LocalSession,
    mut record: neosens_protocol::sync::DeviceRecord,
    base: Option<String>,
    status_every: std::time::Duration,
    keys: &neosens_runtime::keys::Keys,
) -> Option<frame::NodeSession> {
    record.lorawan = Some(local.session.clone());
    let mut node = frame::NodeSession::open(&record, base, status_every, keys)?;
    node.local = Some(Arc::new(local));
    Some(node)
}

#[cfg(test)]
mod tests {
    use super::*;
    use neosens_protocol::sync::{LastJoin, Sealed};

    fn local(dev_nonce: u16, replaces: Option<u16>) -> LocalSession {
        let sealed = Sealed { nonce: [0; 12], ciphertext: vec![] };
        LocalSession {
            session: LorawanSession {
                dev_addr: 1.into(),
                nwk_s_key: sealed.clone(),
                app_s_key: sealed,
                f_cnt_up: 0,
                relax_f_cnt: false,
                codec: "hex".into(),
            },
            dev_nonce,
            joined_at_ms: 0,
            replaces,
        }
    }

    fn held(dev_nonce: u16) -> LastJoin {
        // Central's time says nothing here: a gateway's clock may be off.
        LastJoin { dev_nonce, joined_at_ms: u64::MAX }
    }

    #[test]
    fn a_local_session_lasts_while_central_holds_the_join_it_replaced() {
        assert!(local_wins(&local(5, None), None), "central knows no join yet");
        assert!(local_wins(&local(5, Some(3)), Some(&held(3))), "central still at the join it replaced");
        assert!(!local_wins(&local(5, Some(3)), Some(&held(5))), "central holds this join: its copy wins");
        assert!(!local_wins(&local(5, Some(3)), Some(&held(9))), "a later join elsewhere");
        assert!(!local_wins(&local(5, None), Some(&held(9))), "a join reported after this one was answered");
    }
}
