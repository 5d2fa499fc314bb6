//! JSON printed byte for byte like Python's `json.dumps` with its defaults, as the 2016 server
//! answered `/device/credentials` and `/device/config` and sent orders.
//!
//! The defaults are `separators=(", ", ": ")` and `ensure_ascii=True`: every character outside
//! printable ASCII becomes `\uXXXX` (lowercase hex, surrogate pairs above U+FFFF), floats print
//! as Python's `repr` (`1e-05`, `1e+16`, `2.0`). Keys keep their order (serde_json is built with
//! `preserve_order`), as Python dicts do. Devices only need valid JSON, but byte-identical answers
//! keep body sizes — and the firmware's 1023-byte limit — exactly where they were.

use alloc::string::String;
use core::fmt::Write;

use serde_json::{Number, Value};

/// Prints `value` as Python's `json.dumps(value)` would.
pub fn to_string(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

/// Serializes `value` to a `Value` first (struct fields keep their declared order), then prints it
/// as Python would.
pub fn to_string_of<T: serde::Serialize>(value: &T) -> Result<String, crate::Error> {
    serde_json::to_value(value)
        .map(|v| to_string(&v))
        .map_err(|e| crate::Error::InvalidJson(alloc::format!("{e}")))
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_str(out, k);
                out.push_str(": ");
                write_value(out, v);
            }
            out.push('}');
        }
    }
}

fn write_number(out: &mut String, n: &Number) {
    if let Some(i) = n.as_i64() {
        let _ = write!(out, "{i}");
    } else if let Some(u) = n.as_u64() {
        let _ = write!(out, "{u}");
    } else if let Some(f) = n.as_f64() {
        write_float_repr(out, f);
    }
}

/// Python's `repr(float)`: the shortest digits that round-trip, positional when the decimal
/// exponent is in `-4..16`, else scientific with a signed exponent of at least two digits.
pub fn write_float_repr(out: &mut String, f: f64) {
    if !f.is_finite() {
        // Python prints NaN/Infinity (invalid JSON); serde_json values never hold them.
        out.push_str("null");
        return;
    }
    // Rust's `{:e}` prints the shortest round-trip digits: `-2.1375e1`, `1e-5`, `0e0`.
    let mut sci = String::new();
    let _ = write!(sci, "{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (negative, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    if negative {
        out.push('-');
    }
    if (-4..16).contains(&exp) {
        let point = exp + 1; // digits before the decimal point
        if point <= 0 {
            out.push_str("0.");
            for _ in 0..-point {
                out.push('0');
            }
            out.push_str(&digits);
        } else {
            let point = point as usize;
            if digits.len() <= point {
                out.push_str(&digits);
                for _ in digits.len()..point {
                    out.push('0');
                }
                out.push_str(".0");
            } else {
                out.push_str(&digits[..point]);
                out.push('.');
                out.push_str(&digits[point..]);
            }
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(out, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.unsigned_abs());
    }
}

/// A JSON string with `ensure_ascii=True` escaping.
fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn separators_and_order_like_python() {
        let v = json!({"login": "senso_240ac4123456", "password": "p", "port": 10883});
        assert_eq!(to_string(&v), r#"{"login": "senso_240ac4123456", "password": "p", "port": 10883}"#);
        assert_eq!(to_string(&json!([1, [2, 3], {}, []])), "[1, [2, 3], {}, []]");
        assert_eq!(to_string(&json!({"b": null, "a": true})), r#"{"b": null, "a": true}"#);
    }

    #[test]
    fn strings_escape_like_ensure_ascii() {
        let cases = [
            ("µg/m3", r#""\u00b5g/m3""#),
            ("bât", r#""b\u00e2t""#),
            ("a\"b\\c", r#""a\"b\\c""#),
            ("\n\r\t\u{08}\u{0c}", r#""\n\r\t\b\f""#),
            ("\u{01}\u{1f}\u{7f}", r#""\u0001\u001f\u007f""#),
            ("\u{1F600}", r#""\ud83d\ude00""#),
            ("/", r#""/""#),
        ];
        for (input, expected) in cases {
            assert_eq!(to_string(&Value::String(input.into())), expected, "input {input:?}");
        }
    }

    #[test]
    fn floats_print_as_python_repr() {
        let cases = [
            (21.375, "21.375"),
            (2.0, "2.0"),
            (-0.0, "-0.0"),
            (0.0, "0.0"),
            (0.1, "0.1"),
            (1.2, "1.2"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (123456789.125, "123456789.125"),
            (1e300, "1e+300"),
            (-3.25, "-3.25"),
        ];
        for (input, expected) in cases {
            let mut out = String::new();
            write_float_repr(&mut out, input);
            assert_eq!(out, expected, "input {input}");
        }
        assert_eq!(to_string(&json!({"board_rev": 1.2, "n": -5})), r#"{"board_rev": 1.2, "n": -5}"#);
        assert_eq!(to_string(&json!(u64::MAX)), "18446744073709551615");
    }
}
