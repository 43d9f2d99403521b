//! Cancel requests as a worker sees them: one KV watch per worker on
//! `cancel.>` in the state bucket keeps the requests in memory, so checking
//! a delivered job costs a map look-up, not a round trip, and a running job
//! waits on a channel that wakes it when its request arrives. It never
//! writes: the client (`QueueClient::cancel`) writes requests, and
//! `job_run` stops jobs and records them (the transitions are `record`'s).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::jetstream::kv::{Operation, Watch};
use futures::StreamExt as _;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use super::QueueError;
use super::state::{CANCEL_KEY_PREFIX, Cancellation};
use super::store::StateStore;

/// The longest reason a cancel request may carry, in bytes: every worker
/// keeps each pending request in memory, and the record keeps the reason.
pub const MAX_CANCEL_REASON_BYTES: usize = 1024;

/// The longest `by` (who cancelled) a cancel request may carry, in bytes,
/// for the same reason as [`MAX_CANCEL_REASON_BYTES`].
pub const MAX_CANCELLED_BY_BYTES: usize = 256;

/// How long a starting worker waits for the cancel requests already stored
/// before it pulls jobs (a slow server only delays the start; past this the
/// worker starts anyway, and a request that arrives later still stops its
/// job as it runs).
pub const CANCEL_SNAPSHOT_WAIT: Duration = Duration::from_secs(10);

/// The largest stored request a worker accepts: the caps on its fields
/// and room for the JSON around them.
const MAX_REQUEST_BYTES: usize = MAX_CANCEL_REASON_BYTES + MAX_CANCELLED_BY_BYTES + 256;

/// How soon a watch that ended (the server went away) is opened again.
const REWATCH_DELAY: Duration = Duration::from_secs(1);

/// The cancel requests a worker knows of, by job id.
#[derive(Default)]
pub(crate) struct CancelRequests {
    requests: Mutex<HashMap<String, Cancellation>>,
    /// Bumped whenever a request arrives: running jobs wait on it.
    arrived: watch::Sender<u64>,
}

impl CancelRequests {
    /// The request to cancel `job_id`, if one is known.
    pub(crate) fn get(&self, job_id: &str) -> Option<Cancellation> {
        let requests = self.requests.lock().unwrap_or_else(PoisonError::into_inner);
        if requests.is_empty() {
            return None;
        }
        requests.get(job_id).cloned()
    }

    /// Resolves when a request to cancel `job_id` is known (at once if it
    /// is already). A running job selects on it beside its run.
    pub(crate) async fn requested(&self, job_id: &str) -> Cancellation {
        let mut arrived = self.arrived.subscribe();
        loop {
            if let Some(request) = self.get(job_id) {
                return request;
            }
            if arrived.changed().await.is_err() {
                // The sender lives as long as `self`: never reached.
                std::future::pending::<()>().await;
            }
        }
    }

    fn apply(&self, key: &str, operation: Operation, value: &[u8]) {
        let Some(job_id) = key.strip_prefix(CANCEL_KEY_PREFIX) else { return };
        // A request written around the client (straight into the bucket)
        // may not make every worker hold more than the client's caps allow.
        if operation == Operation::Put && value.len() > MAX_REQUEST_BYTES {
            tracing::warn!(key, size = value.len(), "ignoring a cancel request larger than any the client writes");
            return;
        }
        let mut requests = self.requests.lock().unwrap_or_else(PoisonError::into_inner);
        match operation {
            Operation::Put => match serde_json::from_slice::<Cancellation>(value) {
                Ok(request) => {
                    requests.insert(job_id.to_string(), request);
                    drop(requests);
                    self.arrived.send_modify(|n| *n = n.wrapping_add(1));
                }
                Err(error) => tracing::warn!(%error, key, "ignoring an unreadable cancel request"),
            },
            Operation::Delete | Operation::Purge => {
                requests.remove(job_id);
            }
        }
    }
}

/// Starts the worker's watch on cancel requests and waits (at most
/// [`CANCEL_SNAPSHOT_WAIT`]) until the requests already stored are loaded.
/// The task runs until it is aborted, opening the watch again when it ends.
///
/// # Errors
///
/// [`QueueError::JetStream`] when the state bucket cannot be watched.
pub(crate) async fn watch_requests(store: &StateStore) -> Result<(Arc<CancelRequests>, JoinHandle<()>), QueueError> {
    let state = store.topology.state.clone();
    let filter = format!("{CANCEL_KEY_PREFIX}>");
    // Whether any request is stored at all: an empty watch yields nothing,
    // so without one there is nothing to wait for.
    let subjects = format!("{}{filter}", state.prefix);
    let mut stored = state
        .stream
        .info_with_subjects(&subjects)
        .await
        .map_err(|e| QueueError::js("reading the cancel requests", e))?;
    let any_stored = stored.next().await.transpose().map_err(|e| QueueError::js("reading the cancel requests", e))?;
    let first = state.watch_with_history(&filter).await.map_err(|e| QueueError::js("watching cancel requests", e))?;

    let requests = Arc::new(CancelRequests::default());
    let (loaded, loaded_rx) = oneshot::channel();
    let task = tokio::spawn({
        let requests = Arc::clone(&requests);
        async move {
            let mut loaded = Some(loaded);
            let mut watching = Some(first);
            loop {
                let watch: Watch = match watching.take() {
                    Some(watch) => watch,
                    None => match state.watch_with_history(&filter).await {
                        Ok(watch) => watch,
                        Err(error) => {
                            tracing::warn!(%error, "cannot watch cancel requests; trying again");
                            tokio::time::sleep(REWATCH_DELAY).await;
                            continue;
                        }
                    },
                };
                let mut watch = watch;
                while let Some(entry) = watch.next().await {
                    match entry {
                        Ok(entry) => {
                            requests.apply(&entry.key, entry.operation, &entry.value);
                            if entry.seen_current
                                && let Some(loaded) = loaded.take()
                            {
                                let _ = loaded.send(());
                            }
                        }
                        Err(error) => tracing::warn!(%error, "error while watching cancel requests"),
                    }
                }
                tracing::warn!("the watch on cancel requests ended; watching again");
                tokio::time::sleep(REWATCH_DELAY).await;
            }
        }
    });
    if any_stored.is_some() && tokio::time::timeout(CANCEL_SNAPSHOT_WAIT, loaded_rx).await.is_err() {
        tracing::warn!(
            wait = ?CANCEL_SNAPSHOT_WAIT,
            "the stored cancel requests did not all arrive in time; starting anyway"
        );
    }
    Ok((requests, task))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn request(reason: &str) -> Vec<u8> {
        serde_json::to_vec(&Cancellation { by: "ops@host".into(), reason: Some(reason.into()), at_ms: 1 }).unwrap()
    }

    #[test]
    fn requests_are_kept_until_deleted_and_oversized_or_unreadable_ones_are_ignored() {
        let requests = CancelRequests::default();
        assert!(requests.get("j1").is_none());
        requests.apply("cancel.j1", Operation::Put, &request("wrong input"));
        assert_eq!(requests.get("j1").unwrap().reason.as_deref(), Some("wrong input"));
        requests.apply("cancel.j2", Operation::Put, &request(&"x".repeat(MAX_REQUEST_BYTES)));
        requests.apply("cancel.j3", Operation::Put, b"not json");
        requests.apply("job.j4", Operation::Put, &request("not a request key"));
        assert!(requests.get("j2").is_none() && requests.get("j3").is_none() && requests.get("j4").is_none());
        requests.apply("cancel.j1", Operation::Delete, b"");
        assert!(requests.get("j1").is_none());
    }

    #[tokio::test]
    async fn a_running_job_wakes_when_its_request_arrives() {
        let requests = Arc::new(CancelRequests::default());
        let waiting = tokio::spawn({
            let requests = Arc::clone(&requests);
            async move { requests.requested("j1").await }
        });
        tokio::task::yield_now().await;
        requests.apply("cancel.other", Operation::Put, &request("another job"));
        requests.apply("cancel.j1", Operation::Put, &request("mine"));
        let got = tokio::time::timeout(Duration::from_secs(10), waiting).await.unwrap().unwrap();
        assert_eq!(got.reason.as_deref(), Some("mine"));
    }
}
