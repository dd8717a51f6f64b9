//! The act step on children, at the API server: look up what exists under a
//! desired name, hand a replica count over, apply, prune. Every call names
//! the object in its error.

use std::collections::BTreeMap;

use futures::StreamExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::core::DynamicObject;
use serde_json::json;

use super::children::Observed;
use super::decide::{Existing, Handover};
use crate::decorate::{DesiredObject, FIELD_MANAGER};
use crate::failure::{Failure, ReconcileError};
use crate::kinds::ChildKinds;
use crate::plugin::ObjectKey;

/// Field manager that holds a Deployment's replica count between the
/// operator letting go of it and the autoscaler's first change of it, so
/// that the count is kept instead of reset to one.
pub const HANDOVER_MANAGER: &str = "portfolio-operator-handover";

/// Requests of one reconcile in flight at once: the children of an app are
/// independent objects (Kubernetes converges on references between them),
/// so an app costs one round trip of applies, not one per child; bounded so
/// that a plugin returning many objects does not flood the API server.
pub const CONCURRENCY: usize = 4;

/// Where children are acted on: the client, the namespace, and the kinds.
#[derive(Clone, Copy)]
pub struct Children<'a> {
    /// The API client.
    pub client: &'a kube::Client,
    /// The owner's namespace; every child is there.
    pub namespace: &'a str,
    /// The registered kinds, for their URLs.
    pub kinds: &'a ChildKinds,
}

impl Children<'_> {
    fn api(&self, key: &ObjectKey) -> Result<Api<DynamicObject>, ReconcileError> {
        let kind = self.kinds.get(&key.api_version, &key.kind).ok_or_else(|| {
            // The output policy lets through registered kinds only.
            ReconcileError::new(
                Failure::ApplyFailed,
                format!("{key}: not a registered child kind"),
            )
        })?;
        Ok(Api::namespaced_with(
            self.client.clone(),
            self.namespace,
            &kind.resource(),
        ))
    }

    /// What exists under each of `keys` (read from the API server: these are
    /// names the watches do not hold, usually because nothing is there yet).
    pub async fn existing(
        &self,
        keys: impl IntoIterator<Item = &ObjectKey>,
    ) -> Result<BTreeMap<ObjectKey, Existing>, ReconcileError> {
        let keys: Vec<ObjectKey> = keys.into_iter().cloned().collect();
        // Collected first: a stream over a closure trips the compiler's
        // proof that the reconcile future is Send.
        let calls: Vec<_> = keys.into_iter().map(|key| self.read(key)).collect();
        let reads: Vec<_> = futures::stream::iter(calls)
            .buffered(CONCURRENCY)
            .collect()
            .await;
        reads.into_iter().collect()
    }

    /// Apply each of `objects` (see [`Children::apply`]), [`CONCURRENCY`]
    /// at a time; the results in the order of `objects`.
    pub async fn apply_all(
        &self,
        objects: &[&DesiredObject],
    ) -> Vec<Result<DynamicObject, ReconcileError>> {
        let calls: Vec<_> = objects.iter().map(|object| self.apply(object)).collect();
        futures::stream::iter(calls)
            .buffered(CONCURRENCY)
            .collect()
            .await
    }

    /// What exists under `key`.
    async fn read(&self, key: ObjectKey) -> Result<(ObjectKey, Existing), ReconcileError> {
        let existing = match self.api(&key)?.get_opt(&key.name).await {
            Ok(Some(object)) => Existing::Present(Box::new(object)),
            Ok(None) => Existing::Absent,
            Err(error) => {
                return Err(ReconcileError::api(
                    Failure::ApiError,
                    &format!("reading {key}"),
                    &error,
                ));
            }
        };
        Ok((key, existing))
    }

    /// Let [`HANDOVER_MANAGER`] hold the replica count, so that the
    /// operator's next apply, without it, keeps the count.
    pub async fn hand_over(&self, handover: &Handover) -> Result<(), ReconcileError> {
        let key = &handover.key;
        let patch = json!({
            "apiVersion": key.api_version, "kind": key.kind,
            "metadata": {"name": key.name},
            "spec": {"replicas": handover.replicas},
        });
        // Not forced: if the autoscaler has changed the count meanwhile, the
        // field is its own and there is nothing to hand over.
        match self
            .api(key)?
            .patch(
                &key.name,
                &PatchParams::apply(HANDOVER_MANAGER),
                &Patch::Apply(&patch),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
            Err(error) => Err(ReconcileError::api(
                Failure::ApplyFailed,
                &format!("handing the replica count of {key} over to its autoscaler"),
                &error,
            )),
        }
    }

    /// Server-side apply `desired`, forcing: the fields the operator applies
    /// are its own, and forcing is what restores them after an edit.
    pub async fn apply(&self, desired: &DesiredObject) -> Result<DynamicObject, ReconcileError> {
        let key = desired.key();
        self.api(key)?
            .patch(
                &key.name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(desired.object()),
            )
            .await
            .map_err(|error| {
                ReconcileError::api(Failure::ApplyFailed, &format!("applying {key}"), &error)
            })
    }

    /// Delete `child`, and only that object: a precondition on its uid
    /// leaves alone anything created under its name since it was observed.
    pub async fn prune(&self, child: &Observed) -> Result<(), ReconcileError> {
        let key = child.key();
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), self.namespace, &child.resource);
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: child.object.metadata.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::background()
        };
        match api.delete(&key.name, &params).await {
            Ok(_) => Ok(()),
            // Gone already, or replaced by an object that is not this one.
            Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => Ok(()),
            Err(error) => Err(ReconcileError::api(
                Failure::ApplyFailed,
                &format!("deleting {key}, which the plugin no longer returns"),
                &error,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use super::*;

    /// Holds every apply this long, and notes when each arrived.
    struct SlowApplies {
        arrived: Mutex<Vec<Instant>>,
    }

    const HOLD: Duration = Duration::from_millis(500);

    impl emulator::http::RequestHook for SlowApplies {
        fn on_request(&self, info: &emulator::http::RequestInfo) -> emulator::http::HookOutcome {
            if info.verb != "patch" {
                return emulator::http::HookOutcome::default();
            }
            self.arrived
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(Instant::now());
            emulator::http::HookOutcome {
                delay: Some(HOLD),
                fail: None,
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_children_of_an_app_are_applied_at_once() {
        let emulator = emulator::Emulator::builder()
            .cluster(false)
            .start()
            .expect("emulator");
        let client = crate::client::connect(Some(emulator.kubeconfig_path()))
            .await
            .expect("client");
        let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
        namespaces
            .create(
                &Default::default(),
                &serde_json::from_value(json!({"metadata": {"name": "demo"}})).expect("ns"),
            )
            .await
            .expect("namespace");
        let hook = Arc::new(SlowApplies {
            arrived: Mutex::new(Vec::new()),
        });
        emulator.set_request_hook(Some(hook.clone()));
        let kinds = ChildKinds::default();
        let children = Children {
            client: &client,
            namespace: "demo",
            kinds: &kinds,
        };
        let objects: Vec<DesiredObject> = (0..CONCURRENCY)
            .map(|n| {
                DesiredObject::from_value(json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": format!("c{n}"), "namespace": "demo"},
                    "data": {"n": n.to_string()}}))
                .expect("desired")
            })
            .collect();
        let refs: Vec<&DesiredObject> = objects.iter().collect();
        let results = children.apply_all(&refs).await;
        // In the order asked, each as stored.
        let names: Vec<String> = results
            .into_iter()
            .map(|r| r.expect("applied").metadata.name.unwrap_or_default())
            .collect();
        assert_eq!(names, ["c0", "c1", "c2", "c3"]);
        // Every apply reached the API server while the first was still held
        // there: one round trip, not one per child.
        let arrived = hook
            .arrived
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        assert_eq!(arrived.len(), CONCURRENCY);
        let (first, last) = (arrived[0], arrived[arrived.len() - 1]);
        assert!(
            last.duration_since(first) < HOLD,
            "applied one after the other: {:?}",
            last.duration_since(first)
        );
    }
}
