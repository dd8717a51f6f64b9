//! `meta.k8s.io/v1` Table responses (what `kubectl get` asks for), with printer columns.

use serde_json::{Value, json};

use crate::registry::{PrinterColumn, ResourceType};

mod cells;
mod jsonpath;
mod printers;

pub use cells::human_duration;
pub use jsonpath::json_path;

use cells::{age, col, s};
use printers::builtin_columns;

fn custom_cell(c: &PrinterColumn, obj: &Value) -> Value {
    let vals = json_path(obj, &c.json_path);
    let Some(first) = vals.into_iter().next() else {
        return Value::Null;
    };
    match c.type_.as_str() {
        "date" => json!(age(Some(&first))),
        "integer" | "number" | "boolean" => first,
        _ => match first {
            Value::String(s) => json!(s),
            Value::Null => Value::Null,
            other => json!(other.to_string()),
        },
    }
}

fn row(obj: &Value, cells: Vec<Value>) -> Value {
    let mut meta = json!({});
    if let Some(m) = obj.get("metadata").and_then(Value::as_object) {
        for (k, v) in m {
            if k != "managedFields" {
                meta[k] = v.clone();
            }
        }
    }
    json!({
        "cells": cells,
        "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta},
    })
}

/// A Table for a list (or a single object) of one type.
pub fn table(rt: &ResourceType, objects: &[Value], list_meta: Value) -> Value {
    let (defs, rows): (Vec<Value>, Vec<Value>) = if rt.custom {
        let mut defs = vec![col(
            "Name",
            "string",
            "name",
            0,
            "Name must be unique within a namespace.",
        )];
        defs.extend(
            rt.printer_columns
                .iter()
                .map(|c| col(&c.name, &c.type_, &c.format, c.priority, &c.description)),
        );
        let rows = objects
            .iter()
            .map(|o| {
                let mut cells = vec![json!(s(o.pointer("/metadata/name")))];
                cells.extend(rt.printer_columns.iter().map(|c| custom_cell(c, o)));
                row(o, cells)
            })
            .collect();
        (defs, rows)
    } else {
        let (defs, f) = builtin_columns(rt);
        (defs, objects.iter().map(|o| row(o, f(o))).collect())
    };
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": defs,
        "rows": rows,
    })
}
