//! Weft on a 3-node JetStream cluster (real nats-server processes on
//! loopback): its streams, bucket and object store replicated three times,
//! and a steady load that survives the SIGKILL of the job stream's leader
//! and its restart with every job finished once and none dead-lettered.

use std::time::{Duration, Instant};

use weft::queue::{JobState, QueueClient, QueueConfig};

use crate::nats::NatsCluster;
use crate::queue::{ECHO, fast_retries, start_worker_with, workflow};
use crate::support::component_path;

/// Connects once the cluster has elected a leader and can create
/// replicated streams (at most 60 s).
pub(crate) async fn connect_when_ready(config: &QueueConfig) -> QueueClient {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match weft::queue::connect(config.clone()).await {
            Ok(queue) => return queue,
            Err(error) => assert!(Instant::now() < deadline, "the cluster never became usable: {error}"),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Submits job `id`, again while the cluster fails over (the same id: the
/// server drops a repeat within its duplicate window), for at most 60 s.
async fn submit_until_stored(queue: &QueueClient, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match queue.submit("steady", id.as_bytes().to_vec(), Some(id.to_string())).await {
            Ok(_) => return,
            Err(error) => assert!(Instant::now() < deadline, "job {id} could not be submitted: {error}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_node_cluster_loses_no_job_when_the_stream_leader_is_killed_mid_load() {
    const JOBS: usize = 90;
    let mut cluster = NatsCluster::start(3);
    let config =
        QueueConfig { url: cluster.urls(), replicas: 3, ack_wait: Duration::from_secs(2), ..QueueConfig::default() };
    let queue = connect_when_ready(&config).await;
    let js = async_nats::jetstream::new(queue.nats().clone());
    for stream in ["WEFT_JOBS", "WEFT_DLQ", "KV_weft-jobs", "KV_weft-keys", "OBJ_weft-objects"] {
        let info = js.get_stream(stream).await.unwrap().get_info().await.unwrap();
        assert_eq!(info.config.num_replicas, 3, "{stream}");
    }
    // Each job echoes, then sleeps 200 ms: jobs are in flight when the node dies.
    let sleep = component_path("sleep");
    let steps =
        format!("{ECHO}  - id: nap\n    plugin: {}\n    needs: [echo]\n    config: {{ ms: 200 }}\n", sleep.display());
    let steady = workflow("steady", &steps);
    let workers = [
        start_worker_with(config.clone(), &[&steady], fast_retries("w1")).await,
        start_worker_with(config.clone(), &[&steady], fast_retries("w2")).await,
    ];

    let leader = js.get_stream("WEFT_JOBS").await.unwrap().get_info().await.unwrap().cluster.unwrap().leader;
    let leader = leader.and_then(|name| name.strip_prefix('n').and_then(|i| i.parse::<usize>().ok())).unwrap();
    for i in 0..JOBS {
        if i == JOBS / 3 {
            tokio::task::block_in_place(|| cluster.nodes[leader].kill());
        }
        if i == 2 * JOBS / 3 {
            tokio::task::block_in_place(|| cluster.nodes[leader].restart());
        }
        submit_until_stored(&queue, &format!("steady-{i}")).await;
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    for i in 0..JOBS {
        let id = format!("steady-{i}");
        let record = match queue.wait(&id, Duration::from_secs(120)).await {
            Ok(record) => record,
            Err(error) => {
                let record = queue.status(&id).await;
                let depths = queue.queue_depths().await;
                panic!("{id}: {error}; its record now: {record:?}; the queue: {depths:?}")
            }
        };
        assert_eq!(record.state, JobState::Succeeded, "{record:?}");
    }
    let mut summaries = Vec::new();
    for worker in workers {
        summaries.push(worker.stop().await);
    }
    let succeeded: u64 = summaries.iter().map(|s| s.succeeded).sum();
    let dead: u64 = summaries.iter().map(|s| s.dead_lettered).sum();
    assert_eq!(dead, 0, "{summaries:?}");
    assert!(succeeded >= JOBS as u64, "{summaries:?}");
    assert!(queue.dead_letters().await.unwrap().is_empty());
    let left = js.get_stream("WEFT_JOBS").await.unwrap().get_info().await.unwrap().state.messages;
    assert_eq!(left, 0, "every job left the work queue");
}
