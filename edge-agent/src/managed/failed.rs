//! The record of central's settings the agent failed to start with
//! (`<data_dir>/central-settings.failed`: their SHA-256, the build and the boot it happened in,
//! and the error, one line). Central checks what it can, but not what depends on the gateway
//! itself — a listener address it does not have, a port another program holds, a modem that is
//! not plugged in, sensors without a bus in its file. Without this record such settings would
//! stop the agent at every start, and the sync that could bring a correction never runs: a trip
//! to the site.
//!
//! The record holds in the boot that wrote it, for its build and newer ones: an older build (the
//! one a failed trial rolls back to, which may well run them) tries the settings itself, a newer
//! one on trial is judged with the local configuration (not failed for settings it was never
//! offered with a chance), and the next boot tries them again (a modem enumerated late, a
//! network address that came later).

use std::path::Path;

/// The file, in the data directory.
pub const FILE: &str = "central-settings.failed";

/// Settings the agent failed to start with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    /// SHA-256 of their wire form, hex.
    pub digest: String,
    /// Where it happened.
    pub origin: Origin,
    /// The error, as logged.
    pub reason: String,
}

/// The build and the boot a start happened in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The build's revision (`update::running_revision`).
    pub revision: u64,
    /// The kernel's boot id (`-` where it cannot be read).
    pub boot: String,
}

impl Origin {
    /// This process's.
    pub fn current() -> Self {
        let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .ok()
            .map(|b| b.trim().to_owned())
            .filter(|b| !b.is_empty() && !b.contains(char::is_whitespace))
            .unwrap_or_else(|| "-".to_owned());
        Origin { revision: crate::update::running_revision(), boot }
    }
}

/// The SHA-256 of a wire form, hex.
pub fn digest(wire: &[u8]) -> String {
    neosens_protocol::hex::encode(ring::digest::digest(&ring::digest::SHA256, wire).as_ref())
}

/// The record, if any (an unreadable one is no record: the settings are tried again).
pub fn read(dir: &Path) -> Option<Failed> {
    let text = std::fs::read_to_string(dir.join(FILE)).ok()?;
    let mut fields = text.trim_end().splitn(4, ' ');
    let digest = fields.next()?;
    let revision = fields.next()?.parse().ok()?;
    let boot = fields.next()?;
    let reason = fields.next().unwrap_or("");
    (digest.len() == 64 && digest.bytes().all(|c| c.is_ascii_hexdigit()) && !boot.is_empty()).then(|| {
        Failed {
            digest: digest.to_owned(),
            origin: Origin { revision, boot: boot.to_owned() },
            reason: reason.to_owned(),
        }
    })
}

/// The record, if it holds for this build in this boot.
pub fn read_current(dir: &Path) -> Option<Failed> {
    let here = Origin::current();
    read(dir).filter(|f| f.origin.boot == here.boot && f.origin.revision <= here.revision)
}

/// Drops the record, if any.
pub fn remove(dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(dir.join(FILE)) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Records settings as failed (written whole, then renamed into place).
pub fn write(dir: &Path, failed: &Failed) -> std::io::Result<()> {
    // One line: the error's own line breaks would end the record early.
    let reason: String =
        failed.reason.chars().take(1024).map(|c| if c.is_control() { ' ' } else { c }).collect();
    let Origin { revision, boot } = &failed.origin;
    let tmp = dir.join(format!("{FILE}.tmp"));
    std::fs::write(&tmp, format!("{} {revision} {boot} {reason}\n", failed.digest))?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, dir.join(FILE))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(digest: &str, reason: &str) -> Failed {
        let origin = Origin { revision: 7, boot: "5f1c0b1e-3d4f-4e0a-9b59-2f7f1b2a9c11".into() };
        Failed { digest: digest.to_owned(), origin, reason: reason.to_owned() }
    }

    #[test]
    fn a_record_is_read_back_and_a_damaged_one_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()), None);
        let d = digest(b"\x01settings");
        write(dir.path(), &record(&d, "binding 10.9.9.9:1700:\ncannot assign")).unwrap();
        assert_eq!(read(dir.path()), Some(record(&d, "binding 10.9.9.9:1700: cannot assign")));
        write(dir.path(), &record(&d, "\n")).unwrap();
        assert_eq!(read(dir.path()).map(|f| f.digest), Some(d.clone()), "an empty reason is still a record");
        for damaged in
            ["not a digest\n", "", &format!("{d}\n"), &format!("{d} x boot why\n"), &format!("{d} 7\n")]
        {
            std::fs::write(dir.path().join(FILE), damaged).unwrap();
            assert_eq!(read(dir.path()), None, "{damaged:?}");
        }
        remove(dir.path()).unwrap();
        remove(dir.path()).unwrap();
        assert_eq!(read(dir.path()), None);
    }

    #[test]
    fn a_record_holds_for_the_build_and_boot_that_wrote_it() {
        let dir = tempfile::tempdir().unwrap();
        let here = Origin::current();
        assert!(!here.boot.is_empty() && !here.boot.contains(' '), "{here:?}");
        let d = digest(b"\x01settings");
        let mut failed = Failed { digest: d, origin: here.clone(), reason: "no such device".into() };
        write(dir.path(), &failed).unwrap();
        assert_eq!(read_current(dir.path()).as_ref(), Some(&failed));
        failed.origin.revision = here.revision.saturating_sub(1);
        write(dir.path(), &failed).unwrap();
        assert!(read_current(dir.path()).is_some(), "a newer build keeps them aside in that boot");
        failed.origin.revision = here.revision + 1;
        write(dir.path(), &failed).unwrap();
        assert_eq!(read_current(dir.path()), None, "an older build tries them itself");
        failed.origin = Origin { boot: "an-earlier-boot".into(), ..here };
        write(dir.path(), &failed).unwrap();
        assert_eq!(read_current(dir.path()), None, "so does the next boot");
        assert!(read(dir.path()).is_some());
    }
}
