//! The output policy: what a plugin may create, decided by the operator, not the plugin.

use crate::kinds::{ChildKind, ChildKinds, KindError, RBAC_GROUP, group_kind, is_cluster_scoped};
use crate::plugin::{ChildObject, ObjectKey, PluginInfo};

/// A rule a plugin's object broke.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyViolation {
    /// The plugin did not declare this kind in `describe`.
    #[error("{object}: plugin {plugin} did not declare {kind} among the kinds it emits")]
    Undeclared {
        /// The offending object.
        object: ObjectKey,
        /// `name@version`.
        plugin: String,
        /// `apiVersion kind`.
        kind: String,
    },
    /// The operator does not allow this kind.
    #[error(
        "{object}: the operator does not allow plugins to create {group_kind} (allowed: {allowed}; an operator can add kinds with --allow-kind)"
    )]
    NotAllowed {
        /// The offending object.
        object: ObjectKey,
        /// `Kind.group`.
        group_kind: String,
        /// The allow-list, for the message.
        allowed: String,
    },
    /// The kind is allowed, but managed at another version.
    #[error("{object}: the operator manages {group_kind} as {managed}; emit that apiVersion")]
    OtherVersion {
        /// The offending object.
        object: ObjectKey,
        /// `Kind.group`.
        group_kind: String,
        /// The apiVersion the operator watches and applies.
        managed: String,
    },
    /// RBAC objects grant permissions; plugins never create them unless allowed.
    #[error("{object}: plugins may not create RBAC objects")]
    Rbac {
        /// The offending object.
        object: ObjectKey,
    },
    /// Cluster-scoped objects are outside the app's namespace.
    #[error("{object}: plugins may not create cluster-scoped objects")]
    ClusterScoped {
        /// The offending object.
        object: ObjectKey,
    },
    /// The object names a namespace other than its owner's.
    #[error("{object}: namespace {namespace:?} is not the app's namespace {expected:?}")]
    OtherNamespace {
        /// The offending object.
        object: ObjectKey,
        /// The namespace the plugin asked for.
        namespace: String,
        /// The owner's namespace.
        expected: String,
    },
}

/// What plugins may create, as the operator is configured: the registered
/// child kinds, in the owner's namespace, never RBAC or cluster-scoped kinds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutputPolicy {
    kinds: ChildKinds,
    allow_rbac: bool,
}

impl OutputPolicy {
    /// Also allow (and so watch, apply, prune and grant) `kind`.
    pub fn allow_kind(mut self, kind: ChildKind) -> Result<Self, KindError> {
        self.kinds.add(kind)?;
        Ok(self)
    }

    /// Let plugins create RBAC objects of registered kinds (off by default;
    /// `--allow-kind` refuses RBAC kinds, so only code can turn this on).
    pub fn allow_rbac(mut self, allow: bool) -> Self {
        self.allow_rbac = allow;
        self
    }

    /// The kinds plugins may create.
    pub fn kinds(&self) -> &ChildKinds {
        &self.kinds
    }

    /// The kinds, to check them against the API server's discovery.
    pub fn kinds_mut(&mut self) -> &mut ChildKinds {
        &mut self.kinds
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
        if is_cluster_scoped(group, &key.kind) {
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
        if self.kinds.get(&key.api_version, &key.kind).is_none() {
            if let Some(managed) = self.kinds.by_group_kind(group, &key.kind) {
                return Err(PolicyViolation::OtherVersion {
                    object: key.clone(),
                    group_kind: managed.group_kind(),
                    managed: managed.api_version.clone(),
                });
            }
            return Err(PolicyViolation::NotAllowed {
                object: key.clone(),
                group_kind: group_kind(group, &key.kind),
                allowed: self
                    .kinds
                    .iter()
                    .map(ChildKind::group_kind)
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
        let widened = OutputPolicy::default()
            .allow_kind("example.com/v1/Widget".parse().unwrap())
            .unwrap();
        widened
            .check(
                &info(ALL),
                &object("example.com/v1", "Widget", None),
                "shop",
            )
            .unwrap();
    }

    #[test]
    fn rbac_can_be_allowed_deliberately_in_code_only() {
        let role = ChildKind {
            api_version: "rbac.authorization.k8s.io/v1".into(),
            kind: "Role".into(),
            plural: "roles".into(),
            pruned: true,
        };
        let registered = OutputPolicy::default().allow_kind(role).unwrap();
        let check = |policy: &OutputPolicy| {
            policy.check(
                &info(ALL),
                &object("rbac.authorization.k8s.io/v1", "Role", None),
                "shop",
            )
        };
        assert!(matches!(
            check(&registered),
            Err(PolicyViolation::Rbac { .. })
        ));
        check(&registered.allow_rbac(true)).unwrap();
    }

    #[test]
    fn an_allowed_kind_at_another_version_says_which_version() {
        let error = OutputPolicy::default()
            .check(
                &info(&[("autoscaling/v1", "HorizontalPodAutoscaler")]),
                &object("autoscaling/v1", "HorizontalPodAutoscaler", None),
                "shop",
            )
            .unwrap_err();
        assert!(
            matches!(error, PolicyViolation::OtherVersion { .. }),
            "{error}"
        );
        assert!(error.to_string().contains("as autoscaling/v2"), "{error}");
    }
}
