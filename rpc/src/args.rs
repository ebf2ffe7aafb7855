//! Reading one optional argument of a request: absent is `None`, present of the wrong
//! type is an error naming the key, so a method checks every value before it acts.

use serde_json::Value;

/// `args[key]` as a whole number ≥ 0.
pub(crate) fn number(args: &Value, key: &str) -> Result<Option<u64>, String> {
    match &args[key] {
        Value::Null => Ok(None),
        v => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| format!("`{key}` must be a whole number ≥ 0")),
    }
}

/// `args[key]` as `true` or `false`.
pub(crate) fn flag(args: &Value, key: &str) -> Result<Option<bool>, String> {
    match &args[key] {
        Value::Null => Ok(None),
        v => v
            .as_bool()
            .map(Some)
            .ok_or_else(|| format!("`{key}` must be true or false")),
    }
}

/// `args[key]` as a ratio: a finite number ≥ 0.
pub(crate) fn ratio(args: &Value, key: &str) -> Result<Option<f64>, String> {
    match &args[key] {
        Value::Null => Ok(None),
        v => v
            .as_f64()
            .filter(|r| valid_ratio(*r))
            .map(Some)
            .ok_or_else(|| format!("`{key}` must be a number ≥ 0")),
    }
}

/// A ratio worth keeping: a finite number ≥ 0.
pub(crate) fn valid_ratio(r: f64) -> bool {
    r.is_finite() && r >= 0.0
}

/// `*slot = v` when a value was given.
pub(crate) fn set<T>(slot: &mut T, v: Option<T>) {
    if let Some(v) = v {
        *slot = v;
    }
}
