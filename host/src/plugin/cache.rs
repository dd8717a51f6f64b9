//! On-disk cache of compiled components, keyed by content digest and engine.
//!
//! Loading precompiled code skips Cranelift (≈150 ms per plugin → ≈0.1 ms),
//! but deserialising is only safe for bytes wasmtime itself produced: a
//! crafted file is arbitrary native code. So the cache accepts a directory
//! only when it belongs to this user and no one else can write to it, writes
//! entries atomically with owner-only permissions, and never reads a file it
//! did not name itself. Plugin bytes from outside are always compiled.

use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

use super::domain::Digest;

/// Bumped whenever the cache layout changes.
const LAYOUT: &str = "v1";

/// Why the cache directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// It could not be created or inspected.
    #[error("plugin cache {path}: {source}")]
    Io {
        /// The directory given to [`ArtifactCache::open`].
        path: PathBuf,
        /// What the system said when creating it, reading its metadata or
        /// writing a probe file in it failed.
        #[source]
        source: std::io::Error,
    },
    /// Someone else could plant native code in it.
    #[error(
        "plugin cache {path} is not safe to load native code from: {why}; use a directory only this user can write"
    )]
    Insecure {
        /// The directory given to [`ArtifactCache::open`].
        path: PathBuf,
        /// Which check failed: not a directory, writable by others, or owned
        /// by another user.
        why: String,
    },
}

/// A directory of precompiled components that only this user can write.
#[derive(Debug, Clone)]
pub struct ArtifactCache {
    dir: PathBuf,
    engine_key: String,
}

impl ArtifactCache {
    /// Open (and create) the cache in `dir` for artifacts of `engine`.
    pub fn open(dir: &Path, engine: &Engine) -> Result<Self, CacheError> {
        let io = |source| CacheError::Io {
            path: dir.to_owned(),
            source,
        };
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io)?;
        let meta = fs::metadata(dir).map_err(io)?;
        if !meta.is_dir() {
            return Err(CacheError::Insecure {
                path: dir.to_owned(),
                why: "it is not a directory".into(),
            });
        }
        if meta.mode() & 0o022 != 0 {
            return Err(CacheError::Insecure {
                path: dir.to_owned(),
                why: format!("its mode {:o} lets others write to it", meta.mode() & 0o777),
            });
        }
        // The owner of a file we create is our effective uid.
        let probe = dir.join(format!(".owner-probe-{}", std::process::id()));
        fs::write(&probe, b"").map_err(io)?;
        let ours = fs::metadata(&probe).map_err(io)?.uid();
        let _ = fs::remove_file(&probe);
        if meta.uid() != ours {
            return Err(CacheError::Insecure {
                path: dir.to_owned(),
                why: format!(
                    "it belongs to uid {}, not to this user ({ours})",
                    meta.uid()
                ),
            });
        }
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(ArtifactCache {
            dir: dir.to_owned(),
            engine_key: format!("{:016x}", hasher.finish()),
        })
    }

    /// The directory the artifacts are kept in, as it was opened.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, digest: &Digest) -> PathBuf {
        self.dir.join(format!(
            "{}-{}-{LAYOUT}.cwasm",
            digest.hex(),
            self.engine_key
        ))
    }

    /// The compiled component for `digest`, if this cache holds a usable one.
    pub(crate) fn load(&self, engine: &Engine, digest: &Digest) -> Option<Component> {
        let path = self.path(digest);
        let meta = fs::symlink_metadata(&path).ok()?;
        if !meta.is_file() || meta.mode() & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "ignoring a plugin cache entry with unexpected type or permissions");
            let _ = fs::remove_file(&path);
            return None;
        }
        // SAFETY: the file lies in a directory that only this user can write
        // (checked in `open`), under a name only this cache writes, with
        // owner-only permissions; it was produced by `Component::serialize`
        // of an engine with the same compatibility hash (part of the name),
        // which wasmtime checks again before using it.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => Some(component),
            Err(error) => {
                tracing::warn!(path = %path.display(), error = %format!("{error:#}"), "discarding an unusable plugin cache entry");
                let _ = fs::remove_file(&path);
                None
            }
        }
    }

    /// Store the compiled `component` for `digest`; failures are logged, not fatal.
    pub(crate) fn store(&self, digest: &Digest, component: &Component) {
        if let Err(error) = self.try_store(digest, component) {
            tracing::warn!(dir = %self.dir.display(), error = %error, "cannot write to the plugin cache");
        }
    }

    fn try_store(&self, digest: &Digest, component: &Component) -> Result<(), String> {
        let bytes = component.serialize().map_err(|e| format!("{e:#}"))?;
        let final_path = self.path(digest);
        let temp = self
            .dir
            .join(format!(".{}-{}.tmp", digest.hex(), std::process::id()));
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temp)
            .map_err(|e| e.to_string())?;
        // `mode` is filtered by the umask; owner-only is what `load` expects.
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(|e| e.to_string())?;
        file.write_all(&bytes).map_err(|e| e.to_string())?;
        file.sync_all().map_err(|e| e.to_string())?;
        drop(file);
        fs::rename(&temp, &final_path).map_err(|e| {
            let _ = fs::remove_file(&temp);
            e.to_string()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_directory_others_can_write() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("insecure");
        fs::create_dir_all(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
        let error = ArtifactCache::open(&dir, &Engine::default()).unwrap_err();
        assert!(error.to_string().contains("lets others write"), "{error}");
    }

    #[test]
    fn creates_an_owner_only_directory() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("create").join("nested");
        let cache = ArtifactCache::open(&dir, &Engine::default()).unwrap();
        assert_eq!(fs::metadata(cache.dir()).unwrap().mode() & 0o777, 0o700);
    }

    #[test]
    fn ignores_entries_with_loose_permissions() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("loose");
        let engine = Engine::default();
        let cache = ArtifactCache::open(&dir, &engine).unwrap();
        let digest = Digest::of(b"x");
        let path = cache.path(&digest);
        fs::write(&path, b"not an artifact").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(cache.load(&engine, &digest).is_none());
        assert!(!path.exists(), "the suspicious entry is removed");
    }

    #[test]
    fn discards_corrupt_entries() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("corrupt");
        let engine = Engine::default();
        let cache = ArtifactCache::open(&dir, &engine).unwrap();
        let digest = Digest::of(b"y");
        let path = cache.path(&digest);
        fs::write(&path, b"garbage").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(cache.load(&engine, &digest).is_none());
        assert!(!path.exists());
    }
}
