//! Fleet work in PostgreSQL: bulk operations, firmware image records, campaigns, their
//! progress and the firmware census.

use std::collections::BTreeMap;
use std::time::Instant;

use neosens_protocol::hex;

use super::extras::big;
use super::{PgStore, from_json, json, pg_error, uuid};
use crate::model::{BulkOperation, Campaign, EntityKind, FirmwareImage, RevisionCount};
use crate::store::{BulkStore, CampaignProgress, FirmwareStore, KEPT_BULK_OPERATIONS, StoreError};

impl PgStore {
    /// Runs one write statement in its own timed transaction.
    fn write_one(
        &self,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<(), StoreError> {
        let started = Instant::now();
        let mut conn = self.connection()?;
        let mut txn = conn.transaction().map_err(pg_error)?;
        txn.execute(sql, params).map_err(pg_error)?;
        self.commit(txn, started)
    }

    /// Reads `(key, body)` rows and decodes the bodies.
    fn read_bodies<T: serde::de::DeserializeOwned>(
        &self,
        sql: &str,
        what: &str,
    ) -> Result<Vec<T>, StoreError> {
        let mut conn = self.connection()?;
        let rows = conn.query(sql, &[]).map_err(pg_error)?;
        rows.iter()
            .enumerate()
            .map(|(n, row)| from_json(row, 0, EntityKind::Device, format!("{what} #{n}")))
            .collect()
    }
}

impl BulkStore for PgStore {
    fn bulk_operations(&self) -> Result<Vec<BulkOperation>, StoreError> {
        self.read_bodies("SELECT body FROM bulk_operations ORDER BY id", "bulk operation")
    }

    fn put_bulk_operation(&self, operation: &BulkOperation) -> Result<(), StoreError> {
        let started = Instant::now();
        let mut conn = self.connection()?;
        let mut txn = conn.transaction().map_err(pg_error)?;
        txn.execute(
            "INSERT INTO bulk_operations (id, body) VALUES ($1, $2) \
             ON CONFLICT (id) DO UPDATE SET body = excluded.body",
            &[&big(operation.id), &json(operation)?],
        )
        .map_err(pg_error)?;
        let oldest_kept = big(operation.id.saturating_sub(KEPT_BULK_OPERATIONS - 1));
        txn.execute("DELETE FROM bulk_operations WHERE id < $1", &[&oldest_kept]).map_err(pg_error)?;
        self.commit(txn, started)
    }
}

impl FirmwareStore for PgStore {
    fn firmware_images(&self) -> Result<Vec<FirmwareImage>, StoreError> {
        self.read_bodies("SELECT body FROM firmware_images ORDER BY sha256", "firmware image")
    }

    fn put_firmware_image(&self, image: &FirmwareImage) -> Result<(), StoreError> {
        self.write_one(
            "INSERT INTO firmware_images (sha256, body) VALUES ($1, $2) \
             ON CONFLICT (sha256) DO UPDATE SET body = excluded.body",
            &[&image.sha256.as_slice(), &json(image)?],
        )
    }

    fn delete_firmware_image(&self, sha256: [u8; 32]) -> Result<(), StoreError> {
        self.write_one("DELETE FROM firmware_images WHERE sha256 = $1", &[&sha256.as_slice()])
    }

    fn campaigns(&self) -> Result<Vec<Campaign>, StoreError> {
        self.read_bodies("SELECT body FROM campaigns ORDER BY id", "campaign")
    }

    fn put_campaign(&self, campaign: &Campaign) -> Result<(), StoreError> {
        self.write_one(
            "INSERT INTO campaigns (id, body) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET body = excluded.body",
            &[&big(campaign.id), &json(campaign)?],
        )
    }

    fn campaign_progress(&self) -> Result<Vec<CampaignProgress>, StoreError> {
        let mut conn = self.connection()?;
        let rows = conn
            .query("SELECT campaign, device, body FROM campaign_progress ORDER BY campaign, device", &[])
            .map_err(pg_error)?;
        rows.iter()
            .map(|row| {
                let campaign: i64 = row.get(0);
                let device: uuid::Uuid = row.get(1);
                let key = format!("campaign {campaign} device {}", hex::encode(device.as_bytes()));
                let progress = from_json(row, 2, EntityKind::Device, key)?;
                Ok((u64::try_from(campaign).unwrap_or(0), *device.as_bytes(), progress))
            })
            .collect()
    }

    fn put_campaign_progress(&self, progress: &[CampaignProgress]) -> Result<(), StoreError> {
        if progress.is_empty() {
            return Ok(());
        }
        let mut last = BTreeMap::new();
        for (campaign, device, p) in progress {
            last.insert((*campaign, *device), p);
        }
        let (mut campaigns, mut devices, mut bodies) = (Vec::new(), Vec::new(), Vec::new());
        for ((campaign, device), p) in last {
            campaigns.push(big(campaign));
            devices.push(uuid(device));
            bodies.push(json(p)?);
        }
        self.write_one(
            "INSERT INTO campaign_progress (campaign, device, body) \
             SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::json[]) \
             ON CONFLICT (campaign, device) DO UPDATE SET body = excluded.body",
            &[&campaigns, &devices, &bodies],
        )
    }

    fn firmware_census(&self) -> Result<Vec<(i64, Vec<RevisionCount>)>, StoreError> {
        let mut conn = self.connection()?;
        let rows =
            conn.query("SELECT at_ms, body FROM firmware_census ORDER BY at_ms", &[]).map_err(pg_error)?;
        rows.iter()
            .map(|row| {
                let at: i64 = row.get(0);
                Ok((at, from_json(row, 1, EntityKind::Device, format!("firmware census {at}"))?))
            })
            .collect()
    }

    fn put_firmware_census(
        &self,
        at: i64,
        counts: &[RevisionCount],
        forget_before: i64,
    ) -> Result<(), StoreError> {
        let started = Instant::now();
        let mut conn = self.connection()?;
        let mut txn = conn.transaction().map_err(pg_error)?;
        txn.execute(
            "INSERT INTO firmware_census (at_ms, body) VALUES ($1, $2) \
             ON CONFLICT (at_ms) DO UPDATE SET body = excluded.body",
            &[&at, &json(&counts)?],
        )
        .map_err(pg_error)?;
        txn.execute("DELETE FROM firmware_census WHERE at_ms < $1", &[&forget_before]).map_err(pg_error)?;
        self.commit(txn, started)
    }
}
