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
