//! `weft plugins`: the built-in step components with their imports and
//! exports, as a table or JSON.

use std::process::ExitCode;

use anyhow::Result;
use weft::HostBuilder;

use super::args::CacheArgs;

/// `weft plugins`' arguments.
#[derive(clap::Args)]
pub(crate) struct PluginsArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Lists the plugins.
pub(crate) fn plugins(cache: &CacheArgs, args: &PluginsArgs) -> Result<ExitCode> {
    let host = HostBuilder::new().engine_settings(cache.engine_settings(false)).build()?;
    let plugins = host.plugins()?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&plugins)?);
        return Ok(ExitCode::SUCCESS);
    }
    for plugin in plugins {
        println!("{} ({} KiB)", plugin.name, plugin.size / 1024);
        println!("  exports: {}", plugin.exports.join(", "));
        let weft_imports: Vec<&str> =
            plugin.imports.iter().map(String::as_str).filter(|i| !i.starts_with("wasi:")).collect();
        let wasi = plugin.imports.len() - weft_imports.len();
        println!("  imports: {} (+ {wasi} sandboxed WASI interfaces)", weft_imports.join(", "));
        if !plugin.required_grants.is_empty() {
            println!("  can use, when its step grants them: {}", plugin.required_grants.join(", "));
        }
    }
    Ok(ExitCode::SUCCESS)
}
