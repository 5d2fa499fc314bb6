//! The secrets central generates at its first start (the first admin API token, the password
//! of the dashboard user `admin`) go to a file readable by the service's user only — never to
//! the log, and to standard output only when a person watches it (a terminal): under systemd,
//! standard output is the journal, which many can read and which is kept for months.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// The file, in the data directory.
pub const FILE: &str = "bootstrap-secrets.txt";

/// Writes the generated secrets to `<data_dir>/bootstrap-secrets.txt` (0600, durable) and says
/// where they are; on a terminal, also shows them. Returns the file's path.
pub fn hand_over(data_dir: &Path, token: Option<&str>, password: Option<&str>) -> anyhow::Result<PathBuf> {
    let path = data_dir.join(FILE);
    let mut text = String::from(
        "# neosens-central: secrets generated at the first start, shown nowhere else.\n\
         # Store them (a password manager), then delete this file.\n",
    );
    if let Some(token) = token {
        text.push_str(&format!("admin API token (Authorization: Bearer): {token}\n"));
    }
    if let Some(password) = password {
        text.push_str(&format!("dashboard user \"admin\" password: {password}\n"));
    }
    neosens_runtime::durable::write_private(&path, text.as_bytes())
        .with_context(|| format!("writing the first start's secrets to {}", path.display()))?;
    if std::io::stdout().is_terminal() {
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            println!("neosens-central: first start, {line}");
        }
    }
    println!(
        "neosens-central: first start: the generated secrets are in {} (readable by this user only): store them, then delete the file",
        path.display()
    );
    tracing::warn!(path = %path.display(), "first start: generated secrets written to a file readable by this service's user only");
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn secrets_go_to_a_private_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = hand_over(dir.path(), Some("nst_token"), Some("pw-123456789")).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("nst_token") && text.contains("pw-123456789"), "{text}");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
