//! Validation of what a plugin returns: raw JSON text in, typed objects out.
//!
//! Nothing a plugin returns reaches the rest of the operator before it passes
//! through here, so the types in this module are proof that the checks ran.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use serde_json::{Map, Value};

use super::bindings::generator::exports::portfolio::plugin::generation::GenerateOutput;
use super::bindings::types::{Condition, ConditionStatus};
use super::error::CallFailure;
use super::limits::Limits;

/// Condition types the operator reports itself; a plugin may not set them.
const RESERVED_CONDITIONS: [&str; 3] = ["Ready", "Progressing", "Degraded"];

/// Longest requeue hint honoured; longer ones are shortened to this.
const MAX_REQUEUE: Duration = Duration::from_secs(24 * 60 * 60);

/// Identity of an object within a namespace: apiVersion, kind and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    /// `apiVersion`, e.g. `apps/v1`.
    pub api_version: String,
    /// `kind`, e.g. `Deployment`.
    pub kind: String,
    /// `metadata.name`, a DNS-1123 subdomain.
    pub name: String,
}

impl ObjectKey {
    /// The API group (`""` for the core group).
    pub fn group(&self) -> &str {
        self.api_version
            .rsplit_once('/')
            .map_or("", |(group, _)| group)
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {:?}", self.api_version, self.kind, self.name)
    }
}

/// An object a plugin returned that is well-formed: a JSON object with
/// apiVersion, kind and a valid metadata.name. Policy has not been checked yet.
#[derive(Clone, Debug, PartialEq)]
pub struct ChildObject {
    key: ObjectKey,
    namespace: Option<String>,
    object: Map<String, Value>,
}

impl ChildObject {
    /// What identifies it within the namespace: apiVersion, kind and name.
    pub fn key(&self) -> &ObjectKey {
        &self.key
    }

    /// `metadata.namespace` as the plugin set it, if it did.
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// The object as the plugin returned it, metadata included.
    pub fn object(&self) -> &Map<String, Value> {
        &self.object
    }

    /// The object as the plugin returned it, without a copy (to decorate it).
    pub fn into_object(self) -> Map<String, Value> {
        self.object
    }
}

/// Status of a condition a plugin reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PluginConditionStatus {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// The plugin cannot tell yet.
    Unknown,
}

impl PluginConditionStatus {
    /// As Kubernetes spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            PluginConditionStatus::True => "True",
            PluginConditionStatus::False => "False",
            PluginConditionStatus::Unknown => "Unknown",
        }
    }
}

/// A condition a plugin reports, checked against Kubernetes' rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginCondition {
    /// CamelCase, at most 316 characters, and none of the operator's own
    /// (`Ready`, `Progressing`, `Degraded`).
    pub type_: String,
    /// Whether the condition holds.
    pub status: PluginConditionStatus,
    /// CamelCase, at most 1024 characters: why the status is what it is.
    pub reason: String,
    /// Free text for the app's owner, at most 32 KiB.
    pub message: String,
}

/// What `generate` returned, before any check: only its object texts may be
/// looked at. [`super::Plugin::validate`] turns it into a [`GeneratedOutput`].
#[derive(Clone, Debug)]
pub struct RawGenerateOutput(pub(crate) GenerateOutput);

impl RawGenerateOutput {
    /// The objects as the plugin returned them, unchecked.
    pub fn objects(&self) -> &[String] {
        &self.0.objects
    }
}

/// What `generate` returned, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct GeneratedOutput {
    /// The desired children, in the plugin's order.
    pub objects: Vec<ChildObject>,
    /// Conditions the plugin reports, added to the operator's in status.
    pub conditions: Vec<PluginCondition>,
    /// Extra status fields (a JSON object).
    pub status: Map<String, Value>,
    /// When to be called again even if nothing changes.
    pub requeue_after: Option<Duration>,
}

fn malformed(detail: impl Into<String>) -> CallFailure {
    CallFailure::MalformedOutput {
        detail: detail.into(),
    }
}

/// Check the size caps before anything is parsed.
fn check_size<'a>(
    texts: impl Iterator<Item = &'a str>,
    object_count: usize,
    limits: &Limits,
) -> Result<(), CallFailure> {
    if object_count > limits.max_objects {
        return Err(CallFailure::TooManyObjects {
            count: object_count,
            limit: limits.max_objects,
        });
    }
    let bytes: usize = texts.map(str::len).sum();
    if bytes > limits.max_output_bytes {
        return Err(CallFailure::OutputTooLarge {
            bytes,
            limit: limits.max_output_bytes,
        });
    }
    Ok(())
}

/// Validate the raw output of `generate`.
pub(crate) fn generate_output(
    raw: GenerateOutput,
    limits: &Limits,
) -> Result<GeneratedOutput, CallFailure> {
    let condition_texts = raw
        .conditions
        .iter()
        .flat_map(|c| [c.type_.as_str(), c.reason.as_str(), c.message.as_str()]);
    check_size(
        raw.objects
            .iter()
            .map(String::as_str)
            .chain(condition_texts)
            .chain([raw.status.as_str()]),
        raw.objects.len(),
        limits,
    )?;
    let objects = objects(&raw.objects)?;
    let conditions = raw
        .conditions
        .into_iter()
        .map(condition)
        .collect::<Result<Vec<_>, _>>()?;
    let mut seen = BTreeSet::new();
    for condition in &conditions {
        if !seen.insert(condition.type_.as_str()) {
            return Err(malformed(format!(
                "condition {} is reported twice",
                condition.type_
            )));
        }
    }
    let status = match raw.status.trim() {
        "" => Map::new(),
        text => match serde_json::from_str(text) {
            Ok(Value::Object(map)) => map,
            Ok(other) => {
                return Err(malformed(format!(
                    "status is {}, not a JSON object",
                    json_type(&other)
                )));
            }
            Err(error) => return Err(malformed(format!("status is not JSON: {error}"))),
        },
    };
    Ok(GeneratedOutput {
        objects,
        conditions,
        status,
        requeue_after: raw
            .requeue_after_seconds
            .map(|seconds| Duration::from_secs(u64::from(seconds.max(1))).min(MAX_REQUEUE)),
    })
}

/// Validate a list of objects (the output of `generate` or `finalize`).
pub(crate) fn checked_objects(
    texts: &[String],
    limits: &Limits,
) -> Result<Vec<ChildObject>, CallFailure> {
    check_size(texts.iter().map(String::as_str), texts.len(), limits)?;
    objects(texts)
}

fn objects(texts: &[String]) -> Result<Vec<ChildObject>, CallFailure> {
    let mut keys = BTreeSet::new();
    let mut objects = Vec::with_capacity(texts.len());
    for (index, text) in texts.iter().enumerate() {
        let object =
            object(text).map_err(|detail| malformed(format!("object {index}: {detail}")))?;
        let identity = (
            object.key.group().to_owned(),
            object.key.kind.clone(),
            object.key.name.clone(),
        );
        if !keys.insert(identity) {
            return Err(malformed(format!(
                "object {index}: {} is returned twice",
                object.key
            )));
        }
        objects.push(object);
    }
    Ok(objects)
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn object(text: &str) -> Result<ChildObject, String> {
    let value: Value = serde_json::from_str(text).map_err(|error| format!("not JSON: {error}"))?;
    let Value::Object(object) = value else {
        return Err(format!("is {}, not a Kubernetes object", json_type(&value)));
    };
    let api_version = match object.get("apiVersion") {
        Some(Value::String(s)) if is_api_version(s) => s.clone(),
        Some(Value::String(s)) => return Err(format!("apiVersion {s:?} is not valid")),
        Some(_) => return Err("apiVersion is not a string".into()),
        None => return Err("apiVersion is missing".into()),
    };
    let kind = match object.get("kind") {
        Some(Value::String(s)) if is_kind(s) => s.clone(),
        Some(Value::String(s)) => return Err(format!("kind {s:?} is not valid")),
        Some(_) => return Err("kind is not a string".into()),
        None => return Err("kind is missing".into()),
    };
    let Some(Value::Object(metadata)) = object.get("metadata") else {
        return Err(format!("{kind}: metadata is missing or not an object"));
    };
    let name = match metadata.get("name") {
        Some(Value::String(s)) if is_dns_subdomain(s) => s.clone(),
        Some(Value::String(s)) => {
            return Err(format!(
                "{kind}: metadata.name {s:?} is not a valid name (lower case letters, digits, '-' and '.', at most 253 characters)"
            ));
        }
        Some(_) => return Err(format!("{kind}: metadata.name is not a string")),
        None => return Err(format!("{kind}: metadata.name is missing")),
    };
    let namespace = match metadata.get("namespace") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(format!("{kind} {name}: metadata.namespace is not a string")),
    };
    Ok(ChildObject {
        key: ObjectKey {
            api_version,
            kind,
            name,
        },
        namespace,
        object,
    })
}

fn condition(raw: Condition) -> Result<PluginCondition, CallFailure> {
    if !is_condition_type(&raw.type_) {
        return Err(malformed(format!(
            "condition type {:?} is not valid (CamelCase, at most 316 characters)",
            raw.type_
        )));
    }
    if RESERVED_CONDITIONS.contains(&raw.type_.as_str()) {
        return Err(malformed(format!(
            "condition type {} is reserved for the operator",
            raw.type_
        )));
    }
    if !is_condition_reason(&raw.reason) {
        return Err(malformed(format!(
            "condition {}: reason {:?} is not valid (CamelCase, at most 1024 characters)",
            raw.type_, raw.reason
        )));
    }
    if raw.message.len() > 32 * 1024 {
        return Err(malformed(format!(
            "condition {}: message is longer than 32 KiB",
            raw.type_
        )));
    }
    Ok(PluginCondition {
        type_: raw.type_,
        status: match raw.status {
            ConditionStatus::True => PluginConditionStatus::True,
            ConditionStatus::False => PluginConditionStatus::False,
            ConditionStatus::Unknown => PluginConditionStatus::Unknown,
        },
        reason: raw.reason,
        message: raw.message,
    })
}

/// `v1` or `group/version`, as Kubernetes spells them.
fn is_api_version(value: &str) -> bool {
    let (group, version) = value.rsplit_once('/').unwrap_or(("", value));
    (group.is_empty() || is_dns_subdomain(group))
        && !version.is_empty()
        && version.len() <= 63
        && version
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

fn is_kind(value: &str) -> bool {
    value.len() <= 63
        && value.starts_with(|c: char| c.is_ascii_uppercase())
        && value.chars().all(|c| c.is_ascii_alphanumeric())
}

/// RFC 1123 subdomain: what Kubernetes requires of most object names.
pub(crate) fn is_dns_subdomain(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 253
        && value.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn is_condition_type(value: &str) -> bool {
    // Kubernetes allows an optional DNS-subdomain prefix: `example.com/MyType`.
    let (prefix, name) = value.rsplit_once('/').unwrap_or(("", value));
    value.len() <= 316
        && (prefix.is_empty() || is_dns_subdomain(prefix))
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn is_condition_reason(value: &str) -> bool {
    value.len() <= 1024
        && value.starts_with(|c: char| c.is_ascii_alphabetic())
        && !value.ends_with([',', ':'])
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ',' | ':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(objects: &[&str]) -> GenerateOutput {
        GenerateOutput {
            objects: objects.iter().map(|s| (*s).to_owned()).collect(),
            conditions: vec![],
            status: "{}".into(),
            requeue_after_seconds: None,
        }
    }

    fn detail(result: Result<GeneratedOutput, CallFailure>) -> String {
        match result {
            Err(CallFailure::MalformedOutput { detail }) => detail,
            other => panic!("expected malformed output, got {other:?}"),
        }
    }

    const CM: &str = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"}}"#;

    #[test]
    fn accepts_well_formed_objects() {
        let out = generate_output(output(&[CM]), &Limits::default()).unwrap();
        assert_eq!(out.objects.len(), 1);
        assert_eq!(out.objects[0].key().kind, "ConfigMap");
        assert_eq!(out.objects[0].key().group(), "");
        assert_eq!(out.objects[0].namespace(), None);
    }

    #[test]
    fn names_what_is_wrong_with_each_object() {
        let cases = [
            ("{not json", "object 0: not JSON"),
            ("[1,2]", "object 0: is an array, not a Kubernetes object"),
            ("42", "object 0: is a number"),
            (
                r#"{"kind":"ConfigMap","metadata":{"name":"a"}}"#,
                "apiVersion is missing",
            ),
            (
                r#"{"apiVersion":"v1","metadata":{"name":"a"}}"#,
                "kind is missing",
            ),
            (
                r#"{"apiVersion":"v1","kind":"ConfigMap"}"#,
                "metadata is missing",
            ),
            (
                r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{}}"#,
                "metadata.name is missing",
            ),
            (
                r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"A_b"}}"#,
                "is not a valid name",
            ),
            (
                r#"{"apiVersion":"v 1","kind":"ConfigMap","metadata":{"name":"a"}}"#,
                "apiVersion \"v 1\"",
            ),
            (
                r#"{"apiVersion":"v1","kind":"configMap","metadata":{"name":"a"}}"#,
                "kind \"configMap\"",
            ),
            (
                r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","namespace":3}}"#,
                "namespace is not a string",
            ),
        ];
        for (text, expected) in cases {
            let got = detail(generate_output(output(&[text]), &Limits::default()));
            assert!(got.contains(expected), "{text}: {got}");
        }
    }

    #[test]
    fn duplicates_are_malformed() {
        let got = detail(generate_output(output(&[CM, CM]), &Limits::default()));
        assert!(
            got.contains("object 1: v1 ConfigMap \"a\" is returned twice"),
            "{got}"
        );
    }

    #[test]
    fn size_caps_are_checked_before_parsing() {
        let limits = Limits {
            max_output_bytes: 10,
            ..Limits::default()
        };
        assert!(matches!(
            generate_output(output(&["x".repeat(11).as_str()]), &limits),
            Err(CallFailure::OutputTooLarge {
                bytes: 13,
                limit: 10
            })
        ));
        let limits = Limits {
            max_objects: 1,
            ..Limits::default()
        };
        assert!(matches!(
            generate_output(output(&[CM, CM]), &limits),
            Err(CallFailure::TooManyObjects { count: 2, limit: 1 })
        ));
    }

    #[test]
    fn conditions_follow_kubernetes_rules() {
        let mut raw = output(&[]);
        raw.conditions.push(Condition {
            type_: "Ready".into(),
            status: ConditionStatus::True,
            reason: "Fine".into(),
            message: String::new(),
        });
        assert!(detail(generate_output(raw.clone(), &Limits::default())).contains("reserved"));
        raw.conditions[0].type_ = "ConfigValid".into();
        raw.conditions[0].reason = "not valid!".into();
        assert!(detail(generate_output(raw.clone(), &Limits::default())).contains("reason"));
        raw.conditions[0].reason = "MissingKey".into();
        let out = generate_output(raw, &Limits::default()).unwrap();
        assert_eq!(out.conditions[0].status.as_str(), "True");
    }

    #[test]
    fn status_must_be_an_object_and_requeue_is_bounded() {
        let mut raw = output(&[]);
        raw.status = "[]".into();
        assert!(
            detail(generate_output(raw.clone(), &Limits::default())).contains("status is an array")
        );
        raw.status = String::new();
        raw.requeue_after_seconds = Some(u32::MAX);
        let out = generate_output(raw, &Limits::default()).unwrap();
        assert_eq!(out.requeue_after, Some(MAX_REQUEUE));
        assert!(out.status.is_empty());
    }
}
