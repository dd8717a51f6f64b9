//! Tunables, request options and results of the in-process API.

use serde_json::{Value, json};

use crate::error::{ApiError, Cause};

/// Tunables of one emulator.
#[derive(Debug, Clone)]
pub struct Options {
    /// How many events of history serve watches and consistent lists before 410 Gone.
    pub history_window: usize,
    /// Whether ownerReferences are honoured on deletion (garbage collection) and namespace
    /// deletion removes the namespace's contents.
    pub garbage_collection: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            history_window: 10_000,
            garbage_collection: true,
        }
    }
}

/// Which part of an object a request addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sub {
    /// The resource itself.
    Main,
    /// `/status`.
    Status,
    /// `/scale`.
    Scale,
}

/// How unknown or duplicate fields are treated (`fieldValidation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    /// Drop silently.
    Ignore,
    /// Drop and warn (the default).
    #[default]
    Warn,
    /// Reject with 400.
    Strict,
}

/// Options of a write.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// `dryRun=All`: validate and answer, but store nothing.
    pub dry_run: bool,
    /// The field manager (for apply: required).
    pub field_manager: Option<String>,
    /// `force` for server-side apply conflicts.
    pub force: bool,
    /// `fieldValidation`.
    pub field_validation: FieldValidation,
    /// The duplicate keys of an apply's body, as Kubernetes' strict decoding names them
    /// (`line 3: key "a" already set in map`): the body was read with the last value of
    /// each winning, and the apply judges them by `field_validation` once it has merged.
    pub duplicate_keys: Vec<String>,
}

/// Options of a delete.
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    /// `dryRun=All`.
    pub dry_run: bool,
    /// `propagationPolicy`: Background, Foreground or Orphan.
    pub propagation: Option<String>,
    /// `preconditions.uid`.
    pub uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub resource_version: Option<String>,
}

/// Options of a list or watch.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// `labelSelector`.
    pub label_selector: Option<String>,
    /// `fieldSelector`.
    pub field_selector: Option<String>,
    /// `limit`.
    pub limit: Option<usize>,
    /// `continue`.
    pub continue_token: Option<String>,
    /// `resourceVersion`.
    pub resource_version: Option<String>,
    /// `resourceVersionMatch`.
    pub resource_version_match: Option<String>,
    /// `allowWatchBookmarks`.
    pub allow_bookmarks: bool,
    /// `sendInitialEvents`.
    pub send_initial_events: Option<bool>,
}

impl ListOptions {
    /// Kubernetes' defaults and checks of a list's or watch's options
    /// (`SetListOptionsDefaults` with the WatchList feature on, as since 1.34, then
    /// `ValidateListOptions`, apimachinery/pkg/apis/meta/internalversion): a watch from
    /// `""` or `"0"` that chooses neither `sendInitialEvents` nor `resourceVersionMatch`
    /// sends initial events; what the checks refuse is a 422 on `ListOptions`.
    pub(super) fn defaulted_and_checked(&self, watch: bool) -> Result<ListOptions, ApiError> {
        let mut o = self.clone();
        let rv = self.resource_version.as_deref().unwrap_or_default();
        let continued = o.continue_token.as_deref().is_some_and(|c| !c.is_empty());
        if watch
            && o.send_initial_events.is_none()
            && o.resource_version_match
                .as_deref()
                .is_none_or(str::is_empty)
            && (rv.is_empty() || rv == "0")
        {
            o.send_initial_events = Some(true);
            o.resource_version_match = Some("NotOlderThan".into());
        }
        let rv_match = o.resource_version_match.as_deref().unwrap_or_default();
        let mut errs = Vec::new();
        let forbidden = |detail: &str| Cause::forbidden("resourceVersionMatch", detail);
        if watch {
            if o.send_initial_events.is_some() && rv_match != "NotOlderThan" {
                errs.push(forbidden(
                    "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
                ));
            }
            if !rv_match.is_empty() {
                if o.send_initial_events.is_none() {
                    errs.push(forbidden(
                        "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
                    ));
                }
                if rv_match != "NotOlderThan" {
                    errs.push(Cause::not_supported(
                        "resourceVersionMatch",
                        &json!(rv_match),
                        &[json!("NotOlderThan")],
                    ));
                }
                if continued {
                    errs.push(forbidden(
                        "resourceVersionMatch is forbidden when continue is provided",
                    ));
                }
            }
        } else {
            if !rv_match.is_empty() {
                if rv.is_empty() {
                    errs.push(forbidden(
                        "resourceVersionMatch is forbidden unless resourceVersion is provided",
                    ));
                }
                if continued {
                    errs.push(forbidden(
                        "resourceVersionMatch is forbidden when continue is provided",
                    ));
                }
                if rv_match != "Exact" && rv_match != "NotOlderThan" {
                    errs.push(Cause::not_supported(
                        "resourceVersionMatch",
                        &json!(rv_match),
                        &[json!("Exact"), json!("NotOlderThan"), json!("")],
                    ));
                }
                if rv_match == "Exact" && rv == "0" {
                    errs.push(forbidden(
                        "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
                    ));
                }
            }
            if o.send_initial_events.is_some() {
                errs.push(Cause::forbidden(
                    "sendInitialEvents",
                    "sendInitialEvents is forbidden for list",
                ));
            }
        }
        if errs.is_empty() {
            Ok(o)
        } else {
            Err(ApiError::invalid("meta.k8s.io", "ListOptions", "", errs))
        }
    }
}

/// The result of a write.
#[derive(Debug, Clone)]
pub struct WriteResult {
    /// The object as stored (in the client's version): shared with the store when that
    /// is the stored version, so a write copies it no more than it must.
    pub object: std::sync::Arc<Value>,
    /// Whether it was created (201) rather than changed (200).
    pub created: bool,
    /// Warnings for the `Warning` header.
    pub warnings: Vec<String>,
}

/// The result of a delete.
#[derive(Debug, Clone)]
pub enum DeleteResult {
    /// Deleted now; the Status to answer with.
    Deleted(Value),
    /// Finalizers keep it; the object with its deletionTimestamp.
    Pending(Value),
}
