//! `weft schema`: prints the JSON Schema of workflow files, so editors
//! complete and check them (`# yaml-language-server: $schema=weft.schema.json`
//! at the top of a file, after `weft schema > weft.schema.json`). The schema
//! itself is the library's, built from the parser's field lists.

use std::process::ExitCode;

use anyhow::Result;

/// Prints the schema as pretty JSON on stdout.
pub(crate) fn schema() -> Result<ExitCode> {
    println!("{}", serde_json::to_string_pretty(&weft::workflow_file_schema())?);
    Ok(ExitCode::SUCCESS)
}
