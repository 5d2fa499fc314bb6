//! The record of central's settings the agent failed to start with
//! (`<data_dir>/central-settings.failed`: their SHA-256 and the error, one line). Central checks
//! what it can, but not what depends on the gateway itself — a listener address it does not
//! have, a port another program holds, a modem that is not plugged in, sensors without a bus in
//! its file. Without this record such settings would stop the agent at every start, and the
//! sync that could bring a correction never runs: a trip to the site.

use std::path::Path;

/// The file, in the data directory.
pub const FILE: &str = "central-settings.failed";

/// Settings the agent failed to start with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    /// SHA-256 of their wire form, hex.
    pub digest: String,
    /// The error, as logged.
    pub reason: String,
}

/// The SHA-256 of a wire form, hex.
pub fn digest(wire: &[u8]) -> String {
    neosens_protocol::hex::encode(ring::digest::digest(&ring::digest::SHA256, wire).as_ref())
}

/// The record, if any (an unreadable one is no record: the settings are tried again).
pub fn read(dir: &Path) -> Option<Failed> {
    let text = std::fs::read_to_string(dir.join(FILE)).ok()?;
    let (digest, reason) = text.trim_end().split_once(' ')?;
    (digest.len() == 64 && digest.bytes().all(|c| c.is_ascii_hexdigit()))
        .then(|| Failed { digest: digest.to_owned(), reason: reason.to_owned() })
}

/// Records settings as failed (written whole, then renamed into place).
pub fn write(dir: &Path, digest: &str, reason: &str) -> std::io::Result<()> {
    // One line: the error's own line breaks would end the record early.
    let reason: String = reason.chars().take(1024).map(|c| if c.is_control() { ' ' } else { c }).collect();
    let tmp = dir.join(format!("{FILE}.tmp"));
    std::fs::write(&tmp, format!("{digest} {reason}\n"))?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, dir.join(FILE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_read_back_and_a_damaged_one_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()), None);
        let d = digest(b"\x01settings");
        write(dir.path(), &d, "binding 10.9.9.9:1700:\ncannot assign").unwrap();
        let record = read(dir.path()).unwrap();
        assert_eq!(record.digest, d);
        assert_eq!(record.reason, "binding 10.9.9.9:1700: cannot assign");
        std::fs::write(dir.path().join(FILE), "not a digest\n").unwrap();
        assert_eq!(read(dir.path()), None);
    }
}
