//! The API's semantics, independent of HTTP: the in-process API the server (and, later, the
//! simulated controllers) call. Every write goes through one pipeline here.

use std::sync::{Arc, RwLock};

use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

use crate::convert::{to_storage, to_version};
use crate::crd::{established_status, types_from_crd};
use crate::error::{ApiError, Cause};
use crate::fields::{
    FieldSet, Shape, changed_fields, fields_of, merge, remove_fields, widen_to_structs,
};
use crate::patch::{PatchType, json_patch, merge_patch, strategic_merge};
use crate::registry::{GroupResource, Registry, ResourceType, get_path, set_path};
use crate::selector::{FieldSelector, LabelSelector, supported_fields};
use crate::store::{Event, Inner, Store, name_of};
use crate::validation::{NameRule, name_rule, validate_meta, validate_name};

mod binding;
mod builtin;
mod gc;

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

/// A started watch: events to send first, then the live feed.
pub struct Watch {
    /// Synthetic or replayed events to send before live ones.
    pub initial: Vec<WatchItem>,
    /// The live feed (filter with [`Api::watch_filter`]).
    pub rx: broadcast::Receiver<Arc<Event>>,
    /// The resourceVersion the initial events end at.
    pub rv: u64,
    /// Whether to send the initial-events-end bookmark after `initial`.
    pub initial_end_bookmark: bool,
}

/// One event ready for a watcher.
#[derive(Debug, Clone)]
pub struct WatchItem {
    /// ADDED, MODIFIED, DELETED, BOOKMARK or ERROR.
    pub kind: &'static str,
    /// The object (converted to the watched version).
    pub object: Value,
}

/// A compiled list/watch filter.
#[derive(Clone)]
pub struct Filter {
    rt: Arc<ResourceType>,
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
    /// Events at or before this resourceVersion are not delivered (a watch from a version
    /// the store has not reached yet starts once it is reached, as in Kubernetes).
    after: u64,
}

impl Filter {
    fn matches(&self, obj: &Value) -> bool {
        self.labels.matches(obj) && self.fields.matches(obj)
    }

    /// What a watcher of this filter receives for a store event, if anything.
    pub fn apply(&self, e: &Event) -> Option<WatchItem> {
        if e.storage != self.rt.storage || e.rv <= self.after {
            return None;
        }
        if self.namespace.as_ref().is_some_and(|ns| *ns != e.namespace) {
            return None;
        }
        let now = self.matches(&e.object);
        let before = e.prev.as_ref().is_some_and(|p| self.matches(p));
        use crate::store::EventType::*;
        let kind = match e.kind {
            Added if now => "ADDED",
            Modified if now && before => "MODIFIED",
            Modified if now => "ADDED",
            Modified if before => "DELETED",
            Deleted if now || before => "DELETED",
            _ => return None,
        };
        Some(WatchItem {
            kind,
            object: to_version(&self.rt, &e.object),
        })
    }

    /// The serialized watch line for an event, reusing the shared serialization when possible.
    pub fn line(&self, e: &Event, item: &WatchItem) -> String {
        let same = item.kind == e.kind.as_str() && crate::convert::is_identity(&self.rt, &e.object);
        if same {
            let obj = e
                .json
                .get_or_init(|| serde_json::to_string(&*e.object).unwrap_or_default());
            return format!("{{\"type\":\"{}\",\"object\":{}}}\n", item.kind, obj);
        }
        watch_line(item)
    }
}

/// A watch event as one JSON line.
pub fn watch_line(item: &WatchItem) -> String {
    let mut s = serde_json::to_string(&json!({"type": item.kind, "object": item.object}))
        .unwrap_or_default();
    s.push('\n');
    s
}

/// Fields server-side apply and update tracking never assign to a manager.
const STRIPPED_META: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

fn strip_tracked(v: &Value) -> Value {
    let mut v = v.clone();
    if let Value::Object(m) = &mut v {
        m.remove("apiVersion");
        m.remove("kind");
        if let Some(Value::Object(meta)) = m.get_mut("metadata") {
            for k in STRIPPED_META {
                meta.remove(*k);
            }
            if meta.is_empty() {
                m.remove("metadata");
            }
        }
    }
    v
}

/// The current time as RFC 3339 with second precision, as Kubernetes writes timestamps.
pub fn now() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    if getrandom::fill(&mut b).is_err() {
        // Without OS randomness fall back to time-derived bytes; uniqueness is still checked.
        let t = jiff::Timestamp::now().as_nanosecond() as u128;
        for (i, x) in b.iter_mut().enumerate() {
            *x = (t >> ((i % 16) * 8)) as u8 ^ (i as u8).wrapping_mul(31);
        }
    }
    b
}

/// A random RFC 4122 version 4 UUID.
pub fn new_uid() -> String {
    let mut b: [u8; 16] = random_bytes();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn random_suffix() -> String {
    // Kubernetes' alphabet for generateName: no vowels, no confusable characters.
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    random_bytes::<5>()
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

fn meta(v: &Value) -> &Value {
    v.get("metadata").unwrap_or(&Value::Null)
}

fn meta_str<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    meta(v).get(key).and_then(Value::as_str)
}

fn meta_mut(v: &mut Value) -> &mut Map<String, Value> {
    if !v.is_object() {
        *v = Value::Object(Map::new());
    }
    let Value::Object(m) = v else {
        unreachable!("just made an object")
    };
    let entry = m
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    match entry {
        Value::Object(meta) => meta,
        _ => unreachable!("just made an object"),
    }
}

fn finalizers(v: &Value) -> Vec<String> {
    meta(v)
        .get("finalizers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// One entry of `metadata.managedFields`.
#[derive(Debug, Clone)]
struct Manager {
    manager: String,
    operation: String,
    api_version: String,
    time: String,
    subresource: String,
    fields: FieldSet,
}

impl Manager {
    fn parse(v: &Value) -> Vec<Manager> {
        let Some(list) = meta(v).get("managedFields").and_then(Value::as_array) else {
            return Vec::new();
        };
        list.iter()
            .filter_map(|e| {
                Some(Manager {
                    manager: e.get("manager")?.as_str()?.to_string(),
                    operation: e.get("operation")?.as_str()?.to_string(),
                    api_version: e
                        .get("apiVersion")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    time: e
                        .get("time")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    subresource: e
                        .get("subresource")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    fields: FieldSet::from_fields_v1(e.get("fieldsV1").unwrap_or(&json!({})))?,
                })
            })
            .collect()
    }

    fn to_json(&self) -> Value {
        let mut v = json!({
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
            "time": self.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": self.fields.to_fields_v1(),
        });
        if !self.subresource.is_empty() {
            v["subresource"] = json!(self.subresource);
        }
        v
    }

    fn same(&self, manager: &str, operation: &str, sub: &str) -> bool {
        self.manager == manager && self.operation == operation && self.subresource == sub
    }
}

fn write_managers(obj: &mut Value, mut managers: Vec<Manager>, old: &[Manager]) {
    managers.retain(|m| !m.fields.is_empty());
    // Entries whose set did not change keep their time, so a no-op write stays a no-op.
    for m in &mut managers {
        if let Some(o) = old
            .iter()
            .find(|o| o.same(&m.manager, &m.operation, &m.subresource))
            && o.fields == m.fields
            && o.api_version == m.api_version
        {
            m.time = o.time.clone();
        }
    }
    let list: Vec<Value> = managers.iter().map(Manager::to_json).collect();
    let meta = meta_mut(obj);
    if list.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert("managedFields".into(), Value::Array(list));
    }
}

fn sub_name(sub: Sub) -> &'static str {
    match sub {
        Sub::Main => "",
        Sub::Status => "status",
        Sub::Scale => "scale",
    }
}

/// The API: registry plus store, with Kubernetes' semantics.
pub struct Api {
    store: Store,
    registry: RwLock<Arc<Registry>>,
    builtin: Registry,
    opts: Options,
}

enum Op {
    Create,
    Update,
    Apply(Vec<Manager>),
}

impl Api {
    /// A fresh API with the built-in types and namespaces `default`, `kube-system`,
    /// `kube-public` and `kube-node-lease`.
    pub fn new(opts: Options) -> Self {
        let builtin = Registry::builtin();
        let api = Api {
            store: Store::new(opts.history_window),
            registry: RwLock::new(Arc::new(builtin.clone())),
            builtin,
            opts,
        };
        let mut inner = api.store.lock();
        let gr = GroupResource::new("", "namespaces");
        let ts = now();
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let rv = inner.next_rv();
            let obj = json!({
                "apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": ns, "uid": new_uid(), "resourceVersion": rv.to_string(),
                    "creationTimestamp": ts, "labels": {"kubernetes.io/metadata.name": ns}},
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"},
            });
            inner.put(&gr, "", ns, obj, rv);
        }
        drop(inner);
        api
    }

    /// The served types right now.
    pub fn registry(&self) -> Arc<Registry> {
        self.registry
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The store (for controllers and fault injection: compaction, subscriptions).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The type served at group/version/resource, or 404.
    pub fn resolve(
        &self,
        group: &str,
        version: &str,
        resource: &str,
    ) -> Result<Arc<ResourceType>, ApiError> {
        self.registry()
            .get(group, version, resource)
            .ok_or_else(ApiError::no_route)
    }

    /// Gets one object.
    pub fn get(&self, rt: &ResourceType, ns: &str, name: &str) -> Result<Value, ApiError> {
        let inner = self.store.lock();
        let obj = inner
            .get(&rt.storage, ns, name)
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.resource, name))?;
        Ok(to_version(rt, &obj))
    }

    /// The `/scale` view of an object.
    pub fn get_scale(&self, rt: &ResourceType, ns: &str, name: &str) -> Result<Value, ApiError> {
        let obj = self.get(rt, ns, name)?;
        scale_of(rt, &obj)
    }

    fn filter(
        &self,
        rt: &Arc<ResourceType>,
        ns: Option<&str>,
        o: &ListOptions,
    ) -> Result<Filter, ApiError> {
        let labels = LabelSelector::parse(o.label_selector.as_deref().unwrap_or(""))
            .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?;
        let fields = FieldSelector::parse(
            o.field_selector.as_deref().unwrap_or(""),
            &supported_fields(&rt.group, &rt.resource),
        )
        .map_err(|e| {
            ApiError::bad_request(format!(
                "\"{}\" is not a known field selector: {e}",
                o.field_selector.as_deref().unwrap_or("")
            ))
        })?;
        Ok(Filter {
            rt: rt.clone(),
            namespace: ns.map(str::to_string),
            labels,
            fields,
            after: 0,
        })
    }

    /// Lists objects, honouring selectors, limit/continue and resourceVersion semantics.
    pub fn list(
        &self,
        rt: &Arc<ResourceType>,
        ns: Option<&str>,
        o: &ListOptions,
    ) -> Result<Value, ApiError> {
        let filter = self.filter(rt, ns, o)?;
        let parsed_rv = parse_rv(o.resource_version.as_deref())?;
        let (start_rv, start_key) = match &o.continue_token {
            Some(t) if !t.is_empty() => {
                let (rv, key) = decode_continue(t)?;
                (Some(rv), Some(key))
            }
            _ => (None, None),
        };
        let inner = self.store.lock();
        let at = match (start_rv, o.resource_version_match.as_deref(), parsed_rv) {
            (Some(rv), _, _) => Some(rv),
            (None, Some("Exact"), Some(0)) => {
                return Err(ApiError::bad_request(
                    "resourceVersionMatch \"Exact\" is forbidden for resourceVersion \"0\"",
                ));
            }
            (None, Some("Exact"), Some(rv)) => Some(rv),
            (None, Some("Exact"), None) => {
                return Err(ApiError::bad_request(
                    "resourceVersionMatch=Exact requires a resourceVersion",
                ));
            }
            (None, Some("NotOlderThan"), None) => {
                return Err(ApiError::bad_request(
                    "resourceVersionMatch=NotOlderThan requires a resourceVersion",
                ));
            }
            (None, Some("NotOlderThan") | None, Some(rv)) if rv > inner.rv() => {
                return Err(ApiError::new(
                    504,
                    "Timeout",
                    format!(
                        "Too large resource version: {rv}, current resource version: {}",
                        inner.rv()
                    ),
                ));
            }
            (None, Some(m), _) if m != "NotOlderThan" && m != "Exact" => {
                return Err(ApiError::bad_request(format!(
                    "resourceVersionMatch: Unsupported value: \"{m}\": supported values: \"Exact\", \"NotOlderThan\""
                )));
            }
            _ => None,
        };
        let snap = match at {
            Some(rv) => inner.list_at(&rt.storage, ns, rv).ok_or_else(|| {
                if start_rv.is_some() {
                    ApiError::expired(String::from(
                        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list."
                    ))
                } else {
                    ApiError::expired(format!("too old resource version: {rv} ({})", inner.oldest() + 1))
                }
            })?,
            None => crate::store::Snapshot {
                rv: inner.rv(),
                objects: inner.list_current(&rt.storage, ns),
            },
        };
        drop(inner);
        let mut items = Vec::new();
        let mut next = None;
        let mut remaining = 0u64;
        for obj in &snap.objects {
            let key = format!(
                "{}/{}",
                meta_str(obj, "namespace").unwrap_or_default(),
                meta_str(obj, "name").unwrap_or_default()
            );
            if start_key
                .as_ref()
                .is_some_and(|s| key.as_str() <= s.as_str())
            {
                continue;
            }
            if !filter.matches(obj) {
                continue;
            }
            if let Some(limit) = o.limit.filter(|l| *l > 0) {
                if items.len() >= limit {
                    remaining += 1;
                    continue;
                }
                if items.len() + 1 == limit {
                    next = Some(key.clone());
                }
            }
            items.push(to_version(rt, obj));
        }
        let mut list_meta = json!({"resourceVersion": snap.rv.to_string()});
        if remaining > 0
            && let Some(k) = next
        {
            list_meta["continue"] = json!(encode_continue(snap.rv, &k));
            if filter.labels.is_empty() && filter.fields.is_empty() {
                list_meta["remainingItemCount"] = json!(remaining);
            }
        }
        Ok(json!({
            "apiVersion": rt.api_version(),
            "kind": rt.list_kind,
            "metadata": list_meta,
            "items": items,
        }))
    }

    /// Starts a watch with Kubernetes' resourceVersion semantics.
    pub fn watch(
        &self,
        rt: &Arc<ResourceType>,
        ns: Option<&str>,
        o: &ListOptions,
    ) -> Result<(Watch, Filter), ApiError> {
        let mut filter = self.filter(rt, ns, o)?;
        let rv = parse_rv(o.resource_version.as_deref())?;
        let send_initial = o.send_initial_events.unwrap_or(false);
        if send_initial && !o.allow_bookmarks {
            return Err(ApiError::invalid(
                "meta.k8s.io",
                "ListOptions",
                "",
                vec![Cause::forbidden(
                    "allowWatchBookmarks",
                    "sendInitialEvents requires setting allowWatchBookmarks to true",
                )],
            ));
        }
        if o.send_initial_events.is_some()
            && o.resource_version_match.as_deref() != Some("NotOlderThan")
        {
            return Err(ApiError::invalid(
                "meta.k8s.io",
                "ListOptions",
                "",
                vec![Cause::forbidden(
                    "resourceVersionMatch",
                    "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
                )],
            ));
        }
        let inner = self.store.lock();
        let rx = self.store.subscribe();
        let current = inner.rv();
        let synthetic =
            send_initial || rv.is_none() || rv == Some(0) && o.send_initial_events.is_none();
        let initial = if synthetic {
            inner
                .list_current(&rt.storage, ns)
                .into_iter()
                .filter(|obj| filter.matches(obj))
                .map(|obj| WatchItem {
                    kind: "ADDED",
                    object: to_version(rt, &obj),
                })
                .collect()
        } else {
            let from = rv.unwrap_or(current);
            filter.after = from;
            match inner.events_since(from) {
                Some(events) => events.iter().filter_map(|e| filter.apply(e)).collect(),
                None => vec![WatchItem {
                    kind: "ERROR",
                    object: ApiError::expired(format!(
                        "too old resource version: {from} ({})",
                        inner.oldest() + 1
                    ))
                    .to_status(),
                }],
            }
        };
        drop(inner);
        Ok((
            Watch {
                initial,
                rx,
                rv: current,
                initial_end_bookmark: send_initial,
            },
            filter,
        ))
    }

    /// A bookmark event at `rv` for this type.
    pub fn bookmark(rt: &ResourceType, rv: u64, initial_end: bool) -> WatchItem {
        let mut m = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            m["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        WatchItem {
            kind: "BOOKMARK",
            object: json!({"apiVersion": rt.api_version(), "kind": rt.kind, "metadata": m}),
        }
    }

    /// The latest resourceVersion.
    pub fn current_rv(&self) -> u64 {
        self.store.lock().rv()
    }

    /// Forgets history: older resourceVersions answer 410 Gone from now on.
    pub fn compact(&self) {
        self.store.lock().compact();
    }

    fn check_body_type(rt: &ResourceType, body: &Value) -> Result<(), ApiError> {
        if !body.is_object() {
            return Err(ApiError::bad_request(format!(
                "the body of the request could not be decoded as a {}: expected an object",
                rt.kind
            )));
        }
        if let Some(av) = body.get("apiVersion") {
            let av = av.as_str().unwrap_or_default();
            if !av.is_empty() && av != rt.api_version() {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({av}) does not match the expected API version ({})",
                    rt.api_version()
                )));
            }
        }
        if let Some(k) = body.get("kind") {
            let k = k.as_str().unwrap_or_default();
            if !k.is_empty() && k != rt.kind {
                return Err(ApiError::bad_request(format!(
                    "the kind in the data ({k}) does not match the expected kind ({})",
                    rt.kind
                )));
            }
        }
        match body.get("metadata") {
            None | Some(Value::Object(_)) => Ok(()),
            Some(_) => Err(ApiError::bad_request(format!(
                "{} in version \"{}\" cannot be handled as a {}: metadata must be an object",
                rt.kind, rt.version, rt.kind
            ))),
        }
    }

    fn check_namespace(rt: &ResourceType, ns: &str, body: &Value) -> Result<(), ApiError> {
        if let Some(bns) = meta(body).get("namespace") {
            let bns = bns.as_str().unwrap_or_default();
            if rt.namespaced && !bns.is_empty() && bns != ns {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
        }
        Ok(())
    }

    fn namespace_usable(inner: &Inner, rt: &ResourceType, ns: &str) -> Result<(), ApiError> {
        if !rt.namespaced {
            return Ok(());
        }
        let Some(nsobj) = inner.get(&GroupResource::new("", "namespaces"), "", ns) else {
            return Err(ApiError::not_found("", "namespaces", ns));
        };
        if meta(&nsobj).get("deletionTimestamp").is_some() {
            return Err(ApiError::forbidden(
                &rt.group,
                &rt.resource,
                "",
                &format!(
                    "unable to create new content in namespace {ns} because it is being terminated"
                ),
            ));
        }
        Ok(())
    }

    fn manager(opts: &WriteOptions) -> Result<String, ApiError> {
        let m = opts
            .field_manager
            .clone()
            .unwrap_or_else(|| "unknown".to_string());
        if m.len() > 128 {
            return Err(ApiError::invalid(
                "meta.k8s.io",
                "PatchOptions",
                "",
                vec![Cause::too_long(
                    "fieldManager",
                    "may not be more than 128 bytes",
                )],
            ));
        }
        Ok(m)
    }

    /// Creates an object (POST).
    pub fn create(
        &self,
        rt: &Arc<ResourceType>,
        ns: &str,
        body: Value,
        opts: &WriteOptions,
    ) -> Result<WriteResult, ApiError> {
        Self::check_body_type(rt, &body)?;
        Self::check_namespace(rt, ns, &body)?;
        if meta_str(&body, "resourceVersion").is_some_and(|s| !s.is_empty()) {
            return Err(ApiError::bad_request(
                "resourceVersion should not be set on objects to be created",
            ));
        }
        let mut inner = self.store.lock();
        Self::namespace_usable(&inner, rt, ns)?;
        let mut obj = body;
        let m = meta_mut(&mut obj);
        let mut name = m
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if name.is_empty() {
            let prefix = m
                .get("generateName")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            if prefix.is_empty() {
                return Err(ApiError::invalid(
                    &rt.group,
                    &rt.kind,
                    "",
                    vec![Cause::required(
                        "metadata.name",
                        "name or generateName is required",
                    )],
                ));
            }
            // Retry on the (unlikely) collision rather than answering AlreadyExists.
            for _ in 0..8 {
                name = format!("{prefix}{}", random_suffix());
                if inner.get(&rt.storage, ns, &name).is_none() {
                    break;
                }
            }
            m.insert("name".into(), json!(name));
        }
        if inner.get(&rt.storage, ns, &name).is_some() {
            return Err(ApiError::already_exists(&rt.group, &rt.resource, &name));
        }
        let manager = Self::manager(opts)?;
        self.commit(
            &mut inner,
            rt,
            ns,
            &name,
            None,
            obj,
            Sub::Main,
            Op::Create,
            &manager,
            opts,
        )
    }

    /// Replaces an object (PUT), with optimistic concurrency on `metadata.resourceVersion`.
    pub fn update(
        &self,
        rt: &Arc<ResourceType>,
        ns: &str,
        name: &str,
        sub: Sub,
        body: Value,
        opts: &WriteOptions,
    ) -> Result<WriteResult, ApiError> {
        if sub == Sub::Scale {
            return self.update_scale(rt, ns, name, body, opts);
        }
        Self::check_body_type(rt, &body)?;
        Self::check_namespace(rt, ns, &body)?;
        let body_name = meta_str(&body, "name").unwrap_or_default();
        if body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let manager = Self::manager(opts)?;
        let mut inner = self.store.lock();
        let old = inner
            .get(&rt.storage, ns, name)
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.resource, name))?;
        let old_v = to_version(rt, &old);
        if let Some(rv) = meta_str(&body, "resourceVersion").filter(|s| !s.is_empty())
            && Some(rv) != meta_str(&old, "resourceVersion")
        {
            return Err(ApiError::stale(&rt.group, &rt.resource, name));
        }
        if let Some(uid) = meta_str(&body, "uid").filter(|s| !s.is_empty())
            && Some(uid) != meta_str(&old, "uid")
        {
            return Err(ApiError::conflict(
                &rt.group,
                &rt.resource,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    meta_str(&old, "uid").unwrap_or_default()
                ),
            ));
        }
        self.commit(
            &mut inner,
            rt,
            ns,
            name,
            Some(old_v),
            body,
            sub,
            Op::Update,
            &manager,
            opts,
        )
    }

    fn update_scale(
        &self,
        rt: &Arc<ResourceType>,
        ns: &str,
        name: &str,
        body: Value,
        opts: &WriteOptions,
    ) -> Result<WriteResult, ApiError> {
        let Some(scale) = &rt.scale else {
            return Err(ApiError::no_route());
        };
        let replicas = body
            .get("spec")
            .and_then(|s| s.get("replicas"))
            .cloned()
            .unwrap_or(json!(0));
        if !replicas.is_i64() || replicas.as_i64().is_some_and(|r| r < 0) {
            return Err(ApiError::invalid(
                "autoscaling",
                "Scale",
                name,
                vec![Cause::invalid(
                    "spec.replicas",
                    &replicas,
                    "must be greater than or equal to 0",
                )],
            ));
        }
        let manager = Self::manager(opts)?;
        let mut inner = self.store.lock();
        let old = inner
            .get(&rt.storage, ns, name)
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.resource, name))?;
        if let Some(rv) = meta_str(&body, "resourceVersion").filter(|s| !s.is_empty())
            && Some(rv) != meta_str(&old, "resourceVersion")
        {
            return Err(ApiError::stale(&rt.group, &rt.resource, name));
        }
        let old_v = to_version(rt, &old);
        let mut new = old_v.clone();
        set_path(&mut new, &scale.spec_replicas, replicas);
        let res = self.commit(
            &mut inner,
            rt,
            ns,
            name,
            Some(old_v),
            new,
            Sub::Scale,
            Op::Update,
            &manager,
            opts,
        )?;
        Ok(WriteResult {
            object: scale_of(rt, &res.object)?,
            ..res
        })
    }

    /// Patches an object (PATCH) with any of the four patch types.
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &self,
        rt: &Arc<ResourceType>,
        ns: &str,
        name: &str,
        sub: Sub,
        ptype: PatchType,
        patch: Value,
        opts: &WriteOptions,
    ) -> Result<WriteResult, ApiError> {
        if opts.force && ptype != PatchType::Apply {
            return Err(ApiError::invalid(
                "meta.k8s.io",
                "PatchOptions",
                "",
                vec![Cause::forbidden(
                    "force",
                    "may not be specified for non-apply patch",
                )],
            ));
        }
        if ptype == PatchType::Strategic && rt.custom {
            return Err(ApiError::unsupported_media_type(
                "application/strategic-merge-patch+json",
                &[
                    "application/json-patch+json",
                    "application/merge-patch+json",
                    "application/apply-patch+yaml",
                ],
            ));
        }
        if ptype == PatchType::Apply {
            return self.apply(rt, ns, name, sub, patch, opts);
        }
        let manager = Self::manager(opts)?;
        let mut inner = self.store.lock();
        let old = inner
            .get(&rt.storage, ns, name)
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.resource, name))?;
        let old_v = to_version(rt, &old);
        let base = if sub == Sub::Scale {
            scale_of(rt, &old_v)?
        } else {
            old_v.clone()
        };
        let shape = Shape {
            schema: rt.schema.as_deref(),
        };
        let mut patched = match ptype {
            PatchType::Merge => merge_patch(&base, &patch)?,
            PatchType::Json => json_patch(&base, &patch)?,
            PatchType::Strategic => strategic_merge(&base, &patch, shape)?,
            PatchType::Apply => unreachable!("handled above"),
        };
        if !patched.is_object() {
            return Err(ApiError::bad_request(
                "the patch turned the object into a non-object",
            ));
        }
        if let Some(rv) = meta_str(&patched, "resourceVersion").filter(|s| !s.is_empty())
            && Some(rv) != meta_str(&old, "resourceVersion")
        {
            return Err(ApiError::stale(&rt.group, &rt.resource, name));
        }
        if meta_str(&patched, "name") != Some(name) {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                meta_str(&patched, "name").unwrap_or_default()
            )));
        }
        if sub == Sub::Scale {
            let scale = rt.scale.as_ref().ok_or_else(ApiError::no_route)?;
            let replicas = patched
                .get("spec")
                .and_then(|s| s.get("replicas"))
                .cloned()
                .unwrap_or(json!(0));
            if !replicas.is_i64() || replicas.as_i64().is_some_and(|r| r < 0) {
                return Err(ApiError::invalid(
                    "autoscaling",
                    "Scale",
                    name,
                    vec![Cause::invalid(
                        "spec.replicas",
                        &replicas,
                        "must be greater than or equal to 0",
                    )],
                ));
            }
            let mut new = old_v.clone();
            set_path(&mut new, &scale.spec_replicas, replicas);
            let res = self.commit(
                &mut inner,
                rt,
                ns,
                name,
                Some(old_v),
                new,
                Sub::Scale,
                Op::Update,
                &manager,
                opts,
            )?;
            return Ok(WriteResult {
                object: scale_of(rt, &res.object)?,
                ..res
            });
        }
        Self::check_body_type(rt, &patched)?;
        // A patch cannot change the kind or apiVersion away.
        patched["apiVersion"] = json!(rt.api_version());
        patched["kind"] = json!(rt.kind);
        self.commit(
            &mut inner,
            rt,
            ns,
            name,
            Some(old_v),
            patched,
            sub,
            Op::Update,
            &manager,
            opts,
        )
    }

    fn apply(
        &self,
        rt: &Arc<ResourceType>,
        ns: &str,
        name: &str,
        sub: Sub,
        config: Value,
        opts: &WriteOptions,
    ) -> Result<WriteResult, ApiError> {
        let Some(manager) = opts.field_manager.clone().filter(|m| !m.is_empty()) else {
            return Err(ApiError::invalid(
                "meta.k8s.io",
                "PatchOptions",
                "",
                vec![Cause::required(
                    "fieldManager",
                    "is required for apply patch",
                )],
            ));
        };
        Self::manager(opts)?;
        if sub == Sub::Scale {
            return Err(ApiError::method_not_allowed());
        }
        if !config.is_object() {
            return Err(ApiError::bad_request(
                "error decoding YAML: the applied configuration must be an object",
            ));
        }
        if config
            .get("apiVersion")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
            || config
                .get("kind")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
        {
            return Err(ApiError::bad_request(
                "apiVersion and kind must be set in the applied configuration",
            ));
        }
        Self::check_body_type(rt, &config)?;
        Self::check_namespace(rt, ns, &config)?;
        if meta(&config)
            .get("managedFields")
            .is_some_and(|m| !m.is_null())
        {
            return Err(ApiError::bad_request("metadata.managedFields must be nil"));
        }
        let mut inner = self.store.lock();
        let old = inner.get(&rt.storage, ns, name);
        // Kubernetes checks the name of the merged object: a configuration
        // without one keeps the live object's, but cannot create an object.
        let mut config = config;
        match meta_str(&config, "name").filter(|n| !n.is_empty()) {
            Some(body) if body == name => {}
            None if old.is_some() => {
                if let Some(m) = config.get_mut("metadata").and_then(Value::as_object_mut) {
                    m.insert("name".into(), Value::String(name.to_owned()));
                } else if let Some(o) = config.as_object_mut() {
                    o.insert("metadata".into(), json!({ "name": name }));
                }
            }
            body => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({}) does not match the name on the URL ({name})",
                    body.unwrap_or_default()
                )));
            }
        }
        if old.is_none() && sub == Sub::Status {
            return Err(ApiError::not_found(&rt.group, &rt.resource, name));
        }
        if let (Some(o), Some(rv)) = (
            &old,
            meta_str(&config, "resourceVersion").filter(|s| !s.is_empty()),
        ) && Some(rv) != meta_str(o, "resourceVersion")
        {
            return Err(ApiError::stale(&rt.group, &rt.resource, name));
        }
        if old.is_none() {
            Self::namespace_usable(&inner, rt, ns)?;
        }
        let old_v = old.as_ref().map(|o| to_version(rt, o));
        let live = old_v.clone().unwrap_or_else(
            || json!({"apiVersion": rt.api_version(), "kind": rt.kind, "metadata": {"name": name}}),
        );
        // Only the part of the configuration this endpoint writes counts.
        if rt.status {
            if let Value::Object(m) = &mut config {
                match sub {
                    Sub::Main => {
                        m.remove("status");
                    }
                    _ => m.retain(|k, _| {
                        matches!(k.as_str(), "apiVersion" | "kind" | "metadata" | "status")
                    }),
                }
            }
            if sub == Sub::Status
                && let Some(Value::Object(mm)) = config.get_mut("metadata")
            {
                mm.retain(|k, _| matches!(k.as_str(), "name" | "namespace" | "resourceVersion"));
            }
        }
        let shape = Shape {
            schema: rt.schema.as_deref(),
        };
        let mut config_for_fields = config.clone();
        let schema = rt
            .schema
            .clone()
            .or_else(|| crate::builtin_schema::schema_for(&rt.group, &rt.kind));
        if let Some(s) = &schema {
            // Server-side apply builds a typed object from the configuration: a field the
            // schema does not declare is an error, whatever fieldValidation says.
            s.prune(&mut config_for_fields, true);
            let problem = unknown_fields(&config, &config_for_fields, "")
                .first()
                .map(|f| format!(".{f}: field not declared in schema"))
                .or_else(|| crate::fields::find_duplicates(&config_for_fields, shape));
            if let Some(problem) = problem {
                // Kubernetes answers this with a bare 500 and no reason (kubernetes#139253);
                // the emulator answers the same so clients are tested against what they get.
                let gvk = format!("{}/{}, Kind={}", rt.group, rt.version, rt.kind);
                return Err(ApiError::new(
                    500,
                    "",
                    format!(
                        "failed to create typed patch object ({}/{name}; {gvk}): {problem}",
                        if rt.namespaced { ns } else { "" }
                    ),
                ));
            }
        }
        let applied = fields_of(&strip_tracked(&config_for_fields), shape);
        let merged = merge(&live, &config_for_fields, shape);
        let managers = Manager::parse(&live);
        let changed = changed_fields(Some(&strip_tracked(&live)), &strip_tracked(&merged), shape);
        let subname = sub_name(sub);
        let mut conflicts: Vec<(String, String, String)> = Vec::new();
        let mut new_managers = Vec::new();
        for m in &managers {
            if m.same(&manager, "Apply", subname) {
                continue;
            }
            let overlap = m.fields.intersection(&changed).intersection(&applied);
            if overlap.is_empty() {
                new_managers.push(m.clone());
                continue;
            }
            if opts.force {
                let mut m2 = m.clone();
                m2.fields = m.fields.difference(&overlap);
                new_managers.push(m2);
            } else {
                for p in overlap.paths() {
                    conflicts.push((m.manager.clone(), m.api_version.clone(), p));
                }
                new_managers.push(m.clone());
            }
        }
        if !conflicts.is_empty() {
            let n = conflicts.len();
            let mut e = ApiError::new(
                409,
                "Conflict",
                format!(
                    "Apply failed with {n} conflict{}: {}",
                    if n == 1 { "" } else { "s" },
                    conflicts
                        .iter()
                        .map(|(m, v, p)| format!("conflict with \"{m}\" using {v}: {p}"))
                        .collect::<Vec<_>>()
                        .join("\n")
                ),
            );
            e.details.causes = conflicts
                .iter()
                .map(|(m, v, p)| {
                    Cause::new(
                        "FieldManagerConflict",
                        p.clone(),
                        format!("conflict with \"{m}\" using {v}"),
                    )
                })
                .collect();
            e.details.group = Some(rt.group.clone()).filter(|g| !g.is_empty());
            e.details.kind = Some(rt.resource.clone());
            e.details.name = Some(name.to_string());
            return Err(e);
        }
        let previous = managers
            .iter()
            .find(|m| m.same(&manager, "Apply", subname))
            .map(|m| m.fields.clone())
            .unwrap_or_default();
        let others = new_managers
            .iter()
            .fold(FieldSet::default(), |acc, m| acc.union(&m.fields));
        let to_remove = widen_to_structs(
            &previous.difference(&applied),
            &applied.union(&others),
            schema.as_deref(),
        )
        .difference(&others);
        let mut merged = merged;
        remove_fields(&mut merged, &to_remove);
        new_managers.push(Manager {
            manager: manager.clone(),
            operation: "Apply".into(),
            api_version: rt.api_version(),
            time: now(),
            subresource: subname.to_string(),
            fields: applied,
        });
        self.commit(
            &mut inner,
            rt,
            ns,
            name,
            old_v,
            merged,
            sub,
            Op::Apply(new_managers),
            &manager,
            opts,
        )
    }

    /// The single write pipeline: resets by subresource, schema, validation, generation,
    /// managed fields, resourceVersion, storage and events.
    #[allow(clippy::too_many_arguments)]
    fn commit(
        &self,
        inner: &mut Inner,
        rt: &Arc<ResourceType>,
        ns: &str,
        name: &str,
        old: Option<Value>,
        mut new: Value,
        sub: Sub,
        op: Op,
        manager: &str,
        opts: &WriteOptions,
    ) -> Result<WriteResult, ApiError> {
        let mut warnings = Vec::new();
        let ts = now();
        new["apiVersion"] = json!(rt.api_version());
        new["kind"] = json!(rt.kind);
        // Subresource resets: the main resource never writes status, /status writes only status.
        if let Some(old) = &old {
            if rt.status && sub == Sub::Main {
                match old.get("status") {
                    Some(s) => new["status"] = s.clone(),
                    None => {
                        if let Value::Object(m) = &mut new {
                            m.remove("status");
                        }
                    }
                }
            }
            if sub == Sub::Status {
                let status = new.get("status").cloned();
                let mf = meta(&new).get("managedFields").cloned();
                // Built-in status strategies reset the spec, not the metadata: annotations
                // written through /status stick (the deployment controller records its
                // revision annotation that way), and so do labels except on apps workloads,
                // whose status strategies reset them too. Custom resources keep only status.
                let mut carried = Vec::new();
                if !rt.custom {
                    carried.push("annotations");
                    if rt.group != "apps" {
                        carried.push("labels");
                    }
                }
                let carried: Vec<(&str, Option<Value>)> = carried
                    .into_iter()
                    .map(|k| (k, meta(&new).get(k).cloned()))
                    .collect();
                new = old.clone();
                for (k, v) in carried {
                    match v {
                        Some(v) => meta_mut(&mut new).insert(k.to_string(), v),
                        None => meta_mut(&mut new).remove(k),
                    };
                }
                if let Value::Object(m) = &mut new {
                    match status {
                        Some(s) => m.insert("status".into(), s),
                        None => m.remove("status"),
                    };
                }
                if let Some(mf) = mf {
                    meta_mut(&mut new).insert("managedFields".into(), mf);
                }
            }
            // Immutable and system-owned metadata.
            let om = meta(old).clone();
            let m = meta_mut(&mut new);
            for k in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
                "name",
                "namespace",
            ] {
                match om.get(k) {
                    Some(v) => m.insert(k.to_string(), v.clone()),
                    None => m.remove(k),
                };
            }
            // Absent, null or an empty list keeps the stored managers, as in Kubernetes
            // (clients reset them with `[{}]`).
            let keep = match m.get("managedFields") {
                None | Some(Value::Null) => true,
                Some(Value::Array(a)) => a.is_empty(),
                Some(_) => false,
            };
            if keep && let Some(mf) = om.get("managedFields") {
                m.insert("managedFields".into(), mf.clone());
            }
        } else {
            if rt.status
                && let Value::Object(m) = &mut new
            {
                m.remove("status");
            }
            let m = meta_mut(&mut new);
            m.insert("uid".into(), json!(new_uid()));
            m.insert("creationTimestamp".into(), json!(ts));
            for k in [
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
                "selfLink",
            ] {
                m.remove(k);
            }
            if rt.namespaced {
                m.insert("namespace".into(), json!(ns));
            } else {
                m.remove("namespace");
            }
            m.insert("name".into(), json!(name));
            if !matches!(op, Op::Apply(_)) {
                m.remove("managedFields");
            }
        }
        self.type_defaults(rt, old.as_ref(), &mut new, inner.rv());
        // Schema: prune, default, validate.
        let mut errs = Vec::new();
        let schema = rt
            .schema
            .clone()
            .or_else(|| crate::builtin_schema::schema_for(&rt.group, &rt.kind));
        if let Some(schema) = &schema {
            let before = new.clone();
            schema.prune(&mut new, true);
            let unknown = unknown_fields(&before, &new, "");
            if !unknown.is_empty() {
                match opts.field_validation {
                    FieldValidation::Strict => {
                        return Err(ApiError::bad_request(format!(
                            "{} in version \"{}\" cannot be handled as a {}: strict decoding error: {}",
                            rt.kind,
                            rt.version,
                            rt.kind,
                            unknown
                                .iter()
                                .map(|f| format!("unknown field \"{f}\""))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )));
                    }
                    FieldValidation::Warn => {
                        warnings.extend(unknown.iter().map(|f| format!("unknown field \"{f}\"")));
                    }
                    FieldValidation::Ignore => {}
                }
            }
            schema.apply_defaults(&mut new);
            let mut schema_errs = Vec::new();
            validate_root(schema, &new, &mut schema_errs);
            // For built-ins a type mismatch is a decoding error in Kubernetes (400), not a
            // validation error (422).
            if !rt.custom
                && let Some(c) = schema_errs
                    .iter()
                    .find(|c| c.message.contains("must be of type"))
            {
                return Err(ApiError::bad_request(format!(
                    "{} in version \"{}\" cannot be handled as a {}: {}: {}",
                    rt.kind, rt.version, rt.kind, c.field, c.message
                )));
            }
            // Validation ratcheting (Kubernetes 1.30+, GA in 1.33): an update may keep
            // a value that fails the schema as long as it leaves that value unchanged.
            if rt.custom
                && let Some(old) = &old
            {
                schema_errs.retain(|c| !unchanged_at(old, &new, &c.field, &c.reason));
            }
            errs.extend(schema_errs);
        }
        let rule = if rt.custom {
            NameRule::Subdomain
        } else {
            name_rule(&rt.group, &rt.resource)
        };
        if let Some(c) = validate_name(name, rule, "metadata.name") {
            errs.push(c);
        }
        validate_meta(meta(&new), &mut errs);
        self.type_validation(rt, old.as_ref(), &new, &mut errs);
        if let Some(old) = &old
            && meta(old).get("deletionTimestamp").is_some()
        {
            let before = finalizers(old);
            if finalizers(&new).iter().any(|f| !before.contains(f)) {
                errs.push(Cause::forbidden(
                    "metadata.finalizers",
                    "no new finalizers can be added if the object is being deleted",
                ));
            }
        }
        let mut crd_types = None;
        if rt.group == "apiextensions.k8s.io" && rt.resource == "customresourcedefinitions" {
            match types_from_crd(&new, &self.builtin) {
                Ok(types) => crd_types = Some(types),
                Err(e) => errs.extend(e),
            }
            if sub == Sub::Main {
                let status = match old.as_ref().and_then(|o| o.get("status")) {
                    Some(s) if s.get("conditions").is_some() => {
                        let mut s = s.clone();
                        let fresh = established_status(&new, &ts);
                        s["acceptedNames"] = fresh["acceptedNames"].clone();
                        s["storedVersions"] = fresh["storedVersions"].clone();
                        s
                    }
                    _ => established_status(&new, &ts),
                };
                new["status"] = status;
            }
        }
        if !errs.is_empty() {
            return Err(ApiError::invalid(&rt.group, &rt.kind, name, errs));
        }
        // Generation: bumped on any change outside metadata (and status, when split off).
        if rt.generation {
            let generation = match &old {
                None => 1,
                Some(o) => {
                    let g = meta(o)
                        .get("generation")
                        .and_then(Value::as_i64)
                        .unwrap_or(1);
                    if spec_of(o, rt.status) != spec_of(&new, rt.status) {
                        g + 1
                    } else {
                        g
                    }
                }
            };
            meta_mut(&mut new).insert("generation".into(), json!(generation));
        }
        // Managed fields.
        let shape = Shape {
            schema: rt.schema.as_deref(),
        };
        let old_managers = old.as_ref().map(Manager::parse).unwrap_or_default();
        let subname = sub_name(if sub == Sub::Scale { Sub::Scale } else { sub });
        let managers = match op {
            Op::Apply(list) => list,
            Op::Create | Op::Update => {
                let base = Manager::parse(&new);
                let changed = changed_fields(
                    old.as_ref().map(strip_tracked).as_ref(),
                    &strip_tracked(&new),
                    shape,
                );
                let mut list: Vec<Manager> = base
                    .into_iter()
                    .map(|mut m| {
                        if !m.same(manager, "Update", subname) {
                            m.fields = m.fields.difference(&changed);
                        }
                        m
                    })
                    .collect();
                match list.iter_mut().find(|m| m.same(manager, "Update", subname)) {
                    Some(m) => {
                        m.fields = m.fields.union(&changed);
                        m.api_version = rt.api_version();
                        m.time = ts.clone();
                    }
                    None => list.push(Manager {
                        manager: manager.to_string(),
                        operation: "Update".into(),
                        api_version: rt.api_version(),
                        time: ts.clone(),
                        subresource: subname.to_string(),
                        fields: changed,
                    }),
                }
                list
            }
        };
        let present = fields_of(&strip_tracked(&new), shape);
        let managers: Vec<Manager> = managers
            .into_iter()
            .map(|mut m| {
                m.fields = m.fields.intersection(&present);
                m
            })
            .collect();
        write_managers(&mut new, managers, &old_managers);
        // A write that changes nothing is not a write: same resourceVersion, no event.
        if let Some(o) = &old {
            let mut o2 = o.clone();
            meta_mut(&mut o2).remove("resourceVersion");
            meta_mut(&mut new).remove("resourceVersion");
            if o2 == new {
                return Ok(WriteResult {
                    object: o.clone(),
                    created: false,
                    warnings,
                });
            }
        }
        let created = old.is_none();
        if opts.dry_run {
            meta_mut(&mut new).insert(
                "resourceVersion".into(),
                json!(
                    meta_str(old.as_ref().unwrap_or(&Value::Null), "resourceVersion")
                        .unwrap_or_default()
                ),
            );
            if created {
                meta_mut(&mut new).remove("resourceVersion");
            }
            return Ok(WriteResult {
                object: new,
                created,
                warnings,
            });
        }
        let rv = inner.next_rv();
        meta_mut(&mut new).insert("resourceVersion".into(), json!(rv.to_string()));
        let stored = to_storage(rt, new.clone());
        inner.put(&rt.storage, ns, name, stored, rv);
        if let Some(types) = crd_types {
            self.register_crd(inner, rt, &new, types);
        }
        // The last finalizer removed from a deleting object completes the deletion.
        if meta(&new).get("deletionTimestamp").is_some() && finalizers(&new).is_empty() {
            self.remove_now(inner, rt, ns, name);
        }
        Ok(WriteResult {
            object: new,
            created,
            warnings,
        })
    }

    fn register_crd(
        &self,
        inner: &mut Inner,
        _rt: &ResourceType,
        crd: &Value,
        types: Vec<crate::registry::ResourceType>,
    ) {
        let mut reg = (*self.registry()).clone();
        let group = crd
            .get("spec")
            .and_then(|s| s.get("group"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let plural = crd
            .get("spec")
            .and_then(|s| s.get("names"))
            .and_then(|n| n.get("plural"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        reg.remove_storage(&GroupResource::new(group, plural));
        for t in types {
            reg.insert(t);
        }
        let _ = inner;
        *self.registry.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(reg);
    }

    /// Deletes an object: finalizers and propagation policy decide whether it goes now.
    pub fn delete(
        &self,
        rt: &Arc<ResourceType>,
        ns: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<DeleteResult, ApiError> {
        let mut inner = self.store.lock();
        self.delete_locked(&mut inner, rt, ns, name, opts)
    }

    fn delete_locked(
        &self,
        inner: &mut Inner,
        rt: &Arc<ResourceType>,
        ns: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<DeleteResult, ApiError> {
        let old = inner
            .get(&rt.storage, ns, name)
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.resource, name))?;
        if let Some(uid) = &opts.uid
            && Some(uid.as_str()) != meta_str(&old, "uid")
        {
            return Err(ApiError::conflict(
                &rt.group,
                &rt.resource,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    meta_str(&old, "uid").unwrap_or_default()
                ),
            ));
        }
        if let Some(rv) = &opts.resource_version
            && Some(rv.as_str()) != meta_str(&old, "resourceVersion")
        {
            return Err(ApiError::conflict(
                &rt.group,
                &rt.resource,
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    meta_str(&old, "resourceVersion").unwrap_or_default()
                ),
            ));
        }
        // batch/v1 Jobs orphan their pods unless told otherwise, for backward compatibility,
        // as Kubernetes' job strategy does (every other type deletes dependents).
        let default_policy = if rt.group == "batch" && rt.version == "v1" && rt.resource == "jobs" {
            "Orphan"
        } else {
            "Background"
        };
        let policy = opts.propagation.as_deref().unwrap_or(default_policy);
        if !matches!(policy, "Background" | "Foreground" | "Orphan") {
            return Err(ApiError::invalid(
                "meta.k8s.io",
                "DeleteOptions",
                "",
                vec![Cause::not_supported(
                    "propagationPolicy",
                    &json!(policy),
                    &[json!("Foreground"), json!("Background"), json!("Orphan")],
                )],
            ));
        }
        let mut fins = finalizers(&old);
        let gc = self.opts.garbage_collection;
        let is_ns = rt.group.is_empty() && rt.resource == "namespaces";
        // Kubernetes adds these finalizers whatever the dependents; the garbage collector
        // removes them once it has dealt with the dependents (at once when there are none).
        let extra = match policy {
            "Foreground" if gc => Some("foregroundDeletion"),
            "Orphan" if gc => Some("orphan"),
            _ => None,
        };
        if let Some(f) = extra
            && !fins.iter().any(|x| x == f)
        {
            fins.push(f.to_string());
        }
        let ns_finalizing = is_ns
            && old
                .get("spec")
                .and_then(|s| s.get("finalizers"))
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty());
        let out_v = to_version(rt, &old);
        if fins.is_empty() && !ns_finalizing {
            if opts.dry_run {
                return Ok(DeleteResult::Deleted(deleted_answer(rt, &out_v)));
            }
            self.remove_now(inner, rt, ns, name);
            return Ok(DeleteResult::Deleted(deleted_answer(rt, &out_v)));
        }
        let mut new = (*old).clone();
        let already = meta(&new).get("deletionTimestamp").is_some();
        {
            let m = meta_mut(&mut new);
            m.insert("finalizers".into(), json!(fins));
            if !already {
                m.insert("deletionTimestamp".into(), json!(now()));
                m.insert("deletionGracePeriodSeconds".into(), json!(0));
            }
        }
        if !already && rt.generation {
            let g = meta(&new)
                .get("generation")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            meta_mut(&mut new).insert("generation".into(), json!(g + 1));
        }
        if is_ns {
            if !new["status"].is_object() {
                new["status"] = json!({});
            }
            new["status"]["phase"] = json!("Terminating");
        }
        if meta_mut(&mut new)
            .get("finalizers")
            .and_then(Value::as_array)
            .is_some_and(Vec::is_empty)
        {
            meta_mut(&mut new).remove("finalizers");
        }
        if opts.dry_run {
            return Ok(DeleteResult::Pending(to_version(rt, &new)));
        }
        if new != *old {
            let rv = inner.next_rv();
            meta_mut(&mut new).insert("resourceVersion".into(), json!(rv.to_string()));
            inner.put(&rt.storage, ns, name, new.clone(), rv);
        }
        // Garbage collection (orphaning, foreground deletion, emptying a namespace) follows
        // asynchronously, as in Kubernetes: the garbage collector controller reacts to this
        // change.
        let current = inner.get(&rt.storage, ns, name);
        Ok(match current {
            Some(c) => DeleteResult::Pending(to_version(rt, &c)),
            None => DeleteResult::Deleted(deleted_answer(rt, &out_v)),
        })
    }

    /// Removes an object now, and a CRD's objects with it; garbage collection of dependents
    /// follows asynchronously (the garbage collector controller sees the deletion).
    fn remove_now(&self, inner: &mut Inner, rt: &ResourceType, ns: &str, name: &str) {
        let Some(old) = inner.get(&rt.storage, ns, name) else {
            return;
        };
        let rv = inner.next_rv();
        let mut last = (*old).clone();
        meta_mut(&mut last).insert("resourceVersion".into(), json!(rv.to_string()));
        inner.remove(&rt.storage, ns, name, last, rv);
        if rt.group == "apiextensions.k8s.io" && rt.resource == "customresourcedefinitions" {
            self.unregister_crd(inner, &old);
        }
    }

    fn unregister_crd(&self, inner: &mut Inner, crd: &Value) {
        let group = crd
            .get("spec")
            .and_then(|s| s.get("group"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let plural = crd
            .get("spec")
            .and_then(|s| s.get("names"))
            .and_then(|n| n.get("plural"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let gr = GroupResource::new(group, plural);
        for obj in inner.list_current(&gr, None) {
            let rv = inner.next_rv();
            let mut last = (*obj).clone();
            meta_mut(&mut last).insert("resourceVersion".into(), json!(rv.to_string()));
            let ns = meta_str(&obj, "namespace").unwrap_or_default().to_string();
            inner.remove(&gr, &ns, &name_of(&obj), last, rv);
        }
        let mut reg = (*self.registry()).clone();
        reg.remove_storage(&gr);
        *self.registry.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(reg);
    }

    /// Deletes every object a list selects (deletecollection).
    pub fn delete_collection(
        &self,
        rt: &Arc<ResourceType>,
        ns: Option<&str>,
        lo: &ListOptions,
        opts: &DeleteOptions,
    ) -> Result<Value, ApiError> {
        let list = self.list(
            rt,
            ns,
            &ListOptions {
                limit: None,
                continue_token: None,
                ..lo.clone()
            },
        )?;
        let mut inner = self.store.lock();
        let mut items = Vec::new();
        for obj in list["items"].as_array().cloned().unwrap_or_default() {
            let ons = meta_str(&obj, "namespace").unwrap_or_default().to_string();
            match self.delete_locked(&mut inner, rt, &ons, &name_of(&obj), opts) {
                Ok(DeleteResult::Pending(o)) => items.push(o),
                Ok(DeleteResult::Deleted(_)) => items.push(obj),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(json!({
            "apiVersion": rt.api_version(),
            "kind": rt.list_kind,
            "metadata": {"resourceVersion": inner.rv().to_string()},
            "items": items,
        }))
    }
}

/// Validates an object against its schema, except the metadata, apiVersion and kind that
/// Kubernetes validates separately.
fn validate_root(schema: &crate::schema::Schema, obj: &Value, errs: &mut Vec<Cause>) {
    const SKIP: &[&str] = &["metadata", "apiVersion", "kind"];
    for r in &schema.required {
        if !SKIP.contains(&r.as_str()) && obj.get(r).is_none() {
            errs.push(Cause::required(r.clone(), ""));
        }
    }
    if let Value::Object(m) = obj {
        for (k, v) in m {
            if SKIP.contains(&k.as_str()) {
                continue;
            }
            if let Some(s) = schema.field(k) {
                s.validate(v, k, errs);
            }
        }
    }
}

/// Whether the value a validation error points at is the same in `old` and `new`
/// (for a missing required field: whether its parent is the same).
fn unchanged_at(old: &Value, new: &Value, field: &str, reason: &str) -> bool {
    let mut path = field_path(field);
    if reason == "FieldValueRequired" {
        path.pop();
    }
    let resolve = |mut v: &Value| -> Option<Value> {
        for step in &path {
            v = match step {
                Step::Key(k) => v.get(k)?,
                Step::Index(i) => v.get(*i)?,
            };
        }
        Some(v.clone())
    };
    let (before, after) = (resolve(old), resolve(new));
    before.is_some() && before == after
}

enum Step {
    Key(String),
    Index(usize),
}

/// `spec.ports[0].name` as steps (keys containing dots are not told apart; such a
/// field simply does not ratchet).
fn field_path(field: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    for part in field.split('.').filter(|p| !p.is_empty()) {
        let mut rest = part;
        if let Some(open) = rest.find('[') {
            steps.push(Step::Key(rest[..open].to_string()));
            rest = &rest[open..];
            while let Some(close) = rest.find(']') {
                match rest[1..close].parse() {
                    Ok(i) => steps.push(Step::Index(i)),
                    Err(_) => steps.push(Step::Key(rest[1..close].to_string())),
                }
                rest = &rest[close + 1..];
                if !rest.starts_with('[') {
                    break;
                }
            }
        } else {
            steps.push(Step::Key(rest.to_string()));
        }
    }
    steps
}

fn spec_of(v: &Value, status_split: bool) -> Value {
    let mut v = v.clone();
    if let Value::Object(m) = &mut v {
        m.remove("metadata");
        if status_split {
            m.remove("status");
        }
    }
    v
}

fn unknown_fields(before: &Value, after: &Value, path: &str) -> Vec<String> {
    let mut out = Vec::new();
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            for (k, bv) in b {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match a.get(k) {
                    None if !bv.is_null() => out.push(p),
                    None => {}
                    Some(av) => out.extend(unknown_fields(bv, av, &p)),
                }
            }
        }
        (Value::Array(b), Value::Array(a)) => {
            for (i, (bv, av)) in b.iter().zip(a.iter()).enumerate() {
                out.extend(unknown_fields(bv, av, &format!("{path}[{i}]")));
            }
        }
        _ => {}
    }
    out
}

/// What a completed delete answers: the object for the types whose Kubernetes registry sets
/// `ReturnDeletedObject` (pods, service accounts), a success Status for the rest.
fn deleted_answer(rt: &ResourceType, obj: &Value) -> Value {
    if rt.group.is_empty() && matches!(rt.resource.as_str(), "pods" | "serviceaccounts") {
        return obj.clone();
    }
    success_status(rt, obj)
}

fn success_status(rt: &ResourceType, obj: &Value) -> Value {
    let mut details = json!({"name": name_of(obj), "kind": rt.resource});
    if !rt.group.is_empty() {
        details["group"] = json!(rt.group);
    }
    if let Some(uid) = meta_str(obj, "uid") {
        details["uid"] = json!(uid);
    }
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details})
}

fn scale_of(rt: &ResourceType, obj: &Value) -> Result<Value, ApiError> {
    let Some(scale) = &rt.scale else {
        return Err(ApiError::no_route());
    };
    let m = meta(obj);
    let mut status =
        json!({"replicas": get_path(obj, &scale.status_replicas).cloned().unwrap_or(json!(0))});
    if let Some(p) = &scale.label_selector
        && let Some(sel) = get_path(obj, p)
    {
        let s = match sel {
            Value::String(s) => s.clone(),
            other => LabelSelector::from_object(other)
                .map(|s| s.to_string_form())
                .unwrap_or_default(),
        };
        status["selector"] = json!(s);
    }
    let mut sm = Map::new();
    for k in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = m.get(k) {
            sm.insert(k.into(), v.clone());
        }
    }
    Ok(json!({
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": sm,
        "spec": {"replicas": get_path(obj, &scale.spec_replicas).cloned().unwrap_or(json!(0))},
        "status": status,
    }))
}

fn parse_rv(s: Option<&str>) -> Result<Option<u64>, ApiError> {
    match s {
        None | Some("") => Ok(None),
        Some(s) => s
            .parse()
            .map(Some)
            .map_err(|_| ApiError::bad_request(format!("invalid resource version \"{s}\""))),
    }
}

fn encode_continue(rv: u64, key: &str) -> String {
    let raw = format!("{rv}\u{0}{key}");
    raw.bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_continue(t: &str) -> Result<(u64, String), ApiError> {
    let bad = || ApiError::bad_request(format!("continue key is not valid: {t}"));
    if !t.len().is_multiple_of(2) || t.len() > 4096 {
        return Err(bad());
    }
    let bytes: Result<Vec<u8>, _> = (0..t.len())
        .step_by(2)
        .map(|i| {
            t.get(i..i + 2)
                .ok_or(())
                .and_then(|h| u8::from_str_radix(h, 16).map_err(|_| ()))
        })
        .collect();
    let s = String::from_utf8(bytes.map_err(|_| bad())?).map_err(|_| bad())?;
    let (rv, key) = s.split_once('\u{0}').ok_or_else(bad)?;
    Ok((rv.parse().map_err(|_| bad())?, key.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip_and_reject_garbage() {
        let t = encode_continue(42, "ns/a");
        assert_eq!(decode_continue(&t).unwrap(), (42, "ns/a".to_string()));
        for bad in ["zz", "abc", "00", "", "ffff"] {
            assert!(decode_continue(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn uids_look_like_uuids() {
        let u = new_uid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_ne!(u, new_uid());
    }

    #[test]
    fn timestamps_are_rfc3339_seconds() {
        let t = now();
        assert!(t.ends_with('Z') && t.len() == 20, "{t}");
    }
}
