//! The kubelet's Node: registered with its capacity, conditions and node info.

use serde_json::json;

use super::{HOST_IP, KUBELET, Kubelet};
use crate::api::{Sub, now};
use crate::cluster::{NODE_NAME, gr};
use crate::error::ApiError;

impl Kubelet {
    /// Registers the Node (again, if it was deleted) and its status.
    pub(super) fn ensure_node(&self) -> Result<(), ApiError> {
        if !self.run {
            return Ok(());
        }
        let rt = self.ctx.rt("", "v1", "nodes")?;
        let node = match self.ctx.get(&gr("", "nodes"), "", NODE_NAME) {
            Some(n) => (*n).clone(),
            None => {
                let obj = json!({
                    "apiVersion": "v1", "kind": "Node",
                    "metadata": {"name": NODE_NAME, "labels": {
                        "beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux",
                        "kubernetes.io/arch": "amd64", "kubernetes.io/hostname": NODE_NAME,
                        "kubernetes.io/os": "linux"},
                        "annotations": {"node.alpha.kubernetes.io/ttl": "0",
                            "volumes.kubernetes.io/controller-managed-attach-detach": "true"}},
                    "spec": {"podCIDR": "10.244.0.0/16", "podCIDRs": ["10.244.0.0/16"]},
                });
                match self.ctx.create(&rt, "", obj, KUBELET) {
                    Ok(n) => n,
                    Err(e) if e.code == 409 => return Ok(()),
                    Err(e) => return Err(e),
                }
            }
        };
        if node.get("status").and_then(|s| s.get("nodeInfo")).is_some() {
            return Ok(());
        }
        let ts = now();
        let cond = |t: &str, s: &str, reason: &str, msg: &str| {
            json!({"type": t, "status": s, "reason": reason, "message": msg,
                "lastHeartbeatTime": ts, "lastTransitionTime": ts})
        };
        let resources = json!({"cpu": "8", "ephemeral-storage": "100Gi", "hugepages-1Gi": "0",
            "hugepages-2Mi": "0", "memory": "32Gi", "pods": "110"});
        let mut n = node;
        n["status"] = json!({
            "capacity": resources,
            "allocatable": resources,
            "conditions": [
                cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
            ],
            "addresses": [{"type": "InternalIP", "address": HOST_IP}, {"type": "Hostname", "address": NODE_NAME}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "architecture": "amd64", "bootID": "", "containerRuntimeVersion": "emulator://0.1.0",
                "kernelVersion": "emulated", "kubeProxyVersion": "", "kubeletVersion": "v1.33.0-emulator",
                "machineID": "", "operatingSystem": "linux", "osImage": "kube-emulator", "systemUUID": "",
            },
        });
        self.ctx.update(&rt, Sub::Status, n, KUBELET).map(|_| ())
    }
}
