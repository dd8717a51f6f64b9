//! The directory source: `*.wasm` files in `--plugin-dir`, watched for changes.
//!
//! Each `NAME.wasm` may have a registration `NAME.yaml` beside it with the
//! plugin's settings and limits. Any change in the directory triggers a
//! rescan (debounced); a file whose bytes or registration changed is loaded
//! and checked in full before it replaces the active version, and a file that
//! fails keeps the old version active until it is fixed. A file that
//! disappears takes its plugin with it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::RecursiveMode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{Registry, SourceKind};
use crate::plugin::{Digest, LimitsOverride, LoadError, LoadOptions, Runtime};

/// How long the directory must be quiet before a rescan: editors and
/// `kubectl cp` write a file in several steps.
const DEBOUNCE: Duration = Duration::from_millis(250);

/// The registration of a plugin file: `NAME.yaml` beside `NAME.wasm`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PluginRegistration {
    /// Settings handed to the plugin on every call (a mapping).
    #[serde(default)]
    pub settings: Option<Value>,
    /// Limits that differ from the operator's defaults.
    #[serde(default)]
    pub limits: LimitsOverride,
}

/// The directory cannot be watched at all.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// It does not exist or cannot be read.
    #[error("plugin directory {path}: {source}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// The file watcher could not be set up.
    #[error("cannot watch plugin directory {path}: {message}")]
    Watch {
        /// The directory.
        path: PathBuf,
        /// What the watcher said.
        message: String,
    },
}

/// A running watch; dropping it stops watching (the plugins stay registered).
pub struct DirectoryWatch {
    _debouncer: notify_debouncer_full::Debouncer<
        notify::RecommendedWatcher,
        notify_debouncer_full::RecommendedCache,
    >,
    task: JoinHandle<()>,
}

impl Drop for DirectoryWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Load every plugin in `dir` once (for one-shot commands).
pub async fn load_directory(
    dir: PathBuf,
    runtime: Runtime,
    registry: Arc<Registry>,
) -> Result<(), DirectoryError> {
    check_dir(&dir)?;
    DirectorySource::new(dir, runtime, registry).scan().await;
    Ok(())
}

/// Load every plugin in `dir` now, then keep the registry in step with it.
pub async fn watch_directory(
    dir: PathBuf,
    runtime: Runtime,
    registry: Arc<Registry>,
) -> Result<DirectoryWatch, DirectoryError> {
    check_dir(&dir)?;
    let (tx, mut rx) = mpsc::channel::<()>(1);
    let mut debouncer = notify_debouncer_full::new_debouncer(
        DEBOUNCE,
        None,
        move |result: notify_debouncer_full::DebounceEventResult| {
            if let Err(errors) = &result {
                for error in errors {
                    tracing::warn!(error = %error, "plugin directory watch error");
                }
            }
            // A full channel already holds a pending rescan; that one will see this change too.
            let _ = tx.try_send(());
        },
    )
    .map_err(|e| DirectoryError::Watch {
        path: dir.clone(),
        message: e.to_string(),
    })?;
    debouncer
        .watch(&dir, RecursiveMode::NonRecursive)
        .map_err(|e| DirectoryError::Watch {
            path: dir.clone(),
            message: e.to_string(),
        })?;

    let mut source = DirectorySource::new(dir, runtime, registry);
    source.scan().await;
    let task = tokio::spawn(async move {
        while rx.recv().await.is_some() {
            source.scan().await;
        }
    });
    Ok(DirectoryWatch {
        _debouncer: debouncer,
        task,
    })
}

struct DirectorySource {
    dir: PathBuf,
    runtime: Runtime,
    registry: Arc<Registry>,
    /// Fingerprint (bytes + registration) of each file last looked at, good or bad.
    seen: BTreeMap<PathBuf, Digest>,
}

fn check_dir(dir: &Path) -> Result<(), DirectoryError> {
    let io = |source| DirectoryError::Io {
        path: dir.to_owned(),
        source,
    };
    if std::fs::metadata(dir).map_err(io)?.is_dir() {
        Ok(())
    } else {
        Err(io(std::io::Error::new(
            std::io::ErrorKind::NotADirectory,
            "not a directory",
        )))
    }
}

impl DirectorySource {
    fn new(dir: PathBuf, runtime: Runtime, registry: Arc<Registry>) -> Self {
        DirectorySource {
            dir,
            runtime,
            registry,
            seen: BTreeMap::new(),
        }
    }

    async fn scan(&mut self) {
        let files = match plugin_files(&self.dir) {
            Ok(files) => files,
            Err(error) => {
                tracing::warn!(dir = %self.dir.display(), error = %error, "cannot list the plugin directory; keeping the active plugins");
                return;
            }
        };
        let gone: Vec<PathBuf> = self
            .seen
            .keys()
            .filter(|path| !files.contains(path))
            .cloned()
            .collect();
        for path in gone {
            self.seen.remove(&path);
            self.registry
                .remove(SourceKind::Directory, &path.display().to_string());
        }
        for path in files {
            self.refresh(path).await;
        }
    }

    async fn refresh(&mut self, path: PathBuf) {
        let key = path.display().to_string();
        let max = self.runtime.config().max_component_bytes;
        let (bytes, registration_text) = match read_plugin(&path, max) {
            Ok(read) => read,
            Err(error) => {
                self.registry.reject(SourceKind::Directory, &key, &error);
                return;
            }
        };
        let mut fingerprint_input = bytes.clone();
        fingerprint_input.extend_from_slice(registration_text.as_deref().unwrap_or_default());
        let fingerprint = Digest::of(&fingerprint_input);
        if self.seen.get(&path) == Some(&fingerprint) {
            return;
        }
        self.seen.insert(path.clone(), fingerprint);
        let options = match registration_options(registration_text.as_deref()) {
            Ok(options) => options,
            Err(error) => {
                self.registry.reject(SourceKind::Directory, &key, &error);
                return;
            }
        };
        match self.runtime.load_async(bytes, options).await {
            Ok(plugin) => self.registry.activate(SourceKind::Directory, &key, plugin),
            Err(error) => self.registry.reject(SourceKind::Directory, &key, &error),
        }
    }
}

/// `*.wasm` regular files (symlinks followed, as in a ConfigMap volume), sorted.
fn plugin_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let is_wasm = path.extension().is_some_and(|ext| ext == "wasm");
        let hidden = path
            .file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| name.starts_with('.'));
        if is_wasm && !hidden && std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// The bytes of `path` and of its registration, if it has one.
fn read_plugin(path: &Path, max: usize) -> Result<(Vec<u8>, Option<Vec<u8>>), LoadError> {
    let read_error = |what: &Path, error: std::io::Error| {
        LoadError::Host(format!("cannot read {}: {error}", what.display()))
    };
    let size = std::fs::metadata(path)
        .map_err(|e| read_error(path, e))?
        .len();
    if size > max as u64 {
        return Err(LoadError::TooLarge {
            bytes: usize::try_from(size).unwrap_or(usize::MAX),
            limit: max,
        });
    }
    let bytes = std::fs::read(path).map_err(|e| read_error(path, e))?;
    let registration = path.with_extension("yaml");
    let registration_text = match std::fs::read(&registration) {
        Ok(text) => Some(text),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
        Err(error) => return Err(read_error(&registration, error)),
    };
    Ok((bytes, registration_text))
}

/// Load options from the text of a registration file.
fn registration_options(text: Option<&[u8]>) -> Result<LoadOptions, LoadError> {
    let registration = match text {
        None => PluginRegistration::default(),
        Some(bytes) => {
            let text = std::str::from_utf8(bytes)
                .map_err(|_| LoadError::Settings("the registration file is not UTF-8".into()))?;
            if text.trim().is_empty() {
                PluginRegistration::default()
            } else {
                serde_saphyr::from_str(text).map_err(|error| {
                    LoadError::Settings(format!("the registration file is not valid: {error}"))
                })?
            }
        }
    };
    Ok(LoadOptions {
        expected_world: None,
        settings: registration
            .settings
            .unwrap_or_else(|| Value::Object(Default::default())),
        limits: registration.limits,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_reads_settings_and_limits() {
        let options = registration_options(Some(
            b"settings:\n  registries: [ghcr.io]\nlimits:\n  timeoutMs: 250\n",
        ))
        .unwrap();
        assert_eq!(options.settings["registries"][0], "ghcr.io");
        assert_eq!(options.limits.timeout_ms, Some(250));
    }

    #[test]
    fn registration_rejects_unknown_fields_and_bad_yaml() {
        let unknown = registration_options(Some(b"setings: {}\n")).unwrap_err();
        assert!(unknown.to_string().contains("setings"), "{unknown}");
        assert!(registration_options(Some(b"settings: [\n")).is_err());
        assert!(registration_options(Some(&[0xff, 0xfe])).is_err());
    }

    #[test]
    fn empty_or_missing_registration_means_defaults() {
        for text in [None, Some(&b"  \n"[..])] {
            let options = registration_options(text).unwrap();
            assert_eq!(options.limits, LimitsOverride::default());
            assert!(options.settings.as_object().is_some_and(|m| m.is_empty()));
        }
    }
}
