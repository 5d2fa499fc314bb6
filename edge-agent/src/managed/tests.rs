use std::collections::BTreeSet;

use super::*;

/// Central's settings in their wire form, from the JSON an operator would send.
fn wire(json: &str) -> Vec<u8> {
    serde_json::from_str::<ManagedConfig>(json).unwrap().to_wire()
}

fn central() -> Vec<u8> {
    wire(
        r#"{"log": {"filter": "debug"}, "agent": {"status_period_s": 60},
            "lorawan": {"udp_bind": "off", "serial_port": "/dev/ttyACM0"},
            "hal": {"sensors": ["sht3x@0x44"], "sensor_period_s": 30}}"#,
    )
}

#[test]
fn central_values_apply_where_the_file_leaves_them() {
    let file = "[agent]\nmac = \"b8:27:eb:00:00:01\"\n[hal]\nsensor_period_s = 120\n";
    let local = Config::from_toml_pinned(file).unwrap();
    assert_eq!(local.pinned, BTreeSet::from(["hal.sensor_period_s".to_owned()]), "mac is not central's");

    let Resolved { config, report, .. } = resolve(&local, Some(&central()));
    assert_eq!(config.log.filter, "debug");
    assert_eq!(config.agent.status_period_s, 60);
    assert_eq!(config.lorawan.udp_bind, None, "\"off\" turns the listener off");
    assert_eq!(config.lorawan.serial_port, Some(PathBuf::from("/dev/ttyACM0")));
    assert_eq!(config.hal.sensors, ["sht3x@0x44"]);
    assert_eq!(config.hal.sensor_period_s, 120, "the file wins");
    assert_eq!(config.agent.mac.as_deref(), Some("b8:27:eb:00:00:01"), "what central cannot set stays");
    assert_eq!(report.overridden, ["hal.sensor_period_s"]);
    assert_eq!(report.rejected, None);
    assert_eq!(report.effective.agent.status_period_s, Some(60));
    assert_eq!(report.effective.lorawan.udp_bind.as_deref(), Some(OFF));
    assert_eq!(report.effective.hal.status_led.as_deref(), Some(OFF));
    assert_eq!(report.effective.hal.sensor_period_s, Some(120));
    assert_eq!(
        report.effective.keys_set(),
        neosens_protocol::gateway_config::MANAGED_KEYS.to_vec(),
        "every key reported"
    );

    // Nothing from central: the local configuration as it is.
    for stored in [None, Some(&[][..])] {
        let Resolved { config, report, .. } = resolve(&local, stored);
        assert_eq!(config, local);
        assert!(report.overridden.is_empty() && report.rejected.is_none());
    }
}

#[test]
fn settings_the_agent_cannot_read_are_refused_whole() {
    let local = Config::default();
    let mut newer = central();
    newer[0] += 1;
    let mut out_of_range = ManagedConfig::default();
    out_of_range.agent.status_period_s = Some(1);
    for (wire, needle) in [
        (newer, "version"),
        (out_of_range.to_wire(), "agent.status_period_s"),
        (vec![1, 0xff, 0xff], "unreadable"),
    ] {
        let Resolved { config, report, .. } = resolve(&local, Some(&wire));
        assert_eq!(config, local, "{wire:?}");
        let reason = report.rejected.unwrap_or_else(|| panic!("{wire:?} accepted"));
        assert!(reason.contains(needle), "{wire:?}: {reason}");
    }
}

#[test]
fn the_keys_a_file_sets_are_read_by_the_toml_parser() {
    let file = "[agent]\nmac = \"b8:27:eb:00:00:01\"\nstatus_period_s = 60 # a comment\n\
                [hal]\nsensors = [\n  \"sht3x\",\n]\n[lorawan]\n# udp_bind = \"0.0.0.0:1700\"\n\
                adr = true\n[log]\nfilter = \"\"\"\ninfo\"\"\"\n";
    let keys: Vec<String> = Config::from_toml_pinned(file).unwrap().pinned.into_iter().collect();
    assert_eq!(keys, ["agent.status_period_s", "hal.sensors", "log.filter", "lorawan.adr"], "not comments");
    let inline = "agent = { status_period_s = 60 }\nlorawan.udp_bind = \"off\"\n";
    let keys: Vec<String> = Config::from_toml_pinned(inline).unwrap().pinned.into_iter().collect();
    assert_eq!(keys, ["agent.status_period_s", "lorawan.udp_bind"], "inline tables and dotted keys too");
    assert!(Config::from_toml_pinned("").unwrap().pinned.is_empty());
    assert!(Config::from_toml_pinned("[agent\n").is_err());
    // Every key central may set can be pinned.
    let all = "[log]\nfilter = \"info\"\n[agent]\nstatus_period_s = 60\n\
               [lorawan]\nudp_bind = \"off\"\nserial_port = \"/dev/ttyUSB0\"\nserial_baud = 9600\n\
               serial_protocol = \"rn2483\"\nadr = true\nadr_margin_db = 5\n\
               [hal]\nstatus_led = \"gpiochip0:17\"\nstatus_led_active_low = true\ni2c_bus = \"/dev/i2c-1\"\n\
               sensors = []\nsensor_period_s = 5\n";
    let keys: BTreeSet<String> = Config::from_toml_pinned(all).unwrap().pinned;
    let expected: BTreeSet<String> =
        neosens_protocol::gateway_config::MANAGED_KEYS.iter().map(|k| (*k).to_owned()).collect();
    assert_eq!(keys, expected);
}

#[test]
fn only_what_opens_at_start_restarts_the_agent() {
    let local = Config::default();
    let Resolved { report: before, .. } = resolve(&local, None);
    let Resolved { report: filter_only, .. } =
        resolve(&local, Some(&wire(r#"{"log": {"filter": "debug"}}"#)));
    assert!(!needs_restart(&before.effective, &filter_only.effective), "the filter changes in place");
    let Resolved { report: period, .. } =
        resolve(&local, Some(&wire(r#"{"agent": {"status_period_s": 60}}"#)));
    assert!(needs_restart(&before.effective, &period.effective));
    let Resolved { report: same, .. } =
        resolve(&local, Some(&wire(r#"{"agent": {"status_period_s": 300}}"#)));
    assert!(!needs_restart(&before.effective, &same.effective), "the value it runs with already");
}

#[test]
fn the_log_filter_follows_file_central_and_sighup() {
    let local = Config::default();
    let central: ManagedConfig = serde_json::from_str(r#"{"log": {"filter": "debug"}}"#).unwrap();
    log_filter::start(&local, Some(&central));
    assert_eq!(log_filter::installed().as_deref(), Some("debug"), "central's over the default");
    // SIGHUP with a file that now sets the filter: the file's.
    let mut pinned = Config::default();
    pinned.log.filter = "warn".into();
    pinned.pinned.insert("log.filter".into());
    assert_eq!(reload_filter(&pinned), "warn");
    // Central changes its filter meanwhile: the file's stays.
    let other: ManagedConfig = serde_json::from_str(r#"{"log": {"filter": "trace"}}"#).unwrap();
    log_filter::set_central(Some(&other));
    assert_eq!(log_filter::installed().as_deref(), Some("warn"));
    // The file leaves it to central again: central's, at the reload.
    assert_eq!(reload_filter(&local), "trace");
    log_filter::set_central(None);
    assert_eq!(log_filter::installed().as_deref(), Some(local.log.filter.as_str()), "central sets none now");
}

#[test]
fn settings_the_agent_failed_to_start_with_are_set_aside_until_they_change() {
    let dir = tempfile::tempdir().unwrap();
    let local = Config::default();
    let bytes = central();
    let stored = |failed| Stored { wire: Some(bytes.clone()), failed };
    assert_eq!(resolve_stored(&local, &stored(None)).config.agent.status_period_s, 60);
    let record = failed::Failed {
        digest: failed::digest(&bytes),
        origin: failed::Origin::current(),
        reason: "binding the packet-forwarder listener".into(),
    };
    failed::write(dir.path(), &record).unwrap();
    let set_aside = resolve_stored(&local, &stored(failed::read_current(dir.path())));
    assert_eq!(set_aside.config, local);
    let reason = set_aside.report.rejected.unwrap();
    assert!(reason.contains("failed to start") && reason.contains("packet-forwarder"), "{reason}");
    // Central changes them: tried again.
    let changed = Stored {
        wire: Some(wire(r#"{"agent": {"status_period_s": 90}}"#)),
        failed: failed::read(dir.path()),
    };
    assert_eq!(resolve_stored(&local, &changed).config.agent.status_period_s, 90);
}

#[tokio::test]
async fn failed_records_are_kept_only_while_they_explain_the_local_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let digest = failed::digest(&central());
    // Central's settings in force, the start fails: recorded for this build and boot.
    let applied = Settings { applied: Mutex::new(Some(digest.clone())), ..Settings::default() };
    let error = anyhow::anyhow!("binding the packet-forwarder listener 10.9.9.9:1700");
    failed_at_start(dir.path(), &applied, &error).await;
    let record = failed::read_current(dir.path()).unwrap();
    assert_eq!((record.digest.as_str(), record.origin), (digest.as_str(), failed::Origin::current()));
    // Running locally because of that record: kept.
    let set_aside = Settings { set_aside: true, ..Settings::default() };
    started(dir.path(), &set_aside).await;
    assert!(failed::read(dir.path()).is_some());
    // The local configuration failing too: dropped, the next start tries central's again.
    failed_at_start(dir.path(), &set_aside, &anyhow::anyhow!("disk full")).await;
    assert_eq!(failed::read(dir.path()), None);
    // A start with other settings: a record of older ones is stale.
    failed::write(dir.path(), &record_of(&digest)).unwrap();
    started(dir.path(), &Settings::default()).await;
    assert_eq!(failed::read(dir.path()), None);
    // Nothing of central's that opens at start in force: a failure is not theirs.
    failed_at_start(dir.path(), &Settings::default(), &error).await;
    assert_eq!(failed::read(dir.path()), None);
}

fn record_of(digest: &str) -> failed::Failed {
    failed::Failed { digest: digest.to_owned(), origin: failed::Origin::current(), reason: "old".into() }
}

#[test]
fn a_failed_start_is_blamed_on_central_only_for_what_opens_at_start() {
    let local = Config::default();
    let quiet = wire(r#"{"log": {"filter": "debug"}, "agent": {"status_period_s": 60}}"#);
    assert_eq!(blamed_on(&local, &resolve(&local, Some(&quiet)).config, Some(&quiet)), None);
    let opening = central();
    let config = resolve(&local, Some(&opening)).config;
    assert_eq!(blamed_on(&local, &config, Some(&opening)), Some(failed::digest(&opening)));
    // The file pins what central would open: nothing of central's opens, nothing blamed.
    let mut pinned = local.clone();
    for key in ["lorawan.udp_bind", "lorawan.serial_port", "hal.sensors"] {
        pinned.pinned.insert(key.into());
    }
    assert_eq!(blamed_on(&pinned, &resolve(&pinned, Some(&opening)).config, Some(&opening)), None);
}
