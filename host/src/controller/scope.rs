//! Which namespaces the operator watches, and watching several as one:
//! one watch per namespace, merged into one stream whose cache a single
//! namespace's relist cannot wipe.
//!
//! A watch's (re)list ends with `InitDone`, and a cache then replaces all it
//! holds with what the list returned (kube's `Store` swaps its buffer in;
//! [`super::children::KindIndex`] does the same). With one watch per
//! namespace feeding one cache, the first namespace to relist would drop
//! every other namespace's objects. So, for several namespaces, each
//! namespace's lists are turned into what they mean for that namespace
//! alone: every listed object is applied, and the objects of that namespace
//! the list did not return are deleted. The cache sees one `Init` …
//! `InitDone` (its readiness) once every namespace has listed.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::Arc;

use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{Lookup, store::Writer};
use kube::runtime::watcher::{self, Event};
use kube::{Resource, ResourceExt};

/// The namespaces to watch: all of them when empty.
pub type Namespaces = [String];

/// One `Api` per watched namespace, or one over all namespaces, each with
/// the namespace it covers (empty for all).
pub fn apis<K>(client: &kube::Client, namespaces: &Namespaces) -> Vec<(String, Api<K>)>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    if namespaces.is_empty() {
        return vec![(String::new(), Api::all(client.clone()))];
    }
    namespaces
        .iter()
        .map(|namespace| {
            (
                namespace.clone(),
                Api::namespaced(client.clone(), namespace),
            )
        })
        .collect()
}

/// [`apis`] of an untyped `resource`, read as `K` (a `DynamicObject`, or
/// [`super::wire::WireChild`] for a watch).
pub fn dynamic_apis<K>(
    client: &kube::Client,
    namespaces: &Namespaces,
    resource: &kube::discovery::ApiResource,
) -> Vec<(String, Api<K>)>
where
    K: Resource<
            DynamicType = kube::discovery::ApiResource,
            Scope = kube::core::DynamicResourceScope,
        >,
{
    if namespaces.is_empty() {
        return vec![(String::new(), Api::all_with(client.clone(), resource))];
    }
    namespaces
        .iter()
        .map(|namespace| {
            (
                namespace.clone(),
                Api::namespaced_with(client.clone(), namespace, resource),
            )
        })
        .collect()
}

/// The watched namespaces, for logs: `all namespaces` or `a, b`.
pub fn describe(namespaces: &Namespaces) -> String {
    if namespaces.is_empty() {
        "all namespaces".to_owned()
    } else {
        namespaces.join(", ")
    }
}

/// A watch of each of `apis` (as from [`apis`] or [`dynamic_apis`]), each
/// with its own backoff and its errors [`logged`] as `kind`'s.
pub fn watches<K>(
    apis: Vec<(String, Api<K>)>,
    config: &watcher::Config,
    kind: &str,
) -> Vec<(
    String,
    impl Stream<Item = Result<Event<K>, watcher::Error>> + Send + use<K>,
)>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    apis.into_iter()
        .map(|(namespace, api)| {
            let events = watcher::watcher(api, config.clone()).default_backoff();
            let events = logged(events, kind.to_owned(), namespace.clone());
            (namespace, events)
        })
        .collect()
}

/// `events` of the watch of `kind` in `namespace` (empty: all), with its
/// errors logged here and kept from the controller. The watch has its own
/// backoff before it tries again; an error passed on would also pause every
/// trigger of the controller (kube's trigger backoff, doubling with each
/// error of any watch), so that after an API server's compaction, when every
/// watch gets a 410 once, no reconcile would run for minutes.
fn logged<K, S>(
    events: S,
    kind: String,
    namespace: String,
) -> impl Stream<Item = Result<Event<K>, watcher::Error>> + Send + 'static
where
    K: Send + 'static,
    S: Stream<Item = Result<Event<K>, watcher::Error>> + Send + 'static,
{
    events.filter_map(move |event| {
        let passed = match event {
            Ok(event) => Some(Ok(event)),
            Err(error) => {
                let namespace = if namespace.is_empty() { "(all)" } else { namespace.as_str() };
                if is_expired(&error) {
                    // The API server forgot the version: the watch lists again.
                    tracing::info!(kind = %kind, namespace, error = %error, "watch expired; listing again");
                } else {
                    tracing::warn!(kind = %kind, namespace, error = %error, "watch failed; retrying with backoff");
                }
                None
            }
        };
        std::future::ready(passed)
    })
}

/// Whether a watch failed because its resourceVersion is too old (410 Gone).
fn is_expired(error: &watcher::Error) -> bool {
    match error {
        watcher::Error::WatchError(status) => status.code == 410,
        watcher::Error::WatchFailed(kube::Error::Api(status))
        | watcher::Error::InitialListFailed(kube::Error::Api(status))
        | watcher::Error::WatchStartFailed(kube::Error::Api(status)) => status.code == 410,
        _ => false,
    }
}

/// A cache kept in step with a watch, which can say what it holds.
pub trait Cache<K>: Send + 'static {
    /// Follow one watch event.
    fn apply(&mut self, event: &Event<K>);
    /// The objects held in `namespace`, or all of them.
    fn held(&self, namespace: Option<&str>) -> Vec<Arc<K>>;
}

impl<K> Cache<K> for Writer<K>
where
    K: Lookup + Resource + Clone + Send + Sync + 'static,
    <K as Lookup>::DynamicType: Eq + Hash + Clone + Send + Sync,
{
    fn apply(&mut self, event: &Event<K>) {
        self.apply_watcher_event(event);
    }

    fn held(&self, namespace: Option<&str>) -> Vec<Arc<K>> {
        let all = self.as_reader().state();
        match namespace {
            None => all,
            Some(namespace) => all
                .into_iter()
                .filter(|object| object.meta().namespace.as_deref() == Some(namespace))
                .collect(),
        }
    }
}

/// The watch events of each namespace (`(namespace, events)`, as from
/// [`apis`]) as one stream, keeping `cache` in step before an event is
/// passed on (as kube's `reflect` does, so that a reconcile reads what
/// triggered it). One stream is passed through as it is.
pub fn reflect<K, C, S>(
    streams: Vec<(String, S)>,
    mut cache: C,
) -> BoxStream<'static, Result<Event<K>, watcher::Error>>
where
    K: Resource + Clone + Send + 'static,
    C: Cache<K>,
    S: Stream<Item = Result<Event<K>, watcher::Error>> + Send + 'static,
{
    if streams.len() == 1 {
        let Some((_, stream)) = streams.into_iter().next() else {
            return futures::stream::empty().boxed();
        };
        return stream
            .map(move |event| {
                if let Ok(event) = &event {
                    cache.apply(event);
                }
                event
            })
            .boxed();
    }
    let merge = Merge {
        partitions: streams.len(),
        cache,
        relisting: HashMap::new(),
        listed: HashSet::new(),
        ready: false,
        out: VecDeque::new(),
    };
    let tagged =
        futures::stream::select_all(streams.into_iter().map(|(namespace, stream)| {
            stream.map(move |event| (namespace.clone(), event)).boxed()
        }));
    futures::stream::unfold((tagged, merge), |(mut tagged, mut merge)| async move {
        loop {
            if let Some(item) = merge.out.pop_front() {
                return Some((item, (tagged, merge)));
            }
            let (namespace, event) = tagged.next().await?;
            merge.follow(namespace, event);
        }
    })
    .boxed()
}

/// What merging the namespaces' watches keeps.
struct Merge<K, C> {
    /// How many namespaces are watched.
    partitions: usize,
    cache: C,
    /// Per namespace in a (re)list: the names it has returned so far.
    relisting: HashMap<String, HashSet<String>>,
    /// The namespaces that have had a first list.
    listed: HashSet<String>,
    /// Whether the cache has been told that every namespace has listed.
    ready: bool,
    /// Events to pass on.
    out: VecDeque<Result<Event<K>, watcher::Error>>,
}

impl<K, C> Merge<K, C>
where
    K: Resource + Clone,
    C: Cache<K>,
{
    fn follow(&mut self, namespace: String, event: Result<Event<K>, watcher::Error>) {
        let event = match event {
            Ok(event) => event,
            Err(error) => {
                self.out.push_back(Err(error));
                return;
            }
        };
        match event {
            Event::Init => {
                self.relisting.insert(namespace, HashSet::new());
            }
            Event::InitApply(object) => {
                self.relisting
                    .entry(namespace)
                    .or_default()
                    .insert(object.name_any());
                self.pass(Event::Apply(object));
            }
            Event::InitDone => {
                let returned = self.relisting.remove(&namespace).unwrap_or_default();
                for gone in self.cache.held(Some(&namespace)) {
                    if !returned.contains(&gone.name_any()) {
                        self.pass(Event::Delete((*gone).clone()));
                    }
                }
                self.listed.insert(namespace);
                if !self.ready && self.listed.len() >= self.partitions {
                    self.ready = true;
                    // The cache's own list: what it already holds, so that
                    // it marks itself ready without losing anything.
                    let held = self.cache.held(None);
                    self.cache.apply(&Event::Init);
                    for object in held {
                        self.cache.apply(&Event::InitApply((*object).clone()));
                    }
                    self.cache.apply(&Event::InitDone);
                    self.out.push_back(Ok(Event::InitDone));
                }
            }
            event @ (Event::Apply(_) | Event::Delete(_)) => self.pass(event),
        }
    }

    fn pass(&mut self, event: Event<K>) {
        self.cache.apply(&event);
        self.out.push_back(Ok(event));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;

    fn config_map(namespace: &str, name: &str, value: &str) -> ConfigMap {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": namespace},
            "data": {"v": value},
        }))
        .expect("a ConfigMap")
    }

    type Events = Vec<Result<Event<ConfigMap>, watcher::Error>>;

    fn names(store: &kube::runtime::reflector::Store<ConfigMap>) -> Vec<String> {
        let mut names: Vec<String> = store
            .state()
            .iter()
            .map(|o| {
                format!(
                    "{}/{}",
                    o.metadata.namespace.clone().unwrap_or_default(),
                    o.name_any()
                )
            })
            .collect();
        names.sort();
        names
    }

    type Sender<K> = tokio::sync::mpsc::UnboundedSender<Result<Event<K>, watcher::Error>>;
    type Merged<K> = BoxStream<'static, Result<Event<K>, watcher::Error>>;

    /// Namespaces `a` and `b`, each a channel of watch events, merged into `cache`.
    fn two_namespaces<K, C>(cache: C) -> (Sender<K>, Sender<K>, Merged<K>)
    where
        K: Resource + Clone + Send + 'static,
        C: Cache<K>,
    {
        let (a_tx, a_rx) = tokio::sync::mpsc::unbounded_channel();
        let (b_tx, b_rx) = tokio::sync::mpsc::unbounded_channel();
        let stream = |rx| crate::controller::receiver_stream(rx);
        let merged = reflect(
            vec![
                ("a".to_owned(), stream(a_rx)),
                ("b".to_owned(), stream(b_rx)),
            ],
            cache,
        );
        (a_tx, b_tx, merged)
    }

    /// Feed the events of two namespaces through one channel each, in the
    /// order given, and collect what is passed on after each step.
    async fn run(steps: Vec<(&str, Event<ConfigMap>)>) -> (Vec<String>, Vec<String>, bool) {
        let writer = Writer::<ConfigMap>::default();
        let store = writer.as_reader();
        let (a_tx, b_tx, mut merged) = two_namespaces(writer);
        let mut passed = Vec::new();
        for (namespace, event) in steps {
            let tx = if namespace == "a" { &a_tx } else { &b_tx };
            let _ = tx.send(Ok(event));
            // Each event is followed before the next is sent.
            let mut round: Events = Vec::new();
            while let Ok(Some(item)) =
                tokio::time::timeout(std::time::Duration::from_millis(20), merged.next()).await
            {
                round.push(item);
            }
            for item in round {
                passed.push(match item.expect("no error") {
                    Event::Apply(o) => format!("apply {}", o.name_any()),
                    Event::Delete(o) => format!("delete {}", o.name_any()),
                    Event::Init => "init".into(),
                    Event::InitApply(o) => format!("init-apply {}", o.name_any()),
                    Event::InitDone => "init-done".into(),
                });
            }
        }
        let ready = store.wait_until_ready().now_or_never().is_some();
        (names(&store), passed, ready)
    }

    use futures::FutureExt;

    #[tokio::test]
    async fn one_namespace_relisting_keeps_the_others_objects() {
        let (held, passed, ready) = run(vec![
            ("a", Event::Init),
            ("a", Event::InitApply(config_map("a", "one", "1"))),
            ("a", Event::InitDone),
            ("b", Event::Init),
            ("b", Event::InitApply(config_map("b", "two", "1"))),
            ("b", Event::InitDone),
            ("b", Event::Apply(config_map("b", "three", "1"))),
            // a relists: `one` is gone, `four` is new; b keeps its objects.
            ("a", Event::Init),
            ("a", Event::InitApply(config_map("a", "four", "1"))),
            ("a", Event::InitDone),
        ])
        .await;
        assert_eq!(held, ["a/four", "b/three", "b/two"]);
        assert!(ready);
        assert_eq!(
            passed,
            [
                "apply one",
                "apply two",
                "init-done",
                "apply three",
                "apply four",
                "delete one",
            ]
        );
    }

    #[tokio::test]
    async fn the_cache_is_ready_only_when_every_namespace_has_listed() {
        let (held, passed, ready) = run(vec![
            ("a", Event::Init),
            ("a", Event::InitApply(config_map("a", "one", "1"))),
            ("a", Event::InitDone),
            ("a", Event::Apply(config_map("a", "one", "2"))),
            ("a", Event::Delete(config_map("a", "one", "2"))),
            ("a", Event::Apply(config_map("a", "five", "1"))),
        ])
        .await;
        // Objects are cached (and passed on) before b lists, and stay when it does.
        assert_eq!(held, ["a/five"]);
        assert!(!ready, "b has not listed");
        assert_eq!(
            passed,
            ["apply one", "apply one", "delete one", "apply five"]
        );
    }

    #[tokio::test]
    async fn one_watch_is_passed_through_as_it_is() {
        let writer = Writer::<ConfigMap>::default();
        let store = writer.as_reader();
        let events = futures::stream::iter(vec![
            Ok(Event::Init),
            Ok(Event::InitApply(config_map("a", "one", "1"))),
            Ok(Event::InitDone),
        ]);
        let passed: Events = reflect(vec![(String::new(), events)], writer)
            .collect()
            .await;
        assert_eq!(passed.len(), 3);
        assert!(matches!(passed[1], Ok(Event::InitApply(_))));
        assert_eq!(names(&store), ["a/one"]);
    }

    #[tokio::test]
    async fn the_child_index_keeps_every_namespace_and_lists_once_all_have() {
        let kinds = crate::kinds::ChildKinds::default();
        let resource = kinds.get("v1", "ConfigMap").expect("child kind").resource();
        let (stores, mut writers) = crate::controller::children::ChildStores::new(vec![resource]);
        let writer = writers.pop().expect("one writer");
        let object = |namespace: &str, name: &str| -> crate::controller::wire::WireChild {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": namespace},
            }))
            .expect("an object")
        };
        let (a_tx, b_tx, mut merged) = two_namespaces(writer);
        let drain = |merged: &mut BoxStream<'static, _>| {
            while merged.next().now_or_never().flatten().is_some() {}
        };
        for event in [
            Event::Init,
            Event::InitApply(object("a", "one")),
            Event::InitDone,
        ] {
            let _ = a_tx.send(Ok(event));
        }
        drain(&mut merged);
        assert!(!stores.listed());
        assert_eq!(stores.in_namespace("a").len(), 1);
        for event in [
            Event::Init,
            Event::InitApply(object("b", "two")),
            Event::InitDone,
        ] {
            let _ = b_tx.send(Ok(event));
        }
        drain(&mut merged);
        assert!(stores.listed());
        // b relists empty: a's object stays.
        for event in [Event::Init, Event::InitDone] {
            let _ = b_tx.send(Ok(event));
        }
        drain(&mut merged);
        assert_eq!(stores.in_namespace("a").len(), 1);
        assert!(stores.in_namespace("b").is_empty());
    }
}
