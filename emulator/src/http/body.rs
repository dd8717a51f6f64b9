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

/// A YAML body (server-side apply's configurations, `kubectl create -f`).
pub(super) fn decode_yaml(body: &Bytes) -> Result<Value, ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("the body is not valid UTF-8"))?;
    serde_saphyr::from_str::<Value>(text)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
}
