//! `PortfolioApp`: an application the operator runs through a generator plugin.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Kind of the application resource.
pub const APP_KIND: &str = "PortfolioApp";

/// The desired state of an application.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(kube::CustomResource, schemars::JsonSchema))]
#[cfg_attr(
    feature = "kube",
    kube(
        group = "portfolio.dev",
        version = "v1alpha1",
        kind = "PortfolioApp",
        namespaced,
        shortname = "papp",
        category = "portfolio",
        status = "PortfolioAppStatus"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct PortfolioAppSpec {
    /// Container image to run, e.g. `ghcr.io/acme/shop:1.4.2`.
    pub image: String,

    /// Number of pods; ignored while `autoscaling` is set.
    #[serde(default = "default_replicas")]
    pub replicas: i32,

    /// Ports the container listens on; each is exposed by the Service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<AppPort>,

    /// Environment variables of the container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<AppEnvVar>,

    /// Configuration keys and values, published as a ConfigMap and loaded
    /// into the container's environment. Changing them rolls the pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,

    /// The generator plugin that turns this spec into Kubernetes objects;
    /// the built-in `deployment-generator` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator: Option<PluginSelector>,

    /// Stop applying changes to the children while true.
    #[serde(default, skip_serializing_if = "is_false")]
    pub paused: bool,
}

fn default_replicas() -> i32 {
    1
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// A port of the application's container.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct AppPort {
    /// IANA service name of the port (DNS-1123 label, at most 15 characters), e.g. `http`.
    pub name: String,
    /// Port the container listens on.
    pub container_port: i32,
    /// Port the Service exposes; `containerPort` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_port: Option<i32>,
    /// `TCP` (default), `UDP` or `SCTP`.
    #[serde(default = "default_protocol")]
    pub protocol: String,
}

fn default_protocol() -> String {
    "TCP".to_owned()
}

/// An environment variable: a literal value or a reference to a key.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct AppEnvVar {
    /// Variable name.
    pub name: String,
    /// Literal value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Where the value comes from when it is not literal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<EnvSource>,
}

/// The source of an environment variable's value.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct EnvSource {
    /// A key of a Secret in the app's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<KeyRef>,
    /// A key of a ConfigMap in the app's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_key_ref: Option<KeyRef>,
}

/// A key within a named Secret or ConfigMap.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct KeyRef {
    /// Name of the Secret or ConfigMap.
    pub name: String,
    /// Key within it.
    pub key: String,
    /// Whether the pod may start without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optional: Option<bool>,
}

/// Which plugin to use, and its per-object settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct PluginSelector {
    /// Plugin reference: `name`, `name@<semver requirement>` (a full version
    /// such as `1.2.3` pins it exactly) or `name@sha256:<digest>`.
    pub plugin: String,
    /// Settings for this object only, passed to the plugin inside the spec;
    /// what they mean is up to the plugin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<serde_json::Value>,
}

/// The observed state of an application.
#[cfg(feature = "kube")]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PortfolioAppStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Progressing` and `Degraded`, plus the plugin's own conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>,
}
