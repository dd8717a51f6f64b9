//! Reads: get, and list with selectors, `limit`/`continue` chunks and Kubernetes'
//! resourceVersion semantics (current, `NotOlderThan`, `Exact` from history).

use std::sync::Arc;

use serde_json::{Value, json};

use super::meta::meta_str;
use super::{Api, ListOptions};
use crate::convert::{is_identity, to_version};
use crate::error::ApiError;
use crate::registry::ResourceType;
use crate::store::{Inner, Snapshot};

impl Api {
    /// Gets one object.
    pub fn get(&self, rt: &ResourceType, ns: &str, name: &str) -> Result<Value, ApiError> {
        let inner = self.store.lock();
        let obj = stored(&inner, rt, ns, name)?;
        Ok(to_version(rt, &obj))
    }

    /// Lists objects, honouring selectors, limit/continue and resourceVersion semantics.
    pub fn list(
        &self,
        rt: &Arc<ResourceType>,
        ns: Option<&str>,
        o: &ListOptions,
    ) -> Result<Value, ApiError> {
        let (objects, metadata) = self.select(rt, ns, o)?;
        let items = objects.iter().map(|obj| to_version(rt, obj)).collect();
        Ok(json!({
            "apiVersion": rt.api_version(),
            "kind": rt.list_kind,
            "metadata": metadata,
            // Moved in: `json!` would copy each item through serde.
            "items": Value::Array(items),
        }))
    }

    /// [`Api::list`] serialized: the stored objects are written as they are when the
    /// client's version is the stored one, not copied first (a controller's start lists
    /// thousands). Keys in Kubernetes' order: kind, apiVersion, metadata, items.
    pub fn list_json(
        &self,
        rt: &Arc<ResourceType>,
        ns: Option<&str>,
        o: &ListOptions,
    ) -> Result<Vec<u8>, ApiError> {
        let (objects, metadata) = self.select(rt, ns, o)?;
        let mut out = Vec::with_capacity(256 + objects.len() * 1024);
        let write = |out: &mut Vec<u8>, v: &Value| {
            serde_json::to_writer(out, v)
                .map_err(|e| ApiError::internal(format!("cannot serialize the list: {e}")))
        };
        out.extend_from_slice(b"{\"kind\":");
        write(&mut out, &Value::String(rt.list_kind.clone()))?;
        out.extend_from_slice(b",\"apiVersion\":");
        write(&mut out, &Value::String(rt.api_version()))?;
        out.extend_from_slice(b",\"metadata\":");
        write(&mut out, &metadata)?;
        out.extend_from_slice(b",\"items\":[");
        for (i, obj) in objects.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            if is_identity(rt, obj) && obj.get("kind").and_then(Value::as_str) == Some(&rt.kind) {
                write(&mut out, obj)?;
            } else {
                write(&mut out, &to_version(rt, obj))?;
            }
        }
        out.extend_from_slice(b"]}");
        Ok(out)
    }

    /// The stored objects a list selects, in order, and the list's metadata.
    fn select(
        &self,
        rt: &Arc<ResourceType>,
        ns: Option<&str>,
        o: &ListOptions,
    ) -> Result<(Vec<Arc<Value>>, Value), ApiError> {
        let o = &o.defaulted_and_checked(false)?;
        let filter = self.filter(rt, ns, o)?;
        let parsed_rv = parse_rv(o.resource_version.as_deref())?;
        let (start_rv, start_key) = match &o.continue_token {
            Some(t) if !t.is_empty() => {
                let (rv, key) = decode_continue(t)?;
                (Some(rv), Some(key))
            }
            _ => (None, None),
        };
        let inner = self.store.lock();
        let at = match (start_rv, o.resource_version_match.as_deref(), parsed_rv) {
            (Some(rv), _, _) => Some(rv),
            (None, Some("Exact"), Some(rv)) => Some(rv),
            (None, Some("NotOlderThan") | None, Some(rv)) if rv > inner.rv() => {
                return Err(ApiError::new(
                    504,
                    "Timeout",
                    format!(
                        "Too large resource version: {rv}, current resource version: {}",
                        inner.rv()
                    ),
                ));
            }
            _ => None,
        };
        let snap = match at {
            Some(rv) => inner.list_at(&rt.storage, ns, rv).ok_or_else(|| {
                if start_rv.is_some() {
                    ApiError::expired(String::from(
                        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list."
                    ))
                } else {
                    ApiError::expired(format!("too old resource version: {rv} ({})", inner.oldest() + 1))
                }
            })?,
            None => Snapshot {
                rv: inner.rv(),
                objects: inner.list_current(&rt.storage, ns),
            },
        };
        drop(inner);
        let mut items = Vec::new();
        let mut next = None;
        let mut remaining = 0u64;
        for obj in &snap.objects {
            let key = format!(
                "{}/{}",
                meta_str(obj, "namespace").unwrap_or_default(),
                meta_str(obj, "name").unwrap_or_default()
            );
            if start_key
                .as_ref()
                .is_some_and(|s| key.as_str() <= s.as_str())
            {
                continue;
            }
            if !filter.matches(obj) {
                continue;
            }
            if let Some(limit) = o.limit.filter(|l| *l > 0) {
                if items.len() >= limit {
                    remaining += 1;
                    continue;
                }
                if items.len() + 1 == limit {
                    next = Some(key.clone());
                }
            }
            items.push(Arc::clone(obj));
        }
        let mut list_meta = json!({"resourceVersion": snap.rv.to_string()});
        if remaining > 0
            && let Some(k) = next
        {
            list_meta["continue"] = json!(encode_continue(snap.rv, &k));
            if filter.labels.is_empty() && filter.fields.is_empty() {
                list_meta["remainingItemCount"] = json!(remaining);
            }
        }
        Ok((items, list_meta))
    }
}

/// The stored object a request names, or 404.
pub(super) fn stored(
    inner: &Inner,
    rt: &ResourceType,
    ns: &str,
    name: &str,
) -> Result<Arc<Value>, ApiError> {
    inner
        .get(&rt.storage, ns, name)
        .ok_or_else(|| ApiError::not_found(&rt.group, &rt.resource, name))
}

/// A `resourceVersion` parameter: unset, or a number (400 otherwise).
pub(super) fn parse_rv(s: Option<&str>) -> Result<Option<u64>, ApiError> {
    match s {
        None | Some("") => Ok(None),
        Some(s) => s
            .parse()
            .map(Some)
            .map_err(|_| ApiError::bad_request(format!("invalid resource version \"{s}\""))),
    }
}

/// The `continue` token of a list chunk: the snapshot's resourceVersion and the last key.
fn encode_continue(rv: u64, key: &str) -> String {
    let raw = format!("{rv}\u{0}{key}");
    raw.bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_continue(t: &str) -> Result<(u64, String), ApiError> {
    let bad = || ApiError::bad_request(format!("continue key is not valid: {t}"));
    if !t.len().is_multiple_of(2) || t.len() > 4096 {
        return Err(bad());
    }
    let bytes: Result<Vec<u8>, _> = (0..t.len())
        .step_by(2)
        .map(|i| {
            t.get(i..i + 2)
                .ok_or(())
                .and_then(|h| u8::from_str_radix(h, 16).map_err(|_| ()))
        })
        .collect();
    let s = String::from_utf8(bytes.map_err(|_| bad())?).map_err(|_| bad())?;
    let (rv, key) = s.split_once('\u{0}').ok_or_else(bad)?;
    Ok((rv.parse().map_err(|_| bad())?, key.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip_and_reject_garbage() {
        let t = encode_continue(42, "ns/a");
        assert_eq!(decode_continue(&t).unwrap(), (42, "ns/a".to_string()));
        for bad in ["zz", "abc", "00", "", "ffff"] {
            assert!(decode_continue(bad).is_err(), "{bad}");
        }
    }
}
