//! The registry of served resource types: built-ins and the ones CRDs add share one description.

use std::collections::BTreeMap;
use std::sync::Arc;

mod builtin;
mod types;
mod versions;

pub use crate::value_path::{get_path, set_path};
pub use types::{Conversion, GroupResource, PrinterColumn, ResourceType, ScaleSpec};
pub use versions::{split_api_version, version_priority};

/// All served resource types, indexed for URL lookups and discovery.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    /// (group, version, resource) to type.
    types: BTreeMap<(String, String, String), Arc<ResourceType>>,
}

impl Registry {
    /// Adds or replaces a type.
    pub fn insert(&mut self, t: ResourceType) {
        self.types.insert(
            (t.group.clone(), t.version.clone(), t.resource.clone()),
            Arc::new(t),
        );
    }

    /// Removes every version of a group/resource (a deleted CRD).
    pub fn remove_storage(&mut self, storage: &GroupResource) {
        self.types.retain(|_, t| &t.storage != storage);
    }

    /// The type served at group/version/resource.
    pub fn get(&self, group: &str, version: &str, resource: &str) -> Option<Arc<ResourceType>> {
        self.types
            .get(&(group.to_string(), version.to_string(), resource.to_string()))
            .cloned()
    }

    /// The type of an apiVersion/kind pair.
    pub fn by_kind(&self, api_version: &str, kind: &str) -> Option<Arc<ResourceType>> {
        let (group, version) = split_api_version(api_version);
        self.types
            .values()
            .find(|t| t.group == group && t.version == version && t.kind == kind)
            .cloned()
    }

    /// The preferred version's type for a stored group/resource (for owner lookups, GC).
    pub fn preferred_for(&self, storage: &GroupResource) -> Option<Arc<ResourceType>> {
        let mut candidates = self.types.values().filter(|t| &t.storage == storage);
        let first = candidates.next()?.clone();
        Some(
            std::iter::once(first.clone())
                .chain(candidates.cloned())
                .find(|t| t.preferred && t.conversion == Conversion::None)
                .unwrap_or(first),
        )
    }

    /// Every served type.
    pub fn all(&self) -> impl Iterator<Item = &Arc<ResourceType>> {
        self.types.values()
    }

    /// Whether any version of this group is served.
    pub fn has_group(&self, group: &str) -> bool {
        self.types.values().any(|t| t.group == group)
    }

    /// Groups with their versions, preferred version first; core group excluded.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: BTreeMap<String, Vec<(bool, String)>> = BTreeMap::new();
        for t in self.types.values() {
            if t.group.is_empty() {
                continue;
            }
            let versions = groups.entry(t.group.clone()).or_default();
            if let Some(v) = versions.iter_mut().find(|(_, v)| *v == t.version) {
                v.0 |= t.preferred;
            } else {
                versions.push((t.preferred, t.version.clone()));
            }
        }
        groups
            .into_iter()
            .map(|(g, mut vs)| {
                // Kubernetes prefers the highest-priority served version, not the storage one.
                vs.sort_by(|a, b| version_priority(&a.1, &b.1));
                (g, vs.into_iter().map(|(_, v)| v).collect())
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preferred_version_is_the_highest_priority_one() {
        let mut r = Registry::builtin();
        let mut a = (*r.get("apps", "v1", "deployments").unwrap()).clone();
        a.group = "example.com".into();
        a.version = "v1beta1".into();
        a.preferred = true;
        let mut b = a.clone();
        b.version = "v1".into();
        b.preferred = false;
        r.insert(a);
        r.insert(b);
        let (_, vs) = r
            .groups()
            .into_iter()
            .find(|(g, _)| g == "example.com")
            .unwrap();
        assert_eq!(vs, vec!["v1", "v1beta1"]);
    }
}
