//! `weft run`: one job through one workflow, in this process. Prints the job
//! result as JSON on stdout and a line per step on stderr.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::ValueEnum;
use weft::scheduler::{JobOutcome, JobStatus, StepStatus};
use weft::{HostBuilder, HostError, Item, new_job_id};

use super::args::{CacheArgs, CapabilityArgs, OutputLimitArgs};
use super::{EXIT_INVALID, EXIT_JOB_FAILED, read_input};

/// `weft run`'s arguments.
#[derive(clap::Args)]
pub(crate) struct RunArgs {
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
    #[command(flatten)]
    limits: OutputLimitArgs,
}

/// How the input reaches the first steps.
#[derive(Clone, Copy, ValueEnum)]
enum InputKind {
    /// PDF and non-UTF-8 files as bytes, everything else as text.
    Auto,
    /// Always text (must be UTF-8).
    Text,
    /// Always bytes.
    Bytes,
}

/// Runs the job; exit status 0 when it succeeded, 1 when it failed, 2 when
/// the workflow is invalid or the input breaks its input contract.
pub(crate) async fn run(cache: &CacheArgs, args: &RunArgs) -> Result<ExitCode> {
    let settings = args.limits.engine(cache.engine_settings(args.fuel));
    let host = HostBuilder::new()
        .engine_settings(settings)
        .scheduler_settings(args.limits.scheduler())
        .capabilities(args.capabilities.config()?)
        .build()?;
    let bytes = read_input(&args.input)?;
    let source = weft::discovery::find_workflow(Path::new(&args.workflow))?;
    if let Some(file) = weft::discovery::shadowed_file(Path::new(&args.workflow)) {
        eprintln!(
            "note: running the bundled workflow `{}`; to run the file of that name, write `{}`",
            args.workflow,
            file.display()
        );
    }
    let loaded = match source.load(&host) {
        Ok(loaded) => loaded,
        Err(HostError::Workflow(error)) => {
            eprintln!("{error}");
            eprintln!("error: the workflow is invalid");
            return Ok(ExitCode::from(EXIT_INVALID));
        }
        Err(other) => return Err(other.into()),
    };
    super::warn_about(&loaded);
    // The workflow's input contract, before anything runs.
    if let Some(contract) = &loaded.workflow().input
        && let Err(violation) = contract.check(&bytes, None)
    {
        eprintln!("error: {violation}");
        return Ok(ExitCode::from(EXIT_INVALID));
    }
    let item = make_input_item(bytes, args.input_as, &args.input)?;
    let job_id = args.job_id.clone().unwrap_or_else(new_job_id);
    let progress = Progress::start(&loaded.workflow().name);
    let outcome = host.run_job(&loaded, &job_id, vec![item]).await;
    progress.finish();
    summarise(&outcome);

    let json = job_json(&loaded, &outcome, args.show_intermediate)?;
    println!("{}", serde_json::to_string_pretty(&json)?);
    Ok(match outcome.report.status {
        JobStatus::Succeeded => ExitCode::SUCCESS,
        JobStatus::Failed => ExitCode::from(EXIT_JOB_FAILED),
    })
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
