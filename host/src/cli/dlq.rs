//! `weft dlq`: list, show and replay dead-lettered jobs.

use std::process::ExitCode;

use std::io::Write as _;

use anyhow::Result;
use weft::queue::QueueError;
use weft::text::printable;

use super::EXIT_JOB_FAILED;
use super::args::{AtRestArgs, NatsArgs};

/// `weft dlq`'s arguments.
#[derive(clap::Args)]
pub(crate) struct DlqArgs {
    #[command(flatten)]
    nats: NatsArgs,
    #[command(flatten)]
    at_rest: AtRestArgs,
    #[command(subcommand)]
    action: DlqAction,
}

#[derive(clap::Subcommand)]
enum DlqAction {
    /// List dead letters.
    List,
    /// Show one dead letter (by job id or stream sequence); a large body is
    /// named by its object, size and SHA-256. A body encrypted at rest is
    /// decrypted with the configured at-rest keys.
    Show {
        /// Job id or sequence.
        id: String,
        /// Write the original message body to standard output, byte for
        /// byte (read back from the object store when it is kept there).
        #[arg(long)]
        body: bool,
    },
    /// Run dead-lettered jobs again. Only entries a worker wrote are
    /// replayed, only when their message is a valid job.
    Replay {
        /// Job id or sequence.
        #[arg(required_unless_present = "all")]
        id: Option<String>,
        /// Replay every dead letter.
        #[arg(long, conflicts_with = "id")]
        all: bool,
        /// Replay even a job that succeeded or was submitted again since it
        /// was dead-lettered (it runs again).
        #[arg(long)]
        force: bool,
    },
}

/// Runs the action; exit status 1 when the dead letter named is not there
/// or a dead letter is not replayed.
pub(crate) async fn dlq(args: &DlqArgs) -> Result<ExitCode> {
    let queue = weft::queue::connect(args.at_rest.apply(args.nats.config())?).await?;
    match &args.action {
        DlqAction::List => {
            for entry in queue.dead_letters().await? {
                // A publisher chose the id, and the reason may quote it.
                let letter = &entry.letter;
                let mark = if entry.authenticated { "" } else { "[unauthenticated: not written by a worker] " };
                println!(
                    "{:>6}  {:<24} {:<16} {mark}{}",
                    entry.sequence,
                    printable(&letter.job_id),
                    printable(&letter.workflow),
                    printable(&letter.reason)
                );
            }
        }
        DlqAction::Show { id, body } => match queue.find_dead_letter(id).await? {
            Some(entry) if *body => {
                let bytes = queue.dead_letter_body(&entry).await?;
                let mut stdout = std::io::stdout().lock();
                stdout.write_all(&bytes)?;
                stdout.flush()?;
            }
            Some(entry) => println!("{}", serde_json::to_string_pretty(&queue.open_dead_letter(entry).await?)?),
            None => {
                eprintln!("error: no dead letter `{id}`");
                return Ok(ExitCode::from(EXIT_JOB_FAILED));
            }
        },
        DlqAction::Replay { id, all, force } => {
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
            let mut refused = false;
            for entry in entries {
                match queue.replay_with(&entry, *force).await {
                    Ok(job_id) => println!("replayed {job_id}"),
                    Err(QueueError::DeadLetter(error)) => {
                        eprintln!("error: {error}");
                        refused = true;
                    }
                    Err(error) => return Err(error.into()),
                }
            }
            if refused {
                return Ok(ExitCode::from(EXIT_JOB_FAILED));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
