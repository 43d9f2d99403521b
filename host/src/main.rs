//! The `weft` command line: argument parsing, tracing setup, exit codes.
//! Everything else lives in the library.

use std::io::{IsTerminal as _, Read as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand, ValueEnum};
use weft::engine::EngineSettings;
use weft::scheduler::{JobOutcome, JobStatus, StepStatus};
use weft::{HostBuilder, HostError, Item};

/// Exit status: the job failed.
const EXIT_JOB_FAILED: u8 = 1;
/// Exit status: the invocation or the workflow was invalid.
const EXIT_INVALID: u8 = 2;

#[derive(Parser)]
#[command(
    name = "weft",
    version,
    about = "Run declarative workflows of sandboxed WebAssembly components",
    long_about = "Run declarative workflows of sandboxed WebAssembly components.\n\n\
        A workflow file (YAML) declares steps; each step is a Wasm component that can \
        touch only what the workflow grants it. Weft owns retries, timeouts and limits.\n\n\
        Try: weft run pdf-digest --input document.pdf"
)]
struct Cli {
    /// More log output on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,

    /// Directory for compiled components [default: $WEFT_CACHE_DIR, $XDG_CACHE_HOME/weft or ~/.cache/weft].
    #[arg(long, global = true, value_name = "DIR")]
    cache_dir: Option<PathBuf>,

    /// Do not read or write the compile cache.
    #[arg(long, global = true)]
    no_cache: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one job through a workflow and print the job result as JSON.
    ///
    /// Exit status: 0 the job succeeded, 1 it failed (the error says which
    /// step and why), 2 the invocation or workflow was invalid.
    Run {
        /// A workflow file, or the name of a bundled workflow (see `weft workflows`).
        workflow: String,
        /// The job's input file; `-` reads standard input.
        #[arg(short, long, value_name = "PATH")]
        input: PathBuf,
        /// How to pass the input to the first steps.
        #[arg(long, value_enum, default_value_t = InputKind::Auto)]
        input_as: InputKind,
        /// The job id [default: a new random id].
        #[arg(long)]
        job_id: Option<String>,
        /// Also print every intermediate step's output (may hold raw, unmasked text).
        #[arg(long)]
        show_intermediate: bool,
        /// Meter fuel so `limits.fuel` can be enforced (slower guests).
        #[arg(long)]
        fuel: bool,
        #[command(flatten)]
        capabilities: CapabilityArgs,
    },
    /// Check workflow files and print every problem found.
    Validate {
        /// Workflow files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// List the built-in step components with their imports and exports.
    Plugins {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// List the bundled workflows.
    Workflows,
    /// Write plugins: inspect a component, scaffold a new plugin project.
    Plugin {
        #[command(subcommand)]
        action: PluginAction,
    },
    /// Pull jobs from NATS JetStream and run them (one of many workers).
    Serve {
        #[command(flatten)]
        nats: NatsArgs,
        /// Directory of workflow files to serve [default: the bundled workflows].
        #[arg(long, value_name = "DIR")]
        workflows: Option<PathBuf>,
        /// Jobs run at once.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Runs of one job before it is dead-lettered.
        #[arg(long, default_value_t = 3)]
        max_job_attempts: u32,
        /// Seconds to wait for in-flight jobs on SIGTERM/SIGINT before handing them back.
        #[arg(long, default_value_t = 30)]
        drain_grace_secs: u64,
        /// Meter fuel so `limits.fuel` can be enforced.
        #[arg(long)]
        fuel: bool,
        /// Seconds the server waits for an ack before redelivering a job
        /// (in-progress acks keep long jobs alive); all workers must agree.
        #[arg(long, default_value_t = 30)]
        ack_wait_secs: u64,
        /// Step attempts computing at once (0: no bound); the others wait,
        /// holding no sandbox memory. An attempt waiting on HTTP, an LLM,
        /// email or a timer gives its slot back, so I/O-bound steps do not
        /// queue behind each other. The number of CPUs cuts peak memory
        /// with many jobs in flight; waiting counts against a step's timeout.
        #[arg(long, value_name = "N", default_value_t = 0)]
        compute_slots: usize,
        #[command(flatten)]
        capabilities: CapabilityArgs,
    },
    /// Submit a job to NATS; prints its id, or its result with --wait.
    Submit {
        #[command(flatten)]
        nats: NatsArgs,
        /// The workflow's name.
        workflow: String,
        /// The input file; `-` reads standard input.
        #[arg(short, long, value_name = "PATH")]
        input: PathBuf,
        /// The job id [default: a new random id]; a repeated id is dropped as a duplicate.
        #[arg(long)]
        job_id: Option<String>,
        /// Wait for the job to finish and print its record.
        #[arg(long)]
        wait: bool,
        /// How long --wait waits, in seconds.
        #[arg(long, default_value_t = 600)]
        timeout_secs: u64,
    },
    /// Show a job's state, attempts and result.
    Status {
        #[command(flatten)]
        nats: NatsArgs,
        /// The job id.
        job_id: String,
    },
    /// Inspect and replay dead-lettered jobs.
    Dlq {
        #[command(flatten)]
        nats: NatsArgs,
        #[command(subcommand)]
        action: DlqAction,
    },
}

#[derive(Subcommand)]
enum PluginAction {
    /// Show a component's world and version, imports (and the grants they
    /// need), exports, size and compile-cache status, and why it cannot be a step.
    ///
    /// Exit status: 0 it can be used as a step, 1 it cannot, 2 it is not a component.
    Inspect {
        /// A component file (.wasm).
        file: PathBuf,
        /// Also compile and prepare it as `weft run` would (slow for big components; fills the cache).
        #[arg(long)]
        compile: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Create a plugin project: the WIT, a build command, a test workflow and a test script.
    New {
        /// The plugin's name (kebab-case, like `keyword-tagger`).
        name: String,
        /// The language to write it in.
        #[arg(long, value_parser = ["rust", "python", "js"])]
        lang: String,
        /// Where to create it [default: ./NAME].
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum DlqAction {
    /// List dead letters.
    List,
    /// Show one dead letter (by job id or stream sequence).
    Show {
        /// Job id or sequence.
        id: String,
    },
    /// Run dead-lettered jobs again.
    Replay {
        /// Job id or sequence.
        #[arg(required_unless_present = "all")]
        id: Option<String>,
        /// Replay every dead letter.
        #[arg(long, conflicts_with = "id")]
        all: bool,
    },
}

/// What steps may reach when their workflow grants it.
#[derive(clap::Args, Clone)]
struct CapabilityArgs {
    /// Base URL of an OpenAI-compatible API for the `llm` capability, e.g.
    /// `https://api.openai.com/v1` or `http://127.0.0.1:11434/v1`. Its key
    /// is read from WEFT_LLM_API_KEY and never reaches a component.
    #[arg(long, env = "WEFT_LLM_BASE_URL", value_name = "URL")]
    llm_base_url: Option<String>,
    /// The model steps get unless they name one.
    #[arg(long, env = "WEFT_LLM_MODEL", default_value = "gpt-4o-mini", value_name = "NAME")]
    llm_model: String,
    /// SMTP relay for the `email` capability: `smtp://[user:pass@]host:port`
    /// (add `?tls=required` for STARTTLS) or `smtps://...` for TLS.
    #[arg(long, env = "WEFT_SMTP_URL", value_name = "URL")]
    smtp_url: Option<String>,
    /// The sender address of e-mail from steps.
    #[arg(long, env = "WEFT_SMTP_FROM", default_value = "weft@localhost", value_name = "ADDRESS")]
    smtp_from: String,
    /// A file of `NAME=value` lines holding secrets that workflows grant
    /// (looked up before the environment variable of the same name).
    #[arg(long, env = "WEFT_SECRETS_FILE", value_name = "FILE")]
    secrets_file: Option<PathBuf>,
    /// The longest one outbound HTTP request from a step may take, in seconds.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    http_timeout_secs: u64,
    /// The largest HTTP response a step may receive, in bytes.
    #[arg(long, default_value_t = 16 << 20, value_name = "BYTES")]
    http_max_response_bytes: u64,
}

impl CapabilityArgs {
    fn config(&self) -> Result<weft::capabilities::CapabilityConfig> {
        use weft::capabilities::{CapabilityConfig, EmailConfig, HttpSettings, LlmConfig, SecretStore};
        let llm = match &self.llm_base_url {
            Some(url) => {
                let key = std::env::var("WEFT_LLM_API_KEY").ok().filter(|k| !k.is_empty());
                Some(LlmConfig::new(url, &self.llm_model, key).map_err(anyhow::Error::msg)?)
            }
            None => None,
        };
        let email = match &self.smtp_url {
            Some(url) => Some(EmailConfig::new(url, &self.smtp_from).map_err(anyhow::Error::msg)?),
            None => None,
        };
        let mut secrets = SecretStore::from_environment();
        if let Some(file) = &self.secrets_file {
            secrets = secrets.with_file(file)?;
        }
        Ok(CapabilityConfig {
            http: HttpSettings {
                max_timeout: Duration::from_secs(self.http_timeout_secs.max(1)),
                max_response_bytes: self.http_max_response_bytes,
                ..HttpSettings::default()
            },
            llm,
            email,
            secrets,
        })
    }
}

/// How to reach NATS.
#[derive(clap::Args)]
struct NatsArgs {
    /// NATS server URL.
    #[arg(long = "nats", env = "NATS_URL", default_value = "nats://127.0.0.1:4222", value_name = "URL")]
    url: String,
    /// A NATS credentials (.creds) file.
    #[arg(long, value_name = "FILE")]
    nats_creds: Option<PathBuf>,
    /// User name (with --nats-password).
    #[arg(long, requires = "nats_password")]
    nats_user: Option<String>,
    /// Password (with --nats-user).
    #[arg(long, env = "NATS_PASSWORD", hide_env_values = true, requires = "nats_user")]
    nats_password: Option<String>,
    /// Authentication token.
    #[arg(long, env = "NATS_TOKEN", hide_env_values = true)]
    nats_token: Option<String>,
    /// NKey seed.
    #[arg(long, env = "NATS_NKEY", hide_env_values = true)]
    nats_nkey: Option<String>,
    /// CA certificate for TLS.
    #[arg(long, value_name = "FILE")]
    nats_tls_ca: Option<PathBuf>,
    /// Require TLS.
    #[arg(long)]
    nats_require_tls: bool,
}

impl NatsArgs {
    fn config(&self) -> weft::queue::QueueConfig {
        weft::queue::QueueConfig {
            url: self.url.clone(),
            credentials_file: self.nats_creds.clone(),
            user_password: self.nats_user.clone().zip(self.nats_password.clone()),
            token: self.nats_token.clone(),
            nkey_seed: self.nats_nkey.clone(),
            tls_ca: self.nats_tls_ca.clone(),
            require_tls: self.nats_require_tls,
            ..weft::queue::QueueConfig::default()
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum InputKind {
    /// PDF and non-UTF-8 files as bytes, everything else as text.
    Auto,
    /// Always text (must be UTF-8).
    Text,
    /// Always bytes.
    Bytes,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() { ExitCode::from(EXIT_INVALID) } else { ExitCode::SUCCESS };
        }
    };
    init_tracing(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(EXIT_JOB_FAILED);
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(EXIT_INVALID)
        }
    }
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn engine_settings(cli: &Cli, fuel: bool) -> EngineSettings {
    let mut settings = EngineSettings { fuel_metering: fuel, ..EngineSettings::default() };
    if cli.no_cache {
        settings.cache_dir = None;
    } else if let Some(dir) = &cli.cache_dir {
        settings.cache_dir = Some(dir.clone());
    }
    settings
}

async fn dispatch(cli: Cli) -> Result<ExitCode> {
    match &cli.command {
        Command::Run { workflow, input, input_as, job_id, show_intermediate, fuel, capabilities } => {
            let settings = engine_settings(&cli, *fuel);
            let host = HostBuilder::new().engine_settings(settings).capabilities(capabilities.config()?).build()?;
            run(host, workflow, input, *input_as, job_id.clone(), *show_intermediate).await
        }
        Command::Validate { files } => validate(engine_settings(&cli, true), files),
        Command::Plugins { json } => plugins(engine_settings(&cli, false), *json),
        Command::Serve {
            nats,
            workflows,
            concurrency,
            max_job_attempts,
            drain_grace_secs,
            fuel,
            ack_wait_secs,
            compute_slots,
            capabilities,
        } => {
            let settings = EngineSettings { compute_slots: *compute_slots, ..engine_settings(&cli, *fuel) };
            let host = HostBuilder::new().engine_settings(settings).capabilities(capabilities.config()?).build()?;
            let worker = weft::queue::WorkerConfig {
                concurrency: *concurrency,
                max_job_attempts: *max_job_attempts,
                drain_grace: Duration::from_secs(*drain_grace_secs),
                ..weft::queue::WorkerConfig::default()
            };
            let queue = weft::queue::QueueConfig { ack_wait: Duration::from_secs(*ack_wait_secs), ..nats.config() };
            serve(host, queue, workflows.as_deref(), worker).await
        }
        Command::Submit { nats, workflow, input, job_id, wait, timeout_secs } => {
            let queue = weft::queue::connect(nats.config()).await?;
            let outcome = queue.submit(workflow, read_input(input)?, job_id.clone()).await?;
            if outcome.via_object_store {
                eprintln!("uploaded the input to the object store as input.{}", outcome.job_id);
            }
            if outcome.duplicate {
                eprintln!("note: job {} was already submitted; the duplicate was dropped", outcome.job_id);
            }
            if !*wait {
                println!("{}", outcome.job_id);
                return Ok(ExitCode::SUCCESS);
            }
            let record = queue.wait(&outcome.job_id, Duration::from_secs(*timeout_secs)).await?;
            println!("{}", serde_json::to_string_pretty(&record)?);
            Ok(if record.state == weft::queue::JobState::Succeeded {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_JOB_FAILED)
            })
        }
        Command::Status { nats, job_id } => {
            let queue = weft::queue::connect(nats.config()).await?;
            match queue.status(job_id).await? {
                Some(record) => {
                    println!("{}", serde_json::to_string_pretty(&record)?);
                    Ok(ExitCode::SUCCESS)
                }
                None => {
                    eprintln!("error: no job `{job_id}` is known (never submitted, or not picked up yet)");
                    Ok(ExitCode::from(EXIT_JOB_FAILED))
                }
            }
        }
        Command::Dlq { nats, action } => dlq(nats.config(), action).await,
        Command::Plugin { action } => plugin(engine_settings(&cli, false), action),
        Command::Workflows => {
            for (name, _) in weft::bundled_workflows() {
                println!("{name}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Loads a workflow from a file, or from the bundled ones by name.
fn load_workflow(host: &weft::Host, workflow: &str) -> Result<weft::LoadedWorkflow, HostError> {
    let path = Path::new(workflow);
    if !path.exists()
        && let Some((name, text)) = weft::bundled_workflows().find(|(name, _)| *name == workflow)
    {
        return host.load_workflow_str(&format!("<bundled>/{name}.yaml"), text, Path::new("."));
    }
    host.load_workflow_file(path)
}

async fn run(
    host: weft::Host,
    workflow: &str,
    input: &Path,
    input_as: InputKind,
    job_id: Option<String>,
    show_intermediate: bool,
) -> Result<ExitCode> {
    let bytes = read_input(input)?;
    let item = make_input_item(bytes, input_as, input)?;
    let loaded = match load_workflow(&host, workflow) {
        Ok(loaded) => loaded,
        Err(HostError::Workflow(error)) => {
            eprintln!("{error}");
            eprintln!("error: the workflow is invalid");
            return Ok(ExitCode::from(EXIT_INVALID));
        }
        Err(other) => return Err(other.into()),
    };
    let job_id = job_id.unwrap_or_else(new_job_id);
    let progress = Progress::start(&loaded.workflow().name);
    let outcome = host.run_job(&loaded, &job_id, vec![item]).await;
    progress.finish();
    summarise(&outcome);

    let json = job_json(&loaded, &outcome, show_intermediate)?;
    println!("{}", serde_json::to_string_pretty(&json)?);
    Ok(match outcome.report.status {
        JobStatus::Succeeded => ExitCode::SUCCESS,
        JobStatus::Failed => ExitCode::from(EXIT_JOB_FAILED),
    })
}

fn read_input(input: &Path) -> Result<Vec<u8>> {
    if input == Path::new("-") {
        let mut bytes = Vec::new();
        std::io::stdin().read_to_end(&mut bytes).context("cannot read the input from stdin")?;
        return Ok(bytes);
    }
    std::fs::read(input).with_context(|| format!("cannot read input {}", input.display()))
}

fn make_input_item(bytes: Vec<u8>, kind: InputKind, path: &Path) -> Result<Item> {
    let as_bytes = match kind {
        InputKind::Bytes => true,
        InputKind::Text => false,
        InputKind::Auto => bytes.starts_with(b"%PDF-") || std::str::from_utf8(&bytes).is_err(),
    };
    let item = if as_bytes {
        Item::bytes(bytes)
    } else {
        let text = String::from_utf8(bytes)
            .map_err(|_| anyhow::anyhow!("input {} is not UTF-8 text; use --input-as bytes", path.display()))?;
        Item::text(text)
    };
    let source = if path == Path::new("-") { "stdin".to_string() } else { path.display().to_string() };
    Ok(item.with_metadata("source", source))
}

fn new_job_id() -> String {
    let millis = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    format!("job-{millis:x}-{:08x}", rand::random::<u32>())
}

/// The job result: the report, plus the outputs of the final steps (and of
/// every step only when asked, since they may hold raw, unmasked text).
fn job_json(loaded: &weft::LoadedWorkflow, outcome: &JobOutcome, show_intermediate: bool) -> Result<serde_json::Value> {
    let mut json = serde_json::to_value(&outcome.report)?;
    let sinks: Vec<&str> = loaded.workflow().sinks().iter().map(|s| s.id.as_str()).collect();
    let mut outputs = serde_json::Map::new();
    let mut intermediate = serde_json::Map::new();
    for (step, items) in &outcome.outputs {
        let value = serde_json::to_value(items.as_ref())?;
        if sinks.contains(&step.as_str()) {
            outputs.insert(step.clone(), value);
        } else if show_intermediate {
            intermediate.insert(step.clone(), value);
        }
    }
    if let Some(object) = json.as_object_mut() {
        object.insert("outputs".into(), outputs.into());
        if show_intermediate {
            object.insert("intermediate".into(), intermediate.into());
        }
    }
    Ok(json)
}

/// A one-line summary per step on stderr, and the failure in words.
fn summarise(outcome: &JobOutcome) {
    for step in &outcome.report.steps {
        let mark = match step.status {
            StepStatus::Succeeded => "ok",
            StepStatus::Failed => "FAILED",
            StepStatus::Cancelled => "cancelled",
            StepStatus::Skipped => "skipped",
            StepStatus::Resumed => "resumed",
        };
        eprintln!(
            "  {mark:>9}  {:<20} {} attempt(s), {} -> {} items, {:.1?}",
            step.id,
            step.attempts.len(),
            step.input_items,
            step.output_items,
            step.duration
        );
    }
    if let Some(error) = &outcome.report.error {
        eprintln!("error: job {} failed at step `{}`: {}", outcome.report.job_id, error.step, error.failure.message);
    }
}

/// A spinner on stderr while the job runs, only when stderr is a terminal.
struct Progress(Option<indicatif::ProgressBar>);

impl Progress {
    fn start(workflow: &str) -> Self {
        if !std::io::stderr().is_terminal() {
            return Progress(None);
        }
        let bar = indicatif::ProgressBar::new_spinner().with_message(format!("running {workflow}"));
        bar.enable_steady_tick(Duration::from_millis(100));
        Progress(Some(bar))
    }

    fn finish(self) {
        if let Some(bar) = self.0 {
            bar.finish_and_clear();
        }
    }
}

fn validate(settings: EngineSettings, files: &[PathBuf]) -> Result<ExitCode> {
    // Secrets are the running host's business: listed here, checked by `run` and `serve`.
    let host = HostBuilder::new().engine_settings(settings).require_secrets(false).build()?;
    let mut invalid = 0;
    for file in files {
        match host.load_workflow_file(file) {
            Ok(loaded) => {
                println!("{}: ok ({} steps)", file.display(), loaded.workflow().steps.len());
                let mut secrets: Vec<&str> = Vec::new();
                for step in &loaded.workflow().steps {
                    if let Some(weft::workflow::GrantSpec::List(names)) = step.grants.get("secrets") {
                        secrets.extend(names.iter().map(String::as_str));
                    }
                }
                if !secrets.is_empty() {
                    secrets.sort_unstable();
                    secrets.dedup();
                    println!("  needs secrets when run: {}", secrets.join(", "));
                }
            }
            Err(error) => {
                invalid += 1;
                println!("{error}");
            }
        }
    }
    if invalid > 0 {
        eprintln!("error: {invalid} of {} workflow file(s) invalid", files.len());
        return Ok(ExitCode::from(EXIT_INVALID));
    }
    Ok(ExitCode::SUCCESS)
}

fn plugins(settings: EngineSettings, json: bool) -> Result<ExitCode> {
    let host = HostBuilder::new().engine_settings(settings).build()?;
    let plugins = host.plugins()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&plugins)?);
        return Ok(ExitCode::SUCCESS);
    }
    for plugin in plugins {
        println!("{} ({} KiB)", plugin.name, plugin.size / 1024);
        println!("  exports: {}", plugin.exports.join(", "));
        let weft_imports: Vec<&str> =
            plugin.imports.iter().map(String::as_str).filter(|i| !i.starts_with("wasi:")).collect();
        let wasi = plugin.imports.len() - weft_imports.len();
        println!("  imports: {} (+ {wasi} sandboxed WASI interfaces)", weft_imports.join(", "));
        if !plugin.required_grants.is_empty() {
            println!("  can use, when its step grants them: {}", plugin.required_grants.join(", "));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn plugin(settings: EngineSettings, action: &PluginAction) -> Result<ExitCode> {
    match action {
        PluginAction::Inspect { file, compile, json } => {
            let inspection = match weft::authoring::inspect_file(file, settings, *compile) {
                Ok(inspection) => inspection,
                Err(error) => {
                    eprintln!("error: {error}");
                    return Ok(ExitCode::from(EXIT_INVALID));
                }
            };
            if *json {
                println!("{}", serde_json::to_string_pretty(&inspection)?);
            } else {
                print!("{}", inspection.to_text());
            }
            Ok(if inspection.usable_as_step() { ExitCode::SUCCESS } else { ExitCode::from(EXIT_JOB_FAILED) })
        }
        PluginAction::New { name, lang, dir } => {
            let language: weft::authoring::Language = lang.parse()?;
            let dir = dir.clone().unwrap_or_else(|| PathBuf::from(name));
            let files = weft::authoring::scaffold(name, language, &dir)?;
            eprintln!("created a {language} plugin `{name}` in {}:", dir.display());
            for file in files {
                eprintln!("  {}", file.display());
            }
            eprintln!(
                "next: cd {} && ./test.sh   (builds it, runs it with `weft run`, checks the output)",
                dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn serve(
    host: weft::Host,
    queue: weft::queue::QueueConfig,
    dir: Option<&Path>,
    worker: weft::queue::WorkerConfig,
) -> Result<ExitCode> {
    let host = std::sync::Arc::new(host);
    let mut loaded = Vec::new();
    let mut invalid = 0;
    match dir {
        Some(dir) => {
            let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
                .with_context(|| format!("cannot read workflow directory {}", dir.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
                .collect();
            files.sort();
            for file in files {
                match host.load_workflow_file(&file) {
                    Ok(workflow) => loaded.push(workflow),
                    Err(error) => {
                        invalid += 1;
                        eprintln!("{error}");
                    }
                }
            }
        }
        None => {
            // A bundled workflow this host is not configured for (an LLM
            // endpoint, a secret) is left out with the reason, not fatal.
            for (name, text) in weft::bundled_workflows() {
                match host.load_workflow_str(&format!("<bundled>/{name}.yaml"), text, Path::new(".")) {
                    Ok(workflow) => loaded.push(workflow),
                    Err(error) => eprintln!("weft serve: not serving bundled workflow `{name}`:\n{error}"),
                }
            }
        }
    }
    if invalid > 0 {
        eprintln!("error: {invalid} workflow file(s) invalid; fix them before serving");
        return Ok(ExitCode::from(EXIT_INVALID));
    }
    if loaded.is_empty() {
        eprintln!("error: no workflows to serve");
        return Ok(ExitCode::from(EXIT_INVALID));
    }
    let names: Vec<String> = loaded.iter().map(|w| w.workflow().name.clone()).collect();
    let worker = weft::queue::Worker::connect(host, loaded, queue, worker).await?;
    eprintln!("weft serve: serving {} (Ctrl-C or SIGTERM drains and stops)", names.join(", "));
    let summary = worker.run(shutdown_signal()).await?;
    eprintln!(
        "weft serve: stopped ({} succeeded, {} retried, {} dead-lettered, {} duplicates, {} handed back)",
        summary.succeeded, summary.retried, summary.dead_lettered, summary.duplicates, summary.handed_back
    );
    Ok(ExitCode::SUCCESS)
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

async fn dlq(config: weft::queue::QueueConfig, action: &DlqAction) -> Result<ExitCode> {
    let queue = weft::queue::connect(config).await?;
    match action {
        DlqAction::List => {
            for entry in queue.dead_letters().await? {
                println!(
                    "{:>6}  {:<24} {:<16} {}",
                    entry.sequence, entry.letter.job_id, entry.letter.workflow, entry.letter.reason
                );
            }
        }
        DlqAction::Show { id } => match queue.find_dead_letter(id).await? {
            Some(entry) => println!("{}", serde_json::to_string_pretty(&entry)?),
            None => {
                eprintln!("error: no dead letter `{id}`");
                return Ok(ExitCode::from(EXIT_JOB_FAILED));
            }
        },
        DlqAction::Replay { id, all } => {
            let entries = if *all {
                queue.dead_letters().await?
            } else {
                let id = id.as_deref().unwrap_or_default();
                match queue.find_dead_letter(id).await? {
                    Some(entry) => vec![entry],
                    None => {
                        eprintln!("error: no dead letter `{id}`");
                        return Ok(ExitCode::from(EXIT_JOB_FAILED));
                    }
                }
            };
            for entry in entries {
                let job_id = queue.replay(&entry).await?;
                println!("replayed {job_id}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
