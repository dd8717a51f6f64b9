//! The process-wide wasmtime engine, its compile caches, and loading.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use serde_json::Value;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::bindings::generator;
use super::cache::{ArtifactCache, CacheError, FunctionCache};
use super::domain::Digest;
use super::error::LoadError;
use super::limits::Limits;
use super::load::{self, Compiled, LoadOptions, Plugin};
use super::sandbox::{EPOCH_TICK, HostState};

/// Bytes of dirty linear memory the pooling allocator resets in place
/// (instead of handing the pages back to the kernel) when an instance slot is
/// reused, so the next call does not page-fault them in again. With
/// `PAGEMAP_SCAN` (Linux 6.7+) only pages the call actually wrote are reset.
/// Measured with the `plugin_call` bench (median p50 of five runs): no
/// resident memory 122 µs; 2 MiB without the scan 114 µs; 1–2 MiB with the
/// scan 88–91 µs (a call of the sample app dirties a little over 1 MiB).
const MEMORY_KEEP_RESIDENT: usize = 2 << 20;

/// How the runtime is set up; one per process.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// Limits of a plugin whose registration does not say otherwise.
    pub default_limits: Limits,
    /// The most memory any plugin may be given (sizes the instance pool).
    pub max_memory_bytes: usize,
    /// The largest WebAssembly stack any plugin may be given. Plugin calls
    /// run on the calling thread's stack, so this must stay well below the
    /// stack size of the threads that make calls (tokio's blocking threads
    /// have 2 MiB unless configured otherwise).
    pub max_stack_bytes: usize,
    /// Plugin instances that may be live at once per engine (calls beyond fail, retryably).
    pub instance_slots: u32,
    /// Largest component accepted, in bytes.
    pub max_component_bytes: usize,
    /// Where compiled components are kept across restarts; none to compile every time.
    pub cache_dir: Option<PathBuf>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            default_limits: Limits::default(),
            max_memory_bytes: 256 << 20,
            max_stack_bytes: 1 << 20,
            instance_slots: 32,
            max_component_bytes: 32 << 20,
            cache_dir: None,
        }
    }
}

/// The runtime could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// wasmtime refused the configuration (e.g. not enough address space for the pool).
    #[error("cannot set up the WebAssembly engine: {0}")]
    Engine(String),
    /// The default limits do not fit the runtime's ceilings.
    #[error("default plugin limits: {0}")]
    Limits(String),
    /// The artifact cache directory is unusable.
    #[error(transparent)]
    Cache(#[from] CacheError),
}

/// Counters of what loading did, for tests and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RuntimeStats {
    /// Components compiled with Cranelift.
    pub compiled: u64,
    /// Components loaded from the on-disk cache.
    pub disk_hits: u64,
    /// Components found already compiled in memory.
    pub memory_hits: u64,
    /// Engines running (one per distinct stack size in use).
    pub engines: usize,
    /// Functions whose compiled code was found in the on-disk function cache.
    pub functions_reused: u64,
    /// Functions compiled (and put in the function cache, when there is one).
    pub functions_compiled: u64,
}

/// The plugin runtime: the wasmtime engine and the components compiled with it.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    config: RuntimeConfig,
    /// Compiled functions kept on disk, shared by every engine (with a cache
    /// directory only).
    functions: Option<Arc<FunctionCache>>,
    /// The engine for the default stack size, created up front.
    default: Arc<EngineSet>,
    /// Engines for plugins that ask for another stack size, made on first use.
    /// wasmtime fixes the stack size per engine, not per store, so this is
    /// how a per-plugin stack limit is honoured; almost every process has
    /// only the default engine.
    others: Mutex<BTreeMap<usize, Arc<EngineSet>>>,
    stats: Stats,
}

/// One engine, with what is bound to it: the linker, the on-disk cache and
/// the components compiled for it.
struct EngineSet {
    engine: Engine,
    linker: Linker<HostState>,
    cache: Option<ArtifactCache>,
    compiled: Mutex<HashMap<Digest, Weak<Compiled>>>,
}

#[derive(Default)]
struct Stats {
    compiled: AtomicU64,
    disk_hits: AtomicU64,
    memory_hits: AtomicU64,
}

impl EngineSet {
    /// An engine whose calls get `stack_bytes` of WebAssembly stack, its
    /// compiler reusing the functions in `functions`.
    fn new(
        config: &RuntimeConfig,
        stack_bytes: usize,
        functions: Option<&Arc<FunctionCache>>,
    ) -> Result<Self, RuntimeError> {
        let slots = config.instance_slots.max(1);
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(slots)
            .max_core_instances_per_component(32)
            .total_core_instances(slots.saturating_mul(16))
            .max_memories_per_component(2)
            .total_memories(slots.saturating_mul(2))
            .max_tables_per_component(8)
            .total_tables(slots.saturating_mul(8))
            .max_memory_size(config.max_memory_bytes)
            .linear_memory_keep_resident(MEMORY_KEEP_RESIDENT)
            // Falls back to resetting the first MEMORY_KEEP_RESIDENT bytes
            // where the kernel lacks PAGEMAP_SCAN.
            .pagemap_scan(wasmtime::Enabled::Auto)
            .table_keep_resident(64 << 10);

        let mut wasm = wasmtime::Config::new();
        wasm.wasm_component_model(true)
            .epoch_interruption(true)
            .max_wasm_stack(stack_bytes)
            .memory_init_cow(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        if let Some(functions) = functions {
            wasm.enable_incremental_compilation(
                Arc::clone(functions) as Arc<dyn wasmtime::CacheStore>
            )
            .map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        }
        let engine = Engine::new(&wasm).map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;

        let mut linker = Linker::new(&engine);
        generator::Generator::add_to_linker::<HostState, HasSelf<HostState>>(
            &mut linker,
            |state| state,
        )
        .map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;

        let cache = match &config.cache_dir {
            Some(dir) => Some(ArtifactCache::open(dir, &engine)?),
            None => None,
        };

        // Without a ticker no call would ever reach its deadline.
        spawn_epoch_ticker(&engine)
            .map_err(|e| RuntimeError::Engine(format!("cannot start the epoch thread: {e}")))?;
        Ok(EngineSet {
            engine,
            linker,
            cache,
            compiled: Mutex::new(HashMap::new()),
        })
    }
}

impl Runtime {
    /// Create the default engine, its instance pool and its epoch ticker.
    pub fn new(config: RuntimeConfig) -> Result<Self, RuntimeError> {
        let defaults = &config.default_limits;
        if defaults.memory_bytes > config.max_memory_bytes {
            return Err(RuntimeError::Limits(format!(
                "the default memory cap ({} MiB) is above the maximum ({} MiB)",
                defaults.memory_bytes >> 20,
                config.max_memory_bytes >> 20
            )));
        }
        if defaults.stack_bytes > config.max_stack_bytes {
            return Err(RuntimeError::Limits(format!(
                "the default stack ({} KiB) is above the maximum ({} KiB)",
                defaults.stack_bytes >> 10,
                config.max_stack_bytes >> 10
            )));
        }
        let functions = match &config.cache_dir {
            Some(dir) => Some(Arc::new(FunctionCache::open(dir)?)),
            None => None,
        };
        let default = Arc::new(EngineSet::new(
            &config,
            defaults.stack_bytes,
            functions.as_ref(),
        )?);
        Ok(Runtime {
            inner: Arc::new(Inner {
                config,
                functions,
                default,
                others: Mutex::new(BTreeMap::new()),
                stats: Stats::default(),
            }),
        })
    }

    /// The engine of plugins with the default stack size.
    pub fn engine(&self) -> &Engine {
        &self.inner.default.engine
    }

    /// How the runtime was set up.
    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }

    /// What loading has done so far.
    pub fn stats(&self) -> RuntimeStats {
        let stats = &self.inner.stats;
        RuntimeStats {
            compiled: stats.compiled.load(Ordering::Relaxed),
            disk_hits: stats.disk_hits.load(Ordering::Relaxed),
            memory_hits: stats.memory_hits.load(Ordering::Relaxed),
            engines: 1 + self.others().len(),
            functions_reused: self.inner.functions.as_ref().map_or(0, |f| f.counts().0),
            functions_compiled: self.inner.functions.as_ref().map_or(0, |f| f.counts().1),
        }
    }

    fn others(&self) -> std::sync::MutexGuard<'_, BTreeMap<usize, Arc<EngineSet>>> {
        self.inner.others.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The engine for calls with `stack_bytes` of stack, made if needed.
    fn engine_set(&self, stack_bytes: usize) -> Result<Arc<EngineSet>, LoadError> {
        if stack_bytes == self.inner.config.default_limits.stack_bytes {
            return Ok(Arc::clone(&self.inner.default));
        }
        let mut others = self.others();
        if let Some(set) = others.get(&stack_bytes) {
            return Ok(Arc::clone(set));
        }
        let set = Arc::new(
            EngineSet::new(
                &self.inner.config,
                stack_bytes,
                self.inner.functions.as_ref(),
            )
            .map_err(|e| LoadError::Host(e.to_string()))?,
        );
        others.insert(stack_bytes, Arc::clone(&set));
        Ok(set)
    }

    /// Compile (once per digest), check and describe a component (blocking).
    pub fn load(&self, bytes: &[u8], options: &LoadOptions) -> Result<Arc<Plugin>, LoadError> {
        let config = &self.inner.config;
        if bytes.len() > config.max_component_bytes {
            return Err(LoadError::TooLarge {
                bytes: bytes.len(),
                limit: config.max_component_bytes,
            });
        }
        load::check_header(bytes)?;
        let limits = config.default_limits.with(
            &options.limits,
            config.max_memory_bytes,
            config.max_stack_bytes,
        )?;
        let settings = match &options.settings {
            Value::Object(_) => options.settings.to_string(),
            Value::Null => "{}".to_owned(),
            other => {
                return Err(LoadError::Settings(format!(
                    "settings must be a JSON object, not {other}"
                )));
            }
        };

        let engines = self.engine_set(limits.stack_bytes)?;
        let compiled = self.compiled(&engines, bytes)?;
        if let Some(expected) = options.expected_world
            && expected != compiled.world
        {
            return Err(LoadError::WrongWorld {
                expected,
                found: compiled.world,
            });
        }

        let provisional: Arc<str> = Arc::from(format!("{}", compiled.digest).as_str());
        let raw =
            load::describe(&compiled.pre, &limits, &provisional).map_err(LoadError::Describe)?;
        let info = load::check_info(raw, compiled.wit_version.clone())?;
        let label: Arc<str> = Arc::from(info.id.to_string().as_str());
        let marks = load::Marks {
            version_label: crate::decorate::label_value(&info.id.version.to_string()),
            digest: compiled.digest.to_string(),
        };
        Ok(Arc::new(Plugin {
            compiled,
            info,
            settings: Arc::from(settings.as_str()),
            limits,
            label,
            marks,
        }))
    }

    /// [`Runtime::load`] on the blocking pool.
    pub async fn load_async(
        &self,
        bytes: Vec<u8>,
        options: LoadOptions,
    ) -> Result<Arc<Plugin>, LoadError> {
        let runtime = self.clone();
        tokio::task::spawn_blocking(move || runtime.load(&bytes, &options))
            .await
            .unwrap_or_else(|join| {
                Err(LoadError::Host(format!(
                    "the worker loading the plugin stopped: {join}"
                )))
            })
    }

    /// The compiled and linked component for `bytes` in `set`, from memory,
    /// disk or Cranelift.
    fn compiled(&self, set: &EngineSet, bytes: &[u8]) -> Result<Arc<Compiled>, LoadError> {
        let stats = &self.inner.stats;
        let digest = Digest::of(bytes);
        let known = {
            let map = set.compiled.lock().unwrap_or_else(|e| e.into_inner());
            map.get(&digest).and_then(Weak::upgrade)
        };
        if let Some(compiled) = known {
            stats.memory_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(compiled);
        }
        let cached = set
            .cache
            .as_ref()
            .and_then(|cache| cache.load(&set.engine, &digest));
        let component = match cached {
            Some(component) => {
                stats.disk_hits.fetch_add(1, Ordering::Relaxed);
                component
            }
            None => {
                let started = std::time::Instant::now();
                let before = self.inner.functions.as_ref().map(|f| f.counts());
                let component = Component::new(&set.engine, bytes)
                    .map_err(|e| LoadError::Compile(format!("{e:#}")))?;
                stats.compiled.fetch_add(1, Ordering::Relaxed);
                // Counts of every compile meanwhile: almost always this one alone.
                let after = self.inner.functions.as_ref().map(|f| f.counts());
                let (reused, compiled) = match (before, after) {
                    (Some(before), Some(after)) => (
                        Some(after.0.saturating_sub(before.0)),
                        Some(after.1.saturating_sub(before.1)),
                    ),
                    _ => (None, None),
                };
                tracing::info!(
                    %digest,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    functions_reused = reused,
                    functions_compiled = compiled,
                    "compiled a plugin component"
                );
                // Only artifacts of components that compiled are stored; the
                // checks below are cheap and run again on every load.
                if let Some(cache) = &set.cache {
                    cache.store(&digest, &component);
                }
                component
            }
        };
        let (world, wit_version) = load::detect_world(&component, &set.engine)?;
        load::check_imports(&component, &set.engine)?;
        let pre = load::link(&set.linker, &component, world)?;
        let compiled = Arc::new(Compiled {
            digest,
            world,
            wit_version,
            pre,
            size: bytes.len(),
        });
        let mut map = set.compiled.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, weak| weak.strong_count() > 0);
        map.insert(digest, Arc::downgrade(&compiled));
        Ok(compiled)
    }
}

/// Advance the engine's epoch every [`EPOCH_TICK`] until the engine is dropped.
fn spawn_epoch_ticker(engine: &Engine) -> std::io::Result<()> {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("plugin-epoch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(EPOCH_TICK);
                match weak.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            }
        })
        .map(drop)
}
