//! The `weft` command line: parses the arguments, installs the tracing
//! subscriber, runs one command and turns its result into an exit status.
//! Each command lives in its own file under `cli/`; what a command decides
//! (which workflow a name means, how a job runs) lives in the library.

mod cli;

use std::io::IsTerminal as _;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use cli::{EXIT_INVALID, EXIT_JOB_FAILED};

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

    #[command(flatten)]
    cache: cli::args::CacheArgs,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one job through a workflow and print the job result as JSON.
    ///
    /// Exit status: 0 the job succeeded, 1 it failed (the error says which
    /// step and why), 2 the invocation or workflow was invalid.
    Run(cli::run::RunArgs),
    /// Check workflow files and print every problem found.
    Validate(cli::validate::ValidateArgs),
    /// List the built-in step components with their imports and exports.
    Plugins(cli::plugins::PluginsArgs),
    /// List the bundled workflows.
    Workflows,
    /// Print the JSON Schema of workflow files, for editors (the YAML
    /// language server: `# yaml-language-server: $schema=weft.schema.json`).
    Schema,
    /// Write plugins: inspect a component, scaffold a new plugin project.
    Plugin {
        #[command(subcommand)]
        action: cli::plugin::PluginAction,
    },
    /// Pull jobs from NATS JetStream and run them (one of many workers).
    Serve(Box<cli::serve::ServeArgs>),
    /// Submit a job to NATS; prints its id, or its result with --wait.
    Submit(cli::submit::SubmitArgs),
    /// Show a job's state, attempts and result, or (without a job id) the
    /// queue depth of every workflow.
    Status(cli::status::StatusArgs),
    /// Cancel a job: a queued one never runs, a running one is stopped.
    Cancel(cli::cancel::CancelArgs),
    /// Inspect and replay dead-lettered jobs.
    Dlq(cli::dlq::DlqArgs),
    /// Manage the HTTP API's keys: create (prints the token once), list,
    /// revoke.
    Keys(cli::keys::KeysArgs),
}

fn main() -> ExitCode {
    let parsed = match Cli::try_parse() {
        Ok(parsed) => parsed,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() { ExitCode::from(EXIT_INVALID) } else { ExitCode::SUCCESS };
        }
    };
    init_tracing(parsed.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(EXIT_JOB_FAILED);
        }
    };
    match runtime.block_on(dispatch(parsed)) {
        Ok(code) => code,
        Err(error) => {
            let error: &(dyn std::error::Error + 'static) = error.as_ref();
            eprintln!("error: {}", weft::errors::error_chain(error));
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

/// Runs the one command asked for.
async fn dispatch(parsed: Cli) -> Result<ExitCode> {
    let cache = &parsed.cache;
    match &parsed.command {
        Command::Run(args) => cli::run::run(cache, args).await,
        Command::Validate(args) => cli::validate::validate(cache, args),
        Command::Plugins(args) => cli::plugins::plugins(cache, args),
        Command::Workflows => Ok(cli::workflows::workflows()),
        Command::Schema => cli::schema::schema(),
        Command::Plugin { action } => cli::plugin::plugin(cache, action),
        Command::Serve(args) => cli::serve::serve(cache, args).await,
        Command::Submit(args) => cli::submit::submit(args).await,
        Command::Status(args) => cli::status::status(args).await,
        Command::Cancel(args) => cli::cancel::cancel(args).await,
        Command::Dlq(args) => cli::dlq::dlq(args).await,
        Command::Keys(args) => cli::keys::keys(args).await,
    }
}
