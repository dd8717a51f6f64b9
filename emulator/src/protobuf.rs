//! Decoding of Kubernetes' protobuf request bodies for the kinds kubectl's typed subcommands
//! create (`kubectl create namespace|configmap|secret|serviceaccount|deployment|job|cronjob|
//! service`, `kubectl run`, `kubectl expose`, `kubectl autoscale`).
//!
//! A hand-written reader with per-kind field tables keeps this small; the tables hold the
//! fields those commands set (field numbers from Kubernetes' `generated.proto`); kinds outside
//! the tables are refused with 415, which the README lists as a known difference.

use serde_json::{Map, Value, json};

/// The prefix of every Kubernetes protobuf payload.
const MAGIC: &[u8] = b"k8s\x00";

#[derive(Clone, Copy)]
enum Kind {
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

struct Field {
    num: u64,
    name: &'static str,
    kind: Kind,
    repeated: bool,
    /// A Go pointer (or a field without `omitempty`): its zero value means something. Other
    /// scalars arrive on the wire even when zero, and Go's JSON leaves them out.
    keep_zero: bool,
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
        num,
        name,
        kind,
        repeated: false,
        keep_zero: true,
    }
}

const fn rep(num: u64, name: &'static str, kind: Kind) -> Field {
    Field {
        num,
        name,
        kind,
        repeated: true,
        keep_zero: true,
    }
}

/// Whether a decoded scalar is its type's zero value.
fn is_zero(v: &Value) -> bool {
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

const TYPE_META: &[Field] = &[f(1, "apiVersion", Kind::Str), f(2, "kind", Kind::Str)];
const UNKNOWN: &[Field] = &[
    f(1, "typeMeta", Kind::Msg(TYPE_META)),
    f(2, "raw", Kind::Bytes),
    f(3, "contentEncoding", Kind::Str),
    f(4, "contentType", Kind::Str),
];

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos).ok_or("truncated varint")?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint too long".into())
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let len = usize::try_from(self.varint()?).map_err(|_| "length overflow")?;
        let end = self.pos.checked_add(len).ok_or("length overflow")?;
        let s = self.buf.get(self.pos..end).ok_or("truncated field")?;
        self.pos = end;
        Ok(s)
    }

    fn skip(&mut self, wire: u64) -> Result<(), String> {
        match wire {
            0 => self.varint().map(|_| ()),
            1 => self.advance(8),
            2 => self.bytes().map(|_| ()),
            5 => self.advance(4),
            w => Err(format!("unsupported wire type {w}")),
        }
    }

    fn advance(&mut self, n: usize) -> Result<(), String> {
        if self.pos + n > self.buf.len() {
            return Err("truncated field".into());
        }
        self.pos += n;
        Ok(())
    }
}

/// Standard base64 with padding (Kubernetes' encoding of `[]byte` fields).
pub(crate) fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn utf8(b: &[u8]) -> Result<String, String> {
    String::from_utf8(b.to_vec()).map_err(|_| "invalid UTF-8 in a string field".to_string())
}

fn map_entry(b: &[u8], bytes_value: bool) -> Result<(String, Value), String> {
    let mut r = Reader { buf: b, pos: 0 };
    let (mut k, mut v) = (String::new(), Value::String(String::new()));
    while r.pos < r.buf.len() {
        let tag = r.varint()?;
        match (tag >> 3, tag & 7) {
            (1, 2) => k = utf8(r.bytes()?)?,
            (2, 2) => {
                let raw = r.bytes()?;
                v = Value::String(if bytes_value { base64(raw) } else { utf8(raw)? });
            }
            (_, w) => r.skip(w)?,
        }
    }
    Ok((k, v))
}

/// A `Quantity` message: its string form.
fn quantity(b: &[u8]) -> Result<Value, String> {
    let mut r = Reader { buf: b, pos: 0 };
    let mut q = String::new();
    while r.pos < r.buf.len() {
        let tag = r.varint()?;
        match (tag >> 3, tag & 7) {
            (1, 2) => q = utf8(r.bytes()?)?,
            (_, w) => r.skip(w)?,
        }
    }
    Ok(Value::String(q))
}

/// An `IntOrString` message: a JSON number or string.
fn int_or_string(b: &[u8]) -> Result<Value, String> {
    let mut r = Reader { buf: b, pos: 0 };
    let (mut t, mut i, mut s) = (0u64, 0i64, String::new());
    while r.pos < r.buf.len() {
        let tag = r.varint()?;
        match (tag >> 3, tag & 7) {
            (1, 0) => t = r.varint()?,
            // int32 on the wire: sign-extended to 64 bits.
            (2, 0) => i = r.varint()? as i64 as i32 as i64,
            (3, 2) => s = utf8(r.bytes()?)?,
            (_, w) => r.skip(w)?,
        }
    }
    Ok(if t == 1 { Value::String(s) } else { json!(i) })
}

/// A `map<string, Quantity>` entry.
fn quantity_entry(b: &[u8]) -> Result<(String, Value), String> {
    let mut r = Reader { buf: b, pos: 0 };
    let (mut k, mut v) = (String::new(), Value::String(String::new()));
    while r.pos < r.buf.len() {
        let tag = r.varint()?;
        match (tag >> 3, tag & 7) {
            (1, 2) => k = utf8(r.bytes()?)?,
            (2, 2) => v = quantity(r.bytes()?)?,
            (_, w) => r.skip(w)?,
        }
    }
    Ok((k, v))
}

fn time(b: &[u8]) -> Result<Value, String> {
    let mut r = Reader { buf: b, pos: 0 };
    let mut secs = 0i64;
    while r.pos < r.buf.len() {
        let tag = r.varint()?;
        match (tag >> 3, tag & 7) {
            (1, 0) => secs = r.varint()? as i64,
            (_, w) => r.skip(w)?,
        }
    }
    if secs == 0 {
        // The zero time, which Go's JSON writes as null: unset.
        return Ok(Value::Null);
    }
    let t = jiff::Timestamp::from_second(secs).map_err(|e| e.to_string())?;
    Ok(Value::String(t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()))
}

fn message(b: &[u8], fields: &[Field], depth: u32) -> Result<Value, String> {
    if depth > 12 {
        return Err("message nested too deeply".into());
    }
    let mut r = Reader { buf: b, pos: 0 };
    let mut out = Map::new();
    while r.pos < r.buf.len() {
        let tag = r.varint()?;
        let (num, wire) = (tag >> 3, tag & 7);
        let Some(field) = fields.iter().find(|f| f.num == num) else {
            // Fields the emulator does not model (e.g. managedFields) are skipped.
            r.skip(wire)?;
            continue;
        };
        let value = match (field.kind, wire) {
            (Kind::Str, 2) => Value::String(utf8(r.bytes()?)?),
            (Kind::Bytes, 2) => Value::String(base64(r.bytes()?)),
            // Negative int32s arrive sign-extended to 64 bits, so this cast restores them.
            (Kind::Int, 0) => json!(r.varint()? as i64),
            (Kind::Quantity, 2) => quantity(r.bytes()?)?,
            (Kind::IntOrString, 2) => int_or_string(r.bytes()?)?,
            (Kind::Inline(sub), 2) => {
                if let Value::Object(m) = message(r.bytes()?, sub, depth + 1)? {
                    out.extend(m);
                }
                continue;
            }
            (Kind::MapQuantity, 2) => {
                let (k, v) = quantity_entry(r.bytes()?)?;
                let m = out
                    .entry(field.name)
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(m) = m {
                    m.insert(k, v);
                }
                continue;
            }
            (Kind::Bool, 0) => json!(r.varint()? != 0),
            (Kind::Time, 2) => time(r.bytes()?)?,
            (Kind::Msg(sub), 2) => message(r.bytes()?, sub, depth + 1)?,
            (Kind::MapStr | Kind::MapBytes, 2) => {
                let (k, v) = map_entry(r.bytes()?, matches!(field.kind, Kind::MapBytes))?;
                let m = out
                    .entry(field.name)
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(m) = m {
                    m.insert(k, v);
                }
                continue;
            }
            _ => {
                return Err(format!(
                    "field {} has an unexpected wire type {wire}",
                    field.name
                ));
            }
        };
        if !field.keep_zero && is_zero(&value) {
            continue;
        }
        if field.repeated {
            let list = out
                .entry(field.name)
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(a) = list {
                a.push(value);
            }
        } else {
            out.insert(field.name.to_string(), value);
        }
    }
    Ok(Value::Object(out))
}

/// Decodes a `application/vnd.kubernetes.protobuf` body into the JSON object it encodes.
/// `Err` names why: not the envelope, a kind the emulator cannot decode, or corrupt data.
pub fn decode(body: &[u8]) -> Result<Value, String> {
    let rest = body
        .strip_prefix(MAGIC)
        .ok_or("the body does not start with the Kubernetes protobuf prefix")?;
    let envelope = message(rest, UNKNOWN, 0)?;
    let api_version = envelope["typeMeta"]["apiVersion"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let kind = envelope["typeMeta"]["kind"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let fields = match (api_version.as_str(), kind.as_str()) {
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
        _ => {
            return Err(format!(
                "the emulator decodes protobuf only for v1 Namespace, ConfigMap, Secret, ServiceAccount, Pod and Service, apps/v1 Deployment, batch/v1 Job and CronJob and autoscaling/v2 HorizontalPodAutoscaler, not {api_version} {kind}; send JSON"
            ));
        }
    };
    let raw = envelope
        .get("raw")
        .and_then(Value::as_str)
        .unwrap_or_default();
    // `raw` went through base64 in `message`; decode it back for the inner message.
    let raw = unbase64(raw).ok_or("corrupt raw payload")?;
    let mut obj = message(&raw, fields, 0)?;
    obj["apiVersion"] = json!(api_version);
    obj["kind"] = json!(kind);
    Ok(obj)
}

fn unbase64(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        })
    };
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for chunk in bytes.chunks(4) {
        let pad = chunk.iter().filter(|c| **c == b'=').count();
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            let v = if *c == b'=' { 0 } else { val(*c)? };
            n |= v << (18 - 6 * i);
        }
        let b = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&b[..3 - pad.min(2)]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(num: u64, wire: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![((num << 3) | wire) as u8];
        if wire == 2 {
            out.push(payload.len() as u8);
        }
        out.extend_from_slice(payload);
        out
    }

    fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let tm = [
            field(1, 2, api_version.as_bytes()),
            field(2, 2, kind.as_bytes()),
        ]
        .concat();
        [MAGIC.to_vec(), field(1, 2, &tm), field(2, 2, raw)].concat()
    }

    #[test]
    fn decodes_a_configmap() {
        let meta = [
            field(1, 2, b"cm1"),
            field(11, 2, &[field(1, 2, b"a"), field(2, 2, b"b")].concat()),
        ]
        .concat();
        let raw = [
            field(1, 2, &meta),
            field(2, 2, &[field(1, 2, b"key"), field(2, 2, b"value")].concat()),
            field(
                3,
                2,
                &[field(1, 2, b"bin"), field(2, 2, b"\x00\x01")].concat(),
            ),
            field(4, 0, &[1]),
        ]
        .concat();
        let v = decode(&envelope("v1", "ConfigMap", &raw)).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm1", "labels": {"a": "b"}},
                "data": {"key": "value"}, "binaryData": {"bin": "AAE="}, "immutable": true})
        );
    }

    #[test]
    fn decodes_a_deployment_with_nested_kinds() {
        let intstr_str = [field(1, 0, &[1]), field(3, 2, b"25%")].concat();
        let intstr_int = [field(1, 0, &[0]), field(2, 0, &[1])].concat();
        let strategy = [
            field(1, 2, b"RollingUpdate"),
            field(
                2,
                2,
                &[field(1, 2, &intstr_int), field(2, 2, &intstr_str)].concat(),
            ),
        ]
        .concat();
        let limits = [field(1, 2, b"cpu"), field(2, 2, &field(1, 2, b"500m"))].concat();
        let key_ref = [field(1, 2, &field(1, 2, b"cm")), field(2, 2, b"k")].concat();
        let env = [field(1, 2, b"E"), field(3, 2, &field(3, 2, &key_ref))].concat();
        let container = [
            field(1, 2, b"c"),
            field(2, 2, b"nginx"),
            // Zero scalars are on the wire too; Go's JSON leaves them out.
            field(14, 2, b""),
            field(7, 2, &env),
            field(8, 2, &field(1, 2, &limits)),
        ]
        .concat();
        let pod_spec = [field(2, 2, &container), field(14, 2, b"")].concat();
        let template = field(2, 2, &pod_spec);
        let spec = [
            field(1, 0, &[2]),
            // A zero that means something (paused is a plain bool, minReadySeconds a plain int).
            field(7, 0, &[0]),
            field(5, 0, &[0]),
            field(3, 2, &template),
            field(4, 2, &strategy),
        ]
        .concat();
        let raw = [field(1, 2, &field(1, 2, b"web")), field(2, 2, &spec)].concat();
        let v = decode(&envelope("apps/v1", "Deployment", &raw)).unwrap();
        assert_eq!(v["spec"]["replicas"], 2);
        assert!(v["spec"].get("paused").is_none() && v["spec"].get("minReadySeconds").is_none());
        assert_eq!(
            v["spec"]["strategy"]["rollingUpdate"],
            json!({"maxUnavailable": 1, "maxSurge": "25%"})
        );
        let c = &v["spec"]["template"]["spec"]["containers"][0];
        assert!(
            c.get("imagePullPolicy").is_none() && c.get("stdin").is_none(),
            "{c}"
        );
        assert_eq!(c["resources"], json!({"limits": {"cpu": "500m"}}));
        assert_eq!(
            c["env"][0],
            json!({"name": "E", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}})
        );
        assert_eq!(v["spec"]["template"]["spec"]["securityContext"], json!({}));
    }

    #[test]
    fn refuses_other_kinds_and_garbage() {
        assert!(
            decode(&envelope("apps/v1", "StatefulSet", b""))
                .unwrap_err()
                .contains("StatefulSet")
        );
        assert!(decode(b"not protobuf").is_err());
        assert!(decode(&[MAGIC, &[0x0a, 0xff]].concat()).is_err());
        assert!(decode(&[MAGIC, &[0xff; 12]].concat()).is_err());
    }

    #[test]
    fn base64_round_trips() {
        for s in [&b""[..], b"a", b"ab", b"abc", b"abcd", &[0, 255, 7]] {
            assert_eq!(unbase64(&base64(s)).unwrap(), s);
        }
    }
}
