//! Decoding of Kubernetes' protobuf request bodies for the few kinds kubectl's typed
//! subcommands create (`kubectl create namespace|configmap|secret|serviceaccount`).
//!
//! A hand-written reader with per-kind field tables keeps this small; kinds outside the tables
//! are refused with 415, which the README lists as a known difference.

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
    MapStr,
    MapBytes,
}

struct Field {
    num: u64,
    name: &'static str,
    kind: Kind,
    repeated: bool,
}

const fn f(num: u64, name: &'static str, kind: Kind) -> Field {
    Field {
        num,
        name,
        kind,
        repeated: false,
    }
}

const fn rep(num: u64, name: &'static str, kind: Kind) -> Field {
    Field {
        num,
        name,
        kind,
        repeated: true,
    }
}

const OWNER_REF: &[Field] = &[
    f(1, "kind", Kind::Str),
    f(3, "name", Kind::Str),
    f(4, "uid", Kind::Str),
    f(5, "apiVersion", Kind::Str),
    f(6, "controller", Kind::Bool),
    f(7, "blockOwnerDeletion", Kind::Bool),
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
    f(10, "deletionGracePeriodSeconds", Kind::Int),
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
    f(4, "immutable", Kind::Bool),
];

const SECRET: &[Field] = &[
    f(1, "metadata", Kind::Msg(OBJECT_META)),
    f(2, "data", Kind::MapBytes),
    f(3, "type", Kind::Str),
    f(4, "stringData", Kind::MapStr),
    f(5, "immutable", Kind::Bool),
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
    f(4, "automountServiceAccountToken", Kind::Bool),
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
    let t = jiff::Timestamp::from_second(secs).map_err(|e| e.to_string())?;
    Ok(Value::String(t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()))
}

fn message(b: &[u8], fields: &[Field], depth: u32) -> Result<Value, String> {
    if depth > 8 {
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
            (Kind::Int, 0) => json!(r.varint()? as i64),
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
        _ => {
            return Err(format!(
                "the emulator decodes protobuf only for v1 Namespace, ConfigMap, Secret and ServiceAccount, not {api_version} {kind}; send JSON"
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
    fn refuses_other_kinds_and_garbage() {
        assert!(
            decode(&envelope("apps/v1", "Deployment", b""))
                .unwrap_err()
                .contains("Deployment")
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
