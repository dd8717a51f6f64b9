//! Pruning: dropping what a schema does not declare, as Kubernetes does on every write.

use serde_json::Value;

use super::Schema;

impl Schema {
    /// Drops fields the schema does not know (Kubernetes' pruning) and non-nullable nulls.
    /// `root` keeps apiVersion, kind and metadata.
    pub fn prune(&self, v: &mut Value, root: bool) {
        match v {
            Value::Object(map) => {
                if self.preserve_unknown && self.properties.is_empty() && self.additional.is_none()
                {
                    return;
                }
                let keep_unknown = self.preserve_unknown || self.additional_any;
                map.retain(|k, child| {
                    if root && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                        return true;
                    }
                    match self.field(k) {
                        Some(s) => !(child.is_null() && !s.nullable && s.default.is_none()),
                        None => keep_unknown,
                    }
                });
                for (k, child) in map.iter_mut() {
                    if root && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                        continue;
                    }
                    if let Some(s) = self.field(k) {
                        s.prune(child, false);
                    }
                }
            }
            Value::Array(items) => {
                if let Some(s) = &self.items {
                    for item in items {
                        s.prune(item, false);
                    }
                }
            }
            _ => {}
        }
    }
}

impl Schema {
    /// What [`Schema::prune`] would do to `v`, which it leaves as it is: whether it
    /// would drop anything, and the paths (under `path`, `v`'s) of the non-null fields
    /// it would drop (Kubernetes' unknown fields) appended to `out`, in the order of the
    /// object's keys. Pruning almost never drops anything, so a write need not keep a
    /// copy of its object to tell what it lost.
    pub fn prunable(
        &self,
        v: &Value,
        root: bool,
        path: &mut String,
        out: &mut Vec<String>,
    ) -> bool {
        let mut any = false;
        match v {
            Value::Object(map) => {
                if self.preserve_unknown && self.properties.is_empty() && self.additional.is_none()
                {
                    return false;
                }
                let keep_unknown = self.preserve_unknown || self.additional_any;
                for (k, child) in map {
                    if root && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                        continue;
                    }
                    let mark = path.len();
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(k);
                    match self.field(k) {
                        Some(s) if child.is_null() && !s.nullable && s.default.is_none() => {
                            any = true;
                        }
                        Some(s) => any |= s.prunable(child, false, path, out),
                        None if keep_unknown => {}
                        None => {
                            any = true;
                            if !child.is_null() {
                                out.push(path.clone());
                            }
                        }
                    }
                    path.truncate(mark);
                }
            }
            Value::Array(items) => {
                if let Some(s) = &self.items {
                    for (i, item) in items.iter().enumerate() {
                        let mark = path.len();
                        path.push_str(&format!("[{i}]"));
                        any |= s.prunable(item, false, path, out);
                        path.truncate(mark);
                    }
                }
            }
            _ => {}
        }
        any
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::tests::schema;

    #[test]
    fn prunes_and_defaults() {
        let s = schema();
        let mut v = json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "a"},
            "spec": {"image": "x", "unknown": 1, "extra": {"free": {"form": true}}}, "junk": 1});
        s.prune(&mut v, true);
        s.apply_defaults(&mut v);
        assert_eq!(
            v,
            json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "a"},
                "spec": {"image": "x", "replicas": 1, "extra": {"free": {"form": true}}}})
        );
    }
}
