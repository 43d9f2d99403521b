//! `weft cancel` and `QueueClient::cancel` against a real nats-server: a
//! queued job never runs, a running one is stopped before its later steps,
//! a finished or unknown one is refused in words that say why.

use std::time::{Duration, Instant};

use weft::queue::{CancelError, CancelOutcome, JobState, QueueClient};

use crate::nats::NatsServer;
use crate::queue::{ECHO, client, fast_retries, start_worker, wait_for_state, workflow};
use crate::servers::HttpServer;
use crate::support::{component_path, weft_cmd};

/// Workflow `tell`: `first_steps`, then a `notify` step posting to
/// `receiver`'s `/hook` (its only grant: the job claims before it runs).
fn tell(receiver: &HttpServer, first_steps: &str) -> String {
    let needs = if first_steps.is_empty() { String::new() } else { "    needs: [nap]\n".to_string() };
    format!(
        "name: tell\nversion: '1'\nsteps:\n{first_steps}  - id: notify\n    plugin: notify\n{needs}    grants: {{ http: \
         [\"{grant}\"] }}\n    config: {{ channels: [{{ type: webhook, url: \"{url}\" }}] }}\n",
        grant = receiver.grant(),
        url = receiver.url("/hook"),
    )
}

/// A step that sleeps `ms` milliseconds (its timeout above it).
fn nap(ms: u64) -> String {
    format!(
        "  - id: nap\n    plugin: {}\n    timeout: 120s\n    config: {{ ms: {ms} }}\n",
        component_path("sleep").display()
    )
}

/// Waits until the job stream holds no message (every delivery settled).
async fn wait_for_empty_queue(queue: &QueueClient) {
    let js = async_nats::jetstream::new(queue.nats().clone());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let info = js.get_stream("WEFT_JOBS").await.unwrap().get_info().await.unwrap();
        if info.state.messages == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "the job stream still holds {} messages", info.state.messages);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_cancelled_while_queued_never_runs() {
    let server = NatsServer::start();
    let receiver = HttpServer::always(200).await;
    let queue = client(&server).await;
    // No worker yet: both jobs are only messages in the job stream.
    queue.submit("tell", b"news".to_vec(), Some("tell-1".into())).await.unwrap();
    queue.submit("echo", b"hi".to_vec(), Some("echo-1".into())).await.unwrap();
    for id in ["tell-1", "echo-1"] {
        let outcome = queue.cancel(id, "ops@test", Some("wrong input")).await.unwrap();
        let CancelOutcome::Cancelled(record) = outcome else { panic!("{id}: {outcome:?}") };
        assert_eq!(record.state, JobState::Cancelled);
    }

    // A worker starts: it drops both deliveries without running them.
    let worker = start_worker(&server, &[&tell(&receiver, ""), &workflow("echo", ECHO)], fast_retries("w1")).await;
    wait_for_empty_queue(&queue).await;
    let summary = worker.stop().await;
    assert_eq!((summary.cancelled, summary.succeeded, summary.dead_lettered), (2, 0, 0), "{summary:?}");
    assert!(receiver.requests().is_empty(), "the cancelled job's webhook was never sent");
    for (id, workflow) in [("tell-1", "tell"), ("echo-1", "echo")] {
        let record = queue.status(id).await.unwrap().unwrap();
        assert_eq!((record.state, record.attempts, record.workflow.as_str()), (JobState::Cancelled, 0, workflow));
        assert!(record.history.is_empty(), "{record:?}");
        let cancellation = record.cancellation.unwrap();
        assert_eq!((cancellation.by.as_str(), cancellation.reason.as_deref()), ("ops@test", Some("wrong input")));
    }
    assert!(queue.dead_letters().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_job_is_stopped_and_its_later_steps_never_run() {
    let server = NatsServer::start();
    let receiver = HttpServer::always(200).await;
    let queue = client(&server).await;
    // A 100 s nap, then the webhook: a job left alone would not finish
    // within the wait below.
    let worker = start_worker(&server, &[&tell(&receiver, &nap(100_000))], fast_retries("w1")).await;
    queue.submit("tell", b"news".to_vec(), Some("slow-1".into())).await.unwrap();
    wait_for_state(&queue, "slow-1", JobState::Running).await;

    let outcome = queue.cancel("slow-1", "ops@test", Some("taking too long")).await.unwrap();
    assert_eq!(outcome, CancelOutcome::Requested);
    let record = queue.wait("slow-1", Duration::from_secs(30)).await.unwrap();
    assert_eq!(record.state, JobState::Cancelled, "{record:?}");
    let last = record.history.last().unwrap();
    assert_eq!((last.attempt, last.outcome.as_str(), last.worker.as_str()), (1, "cancelled", "w1"));
    assert_eq!(record.cancellation.as_ref().unwrap().reason.as_deref(), Some("taking too long"));

    // Its message was acked (not redelivered, not dead-lettered).
    wait_for_empty_queue(&queue).await;
    let summary = worker.stop().await;
    assert_eq!((summary.cancelled, summary.succeeded, summary.dead_lettered), (1, 0, 0), "{summary:?}");
    assert!(receiver.requests().is_empty(), "the step after the nap never ran");
    assert!(queue.dead_letters().await.unwrap().is_empty());
    assert_eq!(queue.status("slow-1").await.unwrap().unwrap(), record, "nothing ran after the cancel");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_finished_or_unknown_job_is_refused_and_changes_nothing() {
    let server = NatsServer::start();
    let queue = client(&server).await;
    let worker = start_worker(&server, &[&workflow("echo", ECHO)], fast_retries("w1")).await;
    queue.submit("echo", b"hi".to_vec(), Some("done-1".into())).await.unwrap();
    let done = queue.wait("done-1", Duration::from_secs(60)).await.unwrap();
    assert_eq!(done.state, JobState::Succeeded);

    let error = queue.cancel("done-1", "ops@test", None).await.unwrap_err();
    assert!(matches!(error, CancelError::Finished { state: JobState::Succeeded, .. }), "{error:?}");
    assert_eq!(error.to_string(), "job `done-1` already finished: it is succeeded");
    assert_eq!(queue.status("done-1").await.unwrap().unwrap(), done, "the record is unchanged");

    // With another job queued, the job stream is searched, not skipped as empty.
    worker.stop().await;
    queue.submit("echo", b"later".to_vec(), Some("waiting-1".into())).await.unwrap();
    let error = queue.cancel("never-submitted", "ops@test", None).await.unwrap_err();
    assert!(matches!(error, CancelError::Unknown { searched: 1, .. }), "the queued job was searched: {error:?}");
    assert!(error.to_string().starts_with("no job `never-submitted` is known"), "{error}");
    assert!(queue.status("never-submitted").await.unwrap().is_none(), "no record was made up");

    let error = queue.cancel("bad id", "ops@test", None).await.unwrap_err();
    assert!(matches!(error, CancelError::Invalid(_)), "{error:?}");
    let long = "x".repeat(weft::queue::MAX_CANCEL_REASON_BYTES + 1);
    let error = queue.cancel("done-1", "ops@test", Some(&long)).await.unwrap_err();
    assert!(error.to_string().contains("at most 1024"), "{error}");
    assert!(queue.status("waiting-1").await.unwrap().is_none(), "the queued job was left alone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weft_cancel_cancels_a_queued_and_a_running_job_from_the_command_line() {
    let server = NatsServer::start();
    let receiver = HttpServer::always(200).await;
    let queue = client(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let weft = |args: &[&str]| {
        tokio::task::block_in_place(|| {
            weft_cmd(dir.path()).args(args).args(["--nats", &server.url()]).output().expect("weft runs")
        })
    };

    // Queued: cancelled at once, and `weft status` shows who and why.
    queue.submit("tell", b"news".to_vec(), Some("cli-1".into())).await.unwrap();
    let out = weft(&["cancel", "cli-1", "--reason", "wrong input", "--by", "ops"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("cancelled job cli-1"), "{stderr}");
    let out = weft(&["status", "cli-1"]);
    assert_eq!(out.status.code(), Some(0));
    let record: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(record["state"], "cancelled");
    assert_eq!(record["cancellation"]["by"], "ops");
    assert_eq!(record["cancellation"]["reason"], "wrong input");

    // Again: already finished, exit 1, naming the state and who.
    let out = weft(&["cancel", "cli-1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("job `cli-1` already finished: it is cancelled (by ops)"), "{stderr}");
    // Unknown: exit 1; invalid: exit 2.
    let out = weft(&["cancel", "nobody-1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no job `nobody-1` is known"));
    let out = weft(&["cancel", "no/such"]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));

    // Running: `--wait` returns once its worker stopped it; `--by` defaults to user@host.
    let worker = start_worker(&server, &[&tell(&receiver, &nap(100_000))], fast_retries("w1")).await;
    queue.submit("tell", b"news".to_vec(), Some("cli-2".into())).await.unwrap();
    wait_for_state(&queue, "cli-2", JobState::Running).await;
    let out = weft(&["cancel", "cli-2", "--wait", "--timeout-secs", "30"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let record: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(record["state"], "cancelled", "{record}");
    assert!(record["cancellation"]["by"].as_str().unwrap().contains('@'), "{record}");
    let summary = worker.stop().await;
    assert_eq!((summary.cancelled, summary.succeeded), (2, 0), "{summary:?}");
    assert!(receiver.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_worker_died_is_cancelled_when_it_is_delivered_again_without_starting() {
    let server = NatsServer::start();
    let receiver = HttpServer::always(200).await;
    let queue = client(&server).await;
    let yaml = tell(&receiver, &nap(100_000));
    // A worker claims the job and dies mid-run (no drain, no hand-back):
    // its record says running, and its message comes back after the ack wait.
    let host = std::sync::Arc::new(crate::support::host());
    let loaded = vec![crate::support::load(&host, &yaml)];
    let config = crate::queue::queue_config(&server);
    let doomed = weft::queue::Worker::connect(host, loaded, config, fast_retries("doomed")).await.unwrap();
    let doomed = tokio::spawn(doomed.run(std::future::pending()));
    queue.submit("tell", b"news".to_vec(), Some("orphan-1".into())).await.unwrap();
    wait_for_state(&queue, "orphan-1", JobState::Running).await;
    doomed.abort();
    let _ = doomed.await;

    // Nobody runs it now: the request is stored for the next worker.
    assert_eq!(queue.cancel("orphan-1", "ops@test", None).await.unwrap(), CancelOutcome::Requested);
    let worker = start_worker(&server, &[&yaml], fast_retries("w2")).await;
    let record = queue.wait("orphan-1", Duration::from_secs(30)).await.unwrap();
    assert_eq!(record.state, JobState::Cancelled, "{record:?}");
    // Stopped at delivery: not taken over as a second attempt.
    assert_eq!((record.attempts, record.history.len()), (1, 0), "{record:?}");
    wait_for_empty_queue(&queue).await;
    let summary = worker.stop().await;
    assert_eq!((summary.cancelled, summary.succeeded), (1, 0), "{summary:?}");
    assert!(receiver.requests().is_empty());
}
