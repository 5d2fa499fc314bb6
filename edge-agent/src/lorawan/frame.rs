//! One uplink frame, from PHYPayload bytes to its decrypted application payload: parse (the
//! `lorawan` crate), find the node's session by DevAddr, rebuild the 32-bit frame counter from
//! the 16 bits on air, check the MIC with the NwkSKey (which also settles which node, when several
//! share an address), refuse replays, decrypt the FRMPayload (AppSKey; port 0: NwkSKey and MAC
//! commands). Every rejection has a reason.

use std::sync::Arc;

use lorawan::keys::AES128;
use lorawan::parser::{DataHeader, DataPayload, FRMPayload, MHDRAble, MType, PhyPayload};
use neosens_protocol::ids::DeviceId;
use neosens_protocol::sync::DeviceRecord;
use neosens_runtime::keys::Keys;

use crate::cache::CacheError;

/// Why a frame was not accepted (metrics label: [`Reject::as_str`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reject {
    /// Not a LoRaWAN frame (too short, bad major version …).
    Malformed,
    /// A join request (OTAA joins are not handled yet): reported, not decoded.
    JoinRequest {
        /// Its DevEUI.
        dev_eui: String,
    },
    /// A downlink or a join accept heard by the gateway.
    NotUplink,
    /// No node of the gateway's scope has this address.
    UnknownDevAddr(u32),
    /// No session with this address has a key that gives this MIC.
    MicInvalid,
    /// The frame counter did not increase.
    Replay {
        /// The counter of the frame.
        f_cnt: u32,
        /// The last one accepted.
        last: u32,
    },
    /// The local database failed.
    Storage(String),
}

impl Reject {
    /// Label for metrics and logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            Reject::Malformed => "malformed",
            Reject::JoinRequest { .. } => "join_request",
            Reject::NotUplink => "not_uplink",
            Reject::UnknownDevAddr(_) => "unknown_dev_addr",
            Reject::MicInvalid => "mic_invalid",
            Reject::Replay { .. } => "replay",
            Reject::Storage(_) => "storage",
        }
    }
}

impl From<CacheError> for Reject {
    fn from(e: CacheError) -> Self {
        Reject::Storage(e.to_string())
    }
}

/// A node's session, opened once (keys unsealed) and kept while the registry does not change.
#[derive(Debug, Clone)]
pub struct NodeSession {
    /// The device.
    pub id: DeviceId,
    /// Its DevEUI, lowercase hex (the `unitID` of its readings).
    pub dev_eui: String,
    /// Its main room's base topic.
    pub base_topic: Option<String>,
    /// Fingerprint of the session (DevAddr and keys), stored with its counter: a node given a
    /// new session starts from central's counter again, not from the old session's.
    pub session: u64,
    nwk: AES128,
    app: AES128,
    f_cnt_up: u32,
    relax_f_cnt: bool,
    /// Payload codec.
    pub codec: String,
    /// How often its status is relayed at most ([`status_every`]).
    pub status_every: std::time::Duration,
    /// The join answered here that gave this session (none for a synced session).
    pub local: Option<Arc<crate::cache::LocalSession>>,
    /// Its type's payload layout, for the `layout` codec.
    pub layout: Option<Arc<neosens_protocol::layout::PayloadLayout>>,
}

/// Least time between two statuses relayed for a node: its type's status period, but at most
/// half its outdated threshold (so a node that sends is never shown outdated), and at least 10 s.
/// Without its type (not synced yet), [`DEFAULT_STATUS_EVERY`].
pub fn status_every(device_type: Option<&neosens_protocol::sync::DeviceTypeRecord>) -> std::time::Duration {
    let seconds = device_type
        .map_or(DEFAULT_STATUS_EVERY.as_secs(), |t| u64::from(t.status_period_s.min(t.outdated_after_s / 2)));
    std::time::Duration::from_secs(seconds.max(10))
}

/// A node's status interval when its type is unknown.
pub const DEFAULT_STATUS_EVERY: std::time::Duration = std::time::Duration::from_secs(300);

impl NodeSession {
    /// Opens a synced record's session with the gateway's keys; `None` without a usable one.
    pub fn open(
        record: &DeviceRecord,
        base_topic: Option<String>,
        status_every: std::time::Duration,
        keys: &Keys,
    ) -> Option<Self> {
        let session = record.lorawan.as_ref()?;
        let device = record.id.to_bytes();
        let nwk = key(keys, &session.nwk_s_key, device, "nwk")?;
        let app = key(keys, &session.app_s_key, device, "app")?;
        Some(NodeSession {
            id: record.id,
            dev_eui: dev_eui_of(record),
            base_topic,
            session: fingerprint(session.dev_addr.to_u32(), &nwk, &app),
            nwk,
            app,
            f_cnt_up: session.f_cnt_up,
            relax_f_cnt: session.relax_f_cnt,
            codec: session.codec.clone(),
            status_every,
            local: None,
            layout: None,
        })
    }
}

impl NodeSession {
    /// A downlink to this node (LoRaWAN 1.0.x data down, confirmed when `data` says so): `ack`
    /// sets FCtrl.ACK (the answer to a confirmed uplink), `data` is an FPort and its FRMPayload
    /// (encrypted with the AppSKey; port 0 is not for application data), frame counter
    /// `f_cnt_down`, MIC with the NwkSKey; `commands` in FOpts. `None` for a payload too large
    /// for a frame.
    pub fn downlink_frame(
        &self,
        dev_addr: u32,
        f_cnt_down: u32,
        ack: bool,
        commands: &[&dyn lorawan::maccommands::SerializableMacCommand],
        data: Option<AppData<'_>>,
    ) -> Option<Vec<u8>> {
        let mut creator = lorawan::creator::DataPayloadCreator::new();
        let mut fctrl = lorawan::parser::FCtrl::new(0, false);
        if ack {
            fctrl.set_ack();
        }
        creator
            .set_uplink(false)
            .set_confirmed(data.is_some_and(|d| d.confirmed))
            .set_dev_addr(&dev_addr.to_le_bytes())
            .set_fctrl(&fctrl)
            .set_fcnt(f_cnt_down);
        let payload = match data {
            Some(AppData { f_port, payload, .. }) if f_port > 0 && payload.len() <= 242 => {
                creator.set_f_port(f_port);
                payload
            }
            Some(_) => return None,
            None => &[],
        };
        let nwk = lorawan::keys::NewSKey::from(self.nwk.0);
        let app = lorawan::keys::AppSKey::from(self.app.0);
        // MAC commands ride in FOpts (15 bytes at most), clear.
        creator.build(payload, commands, &nwk, &app).ok().map(<[u8]>::to_vec)
    }
}

/// Application data for a downlink.
#[derive(Debug, Clone, Copy)]
pub struct AppData<'a> {
    /// FPort (1–223).
    pub f_port: u8,
    /// The FRMPayload, clear.
    pub payload: &'a [u8],
    /// Confirmed data down: the node acknowledges it in its next uplink.
    pub confirmed: bool,
}

/// A session that may have sent a frame, with the last counter accepted from it.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The session.
    pub node: Arc<NodeSession>,
    /// Its last accepted frame counter.
    pub last: Option<u32>,
}

/// An accepted uplink.
#[derive(Debug, Clone)]
pub struct Uplink {
    /// The node.
    pub node: Arc<NodeSession>,
    /// The device address.
    pub dev_addr: u32,
    /// The full frame counter.
    pub f_cnt: u32,
    /// FPort (`None`: no payload).
    pub f_port: Option<u8>,
    /// The decrypted application payload (empty for port 0).
    pub payload: Vec<u8>,
    /// MAC commands carried (port 0 payload or FOpts), in bytes.
    pub mac_command_bytes: usize,
    /// A confirmed uplink: the node waits for an ACK in its receive windows.
    pub confirmed: bool,
    /// A confirmed uplink with the counter last accepted: the node retransmitting a frame whose
    /// ACK it did not hear (LoRaWAN 1.0.x keeps the counter). Acknowledged again, its data not
    /// taken twice.
    pub retransmission: bool,
    /// What its MAC commands (FOpts, or a port-0 payload) ask or say.
    pub mac: super::mac::UplinkMac,
    /// FCtrl.ACK: the node acknowledges the confirmed downlink it received last.
    pub ack: bool,
    /// FCtrl.ADR: the node lets the network set its data rate and power.
    pub adr: bool,
    /// FCtrl.ADRACKReq: the node wants a downlink to know it is still heard.
    pub adr_ack_req: bool,
}

/// The 32-bit counter closest above `last` whose low 16 bits are `low` (roll-over included).
pub fn full_f_cnt(last: u32, low: u16) -> u32 {
    let candidate = (last & 0xffff_0000) | u32::from(low);
    if candidate < last { candidate.wrapping_add(0x1_0000) } else { candidate }
}

fn key(
    keys: &Keys,
    sealed: &neosens_protocol::sync::Sealed,
    device: [u8; 16],
    which: &str,
) -> Option<AES128> {
    let plain = keys.open(sealed, &neosens_protocol::sync::lorawan_key_context(device, which)).ok()?;
    <[u8; 16]>::try_from(plain.as_slice()).ok().map(AES128)
}

/// A session's fingerprint: a digest of its address and keys (the keys cannot be recovered from
/// it), never [`crate::cache::SessionCounter::ANY_SESSION`].
fn fingerprint(dev_addr: u32, nwk: &AES128, app: &AES128) -> u64 {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(b"neosens lorawan session\0");
    ctx.update(&dev_addr.to_be_bytes());
    ctx.update(&nwk.0);
    ctx.update(&app.0);
    let digest = ctx.finish();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_ref()[..8]);
    u64::from_be_bytes(first).max(1)
}

fn dev_eui_of(record: &DeviceRecord) -> String {
    match record.uid {
        neosens_protocol::sync::WireUid::Lorawan(eui) => eui.to_string().to_lowercase(),
        _ => String::new(),
    }
}

/// The application payload, the length of a port-0 payload of MAC commands, and what the MAC
/// commands of FOpts and of that payload ask or say.
fn payload_and_mac(fopts: &[u8], frm: FRMPayload<'_>) -> (Vec<u8>, usize, super::mac::UplinkMac) {
    let in_fopts = super::mac::parse_uplink(fopts);
    match frm {
        FRMPayload::Data(d) => (d.to_vec(), 0, in_fopts),
        FRMPayload::MACCommands(m) => {
            (Vec::new(), m.data().len(), in_fopts.and(super::mac::parse_uplink(m.data())))
        }
        FRMPayload::None => (Vec::new(), 0, in_fopts),
    }
}

/// The full frame counter whose MIC checks, from the 16 bits on air and the last one accepted
/// (`base`): ahead of it (roll-over included), in its epoch (what a replayed older frame checks
/// with), or — relaxed policy only — a node that reset its counter.
fn counter_with_valid_mic(
    node: &NodeSession,
    base: u32,
    low: u16,
    mic_ok: impl Fn(u32) -> bool,
) -> Option<u32> {
    let ahead = full_f_cnt(base, low);
    let same_epoch = (base & 0xffff_0000) | u32::from(low);
    if mic_ok(ahead) {
        Some(ahead)
    } else if same_epoch != ahead && mic_ok(same_epoch) {
        Some(same_epoch)
    } else if node.relax_f_cnt && mic_ok(u32::from(low)) {
        Some(u32::from(low))
    } else {
        None
    }
}

/// `phy` copied for parsing and decryption in place: into `stack` (a LoRa frame is at most 255
/// bytes, and the pipeline refuses longer ones before decoding), else into `heap`.
fn writable_copy<'a>(phy: &[u8], stack: &'a mut [u8; 256], heap: &'a mut Vec<u8>) -> &'a mut [u8] {
    match stack.get_mut(..phy.len()) {
        Some(copy) => {
            copy.copy_from_slice(phy);
            copy
        }
        None => {
            heap.extend_from_slice(phy);
            heap
        }
    }
}

/// The sessions of a device address: almost always one, held inline.
pub type Candidates = smallvec::SmallVec<[Candidate; 2]>;

/// Decodes one PHYPayload; `candidates` gives the sessions of a device address.
pub fn decode(
    phy: &[u8],
    candidates: impl FnOnce(u32) -> Result<Candidates, Reject>,
) -> Result<Uplink, Reject> {
    let (mut stack, mut heap) = ([0u8; 256], Vec::new());
    let parsed =
        lorawan::parser::parse(writable_copy(phy, &mut stack, &mut heap)).map_err(|_| Reject::Malformed)?;
    let encrypted = match parsed {
        PhyPayload::Data(DataPayload::Encrypted(e)) if e.is_uplink() => e,
        PhyPayload::Data(_) | PhyPayload::JoinAccept(_) => return Err(Reject::NotUplink),
        PhyPayload::JoinRequest(jr) => {
            // On air the EUI is little-endian.
            let big_endian: Vec<u8> = jr.dev_eui().as_ref().iter().rev().copied().collect();
            return Err(Reject::JoinRequest { dev_eui: neosens_protocol::hex::encode(&big_endian) });
        }
    };
    let confirmed = encrypted.mhdr().mtype() == MType::ConfirmedDataUp;
    let fhdr = encrypted.fhdr();
    let fctrl = fhdr.fctrl();
    let (ack, adr, adr_ack_req) = (fctrl.ack(), fctrl.adr(), fctrl.adr_ack_req());
    let addr = fhdr.dev_addr();
    let addr_bytes: &[u8] = addr.as_ref();
    let dev_addr = u32::from_le_bytes([addr_bytes[0], addr_bytes[1], addr_bytes[2], addr_bytes[3]]);
    let low = fhdr.fcnt();
    let fopts = usize::from(fhdr.fopts_len());
    let candidates = candidates(dev_addr)?;
    if candidates.is_empty() {
        return Err(Reject::UnknownDevAddr(dev_addr));
    }
    for Candidate { node, last } in candidates {
        // Without a counter of its own for this session, the gateway takes central's as the
        // floor (a frame at or below it was already received elsewhere); 0 is a fresh session.
        let floor = (node.f_cnt_up > 0).then_some(node.f_cnt_up);
        let last = match (last, floor) {
            (Some(l), Some(f)) => Some(l.max(f)),
            (l, f) => l.or(f),
        };
        let Some(f_cnt) =
            counter_with_valid_mic(&node, last.unwrap_or(0), low, |f| encrypted.validate_mic(&node.nwk, f))
        else {
            continue;
        };
        let retransmission = match last {
            Some(last) if f_cnt <= last && !node.relax_f_cnt => {
                // The same counter again is a retransmission only for a confirmed uplink.
                if !(confirmed && f_cnt == last) {
                    return Err(Reject::Replay { f_cnt, last });
                }
                true
            }
            _ => false,
        };
        let f_port = encrypted.f_port();
        let decrypted =
            encrypted.decrypt(Some(&node.nwk), Some(&node.app), f_cnt).map_err(|_| Reject::Malformed)?;
        // FOpts (clear in 1.0.x) follow MHDR, DevAddr, FCtrl and FCnt.
        let (payload, port0, mac) =
            payload_and_mac(phy.get(8..8 + fopts).unwrap_or_default(), decrypted.frm_payload());
        return Ok(Uplink {
            node,
            dev_addr,
            f_cnt,
            f_port,
            payload,
            mac_command_bytes: port0 + fopts,
            confirmed,
            retransmission,
            mac,
            ack,
            adr,
            adr_ack_req,
        });
    }
    Err(Reject::MicInvalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A node's status interval: its type's period, at most half its outdated threshold, at
    /// least 10 s; without its type, the default.
    #[test]
    fn status_interval_from_the_type() {
        use neosens_protocol::sync::DeviceTypeRecord;
        let t = |period, outdated| DeviceTypeRecord {
            id: neosens_protocol::ids::DeviceTypeId::from_bytes([1; 16]),
            name: "lorawan_node".into(),
            status_period_s: period,
            outdated_after_s: outdated,
        };
        let s = |secs| std::time::Duration::from_secs(secs);
        assert_eq!(status_every(Some(&t(60, 1800))), s(60));
        assert_eq!(status_every(Some(&t(1800, 1800))), s(900), "never outdated while it sends");
        assert_eq!(status_every(Some(&t(1, 0))), s(10));
        assert_eq!(status_every(None), DEFAULT_STATUS_EVERY);
    }

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
    }

    fn key16(text: &str) -> AES128 {
        AES128(hex(text).try_into().unwrap())
    }

    fn app(f_port: u8, payload: &[u8], confirmed: bool) -> AppData<'_> {
        AppData { f_port, payload, confirmed }
    }

    /// The ACK downlink of the public vectors (`spec/lorawan-vectors.md`: DevAddr 49be7df1,
    /// FCtrl ACK, FCnt 2, FPort 1 without payload, MIC f9d65d27 with vector 1's NwkSKey).
    #[test]
    fn downlinks_match_the_public_ack_vector() {
        let node = NodeSession {
            id: DeviceId::from_bytes([1; 16]),
            dev_eui: "70b3d57ed0000001".into(),
            base_topic: None,
            session: 1,
            nwk: key16("44024241ed4ce9a68c6a8bc055233fd3"),
            app: key16("ec925802ae430ca77fd3dd73cb2cc588"),
            f_cnt_up: 0,
            relax_f_cnt: false,
            codec: "hex".into(),
            status_every: DEFAULT_STATUS_EVERY,
            local: None,
            layout: None,
        };
        let frame = node.downlink_frame(0x49be_7df1, 2, true, &[], Some(app(1, &[], false))).unwrap();
        assert_eq!(frame, hex("60f17dbe4920020001f9d65d27"));
        // The ACK alone: no port, and the MIC covers the counter (a node checks it).
        let ack = node.downlink_frame(0x49be_7df1, 7, true, &[], None).unwrap();
        assert_eq!(ack.len(), 12);
        assert_eq!((ack[0], ack[5], ack[6]), (0x60, 0x20, 7));
        let Ok(PhyPayload::Data(DataPayload::Encrypted(parsed))) = lorawan::parser::parse(ack.clone()) else {
            panic!()
        };
        assert!(parsed.validate_mic(&node.nwk, 7) && !parsed.validate_mic(&node.nwk, 8));
        // Application data is encrypted with the AppSKey; port 0 and oversized payloads refused.
        let order =
            node.downlink_frame(0x49be_7df1, 8, false, &[], Some(app(10, b"\x01\x02", true))).unwrap();
        assert_eq!(order[0], 0xa0, "confirmed data down");
        let Ok(PhyPayload::Data(DataPayload::Encrypted(parsed))) = lorawan::parser::parse(order) else {
            panic!()
        };
        let plain = parsed.decrypt(Some(&node.nwk), Some(&node.app), 8).unwrap();
        assert!(matches!(plain.frm_payload(), FRMPayload::Data(d) if d == [1, 2]));
        assert_eq!(node.downlink_frame(0x49be_7df1, 9, false, &[], Some(app(0, b"x", false))), None);
        assert_eq!(node.downlink_frame(0x49be_7df1, 9, false, &[], Some(app(1, &[0; 243], false))), None);
        // MAC commands in FOpts, clear: LinkCheckAns (margin 17, 1 gateway) and DevStatusReq.
        let mut link = lorawan::maccommandcreator::LinkCheckAnsCreator::new();
        link.set_margin(17).set_gateway_count(1);
        let status = lorawan::maccommandcreator::DevStatusReqCreator::new();
        let frame = node.downlink_frame(0x49be_7df1, 10, false, &[&link, &status], None).unwrap();
        assert_eq!((frame[5] & 0x0f, &frame[8..12]), (4, &[0x02, 17, 1, 0x06][..]));
    }

    #[test]
    fn counters_roll_over_upwards() {
        assert_eq!(full_f_cnt(0, 2), 2);
        assert_eq!(full_f_cnt(5, 5), 5, "the same counter (a replay, told apart by the caller)");
        assert_eq!(full_f_cnt(0x0001_fffe, 0x0002), 0x0002_0002);
        assert_eq!(full_f_cnt(0x0001_0010, 0x0020), 0x0001_0020);
        assert_eq!(full_f_cnt(u32::MAX - 1, 0), 0, "32-bit wrap");
    }
}
