//! `weft status`: a job's record (state, attempts, result) from NATS, or,
//! without a job id, the queue depth of every workflow.

use std::process::ExitCode;

use anyhow::Result;

use super::EXIT_JOB_FAILED;
use super::args::{AtRestArgs, NatsArgs};

/// `weft status`' arguments.
#[derive(clap::Args)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    nats: NatsArgs,
    /// Print the queue overview as JSON (one object per workflow).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    at_rest: AtRestArgs,
    /// The job id. Without one, prints the queue depth of every workflow:
    /// jobs waiting and in flight, and whether any worker serves it.
    job_id: Option<String>,
}

/// Prints the job's record (exit status 1 when no such job is known), or
/// the queue overview.
pub(crate) async fn status(args: &StatusArgs) -> Result<ExitCode> {
    let queue = weft::queue::connect(args.at_rest.apply(args.nats.config())?).await?;
    let Some(job_id) = &args.job_id else {
        let depths = queue.queue_depths().await?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&depths)?);
        } else {
            print!("{}", overview(&depths));
        }
        return Ok(ExitCode::SUCCESS);
    };
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

/// The overview as a table, one workflow per line.
fn overview(depths: &[weft::queue::WorkflowQueue]) -> String {
    if depths.is_empty() {
        return "no jobs queued and no workflow served yet\n".to_string();
    }
    let width = depths.iter().map(|d| d.workflow.len()).max().unwrap_or(0).max("workflow".len());
    let mut out =
        format!("{:<width$}  {:>6}  {:>11}  {:>9}  workers\n", "workflow", "jobs", "undelivered", "in flight");
    for depth in depths {
        let (undelivered, in_flight, workers) = match &depth.consumer {
            Some(c) => (
                c.undelivered.to_string(),
                c.in_flight.to_string(),
                if c.waiting_pulls > 0 {
                    format!("{} waiting for work", c.waiting_pulls)
                } else if c.undelivered > 0 {
                    "none pulling: its jobs wait for a worker that serves it".to_string()
                } else {
                    "busy or none".to_string()
                },
            ),
            None => (
                depth.jobs.to_string(),
                "0".to_string(),
                "no worker has served it: its jobs wait until one does".to_string(),
            ),
        };
        out.push_str(&format!(
            "{:<width$}  {:>6}  {:>11}  {:>9}  {workers}\n",
            depth.workflow, depth.jobs, undelivered, in_flight
        ));
    }
    out
}
