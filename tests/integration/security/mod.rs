//! Attacks on the host from outside the sandbox, one test per attack, each
//! named after it (issue 18), grouped by who attacks: publishers on the
//! queue, plugins on the network and secrets, workflow files, and anyone
//! trying to hold a job's time or the host's memory. Every test uses real
//! parts: a nats-server, loopback servers, the real CLI.

use std::time::{Duration, Instant};

use crate::nats::NatsServer;
use crate::queue::queue_config;

mod compile_cache;
mod host_memory;
mod limits;
mod network;
mod queue;
mod submissions;
mod workflow_files;

/// Waits until every workflow's consumer has nothing pending and nothing
/// unacked: every message ended acked, dead-lettered or terminated. (Jobs
/// of workflows nobody serves have no consumer and wait.)
pub(crate) async fn wait_until_settled(server: &NatsServer, js: &async_nats::jetstream::Context) {
    use futures::TryStreamExt as _;
    let config = queue_config(server);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // The worker creates the consumers when it starts pulling.
        let infos: Vec<async_nats::jetstream::consumer::Info> =
            js.get_stream(&config.jobs_stream).await.unwrap().consumers().try_collect().await.unwrap();
        if !infos.is_empty() && infos.iter().all(|info| info.num_pending == 0 && info.num_ack_pending == 0) {
            return;
        }
        assert!(Instant::now() < deadline, "messages left unsettled: {infos:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs the real `weft` with `args` in `dir`, killing it if it has not
/// exited within `within`; its exit code (none if killed) and stderr.
pub(crate) fn weft_within(dir: &std::path::Path, args: &[&str], within: Duration) -> (Option<i32>, String) {
    let mut child = crate::support::weft_cmd(dir)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = crate::support::wait_exit(&mut child, within);
    if status.is_none() {
        let _ = child.kill();
    }
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (status.and_then(|s| s.code()), stderr)
}
