//! TOML configuration files: read over the defaults, errors that name the file and the line,
//! and the quoting the `configfile` templates need.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// Why a configuration file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this configuration.
    #[error("config file {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with line and column.
        source: Box<toml::de::Error>,
    },
}

/// Reads a TOML file into `T` (whose `#[serde(default)]` fields fill what the file omits).
pub fn load<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
    toml::from_str(&text)
        .map_err(|source| ConfigError::Parse { path: path.to_owned(), source: Box::new(source) })
}

/// A TOML string literal, for templates.
pub fn quoted(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, Default, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Sample {
        name: String,
    }

    #[test]
    fn errors_name_the_file() {
        let dir = std::env::temp_dir().join(format!("neosens-config-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("x.toml");
        std::fs::write(&file, "nmae = \"a\"\n").unwrap();
        let err = load::<Sample>(&file).unwrap_err().to_string();
        assert!(err.contains("x.toml") && err.contains("nmae"), "{err}");
        std::fs::write(&file, "name = \"a \\\"b\\\"\"\n").unwrap();
        assert_eq!(load::<Sample>(&file).unwrap(), Sample { name: "a \"b\"".into() });
        assert!(load::<Sample>(&dir.join("missing.toml")).unwrap_err().to_string().contains("missing.toml"));
        for text in ["a\"b", "it's", "é\\n", ""] {
            let parsed: toml::Table = toml::from_str(&format!("x = {}", quoted(text))).unwrap();
            assert_eq!(parsed["x"].as_str(), Some(text), "quoting {text:?}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
