//! A PortfolioApp as the controller watches it: the metadata always, the
//! typed object only when it parses. One object that no longer matches the
//! Rust type (stored under an older schema, or edited past validation) would
//! otherwise fail every list of the watch and stop the controller for all.

use std::borrow::Cow;
use std::sync::Arc;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta};
use kube::Resource;
use portfolio_api::{PortfolioApp, PortfolioAppSpec, PortfolioAppStatus};
use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use super::wire::{MetaWithoutFields, Parts};

/// A watched PortfolioApp, parsed or not.
#[derive(Clone, Debug)]
pub struct WatchedApp {
    /// Its metadata (the API server guarantees its shape).
    pub metadata: ObjectMeta,
    /// The typed object, or why it does not parse (the field path first).
    pub parsed: Result<Arc<PortfolioApp>, String>,
    /// The conditions of its status, as far as they parse, to keep their transition times.
    pub conditions: Vec<Condition>,
}

impl<'de> Deserialize<'de> for WatchedApp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(AppVisitor)
    }
}

/// Reads an app's fields apart: its metadata without `managedFields`
/// (never read, and most of an app's bytes), spec and status as JSON.
struct AppVisitor;

impl<'de> Visitor<'de> for AppVisitor {
    type Value = WatchedApp;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a PortfolioApp")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<WatchedApp, A::Error> {
        let mut parts = Parts::<IgnoredAny>::read(map)?;
        let metadata = parts
            .metadata
            .map(MetaWithoutFields::into_object_meta)
            .unwrap_or_default();
        let spec = parts.rest.remove("spec");
        let status = parts.rest.remove("status").unwrap_or(Value::Null);
        Ok(WatchedApp::of_parts(metadata, spec, status, parts.rest))
    }
}

impl WatchedApp {
    /// The app made of its parts as read: typed when they parse (nearly
    /// always); else its metadata, its conditions if they parse, and where
    /// the app does not.
    fn of_parts(
        metadata: ObjectMeta,
        spec: Option<Value>,
        status: Value,
        rest: Map<String, Value>,
    ) -> Self {
        if let Some(spec_value) = &spec
            && let Ok(spec) = PortfolioAppSpec::deserialize(spec_value)
            && let Ok(status) = Option::<PortfolioAppStatus>::deserialize(&status)
        {
            let conditions = status
                .as_ref()
                .map(|status| status.conditions.clone())
                .unwrap_or_default();
            return WatchedApp {
                metadata: metadata.clone(),
                conditions,
                parsed: Ok(Arc::new(PortfolioApp {
                    metadata,
                    spec,
                    status,
                })),
            };
        }
        let conditions = status
            .pointer("/conditions")
            .and_then(|c| Vec::<Condition>::deserialize(c).ok())
            .unwrap_or_default();
        // The whole object again, for the error to name the field as a
        // user would (`spec.replicas`); rare, so the cost is no matter.
        let mut object = rest;
        if let Ok(meta) = serde_json::to_value(&metadata) {
            object.insert("metadata".into(), meta);
        }
        if let Some(spec) = spec {
            object.insert("spec".into(), spec);
        }
        if !status.is_null() {
            object.insert("status".into(), status);
        }
        let parsed = serde_path_to_error::deserialize::<_, PortfolioApp>(&Value::Object(object))
            .map(Arc::new)
            .map_err(|error| {
                let path = error.path().to_string();
                format!("{path}: {}", error.into_inner())
            });
        WatchedApp {
            metadata,
            parsed,
            conditions,
        }
    }
}

impl Resource for WatchedApp {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(dt: &()) -> Cow<'_, str> {
        PortfolioApp::kind(dt)
    }

    fn group(dt: &()) -> Cow<'_, str> {
        PortfolioApp::group(dt)
    }

    fn version(dt: &()) -> Cow<'_, str> {
        PortfolioApp::version(dt)
    }

    fn plural(dt: &()) -> Cow<'_, str> {
        PortfolioApp::plural(dt)
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_valid_app_parses() {
        let watched: WatchedApp = serde_json::from_value(json!({
            "apiVersion": "portfolio.dev/v1alpha1", "kind": "PortfolioApp",
            "metadata": {"name": "shop", "namespace": "demo"},
            "spec": {"image": "example/shop:1"},
            "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Available",
                "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]},
        }))
        .expect("lenient");
        assert_eq!(watched.conditions.len(), 1);
        let app = watched.parsed.expect("parsed");
        assert_eq!(app.spec.image, "example/shop:1");
        assert_eq!(watched.metadata.name.as_deref(), Some("shop"));
    }

    #[test]
    fn a_watched_app_holds_no_managed_fields() {
        let watched: WatchedApp = serde_json::from_value(json!({
            "apiVersion": "portfolio.dev/v1alpha1", "kind": "PortfolioApp",
            "metadata": {"name": "shop", "namespace": "demo", "managedFields": [
                {"manager": "kubectl", "operation": "Apply", "apiVersion": "portfolio.dev/v1alpha1",
                 "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:image": {}}}}]},
            "spec": {"image": "example/shop:1"},
        }))
        .expect("lenient");
        assert!(watched.metadata.managed_fields.is_none());
        let app = watched.parsed.expect("parsed");
        assert!(app.metadata.managed_fields.is_none());
        assert_eq!(app.metadata.name.as_deref(), Some("shop"));
    }

    #[test]
    fn a_malformed_app_keeps_its_metadata_and_says_where() {
        let watched: WatchedApp = serde_json::from_value(json!({
            "apiVersion": "portfolio.dev/v1alpha1", "kind": "PortfolioApp",
            "metadata": {"name": "shop", "namespace": "demo", "finalizers": ["portfolio.dev/cleanup"]},
            "spec": {"image": "example/shop:1", "replicas": "many"},
            "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Available",
                "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}], "replicas": "x"},
        }))
        .expect("lenient");
        let error = watched.parsed.expect_err("malformed");
        assert!(error.starts_with("spec.replicas:"), "{error}");
        assert_eq!(
            watched.metadata.finalizers.as_deref().map(<[_]>::len),
            Some(1)
        );
        assert_eq!(
            watched.conditions.len(),
            1,
            "conditions survive a bad status"
        );
        assert_eq!(WatchedApp::kind(&()), "PortfolioApp");
        assert_eq!(WatchedApp::api_version(&()), "portfolio.dev/v1alpha1");
    }

    #[test]
    fn a_list_with_one_malformed_app_still_parses() {
        let list: kube::core::ObjectList<WatchedApp> = serde_json::from_value(json!({
            "apiVersion": "portfolio.dev/v1alpha1", "kind": "PortfolioAppList",
            "metadata": {"resourceVersion": "7"},
            "items": [
                {"metadata": {"name": "good"}, "spec": {"image": "a"}},
                {"metadata": {"name": "bad"}, "spec": 3},
            ],
        }))
        .expect("the list parses");
        assert!(list.items[0].parsed.is_ok());
        assert!(list.items[1].parsed.is_err());
    }
}
