//! Mosquitto with its dynamic-security plug-in, central's login being the plug-in's admin.

use std::process::Command;

use neosens_runtime::testing::Mosquitto;

/// Central's broker login: the plug-in's admin.
pub(crate) const ADMIN_USER: &str = "neosens-central";
/// Its password.
pub(crate) const ADMIN_PASSWORD: &str = "dynsec-admin-password";

fn plugin() -> String {
    let out = Command::new("dpkg").args(["-L", "mosquitto"]).output().expect("dpkg");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.ends_with("mosquitto_dynamic_security.so"))
        .expect("Debian's mosquitto package ships the dynamic-security plug-in")
        .to_owned()
}

/// Mosquitto with dynamic security, its admin being central's login (`mosquitto_ctrl dynsec init`).
pub(crate) fn broker() -> Mosquitto {
    let dir = tempfile::tempdir().unwrap().keep();
    let file = dir.join("dynamic-security.json");
    let status = Command::new("mosquitto_ctrl")
        .args(["dynsec", "init", file.to_str().unwrap(), ADMIN_USER, ADMIN_PASSWORD])
        .stdout(std::process::Stdio::null())
        .status()
        .expect("mosquitto_ctrl (package mosquitto-clients)");
    assert!(status.success());
    Mosquitto::start(&format!(
        "allow_anonymous false\nplugin {}\nplugin_opt_config_file {}",
        plugin(),
        file.display()
    ))
}
