//! Holding a job's time or the host's memory.

use std::time::Duration;

use super::weft_within;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_answering_retry_after_forever_does_not_hang_weft_run() {
    use crate::servers::{HttpServer, Reply};

    let hook = HttpServer::start(|_, _| Reply::new(429, "slow down").header("Retry-After", "100000000")).await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "name: hook\nversion: '1'\nsteps:\n  - id: notify\n    plugin: notify\n    grants: {{ http: [\"{}\"] }}\n    \
         config: {{ channels: [{{ type: webhook, url: \"{}\" }}] }}\n",
        hook.grant(),
        hook.url("/hook")
    );
    std::fs::write(dir.path().join("hook.yaml"), yaml).unwrap();
    std::fs::write(dir.path().join("in.txt"), "hello").unwrap();
    // Before the cap this never returned: the step slept for 100,000,000 s.
    let (code, stderr) = weft_within(dir.path(), &["run", "hook.yaml", "--input", "in.txt"], Duration::from_secs(60));
    assert_eq!(code, Some(1), "the job fails, it does not hang");
    assert!(stderr.contains("longer than `retry.max_retry_after` (5m)"), "{stderr}");
    assert_eq!(hook.requests().len(), 1, "asked once, not retried");
}

#[test]
fn a_job_cannot_run_past_its_workflows_deadline_in_weft_run() {
    use crate::support::component_path;

    let dir = tempfile::tempdir().unwrap();
    let sleep = component_path("sleep");
    let flaky = component_path("flaky");
    // One step would run for 60 s (its own timeout allows it); the other
    // would retry after 30 s: both pass the 2 s deadline.
    let slow = format!(
        "name: slow\nversion: '1'\ndeadline: 2s\nsteps:\n  - id: nap\n    plugin: {}\n    timeout: 5m\n    \
         config: {{ ms: 60000 }}\n",
        sleep.display()
    );
    let patient = format!(
        "name: patient\nversion: '1'\ndeadline: 2s\nsteps:\n  - id: again\n    plugin: {}\n    \
         retry: {{ max_attempts: 5, initial_backoff: 30s, jitter: none }}\n",
        flaky.display()
    );
    std::fs::write(dir.path().join("slow.yaml"), slow).unwrap();
    std::fs::write(dir.path().join("patient.yaml"), patient).unwrap();
    std::fs::write(dir.path().join("in.txt"), "hello").unwrap();
    for (file, expected) in [
        ("slow.yaml", "the job reached its deadline (2s from submission) at step `nap`"),
        ("patient.yaml", "not retried: waiting 30s would pass the job's deadline (2s from submission)"),
    ] {
        let started = std::time::Instant::now();
        let (code, stderr) = weft_within(dir.path(), &["run", file, "--input", "in.txt"], Duration::from_secs(50));
        assert_eq!(code, Some(1), "{file}: {stderr}");
        assert!(stderr.contains(expected), "{file}: {stderr}");
        assert!(started.elapsed() < Duration::from_secs(25), "{file} took {:?}", started.elapsed());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_gives_up_a_job_past_its_deadline_into_the_dead_letter_stream() {
    use weft::queue::JobState;

    use crate::nats::NatsServer;
    use crate::queue::{client, fast_retries, start_worker};

    let server = NatsServer::start();
    let queue = client(&server).await;
    let echo = "name: echo\nversion: '1'\ndeadline: 1s\nsteps:\n  - id: echo\n    plugin: echo-config\n";
    // Submitted while no worker runs; a worker starts after the deadline.
    queue.submit("echo", b"late".to_vec(), Some("late-1".into())).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let worker = start_worker(&server, &[echo], fast_retries("w1")).await;
    let record = queue.wait("late-1", Duration::from_secs(60)).await.unwrap();
    assert_eq!((record.state, record.attempts), (JobState::DeadLettered, 1), "{record:?}");
    let letters = queue.dead_letters().await.unwrap();
    assert_eq!(letters.len(), 1);
    assert!(letters[0].letter.reason.contains("reached its deadline (1s from submission)"), "{letters:?}");
    // A job on time still runs.
    queue.submit("echo", b"on time".to_vec(), Some("on-time-1".into())).await.unwrap();
    assert_eq!(queue.wait("on-time-1", Duration::from_secs(60)).await.unwrap().state, JobState::Succeeded);
    worker.stop().await;
}
