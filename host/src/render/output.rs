//! Printing objects the way `kubectl apply -f` reads them: multi-document
//! YAML, or a JSON `v1 List`.

use std::collections::BTreeMap;

use serde_json::Value;

/// Objects as multi-document YAML, the way `kubectl apply -f` reads them.
pub fn to_yaml<'a>(objects: impl IntoIterator<Item = &'a Value>) -> Result<String, String> {
    let mut out = String::new();
    for object in objects {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(object).map_err(|e| e.to_string())?);
    }
    Ok(out)
}

/// Objects as a JSON `v1 List`, the way `kubectl apply -f` reads them.
pub fn to_json<'a>(objects: impl IntoIterator<Item = &'a Value>) -> Result<String, String> {
    let mut list = BTreeMap::new();
    list.insert("apiVersion", Value::from("v1"));
    list.insert("kind", Value::from("List"));
    list.insert(
        "items",
        Value::Array(objects.into_iter().cloned().collect()),
    );
    serde_json::to_string_pretty(&list)
        .map(|mut text| {
            text.push('\n');
            text
        })
        .map_err(|e| e.to_string())
}
