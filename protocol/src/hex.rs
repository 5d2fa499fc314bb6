//! Hex digits, the one implementation every part of neosens uses: identifiers (`Mac`, `Eui64`,
//! `DevAddr` parse and print through it), keys in hex (a gateway's key pair, LoRaWAN session
//! keys), payloads in logs and readings, relay stamps, the RN2483's `radio tx <hex>`.
//!
//! [`encode_into`], [`decode_array`] and [`digit`] never allocate (the firmware examples call
//! them); [`encode`], [`encode_upper`] and [`decode`] return a `String` or `Vec` (`alloc`).
//! Decoders are strict — an even number of digits, no separators, no `0x`, no whitespace — and
//! callers trim what they read from people; identifiers accept separators in their own parsers.

use alloc::string::String;
use alloc::vec::Vec;

use crate::Error;

const LOWER: &[u8; 16] = b"0123456789abcdef";
const UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// The case of the letters `encode_into` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    /// `0-9a-f`.
    Lower,
    /// `0-9A-F`.
    Upper,
}

/// Value of one ASCII hex digit (either case).
pub fn digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Writes `bytes` as hex at the start of `out`; returns the length written (`2 × bytes`), or
/// `None` (nothing written) when `out` is too short.
pub fn encode_into(bytes: &[u8], out: &mut [u8], case: Case) -> Option<usize> {
    let table = match case {
        Case::Lower => LOWER,
        Case::Upper => UPPER,
    };
    let out = out.get_mut(..2 * bytes.len())?;
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = table[usize::from(b >> 4)];
        pair[1] = table[usize::from(b & 0xf)];
    }
    Some(2 * bytes.len())
}

fn encode_case(bytes: &[u8], case: Case) -> String {
    let mut out = alloc::vec![0u8; 2 * bytes.len()];
    encode_into(bytes, &mut out, case);
    // Only ASCII digits and letters were written.
    out.into_iter().map(char::from).collect()
}

/// `bytes` in lowercase hex (`deadbeef`): keys, payloads in readings and logs, stamps.
pub fn encode(bytes: &[u8]) -> String {
    encode_case(bytes, Case::Lower)
}

/// `bytes` in uppercase hex (`DEADBEEF`), as LoRaWAN tools print frames.
pub fn encode_upper(bytes: &[u8]) -> String {
    encode_case(bytes, Case::Upper)
}

/// Decodes hex digits (either case) into `out`, which must be exactly half as long as `s`.
fn decode_exact(s: &str, out: &mut [u8], what: &'static str) -> Result<(), Error> {
    let digits = s.as_bytes();
    if digits.len() != 2 * out.len() {
        // An odd count is half a byte: a wrong character count either way.
        return Err(match digits.iter().all(|&c| digit(c).is_some()) {
            true => Error::InvalidLength { what, expected: out.len() },
            false => Error::InvalidHex { what },
        });
    }
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let (Some(hi), Some(lo)) = (digit(pair[0]), digit(pair[1])) else {
            return Err(Error::InvalidHex { what });
        };
        *byte = hi << 4 | lo;
    }
    Ok(())
}

/// Exactly `N` bytes from `2 × N` hex digits: a key, a tag. `what` names it in the error
/// ([`Error::InvalidLength`] for a wrong count of digits, [`Error::InvalidHex`] otherwise).
pub fn decode_array<const N: usize>(s: &str, what: &'static str) -> Result<[u8; N], Error> {
    let mut out = [0u8; N];
    decode_exact(s, &mut out, what)?;
    Ok(out)
}

/// Any number of bytes from an even number of hex digits (an empty string is no bytes).
pub fn decode(s: &str, what: &'static str) -> Result<Vec<u8>, Error> {
    if s.len() % 2 != 0 || !s.bytes().all(|c| digit(c).is_some()) {
        return Err(Error::InvalidHex { what });
    }
    let mut out = alloc::vec![0u8; s.len() / 2];
    decode_exact(s, &mut out, what)?;
    Ok(out)
}

/// Parses exactly `N` bytes of hex, ignoring the separators `:`, `-` and `_` between byte pairs
/// (identifiers as people write them). Separators are accepted only between whole bytes, so
/// `0-1…` is refused.
pub(crate) fn parse_bytes<const N: usize>(s: &str, what: &'static str) -> Result<[u8; N], Error> {
    let bytes = s.as_bytes();
    let mut out = [0u8; N];
    let mut n = 0;
    let mut i = 0;
    while i < bytes.len() {
        if n > 0 && matches!(bytes[i], b':' | b'-' | b'_') {
            i += 1;
        }
        let hi = bytes.get(i).copied().and_then(digit).ok_or(Error::InvalidHex { what })?;
        let lo = match bytes.get(i + 1) {
            None => return Err(Error::InvalidLength { what, expected: N }),
            Some(&c) => digit(c).ok_or(Error::InvalidHex { what })?,
        };
        if n == N {
            return Err(Error::InvalidLength { what, expected: N });
        }
        out[n] = hi << 4 | lo;
        n += 1;
        i += 2;
    }
    if n != N {
        return Err(Error::InvalidLength { what, expected: N });
    }
    Ok(out)
}

/// Writes `bytes` as hex, upper or lower case, with an optional separator between bytes
/// (`Display` of identifiers, without allocating).
pub(crate) fn write(
    f: &mut core::fmt::Formatter<'_>,
    bytes: &[u8],
    upper: bool,
    sep: Option<char>,
) -> core::fmt::Result {
    let table = if upper { UPPER } else { LOWER };
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            if let Some(sep) = sep {
                core::fmt::Write::write_char(f, sep)?;
            }
        }
        core::fmt::Write::write_char(f, table[usize::from(b >> 4)] as char)?;
        core::fmt::Write::write_char(f, table[usize::from(b & 0xf)] as char)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_with_and_without_separators() {
        let cases: &[(&str, Result<[u8; 2], Error>)] = &[
            ("abCD", Ok([0xab, 0xcd])),
            ("ab:cd", Ok([0xab, 0xcd])),
            ("ab-cd", Ok([0xab, 0xcd])),
            ("ab_cd", Ok([0xab, 0xcd])),
            ("", Err(Error::InvalidLength { what: "x", expected: 2 })),
            ("abc", Err(Error::InvalidLength { what: "x", expected: 2 })),
            ("abcdef", Err(Error::InvalidLength { what: "x", expected: 2 })),
            ("abzd", Err(Error::InvalidHex { what: "x" })),
            ("a:bcd", Err(Error::InvalidHex { what: "x" })),
            (":abcd", Err(Error::InvalidHex { what: "x" })),
            ("abcd:", Err(Error::InvalidHex { what: "x" })),
            ("ab::cd", Err(Error::InvalidHex { what: "x" })),
            ("ébcd", Err(Error::InvalidHex { what: "x" })),
        ];
        for (input, expected) in cases {
            assert_eq!(&parse_bytes::<2>(input, "x"), expected, "input {input:?}");
        }
    }

    #[test]
    fn encodes_in_either_case_with_or_without_allocating() {
        assert_eq!(encode(&[0xde, 0xad, 0x01, 0xf0]), "dead01f0");
        assert_eq!(encode_upper(&[0xde, 0xad, 0x01, 0xf0]), "DEAD01F0");
        assert_eq!(encode(&[]), "");
        let mut out = [b'.'; 7];
        assert_eq!(encode_into(&[0x4a, 0xb0], &mut out, Case::Upper), Some(4));
        assert_eq!(&out, b"4AB0...");
        assert_eq!(encode_into(&[1, 2, 3, 4], &mut out, Case::Lower), None, "too short");
        assert_eq!(&out, b"4AB0...", "nothing written when it does not fit");
    }

    #[test]
    fn decodes_strictly() {
        assert_eq!(decode_array::<2>("aBcD", "x"), Ok([0xab, 0xcd]));
        assert_eq!(decode("00ff10", "x"), Ok(alloc::vec![0x00, 0xff, 0x10]));
        assert_eq!(decode("", "x"), Ok(alloc::vec![]));
        let length = Err(Error::InvalidLength { what: "x", expected: 2 });
        for bad in ["", "abc", "abcdef"] {
            assert_eq!(decode_array::<2>(bad, "x"), length, "{bad:?}");
        }
        for bad in ["ab:d", "0xab", " abc", "abcg", "ab c", "éé"] {
            assert_eq!(decode_array::<2>(bad, "x"), Err(Error::InvalidHex { what: "x" }), "{bad:?}");
        }
        for bad in ["a", "abc", "ab:cd", "ab ", "zz", "+1"] {
            assert_eq!(decode(bad, "x"), Err(Error::InvalidHex { what: "x" }), "{bad:?}");
        }
    }

    #[test]
    fn every_byte_round_trips() {
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(decode(&encode(&all), "x").unwrap(), all);
        assert_eq!(decode(&encode_upper(&all), "x").unwrap(), all);
        let array: [u8; 256] = decode_array(&encode(&all), "x").unwrap();
        assert_eq!(array[..], all[..]);
    }
}
