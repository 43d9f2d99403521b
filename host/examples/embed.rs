//! Embedding Weft: build a host, load the bundled `pdf-digest` workflow, run
//! one job on a PDF and print the job report.
//!
//! Run: `cargo run -p weft --example embed -- workflows/samples/sample.pdf`

use std::path::Path;

use weft::{HostBuilder, Item};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pdf_path = std::env::args().nth(1).unwrap_or_else(|| "workflows/samples/sample.pdf".to_string());
    let pdf = std::fs::read(&pdf_path)?;

    // The standard step library is embedded; add your own with `.plugin(..)`.
    let host = HostBuilder::new().build()?;
    let (_, yaml) = weft::bundled_workflows().find(|(name, _)| *name == "pdf-digest").ok_or("no pdf-digest")?;
    let workflow = host.load_workflow_str("pdf-digest.yaml", yaml, Path::new("."))?;

    let outcome =
        host.run_job(&workflow, "example-job", vec![Item::bytes(pdf).with_metadata("source", pdf_path)]).await;
    println!("{}", serde_json::to_string_pretty(&outcome.report)?);
    for chunk in outcome.outputs.get("chunk").map(|c| c.as_slice()).unwrap_or_default().iter().take(3) {
        println!("--- page {:?}\n{}", chunk.metadata_value("page"), chunk.as_text().unwrap_or_default());
    }
    Ok(())
}
