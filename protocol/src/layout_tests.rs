use super::*;
use crate::lpp::{Format, decode};

/// Readings as compared: kind, channel, value (debug text), unit; or a failure.
type Compared = Result<Vec<(String, u8, String, String)>, ()>;

/// The readings the built-in decoder gives, and those of the layout, side by side.
fn both(payload: &[u8]) -> (Compared, Compared) {
    let builtin: Result<Vec<_>, _> = decode(Format::Neocampus, payload)
        .map(|r| r.map(|r| (r.kind.into(), r.channel, alloc::format!("{:?}", r.value), r.units.into())))
        .collect();
    let layout = neocampus_lpp();
    let mine = layout.decode(payload).map(|v| {
        v.into_iter()
            .map(|(rec, ch, value)| (rec.kind.clone(), ch, alloc::format!("{value:?}"), rec.unit.clone()))
            .collect()
    });
    (builtin.map_err(|_| ()), mine.map_err(|_| ()))
}

/// Every type of the table, with values over their whole range: the layout reads what the
/// built-in decoder reads.
#[test]
fn the_neocampus_table_as_a_layout_reads_as_the_built_in_decoder() {
    neocampus_lpp().check().unwrap();
    let sizes = [
        (1, 1),
        (2, 1),
        (3, 1),
        (4, 1),
        (5, 2),
        (6, 1),
        (7, 2),
        (8, 1),
        (9, 1),
        (10, 2),
        (11, 1),
        (12, 9),
        (13, 3),
        (14, 3),
        (15, 3),
        (16, 1),
        (17, 4),
        (18, 4),
    ];
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state as u8
    };
    for (kind, size) in sizes {
        for round in 0..300 {
            let mut payload = alloc::vec![0x01, 0x00, kind, round as u8];
            payload.extend((0..size).map(|_| next()));
            let (builtin, mine) = both(&payload);
            assert!(builtin.is_ok(), "{payload:02x?}");
            assert_eq!(builtin, mine, "{payload:02x?}");
        }
    }
    // The public test of the deployed decoder (spec §6), whole.
    let public = crate::hex::decode("011E0539A501084408FF85090A0AFF70170D3C00CC", "payload").unwrap();
    let mut with_header = alloc::vec![0x01, 0x00];
    with_header.extend_from_slice(&public[2..]);
    let (builtin, mine) = both(&with_header);
    assert_eq!(builtin, mine);
}

/// Any bytes: both succeed or both fail, never a panic.
#[test]
fn malformed_payloads_fail_alike() {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for len in 0..40 {
        for _ in 0..50 {
            let payload: Vec<u8> = (0..len)
                .map(|i| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    if i == 0 { 1 } else { (state % 20) as u8 }
                })
                .collect();
            let (builtin, mine) = both(&payload);
            assert_eq!(builtin.is_ok(), mine.is_ok(), "{payload:02x?}");
            if builtin.is_ok() {
                assert_eq!(builtin, mine);
            }
        }
    }
    assert!(neocampus_lpp().decode(&[0x02, 0x00]).is_err(), "another header");
    assert!(neocampus_lpp().decode(&[]).is_err());
}

/// A Cayenne-style layout: channel first, big-endian, signed tenths.
#[test]
fn a_layout_of_another_shape() {
    let layout = PayloadLayout {
        header: alloc::vec![],
        skip: 0,
        order: RecordOrder::ChannelFirst,
        records: alloc::vec![LayoutRecord {
            type_byte: 0x67,
            kind: "temperature".into(),
            unit: "celsius".into(),
            encoding: Encoding::Int,
            size: 2,
            signed: true,
            little_endian: false,
            scale: 0.1,
            offset: 0.0,
            decimals: Some(1),
        }],
    };
    layout.check().unwrap();
    let readings = layout.decode(&[0x03, 0x67, 0xff, 0xd7]).unwrap();
    assert_eq!((readings[0].1, readings[0].2), (3, Value::Number(-4.1)));
    assert_eq!(
        layout.decode(&[0x03, 0x68, 0, 0]).unwrap_err(),
        DecodeError::UnknownType { kind: 0x68, offset: 1 }
    );
    assert_eq!(layout.decode(&[0x03, 0x67, 0xff]).unwrap_err(), DecodeError::Truncated(2));
}

#[test]
fn layouts_that_cannot_decode_are_refused() {
    let good = neocampus_lpp();
    let with = |f: &dyn Fn(&mut PayloadLayout)| {
        let mut l = good.clone();
        f(&mut l);
        l.check()
    };
    assert!(with(&|l| l.records.clear()).is_err());
    assert!(with(&|l| l.records[1].type_byte = 1).is_err(), "a type twice");
    assert!(with(&|l| l.records[0].size = 5).is_err());
    assert!(with(&|l| l.records[0].kind = "a/b".into()).is_err());
    assert!(with(&|l| l.records[0].scale = 0.0).is_err());
    assert!(with(&|l| l.records[0].scale = f64::NAN).is_err());
    assert!(with(&|l| l.records[0].decimals = Some(7)).is_err());
    assert!(with(&|l| l.header = alloc::vec![0; 9]).is_err());
    let many: Vec<LayoutRecord> =
        (0..=MAX_RECORDS as u8).map(|t| LayoutRecord { type_byte: t, ..good.records[0].clone() }).collect();
    assert!(with(&|l| l.records = many.clone()).is_err());
    // The JSON an admin writes: defaults for what it leaves out.
    let json = r#"{"order":"type_first","records":[{"type_byte":8,"kind":"temperature","size":1,"signed":true,"scale":0.25,"offset":20}]}"#;
    let l: PayloadLayout = serde_json::from_str(json).unwrap();
    assert_eq!(
        (l.records[0].encoding, l.records[0].little_endian, l.header.len()),
        (Encoding::Int, false, 0)
    );
    assert!(serde_json::from_str::<PayloadLayout>(r#"{"order":"x","records":[]}"#).is_err());
}
