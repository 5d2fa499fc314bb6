//! The one error type of the crate.
//!
//! A `#[non_exhaustive]` enum that is `Clone + Eq`, so tests can compare errors and callers can
//! map them to their transport (403 on legacy paths, a JSON error on `/api/v1`) without strings.

use alloc::string::String;
use core::fmt;

/// Why outside bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A MAC address is not six groups of two hex digits separated by `:` or `-`.
    InvalidMac,
    /// A hex identifier (EUI-64, DevAddr) has the wrong number of digits.
    InvalidLength {
        /// What was being parsed (`"EUI-64"`, `"DevAddr"`).
        what: &'static str,
        /// The number of bytes it must have.
        expected: usize,
    },
    /// A character that is not a hex digit (or an accepted separator) in an identifier.
    InvalidHex {
        /// What was being parsed.
        what: &'static str,
    },
    /// An unknown device uid kind (the known ones are `ethernet`, `lorawan`, `uuid`).
    UnknownUidKind,
    /// A UUID that does not parse.
    InvalidUuid,
    /// An MQTT topic name or filter broke a rule of MQTT 3.1.1 §4.7.
    InvalidTopic(TopicError),
    /// A location part (building, room, site) sanitizes to an empty string.
    EmptyLocationPart,
    /// JSON that does not parse or does not have the expected shape; the text says where.
    #[cfg(feature = "serde")]
    InvalidJson(String),
    /// A device configuration that breaks the legacy shape (array of zones with `modules` of
    /// `{module, unit, params:[{param, value}]}`); `path` is a JSON pointer to the culprit.
    InvalidConfig {
        /// JSON pointer to the value that breaks the shape, e.g. `/0/modules/1/unit`.
        path: String,
        /// What is wrong there.
        reason: &'static str,
    },
    /// A payload that would not fit the device's buffers.
    TooLarge {
        /// What is too large (`"config body"`, `"command packet"`).
        what: &'static str,
        /// Its size in bytes.
        size: usize,
        /// The most the device accepts.
        limit: usize,
    },
    /// A command with more members than the firmware's `JSON_OBJECT_SIZE(5)` document holds.
    TooManyKeys {
        /// Members in the command.
        keys: usize,
        /// The most the firmware accepts.
        limit: usize,
    },
    /// A sync message of a version this build does not know.
    #[cfg(feature = "serde")]
    UnsupportedSyncVersion(u16),
    /// A postcard sync message that does not decode.
    #[cfg(feature = "serde")]
    InvalidSyncMessage,
}

/// What is wrong with an MQTT topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TopicError {
    /// Topics must be at least one character long.
    Empty,
    /// Topics are at most 65535 bytes of UTF-8.
    TooLong,
    /// U+0000 is not allowed anywhere in a topic.
    NulCharacter,
    /// `+` or `#` in a topic name (they are only for filters).
    WildcardInName,
    /// `#` that is not alone in the last level of a filter.
    MisplacedMultiLevelWildcard,
    /// `+` that does not fill a whole level of a filter.
    MisplacedSingleLevelWildcard,
    /// More levels than the caller allows.
    TooManyLevels,
}

impl fmt::Display for TopicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TopicError::Empty => "topic is empty",
            TopicError::TooLong => "topic is longer than 65535 bytes",
            TopicError::NulCharacter => "topic contains U+0000",
            TopicError::WildcardInName => "topic name contains a wildcard ('+' or '#')",
            TopicError::MisplacedMultiLevelWildcard => "'#' must be alone in the last level of a filter",
            TopicError::MisplacedSingleLevelWildcard => "'+' must fill a whole level of a filter",
            TopicError::TooManyLevels => "topic has too many levels",
        })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidMac => f.write_str(
                "invalid MAC address: expected six groups of two hex digits separated by ':' or '-' (e.g. 24:0a:c4:12:34:56)",
            ),
            Error::InvalidLength { what, expected } => {
                write!(f, "invalid {what}: expected {expected} bytes ({} hex digits)", expected * 2)
            }
            Error::InvalidHex { what } => write!(f, "invalid {what}: not a hex digit"),
            Error::UnknownUidKind => {
                f.write_str("unknown uid kind: expected 'ethernet', 'lorawan' or 'uuid'")
            }
            Error::InvalidUuid => f.write_str("invalid UUID"),
            Error::InvalidTopic(e) => write!(f, "invalid MQTT topic: {e}"),
            Error::EmptyLocationPart => {
                f.write_str("location name is empty once sanitized (it needs a letter or a digit)")
            }
            #[cfg(feature = "serde")]
            Error::InvalidJson(msg) => write!(f, "invalid JSON: {msg}"),
            Error::InvalidConfig { path, reason } => {
                write!(f, "invalid device configuration at '{path}': {reason}")
            }
            Error::TooLarge { what, size, limit } => write!(
                f,
                "{what} is {size} bytes, {} over the device limit of {limit}",
                size - limit
            ),
            Error::TooManyKeys { keys, limit } => {
                write!(f, "command has {keys} members; the firmware reads at most {limit}")
            }
            #[cfg(feature = "serde")]
            Error::UnsupportedSyncVersion(v) => write!(f, "unsupported sync message version {v}"),
            #[cfg(feature = "serde")]
            Error::InvalidSyncMessage => f.write_str("sync message does not decode"),
        }
    }
}

impl From<TopicError> for Error {
    fn from(e: TopicError) -> Self {
        Error::InvalidTopic(e)
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}
#[cfg(feature = "std")]
impl std::error::Error for TopicError {}
