//! What `dev --apply` applies: manifests checked enough to apply, and the
//! namespaces they need.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::Scope;
use serde_json::Value;

use super::{DevError, FIELD_MANAGER};
use crate::render::{Document, Location};

/// Create `name` unless this run already has.
pub(super) async fn ensure_namespace(
    client: &kube::Client,
    name: &str,
    done: &mut BTreeSet<String>,
) -> Result<(), DevError> {
    if done.contains(name) {
        return Ok(());
    }
    let api: Api<Namespace> = Api::all(client.clone());
    let namespace =
        serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER),
        &Patch::Apply(&namespace),
    )
    .await
    .map_err(|source| DevError::Apply {
        what: format!("namespace {name}"),
        source,
    })?;
    done.insert(name.to_owned());
    Ok(())
}

/// A manifest object, checked enough to apply.
#[derive(Debug)]
pub(super) struct Manifest {
    location: Location,
    pub(super) gvk: GroupVersionKind,
    name: String,
    namespace: Option<String>,
    object: Value,
}

impl Manifest {
    pub(super) fn parse(document: Document) -> Result<Manifest, DevError> {
        let invalid = |message: String| DevError::InvalidManifest {
            location: document.location.clone(),
            message,
        };
        let mut object = document.value.clone();
        let Some(map) = object.as_object_mut() else {
            return Err(invalid(
                "expected a Kubernetes object (a mapping)".to_owned(),
            ));
        };
        let text = |field: &str| map.get(field).and_then(Value::as_str).map(str::to_owned);
        let api_version = text("apiVersion")
            .filter(|v| !v.is_empty())
            .ok_or_else(|| invalid("apiVersion: missing".to_owned()))?;
        let kind = text("kind")
            .filter(|v| !v.is_empty())
            .ok_or_else(|| invalid("kind: missing".to_owned()))?;
        let Some(metadata) = map.get_mut("metadata").and_then(Value::as_object_mut) else {
            return Err(invalid("metadata: missing".to_owned()));
        };
        let name = metadata
            .get("name")
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| invalid("metadata.name: missing".to_owned()))?
            .to_owned();
        let namespace = metadata
            .get("namespace")
            .and_then(Value::as_str)
            .map(str::to_owned);
        // The examples carry a uid so that `render` is deterministic; a cluster
        // assigns its own, and these fields would make an apply fail.
        for field in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "generation",
            "managedFields",
        ] {
            metadata.remove(field);
        }
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", &api_version));
        Ok(Manifest {
            gvk: GroupVersionKind::gvk(group, version, &kind),
            location: document.location,
            name,
            namespace,
            object,
        })
    }

    /// Apply it (creating its namespace if need be); the line to print.
    pub(super) async fn apply(
        &self,
        client: &kube::Client,
        namespaces: &mut BTreeSet<String>,
    ) -> Result<String, DevError> {
        let what = format!("{} {}", self.gvk.kind, self.name);
        let (resource, capabilities) = kube::discovery::pinned_kind(client, &self.gvk)
            .await
            .map_err(|source| DevError::Apply {
                what: format!(
                    "{}: {what}: the cluster does not serve {}/{} {}",
                    self.location, self.gvk.group, self.gvk.version, self.gvk.kind
                ),
                source,
            })?;
        let (api, shown): (Api<DynamicObject>, String) = match capabilities.scope {
            Scope::Namespaced => {
                let namespace = self.namespace.as_deref().unwrap_or("default");
                ensure_namespace(client, namespace, namespaces).await?;
                (
                    Api::namespaced_with(client.clone(), namespace, &resource),
                    format!("{namespace}/{}", self.name),
                )
            }
            Scope::Cluster => (Api::all_with(client.clone(), &resource), self.name.clone()),
        };
        api.patch(
            &self.name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&self.object),
        )
        .await
        .map_err(|source| DevError::Apply {
            what: format!("{}: {what}", self.location),
            source,
        })?;
        Ok(format!(
            "applied {} {shown} ({})",
            self.gvk.kind,
            self.location.path.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::PathBuf;

    fn document(value: Value) -> Document {
        Document {
            location: Location {
                path: PathBuf::from("x.yaml"),
                document: Some(1),
                object: None,
            },
            value,
        }
    }

    #[test]
    fn manifests_lose_what_a_cluster_assigns() {
        let manifest = Manifest::parse(document(json!({
            "apiVersion": "portfolio.dev/v1alpha1", "kind": "PortfolioApp",
            "metadata": {"name": "shop", "namespace": "demo", "uid": "u", "resourceVersion": "3",
                         "labels": {"a": "b"}},
            "spec": {"image": "x"},
        })))
        .expect("valid");
        assert_eq!(manifest.gvk.group, "portfolio.dev");
        assert_eq!(manifest.gvk.version, "v1alpha1");
        assert_eq!(manifest.namespace.as_deref(), Some("demo"));
        assert_eq!(
            manifest.object["metadata"],
            json!({"name": "shop", "namespace": "demo", "labels": {"a": "b"}})
        );
        let core = Manifest::parse(document(json!({
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}
        })))
        .expect("valid");
        assert_eq!(core.gvk.group, "");
        assert_eq!(core.namespace, None);
    }

    #[test]
    fn malformed_manifests_say_what_is_missing_and_where() {
        for (value, expected) in [
            (json!("text"), "expected a Kubernetes object"),
            (
                json!({"kind": "ConfigMap", "metadata": {"name": "c"}}),
                "apiVersion: missing",
            ),
            (
                json!({"apiVersion": "v1", "metadata": {"name": "c"}}),
                "kind: missing",
            ),
            (
                json!({"apiVersion": "v1", "kind": "ConfigMap"}),
                "metadata: missing",
            ),
            (
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": ""}}),
                "metadata.name: missing",
            ),
        ] {
            let error = Manifest::parse(document(value))
                .expect_err("invalid")
                .to_string();
            assert!(error.contains(expected), "{error}");
            assert!(error.starts_with("x.yaml, document 1"), "{error}");
        }
    }
}
