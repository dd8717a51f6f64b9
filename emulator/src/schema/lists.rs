//! List and map types: how lists and maps merge under patches and server-side apply, from
//! a schema's `x-kubernetes-*` extensions or, for built-in kinds, their Go merge keys.

use super::Schema;

/// How a list merges under patches and server-side apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListType {
    /// Replaced as a whole.
    Atomic,
    /// A set of scalars.
    Set,
    /// A map keyed by these fields of each item.
    Map(Vec<String>),
}

impl Schema {
    /// The schema of the node at `path` (field names only; list items are looked through).
    fn node_at(&self, path: &[&str]) -> Option<&Schema> {
        let mut cur = self;
        for p in path {
            cur = cur
                .field(p)
                .or_else(|| cur.items.as_deref().and_then(|i| i.field(p)))?;
        }
        Some(cur)
    }

    /// The list type of the array at `path` (field names only, list items skipped).
    pub fn list_type_at(&self, path: &[&str]) -> ListType {
        let Some(cur) = self.node_at(path) else {
            return ListType::Atomic;
        };
        match cur.list_type.as_deref() {
            Some("set") => ListType::Set,
            Some("map") => ListType::Map(cur.list_map_keys.clone()),
            _ => ListType::Atomic,
        }
    }

    /// Whether the object at `path` is a struct: named properties, no additional ones
    /// (structured-merge-diff's "named fields", which server-side apply prunes whole).
    pub fn struct_at(&self, path: &[&str]) -> bool {
        self.node_at(path).is_some_and(|cur| {
            !cur.properties.is_empty()
                && cur.additional.is_none()
                && !cur.additional_any
                && !cur.preserve_unknown
        })
    }

    /// Whether the object at `path` is replaced as a whole (`x-kubernetes-map-type: atomic`).
    pub fn map_atomic_at(&self, path: &[&str]) -> bool {
        self.node_at(path)
            .is_some_and(|cur| cur.map_type.as_deref() == Some("atomic"))
    }
}

/// List types of built-in Kubernetes types: the merge keys of their Go structs.
pub fn builtin_list_type(path: &[&str]) -> ListType {
    let Some(last) = path.last() else {
        return ListType::Atomic;
    };
    let keys = |k: &[&str]| ListType::Map(k.iter().map(|s| s.to_string()).collect());
    let in_container = path
        .iter()
        .any(|p| matches!(*p, "containers" | "initContainers" | "ephemeralContainers"));
    match *last {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "resourceClaims"
        | "resizePolicy" => keys(&["name"]),
        "volumeMounts" => keys(&["mountPath"]),
        "volumeDevices" => keys(&["devicePath"]),
        "ports" if in_container => keys(&["containerPort", "protocol"]),
        "ports" if path.first() == Some(&"spec") => keys(&["port", "protocol"]),
        "conditions" => keys(&["type"]),
        "ownerReferences" => keys(&["uid"]),
        "hostAliases" => keys(&["ip"]),
        "topologySpreadConstraints" => keys(&["topologyKey", "whenUnsatisfiable"]),
        "finalizers" if path.len() == 2 && path[0] == "metadata" => ListType::Set,
        _ => ListType::Atomic,
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::schema;
    use super::*;

    #[test]
    fn list_types_come_from_the_schema_and_builtins() {
        assert_eq!(schema().list_type_at(&["spec", "tags"]), ListType::Set);
        assert_eq!(
            builtin_list_type(&["spec", "template", "spec", "containers"]),
            ListType::Map(vec!["name".into()])
        );
        assert_eq!(
            builtin_list_type(&["spec", "template", "spec", "containers", "ports"]),
            ListType::Map(vec!["containerPort".into(), "protocol".into()])
        );
    }
}
