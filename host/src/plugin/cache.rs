//! On-disk caches of compiled code: whole components, keyed by content digest
//! and engine, and Cranelift's compiled functions, keyed by their code, so that
//! a new version of a plugin compiles only the functions that changed.
//!
//! Loading precompiled code skips Cranelift (≈150 ms per plugin → ≈0.1 ms),
//! but deserialising is only safe for bytes wasmtime itself produced: a
//! crafted file is arbitrary native code. So the cache accepts a directory
//! only when it belongs to this user and no one else can write to it, writes
//! entries atomically with owner-only permissions, and never reads a file it
//! did not name itself. Plugin bytes from outside are always compiled.

use std::borrow::Cow;
use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest as _, Sha256};

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
///
/// It is bounded: a start that finds its artifacts over [`ARTIFACTS_BUDGET`]
/// bytes removes the least recently used down to half of it, and a running
/// operator stores no more once it is reached (an emptyDir over its
/// `sizeLimit` gets the pod evicted).
#[derive(Debug, Clone)]
pub struct ArtifactCache {
    dir: PathBuf,
    engine_key: String,
    budget: std::sync::Arc<Budget>,
}

/// The bytes a cache may take: each write reserves its size first, so writers
/// at once never take it past the limit together.
#[derive(Debug)]
struct Budget {
    limit: u64,
    used: AtomicU64,
}

impl Budget {
    fn new(limit: u64, used: u64) -> Self {
        Budget {
            limit,
            used: AtomicU64::new(used),
        }
    }

    /// Take `len` bytes, if they fit.
    fn reserve(&self, len: u64) -> bool {
        if self.used.fetch_add(len, Ordering::Relaxed) + len > self.limit {
            self.used.fetch_sub(len, Ordering::Relaxed);
            return false;
        }
        true
    }
}

/// Most bytes of compiled components kept (≈ 0.8 MiB each): with the
/// functions' [`FUNCTIONS_BUDGET`], inside the 256 MiB volume the chart gives
/// the plugin cache.
pub const ARTIFACTS_BUDGET: u64 = 160 << 20;

/// Create `dir` (owner-only) if needed, and make sure only this user can
/// write to it: native code is loaded from it.
fn secure_dir(dir: &Path) -> Result<(), CacheError> {
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
    Ok(())
}

/// Whether `path` is a plain file only its owner can read or write, as this
/// cache writes its entries; anything else is removed, never read.
fn owner_only_file(path: &Path) -> bool {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return false;
    };
    if !meta.is_file() || meta.mode() & 0o077 != 0 {
        tracing::warn!(path = %path.display(), "ignoring a plugin cache entry with unexpected type or permissions");
        let _ = fs::remove_file(path);
        return false;
    }
    true
}

/// Write `bytes` to `path` atomically (a temporary file renamed), owner-only.
fn write_entry(dir: &Path, path: &Path, bytes: &[u8], sync: bool) -> std::io::Result<()> {
    static TEMPORARY: AtomicU64 = AtomicU64::new(0);
    let temp = dir.join(format!(
        ".{}-{}.tmp",
        std::process::id(),
        TEMPORARY.fetch_add(1, Ordering::Relaxed)
    ));
    let written = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temp)?;
        // `mode` is filtered by the umask; owner-only is what reading expects.
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
        file.write_all(bytes)?;
        if sync {
            file.sync_all()?;
        }
        drop(file);
        fs::rename(&temp, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temp);
    }
    written
}

impl ArtifactCache {
    /// Open (and create) the cache in `dir` for artifacts of `engine`.
    pub fn open(dir: &Path, engine: &Engine) -> Result<Self, CacheError> {
        Self::open_bounded(dir, engine, ARTIFACTS_BUDGET)
    }

    fn open_bounded(dir: &Path, engine: &Engine, budget: u64) -> Result<Self, CacheError> {
        secure_dir(dir)?;
        let mut artifacts: Vec<(PathBuf, u64, std::time::SystemTime)> = fs::read_dir(dir)
            .map_err(|source| CacheError::Io {
                path: dir.to_owned(),
                source,
            })?
            .filter_map(Result::ok)
            .filter(|entry| {
                entry
                    .file_name()
                    .to_string_lossy()
                    .ends_with(&format!("-{LAYOUT}.cwasm"))
            })
            .filter_map(|entry| {
                let meta = entry.metadata().ok()?;
                Some((entry.path(), meta.len(), meta.modified().ok()?))
            })
            .collect();
        let mut bytes: u64 = artifacts.iter().map(|(_, len, _)| len).sum();
        if bytes > budget {
            // Least recently used first: a load marks an artifact used.
            artifacts.sort_by_key(|(_, _, used)| *used);
            let before = bytes;
            for (path, len, _) in &artifacts {
                if bytes <= budget / 2 {
                    break;
                }
                if fs::remove_file(path).is_ok() {
                    bytes -= len;
                }
            }
            tracing::info!(dir = %dir.display(), before, after = bytes, "removed the least recently used compiled plugins");
        }
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(ArtifactCache {
            dir: dir.to_owned(),
            engine_key: format!("{:016x}", hasher.finish()),
            budget: std::sync::Arc::new(Budget::new(budget, bytes)),
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
        if !owner_only_file(&path) {
            return None;
        }
        // SAFETY: the file lies in a directory that only this user can write
        // (checked in `open`), under a name only this cache writes, with
        // owner-only permissions; it was produced by `Component::serialize`
        // of an engine with the same compatibility hash (part of the name),
        // which wasmtime checks again before using it.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => {
                // Used: the last to be removed when the cache is over its budget.
                let _ = fs::File::options()
                    .write(true)
                    .open(&path)
                    .and_then(|file| file.set_modified(std::time::SystemTime::now()));
                Some(component)
            }
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
        if !self.budget.reserve(bytes.len() as u64) {
            tracing::info!(dir = %self.dir.display(), budget = self.budget.limit, %digest, "the plugin cache is full: this compiled plugin is not kept (the next start removes the least recently used)");
            return Ok(());
        }
        write_entry(&self.dir, &self.path(digest), &bytes, true).map_err(|e| e.to_string())
    }
}

/// Cranelift's incremental compilation cache, on disk in the plugin cache: a
/// compiled function is kept under the hash of its code (with the compiler's
/// version and target), so a component whose functions were compiled before,
/// in any plugin or version, reuses them instead of compiling them again. A
/// new version of a plugin mostly changes a few functions; its dependencies
/// (the standard library, serde, the bindings) are the bulk of its code.
///
/// Entries are native code, trusted as the artifacts are: owner-only files in
/// a directory only this user can write. Each carries the SHA-256 of its
/// content, so a torn write (they are not synced, being many and small) reads
/// as a miss, never as code.
///
/// It is bounded: once its entries reach [`FUNCTIONS_BUDGET`] bytes it stores
/// no more, and the next start empties it. (The built-ins alone are ≈ 7 MiB,
/// a new version of a plugin adds a few hundred KiB.)
#[derive(Debug)]
pub struct FunctionCache {
    dir: PathBuf,
    budget: Budget,
    full: std::sync::atomic::AtomicBool,
    reused: AtomicU64,
    compiled: AtomicU64,
}

/// Bumped whenever the entries' layout changes.
const FUNCTIONS: &str = "functions-v1";

/// Most bytes of compiled functions kept: a quarter of the 256 MiB volume the
/// chart gives the plugin cache, the rest being the components' artifacts.
pub const FUNCTIONS_BUDGET: u64 = 64 << 20;

impl FunctionCache {
    /// Open (and create) the function cache inside the plugin cache `dir`.
    pub fn open(dir: &Path) -> Result<Self, CacheError> {
        Self::open_bounded(dir, FUNCTIONS_BUDGET)
    }

    fn open_bounded(dir: &Path, budget: u64) -> Result<Self, CacheError> {
        secure_dir(dir)?;
        let dir = dir.join(FUNCTIONS);
        secure_dir(&dir)?;
        let io = |source| CacheError::Io {
            path: dir.clone(),
            source,
        };
        let files: Vec<(PathBuf, u64)> = fs::read_dir(&dir)
            .map_err(io)?
            .filter_map(Result::ok)
            .filter_map(|entry| Some((entry.path(), entry.metadata().ok()?.len())))
            .collect();
        let mut bytes: u64 = files.iter().map(|(_, len)| len).sum();
        if bytes >= budget {
            tracing::info!(dir = %dir.display(), bytes, "emptying the full cache of compiled functions");
            for (path, _) in &files {
                let _ = fs::remove_file(path);
            }
            bytes = 0;
        }
        Ok(FunctionCache {
            dir,
            budget: Budget::new(budget, bytes),
            full: std::sync::atomic::AtomicBool::new(false),
            reused: AtomicU64::new(0),
            compiled: AtomicU64::new(0),
        })
    }

    /// Functions found compiled so far, and functions compiled and stored.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.reused.load(Ordering::Relaxed),
            self.compiled.load(Ordering::Relaxed),
        )
    }

    fn path(&self, key: &[u8]) -> PathBuf {
        let mut name = String::with_capacity(key.len() * 2);
        for byte in key {
            name.push_str(&format!("{byte:02x}"));
        }
        self.dir.join(name)
    }
}

impl wasmtime::CacheStore for FunctionCache {
    fn get(&self, key: &[u8]) -> Option<Cow<'_, [u8]>> {
        let path = self.path(key);
        if !owner_only_file(&path) {
            return None;
        }
        let mut bytes = fs::read(&path).ok()?;
        let sum_at = bytes.len().checked_sub(32)?;
        if Sha256::digest(&bytes[..sum_at]).as_slice() != &bytes[sum_at..] {
            tracing::warn!(path = %path.display(), "discarding a torn or altered compiled-function cache entry");
            let _ = fs::remove_file(&path);
            return None;
        }
        bytes.truncate(sum_at);
        self.reused.fetch_add(1, Ordering::Relaxed);
        Some(Cow::Owned(bytes))
    }

    fn insert(&self, key: &[u8], mut value: Vec<u8>) -> bool {
        self.compiled.fetch_add(1, Ordering::Relaxed);
        let sum = Sha256::digest(&value);
        value.extend_from_slice(&sum);
        if !self.budget.reserve(value.len() as u64) {
            if !self.full.swap(true, Ordering::Relaxed) {
                tracing::info!(dir = %self.dir.display(), budget = self.budget.limit, "the cache of compiled functions is full: no more are stored until the next start empties it");
            }
            return false;
        }
        match write_entry(&self.dir, &self.path(key), &value, false) {
            Ok(()) => true,
            Err(error) => {
                tracing::debug!(dir = %self.dir.display(), %error, "cannot store a compiled function");
                false
            }
        }
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

    #[test]
    fn a_function_entry_is_read_back_only_whole_and_owner_only() {
        use wasmtime::CacheStore;
        let temp = tempfile::tempdir().unwrap();
        let functions = FunctionCache::open(&temp.path().join("plugins")).unwrap();
        let dir = temp.path().join("plugins").join(FUNCTIONS);
        assert_eq!(fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
        let (key, value) = ([7u8; 32], b"compiled code".to_vec());
        assert!(functions.get(&key).is_none());
        assert!(functions.insert(&key, value.clone()));
        assert_eq!(functions.get(&key).as_deref(), Some(&value[..]));
        assert_eq!(functions.counts(), (1, 1));
        let path = functions.path(&key);
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);

        // Torn: one byte short, so its checksum fails.
        let whole = fs::read(&path).unwrap();
        fs::write(&path, &whole[..whole.len() - 1]).unwrap();
        assert!(functions.get(&key).is_none());
        assert!(!path.exists(), "the torn entry is removed");
        // Altered: same length, another byte.
        let mut altered = whole.clone();
        altered[0] ^= 1;
        fs::write(&path, &altered).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(functions.get(&key).is_none());
        // Readable by others, or shorter than a checksum.
        fs::write(&path, &whole).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(functions.get(&key).is_none());
        assert!(!path.exists());
        fs::write(&path, b"short").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(functions.get(&key).is_none());
        assert_eq!(functions.counts(), (1, 1), "none of them was a hit");
    }

    #[test]
    fn artifacts_are_bounded_and_the_least_recently_used_removed() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("plugins");
        let engine = Engine::default();
        // An empty component: its artifact is a few KiB.
        let component = Component::new(&engine, b"\0asm\x0d\x00\x01\x00").unwrap();
        let size = component.serialize().unwrap().len() as u64;
        let cache = ArtifactCache::open_bounded(&dir, &engine, 3 * size).unwrap();
        let digests: Vec<Digest> = [&b"a"[..], b"b", b"c", b"d"]
            .into_iter()
            .map(Digest::of)
            .collect();
        for digest in &digests {
            cache.store(digest, &component);
        }
        let kept = |cache: &ArtifactCache| -> Vec<bool> {
            digests.iter().map(|d| cache.path(d).exists()).collect()
        };
        assert_eq!(
            kept(&cache),
            [true, true, true, false],
            "over the budget: not kept"
        );

        // All used a minute ago, then `a` now: a start over a smaller budget
        // removes the others, down to half of it.
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        for digest in &digests[..3] {
            let file = fs::File::options()
                .write(true)
                .open(cache.path(digest))
                .unwrap();
            file.set_modified(old).unwrap();
        }
        assert!(cache.load(&engine, &digests[0]).is_some());
        let smaller = ArtifactCache::open_bounded(&dir, &engine, 5 * size / 2).unwrap();
        assert_eq!(kept(&smaller), [true, false, false, false]);
        assert!(smaller.load(&engine, &digests[0]).is_some());
    }

    #[test]
    fn the_function_cache_is_bounded_and_emptied_when_full() {
        use wasmtime::CacheStore;
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("plugins");
        // Each entry is its 100 bytes and a 32-byte checksum: two fit in 300.
        let functions = FunctionCache::open_bounded(&dir, 300).unwrap();
        assert!(functions.insert(&[1], vec![0; 100]));
        assert!(functions.insert(&[2], vec![0; 100]));
        assert!(!functions.insert(&[3], vec![0; 100]), "over the budget");
        assert!(functions.get(&[1]).is_some() && functions.get(&[3]).is_none());
        assert_eq!(fs::read_dir(dir.join(FUNCTIONS)).unwrap().count(), 2);
        // Below the budget at the next start: kept.
        let next = FunctionCache::open_bounded(&dir, 300).unwrap();
        assert!(next.get(&[2]).is_some());
        // At or over it: emptied, and filled again.
        let full = FunctionCache::open_bounded(&dir, 264).unwrap();
        assert_eq!(fs::read_dir(dir.join(FUNCTIONS)).unwrap().count(), 0);
        assert!(full.get(&[1]).is_none());
        assert!(full.insert(&[1], vec![0; 100]));
    }

    #[test]
    fn a_function_cache_others_can_write_is_refused() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("plugins");
        fs::create_dir_all(dir.join(FUNCTIONS)).unwrap();
        fs::set_permissions(dir.join(FUNCTIONS), fs::Permissions::from_mode(0o777)).unwrap();
        let error = FunctionCache::open(&dir).unwrap_err();
        assert!(error.to_string().contains("lets others write"), "{error}");
    }
}
