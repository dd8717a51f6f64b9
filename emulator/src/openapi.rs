//! The OpenAPI documents kubectl needs: v3 per group/version (schemas for `kubectl explain`,
//! PATCH operations advertising `fieldValidation`), and v2 (JSON, and the protobuf form).

use serde_json::{Map, Value, json};

use crate::registry::{Registry, ResourceType};

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `/openapi/v3`: the index of group/version documents.
pub fn openapi_v3_root(reg: &Registry) -> Value {
    let mut paths = Map::new();
    let mut gvs: Vec<(String, String)> = reg
        .all()
        .map(|t| (t.group.clone(), t.version.clone()))
        .collect();
    gvs.dedup();
    gvs.sort();
    gvs.dedup();
    for (g, v) in gvs {
        let p = gv_path(&g, &v);
        paths.insert(
            p.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{p}")}),
        );
    }
    json!({"paths": paths})
}

fn schema_name(t: &ResourceType) -> String {
    let group = if t.group.is_empty() {
        "core".to_string()
    } else {
        t.group.split('.').rev().collect::<Vec<_>>().join(".")
    };
    let prefix = if t.custom {
        group
    } else {
        format!(
            "io.k8s.api.{}",
            t.group
                .split('.')
                .next()
                .filter(|g| !g.is_empty())
                .unwrap_or("core")
        )
    };
    format!("{prefix}.{}.{}", t.version, t.kind)
}

fn gvk(t: &ResourceType) -> Value {
    json!([{"group": t.group, "version": t.version, "kind": t.kind}])
}

/// `/openapi/v3/{api/v1 | apis/g/v}`: schemas for `kubectl explain` and the PATCH operations
/// with `fieldValidation` that kubectl checks before server-side validation.
pub fn openapi_v3_gv(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    let types: Vec<_> = reg
        .all()
        .filter(|t| t.group == group && t.version == version)
        .cloned()
        .collect();
    if types.is_empty() {
        return None;
    }
    let mut schemas = Map::new();
    let mut paths = Map::new();
    let om = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
    schemas.insert(
        om.into(),
        json!({"type": "object", "description": "ObjectMeta is metadata that all persisted resources must have, which includes all objects users must create.",
            "properties": {
                "name": {"type": "string", "description": "Name must be unique within a namespace."},
                "namespace": {"type": "string", "description": "Namespace defines the space within which each name must be unique."},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Map of string keys and values that can be used to organize and categorize objects."},
                "annotations": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Annotations is an unstructured key value map."},
                "finalizers": {"type": "array", "items": {"type": "string"}, "description": "Must be empty before the object is deleted from the registry."},
                "resourceVersion": {"type": "string"}, "uid": {"type": "string"}, "generation": {"type": "integer", "format": "int64"},
                "creationTimestamp": {"type": "string", "format": "date-time"}, "deletionTimestamp": {"type": "string", "format": "date-time"},
                "generateName": {"type": "string"},
                "ownerReferences": {"type": "array", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
                "managedFields": {"type": "array", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
            }}),
    );
    for t in &types {
        let name = schema_name(t);
        let schema = crate::builtin_schema::schema_of(t);
        let mut s = match &schema {
            Some(sc) => sc.raw.clone(),
            None => json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
        };
        if !s.is_object() {
            s = json!({"type": "object"});
        }
        let props = s
            .as_object_mut()
            .map(|m| m.entry("properties").or_insert_with(|| json!({})));
        if let Some(Value::Object(p)) = props {
            p.insert("apiVersion".into(), json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."}));
            p.insert("kind".into(), json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents."}));
            p.insert("metadata".into(), json!({"allOf": [{"$ref": format!("#/components/schemas/{om}")}], "description": "Standard object's metadata."}));
        }
        s["x-kubernetes-group-version-kind"] = gvk(t);
        schemas.insert(name.clone(), s);
        let base = format!("/{}", gv_path(group, version));
        let item = if t.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}/{{name}}", t.resource)
        } else {
            format!("{base}/{}/{{name}}", t.resource)
        };
        let param = |n: &str| json!({"name": n, "in": "query", "schema": {"type": "string", "uniqueItems": true}});
        let body_ref = json!({"schema": {"$ref": format!("#/components/schemas/{name}")}});
        let patch_content = json!({
            "application/json-patch+json": {"schema": {"type": "object"}},
            "application/merge-patch+json": {"schema": {"type": "object"}},
            "application/apply-patch+yaml": {"schema": {"type": "object"}},
        });
        let op = |verb: &str| {
            json!({
                "operationId": format!("{verb}{}", t.kind),
                "x-kubernetes-action": verb,
                "x-kubernetes-group-version-kind": {"group": t.group, "version": t.version, "kind": t.kind},
                "parameters": [param("dryRun"), param("fieldManager"), param("fieldValidation")],
                "responses": {"200": {"description": "OK", "content": {"application/json": body_ref.clone()}}},
            })
        };
        let mut patch = op("patch");
        patch["requestBody"] = json!({"content": patch_content});
        let mut put = op("put");
        put["requestBody"] = json!({"content": {"application/json": body_ref.clone()}});
        paths.insert(
            item,
            json!({"get": op("get"), "put": put, "patch": patch, "delete": op("delete")}),
        );
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0-emulator"},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

/// `/openapi/v2` as JSON: definitions with group/version/kind (no paths).
pub fn openapi_v2(reg: &Registry) -> Value {
    let mut defs = Map::new();
    for t in reg.all() {
        let mut s = t
            .schema
            .as_ref()
            .map(|s| s.raw.clone())
            .unwrap_or(json!({"type": "object"}));
        s["x-kubernetes-group-version-kind"] = gvk(t);
        defs.insert(schema_name(t), s);
    }
    json!({"swagger": "2.0", "info": {"title": "Kubernetes", "version": "v1.33.0-emulator"}, "paths": {}, "definitions": defs})
}

/// `/openapi/v2` in the protobuf form kubectl insists on: a gnostic `Document` holding only
/// `swagger: "2.0"`. kubectl then finds no schema for any kind and skips client-side checks,
/// which server-side field validation (advertised in v3) makes unnecessary.
pub fn openapi_v2_protobuf() -> Vec<u8> {
    // Field 1 (swagger), wire type 2 (length-delimited), length 3, "2.0".
    vec![0x0a, 0x03, b'2', b'.', b'0']
}
