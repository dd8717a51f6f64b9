//! The simulated controllers by name, and kube-controller-manager's `--controllers` syntax.

/// One simulated controller; each can be switched off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Controller {
    /// Owner references on deletion (Background, Foreground, Orphan), dangling owners, and
    /// namespace deletion (the namespace controller's job too).
    GarbageCollector,
    /// A `default` ServiceAccount in every namespace.
    ServiceAccount,
    /// The `kube-root-ca.crt` ConfigMap in every namespace.
    RootCaPublisher,
    /// Binds pending pods to the emulator's node.
    Scheduler,
    /// Runs pods on the emulator's node: the Node object, pod status, containers starting,
    /// becoming ready, and ending for pods that run to completion.
    Kubelet,
    /// ReplicaSets create and delete pods to match their replicas.
    ReplicaSet,
    /// Deployments roll out ReplicaSets and report status and conditions.
    Deployment,
    /// Jobs run pods to completion or failure.
    Job,
    /// Finished Jobs with `ttlSecondsAfterFinished` are deleted.
    TtlAfterFinished,
    /// HorizontalPodAutoscalers scale their targets within min/max.
    HorizontalPodAutoscaler,
    /// PersistentVolumeClaims get the default StorageClass and a provisioned, bound
    /// PersistentVolume; claims and volumes are protected while in use, and released volumes
    /// reclaimed.
    PersistentVolume,
}

impl Controller {
    /// Every controller.
    pub const ALL: [Controller; 11] = [
        Controller::GarbageCollector,
        Controller::ServiceAccount,
        Controller::RootCaPublisher,
        Controller::Scheduler,
        Controller::Kubelet,
        Controller::ReplicaSet,
        Controller::Deployment,
        Controller::Job,
        Controller::TtlAfterFinished,
        Controller::HorizontalPodAutoscaler,
        Controller::PersistentVolume,
    ];

    /// The name used by `kube-emulator --controllers` (kube-controller-manager's where it has
    /// one).
    pub fn name(self) -> &'static str {
        match self {
            Controller::GarbageCollector => "garbagecollector",
            Controller::ServiceAccount => "serviceaccount",
            Controller::RootCaPublisher => "root-ca-cert-publisher",
            Controller::Scheduler => "scheduler",
            Controller::Kubelet => "kubelet",
            Controller::ReplicaSet => "replicaset",
            Controller::Deployment => "deployment",
            Controller::Job => "job",
            Controller::TtlAfterFinished => "ttl-after-finished",
            Controller::HorizontalPodAutoscaler => "horizontalpodautoscaling",
            Controller::PersistentVolume => "persistentvolume-binder",
        }
    }

    /// The controller with this name (or kube-controller-manager's newer `-controller` name).
    pub fn from_name(name: &str) -> Option<Controller> {
        let n = name.trim();
        let n = n.strip_suffix("-controller").unwrap_or(n);
        let alias = match n {
            "garbage-collector" | "namespace" => "garbagecollector",
            "service-account" => "serviceaccount",
            "root-ca-certificate-publisher" => "root-ca-cert-publisher",
            "replicaset" | "replica-set" => "replicaset",
            "horizontal-pod-autoscaler" | "hpa" => "horizontalpodautoscaling",
            "persistentvolume"
            | "persistent-volume-binder"
            | "pv-protection"
            | "pvc-protection"
            | "persistentvolume-expander" => "persistentvolume-binder",
            "ttl-after-finished" => "ttl-after-finished",
            other => other,
        };
        Controller::ALL.into_iter().find(|c| c.name() == alias)
    }

    /// Parses kube-controller-manager's `--controllers` syntax: a comma-separated list where
    /// `*` means every controller and `-name` switches one off.
    pub fn parse_list(spec: &str) -> Result<Vec<Controller>, String> {
        let mut on: Vec<Controller> = Vec::new();
        let mut off: Vec<Controller> = Vec::new();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if item == "*" {
                on.extend(Controller::ALL);
            } else if let Some(n) = item.strip_prefix('-') {
                off.push(Controller::from_name(n).ok_or_else(|| unknown(n))?);
            } else {
                on.push(Controller::from_name(item).ok_or_else(|| unknown(item))?);
            }
        }
        let mut out: Vec<Controller> = Controller::ALL
            .into_iter()
            .filter(|c| on.contains(c) && !off.contains(c))
            .collect();
        out.dedup();
        Ok(out)
    }
}

fn unknown(n: &str) -> String {
    let names: Vec<&str> = Controller::ALL.iter().map(|c| c.name()).collect();
    format!("unknown controller {n:?}; known: {}", names.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controller_lists_parse_like_kube_controller_manager() {
        assert_eq!(
            Controller::parse_list("*").unwrap(),
            Controller::ALL.to_vec()
        );
        let l = Controller::parse_list("*,-job,-hpa").unwrap();
        assert!(!l.contains(&Controller::Job));
        assert!(!l.contains(&Controller::HorizontalPodAutoscaler));
        assert!(l.contains(&Controller::Deployment));
        assert_eq!(
            Controller::parse_list("deployment-controller,replicaset").unwrap(),
            vec![Controller::ReplicaSet, Controller::Deployment]
        );
        assert!(Controller::parse_list("nope").is_err());
        for c in Controller::ALL {
            assert_eq!(Controller::from_name(c.name()), Some(c));
        }
    }
}
