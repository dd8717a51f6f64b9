//! The description of a served resource type, shared by built-ins and CRDs.

use std::sync::Arc;

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

    /// A built-in type: preferred, no subresources, no categories.
    pub(super) fn builtin(
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

    /// In the `all` category (`kubectl get all`).
    pub(super) fn all(mut self) -> Self {
        self.categories.push("all".to_string());
        self
    }

    /// With a `/status` subresource.
    pub(super) fn with_status(mut self) -> Self {
        self.status = true;
        self
    }

    /// With `metadata.generation` tracked.
    pub(super) fn with_generation(mut self) -> Self {
        self.generation = true;
        self
    }

    /// With a `/scale` subresource at `.spec.replicas` (and the selector at `.spec.selector`).
    pub(super) fn with_scale(mut self, selector: bool) -> Self {
        self.scale = Some(ScaleSpec {
            spec_replicas: ".spec.replicas".into(),
            status_replicas: ".status.replicas".into(),
            label_selector: selector.then(|| ".spec.selector".into()),
        });
        self
    }
}
