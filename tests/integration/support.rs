//! Shared helpers: hosts with the test components registered, and a fresh
//! compile cache per test so tests never share state.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use weft::engine::EngineSettings;
use weft::scheduler::JobOutcome;
use weft::{Host, HostBuilder, Item, LoadedWorkflow, PluginSource};

/// Where host/build.rs put the compiled components.
pub const COMPONENTS_DIR: &str = env!("WEFT_COMPONENTS_DIR");

/// The misbehaving and helper components under `tests/components/`.
pub const TEST_COMPONENTS: &[&str] = &[
    "spin",
    "memory-hog",
    "deep-recursion",
    "trap",
    "huge-output",
    "sandbox-probe",
    "flaky",
    "rate-limited",
    "noop",
    "echo-config",
    "sleep",
    "capability-probe",
    "misbehaving-python",
    "misbehaving-js",
];

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("host/ has a parent").to_path_buf()
}

/// The shared PDF corpus: `$WEFT_PDF_CORPUS`, else `../shared/corpus/pdf`
/// beside the repository, else this machine's `/work/shared/corpus/pdf` (for
/// a clone made elsewhere, such as a temporary directory).
pub fn corpus_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("WEFT_PDF_CORPUS") {
        return PathBuf::from(dir);
    }
    let beside = repo_root().join("../shared/corpus/pdf");
    if beside.is_dir() { beside } else { PathBuf::from("/work/shared/corpus/pdf") }
}

pub fn component_path(name: &str) -> PathBuf {
    Path::new(COMPONENTS_DIR).join(format!("{}.wasm", name.replace('-', "_")))
}

/// A host with the standard library plus every test component, caching
/// compiled code in `cache_dir`.
pub fn host_with_cache(cache_dir: Option<&Path>) -> Host {
    let settings = EngineSettings {
        cache_dir: cache_dir.map(Path::to_path_buf),
        fuel_metering: true,
        ..EngineSettings::default()
    };
    let mut builder = HostBuilder::new().engine_settings(settings);
    for name in TEST_COMPONENTS {
        builder = builder.plugin(*name, PluginSource::File(component_path(name)));
    }
    builder.build().expect("host builds")
}

/// A host sharing one process-wide cache directory (compiles each component
/// once per test run rather than once per test).
pub fn host() -> Host {
    host_with_cache(Some(shared_cache_dir()))
}

/// One compile-cache directory for the whole test run.
pub fn shared_cache_dir() -> &'static Path {
    static CACHE: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    CACHE.get_or_init(|| tempfile::tempdir().expect("temp dir")).path()
}

pub fn load(host: &Host, yaml: &str) -> LoadedWorkflow {
    match host.load_workflow_str("test.yaml", yaml, &repo_root()) {
        Ok(loaded) => loaded,
        Err(error) => panic!("test workflow should load:\n{error}"),
    }
}

/// A one-step workflow running `plugin` with extra YAML step fields.
pub fn one_step(plugin: &str, extra: &str) -> String {
    format!("name: t\nversion: '1'\nsteps:\n  - id: s\n    plugin: {plugin}\n{extra}")
}

pub async fn run_one(host: &Host, yaml: &str, input: Vec<Item>) -> JobOutcome {
    let loaded = load(host, yaml);
    host.run_job(&loaded, "job-test", input).await
}

/// A host like [`host`] whose capabilities are configured by `config`.
pub fn host_with_capabilities(config: weft::capabilities::CapabilityConfig) -> Host {
    let settings = EngineSettings { cache_dir: Some(shared_cache_dir().to_path_buf()), ..EngineSettings::default() };
    let mut builder = HostBuilder::new().engine_settings(settings).capabilities(config);
    for name in TEST_COMPONENTS {
        builder = builder.plugin(*name, PluginSource::File(component_path(name)));
    }
    builder.build().expect("host builds")
}

/// The text payloads of a step's output.
pub fn texts(outcome: &JobOutcome, step: &str) -> Vec<String> {
    outcome
        .outputs
        .get(step)
        .unwrap_or_else(|| panic!("step `{step}` has output: {:#?}", outcome.report))
        .iter()
        .map(|item| match &item.payload {
            weft::Payload::Text(text) => text.clone(),
            weft::Payload::Bytes(_) => panic!("step `{step}` returned bytes"),
        })
        .collect()
}

/// Compiles `plugins` into the shared compile cache, once per test run and
/// one test at a time, so tests that use the same large component (a
/// Python or JavaScript one takes tens of seconds to compile) never compile
/// it side by side; the `weft` processes tests start use the same cache.
pub fn precompile(plugins: &[&str]) {
    static DONE: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut done = DONE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let host = host();
    for name in plugins {
        if !done.iter().any(|d| d == name) {
            if let Err(error) = host.compile_plugin(name) {
                panic!("{name} should compile: {error}");
            }
            done.push((*name).to_string());
        }
    }
}

/// The `weft` binary run in `cwd` with the test run's compile cache and no
/// logging or NATS settings inherited from the environment.
pub fn weft_cmd(cwd: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_weft"));
    cmd.current_dir(cwd)
        .env("WEFT_CACHE_DIR", shared_cache_dir())
        .env_remove("RUST_LOG")
        .env_remove("NATS_URL")
        .env_remove("NATS_PASSWORD")
        .env_remove("NATS_TOKEN")
        .env_remove("NATS_NKEY");
    cmd
}

/// Waits up to `within` for `child` to exit; `None` if it is still running.
pub fn wait_exit(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}
