//! The embeddable API: build a [`Host`] (engine settings, plugin sources),
//! load workflows (parse, compile their plugins, check grants and ceilings),
//! and run jobs. The `weft` binary is a thin user of this module.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use crate::capabilities::{CapabilityConfig, Services};
use crate::engine::{
    CompiledPlugin, Engine, EngineError, EngineSettings, EngineStats, StepCapabilities, WasmStepRunner, limits,
};
use crate::item::Item;
use crate::load_check::{self, Ceilings, HostFacts, PluginFacts};
use crate::scheduler::{JobOptions, JobOutcome, Scheduler, SchedulerSettings};
use crate::workflow::{self, Diagnostic, Workflow, WorkflowError};

/// Where a plugin's component bytes come from.
#[derive(Debug, Clone)]
pub enum PluginSource {
    /// Compiled into this binary.
    Embedded(&'static [u8]),
    /// Given by the embedding program.
    Bytes(Arc<[u8]>),
    /// A `.wasm` file, read when first needed.
    File(PathBuf),
}

/// Why a host could not be built, a workflow loaded, or a plugin read.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The workflow file is invalid (every problem is listed).
    #[error(transparent)]
    Workflow(#[from] WorkflowError),
    /// The workflow file could not be read.
    #[error("cannot read workflow {path}: {source}")]
    ReadWorkflow {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A plugin file could not be read.
    #[error("cannot read plugin `{plugin}` from {path}: {source}")]
    ReadPlugin {
        /// The plugin's name.
        plugin: String,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The engine could not start or rejected a component.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// No plugin of that name is registered.
    #[error("unknown plugin `{0}`")]
    UnknownPlugin(String),
}

/// Configures and builds a [`Host`].
///
/// ```no_run
/// # async fn demo() -> Result<(), weft::HostError> {
/// use weft::{HostBuilder, Item};
///
/// let host = HostBuilder::new().build()?;
/// let workflow = host.load_workflow_file("workflows/pdf-digest.yaml")?;
/// let pdf = std::fs::read("document.pdf").expect("a PDF to read");
/// let outcome = host.run_job(&workflow, "job-1", vec![Item::bytes(pdf)]).await;
/// println!("{}", serde_json::to_string_pretty(&outcome.report).expect("reports serialise"));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct HostBuilder {
    engine: EngineSettings,
    scheduler: SchedulerSettings,
    plugins: BTreeMap<String, PluginSource>,
    capabilities: CapabilityConfig,
    require_secrets: bool,
}

impl Default for HostBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl HostBuilder {
    /// A builder with default engine settings and the standard step library.
    pub fn new() -> Self {
        let plugins = crate::bundled::builtin_plugins()
            .map(|(name, bytes)| (name.to_string(), PluginSource::Embedded(bytes)))
            .collect();
        HostBuilder {
            engine: EngineSettings::default(),
            scheduler: SchedulerSettings::default(),
            plugins,
            capabilities: CapabilityConfig::default(),
            require_secrets: true,
        }
    }

    /// Whether loading a workflow fails when it grants a secret this host
    /// has no value for (the default). `weft validate` turns it off: a
    /// file is valid whatever the machine checking it holds.
    pub fn require_secrets(mut self, required: bool) -> Self {
        self.require_secrets = required;
        self
    }

    /// Configures what steps may reach when granted: the LLM endpoint, the
    /// SMTP relay, HTTP bounds and where secrets come from. Without it
    /// every capability but logging answers "not configured" or "denied".
    pub fn capabilities(mut self, config: CapabilityConfig) -> Self {
        self.capabilities = config;
        self
    }

    /// Replaces the engine settings (pooling, fuel metering, cache directory).
    pub fn engine_settings(mut self, settings: EngineSettings) -> Self {
        self.engine = settings;
        self
    }

    /// Replaces the scheduler settings (default timeout).
    pub fn scheduler_settings(mut self, settings: SchedulerSettings) -> Self {
        self.scheduler = settings;
        self
    }

    /// Registers (or replaces) a plugin under `name`.
    pub fn plugin(mut self, name: impl Into<String>, source: PluginSource) -> Self {
        self.plugins.insert(name.into(), source);
        self
    }

    /// Removes the standard step library (only explicitly added plugins remain).
    pub fn without_builtin_plugins(mut self) -> Self {
        self.plugins.retain(|_, source| !matches!(source, PluginSource::Embedded(_)));
        self
    }

    /// Builds the host.
    ///
    /// # Errors
    ///
    /// [`HostError::Engine`] when the wasm engine cannot be configured.
    pub fn build(self) -> Result<Host, HostError> {
        let engine = Arc::new(Engine::new(self.engine)?);
        Ok(Host {
            engine,
            scheduler: self.scheduler,
            sources: Mutex::new(self.plugins),
            compiled: Mutex::new(HashMap::new()),
            services: Arc::new(Services::new(self.capabilities)),
            require_secrets: self.require_secrets,
        })
    }
}

/// A Weft host: an engine, its plugins, and the scheduler settings.
#[derive(Debug)]
pub struct Host {
    engine: Arc<Engine>,
    scheduler: SchedulerSettings,
    sources: Mutex<BTreeMap<String, PluginSource>>,
    compiled: Mutex<HashMap<String, Arc<CompiledPlugin>>>,
    services: Arc<Services>,
    require_secrets: bool,
}

/// A workflow that passed every check against this host, with its plugins
/// compiled; run it any number of times with [`Host::run_job`].
#[derive(Clone)]
pub struct LoadedWorkflow {
    workflow: Arc<Workflow>,
    runner: Arc<WasmStepRunner>,
    warnings: Vec<Diagnostic>,
    secrets: BTreeSet<String>,
    revision: String,
}

impl std::fmt::Debug for LoadedWorkflow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedWorkflow").field("workflow", &self.workflow.name).finish_non_exhaustive()
    }
}

impl LoadedWorkflow {
    /// The validated workflow.
    pub fn workflow(&self) -> &Workflow {
        &self.workflow
    }

    /// Problems found at load that do not stop the workflow (a grant that
    /// can have no effect), with `file:line:column`.
    pub fn warnings(&self) -> &[Diagnostic] {
        &self.warnings
    }

    /// The secrets its steps are granted, sorted, each once: what a host
    /// must hold to run it.
    pub fn secrets_needed(&self) -> Vec<&str> {
        self.secrets.iter().map(String::as_str).collect()
    }

    /// Which text of the workflow this is: the first 16 hex digits of the
    /// SHA-256 of its file. A queued job is pinned to the revision it
    /// started under (its checkpoints are outputs of that graph).
    pub fn revision(&self) -> &str {
        &self.revision
    }
}

/// What `weft plugins` shows about one plugin.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PluginInfo {
    /// The name workflows use.
    pub name: String,
    /// Component size in bytes.
    pub size: usize,
    /// Its imports.
    pub imports: Vec<String>,
    /// Its exports.
    pub exports: Vec<String>,
    /// The grants its capability imports can use: a step may need some of
    /// them, depending on what its config asks the plugin to do.
    pub required_grants: Vec<String>,
}

impl Host {
    /// What the engine compiled and loaded from cache so far.
    pub fn engine_stats(&self) -> EngineStats {
        self.engine.stats()
    }

    /// The names of the registered plugins.
    pub fn plugin_names(&self) -> Vec<String> {
        self.sources.lock().unwrap_or_else(PoisonError::into_inner).keys().cloned().collect()
    }

    /// The ceilings a workflow's limits are checked against.
    pub fn ceilings(&self) -> Ceilings {
        Ceilings {
            memory: limits::MEMORY_CEILING,
            fuel: None,
            output: limits::OUTPUT_CEILING,
            timeout: limits::TIMEOUT_CEILING,
            map_concurrency: limits::MAP_CONCURRENCY_CEILING,
        }
    }

    /// Compiles (or loads from cache) a registered plugin.
    ///
    /// # Errors
    ///
    /// [`HostError::UnknownPlugin`], [`HostError::ReadPlugin`], or
    /// [`HostError::Engine`] when the component cannot be used as a step.
    pub fn compile_plugin(&self, name: &str) -> Result<Arc<CompiledPlugin>, HostError> {
        if let Some(done) = self.compiled.lock().unwrap_or_else(PoisonError::into_inner).get(name) {
            return Ok(done.clone());
        }
        let source = self
            .sources
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
            .ok_or_else(|| HostError::UnknownPlugin(name.to_string()))?;
        let compiled = match source {
            PluginSource::Embedded(bytes) => match crate::bundled::builtin_digest(bytes) {
                Some(digest) => self.engine.load_plugin_with_digest(name, bytes, &digest)?,
                None => self.engine.load_plugin(name, bytes)?,
            },
            PluginSource::Bytes(bytes) => self.engine.load_plugin(name, &bytes)?,
            PluginSource::File(path) => {
                let bytes = std::fs::read(&path).map_err(|source| HostError::ReadPlugin {
                    plugin: name.to_string(),
                    path: path.clone(),
                    source,
                })?;
                self.engine.load_plugin(name, &bytes)?
            }
        };
        let compiled = Arc::new(compiled);
        self.compiled.lock().unwrap_or_else(PoisonError::into_inner).insert(name.to_string(), compiled.clone());
        Ok(compiled)
    }

    /// Describes every registered plugin (compiling those not yet compiled).
    ///
    /// # Errors
    ///
    /// As [`Host::compile_plugin`].
    pub fn plugins(&self) -> Result<Vec<PluginInfo>, HostError> {
        self.plugin_names()
            .iter()
            .map(|name| {
                let plugin = self.compile_plugin(name)?;
                Ok(PluginInfo {
                    name: name.clone(),
                    size: plugin.size,
                    imports: plugin.imports.clone(),
                    exports: plugin.exports.clone(),
                    required_grants: plugin.required_grants().into_iter().map(|(g, _)| g.to_string()).collect(),
                })
            })
            .collect()
    }

    /// Reads, validates and prepares a workflow file. Plugins named as a
    /// path ending in `.wasm` are resolved relative to the file.
    ///
    /// # Errors
    ///
    /// [`HostError::ReadWorkflow`] when the file cannot be read, and
    /// [`HostError::Workflow`] listing every problem found otherwise.
    pub fn load_workflow_file(&self, path: impl AsRef<Path>) -> Result<LoadedWorkflow, HostError> {
        let path = path.as_ref();
        // Read one byte past the cap, so parsing reports a file that is too
        // large without the host holding all of it.
        let read_error = |source| HostError::ReadWorkflow { path: path.to_path_buf(), source };
        let file = std::fs::File::open(path).map_err(read_error)?;
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::Read::take(file, workflow::MAX_FILE_BYTES as u64 + 1), &mut bytes)
            .map_err(read_error)?;
        let text = if bytes.len() > workflow::MAX_FILE_BYTES {
            String::from_utf8_lossy(&bytes).into_owned() // only its size is reported
        } else {
            String::from_utf8(bytes)
                .map_err(|e| read_error(std::io::Error::new(std::io::ErrorKind::InvalidData, e.utf8_error())))?
        };
        let base = path.parent().unwrap_or(Path::new("."));
        self.load_workflow_str(&path.display().to_string(), &text, base)
    }

    /// Validates and prepares a workflow from text; `source_name` appears in
    /// messages and `base_dir` resolves `.wasm` plugin paths.
    ///
    /// # Errors
    ///
    /// [`HostError::Workflow`] listing every problem found.
    pub fn load_workflow_str(
        &self,
        source_name: &str,
        text: &str,
        base_dir: &Path,
    ) -> Result<LoadedWorkflow, HostError> {
        // File-level problems and host-level ones (unknown plugins, grants,
        // ceilings) are reported together, so one run shows every mistake.
        let (workflow, mut problems) = workflow::parse_partial(source_name, text)?;
        {
            let mut sources = self.sources.lock().unwrap_or_else(PoisonError::into_inner);
            for step in workflow.steps.iter().filter(|step| step.plugin.ends_with(".wasm")) {
                sources.entry(step.plugin.clone()).or_insert_with(|| PluginSource::File(base_dir.join(&step.plugin)));
            }
        }
        let mut plugins: BTreeMap<String, PluginFacts> =
            self.plugin_names().into_iter().map(|name| (name, PluginFacts::Registered)).collect();
        let mut compiled = HashMap::new();
        for step in &workflow.steps {
            let Some(facts) = plugins.get_mut(&step.plugin) else { continue };
            match self.compile_plugin(&step.plugin) {
                Ok(plugin) => {
                    *facts = PluginFacts::Usable { imports: plugin.imports.clone() };
                    compiled.insert(step.plugin.clone(), plugin);
                }
                Err(error) => *facts = PluginFacts::Unusable(error.to_string()),
            }
        }
        let has_secret = |name: &str| self.services.has_secret(name);
        let facts = HostFacts {
            plugins,
            ceilings: self.ceilings(),
            fuel_metering: self.engine.settings().fuel_metering,
            has_secret: self.require_secrets.then_some(&has_secret as &dyn Fn(&str) -> bool),
        };
        let checked = load_check::check(&workflow, &facts);
        problems.extend(checked.errors);
        if !problems.is_empty() {
            problems.sort_by_key(|d| d.span);
            return Err(HostError::Workflow(WorkflowError::Invalid {
                source_name: workflow.source.clone(),
                diagnostics: problems,
            }));
        }
        let workflow_name: Arc<str> = Arc::from(workflow.name.as_str());
        let secrets = checked.grants.values().flat_map(|g| g.secrets.iter().cloned()).collect();
        let mut grants = checked.grants;
        let mut plugins = HashMap::new();
        let mut configs = HashMap::new();
        let mut capabilities = HashMap::new();
        for step in &workflow.steps {
            if let Some(plugin) = compiled.get(&step.plugin) {
                plugins.insert(step.id.clone(), plugin.clone());
            }
            configs.insert(step.id.clone(), Arc::from(step.config.to_string()));
            capabilities.insert(
                step.id.clone(),
                StepCapabilities {
                    workflow: workflow_name.clone(),
                    grants: Arc::new(grants.remove(&step.id).unwrap_or_default()),
                    services: self.services.clone(),
                },
            );
        }
        let runner = Arc::new(WasmStepRunner::new(self.engine.clone(), plugins, configs, capabilities));
        let revision = {
            use sha2::Digest as _;
            weft_core::hex(&sha2::Sha256::digest(text.as_bytes())[..8])
        };
        Ok(LoadedWorkflow { workflow: Arc::new(workflow), runner, warnings: checked.warnings, secrets, revision })
    }

    /// Runs one job through a loaded workflow. Failures of steps are part of
    /// the outcome, never an `Err`: the report says which step failed and why.
    pub async fn run_job(&self, workflow: &LoadedWorkflow, job_id: &str, input: Vec<Item>) -> JobOutcome {
        self.run_job_with(workflow, job_id, input, JobOptions::default()).await
    }

    /// Like [`Host::run_job`], resuming from checkpoints and saving new ones
    /// (see [`JobOptions`]).
    pub async fn run_job_with(
        &self,
        workflow: &LoadedWorkflow,
        job_id: &str,
        input: Vec<Item>,
        options: JobOptions,
    ) -> JobOutcome {
        Scheduler::new(workflow.runner.clone(), self.scheduler.clone())
            .run_job_with(&workflow.workflow, job_id, input, options)
            .await
    }
}
