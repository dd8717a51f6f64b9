//! Cell values as kubectl prints them: ages, `<none>`, counts, and column definitions.

use serde_json::{Value, json};

/// Kubernetes' human-readable duration (`5s`, `3m`, `2d`), as `kubectl get` shows ages.
pub fn human_duration(secs: i64) -> String {
    // `2m30s`, or `2m` when the smaller unit is zero.
    let two = |n: i64, unit: &str, rem: i64, rem_unit: &str| {
        if rem == 0 {
            format!("{n}{unit}")
        } else {
            format!("{n}{unit}{rem}{rem_unit}")
        }
    };
    let s = secs.max(0);
    if s < 120 {
        return format!("{s}s");
    }
    let m = s / 60;
    if m < 10 {
        return two(m, "m", s % 60, "s");
    }
    if m < 180 {
        return format!("{m}m");
    }
    let h = m / 60;
    if h < 8 {
        return two(h, "h", m % 60, "m");
    }
    if h < 48 {
        return format!("{h}h");
    }
    let d = h / 24;
    if d < 8 {
        return two(d, "d", h % 24, "h");
    }
    if d < 365 * 2 {
        return format!("{d}d");
    }
    format!("{}y", d / 365)
}

pub(super) fn age(ts: Option<&Value>) -> String {
    let Some(s) = ts.and_then(Value::as_str) else {
        return "<unknown>".into();
    };
    match s.parse::<jiff::Timestamp>() {
        Ok(t) => human_duration(jiff::Timestamp::now().as_second() - t.as_second()),
        Err(_) => "<invalid>".into(),
    }
}

/// A column definition.
pub(super) fn col(
    name: &str,
    type_: &str,
    format: &str,
    priority: i64,
    description: &str,
) -> Value {
    json!({"name": name, "type": type_, "format": format, "description": description, "priority": priority})
}

/// A string column shown by default.
pub(super) fn text(name: &str, description: &str) -> Value {
    col(name, "string", "", 0, description)
}

/// A value as text; `<none>` when absent or null.
pub(super) fn s(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "<none>".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// A number, or 0.
pub(super) fn n(v: Option<&Value>) -> Value {
    v.cloned().filter(|x| x.is_number()).unwrap_or(json!(0))
}

/// How many entries a map or list has.
pub(super) fn count(v: Option<&Value>) -> usize {
    match v {
        Some(Value::Object(m)) => m.len(),
        Some(Value::Array(a)) => a.len(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(150), "2m30s");
        assert_eq!(human_duration(3600 * 5), "5h");
        assert_eq!(human_duration(86400 * 3), "3d");
    }
}
