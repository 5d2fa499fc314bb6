//! Hex digits for identifiers, without allocation.

use crate::Error;

/// Value of one ASCII hex digit (either case).
pub(crate) fn digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Parses exactly `N` bytes of hex, ignoring the separators `:`, `-` and `_` between byte pairs.
/// Separators are accepted only between whole bytes, so `0-1…` is refused.
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

/// Writes `bytes` as hex, upper or lower case, with an optional separator between bytes.
pub(crate) fn write(
    f: &mut core::fmt::Formatter<'_>,
    bytes: &[u8],
    upper: bool,
    sep: Option<char>,
) -> core::fmt::Result {
    const LOWER: &[u8; 16] = b"0123456789abcdef";
    const UPPER: &[u8; 16] = b"0123456789ABCDEF";
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
}
