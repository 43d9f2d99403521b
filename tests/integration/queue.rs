//! `weft serve` against a real nats-server: the job lifecycle end to end.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use tokio::sync::oneshot;
use weft::queue::{JobState, QueueClient, QueueConfig, Worker, WorkerConfig, WorkerSummary};
use weft::workflow::{Jitter, RetryPolicy};

use crate::nats::NatsServer;
use crate::support::{component_path, host, load, repo_root, wait_exit, weft_cmd};

pub(crate) fn queue_config(server: &NatsServer) -> QueueConfig {
    QueueConfig { url: server.url(), ack_wait: Duration::from_secs(2), ..QueueConfig::default() }
}

pub(crate) async fn client(server: &NatsServer) -> QueueClient {
    weft::queue::connect(queue_config(server)).await.expect("connects")
}

/// A running in-process worker; `stop` drains it and returns its summary.
pub(crate) struct RunningWorker {
    stop: oneshot::Sender<()>,
    handle: tokio::task::JoinHandle<WorkerSummary>,
}

impl RunningWorker {
    pub(crate) async fn stop(self) -> WorkerSummary {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(30), self.handle).await.expect("worker stops").expect("worker task")
    }
}

pub(crate) async fn start_worker(server: &NatsServer, workflows: &[&str], config: WorkerConfig) -> RunningWorker {
    start_worker_with(queue_config(server), workflows, config).await
}

/// [`start_worker`] with a queue configuration of the test's own.
pub(crate) async fn start_worker_with(queue: QueueConfig, workflows: &[&str], config: WorkerConfig) -> RunningWorker {
    let host = Arc::new(host());
    let loaded = workflows.iter().map(|yaml| load(&host, yaml)).collect();
    let worker = Worker::connect(host, loaded, queue, config).await.expect("worker connects");
    let (stop, stopped) = oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        worker
            .run(async {
                let _ = stopped.await;
            })
            .await
            .expect("worker runs")
    });
    RunningWorker { stop, handle }
}

pub(crate) fn fast_retries(name: &str) -> WorkerConfig {
    WorkerConfig {
        concurrency: 4,
        max_job_attempts: 3,
        job_retry: RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(300),
            max_backoff: Duration::from_secs(5),
            multiplier: 2.0,
            jitter: Jitter::None,
            ..RetryPolicy::default()
        },
        drain_grace: Duration::from_secs(10),
        name: name.to_string(),
        ..WorkerConfig::default()
    }
}

/// Whether the state bucket holds a checkpoint of `step` of `job`, under
/// any revision of its workflow (`ckpt.<job>.<revision>.<step>`).
pub(crate) async fn has_checkpoint(kv: &async_nats::jetstream::kv::Store, job: &str, step: &str) -> bool {
    let (prefix, suffix) = (format!("ckpt.{job}."), format!(".{step}"));
    let Ok(mut keys) = kv.keys().await else { return false };
    while let Some(key) = keys.next().await {
        let key = key.unwrap();
        if key.starts_with(&prefix) && key.ends_with(&suffix) && key.matches('.').count() == 3 {
            return kv.get(&key).await.unwrap().is_some();
        }
    }
    false
}

/// Waits (at most 30 s) until job `job_id`'s record is in state `wanted`.
pub(crate) async fn wait_for_state(queue: &QueueClient, job_id: &str, wanted: JobState) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let state = queue.status(job_id).await.unwrap().map(|r| r.state);
        if state == Some(wanted) {
            return;
        }
        assert!(Instant::now() < deadline, "job {job_id} never reached {wanted:?}: {state:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) fn workflow(name: &str, steps: &str) -> String {
    format!("name: {name}\nversion: '1'\nsteps:\n{steps}")
}

/// Workflow `tell`: a `notify` step posting to `receiver`'s `/hook` (its
/// only grant), then `more_steps`.
fn tell_workflow(receiver: &crate::servers::HttpServer, more_steps: &str) -> String {
    format!(
        "name: tell\nversion: '1'\nsteps:\n  - id: notify\n    plugin: notify\n    grants: {{ http: [\"{grant}\"] }}\n    \
         config: {{ channels: [{{ type: webhook, url: \"{url}\" }}] }}\n{more_steps}",
        grant = receiver.grant(),
        url = receiver.url("/hook"),
    )
}

pub(crate) const ECHO: &str = "  - id: echo\n    plugin: echo-config\n";

async fn wait_for(queue: &QueueClient, job_id: &str) -> weft::queue::JobRecord {
    queue.wait(job_id, Duration::from_secs(60)).await.unwrap_or_else(|e| panic!("job {job_id}: {e}"))
}

/// Publishes job `job_id` of `workflow` past the server's dedupe (no
/// `Nats-Msg-Id`: what a resubmit after the window looks like to the
/// worker), and waits until the work queue is empty again.
async fn republish_after_the_window(queue: &QueueClient, workflow: &str, job_id: &str, input: serde_json::Value) {
    let body = serde_json::json!({ "job_id": job_id, "input": input }).to_string();
    let js = async_nats::jetstream::new(queue.nats().clone());
    js.publish(format!("weft.jobs.{workflow}"), body.into()).await.unwrap().await.unwrap();
    let done = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let info = js.get_stream("WEFT_JOBS").await.unwrap().get_info().await.unwrap();
            if info.state.messages == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(done.is_ok(), "the duplicate is removed from the work queue");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_submits_are_dropped_and_finished_jobs_never_rerun() {
    let server = NatsServer::start();
    let queue = client(&server).await;
    let echo = workflow("echo", ECHO);
    let first = queue.submit("echo", b"hello".to_vec(), Some("dup-1".into())).await.unwrap();
    let second = queue.submit("echo", b"hello".to_vec(), Some("dup-1".into())).await.unwrap();
    assert!(!first.duplicate);
    assert!(second.duplicate, "the server drops a repeated Nats-Msg-Id");

    let mut events = queue.nats().subscribe("weft.results.echo").await.unwrap();
    queue.nats().flush().await.unwrap();
    let worker = start_worker(&server, &[&echo], fast_retries("w1")).await;
    let record = wait_for(&queue, "dup-1").await;
    assert_eq!(record.state, JobState::Succeeded);
    assert_eq!(record.attempts, 1);

    // The same job id published again after the dedupe window: echo is a
    // pure workflow, so its first delivery runs before it claims, and the
    // claim finds the finished record. The record and the result events
    // are left as they were; the delivery is acked as a duplicate.
    republish_after_the_window(&queue, "echo", "dup-1", serde_json::json!({ "text": "hello" })).await;
    let summary = worker.stop().await;
    assert_eq!((summary.succeeded, summary.duplicates), (1, 1));
    let after = queue.status("dup-1").await.unwrap().unwrap();
    assert_eq!(after, record, "the finished job's record is untouched");
    queue.nats().flush().await.unwrap();
    let mut received = 0;
    while tokio::time::timeout(Duration::from_millis(300), events.next()).await.is_ok_and(|e| e.is_some()) {
        received += 1;
        assert!(received < 10, "unbounded result events");
    }
    assert_eq!(received, 1, "one result event: the first run's, none for the duplicate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_job_with_grants_resubmitted_after_the_window_does_not_run_again() {
    let server = NatsServer::start();
    let receiver = crate::servers::HttpServer::always(200).await;
    let queue = client(&server).await;
    let yaml = tell_workflow(&receiver, "");
    let worker = start_worker(&server, &[&yaml], fast_retries("w1")).await;
    queue.submit("tell", b"news".to_vec(), Some("once-1".into())).await.unwrap();
    let record = wait_for(&queue, "once-1").await;
    assert_eq!(record.state, JobState::Succeeded, "{record:?}");
    assert_eq!(receiver.requests().len(), 1);

    // A workflow with a grant claims before it runs: the duplicate never
    // reaches the step that has effects outside.
    republish_after_the_window(&queue, "tell", "once-1", serde_json::json!({ "text": "news" })).await;
    let summary = worker.stop().await;
    assert_eq!((summary.succeeded, summary.duplicates), (1, 1));
    assert_eq!(receiver.requests().len(), 1, "the webhook was sent once");
    assert_eq!(queue.status("once-1").await.unwrap().unwrap(), record);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_of_a_finished_job_leaves_its_stored_outputs_alone() {
    let server = NatsServer::start();
    let queue = client(&server).await;
    let pass = workflow("pass", &format!("  - id: pass\n    plugin: {}\n", component_path("noop").display()));
    // Too large for the state bucket: input and outputs go to the object store.
    let submitted = queue.submit("pass", vec![b'x'; 700_000], Some("big-1".into())).await.unwrap();
    assert!(submitted.via_object_store);
    let js = async_nats::jetstream::new(queue.nats().clone());
    let objects = js.get_object_store("weft-objects").await.unwrap();
    // The input's name, read before the job runs (it is removed once the
    // job has succeeded).
    let mut names = objects.list().await.unwrap();
    let mut input = None;
    while let Some(info) = names.next().await {
        let name = info.unwrap().name;
        if name.starts_with("input.big-1.") {
            input = Some(name);
        }
    }
    let input = input.expect("submit stored the input as input.big-1.<random suffix>");
    let worker = start_worker(&server, &[&pass], fast_retries("w1")).await;
    let record = wait_for(&queue, "big-1").await;
    assert_eq!(record.state, JobState::Succeeded, "{record:?}");
    assert_eq!(record.outputs, Some(serde_json::json!({ "object": "output.big-1" })));
    let stored = objects.info("output.big-1").await.unwrap();

    // The same job after the dedupe window, naming the same input object:
    // it finds the finished record and the finished job's outputs are
    // never replaced (whether or not its input is still there).
    republish_after_the_window(&queue, "pass", "big-1", serde_json::json!({ "object": input })).await;
    let summary = worker.stop().await;
    assert_eq!((summary.succeeded, summary.duplicates), (1, 1));
    assert_eq!(queue.status("big-1").await.unwrap().unwrap(), record);
    assert_eq!(objects.info("output.big-1").await.unwrap().nuid, stored.nuid, "the stored outputs were not rewritten");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_delivery_that_finds_an_unfinished_record_takes_it_over_as_the_next_attempt() {
    let server = NatsServer::start();
    let queue = client(&server).await;
    let echo = workflow("echo", ECHO);
    let worker = start_worker(&server, &[&echo], fast_retries("w2")).await;
    // A worker claimed the job and died, and the server lost the delivery
    // count: the job's next delivery looks like a first one.
    let earlier = serde_json::json!({
        "job_id": "taken-1", "workflow": "echo", "state": "running", "attempts": 1,
        "history": [], "replays": 0
    });
    let js = async_nats::jetstream::new(queue.nats().clone());
    let kv = js.get_key_value("weft-jobs").await.unwrap();
    kv.put("job.taken-1", earlier.to_string().into()).await.unwrap();
    queue.submit("echo", b"hello".to_vec(), Some("taken-1".into())).await.unwrap();

    let record = wait_for(&queue, "taken-1").await;
    assert_eq!(record.state, JobState::Succeeded);
    assert_eq!(record.attempts, 2, "the earlier claim counts as the first attempt");
    let last = record.history.last().unwrap();
    assert_eq!((last.attempt, last.worker.as_str(), last.outcome.as_str()), (2, "w2", "succeeded"));
    let summary = worker.stop().await;
    assert_eq!((summary.succeeded, summary.duplicates), (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_are_dead_lettered_and_the_worker_keeps_serving() {
    let server = NatsServer::start();
    let queue = client(&server).await;
    let js = async_nats::jetstream::new(queue.nats().clone());
    let worker = start_worker(&server, &[&workflow("echo", ECHO)], fast_retries("w1")).await;
    js.publish("weft.jobs.echo", "this is not json".into()).await.unwrap().await.unwrap();
    js.publish("weft.jobs.echo", r#"{"job_id":"no-input"}"#.into()).await.unwrap().await.unwrap();
    let ok = queue.submit("echo", b"fine".to_vec(), Some("good-1".into())).await.unwrap();
    assert_eq!(wait_for(&queue, &ok.job_id).await.state, JobState::Succeeded);

    let deadline = Instant::now() + Duration::from_secs(20);
    let letters = loop {
        let letters = queue.dead_letters().await.unwrap();
        if letters.len() >= 2 || Instant::now() > deadline {
            break letters;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let reasons: Vec<&str> = letters.iter().map(|l| l.letter.reason.as_str()).collect();
    assert_eq!(letters.len(), 2, "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("not valid job JSON")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("missing field `input`")), "{reasons:?}");
    assert!(letters.iter().any(|l| l.letter.message == "this is not json"), "the original body is kept");
    let summary = worker.stop().await;
    assert_eq!((summary.succeeded, summary.dead_lettered), (1, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retryable_failures_back_off_then_dead_letter_and_replay_runs_again() {
    let server = NatsServer::start();
    let queue = client(&server).await;
    let flaky = workflow(
        "flaky",
        "  - id: wobble\n    plugin: flaky\n    config: { fail_times: 100 }\n    retry: { max_attempts: 1 }\n",
    );
    let worker = start_worker(&server, &[&flaky], fast_retries("w1")).await;
    queue.submit("flaky", b"x".to_vec(), Some("flaky-1".into())).await.unwrap();
    let record = wait_for(&queue, "flaky-1").await;
    assert_eq!(record.state, JobState::DeadLettered);
    assert_eq!(record.attempts, 3);
    let delays: Vec<_> = record.history.iter().map(|a| a.retry_in_ms).collect();
    assert_eq!(delays, vec![Some(300), Some(600), None], "growing delays, then no more");
    let starts: Vec<u64> = record.history.iter().map(|a| a.started_at_ms).collect();
    assert!(starts[1] - starts[0] >= 300, "gap {}ms", starts[1] - starts[0]);
    assert!(starts[2] - starts[1] >= 600, "gap {}ms", starts[2] - starts[1]);
    assert!(starts[2] - starts[1] > starts[1] - starts[0], "the second gap is longer");

    let letter = queue.find_dead_letter("flaky-1").await.unwrap().expect("dead letter exists");
    assert_eq!(letter.letter.history.len(), 3, "the dead letter carries the attempt history");
    assert!(letter.letter.reason.contains("step `wobble` still failing after 3 attempts"), "{}", letter.letter.reason);
    assert_eq!(letter.letter.error.as_ref().unwrap()["kind"], "retryable");

    queue.replay(&letter).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let replayed = loop {
        let record = queue.status("flaky-1").await.unwrap().unwrap();
        if record.replays == 1 && record.state.is_terminal() || Instant::now() > deadline {
            break record;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(replayed.replays, 1);
    assert_eq!(replayed.state, JobState::DeadLettered, "it ran again and failed again");
    assert_eq!(replayed.history.len(), 6, "three more runs after the replay");
    let letters = queue.dead_letters().await.unwrap();
    assert_eq!(letters.len(), 1, "the replayed letter was removed, the new one added");
    let summary = worker.stop().await;
    assert_eq!((summary.retried, summary.dead_lettered), (4, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_longer_than_the_ack_wait_is_not_redelivered() {
    let server = NatsServer::start();
    let queue = client(&server).await;
    let slow = workflow("slow", "  - id: nap\n    plugin: sleep\n    config: { ms: 5000 }\n");
    let worker = start_worker(&server, &[&slow], fast_retries("w1")).await;
    queue.submit("slow", b"x".to_vec(), Some("slow-1".into())).await.unwrap();
    let record = wait_for(&queue, "slow-1").await;
    assert_eq!(record.state, JobState::Succeeded);
    assert_eq!(record.attempts, 1, "in-progress acks kept the 2s ack wait from redelivering a 5s job");
    let summary = worker.stop().await;
    assert_eq!((summary.succeeded, summary.duplicates), (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_share_the_jobs() {
    let server = NatsServer::start();
    let queue = client(&server).await;
    let nap = workflow("nap", "  - id: nap\n    plugin: sleep\n    config: { ms: 300 }\n");
    let a = start_worker(&server, &[&nap], WorkerConfig { concurrency: 2, ..fast_retries("worker-a") }).await;
    let b = start_worker(&server, &[&nap], WorkerConfig { concurrency: 2, ..fast_retries("worker-b") }).await;
    let ids: Vec<String> = (0..12).map(|i| format!("share-{i}")).collect();
    for id in &ids {
        queue.submit("nap", b"x".to_vec(), Some(id.clone())).await.unwrap();
    }
    let mut by_worker = std::collections::BTreeMap::<String, usize>::new();
    for id in &ids {
        let record = wait_for(&queue, id).await;
        assert_eq!(record.state, JobState::Succeeded);
        *by_worker.entry(record.history[0].worker.clone()).or_default() += 1;
    }
    let (sa, sb) = (a.stop().await, b.stop().await);
    assert_eq!(sa.succeeded + sb.succeeded, 12);
    assert!(by_worker.get("worker-a").copied().unwrap_or(0) > 0, "{by_worker:?}");
    assert!(by_worker.get("worker-b").copied().unwrap_or(0) > 0, "{by_worker:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_survive_a_nats_server_crash_and_restart() {
    let mut server = NatsServer::start();
    let queue = client(&server).await;
    let nap = workflow("nap", "  - id: nap\n    plugin: sleep\n    config: { ms: 200 }\n");
    let worker = start_worker(&server, &[&nap], WorkerConfig { concurrency: 2, ..fast_retries("w1") }).await;
    let ids: Vec<String> = (0..8).map(|i| format!("crash-{i}")).collect();
    for id in &ids {
        queue.submit("nap", b"x".to_vec(), Some(id.clone())).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    tokio::task::block_in_place(|| server.kill_and_restart());
    for id in &ids {
        let record = queue.wait(id, Duration::from_secs(90)).await.unwrap_or_else(|e| panic!("{id} lost: {e}"));
        assert!(matches!(record.state, JobState::Succeeded | JobState::DeadLettered), "{id}: {:?}", record.state);
    }
    let summary = worker.stop().await;
    assert!(summary.succeeded + summary.dead_lettered + summary.duplicates >= 8, "{summary:?}");
}

// ---- the `weft` binary as operators run it ----

fn serve(server: &NatsServer, dir: &Path) -> Child {
    weft_cmd(dir)
        .args([
            "serve",
            "--nats",
            &server.url(),
            "--workflows",
            ".",
            "--ack-wait-secs",
            "2",
            "--drain-grace-secs",
            "20",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("weft serve starts")
}

fn sigterm(child: &Child) {
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill runs");
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_and_submit_wait_run_a_pdf_through_the_object_store() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(repo_root().join("workflows/pdf-digest.yaml"), dir.path().join("pdf-digest.yaml")).unwrap();
    let mut worker = serve(&server, dir.path());
    let pdf = repo_root().join("workflows/samples/sample.pdf");
    let out = tokio::task::block_in_place(|| {
        weft_cmd(dir.path())
            .args(["submit", "pdf-digest", "--input"])
            .arg(&pdf)
            .args(["--wait", "--timeout-secs", "60", "--job-id", "pdf-1", "--nats", &server.url()])
            .output()
            .unwrap()
    });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("uploaded the input to the object store as input.pdf-1"), "{stderr}");
    let record: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(record["state"], "succeeded");
    let note = record["outputs"]["notify"].as_array().expect("final outputs are recorded");
    let digest: serde_json::Value = serde_json::from_str(note[0]["payload"]["text"].as_str().unwrap_or("")).unwrap();
    let text = digest["summary"].as_str().unwrap_or("");
    assert!(!text.is_empty() && !text.contains("jane.doe@example.com"), "{text}");

    let status = tokio::task::block_in_place(|| {
        weft_cmd(dir.path()).args(["status", "pdf-1", "--nats", &server.url()]).output().unwrap()
    });
    assert_eq!(status.status.code(), Some(0));
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&status.stdout).unwrap()["attempts"], 1);

    sigterm(&worker);
    let exit = tokio::task::block_in_place(|| wait_exit(&mut worker, Duration::from_secs(30)));
    assert_eq!(exit.and_then(|s| s.code()), Some(0), "SIGTERM stops the worker cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_an_in_flight_job_and_exits_0() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("nap.yaml"),
        workflow("nap", "  - id: nap\n    plugin: sleep\n    config: { ms: 2000 }\n")
            .replace("plugin: sleep", &format!("plugin: {}", component_path("sleep").display())),
    )
    .unwrap();
    let mut worker = serve(&server, dir.path());
    let queue = client(&server).await;
    queue.submit("nap", b"x".to_vec(), Some("drain-1".into())).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while queue.status("drain-1").await.unwrap().is_none_or(|r| r.state != JobState::Running) {
        assert!(Instant::now() < deadline, "the job never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sigterm(&worker);
    let exit = tokio::task::block_in_place(|| wait_exit(&mut worker, Duration::from_secs(30)));
    assert_eq!(exit.and_then(|s| s.code()), Some(0));
    let record = queue.status("drain-1").await.unwrap().unwrap();
    assert_eq!(record.state, JobState::Succeeded, "the in-flight job finished during the drain");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_s_job_is_finished_by_another_without_repeating_steps() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let two_steps = format!(
        "name: two\nversion: '1'\nsteps:\n  - id: first\n    plugin: {}\n  - id: second\n    plugin: {}\n    needs: [first]\n    config: {{ ms: 4000 }}\n",
        component_path("echo-config").display(),
        component_path("sleep").display()
    );
    std::fs::write(dir.path().join("two.yaml"), &two_steps).unwrap();
    let mut doomed = serve(&server, dir.path());
    let queue = client(&server).await;
    queue.submit("two", b"x".to_vec(), Some("crash-job".into())).await.unwrap();

    // Kill -9 the worker once `first` is checkpointed and `second` is running.
    let js = async_nats::jetstream::new(queue.nats().clone());
    let kv = js.get_key_value("weft-jobs").await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !has_checkpoint(&kv, "crash-job", "first").await {
        assert!(Instant::now() < deadline, "the first step never finished");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    doomed.kill().unwrap();
    doomed.wait().unwrap();

    let rescuer = start_worker(&server, &[&two_steps], fast_retries("rescuer")).await;
    let record = wait_for(&queue, "crash-job").await;
    assert_eq!(record.state, JobState::Succeeded);
    assert_eq!(record.attempts, 2, "the host's own counter saw both runs");
    let steps = record.report.as_ref().unwrap()["steps"].as_array().unwrap().clone();
    assert_eq!(steps[0]["id"], "first");
    assert_eq!(steps[0]["status"], "resumed", "the finished step was not repeated");
    assert_eq!(steps[1]["status"], "succeeded");
    assert_eq!(record.history.last().unwrap().worker, "rescuer");
    rescuer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_serve_processes_share_a_batch_and_run_each_job_once() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("nap.yaml"),
        workflow(
            "nap",
            &format!("  - id: nap\n    plugin: {}\n    config: {{ ms: 250 }}\n", component_path("sleep").display()),
        ),
    )
    .unwrap();
    // Each process says "worker started" (at -v) just before it starts
    // pulling; the jobs are submitted once both have.
    let (started_tx, started_rx) = std::sync::mpsc::channel::<u32>();
    let start = || {
        let mut child = weft_cmd(dir.path())
            .args(["-v", "serve", "--nats", &server.url(), "--workflows", ".", "--concurrency", "2"])
            .args(["--drain-grace-secs", "20"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("weft serve starts");
        let (stderr, pid, started) = (child.stderr.take().expect("piped stderr"), child.id(), started_tx.clone());
        std::thread::spawn(move || {
            use std::io::BufRead as _;
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("worker started") {
                    let _ = started.send(pid);
                }
            }
        });
        child
    };
    let mut workers = [start(), start()];
    let names: Vec<String> = workers.iter().map(|w| format!("weft-{}", w.id())).collect();
    tokio::task::block_in_place(|| {
        for _ in 0..2 {
            started_rx.recv_timeout(Duration::from_secs(60)).expect("both workers start within 60s");
        }
    });
    let queue = client(&server).await;
    let js = async_nats::jetstream::new(queue.nats().clone());

    let ids: Vec<String> = (0..16).map(|i| format!("proc-share-{i}")).collect();
    for id in &ids {
        queue.submit("nap", b"x".to_vec(), Some(id.clone())).await.unwrap();
    }
    let mut by_worker = std::collections::BTreeMap::<String, usize>::new();
    for id in &ids {
        let record = wait_for(&queue, id).await;
        assert_eq!(record.state, JobState::Succeeded, "{id}");
        assert_eq!(record.attempts, 1, "{id} ran once: {:?}", record.history);
        assert_eq!(record.history.len(), 1, "{id} has one run: {:?}", record.history);
        *by_worker.entry(record.history[0].worker.clone()).or_default() += 1;
    }
    for worker in &workers {
        sigterm(worker);
    }
    for worker in &mut workers {
        let exit = tokio::task::block_in_place(|| wait_exit(worker, Duration::from_secs(30)));
        assert_eq!(exit.and_then(|s| s.code()), Some(0), "each worker drains and exits 0");
    }
    assert_eq!(by_worker.values().sum::<usize>(), ids.len(), "{by_worker:?}");
    for name in &names {
        assert!(by_worker.get(name).copied().unwrap_or(0) > 0, "{name} did a part: {by_worker:?}");
    }
    assert_eq!(by_worker.len(), 2, "only the two processes ran jobs: {by_worker:?}");
    let info = js.get_stream("WEFT_JOBS").await.unwrap().get_info().await.unwrap();
    assert_eq!(info.state.messages, 0, "every job left the work queue");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_held_back_are_written_before_a_retry_so_the_retry_resumes() {
    let server = NatsServer::start();
    let queue = client(&server).await;
    // `first` finishes well inside the checkpoint delay, then `second` fails
    // retryably: the worker must write `first`'s checkpoint before the nak.
    let two = workflow(
        "held",
        "  - id: first\n    plugin: echo-config\n  - id: second\n    plugin: flaky\n    needs: [first]\n    config: { fail_times: 100 }\n    retry: { max_attempts: 1 }\n",
    );
    let config = WorkerConfig { checkpoint_delay: Duration::from_secs(60), ..fast_retries("w1") };
    let worker = start_worker(&server, &[&two], config).await;
    queue.submit("held", b"x".to_vec(), Some("held-1".into())).await.unwrap();
    let record = wait_for(&queue, "held-1").await;
    assert_eq!(record.state, JobState::DeadLettered);
    assert_eq!(record.attempts, 3);
    let steps = record.report.as_ref().unwrap()["steps"].as_array().unwrap().clone();
    assert_eq!(steps[0]["id"], "first");
    assert_eq!(steps[0]["status"], "resumed", "the last run resumed from the checkpoint written before the retry");
    let js = async_nats::jetstream::new(queue.nats().clone());
    let kv = js.get_key_value("weft-jobs").await.unwrap();
    // Dead-lettered for good: its checkpoints are removed (a replay starts over).
    let deadline = Instant::now() + Duration::from_secs(30);
    while has_checkpoint(&kv, "held-1", "first").await {
        assert!(Instant::now() < deadline, "the dead-lettered job's checkpoints are removed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_finishes_within_the_checkpoint_delay_writes_no_checkpoints() {
    let server = NatsServer::start();
    let queue = client(&server).await;
    let two =
        workflow("quick", "  - id: a\n    plugin: echo-config\n  - id: b\n    plugin: echo-config\n    needs: [a]\n");
    let config = WorkerConfig { checkpoint_delay: Duration::from_secs(60), ..fast_retries("w1") };
    let worker = start_worker(&server, &[&two], config).await;
    queue.submit("quick", b"x".to_vec(), Some("quick-1".into())).await.unwrap();
    let record = wait_for(&queue, "quick-1").await;
    assert_eq!(record.state, JobState::Succeeded);
    assert!(record.outputs.as_ref().is_some_and(|o| o.get("b").is_some()), "the final record holds the sink's output");
    let js = async_nats::jetstream::new(queue.nats().clone());
    let kv = js.get_key_value("weft-jobs").await.unwrap();
    assert!(!has_checkpoint(&kv, "quick-1", "a").await, "its outcome made the checkpoint unnecessary");
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_with_grants_is_checkpointed_at_once_despite_the_delay() {
    let server = NatsServer::start();
    let receiver = crate::servers::HttpServer::always(200).await;
    let queue = client(&server).await;
    // `after` sleeps, so the checkpoint can be seen while the job runs (a
    // finished job's checkpoints are removed).
    let after = format!("  - id: after\n    plugin: {}\n    needs: [notify]\n", component_path("sleep").display());
    let yaml = tell_workflow(&receiver, &after);
    let config = WorkerConfig { checkpoint_delay: Duration::from_secs(60), ..fast_retries("w1") };
    let worker = start_worker(&server, &[&yaml], config).await;
    queue.submit("tell", b"news".to_vec(), Some("tell-1".into())).await.unwrap();
    let js = async_nats::jetstream::new(queue.nats().clone());
    let kv = js.get_key_value("weft-jobs").await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !has_checkpoint(&kv, "tell-1", "notify").await {
        let state = queue.status("tell-1").await.unwrap().map(|record| record.state);
        assert!(
            Instant::now() < deadline && !state.is_some_and(JobState::is_terminal),
            "a step that may have had effects outside is checkpointed before the next step, whatever the delay"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let record = wait_for(&queue, "tell-1").await;
    assert_eq!(record.state, JobState::Succeeded, "{record:?}");
    assert_eq!(receiver.requests().len(), 1);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_leaves_out_a_workflow_it_cannot_run_and_serves_the_rest_unless_strict() {
    // The README's `weft serve --workflows workflows/`, on a host without
    // the secret `pdf-digest-llm` is granted.
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(repo_root().join("workflows")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    let mut worker = serve(&server, dir.path());
    let mut stderr = worker.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });
    let input = repo_root().join("workflows/samples/sample.pdf");
    let out = tokio::task::block_in_place(|| {
        weft_cmd(dir.path())
            .args(["submit", "pdf-digest", "--input"])
            .arg(&input)
            .args(["--wait", "--timeout-secs", "120", "--job-id", "served-1", "--nats", &server.url()])
            .output()
            .unwrap()
    });
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    sigterm(&worker);
    let exit = tokio::task::block_in_place(|| wait_exit(&mut worker, Duration::from_secs(30)));
    assert_eq!(exit.and_then(|s| s.code()), Some(0));
    let log = log.join().unwrap();
    assert!(log.contains("not serving `./pdf-digest-llm.yaml`"), "{log}");
    assert!(log.contains("WEFT_SECRET_WEBHOOK_SIGNING_KEY"), "{log}");
    assert!(log.contains("serving pdf-brief, pdf-digest, ticket-triage"), "{log}");

    // `--strict` restores fail-fast, before connecting.
    let out = tokio::task::block_in_place(|| {
        weft_cmd(dir.path())
            .args(["serve", "--strict", "--workflows", ".", "--nats", "nats://127.0.0.1:1"])
            .output()
            .unwrap()
    });
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("1 workflow(s) cannot be served here"), "{stderr}");
}
