//! Components that cannot be steps are rejected when the workflow loads,
//! with a message naming the step, the plugin and what is wrong.

use std::path::Path;

use weft::HostError;

use crate::support::{component_path, host, one_step};

fn load_error(yaml: &str, base: &Path) -> String {
    match host().load_workflow_str("test.yaml", yaml, base) {
        Ok(_) => panic!("workflow should be rejected"),
        Err(HostError::Workflow(error)) => error.to_string(),
        Err(other) => panic!("expected a workflow error, got {other}"),
    }
}

#[test]
fn a_component_built_against_an_unsupported_wit_version_is_refused() {
    let path = component_path("future-version");
    let message = load_error(&one_step(&path.display().to_string(), ""), Path::new("/"));
    assert!(message.starts_with("test.yaml:5:13: step `s`:"), "{message}");
    assert!(message.contains("built against weft:plugin@0.2.0"), "{message}");
    assert!(message.contains("supports weft:plugin@0.1.x"), "{message}");
}

#[test]
fn a_file_that_is_not_a_component_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("fake.wasm"), b"\0asm\x01\0\0\0garbage").unwrap();
    let message = load_error(&one_step("fake.wasm", ""), dir.path());
    assert!(
        message.contains("plugin `fake.wasm` cannot be used as a step: not a valid WebAssembly component"),
        "{message}"
    );
}

#[test]
fn a_missing_plugin_file_is_reported_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let message = load_error(&one_step("nowhere.wasm", ""), dir.path());
    assert!(message.contains("cannot read plugin `nowhere.wasm`"), "{message}");
    assert!(message.contains("nowhere.wasm"), "{message}");
}

#[test]
fn an_unknown_plugin_name_is_reported_with_a_suggestion() {
    let message = load_error(&one_step("pdf-lod", ""), Path::new("."));
    assert!(message.contains("pdf-lod"), "{message}");
    assert!(message.contains("pdf-load"), "suggests the closest name: {message}");
}

#[test]
fn fuel_limits_need_a_host_that_meters_fuel() {
    let settings = weft::engine::EngineSettings { cache_dir: None, fuel_metering: false, ..Default::default() };
    let host = weft::HostBuilder::new().engine_settings(settings).build().unwrap();
    let yaml = one_step("chunk", "    limits: { fuel: 1000 }\n");
    let error = host.load_workflow_str("test.yaml", &yaml, Path::new(".")).unwrap_err().to_string();
    assert!(error.contains("sets `limits.fuel`, but this host does not meter fuel"), "{error}");
}
