//! Several workers on one queue that differ: in the workflows they serve
//! (routing by workflow: a mixed pool, a workflow nobody serves, an older
//! Weft's shared consumer) and in the workflow revisions they have (a
//! rolling upgrade). Real nats-server, in-process workers, the real CLI.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer;
use futures::StreamExt as _;
use weft::queue::{JobState, QueueError, Worker, WorkerConfig};

use crate::nats::NatsServer;
use crate::queue::{ECHO, client, fast_retries, queue_config, start_worker, wait_for_state, workflow};
use crate::support::{component_path, host, load, weft_cmd};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_pool_gives_each_worker_only_jobs_of_workflows_it_serves() {
    // Issue 19: beside a worker serving every workflow, one serving only
    // `plain` got (and dead-lettered as unknown) 4 of 10 `llm` jobs.
    let server = NatsServer::start();
    let queue = client(&server).await;
    let (plain, llm) = (workflow("plain", ECHO), workflow("llm", ECHO));
    let both = start_worker(&server, &[&plain, &llm], fast_retries("both")).await;
    let plain_only = start_worker(&server, &[&plain], fast_retries("plain-only")).await;
    for i in 0..10 {
        queue.submit("llm", format!("llm {i}").into_bytes(), Some(format!("llm-{i}"))).await.unwrap();
        queue.submit("plain", format!("plain {i}").into_bytes(), Some(format!("plain-{i}"))).await.unwrap();
    }
    for i in 0..10 {
        let record = queue.wait(&format!("llm-{i}"), Duration::from_secs(60)).await.unwrap();
        assert_eq!(record.state, JobState::Succeeded, "{record:?}");
        assert!(record.history.iter().all(|run| run.worker == "both"), "{record:?}");
        let record = queue.wait(&format!("plain-{i}"), Duration::from_secs(60)).await.unwrap();
        assert_eq!(record.state, JobState::Succeeded, "{record:?}");
    }
    let (both, plain_only) = (both.stop().await, plain_only.stop().await);
    assert_eq!((both.dead_lettered, plain_only.dead_lettered), (0, 0), "{both:?} {plain_only:?}");
    assert_eq!(both.succeeded + plain_only.succeeded, 20, "{both:?} {plain_only:?}");
    assert!(queue.dead_letters().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_for_a_workflow_nobody_serves_waits_in_view_until_a_worker_serves_it() {
    let server = NatsServer::start();
    let queue = client(&server).await;
    let plain_only = start_worker(&server, &[&workflow("plain", ECHO)], fast_retries("plain-only")).await;
    queue.submit("later", b"hello".to_vec(), Some("wait-1".into())).await.unwrap();
    // A job of a served workflow finishes meanwhile: the worker is pulling.
    queue.submit("plain", b"now".to_vec(), Some("plain-1".into())).await.unwrap();
    let record = queue.wait("plain-1", Duration::from_secs(60)).await.unwrap();
    assert_eq!(record.state, JobState::Succeeded, "{record:?}");

    let depths = queue.queue_depths().await.unwrap();
    let row = |name: &str| depths.iter().find(|d| d.workflow == name).cloned();
    let waiting = row("later").expect("the waiting workflow is listed");
    assert_eq!((waiting.jobs, waiting.consumer.is_none()), (1, true), "{depths:?}");
    let served = row("plain").and_then(|d| d.consumer).expect("the served workflow has its consumer");
    assert_eq!((served.name.as_str(), served.undelivered, served.in_flight), ("weft-workers-plain", 0, 0));
    let out = tokio::task::block_in_place(|| {
        weft_cmd(&std::env::temp_dir()).args(["status", "--nats", &server.url()]).output().unwrap()
    });
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let line = stdout.lines().find(|l| l.starts_with("later ")).unwrap_or_else(|| panic!("{stdout}"));
    assert!(line.contains("no worker has served it"), "{stdout}");
    assert!(queue.dead_letters().await.unwrap().is_empty(), "the job is not dead-lettered");
    assert!(queue.status("wait-1").await.unwrap().is_none(), "nor started");
    assert_eq!(plain_only.stop().await.dead_lettered, 0);

    // A worker serving it arrives: the job runs.
    let later = start_worker(&server, &[&workflow("later", ECHO)], fast_retries("later")).await;
    let record = queue.wait("wait-1", Duration::from_secs(60)).await.unwrap();
    assert_eq!(record.state, JobState::Succeeded, "{record:?}");
    assert_eq!(later.stop().await.succeeded, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shared_consumer_of_an_older_weft_is_replaced_and_the_job_it_held_runs() {
    let server = NatsServer::start();
    let queue = client(&server).await;
    let js = async_nats::jetstream::new(queue.nats().clone());
    let stream = js.get_stream("WEFT_JOBS").await.unwrap();
    // What Weft before routing made: one consumer over every workflow. An
    // old worker holds a job from it, unacked.
    let legacy = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some("weft-workers".into()),
            filter_subject: "weft.jobs.>".into(),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: Duration::from_secs(2),
            max_deliver: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    queue.submit("plain", b"held".to_vec(), Some("held-1".into())).await.unwrap();
    let mut batch = legacy.fetch().max_messages(1).expires(Duration::from_secs(5)).messages().await.unwrap();
    let held = batch.next().await.expect("a delivery").unwrap();
    assert!(held.payload.starts_with(b"{"), "the old worker holds the job");

    let worker = start_worker(&server, &[&workflow("plain", ECHO)], fast_retries("new")).await;
    let record = queue.wait("held-1", Duration::from_secs(60)).await.unwrap();
    assert_eq!(record.state, JobState::Succeeded, "{record:?}");
    assert!(stream.get_consumer::<consumer::pull::Config>("weft-workers").await.is_err(), "the shared one is gone");
    assert_eq!(worker.stop().await.succeeded, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_consumer_that_would_take_a_served_workflow_s_jobs_is_a_clear_error() {
    let server = NatsServer::start();
    let queue = client(&server).await;
    let js = async_nats::jetstream::new(queue.nats().clone());
    js.get_stream("WEFT_JOBS")
        .await
        .unwrap()
        .create_consumer(consumer::pull::Config {
            durable_name: Some("reporting".into()),
            filter_subject: "weft.jobs.*".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let host = Arc::new(host());
    let loaded = vec![load(&host, &workflow("plain", ECHO))];
    let worker = Worker::connect(host, loaded, queue_config(&server), fast_retries("w")).await.unwrap();
    let error = tokio::time::timeout(Duration::from_secs(30), worker.run(std::future::pending()))
        .await
        .expect("the worker refuses at once")
        .unwrap_err();
    assert!(matches!(error, QueueError::OverlappingConsumer { .. }), "{error:?}");
    let text = error.to_string();
    assert!(text.contains("`reporting`") && text.contains("weft.jobs.*") && text.contains("`plain`"), "{text}");
}

/// `relay`: an echo step, then a 3 s sleep. `note` makes another revision
/// of the same workflow (the file's text differs, the graph need not).
fn relay(note: &str) -> String {
    format!(
        "# {note}\nname: relay\nversion: '1'\nsteps:\n  - id: first\n    plugin: echo-config\n  - id: nap\n    \
         plugin: {}\n    needs: [first]\n    config: {{ ms: 3000 }}\n",
        component_path("sleep").display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_started_under_one_revision_is_resumed_only_by_a_worker_with_that_revision() {
    let server = NatsServer::start();
    let queue = client(&server).await;
    let (old, new) = (relay("revision one"), relay("revision two"));
    // A worker with the old revision starts the job and is stopped mid-run:
    // it hands the job back (queued, pinned to the old revision).
    let quick_drain = |name: &str| WorkerConfig { drain_grace: Duration::from_millis(200), ..fast_retries(name) };
    let first = start_worker(&server, &[&old], quick_drain("old-1")).await;
    queue.submit("relay", b"hello".to_vec(), Some("roll-1".into())).await.unwrap();
    wait_for_state(&queue, "roll-1", JobState::Running).await;
    assert_eq!(first.stop().await.handed_back, 1);
    wait_for_state(&queue, "roll-1", JobState::Queued).await;

    // An upgraded worker leaves it alone (before the fix it resumed the old
    // graph's checkpoints under the new file).
    let upgraded = start_worker(&server, &[&new], fast_retries("new-1")).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(queue.status("roll-1").await.unwrap().unwrap().state, JobState::Queued);
    // A worker with the old revision resumes it.
    let second = start_worker(&server, &[&old], fast_retries("old-2")).await;
    let record = queue.wait("roll-1", Duration::from_secs(60)).await.unwrap();
    assert_eq!(record.state, JobState::Succeeded, "{record:?}");
    assert_eq!(record.history.last().unwrap().worker, "old-2", "{record:?}");
    let (upgraded, second) = (upgraded.stop().await, second.stop().await);
    assert!(upgraded.handed_back >= 1 && upgraded.succeeded == 0, "{upgraded:?}");
    assert_eq!(second.succeeded, 1, "{second:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_revision_no_worker_has_is_dead_lettered_after_the_grace() {
    let server = NatsServer::start();
    let queue = client(&server).await;
    let (old, new) = (relay("revision one"), relay("revision two"));
    let quick_drain = WorkerConfig { drain_grace: Duration::from_millis(200), ..fast_retries("old-1") };
    let first = start_worker(&server, &[&old], quick_drain).await;
    queue.submit("relay", b"hello".to_vec(), Some("roll-2".into())).await.unwrap();
    wait_for_state(&queue, "roll-2", JobState::Running).await;
    first.stop().await;

    let started = Instant::now();
    let config = WorkerConfig { revision_grace: Duration::from_secs(4), ..fast_retries("new-1") };
    let upgraded = start_worker(&server, &[&new], config).await;
    let record = queue.wait("roll-2", Duration::from_secs(60)).await.unwrap();
    assert_eq!(record.state, JobState::DeadLettered, "{record:?}");
    assert!(started.elapsed() >= Duration::from_secs(2), "it waited for a worker with its revision first");
    let letters = queue.dead_letters().await.unwrap();
    let reason = &letters[0].letter.reason;
    assert!(reason.contains("job `roll-2` started under revision") && reason.contains("within 4s"), "{reason}");
    upgraded.stop().await;
}
