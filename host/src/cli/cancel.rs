//! `weft cancel`: cancel a job by id. A queued job never runs; a running
//! one is stopped by its worker; with `--wait`, wait until it is.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use weft::queue::{CancelError, CancelOutcome, JobState};

use super::EXIT_JOB_FAILED;
use super::args::NatsArgs;

/// `weft cancel`'s arguments.
#[derive(clap::Args)]
pub(crate) struct CancelArgs {
    #[command(flatten)]
    nats: NatsArgs,
    /// The job id.
    job_id: String,
    /// Why, kept in the job's record.
    #[arg(long, value_name = "TEXT")]
    reason: Option<String>,
    /// Who cancels, kept in the job's record [default: user@host].
    #[arg(long, value_name = "NAME")]
    by: Option<String>,
    /// Wait until a running job has been stopped and print its record.
    #[arg(long)]
    wait: bool,
    /// How long --wait waits, in seconds.
    #[arg(long, default_value_t = 60)]
    timeout_secs: u64,
}

/// `user@host` of whoever runs the command.
pub(crate) fn default_by() -> String {
    let user = ["USER", "LOGNAME"].iter().find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()));
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .filter(|h| !h.is_empty());
    format!("{}@{}", user.as_deref().unwrap_or("unknown"), host.as_deref().unwrap_or("unknown"))
}

/// Cancels the job. Exit status 0 when it is cancelled (or, without
/// `--wait`, its worker was asked to stop it); 1 when it already finished,
/// is unknown, or (with `--wait`) finished otherwise before it could be
/// stopped; 2 for an invalid request.
pub(crate) async fn cancel(args: &CancelArgs) -> Result<ExitCode> {
    let queue = weft::queue::connect(args.nats.config()).await?;
    let by = args.by.clone().unwrap_or_else(default_by);
    let outcome = match queue.cancel(&args.job_id, &by, args.reason.as_deref()).await {
        Ok(outcome) => outcome,
        Err(error @ (CancelError::Finished { .. } | CancelError::Unknown { .. })) => {
            eprintln!("error: {error}");
            return Ok(ExitCode::from(EXIT_JOB_FAILED));
        }
        Err(error) => return Err(error.into()),
    };
    let record = match outcome {
        CancelOutcome::Cancelled(record) => {
            eprintln!("cancelled job {}: no worker held it, so it never runs (again)", args.job_id);
            *record
        }
        CancelOutcome::Requested if !args.wait => {
            eprintln!("job {} is running: its worker was asked to stop it (see `weft status`)", args.job_id);
            println!("{}", args.job_id);
            return Ok(ExitCode::SUCCESS);
        }
        CancelOutcome::Requested => queue.wait(&args.job_id, Duration::from_secs(args.timeout_secs)).await?,
    };
    println!("{}", serde_json::to_string_pretty(&record)?);
    if record.state != JobState::Cancelled {
        eprintln!("error: job {} finished as {} before it could be stopped", args.job_id, record.state.name());
        return Ok(ExitCode::from(EXIT_JOB_FAILED));
    }
    Ok(ExitCode::SUCCESS)
}
