//! Host overhead of one step attempt: create a store, instantiate a trivial
//! component from its `InstancePre`, call `run`, drop the store. Compared
//! with and without the pooling allocator in the same run.
//!
//! Run: `cargo bench -p weft --bench step_overhead`
//! (results are recorded in BENCHMARKS.md).

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use weft::Item;
use weft::engine::{Engine, EngineSettings};
use weft::scheduler::StepAttempt;

fn noop_component() -> Vec<u8> {
    let path = std::path::Path::new(env!("WEFT_COMPONENTS_DIR")).join("noop.wasm");
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn attempt() -> StepAttempt {
    let workflow =
        weft::workflow::parse("bench.yaml", "name: b\nversion: '1'\nsteps:\n  - id: noop\n    plugin: noop\n")
            .unwrap_or_else(|e| panic!("{e}"));
    StepAttempt {
        job_id: Arc::from("bench"),
        step: Arc::new(workflow.steps[0].clone()),
        attempt: 1,
        item_index: None,
        timeout: Duration::from_secs(10),
        input: vec![Item::text("hello")],
    }
}

fn step_overhead(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap_or_else(|e| panic!("{e}"));
    let bytes = noop_component();
    let attempt = attempt();
    let mut group = c.benchmark_group("step_attempt");
    for (label, pooling) in [("pooling", true), ("on_demand", false)] {
        let engine = Engine::new(EngineSettings { pooling, cache_dir: None, ..EngineSettings::default() })
            .unwrap_or_else(|e| panic!("{e}"));
        let plugin = engine.load_plugin("noop", &bytes).unwrap_or_else(|e| panic!("{e}"));
        group.bench_function(label, |b| {
            b.to_async(&runtime).iter(|| async {
                let out = engine.run_attempt(&plugin, &attempt, "{}").await.unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(out.len(), 1);
            });
        });
    }
    group.finish();
}

criterion_group!(benches, step_overhead);
criterion_main!(benches);
