//! The act step on children, at the API server: look up what exists under a
//! desired name, hand a replica count over, apply, prune. Every call names
//! the object in its error.

use std::collections::BTreeMap;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::DeploymentStatus;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::core::DynamicObject;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

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

/// The uid a create-only apply carries: no object has it, so applied under
/// a name that is taken, the apply is refused and writes nothing.
///
/// What makes it so, in Kubernetes (`staging/src/k8s.io/apiserver`):
/// - an apply that creates replaces any uid with a new one
///   (`Store.Update`'s create path calls `rest.FillObjectMetaSystemFields`,
///   `pkg/registry/generic/registry/store.go`);
/// - an apply to an existing object keeps the uid it brings (`BeforeUpdate`
///   fills in only a missing one, `pkg/registry/rest/update.go`), and
///   `ValidateObjectMetaUpdate` refuses a changed uid as immutable: 422,
///   cause `metadata.uid` (`apimachinery/pkg/api/validation/objectmeta.go`);
/// - the field manager keeps `metadata.uid` out of managedFields
///   (`stripMetaManager`), so later applies without it remove nothing.
pub const CREATE_ONLY_UID: &str = "00000000-0000-4000-8000-000000000000";

/// Requests of one reconcile in flight at once: the children of an app are
/// independent objects (Kubernetes converges on references between them),
/// so an app costs one round trip of applies, not one per child; bounded so
/// that a plugin returning many objects does not flood the API server.
pub const CONCURRENCY: usize = 4;

/// What a reconcile reads of the object an apply was answered with: its
/// version, its status, and for a workload what its rollout needs. The
/// answer is the whole object, `managedFields` and all; parsed into a
/// `DynamicObject` it was a sixth of the operator's CPU at scale, to be
/// dropped unread. The rest of it is skipped, not built.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Applied {
    /// Required: an answer without it is not an object.
    metadata: AppliedMeta,
    /// Kept as text: a pod template is large, and only `replicas` is read.
    #[serde(default)]
    spec: Option<Box<RawValue>>,
    #[serde(default)]
    status: Option<Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AppliedMeta {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    resource_version: Option<String>,
    #[serde(default)]
    generation: Option<i64>,
}

impl Applied {
    /// Its `metadata.name`.
    pub fn name(&self) -> Option<&str> {
        self.metadata.name.as_deref()
    }

    /// Its `metadata.resourceVersion`.
    pub fn resource_version(&self) -> Option<&str> {
        self.metadata.resource_version.as_deref()
    }

    /// Its `status`, as stored.
    pub fn status(&self) -> Option<&Value> {
        self.status.as_ref()
    }

    /// What its rollout needs, read as for a watched object.
    pub fn workload(&self) -> Workload {
        #[derive(Deserialize)]
        struct Spec {
            #[serde(default)]
            replicas: Option<i64>,
        }
        let replicas = self
            .spec
            .as_deref()
            .and_then(|spec| serde_json::from_str::<Spec>(spec.get()).ok())
            .and_then(|spec| spec.replicas);
        Workload::read(self.metadata.generation, replicas, self.status.as_ref())
    }
}

/// A workload's generation, desired replicas and rollout status: what the
/// app's Ready condition and replica counts are concluded from.
#[derive(Debug, Clone, Default)]
pub struct Workload {
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// `spec.replicas`.
    pub replicas: Option<i32>,
    /// `status`, when it reads as a Deployment's.
    pub status: Option<DeploymentStatus>,
}

impl Workload {
    /// Read from a whole object (a watched or read one).
    pub fn of(object: &DynamicObject) -> Self {
        Workload::read(
            object.metadata.generation,
            object
                .data
                .pointer("/spec/replicas")
                .and_then(Value::as_i64),
            object.data.get("status"),
        )
    }

    /// From its generation, `spec.replicas` and `status` as found.
    fn read(generation: Option<i64>, replicas: Option<i64>, status: Option<&Value>) -> Self {
        Workload {
            generation,
            replicas: replicas.and_then(|n| i32::try_from(n).ok()),
            status: status.and_then(|status| serde_json::from_value(status.clone()).ok()),
        }
    }
}

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
    fn resource(&self, key: &ObjectKey) -> Result<kube::discovery::ApiResource, ReconcileError> {
        let kind = self.kinds.get(&key.api_version, &key.kind).ok_or_else(|| {
            // The output policy lets through registered kinds only.
            ReconcileError::new(
                Failure::ApplyFailed,
                format!("{key}: not a registered child kind"),
            )
        })?;
        Ok(kind.resource())
    }

    fn api(&self, key: &ObjectKey) -> Result<Api<DynamicObject>, ReconcileError> {
        Ok(Api::namespaced_with(
            self.client.clone(),
            self.namespace,
            &self.resource(key)?,
        ))
    }

    /// What exists under each of `keys`, read from the API server: names the
    /// watches do not hold, where a create-only apply found something (or,
    /// for a migration's Job and a deletion's cleanup, before anything is
    /// written).
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
    /// at a time, those whose key `create_only` names only if nothing is
    /// there; the results in the order of `objects`, `None` for a name that
    /// was taken (nothing written).
    pub async fn apply_all(
        &self,
        objects: &[&DesiredObject],
        create_only: impl Fn(&ObjectKey) -> bool,
    ) -> Vec<Result<Option<Applied>, ReconcileError>> {
        let calls: Vec<_> = objects
            .iter()
            .map(|object| self.apply_as(object, create_only(object.key())))
            .collect();
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
    pub async fn apply(&self, desired: &DesiredObject) -> Result<Applied, ReconcileError> {
        let key = desired.key();
        let url = self.url(key)?;
        self.send(url, key, desired.object())
            .await
            .map_err(|error| apply_failed(key, &error))
    }

    /// Apply `desired`; `create_only`, with [`CREATE_ONLY_UID`], so that an
    /// object already under its name is left as it is (`None`).
    async fn apply_as(
        &self,
        desired: &DesiredObject,
        create_only: bool,
    ) -> Result<Option<Applied>, ReconcileError> {
        if !create_only {
            return self.apply(desired).await.map(Some);
        }
        let key = desired.key();
        let url = self.url(key)?;
        let mut object = desired.object().clone();
        if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            metadata.insert("uid".into(), json!(CREATE_ONLY_UID));
        }
        match self.send(url, key, &object).await {
            Ok(applied) => Ok(Some(applied)),
            Err(kube::Error::Api(status)) if uid_refused(&status) => Ok(None),
            Err(error) => Err(apply_failed(key, &error)),
        }
    }

    /// The URL of `key`'s kind in the namespace.
    fn url(&self, key: &ObjectKey) -> Result<String, ReconcileError> {
        Ok(<DynamicObject as kube::Resource>::url_path(
            &self.resource(key)?,
            Some(self.namespace),
        ))
    }

    /// The forced server-side apply of `object`, named `key`, at `url`.
    async fn send(
        &self,
        url: String,
        key: &ObjectKey,
        object: &Value,
    ) -> Result<Applied, kube::Error> {
        let request = kube::core::Request::new(url)
            .patch(
                &key.name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(object),
            )
            .map_err(kube::Error::BuildRequest)?;
        self.client.request::<Applied>(request).await
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

/// A failed apply of `key`, named in its error.
fn apply_failed(key: &ObjectKey, error: &kube::Error) -> ReconcileError {
    ReconcileError::api(Failure::ApplyFailed, &format!("applying {key}"), error)
}

/// Whether an apply was refused because the object under its name has
/// another uid (see [`CREATE_ONLY_UID`]).
fn uid_refused(status: &kube::core::Status) -> bool {
    status.code == 422
        && status
            .details
            .as_ref()
            .is_some_and(|details| details.causes.iter().any(|c| c.field == "metadata.uid"))
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn an_apply_answer_is_read_for_its_version_status_and_rollout() {
        let answer = r#"{"apiVersion":"apps/v1","kind":"Deployment",
            "metadata":{"name":"web","namespace":"demo","uid":"u1","resourceVersion":"42","generation":3,
              "managedFields":[{"manager":"portfolio-operator","operation":"Apply","fieldsType":"FieldsV1",
                "fieldsV1":{"f:spec":{"f:replicas":{},"f:template":{}}}}]},
            "spec":{"replicas":2,"template":{"spec":{"containers":[{"name":"c","image":"i"}]}}},
            "status":{"observedGeneration":3,"replicas":2,"readyReplicas":1}}"#;
        let applied: Applied = serde_json::from_str(answer).expect("an answer");
        assert_eq!(applied.name(), Some("web"));
        assert_eq!(applied.resource_version(), Some("42"));
        assert_eq!(
            applied.status().and_then(|s| s.get("readyReplicas")),
            Some(&json!(1))
        );
        let workload = applied.workload();
        assert_eq!((workload.generation, workload.replicas), (Some(3), Some(2)));
        let status = workload.status.expect("a rollout status");
        assert_eq!((status.replicas, status.ready_replicas), (Some(2), Some(1)));
        // Read the same as the whole object would be.
        let whole: DynamicObject = serde_json::from_str(answer).expect("an object");
        let of_whole = Workload::of(&whole);
        assert_eq!(
            (of_whole.generation, of_whole.replicas, of_whole.status),
            (workload.generation, workload.replicas, Some(status))
        );
    }

    #[test]
    fn an_answer_without_spec_or_status_or_with_odd_ones_still_reads() {
        let config_map: Applied = serde_json::from_str(
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","resourceVersion":"7"},"data":{"a":"b"}}"#,
        )
        .expect("a ConfigMap");
        assert_eq!(config_map.resource_version(), Some("7"));
        assert!(config_map.status().is_none());
        assert!(config_map.workload().replicas.is_none());
        // A kind whose spec is no object and whose status is no rollout.
        let odd: Applied = serde_json::from_str(
            r#"{"metadata":{"name":"o","resourceVersion":"8"},"spec":"text","status":[1,2]}"#,
        )
        .expect("an odd object");
        let workload = odd.workload();
        assert!(workload.replicas.is_none() && workload.status.is_none());
        assert_eq!(odd.status(), Some(&json!([1, 2])));
        // Not an object at all is an error, not an empty answer.
        for text in ["[]", "{}", "null", r#"{"metadata":3}"#] {
            assert!(serde_json::from_str::<Applied>(text).is_err(), "{text}");
        }
    }

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
        let results = children.apply_all(&refs, |_| false).await;
        // In the order asked, each as stored.
        let names: Vec<String> = results
            .into_iter()
            .map(|r| {
                r.expect("applied")
                    .expect("not create-only")
                    .name()
                    .unwrap_or_default()
                    .to_owned()
            })
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
