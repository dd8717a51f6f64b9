//! What the operator adds to every child before applying it: namespace,
//! owner reference, labels and the plugin's digest.

use serde_json::{Map, Value, json};

use crate::plugin::{ChildObject, ObjectKey, Plugin};

/// Field manager of every server-side apply.
pub const FIELD_MANAGER: &str = "portfolio-operator";
/// Label naming the operator as the manager of a child.
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Label naming the custom resource a child belongs to.
pub const LABEL_INSTANCE: &str = "app.kubernetes.io/instance";
/// Label naming the plugin that produced a child.
///
/// DESIGN.md asks for `<name>@<version>` here, but `@` (and semver's `+`) are
/// not allowed in label values, so the name and version are two labels.
pub const LABEL_PLUGIN: &str = "portfolio.dev/plugin";
/// Label with the version of the plugin that produced a child.
pub const LABEL_PLUGIN_VERSION: &str = "portfolio.dev/plugin-version";
/// Annotation with the digest of the plugin that produced a child.
pub const ANNOTATION_PLUGIN_DIGEST: &str = "portfolio.dev/plugin-digest";
/// Annotation with a hash of everything else the operator applies to a
/// child: when it is already on the object (with every applied field), the
/// operator sends nothing; when the desired object changes in any way,
/// including a field it no longer sets, the hash changes and it applies.
pub const ANNOTATION_DESIRED_HASH: &str = "portfolio.dev/desired-hash";

/// Annotation on a workload (an `apps/v1` Deployment, StatefulSet or
/// DaemonSet) with a hash of its pod template as the operator applies it.
/// Comparing it with the desired template's hash says whether applying
/// would start a rollout; comparing the templates themselves cannot, because
/// the API server fills defaults into the live one.
pub const ANNOTATION_TEMPLATE_HASH: &str = "portfolio.dev/template-hash";

/// Annotation by which the owner of an existing object lets the operator
/// adopt it: its value names the custom resource, as `PortfolioApp/shop`.
/// Without it, an object the operator did not create is never taken over.
pub const ADOPT_ANNOTATION: &str = "portfolio.dev/adopt";

/// Metadata fields the API server owns; whatever a plugin put there is dropped.
const SERVER_OWNED_METADATA: [&str; 8] = [
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

/// The custom resource that owns the children.
#[derive(Clone, Debug)]
pub struct Owner<'a> {
    /// apiVersion of the owner reference (`portfolio.dev/v1alpha1`).
    pub api_version: &'a str,
    /// Kind of the owner reference (`PortfolioApp`, `DatabaseMigration`).
    pub kind: &'a str,
    /// Name of the owner; also the `app.kubernetes.io/instance` label.
    pub name: &'a str,
    /// Its namespace; every child goes there.
    pub namespace: &'a str,
    /// Its uid; without one (offline rendering) no owner reference is added.
    pub uid: Option<&'a str>,
}

/// A child ready to be applied: validated, policy-checked and decorated.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredObject {
    key: ObjectKey,
    object: Value,
}

impl DesiredObject {
    /// apiVersion, kind and name.
    pub fn key(&self) -> &ObjectKey {
        &self.key
    }

    /// The object to apply.
    pub fn object(&self) -> &Value {
        &self.object
    }

    /// The object to apply, taken.
    pub fn into_object(self) -> Value {
        self.object
    }

    /// The same object under another name (a retry of a Job, for instance).
    pub fn renamed(&self, name: &str) -> Self {
        let mut object = self.object.clone();
        if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            metadata.insert("name".into(), json!(name));
        }
        DesiredObject {
            key: ObjectKey {
                name: name.to_owned(),
                ..self.key.clone()
            },
            object,
        }
    }

    /// Set a label of the object (the host's own bookkeeping).
    pub fn set_label(&mut self, key: &str, value: &str) {
        self.set_metadata_entry("labels", key, value);
    }

    /// Set an annotation of the object (the host's own bookkeeping).
    pub fn set_annotation(&mut self, key: &str, value: &str) {
        self.set_metadata_entry("annotations", key, value);
    }

    /// Set a field of the object's `spec` (the host's own rules, such as a
    /// Job's deadline).
    pub fn set_spec_field(&mut self, field: &str, value: Value) {
        let Some(object) = self.object.as_object_mut() else {
            return;
        };
        if let Some(spec) = object
            .entry("spec")
            .or_insert_with(|| json!({}))
            .as_object_mut()
        {
            spec.insert(field.to_owned(), value);
        }
    }

    fn set_metadata_entry(&mut self, map: &str, key: &str, value: &str) {
        let Some(object) = self.object.as_object_mut() else {
            return;
        };
        let metadata = object.entry("metadata").or_insert_with(|| json!({}));
        let Some(metadata) = metadata.as_object_mut() else {
            return;
        };
        let entries = metadata.entry(map).or_insert_with(|| json!({}));
        if let Some(entries) = entries.as_object_mut() {
            entries.insert(key.to_owned(), json!(value));
        }
    }

    /// A desired object as written, for tests of what follows decoration.
    #[cfg(test)]
    pub(crate) fn from_value(object: Value) -> Option<Self> {
        let text = |pointer: &str| object.pointer(pointer)?.as_str().map(str::to_owned);
        Some(DesiredObject {
            key: ObjectKey {
                api_version: text("/apiVersion")?,
                kind: text("/kind")?,
                name: text("/metadata/name")?,
            },
            object,
        })
    }
}

/// Decorate a child that has passed the output policy.
pub fn decorate(child: ChildObject, owner: &Owner<'_>, plugin: &Plugin) -> DesiredObject {
    let key = child.key().clone();
    let mut object = child.into_object();
    // Validation guarantees an object here; anything else is replaced, never trusted.
    let mut metadata = take_map(&mut object, "metadata");
    for field in SERVER_OWNED_METADATA {
        metadata.remove(field);
    }
    metadata.insert("namespace".into(), json!(owner.namespace));

    let mut labels = take_map(&mut metadata, "labels");
    labels.insert(LABEL_MANAGED_BY.into(), json!(FIELD_MANAGER));
    labels.insert(LABEL_INSTANCE.into(), json!(owner.name));
    labels.insert(LABEL_PLUGIN.into(), json!(plugin.id().name));
    labels.insert(LABEL_PLUGIN_VERSION.into(), json!(plugin.version_label()));
    metadata.insert("labels".into(), Value::Object(labels));

    let mut annotations = take_map(&mut metadata, "annotations");
    // The operator's to set, after the hash: a plugin's own is not kept.
    annotations.remove(ANNOTATION_PLUGIN_DIGEST);
    metadata.insert("annotations".into(), Value::Object(annotations));

    // The owner is the operator's to set: a plugin cannot attach its objects
    // to anything else.
    metadata.remove("ownerReferences");
    if let Some(uid) = owner.uid {
        metadata.insert(
            "ownerReferences".into(),
            json!([{
                "apiVersion": owner.api_version,
                "kind": owner.kind,
                "name": owner.name,
                "uid": uid,
                "controller": true,
                "blockOwnerDeletion": true,
            }]),
        );
    }
    object.insert("metadata".into(), Value::Object(metadata));
    // Hashed before the plugin's digest goes on, which it leaves out.
    let hash = desired_hash(&object);
    // Derived from what the desired hash covers, so left out of it.
    let template = template_hash(&key, &object);
    if let Some(Value::Object(metadata)) = object.get_mut("metadata")
        && let Some(Value::Object(annotations)) = metadata.get_mut("annotations")
    {
        annotations.insert(ANNOTATION_PLUGIN_DIGEST.into(), json!(plugin.digest_text()));
        annotations.insert(ANNOTATION_DESIRED_HASH.into(), json!(hash));
        if let Some(template) = template {
            annotations.insert(ANNOTATION_TEMPLATE_HASH.into(), json!(template));
        }
    }
    DesiredObject {
        key,
        object: Value::Object(object),
    }
}

/// First 16 hex digits of the SHA-256 of the object's canonical JSON (keys
/// sorted), without the plugin's digest: that changes with the toolchain,
/// and a change of it is applied anyway (the value differs on the object).
fn desired_hash(object: &Map<String, Value>) -> String {
    crate::plugin::Digest::of_json(object).hex()[..16].to_owned()
}

/// The kinds whose `spec.template` is a pod template that rolls out.
const WORKLOADS: [&str; 3] = ["Deployment", "StatefulSet", "DaemonSet"];

/// First 16 hex digits of the SHA-256 of the pod template's canonical JSON,
/// for a workload ([`WORKLOADS`] of `apps/v1`) that has one.
fn template_hash(key: &ObjectKey, object: &Map<String, Value>) -> Option<String> {
    if key.api_version != "apps/v1" || !WORKLOADS.contains(&key.kind.as_str()) {
        return None;
    }
    let template = object.get("spec")?.get("template")?;
    Some(crate::plugin::Digest::of_json(template).hex()[..16].to_owned())
}

/// Remove `field` from `map` and return it if it is an object, else an empty one.
fn take_map(map: &mut Map<String, Value>, field: &str) -> Map<String, Value> {
    match map.remove(field) {
        Some(Value::Object(inner)) => inner,
        _ => Map::new(),
    }
}

/// `value` made into a valid label value: at most 63 characters of
/// `[A-Za-z0-9._-]`, starting and ending with an alphanumeric.
pub fn label_value(value: &str) -> String {
    let replaced: String = value
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(63)
        .collect();
    replaced
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_workload_templates_are_hashed_and_any_change_shows() {
        let key = |kind: &str| ObjectKey {
            api_version: "apps/v1".into(),
            kind: kind.into(),
            name: "shop".into(),
        };
        let object = |image: &str| -> Map<String, Value> {
            let value = json!({"spec": {"replicas": 2, "template": {"spec": {"containers": [
                {"name": "app", "image": image}]}}}});
            value.as_object().cloned().unwrap_or_default()
        };
        let before = template_hash(&key("Deployment"), &object("shop:1"));
        assert_eq!(before.as_deref().map(str::len), Some(16));
        assert_ne!(before, template_hash(&key("Deployment"), &object("shop:2")));
        let mut scaled = object("shop:1");
        scaled["spec"]["replicas"] = json!(5);
        assert_eq!(
            before,
            template_hash(&key("Deployment"), &scaled),
            "replicas are no template"
        );
        assert!(template_hash(&key("StatefulSet"), &object("shop:1")).is_some());
        assert_eq!(template_hash(&key("ReplicaSet"), &object("shop:1")), None);
        let job = ObjectKey {
            api_version: "batch/v1".into(),
            kind: "Job".into(),
            name: "migrate".into(),
        };
        assert_eq!(template_hash(&job, &object("shop:1")), None);
    }

    #[test]
    fn label_values_are_valid() {
        assert_eq!(label_value("1.2.3"), "1.2.3");
        assert_eq!(label_value("1.2.3-rc.1+build.5"), "1.2.3-rc.1_build.5");
        assert_eq!(label_value(&"9".repeat(80)).len(), 63);
        assert_eq!(label_value("+a+"), "a");
    }
}
