//! `weft validate`: load workflow files as `weft run` would and print every
//! problem found, or `ok` with its warnings and the secrets it needs when run.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use weft::HostBuilder;

use super::EXIT_INVALID;
use super::args::CacheArgs;

/// `weft validate`'s arguments.
#[derive(clap::Args)]
pub(crate) struct ValidateArgs {
    /// Workflow files.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

/// Checks every file; exit status 2 when any is invalid.
pub(crate) fn validate(cache: &CacheArgs, args: &ValidateArgs) -> Result<ExitCode> {
    // Secrets are the running host's business: listed here, checked by `run` and `serve`.
    let host = HostBuilder::new().engine_settings(cache.engine_settings(true)).require_secrets(false).build()?;
    let mut invalid = 0;
    for file in &args.files {
        match host.load_workflow_file(file) {
            Ok(loaded) => {
                println!("{}: ok ({} steps)", file.display(), loaded.workflow().steps.len());
                for warning in loaded.warnings() {
                    println!("warning: {warning}");
                }
                let secrets = loaded.secrets_needed();
                if !secrets.is_empty() {
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
        eprintln!("error: {invalid} of {} workflow file(s) invalid", args.files.len());
        return Ok(ExitCode::from(EXIT_INVALID));
    }
    Ok(ExitCode::SUCCESS)
}
