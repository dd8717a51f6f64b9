//! The ConfigMap source: plugins published in ConfigMaps labelled
//! `portfolio.dev/plugin=true`, hot-reloaded as they change.
//!
//! A plugin ConfigMap holds the component in `binaryData` under
//! `plugin.wasm` (or gzip-compressed under `plugin.wasm.gz`), and in `data`
//! optionally `name` and `version` (checked against what the component says
//! of itself), `settings` (a YAML or JSON mapping handed to the plugin) and
//! `limits` (as in a directory registration). A new version is compiled and
//! checked before it replaces the active one; a bad upload is reported (log,
//! metric, and an Event on the ConfigMap) and the old version stays.
//! [`watch`] keeps the registry in step; [`load_namespace`] reads them once,
//! with the same checks, for `plugin list`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams};
use kube::runtime::events::Recorder;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use serde_json::Value;

use super::{Registry, SourceKind};
use crate::events::{self, Severity};
use crate::plugin::{Digest, LimitsOverride, LoadError, LoadOptions, Plugin, Runtime};

/// The label that marks a plugin ConfigMap.
pub const PLUGIN_LABEL: &str = "portfolio.dev/plugin";
/// Key of the component in `binaryData`.
pub const COMPONENT_KEY: &str = "plugin.wasm";
/// Key of the gzip-compressed component in `binaryData`.
pub const COMPRESSED_KEY: &str = "plugin.wasm.gz";

/// A plugin ConfigMap, read but not yet loaded.
#[derive(Debug)]
pub struct Published {
    /// The component.
    pub bytes: Vec<u8>,
    /// Name the ConfigMap claims, if any.
    pub name: Option<String>,
    /// Version the ConfigMap claims, if any.
    pub version: Option<String>,
    /// How to load it.
    pub options: LoadOptions,
}

/// Read a plugin ConfigMap; `max` bounds the (decompressed) component.
pub fn read(config_map: &ConfigMap, max: usize) -> Result<Published, LoadError> {
    let binary = config_map.binary_data.as_ref();
    let data = config_map.data.clone().unwrap_or_default();
    let bytes = match (
        binary.and_then(|b| b.get(COMPONENT_KEY)),
        binary.and_then(|b| b.get(COMPRESSED_KEY)),
    ) {
        (Some(plain), None) => plain.0.clone(),
        (None, Some(compressed)) => gunzip(&compressed.0, max)?,
        (Some(_), Some(_)) => {
            return Err(LoadError::Host(format!(
                "binaryData holds both {COMPONENT_KEY} and {COMPRESSED_KEY}; keep one"
            )));
        }
        (None, None) => {
            return Err(LoadError::Host(format!(
                "binaryData holds neither {COMPONENT_KEY} nor {COMPRESSED_KEY}"
            )));
        }
    };
    let settings = match data.get("settings") {
        None => Value::Object(Default::default()),
        Some(text) => serde_saphyr::from_str(text)
            .map_err(|e| LoadError::Settings(format!("data.settings is not valid YAML: {e}")))?,
    };
    let limits: LimitsOverride = match data.get("limits") {
        None => LimitsOverride::default(),
        Some(text) => serde_saphyr::from_str(text)
            .map_err(|e| LoadError::Settings(format!("data.limits is not valid: {e}")))?,
    };
    Ok(Published {
        bytes,
        name: data.get("name").cloned(),
        version: data.get("version").cloned(),
        options: LoadOptions {
            expected_world: None,
            settings,
            limits,
        },
    })
}

/// Decompress at most `max` bytes: a small upload must not become a huge one.
fn gunzip(compressed: &[u8], max: usize) -> Result<Vec<u8>, LoadError> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(compressed)
        .take(max as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| LoadError::Host(format!("{COMPRESSED_KEY} is not valid gzip: {e}")))?;
    if out.len() > max {
        return Err(LoadError::TooLarge {
            bytes: out.len(),
            limit: max,
        });
    }
    Ok(out)
}

/// The plugin of `config_map`, with every check: its registration, the
/// component, and the name and version the ConfigMap claims.
pub async fn load(config_map: &ConfigMap, runtime: &Runtime) -> Result<Arc<Plugin>, LoadError> {
    let published = read(config_map, runtime.config().max_component_bytes)?;
    let (name, version) = (published.name, published.version);
    let plugin = runtime
        .load_async(published.bytes, published.options)
        .await?;
    let id = plugin.id();
    if name.as_ref().is_some_and(|n| *n != id.name)
        || version
            .as_ref()
            .is_some_and(|v| *v != id.version.to_string())
    {
        return Err(LoadError::InvalidInfo(format!(
            "{id}, but the ConfigMap says {}@{}",
            name.unwrap_or_else(|| id.name.clone()),
            version.unwrap_or_else(|| id.version.to_string())
        )));
    }
    Ok(plugin)
}

fn selector() -> String {
    format!("{PLUGIN_LABEL}=true")
}

/// Load every plugin ConfigMap of `namespace` once (for one-shot commands):
/// each is activated in `registry` or rejected, as the watch would do.
/// Fails only when the ConfigMaps cannot be listed.
pub async fn load_namespace(
    client: kube::Client,
    namespace: &str,
    runtime: &Runtime,
    registry: &Registry,
) -> Result<(), kube::Error> {
    let api: Api<ConfigMap> = Api::namespaced(client, namespace);
    let config_maps = api.list(&ListParams::default().labels(&selector())).await?;
    for config_map in &config_maps {
        let key = key_of(config_map);
        match load(config_map, runtime).await {
            Ok(plugin) => registry.activate(SourceKind::ConfigMap, &key, plugin),
            Err(error) => registry.reject(SourceKind::ConfigMap, &key, &error),
        }
    }
    Ok(())
}

/// Keep the registry in step with the plugin ConfigMaps of `namespace` until the task is dropped.
pub async fn watch(
    client: kube::Client,
    namespace: String,
    runtime: Runtime,
    registry: Arc<Registry>,
    recorder: Recorder,
) {
    let api: Api<ConfigMap> = Api::namespaced(client, &namespace);
    let config = watcher::Config::default().labels(&selector());
    let mut stream = watcher(api, config).default_backoff().boxed();
    let mut seen: BTreeMap<String, Digest> = BTreeMap::new();
    let mut listed: BTreeSet<String> = BTreeSet::new();
    // The plugins found by the first list were active before this process
    // started (or are new, and the log says so): an Event for each on every
    // start would be a write per plugin per restart, saying nothing new.
    // Changes seen later, relists included, are announced.
    let mut started = false;
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::Init) => listed.clear(),
            Ok(watcher::Event::InitApply(config_map)) => {
                listed.insert(key_of(&config_map));
                let announce = if started {
                    Announce::Changes
                } else {
                    Announce::Refusals
                };
                refresh(
                    &config_map,
                    &runtime,
                    &registry,
                    &recorder,
                    &mut seen,
                    announce,
                )
                .await;
            }
            Ok(watcher::Event::InitDone) => {
                if !started {
                    registry.source_listed();
                }
                started = true;
                // Gone while the watch was down.
                for key in seen
                    .keys()
                    .filter(|k| !listed.contains(*k))
                    .cloned()
                    .collect::<Vec<_>>()
                {
                    seen.remove(&key);
                    registry.remove(SourceKind::ConfigMap, &key);
                }
            }
            Ok(watcher::Event::Apply(config_map)) => {
                refresh(
                    &config_map,
                    &runtime,
                    &registry,
                    &recorder,
                    &mut seen,
                    Announce::Changes,
                )
                .await;
            }
            Ok(watcher::Event::Delete(config_map)) => {
                let key = key_of(&config_map);
                seen.remove(&key);
                registry.remove(SourceKind::ConfigMap, &key);
            }
            Err(error) => {
                tracing::warn!(namespace, error = %error, "plugin ConfigMap watch failed; retrying")
            }
        }
    }
}

fn key_of(config_map: &ConfigMap) -> String {
    format!(
        "{}/{}",
        config_map.namespace().unwrap_or_default(),
        config_map.name_any()
    )
}

/// Which outcomes of loading a ConfigMap get an Event.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Announce {
    /// Activations and refusals: a change seen while running.
    Changes,
    /// Refusals only (activations are logged): what was there at start.
    Refusals,
}

async fn refresh(
    config_map: &ConfigMap,
    runtime: &Runtime,
    registry: &Registry,
    recorder: &Recorder,
    seen: &mut BTreeMap<String, Digest>,
    announce: Announce,
) {
    let key = key_of(config_map);
    // Unchanged content (a label edit, a resync) is not loaded again.
    let fingerprint = Digest::of(
        serde_json::to_string(&(&config_map.data, &config_map.binary_data))
            .unwrap_or_default()
            .as_bytes(),
    );
    if seen.get(&key) == Some(&fingerprint) {
        return;
    }
    seen.insert(key.clone(), fingerprint);
    let result = load(config_map, runtime).await;
    match result {
        Ok(plugin) => {
            let message = format!("{} ({}) is active", plugin.id(), plugin.digest());
            registry.activate(SourceKind::ConfigMap, &key, plugin);
            if announce == Announce::Changes {
                publish(
                    recorder,
                    config_map,
                    Severity::Normal,
                    "PluginActivated",
                    &message,
                )
                .await;
            } else {
                tracing::info!(config_map = %key, "{message} (found at start)");
            }
        }
        Err(error) => {
            registry.reject(SourceKind::ConfigMap, &key, &error);
            let message = format!("the plugin {error}; the active version, if any, stays");
            publish(
                recorder,
                config_map,
                Severity::Warning,
                "PluginRejected",
                &message,
            )
            .await;
        }
    }
}

async fn publish(
    recorder: &Recorder,
    config_map: &ConfigMap,
    severity: Severity,
    reason: &str,
    message: &str,
) {
    events::publish(
        recorder,
        &config_map.object_ref(&()),
        severity,
        reason,
        "LoadPlugin",
        message,
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use std::io::Write;

    fn config_map(binary: &[(&str, Vec<u8>)], data: &[(&str, &str)]) -> ConfigMap {
        ConfigMap {
            binary_data: Some(
                binary
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), ByteString(v.clone())))
                    .collect(),
            ),
            data: Some(
                data.iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            ..Default::default()
        }
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn reads_plain_and_compressed_components_with_their_registration() {
        let plain = read(
            &config_map(
                &[(COMPONENT_KEY, b"\0asm".to_vec())],
                &[
                    ("name", "team"),
                    ("settings", "greeting: hi"),
                    ("limits", "timeoutMs: 250"),
                ],
            ),
            1024,
        )
        .unwrap();
        assert_eq!(plain.bytes, b"\0asm");
        assert_eq!(plain.name.as_deref(), Some("team"));
        assert_eq!(plain.options.settings["greeting"], "hi");
        assert_eq!(plain.options.limits.timeout_ms, Some(250));
        let compressed = read(
            &config_map(&[(COMPRESSED_KEY, gzip(b"\0asm-z"))], &[]),
            1024,
        )
        .unwrap();
        assert_eq!(compressed.bytes, b"\0asm-z");
    }

    #[test]
    fn refuses_what_cannot_be_a_plugin() {
        let none = read(&config_map(&[], &[]), 1024).unwrap_err();
        assert!(none.to_string().contains("neither"), "{none}");
        let both = read(
            &config_map(
                &[(COMPONENT_KEY, vec![1]), (COMPRESSED_KEY, gzip(b"x"))],
                &[],
            ),
            1024,
        )
        .unwrap_err();
        assert!(both.to_string().contains("both"), "{both}");
        let not_gzip =
            read(&config_map(&[(COMPRESSED_KEY, vec![1, 2, 3])], &[]), 1024).unwrap_err();
        assert!(
            not_gzip.to_string().contains("not valid gzip"),
            "{not_gzip}"
        );
        let bad_limits = read(
            &config_map(
                &[(COMPONENT_KEY, vec![1])],
                &[("limits", "timeoutMillis: 3")],
            ),
            1024,
        )
        .unwrap_err();
        assert!(
            bad_limits.to_string().contains("data.limits"),
            "{bad_limits}"
        );
    }

    #[test]
    fn a_decompression_bomb_is_stopped_at_the_limit() {
        let bomb = gzip(&vec![0u8; 10 << 20]);
        assert!(bomb.len() < 100_000);
        let error = read(&config_map(&[(COMPRESSED_KEY, bomb)], &[]), 1 << 20).unwrap_err();
        assert!(matches!(error, LoadError::TooLarge { .. }), "{error}");
    }
}
