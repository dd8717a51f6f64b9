//! The messages the emulator decodes: per kind, the fields kubectl's typed subcommands set,
//! with their numbers from Kubernetes' `generated.proto`.

use serde_json::Value;

/// How a field is encoded, and what it decodes to.
#[derive(Clone, Copy)]
pub(super) enum Kind {
    Str,
    Bytes,
    Int,
    Bool,
    Time,
    Msg(&'static [Field]),
    /// A Go-embedded message: its fields appear in the parent object.
    Inline(&'static [Field]),
    MapStr,
    MapBytes,
    /// `map<string, Quantity>` (resource lists).
    MapQuantity,
    /// `resource.Quantity`: a message with the string form in field 1.
    Quantity,
    /// `intstr.IntOrString`: type, intVal, strVal.
    IntOrString,
}

/// One field of a message.
pub(super) struct Field {
    pub(super) num: u64,
    pub(super) name: &'static str,
    pub(super) kind: Kind,
    pub(super) repeated: bool,
    /// A Go pointer (or a field without `omitempty`): its zero value means something. Other
    /// scalars arrive on the wire even when zero, and Go's JSON leaves them out.
    pub(super) keep_zero: bool,
}

/// A field whose zero value (`""`, `0`, `false`, an unset IntOrString) means "unset".
const fn f(num: u64, name: &'static str, kind: Kind) -> Field {
    Field {
        num,
        name,
        kind,
        repeated: false,
        keep_zero: false,
    }
}

/// A field whose zero value is meaningful (a pointer in Go, e.g. `replicas: 0`).
const fn k(num: u64, name: &'static str, kind: Kind) -> Field {
    Field {
        keep_zero: true,
        ..f(num, name, kind)
    }
}

/// A repeated field (every item is kept, zero or not).
const fn rep(num: u64, name: &'static str, kind: Kind) -> Field {
    Field {
        repeated: true,
        ..k(num, name, kind)
    }
}

/// Whether a decoded scalar is its type's zero value.
pub(super) fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_i64() == Some(0),
        _ => false,
    }
}

const OWNER_REF: &[Field] = &[
    f(1, "kind", Kind::Str),
    f(3, "name", Kind::Str),
    f(4, "uid", Kind::Str),
    f(5, "apiVersion", Kind::Str),
    k(6, "controller", Kind::Bool),
    k(7, "blockOwnerDeletion", Kind::Bool),
];

const OBJECT_META: &[Field] = &[
    f(1, "name", Kind::Str),
    f(2, "generateName", Kind::Str),
    f(3, "namespace", Kind::Str),
    f(4, "selfLink", Kind::Str),
    f(5, "uid", Kind::Str),
    f(6, "resourceVersion", Kind::Str),
    f(7, "generation", Kind::Int),
    f(8, "creationTimestamp", Kind::Time),
    f(9, "deletionTimestamp", Kind::Time),
    k(10, "deletionGracePeriodSeconds", Kind::Int),
    f(11, "labels", Kind::MapStr),
    f(12, "annotations", Kind::MapStr),
    rep(13, "ownerReferences", Kind::Msg(OWNER_REF)),
    rep(14, "finalizers", Kind::Str),
];

const NAMESPACE_SPEC: &[Field] = &[rep(1, "finalizers", Kind::Str)];
const NAMESPACE_STATUS: &[Field] = &[f(1, "phase", Kind::Str)];
const NAMESPACE: &[Field] = &[
    f(1, "metadata", Kind::Msg(OBJECT_META)),
    f(2, "spec", Kind::Msg(NAMESPACE_SPEC)),
    f(3, "status", Kind::Msg(NAMESPACE_STATUS)),
];

const CONFIG_MAP: &[Field] = &[
    f(1, "metadata", Kind::Msg(OBJECT_META)),
    f(2, "data", Kind::MapStr),
    f(3, "binaryData", Kind::MapBytes),
    k(4, "immutable", Kind::Bool),
];

const SECRET: &[Field] = &[
    f(1, "metadata", Kind::Msg(OBJECT_META)),
    f(2, "data", Kind::MapBytes),
    f(3, "type", Kind::Str),
    f(4, "stringData", Kind::MapStr),
    k(5, "immutable", Kind::Bool),
];

const OBJECT_REF: &[Field] = &[
    f(1, "kind", Kind::Str),
    f(2, "namespace", Kind::Str),
    f(3, "name", Kind::Str),
    f(4, "uid", Kind::Str),
    f(5, "apiVersion", Kind::Str),
    f(6, "resourceVersion", Kind::Str),
    f(7, "fieldPath", Kind::Str),
];
const LOCAL_REF: &[Field] = &[f(1, "name", Kind::Str)];
const SERVICE_ACCOUNT: &[Field] = &[
    f(1, "metadata", Kind::Msg(OBJECT_META)),
    rep(2, "secrets", Kind::Msg(OBJECT_REF)),
    rep(3, "imagePullSecrets", Kind::Msg(LOCAL_REF)),
    k(4, "automountServiceAccountToken", Kind::Bool),
];

const LABEL_SELECTOR_REQ: &[Field] = &[
    f(1, "key", Kind::Str),
    f(2, "operator", Kind::Str),
    rep(3, "values", Kind::Str),
];
const LABEL_SELECTOR: &[Field] = &[
    f(1, "matchLabels", Kind::MapStr),
    rep(2, "matchExpressions", Kind::Msg(LABEL_SELECTOR_REQ)),
];
const CONTAINER_PORT: &[Field] = &[
    f(1, "name", Kind::Str),
    f(2, "hostPort", Kind::Int),
    k(3, "containerPort", Kind::Int),
    f(4, "protocol", Kind::Str),
    f(5, "hostIP", Kind::Str),
];
const KEY_SELECTOR: &[Field] = &[
    f(1, "localObjectReference", Kind::Inline(LOCAL_REF)),
    f(2, "key", Kind::Str),
    k(3, "optional", Kind::Bool),
];
const FIELD_SELECTOR: &[Field] = &[f(1, "apiVersion", Kind::Str), f(2, "fieldPath", Kind::Str)];
const ENV_SOURCE: &[Field] = &[
    f(1, "fieldRef", Kind::Msg(FIELD_SELECTOR)),
    f(3, "configMapKeyRef", Kind::Msg(KEY_SELECTOR)),
    f(4, "secretKeyRef", Kind::Msg(KEY_SELECTOR)),
];
const ENV_VAR: &[Field] = &[
    f(1, "name", Kind::Str),
    f(2, "value", Kind::Str),
    f(3, "valueFrom", Kind::Msg(ENV_SOURCE)),
];
const REF_SOURCE: &[Field] = &[
    f(1, "localObjectReference", Kind::Inline(LOCAL_REF)),
    k(2, "optional", Kind::Bool),
];
const ENV_FROM: &[Field] = &[
    f(1, "prefix", Kind::Str),
    f(2, "configMapRef", Kind::Msg(REF_SOURCE)),
    f(3, "secretRef", Kind::Msg(REF_SOURCE)),
];
const RESOURCES: &[Field] = &[
    f(1, "limits", Kind::MapQuantity),
    f(2, "requests", Kind::MapQuantity),
];
const VOLUME_MOUNT: &[Field] = &[
    f(1, "name", Kind::Str),
    f(2, "readOnly", Kind::Bool),
    f(3, "mountPath", Kind::Str),
    f(4, "subPath", Kind::Str),
];
const CONTAINER: &[Field] = &[
    f(1, "name", Kind::Str),
    f(2, "image", Kind::Str),
    rep(3, "command", Kind::Str),
    rep(4, "args", Kind::Str),
    f(5, "workingDir", Kind::Str),
    rep(6, "ports", Kind::Msg(CONTAINER_PORT)),
    rep(19, "envFrom", Kind::Msg(ENV_FROM)),
    rep(7, "env", Kind::Msg(ENV_VAR)),
    f(8, "resources", Kind::Msg(RESOURCES)),
    rep(9, "volumeMounts", Kind::Msg(VOLUME_MOUNT)),
    f(13, "terminationMessagePath", Kind::Str),
    f(20, "terminationMessagePolicy", Kind::Str),
    f(14, "imagePullPolicy", Kind::Str),
    f(16, "stdin", Kind::Bool),
    f(17, "stdinOnce", Kind::Bool),
    f(18, "tty", Kind::Bool),
];
/// An empty message, for fields kubectl sends as `{}` (e.g. `securityContext`).
const EMPTY: &[Field] = &[];
const POD_SPEC: &[Field] = &[
    rep(20, "initContainers", Kind::Msg(CONTAINER)),
    rep(2, "containers", Kind::Msg(CONTAINER)),
    f(3, "restartPolicy", Kind::Str),
    k(4, "terminationGracePeriodSeconds", Kind::Int),
    k(5, "activeDeadlineSeconds", Kind::Int),
    f(6, "dnsPolicy", Kind::Str),
    f(7, "nodeSelector", Kind::MapStr),
    f(8, "serviceAccountName", Kind::Str),
    f(9, "serviceAccount", Kind::Str),
    k(21, "automountServiceAccountToken", Kind::Bool),
    f(10, "nodeName", Kind::Str),
    f(14, "securityContext", Kind::Msg(EMPTY)),
    rep(15, "imagePullSecrets", Kind::Msg(LOCAL_REF)),
    f(19, "schedulerName", Kind::Str),
    f(24, "priorityClassName", Kind::Str),
    k(30, "enableServiceLinks", Kind::Bool),
];
const POD_TEMPLATE: &[Field] = &[
    f(1, "metadata", Kind::Msg(OBJECT_META)),
    f(2, "spec", Kind::Msg(POD_SPEC)),
];
const POD: &[Field] = &[
    f(1, "metadata", Kind::Msg(OBJECT_META)),
    f(2, "spec", Kind::Msg(POD_SPEC)),
];
const ROLLING_UPDATE: &[Field] = &[
    k(1, "maxUnavailable", Kind::IntOrString),
    k(2, "maxSurge", Kind::IntOrString),
];
const STRATEGY: &[Field] = &[
    f(1, "type", Kind::Str),
    f(2, "rollingUpdate", Kind::Msg(ROLLING_UPDATE)),
];
const DEPLOYMENT_SPEC: &[Field] = &[
    k(1, "replicas", Kind::Int),
    f(2, "selector", Kind::Msg(LABEL_SELECTOR)),
    f(3, "template", Kind::Msg(POD_TEMPLATE)),
    f(4, "strategy", Kind::Msg(STRATEGY)),
    f(5, "minReadySeconds", Kind::Int),
    k(6, "revisionHistoryLimit", Kind::Int),
    f(7, "paused", Kind::Bool),
    k(9, "progressDeadlineSeconds", Kind::Int),
];
const DEPLOYMENT: &[Field] = &[
    f(1, "metadata", Kind::Msg(OBJECT_META)),
    f(2, "spec", Kind::Msg(DEPLOYMENT_SPEC)),
];
const JOB_SPEC: &[Field] = &[
    k(1, "parallelism", Kind::Int),
    k(2, "completions", Kind::Int),
    k(3, "activeDeadlineSeconds", Kind::Int),
    k(7, "backoffLimit", Kind::Int),
    f(4, "selector", Kind::Msg(LABEL_SELECTOR)),
    k(5, "manualSelector", Kind::Bool),
    f(6, "template", Kind::Msg(POD_TEMPLATE)),
    k(8, "ttlSecondsAfterFinished", Kind::Int),
    k(9, "completionMode", Kind::Str),
    k(10, "suspend", Kind::Bool),
    k(14, "podReplacementPolicy", Kind::Str),
];
const JOB: &[Field] = &[
    f(1, "metadata", Kind::Msg(OBJECT_META)),
    f(2, "spec", Kind::Msg(JOB_SPEC)),
];
const JOB_TEMPLATE: &[Field] = &[
    f(1, "metadata", Kind::Msg(OBJECT_META)),
    f(2, "spec", Kind::Msg(JOB_SPEC)),
];
const CRON_JOB_SPEC: &[Field] = &[
    f(1, "schedule", Kind::Str),
    k(8, "timeZone", Kind::Str),
    k(2, "startingDeadlineSeconds", Kind::Int),
    f(3, "concurrencyPolicy", Kind::Str),
    k(4, "suspend", Kind::Bool),
    f(5, "jobTemplate", Kind::Msg(JOB_TEMPLATE)),
    k(6, "successfulJobsHistoryLimit", Kind::Int),
    k(7, "failedJobsHistoryLimit", Kind::Int),
];
const CRON_JOB: &[Field] = &[
    f(1, "metadata", Kind::Msg(OBJECT_META)),
    f(2, "spec", Kind::Msg(CRON_JOB_SPEC)),
];
const SERVICE_PORT: &[Field] = &[
    f(1, "name", Kind::Str),
    f(2, "protocol", Kind::Str),
    k(6, "appProtocol", Kind::Str),
    k(3, "port", Kind::Int),
    f(4, "targetPort", Kind::IntOrString),
    f(5, "nodePort", Kind::Int),
];
const SERVICE_SPEC: &[Field] = &[
    rep(1, "ports", Kind::Msg(SERVICE_PORT)),
    f(2, "selector", Kind::MapStr),
    f(3, "clusterIP", Kind::Str),
    rep(18, "clusterIPs", Kind::Str),
    f(4, "type", Kind::Str),
    rep(5, "externalIPs", Kind::Str),
    f(7, "sessionAffinity", Kind::Str),
    f(8, "loadBalancerIP", Kind::Str),
    f(10, "externalName", Kind::Str),
    f(11, "externalTrafficPolicy", Kind::Str),
    rep(19, "ipFamilies", Kind::Str),
    f(17, "ipFamilyPolicy", Kind::Str),
    f(22, "internalTrafficPolicy", Kind::Str),
];
const SERVICE: &[Field] = &[
    f(1, "metadata", Kind::Msg(OBJECT_META)),
    f(2, "spec", Kind::Msg(SERVICE_SPEC)),
];
const SCALE_TARGET: &[Field] = &[
    f(1, "kind", Kind::Str),
    f(2, "name", Kind::Str),
    f(3, "apiVersion", Kind::Str),
];
const METRIC_TARGET: &[Field] = &[
    f(1, "type", Kind::Str),
    k(2, "value", Kind::Quantity),
    k(3, "averageValue", Kind::Quantity),
    k(4, "averageUtilization", Kind::Int),
];
const RESOURCE_METRIC: &[Field] = &[
    f(1, "name", Kind::Str),
    f(2, "target", Kind::Msg(METRIC_TARGET)),
];
const METRIC_SPEC: &[Field] = &[
    f(1, "type", Kind::Str),
    f(4, "resource", Kind::Msg(RESOURCE_METRIC)),
];
const HPA_SPEC: &[Field] = &[
    f(1, "scaleTargetRef", Kind::Msg(SCALE_TARGET)),
    k(2, "minReplicas", Kind::Int),
    k(3, "maxReplicas", Kind::Int),
    rep(4, "metrics", Kind::Msg(METRIC_SPEC)),
];
const HPA: &[Field] = &[
    f(1, "metadata", Kind::Msg(OBJECT_META)),
    f(2, "spec", Kind::Msg(HPA_SPEC)),
];

const PRECONDITIONS: &[Field] = &[f(1, "uid", Kind::Str), f(2, "resourceVersion", Kind::Str)];
/// meta/v1 `DeleteOptions` (the body of a delete; client-go sends it as protobuf for the
/// built-in kinds, e.g. Helm purging its release Secrets). Set pointers arrive even when
/// zero: a grace period of 0 means "now", `orphanDependents: false` means "do not".
const DELETE_OPTIONS: &[Field] = &[
    k(1, "gracePeriodSeconds", Kind::Int),
    f(2, "preconditions", Kind::Msg(PRECONDITIONS)),
    k(3, "orphanDependents", Kind::Bool),
    f(4, "propagationPolicy", Kind::Str),
    rep(5, "dryRun", Kind::Str),
];

const TYPE_META: &[Field] = &[f(1, "apiVersion", Kind::Str), f(2, "kind", Kind::Str)];
/// `runtime.Unknown`, the envelope of every payload.
pub(super) const UNKNOWN: &[Field] = &[
    f(1, "typeMeta", Kind::Msg(TYPE_META)),
    f(2, "raw", Kind::Bytes),
    f(3, "contentEncoding", Kind::Str),
    f(4, "contentType", Kind::Str),
];

/// The message of a kind the emulator decodes.
pub(super) fn message_of(api_version: &str, kind: &str) -> Option<&'static [Field]> {
    Some(match (api_version, kind) {
        ("v1", "Namespace") => NAMESPACE,
        ("v1", "ConfigMap") => CONFIG_MAP,
        ("v1", "Secret") => SECRET,
        ("v1", "ServiceAccount") => SERVICE_ACCOUNT,
        ("v1", "Pod") => POD,
        ("v1", "Service") => SERVICE,
        ("apps/v1", "Deployment") => DEPLOYMENT,
        ("batch/v1", "Job") => JOB,
        ("batch/v1", "CronJob") => CRON_JOB,
        ("autoscaling/v2", "HorizontalPodAutoscaler") => HPA,
        // Registered in every group version (metav1.AddToGroupVersion): the client
        // encodes it under the version of the resource it deletes.
        (_, "DeleteOptions") => DELETE_OPTIONS,
        _ => return None,
    })
}
