//! The firmware service over a real store and image directory: uploads, campaigns and the
//! update path's decisions.

use std::sync::Arc;

use axum::body::Body;

use super::*;
use crate::firmware::campaigns::{CampaignAction, CampaignInput, CampaignTarget, WaveInput};
use neosens_protocol::ids::DeviceId;

use crate::firmware::FETCH_GRACE_MS;
use crate::model::CampaignState;
use crate::store::RedbStore;

fn esp_image(len: usize, seed: u8) -> Vec<u8> {
    let mut v: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(seed)).collect();
    v[0] = ESP_IMAGE_MAGIC;
    v
}

fn input(revision: u64) -> ImageInput {
    ImageInput {
        hardware: "esp32".into(),
        board: "neOSensor".into(),
        revision,
        notes: String::new(),
        signature: None,
    }
}

fn open(dir: &std::path::Path, config: FirmwareConfig) -> Firmware {
    let store: Arc<dyn Store> = Arc::new(RedbStore::open(dir).unwrap());
    Firmware::open(&dir.join("firmware"), store, config).unwrap()
}

fn campaign_input(image: &FirmwareImage, waves: &[(u8, Option<u32>)]) -> CampaignInput {
    CampaignInput {
        name: "spring".into(),
        image: hex::encode(&image.sha256),
        target: CampaignTarget::default(),
        waves: waves.iter().map(|&(until_percent, soak_s)| WaveInput { until_percent, soak_s }).collect(),
        failure_threshold_percent: None,
        deadline_s: None,
    }
}

fn devices(n: u8) -> Vec<[u8; 16]> {
    (1..=n).map(|i| [i; 16]).collect()
}

/// Tests run on a plain thread (store work may block there); uploads, which are async, in a
/// runtime of their own.
fn upload(firmware: &Firmware, input: ImageInput, content: Vec<u8>) -> Result<FirmwareImage, FirmwareError> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(firmware.upload(input, Body::from(content), "admin"))
}

/// A registry of `n` devices, the firmware service over its store, and one image uploaded:
/// (dir, registry, firmware, image, its file name, the devices).
fn fleet(
    n: u8,
) -> (tempfile::TempDir, Arc<crate::registry::Registry>, Firmware, FirmwareImage, String, Vec<[u8; 16]>) {
    let dir = tempfile::tempdir().unwrap();
    let (registry, _, ids) = crate::registry::test_registry(dir.path(), n);
    let firmware =
        Firmware::open(&dir.path().join("firmware"), registry.shared_store(), FirmwareConfig::default())
            .unwrap();
    let image = upload(&firmware, input(240101), esp_image(100, 3)).unwrap();
    let file = format!("{}.bin", hex::encode(&image.sha256));
    let devices = ids.iter().map(|d| d.to_bytes()).collect();
    (dir, registry, firmware, image, file, devices)
}

#[test]
fn uploads_are_checked_then_kept_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let firmware = open(dir.path(), FirmwareConfig { max_total_bytes: 2500, ..FirmwareConfig::default() });
    let image = upload(&firmware, input(240101), esp_image(1000, 3)).unwrap();
    assert_eq!(image.size, 1000);
    assert_eq!(
        firmware.image_file(&image),
        dir.path().join("firmware").join(format!("{}.bin", hex::encode(&image.sha256)))
    );
    // Same content, same revision, not an ESP image, over the quota, bad names.
    let again = upload(&firmware, input(240102), esp_image(1000, 3));
    assert!(matches!(&again, Err(FirmwareError::Conflict(m)) if m.contains("already image")), "{again:?}");
    assert!(firmware.image_file(&image).exists(), "a refused duplicate keeps the stored file");
    let same_revision = upload(&firmware, input(240101), esp_image(10, 5));
    assert!(matches!(same_revision, Err(FirmwareError::Conflict(_))), "{same_revision:?}");
    let not_esp = upload(&firmware, input(240103), vec![0x7F; 10]);
    assert!(
        matches!(&not_esp, Err(FirmwareError::Invalid { field: "content", message }) if message.contains("0xE9")),
        "{not_esp:?}"
    );
    let over = upload(&firmware, input(240104), esp_image(1600, 7));
    assert!(
        matches!(&over, Err(FirmwareError::Invalid { message, .. }) if message.contains("max_total_bytes")),
        "{over:?}"
    );
    let bad_name =
        upload(&firmware, ImageInput { board: "../etc".into(), ..input(240105) }, esp_image(10, 1));
    assert!(matches!(bad_name, Err(FirmwareError::Invalid { field: "board", .. })), "{bad_name:?}");
    // Any file for other hardware.
    let rpi = ImageInput {
        hardware: "rpi".into(),
        board: "sensors".into(),
        revision: 3,
        notes: "py".into(),
        signature: None,
    };
    upload(&firmware, rpi, b"#!/bin/sh\n".to_vec()).unwrap();
    let files = std::fs::read_dir(dir.path().join("firmware")).unwrap().count();
    assert_eq!(files, 3, "two images and incoming/, nothing of the refused uploads");
    drop(firmware);
    let reopened = open(dir.path(), FirmwareConfig::default());
    assert_eq!(reopened.images().len(), 2);
    assert_eq!(reopened.image(&hex::encode(&image.sha256)).unwrap(), image);
}

#[test]
fn waves_decide_who_gets_the_image_and_who_is_told_no_update() {
    let dir = tempfile::tempdir().unwrap();
    let firmware = open(dir.path(), FirmwareConfig::default());
    let image = upload(&firmware, input(240101), esp_image(500, 3)).unwrap();
    let file = format!("{}.bin", hex::encode(&image.sha256));
    let mac = Some("24:0A:C4:00:00:01".parse::<Mac>().unwrap());
    assert_eq!(
        firmware.check("esp32", "neOSensor", Some("neocampus.univ-tlse3.fr")),
        None,
        "no campaign: 404"
    );
    let c = firmware
        .create_campaign(campaign_input(&image, &[(10, None), (100, None)]), devices(30), "op")
        .unwrap();
    assert_eq!((c.reached(), c.devices.len()), (3, 30));
    let body = firmware.check("esp32", "neOSensor", Some("neocampus.univ-tlse3.fr")).unwrap();
    assert_eq!(
        body,
        format!(
            r#"{{"revision":240101,"image":"http://neocampus.univ-tlse3.fr/images/esp32/neOSensor/{file}"}}"#
        )
    );
    assert!(body.len() <= ota::MAX_CHECK_BODY);
    assert_eq!(firmware.check("esp8266", "neOSensor", Some("h")), None);
    assert_eq!(firmware.check("esp32", "neOSensor", Some("bad host/x")), None);
    let first = c.devices[0];
    let later = c.devices[29];
    let serve = firmware.download("esp32", "neOSensor", &file, mac, Some(first), None);
    assert!(
        matches!(&serve, Download::Serve { size: 500, md5, .. } if *md5 == hex::encode(&image.md5)),
        "{serve:?}"
    );
    assert!(matches!(
        firmware.download("esp32", "neOSensor", &file, mac, Some(later), None),
        Download::NoUpdate(_)
    ));
    assert!(matches!(firmware.download("esp32", "neOSensor", &file, mac, None, None), Download::NoUpdate(_)));
    assert_eq!(firmware.download("esp32", "neOSensor", &file, None, Some(first), None), Download::Forbidden);
    assert_eq!(firmware.download("esp32", "AirQuality", &file, mac, Some(first), None), Download::NotFound);
    assert_eq!(firmware.download("esp32", "neOSensor", "x.bin", mac, Some(first), None), Download::NotFound);
    let md5 = hex::encode(&image.md5).to_uppercase();
    assert!(matches!(
        firmware.download("esp32", "neOSensor", &file, mac, Some(first), Some(&md5)),
        Download::NoUpdate(_)
    ));
    // A second open campaign for the same hardware and board is refused.
    let second = firmware.create_campaign(campaign_input(&image, &[]), devices(2), "op");
    assert!(matches!(second, Err(FirmwareError::Conflict(_))), "{second:?}");
    // The image of an open campaign stays.
    let held = firmware.delete_image(&hex::encode(&image.sha256), "admin");
    assert!(matches!(held, Err(FirmwareError::Conflict(_))), "{held:?}");
    // Paused: nothing served, default.json 404. Advanced: everyone.
    firmware.act(c.id, CampaignAction::Pause, "op").unwrap();
    assert_eq!(firmware.check("esp32", "neOSensor", Some("h")), None);
    assert!(matches!(
        firmware.download("esp32", "neOSensor", &file, mac, Some(first), None),
        Download::NoUpdate(_)
    ));
    let refused = firmware.act(c.id, CampaignAction::Advance, "op");
    assert!(matches!(refused, Err(FirmwareError::Conflict(_))), "{refused:?}");
    firmware.act(c.id, CampaignAction::Resume, "op").unwrap();
    let all = firmware.act(c.id, CampaignAction::Advance, "op").unwrap();
    assert_eq!(all.reached(), 30);
    assert!(matches!(
        firmware.download("esp32", "neOSensor", &file, mac, Some(later), None),
        Download::Serve { .. }
    ));
    let over = firmware.act(c.id, CampaignAction::Advance, "op");
    assert!(matches!(over, Err(FirmwareError::Conflict(_))), "{over:?}");
    let cancelled = firmware.act(c.id, CampaignAction::Cancel, "op").unwrap();
    assert_eq!(cancelled.state, CampaignState::Cancelled);
    let whats: Vec<_> = cancelled.events.iter().map(|e| (e.by.as_str(), e.what.as_str())).collect();
    assert_eq!(
        whats[1..],
        [
            ("op", "wave 1 started (3 devices)"),
            ("op", "paused"),
            ("op", "resumed"),
            ("op", "wave 2 started (30 devices in all)"),
            ("op", "cancelled"),
        ]
    );
    firmware.delete_image(&hex::encode(&image.sha256), "admin").unwrap();
    assert!(!firmware.image_file(&image).exists());
    let stats = firmware.stats();
    assert_eq!((stats.images, stats.campaigns[3], stats.reached), (0, ("cancelled", 1), 0));
}

#[test]
fn a_soaked_wave_starts_the_next_by_itself_and_restarts_keep_the_campaign() {
    let dir = tempfile::tempdir().unwrap();
    let firmware = open(
        dir.path(),
        FirmwareConfig { public_url: Some("http://fw.example/".into()), ..FirmwareConfig::default() },
    );
    let image = upload(&firmware, input(240101), esp_image(100, 3)).unwrap();
    let c = ({
        firmware.create_campaign(
            campaign_input(&image, &[(1, Some(60)), (50, None), (100, None)]),
            devices(100),
            "op",
        )
    })
    .unwrap();
    assert_eq!(c.reached(), 1);
    let started = c.wave_started_at[0].millis();
    assert_eq!(firmware.start_soaked_waves(Timestamp(started + 59_000)).unwrap(), 0);
    assert_eq!(firmware.start_soaked_waves(Timestamp(started + 60_000)).unwrap(), 1);
    // The second wave has no soak time: it waits for an operator.
    assert_eq!(firmware.start_soaked_waves(Timestamp(started + 10_000_000)).unwrap(), 0);
    assert!(
        firmware
            .check("esp32", "neOSensor", None)
            .unwrap()
            .contains("\"http://fw.example/images/esp32/neOSensor/")
    );
    drop(firmware);
    let reopened = open(dir.path(), FirmwareConfig::default());
    let c = reopened.campaign(c.id).unwrap();
    assert_eq!(
        (c.reached(), c.state, c.events.last().unwrap().by.as_str()),
        (50, CampaignState::Running, "schedule")
    );
}

#[test]
fn campaign_inputs_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let firmware = open(dir.path(), FirmwareConfig::default());
    let image = FirmwareImage {
        sha256: [1; 32],
        md5: [0; 16],
        size: 1,
        hardware: "esp32".into(),
        board: "b".into(),
        revision: 1,
        notes: String::new(),
        uploaded_at: Timestamp(0),
        uploaded_by: String::new(),
    };
    for (waves, why) in [
        (vec![(10, None), (5, None), (100, None)], "until_percent must increase"),
        (vec![(10, None), (90, None)], "the last wave must reach 100"),
        (vec![(0, None), (100, None)], "until_percent must increase"),
        ((1..=11).map(|p| (p * 9, None)).collect(), "at most 10"),
    ] {
        let got = firmware.create_campaign(campaign_input(&image, &waves), devices(3), "op");
        assert!(
            matches!(&got, Err(FirmwareError::Invalid { field: "waves", message }) if message.contains(why)),
            "{got:?}"
        );
    }
    let none = firmware.create_campaign(campaign_input(&image, &[]), Vec::new(), "op");
    assert!(matches!(none, Err(FirmwareError::Invalid { field: "target", .. })), "{none:?}");
    let unknown = firmware.create_campaign(campaign_input(&image, &[]), devices(1), "op");
    assert!(matches!(unknown, Err(FirmwareError::Invalid { field: "image", .. })), "{unknown:?}");
}

fn status(firmware: u64, seen: Timestamp) -> crate::model::DeviceStatusRecord {
    crate::model::DeviceStatusRecord {
        last_seen: Some(seen),
        last_status: Some("running".into()),
        last_payload: Some(format!(r#"{{"status":"running","hardware":"esp32","firmware":{firmware}}}"#)),
    }
}

#[test]
fn progress_follows_fetches_and_statuses_and_a_failing_wave_halts_the_campaign() {
    let (dir, registry, firmware, image, file, devices) = fleet(10);
    let c =
        firmware.create_campaign(campaign_input(&image, &[(10, None), (100, None)]), devices, "op").unwrap();
    assert_eq!(firmware.queued_orders(), 1, "the canary's upgrade order waits for the sender");
    let canary = c.devices[0];
    let mac = Some("24:0a:c4:00:00:01".parse::<Mac>().unwrap());
    let now = Timestamp::now();
    let report = firmware.follow(&registry, now).unwrap();
    assert_eq!(report.progress_written, 0, "pending devices without news are not written");
    assert!(matches!(
        firmware.download("esp32", "neOSensor", &file, mac, Some(canary), None),
        Download::Serve { .. }
    ));
    assert_eq!(firmware.follow(&registry, now).unwrap().progress_written, 1);
    assert_eq!(firmware.stage_counts(&firmware.campaign(c.id).unwrap())[0].downloading, 1);
    let seen = Timestamp(now.millis() + 30_000);
    registry.put_statuses(vec![(DeviceId::from_bytes(canary), status(240101, seen))]).unwrap();
    firmware.follow(&registry, seen).unwrap();
    let c = firmware.campaign(c.id).unwrap();
    assert_eq!(firmware.stage_counts(&c)[0], StageCounts { done: 1, ..StageCounts::default() });
    // Wave 2 (9 devices): one fetches and still runs the old revision after the deadline.
    let c = firmware.act(c.id, CampaignAction::Advance, "op").unwrap();
    assert_eq!(firmware.queued_orders(), 10);
    let bad = c.devices[5];
    assert!(matches!(
        firmware.download("esp32", "neOSensor", &file, mac, Some(bad), None),
        Download::Serve { .. }
    ));
    firmware.follow(&registry, seen).unwrap();
    let later = Timestamp(seen.millis() + 601_000);
    registry.put_statuses(vec![(DeviceId::from_bytes(bad), status(231027, later))]).unwrap();
    let report = firmware.follow(&registry, later).unwrap();
    assert_eq!(report.halted, vec![c.id]);
    let halted = firmware.campaign(c.id).unwrap();
    assert_eq!(halted.state, CampaignState::Halted);
    assert_eq!(
        halted.events.last().unwrap().what,
        "halted: 1 of 9 devices of wave 2 failed (threshold 10 %)"
    );
    assert_eq!(firmware.check("esp32", "neOSensor", Some("h")), None, "a halted campaign is not offered");
    // Progress survives a restart.
    drop(firmware);
    let reopened =
        Firmware::open(&dir.path().join("firmware"), registry.shared_store(), FirmwareConfig::default())
            .unwrap();
    let counts = reopened.stage_counts(&reopened.campaign(c.id).unwrap());
    assert_eq!((counts[0].done, counts[1].failed, counts[1].pending), (1, 1, 8));
}

#[test]
fn a_campaign_whose_devices_all_run_the_image_finishes() {
    let (_dir, registry, firmware, image, _, devices) = fleet(2);
    let c = firmware.create_campaign(campaign_input(&image, &[]), devices.clone(), "op").unwrap();
    let seen = Timestamp::now();
    registry
        .put_statuses(devices.iter().map(|d| (DeviceId::from_bytes(*d), status(240102, seen))).collect())
        .unwrap();
    let report = firmware.follow(&registry, seen).unwrap();
    assert_eq!((report.progress_written, report.finished.clone()), (2, vec![c.id]));
    let c = firmware.campaign(c.id).unwrap();
    assert_eq!(
        (c.state, c.events.last().unwrap().what.as_str()),
        (CampaignState::Finished, "finished: all 2 devices run the image")
    );
    firmware.delete_image(&hex::encode(&image.sha256), "admin").unwrap();
}

#[test]
fn a_failed_board_is_told_no_update_until_a_resume_which_forgets_old_failures() {
    let (_dir, registry, firmware, image, file, devices) = fleet(10);
    let mut waves = campaign_input(&image, &[(10, Some(60)), (100, None)]);
    waves.failure_threshold_percent = Some(10);
    let c = firmware.create_campaign(waves, devices, "op").unwrap();
    let canary = c.devices[0];
    let mac = Some("24:0a:c4:00:00:01".parse::<Mac>().unwrap());
    assert!(matches!(
        firmware.download("esp32", "neOSensor", &file, mac, Some(canary), None),
        Download::Serve { .. }
    ));
    let fetched = Timestamp::now();
    firmware.follow(&registry, fetched).unwrap();
    // It boots its old image again: a status with the old revision after the fetch.
    let seen = Timestamp(fetched.millis() + FETCH_GRACE_MS + 1_000);
    registry.put_statuses(vec![(DeviceId::from_bytes(canary), status(231027, seen))]).unwrap();
    let report = firmware.follow(&registry, Timestamp::now()).unwrap();
    assert_eq!(report.halted, vec![c.id]);
    // Even running again, the failed board is not sent into the same failure; resumed, it is.
    firmware.act(c.id, CampaignAction::Resume, "op").unwrap();
    let report = firmware.follow(&registry, Timestamp::now()).unwrap();
    assert!(report.halted.is_empty(), "the failure before the resume was judged already");
    assert_eq!(firmware.campaign(c.id).unwrap().state, CampaignState::Running);
    assert!(matches!(
        firmware.download("esp32", "neOSensor", &file, mac, Some(canary), None),
        Download::Serve { .. }
    ));
    // Soak runs from the resume: the second wave waits its 60 s again.
    assert_eq!(firmware.start_soaked_waves(Timestamp(Timestamp::now().millis() + 30_000)).unwrap(), 0);
    assert_eq!(firmware.start_soaked_waves(Timestamp(Timestamp::now().millis() + 61_000)).unwrap(), 1);
    // Closing it by hand once every wave started.
    let finished = firmware.act(c.id, CampaignAction::Finish, "op").unwrap();
    assert_eq!(
        (finished.state, finished.events.last().unwrap().what.as_str()),
        (CampaignState::Finished, "finished by hand")
    );
    let again = firmware.act(c.id, CampaignAction::Finish, "op");
    assert!(matches!(again, Err(FirmwareError::Conflict(_))), "{again:?}");
}

#[test]
fn a_rolled_back_board_that_asks_again_has_failed_and_is_told_no_update() {
    let (_dir, registry, firmware, image, file, devices) = fleet(20);
    let mut input = campaign_input(&image, &[(100, None)]);
    input.failure_threshold_percent = Some(50);
    let c = firmware.create_campaign(input, devices, "op").unwrap();
    let board = c.devices[3];
    let mac = Some("24:0a:c4:00:00:04".parse::<Mac>().unwrap());
    let now = Timestamp::now();
    let first = Timestamp(now.millis() - 30_000);
    firmware.note_fetch(c.id, board, first);
    firmware.follow(&registry, first).unwrap();
    // The same board asks again 30 s later, having reported nothing.
    firmware.note_fetch(c.id, board, now);
    firmware.follow(&registry, now).unwrap();
    let (_, _, progress) = firmware
        .device_progress(&firmware.campaign(c.id).unwrap())
        .into_iter()
        .find(|(d, _, _)| *d == board)
        .unwrap();
    assert_eq!(progress.map(|p| p.stage), Some(crate::model::Stage::FailedOldRevision));
    assert!(matches!(
        firmware.download("esp32", "neOSensor", &file, mac, Some(board), None),
        Download::NoUpdate(_)
    ));
    assert_eq!(firmware.campaign(c.id).unwrap().state, CampaignState::Running, "1 of 20 is under 50 %");
}

#[test]
fn noted_fetches_and_queued_orders_stay_within_their_bounds() {
    let (_dir, _registry, firmware, image, _, _) = fleet(1);
    let device = |i: usize| {
        let mut d = [0u8; 16];
        d[..8].copy_from_slice(&(i as u64).to_be_bytes());
        d
    };
    let now = Timestamp::now();
    for i in 0..MAX_NOTED_FETCHES + 10 {
        firmware.note_fetch(1, device(i), now);
    }
    assert_eq!(firmware.inner.fetches.lock().len(), MAX_NOTED_FETCHES);
    let huge = Campaign {
        id: 7,
        name: "huge".into(),
        image: image.sha256,
        devices: (0..MAX_QUEUED_ORDERS + 10).map(device).collect(),
        waves: vec![crate::model::Wave { until_percent: 100, soak_s: None }],
        failure_threshold_percent: 10,
        state: CampaignState::Running,
        wave_started_at: vec![now],
        events: vec![],
        deadline_s: 600,
        resumed_at: None,
    };
    firmware.inner.orders.enqueue_wave(&huge);
    firmware.inner.orders.enqueue_wave(&huge);
    assert_eq!(firmware.queued_orders(), MAX_QUEUED_ORDERS);
}

#[test]
fn gateway_builds_carry_their_signature_and_only_they_do() {
    let dir = tempfile::tempdir().unwrap();
    let firmware = open(dir.path(), FirmwareConfig::default());
    let build = |revision, signature| ImageInput {
        hardware: "neosens-edge-aarch64".into(),
        board: "neosens-edge".into(),
        revision,
        notes: String::new(),
        signature,
    };
    let unsigned = upload(&firmware, build(1001, None), vec![0x7F; 64]);
    assert!(matches!(&unsigned, Err(FirmwareError::Invalid { field: "signature", .. })), "{unsigned:?}");
    let signed_esp =
        upload(&firmware, ImageInput { signature: Some([1; 64]), ..input(240101) }, esp_image(10, 3));
    assert!(matches!(&signed_esp, Err(FirmwareError::Invalid { field: "signature", .. })), "{signed_esp:?}");
    let image = upload(&firmware, build(1001, Some([7; 64])), vec![0x7F; 64]).unwrap();
    assert_eq!(firmware.signature(&image.sha256), Some([7; 64]));
    // Kept beside the file, read back at start; gone with the image.
    drop(firmware);
    let firmware = open(dir.path(), FirmwareConfig::default());
    assert_eq!(firmware.signature(&image.sha256), Some([7; 64]));
    firmware.delete_image(&hex::encode(&image.sha256), "admin").unwrap();
    assert_eq!(firmware.signature(&image.sha256), None);
    let sig_file = dir.path().join("firmware").join(format!("{}.sig", hex::encode(&image.sha256)));
    assert!(!sig_file.exists());
}
