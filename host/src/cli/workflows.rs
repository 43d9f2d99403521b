//! `weft workflows`: the names of the bundled workflows, one a line.

use std::process::ExitCode;

/// Lists the bundled workflows.
pub(crate) fn workflows() -> ExitCode {
    for name in weft::discovery::bundled_names() {
        println!("{name}");
    }
    ExitCode::SUCCESS
}
