//! Answers: JSON bodies with `Warning` headers, errors as `metav1.Status`, and Tables when
//! the client asks for them.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::Value;

use super::query::Query;
use crate::api::WriteResult;
use crate::error::ApiError;

/// A JSON answer; each warning becomes a `Warning: 299 - "..."` header.
pub(super) fn json_response(code: u16, body: &Value, warnings: &[String]) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut resp = Response::new(Body::from(bytes));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    for w in warnings {
        let v = format!("299 - {}", serde_json::to_string(w).unwrap_or_default());
        if let Ok(h) = HeaderValue::from_str(&v) {
            resp.headers_mut().append("Warning", h);
        }
    }
    resp
}

/// An error as its Status, with `Retry-After` when it has one.
pub(super) fn error_response(e: &ApiError) -> Response {
    if e.details.plain {
        let mut r = Response::new(Body::from(format!("{}\n", e.message)));
        *r.status_mut() = StatusCode::from_u16(e.code).unwrap_or(StatusCode::NOT_FOUND);
        let h = r.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        h.insert(
            "x-content-type-options",
            HeaderValue::from_static("nosniff"),
        );
        return r;
    }
    let mut r = json_response(e.code, &e.to_status(), &[]);
    if let Some(s) = e.details.retry_after
        && let Ok(h) = HeaderValue::from_str(&s.to_string())
    {
        r.headers_mut().insert(header::RETRY_AFTER, h);
    }
    r
}

/// A JSON answer without warnings.
pub(super) fn ok(code: u16, v: &Value) -> Result<Response, ApiError> {
    Ok(json_response(code, v, &[]))
}

/// The answer to a write: 201 when it created the object, else 200.
pub(super) fn written(r: WriteResult) -> Result<Response, ApiError> {
    Ok(json_response(
        if r.created { 201 } else { 200 },
        &r.object,
        &r.warnings,
    ))
}

/// Whether the client asks for a `meta.k8s.io` Table (`kubectl get`).
pub(super) fn accepts_table(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|a| {
            a.split(',')
                .any(|part| part.contains("as=Table") && part.contains("g=meta.k8s.io"))
        })
}

/// A Table's rows with the objects `includeObject` asks for (`Metadata`, the default, keeps
/// the partial metadata the rows carry).
pub(super) fn with_objects(mut t: Value, objects: &[Value], q: &Query) -> Value {
    if q.get("includeObject") == Some("Object")
        && let Some(rows) = t.get_mut("rows").and_then(Value::as_array_mut)
    {
        for (row, obj) in rows.iter_mut().zip(objects) {
            row["object"] = obj.clone();
        }
    }
    if q.get("includeObject") == Some("None")
        && let Some(rows) = t.get_mut("rows").and_then(Value::as_array_mut)
    {
        for row in rows.iter_mut() {
            if let Some(m) = row.as_object_mut() {
                m.remove("object");
            }
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_accept_header() {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static(
                "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
            ),
        );
        assert!(accepts_table(&h));
        h.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        assert!(!accepts_table(&h));
    }
}
