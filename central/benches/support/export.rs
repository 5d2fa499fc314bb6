//! A synthetic 2016 export of any size (`neosens-central import-legacy` input), shared with the
//! edge agent's footprint benchmark.

#![allow(dead_code)] // each benchmark uses a part

use serde_json::json;

pub(crate) fn mac(i: u64) -> String {
    format!(
        "02:00:{:02X}:{:02X}:{:02X}:{:02X}",
        (i >> 24) & 0xff,
        (i >> 16) & 0xff,
        (i >> 8) & 0xff,
        i & 0xff
    )
}

pub(crate) fn password(i: u64) -> String {
    format!("{:08x}-0000-4000-8000-{:012x}", i, i)
}

/// A dumpdata export with `n` devices spread over 20 buildings × 25 rooms.
pub(crate) fn synthetic_export(n: u64) -> String {
    let mut rows =
        vec![json!({"model": "devices.type", "pk": 1, "fields": {"name": "esp32", "description": "bench"}})];
    for b in 0..20 {
        rows.push(json!({"model": "devices.building", "pk": b + 1, "fields": {"name": format!("B{b}"), "description": "", "topic": format!("b{b}")}}));
        for r in 0..25 {
            let pk = b * 25 + r + 1;
            rows.push(json!({"model": "devices.location", "pk": pk, "fields": {"building": b + 1, "room": format!("{r}"), "topic": format!("b{b}/{r}")}}));
        }
    }
    let modules = r#"[{"topic": "x", "modules": [{"module": "digital", "unit": "gpio", "params": [{"param": "subID", "value": "IRsensor"}, {"param": "input", "value": 4}, {"param": "front", "value": 1}]}]}]"#;
    for i in 0..n {
        rows.push(json!({"model": "devices.device", "pk": i + 1, "fields": {
            "mac": mac(i), "type": 1, "description": format!("device {i}"), "locations": [i % 500 + 1],
            "last_update": "2021-05-06T08:52:13Z", "last_status": "running", "enabled": true,
            "login": format!("senso_{}", mac(i).replace(':', "").to_lowercase()), "password": password(i),
            "modules": modules, "credentials_delivered": true, "mqtt_defaults": true, "mqtt_server": null, "mqtt_port": null}}));
    }
    serde_json::to_string(&rows).unwrap()
}

/// The base topic of device `i` in [`synthetic_export`].
pub(crate) fn topic_of(i: u64) -> String {
    let room = i % 500;
    format!("b{}/{}", room / 25, room % 25)
}
