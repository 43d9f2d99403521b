//! Several workers on one queue that differ: in the workflow revisions they
//! have (a rolling upgrade). Real nats-server, in-process workers.

use std::time::{Duration, Instant};

use weft::queue::{JobState, QueueClient, WorkerConfig};

use crate::nats::NatsServer;
use crate::queue::{client, fast_retries, start_worker};
use crate::support::component_path;

/// `relay`: an echo step, then a 3 s sleep. `note` makes another revision
/// of the same workflow (the file's text differs, the graph need not).
fn relay(note: &str) -> String {
    format!(
        "# {note}\nname: relay\nversion: '1'\nsteps:\n  - id: first\n    plugin: echo-config\n  - id: nap\n    \
         plugin: {}\n    needs: [first]\n    config: {{ ms: 3000 }}\n",
        component_path("sleep").display()
    )
}

async fn wait_for_state(queue: &QueueClient, job_id: &str, wanted: JobState) {
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
