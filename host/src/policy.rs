//! The output policy: what a plugin may create, decided by the operator, not the plugin.

use std::collections::BTreeSet;

use crate::plugin::{ChildObject, ObjectKey, PluginInfo};

/// Kinds that live outside namespaces; a plugin must never create them unless allowed.
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
const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// Kinds a plugin may create unless the operator is configured otherwise.
const DEFAULT_ALLOWED: &[(&str, &str)] = &[
    ("", "ConfigMap"),
    ("", "PersistentVolumeClaim"),
    ("", "Secret"),
    ("", "Service"),
    ("", "ServiceAccount"),
    ("apps", "Deployment"),
    ("autoscaling", "HorizontalPodAutoscaler"),
    ("batch", "Job"),
    ("networking.k8s.io", "Ingress"),
    ("networking.k8s.io", "NetworkPolicy"),
    ("policy", "PodDisruptionBudget"),
];

/// A rule a plugin's object broke.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyViolation {
    /// The plugin did not declare this kind in `describe`.
    #[error("{object}: plugin {plugin} did not declare {kind} among the kinds it emits")]
    Undeclared {
        /// The object.
        object: ObjectKey,
        /// `name@version`.
        plugin: String,
        /// `apiVersion kind`.
        kind: String,
    },
    /// The operator does not allow this kind.
    #[error(
        "{object}: the operator does not allow plugins to create {group_kind} (allowed: {allowed})"
    )]
    NotAllowed {
        /// The object.
        object: ObjectKey,
        /// `Kind.group`.
        group_kind: String,
        /// The allow-list, for the message.
        allowed: String,
    },
    /// RBAC objects grant permissions; plugins never create them unless allowed.
    #[error("{object}: plugins may not create RBAC objects")]
    Rbac {
        /// The object.
        object: ObjectKey,
    },
    /// Cluster-scoped objects are outside the app's namespace.
    #[error("{object}: plugins may not create cluster-scoped objects")]
    ClusterScoped {
        /// The object.
        object: ObjectKey,
    },
    /// The object names a namespace other than its owner's.
    #[error("{object}: namespace {namespace:?} is not the app's namespace {expected:?}")]
    OtherNamespace {
        /// The object.
        object: ObjectKey,
        /// What it asked for.
        namespace: String,
        /// The owner's namespace.
        expected: String,
    },
}

/// What plugins may create, as the operator is configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputPolicy {
    allowed: BTreeSet<(String, String)>,
    allow_rbac: bool,
    allow_cluster_scoped: bool,
}

impl Default for OutputPolicy {
    fn default() -> Self {
        OutputPolicy {
            allowed: DEFAULT_ALLOWED
                .iter()
                .map(|(group, kind)| ((*group).to_owned(), (*kind).to_owned()))
                .collect(),
            allow_rbac: false,
            allow_cluster_scoped: false,
        }
    }
}

impl OutputPolicy {
    /// Also allow `kind` of `group` (`""` for the core group).
    pub fn allow(mut self, group: &str, kind: &str) -> Self {
        self.allowed.insert((group.to_owned(), kind.to_owned()));
        self
    }

    /// Let plugins create RBAC objects that are on the allow-list (off by default).
    pub fn allow_rbac(mut self, allow: bool) -> Self {
        self.allow_rbac = allow;
        self
    }

    /// Let plugins create cluster-scoped objects that are on the allow-list (off by default).
    pub fn allow_cluster_scoped(mut self, allow: bool) -> Self {
        self.allow_cluster_scoped = allow;
        self
    }

    /// Check one object of the plugin described by `plugin` for an owner in `namespace`.
    pub fn check(
        &self,
        plugin: &PluginInfo,
        object: &ChildObject,
        namespace: &str,
    ) -> Result<(), PolicyViolation> {
        let key = object.key();
        let group = key.group();
        if group == RBAC_GROUP && !self.allow_rbac {
            return Err(PolicyViolation::Rbac {
                object: key.clone(),
            });
        }
        let cluster_scoped = CLUSTER_SCOPED
            .iter()
            .any(|(g, k)| *g == group && *k == key.kind);
        if cluster_scoped && !self.allow_cluster_scoped {
            return Err(PolicyViolation::ClusterScoped {
                object: key.clone(),
            });
        }
        let declared = plugin
            .kinds
            .iter()
            .any(|k| k.api_version == key.api_version && k.kind == key.kind);
        if !declared {
            return Err(PolicyViolation::Undeclared {
                object: key.clone(),
                plugin: plugin.id.to_string(),
                kind: format!("{} {}", key.api_version, key.kind),
            });
        }
        if !self.allowed.contains(&(group.to_owned(), key.kind.clone())) {
            return Err(PolicyViolation::NotAllowed {
                object: key.clone(),
                group_kind: group_kind(group, &key.kind),
                allowed: self
                    .allowed
                    .iter()
                    .map(|(g, k)| group_kind(g, k))
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        if let Some(requested) = object.namespace()
            && requested != namespace
        {
            return Err(PolicyViolation::OtherNamespace {
                object: key.clone(),
                namespace: requested.to_owned(),
                expected: namespace.to_owned(),
            });
        }
        Ok(())
    }
}

fn group_kind(group: &str, kind: &str) -> String {
    if group.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}.{group}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::{KindRef, PluginId};

    fn info(kinds: &[(&str, &str)]) -> PluginInfo {
        PluginInfo {
            id: PluginId {
                name: "gen".into(),
                version: semver::Version::new(1, 0, 0),
            },
            description: String::new(),
            kinds: kinds
                .iter()
                .map(|(v, k)| KindRef {
                    api_version: (*v).into(),
                    kind: (*k).into(),
                })
                .collect(),
            settings_schema: None,
            wit_version: semver::Version::new(0, 1, 0),
        }
    }

    fn object(api_version: &str, kind: &str, namespace: Option<&str>) -> ChildObject {
        let mut metadata = serde_json::json!({ "name": "x" });
        if let Some(namespace) = namespace {
            metadata["namespace"] = namespace.into();
        }
        let text =
            serde_json::json!({ "apiVersion": api_version, "kind": kind, "metadata": metadata })
                .to_string();
        crate::plugin::checked_objects(&[text], &crate::plugin::Limits::default())
            .unwrap()
            .remove(0)
    }

    const ALL: &[(&str, &str)] = &[
        ("v1", "ConfigMap"),
        ("apps/v1", "Deployment"),
        ("rbac.authorization.k8s.io/v1", "ClusterRole"),
        ("rbac.authorization.k8s.io/v1", "Role"),
        ("v1", "Namespace"),
        ("example.com/v1", "Widget"),
    ];

    #[test]
    fn allows_declared_and_allowed_kinds_in_the_app_namespace() {
        let policy = OutputPolicy::default();
        policy
            .check(&info(ALL), &object("v1", "ConfigMap", None), "shop")
            .unwrap();
        policy
            .check(
                &info(ALL),
                &object("apps/v1", "Deployment", Some("shop")),
                "shop",
            )
            .unwrap();
    }

    #[test]
    fn refuses_rbac_cluster_scoped_and_other_namespaces() {
        let policy = OutputPolicy::default();
        let check = |o: ChildObject| policy.check(&info(ALL), &o, "shop").unwrap_err();
        assert!(matches!(
            check(object("rbac.authorization.k8s.io/v1", "ClusterRole", None)),
            PolicyViolation::Rbac { .. }
        ));
        assert!(matches!(
            check(object("rbac.authorization.k8s.io/v1", "Role", None)),
            PolicyViolation::Rbac { .. }
        ));
        assert!(matches!(
            check(object("v1", "Namespace", None)),
            PolicyViolation::ClusterScoped { .. }
        ));
        let other = check(object("v1", "ConfigMap", Some("kube-system")));
        assert_eq!(
            other.to_string(),
            "v1 ConfigMap \"x\": namespace \"kube-system\" is not the app's namespace \"shop\""
        );
    }

    #[test]
    fn both_the_plugin_and_the_operator_must_agree() {
        let policy = OutputPolicy::default();
        let undeclared = policy
            .check(
                &info(&[("v1", "ConfigMap")]),
                &object("apps/v1", "Deployment", None),
                "shop",
            )
            .unwrap_err();
        assert!(
            matches!(undeclared, PolicyViolation::Undeclared { .. }),
            "{undeclared}"
        );
        let not_allowed = policy
            .check(
                &info(ALL),
                &object("example.com/v1", "Widget", None),
                "shop",
            )
            .unwrap_err();
        assert!(
            not_allowed.to_string().contains("Widget.example.com"),
            "{not_allowed}"
        );
        let widened = OutputPolicy::default().allow("example.com", "Widget");
        widened
            .check(
                &info(ALL),
                &object("example.com/v1", "Widget", None),
                "shop",
            )
            .unwrap();
    }

    #[test]
    fn rbac_and_cluster_scope_can_be_allowed_deliberately() {
        let policy = OutputPolicy::default()
            .allow("rbac.authorization.k8s.io", "Role")
            .allow_rbac(true);
        policy
            .check(
                &info(ALL),
                &object("rbac.authorization.k8s.io/v1", "Role", None),
                "shop",
            )
            .unwrap();
    }
}
