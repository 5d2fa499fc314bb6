//! Failure-state rules: conditions on fields of a device's status payload that raise an alert
//! while they hold — `status` not `running`, `firmware` older than a release, `heap` under a
//! threshold. Declared per device type; evaluated on each stored status.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Most rules per device type.
pub const MAX_RULES: usize = 32;

/// How a field is compared with the rule's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleOp {
    /// The field equals the value.
    Eq,
    /// The field is present and differs from the value.
    Ne,
    /// The field is a number below the value.
    Lt,
    /// The field is a number at most the value.
    Le,
    /// The field is a number above the value.
    Gt,
    /// The field is a number at least the value.
    Ge,
    /// The field is absent (no value).
    Missing,
}

impl RuleOp {
    fn symbol(self) -> &'static str {
        match self {
            RuleOp::Eq => "=",
            RuleOp::Ne => "≠",
            RuleOp::Lt => "<",
            RuleOp::Le => "≤",
            RuleOp::Gt => ">",
            RuleOp::Ge => "≥",
            RuleOp::Missing => "missing",
        }
    }
}

/// A rule's operand. Its own type (not a JSON value) so that the store's postcard encoding,
/// which cannot hold self-describing values, keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RuleValue {
    /// No operand (`missing`).
    None,
    /// A number.
    Number(f64),
    /// A string.
    Text(String),
    /// A boolean.
    Bool(bool),
}

/// A failure-state rule as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusRule {
    /// Name, unique in its type (`low_heap`); alerts carry it.
    pub name: String,
    /// Dotted path into the status JSON (`heap`, `modules.0.name`).
    pub field: String,
    /// Comparison.
    pub op: RuleOp,
    /// Operand.
    pub value: RuleValue,
}

/// A failure-state rule as the API reads and shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusRuleSpec {
    /// Name, unique in its type: letters, digits, `_`, `-`.
    pub name: String,
    /// Dotted path into the status JSON (`status`, `heap`, `modules.0.name`).
    pub field: String,
    /// `eq`, `ne`, `lt`, `le`, `gt`, `ge` or `missing`.
    pub op: RuleOp,
    /// The operand: a number for `lt`/`le`/`gt`/`ge`, a string, number or boolean for `eq`/`ne`,
    /// absent for `missing`.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub value: Value,
}

impl StatusRuleSpec {
    /// Checks the rule; the error names what is wrong.
    pub fn into_rule(self) -> Result<StatusRule, String> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !name_ok {
            return Err("name: 1 to 64 characters among letters, digits, _ and -".into());
        }
        if self.field.is_empty() || self.field.len() > 128 || self.field.split('.').any(str::is_empty) {
            return Err("field: a dotted path such as heap or modules.0.name".into());
        }
        let value = match (self.op, self.value) {
            (RuleOp::Missing, Value::Null) => RuleValue::None,
            (RuleOp::Missing, _) => return Err("value: missing takes no value".into()),
            (RuleOp::Lt | RuleOp::Le | RuleOp::Gt | RuleOp::Ge, Value::Number(n)) => {
                RuleValue::Number(n.as_f64().unwrap_or(f64::NAN))
            }
            (RuleOp::Lt | RuleOp::Le | RuleOp::Gt | RuleOp::Ge, _) => {
                return Err("value: lt, le, gt and ge compare with a number".into());
            }
            (_, Value::Number(n)) => RuleValue::Number(n.as_f64().unwrap_or(f64::NAN)),
            (_, Value::String(s)) => RuleValue::Text(s),
            (_, Value::Bool(b)) => RuleValue::Bool(b),
            (_, _) => return Err("value: eq and ne compare with a string, a number or a boolean".into()),
        };
        Ok(StatusRule { name: self.name, field: self.field, op: self.op, value })
    }
}

impl From<&StatusRule> for StatusRuleSpec {
    fn from(r: &StatusRule) -> Self {
        let value = match &r.value {
            RuleValue::None => Value::Null,
            // Integers read back as integers (`20000`, not `20000.0`).
            RuleValue::Number(n) if n.fract() == 0.0 && n.abs() < 9.0e15 => Value::from(*n as i64),
            RuleValue::Number(n) => serde_json::Number::from_f64(*n).map_or(Value::Null, Value::Number),
            RuleValue::Text(s) => Value::String(s.clone()),
            RuleValue::Bool(b) => Value::Bool(*b),
        };
        StatusRuleSpec { name: r.name.clone(), field: r.field.clone(), op: r.op, value }
    }
}

/// Follows a dotted path; numeric segments index arrays.
fn lookup<'a>(payload: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(payload, |v, segment| match v {
        Value::Object(map) => map.get(segment),
        Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

fn equals(field: &Value, value: &RuleValue) -> bool {
    match (field, value) {
        (Value::Number(a), RuleValue::Number(b)) => a.as_f64() == Some(*b),
        (Value::String(a), RuleValue::Text(b)) => a == b,
        (Value::Bool(a), RuleValue::Bool(b)) => a == b,
        _ => false,
    }
}

impl StatusRule {
    /// Whether the rule holds for this status; if so, what was found (for the alert).
    pub fn fires(&self, payload: &Value) -> Option<String> {
        let found = lookup(payload, &self.field);
        let holds = match (self.op, found) {
            (RuleOp::Missing, found) => found.is_none(),
            (_, None) => false,
            (RuleOp::Eq, Some(f)) => equals(f, &self.value),
            (RuleOp::Ne, Some(f)) => !equals(f, &self.value),
            (op, Some(f)) => match (f.as_f64(), &self.value) {
                (Some(a), RuleValue::Number(b)) => match op {
                    RuleOp::Lt => a < *b,
                    RuleOp::Le => a <= *b,
                    RuleOp::Gt => a > *b,
                    _ => a >= *b,
                },
                _ => false,
            },
        };
        holds.then(|| {
            let spec = StatusRuleSpec::from(self);
            match found {
                None => format!("{} is missing", self.field),
                Some(f) => format!("{} = {f} ({} {})", self.field, self.op.symbol(), spec.value),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(v: Value) -> StatusRule {
        serde_json::from_value::<StatusRuleSpec>(v).unwrap().into_rule().unwrap()
    }

    #[test]
    fn rules_on_firmware_statuses() {
        let status = json!({"frequency":1800,"status":"running","heap":171204,"firmware":231027,
            "modules":[{"module":"temperature"}],"unitID":"24:0a:c4:12:34:56"});
        let not_running = rule(json!({"name":"not_running","field":"status","op":"ne","value":"running"}));
        assert_eq!(not_running.fires(&status), None);
        assert_eq!(
            not_running.fires(&json!({"status":"rebooting"})).as_deref(),
            Some("status = \"rebooting\" (≠ \"running\")")
        );
        assert_eq!(not_running.fires(&json!({})), None, "ne needs the field");
        let old = rule(json!({"name":"old_firmware","field":"firmware","op":"lt","value":231027}));
        assert_eq!(old.fires(&status), None);
        assert!(old.fires(&json!({"firmware":191016})).is_some());
        assert_eq!(old.fires(&json!({"firmware":"231027"})), None, "a string is not a number");
        let heap = rule(json!({"name":"low_heap","field":"heap","op":"le","value":20000}));
        assert!(heap.fires(&json!({"heap":20000})).is_some());
        let module =
            rule(json!({"name":"no_temp","field":"modules.0.module","op":"ne","value":"temperature"}));
        assert_eq!(module.fires(&status), None);
        let missing = rule(json!({"name":"no_fw","field":"firmware","op":"missing"}));
        assert_eq!(missing.fires(&status), None);
        assert_eq!(missing.fires(&json!({"a":1})).as_deref(), Some("firmware is missing"));
        assert!(
            rule(json!({"name":"flag","field":"ok","op":"eq","value":false}))
                .fires(&json!({"ok":false}))
                .is_some()
        );
    }

    #[test]
    fn bad_rules_say_what_is_wrong() {
        for (spec, needle) in [
            (json!({"name":"","field":"a","op":"eq","value":1}), "name"),
            (json!({"name":"a b","field":"a","op":"eq","value":1}), "name"),
            (json!({"name":"a","field":"a..b","op":"eq","value":1}), "field"),
            (json!({"name":"a","field":"a","op":"lt","value":"x"}), "number"),
            (json!({"name":"a","field":"a","op":"missing","value":1}), "no value"),
            (json!({"name":"a","field":"a","op":"eq","value":[1]}), "value"),
            (json!({"name":"a","field":"a","op":"eq"}), "value"),
        ] {
            let err = serde_json::from_value::<StatusRuleSpec>(spec).unwrap().into_rule().unwrap_err();
            assert!(err.contains(needle), "{err}");
        }
        assert!(
            serde_json::from_value::<StatusRuleSpec>(json!({"name":"a","field":"a","op":"like"})).is_err()
        );
    }

    #[test]
    fn stored_rules_round_trip_through_postcard() {
        let r = rule(json!({"name":"low_heap","field":"heap","op":"lt","value":20000}));
        let bytes = postcard::to_allocvec(&r).unwrap();
        assert_eq!(postcard::from_bytes::<StatusRule>(&bytes).unwrap(), r);
        assert_eq!(StatusRuleSpec::from(&r).value, json!(20000));
        let r = rule(json!({"name":"v","field":"v","op":"lt","value":1.5}));
        assert_eq!(StatusRuleSpec::from(&r).value, json!(1.5));
    }
}
