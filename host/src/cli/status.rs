//! `weft status`: a job's record (state, attempts, result) from NATS.

use std::process::ExitCode;

use anyhow::Result;

use super::EXIT_JOB_FAILED;
use super::args::{AtRestArgs, NatsArgs};

/// `weft status`' arguments.
#[derive(clap::Args)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    nats: NatsArgs,
    #[command(flatten)]
    at_rest: AtRestArgs,
    /// The job id.
    job_id: String,
}

/// Prints the job's record; exit status 1 when no such job is known.
pub(crate) async fn status(args: &StatusArgs) -> Result<ExitCode> {
    let queue = weft::queue::connect(args.at_rest.apply(args.nats.config())?).await?;
    match queue.status(&args.job_id).await? {
        Some(record) => {
            println!("{}", serde_json::to_string_pretty(&record)?);
            Ok(ExitCode::SUCCESS)
        }
        None => {
            eprintln!("error: no job `{}` is known (never submitted, or not picked up yet)", args.job_id);
            Ok(ExitCode::from(EXIT_JOB_FAILED))
        }
    }
}
