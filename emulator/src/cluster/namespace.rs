//! Per-namespace defaults: the service account controller's `default` ServiceAccount and the
//! root CA publisher's `kube-root-ca.crt` ConfigMap, (re)created in every active namespace.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::{Controller, Ctx, KCM, Key, Reconciler, deleting, gr, str_at};
use crate::api::Sub;
use crate::error::ApiError;
use crate::store::{Event, EventType};

const ROOT_CA: &str = "kube-root-ca.crt";
const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";

pub(crate) struct Namespaces {
    ctx: Arc<Ctx>,
    accounts: bool,
    root_ca: Option<String>,
}

impl Namespaces {
    pub fn new(ctx: Arc<Ctx>) -> Self {
        let accounts = ctx.control.runs(Controller::ServiceAccount);
        let root_ca = ctx
            .control
            .runs(Controller::RootCaPublisher)
            .then(|| ctx.root_ca.clone());
        Namespaces {
            ctx,
            accounts,
            root_ca,
        }
    }
}

impl Reconciler for Namespaces {
    fn controller(&self) -> Controller {
        Controller::ServiceAccount
    }

    fn keys(&self, e: &Event, out: &mut Vec<Key>) {
        let name = str_at(&e.object, "/metadata/name");
        if e.storage == gr("", "namespaces") && e.kind != EventType::Deleted {
            out.push((String::new(), name.to_string()));
        }
        // A deleted or changed default is restored, as the real controllers do.
        let ours = (e.storage == gr("", "serviceaccounts") && name == "default")
            || (e.storage == gr("", "configmaps") && name == ROOT_CA);
        if ours && e.kind != EventType::Added {
            out.push((String::new(), e.namespace.clone()));
        }
    }

    fn all_keys(&self) -> Vec<Key> {
        self.ctx
            .list(&gr("", "namespaces"), None)
            .iter()
            .map(|n| (String::new(), str_at(n, "/metadata/name").to_string()))
            .collect()
    }

    fn reconcile(&self, key: &Key) -> Result<Option<Duration>, ApiError> {
        let ns = &key.1;
        let Some(nsobj) = self.ctx.get(&gr("", "namespaces"), "", ns) else {
            return Ok(None);
        };
        if deleting(&nsobj) {
            return Ok(None);
        }
        let ignore_races = |r: Result<Value, ApiError>| match r {
            Err(e) if e.code == 409 || e.code == 403 || e.code == 404 => Ok(()),
            other => other.map(|_| ()),
        };
        if self.accounts
            && self
                .ctx
                .get(&gr("", "serviceaccounts"), ns, "default")
                .is_none()
        {
            let rt = self.ctx.rt("", "v1", "serviceaccounts")?;
            let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}});
            ignore_races(self.ctx.create(&rt, ns, sa, KCM))?;
        }
        if let Some(ca) = &self.root_ca {
            let rt = self.ctx.rt("", "v1", "configmaps")?;
            match self.ctx.get(&gr("", "configmaps"), ns, ROOT_CA) {
                None => {
                    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": ROOT_CA, "annotations": {"kubernetes.io/description": DESCRIPTION}},
                        "data": {"ca.crt": ca}});
                    ignore_races(self.ctx.create(&rt, ns, cm, KCM))?;
                }
                Some(cm) if str_at(&cm, "/data/ca.crt") != ca.as_str() && !deleting(&cm) => {
                    let mut cm = (*cm).clone();
                    cm["data"] = json!({"ca.crt": ca});
                    ignore_races(self.ctx.update(&rt, Sub::Main, cm, KCM))?;
                }
                Some(_) => {}
            }
        }
        Ok(None)
    }
}
