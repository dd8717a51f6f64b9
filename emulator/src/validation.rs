//! Validation of object metadata Kubernetes applies to every type: names, labels, annotations.

use serde_json::Value;

use crate::error::Cause;

/// Which rule a resource's names follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// RFC 1123 subdomain (most resources).
    Subdomain,
    /// RFC 1123 label (namespaces, services).
    Label,
    /// Any path segment (RBAC objects).
    PathSegment,
}

/// The name rule Kubernetes uses for a resource.
pub fn name_rule(group: &str, resource: &str) -> NameRule {
    match (group, resource) {
        ("", "namespaces") | ("", "services") => NameRule::Label,
        ("rbac.authorization.k8s.io", _) => NameRule::PathSegment,
        _ => NameRule::Subdomain,
    }
}

/// Whether `s` is a lowercase RFC 1123 subdomain.
pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(|l| is_label_chars(l, usize::MAX))
}

/// Whether `s` is a lowercase RFC 1123 label.
pub fn is_dns_label(s: &str) -> bool {
    is_label_chars(s, 63)
}

fn is_label_chars(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

/// Checks a label key: optional DNS subdomain prefix, then a name of at most 63 characters.
pub fn validate_label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix
        && (p.is_empty() || p.len() > 253 || !crate::validation::is_dns_subdomain(p))
    {
        return Err(format!(
            "invalid label key \"{key}\": prefix part must be a lowercase RFC 1123 subdomain"
        ));
    }
    if name.is_empty()
        || name.len() > 63
        || !name.chars().all(is_name_char)
        || !name.starts_with(|c: char| c.is_ascii_alphanumeric())
        || !name.ends_with(|c: char| c.is_ascii_alphanumeric())
    {
        return Err(format!(
            "invalid label key \"{key}\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        ));
    }
    Ok(())
}

/// Checks a label value: empty, or at most 63 name characters starting and ending alphanumeric.
pub fn validate_label_value(v: &str) -> Result<(), String> {
    if v.is_empty() {
        return Ok(());
    }
    if v.len() > 63
        || !v.chars().all(is_name_char)
        || !v.starts_with(|c: char| c.is_ascii_alphanumeric())
        || !v.ends_with(|c: char| c.is_ascii_alphanumeric())
    {
        return Err(format!(
            "invalid label value: \"{v}\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        ));
    }
    Ok(())
}

/// Checks a name against a rule, producing Kubernetes' message.
pub fn validate_name(name: &str, rule: NameRule, field: &str) -> Option<Cause> {
    let v = Value::String(name.to_string());
    match rule {
        NameRule::Subdomain if !is_dns_subdomain(name) => Some(Cause::invalid(
            field,
            &v,
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
        )),
        NameRule::Label if !is_dns_label(name) => Some(Cause::invalid(
            field,
            &v,
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
        )),
        NameRule::PathSegment
            if name == "." || name == ".." || name.contains('/') || name.contains('%') =>
        {
            Some(Cause::invalid(
                field,
                &v,
                "may not be '.' or '..' and may not contain '/' or '%'",
            ))
        }
        _ => None,
    }
}

/// Validates labels, annotations, finalizers and ownerReferences of `metadata`.
pub fn validate_meta(meta: &Value, errs: &mut Vec<Cause>) {
    if let Some(labels) = meta.get("labels") {
        match labels {
            Value::Object(m) => {
                for (k, v) in m {
                    let field = "metadata.labels";
                    if let Err(e) = validate_label_key(k) {
                        errs.push(Cause::invalid(field, &Value::String(k.clone()), &e));
                    }
                    match v.as_str() {
                        Some(s) => {
                            if let Err(e) = validate_label_value(s) {
                                errs.push(Cause::invalid(field, v, &e));
                            }
                        }
                        None => errs.push(Cause::invalid(field, v, "label values must be strings")),
                    }
                }
            }
            Value::Null => {}
            other => errs.push(Cause::invalid("metadata.labels", other, "must be a map")),
        }
    }
    if let Some(ann) = meta.get("annotations") {
        match ann {
            Value::Object(m) => {
                let mut total = 0usize;
                for (k, v) in m {
                    if let Err(e) = validate_label_key(k) {
                        let e = e.replace("label key", "annotation key");
                        errs.push(Cause::invalid(
                            "metadata.annotations",
                            &Value::String(k.clone()),
                            &e,
                        ));
                    }
                    match v.as_str() {
                        Some(s) => total += k.len() + s.len(),
                        None => errs.push(Cause::invalid(
                            "metadata.annotations",
                            v,
                            "annotation values must be strings",
                        )),
                    }
                }
                if total > 256 * 1024 {
                    errs.push(Cause::too_long(
                        "metadata.annotations",
                        "must have at most 262144 bytes",
                    ));
                }
            }
            Value::Null => {}
            other => errs.push(Cause::invalid(
                "metadata.annotations",
                other,
                "must be a map",
            )),
        }
    }
    if let Some(f) = meta.get("finalizers") {
        match f {
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let field = format!("metadata.finalizers[{i}]");
                    match item.as_str() {
                        Some(s) => {
                            if let Err(e) = validate_label_key(s) {
                                let e = e.replace("label key", "finalizer name");
                                errs.push(Cause::invalid(field, item, &e));
                            }
                        }
                        None => errs.push(Cause::invalid(field, item, "must be a string")),
                    }
                }
            }
            Value::Null => {}
            other => errs.push(Cause::invalid(
                "metadata.finalizers",
                other,
                "must be a list",
            )),
        }
    }
    if let Some(Value::Array(refs)) = meta.get("ownerReferences") {
        let mut controllers = 0;
        for (i, r) in refs.iter().enumerate() {
            for key in ["apiVersion", "kind", "name", "uid"] {
                if r.get(key).and_then(Value::as_str).is_none_or(str::is_empty) {
                    errs.push(Cause::required(
                        format!("metadata.ownerReferences[{i}].{key}"),
                        "",
                    ));
                }
            }
            if r.get("controller").and_then(Value::as_bool) == Some(true) {
                controllers += 1;
            }
        }
        if controllers > 1 {
            errs.push(Cause::invalid(
                "metadata.ownerReferences",
                &Value::Array(refs.clone()),
                "Only one reference can have Controller set to true",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names() {
        assert!(validate_name("web-1.x", NameRule::Subdomain, "metadata.name").is_none());
        assert!(validate_name("Web", NameRule::Subdomain, "metadata.name").is_some());
        assert!(validate_name("a.b", NameRule::Label, "metadata.name").is_some());
        assert!(validate_name("system:admin", NameRule::PathSegment, "metadata.name").is_none());
        assert!(validate_name(&"a".repeat(254), NameRule::Subdomain, "metadata.name").is_some());
    }

    #[test]
    fn meta() {
        let mut e = Vec::new();
        validate_meta(
            &json!({"labels": {"ok": "v", "bad key": "v", "k": "bad value!"}, "finalizers": ["example.com/x", 3]}),
            &mut e,
        );
        assert_eq!(e.len(), 3, "{e:?}");
    }
}
