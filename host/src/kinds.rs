//! The one registry of child kinds: what plugins may create, and so what the
//! operator watches, applies, prunes and is granted in its RBAC.

use std::fmt;
use std::str::FromStr;

use kube::core::GroupVersionKind;
use kube::discovery::ApiResource;

/// A kind of object the operator manages as a child of its custom resources.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ChildKind {
    /// `group/version`, or `version` for the core group.
    pub api_version: String,
    /// CamelCase kind.
    pub kind: String,
    /// The resource name in URLs and RBAC rules (`deployments`).
    pub plural: String,
    /// Whether orphans of this kind (children a generation no longer returns)
    /// are deleted. Volumes are not: losing data takes a deliberate step
    /// (deleting the app with `reclaimPolicy: Delete`).
    pub pruned: bool,
}

impl ChildKind {
    fn builtin(api_version: &str, kind: &str, plural: &str, pruned: bool) -> Self {
        ChildKind {
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
            plural: plural.to_owned(),
            pruned,
        }
    }

    /// The API group (`""` for the core group).
    pub fn group(&self) -> &str {
        group_of(&self.api_version)
    }

    /// The API version without its group.
    pub fn version(&self) -> &str {
        self.api_version
            .rsplit_once('/')
            .map_or(self.api_version.as_str(), |(_, version)| version)
    }

    /// The kube-rs resource, for dynamic API calls.
    pub fn resource(&self) -> ApiResource {
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(self.group(), self.version(), &self.kind),
            &self.plural,
        )
    }

    /// `Kind.group`, as `kubectl` names a kind (`Kind` alone for the core group).
    pub fn group_kind(&self) -> String {
        group_kind(self.group(), &self.kind)
    }
}

impl fmt::Display for ChildKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.api_version, self.kind)
    }
}

/// `--allow-kind` text that does not name a kind the operator can manage.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{text:?}: {problem}; write apiVersion/Kind with an optional /plural, e.g. monitoring.coreos.com/v1/ServiceMonitor or v1/LimitRange/limitranges"
)]
pub struct KindError {
    text: String,
    problem: String,
}

/// Kinds that live outside namespaces: plugins create objects in their
/// owner's namespace only.
const CLUSTER_SCOPED: &[(&str, &str)] = &[
    ("", "Namespace"),
    ("", "Node"),
    ("", "PersistentVolume"),
    (
        "admissionregistration.k8s.io",
        "MutatingWebhookConfiguration",
    ),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"),
    (
        "admissionregistration.k8s.io",
        "ValidatingAdmissionPolicyBinding",
    ),
    (
        "admissionregistration.k8s.io",
        "ValidatingWebhookConfiguration",
    ),
    ("apiextensions.k8s.io", "CustomResourceDefinition"),
    ("apiregistration.k8s.io", "APIService"),
    ("certificates.k8s.io", "CertificateSigningRequest"),
    ("flowcontrol.apiserver.k8s.io", "FlowSchema"),
    ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration"),
    ("networking.k8s.io", "IngressClass"),
    ("node.k8s.io", "RuntimeClass"),
    ("rbac.authorization.k8s.io", "ClusterRole"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    ("scheduling.k8s.io", "PriorityClass"),
    ("storage.k8s.io", "CSIDriver"),
    ("storage.k8s.io", "CSINode"),
    ("storage.k8s.io", "StorageClass"),
    ("storage.k8s.io", "VolumeAttachment"),
];

/// The group whose objects grant permissions.
pub const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// Whether `group`/`kind` is a kind Kubernetes serves outside namespaces.
pub fn is_cluster_scoped(group: &str, kind: &str) -> bool {
    CLUSTER_SCOPED
        .iter()
        .any(|(g, k)| *g == group && *k == kind)
}

impl FromStr for ChildKind {
    type Err = KindError;

    /// `apiVersion/Kind[/plural]`: a kind starts with an upper-case letter
    /// and a plural with a lower-case one, so the two cannot be confused.
    fn from_str(text: &str) -> Result<Self, KindError> {
        let error = |problem: &str| KindError {
            text: text.to_owned(),
            problem: problem.to_owned(),
        };
        let mut parts: Vec<&str> = text.split('/').collect();
        let plural = match parts.last() {
            Some(last) if last.starts_with(|c: char| c.is_ascii_lowercase()) && parts.len() > 2 => {
                parts.pop().map(str::to_owned)
            }
            _ => None,
        };
        let kind = parts.pop().unwrap_or_default();
        if !kind.starts_with(|c: char| c.is_ascii_uppercase())
            || !kind.chars().all(|c| c.is_ascii_alphanumeric())
        {
            return Err(error("the kind must be CamelCase, like ServiceMonitor"));
        }
        let api_version = parts.join("/");
        let valid_version = match parts.as_slice() {
            [version] => is_version(version),
            [group, version] => is_group(group) && is_version(version),
            _ => false,
        };
        if !valid_version {
            return Err(error(
                "the apiVersion must be group/version or version (core group)",
            ));
        }
        let group = group_of(&api_version);
        if group == RBAC_GROUP {
            return Err(error(
                "RBAC objects grant permissions; plugins never create them",
            ));
        }
        if is_cluster_scoped(group, kind) {
            return Err(error(
                "this kind is cluster-scoped; plugins create objects in their owner's namespace only",
            ));
        }
        let plural = match plural {
            Some(plural) if crate::plugin::is_dns_label(&plural) => plural,
            Some(_) => return Err(error("the plural must be a lower-case DNS label")),
            // The same guess kubectl and kube-rs make; `run` checks it
            // against the API server's discovery.
            None => ApiResource::from_gvk(&GroupVersionKind::gvk(group, "v", kind)).plural,
        };
        Ok(ChildKind {
            api_version,
            kind: kind.to_owned(),
            plural,
            pruned: true,
        })
    }
}

fn is_version(text: &str) -> bool {
    text.starts_with('v') && crate::plugin::is_dns_label(text)
}

fn is_group(text: &str) -> bool {
    crate::plugin::is_dns_subdomain(text)
}

/// The API group of an `apiVersion` (`""` for the core group).
pub fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(group, _)| group)
}

/// `Kind.group` (`Kind` alone for the core group).
pub fn group_kind(group: &str, kind: &str) -> String {
    if group.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}.{group}")
    }
}

/// The kinds the operator manages: the built-in ones and those added with
/// `--allow-kind`, in a stable order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildKinds {
    kinds: Vec<ChildKind>,
}

impl Default for ChildKinds {
    /// What the built-in plugins emit, and what a team's plugin most often needs.
    fn default() -> Self {
        ChildKinds {
            kinds: vec![
                ChildKind::builtin("v1", "ConfigMap", "configmaps", true),
                ChildKind::builtin("v1", "Secret", "secrets", true),
                ChildKind::builtin("v1", "Service", "services", true),
                ChildKind::builtin("v1", "ServiceAccount", "serviceaccounts", true),
                ChildKind::builtin(
                    "v1",
                    "PersistentVolumeClaim",
                    "persistentvolumeclaims",
                    false,
                ),
                ChildKind::builtin("apps/v1", "Deployment", "deployments", true),
                ChildKind::builtin(
                    "autoscaling/v2",
                    "HorizontalPodAutoscaler",
                    "horizontalpodautoscalers",
                    true,
                ),
                ChildKind::builtin("batch/v1", "Job", "jobs", true),
                ChildKind::builtin("networking.k8s.io/v1", "Ingress", "ingresses", true),
                ChildKind::builtin(
                    "networking.k8s.io/v1",
                    "NetworkPolicy",
                    "networkpolicies",
                    true,
                ),
                ChildKind::builtin(
                    "policy/v1",
                    "PodDisruptionBudget",
                    "poddisruptionbudgets",
                    true,
                ),
            ],
        }
    }
}

impl ChildKinds {
    /// Add `kind`; a kind already registered (at any version) is refused,
    /// since the operator watches and applies each kind at one version.
    pub fn add(&mut self, kind: ChildKind) -> Result<(), KindError> {
        if let Some(known) = self
            .kinds
            .iter()
            .find(|k| k.group() == kind.group() && k.kind == kind.kind)
        {
            if known.api_version == kind.api_version {
                return Ok(());
            }
            return Err(KindError {
                text: format!("{}/{}", kind.api_version, kind.kind),
                problem: format!(
                    "{} is already managed as {}",
                    kind.group_kind(),
                    known.api_version
                ),
            });
        }
        self.kinds.push(kind);
        Ok(())
    }

    /// Every kind, built-ins first.
    pub fn iter(&self) -> impl Iterator<Item = &ChildKind> {
        self.kinds.iter()
    }

    /// The kind of `apiVersion`/`kind`, when registered at that version.
    pub fn get(&self, api_version: &str, kind: &str) -> Option<&ChildKind> {
        self.kinds
            .iter()
            .find(|k| k.api_version == api_version && k.kind == kind)
    }

    /// The kind of `group`/`kind` at whatever version it is registered.
    pub fn by_group_kind(&self, group: &str, kind: &str) -> Option<&ChildKind> {
        self.kinds
            .iter()
            .find(|k| k.group() == group && k.kind == kind)
    }

    /// The kinds added to the built-ins, as `--allow-kind` takes them.
    pub fn added(&self) -> Vec<String> {
        let builtin = ChildKinds::default();
        self.kinds
            .iter()
            .filter(|k| builtin.get(&k.api_version, &k.kind).is_none())
            .map(|k| format!("{}/{}/{}", k.api_version, k.kind, k.plural))
            .collect()
    }

    /// Check the added kinds against the API server's discovery: each must
    /// be served, namespaced, and is given the plural the server uses.
    pub async fn discover(&mut self, client: &kube::Client) -> Result<(), KindError> {
        let builtin = ChildKinds::default();
        for entry in &mut self.kinds {
            if builtin.get(&entry.api_version, &entry.kind).is_some() {
                continue;
            }
            let text = format!("{}/{}", entry.api_version, entry.kind);
            let gvk = GroupVersionKind::gvk(entry.group(), entry.version(), &entry.kind);
            let (resource, capabilities) = kube::discovery::pinned_kind(client, &gvk)
                .await
                .map_err(|error| KindError {
                    text: text.clone(),
                    problem: format!(
                        "the API server does not serve it ({}); install its CRD first",
                        crate::failure::describe_api_error(&error)
                    ),
                })?;
            if capabilities.scope != kube::discovery::Scope::Namespaced {
                return Err(KindError {
                    text,
                    problem: "this kind is cluster-scoped; plugins create objects in their owner's namespace only".into(),
                });
            }
            entry.plural = resource.plural;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_kind_text_names_version_kind_and_plural() {
        let monitor: ChildKind = "monitoring.coreos.com/v1/ServiceMonitor".parse().unwrap();
        assert_eq!(monitor.api_version, "monitoring.coreos.com/v1");
        assert_eq!(monitor.kind, "ServiceMonitor");
        assert_eq!(monitor.plural, "servicemonitors");
        assert_eq!(monitor.group(), "monitoring.coreos.com");
        assert_eq!(monitor.version(), "v1");
        let core: ChildKind = "v1/LimitRange".parse().unwrap();
        assert_eq!((core.group(), core.plural.as_str()), ("", "limitranges"));
        let explicit: ChildKind = "example.com/v1alpha1/Octopus/octopi".parse().unwrap();
        assert_eq!(explicit.plural, "octopi");
        assert_eq!(explicit.resource().plural, "octopi");
        assert_eq!(explicit.resource().api_version, "example.com/v1alpha1");
    }

    #[test]
    fn allow_kind_refuses_what_cannot_be_a_child() {
        for (text, problem) in [
            ("apps/Deployment", "apiVersion"),
            ("Deployment", "apiVersion"),
            ("apps/v1/deployment", "CamelCase"),
            ("v1/Namespace", "cluster-scoped"),
            ("rbac.authorization.k8s.io/v1/Role", "RBAC"),
            ("example.com/v1/Widget/Not_A_Plural", "CamelCase"),
            ("Example.com/v1/Widget", "apiVersion"),
            ("", "CamelCase"),
        ] {
            let error = text.parse::<ChildKind>().unwrap_err().to_string();
            assert!(error.contains(problem), "{text}: {error}");
            assert!(error.contains("apiVersion/Kind"), "says how: {error}");
        }
    }

    #[test]
    fn a_kind_is_managed_at_one_version() {
        let mut kinds = ChildKinds::default();
        kinds
            .add("autoscaling/v2/HorizontalPodAutoscaler".parse().unwrap())
            .unwrap();
        let error = kinds
            .add("autoscaling/v1/HorizontalPodAutoscaler".parse().unwrap())
            .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("already managed as autoscaling/v2")
        );
        kinds.add("example.com/v1/Widget".parse().unwrap()).unwrap();
        assert_eq!(
            kinds
                .get("example.com/v1", "Widget")
                .map(|k| k.plural.as_str()),
            Some("widgets")
        );
        assert!(
            kinds
                .get("autoscaling/v1", "HorizontalPodAutoscaler")
                .is_none()
        );
        assert!(
            kinds
                .by_group_kind("autoscaling", "HorizontalPodAutoscaler")
                .is_some()
        );
    }

    #[test]
    fn volumes_are_never_pruned() {
        let kinds = ChildKinds::default();
        let claim = kinds.get("v1", "PersistentVolumeClaim").unwrap();
        assert!(!claim.pruned);
        assert!(kinds.get("apps/v1", "Deployment").unwrap().pruned);
    }
}
