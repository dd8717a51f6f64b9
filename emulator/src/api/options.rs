//! Tunables, request options and results of the in-process API.

use serde_json::Value;

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

/// The result of a write.
#[derive(Debug, Clone)]
pub struct WriteResult {
    /// The object as stored (in the client's version).
    pub object: Value,
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
