//! `PortfolioApp`: an application the operator runs through a generator plugin.

// kube's `printcolumn(name = …, type_ = …)` repeats keys by design.
#![allow(clippy::duplicated_attributes)]

use alloc::borrow::ToOwned;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::raw::RawJson;

/// Kind of the application resource.
pub const APP_KIND: &str = "PortfolioApp";

/// The desired state of an application.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(kube::CustomResource, kube::KubeSchema))]
#[cfg_attr(
    feature = "kube",
    kube(
        group = "portfolio.dev",
        version = "v1alpha1",
        kind = "PortfolioApp",
        namespaced,
        shortname = "papp",
        category = "portfolio",
        status = "PortfolioAppStatus",
        doc = "An application: the operator turns it into a Deployment, Service, ConfigMap and more through a generator plugin.",
        scale(
            spec_replicas_path = ".spec.replicas",
            status_replicas_path = ".status.replicas"
        ),
        printcolumn(
            name = "Ready",
            type_ = "string",
            json_path = ".status.conditions[?(@.type==\"Ready\")].status"
        ),
        printcolumn(
            name = "Replicas",
            type_ = "integer",
            json_path = ".status.readyReplicas"
        ),
        printcolumn(name = "Image", type_ = "string", json_path = ".spec.image"),
        printcolumn(name = "Plugin", type_ = "string", json_path = ".status.plugin.id"),
        printcolumn(
            name = "Age",
            type_ = "date",
            json_path = ".metadata.creationTimestamp"
        )
    )
)]
#[cfg_attr(
    feature = "kube",
    x_kube(
        validation = Rule::new("!has(self.storage) || !has(self.autoscaling) || self.storage.accessModes.exists(m, m == 'ReadWriteMany' || m == 'ReadOnlyMany')")
            .message("with autoscaling, storage must allow several pods (accessModes ReadWriteMany or ReadOnlyMany)"),
        validation = Rule::new("self.preStopDelaySeconds < self.terminationGracePeriodSeconds")
            .message("preStopDelaySeconds must be shorter than terminationGracePeriodSeconds"),
        validation = Rule::new("!has(self.ports) || self.ports.all(p, self.ports.exists_one(q, (has(q.servicePort) ? q.servicePort : q.containerPort) == (has(p.servicePort) ? p.servicePort : p.containerPort) && q.protocol == p.protocol))")
            .message("each servicePort (or containerPort) and protocol may be used once"),
        validation = Rule::new("(!has(self.probes) || !has(self.probes.readiness) || !has(self.probes.readiness.http) || (has(self.probes.readiness.http.port) ? has(self.ports) && self.ports.exists(q, q.name == self.probes.readiness.http.port) : has(self.ports) && size(self.ports) > 0)) && (!has(self.probes) || !has(self.probes.readiness) || !has(self.probes.readiness.tcp) || (has(self.probes.readiness.tcp.port) ? has(self.ports) && self.ports.exists(q, q.name == self.probes.readiness.tcp.port) : has(self.ports) && size(self.ports) > 0)) && (!has(self.probes) || !has(self.probes.liveness) || !has(self.probes.liveness.http) || (has(self.probes.liveness.http.port) ? has(self.ports) && self.ports.exists(q, q.name == self.probes.liveness.http.port) : has(self.ports) && size(self.ports) > 0)) && (!has(self.probes) || !has(self.probes.liveness) || !has(self.probes.liveness.tcp) || (has(self.probes.liveness.tcp.port) ? has(self.ports) && self.ports.exists(q, q.name == self.probes.liveness.tcp.port) : has(self.ports) && size(self.ports) > 0)) && (!has(self.probes) || !has(self.probes.startup) || !has(self.probes.startup.http) || (has(self.probes.startup.http.port) ? has(self.ports) && self.ports.exists(q, q.name == self.probes.startup.http.port) : has(self.ports) && size(self.ports) > 0)) && (!has(self.probes) || !has(self.probes.startup) || !has(self.probes.startup.tcp) || (has(self.probes.startup.tcp.port) ? has(self.ports) && self.ports.exists(q, q.name == self.probes.startup.tcp.port) : has(self.ports) && size(self.ports) > 0))")
            .message("a probe's port must name one of spec.ports (without a port, the first port is used, so there must be one)")
    )
)]
#[serde(rename_all = "camelCase")]
pub struct PortfolioAppSpec {
    /// Container image to run, e.g. `ghcr.io/acme/shop:1.4.2`.
    #[cfg_attr(
        feature = "kube",
        schemars(length(min = 1, max = 512), regex(pattern = r"^\S+$"))
    )]
    pub image: String,

    /// Number of pods; ignored while `autoscaling` is set (the
    /// HorizontalPodAutoscaler owns it then).
    #[serde(default = "default_replicas")]
    #[cfg_attr(feature = "kube", schemars(range(min = 0, max = 1000)))]
    pub replicas: i32,

    /// Ports the container listens on; each is exposed by the Service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(
        feature = "kube",
        schemars(length(max = 20)),
        x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))
    )]
    pub ports: Vec<AppPort>,

    /// Environment variables of the container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(
        feature = "kube",
        schemars(length(max = 200)),
        x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))
    )]
    pub env: Vec<AppEnvVar>,

    /// Configuration keys and values, published as a ConfigMap and loaded
    /// into the container's environment. Changing them rolls the pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[cfg_attr(
        feature = "kube",
        x_kube(validation = Rule::new("self.all(k, k.matches('^[-._a-zA-Z0-9]+$') && k != '.' && k != '..' && size(k) <= 253)")
            .message("config keys may hold only letters, digits, '-', '_' and '.', and may not be '.' or '..'"))
    )]
    pub config: BTreeMap<String, String>,

    /// CPU and memory requests and limits of the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<AppResources>,

    /// Readiness, liveness and startup probes. Without a readiness probe, an
    /// app with a TCP port gets one that connects to its first TCP port (see
    /// `probes.defaultReadiness`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probes: Option<AppProbes>,

    /// A persistent volume for the app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<AppStorage>,

    /// Scale between a minimum and a maximum on CPU or memory use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<Autoscaling>,

    /// How the Service is exposed.
    #[serde(default)]
    pub service_type: ServiceType,

    /// The ServiceAccount the pods run as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<ServiceAccountSpec>,

    /// Secrets (in the app's namespace) used to pull the image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "kube", x_kube(merge_strategy = ListMerge::Set))]
    pub image_pull_secrets: Vec<String>,

    /// Where pods may run, passed through to the pod spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduling: Option<Scheduling>,

    /// Seconds a pod has to stop after it is asked to.
    #[serde(default = "default_grace_period")]
    #[cfg_attr(feature = "kube", schemars(range(min = 1, max = 3600)))]
    pub termination_grace_period_seconds: i64,

    /// Seconds a stopping pod keeps serving before it is signalled, so that
    /// load balancers stop sending it traffic first.
    #[serde(default = "default_pre_stop_delay")]
    #[cfg_attr(feature = "kube", schemars(range(min = 0, max = 600)))]
    pub pre_stop_delay_seconds: i64,

    /// The generator plugin that turns this spec into Kubernetes objects;
    /// the built-in `deployment-generator` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator: Option<PluginSelector>,

    /// DatabaseMigrations (in this namespace) that gate this app's rollouts:
    /// their expand phase runs before a new version rolls out, their
    /// contract phase after it is available.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "kube", x_kube(merge_strategy = ListMerge::Set))]
    pub migrations: Vec<String>,

    /// Stop applying changes to the children while true.
    #[serde(default, skip_serializing_if = "is_false")]
    pub paused: bool,
}

fn default_replicas() -> i32 {
    1
}

fn default_grace_period() -> i64 {
    30
}

fn default_pre_stop_delay() -> i64 {
    5
}

fn is_false(value: &bool) -> bool {
    !*value
}

fn is_true(value: &bool) -> bool {
    *value
}

fn default_true() -> bool {
    true
}

/// A port of the application's container.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct AppPort {
    /// IANA service name of the port (at most 15 lower case letters, digits
    /// and '-'), e.g. `http`.
    #[cfg_attr(
        feature = "kube",
        schemars(
            length(min = 1, max = 15),
            regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
        )
    )]
    pub name: String,
    /// Port the container listens on.
    #[cfg_attr(feature = "kube", schemars(range(min = 1, max = 65535)))]
    pub container_port: i32,
    /// Port the Service exposes; `containerPort` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "kube", schemars(range(min = 1, max = 65535)))]
    pub service_port: Option<i32>,
    /// Transport protocol of the port; `TCP` when unset.
    #[serde(default)]
    pub protocol: Protocol,
}

/// A transport protocol.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
pub enum Protocol {
    /// `TCP`, the default.
    #[default]
    #[serde(rename = "TCP")]
    Tcp,
    /// `UDP`.
    #[serde(rename = "UDP")]
    Udp,
    /// `SCTP` (the cluster's network plugin must support it).
    #[serde(rename = "SCTP")]
    Sctp,
}

impl Protocol {
    /// As Kubernetes spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }
}

/// An environment variable: a literal value or a reference to a key.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(kube::KubeSchema))]
#[cfg_attr(
    feature = "kube",
    x_kube(
        validation = Rule::new("has(self.value) != has(self.valueFrom)")
            .message("set exactly one of value and valueFrom")
    )
)]
#[serde(rename_all = "camelCase")]
pub struct AppEnvVar {
    /// Name of the variable, e.g. `LOG_LEVEL`.
    #[cfg_attr(
        feature = "kube",
        schemars(
            length(min = 1, max = 256),
            regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*$")
        )
    )]
    pub name: String,
    /// The value, when it is written here rather than read from a Secret or
    /// ConfigMap (`valueFrom`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Where the value comes from when it is not literal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<EnvSource>,
}

/// The source of an environment variable's value.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(kube::KubeSchema))]
#[cfg_attr(
    feature = "kube",
    x_kube(
        validation = Rule::new("has(self.secretKeyRef) != has(self.configMapKeyRef)")
            .message("set exactly one of secretKeyRef and configMapKeyRef")
    )
)]
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
    #[cfg_attr(feature = "kube", schemars(length(min = 1, max = 253)))]
    pub name: String,
    /// The key whose value is used.
    #[cfg_attr(feature = "kube", schemars(length(min = 1, max = 253)))]
    pub key: String,
    /// Whether the pod may start without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optional: Option<bool>,
}

/// Requests and limits of the container.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct AppResources {
    /// What the scheduler reserves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<ResourceAmounts>,
    /// The most the container may use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<ResourceAmounts>,
}

/// Amounts of CPU and memory, as Kubernetes quantities.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ResourceAmounts {
    /// CPU, e.g. `250m` or `1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "kube", schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?m?$")))]
    pub cpu: Option<String>,
    /// Memory, e.g. `256Mi` or `1Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "kube",
        schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$"))
    )]
    pub memory: Option<String>,
}

/// The container's probes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(kube::KubeSchema))]
#[cfg_attr(
    feature = "kube",
    x_kube(
        validation = Rule::new("!has(self.readiness) || !has(self.defaultReadiness) || self.defaultReadiness")
            .message("defaultReadiness: false turns the default readiness probe off, but readiness sets a probe; remove one of them")
    )
)]
#[serde(rename_all = "camelCase")]
pub struct AppProbes {
    /// Whether a pod may receive traffic (and counts as available to a
    /// rolling update). When unset, see `defaultReadiness`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness: Option<Probe>,
    /// Whether a pod must be restarted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveness: Option<Probe>,
    /// Whether a pod has started (the others wait for it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup: Option<Probe>,
    /// When `readiness` is unset and the app has a TCP port, probe readiness
    /// with a TCP connect to the first TCP port in `spec.ports`, so that a pod
    /// receives traffic, and a rolling update removes an old pod, only once
    /// the new one accepts connections. Set to false to have pods count as
    /// ready as soon as they start; `readiness` must then be unset.
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub default_readiness: bool,
}

impl Default for AppProbes {
    fn default() -> Self {
        AppProbes {
            readiness: None,
            liveness: None,
            startup: None,
            default_readiness: true,
        }
    }
}

/// One probe: an HTTP GET or a TCP connect, with its timings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(kube::KubeSchema))]
#[cfg_attr(
    feature = "kube",
    x_kube(
        validation = Rule::new("has(self.http) != has(self.tcp)")
            .message("set exactly one of http and tcp")
    )
)]
#[serde(rename_all = "camelCase")]
pub struct Probe {
    /// Probe with an HTTP GET (success is a 2xx or 3xx answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpProbe>,
    /// Probe by opening a TCP connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpProbe>,
    /// Seconds after the container starts before the first probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "kube", schemars(range(min = 0, max = 3600)))]
    pub initial_delay_seconds: Option<i32>,
    /// Seconds between probes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "kube", schemars(range(min = 1, max = 3600)))]
    pub period_seconds: Option<i32>,
    /// Seconds after which a probe counts as failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "kube", schemars(range(min = 1, max = 600)))]
    pub timeout_seconds: Option<i32>,
    /// Failures in a row before the probe fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "kube", schemars(range(min = 1, max = 100)))]
    pub failure_threshold: Option<i32>,
}

/// An HTTP GET probe.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct HttpProbe {
    /// Path to request, e.g. `/healthz`.
    #[cfg_attr(
        feature = "kube",
        schemars(regex(pattern = r"^/\S*$"), length(max = 1024))
    )]
    pub path: String,
    /// Name of one of `spec.ports`; the first when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
}

/// A TCP connect probe.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct TcpProbe {
    /// Name of one of `spec.ports`; the first when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
}

/// A persistent volume for the app.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(kube::KubeSchema))]
#[serde(rename_all = "camelCase")]
pub struct AppStorage {
    /// Size of the volume to claim, e.g. `10Gi`.
    #[cfg_attr(
        feature = "kube",
        schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$"))
    )]
    pub size: String,
    /// StorageClass; the cluster's default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// How the volume may be mounted.
    #[serde(default = "default_access_modes")]
    #[cfg_attr(
        feature = "kube",
        schemars(length(min = 1, max = 4)),
        x_kube(merge_strategy = ListMerge::Set)
    )]
    pub access_modes: Vec<AccessMode>,
    /// Where the volume is mounted in the container.
    #[serde(default = "default_mount_path")]
    #[cfg_attr(feature = "kube", schemars(regex(pattern = r"^/\S*$")))]
    pub mount_path: String,
    /// What happens to the volume when the app is deleted.
    #[serde(default)]
    pub reclaim_policy: ReclaimPolicy,
    /// A Job that backs the volume up before the app is deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<Backup>,
}

impl Default for AppStorage {
    fn default() -> Self {
        AppStorage {
            size: "1Gi".to_owned(),
            storage_class_name: None,
            access_modes: default_access_modes(),
            mount_path: default_mount_path(),
            reclaim_policy: ReclaimPolicy::default(),
            backup: None,
        }
    }
}

fn default_access_modes() -> Vec<AccessMode> {
    vec![AccessMode::ReadWriteOnce]
}

fn default_mount_path() -> String {
    "/data".to_owned()
}

/// A volume access mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
pub enum AccessMode {
    /// One node reads and writes.
    #[default]
    ReadWriteOnce,
    /// Many nodes read.
    ReadOnlyMany,
    /// Many nodes read and write.
    ReadWriteMany,
    /// One pod reads and writes.
    ReadWriteOncePod,
}

impl AccessMode {
    /// As Kubernetes spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            AccessMode::ReadWriteOnce => "ReadWriteOnce",
            AccessMode::ReadOnlyMany => "ReadOnlyMany",
            AccessMode::ReadWriteMany => "ReadWriteMany",
            AccessMode::ReadWriteOncePod => "ReadWriteOncePod",
        }
    }
}

/// What happens to the volume when the app is deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
pub enum ReclaimPolicy {
    /// Keep it (it is released from the app, not deleted).
    #[default]
    Retain,
    /// Delete it with the app.
    Delete,
}

/// A backup run before the app is deleted, with the volume mounted.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(kube::KubeSchema))]
#[serde(rename_all = "camelCase")]
pub struct Backup {
    /// Image of the backup tool.
    #[cfg_attr(
        feature = "kube",
        schemars(length(min = 1, max = 512), regex(pattern = r"^\S+$"))
    )]
    pub image: String,
    /// Command (and arguments) to run; the image's entrypoint when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "kube", x_kube(merge_strategy = ListMerge::Atomic))]
    pub command: Vec<String>,
    /// Seconds the backup may run.
    #[serde(default = "default_backup_deadline")]
    #[cfg_attr(feature = "kube", schemars(range(min = 1, max = 86400)))]
    pub active_deadline_seconds: i64,
}

fn default_backup_deadline() -> i64 {
    3600
}

/// Scale on CPU or memory use between a minimum and a maximum.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(kube::KubeSchema))]
#[cfg_attr(
    feature = "kube",
    x_kube(
        validation = Rule::new("self.minReplicas <= self.maxReplicas")
            .message("minReplicas must not exceed maxReplicas"),
        validation = Rule::new("has(self.targetCPUUtilizationPercentage) || has(self.targetMemoryUtilizationPercentage)")
            .message("set a CPU or a memory target")
    )
)]
#[serde(rename_all = "camelCase")]
pub struct Autoscaling {
    /// The autoscaler never scales below this many pods.
    #[serde(default = "default_min_replicas")]
    #[cfg_attr(feature = "kube", schemars(range(min = 1, max = 1000)))]
    pub min_replicas: i32,
    /// The autoscaler never scales above this many pods.
    #[cfg_attr(feature = "kube", schemars(range(min = 1, max = 1000)))]
    pub max_replicas: i32,
    /// Average CPU use to aim for, in percent of the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(rename = "targetCPUUtilizationPercentage")]
    #[cfg_attr(feature = "kube", schemars(range(min = 1, max = 100)))]
    pub target_cpu_utilization_percentage: Option<i32>,
    /// Average memory use to aim for, in percent of the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "kube", schemars(range(min = 1, max = 100)))]
    pub target_memory_utilization_percentage: Option<i32>,
}

fn default_min_replicas() -> i32 {
    1
}

/// How the Service is exposed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
pub enum ServiceType {
    /// Inside the cluster only.
    #[default]
    ClusterIP,
    /// On a port of every node.
    NodePort,
    /// Through the cloud's load balancer.
    LoadBalancer,
}

impl ServiceType {
    /// As Kubernetes spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceType::ClusterIP => "ClusterIP",
            ServiceType::NodePort => "NodePort",
            ServiceType::LoadBalancer => "LoadBalancer",
        }
    }
}

/// The ServiceAccount the pods run as.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccountSpec {
    /// Its name; the app's name when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "kube",
        schemars(
            length(min = 1, max = 253),
            regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
        )
    )]
    pub name: Option<String>,
    /// Create it with the app (otherwise it must exist).
    #[serde(default, skip_serializing_if = "is_false")]
    pub create: bool,
    /// Mount its API token into the pods (off unless the app calls the API).
    #[serde(default, skip_serializing_if = "is_false")]
    pub automount_token: bool,
}

/// Where pods may run; passed through to the pod spec unchanged.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Scheduling {
    /// Labels a node must have.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Taints the pods tolerate (`core/v1` Toleration objects).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "kube", schemars(with = "Vec<crate::raw::AnyObject>"))]
    pub tolerations: Vec<RawJson>,
    /// Node and pod affinity (a `core/v1` Affinity object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "kube", schemars(with = "Option<crate::raw::AnyObject>"))]
    pub affinity: Option<RawJson>,
    /// Topology spread constraints; without any, pods of an app with more
    /// than one replica are spread across nodes and zones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "kube", schemars(with = "Vec<crate::raw::AnyObject>"))]
    pub topology_spread_constraints: Vec<RawJson>,
}

/// Which plugin to use, and its per-object settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct PluginSelector {
    /// Plugin reference: `name`, `name@<semver requirement>` (a full version
    /// such as `1.2.3` pins it exactly) or `name@sha256:<digest>`.
    #[cfg_attr(
        feature = "kube",
        schemars(
            length(min = 1, max = 200),
            regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(@\S+)?$")
        )
    )]
    pub plugin: String,
    /// Settings for this object only, passed to the plugin inside the spec;
    /// what they mean is up to the plugin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "kube", schemars(with = "Option<crate::raw::AnyObject>"))]
    pub settings: Option<RawJson>,
}

/// The plugin that produced an app's children.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct PluginStatus {
    /// `name@version`.
    pub id: String,
    /// `sha256:…` of the component.
    pub digest: String,
}

/// A child the operator applied.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ResourceRef {
    /// `apiVersion` of the child, e.g. `apps/v1`.
    pub api_version: String,
    /// `kind` of the child, e.g. `Deployment`.
    pub kind: String,
    /// Name of the child, in the app's namespace.
    pub name: String,
}

/// Where a gating migration stands.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct MigrationGate {
    /// Name of the DatabaseMigration, in the app's namespace.
    pub name: String,
    /// Its `status.phase`, or `Missing`.
    pub phase: String,
    /// Whether it lets the rollout proceed.
    pub ready: bool,
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
    /// Pods of the current Deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Pods ready to serve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    /// The plugin that produced the children.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<PluginStatus>,
    /// The children the last successful reconcile applied (kept as they
    /// were while the app is paused or its reconcile fails).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<ResourceRef>,
    /// The migrations gating rollouts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub migrations: Vec<MigrationGate>,
    /// Extra status fields from the plugin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<crate::raw::AnyObject>")]
    pub plugin_status: Option<RawJson>,
}
