//! Components that cannot be steps are rejected when the workflow loads,
//! with a message naming the step, the plugin and what is wrong.

use std::path::Path;

use weft::HostError;

use crate::support::{component_path, host, one_step, shared_cache_dir};

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

#[test]
fn a_grant_the_component_cannot_use_is_a_warning_and_an_import_without_a_grant_is_allowed() {
    // `chunk` imports no capability: its `http` grant can have no effect.
    let yaml = one_step("chunk", "    grants: { http: [hooks.example.com] }\n");
    let loaded = host().load_workflow_str("test.yaml", &yaml, Path::new(".")).unwrap();
    let warnings: Vec<String> = loaded.warnings().iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        ["test.yaml:6:15: step `s` is granted `http`, but its plugin `chunk` does not import `weft:plugin/http`, \
          so the grant has no effect; remove it or move it to the step that needs it"]
    );
    // `notify` imports http, email and secrets; printing to stdout needs none of them.
    let yaml = one_step("notify", "    config: { channels: [{ type: stdout }] }\n");
    let loaded = host().load_workflow_str("test.yaml", &yaml, Path::new(".")).unwrap();
    assert!(loaded.warnings().is_empty(), "{:?}", loaded.warnings());
    let info = host().plugins().unwrap().into_iter().find(|p| p.name == "notify").unwrap();
    assert!(info.required_grants.contains(&"http".to_owned()), "{:?}", info.required_grants);
}

#[test]
fn a_workflow_lists_the_secrets_it_needs_once_each() {
    let grants = "    grants: { secrets: [B_KEY, A_KEY] }\n  - id: t\n    plugin: notify\n    needs: [s]\n    grants: { secrets: [A_KEY] }\n";
    let yaml = one_step("notify", grants);
    let settings = weft::engine::EngineSettings {
        cache_dir: Some(shared_cache_dir().to_path_buf()),
        ..weft::engine::EngineSettings::default()
    };
    let host = weft::HostBuilder::new().engine_settings(settings).require_secrets(false).build().unwrap();
    let loaded = host.load_workflow_str("test.yaml", &yaml, Path::new(".")).unwrap();
    assert_eq!(loaded.secrets_needed(), ["A_KEY", "B_KEY"]);
}
