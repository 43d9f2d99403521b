//! Jobs per second through `weft serve`'s worker (one no-op step, and five
//! no-op steps) against a bare async-nats pull-and-ack loop on the same kind
//! of stream, in the same run, alternating contenders.
//!
//! Run: `cargo bench -p weft --bench queue_throughput` (needs `nats-server`,
//! see the README's test command). Prints a Markdown table.

// The integration tests' nats-server helper, shared rather than copied.
#[path = "../../tests/integration/nats.rs"]
#[allow(dead_code, clippy::expect_used, clippy::unwrap_used)]
mod nats;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt as _;
use weft::engine::EngineSettings;
use weft::queue::{QueueConfig, Worker, WorkerConfig};
use weft::{HostBuilder, PluginSource};

const JOBS: usize = 2000;
const ROUNDS: usize = 3;
const CONCURRENCY: usize = 32;

fn noop_path() -> std::path::PathBuf {
    std::path::Path::new(env!("WEFT_COMPONENTS_DIR")).join("noop.wasm")
}

fn workflow(steps: usize) -> String {
    let mut yaml = format!("name: noop{steps}\nversion: '1'\nsteps:\n");
    for i in 0..steps {
        yaml.push_str(&format!("  - id: s{i}\n    plugin: noop\n"));
        if i > 0 {
            yaml.push_str(&format!("    needs: [s{}]\n", i - 1));
        }
    }
    yaml
}

/// Jobs/s for the Weft worker on a fresh server.
async fn weft_round(steps: usize, cache: &std::path::Path) -> f64 {
    let server = nats::NatsServer::start();
    let config = QueueConfig { url: server.url(), ..QueueConfig::default() };
    let queue = weft::queue::connect(config.clone()).await.unwrap_or_else(|e| panic!("{e}"));
    let name = format!("noop{steps}");
    let mut done = queue.nats().subscribe(format!("weft.results.{name}")).await.unwrap_or_else(|e| panic!("{e}"));
    for i in 0..JOBS {
        queue.submit(&name, b"x".to_vec(), Some(format!("j{i}"))).await.unwrap_or_else(|e| panic!("{e}"));
    }
    let settings = EngineSettings { cache_dir: Some(cache.to_path_buf()), ..EngineSettings::default() };
    let host = Arc::new(
        HostBuilder::new()
            .engine_settings(settings)
            .plugin("noop", PluginSource::File(noop_path()))
            .build()
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let loaded = host
        .load_workflow_str("bench.yaml", &workflow(steps), std::path::Path::new("."))
        .unwrap_or_else(|e| panic!("{e}"));
    let worker = Worker::connect(
        host,
        vec![loaded],
        config,
        WorkerConfig { concurrency: CONCURRENCY, ..WorkerConfig::default() },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let started = Instant::now();
    let handle = tokio::spawn(worker.run(async {
        let _ = stopped.await;
    }));
    for _ in 0..JOBS {
        tokio::time::timeout(Duration::from_secs(120), done.next())
            .await
            .unwrap_or_else(|_| panic!("jobs stalled"))
            .unwrap_or_else(|| panic!("subscription ended"));
    }
    let rate = JOBS as f64 / started.elapsed().as_secs_f64();
    let _ = stop.send(());
    let _ = handle.await;
    rate
}

/// Jobs/s for a bare pull-parse-ack loop with the same batch size.
async fn bare_round() -> f64 {
    let server = nats::NatsServer::start();
    let client = async_nats::connect(server.url()).await.unwrap_or_else(|e| panic!("{e}"));
    let js = jetstream::new(client);
    let stream = js
        .create_stream(stream::Config {
            name: "BARE".into(),
            subjects: vec!["bare.>".into()],
            retention: stream::RetentionPolicy::WorkQueue,
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for i in 0..JOBS {
        let body = format!(r#"{{"job_id":"j{i}","input":{{"text":"x"}}}}"#);
        js.publish("bare.noop", body.into())
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let consumer = stream
        .create_consumer(consumer::pull::Config { durable_name: Some("bare".into()), ..Default::default() })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let started = Instant::now();
    let mut messages =
        consumer.stream().max_messages_per_batch(CONCURRENCY).messages().await.unwrap_or_else(|e| panic!("{e}"));
    let mut acked = 0;
    while acked < JOBS {
        let message = messages.next().await.unwrap_or_else(|| panic!("ended")).unwrap_or_else(|e| panic!("{e}"));
        let _: serde_json::Value = serde_json::from_slice(&message.payload).unwrap_or_else(|e| panic!("{e}"));
        message.double_ack().await.unwrap_or_else(|e| panic!("{e}"));
        acked += 1;
    }
    JOBS as f64 / started.elapsed().as_secs_f64()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` compatibility
    }
    let cache = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (mut bare, mut one, mut five) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        bare.push(bare_round().await);
        one.push(weft_round(1, cache.path()).await);
        five.push(weft_round(5, cache.path()).await);
        eprintln!(
            "round {round}: bare {:.0}/s, weft 1 step {:.0}/s, weft 5 steps {:.0}/s",
            bare[round], one[round], five[round]
        );
    }
    let (bare, one, five) = (median(bare), median(one), median(five));
    println!("| contender | jobs/s (median of {ROUNDS}, {JOBS} jobs, concurrency {CONCURRENCY}) | vs bare loop |");
    println!("| --- | ---: | ---: |");
    println!("| bare async-nats pull + parse + ack | {bare:.0} | 1.00x |");
    println!("| weft worker, 1 no-op step | {one:.0} | {:.2}x |", one / bare);
    println!("| weft worker, 5 no-op steps | {five:.0} | {:.2}x |", five / bare);
}
