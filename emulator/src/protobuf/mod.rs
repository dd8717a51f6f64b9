//! Decoding of Kubernetes' protobuf request bodies for the kinds kubectl's typed subcommands
//! create (`kubectl create namespace|configmap|secret|serviceaccount|deployment|job|cronjob|
//! service`, `kubectl run`, `kubectl expose`, `kubectl autoscale`), and the DeleteOptions
//! client-go sends with deletes of built-in kinds (Helm's `uninstall`).
//!
//! A hand-written reader with per-kind field tables keeps this small; the tables hold the
//! fields those commands set (field numbers from Kubernetes' `generated.proto`); kinds outside
//! the tables are refused with 415, which the README lists as a known difference.

use serde_json::{Map, Value, json};

use crate::base64;

mod messages;
mod wire;

use messages::{Field, Kind, UNKNOWN, is_zero, message_of};
use wire::{each_field, int_or_string, map_entry, quantity, quantity_entry, time, utf8};

/// The prefix of every Kubernetes protobuf payload.
const MAGIC: &[u8] = b"k8s\x00";

/// Adds one entry to the map field `name` of `out`.
fn insert_entry(out: &mut Map<String, Value>, name: &str, (k, v): (String, Value)) {
    let m = out.entry(name).or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(m) = m {
        m.insert(k, v);
    }
}

/// Decodes a message of `fields` into the JSON object Kubernetes' JSON encoding gives it.
fn message(b: &[u8], fields: &[Field], depth: u32) -> Result<Value, String> {
    if depth > 12 {
        return Err("message nested too deeply".into());
    }
    let mut out = Map::new();
    each_field(b, |r, num, wire| {
        // Fields the emulator does not model (e.g. managedFields) are skipped.
        let Some(field) = fields.iter().find(|f| f.num == num) else {
            return Ok(false);
        };
        let value = match (field.kind, wire) {
            (Kind::Str, 2) => Value::String(utf8(r.bytes()?)?),
            (Kind::Bytes, 2) => Value::String(base64::encode(r.bytes()?)),
            (Kind::Int, 0) => json!(r.int()?),
            (Kind::Quantity, 2) => quantity(r.bytes()?)?,
            (Kind::IntOrString, 2) => int_or_string(r.bytes()?)?,
            (Kind::Inline(sub), 2) => {
                if let Value::Object(m) = message(r.bytes()?, sub, depth + 1)? {
                    out.extend(m);
                }
                return Ok(true);
            }
            (Kind::MapQuantity, 2) => {
                insert_entry(&mut out, field.name, quantity_entry(r.bytes()?)?);
                return Ok(true);
            }
            (Kind::MapStr | Kind::MapBytes, 2) => {
                let bytes_value = matches!(field.kind, Kind::MapBytes);
                insert_entry(&mut out, field.name, map_entry(r.bytes()?, bytes_value)?);
                return Ok(true);
            }
            (Kind::Bool, 0) => json!(r.int()? != 0),
            (Kind::Time, 2) => time(r.bytes()?)?,
            (Kind::Msg(sub), 2) => message(r.bytes()?, sub, depth + 1)?,
            _ => {
                return Err(format!(
                    "field {} has an unexpected wire type {wire}",
                    field.name
                ));
            }
        };
        if !field.keep_zero && is_zero(&value) {
            return Ok(true);
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
        Ok(true)
    })?;
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
    let Some(fields) = message_of(&api_version, &kind) else {
        return Err(format!(
            "the emulator decodes protobuf only for v1 Namespace, ConfigMap, Secret, ServiceAccount, Pod and Service, apps/v1 Deployment, batch/v1 Job and CronJob, autoscaling/v2 HorizontalPodAutoscaler and DeleteOptions, not {api_version} {kind}; send JSON"
        ));
    };
    let raw = envelope
        .get("raw")
        .and_then(Value::as_str)
        .unwrap_or_default();
    // `raw` went through base64 in `message`; decode it back for the inner message.
    let raw = base64::decode(raw).ok_or("corrupt raw payload")?;
    let mut obj = message(&raw, fields, 0)?;
    obj["apiVersion"] = json!(api_version);
    obj["kind"] = json!(kind);
    Ok(obj)
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
    fn decodes_delete_options_keeping_meaningful_zeros() {
        let preconditions = [field(1, 2, b"u-1"), field(2, 2, b"42")].concat();
        let raw = [
            field(1, 0, &[0]),
            field(2, 2, &preconditions),
            field(3, 0, &[0]),
            field(4, 2, b"Foreground"),
            field(5, 2, b"All"),
            // A field of a newer Kubernetes is skipped.
            field(6, 0, &[1]),
        ]
        .concat();
        let v = decode(&envelope("v1", "DeleteOptions", &raw)).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
                "preconditions": {"uid": "u-1", "resourceVersion": "42"},
                "orphanDependents": false, "propagationPolicy": "Foreground", "dryRun": ["All"]})
        );
        // Unset fields stay unset: the server's defaults apply.
        let v = decode(&envelope("meta.k8s.io/v1", "DeleteOptions", b"")).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "meta.k8s.io/v1", "kind": "DeleteOptions"})
        );
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
}
