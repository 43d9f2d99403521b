//! The only module that touches wasmtime: engine configuration, the compiled
//! component cache, `InstancePre`s, one fresh `Store` per step attempt, and
//! the limits enforced inside it (memory, epoch deadline, fuel, output size).
//!
//! Architecture invariant: a `Store` lives for exactly one attempt and is
//! dropped after it, so nothing a component does survives into the next
//! attempt or job. No other module names a wasmtime type.

mod bindings;
mod cache;
pub mod limits;
mod runner;
mod stdio;

pub use cache::default_cache_dir;
pub use runner::{StepCapabilities, WasmStepRunner};

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use wasmtime::component::{Component, Linker, types::ComponentItem};
use wasmtime::{Config, InstanceAllocationStrategy, PoolingAllocationConfig, ProfilingStrategy};

use bindings::CapableStepPre as StepPre;
use limits::{EPOCH_TICK, MAX_TABLE_ELEMENTS, MEMORY_CEILING};
use runner::StepState;
use weft_capabilities::{self as capabilities, ImportClass};

/// Set to `1` to have wasmtime write a perf map (`/tmp/perf-<pid>.map`) naming the
/// JIT-compiled guest functions, for profiling components with `perf record`.
pub const PERF_MAP_ENV: &str = "WEFT_PERF_MAP";

/// Component instances the pooling allocator keeps slots for; it bounds how
/// many step attempts can run at once in one host.
pub const DEFAULT_MAX_INSTANCES: u32 = 256;

/// Dirty bytes of a freed instance's linear memory reset in place rather
/// than returned to the kernel (see [`Engine::new`]). It bounds the memory an
/// idle pool slot keeps: a host that ran N attempts at once keeps at most
/// about (N + 100 warm slots) x this much resident when idle. 256 KiB saved
/// as much CPU per no-op step as 1 MiB (bench/results/queue.md) at a quarter
/// of the memory.
const MEMORY_KEEP_RESIDENT: usize = 256 * 1024;

/// Bytes of a freed instance's tables reset in place.
const TABLE_KEEP_RESIDENT: usize = 64 * 1024;

/// How the engine is configured; fixed for the life of a host.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Use the pooling instance allocator (pre-reserved slots; fast
    /// instantiation). Turning it off is for comparison benchmarks.
    pub pooling: bool,
    /// Pool slots, i.e. the most step attempts running at once.
    pub max_instances: u32,
    /// Meter fuel, so workflows can set `limits.fuel`. Costs guest speed.
    pub fuel_metering: bool,
    /// Where compiled components are cached; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Step attempts that may run guest code at once; `0` (the default)
    /// means no bound. An attempt takes a slot before its sandbox is created
    /// and gives it back when its sandbox is dropped, or as soon as it first
    /// waits on anything but the CPU (an HTTP, LLM or email call, a timer),
    /// so I/O-bound steps never queue behind each other. Bounding it near
    /// the number of cores keeps CPU-bound steps from all holding a
    /// sandbox's memory at once while they take turns on the same cores;
    /// the wait for a slot counts against the attempt's timeout.
    pub compute_slots: usize,
    /// Compile components with wasmtime's epoch checks, the only way to stop
    /// a step that computes past its timeout. On by default and in every
    /// host the CLI starts; turning it off is only for measuring what the
    /// checks cost (the steps benchmark): without them a timeout is noticed
    /// only when the step waits on I/O, so a step that loops forever keeps
    /// its thread forever.
    pub deadline_checks: bool,
    /// Items one step attempt may return (default
    /// [`limits::DEFAULT_MAX_OUTPUT_ITEMS`]); more fails the attempt with a
    /// [`weft_scheduler::FailureKind::Limit`] error. It protects the host's
    /// memory: every item costs host memory beyond its payload bytes, which
    /// are all `limits.output` counts.
    pub max_output_items: usize,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            pooling: true,
            max_instances: DEFAULT_MAX_INSTANCES,
            fuel_metering: false,
            cache_dir: default_cache_dir(),
            compute_slots: 0,
            deadline_checks: true,
            max_output_items: limits::DEFAULT_MAX_OUTPUT_ITEMS,
        }
    }
}

/// Why the engine could not start or could not load a component.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Wasmtime rejected the engine configuration.
    #[error("cannot configure the wasm engine: {0}")]
    Config(String),
    /// The bytes are not a valid component, or do not target the step world.
    #[error("plugin `{plugin}` cannot be used as a step: {reason}")]
    InvalidComponent {
        /// The plugin's name.
        plugin: String,
        /// What is wrong, for people.
        reason: String,
    },
}

/// Counters that show what the engine did; tests use them to prove the
/// compile cache works.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Components compiled by Cranelift.
    pub compiled: u64,
    /// Components loaded from the on-disk cache instead.
    pub cache_hits: u64,
}

/// A wasmtime engine set up for step components, with its linker and cache.
pub struct Engine {
    engine: wasmtime::Engine,
    linker: Linker<StepState>,
    cache: cache::CompileCache,
    settings: EngineSettings,
    compiled: AtomicU64,
    cache_hits: AtomicU64,
    ticker_stop: Arc<AtomicBool>,
    /// Bounds the attempts running guest code at once (`None`: unbounded).
    compute_slots: Option<Arc<tokio::sync::Semaphore>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

/// A compiled component, ready to instantiate cheaply for each attempt.
pub struct CompiledPlugin {
    /// The plugin's name (as workflows refer to it).
    pub name: String,
    /// Interfaces and functions it imports, e.g. `weft:plugin/logging@0.1.0`.
    pub imports: Vec<String>,
    /// What it exports.
    pub exports: Vec<String>,
    /// Size of the component in bytes.
    pub size: usize,
    /// Whether it was loaded from the compile cache.
    pub from_cache: bool,
    pre: StepPre<StepState>,
}

impl std::fmt::Debug for CompiledPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledPlugin").field("name", &self.name).field("imports", &self.imports).finish()
    }
}

impl CompiledPlugin {
    /// The grants this plugin's imports need, with the import that needs each.
    pub fn required_grants(&self) -> Vec<(&'static str, String)> {
        self.imports
            .iter()
            .filter_map(|import| match capabilities::classify_import(import) {
                ImportClass::Capability(cap) => cap.grant.map(|grant| (grant, import.clone())),
                _ => None,
            })
            .collect()
    }
}

impl Engine {
    /// Builds an engine and starts its epoch ticker.
    ///
    /// # Errors
    ///
    /// [`EngineError::Config`] when wasmtime rejects the configuration (for
    /// example when the pooling allocator cannot reserve its address space).
    pub fn new(settings: EngineSettings) -> Result<Self, EngineError> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(settings.deadline_checks);
        config.consume_fuel(settings.fuel_metering);
        if std::env::var_os(PERF_MAP_ENV).is_some_and(|v| v == "1") {
            // Names JIT-compiled guest functions in /tmp/perf-<pid>.map so `perf report` can
            // attribute samples inside components. Off by default: it writes a file per process.
            config.profiler(ProfilingStrategy::PerfMap);
        }
        if settings.pooling {
            let mut pool = PoolingAllocationConfig::default();
            let instances = settings.max_instances.max(1);
            pool.total_component_instances(instances)
                .total_core_instances(instances.saturating_mul(8))
                .max_core_instances_per_component(32)
                .total_memories(instances.saturating_mul(2))
                .max_memories_per_component(4)
                .total_tables(instances.saturating_mul(4))
                .max_tables_per_component(8)
                .table_elements(MAX_TABLE_ELEMENTS)
                .total_stacks(instances)
                .max_memory_size(usize::try_from(MEMORY_CEILING).unwrap_or(usize::MAX));
            if PoolingAllocationConfig::is_pagemap_scan_available() {
                // Where the kernel can list a slot's dirty pages (Linux's
                // PAGEMAP_SCAN, 6.7+), up to this much of them are reset in
                // place when an attempt ends, instead of being unmapped with
                // `madvise`: that costs a TLB shootdown on every core, then a
                // page fault per page when the next attempt touches them.
                // Without the scan, keeping memory resident means resetting a
                // fixed prefix of it, which measured slower, so it stays off.
                pool.linear_memory_keep_resident(MEMORY_KEEP_RESIDENT)
                    .table_keep_resident(TABLE_KEEP_RESIDENT)
                    .pagemap_scan(wasmtime::Enabled::Yes);
            }
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        }
        let engine = wasmtime::Engine::new(&config).map_err(|e| EngineError::Config(format!("{e:#}")))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(|e| EngineError::Config(format!("{e:#}")))?;
        runner::add_capabilities_to_linker(&mut linker).map_err(|e| EngineError::Config(format!("{e:#}")))?;
        let cache = cache::CompileCache::new(settings.cache_dir.clone(), &engine);
        let ticker_stop = Arc::new(AtomicBool::new(false));
        spawn_epoch_ticker(engine.clone(), ticker_stop.clone());
        let compute_slots =
            (settings.compute_slots > 0).then(|| Arc::new(tokio::sync::Semaphore::new(settings.compute_slots)));
        Ok(Engine {
            engine,
            linker,
            cache,
            settings,
            compiled: AtomicU64::new(0),
            cache_hits: AtomicU64::new(0),
            ticker_stop,
            compute_slots,
        })
    }

    /// The settings this engine was built with.
    pub fn settings(&self) -> &EngineSettings {
        &self.settings
    }

    /// What the engine has compiled and loaded so far.
    pub fn stats(&self) -> EngineStats {
        EngineStats {
            compiled: self.compiled.load(Ordering::Relaxed),
            cache_hits: self.cache_hits.load(Ordering::Relaxed),
        }
    }

    /// The compile cache directory, if caching is on.
    pub fn cache_dir(&self) -> Option<&std::path::Path> {
        self.cache.dir()
    }

    /// Whether `bytes` are already compiled in the on-disk cache.
    pub fn is_cached(&self, bytes: &[u8]) -> bool {
        self.cache.contains(&self.cache.key(bytes))
    }

    /// Compiles (or loads from the cache) a component and prepares it for
    /// instantiation as a step.
    ///
    /// # Errors
    ///
    /// [`EngineError::InvalidComponent`] when the bytes are not a component,
    /// import something this host does not provide, or do not export the
    /// `step` world's `run` function.
    pub fn load_plugin(&self, name: &str, bytes: &[u8]) -> Result<CompiledPlugin, EngineError> {
        self.load_plugin_keyed(name, bytes, self.cache.key(bytes))
    }

    /// Like [`Engine::load_plugin`] for bytes whose SHA-256 is already known
    /// (an embedded plugin's, from the build): a cache hit then never reads
    /// the bytes, so they are not brought into memory.
    ///
    /// # Errors
    ///
    /// As [`Engine::load_plugin`].
    pub fn load_plugin_with_digest(
        &self,
        name: &str,
        bytes: &[u8],
        digest: &[u8; 32],
    ) -> Result<CompiledPlugin, EngineError> {
        self.load_plugin_keyed(name, bytes, self.cache.key_of_digest(digest))
    }

    fn load_plugin_keyed(&self, name: &str, bytes: &[u8], key: String) -> Result<CompiledPlugin, EngineError> {
        let invalid = |reason: String| EngineError::InvalidComponent { plugin: name.to_string(), reason };
        let cached = self.cache.verified(&key).and_then(|entry| {
            // SAFETY: `Component::deserialize_file` trusts its input to be an
            // artifact produced by `Component::serialize` of a compatible
            // engine, and maps the file, which must not change while mapped.
            // The cache only holds what `store` wrote from `serialize`, keyed
            // by this engine's compatibility hash, and `verified` checked the
            // HMAC written beside it under this install's private key, bound
            // to this cache key: a truncated, tampered, forged or swapped file
            // never reaches this call. The path mapped opens the very file
            // that was checked (`/proc/self/fd/N` on Linux), so renaming
            // another file into place after the check changes nothing.
            // Entries are written under a temporary name (mode 0600) and
            // renamed into place, never rewritten, so the mapped file does not
            // change (unless its owner edits it while a host runs). Wasmtime
            // additionally checks the artifact's header against the engine;
            // the 32 tag bytes after the ELF image are outside every section
            // it reads.
            #[allow(unsafe_code)]
            let component = unsafe { Component::deserialize_file(&self.engine, entry.map_path()) };
            component
                .inspect_err(|e| {
                    tracing::warn!(
                        plugin = name,
                        path = %entry.path().display(),
                        error = %e,
                        "cached component unusable; recompiling"
                    )
                })
                .ok()
        });
        let from_cache = cached.is_some();
        let component = match cached {
            Some(component) => {
                self.cache_hits.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(plugin = name, "loaded compiled component from cache");
                component
            }
            None => {
                let started = std::time::Instant::now();
                let component = Component::new(&self.engine, bytes)
                    .map_err(|e| invalid(format!("not a valid WebAssembly component: {}", root_cause(&e))))?;
                self.compiled.fetch_add(1, Ordering::Relaxed);
                tracing::info!(plugin = name, elapsed = ?started.elapsed(), "compiled component");
                match component.serialize() {
                    Ok(artifact) => self.cache.store(&key, &artifact),
                    Err(e) => tracing::warn!(plugin = name, error = %e, "cannot serialize compiled component"),
                }
                component
            }
        };

        let ty = component.component_type();
        let imports: Vec<String> = ty.imports(&self.engine).map(|(n, _)| n.to_string()).collect();
        let exports: Vec<String> = ty.exports(&self.engine).map(|(n, _)| n.to_string()).collect();
        for import in &imports {
            match capabilities::classify_import(import) {
                ImportClass::Wasi | ImportClass::Capability(_) => {}
                ImportClass::UnsupportedVersion { found } => {
                    return Err(invalid(format!(
                        "it was built against weft:plugin@{found}, but this host supports weft:plugin@{}.{}.x; \
                         rebuild it against the WIT in this host's `wit/` directory",
                        capabilities::SUPPORTED_PACKAGE_VERSION.0,
                        capabilities::SUPPORTED_PACKAGE_VERSION.1
                    )));
                }
                ImportClass::Unknown => {
                    return Err(invalid(format!("it imports `{import}`, which this host does not provide")));
                }
            }
        }
        let exports_run =
            ty.exports(&self.engine).any(|(n, item)| n == "run" && matches!(item.ty, ComponentItem::ComponentFunc(_)));
        if !exports_run {
            return Err(invalid(format!(
                "it does not export a `run` function (exports: {}); build it for the `weft:plugin/step` world",
                if exports.is_empty() { "none".to_string() } else { exports.join(", ") }
            )));
        }
        let instance_pre = self.linker.instantiate_pre(&component).map_err(|e| invalid(format!("{e:#}")))?;
        let pre = StepPre::new(instance_pre)
            .map_err(|e| invalid(format!("its exports do not match the `step` world: {}", root_cause(&e))))?;
        Ok(CompiledPlugin { name: name.to_string(), imports, exports, size: bytes.len(), from_cache, pre })
    }
}

fn root_cause(error: &wasmtime::Error) -> String {
    error.root_cause().to_string()
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until `stop` is set.
fn spawn_epoch_ticker(engine: wasmtime::Engine, stop: Arc<AtomicBool>) {
    let spawned = std::thread::Builder::new().name("weft-epoch".into()).spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(EPOCH_TICK);
            engine.increment_epoch();
        }
    });
    if let Err(error) = spawned {
        tracing::error!(%error, "cannot start the epoch ticker; step deadlines will not be enforced");
    }
}
