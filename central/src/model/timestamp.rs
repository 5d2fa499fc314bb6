//! Timestamps: milliseconds since the Unix epoch in storage, RFC 3339 in the API.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A point in time, to the millisecond, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Now.
    pub fn now() -> Self {
        Timestamp((OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64)
    }

    /// Parses RFC 3339 (`2021-05-06T08:52:13.394Z`, as Django's serializer writes).
    pub fn parse_rfc3339(s: &str) -> Option<Self> {
        let t = OffsetDateTime::parse(s, &Rfc3339).ok()?;
        Some(Timestamp((t.unix_timestamp_nanos() / 1_000_000) as i64))
    }

    /// Milliseconds since the epoch.
    pub fn millis(self) -> i64 {
        self.0
    }

    /// RFC 3339 text, UTC, with milliseconds.
    pub fn to_rfc3339(self) -> String {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000)
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok())
            .unwrap_or_default()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn django_datetimes_parse() {
        let t = Timestamp::parse_rfc3339("2021-05-06T08:52:13.394Z").unwrap();
        assert_eq!(t.millis(), 1_620_291_133_394);
        assert_eq!(t.to_rfc3339(), "2021-05-06T08:52:13.394Z");
        assert_eq!(Timestamp::parse_rfc3339("2021-05-06T08:52:13Z").unwrap().millis(), 1_620_291_133_000);
        assert!(Timestamp::parse_rfc3339("2021-05-06 08:52").is_none());
        assert!(Timestamp::now().millis() > 1_700_000_000_000);
    }
}
