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

thread_local! {
    /// The keys [`recording`] saw, while it runs on this thread.
    static PRESENT: std::cell::RefCell<Option<std::collections::BTreeSet<&'static str>>> =
        const { std::cell::RefCell::new(None) };
}

/// Deserializes a key's value and, inside [`recording`], notes that the text sets it: serde
/// calls a field's `deserialize_with` only for keys that are present, so the one parse of the
/// file tells which keys it sets (the gateway's file winning over central's settings) without a
/// second parser in the build.
pub fn present<'de, D: serde::Deserializer<'de>, T: serde::Deserialize<'de>>(
    key: &'static str,
    d: D,
) -> Result<T, D::Error> {
    PRESENT.with(|p| {
        if let Some(set) = p.borrow_mut().as_mut() {
            set.insert(key);
        }
    });
    T::deserialize(d)
}

/// Runs `parse` and returns what it returned with the keys [`present`] saw meanwhile.
pub fn recording<R>(parse: impl FnOnce() -> R) -> (R, std::collections::BTreeSet<&'static str>) {
    PRESENT.with(|p| *p.borrow_mut() = Some(Default::default()));
    let result = parse();
    let keys = PRESENT.with(|p| p.borrow_mut().take()).unwrap_or_default();
    (result, keys)
}

/// A TOML basic string literal, for templates: quotes and backslashes escaped, and every control
/// character (TOML forbids them raw). Written here rather than through the `toml` crate's
/// writer, which the gateway's 4 MB build would carry for this alone.
pub fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
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
        for text in ["a\"b", "it's", "é\\n", "", "tab\there\nnew\rline", "\u{7f}\u{1}\u{9f}", "\\\\server"] {
            let parsed: toml::Table = toml::from_str(&format!("x = {}", quoted(text))).unwrap();
            assert_eq!(parsed["x"].as_str(), Some(text), "quoting {text:?}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
