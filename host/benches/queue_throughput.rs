//! Jobs per second through `weft serve`'s worker (one no-op step, and five
//! no-op steps) against a bare async-nats pull-and-ack loop on the same kind
//! of stream, in the same run, alternating contenders.
//!
//! Besides jobs/s it reports the CPU time each job costs in this process
//! (worker or bare loop) and in nats-server, from `/proc`: on a shared,
//! oversubscribed machine the rates swing with the neighbours' load, while
//! CPU per job barely moves, so it shows what a change really saved.
//!
//! Run: `cargo bench -p weft --bench queue_throughput` (needs `nats-server`,
//! see the README's test command). Prints a Markdown table.
//! `-- --encryption` instead compares the worker with and without
//! encryption at rest, side by side in alternating rounds.

// The integration tests' nats-server helper, shared rather than copied.
#[path = "../../tests/integration/nats.rs"]
#[allow(dead_code, clippy::expect_used, clippy::unwrap_used)]
mod nats;

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt as _;
use weft::engine::EngineSettings;
use weft::queue::{DEFAULT_CHECKPOINT_DELAY, Keyring, QueueConfig, Worker, WorkerConfig};
use weft::{HostBuilder, PluginSource};

const JOBS: usize = 2000;
const ROUNDS: usize = 5;
const CONCURRENCY: usize = 32;

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

/// CPU time (user + system) a process has used so far, from `/proc/<pid>/stat`.
fn cpu_time(pid: &str) -> Duration {
    const TICKS_PER_SECOND: u64 = 100; // USER_HZ on Linux
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default();
    let fields: Vec<u64> = after_name.split_whitespace().map(|f| f.parse().unwrap_or(0)).collect();
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND)
}

/// One contender's measurement window: wall time and the CPU time used by
/// this process and by nats-server.
struct Window {
    started: Instant,
    client_cpu: Duration,
    server_cpu: Duration,
    server_pid: String,
}

/// What one round measured.
#[derive(Clone, Copy)]
struct Round {
    jobs_per_second: f64,
    client_us_per_job: f64,
    server_us_per_job: f64,
}

impl Window {
    fn open(server: &nats::NatsServer) -> Self {
        let server_pid = server.pid().map(|p| p.to_string()).unwrap_or_default();
        Window { started: Instant::now(), client_cpu: cpu_time("self"), server_cpu: cpu_time(&server_pid), server_pid }
    }

    fn close(self, jobs: usize) -> Round {
        let per_job = |d: Duration| d.as_secs_f64() * 1e6 / jobs as f64;
        Round {
            jobs_per_second: jobs as f64 / self.started.elapsed().as_secs_f64(),
            client_us_per_job: per_job(cpu_time("self").saturating_sub(self.client_cpu)),
            server_us_per_job: per_job(cpu_time(&self.server_pid).saturating_sub(self.server_cpu)),
        }
    }
}

/// Jobs/s for the Weft worker on a fresh server.
async fn weft_round(steps: usize, checkpoint_delay: Duration, cache: &std::path::Path) -> Round {
    weft_round_with(steps, checkpoint_delay, cache, None, b"x").await
}

/// Jobs/s for the Weft worker on a fresh server, submitter and worker
/// encrypting at rest with `at_rest` when given, each job's input `input`.
async fn weft_round_with(
    steps: usize,
    checkpoint_delay: Duration,
    cache: &std::path::Path,
    at_rest: Option<Keyring>,
    input: &[u8],
) -> Round {
    let server = nats::NatsServer::start();
    let config = QueueConfig { url: server.url(), at_rest, ..QueueConfig::default() };
    let config_stream = config.jobs_stream.clone();
    let queue = weft::queue::connect(config.clone()).await.unwrap_or_else(|e| panic!("{e}"));
    let name = format!("noop{steps}");
    let mut done = queue.nats().subscribe(format!("weft.results.{name}")).await.unwrap_or_else(|e| panic!("{e}"));
    for i in 0..JOBS {
        queue.submit(&name, input.to_vec(), Some(format!("j{i}"))).await.unwrap_or_else(|e| panic!("{e}"));
    }
    let settings = EngineSettings { cache_dir: Some(cache.to_path_buf()), ..EngineSettings::default() };
    let host = Arc::new(
        HostBuilder::new()
            .engine_settings(settings)
            .plugin("noop", PluginSource::File(support::component_path("noop")))
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
        WorkerConfig { concurrency: CONCURRENCY, checkpoint_delay, ..WorkerConfig::default() },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let window = Window::open(&server);
    let handle = tokio::spawn(worker.run(async {
        let _ = stopped.await;
    }));
    for _ in 0..JOBS {
        tokio::time::timeout(Duration::from_secs(120), done.next())
            .await
            .unwrap_or_else(|_| panic!("jobs stalled"))
            .unwrap_or_else(|| panic!("subscription ended"));
    }
    // The worker's acks are not confirmed either (its terminal state is, in
    // the KV bucket): the window ends when the server has applied them all.
    wait_until_empty(&jetstream::new(queue.nats().clone()), &config_stream).await;
    let round = window.close(JOBS);
    let _ = stop.send(());
    let _ = handle.await;
    round
}

/// How the bare loop acknowledges a message.
#[derive(Clone, Copy)]
enum BareAck {
    /// `double_ack`: waits for the server to confirm each ack.
    Confirmed,
    /// `ack`: fire and forget, the cheapest a consumer can do (the worker
    /// acks this way too, once the job's terminal state is durable).
    Plain,
}

/// Jobs/s for a bare pull-parse-ack loop with the same batch size (one
/// message in flight at a time: the loop a user writes by hand).
async fn bare_round(kind: BareAck) -> Round {
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
    let window = Window::open(&server);
    let mut messages =
        consumer.stream().max_messages_per_batch(CONCURRENCY).messages().await.unwrap_or_else(|e| panic!("{e}"));
    let mut acked = 0;
    while acked < JOBS {
        let message = messages.next().await.unwrap_or_else(|| panic!("ended")).unwrap_or_else(|e| panic!("{e}"));
        let _: serde_json::Value = serde_json::from_slice(&message.payload).unwrap_or_else(|e| panic!("{e}"));
        match kind {
            BareAck::Confirmed => message.double_ack().await.unwrap_or_else(|e| panic!("{e}")),
            BareAck::Plain => message.ack().await.unwrap_or_else(|e| panic!("{e}")),
        }
        acked += 1;
    }
    // Plain acks are not confirmed: wait until the server has applied them
    // all (the stream is empty), so the window covers the same work.
    if let BareAck::Plain = kind {
        wait_until_empty(&js, "BARE").await;
    }
    window.close(JOBS)
}

/// Waits (at most 60 s) until a work-queue stream holds no message, i.e.
/// the server has applied every ack, confirmed or not.
async fn wait_until_empty(js: &jetstream::Context, stream: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = js.get_stream(stream).await.unwrap_or_else(|e| panic!("{e}")).cached_info().state.messages;
        if left == 0 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn median(rounds: &[Round], field: impl Fn(&Round) -> f64) -> f64 {
    let mut values: Vec<f64> = rounds.iter().map(field).collect();
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The five-step contender alone, `ROUNDS` times, with every round printed.
async fn only_five() {
    let cache = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut five = Vec::new();
    for round in 0..ROUNDS {
        let r = weft_round(5, DEFAULT_CHECKPOINT_DELAY, cache.path()).await;
        eprintln!(
            "round {round}: weft 5 steps {:.0}/s ({:.0}+{:.0} us CPU/job)",
            r.jobs_per_second, r.client_us_per_job, r.server_us_per_job
        );
        five.push(r);
    }
    println!(
        "weft worker, 5 no-op steps: median {:.0} jobs/s, {:.0}+{:.0} us CPU/job (worker+server)",
        median(&five, |r| r.jobs_per_second),
        median(&five, |r| r.client_us_per_job),
        median(&five, |r| r.server_us_per_job)
    );
}

/// The input of `--encryption`'s jobs: 4 KiB of text, a small document.
const ENCRYPTION_INPUT_BYTES: usize = 4096;

/// `--encryption`: the five-step worker with and without encryption at
/// rest (default checkpoint delay, and checkpointing at once so every
/// step's checkpoint is encrypted too), alternating, `ROUNDS` rounds.
async fn encryption() {
    let cache = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let keys = Keyring::new(vec![("bench".into(), [7; 32])]).unwrap_or_else(|e| panic!("{e}"));
    let input = "lorem ipsum ".repeat(ENCRYPTION_INPUT_BYTES / 12).into_bytes();
    let contenders: [(&str, Duration, Option<Keyring>); 4] = [
        ("weft worker, 5 no-op steps, plaintext", DEFAULT_CHECKPOINT_DELAY, None),
        ("weft worker, 5 no-op steps, encrypted at rest", DEFAULT_CHECKPOINT_DELAY, Some(keys.clone())),
        ("weft worker, 5 no-op steps, checkpoint_delay 0, plaintext", Duration::ZERO, None),
        ("weft worker, 5 no-op steps, checkpoint_delay 0, encrypted at rest", Duration::ZERO, Some(keys)),
    ];
    let mut rounds: Vec<Vec<Round>> = vec![Vec::new(); contenders.len()];
    for round in 0..ROUNDS {
        for (i, (name, delay, keys)) in contenders.iter().enumerate() {
            let r = weft_round_with(5, *delay, cache.path(), keys.clone(), &input).await;
            eprintln!(
                "round {round}: {name}: {:.0}/s ({:.0}+{:.0} us CPU/job)",
                r.jobs_per_second, r.client_us_per_job, r.server_us_per_job
            );
            rounds[i].push(r);
        }
    }
    println!(
        "| contender ({} B input) | jobs/s (median of {ROUNDS}, {JOBS} jobs, concurrency {CONCURRENCY}) | \
         encrypted / plaintext (median of per-round ratios) | CPU us/job in this process | CPU us/job in nats-server |",
        input.len()
    );
    println!("| --- | ---: | ---: | ---: | ---: |");
    for (i, (name, _, keys)) in contenders.iter().enumerate() {
        let ratio = if keys.is_some() {
            let mut ratios: Vec<f64> = rounds[i]
                .iter()
                .zip(&rounds[i - 1])
                .map(|(on, off)| on.jobs_per_second / off.jobs_per_second)
                .collect();
            ratios.sort_by(f64::total_cmp);
            format!("{:.2}", ratios[ratios.len() / 2])
        } else {
            String::new()
        };
        println!(
            "| {name} | {:.0} | {ratio} | {:.0} | {:.0} |",
            median(&rounds[i], |r| r.jobs_per_second),
            median(&rounds[i], |r| r.client_us_per_job),
            median(&rounds[i], |r| r.server_us_per_job)
        );
    }
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` compatibility
    }
    // The subscriber `weft serve` installs by default (warnings only), so
    // the worker's spans and events cost here what they cost there.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
        .with_writer(std::io::stderr)
        .init();
    // `--only-five`: just the five-step contender (default delay), for A/B
    // runs of two builds where only the worker's cost matters.
    if std::env::args().any(|a| a == "--only-five") {
        return only_five().await;
    }
    // `--encryption`: the cost of encryption at rest (see `encryption`).
    if std::env::args().any(|a| a == "--encryption") {
        return encryption().await;
    }
    let cache = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (mut bare, mut bare_plain, mut one, mut five, mut five_eager) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        bare.push(bare_round(BareAck::Confirmed).await);
        bare_plain.push(bare_round(BareAck::Plain).await);
        one.push(weft_round(1, DEFAULT_CHECKPOINT_DELAY, cache.path()).await);
        five.push(weft_round(5, DEFAULT_CHECKPOINT_DELAY, cache.path()).await);
        five_eager.push(weft_round(5, Duration::ZERO, cache.path()).await);
        let show = |r: &Round| {
            format!("{:.0}/s ({:.0}+{:.0} us CPU/job)", r.jobs_per_second, r.client_us_per_job, r.server_us_per_job)
        };
        eprintln!(
            "round {round}: bare {}, bare plain ack {}, weft 1 step {}, weft 5 steps {}, \
             weft 5 steps checkpointing at once {}",
            show(&bare[round]),
            show(&bare_plain[round]),
            show(&one[round]),
            show(&five[round]),
            show(&five_eager[round])
        );
    }
    let bare_rate = median(&bare, |r| r.jobs_per_second);
    let plain_rate = median(&bare_plain, |r| r.jobs_per_second);
    println!(
        "| contender | jobs/s (median of {ROUNDS}, {JOBS} jobs, concurrency {CONCURRENCY}) | vs confirmed-ack loop \
         | vs plain-ack loop | CPU us/job in this process | CPU us/job in nats-server |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for (name, rounds) in [
        ("bare async-nats pull + parse + double_ack (confirmed)", &bare),
        ("bare async-nats pull + parse + plain ack (unconfirmed)", &bare_plain),
        ("weft worker, 1 no-op step", &one),
        ("weft worker, 5 no-op steps", &five),
        ("weft worker, 5 no-op steps, checkpoint_delay 0", &five_eager),
    ] {
        let rate = median(rounds, |r| r.jobs_per_second);
        println!(
            "| {name} | {rate:.0} | {:.2}x | {:.2}x | {:.0} | {:.0} |",
            rate / bare_rate,
            rate / plain_rate,
            median(rounds, |r| r.client_us_per_job),
            median(rounds, |r| r.server_us_per_job)
        );
    }
}
