//! Where a device is, as MQTT sees it: `sanitize` and base topics.
//!
//! Spec: `legacy-sensocampus.md` §5.2 and §7 (2016 server), DESIGN.md §3 (sites, outdoor areas).
//! Every topic a device publishes or reads starts with the base topic of its main room.

use alloc::format;
use alloc::string::String;
use core::fmt;

use crate::Error;
use crate::topic::{self, TopicName};

/// The most characters `sanitize` keeps (the 2016 server cut at 64).
pub const SANITIZE_MAX_CHARS: usize = 64;

/// The firmware keeps its base topic in a 64-byte buffer (`MQTT_BASE_TOPIC_LENGTH`): a longer one
/// is cut, and the device then publishes on the wrong topic.
pub const FIRMWARE_BASE_TOPIC_MAX: usize = 63;

/// Building name of outdoor areas: their base topic is `outside/<area>`.
pub const OUTSIDE: &str = "outside";

/// First level of the topics of every site other than the default one.
pub const ABROAD: &str = "abroad";

/// Turns a building, room or site name into a topic level exactly as the 2016 server did:
/// lowercase, transliterate to ASCII (`unidecode`), keep the first 64 characters, then replace
/// every run of non-word characters (anything but `[A-Za-z0-9_]`) by one `_`.
///
/// `sanitize("Mon bât/iment#n°1") == "mon_bat_iment_ndeg1"`.
///
/// The order is the server's: lowercasing comes *before* transliteration, so a transliteration
/// that yields capitals (`北` → `Bei`) keeps them, as the topics already in use do.
pub fn sanitize(name: &str) -> String {
    // Python's unidecode (2016) had tables for the Basic Multilingual Plane only and dropped
    // everything else (emoji included); deunicode knows emoji names, so filter them out first.
    let lowered: String = name.to_lowercase().chars().filter(|c| u32::from(*c) <= 0xFFFF).collect();
    // For characters without a table entry, unidecode printed nothing; deunicode would print "[?]".
    let ascii = deunicode::deunicode_with_tofu(&lowered, "");
    let mut out = String::with_capacity(ascii.len().min(SANITIZE_MAX_CHARS));
    let mut in_run = false;
    for c in ascii.chars().take(SANITIZE_MAX_CHARS) {
        if c.is_ascii_alphanumeric() || c == '_' {
            out.push(c);
            in_run = false;
        } else if !in_run {
            out.push('_');
            in_run = true;
        }
    }
    out
}

/// Which site a place belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SiteScope<'a> {
    /// The default site (`ut3`): its topics have no prefix.
    Default,
    /// Any other site, by slug: topics start with `abroad/<slug>/`.
    Abroad(&'a str),
}

/// A place inside a site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place<'a> {
    /// A room of a building, by names.
    Room {
        /// The building's name.
        building: &'a str,
        /// The room's name.
        room: &'a str,
    },
    /// An outdoor area (a room of the special building `outside`).
    Outside {
        /// The area's name.
        area: &'a str,
    },
}

/// The base topic of a room: `u4/302`, `outside/ambient`, `abroad/carcassonne/iut/101`.
///
/// Always a valid MQTT topic name without wildcards and without empty levels.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct BaseTopic(String);

impl BaseTopic {
    /// Derives the base topic of a place by the legacy rule (DESIGN.md §3).
    pub fn derive(site: SiteScope<'_>, place: Place<'_>) -> Result<Self, Error> {
        let (building, room) = match place {
            Place::Room { building, room } => (sanitize_part(building)?, sanitize_part(room)?),
            Place::Outside { area } => (String::from(OUTSIDE), sanitize_part(area)?),
        };
        let topic = match site {
            SiteScope::Default => format!("{building}/{room}"),
            SiteScope::Abroad(slug) => {
                format!("{ABROAD}/{}/{building}/{room}", sanitize_part(slug)?)
            }
        };
        Ok(BaseTopic(topic))
    }

    /// Accepts a base topic stored elsewhere (the 2016 database keeps topics that no longer follow
    /// the rule; devices and consumers use them, so they are kept as they are). It must be a valid
    /// topic name with no empty level.
    pub fn from_stored(topic: &str) -> Result<Self, Error> {
        TopicName::new(topic)?;
        if topic.split('/').any(str::is_empty) {
            return Err(Error::InvalidTopic(crate::error::TopicError::Empty));
        }
        Ok(BaseTopic(String::from(topic)))
    }

    /// The topic text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `<base>/device`: where the device publishes its status.
    pub fn device_status(&self) -> String {
        self.kind("device")
    }

    /// `<base>/<kind>`: where module `kind` publishes data and module status.
    pub fn kind(&self, kind: &str) -> String {
        format!("{}/{kind}", self.0)
    }

    /// `<base>/<kind>/command`: where module `kind` reads orders.
    pub fn command(&self, kind: &str) -> String {
        format!("{}/{kind}/command", self.0)
    }

    /// Whether the firmware's 64-byte buffer holds it uncut.
    pub fn fits_firmware(&self) -> bool {
        self.0.len() <= FIRMWARE_BASE_TOPIC_MAX
    }

    /// Number of levels (2 on the default site, 4 abroad).
    pub fn levels(&self) -> usize {
        topic::levels(&self.0).count()
    }
}

fn sanitize_part(name: &str) -> Result<String, Error> {
    let part = sanitize(name);
    if part.is_empty() { Err(Error::EmptyLocationPart) } else { Ok(part) }
}

impl fmt::Display for BaseTopic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for BaseTopic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BaseTopic({})", self.0)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for BaseTopic {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <String as serde::Deserialize>::deserialize(d)?;
        BaseTopic::from_stored(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_matches_the_2016_server() {
        let cases = [
            ("Mon bât/iment#n°1", "mon_bat_iment_ndeg1"), // the spec's example
            ("U4", "u4"),
            ("IRIT2", "irit2"),
            ("366", "366"),
            ("CampusFab", "campusfab"),
            ("Salle de réunion", "salle_de_reunion"),
            ("  a  b  ", "_a_b_"),
            ("Amphi Concorde (RDC)", "amphi_concorde_rdc_"),
            ("Bâtiment 3TP2 — étage 1", "batiment_3tp2_etage_1"),
            ("snake_case-name", "snake_case_name"),
            ("Œuvre Ærø ß", "oeuvre_aero_ss"),
            ("", ""),
            ("###", "_"),
            ("\u{1F600}", ""), // outside the BMP: unidecode dropped it
            ("caf\u{e9} \u{1F600}!", "cafe_"),
        ];
        for (input, expected) in cases {
            assert_eq!(sanitize(input), expected, "input {input:?}");
        }
    }

    #[test]
    fn sanitize_cuts_at_64_characters_before_collapsing() {
        let long = "a".repeat(70);
        assert_eq!(sanitize(&long).len(), 64);
        // The cut happens on the transliterated text: 63 letters and then two spaces give one `_`.
        let mut s = "b".repeat(63);
        s.push_str("  c");
        assert_eq!(sanitize(&s), format!("{}_", "b".repeat(63)));
    }

    #[test]
    fn base_topics_of_every_kind_of_place() {
        let cases = [
            (SiteScope::Default, Place::Room { building: "U4", room: "302" }, "u4/302"),
            (SiteScope::Default, Place::Room { building: "IRIT2", room: "366" }, "irit2/366"),
            (SiteScope::Default, Place::Outside { area: "Ambient" }, "outside/ambient"),
            (
                SiteScope::Abroad("carcassonne"),
                Place::Room { building: "IUT", room: "Salle 101" },
                "abroad/carcassonne/iut/salle_101",
            ),
            (
                SiteScope::Abroad("Carcassonne"),
                Place::Outside { area: "parking" },
                "abroad/carcassonne/outside/parking",
            ),
        ];
        for (site, place, expected) in cases {
            let topic = BaseTopic::derive(site, place).unwrap();
            assert_eq!(topic.as_str(), expected);
            assert!(topic.fits_firmware());
        }
        let t = BaseTopic::derive(SiteScope::Default, Place::Room { building: "U4", room: "302" }).unwrap();
        assert_eq!(t.levels(), 2);
        assert_eq!(t.device_status(), "u4/302/device");
        assert_eq!(t.kind("temperature"), "u4/302/temperature");
        assert_eq!(t.command("device"), "u4/302/device/command");
    }

    #[test]
    fn base_topic_refuses_empty_parts() {
        let empty_room = Place::Room { building: "U4", room: "" };
        assert_eq!(BaseTopic::derive(SiteScope::Default, empty_room), Err(Error::EmptyLocationPart));
        let emoji_site = SiteScope::Abroad("\u{1F600}");
        assert_eq!(
            BaseTopic::derive(emoji_site, Place::Outside { area: "x" }),
            Err(Error::EmptyLocationPart)
        );
    }

    #[test]
    fn stored_topics_are_kept_but_checked() {
        assert_eq!(BaseTopic::from_stored("old_name/366").unwrap().as_str(), "old_name/366");
        assert!(BaseTopic::from_stored("u4/+").is_err());
        assert!(BaseTopic::from_stored("u4/#").is_err());
        assert!(BaseTopic::from_stored("u4//302").is_err());
        assert!(BaseTopic::from_stored("").is_err());
        assert!(BaseTopic::from_stored("u4/30\0").is_err());
        let long = BaseTopic::from_stored(&format!("{}/{}", "b".repeat(40), "r".repeat(30))).unwrap();
        assert!(!long.fits_firmware());
    }
}
