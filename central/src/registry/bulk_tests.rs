use super::*;
use crate::registry::test_registry;
use crate::registry::test_support::fingerprint;

fn row(uid: &str) -> DeviceRow {
    DeviceRow {
        uid: uid.into(),
        device_type: Some("esp32".into()),
        rooms: Some(vec!["U4/302".into()]),
        description: Some("imported".into()),
        enabled: None,
        config: None,
        outdated_after_s: None,
    }
}

fn errors(report: &BulkReport) -> Vec<(usize, String)> {
    report
        .details
        .iter()
        .filter_map(|r| match &r.outcome {
            RowOutcome::Error { field, .. } => Some((r.row, field.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_dry_run_reports_every_row_and_changes_nothing_then_the_import_lands_the_good_rows() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, _, _) = test_registry(dir.path(), 1);
    let mut rows: Vec<DeviceRow> = (0..20).map(|i| row(&format!("24:0a:c4:01:00:{i:02x}"))).collect();
    rows[3].uid = "not a mac".into();
    rows[7].rooms = Some(vec!["u4/999".into()]);
    rows[11].config = Some(serde_json::json!({"not": "zones"}));
    rows[15].uid = rows[14].uid.clone();
    rows.push(DeviceRow { description: Some("renamed".into()), ..row("24:0a:c4:00:00:00") });
    let before = fingerprint(&registry);
    let dry = registry.import_devices(&rows, true).unwrap();
    assert_eq!(fingerprint(&registry), before, "a dry run writes nothing");
    assert_eq!((dry.dry_run, dry.rows, dry.created, dry.updated, dry.failed), (true, 21, 16, 1, 4));
    assert_eq!(
        errors(&dry),
        [(4, "uid".into()), (8, "rooms[0]".into()), (12, "config".into()), (16, "uid".into())]
    );
    let update = dry.details.iter().find(|r| r.row == 21).unwrap();
    assert_eq!(update.outcome, RowOutcome::Update(vec!["description"]));

    let real = registry.import_devices(&rows, false).unwrap();
    assert_eq!((real.dry_run, real.created, real.updated, real.failed), (false, 16, 1, 4));
    assert_eq!(registry.device_count(), 17);
    let again = registry.import_devices(&rows, false).unwrap();
    assert_eq!((again.created, again.updated, again.unchanged, again.failed), (0, 0, 17, 4));
}

#[test]
fn an_export_imports_back_unchanged_and_every_import_is_in_the_audit_trail() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, _, _) = test_registry(dir.path(), 3);
    let rows = registry.export_devices(&DeviceQuery::default()).unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0].rooms, Some(vec!["u4/302".to_owned()]));
    assert_eq!(rows[0].device_type.as_deref(), Some("esp32"));
    let report = registry.import_devices(&rows, false).unwrap();
    assert_eq!((report.unchanged, report.created, report.updated), (3, 0, 0));
    let edited: Vec<DeviceRow> =
        rows.iter().map(|r| DeviceRow { enabled: Some(false), ..r.clone() }).collect();
    assert_eq!(registry.import_devices(&edited, false).unwrap().updated, 3);
    let page = registry.audit_page(None, 10, &|e| e.action == "device.import").unwrap();
    assert_eq!(page.entries.len(), 3);
    assert_eq!(page.entries[0].changes[0].field, "enabled");
}

#[test]
fn a_file_longer_than_a_transaction_lands_in_chunks_and_a_uid_twice_is_caught_across_them() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, _, _) = test_registry(dir.path(), 0);
    let mut rows: Vec<DeviceRow> =
        (0..IMPORT_CHUNK + 2).map(|i| row(&format!("24:0a:c4:02:{:02x}:{:02x}", i >> 8, i & 0xff))).collect();
    rows.push(rows[0].clone());
    let before = registry.revision();
    let report = registry.import_devices(&rows, false).unwrap();
    assert_eq!((report.created, report.failed), (IMPORT_CHUNK + 2, 1));
    assert_eq!(errors(&report), [(IMPORT_CHUNK + 3, "uid".into())]);
    assert_eq!(registry.revision() - before, (IMPORT_CHUNK + 2) as u64);
    assert_eq!(registry.device_count(), IMPORT_CHUNK + 2);
}

#[test]
fn two_uids_with_one_default_login_are_caught_in_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, _, _) = test_registry(dir.path(), 0);
    // UUID logins keep 24 hex digits: these two would share `dev_000000000000000000000000`.
    let rows = vec![row("00000000-0000-4000-8000-000000000001"), row("00000000-0000-4000-8000-000000000002")];
    let report = registry.import_devices(&rows, false).unwrap();
    assert_eq!((report.created, errors(&report)), (1, vec![(2, "uid".into())]));
}

#[test]
fn too_many_rows_are_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, _, _) = test_registry(dir.path(), 0);
    let rows = vec![DeviceRow::default(); MAX_IMPORT_ROWS + 1];
    assert!(matches!(registry.import_devices(&rows, true), Err(RegistryError::Invalid { .. })));
}
