//! The one status writer: compares the status a reconcile concluded with the
//! stored one and, only when they differ, applies it (server-side apply of
//! the `status` subresource, field manager `portfolio-operator`); then
//! records an Event for each condition transition.

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::Resource;
use kube::api::{Api, Patch, PatchParams};
use kube::core::DynamicObject;
use kube::discovery::ApiResource;
use serde::Serialize;
use serde_json::{Value, json};

use super::Context;
use super::conditions::{self, Transition};
use crate::decorate::FIELD_MANAGER;
use crate::events::{self, Severity};

/// What a controller's context offers the status writer: the client, the
/// counters and the Event recorder.
pub trait Writer {
    /// The API client.
    fn client(&self) -> &kube::Client;
    /// Status writes are counted here.
    fn metrics(&self) -> &super::metrics::Metrics;
    /// Where Events go.
    fn recorder(&self) -> &kube::runtime::events::Recorder;
}

impl Writer for Context {
    fn client(&self) -> &kube::Client {
        &self.client
    }
    fn metrics(&self) -> &super::metrics::Metrics {
        &self.metrics
    }
    fn recorder(&self) -> &kube::runtime::events::Recorder {
        &self.recorder
    }
}

/// The custom resource whose status is written.
pub struct Target {
    /// Its kind's API resource (`portfolioapps`, `databasemigrations`).
    pub resource: ApiResource,
    /// Namespace of the resource.
    pub namespace: String,
    /// Name of the resource.
    pub name: String,
    /// The reference Events point at.
    pub reference: ObjectReference,
}

impl Target {
    /// The target of a custom resource `object` of a static kind.
    pub fn of<K: Resource<DynamicType = ()>>(object: &K) -> Self {
        Target {
            resource: ApiResource::erase::<K>(&()),
            namespace: object.meta().namespace.clone().unwrap_or_default(),
            name: object.meta().name.clone().unwrap_or_default(),
            reference: object.object_ref(&()),
        }
    }

    /// `namespace/name`, for logs and messages.
    pub fn path(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// Why a status could not be written.
#[derive(Debug, thiserror::Error)]
#[error("writing the status of {object}: {}", crate::failure::describe_api_error(.source))]
pub struct StatusError {
    /// `namespace/name`.
    pub object: String,
    /// What the API server said.
    #[source]
    pub source: kube::Error,
}

impl StatusError {
    /// Whether the API server found the status invalid against the schema.
    pub fn is_invalid(&self) -> bool {
        matches!(&self.source, kube::Error::Api(status) if status.code == 422)
    }
}

impl From<StatusError> for crate::failure::ReconcileError {
    fn from(error: StatusError) -> Self {
        crate::failure::ReconcileError::new(crate::failure::Failure::ApiError, error.to_string())
    }
}

/// Apply `after` as the status of `target` unless it equals `before` (the
/// stored status). Returns whether it was written.
pub async fn write<S: Serialize>(
    ctx: &impl Writer,
    target: &Target,
    before: &S,
    after: &S,
) -> Result<bool, StatusError> {
    let before = serde_json::to_value(before).unwrap_or(Value::Null);
    let after = serde_json::to_value(after).unwrap_or(Value::Null);
    if before == after {
        return Ok(false);
    }
    tracing::debug!(object = %target.path(), before = %before, after = %after, "writing status");
    let api: Api<DynamicObject> =
        Api::namespaced_with(ctx.client().clone(), &target.namespace, &target.resource);
    let patch = json!({
        "apiVersion": target.resource.api_version,
        "kind": target.resource.kind,
        "metadata": {"name": target.name},
        "status": after,
    });
    api.patch_status(
        &target.name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(|source| StatusError {
        object: target.path(),
        source,
    })?;
    ctx.metrics().status_written();
    Ok(true)
}

/// Record an Event for each transition from `before` to `after`.
pub async fn announce(
    ctx: &impl Writer,
    target: &Target,
    before: &[Condition],
    after: &[Condition],
) {
    announce_all(ctx, target, conditions::transitions(before, after)).await;
}

/// Record an Event for each of `transitions`.
pub async fn announce_all(ctx: &impl Writer, target: &Target, transitions: Vec<Transition>) {
    for transition in transitions {
        let severity = if transition.warning {
            Severity::Warning
        } else {
            Severity::Normal
        };
        events::publish(
            ctx.recorder(),
            &target.reference,
            severity,
            &transition.reason,
            "Reconcile",
            &transition.message,
        )
        .await;
    }
}
