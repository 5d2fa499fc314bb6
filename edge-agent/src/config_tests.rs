//! Tests of the agent's configuration: defaults, the template, overrides, errors.

use super::*;

#[test]
fn template_parses_back_to_the_values_it_shows() {
    assert_eq!(Config::from_toml(&template(&Config::default())).unwrap(), Config::default());
    let mut c = Config::default();
    c.central.url = Some("https://central.example:8443".into());
    c.http.bind = "127.0.0.1:8080".parse().unwrap();
    c.storage.data_dir = PathBuf::from("/var/lib/neosens-edge");
    c.mqtt.url = Some("mqtts://broker.example:8883".into());
    c.agent.mac = Some("b8:27:eb:00:00:01".into());
    c.agent.reboot_command = Some("systemctl reboot".into());
    c.outbox.max_messages = 10;
    c.lorawan.serial_port = Some(PathBuf::from("/dev/ttyACM0"));
    c.lorawan.serial_protocol = "hex_lines".into();
    c.firmware.cache_bytes = 1 << 20;
    c.update.public_key = Some("ab".repeat(32));
    c.update.health_deadline_s = 60;
    c.local_broker.enabled = Some(false);
    c.local_broker.advertise = Some("10.0.0.2:1883".into());
    c.local_broker.listen = "10.0.0.2:1884".parse().unwrap();
    c.lorawan.udp_bind = None;
    c.hal.sensors = vec!["sht3x@0x44".into()];
    assert_eq!(Config::from_toml(&template(&c)).unwrap(), c);
}

/// The keys central may set are commented out at their default (so that central's
/// settings apply to a gateway installed with the packaged file), and written out once set
/// here, even to the default value.
#[test]
fn keys_central_may_set_are_left_to_it_unless_set_here() {
    let packaged = template(&Config::default());
    assert!(packaged.contains("\n# status_period_s = 300\n"), "{packaged}");
    assert!(packaged.contains("\n# udp_bind = \"0.0.0.0:1700\"\n"));
    assert!(packaged.contains("\n# filter = "));
    assert!(Config::from_toml_pinned(&packaged).unwrap().pinned.is_empty());
    let mut c = Config::default();
    c.pinned.insert("agent.status_period_s".into());
    c.hal.sensor_period_s = 30;
    let text = template(&c);
    assert!(text.contains("\nstatus_period_s = 300\n") && text.contains("\nsensor_period_s = 30\n"));
    let pinned = Config::from_toml_pinned(&text).unwrap().pinned;
    assert_eq!(pinned, BTreeSet::from(["agent.status_period_s".into(), "hal.sensor_period_s".into()]));
    // "off" pins a device off over central's setting, and is written back as such.
    let off = "[lorawan]\nserial_port = \"off\"\n[hal]\nstatus_led = \"off\"\ni2c_bus = \"off\"\n";
    let c = Config::from_toml_pinned(off).unwrap();
    assert_eq!(
        (c.lorawan.serial_port.as_ref(), c.hal.status_led.as_ref(), c.hal.i2c_bus.as_ref()),
        (None, None, None)
    );
    assert_eq!(c.pinned.len(), 3);
    assert_eq!(Config::from_toml_pinned(&template(&c)).unwrap(), c);
    let err = Config::from_toml("[lorawan]\nudp_bind = \"1700\"\n").unwrap_err().to_string();
    assert!(err.contains("\"off\""), "{err}");
}

#[test]
fn mistakes_are_errors_that_say_where() {
    for (text, needle) in [
        ("[central]\nurl = 5\n", "url"),
        ("[http]\nbind = \"0.0.0.0\"\n", "bind"),
        ("[storage]\ndatadir = \"x\"\n", "datadir"),
    ] {
        let err = Config::from_toml(text).unwrap_err().to_string();
        assert!(err.contains(needle), "{text:?} gave {err}");
    }
}
