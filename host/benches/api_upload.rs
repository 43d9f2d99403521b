//! Uploads per second, and p50/p99 latency, of small PDFs sent to Weft's
//! HTTP API against the seed's stack (FastAPI on `uvicorn --workers 2`
//! saving the file and calling a Celery task's `.delay()` on Redis), side by
//! side in one run; then the API's cost on a worker's throughput (`weft
//! serve` with and without `--http` under the same job load).
//!
//! Both upload servers are separate processes started here: Weft's release
//! `weft serve --http ADDR --no-worker` on a real nats-server, and
//! `bench/api/seed_app.py` under uvicorn on a real redis-server. The same
//! multipart body (`workflows/samples/sample.pdf`) goes to both from C
//! concurrent clients for a fixed time; the contenders alternate (A B A B)
//! so the shared machine's noise falls on both, and the medians are compared.
//! Besides the rates it reads each server's CPU time per upload from `/proc`
//! (every process of its process group: uvicorn's workers, nats-server).
//!
//! Run: `bash bench/api/run.sh` (installs the seed's venv, builds the
//! release `weft`, runs this bench). Needs `nats-server`, `redis-server`,
//! `$WEFT_BIN` (a release `weft`) and `$SEED_VENV` (bench/api/.venv).
//! Arguments after `--`: `--uploads-only`, `--worker-only`.

// The integration tests' nats-server helper, shared rather than copied.
#[path = "../../tests/integration/nats.rs"]
#[allow(dead_code, clippy::expect_used, clippy::unwrap_used)]
mod nats;

use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt as _;

/// Concurrent clients of each upload measurement.
const CONCURRENCY: [usize; 2] = [16, 64];
/// Pairs (Weft, seed) per concurrency.
const PAIRS: usize = 3;
/// Uploads sent before each measurement and not counted (connections, caches).
const WARMUP: Duration = Duration::from_secs(1);
/// How long each measurement sends uploads.
const WINDOW: Duration = Duration::from_secs(5);
/// Jobs per worker-throughput round.
const JOBS: usize = 2000;
/// Rounds per worker mode.
const WORKER_ROUNDS: usize = 3;
/// Concurrent submitters in the worker-throughput rounds.
const SUBMITTERS: usize = 16;
/// `weft serve --concurrency` in the worker-throughput rounds.
const WORKER_CONCURRENCY: usize = 32;
/// The one-step workflow the worker rounds run: `chunk` on a short text.
const WORKER_WORKFLOW: &str =
    "name: echo\nversion: '1'\nsteps:\n  - id: chunk\n    plugin: chunk\n    config: { size: 1000, overlap: 0 }\n";
const BOUNDARY: &str = "weftbenchboundary7d3a1c";

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free loopback port: {e}"))
}

/// A server process in its own process group, ended (the whole group) on drop.
struct Server {
    name: &'static str,
    child: Child,
}

impl Server {
    fn spawn(name: &'static str, command: &mut Command) -> Server {
        let child = command
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Server { name, child }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && !self.exited() {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

/// CPU time (user + system) of every live process in process group `pgid`.
fn group_cpu(pgid: u32) -> Duration {
    const TICKS_PER_SECOND: u64 = 100; // USER_HZ on Linux
    let mut ticks = 0;
    let Ok(entries) = std::fs::read_dir("/proc") else { return Duration::ZERO };
    for entry in entries.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default();
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        // After the name: state(0) ppid(1) pgrp(2) ... utime(11) stime(12).
        if fields.get(2).and_then(|g| g.parse::<u32>().ok()) == Some(pgid) {
            let field = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            ticks += field(11) + field(12);
        }
    }
    Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND)
}

/// Polls `url` until it answers 200 (at most `limit`), failing if `server` exits.
async fn wait_ready(client: &reqwest::Client, url: &str, server: &mut Server, limit: Duration) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if server.exited() {
            panic!("{} exited before it was ready", server.name);
        }
        if let Ok(response) = client.get(url).send().await
            && response.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{} was not ready at {url} within {limit:?}", server.name);
}

/// The multipart body of one upload: the sample PDF as part `file`.
fn multipart_body(pdf: &[u8]) -> Vec<u8> {
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"sample.pdf\"\r\n\
         Content-Type: application/pdf\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(pdf);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

/// What one measurement saw.
#[derive(Clone, Copy)]
struct Measured {
    uploads_per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: usize,
    uploads: usize,
    cpu_us_per_upload: f64,
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1e3
}

/// Sends the upload to `url` from `clients` concurrent clients: a warm-up,
/// then `WINDOW` in which every latency is kept. Uploads answered anything
/// but 202 are errors (the first few are printed).
async fn load(client: &reqwest::Client, url: &str, body: &bytes::Bytes, clients: usize, groups: &[u32]) -> Measured {
    let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
    let phase = |until: Instant, keep: bool| {
        let tasks: Vec<_> = (0..clients)
            .map(|_| {
                let (client, url, body, content_type) =
                    (client.clone(), url.to_string(), body.clone(), content_type.clone());
                tokio::spawn(async move {
                    let (mut latencies, mut errors) = (Vec::new(), Vec::new());
                    while Instant::now() < until {
                        let started = Instant::now();
                        let sent =
                            client.post(&url).header("content-type", &content_type).body(body.clone()).send().await;
                        let outcome = match sent {
                            Ok(response) => {
                                let status = response.status();
                                let text = response.text().await.unwrap_or_default();
                                if status == reqwest::StatusCode::ACCEPTED {
                                    Ok(())
                                } else {
                                    Err(format!("{status}: {}", text.chars().take(200).collect::<String>()))
                                }
                            }
                            Err(e) => Err(e.to_string()),
                        };
                        match outcome {
                            Ok(()) if keep => latencies.push(started.elapsed()),
                            Ok(()) => {}
                            Err(e) => errors.push(e),
                        }
                    }
                    (latencies, errors)
                })
            })
            .collect();
        futures::future::join_all(tasks)
    };
    let _ = phase(Instant::now() + WARMUP, false).await;
    let cpu_before: Duration = groups.iter().map(|&g| group_cpu(g)).sum();
    let started = Instant::now();
    let results = phase(started + WINDOW, true).await;
    let elapsed = started.elapsed();
    let cpu = groups.iter().map(|&g| group_cpu(g)).sum::<Duration>().saturating_sub(cpu_before);
    let (mut latencies, mut errors) = (Vec::new(), Vec::new());
    for result in results {
        let (l, e) = result.unwrap_or_else(|e| panic!("a client task failed: {e}"));
        latencies.extend(l);
        errors.extend(e);
    }
    for error in errors.iter().take(3) {
        eprintln!("  error from {url}: {error}");
    }
    latencies.sort_unstable();
    let uploads = latencies.len();
    Measured {
        uploads_per_second: uploads as f64 / elapsed.as_secs_f64(),
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
        errors: errors.len(),
        uploads,
        cpu_us_per_upload: cpu.as_secs_f64() * 1e6 / uploads.max(1) as f64,
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

fn weft_bin() -> PathBuf {
    std::env::var_os("WEFT_BIN").map(PathBuf::from).unwrap_or_else(|| repo_root().join("target/release/weft"))
}

fn seed_venv() -> PathBuf {
    std::env::var_os("SEED_VENV").map(PathBuf::from).unwrap_or_else(|| repo_root().join("bench/api/.venv"))
}

/// `weft serve` on `nats`, with `extra` arguments; a shared compile cache.
fn weft_serve(nats: &nats::NatsServer, cache: &Path, workflows: &Path, extra: &[&str]) -> Server {
    let mut command = Command::new(weft_bin());
    command
        .args(["serve", "--nats", &nats.url(), "--workflows"])
        .arg(workflows)
        .args(extra)
        .env("WEFT_CACHE_DIR", cache)
        .env("RUST_LOG", "warn")
        .env_remove("NATS_URL");
    Server::spawn("weft serve", &mut command)
}

/// The API flags of every bench server: loopback, the rate limits out of the
/// way (every client here is one address), more requests at once than clients.
fn api_flags(port: u16) -> Vec<String> {
    let mut flags = vec!["--http".to_string(), format!("127.0.0.1:{port}")];
    for flag in ["--rate-per-address", "1000000", "--rate-per-key", "1000000", "--max-requests", "4096"] {
        flags.push(flag.to_string());
    }
    flags
}

async fn uploads(client: &reqwest::Client, scratch: &Path) {
    let pdf = std::fs::read(repo_root().join("workflows/samples/sample.pdf"))
        .unwrap_or_else(|e| panic!("read workflows/samples/sample.pdf: {e}"));
    let body = bytes::Bytes::from(multipart_body(&pdf));

    // Weft: nats-server + `weft serve --http --no-worker` (pdf-digest's
    // contract checks every upload is a PDF under 20 MiB).
    let nats = nats::NatsServer::start();
    let weft_port = free_port();
    let flags = api_flags(weft_port);
    let mut args: Vec<&str> = flags.iter().map(String::as_str).collect();
    args.push("--no-worker");
    let mut weft = weft_serve(&nats, &scratch.join("cache"), &repo_root().join("workflows"), &args);
    wait_ready(client, &format!("http://127.0.0.1:{weft_port}/readyz"), &mut weft, Duration::from_secs(120)).await;
    let weft_url = format!("http://127.0.0.1:{weft_port}/v1/workflows/pdf-digest/jobs");
    let weft_groups = [weft.pid(), nats.pid().unwrap_or_default()];

    // The seed: redis-server (appendonly, fsync every second, no snapshots:
    // the e2e suite's settings) + uvicorn --workers 2.
    let redis_port = free_port();
    let redis_dir = scratch.join("redis");
    std::fs::create_dir_all(&redis_dir).unwrap_or_else(|e| panic!("{e}"));
    let redis = Server::spawn(
        "redis-server",
        Command::new("redis-server")
            .args(["--port", &redis_port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "yes", "--appendfsync", "everysec", "--dir"])
            .arg(&redis_dir),
    );
    let seed_port = free_port();
    let mut seed = Server::spawn(
        "uvicorn",
        Command::new(seed_venv().join("bin/uvicorn"))
            .args(["seed_app:app", "--app-dir"])
            .arg(repo_root().join("bench/api"))
            .args(["--host", "127.0.0.1", "--port", &seed_port.to_string(), "--workers", "2"])
            .args(["--log-level", "warning", "--no-access-log"])
            .env("SEED_UPLOAD_DIR", scratch.join("uploads"))
            .env("SEED_BROKER_URL", format!("redis://127.0.0.1:{redis_port}/0")),
    );
    wait_ready(client, &format!("http://127.0.0.1:{seed_port}/healthz"), &mut seed, Duration::from_secs(60)).await;
    let seed_url = format!("http://127.0.0.1:{seed_port}/upload");
    let seed_groups = [seed.pid(), redis.pid()];

    println!("## Uploads: Weft's API against FastAPI + Celery .delay()\n");
    println!(
        "Each row: {} s of uploads of sample.pdf ({} bytes, multipart) after a {} s warm-up.\n",
        WINDOW.as_secs(),
        pdf.len(),
        WARMUP.as_secs()
    );
    println!("| clients | pair | server | uploads/s | p50 ms | p99 ms | errors | uploads | server CPU µs/upload |");
    println!("| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    let mut summary = Vec::new();
    for clients in CONCURRENCY {
        let (mut weft_runs, mut seed_runs) = (Vec::new(), Vec::new());
        for pair in 1..=PAIRS {
            for (name, url, groups, runs) in
                [("weft", &weft_url, &weft_groups, &mut weft_runs), ("seed", &seed_url, &seed_groups, &mut seed_runs)]
            {
                let m = load(client, url, &body, clients, groups).await;
                println!(
                    "| {clients} | {pair} | {name} | {:.0} | {:.2} | {:.2} | {} | {} | {:.0} |",
                    m.uploads_per_second, m.p50_ms, m.p99_ms, m.errors, m.uploads, m.cpu_us_per_upload
                );
                runs.push(m);
            }
        }
        summary.push((clients, weft_runs, seed_runs));
    }
    println!("\n### Medians\n");
    println!(
        "| clients | Weft uploads/s | seed uploads/s | ratio | Weft p50 / p99 ms | seed p50 / p99 ms | Weft / seed CPU µs/upload | errors (Weft, seed) |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (clients, weft_runs, seed_runs) in summary {
        let med = |runs: &[Measured], f: fn(&Measured) -> f64| median(runs.iter().map(f).collect());
        let (w, s) = (&weft_runs[..], &seed_runs[..]);
        let (w_rate, s_rate) = (med(w, |m| m.uploads_per_second), med(s, |m| m.uploads_per_second));
        println!(
            "| {clients} | {w_rate:.0} | {s_rate:.0} | {:.1}x | {:.2} / {:.2} | {:.2} / {:.2} | {:.0} / {:.0} | {}, {} |",
            w_rate / s_rate,
            med(w, |m| m.p50_ms),
            med(w, |m| m.p99_ms),
            med(s, |m| m.p50_ms),
            med(s, |m| m.p99_ms),
            med(w, |m| m.cpu_us_per_upload),
            med(s, |m| m.cpu_us_per_upload),
            w.iter().map(|m| m.errors).sum::<usize>(),
            s.iter().map(|m| m.errors).sum::<usize>(),
        );
    }
    drop((weft, seed, redis, nats));
}

/// How a worker round submits its jobs and whether the API is on.
#[derive(Clone, Copy, PartialEq)]
enum WorkerMode {
    /// `weft serve` without `--http`; jobs submitted with the queue client (as `weft submit`).
    NoApi,
    /// `weft serve --http`, the API idle; jobs submitted with the queue client.
    ApiIdle,
    /// `weft serve --http`; jobs submitted through that process's API (raw body POSTs).
    ApiSubmits,
}

impl WorkerMode {
    fn label(self) -> &'static str {
        match self {
            WorkerMode::NoApi => "serve (no --http), jobs by queue client",
            WorkerMode::ApiIdle => "serve --http (idle), jobs by queue client",
            WorkerMode::ApiSubmits => "serve --http, jobs through its API",
        }
    }
}

/// The next job result announced, waiting at most 120 s.
async fn next_result(done: &mut async_nats::Subscriber) {
    tokio::time::timeout(Duration::from_secs(120), done.next())
        .await
        .unwrap_or_else(|_| panic!("no job finished within 120 s"))
        .unwrap_or_else(|| panic!("the results subscription ended"));
}

/// One worker round on a fresh nats-server: a warm-up job, then `JOBS`
/// jobs from `SUBMITTERS` concurrent submitters; jobs/s from the first
/// submission to the last result announced, and the serve process's CPU per job.
async fn worker_round(client: &reqwest::Client, scratch: &Path, workflows: &Path, mode: WorkerMode) -> (f64, f64) {
    let nats = nats::NatsServer::start();
    let port = free_port();
    let flags = api_flags(port);
    let concurrency = WORKER_CONCURRENCY.to_string();
    let mut args: Vec<&str> = vec!["--concurrency", &concurrency];
    if mode != WorkerMode::NoApi {
        args.extend(flags.iter().map(String::as_str));
    }
    let mut serve = weft_serve(&nats, &scratch.join("cache"), workflows, &args);
    if mode != WorkerMode::NoApi {
        wait_ready(client, &format!("http://127.0.0.1:{port}/readyz"), &mut serve, Duration::from_secs(120)).await;
    }
    let config = weft::queue::QueueConfig { url: nats.url(), ..weft::queue::QueueConfig::default() };
    let queue = weft::queue::connect(config).await.unwrap_or_else(|e| panic!("{e}"));
    let mut done = queue.nats().subscribe("weft.results.echo").await.unwrap_or_else(|e| panic!("{e}"));
    queue.nats().flush().await.unwrap_or_else(|e| panic!("{e}"));
    queue.submit("echo", b"warm-up".to_vec(), Some("warm-up".into())).await.unwrap_or_else(|e| panic!("{e}"));
    next_result(&mut done).await;

    let cpu_before = group_cpu(serve.pid());
    let started = Instant::now();
    let submitters: Vec<_> = (0..SUBMITTERS)
        .map(|s| {
            let (queue, client) = (queue.clone(), client.clone());
            let url = format!("http://127.0.0.1:{port}/v1/workflows/echo/jobs");
            tokio::spawn(async move {
                for i in (s..JOBS).step_by(SUBMITTERS) {
                    let text = format!("job {i}: a short text for the chunk step to pass through.");
                    if mode == WorkerMode::ApiSubmits {
                        let response = client
                            .post(&url)
                            .header("content-type", "text/plain")
                            .body(text)
                            .send()
                            .await
                            .unwrap_or_else(|e| panic!("{e}"));
                        let status = response.status();
                        if status != reqwest::StatusCode::ACCEPTED {
                            panic!("the API refused job {i}: {status}: {}", response.text().await.unwrap_or_default());
                        }
                    } else {
                        queue
                            .submit("echo", text.into_bytes(), Some(format!("job-{i}")))
                            .await
                            .unwrap_or_else(|e| panic!("{e}"));
                    }
                }
            })
        })
        .collect();
    for _ in 0..JOBS {
        next_result(&mut done).await;
    }
    let elapsed = started.elapsed();
    for submitter in futures::future::join_all(submitters).await {
        submitter.unwrap_or_else(|e| panic!("a submitter failed: {e}"));
    }
    let cpu = group_cpu(serve.pid()).saturating_sub(cpu_before);
    drop(serve);
    drop(nats);
    (JOBS as f64 / elapsed.as_secs_f64(), cpu.as_secs_f64() * 1e6 / JOBS as f64)
}

async fn worker_cost(client: &reqwest::Client, scratch: &Path) {
    let workflows = scratch.join("worker-workflows");
    std::fs::create_dir_all(&workflows).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(workflows.join("echo.yaml"), WORKER_WORKFLOW).unwrap_or_else(|e| panic!("{e}"));
    let modes = [WorkerMode::NoApi, WorkerMode::ApiIdle, WorkerMode::ApiSubmits];
    println!("\n## The API's cost on a worker's throughput\n");
    println!(
        "Each row: a fresh nats-server, `weft serve --concurrency {WORKER_CONCURRENCY}`, {JOBS} one-step `chunk` jobs \
         from {SUBMITTERS} concurrent submitters; jobs/s from the first submission to the last result.\n"
    );
    println!("| round | mode | jobs/s | serve CPU µs/job |");
    println!("| ---: | --- | ---: | ---: |");
    let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new(); modes.len()];
    for round in 1..=WORKER_ROUNDS {
        for (i, mode) in modes.iter().enumerate() {
            let (rate, cpu) = worker_round(client, scratch, &workflows, *mode).await;
            println!("| {round} | {} | {rate:.0} | {cpu:.0} |", mode.label());
            runs[i].push((rate, cpu));
        }
    }
    println!("\n| mode | median jobs/s | vs no API | median serve CPU µs/job |");
    println!("| --- | ---: | ---: | ---: |");
    let base = median(runs[0].iter().map(|r| r.0).collect());
    for (mode, runs) in modes.iter().zip(&runs) {
        let rate = median(runs.iter().map(|r| r.0).collect());
        let cpu = median(runs.iter().map(|r| r.1).collect());
        println!("| {} | {rate:.0} | {:+.1}% | {cpu:.0} |", mode.label(), (rate / base - 1.0) * 100.0);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `cargo bench` passes `--bench`; `cargo test --benches` runs nothing here.
    if !args.iter().any(|a| a == "--bench") {
        return;
    }
    let (uploads_only, worker_only) =
        (args.iter().any(|a| a == "--uploads-only"), args.iter().any(|a| a == "--worker-only"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("tokio runtime: {e}"));
    let scratch = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        if !worker_only {
            uploads(&client, scratch.path()).await;
        }
        if !uploads_only {
            worker_cost(&client, scratch.path()).await;
        }
    });
}
