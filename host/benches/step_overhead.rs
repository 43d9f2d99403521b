//! Host overhead of one step attempt, in the same run:
//!
//! - `pooling` / `on_demand`: Weft's production path, [`Engine::run_attempt`]
//!   (fresh store with its sandboxed WASI context and limits, instantiate the
//!   trivial `noop` component from its `InstancePre`, call `run`, drop the
//!   store), with and without the pooling allocator;
//! - `bare_fresh`: the same instantiate + call + drop with plain wasmtime (no
//!   limits, no log capture, no outcome classification), pooling allocator;
//! - `bare_reused`: the same `run` call on one instance kept alive across
//!   calls, the floor a host that reuses instances would pay.
//!
//! `pooling` minus `bare_reused` is what Weft's fresh-instance-per-attempt
//! design costs per step call; `bench/run.sh` relates it to measured job
//! throughput.
//!
//! Run: `cargo bench -p weft --bench step_overhead` (results are recorded in
//! BENCHMARKS.md by `bench/run.sh`).

mod support;

use criterion::{Criterion, criterion_group, criterion_main};
use weft::engine::{Engine, EngineSettings};

/// Host bindings of `wit/step.wit` for the bare-wasmtime variants (the
/// crate's own bindings are private to its engine).
mod bare {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "step",
        exports: { default: async },
    });
}

use bare::weft::plugin::{logging, types};
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Config, InstanceAllocationStrategy, PoolingAllocationConfig, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Store state of the bare variants: a WASI context with nothing granted.
struct BareState {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl BareState {
    fn new() -> Self {
        BareState { wasi: WasiCtx::builder().build(), table: ResourceTable::new() }
    }
}

impl WasiView for BareState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl types::Host for BareState {}

impl logging::Host for BareState {
    fn log(&mut self, _level: logging::Level, _message: String) {}
}

/// A plain wasmtime engine with a pooling allocator and the `step` world linked.
fn bare_engine(bytes: &[u8]) -> (wasmtime::Engine, bare::StepPre<BareState>) {
    let mut config = Config::new();
    config.wasm_component_model(true);
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(16)
        .total_core_instances(128)
        .max_core_instances_per_component(32)
        .total_memories(32)
        .max_memories_per_component(4)
        .total_tables(64)
        .max_tables_per_component(8)
        .total_stacks(16);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    let engine = wasmtime::Engine::new(&config).unwrap_or_else(|e| panic!("{e:#}"));
    let mut linker = Linker::<BareState>::new(&engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap_or_else(|e| panic!("{e:#}"));
    bare::Step::add_to_linker::<BareState, HasSelf<BareState>>(&mut linker, |state| state)
        .unwrap_or_else(|e| panic!("{e:#}"));
    let component = Component::new(&engine, bytes).unwrap_or_else(|e| panic!("{e:#}"));
    let pre = linker.instantiate_pre(&component).unwrap_or_else(|e| panic!("{e:#}"));
    let pre = bare::StepPre::new(pre).unwrap_or_else(|e| panic!("{e:#}"));
    (engine, pre)
}

fn bare_input() -> (types::Context, Vec<types::Item>) {
    let ctx = types::Context {
        job_id: "bench".into(),
        workflow: "bench".into(),
        step_id: "noop".into(),
        attempt: 1,
        item_index: None,
    };
    let input = vec![types::Item { payload: types::Payload::Text("hello".into()), metadata: Vec::new() }];
    (ctx, input)
}

fn step_overhead(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap_or_else(|e| panic!("{e}"));
    let bytes = support::component_bytes("noop");
    let attempt = support::noop_attempt();
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

    let (engine, pre) = bare_engine(&bytes);
    let (ctx, input) = bare_input();
    group.bench_function("bare_fresh", |b| {
        b.to_async(&runtime).iter(|| async {
            let mut store = Store::new(&engine, BareState::new());
            let step = pre.instantiate_async(&mut store).await.unwrap_or_else(|e| panic!("{e:#}"));
            let out = step.call_run(&mut store, &ctx, &input, "{}").await.unwrap_or_else(|e| panic!("{e:#}"));
            assert!(matches!(out, Ok(ref items) if items.len() == 1));
        });
    });

    let mut store = Store::new(&engine, BareState::new());
    let step = runtime.block_on(pre.instantiate_async(&mut store)).unwrap_or_else(|e| panic!("{e:#}"));
    let store = std::cell::RefCell::new(store);
    group.bench_function("bare_reused", |b| {
        b.iter_custom(|iters| {
            let mut store = store.borrow_mut();
            runtime.block_on(async {
                let started = std::time::Instant::now();
                for _ in 0..iters {
                    let out = step.call_run(&mut *store, &ctx, &input, "{}").await.unwrap_or_else(|e| panic!("{e:#}"));
                    assert!(matches!(out, Ok(ref items) if items.len() == 1));
                }
                started.elapsed()
            })
        });
    });
    group.finish();
}

criterion_group!(benches, step_overhead);
criterion_main!(benches);
