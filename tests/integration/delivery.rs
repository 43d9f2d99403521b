//! Exactly-once delivery across a worker crash: two real `weft serve`
//! processes, `kill -9` of the first after its `notify` step delivered a
//! webhook and was checkpointed; the second finishes the job without
//! delivering again.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use weft::queue::{JobState, QueueConfig};

use crate::nats::NatsServer;
use crate::servers::HttpServer;
use crate::support::{component_path, weft_cmd};

fn serve(server: &NatsServer, dir: &Path) -> Child {
    weft_cmd(dir)
        .args(["serve", "--nats", &server.url(), "--workflows", ".", "--ack-wait-secs", "2"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("weft serve starts")
}

/// Kills the process on drop, so a failing assertion leaves nothing behind.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_is_delivered_once_when_a_worker_dies_after_delivering() {
    let server = NatsServer::start();
    let receiver = HttpServer::always(200).await;
    let dir = tempfile::tempdir().unwrap();
    let workflow = format!(
        "name: deliver\nversion: '1'\nsteps:\n  - id: notify\n    plugin: notify\n    grants: {{ http: [\"{grant}\"] }}\n    \
         config: {{ channels: [{{ type: webhook, url: \"{url}\" }}] }}\n  - id: linger\n    plugin: {sleep}\n    \
         needs: [notify]\n    config: {{ ms: 4000 }}\n",
        grant = receiver.grant(),
        url = receiver.url("/hook"),
        sleep = component_path("sleep").display(),
    );
    std::fs::write(dir.path().join("deliver.yaml"), workflow).unwrap();

    let mut doomed = serve(&server, dir.path());
    let queue = weft::queue::connect(QueueConfig { url: server.url(), ..QueueConfig::default() }).await.unwrap();
    queue.submit("deliver", b"the result".to_vec(), Some("deliver-once".into())).await.unwrap();

    // Kill -9 once `notify` delivered and its checkpoint is durable.
    let js = async_nats::jetstream::new(queue.nats().clone());
    let kv = js.get_key_value("weft-jobs").await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !crate::queue::has_checkpoint(&kv, "deliver-once", "notify").await {
        assert!(Instant::now() < deadline, "the notify step never finished");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(receiver.requests().len(), 1);
    doomed.kill().unwrap();
    doomed.wait().unwrap();

    let _rescuer = Reaper(serve(&server, dir.path()));
    let record = queue.wait("deliver-once", Duration::from_secs(60)).await.unwrap();
    assert_eq!(record.state, JobState::Succeeded, "{record:?}");
    assert_eq!(record.attempts, 2, "both workers ran the job");
    let steps = record.report.as_ref().unwrap()["steps"].as_array().unwrap().clone();
    assert_eq!(steps[0]["status"], "resumed", "notify was not run again");
    assert_eq!(receiver.requests().len(), 1, "the receiver saw exactly one delivery");
}
