//! Deleting an app, behind the finalizer `portfolio.dev/cleanup`: the
//! finalizer itself (here), the deletion steps (`steps`), and apps whose
//! stored object no longer parses (`malformed`).

mod malformed;
mod steps;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
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

/// Whether deleting `app` (with these `desired` and `observed` children) has
/// work for the operator, so that the app needs [`FINALIZER`]: a volume to
/// keep or delete by its reclaim policy, or objects the plugin's
/// `finalize` returns (a backup Job), each after the pods have stopped.
/// Without either, garbage collection removes the children by their owner
/// references and Kubernetes stops the pods gracefully: the finalizer would
/// cost a write on every app and a reconcile on every deletion for nothing.
/// With [`SKIP_ANNOTATION`] there is no cleanup, so no finalizer either.
/// `answered` is the plugin's finalize answer when it was asked along with
/// generate (see [`needs_finalize_answer`]); otherwise it is asked here.
pub async fn has_work(
    app: &PortfolioApp,
    ctx: &Context,
    plugin: &std::sync::Arc<crate::plugin::Plugin>,
    subject: &crate::pipeline::Subject,
    desired: &[crate::decorate::DesiredObject],
    observed: &[super::children::Observed],
    answered: Option<Result<Vec<crate::decorate::DesiredObject>, crate::pipeline::PipelineError>>,
) -> bool {
    if skips_cleanup(app) {
        return false;
    }
    let volume = desired
        .iter()
        .any(|o| o.key().kind == "PersistentVolumeClaim")
        || has_volume(observed);
    if volume {
        return true;
    }
    let answer = match answered {
        Some(answer) => answer,
        None => {
            let observed = observed
                .iter()
                .map(super::children::Observed::to_json)
                .collect();
            ctx.pipeline().finalize(plugin, subject, observed).await
        }
    };
    match answer {
        Ok(objects) => !objects.is_empty(),
        // What it would do is unknown: held, and the cleanup reports the failure.
        Err(error) => {
            tracing::warn!(app = %app.name_any(), error = %error, "the plugin's finalize failed; the app keeps its finalizer");
            true
        }
    }
}

/// Whether [`has_work`] on `app` with these `observed` children may need the
/// plugin's finalize answer: not when the app skips cleanup or already has
/// a volume (a volume in the plugin's new output is known only after it).
pub fn needs_finalize_answer(app: &PortfolioApp, observed: &[super::children::Observed]) -> bool {
    !skips_cleanup(app) && !has_volume(observed)
}

fn skips_cleanup(app: &PortfolioApp) -> bool {
    app.annotations().get(SKIP_ANNOTATION).map(String::as_str) == Some("true")
}

fn has_volume(observed: &[super::children::Observed]) -> bool {
    observed
        .iter()
        .any(|c| c.resource.kind == "PersistentVolumeClaim")
}

/// Put [`FINALIZER`] on a live app, or take it off, as `wanted` (a no-op
/// when the app already is so).
pub async fn set_finalizer(app: &PortfolioApp, wanted: bool, ctx: &Context) -> Result<(), Error> {
    let has = |meta: &ObjectMeta| {
        meta.finalizers
            .as_deref()
            .unwrap_or_default()
            .iter()
            .any(|f| f == FINALIZER)
    };
    if has(&app.metadata) == wanted {
        return Ok(());
    }
    let api: Api<WatchedApp> =
        Api::namespaced(ctx.client.clone(), &app.namespace().unwrap_or_default());
    let name = app.name_any();
    let failed = |error: &kube::Error| {
        let what = if wanted { "adding" } else { "removing" };
        ReconcileError::api(
            Failure::ApiError,
            &format!("{what} the finalizer {FINALIZER} on {name}"),
            error,
        )
    };
    match change_finalizer(&api, &app.metadata, wanted).await {
        Ok(()) => Ok(()),
        // The list is not what the cache showed (it lags behind a write of
        // ours, or someone else changed it): once more on the stored one.
        Err(kube::Error::Api(status)) if status.code == 422 => {
            let stored = api.get_opt(&name).await.map_err(|e| failed(&e))?;
            match stored {
                Some(stored) if has(&stored.metadata) != wanted => {
                    change_finalizer(&api, &stored.metadata, wanted)
                        .await
                        .map_err(|e| failed(&e))
                }
                _ => Ok(()),
            }
        }
        Err(error) => Err(failed(&error)),
    }
}

async fn change_finalizer(
    api: &Api<WatchedApp>,
    meta: &ObjectMeta,
    wanted: bool,
) -> Result<(), kube::Error> {
    if wanted {
        add_finalizer(api, meta).await
    } else {
        remove_finalizer_from(api, meta).await
    }
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
    // Lenient: the app may be one whose spec no longer parses.
    let api: Api<WatchedApp> = Api::namespaced(
        ctx.client.clone(),
        meta.namespace.as_deref().unwrap_or_default(),
    );
    remove_finalizer_from(&api, meta).await.map_err(|error| {
        ReconcileError::api(
            Failure::ApiError,
            &format!(
                "removing the finalizer {FINALIZER} from {}",
                meta.name.as_deref().unwrap_or_default()
            ),
            &error,
        )
    })
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
