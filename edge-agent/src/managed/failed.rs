//! The record of central's settings the agent failed to start with
//! (`<data_dir>/central-settings.failed`: their SHA-256 and the error, one line). Central checks
//! what it can, but not what depends on the gateway itself — a listener address it does not
//! have, a port another program holds, a modem that is not plugged in, sensors without a bus in
//! its file. Without this record such settings would stop the agent at every start, and the
//! sync that could bring a correction never runs: a trip to the site.

use std::path::Path;

/// The file, in the data directory.
pub const FILE: &str = "central-settings.failed";

/// Set when this start failed with central's settings and recorded them: the process exits
/// to be started again (`update::launch::EXIT_RESTART`), which the launcher does not count
/// against a build on trial — the next start, with the local configuration, judges it.
pub static RESTART_WITHOUT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

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
    let line = text.trim_end();
    let (digest, reason) = line.split_once(' ').unwrap_or((line, ""));
    (digest.len() == 64 && digest.bytes().all(|c| c.is_ascii_hexdigit()))
        .then(|| Failed { digest: digest.to_owned(), reason: reason.to_owned() })
}

/// Drops the record, if any.
pub fn remove(dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(dir.join(FILE)) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
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
        write(dir.path(), &d, "\n").unwrap();
        assert_eq!(read(dir.path()).map(|f| f.digest), Some(d), "an empty reason is still a record");
        std::fs::write(dir.path().join(FILE), "not a digest\n").unwrap();
        assert_eq!(read(dir.path()), None);
        remove(dir.path()).unwrap();
        remove(dir.path()).unwrap();
        assert_eq!(read(dir.path()), None);
    }
}
