//! CustomResourceDefinitions: checked, and turned into the resource types they serve; their
//! status once established.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::error::Cause;
use crate::registry::{
    Conversion, GroupResource, PrinterColumn, Registry, ResourceType, ScaleSpec,
};
use crate::schema::Schema;
use crate::validation::{is_dns_label, is_dns_subdomain};

mod structural;

use structural::structural;

fn s<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

/// Validates a CRD and returns the types it serves (one per served version).
pub fn types_from_crd(crd: &Value, builtin: &Registry) -> Result<Vec<ResourceType>, Vec<Cause>> {
    let mut errs = Vec::new();
    let spec = crd.get("spec").cloned().unwrap_or(Value::Null);
    let group = s(&spec, &["group"]).unwrap_or_default().to_string();
    let plural = s(&spec, &["names", "plural"])
        .unwrap_or_default()
        .to_string();
    let kind = s(&spec, &["names", "kind"]).unwrap_or_default().to_string();
    let name = s(crd, &["metadata", "name"]).unwrap_or_default();
    if group.is_empty() {
        errs.push(Cause::required("spec.group", ""));
    } else if !is_dns_subdomain(&group) || !group.contains('.') {
        errs.push(Cause::invalid(
            "spec.group",
            &json!(group),
            "should be a domain with at least one dot",
        ));
    }
    if plural.is_empty() {
        errs.push(Cause::required("spec.names.plural", ""));
    } else if !is_dns_label(&plural) {
        errs.push(Cause::invalid(
            "spec.names.plural",
            &json!(plural),
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'",
        ));
    }
    if kind.is_empty() {
        errs.push(Cause::required("spec.names.kind", ""));
    }
    if !group.is_empty() && !plural.is_empty() && name != format!("{plural}.{group}") {
        errs.push(Cause::invalid(
            "metadata.name",
            &json!(name),
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    let namespaced = match s(&spec, &["scope"]) {
        Some("Namespaced") => true,
        Some("Cluster") => false,
        other => {
            errs.push(Cause::not_supported(
                "spec.scope",
                &json!(other.unwrap_or_default()),
                &[json!("Cluster"), json!("Namespaced")],
            ));
            true
        }
    };
    if builtin
        .all()
        .any(|t| !t.custom && t.group == group && t.resource == plural)
    {
        errs.push(Cause::invalid(
            "spec.group",
            &json!(group),
            "cannot define a resource that Kubernetes serves already",
        ));
    }
    let strs = |path: &[&str]| -> Vec<String> {
        let mut cur = &spec;
        for p in path {
            match cur.get(p) {
                Some(v) => cur = v,
                None => return Vec::new(),
            }
        }
        cur.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let short_names = strs(&["names", "shortNames"]);
    let categories = strs(&["names", "categories"]);
    let singular = s(&spec, &["names", "singular"])
        .map(str::to_string)
        .unwrap_or_else(|| kind.to_lowercase());
    let list_kind = s(&spec, &["names", "listKind"])
        .map(str::to_string)
        .unwrap_or_else(|| format!("{kind}List"));
    let versions = spec
        .get("versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if versions.is_empty() {
        errs.push(Cause::invalid(
            "spec.versions",
            &json!([]),
            "must have exactly one version marked as storage version",
        ));
    }
    let storage_count = versions
        .iter()
        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .count();
    if !versions.is_empty() && storage_count != 1 {
        errs.push(Cause::invalid(
            "spec.versions",
            &json!(versions),
            "must have exactly one version marked as storage version",
        ));
    }
    // Kubernetes validates a schema all versions share once, as `spec.validation` (its
    // internal form), and names it so in errors.
    let shared_schema = versions
        .iter()
        .all(|v| v.get("schema") == versions.first().and_then(|f| f.get("schema")));
    let mut out = Vec::new();
    for (i, v) in versions.iter().enumerate() {
        let path = format!("spec.versions[{i}]");
        let schema_path = if shared_schema {
            "spec.validation.openAPIV3Schema".to_string()
        } else {
            format!("{path}.schema.openAPIV3Schema")
        };
        let mut schema_errs = Vec::new();
        let vname = s(v, &["name"]).unwrap_or_default().to_string();
        if !is_dns_label(&vname) {
            errs.push(Cause::invalid(
                format!("{path}.name"),
                &json!(vname),
                "must be a valid DNS label",
            ));
        }
        let schema = match v.get("schema").and_then(|sc| sc.get("openAPIV3Schema")) {
            Some(raw) => match Schema::parse(raw, &schema_path) {
                Ok(mut sc) => {
                    structural(raw, &schema_path, false, &mut schema_errs);
                    crate::cel::compile_schema(&mut sc, &schema_path, &mut schema_errs);
                    if sc.type_.as_deref() != Some("object") {
                        schema_errs.push(Cause::invalid(
                            format!("{schema_path}.type"),
                            &json!(sc.type_.clone().unwrap_or_default()),
                            "must be object at the root",
                        ));
                    }
                    Some(Arc::new(sc))
                }
                Err(c) => {
                    schema_errs.push(c);
                    None
                }
            },
            None => {
                schema_errs.push(Cause::required(
                    format!("{path}.schema.openAPIV3Schema"),
                    "schemas are required",
                ));
                None
            }
        };
        if i == 0 || !shared_schema {
            errs.extend(schema_errs);
        }
        let served = v.get("served").and_then(Value::as_bool).unwrap_or(false);
        let storage = v.get("storage").and_then(Value::as_bool).unwrap_or(false);
        let subs = v.get("subresources");
        let status = subs.and_then(|x| x.get("status")).is_some();
        let scale = subs.and_then(|x| x.get("scale")).map(|sc| ScaleSpec {
            spec_replicas: s(sc, &["specReplicasPath"])
                .unwrap_or(".spec.replicas")
                .to_string(),
            status_replicas: s(sc, &["statusReplicasPath"])
                .unwrap_or(".status.replicas")
                .to_string(),
            label_selector: s(sc, &["labelSelectorPath"]).map(str::to_string),
        });
        let mut columns = Vec::new();
        if let Some(Value::Array(cols)) = v.get("additionalPrinterColumns") {
            for (j, c) in cols.iter().enumerate() {
                let col = PrinterColumn {
                    name: s(c, &["name"]).unwrap_or_default().to_string(),
                    type_: s(c, &["type"]).unwrap_or("string").to_string(),
                    format: s(c, &["format"]).unwrap_or_default().to_string(),
                    description: s(c, &["description"]).unwrap_or_default().to_string(),
                    priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
                    json_path: s(c, &["jsonPath"]).unwrap_or_default().to_string(),
                };
                if col.name.is_empty() {
                    errs.push(Cause::required(
                        format!("{path}.additionalPrinterColumns[{j}].name"),
                        "",
                    ));
                }
                if col.json_path.is_empty() {
                    errs.push(Cause::required(
                        format!("{path}.additionalPrinterColumns[{j}].jsonPath"),
                        "",
                    ));
                }
                columns.push(col);
            }
        } else {
            columns.push(PrinterColumn {
                name: "Age".into(),
                type_: "date".into(),
                format: String::new(),
                description: String::new(),
                priority: 0,
                json_path: ".metadata.creationTimestamp".into(),
            });
        }
        if !served {
            continue;
        }
        out.push(ResourceType {
            group: group.clone(),
            version: vname,
            resource: plural.clone(),
            singular: singular.clone(),
            kind: kind.clone(),
            list_kind: list_kind.clone(),
            namespaced,
            short_names: short_names.clone(),
            categories: categories.clone(),
            status,
            scale,
            generation: true,
            schema,
            printer_columns: columns,
            custom: true,
            preferred: storage,
            storage: GroupResource::new(&group, &plural),
            conversion: Conversion::None,
        });
    }
    if errs.is_empty() { Ok(out) } else { Err(errs) }
}

/// The status a CRD gets once its names are accepted and it is served.
pub fn established_status(crd: &Value, now: &str) -> Value {
    let spec = crd.get("spec").cloned().unwrap_or(Value::Null);
    let names = spec.get("names").cloned().unwrap_or(json!({}));
    let mut accepted = names.clone();
    if accepted.get("singular").is_none()
        && let Some(k) = names.get("kind").and_then(Value::as_str)
    {
        accepted["singular"] = json!(k.to_lowercase());
    }
    if accepted.get("listKind").is_none()
        && let Some(k) = names.get("kind").and_then(Value::as_str)
    {
        accepted["listKind"] = json!(format!("{k}List"));
    }
    let stored: Vec<Value> = spec
        .get("versions")
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                .filter_map(|v| v.get("name").cloned())
                .collect()
        })
        .unwrap_or_default();
    json!({
        "acceptedNames": accepted,
        "storedVersions": stored,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "lastTransitionTime": now,
             "reason": "NoConflicts", "message": "no conflicts found"},
            {"type": "Established", "status": "True", "lastTransitionTime": now,
             "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"},
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd() -> Value {
        json!({
            "metadata": {"name": "widgets.example.com"},
            "spec": {
                "group": "example.com",
                "scope": "Namespaced",
                "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"]},
                "versions": [
                    {"name": "v1", "served": true, "storage": true,
                     "schema": {"openAPIV3Schema": {"type": "object"}},
                     "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.size", "statusReplicasPath": ".status.size"}}},
                    {"name": "v1beta1", "served": true, "storage": false,
                     "schema": {"openAPIV3Schema": {"type": "object"}}}
                ]
            }
        })
    }

    #[test]
    fn serves_each_version() {
        let types = types_from_crd(&crd(), &Registry::builtin()).unwrap();
        assert_eq!(types.len(), 2);
        assert!(types[0].status && types[0].preferred);
        assert_eq!(
            types[0].scale.as_ref().map(|s| s.spec_replicas.as_str()),
            Some(".spec.size")
        );
        assert_eq!(types[0].printer_columns[0].name, "Age");
    }

    #[test]
    fn rejects_non_structural_schemas() {
        let mut bad = crd();
        bad["spec"]["versions"][0]["schema"]["openAPIV3Schema"] = json!({"type": "object", "properties": {
            "spec": {"properties": {"a": {"type": "string"}}},
            "free": {"x-kubernetes-preserve-unknown-fields": true},
            "ios": {"x-kubernetes-int-or-string": true},
            "ios2": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]},
            "pick": {"type": "string", "anyOf": [{"type": "string"}, {"enum": ["x"]}]}}});
        let errs = types_from_crd(&bad, &Registry::builtin()).unwrap_err();
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "spec.versions[0].schema.openAPIV3Schema.properties[pick].anyOf[0].type",
                "spec.versions[0].schema.openAPIV3Schema.properties[spec].type",
            ]
        );
    }

    #[test]
    fn rejects_bad_crds() {
        let mut bad = crd();
        bad["metadata"]["name"] = json!("wrong");
        bad["spec"]["versions"][1]["storage"] = json!(true);
        let errs = types_from_crd(&bad, &Registry::builtin()).unwrap_err();
        assert_eq!(errs.len(), 2, "{errs:?}");
    }
}
