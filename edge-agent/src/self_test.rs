//! `neosens-edge self-test`: proves a build works on the machine it runs on — the checks a
//! cross-compiled binary must pass under qemu before it goes to a Pi or a Jetson. In a fresh
//! directory it opens the redb database, syncs one LoRaWAN node into it (keys sealed with
//! AES-256-GCM, as central sends them), feeds public test vector 1 through the real Semtech-UDP
//! pipeline (MIC with the NwkSKey, decryption with the AppSKey), reads the reading back from the
//! on-disk outbox, checks that a frame with a broken MIC is refused, and decodes a Cayenne LPP
//! payload. Nothing is sent anywhere.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail, ensure};
use neosens_protocol::ids::{BuildingId, DeviceId, DeviceTypeId, RoomId};
use neosens_protocol::sync::{
    BatchKind, Change, DeviceRecord, LorawanSession, RoomRecord, SyncBatch, WireUid,
};
use neosens_runtime::keys::Keys;

use crate::cache::Cache;
use crate::lorawan::{LoraStats, Pipeline, codec};
use crate::outbox::{Limits, Outbox};

/// Public vector 1 (`spec/lorawan-vectors.md`): FCnt 2, FPort 1, plaintext `test`.
const VECTOR_1: &str = "40F17DBE4900020001954378762B11FF0D";
/// Vector 1 with one ciphertext byte changed: the MIC no longer holds.
const VECTOR_4: &str = "40F17DBE4900020001954478762B11FF0D";
const NWK_S_KEY: &str = "44024241ed4ce9a68c6a8bc055233fd3";
const APP_S_KEY: &str = "ec925802ae430ca77fd3dd73cb2cc588";

fn bytes(hex: &str) -> anyhow::Result<Vec<u8>> {
    neosens_protocol::hex::decode(hex, "hex constant").map_err(|e| anyhow::anyhow!("{hex}: {e}"))
}

/// A Semtech UDP PUSH_DATA datagram (protocol 2, token 0x1234) carrying one frame.
fn push_data(frame: &[u8]) -> Vec<u8> {
    use base64::Engine;
    let rxpk = serde_json::json!({"rxpk": [{"tmst": 1, "freq": 868.1, "stat": 1, "modu": "LORA",
        "datr": "SF7BW125", "rssi": -57, "lsnr": 9.5, "size": frame.len(),
        "data": base64::engine::general_purpose::STANDARD.encode(frame)}]});
    let mut d = vec![2, 0x12, 0x34, 0x00, 0xaa, 0x55, 0x5a, 0, 0, 0, 0, 1];
    d.extend_from_slice(rxpk.to_string().as_bytes());
    d
}

/// A LoRaWAN node with an ABP session, as central syncs it to a gateway (keys sealed for the
/// gateway): node `n` is device `[n; 16]`, DevEUI `70B3D57ED00000<n>`.
#[derive(Debug, Clone, Copy)]
pub struct AbpNode<'a> {
    /// Number of the node.
    pub n: u8,
    /// DevAddr, as printed.
    pub dev_addr: &'a str,
    /// NwkSKey, 32 hex digits.
    pub nwk_s_key: &'a str,
    /// AppSKey, 32 hex digits.
    pub app_s_key: &'a str,
    /// Payload codec.
    pub codec: &'a str,
    /// Its room.
    pub room: RoomId,
}

impl AbpNode<'_> {
    /// The synced record, keys sealed with `keys`.
    pub fn record(&self, keys: &Keys) -> anyhow::Result<DeviceRecord> {
        let id = DeviceId::from_bytes([self.n; 16]);
        let seal = |which: &str, hex: &str| -> anyhow::Result<_> {
            let context = neosens_protocol::sync::lorawan_key_context(id.to_bytes(), which);
            Ok(keys.seal(&bytes(hex)?, &context)?)
        };
        Ok(DeviceRecord {
            id,
            uid: WireUid::Lorawan(format!("70B3D57ED00000{:02X}", self.n).parse().context("DevEUI")?),
            device_type: DeviceTypeId::from_bytes([9; 16]),
            rooms: vec![self.room],
            enabled: true,
            config_body: "{}".into(),
            mqtt: None,
            login: format!("lorawan_{}", self.n),
            secret_hash: [0; 32],
            credentials_delivered: true,
            staged_secret: None,
            lorawan: Some(LorawanSession {
                dev_addr: self.dev_addr.parse().context("DevAddr")?,
                nwk_s_key: seal("nwk", self.nwk_s_key).context("sealing the NwkSKey (AES-256-GCM)")?,
                app_s_key: seal("app", self.app_s_key).context("sealing the AppSKey (AES-256-GCM)")?,
                f_cnt_up: 0,
                relax_f_cnt: false,
                codec: self.codec.into(),
            }),
        })
    }
}

/// The room of the self-test's nodes (base topic `u4/302`).
pub const NODE_ROOM: RoomId = RoomId::from_bytes([3; 16]);

/// A first sync at revision 1: the room [`NODE_ROOM`] and `nodes`.
pub fn room_snapshot(nodes: Vec<DeviceRecord>) -> SyncBatch {
    let room = Change::UpsertRoom(RoomRecord {
        id: NODE_ROOM,
        building: BuildingId::from_bytes([2; 16]),
        name: "302".into(),
        base_topic: "u4/302".into(),
    });
    let devices = nodes.into_iter().map(|n| Change::UpsertDevice(Box::new(n)));
    SyncBatch {
        revision: 1,
        kind: BatchKind::Snapshot,
        more: false,
        changes: std::iter::once(room).chain(devices).collect(),
    }
}

/// Runs every check in `dir` (which must be empty or new); returns one line per check passed.
pub fn run(dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut passed = vec![format!(
        "platform: {} {}, neosens-edge {}",
        std::env::consts::ARCH,
        std::env::consts::OS,
        env!("CARGO_PKG_VERSION")
    )];
    let keys = Keys::load_or_create(dir).context("creating the gateway's key files")?;
    let cache = Cache::open(dir).context("opening the redb database")?;
    let node = AbpNode {
        n: 1,
        dev_addr: "49BE7DF1",
        nwk_s_key: NWK_S_KEY,
        app_s_key: APP_S_KEY,
        codec: "hex",
        room: NODE_ROOM,
    }
    .record(&keys)?;
    cache.apply(&room_snapshot(vec![node]), 1).context("writing a sync batch to redb")?;
    ensure!(cache.revision()? == 1 && cache.device_count()? == 1, "the database did not keep the sync batch");
    passed.push("redb: database created, one sync batch committed and read back".into());

    let outbox = Outbox::open(cache.database(), Limits { max_messages: 100, max_age_ms: 60_000 })?;
    let stats = Arc::new(LoraStats::default());
    let pipeline = Pipeline::new(cache, Arc::new(keys), outbox.clone(), Arc::clone(&stats));
    let ack = pipeline.handle(&push_data(&bytes(VECTOR_1)?));
    ensure!(ack == Some([2, 0x12, 0x34, 0x01]), "no PUSH_ACK for a valid PUSH_DATA (got {ack:?})");
    let queued = outbox.peek(0, 10)?;
    let reading = queued
        .iter()
        .find(|(_, r)| r.topic == "u4/302/raw")
        .map(|(_, r)| serde_json::from_slice::<serde_json::Value>(&r.payload))
        .transpose()
        .context("the queued reading is not JSON")?;
    match reading {
        Some(r) if r["value"] == "74657374" && r["unitID"] == "70b3d57ed0000001" => {}
        other => bail!("vector 1 did not give the reading \"test\" from 70b3d57ed0000001: {other:?}"),
    }
    passed
        .push("LoRaWAN: vector 1 accepted (MIC, FCnt 2), decrypted to \"test\", queued in the outbox".into());
    outbox.acknowledge(&queued.iter().map(|(id, _)| *id).collect::<Vec<_>>())?;

    pipeline.handle(&push_data(&bytes(VECTOR_4)?));
    ensure!(outbox.peek(0, 10)?.is_empty(), "a frame with a broken MIC was accepted");
    let refused = stats.frames.lock().iter().filter(|(k, _)| k.contains("mic")).map(|(_, v)| *v).sum::<u64>();
    ensure!(refused == 1, "the broken MIC was not counted as such");
    passed.push("LoRaWAN: vector 4 (one byte changed) refused for its MIC".into());

    let lpp = codec::decode("cayenne_lpp", &bytes("03670110056700FF")?, None).context("Cayenne LPP")?;
    let values: Vec<f64> = lpp.iter().filter_map(|r| r.value.as_f64()).collect();
    ensure!(values == [27.2, 25.5], "Cayenne LPP decoded to {values:?}, not [27.2, 25.5]");
    passed.push("codec: Cayenne LPP 03670110056700FF = 27.2 °C, 25.5 °C".into());
    Ok(passed)
}

#[cfg(test)]
mod tests {
    #[test]
    fn passes_on_the_build_machine() {
        let dir = tempfile::tempdir().unwrap();
        let lines = super::run(dir.path()).unwrap();
        assert_eq!(lines.len(), 5, "{lines:?}");
    }
}
