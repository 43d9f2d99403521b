//! `weft plugin`: for plugin authors, `inspect` a component and scaffold a
//! `new` plugin project.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use super::args::CacheArgs;
use super::{EXIT_INVALID, EXIT_JOB_FAILED};

#[derive(clap::Subcommand)]
pub(crate) enum PluginAction {
    /// Show a component's world and version, imports (and the grants they
    /// need), exports, size and compile-cache status, and why it cannot be a step.
    ///
    /// Exit status: 0 it can be used as a step, 1 it cannot, 2 it is not a component.
    Inspect {
        /// A component file (.wasm).
        file: PathBuf,
        /// Also compile and prepare it as `weft run` would (slow for big components; fills the cache).
        #[arg(long)]
        compile: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Create a plugin project: the WIT, a build command, a test workflow and a test script.
    New {
        /// The plugin's name (kebab-case, like `keyword-tagger`).
        name: String,
        /// The language to write it in.
        #[arg(long, value_parser = ["rust", "python", "js"])]
        lang: String,
        /// Where to create it [default: ./NAME].
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

/// Runs the plugin action.
pub(crate) fn plugin(cache: &CacheArgs, action: &PluginAction) -> Result<ExitCode> {
    match action {
        PluginAction::Inspect { file, compile, json } => {
            let inspection = match weft::authoring::inspect_file(file, cache.engine_settings(false), *compile) {
                Ok(inspection) => inspection,
                Err(error) => {
                    eprintln!("error: {error}");
                    return Ok(ExitCode::from(EXIT_INVALID));
                }
            };
            if *json {
                println!("{}", serde_json::to_string_pretty(&inspection)?);
            } else {
                print!("{}", inspection.to_text());
            }
            Ok(if inspection.usable_as_step() { ExitCode::SUCCESS } else { ExitCode::from(EXIT_JOB_FAILED) })
        }
        PluginAction::New { name, lang, dir } => {
            let language: weft::authoring::Language = lang.parse()?;
            let dir = dir.clone().unwrap_or_else(|| PathBuf::from(name));
            let files = weft::authoring::scaffold(name, language, &dir)?;
            eprintln!("created a {language} plugin `{name}` in {}:", dir.display());
            for file in files {
                eprintln!("  {}", file.display());
            }
            eprintln!(
                "next: cd {} && ./test.sh   (builds it, runs it with `weft run`, checks the output)",
                dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
