//! Defaulting: the `default`s of a schema filled into absent fields.

use serde_json::Value;

use super::Schema;

impl Schema {
    /// Fills in `default`s of absent (or null, non-nullable) fields, recursively.
    pub fn apply_defaults(&self, v: &mut Value) {
        if !self.defaults_within {
            return;
        }
        match v {
            Value::Object(map) => {
                for (k, s) in &self.properties {
                    let absent = match map.get(k) {
                        None => true,
                        Some(Value::Null) => !s.nullable,
                        Some(_) => false,
                    };
                    if absent && let Some(d) = &s.default {
                        let mut d = d.clone();
                        s.apply_defaults(&mut d);
                        map.insert(k.clone(), d);
                    }
                }
                for (k, child) in map.iter_mut() {
                    if let Some(s) = self.field(k) {
                        s.apply_defaults(child);
                    }
                }
            }
            Value::Array(items) => {
                if let Some(s) = &self.items {
                    for item in items {
                        s.apply_defaults(item);
                    }
                }
            }
            _ => {}
        }
    }
}
