use super::*;

#[test]
fn csv_reads_columns_in_any_order_quoted_json_and_empty_cells() {
    let text = "\u{feff}Rooms,uid,config,enabled,outdated_after_s\n\
                \"u4/302; u4/303\",24:0a:c4:00:00:01,\"[{\"\"zone\"\":1}]\",yes,900\n\
                ,24:0a:c4:00:00:02,,,default\n";
    let (rows, problems) = read_csv(text).unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(rows[0].0, 1);
    let first = &rows[0].1;
    assert_eq!(first.rooms, Some(vec!["u4/302".to_owned(), "u4/303".to_owned()]));
    assert_eq!(first.config, Some(serde_json::json!([{"zone": 1}])));
    assert_eq!(
        (first.enabled, first.outdated_after_s, first.device_type.as_deref()),
        (Some(true), Some(Some(900)), None)
    );
    let second = &rows[1].1;
    assert_eq!((second.rooms.as_ref(), second.enabled, second.outdated_after_s), (None, None, Some(None)));
}

#[test]
fn a_bad_cell_spoils_its_row_only() {
    let text = "uid,enabled,config,outdated_after_s\n\
                24:0a:c4:00:00:01,maybe,,\n\
                24:0a:c4:00:00:02,,{not json,\n\
                24:0a:c4:00:00:03,,,-5\n\
                ,true,,\n\
                24:0a:c4:00:00:05,true,,\n\
                24:0a:c4:00:00:06,true,,,extra,cells\n";
    let (rows, problems) = read_csv(text).unwrap();
    let fields: Vec<(usize, &str)> = problems.iter().map(|p| (p.row, p.field.as_str())).collect();
    assert_eq!(fields, [(1, "enabled"), (2, "config"), (3, "outdated_after_s"), (4, "uid")]);
    assert_eq!(problems[0].uid, "24:0a:c4:00:00:01");
    assert_eq!(rows.iter().map(|(n, _)| *n).collect::<Vec<_>>(), [5, 6]);
}

#[test]
fn a_file_without_a_usable_header_is_refused_whole() {
    for (text, says) in [
        ("", "no `uid` column"),
        ("mac,type\n24:0a:c4:00:00:01,esp32\n", "unknown column \"mac\""),
        ("uid,type,uid\n", "appears twice"),
        ("type,rooms\nesp32,u4/302\n", "no `uid` column"),
    ] {
        let e = read_csv(text).unwrap_err().to_string();
        assert!(e.contains(says), "{text:?}: {e}");
    }
    let binary = String::from_utf8_lossy(&[0xff, 0xfe, 0, 1, b'\n', b'"', b'x']).into_owned();
    assert!(read_csv(&binary).is_err());
}

#[test]
fn json_rows_read_alone_and_unknown_fields_are_row_errors() {
    let text = r#"[
        {"uid": "24:0a:c4:00:00:01", "type": "esp32", "rooms": ["u4/302"], "outdated_after_s": null},
        {"uid": "24:0a:c4:00:00:02", "colour": "red"},
        {"uid": 7},
        {"uid": "24:0a:c4:00:00:04", "outdated_after_s": "default", "enabled": false}
    ]"#;
    let (rows, problems) = read_json(text).unwrap();
    assert_eq!(rows.iter().map(|(n, _)| *n).collect::<Vec<_>>(), [1, 4]);
    assert_eq!(rows[0].1.outdated_after_s, Some(None));
    assert_eq!((rows[1].1.enabled, rows[1].1.outdated_after_s), (Some(false), Some(None)));
    assert_eq!(problems.iter().map(|p| p.row).collect::<Vec<_>>(), [2, 3]);
    assert!(problems[0].message.contains("colour"), "{problems:?}");
    assert!(read_json(r#"{"uid": "x"}"#).is_err());
    assert!(read_json("[1, 2").is_err());
}

#[test]
fn an_export_reads_back_as_the_same_rows() {
    let rows = vec![DeviceRow {
        uid: "24:0A:C4:00:00:01".into(),
        device_type: Some("esp32".into()),
        rooms: Some(vec!["u4/302".into(), "u4/303".into()]),
        description: Some("hall, \"north\" side\nsecond line".into()),
        enabled: Some(false),
        config: Some(serde_json::json!([{"zone": "a,b"}])),
        outdated_after_s: Some(Some(600)),
    }];
    let csv = String::from_utf8(write_csv(&rows).unwrap()).unwrap();
    let (back, problems) = read_csv(&csv).unwrap();
    assert!(problems.is_empty());
    assert_eq!(back[0].1, rows[0]);
    let (back, _) = read_json(&to_json(&rows).to_string()).unwrap();
    assert_eq!(back[0].1, rows[0]);
}

#[test]
fn files_past_the_row_bound_are_refused_before_they_are_held() {
    let csv = format!("uid\n{}", ",\n".repeat(MAX_IMPORT_ROWS + 1));
    assert!(read_csv(&csv).unwrap_err().to_string().contains("more than"));
    let json = format!("[{}{{}}]", "{},".repeat(MAX_IMPORT_ROWS));
    assert!(read_json(&json).unwrap_err().to_string().contains("more than"));
    let (_, problems) = read_csv(&format!("uid\n{}", ",\n".repeat(MAX_IMPORT_ROWS))).unwrap();
    assert_eq!(problems.len(), MAX_IMPORT_ROWS, "at the bound, each empty uid is a row error");
}
