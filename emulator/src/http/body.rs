//! Request bodies: read up to Kubernetes' size limit, and decoded from JSON, YAML or
//! protobuf by their content type.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, header};
use serde_json::Value;

use crate::error::ApiError;

/// Kubernetes' default limit on request bodies.
const MAX_BODY: usize = 3 * 1024 * 1024;

/// Reads a request body up to [`MAX_BODY`]. A larger body is drained (up to a bound) before
/// the 413 answer, so the client reliably reads the answer instead of a reset connection.
pub(super) async fn read_body(body: Body) -> Result<Bytes, ApiError> {
    use futures_util::StreamExt;
    const MAX_DRAIN: usize = 64 * 1024 * 1024;
    let mut stream = body.into_data_stream();
    let mut buf = Vec::new();
    let mut total = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|e| ApiError::bad_request(format!("error reading the request body: {e}")))?;
        total += chunk.len();
        if total <= MAX_BODY {
            buf.extend_from_slice(&chunk);
        } else if total > MAX_DRAIN {
            break;
        }
    }
    if total > MAX_BODY {
        return Err(ApiError::too_large(
            "the request body exceeds the 3 MiB limit",
        ));
    }
    Ok(Bytes::from(buf))
}

/// The media type of the body, lowercased, without parameters.
pub(super) fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Decodes a JSON (or YAML) request body into an object.
pub(super) fn decode_body(headers: &HeaderMap, body: &Bytes) -> Result<Value, ApiError> {
    let ct = content_type(headers);
    match ct.as_str() {
        "" | "application/json" | "*/*" => serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!(
                "the body of the request could not be decoded as JSON: {e}"
            ))
        }),
        "application/yaml" | "application/x-yaml" | "text/yaml" => decode_yaml(body),
        "application/vnd.kubernetes.protobuf" => crate::protobuf::decode(body).map_err(|e| {
            let mut err = ApiError::unsupported_media_type(
                "application/vnd.kubernetes.protobuf",
                &["application/json", "application/yaml"],
            );
            err.message = format!("{}: {e}", err.message);
            err
        }),
        other => Err(ApiError::unsupported_media_type(
            other,
            &["application/json", "application/yaml"],
        )),
    }
}

/// A server-side apply's configuration, and its duplicate keys. Kubernetes reads it
/// leniently (the last value of a key wins) and judges duplicates by `fieldValidation`
/// only after the apply has merged: refused under `Strict`, a warning under `Warn`,
/// nothing under `Ignore` (`applyPatcher.applyPatchToCurrentObject`). Only the first
/// duplicate is named (the YAML reader stops at it); Kubernetes names every one.
pub(super) fn decode_apply(body: &Bytes) -> Result<(Value, Vec<String>), ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("the body is not valid UTF-8"))?;
    if let Some(config) = json_apply(text) {
        return Ok((config, Vec::new()));
    }
    let error = match serde_saphyr::from_str::<Value>(text) {
        Ok(config) => return Ok((config, Vec::new())),
        Err(error) => error,
    };
    let Some(duplicate) = duplicate_key(&error) else {
        return Err(ApiError::bad_request(format!(
            "error decoding YAML: {error}"
        )));
    };
    let lenient = serde_saphyr::options! {
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::LastWins,
    };
    let config = serde_saphyr::from_str_with_options::<Value>(text, lenient)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
    Ok((config, vec![duplicate]))
}

/// A JSON apply body read by the JSON reader, for what the YAML reader would make of it,
/// at a fraction of its cost (most clients, kube-rs and client-go among them, send JSON).
/// The two readers agree on a JSON object but for a few forms, which answer `None` and go to
/// the YAML reader as before: a duplicate key (reported with the YAML reader's line
/// number), a `\u` escape (YAML reads some differently, lone surrogates), a number that is
/// not an integer within `i64` (the languages' number forms differ), and anything that is
/// not one JSON object.
fn json_apply(text: &str) -> Option<Value> {
    if !text.trim_start().starts_with('{') || text.contains("\\u") {
        return None;
    }
    let mut reader = serde_json::Deserializer::from_str(text);
    let config = serde::de::DeserializeSeed::deserialize(Unique, &mut reader).ok()?;
    reader.end().ok()?;
    Some(config)
}

/// Reads a JSON value, refusing duplicate keys and every number but an `i64`.
struct Unique;

impl<'de> serde::de::DeserializeSeed<'de> for Unique {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Unique {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value without duplicate keys or non-integer numbers")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<Value, E> {
        i64::try_from(value)
            .map(Value::from)
            .map_err(|_| E::custom("beyond i64"))
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Value, E> {
        Err(E::custom("not an integer"))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element_seed(Unique)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(Unique)?;
            if object.insert(key, value).is_some() {
                return Err(serde::de::Error::custom("duplicate key"));
            }
        }
        Ok(Value::Object(object))
    }
}

/// A duplicate key as go-yaml's strict decoding reports it, if that is the error.
fn duplicate_key(mut error: &serde_saphyr::Error) -> Option<String> {
    while let serde_saphyr::Error::WithSnippet { error: inner, .. }
    | serde_saphyr::Error::AliasError { error: inner, .. } = error
    {
        error = inner;
    }
    let serde_saphyr::Error::DuplicateMappingKey { key, location } = error else {
        return None;
    };
    // go-yaml prints the key with `%#v`: a string quoted as Go quotes it.
    let key = key.as_deref().map_or_else(
        || "?".to_owned(),
        |key| serde_json::to_string(key).unwrap_or_else(|_| key.to_owned()),
    );
    Some(format!(
        "line {}: key {key} already set in map",
        location.line()
    ))
}

/// A YAML body (`kubectl create -f`).
pub(super) fn decode_yaml(body: &Bytes) -> Result<Value, ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("the body is not valid UTF-8"))?;
    serde_saphyr::from_str::<Value>(text)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn yaml(text: &str) -> Value {
        serde_saphyr::from_str(text).expect("YAML")
    }

    #[test]
    fn a_json_apply_body_reads_as_the_yaml_reader_reads_it() {
        let deployment = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "demo", "labels": {"app": "web", "tier": ""},
                "annotations": {"note": "tab\there, quote \" slash \\ / newline\n"}},
            "spec": {"replicas": 3, "paused": false, "revisionHistoryLimit": 0,
                "progressDeadlineSeconds": -5, "minReadySeconds": 9_007_199_254_740_993_i64,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                    {"name": "web", "image": "example/web:1", "args": [], "env": [{"name": "EMPTY", "value": null}],
                     "ports": [{"containerPort": 8080, "protocol": "TCP"}]}]}}},
            "status": {}
        });
        for text in [
            deployment.to_string(),
            serde_json::to_string_pretty(&deployment).expect("pretty"),
            format!("\n  {deployment}\n\n"),
            r#"{"a": "yes", "b": "1.0", "c": "null", "d": "~", "e": "0x1f", "f": "-0", "g": "é ✓"}"#
                .to_owned(),
            r#"{"escapes": "\b\f\r\/\"\\", "tabs":TAB[1,TAB2]}"#.replace("TAB", "\t"),
            r#"{"a":-1,"b":0,"c":[[],{}],"d":{"e":{"f":[1,[2,[3]]]}}}"#.to_owned(),
        ] {
            let fast = json_apply(&text).unwrap_or_else(|| panic!("read as JSON: {text}"));
            assert_eq!(fast, yaml(&text), "{text}");
            let (decoded, duplicates) = decode_apply(&Bytes::from(text)).expect("decoded");
            assert_eq!(decoded, fast);
            assert!(duplicates.is_empty());
        }
    }

    #[test]
    fn forms_the_readers_may_read_apart_go_to_the_yaml_reader() {
        for text in [
            r#"{"replicas": 1.5}"#,
            r#"{"replicas": 1e3}"#,
            r#"{"replicas": 1.0}"#,
            r#"{"replicas": -0}"#,
            r#"{"big": 9223372036854775808}"#,
            r#"{"big": 100000000000000000000000}"#,
            r#"{"name": "\u00e9"}"#,
            r#"{"a": 1, "a": 2}"#,
            r#"{"a": {"b": 1, "b": 1}}"#,
            r#"[{"a": 1}]"#,
            r#""text""#,
            "a: 1",
            r#"{"a": 1} {"b": 2}"#,
            r#"{"a": 1,}"#,
            "{a: 1}",
        ] {
            assert_eq!(json_apply(text), None, "{text}");
        }
        // And read as before.
        let (config, duplicates) =
            decode_apply(&Bytes::from(r#"{"a": 1, "a": 2}"#)).expect("lenient");
        assert_eq!(config, json!({"a": 2}));
        assert_eq!(
            duplicates,
            vec![r#"line 1: key "a" already set in map"#.to_owned()]
        );
        let (config, _) =
            decode_apply(&Bytes::from(r#"{"r": 1.5, "n": "\u00e9", "a": 1}"#)).expect("YAML");
        assert_eq!(config, json!({"r": 1.5, "n": "é", "a": 1}));
    }
}
