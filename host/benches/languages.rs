//! What a trivial step costs in each plugin language: component size,
//! Cranelift compile time, compile-cache load time, the first call in a
//! fresh engine (cold) and the median call after it (warm; every call is a
//! fresh instance in a fresh store, as in production).
//!
//! The steps: Rust `noop` (returns its input), and the Python and
//! JavaScript test components in `echo` mode (parse the JSON config, return
//! the input). All three do next to nothing, so the numbers are the cost of
//! each language's runtime.
//!
//! Run: `cargo bench -p weft --bench languages` (results in docs/plugins.md).

mod support;

use std::time::{Duration, Instant};

use weft::engine::{Engine, EngineSettings};

const WARM_CALLS: usize = 30;
const CACHE_LOADS: usize = 5;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument is a filter.
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap_or_else(|e| panic!("{e}"));
    let attempt = support::noop_attempt();
    println!(
        "| language | component | size | compile (Cranelift) | load from cache (median of {CACHE_LOADS}) | first call, cold | call, warm (median of {WARM_CALLS}) |"
    );
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: |");
    for (language, name, config) in [
        ("Rust", "noop", "{}"),
        ("Python", "misbehaving-python", r#"{"mode":"echo"}"#),
        ("JavaScript", "misbehaving-js", r#"{"mode":"echo"}"#),
    ] {
        if filter.as_deref().is_some_and(|f| !name.contains(f) && !language.eq_ignore_ascii_case(f)) {
            continue;
        }
        let bytes = support::component_bytes(name);
        let cache = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let settings = EngineSettings { cache_dir: Some(cache.path().to_path_buf()), ..EngineSettings::default() };

        let compiling = Engine::new(settings.clone()).unwrap_or_else(|e| panic!("{e}"));
        let started = Instant::now();
        compiling.load_plugin(name, &bytes).unwrap_or_else(|e| panic!("{e}"));
        let compile = started.elapsed();
        drop(compiling);

        let mut loads = Vec::new();
        let mut cold = Vec::new();
        let mut warm = Vec::new();
        for _ in 0..CACHE_LOADS {
            let engine = Engine::new(settings.clone()).unwrap_or_else(|e| panic!("{e}"));
            let started = Instant::now();
            let plugin = engine.load_plugin(name, &bytes).unwrap_or_else(|e| panic!("{e}"));
            loads.push(started.elapsed());
            assert!(plugin.from_cache);
            let started = Instant::now();
            let out = runtime.block_on(engine.run_attempt(&plugin, &attempt, config)).unwrap_or_else(|e| panic!("{e}"));
            cold.push(started.elapsed());
            assert_eq!(out.len(), 1);
            if warm.is_empty() {
                for _ in 0..WARM_CALLS {
                    let started = Instant::now();
                    runtime.block_on(engine.run_attempt(&plugin, &attempt, config)).unwrap_or_else(|e| panic!("{e}"));
                    warm.push(started.elapsed());
                }
            }
        }
        println!(
            "| {language} | `{name}` | {:.1} MiB | {} | {} | {} | {} |",
            bytes.len() as f64 / (1024.0 * 1024.0),
            ms(compile),
            ms(median(loads)),
            ms(median(cold)),
            ms(median(warm)),
        );
    }
}
