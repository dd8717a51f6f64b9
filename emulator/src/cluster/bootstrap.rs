//! What a cluster has from its first moment, before any controller runs.

use crate::api::{Api, WriteOptions};
use crate::error::Error;

/// What a cluster has from its first moment: the `kubernetes` Service of the API server in
/// `default` (the API server's own controller creates it), and a default StorageClass when
/// volumes are provisioned.
pub(crate) fn bootstrap(api: &Api, storage: bool) -> Result<(), Error> {
    if storage {
        let rt = api.resolve("storage.k8s.io", "v1", "storageclasses")?;
        let opts = WriteOptions {
            field_manager: Some("kube-apiserver".into()),
            ..Default::default()
        };
        api.create(&rt, "", super::storage::default_class(), &opts)?;
    }
    let rt = api.resolve("", "v1", "services")?;
    let svc = serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.1"], "type": "ClusterIP",
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]},
    });
    let opts = WriteOptions {
        field_manager: Some("kube-apiserver".into()),
        ..Default::default()
    };
    api.create(&rt, "default", svc, &opts)?;
    Ok(())
}
