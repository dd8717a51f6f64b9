//! The JSONPath subset of printer columns (`.a.b`, `.a[0]`, `.a[*].b`, `.a[?(@.k=="v")].b`).

use serde_json::Value;

/// Evaluates the simple JSONPath subset printer columns use: `.a.b`, `.a[0]`, `.a[*].b`,
/// `.a[?(@.k=="v")].b`.
pub fn json_path(obj: &Value, path: &str) -> Vec<Value> {
    let mut cur = vec![obj.clone()];
    let mut rest = path
        .trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .trim();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let key = &r[..end];
            rest = &r[end..];
            if key.is_empty() {
                continue;
            }
            cur = cur.iter().filter_map(|v| v.get(key).cloned()).collect();
        } else if let Some(r) = rest.strip_prefix('[') {
            let Some(end) = r.find(']') else {
                return Vec::new();
            };
            let inner = &r[..end];
            rest = &r[end + 1..];
            cur = if inner == "*" {
                cur.iter()
                    .flat_map(|v| match v {
                        Value::Array(a) => a.clone(),
                        Value::Object(m) => m.values().cloned().collect(),
                        _ => Vec::new(),
                    })
                    .collect()
            } else if let Some(f) = inner.strip_prefix("?(@.").and_then(|f| f.strip_suffix(')')) {
                let (field, want) = match f.split_once("==") {
                    Some((a, b)) => (
                        a.trim(),
                        Some(b.trim().trim_matches(|c| c == '"' || c == '\'').to_string()),
                    ),
                    None => (f.trim(), None),
                };
                cur.iter()
                    .flat_map(|v| v.as_array().cloned().unwrap_or_default())
                    .filter(|item| {
                        let got = item.get(field);
                        match (&want, got) {
                            (Some(w), Some(Value::String(s))) => s == w,
                            (Some(w), Some(other)) => {
                                *other == serde_json::from_str::<Value>(w).unwrap_or(Value::Null)
                            }
                            (None, Some(_)) => true,
                            _ => false,
                        }
                    })
                    .collect()
            } else if let Ok(i) = inner.parse::<i64>() {
                cur.iter()
                    .filter_map(|v| {
                        let a = v.as_array()?;
                        let idx = if i < 0 { a.len() as i64 + i } else { i };
                        a.get(usize::try_from(idx).ok()?).cloned()
                    })
                    .collect()
            } else {
                let key = inner.trim_matches(|c| c == '\'' || c == '"');
                cur.iter().filter_map(|v| v.get(key).cloned()).collect()
            };
        } else {
            return Vec::new();
        }
    }
    cur
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn json_paths() {
        let o = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "X", "status": "False"}]}, "spec": {"a": [1, 2]}});
        assert_eq!(
            json_path(&o, ".status.conditions[?(@.type==\"Ready\")].status"),
            vec![json!("True")]
        );
        assert_eq!(json_path(&o, ".spec.a[1]"), vec![json!(2)]);
        assert_eq!(json_path(&o, ".spec.a[*]").len(), 2);
        assert!(json_path(&o, ".nope.x").is_empty());
        assert!(json_path(&o, "[[[").is_empty());
    }
}
