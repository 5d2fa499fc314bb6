//! Firmware image records and campaigns in the redb store (schema 6). The images' content lives
//! in files beside the database (see [`crate::firmware`]); these tables hold what describes it.

use std::time::Instant;

use neosens_protocol::hex;
use redb::ReadableTable;
use serde::de::DeserializeOwned;

use super::redb_store::{
    CAMPAIGN_PROGRESS, CAMPAIGNS, FIRMWARE_CENSUS, FIRMWARE_IMAGES, RedbStore, backend, begin_read,
    begin_write, encode,
};
use super::{CampaignProgress, FirmwareStore, StoreError};
use crate::model::{Campaign, FirmwareImage, RevisionCount};

fn decode<T: DeserializeOwned>(what: &str, key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    postcard::from_bytes(bytes).map_err(|e| StoreError::Backend(format!("{what} {key} does not decode: {e}")))
}

impl FirmwareStore for RedbStore {
    fn firmware_images(&self) -> Result<Vec<FirmwareImage>, StoreError> {
        let txn = begin_read(self.database()).map_err(backend)?;
        let table = txn.open_table(FIRMWARE_IMAGES).map_err(backend)?;
        let mut out = Vec::new();
        for item in table.iter().map_err(backend)? {
            let (k, v) = item.map_err(backend)?;
            out.push(decode("firmware image", &hex::encode(&k.value()), v.value())?);
        }
        Ok(out)
    }

    fn put_firmware_image(&self, image: &FirmwareImage) -> Result<(), StoreError> {
        let started = Instant::now();
        let txn = begin_write(self.database()).map_err(backend)?;
        txn.open_table(FIRMWARE_IMAGES)
            .map_err(backend)?
            .insert(image.sha256, encode(image)?.as_slice())
            .map_err(backend)?;
        self.commit(txn, started)
    }

    fn delete_firmware_image(&self, sha256: [u8; 32]) -> Result<(), StoreError> {
        let started = Instant::now();
        let txn = begin_write(self.database()).map_err(backend)?;
        txn.open_table(FIRMWARE_IMAGES).map_err(backend)?.remove(sha256).map_err(backend)?;
        self.commit(txn, started)
    }

    fn campaigns(&self) -> Result<Vec<Campaign>, StoreError> {
        let txn = begin_read(self.database()).map_err(backend)?;
        let table = txn.open_table(CAMPAIGNS).map_err(backend)?;
        let mut out = Vec::new();
        for item in table.iter().map_err(backend)? {
            let (k, v) = item.map_err(backend)?;
            out.push(decode("campaign", &k.value().to_string(), v.value())?);
        }
        Ok(out)
    }

    fn put_campaign(&self, campaign: &Campaign) -> Result<(), StoreError> {
        let started = Instant::now();
        let txn = begin_write(self.database()).map_err(backend)?;
        txn.open_table(CAMPAIGNS)
            .map_err(backend)?
            .insert(campaign.id, encode(campaign)?.as_slice())
            .map_err(backend)?;
        self.commit(txn, started)
    }

    fn campaign_progress(&self) -> Result<Vec<CampaignProgress>, StoreError> {
        let txn = begin_read(self.database()).map_err(backend)?;
        let table = txn.open_table(CAMPAIGN_PROGRESS).map_err(backend)?;
        let mut out = Vec::new();
        for item in table.iter().map_err(backend)? {
            let (k, v) = item.map_err(backend)?;
            let (campaign, device) = k.value();
            out.push((campaign, device, decode("campaign progress", &campaign.to_string(), v.value())?));
        }
        Ok(out)
    }

    fn put_campaign_progress(&self, progress: &[CampaignProgress]) -> Result<(), StoreError> {
        let started = Instant::now();
        let txn = begin_write(self.database()).map_err(backend)?;
        {
            let mut table = txn.open_table(CAMPAIGN_PROGRESS).map_err(backend)?;
            for (campaign, device, p) in progress {
                table.insert((*campaign, *device), encode(p)?.as_slice()).map_err(backend)?;
            }
        }
        self.commit(txn, started)
    }

    fn firmware_census(&self) -> Result<Vec<(i64, Vec<RevisionCount>)>, StoreError> {
        let txn = begin_read(self.database()).map_err(backend)?;
        let table = txn.open_table(FIRMWARE_CENSUS).map_err(backend)?;
        let mut out = Vec::new();
        for item in table.iter().map_err(backend)? {
            let (k, v) = item.map_err(backend)?;
            out.push((k.value(), decode("firmware census", &k.value().to_string(), v.value())?));
        }
        Ok(out)
    }

    fn put_firmware_census(
        &self,
        at: i64,
        counts: &[RevisionCount],
        forget_before: i64,
    ) -> Result<(), StoreError> {
        let started = Instant::now();
        let txn = begin_write(self.database()).map_err(backend)?;
        {
            let mut table = txn.open_table(FIRMWARE_CENSUS).map_err(backend)?;
            table.insert(at, encode(&counts)?.as_slice()).map_err(backend)?;
            table.retain(|k, _| k >= forget_before).map_err(backend)?;
        }
        self.commit(txn, started)
    }
}

#[cfg(test)]
mod tests {
    use crate::model::{Campaign, CampaignState, FirmwareImage, Timestamp, Wave};
    use crate::store::{FirmwareStore, RedbStore};

    /// The stored bytes of both records, pinned: a change here needs a schema step
    /// (`disk_format_tests.rs` explains how).
    #[test]
    fn stored_bytes_are_pinned() {
        let image = FirmwareImage {
            sha256: [0xAB; 32],
            md5: [0xCD; 16],
            size: 300,
            hardware: "esp32".into(),
            board: "neOSensor".into(),
            revision: 240101,
            notes: "n".into(),
            uploaded_at: Timestamp(1_620_291_133_394),
            uploaded_by: "admin".into(),
        };
        let campaign = Campaign {
            id: 2,
            name: "c".into(),
            image: [0xAB; 32],
            devices: vec![[1; 16]],
            waves: vec![
                Wave { until_percent: 10, soak_s: Some(3600) },
                Wave { until_percent: 100, soak_s: None },
            ],
            failure_threshold_percent: 10,
            state: CampaignState::Halted,
            wave_started_at: vec![Timestamp(1_620_291_133_394)],
            events: vec![crate::model::CampaignEvent {
                at: Timestamp(5),
                by: "op".into(),
                what: "paused".into(),
            }],
            deadline_s: 900,
            resumed_at: Some(Timestamp(9)),
        };
        let progress = crate::model::DeviceProgress {
            stage: crate::model::Stage::FailedDeadline,
            since: Timestamp(7),
            fetched_at: Some(Timestamp(6)),
            reported: Some(231027),
            checked_seen: None,
        };
        let hex = |v: &[u8]| neosens_protocol::hex::encode(v);
        assert_eq!(hex(&postcard::to_allocvec(&image).unwrap()), IMAGE_BYTES);
        assert_eq!(hex(&postcard::to_allocvec(&campaign).unwrap()), CAMPAIGN_BYTES);
        assert_eq!(hex(&postcard::to_allocvec(&progress).unwrap()), PROGRESS_BYTES);
    }

    const IMAGE_BYTES: &str = "ababababababababababababababababababababababababababababababababcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdac02056573703332096e654f53656e736f72e5d30e016ea4ff848ea85e0561646d696e";
    const CAMPAIGN_BYTES: &str = "020163abababababababababababababababababababababababababababababababab0101010101010101010101010101010101020a01901c64000a0201a4ff848ea85e010a026f700670617573656484070112";

    const PROGRESS_BYTES: &str = "030e010c01f38c0e00";

    #[test]
    fn images_and_campaigns_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let image = FirmwareImage {
            sha256: [7; 32],
            md5: [8; 16],
            size: 1000,
            hardware: "esp32".into(),
            board: "neOSensor".into(),
            revision: 240101,
            notes: String::new(),
            uploaded_at: Timestamp(1),
            uploaded_by: "admin".into(),
        };
        let campaign = Campaign {
            id: 3,
            name: "spring".into(),
            image: [7; 32],
            devices: vec![[1; 16]],
            waves: vec![Wave { until_percent: 100, soak_s: Some(60) }],
            failure_threshold_percent: 20,
            state: CampaignState::Paused,
            wave_started_at: vec![Timestamp(2)],
            events: vec![],
            deadline_s: 60,
            resumed_at: None,
        };
        {
            let store = RedbStore::open(dir.path()).unwrap();
            store.put_firmware_image(&image).unwrap();
            store.put_firmware_image(&FirmwareImage { sha256: [9; 32], ..image.clone() }).unwrap();
            store.delete_firmware_image([9; 32]).unwrap();
            store.put_campaign(&campaign).unwrap();
        }
        let store = RedbStore::open(dir.path()).unwrap();
        assert_eq!(store.firmware_images().unwrap(), vec![image]);
        assert_eq!(store.campaigns().unwrap(), vec![campaign]);
    }
}
