//! Answers: JSON bodies with `Warning` headers, errors as `metav1.Status`, and Tables when
//! the client asks for them.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use super::query::Query;
use crate::api::WriteResult;
use crate::error::ApiError;

/// A JSON answer; each warning becomes a `Warning: 299 - "..."` header.
pub(super) fn json_response(code: u16, body: &Value, warnings: &[String]) -> Response {
    let mut resp = json_bytes_response(code, serde_json::to_vec(body).unwrap_or_default());
    for w in warnings {
        let v = format!("299 - {}", serde_json::to_string(w).unwrap_or_default());
        if let Ok(h) = HeaderValue::from_str(&v) {
            resp.headers_mut().append("Warning", h);
        }
    }
    resp
}

/// A JSON answer already serialized.
pub(super) fn json_bytes_response(code: u16, bytes: Vec<u8>) -> Response {
    let mut resp = Response::new(Body::from(bytes));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
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

/// How the client asks to see objects: whole, as a `meta.k8s.io` Table
/// (`kubectl get`), or as their metadata alone (`PartialObjectMetadata`, as
/// controllers watch kinds they only need to know the names of).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    /// The objects themselves.
    Object,
    /// A Table.
    Table,
    /// `PartialObjectMetadata` (a list: `PartialObjectMetadataList`).
    Metadata,
}

/// The shape the client's Accept header asks for: its first media type of
/// `meta.k8s.io` that the emulator serves, else the objects themselves.
/// Either `as=PartialObjectMetadata` or `…List` is taken for a list, a
/// watch or a get alike.
pub(super) fn shape(headers: &HeaderMap) -> Shape {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|h| h.to_str().ok()) else {
        return Shape::Object;
    };
    for part in accept.split(',') {
        if !part.contains("g=meta.k8s.io") {
            continue;
        }
        let as_ = part
            .split(';')
            .find_map(|p| p.trim().strip_prefix("as="))
            .unwrap_or_default();
        match as_ {
            "Table" => return Shape::Table,
            "PartialObjectMetadata" | "PartialObjectMetadataList" => return Shape::Metadata,
            _ => {}
        }
    }
    Shape::Object
}

/// `object` as a `PartialObjectMetadata`: its metadata, whole.
pub(crate) fn partial(object: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": object.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

/// `list` as a `PartialObjectMetadataList`: its metadata, and each item's.
pub(crate) fn partial_list(list: &Value) -> Value {
    let items: Vec<Value> = list
        .get("items")
        .and_then(Value::as_array)
        .map(|items| items.iter().map(partial).collect())
        .unwrap_or_default();
    json!({
        "kind": "PartialObjectMetadataList",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list.get("metadata").cloned().unwrap_or_else(|| json!({})),
        "items": Value::Array(items),
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
        assert_eq!(shape(&h), Shape::Table);
        h.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        assert_eq!(shape(&h), Shape::Object);
    }

    #[test]
    fn metadata_accept_headers_as_kube_clients_send_them() {
        let mut h = HeaderMap::new();
        for accept in [
            "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
            "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
            "application/json; as=PartialObjectMetadataList; g=meta.k8s.io; v=v1, application/json",
        ] {
            h.insert(header::ACCEPT, HeaderValue::from_static(accept));
            assert_eq!(shape(&h), Shape::Metadata, "{accept}");
        }
        // Not of meta.k8s.io: the objects themselves.
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/json;as=PartialObjectMetadata;g=example.com"),
        );
        assert_eq!(shape(&h), Shape::Object);
    }

    #[test]
    fn partial_metadata_keeps_the_metadata_and_nothing_else() {
        let object = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "resourceVersion": "4", "ownerReferences": []},
            "data": {"secret": "x"}});
        let p = partial(&object);
        assert_eq!(p["kind"], "PartialObjectMetadata");
        assert_eq!(p["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(p["metadata"], object["metadata"]);
        assert!(p.get("data").is_none());
        let list = json!({"kind": "ConfigMapList", "apiVersion": "v1",
            "metadata": {"resourceVersion": "9", "continue": "c"}, "items": [object]});
        let l = partial_list(&list);
        assert_eq!(l["kind"], "PartialObjectMetadataList");
        assert_eq!(l["metadata"]["continue"], "c");
        assert_eq!(l["items"][0], p);
    }
}
