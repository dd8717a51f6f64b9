//! The plugin registry: which plugins are active, from which source, and
//! which one a reference such as `deployment-generator@^0.1` means.
//!
//! A source (built-ins, a directory, ConfigMaps) only ever calls
//! [`Registry::activate`], [`Registry::remove`] and [`Registry::reject`], each
//! for its own entries, keyed by something stable within that source (a file
//! path, a ConfigMap's namespace/name). Sources know nothing of each other.
//! The registry remembers the last refused upload of each key until that key
//! is activated or removed, so that `plugin list` can show it.

pub mod configmaps;
mod directory;
mod reference;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use tokio::sync::broadcast;

use crate::builtin::BUILTINS;
use crate::plugin::{Digest, LoadError, LoadOptions, Plugin, PluginId, Runtime, World};

pub use directory::{
    DirectoryError, DirectoryWatch, PluginRegistration, load_directory, watch_directory,
};
pub use reference::{PluginRef, PluginRefError, VersionSelector};

/// Where a plugin came from. For the same name and version, a later source wins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SourceKind {
    /// Embedded in the operator's binary.
    Builtin,
    /// A file in the `--plugin-dir` directory.
    Directory,
    /// A ConfigMap labelled `portfolio.dev/plugin=true`.
    ConfigMap,
}

impl SourceKind {
    /// Its name in lists and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Builtin => "built-in",
            SourceKind::Directory => "directory",
            SourceKind::ConfigMap => "configmap",
        }
    }
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an upload was refused, in a small fixed set of words: the `reason`
/// label of `portfolio_plugin_rejections_total`. The message says the rest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RejectReason {
    /// Bigger than a plugin may be.
    TooLarge,
    /// Not a WebAssembly component: not wasm, a core module, precompiled
    /// native code, or refused by the compiler.
    NotAComponent,
    /// A component, but not of a world and contract version this host
    /// speaks, or importing what the host does not grant.
    IncompatibleContract,
    /// `describe()` failed or returned something unusable (including a name
    /// or version other than the ConfigMap claims).
    InvalidDescription,
    /// The settings or limits registered with it are invalid.
    InvalidRegistration,
    /// The upload could not be read or prepared: an unreadable file, a
    /// ConfigMap without the component, bad gzip, a failure of the host.
    Unreadable,
}

impl RejectReason {
    /// The reason of `error`.
    pub fn of(error: &LoadError) -> Self {
        match error {
            LoadError::TooLarge { .. } => RejectReason::TooLarge,
            LoadError::Precompiled
            | LoadError::NotWasm
            | LoadError::CoreModule
            | LoadError::Compile(_) => RejectReason::NotAComponent,
            LoadError::NoKnownWorld { .. }
            | LoadError::IncompatibleVersion { .. }
            | LoadError::WrongWorld { .. }
            | LoadError::UnsupportedImport { .. }
            | LoadError::Signature { .. } => RejectReason::IncompatibleContract,
            LoadError::Describe(_) | LoadError::InvalidInfo(_) => RejectReason::InvalidDescription,
            LoadError::Limits(_) | LoadError::Settings(_) => RejectReason::InvalidRegistration,
            LoadError::Host(_) => RejectReason::Unreadable,
        }
    }

    /// The CamelCase word.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::TooLarge => "TooLarge",
            RejectReason::NotAComponent => "NotAComponent",
            RejectReason::IncompatibleContract => "IncompatibleContract",
            RejectReason::InvalidDescription => "InvalidDescription",
            RejectReason::InvalidRegistration => "InvalidRegistration",
            RejectReason::Unreadable => "Unreadable",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A change in the registry, for whoever needs to react (re-reconcile apps, emit events).
#[derive(Clone, Debug)]
pub enum RegistryEvent {
    /// A plugin became active under `key`, replacing `replaced` if there was one.
    Activated {
        /// Which kind of source (built-in, directory, ConfigMap).
        source: SourceKind,
        /// Its key within the source.
        key: String,
        /// Name and version.
        id: PluginId,
        /// Its bytes' digest.
        digest: Digest,
        /// What it replaced under the same key.
        replaced: Option<(PluginId, Digest)>,
    },
    /// The plugin under `key` is gone.
    Removed {
        /// Which kind of source (built-in, directory, ConfigMap).
        source: SourceKind,
        /// Its key within the source.
        key: String,
        /// Name and version it had.
        id: PluginId,
    },
    /// A candidate under `key` failed its checks; whatever was active stays.
    Rejected {
        /// Which kind of source (built-in, directory, ConfigMap).
        source: SourceKind,
        /// Its key within the source.
        key: String,
        /// Why, in one word.
        reason: RejectReason,
        /// Why, in words.
        error: String,
    },
}

/// A reference that matches no active plugin.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum ResolveError {
    /// Nothing of that name, or no version that matches.
    #[error("no {world} plugin matches {reference}{}", available_hint(.available))]
    NotFound {
        /// The reference.
        reference: String,
        /// The world asked for.
        world: World,
        /// `name@version` of every active plugin with that name and world.
        available: Vec<String>,
    },
}

fn available_hint(available: &[String]) -> String {
    if available.is_empty() {
        String::new()
    } else {
        format!(" (active: {})", available.join(", "))
    }
}

/// One active plugin and where it came from.
#[derive(Clone, Debug)]
pub struct Registered {
    /// Which kind of source (built-in, directory, ConfigMap).
    pub source: SourceKind,
    /// Its key within the source.
    pub key: String,
    /// The plugin.
    pub plugin: Arc<Plugin>,
}

/// The last refused upload of one key, kept until that key is activated or removed.
#[derive(Clone, Debug)]
pub struct Rejection {
    /// The source it was offered through.
    pub source: SourceKind,
    /// A file path, or a ConfigMap's namespace/name.
    pub key: String,
    /// Why, in one word.
    pub reason: RejectReason,
    /// Why, in words (it reads after "the plugin").
    pub message: String,
    /// The plugin that stays active under the same key, if any.
    pub kept: Option<PluginId>,
}

/// Called on every refused upload (to count it).
type RejectHook = Box<dyn Fn(SourceKind, RejectReason) + Send + Sync>;

/// The active plugins of every source.
pub struct Registry {
    entries: RwLock<BTreeMap<(SourceKind, String), Arc<Plugin>>>,
    rejections: RwLock<BTreeMap<(SourceKind, String), Rejection>>,
    on_reject: Option<RejectHook>,
    events: broadcast::Sender<RegistryEvent>,
    /// Sources that have not listed their plugins yet, and how long
    /// reconciles wait for them at most.
    unlisted: tokio::sync::watch::Sender<usize>,
    unlisted_until: std::sync::Mutex<Option<tokio::time::Instant>>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Registry {
            entries: RwLock::new(BTreeMap::new()),
            rejections: RwLock::new(BTreeMap::new()),
            on_reject: None,
            events: broadcast::channel(256).0,
            unlisted: tokio::sync::watch::channel(0).0,
            unlisted_until: std::sync::Mutex::new(None),
        }
    }

    /// A source whose first list is coming (the plugin ConfigMaps): until
    /// it calls [`Registry::source_listed`], [`Registry::wait_sources_listed`]
    /// waits, at most `patience` from now. Otherwise the first reconciles
    /// after a start would find an app's plugin missing, report
    /// `PluginNotFound`, and report it fixed a moment later.
    pub fn expect_source(&self, patience: std::time::Duration) {
        self.unlisted.send_modify(|n| *n += 1);
        let mut until = self
            .unlisted_until
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let deadline = tokio::time::Instant::now() + patience;
        *until = Some(until.map_or(deadline, |d| d.max(deadline)));
    }

    /// A source announced by [`Registry::expect_source`] has listed its plugins.
    pub fn source_listed(&self) {
        self.unlisted.send_modify(|n| *n = n.saturating_sub(1));
    }

    /// Wait until every expected source has listed its plugins, or its patience is out.
    pub async fn wait_sources_listed(&self) {
        let mut unlisted = self.unlisted.subscribe();
        let Some(deadline) = *self
            .unlisted_until
            .lock()
            .unwrap_or_else(|e| e.into_inner())
        else {
            return;
        };
        if tokio::time::timeout_at(deadline, unlisted.wait_for(|n| *n == 0))
            .await
            .is_err()
            && *unlisted.borrow() > 0
        {
            tracing::debug!("the plugin sources have not listed yet; reconciling without them");
        }
    }

    /// An empty registry that calls `hook` on every refused upload, in the
    /// source's task: unlike the events, a slow receiver cannot miss one.
    pub fn with_on_reject(hook: impl Fn(SourceKind, RejectReason) + Send + Sync + 'static) -> Self {
        Registry {
            on_reject: Some(Box::new(hook)),
            ..Registry::new()
        }
    }

    /// Changes from now on. A slow receiver misses events (and is told so by the channel).
    pub fn subscribe(&self) -> broadcast::Receiver<RegistryEvent> {
        self.events.subscribe()
    }

    /// Make `plugin` the active one under `key` of `source`.
    pub fn activate(&self, source: SourceKind, key: &str, plugin: Arc<Plugin>) {
        let (id, digest) = (plugin.id().clone(), plugin.digest());
        self.rejections_mut().remove(&(source, key.to_owned()));
        let replaced = self
            .write()
            .insert((source, key.to_owned()), plugin)
            .map(|old| (old.id().clone(), old.digest()));
        match &replaced {
            Some((old, old_digest)) if *old_digest != digest => {
                tracing::info!(%source, key, plugin = %id, %digest, replaced = %old, "plugin replaced");
            }
            Some(_) => {}
            None => tracing::info!(%source, key, plugin = %id, %digest, "plugin activated"),
        }
        let _ = self.events.send(RegistryEvent::Activated {
            source,
            key: key.to_owned(),
            id,
            digest,
            replaced,
        });
    }

    /// Drop the plugin under `key` of `source`.
    pub fn remove(&self, source: SourceKind, key: &str) -> Option<Arc<Plugin>> {
        self.rejections_mut().remove(&(source, key.to_owned()));
        let removed = self.write().remove(&(source, key.to_owned()))?;
        tracing::info!(%source, key, plugin = %removed.id(), "plugin removed");
        let _ = self.events.send(RegistryEvent::Removed {
            source,
            key: key.to_owned(),
            id: removed.id().clone(),
        });
        Some(removed)
    }

    /// Report that a candidate under `key` of `source` failed; the active one stays.
    pub fn reject(&self, source: SourceKind, key: &str, error: &LoadError) {
        let reason = RejectReason::of(error);
        let kept = self
            .read()
            .get(&(source, key.to_owned()))
            .map(|plugin| plugin.id().clone());
        tracing::warn!(%source, key, %reason, error = %error, kept = %kept.as_ref().map_or_else(|| "nothing".to_owned(), ToString::to_string), "plugin rejected; the active version stays");
        self.rejections_mut().insert(
            (source, key.to_owned()),
            Rejection {
                source,
                key: key.to_owned(),
                reason,
                message: error.to_string(),
                kept,
            },
        );
        if let Some(hook) = &self.on_reject {
            hook(source, reason);
        }
        let _ = self.events.send(RegistryEvent::Rejected {
            source,
            key: key.to_owned(),
            reason,
            error: error.to_string(),
        });
    }

    /// The last refused upload of every key that has not been activated or
    /// removed since, by source and key.
    pub fn rejections(&self) -> Vec<Rejection> {
        self.rejections
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// The plugin `reference` means for `world`: the highest matching version;
    /// for equal versions, the later source (ConfigMap over directory over built-in).
    pub fn resolve(
        &self,
        reference: &PluginRef,
        world: World,
    ) -> Result<Arc<Plugin>, ResolveError> {
        let entries = self.read();
        let candidates = entries.iter().map(|((source, key), plugin)| Candidate {
            source: *source,
            key,
            id: plugin.id(),
            digest: plugin.digest(),
            world: plugin.world(),
        });
        let chosen = pick(candidates, reference, world)?;
        Ok(Arc::clone(&entries[&(chosen.0, chosen.1)]))
    }

    /// Every active plugin.
    pub fn entries(&self) -> Vec<Registered> {
        self.read()
            .iter()
            .map(|((source, key), plugin)| Registered {
                source: *source,
                key: key.clone(),
                plugin: Arc::clone(plugin),
            })
            .collect()
    }

    /// Load and activate the plugins embedded in the binary (blocking).
    ///
    /// A failure here is a defect of the build, not of the user's input.
    pub fn load_builtins(&self, runtime: &Runtime) -> Result<(), BuiltinError> {
        for builtin in BUILTINS {
            let plugin = runtime
                .load(builtin.bytes, &LoadOptions::default())
                .map_err(|source| BuiltinError {
                    file: builtin.file,
                    source,
                })?;
            self.activate(SourceKind::Builtin, builtin.file, plugin);
        }
        Ok(())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<(SourceKind, String), Arc<Plugin>>> {
        self.entries.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(
        &self,
    ) -> std::sync::RwLockWriteGuard<'_, BTreeMap<(SourceKind, String), Arc<Plugin>>> {
        self.entries.write().unwrap_or_else(|e| e.into_inner())
    }

    fn rejections_mut(
        &self,
    ) -> std::sync::RwLockWriteGuard<'_, BTreeMap<(SourceKind, String), Rejection>> {
        self.rejections.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// What resolution looks at of one registered plugin.
struct Candidate<'a> {
    source: SourceKind,
    key: &'a str,
    id: &'a PluginId,
    digest: Digest,
    world: World,
}

/// Choose among `candidates`: the highest version that `reference` accepts;
/// ties go to the later source, then to the smaller key (so the choice never
/// depends on timing).
fn pick<'a>(
    candidates: impl Iterator<Item = Candidate<'a>> + Clone,
    reference: &PluginRef,
    world: World,
) -> Result<(SourceKind, String), ResolveError> {
    let same_name = candidates.filter(|c| c.id.name == reference.name && c.world == world);
    let best = same_name
        .clone()
        .filter(|c| reference.matches(c.id, c.digest))
        .max_by(|a, b| (&a.id.version, a.source, b.key).cmp(&(&b.id.version, b.source, a.key)));
    match best {
        Some(chosen) => Ok((chosen.source, chosen.key.to_owned())),
        None => {
            let mut available: Vec<String> = same_name.map(|c| c.id.to_string()).collect();
            available.sort();
            available.dedup();
            Err(ResolveError::NotFound {
                reference: reference.to_string(),
                world,
                available,
            })
        }
    }
}

/// A built-in plugin failed to load: the binary was built wrong.
#[derive(Debug, thiserror::Error)]
#[error("built-in plugin {file} {source}")]
pub struct BuiltinError {
    /// Its file name in the build.
    pub file: &'static str,
    /// The check it failed.
    #[source]
    pub source: LoadError,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(name: &str, version: &str) -> PluginId {
        PluginId {
            name: name.into(),
            version: semver::Version::parse(version).unwrap(),
        }
    }

    struct Fixture {
        entries: Vec<(SourceKind, String, PluginId, Digest, World)>,
    }

    impl Fixture {
        fn new(entries: &[(SourceKind, &str, &str, &str, World)]) -> Self {
            Fixture {
                entries: entries
                    .iter()
                    .map(|(source, key, name, version, world)| {
                        (
                            *source,
                            (*key).to_owned(),
                            id(name, version),
                            Digest::of(format!("{name}{version}{key}").as_bytes()),
                            *world,
                        )
                    })
                    .collect(),
            }
        }

        fn pick(&self, reference: &str, world: World) -> Result<String, ResolveError> {
            let candidates =
                self.entries
                    .iter()
                    .map(|(source, key, id, digest, world)| Candidate {
                        source: *source,
                        key,
                        id,
                        digest: *digest,
                        world: *world,
                    });
            pick(candidates, &reference.parse().unwrap(), world)
                .map(|(source, key)| format!("{source}:{key}"))
        }
    }

    use SourceKind::{Builtin, ConfigMap, Directory};
    use World::{Generator, MigrationStrategy};

    #[test]
    fn latest_is_the_highest_version() {
        let fixture = Fixture::new(&[
            (Builtin, "b", "gen", "0.1.0", Generator),
            (Directory, "d", "gen", "0.3.0", Generator),
            (ConfigMap, "c", "gen", "0.2.0", Generator),
        ]);
        assert_eq!(fixture.pick("gen", Generator).unwrap(), "directory:d");
    }

    #[test]
    fn equal_versions_go_to_the_later_source() {
        let fixture = Fixture::new(&[
            (Builtin, "b", "gen", "0.1.0", Generator),
            (Directory, "d", "gen", "0.1.0", Generator),
        ]);
        assert_eq!(fixture.pick("gen", Generator).unwrap(), "directory:d");
        assert_eq!(fixture.pick("gen@0.1.0", Generator).unwrap(), "directory:d");
    }

    #[test]
    fn requirements_exact_versions_and_digests_select() {
        let fixture = Fixture::new(&[
            (Builtin, "b", "gen", "1.4.0", Generator),
            (Directory, "d1", "gen", "1.9.2", Generator),
            (Directory, "d2", "gen", "2.0.0", Generator),
        ]);
        assert_eq!(fixture.pick("gen@^1", Generator).unwrap(), "directory:d1");
        assert_eq!(fixture.pick("gen@~1.4", Generator).unwrap(), "built-in:b");
        assert_eq!(fixture.pick("gen@1.4.0", Generator).unwrap(), "built-in:b");
        let digest = fixture.entries[2].3;
        assert_eq!(
            fixture.pick(&format!("gen@{digest}"), Generator).unwrap(),
            "directory:d2"
        );
    }

    #[test]
    fn misses_list_what_is_active() {
        let fixture = Fixture::new(&[
            (Builtin, "b", "gen", "1.4.0", Generator),
            (Directory, "m", "gen", "3.0.0", MigrationStrategy),
        ]);
        let error = fixture.pick("gen@^2", Generator).unwrap_err();
        assert_eq!(
            error.to_string(),
            "no generator plugin matches gen@^2 (active: gen@1.4.0)"
        );
        let error = fixture.pick("other", Generator).unwrap_err();
        assert_eq!(error.to_string(), "no generator plugin matches other");
    }

    #[test]
    fn refusals_are_counted_and_remembered_until_the_key_is_activated_or_removed() {
        let counted = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = Arc::clone(&counted);
        let registry = Registry::with_on_reject(move |source, reason| {
            seen.lock().unwrap().push((source, reason));
        });
        registry.reject(Directory, "a.wasm", &LoadError::NotWasm);
        registry.reject(ConfigMap, "team/b", &LoadError::Settings("bad".into()));
        let remembered: Vec<_> = registry
            .rejections()
            .into_iter()
            .map(|r| (r.source, r.key, r.reason))
            .collect();
        assert_eq!(
            remembered,
            [
                (Directory, "a.wasm".to_owned(), RejectReason::NotAComponent),
                (
                    ConfigMap,
                    "team/b".to_owned(),
                    RejectReason::InvalidRegistration
                ),
            ]
        );
        assert_eq!(
            *counted.lock().unwrap(),
            [
                (Directory, RejectReason::NotAComponent),
                (ConfigMap, RejectReason::InvalidRegistration)
            ]
        );

        registry.remove(Directory, "a.wasm");
        let runtime = Runtime::new(crate::plugin::RuntimeConfig::default()).unwrap();
        let plugin = runtime
            .load(BUILTINS[0].bytes, &LoadOptions::default())
            .unwrap();
        registry.activate(ConfigMap, "team/b", plugin);
        assert!(registry.rejections().is_empty());
    }

    #[test]
    fn ties_are_broken_the_same_way_every_time() {
        let fixture = Fixture::new(&[
            (Directory, "b.wasm", "gen", "1.0.0", Generator),
            (Directory, "a.wasm", "gen", "1.0.0", Generator),
        ]);
        assert_eq!(fixture.pick("gen", Generator).unwrap(), "directory:a.wasm");
    }
}
