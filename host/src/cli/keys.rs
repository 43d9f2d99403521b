//! `weft keys`: create, list and revoke the HTTP API's keys. A key's token
//! is printed once, by `create`; only its hash is stored.

use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Result, bail};
use weft::api::auth::Scope;
use weft::queue::{ApiKeyError, ApiKeyRecord};

use super::EXIT_JOB_FAILED;
use super::args::NatsArgs;

/// `weft keys`' arguments.
#[derive(clap::Args)]
pub(crate) struct KeysArgs {
    #[command(flatten)]
    nats: NatsArgs,
    #[command(subcommand)]
    action: KeysAction,
}

#[derive(clap::Subcommand)]
enum KeysAction {
    /// Create a key and print its token (shown this once only).
    Create {
        /// What the key is for (listed, logged).
        #[arg(long)]
        name: String,
        /// Its scopes, comma separated: submit, read, review, admin (admin
        /// implies the others).
        #[arg(long = "scope", value_name = "SCOPES", value_delimiter = ',', required = true)]
        scopes: Vec<Scope>,
        /// How long it works, e.g. 30d, 12h, 90m [default: until revoked].
        #[arg(long, value_name = "DURATION", value_parser = parse_lifetime)]
        expires: Option<Duration>,
        /// Who creates it, kept in its record [default: user@host].
        #[arg(long, value_name = "NAME")]
        by: Option<String>,
    },
    /// List the keys (never their secrets), revoked and expired ones too.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key: it stops working at once and stays listed as revoked.
    Revoke {
        /// The key's id (the 16 hex digits after `weft_`).
        id: String,
    },
}

/// A key's lifetime: `30d`, or any duration `weft` takes (`12h`, `90m`).
fn parse_lifetime(text: &str) -> Result<Duration, String> {
    if let Some(days) = text.trim().strip_suffix('d') {
        let days: u64 = days.parse().map_err(|_| format!("`{text}` is not a number of days, e.g. `30d`"))?;
        return days
            .checked_mul(24 * 3600)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("`{text}` is too long a lifetime"));
    }
    weft::workflow::parse_duration(text).map_err(|error| format!("{error}, or days such as `30d`"))
}

/// Runs the action. Exit status 1 when the key to revoke does not exist.
pub(crate) async fn keys(args: &KeysArgs) -> Result<ExitCode> {
    let queue = weft::queue::connect(args.nats.config()).await?;
    match &args.action {
        KeysAction::Create { name, scopes, expires, by } => {
            let scopes: Vec<String> = scopes.iter().map(|scope| scope.name().to_string()).collect();
            let by = by.clone().unwrap_or_else(super::cancel::default_by);
            let (record, token) = queue.create_api_key(name, &scopes, *expires, &by).await?;
            eprintln!(
                "created API key {} ({}) with scopes {}{}",
                record.id,
                record.name,
                record.scopes.join(","),
                record.expires_at_ms.map(|at| format!(", expires {}", time(at))).unwrap_or_default()
            );
            eprintln!(
                "store this token now: it is shown once and cannot be recovered (only its hash is kept); send it \
                 as `Authorization: Bearer <token>`"
            );
            println!("{token}");
        }
        KeysAction::List { json } => {
            let records = queue.api_keys().await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&records)?);
            } else {
                print_table(&records);
            }
        }
        KeysAction::Revoke { id } => match queue.revoke_api_key(id).await {
            Ok(record) => eprintln!(
                "revoked API key {} ({}) at {}",
                record.id,
                record.name,
                record.revoked_at_ms.map(time).unwrap_or_default()
            ),
            Err(error @ ApiKeyError::Unknown { .. }) => {
                eprintln!("error: {error}");
                return Ok(ExitCode::from(EXIT_JOB_FAILED));
            }
            Err(error) => bail!(error),
        },
    }
    Ok(ExitCode::SUCCESS)
}

fn print_table(records: &[ApiKeyRecord]) {
    if records.is_empty() {
        eprintln!("no API keys; create one with `weft keys create --name NAME --scope read`");
        return;
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    println!("{:<16}  {:<8}  {:<24}  {:<29}  {:<29}  NAME (CREATED BY)", "ID", "STATE", "SCOPES", "CREATED", "EXPIRES");
    for record in records {
        let state = match (record.revoked_at_ms, record.expires_at_ms) {
            (Some(_), _) => "revoked",
            (None, Some(at)) if now >= at => "expired",
            _ => "active",
        };
        println!(
            "{:<16}  {:<8}  {:<24}  {:<29}  {:<29}  {} ({})",
            record.id,
            state,
            record.scopes.join(","),
            time(record.created_at_ms),
            record.expires_at_ms.map(time).unwrap_or_else(|| "never".into()),
            weft::text::printable(&record.name),
            weft::text::printable(&record.created_by),
        );
    }
}

/// A time in ms since the Unix epoch as an HTTP date (UTC).
fn time(ms: u64) -> String {
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_millis(ms))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_take_days_and_the_usual_units() {
        assert_eq!(parse_lifetime("30d"), Ok(Duration::from_secs(30 * 24 * 3600)));
        assert_eq!(parse_lifetime("12h"), Ok(Duration::from_secs(12 * 3600)));
        assert!(parse_lifetime("xd").is_err());
        assert!(parse_lifetime("30").unwrap_err().contains("30d"));
    }
}
