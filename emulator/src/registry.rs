//! The registry of served resource types: built-ins and the ones CRDs add share one description.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use crate::schema::Schema;

/// Where a resource's objects are kept: all versions of one group/resource share it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupResource {
    /// API group, empty for the core group.
    pub group: String,
    /// Plural resource name.
    pub resource: String,
}

impl GroupResource {
    /// A group/resource pair.
    pub fn new(group: &str, resource: &str) -> Self {
        GroupResource {
            group: group.to_string(),
            resource: resource.to_string(),
        }
    }
}

/// How an object's stored form relates to the version a client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conversion {
    /// Only `apiVersion` differs between versions (CRDs without webhooks, single-version types).
    None,
    /// `events.k8s.io/v1` Event, stored as `core/v1` Event (Kubernetes converts the same way).
    EventsV1,
}

/// Where the scale subresource finds replicas and the selector in the parent object.
#[derive(Debug, Clone, PartialEq)]
pub struct ScaleSpec {
    /// JSON path (dotted, leading dot) of the desired replicas, e.g. `.spec.replicas`.
    pub spec_replicas: String,
    /// JSON path of the observed replicas, e.g. `.status.replicas`.
    pub status_replicas: String,
    /// JSON path of the label selector string or object, if any.
    pub label_selector: Option<String>,
}

/// One printer column of a Table response (`additionalPrinterColumns` for CRDs).
#[derive(Debug, Clone, PartialEq)]
pub struct PrinterColumn {
    /// Column header.
    pub name: String,
    /// OpenAPI type: string, integer, number, boolean, date.
    pub type_: String,
    /// Format hint (e.g. `name`).
    pub format: String,
    /// Description shown by `kubectl explain`-style tools.
    pub description: String,
    /// Priority: 0 shown by default, higher only with `-o wide`.
    pub priority: i64,
    /// Simple JSONPath into the object.
    pub json_path: String,
}

/// A served resource type at one group/version.
#[derive(Debug, Clone)]
pub struct ResourceType {
    /// API group, empty for core.
    pub group: String,
    /// API version, e.g. `v1`.
    pub version: String,
    /// Plural name used in URLs.
    pub resource: String,
    /// Singular name.
    pub singular: String,
    /// Kind.
    pub kind: String,
    /// List kind, usually `<Kind>List`.
    pub list_kind: String,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// Short names (`kubectl get cm`).
    pub short_names: Vec<String>,
    /// Categories (`kubectl get all`).
    pub categories: Vec<String>,
    /// Whether a `/status` subresource splits status from the main resource.
    pub status: bool,
    /// The `/scale` subresource, if served.
    pub scale: Option<ScaleSpec>,
    /// Whether `metadata.generation` is tracked.
    pub generation: bool,
    /// Structural schema (CRDs): validation, pruning, defaulting, list types.
    pub schema: Option<Arc<Schema>>,
    /// Printer columns for Table responses; empty means Kubernetes' defaults for the type.
    pub printer_columns: Vec<PrinterColumn>,
    /// Whether this type comes from a CRD (no strategic merge patch, schema-driven).
    pub custom: bool,
    /// Whether this is the preferred (storage) version in its group.
    pub preferred: bool,
    /// Storage key shared by all versions.
    pub storage: GroupResource,
    /// How to convert between this version and the stored form.
    pub conversion: Conversion,
}

impl ResourceType {
    /// `group/version`, or `version` for core.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The group/resource, as used in error messages.
    pub fn group_resource(&self) -> GroupResource {
        GroupResource::new(&self.group, &self.resource)
    }

    fn builtin(
        group: &str,
        version: &str,
        resource: &str,
        kind: &str,
        namespaced: bool,
        short_names: &[&str],
    ) -> Self {
        ResourceType {
            group: group.to_string(),
            version: version.to_string(),
            resource: resource.to_string(),
            singular: kind.to_lowercase(),
            kind: kind.to_string(),
            list_kind: format!("{kind}List"),
            namespaced,
            short_names: short_names.iter().map(|s| s.to_string()).collect(),
            categories: Vec::new(),
            status: false,
            scale: None,
            generation: false,
            schema: None,
            printer_columns: Vec::new(),
            custom: false,
            preferred: true,
            storage: GroupResource::new(group, resource),
            conversion: Conversion::None,
        }
    }

    fn all(mut self) -> Self {
        self.categories.push("all".to_string());
        self
    }

    fn with_status(mut self) -> Self {
        self.status = true;
        self
    }

    fn with_generation(mut self) -> Self {
        self.generation = true;
        self
    }

    fn with_scale(mut self, selector: bool) -> Self {
        self.scale = Some(ScaleSpec {
            spec_replicas: ".spec.replicas".into(),
            status_replicas: ".status.replicas".into(),
            label_selector: selector.then(|| ".spec.selector".into()),
        });
        self
    }
}

/// All served resource types, indexed for URL lookups and discovery.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    /// (group, version, resource) to type.
    types: BTreeMap<(String, String, String), Arc<ResourceType>>,
}

impl Registry {
    /// The built-in types Kubernetes serves that the emulator supports.
    pub fn builtin() -> Self {
        let rt = ResourceType::builtin;
        let mut events_v1 = rt("events.k8s.io", "v1", "events", "Event", true, &["ev"]);
        events_v1.storage = GroupResource::new("", "events");
        events_v1.conversion = Conversion::EventsV1;
        // kubectl prefers core/v1 events for the short name, as Kubernetes lists it first.
        events_v1.short_names.clear();
        let mut crd = rt(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            false,
            &["crd", "crds"],
        )
        .with_status();
        crd.categories.push("api-extensions".into());
        let list = vec![
            rt("", "v1", "namespaces", "Namespace", false, &["ns"]).with_status(),
            rt("", "v1", "configmaps", "ConfigMap", true, &["cm"]),
            rt("", "v1", "secrets", "Secret", true, &[]),
            rt("", "v1", "services", "Service", true, &["svc"])
                .with_status()
                .all(),
            rt("", "v1", "serviceaccounts", "ServiceAccount", true, &["sa"]),
            rt(
                "",
                "v1",
                "persistentvolumeclaims",
                "PersistentVolumeClaim",
                true,
                &["pvc"],
            )
            .with_status(),
            rt("", "v1", "pods", "Pod", true, &["po"])
                .with_status()
                .all(),
            rt("", "v1", "events", "Event", true, &["ev"]),
            rt("", "v1", "endpoints", "Endpoints", true, &["ep"]),
            rt("", "v1", "nodes", "Node", false, &["no"]).with_status(),
            rt(
                "",
                "v1",
                "persistentvolumes",
                "PersistentVolume",
                false,
                &["pv"],
            )
            .with_status(),
            rt(
                "storage.k8s.io",
                "v1",
                "storageclasses",
                "StorageClass",
                false,
                &["sc"],
            ),
            events_v1,
            rt("apps", "v1", "deployments", "Deployment", true, &["deploy"])
                .with_status()
                .with_scale(true)
                .with_generation()
                .all(),
            rt("apps", "v1", "replicasets", "ReplicaSet", true, &["rs"])
                .with_status()
                .with_scale(true)
                .with_generation()
                .all(),
            rt("apps", "v1", "statefulsets", "StatefulSet", true, &["sts"])
                .with_status()
                .with_scale(true)
                .with_generation()
                .all(),
            rt("apps", "v1", "daemonsets", "DaemonSet", true, &["ds"])
                .with_status()
                .with_generation()
                .all(),
            rt("batch", "v1", "jobs", "Job", true, &[])
                .with_status()
                .with_generation()
                .all(),
            rt("batch", "v1", "cronjobs", "CronJob", true, &["cj"])
                .with_status()
                .with_generation()
                .all(),
            rt(
                "autoscaling",
                "v2",
                "horizontalpodautoscalers",
                "HorizontalPodAutoscaler",
                true,
                &["hpa"],
            )
            .with_status()
            .with_generation()
            .all(),
            rt(
                "policy",
                "v1",
                "poddisruptionbudgets",
                "PodDisruptionBudget",
                true,
                &["pdb"],
            )
            .with_status()
            .with_generation(),
            rt("coordination.k8s.io", "v1", "leases", "Lease", true, &[]),
            rt(
                "networking.k8s.io",
                "v1",
                "networkpolicies",
                "NetworkPolicy",
                true,
                &["netpol"],
            )
            .with_generation(),
            rt(
                "networking.k8s.io",
                "v1",
                "ingresses",
                "Ingress",
                true,
                &["ing"],
            )
            .with_status()
            .with_generation(),
            rt(
                "networking.k8s.io",
                "v1",
                "ingressclasses",
                "IngressClass",
                false,
                &[],
            ),
            rt(
                "rbac.authorization.k8s.io",
                "v1",
                "roles",
                "Role",
                true,
                &[],
            ),
            rt(
                "rbac.authorization.k8s.io",
                "v1",
                "rolebindings",
                "RoleBinding",
                true,
                &[],
            ),
            rt(
                "rbac.authorization.k8s.io",
                "v1",
                "clusterroles",
                "ClusterRole",
                false,
                &[],
            ),
            rt(
                "rbac.authorization.k8s.io",
                "v1",
                "clusterrolebindings",
                "ClusterRoleBinding",
                false,
                &[],
            ),
            crd.with_generation(),
        ];
        let mut reg = Registry::default();
        for t in list {
            reg.insert(t);
        }
        reg
    }

    /// Adds or replaces a type.
    pub fn insert(&mut self, t: ResourceType) {
        self.types.insert(
            (t.group.clone(), t.version.clone(), t.resource.clone()),
            Arc::new(t),
        );
    }

    /// Removes every version of a group/resource (a deleted CRD).
    pub fn remove_storage(&mut self, storage: &GroupResource) {
        self.types.retain(|_, t| &t.storage != storage);
    }

    /// The type served at group/version/resource.
    pub fn get(&self, group: &str, version: &str, resource: &str) -> Option<Arc<ResourceType>> {
        self.types
            .get(&(group.to_string(), version.to_string(), resource.to_string()))
            .cloned()
    }

    /// The type of an apiVersion/kind pair.
    pub fn by_kind(&self, api_version: &str, kind: &str) -> Option<Arc<ResourceType>> {
        let (group, version) = split_api_version(api_version);
        self.types
            .values()
            .find(|t| t.group == group && t.version == version && t.kind == kind)
            .cloned()
    }

    /// The preferred version's type for a stored group/resource (for owner lookups, GC).
    pub fn preferred_for(&self, storage: &GroupResource) -> Option<Arc<ResourceType>> {
        let mut candidates = self.types.values().filter(|t| &t.storage == storage);
        let first = candidates.next()?.clone();
        Some(
            std::iter::once(first.clone())
                .chain(candidates.cloned())
                .find(|t| t.preferred && t.conversion == Conversion::None)
                .unwrap_or(first),
        )
    }

    /// Every served type.
    pub fn all(&self) -> impl Iterator<Item = &Arc<ResourceType>> {
        self.types.values()
    }

    /// Whether any version of this group is served.
    pub fn has_group(&self, group: &str) -> bool {
        self.types.values().any(|t| t.group == group)
    }

    /// Groups with their versions, preferred version first; core group excluded.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: BTreeMap<String, Vec<(bool, String)>> = BTreeMap::new();
        for t in self.types.values() {
            if t.group.is_empty() {
                continue;
            }
            let versions = groups.entry(t.group.clone()).or_default();
            if let Some(v) = versions.iter_mut().find(|(_, v)| *v == t.version) {
                v.0 |= t.preferred;
            } else {
                versions.push((t.preferred, t.version.clone()));
            }
        }
        groups
            .into_iter()
            .map(|(g, mut vs)| {
                // Kubernetes prefers the highest-priority served version, not the storage one.
                vs.sort_by(|a, b| version_priority(&a.1, &b.1));
                (g, vs.into_iter().map(|(_, v)| v).collect())
            })
            .collect()
    }
}

/// Kubernetes' version ordering: GA > beta > alpha, higher numbers first.
pub fn version_priority(a: &str, b: &str) -> std::cmp::Ordering {
    fn key(v: &str) -> (u8, u64, u64) {
        let rest = v.strip_prefix('v').unwrap_or("");
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        let major: u64 = match digits.parse() {
            Ok(m) => m,
            Err(_) => return (0, 0, 0),
        };
        let tail = &rest[digits.len()..];
        if tail.is_empty() {
            return (3, major, 0);
        }
        let (level, num) = if let Some(n) = tail.strip_prefix("beta") {
            (2, n)
        } else if let Some(n) = tail.strip_prefix("alpha") {
            (1, n)
        } else {
            return (0, 0, 0);
        };
        (level, major, num.parse().unwrap_or(0))
    }
    key(b).cmp(&key(a)).then_with(|| a.cmp(b))
}

/// Splits `group/version` (or `v1`) into its parts.
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

/// Reads a dotted JSON path such as `.spec.replicas` from an object.
pub fn get_path<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = obj;
    for part in path.trim_start_matches('.').split('.') {
        if part.is_empty() {
            continue;
        }
        cur = cur.get(part)?;
    }
    Some(cur)
}

/// Writes a dotted JSON path, creating intermediate objects.
pub fn set_path(obj: &mut Value, path: &str, value: Value) {
    let parts: Vec<&str> = path
        .trim_start_matches('.')
        .split('.')
        .filter(|p| !p.is_empty())
        .collect();
    let mut cur = obj;
    for (i, part) in parts.iter().enumerate() {
        if !cur.is_object() {
            *cur = Value::Object(Default::default());
        }
        let Value::Object(map) = cur else { return };
        if i + 1 == parts.len() {
            map.insert(part.to_string(), value);
            return;
        }
        cur = map
            .entry(part.to_string())
            .or_insert_with(|| Value::Object(Default::default()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_like_kubernetes() {
        let mut v = vec!["v1alpha1", "v1", "v2beta1", "v1beta2", "v2", "foo"];
        v.sort_by(|a, b| version_priority(a, b));
        assert_eq!(v, vec!["v2", "v1", "v2beta1", "v1beta2", "v1alpha1", "foo"]);
    }

    #[test]
    fn builtins_are_served() {
        let r = Registry::builtin();
        assert!(r.get("apps", "v1", "deployments").is_some_and(|t| t.status));
        assert!(r.by_kind("v1", "ConfigMap").is_some());
        assert!(r.groups().iter().any(|(g, _)| g == "batch"));
    }

    #[test]
    fn preferred_version_is_the_highest_priority_one() {
        let mut r = Registry::builtin();
        let mut a = (*r.get("apps", "v1", "deployments").unwrap()).clone();
        a.group = "example.com".into();
        a.version = "v1beta1".into();
        a.preferred = true;
        let mut b = a.clone();
        b.version = "v1".into();
        b.preferred = false;
        r.insert(a);
        r.insert(b);
        let (_, vs) = r
            .groups()
            .into_iter()
            .find(|(g, _)| g == "example.com")
            .unwrap();
        assert_eq!(vs, vec!["v1", "v1beta1"]);
    }

    #[test]
    fn paths_read_and_write() {
        let mut v = serde_json::json!({});
        set_path(&mut v, ".spec.replicas", serde_json::json!(3));
        assert_eq!(get_path(&v, ".spec.replicas"), Some(&serde_json::json!(3)));
    }
}
