//! MQTT 3.1.1 topic names and filters (OASIS MQTT 3.1.1 §4.7).
//!
//! Validation follows the standard, and matching implements its rules exactly, including the
//! corners brokers disagree on least: `sport/#` matches `sport`, `+` matches an empty level, and a
//! filter that starts with a wildcard never matches a topic that starts with `$`.

use alloc::string::String;
use core::fmt;

use crate::error::{Error, TopicError};

/// The longest topic MQTT can carry (a two-byte length prefix).
pub const MAX_TOPIC_BYTES: usize = 65_535;

/// The levels of a topic or filter (`a//b` has three, the middle one empty).
pub fn levels(topic: &str) -> core::str::Split<'_, char> {
    topic.split('/')
}

fn check_common(s: &str) -> Result<(), TopicError> {
    if s.is_empty() {
        return Err(TopicError::Empty);
    }
    if s.len() > MAX_TOPIC_BYTES {
        return Err(TopicError::TooLong);
    }
    if s.contains('\0') {
        return Err(TopicError::NulCharacter);
    }
    Ok(())
}

/// Checks a topic name (what a PUBLISH carries): no wildcards.
pub fn validate_name(s: &str) -> Result<(), TopicError> {
    check_common(s)?;
    if s.contains(['+', '#']) {
        return Err(TopicError::WildcardInName);
    }
    Ok(())
}

/// Checks a topic filter (what a SUBSCRIBE carries).
pub fn validate_filter(s: &str) -> Result<(), TopicError> {
    check_common(s)?;
    let mut levels = levels(s).peekable();
    while let Some(level) = levels.next() {
        if level.contains('#') && (level != "#" || levels.peek().is_some()) {
            return Err(TopicError::MisplacedMultiLevelWildcard);
        }
        if level.contains('+') && level != "+" {
            return Err(TopicError::MisplacedSingleLevelWildcard);
        }
    }
    Ok(())
}

/// Whether `filter` matches the topic name `topic`, per MQTT 3.1.1 §4.7. Both are assumed valid
/// (see [`validate_filter`], [`validate_name`]); on invalid input the answer is simply `false` or
/// `true`, never a panic.
pub fn matches(filter: &str, topic: &str) -> bool {
    // §4.7.2: wildcards at the first level never match `$SYS/…` and other `$` topics.
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut topic_levels = levels(topic);
    for f in levels(filter) {
        if f == "#" {
            // Matches the parent level and any number of child levels.
            return true;
        }
        match topic_levels.next() {
            Some(t) if f == "+" || f == t => {}
            _ => return false,
        }
    }
    topic_levels.next().is_none()
}

/// A validated topic name.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct TopicName(String);

impl TopicName {
    /// Validates `s` as a topic name.
    pub fn new(s: &str) -> Result<Self, Error> {
        validate_name(s)?;
        Ok(TopicName(String::from(s)))
    }

    /// The topic text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Number of levels.
    pub fn level_count(&self) -> usize {
        levels(&self.0).count()
    }
}

/// A validated topic filter.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct TopicFilter(String);

impl TopicFilter {
    /// Validates `s` as a topic filter.
    pub fn new(s: &str) -> Result<Self, Error> {
        validate_filter(s)?;
        Ok(TopicFilter(String::from(s)))
    }

    /// Validates `s` and also limits its depth (ACL rules, subscriptions of a device).
    pub fn with_max_levels(s: &str, max_levels: usize) -> Result<Self, Error> {
        let filter = TopicFilter::new(s)?;
        if levels(s).count() > max_levels {
            return Err(TopicError::TooManyLevels.into());
        }
        Ok(filter)
    }

    /// The filter text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the filter matches `topic` (MQTT 3.1.1 §4.7).
    pub fn matches(&self, topic: &TopicName) -> bool {
        matches(&self.0, topic.as_str())
    }

    /// Whether the filter holds a wildcard.
    pub fn has_wildcards(&self) -> bool {
        self.0.contains(['+', '#'])
    }
}

macro_rules! text_impls {
    ($ty:ident) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($ty), self.0)
            }
        }
        impl core::str::FromStr for $ty {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self, Error> {
                $ty::new(s)
            }
        }
        #[cfg(feature = "serde")]
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <String as serde::Deserialize>::deserialize(d)?;
                $ty::new(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}
text_impls!(TopicName);
text_impls!(TopicFilter);

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn names() {
        let cases: &[(&str, Result<(), TopicError>)] = &[
            ("u4/302/device", Ok(())),
            ("/finance", Ok(())),
            ("a//b", Ok(())),
            ("/", Ok(())),
            (" ", Ok(())),
            ("$SYS/broker/load", Ok(())),
            ("", Err(TopicError::Empty)),
            ("u4/+/device", Err(TopicError::WildcardInName)),
            ("u4/#", Err(TopicError::WildcardInName)),
            ("u4/30#2", Err(TopicError::WildcardInName)),
            ("u4/\0", Err(TopicError::NulCharacter)),
        ];
        for (input, expected) in cases {
            assert_eq!(validate_name(input), *expected, "input {input:?}");
        }
        assert_eq!(validate_name(&"a".repeat(65_535)), Ok(()));
        assert_eq!(validate_name(&"a".repeat(65_536)), Err(TopicError::TooLong));
        assert_eq!(TopicName::new("a/b").unwrap().level_count(), 2);
    }

    #[test]
    fn filters() {
        use TopicError::*;
        let cases: &[(&str, Result<(), TopicError>)] = &[
            ("#", Ok(())),
            ("+", Ok(())),
            ("+/+/device", Ok(())),
            ("outside/+/device", Ok(())),
            ("abroad/+/+/+/device", Ok(())),
            ("sport/tennis/#", Ok(())),
            ("/+", Ok(())),
            ("+/", Ok(())),
            ("sport/tennis#", Err(MisplacedMultiLevelWildcard)),
            ("sport/#/ranking", Err(MisplacedMultiLevelWildcard)),
            ("#/device", Err(MisplacedMultiLevelWildcard)),
            ("##", Err(MisplacedMultiLevelWildcard)),
            ("sport+", Err(MisplacedSingleLevelWildcard)),
            ("u4/+302", Err(MisplacedSingleLevelWildcard)),
            ("++", Err(MisplacedSingleLevelWildcard)),
            ("", Err(Empty)),
            ("a/\0/b", Err(NulCharacter)),
        ];
        for (input, expected) in cases {
            assert_eq!(validate_filter(input), *expected, "input {input:?}");
        }
        assert_eq!(TopicFilter::with_max_levels("a/b/c", 2), Err(Error::InvalidTopic(TooManyLevels)));
        assert!(TopicFilter::with_max_levels("a/+", 2).unwrap().has_wildcards());
    }

    #[test]
    fn matching_per_mqtt_3_1_1_section_4_7() {
        let cases: &[(&str, &str, bool)] = &[
            // §4.7.1.2 examples
            ("sport/tennis/player1/#", "sport/tennis/player1", true),
            ("sport/tennis/player1/#", "sport/tennis/player1/ranking", true),
            ("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true),
            ("sport/#", "sport", true),
            ("#", "sport/tennis", true),
            // §4.7.1.3 examples
            ("sport/tennis/+", "sport/tennis/player1", true),
            ("sport/tennis/+", "sport/tennis/player1/ranking", false),
            ("sport/+", "sport", false),
            ("sport/+", "sport/", true),
            ("+/+", "/finance", true),
            ("/+", "/finance", true),
            ("+", "/finance", false),
            // §4.7.2 `$` topics
            ("#", "$SYS/broker", false),
            ("+/monitor/Clients", "$SYS/monitor/Clients", false),
            ("$SYS/#", "$SYS/monitor/Clients", true),
            ("$SYS/monitor/+", "$SYS/monitor/Clients", true),
            ("$CONTROL/dynamic-security/#", "$CONTROL/dynamic-security/v1", true),
            // neosens subscriptions (DESIGN.md §4)
            ("+/+/device", "u4/302/device", true),
            ("+/+/device", "u4/302/temperature", false),
            ("+/+/device", "abroad/carcassonne/iut/101/device", false),
            ("abroad/+/+/+/device", "abroad/carcassonne/iut/101/device", true),
            ("outside/+/device", "outside/ambient/device", true),
            ("u4/302/+", "u4/302/device", true),
            ("u4/302/+", "u4/302/device/command", false),
            ("u4/302/+/command", "u4/302/device/command", true),
            ("u4/302/+/command", "u4/303/device/command", false),
            // exact and case-sensitive
            ("u4/302", "u4/302", true),
            ("U4/302", "u4/302", false),
            ("u4/302", "u4/302/", false),
            ("u4/302/", "u4/302", false),
        ];
        for (filter, topic, expected) in cases {
            assert_eq!(matches(filter, topic), *expected, "{filter:?} vs {topic:?}");
        }
        let f = TopicFilter::new("+/+/device").unwrap();
        assert!(f.matches(&TopicName::new("u4/302/device").unwrap()));
        assert_eq!(f.to_string(), "+/+/device");
        assert_eq!("+/+/device".parse::<TopicFilter>(), Ok(f));
    }
}
