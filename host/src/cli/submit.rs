//! `weft submit`: put one job on the NATS job stream, and with `--wait`
//! wait for its record.
//!
//! The workflow is a name, not a file: which workflows exist is known to
//! the workers serving them, which register each one (its input contract
//! included) at start-up. The input is checked against that contract
//! before anything is published; a workflow no worker registered yet is
//! submitted anyway, with a note: its job waits for one.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use weft::queue::JobState;

use super::args::{AtRestArgs, NatsArgs};
use super::{EXIT_INVALID, EXIT_JOB_FAILED, read_input};

/// `weft submit`'s arguments.
#[derive(clap::Args)]
pub(crate) struct SubmitArgs {
    #[command(flatten)]
    nats: NatsArgs,
    #[command(flatten)]
    at_rest: AtRestArgs,
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
}

/// Submits the job and prints its id, or (with `--wait`) its record; exit
/// status 1 when a waited-for job did not succeed, 2 when the input breaks
/// the workflow's input contract (nothing is submitted then).
pub(crate) async fn submit(args: &SubmitArgs) -> Result<ExitCode> {
    let queue = weft::queue::connect(args.at_rest.apply(args.nats.config())?).await?;
    let input = read_input(&args.input)?;
    match queue.workflow(&args.workflow).await {
        Ok(Some(registered)) => {
            if let Err(violation) = registered.check_input(&input, None) {
                eprintln!("error: {violation}; nothing was submitted");
                return Ok(ExitCode::from(EXIT_INVALID));
            }
        }
        // A client allowed to publish jobs but not to read the registry:
        // the worker checks the input all the same.
        Err(error) => eprintln!(
            "warning: cannot read the workflow registry ({error}); the input was not checked here, the worker \
             checks it"
        ),
        Ok(None) => eprintln!(
            "note: no worker has registered workflow `{}`, so its input contract is unknown and was not checked; \
             submitting anyway: the job waits until a worker serving it starts",
            args.workflow
        ),
    }
    let outcome = queue.submit(&args.workflow, input, args.job_id.clone()).await?;
    if outcome.via_object_store {
        eprintln!("uploaded the input to the object store as input.{}", outcome.job_id);
    }
    if outcome.duplicate {
        eprintln!("note: job {} was already submitted; the duplicate was dropped", outcome.job_id);
    }
    if !args.wait {
        println!("{}", outcome.job_id);
        return Ok(ExitCode::SUCCESS);
    }
    let record = queue.wait(&outcome.job_id, Duration::from_secs(args.timeout_secs)).await?;
    println!("{}", serde_json::to_string_pretty(&record)?);
    Ok(if record.state == JobState::Succeeded { ExitCode::SUCCESS } else { ExitCode::from(EXIT_JOB_FAILED) })
}
