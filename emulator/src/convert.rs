//! Conversion between a resource's stored form and the version a client uses.

use serde_json::{Map, Value};

use crate::registry::{Conversion, ResourceType};

/// Pairs of (core/v1 field, events.k8s.io/v1 field) that only differ by name.
const EVENT_FIELDS: &[(&str, &str)] = &[
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("reportingComponent", "reportingController"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
];

fn rename(obj: &Value, from_idx: usize) -> Value {
    let Value::Object(m) = obj else {
        return obj.clone();
    };
    let mut out = Map::new();
    for (k, v) in m {
        let renamed = EVENT_FIELDS.iter().find_map(|pair| {
            let (a, b) = (pair.0, pair.1);
            let (from, to) = if from_idx == 0 { (a, b) } else { (b, a) };
            (k == from).then_some(to)
        });
        out.insert(renamed.unwrap_or(k).to_string(), v.clone());
    }
    Value::Object(out)
}

/// The stored object as the client's version sees it.
pub fn to_version(rt: &ResourceType, stored: &Value) -> Value {
    let mut out = match rt.conversion {
        Conversion::None => stored.clone(),
        Conversion::EventsV1 => rename(stored, 0),
    };
    if let Value::Object(m) = &mut out {
        m.insert("apiVersion".into(), Value::String(rt.api_version()));
        m.insert("kind".into(), Value::String(rt.kind.clone()));
    }
    out
}

/// The client's object in stored form.
pub fn to_storage(rt: &ResourceType, obj: Value) -> Value {
    match rt.conversion {
        Conversion::None => obj,
        Conversion::EventsV1 => {
            let mut out = rename(&obj, 1);
            if let Value::Object(m) = &mut out {
                m.insert("apiVersion".into(), Value::String("v1".into()));
            }
            out
        }
    }
}

/// Whether the stored object can be sent as-is to a client of this version.
pub fn is_identity(rt: &ResourceType, stored: &Value) -> bool {
    rt.conversion == Conversion::None
        && stored.get("apiVersion").and_then(Value::as_str) == Some(rt.api_version().as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;
    use serde_json::json;

    #[test]
    fn events_round_trip() {
        let reg = Registry::builtin();
        let v1 = reg.get("events.k8s.io", "v1", "events").unwrap();
        let obj = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "note": "hi", "regarding": {"name": "x"}, "reason": "R"});
        let stored = to_storage(&v1, obj.clone());
        assert_eq!(stored["message"], "hi");
        assert_eq!(stored["involvedObject"]["name"], "x");
        assert_eq!(to_version(&v1, &stored), obj);
    }
}
