//! The built-in types Kubernetes serves that the emulator supports.

use super::{Conversion, GroupResource, Registry, ResourceType};

impl Registry {
    /// The built-in types Kubernetes serves that the emulator supports.
    pub fn builtin() -> Self {
        let rt = ResourceType::builtin;
        let mut events_v1 = rt("events.k8s.io", "v1", "events", "Event", true, &["ev"]);
        events_v1.storage = GroupResource::new("", "events");
        events_v1.conversion = Conversion::EventsV1;
        // kubectl prefers core/v1 events for the short name, as Kubernetes lists it first.
        events_v1.short_names.clear();
        let mut crd = rt(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            false,
            &["crd", "crds"],
        )
        .with_status();
        crd.categories.push("api-extensions".into());
        let list = vec![
            rt("", "v1", "namespaces", "Namespace", false, &["ns"]).with_status(),
            rt("", "v1", "configmaps", "ConfigMap", true, &["cm"]),
            rt("", "v1", "secrets", "Secret", true, &[]),
            rt("", "v1", "services", "Service", true, &["svc"])
                .with_status()
                .all(),
            rt("", "v1", "serviceaccounts", "ServiceAccount", true, &["sa"]),
            rt(
                "",
                "v1",
                "persistentvolumeclaims",
                "PersistentVolumeClaim",
                true,
                &["pvc"],
            )
            .with_status(),
            rt("", "v1", "pods", "Pod", true, &["po"])
                .with_status()
                .all(),
            rt("", "v1", "events", "Event", true, &["ev"]),
            rt("", "v1", "endpoints", "Endpoints", true, &["ep"]),
            rt("", "v1", "nodes", "Node", false, &["no"]).with_status(),
            rt(
                "",
                "v1",
                "persistentvolumes",
                "PersistentVolume",
                false,
                &["pv"],
            )
            .with_status(),
            rt(
                "storage.k8s.io",
                "v1",
                "storageclasses",
                "StorageClass",
                false,
                &["sc"],
            ),
            events_v1,
            rt("apps", "v1", "deployments", "Deployment", true, &["deploy"])
                .with_status()
                .with_scale(true)
                .with_generation()
                .all(),
            rt("apps", "v1", "replicasets", "ReplicaSet", true, &["rs"])
                .with_status()
                .with_scale(true)
                .with_generation()
                .all(),
            rt("apps", "v1", "statefulsets", "StatefulSet", true, &["sts"])
                .with_status()
                .with_scale(true)
                .with_generation()
                .all(),
            rt("apps", "v1", "daemonsets", "DaemonSet", true, &["ds"])
                .with_status()
                .with_generation()
                .all(),
            rt("batch", "v1", "jobs", "Job", true, &[])
                .with_status()
                .with_generation()
                .all(),
            rt("batch", "v1", "cronjobs", "CronJob", true, &["cj"])
                .with_status()
                .with_generation()
                .all(),
            rt(
                "autoscaling",
                "v2",
                "horizontalpodautoscalers",
                "HorizontalPodAutoscaler",
                true,
                &["hpa"],
            )
            .with_status()
            .with_generation()
            .all(),
            rt(
                "policy",
                "v1",
                "poddisruptionbudgets",
                "PodDisruptionBudget",
                true,
                &["pdb"],
            )
            .with_status()
            .with_generation(),
            rt("coordination.k8s.io", "v1", "leases", "Lease", true, &[]),
            rt(
                "networking.k8s.io",
                "v1",
                "networkpolicies",
                "NetworkPolicy",
                true,
                &["netpol"],
            )
            .with_generation(),
            rt(
                "networking.k8s.io",
                "v1",
                "ingresses",
                "Ingress",
                true,
                &["ing"],
            )
            .with_status()
            .with_generation(),
            rt(
                "networking.k8s.io",
                "v1",
                "ingressclasses",
                "IngressClass",
                false,
                &[],
            ),
            rt(
                "rbac.authorization.k8s.io",
                "v1",
                "roles",
                "Role",
                true,
                &[],
            ),
            rt(
                "rbac.authorization.k8s.io",
                "v1",
                "rolebindings",
                "RoleBinding",
                true,
                &[],
            ),
            rt(
                "rbac.authorization.k8s.io",
                "v1",
                "clusterroles",
                "ClusterRole",
                false,
                &[],
            ),
            rt(
                "rbac.authorization.k8s.io",
                "v1",
                "clusterrolebindings",
                "ClusterRoleBinding",
                false,
                &[],
            ),
            crd.with_generation(),
        ];
        let mut reg = Registry::default();
        for t in list {
            reg.insert(t);
        }
        reg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_are_served() {
        let r = Registry::builtin();
        assert!(r.get("apps", "v1", "deployments").is_some_and(|t| t.status));
        assert!(r.by_kind("v1", "ConfigMap").is_some());
        assert!(r.groups().iter().any(|(g, _)| g == "batch"));
    }
}
