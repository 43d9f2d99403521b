//! The `weft` commands, one file each, and what they share: argument groups
//! (`args`), exit statuses and reading a job's input. A command turns its
//! arguments into library calls and prints what comes back; it never holds
//! a decision of its own (which workflow a name means, how a job id looks,
//! how an error reads), those live in the library.

pub(crate) mod args;
pub(crate) mod cancel;
pub(crate) mod dlq;
pub(crate) mod keys;
pub(crate) mod plugin;
pub(crate) mod plugins;
pub(crate) mod run;
pub(crate) mod schema;
pub(crate) mod serve;
pub(crate) mod status;
pub(crate) mod submit;
pub(crate) mod validate;
pub(crate) mod workflows;

use std::io::Read as _;
use std::path::Path;

use anyhow::{Context as _, Result};

/// Exit status: the job failed.
pub(crate) const EXIT_JOB_FAILED: u8 = 1;
/// Exit status: the invocation or the workflow was invalid.
pub(crate) const EXIT_INVALID: u8 = 2;

/// A job's input: the file's bytes, or standard input for `-`.
pub(crate) fn read_input(input: &Path) -> Result<Vec<u8>> {
    if input == Path::new("-") {
        let mut bytes = Vec::new();
        std::io::stdin().read_to_end(&mut bytes).context("cannot read the input from stdin")?;
        return Ok(bytes);
    }
    std::fs::read(input).with_context(|| format!("cannot read input {}", input.display()))
}

/// Prints a loaded workflow's warnings (a grant its step cannot use) on
/// stderr, where they do not mix with a job's JSON on stdout.
pub(crate) fn warn_about(workflow: &weft::LoadedWorkflow) {
    for warning in workflow.warnings() {
        eprintln!("warning: {warning}");
    }
}
