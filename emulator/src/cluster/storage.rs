//! Storage, as a cluster with a dynamic provisioner has it: the persistent volume controller
//! gives claims without a class the default StorageClass, provisions a PersistentVolume for
//! each claim of a class the emulator provisions (`standard`, created in cluster mode), binds
//! them both ways, releases and reclaims volumes of deleted claims, and the protection
//! controllers keep a claim used by a pod (`kubernetes.io/pvc-protection`) and a bound volume
//! (`kubernetes.io/pv-protection`) until they are free.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::events::Source;
use super::replicaset::pod_active;
use super::{Controller, Ctx, KCM, Key, Reconciler, deleting, gr, key_of, str_at};
use crate::api::Sub;
use crate::error::ApiError;
use crate::store::{Event, EventType};

const SOURCE: Source = Source {
    component: "persistentvolume-controller",
    manager: KCM,
    host: None,
};

/// The provisioner of the emulator's default StorageClass.
pub(crate) const PROVISIONER: &str = "emulator.local/hostpath";
/// The default StorageClass cluster mode creates.
pub(crate) const DEFAULT_CLASS: &str = "standard";
const PVC_PROTECTION: &str = "kubernetes.io/pvc-protection";
const PV_PROTECTION: &str = "kubernetes.io/pv-protection";
const DEFAULT_ANNOTATION: &str = "storageclass.kubernetes.io/is-default-class";

/// The default StorageClass of a cluster-mode emulator.
pub(crate) fn default_class() -> Value {
    json!({
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": DEFAULT_CLASS, "annotations": {DEFAULT_ANNOTATION: "true"}},
        "provisioner": PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
    })
}

pub(crate) struct Storage {
    ctx: Arc<Ctx>,
}

impl Storage {
    pub fn new(ctx: Arc<Ctx>) -> Self {
        Storage { ctx }
    }

    fn finalizers(v: &Value) -> Vec<String> {
        v.pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|f| f.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn set_finalizers(v: &mut Value, fins: Vec<String>) {
        if fins.is_empty() {
            if let Some(m) = v["metadata"].as_object_mut() {
                m.remove("finalizers");
            }
        } else {
            v["metadata"]["finalizers"] = json!(fins);
        }
    }

    /// Whether an active pod in the namespace mounts the claim.
    fn in_use(&self, ns: &str, claim: &str) -> bool {
        self.ctx
            .list(&gr("", "pods"), Some(ns))
            .iter()
            .filter(|p| pod_active(p))
            .any(|p| {
                p.pointer("/spec/volumes")
                    .and_then(Value::as_array)
                    .is_some_and(|vs| {
                        vs.iter()
                            .any(|v| str_at(v, "/persistentVolumeClaim/claimName") == claim)
                    })
            })
    }

    fn default_class_name(&self) -> Option<String> {
        self.ctx
            .list(&gr("storage.k8s.io", "storageclasses"), None)
            .iter()
            .find(|c| {
                c.pointer(&format!(
                    "/metadata/annotations/{}",
                    DEFAULT_ANNOTATION.replace('/', "~1")
                ))
                .and_then(Value::as_str)
                    == Some("true")
            })
            .map(|c| str_at(c, "/metadata/name").to_string())
    }

    fn reconcile_claim(&self, ns: &str, name: &str) -> Result<Option<Duration>, ApiError> {
        let Some(pvc) = self.ctx.get(&gr("", "persistentvolumeclaims"), ns, name) else {
            return Ok(None);
        };
        let mut pvc = (*pvc).clone();
        let rt = self.ctx.rt("", "v1", "persistentvolumeclaims")?;
        let mut fins = Self::finalizers(&pvc);
        if deleting(&pvc) {
            // pvc-protection: a claim goes once no pod uses it.
            if fins.iter().any(|f| f == PVC_PROTECTION) && !self.in_use(ns, name) {
                fins.retain(|f| f != PVC_PROTECTION);
                Self::set_finalizers(&mut pvc, fins);
                self.ctx.update(&rt, Sub::Main, pvc, KCM)?;
            }
            return Ok(None);
        }
        let mut changed = false;
        if !fins.iter().any(|f| f == PVC_PROTECTION) {
            fins.push(PVC_PROTECTION.into());
            Self::set_finalizers(&mut pvc, fins);
            changed = true;
        }
        if pvc.pointer("/spec/storageClassName").is_none()
            && str_at(&pvc, "/spec/volumeName").is_empty()
            && let Some(class) = self.default_class_name()
        {
            // Retroactive default StorageClass assignment (GA in Kubernetes 1.28).
            pvc["spec"]["storageClassName"] = json!(class);
            changed = true;
        }
        if changed {
            pvc = self.ctx.update(&rt, Sub::Main, pvc, KCM)?;
        }
        if str_at(&pvc, "/status/phase") == "Bound" {
            return Ok(None);
        }
        let class_name = str_at(&pvc, "/spec/storageClassName").to_string();
        let class = self
            .ctx
            .get(&gr("storage.k8s.io", "storageclasses"), "", &class_name);
        let provisioned_here = class
            .as_ref()
            .is_some_and(|c| str_at(c, "/provisioner") == PROVISIONER);
        let volume = str_at(&pvc, "/spec/volumeName").to_string();
        let pv_name = if !volume.is_empty() {
            volume
        } else if provisioned_here {
            self.provision(&pvc, class.as_deref().unwrap_or(&Value::Null))?
        } else {
            // Pending: nothing here provisions this class (as with a missing provisioner).
            let status = json!({"phase": "Pending"});
            if pvc.get("status") != Some(&status) {
                pvc["status"] = status;
                self.ctx.update(&rt, Sub::Status, pvc, KCM)?;
            }
            return Ok(None);
        };
        self.bind(pvc, &pv_name)
    }

    /// Creates the volume of a claim, as a dynamic provisioner does.
    fn provision(&self, pvc: &Value, class: &Value) -> Result<String, ApiError> {
        let name = format!("pvc-{}", str_at(pvc, "/metadata/uid"));
        if self
            .ctx
            .get(&gr("", "persistentvolumes"), "", &name)
            .is_some()
        {
            return Ok(name);
        }
        let storage = pvc
            .pointer("/spec/resources/requests/storage")
            .cloned()
            .unwrap_or(json!("1Gi"));
        let pv = json!({
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": name, "finalizers": [PV_PROTECTION],
                "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER}},
            "spec": {
                "capacity": {"storage": storage},
                "accessModes": pvc.pointer("/spec/accessModes").cloned().unwrap_or(json!(["ReadWriteOnce"])),
                "persistentVolumeReclaimPolicy": class.get("reclaimPolicy").cloned().unwrap_or(json!("Delete")),
                "storageClassName": str_at(pvc, "/spec/storageClassName"),
                "volumeMode": pvc.pointer("/spec/volumeMode").cloned().unwrap_or(json!("Filesystem")),
                "hostPath": {"path": format!("/var/local/emulator/{name}"), "type": "DirectoryOrCreate"},
                "claimRef": {
                    "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                    "namespace": str_at(pvc, "/metadata/namespace"),
                    "name": str_at(pvc, "/metadata/name"),
                    "uid": str_at(pvc, "/metadata/uid"),
                    "resourceVersion": str_at(pvc, "/metadata/resourceVersion"),
                },
            },
        });
        let rt = self.ctx.rt("", "v1", "persistentvolumes")?;
        match self.ctx.create(&rt, "", pv, KCM) {
            Ok(_) => {}
            Err(e) if e.code == 409 => {}
            Err(e) => return Err(e),
        }
        self.ctx.recorder.normal(
            SOURCE,
            pvc,
            "ProvisioningSucceeded",
            &format!("Successfully provisioned volume {name} using {PROVISIONER}"),
        );
        Ok(name)
    }

    /// Binds claim and volume: the volume's phase, the claim's volumeName, annotations and
    /// status.
    fn bind(&self, mut pvc: Value, pv_name: &str) -> Result<Option<Duration>, ApiError> {
        let Some(pv) = self.ctx.get(&gr("", "persistentvolumes"), "", pv_name) else {
            return Ok(Some(Duration::from_millis(50)));
        };
        let pv_rt = self.ctx.rt("", "v1", "persistentvolumes")?;
        if str_at(&pv, "/status/phase") != "Bound" {
            let mut p = (*pv).clone();
            p["status"] = json!({"phase": "Bound"});
            self.ctx.update(&pv_rt, Sub::Status, p, KCM)?;
        }
        let rt = self.ctx.rt("", "v1", "persistentvolumeclaims")?;
        let provisioned = pv
            .pointer("/metadata/annotations/pv.kubernetes.io~1provisioned-by")
            .is_some();
        let mut spec_changed = false;
        if str_at(&pvc, "/spec/volumeName").is_empty() {
            pvc["spec"]["volumeName"] = json!(pv_name);
            spec_changed = true;
        }
        let mut ann = pvc
            .pointer("/metadata/annotations")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for (k, v) in [
            ("pv.kubernetes.io/bind-completed", "yes"),
            ("pv.kubernetes.io/bound-by-controller", "yes"),
        ] {
            if ann.get(k) != Some(&json!(v)) {
                ann.insert(k.into(), json!(v));
                spec_changed = true;
            }
        }
        if provisioned {
            for k in [
                "volume.beta.kubernetes.io/storage-provisioner",
                "volume.kubernetes.io/storage-provisioner",
            ] {
                if ann.get(k) != Some(&json!(PROVISIONER)) {
                    ann.insert(k.into(), json!(PROVISIONER));
                    spec_changed = true;
                }
            }
        }
        if spec_changed {
            pvc["metadata"]["annotations"] = Value::Object(ann);
            pvc = self.ctx.update(&rt, Sub::Main, pvc, KCM)?;
        }
        let status = json!({
            "phase": "Bound",
            "accessModes": pv.pointer("/spec/accessModes").cloned().unwrap_or(json!([])),
            "capacity": pv.pointer("/spec/capacity").cloned().unwrap_or(json!({})),
        });
        if pvc.get("status") != Some(&status) {
            pvc["status"] = status;
            self.ctx.update(&rt, Sub::Status, pvc, KCM)?;
        }
        Ok(None)
    }

    fn reconcile_volume(&self, name: &str) -> Result<Option<Duration>, ApiError> {
        let Some(pv) = self.ctx.get(&gr("", "persistentvolumes"), "", name) else {
            return Ok(None);
        };
        let mut pv = (*pv).clone();
        let rt = self.ctx.rt("", "v1", "persistentvolumes")?;
        let claim_uid = str_at(&pv, "/spec/claimRef/uid").to_string();
        let claim = self.ctx.get(
            &gr("", "persistentvolumeclaims"),
            str_at(&pv, "/spec/claimRef/namespace"),
            str_at(&pv, "/spec/claimRef/name"),
        );
        let claim_alive = claim
            .as_ref()
            .is_some_and(|c| str_at(c, "/metadata/uid") == claim_uid);
        if deleting(&pv) {
            // pv-protection: a volume goes once no claim is bound to it.
            let mut fins = Self::finalizers(&pv);
            if fins.iter().any(|f| f == PV_PROTECTION) && !claim_alive {
                fins.retain(|f| f != PV_PROTECTION);
                Self::set_finalizers(&mut pv, fins);
                self.ctx.update(&rt, Sub::Main, pv, KCM)?;
            }
            return Ok(None);
        }
        if claim_uid.is_empty() || claim_alive {
            return Ok(None);
        }
        // The claim is gone: the volume is released, and reclaimed by its policy.
        if str_at(&pv, "/status/phase") != "Released" {
            let mut p = pv.clone();
            p["status"] = json!({"phase": "Released"});
            pv = self.ctx.update(&rt, Sub::Status, p, KCM)?;
        }
        if str_at(&pv, "/spec/persistentVolumeReclaimPolicy") == "Delete" {
            self.ctx.delete(&rt, "", name, "Background")?;
        }
        Ok(None)
    }
}

/// Keys: claims as (namespace, name), volumes as ("", name) with a marker prefix.
const VOLUME: &str = "\u{0}pv";

impl Reconciler for Storage {
    fn controller(&self) -> Controller {
        Controller::PersistentVolume
    }

    fn keys(&self, e: &Event, out: &mut Vec<Key>) {
        if e.storage == gr("", "persistentvolumeclaims") {
            out.push(key_of(&e.object));
            // A deleted claim releases its volume.
            if e.kind == EventType::Deleted {
                let vol = str_at(&e.object, "/spec/volumeName");
                if !vol.is_empty() {
                    out.push((VOLUME.into(), vol.to_string()));
                }
            }
        } else if e.storage == gr("", "persistentvolumes") {
            out.push((
                VOLUME.into(),
                str_at(&e.object, "/metadata/name").to_string(),
            ));
            let claim = &e.object;
            let (ns, name) = (
                str_at(claim, "/spec/claimRef/namespace"),
                str_at(claim, "/spec/claimRef/name"),
            );
            if !name.is_empty() {
                out.push((ns.to_string(), name.to_string()));
            }
        } else if e.storage == gr("", "pods") {
            // A pod that stops using a claim may let a deleting claim go.
            let mut claims: Vec<&str> = Vec::new();
            for v in [Some(&e.object), e.prev.as_ref()].into_iter().flatten() {
                if let Some(vs) = v.pointer("/spec/volumes").and_then(Value::as_array) {
                    claims.extend(
                        vs.iter()
                            .map(|v| str_at(v, "/persistentVolumeClaim/claimName")),
                    );
                }
            }
            for c in claims.into_iter().filter(|c| !c.is_empty()) {
                out.push((e.namespace.clone(), c.to_string()));
            }
        }
    }

    fn all_keys(&self) -> Vec<Key> {
        let mut keys: Vec<Key> = self
            .ctx
            .list(&gr("", "persistentvolumeclaims"), None)
            .iter()
            .map(|c| key_of(c))
            .collect();
        keys.extend(
            self.ctx
                .list(&gr("", "persistentvolumes"), None)
                .iter()
                .map(|v| (VOLUME.to_string(), str_at(v, "/metadata/name").to_string())),
        );
        keys
    }

    fn reconcile(&self, key: &Key) -> Result<Option<Duration>, ApiError> {
        if key.0 == VOLUME {
            self.reconcile_volume(&key.1)
        } else {
            self.reconcile_claim(&key.0, &key.1)
        }
    }
}
