//! Data directories: created at start and checked for writing, so a wrong path fails at once
//! with its name rather than at the first write minutes later.

use std::path::{Path, PathBuf};

/// A data directory that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("data directory {path}: {reason} (set it with {hint})")]
pub struct DataDirError {
    path: PathBuf,
    reason: String,
    hint: &'static str,
}

/// Creates `dir` if needed and checks that files can be written in it. `hint` names the setting
/// to fix (`[storage] data_dir or NEOSENS_DATA_DIR`).
pub fn prepare(dir: &Path, hint: &'static str) -> Result<(), DataDirError> {
    let fail = |reason: String| DataDirError { path: dir.to_owned(), reason, hint };
    std::fs::create_dir_all(dir).map_err(|e| fail(format!("cannot create it: {e}")))?;
    let probe = dir.join(".write-probe");
    std::fs::write(&probe, b"ok").map_err(|e| fail(format!("not writable: {e}")))?;
    std::fs::remove_file(&probe).map_err(|e| fail(format!("cannot remove {}: {e}", probe.display())))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_and_checks() {
        let base = std::env::temp_dir().join(format!("neosens-runtime-datadir-{}", std::process::id()));
        let dir = base.join("a/b");
        prepare(&dir, "X").unwrap();
        assert!(dir.is_dir());
        let file = base.join("file");
        std::fs::write(&file, b"x").unwrap();
        let err = prepare(&file, "NEOSENS_DATA_DIR").unwrap_err().to_string();
        assert!(err.contains("NEOSENS_DATA_DIR") && err.contains("file"), "{err}");
        std::fs::remove_dir_all(&base).unwrap();
    }
}
