//! The act step on children, at the API server: look up what exists under a
//! desired name, hand a replica count over, apply, prune. Every call names
//! the object in its error.

use std::collections::BTreeMap;

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
        let mut found = BTreeMap::new();
        for key in keys {
            let existing = match self.api(key)?.get_opt(&key.name).await {
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
            found.insert(key.clone(), existing);
        }
        Ok(found)
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
