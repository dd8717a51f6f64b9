//! Deleting an app, behind the finalizer `portfolio.dev/cleanup`: the
//! finalizer itself (here), the deletion steps (`steps`), and apps whose
//! stored object no longer parses (`malformed`).

mod malformed;
mod steps;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use portfolio_api::PortfolioApp;
use serde_json::json;

use super::watched::WatchedApp;
use super::{Context, Error};
use crate::failure::{Failure, ReconcileError};

pub use malformed::malformed;
pub use steps::run;

/// The finalizer that holds an app until its cleanup is done.
pub const FINALIZER: &str = "portfolio.dev/cleanup";

/// Annotation that skips the cleanup (`"true"`): the app and its children are
/// deleted at once, without shutdown, backup or volume handling.
pub const SKIP_ANNOTATION: &str = "portfolio.dev/skip-cleanup";

/// Make sure the finalizer is on a live app (a no-op when it is).
pub async fn ensure_finalizer(app: &PortfolioApp, ctx: &Context) -> Result<(), Error> {
    if app.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(());
    }
    let api: Api<PortfolioApp> =
        Api::namespaced(ctx.client.clone(), &app.namespace().unwrap_or_default());
    // The test guards against racing another writer of the list.
    let patch = if app.meta().finalizers.is_none() {
        json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]},
        ])
    } else {
        json!([
            {"op": "test", "path": "/metadata/finalizers", "value": app.finalizers()},
            {"op": "add", "path": "/metadata/finalizers/-", "value": FINALIZER},
        ])
    };
    let name = app.name_any();
    patch_metadata(&api, &name, patch).await.map_err(|error| {
        ReconcileError::api(
            Failure::ApiError,
            &format!("adding the finalizer {FINALIZER} to {name}"),
            &error,
        )
    })
}

/// Add [`FINALIZER`] to the object `meta` describes, through `api` (any kind).
pub async fn add_finalizer<K>(api: &Api<K>, meta: &ObjectMeta) -> Result<(), kube::Error>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let current = meta.finalizers.clone().unwrap_or_default();
    if current.iter().any(|f| f == FINALIZER) {
        return Ok(());
    }
    // The test guards against racing another writer of the list.
    let patch = if meta.finalizers.is_none() {
        json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]},
        ])
    } else {
        json!([
            {"op": "test", "path": "/metadata/finalizers", "value": current},
            {"op": "add", "path": "/metadata/finalizers/-", "value": FINALIZER},
        ])
    };
    patch_metadata(api, meta.name.as_deref().unwrap_or_default(), patch).await
}

/// Remove [`FINALIZER`] from the object `meta` describes, through `api`
/// (any kind); an object already gone is no error.
pub async fn remove_finalizer_from<K>(api: &Api<K>, meta: &ObjectMeta) -> Result<(), kube::Error>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let finalizers = meta.finalizers.as_deref().unwrap_or_default();
    let Some(index) = finalizers.iter().position(|f| f == FINALIZER) else {
        return Ok(());
    };
    let path = format!("/metadata/finalizers/{index}");
    let patch = json!([
        {"op": "test", "path": path, "value": FINALIZER},
        {"op": "remove", "path": path},
    ]);
    match patch_metadata(api, meta.name.as_deref().unwrap_or_default(), patch).await {
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        other => other,
    }
}

/// Take the finalizer off: garbage collection takes the rest.
async fn remove_finalizer(meta: &ObjectMeta, ctx: &Context) -> Result<(), Error> {
    let finalizers = meta.finalizers.as_deref().unwrap_or_default();
    let Some(index) = finalizers.iter().position(|f| f == FINALIZER) else {
        return Ok(());
    };
    // Lenient: the app may be one whose spec no longer parses.
    let api: Api<WatchedApp> = Api::namespaced(
        ctx.client.clone(),
        meta.namespace.as_deref().unwrap_or_default(),
    );
    let name = meta.name.clone().unwrap_or_default();
    let path = format!("/metadata/finalizers/{index}");
    let patch = json!([
        {"op": "test", "path": path, "value": FINALIZER},
        {"op": "remove", "path": path},
    ]);
    match patch_metadata(&api, &name, patch).await {
        Ok(()) => Ok(()),
        // Gone already: nothing holds it any more.
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(error) => Err(ReconcileError::api(
            Failure::ApiError,
            &format!("removing the finalizer {FINALIZER} from {name}"),
            &error,
        )),
    }
}

/// A JSON patch of an app's metadata.
async fn patch_metadata<K>(
    api: &Api<K>,
    name: &str,
    patch: serde_json::Value,
) -> Result<(), kube::Error>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    // Built from literals above: it always parses.
    let patch: json_patch::Patch =
        serde_json::from_value(patch).map_err(kube::Error::SerdeError)?;
    api.patch(name, &PatchParams::default(), &Patch::<()>::Json(patch))
        .await
        .map(|_| ())
}
