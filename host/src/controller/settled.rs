//! Reconciles that could change nothing, told apart before they run.
//!
//! Every write of a reconcile comes back as a watch event: the applied
//! children, the status. Each event queues the app again, and a reconcile
//! on it would call the plugin, decide, and find nothing to do — most of
//! the operator's CPU at scale went there. So a reconcile remembers what it
//! saw and wrote, by resourceVersion, once its applies are done (before its
//! status write, and forgotten if that fails); a watch event that only
//! echoes it queues nothing ([`Settled::knows_child`], [`Settled::knows_app`]),
//! and the next reconcile first compares the caches with it. The child
//! events that come while a reconcile runs, before it has recorded, are
//! held back and looked at when it ends ([`Settled::echo`]). When every
//! child the cache holds is at a version the last reconcile saw or wrote
//! itself, the app's generation, labels, annotations and finalizers are
//! those it reconciled, its status is the one it concluded, the plugin and
//! the migrations gating it are the same, the new one is skipped: it would
//! get the same inputs. Anything else — a version no reconcile saw, a child
//! gone or new, a spec edit, a status edited by someone else — and the
//! reconcile runs in full.
//!
//! A version written by the operator is trusted only when the write could
//! not have carried someone else's change along: an apply creates the
//! object, or its answer keeps the status the reconcile saw (a status
//! controller's update that slipped in before the apply would otherwise be
//! taken for the operator's own). A full reconcile still runs at least
//! once per resync period and when the plugin asked to be called again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use kube::core::DynamicObject;
use portfolio_api::{PortfolioApp, PortfolioAppStatus};

use super::act::Applied;
use super::children::{Observed, Seen};
use super::gates::GateInfo;
use crate::plugin::{ObjectKey, Plugin};

/// What the last reconcile of each app saw and wrote, by app uid. `P` is
/// the plugin it called (generic for the tests).
pub struct Settled<P = Plugin> {
    memo: Mutex<HashMap<String, Entry<P>>>,
    /// The apps being reconciled now, by uid, each with the versions of its
    /// children whose watch events were held back meanwhile (see
    /// [`Settled::echo`]). Its own lock: never held together with `memo`.
    running: Mutex<HashMap<String, Vec<(ObjectKey, String)>>>,
}

impl<P> Default for Settled<P> {
    fn default() -> Self {
        Settled {
            memo: Mutex::new(HashMap::new()),
            running: Mutex::new(HashMap::new()),
        }
    }
}

/// One app's last reconcile that ended well. Small: one is kept per app,
/// so what would be copies (labels, annotations, the status) are kept as
/// fingerprints.
struct Entry<P> {
    /// Generation, labels, annotations and finalizers it reconciled.
    meta: MetaFacts,
    /// The status it concluded (written, or already there): its fingerprint.
    status: u64,
    /// The plugin it called: this very registration, not only its digest
    /// (new settings or limits for the same component are a new one). Weak,
    /// so that an old version is not kept alive; and held, so that its
    /// address is not reused by a new one.
    plugin: Weak<P>,
    /// The migrations gating the app, and whether their watch had listed.
    gates: (Vec<GateInfo>, bool),
    /// Each child, with the versions that are known to it (a few: a list).
    children: Vec<(ObjectKey, Versions)>,
    /// After this, the next reconcile runs in full whatever the caches say.
    until: Instant,
}

/// The parts of an app's metadata a reconcile reads: its generation, and a
/// fingerprint of its labels, annotations and finalizers.
#[derive(PartialEq)]
struct MetaFacts {
    generation: Option<i64>,
    rest: u64,
}

impl MetaFacts {
    fn of(app: &PortfolioApp) -> Self {
        let meta = &app.metadata;
        MetaFacts {
            generation: meta.generation,
            rest: fingerprint(&(&meta.labels, &meta.annotations, &meta.finalizers)),
        }
    }
}

/// A fingerprint of what `value` serialises to (64 bits: two different
/// values that share one are as likely as guessing a random number of 19
/// digits, and then a reconcile is skipped until the next resync).
fn fingerprint<T: serde::Serialize + ?Sized>(value: &T) -> u64 {
    use std::hash::Hasher;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    crate::plugin::feed_json(value, |bytes| hasher.write(bytes));
    hasher.finish()
}

/// The resourceVersions of one child that a reconcile accounts for: the
/// one it saw (`None`: there was none) and the one it left (`None`: it
/// deleted the child).
#[derive(Debug)]
struct Versions {
    seen: Option<String>,
    left: Option<String>,
}

/// What a finished reconcile saw and did, to remember.
pub struct Record<'a, P = Plugin> {
    /// The app, as the reconcile read it.
    pub app: &'a PortfolioApp,
    /// The status it concluded.
    pub status: &'a PortfolioAppStatus,
    /// The plugin it called.
    pub plugin: &'a Arc<P>,
    /// The migrations gating the app, and whether their watch had listed.
    pub gates: (&'a [GateInfo], bool),
    /// The children the caches held.
    pub observed: &'a [Observed],
    /// The children it applied, each as the API server answered.
    pub applied: &'a [(ObjectKey, Applied)],
    /// The children it deleted.
    pub pruned: &'a [ObjectKey],
    /// When it wants to run in full again at the latest.
    pub again_in: Duration,
}

/// A child as [`Settled::knows_child`] looks it up, borrowed from a watch
/// event.
#[derive(Clone, Copy, Debug)]
pub struct ChildKey<'a> {
    /// Its apiVersion.
    pub api_version: &'a str,
    /// Its kind.
    pub kind: &'a str,
    /// Its name.
    pub name: &'a str,
}

/// What a reconcile about to run would see.
pub struct Probe<'a, P = Plugin> {
    /// The app, as the cache holds it.
    pub app: &'a PortfolioApp,
    /// Its status, as the cache holds it or as last written.
    pub status: &'a PortfolioAppStatus,
    /// The plugin it would call.
    pub plugin: &'a Arc<P>,
    /// The migrations gating the app, and whether their watch has listed.
    pub gates: (&'a [GateInfo], bool),
    /// The children the caches hold.
    pub observed: &'a [Seen],
}

fn version(object: &DynamicObject) -> Option<String> {
    object.metadata.resource_version.clone()
}

impl<P> Settled<P> {
    /// Remember a reconcile of the app that ended well.
    pub fn record(&self, record: Record<'_, P>) {
        let Some(uid) = record.app.metadata.uid.clone() else {
            return;
        };
        let mut children: Vec<(ObjectKey, Versions)> = record
            .observed
            .iter()
            .map(|child| {
                let seen = version(&child.object);
                (
                    child.key(),
                    Versions {
                        left: seen.clone(),
                        seen,
                    },
                )
            })
            .collect();
        for (key, stored) in record.applied {
            let before = record
                .observed
                .iter()
                .find(|child| &child.key() == key)
                .map(|child| &child.object);
            // The answer to an apply is the object after it, with whatever
            // others changed since it was seen: trusted only when that
            // cannot be a status change the reconcile never looked at.
            let trusted = match before {
                None => true,
                Some(before) => before.data.get("status") == stored.status(),
            };
            let at = match children.iter().position(|(k, _)| k == key) {
                Some(at) => at,
                None => {
                    children.push((
                        key.clone(),
                        Versions {
                            seen: None,
                            left: None,
                        },
                    ));
                    children.len() - 1
                }
            };
            let versions = &mut children[at].1;
            versions.left = if trusted {
                stored.resource_version().map(str::to_owned)
            } else {
                versions.seen.clone()
            };
        }
        for key in record.pruned {
            if let Some((_, versions)) = children.iter_mut().find(|(k, _)| k == key) {
                versions.left = None;
            }
        }
        let entry = Entry {
            meta: MetaFacts::of(record.app),
            status: fingerprint(record.status),
            plugin: Arc::downgrade(record.plugin),
            gates: (record.gates.0.to_vec(), record.gates.1),
            children,
            until: Instant::now() + record.again_in,
        };
        self.lock().insert(uid, entry);
    }

    /// Whether a reconcile on what `probe` shows would have the inputs of
    /// the last one, and so could change nothing; if so, how long until it
    /// must run in full anyway.
    pub fn unchanged(&self, probe: &Probe<'_, P>) -> Option<Duration> {
        let uid = probe.app.metadata.uid.as_deref()?;
        let memo = self.lock();
        let entry = memo.get(uid)?;
        let left = entry.until.checked_duration_since(Instant::now());
        let differs = if left.is_none() {
            Some("a full reconcile is due")
        } else if !std::ptr::eq(entry.plugin.as_ptr(), Arc::as_ptr(probe.plugin)) {
            Some("the plugin")
        } else if entry.gates.1 != probe.gates.1 || entry.gates.0 != probe.gates.0 {
            Some("the migrations")
        } else if entry.meta != MetaFacts::of(probe.app) {
            Some("the app's generation, labels, annotations or finalizers")
        } else if entry.status != fingerprint(probe.status) {
            Some("the app's status")
        } else {
            children_differ(&entry.children, probe.observed)
        };
        if let Some(what) = differs {
            tracing::trace!(differs = what, "not the inputs of the last reconcile");
            return None;
        }
        left
    }

    /// Whether the last reconcile of the app with uid `owner` saw or left
    /// its child `key` at `version`. A watch event of the child at that
    /// version is then the echo of what the reconcile knew (its own apply,
    /// most often): a reconcile for it would be skipped as unchanged, so
    /// the event need not queue one.
    pub fn knows_child(&self, owner: &str, key: ChildKey<'_>, version: &str) -> bool {
        let memo = self.lock();
        let Some(entry) = memo.get(owner) else {
            return false;
        };
        entry.children.iter().any(|(known, versions)| {
            known.name == key.name
                && known.kind == key.kind
                && known.api_version == key.api_version
                && (versions.seen.as_deref() == Some(version)
                    || versions.left.as_deref() == Some(version))
        })
    }

    /// Whether a watch event of the child `key` of the app with uid `owner`,
    /// at `version`, need not queue a reconcile now: the last reconcile knew
    /// that version ([`Settled::knows_child`]), or the app is being
    /// reconciled ([`Settled::start`]) and the version is held back, to be
    /// looked at when that reconcile ends ([`Settled::finish`]). The events
    /// of a reconcile's own applies mostly arrive while it still runs,
    /// before it has recorded what it wrote; each would queue a reconcile
    /// that finds nothing changed. Holding them back loses nothing: a
    /// reconcile that is running is not run again before it ends.
    pub fn echo(&self, owner: &str, key: ChildKey<'_>, version: &str) -> bool {
        if self.knows_child(owner, key, version) {
            return true;
        }
        let mut running = self.running();
        let Some(held) = running.get_mut(owner) else {
            return false;
        };
        held.push((
            ObjectKey {
                api_version: key.api_version.to_owned(),
                kind: key.kind.to_owned(),
                name: key.name.to_owned(),
            },
            version.to_owned(),
        ));
        true
    }

    /// A reconcile of the app with uid `uid` starts: until it ends
    /// ([`Settled::finish`]), events of its children are held back rather
    /// than queue it again ([`Settled::echo`]).
    pub fn start(&self, uid: &str) {
        self.running().insert(uid.to_owned(), Vec::new());
    }

    /// The reconcile of the app with uid `uid` ended (well or not, or was
    /// dropped): whether a child event held back meanwhile showed a version
    /// it did not know, in which case the app must be reconciled again.
    pub fn finish(&self, uid: &str) -> bool {
        let Some(held) = self.running().remove(uid) else {
            return false;
        };
        held.iter().any(|(key, version)| {
            let key = ChildKey {
                api_version: &key.api_version,
                kind: &key.kind,
                name: &key.name,
            };
            !self.knows_child(uid, key, version)
        })
    }

    /// Whether `app` is as its last reconcile concluded it: not being
    /// deleted, with the generation, labels, annotations, finalizers and
    /// status that reconcile read and wrote. A watch event of it is then the
    /// echo of that reconcile's status write (or of a change it does not
    /// read): a reconcile for it would be skipped as unchanged, so the event
    /// need not queue one.
    pub fn knows_app(&self, app: &PortfolioApp) -> bool {
        if app.metadata.deletion_timestamp.is_some() || app.spec.paused {
            return false;
        }
        let Some(uid) = app.metadata.uid.as_deref() else {
            return false;
        };
        let meta = MetaFacts::of(app);
        let status = match &app.status {
            Some(status) => fingerprint(status),
            None => fingerprint(&PortfolioAppStatus::default()),
        };
        let memo = self.lock();
        memo.get(uid)
            .is_some_and(|entry| entry.meta == meta && entry.status == status)
    }

    /// Forget the app `uid` (it is gone, or a reconcile of it failed).
    pub fn forget(&self, uid: &str) {
        self.lock().remove(uid);
    }

    /// How many apps are remembered.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no app is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry<P>>> {
        self.memo.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<(ObjectKey, String)>>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What differs between the children the caches hold and those the last
/// reconcile saw or left, if anything.
fn children_differ(known: &[(ObjectKey, Versions)], observed: &[Seen]) -> Option<&'static str> {
    let mut keys = Vec::with_capacity(observed.len());
    for child in observed {
        let Some((_, versions)) = known.iter().find(|(key, _)| *key == child.key) else {
            return Some("a child it did not know");
        };
        let at = &child.version;
        if at.is_none() || (*at != versions.seen && *at != versions.left) {
            return Some("a child's version");
        }
        keys.push(&child.key);
    }
    // A child the reconcile left in place (or created) that the caches do
    // not hold was deleted by someone, or has not been seen yet: either way
    // the next reconcile looks. One it deleted may still be held.
    let missing = known
        .iter()
        .any(|(key, versions)| versions.left.is_some() && !keys.contains(&key));
    missing.then_some("a child not held")
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::discovery::ApiResource;

    /// A plugin, as far as these tests need one.
    type TestPlugin = &'static str;

    static PLUGIN: std::sync::LazyLock<Arc<TestPlugin>> =
        std::sync::LazyLock::new(|| Arc::new("one"));

    fn app() -> PortfolioApp {
        let mut app = PortfolioApp::new("shop", portfolio_api::PortfolioAppSpec::default());
        app.metadata.namespace = Some("demo".into());
        app.metadata.uid = Some("u1".into());
        app.metadata.generation = Some(1);
        app
    }

    fn child(name: &str, version: &str, status: Option<serde_json::Value>) -> DynamicObject {
        let mut object: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "demo", "resourceVersion": version},
        }))
        .expect("an object");
        if let Some(status) = status {
            object.data["status"] = status;
        }
        object
    }

    fn observed(object: DynamicObject) -> Observed {
        Observed {
            resource: ApiResource::erase::<k8s_openapi::api::core::v1::ConfigMap>(&()),
            object: Arc::new(object),
        }
    }

    fn key(name: &str) -> ObjectKey {
        ObjectKey {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: name.into(),
        }
    }

    fn remember(
        settled: &Settled<TestPlugin>,
        app: &PortfolioApp,
        seen: &[Observed],
        applied: &[(ObjectKey, DynamicObject)],
        pruned: &[ObjectKey],
    ) {
        // Each answer as the API server sends it, read as the reconcile reads it.
        let applied: Vec<(ObjectKey, Applied)> = applied
            .iter()
            .map(|(key, object)| {
                let text = serde_json::to_string(object).expect("an object");
                (key.clone(), serde_json::from_str(&text).expect("an answer"))
            })
            .collect();
        settled.record(Record {
            app,
            status: &PortfolioAppStatus::default(),
            plugin: &PLUGIN,
            gates: (&[], true),
            observed: seen,
            applied: &applied,
            pruned,
            again_in: Duration::from_secs(600),
        });
    }

    /// A ConfigMap child as the watch's echo check looks it up.
    fn config_map(name: &str) -> ChildKey<'_> {
        ChildKey {
            api_version: "v1",
            kind: "ConfigMap",
            name,
        }
    }

    fn versions(observed: &[Observed]) -> Vec<Seen> {
        observed.iter().map(Observed::seen).collect()
    }

    fn probe<'a>(app: &'a PortfolioApp, observed: &'a [Seen]) -> Probe<'a, TestPlugin> {
        static STATUS: std::sync::LazyLock<PortfolioAppStatus> =
            std::sync::LazyLock::new(PortfolioAppStatus::default);
        Probe {
            app,
            status: &STATUS,
            plugin: &PLUGIN,
            gates: (&[], true),
            observed,
        }
    }

    #[test]
    fn the_echo_of_its_own_writes_changes_nothing() {
        let (settled, app) = (Settled::<TestPlugin>::default(), app());
        // Created `a`, updated `b`, deleted `c`.
        let seen = [
            observed(child("b", "1", None)),
            observed(child("c", "2", None)),
        ];
        let applied = [
            (key("a"), child("a", "5", None)),
            (key("b"), child("b", "6", None)),
        ];
        remember(&settled, &app, &seen, &applied, &[key("c")]);
        // The caches lag: `b` and `c` as they were, `a` not there yet.
        assert!(settled.unchanged(&probe(&app, &versions(&seen))).is_none());
        // `a` arrives; `b` and `c` still lag.
        let lagging = [
            observed(child("a", "5", None)),
            observed(child("b", "1", None)),
            observed(child("c", "2", None)),
        ];
        assert!(
            settled
                .unchanged(&probe(&app, &versions(&lagging)))
                .is_some()
        );
        // Everything arrived, `c` deleted.
        let caught_up = [
            observed(child("a", "5", None)),
            observed(child("b", "6", None)),
        ];
        assert!(
            settled
                .unchanged(&probe(&app, &versions(&caught_up)))
                .is_some()
        );
    }

    #[test]
    fn child_events_while_a_reconcile_runs_wait_for_it_and_queue_it_only_if_news() {
        let (settled, app) = (Settled::<TestPlugin>::default(), app());
        // Nothing runs and nothing is known: the event queues the app.
        assert!(!settled.echo("u1", config_map("a"), "5"));

        // The echo of its own apply arrives before it records: held back,
        // and known when it ends, so nothing queues.
        settled.start("u1");
        assert!(settled.echo("u1", config_map("a"), "5"));
        assert!(!settled.echo("u2", config_map("a"), "5"), "another app's");
        remember(
            &settled,
            &app,
            &[],
            &[(key("a"), child("a", "5", None))],
            &[],
        );
        assert!(!settled.finish("u1"), "only its own write came");
        assert!(!settled.finish("u1"), "ended once");

        // A change by someone else while it runs: held back, then news.
        settled.start("u1");
        assert!(settled.echo("u1", config_map("a"), "5"), "known");
        assert!(settled.echo("u1", config_map("a"), "7"), "held back");
        remember(
            &settled,
            &app,
            &[],
            &[(key("a"), child("a", "6", None))],
            &[],
        );
        assert!(settled.finish("u1"), "version 7 is news");

        // It failed (forgotten): whatever was held back is news.
        settled.start("u1");
        assert!(settled.echo("u1", config_map("b"), "1"));
        settled.forget("u1");
        assert!(settled.finish("u1"));
        // Once ended, events are judged at once again.
        assert!(!settled.echo("u1", config_map("b"), "2"));
    }

    #[test]
    fn only_echoes_of_what_it_knew_are_told_apart_at_the_watch() {
        let (settled, app) = (Settled::<TestPlugin>::default(), app());
        assert!(
            !settled.knows_child("u1", config_map("a"), "5"),
            "nothing remembered"
        );
        assert!(!settled.knows_app(&app), "nothing remembered");
        let seen = [observed(child("b", "1", None))];
        remember(
            &settled,
            &app,
            &seen,
            &[(key("a"), child("a", "5", None))],
            &[],
        );
        assert!(
            settled.knows_child("u1", config_map("a"), "5"),
            "its own apply"
        );
        assert!(
            settled.knows_child("u1", config_map("b"), "1"),
            "what it saw"
        );
        assert!(
            !settled.knows_child("u1", config_map("a"), "6"),
            "a later version"
        );
        assert!(
            !settled.knows_child("u1", config_map("c"), "1"),
            "a child it did not know"
        );
        assert!(
            !settled.knows_child("u2", config_map("a"), "5"),
            "another app's"
        );
        let secret = ChildKey {
            api_version: "v1",
            kind: "Secret",
            name: "a",
        };
        assert!(!settled.knows_child("u1", secret, "5"), "another kind");

        assert!(settled.knows_app(&app), "the echo of its status write");
        let changed = |change: fn(&mut PortfolioApp)| {
            let mut app = app.clone();
            change(&mut app);
            settled.knows_app(&app)
        };
        assert!(
            !changed(|app| app.metadata.generation = Some(2)),
            "a spec edit"
        );
        assert!(!changed(
            |app| app.metadata.labels = Some([("a".into(), "b".into())].into())
        ));
        assert!(!changed(
            |app| app.metadata.finalizers = Some(vec!["x/y".into()])
        ));
        assert!(
            !changed(|app| {
                app.status = Some(PortfolioAppStatus {
                    replicas: Some(3),
                    ..PortfolioAppStatus::default()
                })
            }),
            "a status it did not write"
        );
        assert!(
            !changed(|app| app.metadata.deletion_timestamp = Some(super::super::conditions::now())),
            "a deletion"
        );
        assert!(!changed(|app| app.metadata.uid = None));
        assert!(
            changed(|app| app.metadata.resource_version = Some("99".into())),
            "only a new version"
        );
    }

    #[test]
    fn any_change_it_did_not_make_is_looked_at() {
        let (settled, app) = (Settled::<TestPlugin>::default(), app());
        let seen = [
            observed(child("a", "1", None)),
            observed(child("b", "2", None)),
        ];
        remember(&settled, &app, &seen, &[], &[]);
        assert!(settled.unchanged(&probe(&app, &versions(&seen))).is_some());
        // A version nobody saw.
        let edited = [
            observed(child("a", "3", None)),
            observed(child("b", "2", None)),
        ];
        assert!(
            settled
                .unchanged(&probe(&app, &versions(&edited)))
                .is_none()
        );
        // A child deleted by someone.
        assert!(
            settled
                .unchanged(&probe(&app, &versions(&seen[..1])))
                .is_none()
        );
        // A new child.
        let more = [
            observed(child("a", "1", None)),
            observed(child("b", "2", None)),
            observed(child("c", "1", None)),
        ];
        assert!(settled.unchanged(&probe(&app, &versions(&more))).is_none());
        // A spec edit (new generation), a new annotation, another plugin,
        // another status.
        let mut edited_app = app.clone();
        edited_app.metadata.generation = Some(2);
        assert!(
            settled
                .unchanged(&probe(&edited_app, &versions(&seen)))
                .is_none()
        );
        let mut annotated = app.clone();
        annotated.metadata.annotations = Some([("a".to_owned(), "b".to_owned())].into());
        assert!(
            settled
                .unchanged(&probe(&annotated, &versions(&seen)))
                .is_none()
        );
        let seen_versions = versions(&seen);
        // Another registration, even of the same component (new settings).
        let same_component = Arc::new("one");
        let other_plugin = Probe {
            plugin: &same_component,
            ..probe(&app, &seen_versions)
        };
        assert!(settled.unchanged(&other_plugin).is_none());
        let status = PortfolioAppStatus {
            observed_generation: Some(7),
            ..Default::default()
        };
        let other_status = Probe {
            status: &status,
            ..probe(&app, &seen_versions)
        };
        assert!(settled.unchanged(&other_status).is_none());
        let gate = GateInfo {
            name: "m".into(),
            phase: None,
            dry_run: false,
            state: super::super::gates::State::Missing,
        };
        let gated = Probe {
            gates: (std::slice::from_ref(&gate), true),
            ..probe(&app, &seen_versions)
        };
        assert!(settled.unchanged(&gated).is_none());
        // Forgotten: looked at.
        settled.forget("u1");
        assert!(settled.unchanged(&probe(&app, &versions(&seen))).is_none());
    }

    #[test]
    fn an_apply_that_carried_a_status_change_along_is_not_its_own() {
        let (settled, app) = (Settled::<TestPlugin>::default(), app());
        let seen = [observed(child(
            "d",
            "1",
            Some(serde_json::json!({"ready": 0})),
        ))];
        // The answer holds a status the reconcile never saw.
        let applied = [(
            key("d"),
            child("d", "3", Some(serde_json::json!({"ready": 1}))),
        )];
        remember(&settled, &app, &seen, &applied, &[]);
        let after = [observed(child(
            "d",
            "3",
            Some(serde_json::json!({"ready": 1})),
        ))];
        assert!(settled.unchanged(&probe(&app, &versions(&after))).is_none());
        let d = ChildKey {
            api_version: "v1",
            kind: "ConfigMap",
            name: "d",
        };
        assert!(!settled.knows_child("u1", d, "3"), "its event is looked at");
        // The same answer with the status seen is its own.
        let applied = [(
            key("d"),
            child("d", "3", Some(serde_json::json!({"ready": 0}))),
        )];
        remember(&settled, &app, &seen, &applied, &[]);
        let after = [observed(child(
            "d",
            "3",
            Some(serde_json::json!({"ready": 0})),
        ))];
        assert!(settled.unchanged(&probe(&app, &versions(&after))).is_some());
        assert!(settled.knows_child("u1", d, "3"), "its echo queues nothing");
    }

    #[test]
    fn a_full_reconcile_comes_when_it_is_due() {
        let (settled, app) = (Settled::<TestPlugin>::default(), app());
        let seen = [observed(child("a", "1", None))];
        settled.record(Record {
            app: &app,
            status: &PortfolioAppStatus::default(),
            plugin: &PLUGIN,
            gates: (&[], true),
            observed: &seen,
            applied: &[],
            pruned: &[],
            again_in: Duration::ZERO,
        });
        assert!(settled.unchanged(&probe(&app, &versions(&seen))).is_none());
    }
}
