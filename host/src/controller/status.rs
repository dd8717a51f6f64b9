//! The one status writer: compares the status a reconcile concluded with the
//! stored one and, only when they differ, applies it (server-side apply of
//! the `status` subresource, field manager `portfolio-operator`); then
//! records an Event for each condition transition.

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::Resource;
use kube::api::{Patch, PatchParams};
use kube::core::DynamicObject;
use kube::discovery::ApiResource;
use serde::Serialize;

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

/// The statuses written whose watch event the cache may not have shown yet,
/// by object uid. A reconcile runs on the cached object; one that follows a
/// status write closely (its children's watch events queue it at once)
/// would see the status from before the write, conclude it differs, and
/// write it again, with new transition times. So each write is remembered
/// with the statuses it replaced: while the cache still shows one of those,
/// the written one is what the API server holds. Once the cache shows
/// anything else (the write, or a later change), the cache is right again
/// and the entry goes, so only writes in flight are held.
pub struct Written<S> {
    memo: std::sync::Mutex<std::collections::HashMap<String, Memo<S>>>,
}

/// The last status written, and those the cache may still show instead.
struct Memo<S> {
    stale: Vec<S>,
    written: S,
}

impl<S> Default for Written<S> {
    fn default() -> Self {
        Written {
            memo: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }
}

impl<S: Clone + PartialEq> Written<S> {
    /// The status the API server holds for `uid`, given the `cached` one.
    pub fn current(&self, uid: &str, cached: &S) -> S {
        let mut memo = self.memo.lock().unwrap_or_else(|e| e.into_inner());
        match memo.get(uid) {
            Some(entry) if entry.stale.contains(cached) => entry.written.clone(),
            Some(_) => {
                memo.remove(uid);
                cached.clone()
            }
            None => cached.clone(),
        }
    }

    /// `written` replaced `replaced` as the status of `uid`.
    pub fn wrote(&self, uid: &str, replaced: S, written: S) {
        let mut memo = self.memo.lock().unwrap_or_else(|e| e.into_inner());
        let mut stale = match memo.remove(uid) {
            // Written over a write the cache had not shown: it may still
            // show what was there before that one too.
            Some(entry) if entry.written == replaced => entry.stale,
            _ => Vec::new(),
        };
        stale.push(replaced);
        stale.retain(|old| *old != written);
        if !stale.is_empty() {
            memo.insert(uid.to_owned(), Memo { stale, written });
        }
    }

    /// The cache now shows `cached` as the status of `uid`: a write it no
    /// longer lags behind is forgotten, as [`Written::current`] forgets it
    /// on a reconcile. Called for every watch event of an app, so that the
    /// copy goes as soon as the write comes back, not at the next reconcile
    /// (which an echo of the operator's own write no longer queues).
    pub fn observed(&self, uid: &str, cached: &S) {
        let mut memo = self.memo.lock().unwrap_or_else(|e| e.into_inner());
        if memo
            .get(uid)
            .is_some_and(|entry| !entry.stale.contains(cached))
        {
            memo.remove(uid);
        }
    }

    /// Forget `uid` (the object is gone).
    pub fn forget(&self, uid: &str) {
        self.memo
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(uid);
    }

    /// How many writes are held.
    pub fn len(&self) -> usize {
        self.memo.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether no write is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Apply `after` as the status of `target` unless it equals `before` (the
/// stored status). Returns whether it was written.
pub async fn write<S: Serialize + PartialEq>(
    ctx: &impl Writer,
    target: &Target,
    before: &S,
    after: &S,
) -> Result<bool, StatusError> {
    // Most reconciles conclude the status that is stored: told by the types
    // alone, without serialising either.
    if before == after || same_json(before, after) {
        return Ok(false);
    }
    tracing::debug!(
        object = %target.path(),
        before = %serde_json::to_string(before).unwrap_or_default(),
        after = %serde_json::to_string(after).unwrap_or_default(),
        "writing status"
    );
    let patch = StatusPatch {
        api_version: &target.resource.api_version,
        kind: &target.resource.kind,
        metadata: NameOnly { name: &target.name },
        status: after,
    };
    let failed = |source| StatusError {
        object: target.path(),
        source,
    };
    let url = DynamicObject::url_path(&target.resource, Some(&target.namespace));
    let request = kube::core::Request::new(url)
        .patch_subresource(
            "status",
            &target.name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(patch),
        )
        .map_err(|error| failed(kube::Error::BuildRequest(error)))?;
    // The answer is the whole object; nothing of it is read, so it is
    // checked to be JSON and skipped, not built.
    ctx.client()
        .request::<serde::de::IgnoredAny>(request)
        .await
        .map_err(failed)?;
    ctx.metrics().status_written();
    Ok(true)
}

/// Whether two values that differ as types still serialise alike (an
/// empty list against none, say): storing one over the other would change
/// nothing.
fn same_json<S: Serialize>(before: &S, after: &S) -> bool {
    match (serde_json::to_vec(before), serde_json::to_vec(after)) {
        (Ok(before), Ok(after)) => before == after,
        _ => false,
    }
}

/// The body of a status apply: the object's identity and its status.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusPatch<'a, S> {
    api_version: &'a str,
    kind: &'a str,
    metadata: NameOnly<'a>,
    status: &'a S,
}

/// Metadata naming the object and nothing else.
#[derive(Serialize)]
struct NameOnly<'a> {
    name: &'a str,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_is_written_only_when_its_json_differs() {
        #[derive(PartialEq, Serialize)]
        struct Status {
            shown: u8,
            #[serde(skip)]
            hidden: u8,
        }
        let status = |shown, hidden| Status { shown, hidden };
        assert!(same_json(&status(1, 1), &status(1, 2)), "alike as JSON");
        assert!(!same_json(&status(1, 1), &status(2, 1)));
    }

    #[test]
    fn the_status_patch_names_the_object_and_carries_the_status() {
        let patch = StatusPatch {
            api_version: "portfolio.dev/v1alpha1",
            kind: "PortfolioApp",
            metadata: NameOnly { name: "shop" },
            status: &serde_json::json!({"phase": "Ready"}),
        };
        assert_eq!(
            serde_json::to_value(&patch).ok(),
            Some(serde_json::json!({
                "apiVersion": "portfolio.dev/v1alpha1",
                "kind": "PortfolioApp",
                "metadata": {"name": "shop"},
                "status": {"phase": "Ready"},
            }))
        );
    }

    #[test]
    fn a_write_is_forgotten_once_the_cache_shows_it() {
        let written = Written::default();
        written.wrote("uid-1", "empty", "progressing");
        written.observed("uid-1", &"empty");
        assert_eq!(written.len(), 1, "the cache still lags");
        assert_eq!(written.current("uid-1", &"empty"), "progressing");
        written.observed("uid-1", &"progressing");
        assert!(written.is_empty(), "the write came back");
        written.observed("uid-2", &"anything");
        assert!(written.is_empty());
    }

    #[test]
    fn a_reconcile_on_a_stale_cache_sees_the_status_it_wrote() {
        let written = Written::default();
        assert_eq!(written.current("uid-1", &"empty"), "empty");
        written.wrote("uid-1", "empty", "progressing");
        // The cache has not shown the write yet: the written status holds,
        // so the same conclusion is not written again.
        assert_eq!(written.current("uid-1", &"empty"), "progressing");
        assert_eq!(written.current("uid-1", &"empty"), "progressing");
        // Another object is its own.
        assert_eq!(written.current("uid-2", &"empty"), "empty");
        // The cache caught up: it is right again, and nothing is held.
        assert_eq!(written.current("uid-1", &"progressing"), "progressing");
        assert!(written.is_empty());
        // A later change by someone else is seen as it is.
        written.wrote("uid-1", "progressing", "ready");
        assert_eq!(written.current("uid-1", &"edited"), "edited");
        assert!(written.is_empty());
        written.wrote("uid-1", "ready", "degraded");
        written.forget("uid-1");
        assert_eq!(written.current("uid-1", &"ready"), "ready");
        // Two writes before the cache shows the first: until it shows the
        // second, both the earlier ones are stale.
        written.wrote("uid-1", "empty", "progressing");
        written.wrote("uid-1", "progressing", "ready");
        assert_eq!(written.current("uid-1", &"empty"), "ready");
        assert_eq!(written.current("uid-1", &"progressing"), "ready");
        assert_eq!(written.current("uid-1", &"ready"), "ready");
        assert!(written.is_empty());
    }
}
