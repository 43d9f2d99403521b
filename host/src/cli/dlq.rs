//! `weft dlq`: list, show and replay dead-lettered jobs.

use std::process::ExitCode;

use anyhow::Result;
use weft::text::printable;

use super::EXIT_JOB_FAILED;
use super::args::NatsArgs;

/// `weft dlq`'s arguments.
#[derive(clap::Args)]
pub(crate) struct DlqArgs {
    #[command(flatten)]
    nats: NatsArgs,
    #[command(subcommand)]
    action: DlqAction,
}

#[derive(clap::Subcommand)]
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

/// Runs the action; exit status 1 when the dead letter named is not there.
pub(crate) async fn dlq(args: &DlqArgs) -> Result<ExitCode> {
    let queue = weft::queue::connect(args.nats.config()).await?;
    match &args.action {
        DlqAction::List => {
            for entry in queue.dead_letters().await? {
                // A publisher chose the id, and the reason may quote it.
                let letter = &entry.letter;
                println!(
                    "{:>6}  {:<24} {:<16} {}",
                    entry.sequence,
                    printable(&letter.job_id),
                    printable(&letter.workflow),
                    printable(&letter.reason)
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
