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
