//! The Semtech UDP packet-forwarder protocol (v2, as the forwarders of the campus gateways speak
//! it): `PUSH_DATA` (uplinks, `rxpk` JSON) answered by `PUSH_ACK`, `PULL_DATA` (keep-alive)
//! answered by `PULL_ACK`, `TX_ACK`; the `stat` object a forwarder pushes every 30 s (its
//! health). Parsing only; the listener is in the parent module.

use base64::Engine;
use serde::Deserialize;

/// Largest datagram accepted (a forwarder's PUSH_DATA with several frames fits well under it).
pub const MAX_DATAGRAM: usize = 16 * 1024;

pub(super) const PUSH_DATA: u8 = 0x00;
const PUSH_ACK: u8 = 0x01;
const PULL_DATA: u8 = 0x02;
const PULL_RESP: u8 = 0x03;
const PULL_ACK: u8 = 0x04;
const TX_ACK: u8 = 0x05;

/// A received packet's radio metadata and bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct RxPacket {
    /// PHYPayload.
    pub phy: Vec<u8>,
    /// RSSI, dBm.
    pub rssi: Option<f64>,
    /// SNR, dB.
    pub snr: Option<f64>,
    /// Frequency, MHz.
    pub frequency: Option<f64>,
    /// Data rate (`SF7BW125`).
    pub datarate: Option<String>,
    /// The concentrator's microsecond counter at reception (`tmst`): class A receive windows
    /// open at fixed delays after it.
    pub tmst: Option<u32>,
}

/// A datagram, understood.
#[derive(Debug, Clone, PartialEq)]
pub enum Datagram {
    /// Uplinks from a forwarder (with CRC errors already left out); `bad` counts the `rxpk`
    /// entries that could not be read (bad base64, CRC error, missing `data`).
    Push {
        /// The ACK to send back.
        ack: [u8; 4],
        /// The forwarder's gateway EUI, hex.
        gateway: String,
        /// The packets.
        packets: Vec<RxPacket>,
        /// Entries left out.
        bad: usize,
        /// Its `stat` object, when the datagram carried one (most carry uplinks only).
        stat: Option<Stat>,
    },
    /// A keep-alive (the forwarder's downlink path).
    Pull {
        /// The ACK to send back.
        ack: [u8; 4],
        /// The forwarder's gateway EUI, hex.
        gateway: String,
    },
    /// A transmission acknowledgement (no answer).
    TxAck {
        /// The forwarder's gateway EUI, hex (protocol v2; v1 has none).
        gateway: Option<String>,
        /// The token of the `PULL_RESP` it answers.
        token: u16,
        /// Why the forwarder did not schedule it (`TOO_LATE`, `TOO_EARLY`, `COLLISION_PACKET`,
        /// `TX_FREQ` …); `None`: scheduled (no JSON, or `"error": "NONE"`).
        error: Option<String>,
    },
}

/// A forwarder's `stat` object: counts since its previous one, its position. Read field by
/// field, leniently: a field of an unexpected type is left out, never a reason to drop the
/// datagram's uplinks.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stat {
    /// Radio packets received.
    pub rxnb: Option<u64>,
    /// Of which with a valid CRC.
    pub rxok: Option<u64>,
    /// Packets forwarded.
    pub rxfw: Option<u64>,
    /// Percentage of upstream datagrams acknowledged.
    pub ackr: Option<f64>,
    /// Downlinks received.
    pub dwnb: Option<u64>,
    /// Packets emitted.
    pub txnb: Option<u64>,
    /// Latitude, degrees.
    pub lati: Option<f64>,
    /// Longitude, degrees.
    pub long: Option<f64>,
    /// Altitude, metres.
    pub alti: Option<i64>,
}

impl Stat {
    fn from_json(v: &serde_json::Value) -> Self {
        let u = |k: &str| v.get(k).and_then(serde_json::Value::as_u64);
        let f = |k: &str| v.get(k).and_then(serde_json::Value::as_f64);
        Stat {
            rxnb: u("rxnb"),
            rxok: u("rxok"),
            rxfw: u("rxfw"),
            ackr: f("ackr"),
            dwnb: u("dwnb"),
            txnb: u("txnb"),
            lati: f("lati"),
            long: f("long"),
            alti: v.get("alti").and_then(serde_json::Value::as_i64),
        }
    }

    /// Its position, when it has a plausible one (both coordinates, on the globe).
    pub fn position(&self) -> Option<neosens_protocol::edge::ForwarderPosition> {
        let (lat, lon) = (self.lati?, self.long?);
        ((-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon)).then(|| {
            neosens_protocol::edge::ForwarderPosition {
                latitude: lat,
                longitude: lon,
                altitude: self.alti.unwrap_or(0).clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32,
            }
        })
    }
}

/// Why a datagram was dropped (metrics label: [`DatagramError::as_str`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DatagramError {
    /// Larger than [`MAX_DATAGRAM`].
    #[error("datagram of {0} bytes")]
    Oversized(usize),
    /// Too short for its header.
    #[error("datagram too short")]
    Truncated,
    /// Protocol version other than 1 or 2.
    #[error("protocol version {0}")]
    Version(u8),
    /// Unknown packet identifier.
    #[error("packet identifier {0:#04x}")]
    Identifier(u8),
    /// The JSON does not parse.
    #[error("bad JSON: {0}")]
    Json(String),
}

impl DatagramError {
    /// Label for metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            DatagramError::Oversized(_) => "oversized",
            DatagramError::Truncated => "truncated",
            DatagramError::Version(_) => "version",
            DatagramError::Identifier(_) => "identifier",
            DatagramError::Json(_) => "bad_json",
        }
    }
}

#[derive(Deserialize)]
struct Push {
    #[serde(default, deserialize_with = "rxpk_packets")]
    rxpk: Packets,
    /// Read as a value, then field by field ([`Stat`]): rare (every 30 s), and lenient.
    #[serde(default)]
    stat: Option<serde_json::Value>,
}

/// The uplinks of an `rxpk` array, and how many of its entries were not one.
#[derive(Default)]
struct Packets {
    packets: Vec<RxPacket>,
    bad: usize,
}

#[derive(Deserialize)]
struct Rxpk<'a> {
    /// Borrowed from the datagram unless it holds escapes (base64 never does).
    #[serde(borrow)]
    data: Option<std::borrow::Cow<'a, str>>,
    stat: Option<i64>,
    /// Read leniently (a number out of range is left out, not a reason to drop the datagram).
    tmst: Option<serde_json::Value>,
    rssi: Option<f64>,
    lsnr: Option<f64>,
    freq: Option<f64>,
    datr: Option<serde_json::Value>,
}

/// The `rxpk` array read entry by entry into its packets, each entry's fields borrowed from
/// the datagram while it is converted (no list of entries is built).
fn rxpk_packets<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Packets, D::Error> {
    struct List;
    impl<'de> serde::de::Visitor<'de> for List {
        type Value = Packets;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an array of rxpk objects")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Packets { packets: Vec::with_capacity(RXPK_CAPACITY), bad: 0 };
            while let Some(rx) = seq.next_element::<Rxpk<'de>>()? {
                match rx.packet() {
                    Some(packet) => out.packets.push(packet),
                    None => out.bad += 1,
                }
            }
            Ok(out)
        }
    }
    d.deserialize_seq(List)
}

/// Room made for a datagram's packets before the first is read (a busy forwarder's datagram
/// holds a few).
const RXPK_CAPACITY: usize = 8;

impl Rxpk<'_> {
    /// The uplink, unless its CRC failed or its data is not base64.
    fn packet(self) -> Option<RxPacket> {
        // stat: 1 CRC ok, -1 CRC bad, 0 no CRC.
        let data = self.data.filter(|_| self.stat.unwrap_or(1) != -1)?;
        let phy = decode_base64(data.trim())?;
        Some(RxPacket {
            phy,
            rssi: self.rssi,
            snr: self.lsnr,
            frequency: self.freq,
            datarate: self.datr.map(|d| match d {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            }),
            tmst: self.tmst.as_ref().and_then(serde_json::Value::as_u64).and_then(|t| u32::try_from(t).ok()),
        })
    }
}

/// A frame's bytes from its base64 text. Decoded on the stack and copied out at their length:
/// the engine's own `decode` allocates a zeroed buffer, and glibc's `calloc` skips its
/// per-thread cache (a slow path per frame, a fortieth of the agent's CPU). Text of more than
/// 384 bytes goes through `decode` (a LoRa frame is at most 255: the pipeline counts longer ones
/// as oversized).
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let engine = base64::engine::general_purpose::STANDARD;
    let mut buffer = [0u8; 384];
    match engine.decode_slice(text, &mut buffer) {
        Ok(n) => Some(buffer[..n].to_vec()),
        Err(base64::DecodeSliceError::OutputSliceTooSmall) => engine.decode(text).ok(),
        Err(base64::DecodeSliceError::DecodeError(_)) => None,
    }
}

/// Parses a datagram.
pub fn parse(datagram: &[u8]) -> Result<Datagram, DatagramError> {
    if datagram.len() > MAX_DATAGRAM {
        return Err(DatagramError::Oversized(datagram.len()));
    }
    if datagram.len() < 4 {
        return Err(DatagramError::Truncated);
    }
    let version = datagram[0];
    if version != 1 && version != 2 {
        return Err(DatagramError::Version(version));
    }
    let token = [datagram[1], datagram[2]];
    let gateway = || datagram.get(4..12).map(neosens_protocol::hex::encode).ok_or(DatagramError::Truncated);
    match datagram[3] {
        PUSH_DATA => {
            let gateway = gateway()?;
            let push: Push =
                serde_json::from_slice(&datagram[12..]).map_err(|e| DatagramError::Json(e.to_string()))?;
            let Packets { packets, bad } = push.rxpk;
            let stat = push.stat.as_ref().filter(|v| v.is_object()).map(Stat::from_json);
            Ok(Datagram::Push { ack: [version, token[0], token[1], PUSH_ACK], gateway, packets, bad, stat })
        }
        PULL_DATA => Ok(Datagram::Pull { ack: [version, token[0], token[1], PULL_ACK], gateway: gateway()? }),
        TX_ACK => Ok(Datagram::TxAck {
            gateway: gateway().ok(),
            token: u16::from_be_bytes(token),
            error: datagram.get(12..).and_then(tx_ack_error),
        }),
        other => Err(DatagramError::Identifier(other)),
    }
}

/// The error a `TX_ACK`'s JSON reports (`{"txpk_ack": {"error": "TOO_LATE"}}`); `None` for
/// none, `NONE`, or a body that is not that JSON (an old forwarder's empty `TX_ACK`).
fn tx_ack_error(json: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(json).ok()?.trim_matches(char::from(0)).trim();
    if text.is_empty() {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    let error = v.get("txpk_ack")?.get("error")?.as_str()?;
    (error != "NONE").then(|| error.chars().take(32).collect())
}

/// Where and how a downlink is emitted: the `txpk` fields that change from one to the next.
#[derive(Debug, Clone, PartialEq)]
pub struct TxWindow {
    /// The concentrator's counter value to emit at (`tmst`, microseconds, wrapping).
    pub tmst: u32,
    /// Frequency, MHz.
    pub frequency: f64,
    /// Data rate (`SF12BW125`).
    pub datarate: String,
    /// Power, dBm.
    pub power: i32,
}

/// A `PULL_RESP` (protocol v2) asking the forwarder to emit `phy` in `window`, as LoRaWAN
/// downlinks go: LoRa, coding rate 4/5, inverted polarity, timestamped.
pub fn pull_resp(token: u16, window: &TxWindow, phy: &[u8]) -> Vec<u8> {
    let [hi, lo] = token.to_be_bytes();
    let mut out = vec![2, hi, lo, PULL_RESP];
    let txpk = serde_json::json!({"txpk": {
        "imme": false,
        "tmst": window.tmst,
        "freq": window.frequency,
        "rfch": 0,
        "powe": window.power,
        "modu": "LORA",
        "datr": window.datarate,
        "codr": "4/5",
        "ipol": true,
        "size": phy.len(),
        "ncrc": true,
        "data": base64::engine::general_purpose::STANDARD.encode(phy),
    }});
    out.extend_from_slice(txpk.to_string().as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(json: &str) -> Vec<u8> {
        let mut d = vec![2, 0xab, 0xcd, PUSH_DATA, 0xaa, 0x55, 0x5a, 0, 0, 0, 0, 1];
        d.extend_from_slice(json.as_bytes());
        d
    }

    /// The stack decoding gives what the engine's own does, on both sides of the stack
    /// buffer's size, and refuses what it refuses.
    #[test]
    fn frames_decode_as_the_engine_decodes_them() {
        let engine = base64::engine::general_purpose::STANDARD;
        for len in [0, 1, 2, 3, 12, 255, 287, 288, 289, 383, 384, 385, 1000] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let text = engine.encode(&bytes);
            assert_eq!(decode_base64(&text), Some(bytes), "{len} bytes");
        }
        for bad in ["!!", "QQ=", "QQ==QQ==", "Q", "QUJD\u{e9}"] {
            assert_eq!(engine.decode(bad).ok(), None, "{bad:?}");
            assert_eq!(decode_base64(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn push_data_with_its_ack_and_metadata() {
        let d = push(
            r#"{"rxpk":[{"tmst":1,"freq":868.1,"stat":1,"datr":"SF7BW125","rssi":-57,"lsnr":9.5,"data":"QPF9vkkAAgABlUN4disR/w0="},{"stat":-1,"data":"AAAA"},{"stat":1,"data":"!!"}],"stat":{}}"#,
        );
        let Ok(Datagram::Push { ack, gateway, packets, bad, stat }) = parse(&d) else { panic!() };
        assert_eq!(stat, Some(Stat::default()), "an empty stat");
        assert_eq!(ack, [2, 0xab, 0xcd, PUSH_ACK]);
        assert_eq!(gateway, "aa555a0000000001");
        assert_eq!(bad, 2, "a CRC error and bad base64");
        assert_eq!(packets[0].phy[0], 0x40);
        assert_eq!(
            (packets[0].rssi, packets[0].snr, packets[0].datarate.as_deref()),
            (Some(-57.0), Some(9.5), Some("SF7BW125"))
        );
    }

    /// The `stat` object as the Semtech forwarder writes it (`lora_pkt_fwd` v2: counts since the
    /// previous stat, position when its GPS is locked or faked), and read leniently.
    #[test]
    fn stat_objects() {
        let d = push(
            r#"{"stat":{"time":"2014-01-12 08:59:28 GMT","lati":46.24000,"long":3.25230,"alti":145,"rxnb":2,"rxok":2,"rxfw":2,"ackr":100.0,"dwnb":2,"txnb":2}}"#,
        );
        let Ok(Datagram::Push { packets, bad, stat: Some(stat), .. }) = parse(&d) else { panic!() };
        assert_eq!((packets.len(), bad), (0, 0));
        assert_eq!(
            (stat.rxnb, stat.rxok, stat.rxfw, stat.dwnb, stat.txnb),
            (Some(2), Some(2), Some(2), Some(2), Some(2))
        );
        assert_eq!(stat.ackr, Some(100.0));
        let p = stat.position().unwrap();
        assert_eq!((p.latitude, p.longitude, p.altitude), (46.24, 3.2523, 145));
        // Odd types are left out; the uplinks still count.
        let d = push(
            r#"{"rxpk":[{"stat":1,"data":"QPF9vkkAAgABlUN4disR/w0="}],"stat":{"rxnb":"2","rxok":-1,"ackr":"x","lati":95.0,"long":3.0}}"#,
        );
        let Ok(Datagram::Push { packets, stat: Some(stat), .. }) = parse(&d) else { panic!() };
        assert_eq!(packets.len(), 1);
        assert_eq!((stat.rxnb, stat.rxok, stat.ackr, stat.position()), (None, None, None, None));
        let Ok(Datagram::Push { stat, .. }) = parse(&push(r#"{"stat":[1,2]}"#)) else { panic!() };
        assert_eq!(stat, None, "not an object");
    }

    #[test]
    fn tx_acks_say_why_a_downlink_was_not_scheduled() {
        let tx_ack = |json: &str| {
            let mut d = vec![2, 0x12, 0x34, TX_ACK, 0xaa, 0x55, 0x5a, 0, 0, 0, 0, 1];
            d.extend_from_slice(json.as_bytes());
            match parse(&d) {
                Ok(Datagram::TxAck { token: 0x1234, error, .. }) => error,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(tx_ack(r#"{"txpk_ack":{"error":"NONE"}}"#), None);
        assert_eq!(tx_ack(r#"{"txpk_ack":{"error":"TOO_LATE"}}"#).as_deref(), Some("TOO_LATE"));
        assert_eq!(
            tx_ack("{\"txpk_ack\":{\"error\":\"TX_FREQ\"}}\0"),
            Some("TX_FREQ".into()),
            "a trailing NUL"
        );
        assert_eq!(tx_ack(r#"{"txpk_ack":{"warn":"TX_POWER"}}"#), None, "a warning: scheduled");
        assert_eq!(tx_ack("not json"), None);
        assert_eq!(
            tx_ack(&format!(r#"{{"txpk_ack":{{"error":"{}"}}}}"#, "X".repeat(100))).unwrap().len(),
            32
        );
    }

    #[test]
    fn pull_resp_carries_a_class_a_txpk() {
        let window = TxWindow { tmst: 4_001_000, frequency: 868.1, datarate: "SF7BW125".into(), power: 14 };
        let d = pull_resp(0xbeef, &window, &[0x60, 1, 2]);
        assert_eq!(d[..4], [2, 0xbe, 0xef, PULL_RESP]);
        let v: serde_json::Value = serde_json::from_slice(&d[4..]).unwrap();
        let t = &v["txpk"];
        assert_eq!(
            (t["tmst"].as_u64(), t["freq"].as_f64(), t["datr"].as_str()),
            (Some(4_001_000), Some(868.1), Some("SF7BW125"))
        );
        assert_eq!(
            (t["ipol"].as_bool(), t["imme"].as_bool(), t["codr"].as_str()),
            (Some(true), Some(false), Some("4/5"))
        );
        assert_eq!((t["size"].as_u64(), t["data"].as_str()), (Some(3), Some("YAEC")));
    }

    /// `data` is borrowed from the datagram, and still read when it holds JSON escapes.
    #[test]
    fn escaped_data_is_read_too() {
        let d = push(r#"{"rxpk":[{"stat":1,"data":"QPF9vkkAAgABlUN4disR\/w0="}]}"#);
        let Ok(Datagram::Push { packets, bad, .. }) = parse(&d) else { panic!() };
        assert_eq!((packets.len(), bad), (1, 0));
        assert_eq!(packets[0].phy.len(), 17);
    }

    #[test]
    fn pull_and_malformed_datagrams() {
        let pull = [1, 7, 8, PULL_DATA, 1, 2, 3, 4, 5, 6, 7, 8];
        assert_eq!(
            parse(&pull),
            Ok(Datagram::Pull { ack: [1, 7, 8, PULL_ACK], gateway: "0102030405060708".into() })
        );
        assert_eq!(
            parse(&[2, 0, 9, TX_ACK, 0, 0, 0, 0, 0, 0, 0, 1]),
            Ok(Datagram::TxAck { gateway: Some("0000000000000001".into()), token: 9, error: None })
        );
        assert_eq!(
            parse(&[1, 1, 0, TX_ACK]),
            Ok(Datagram::TxAck { gateway: None, token: 256, error: None }),
            "v1: no EUI"
        );
        assert_eq!(parse(&[2, 0]), Err(DatagramError::Truncated));
        assert_eq!(parse(&[3, 0, 0, 0]), Err(DatagramError::Version(3)));
        assert_eq!(parse(&[2, 0, 0, 0x09]), Err(DatagramError::Identifier(9)));
        assert_eq!(parse(&[2, 0, 0, PUSH_DATA, 1, 2]), Err(DatagramError::Truncated));
        assert!(matches!(parse(&push("{not json")), Err(DatagramError::Json(_))));
        assert_eq!(parse(&vec![2; MAX_DATAGRAM + 1]), Err(DatagramError::Oversized(MAX_DATAGRAM + 1)));
        for n in 0..=255u8 {
            let _ = parse(&[2, n, n, n, n, n, n, n, n, n, n, n, n, n]);
        }
    }
}
