//! Weft: an embeddable host that runs declarative workflows of sandboxed
//! WebAssembly components.
//!
//! A workflow file declares a DAG of steps; each step is a Wasm component
//! (WASI 0.2, the `weft:plugin/step` world in `wit/`) that can touch only
//! what its workflow grants. The host owns retries with backoff, timeouts and
//! limits. The data flows through the modules in this order:
//!
//! - [`workflow`]: parse and validate a workflow file into a typed DAG;
//! - [`scheduler`]: run the DAG for one job (ordering, fan-out, retries);
//! - [`engine`]: run one step attempt in a fresh wasmtime store;
//! - [`capabilities`]: what a step may reach outside its sandbox.
//!
//! ```no_run
//! # async fn demo() -> Result<(), weft::HostError> {
//! let host = weft::HostBuilder::new().build()?;
//! let workflow = host.load_workflow_file("workflows/pdf-digest.yaml")?;
//! let pdf = std::fs::read("sample.pdf").expect("a PDF");
//! let outcome = host.run_job(&workflow, "job-1", vec![weft::Item::bytes(pdf)]).await;
//! assert_eq!(outcome.report.status, weft::scheduler::JobStatus::Succeeded);
//! # Ok(()) }
//! ```
//!
//! See `host/examples/embed.rs` for a complete program.

pub mod api;
pub mod authoring;
mod bundled;
pub use weft_capabilities as capabilities;
pub mod discovery;
pub use weft_core::errors;
pub use weft_core::text;
pub use weft_engine as engine;
mod host;
pub use weft_core::item;
pub mod load_check;
pub mod queue;
pub use weft_scheduler as scheduler;
pub use weft_workflow as workflow;

pub use bundled::bundled_workflows;
pub use host::{Host, HostBuilder, HostError, LoadedWorkflow, PluginInfo, PluginSource};
pub use item::{Item, Payload};
pub use weft_core::new_job_id;

/// The JSON Schema (draft 2020-12) of workflow files for this host, with
/// its built-in plugins and grant names offered for completion (`weft
/// schema` prints it; see [`workflow::workflow_file_schema`]).
pub fn workflow_file_schema() -> serde_json::Value {
    let facts = workflow::SchemaFacts {
        plugins: bundled::builtin_plugins().map(|(name, _)| name.to_owned()).collect(),
        grants: capabilities::CAPABILITIES
            .iter()
            .filter_map(|c| c.grant.map(|grant| (grant.to_owned(), c.summary.to_owned())))
            .collect(),
    };
    workflow::workflow_file_schema(&facts)
}
