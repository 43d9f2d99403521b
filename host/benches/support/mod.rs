//! What several benches share: the components host/build.rs built, and a
//! one-step attempt of the trivial `noop` plugin.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use weft::Item;
use weft::scheduler::StepAttempt;

/// Where host/build.rs put the component of plugin `name`.
pub fn component_path(name: &str) -> PathBuf {
    PathBuf::from(env!("WEFT_COMPONENTS_DIR")).join(format!("{}.wasm", name.replace('-', "_")))
}

/// The bytes of plugin `name`'s component.
#[allow(dead_code)] // not every bench reads the bytes itself
pub fn component_bytes(name: &str) -> Vec<u8> {
    let path = component_path(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The first attempt of a one-step workflow whose step `noop` runs plugin
/// `noop` on one text item.
#[allow(dead_code)] // not every bench runs single attempts
pub fn noop_attempt() -> StepAttempt {
    let workflow =
        weft::workflow::parse("bench.yaml", "name: b\nversion: '1'\nsteps:\n  - id: noop\n    plugin: noop\n")
            .unwrap_or_else(|e| panic!("{e}"));
    StepAttempt {
        job_id: Arc::from("bench"),
        step: workflow.steps[0].clone(),
        attempt: 1,
        item_index: None,
        timeout: Duration::from_secs(30),
        input: vec![Item::text("hello")],
    }
}
