//! The worker loop behind `weft serve`: pull jobs in batches from the
//! consumer of each workflow it serves, hand each to its own task (at most
//! `concurrency` at once over all workflows; what
//! a job's task does is `job_run`'s), and drain on shutdown: stop pulling,
//! wait for in-flight jobs, hand back those still running, flush the last
//! acks. It never settles a message itself. One watch on cancel requests
//! (`cancel`) runs beside the loop while it serves; before its first pull
//! it registers what it serves (`registry`).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::consumer::PullConsumer;
use futures::StreamExt as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use super::QueueError;
use super::cancel::watch_requests;
use super::job_run::{Counters, JobRunner};
use super::registry::{WorkflowInfo, register};
use super::store::StateStore;
use super::topology::{Limits, QueueConfig, open};
use crate::scheduler::{JitterSource, RandomJitter};
use crate::workflow::{Jitter, RetryPolicy};
use crate::{Host, LoadedWorkflow};

/// See [`WorkerConfig::checkpoint_delay`].
pub const DEFAULT_CHECKPOINT_DELAY: Duration = Duration::from_millis(100);

/// How a worker behaves.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Jobs run at once (also the pull batch size).
    pub concurrency: usize,
    /// Runs of one job before it is dead-lettered (the host's own counter).
    pub max_job_attempts: u32,
    /// Delay between runs of a job whose run failed retryably.
    pub job_retry: RetryPolicy,
    /// How long shutdown waits for in-flight jobs before handing them back.
    pub drain_grace: Duration,
    /// A name for this worker in job histories.
    pub name: String,
    /// How long a job runs before its step checkpoints are written. Jobs that
    /// finish sooner skip them (their outcome is recorded instead); a crash
    /// repeats at most this much of a job's finished work. Steps with grants
    /// (which may have had effects outside) are checkpointed at once anyway.
    /// Zero writes every checkpoint as its step finishes.
    ///
    /// The same delay holds back the claim of a first delivery whose
    /// workflow is pure (no step has grants): such a job, when it finishes
    /// sooner, writes its record once, with its outcome. `weft status` shows
    /// it as unknown (queued) until then. Zero claims every job before it runs.
    pub checkpoint_delay: Duration,
    /// The largest input object a job may name (read from the object store);
    /// a larger one dead-letters the job. The default, 64 MiB, leaves room
    /// in the default 256 MiB sandbox for what a step makes of its input.
    pub max_input_bytes: u64,
    /// How long an unfinished job that started under another revision of
    /// its workflow is left to workers with that revision (a rolling
    /// upgrade) before this worker dead-letters it with the reason.
    pub revision_grace: Duration,
    /// How long a job encrypted with an at-rest key this worker lacks is
    /// left to workers that have it (a key rollout in progress) before this
    /// worker dead-letters it, body still encrypted, naming the key. Such
    /// a job is offered again every 10 s, each offer a delivery: keep the
    /// grace below the consumer's `max_deliver` times 10 s (1000 s by
    /// default), past which the server stops delivering it at all.
    pub missing_key_grace: Duration,
}

/// How long a worker keeps trying to set up its consumers and its watch
/// while JetStream does not answer (a cluster electing a leader, a server
/// restarting).
const SETUP_WINDOW: Duration = Duration::from_secs(60);

/// Runs `attempt` until it succeeds, retrying a JetStream error (a request
/// that timed out or found no leader) for [`SETUP_WINDOW`]; any other error
/// (settings that conflict) at once.
async fn retry_while_unavailable<T, Attempt>(what: &str, mut attempt: impl FnMut() -> Attempt) -> Result<T, QueueError>
where
    Attempt: Future<Output = Result<T, QueueError>>,
{
    let deadline = tokio::time::Instant::now() + SETUP_WINDOW;
    loop {
        match attempt().await {
            Ok(done) => return Ok(done),
            Err(error @ QueueError::JetStream { .. }) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(%error, "cannot set up {what} yet; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(error) => return Err(error),
        }
    }
}

/// [`WorkerConfig::max_input_bytes`] unless configured.
pub const DEFAULT_MAX_INPUT_BYTES: u64 = 64 << 20;

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            concurrency: 8,
            max_job_attempts: 3,
            job_retry: RetryPolicy {
                max_attempts: 3,
                initial_backoff: Duration::from_secs(1),
                max_backoff: Duration::from_secs(60),
                multiplier: 2.0,
                jitter: Jitter::Full,
                ..RetryPolicy::default()
            },
            drain_grace: Duration::from_secs(30),
            name: format!("weft-{}", std::process::id()),
            checkpoint_delay: DEFAULT_CHECKPOINT_DELAY,
            max_input_bytes: DEFAULT_MAX_INPUT_BYTES,
            revision_grace: Duration::from_secs(600),
            missing_key_grace: Duration::from_secs(600),
        }
    }
}

/// Counts of what a worker did, returned when it stops.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerSummary {
    /// Jobs acked after success.
    pub succeeded: u64,
    /// Jobs naked for a later retry.
    pub retried: u64,
    /// Jobs dead-lettered.
    pub dead_lettered: u64,
    /// Duplicates of finished jobs acked without running.
    pub duplicates: u64,
    /// Jobs handed back unfinished at shutdown.
    pub handed_back: u64,
    /// Deliveries of cancelled jobs acked without running, and jobs
    /// stopped mid-run because they were cancelled.
    pub cancelled: u64,
}

/// A worker: a host, the workflows it serves (by name) and a queue connection.
pub struct Worker {
    host: Arc<Host>,
    workflows: HashMap<String, LoadedWorkflow>,
    store: StateStore,
    config: WorkerConfig,
    jitter: Box<dyn JitterSource>,
}

impl Worker {
    /// Connects to NATS, sets up the topology and prepares to serve `workflows`.
    ///
    /// # Errors
    ///
    /// [`QueueError::DuplicateWorkflow`] when two workflows share a name, and as
    /// [`super::connect`] otherwise.
    pub async fn connect(
        host: Arc<Host>,
        workflows: Vec<LoadedWorkflow>,
        queue: QueueConfig,
        config: WorkerConfig,
    ) -> Result<Self, QueueError> {
        let mut by_name: HashMap<String, LoadedWorkflow> = HashMap::with_capacity(workflows.len());
        for workflow in workflows {
            let name = workflow.workflow().name.clone();
            if let Some(first) = by_name.get(&name) {
                return Err(QueueError::DuplicateWorkflow {
                    name,
                    first: first.workflow().source.clone(),
                    second: workflow.workflow().source.clone(),
                });
            }
            by_name.insert(name, workflow);
        }
        let topology = open(queue, Limits::Apply).await?;
        let workflows = by_name;
        Ok(Worker { host, workflows, store: StateStore::new(topology), config, jitter: Box::new(RandomJitter) })
    }

    /// The consumer of every served workflow, sorted by workflow. A request
    /// that times out or finds no leader (a cluster electing one, a server
    /// restarting) is retried for [`SETUP_WINDOW`]; settings that
    /// conflict are an error at once.
    async fn bind_consumers(&self) -> Result<Vec<(String, PullConsumer)>, QueueError> {
        let topology = &self.store.topology;
        let mut served: Vec<&str> = self.workflows.keys().map(String::as_str).collect();
        served.sort_unstable();
        retry_while_unavailable("the workflows' consumers", || async {
            topology.check_consumers(&served).await?;
            let mut consumers = Vec::with_capacity(served.len());
            for workflow in &served {
                consumers.push((workflow.to_string(), topology.workflow_consumer(workflow).await?));
            }
            Ok(consumers)
        })
        .await
    }

    /// Pulls and runs jobs until `shutdown` resolves, then drains: stops
    /// pulling, waits up to the grace period for in-flight jobs and hands
    /// back (naks) those still running.
    ///
    /// # Errors
    ///
    /// [`QueueError`] when the consumer cannot be created or checked, or
    /// the cancel requests cannot be watched.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<WorkerSummary, QueueError> {
        let consumers = self.bind_consumers().await?;
        let (hand_back, hand_back_rx) = watch::channel(false);
        let Worker { host, workflows, store, config, jitter } = self;
        // Before the first pull: a job cancelled while queued is known when
        // its delivery arrives.
        let (cancels, cancel_watch) =
            retry_while_unavailable("the cancel requests' watch", || watch_requests(&store)).await?;
        // What this worker serves, for clients without the files (one put
        // per workflow, at start-up only).
        let records: Vec<WorkflowInfo> =
            workflows.values().map(|workflow| WorkflowInfo::of(workflow, &config.name)).collect();
        retry_while_unavailable("the workflow registry", || register(&store.topology, &records)).await?;
        let runner = Arc::new(JobRunner {
            host,
            workflows,
            store,
            config,
            jitter,
            counters: Counters::default(),
            hand_back: hand_back_rx,
            cancels,
        });
        let config = &runner.config;
        let concurrency = config.concurrency.max(1);
        let permits = Arc::new(Semaphore::new(concurrency));
        // Each consumer pulls a share of the slots, so that what the client
        // holds before a slot frees (its ack wait running) stays about
        // `concurrency` messages however many workflows are served.
        let batch = concurrency.div_ceil(consumers.len().max(1));
        let (delivered_tx, mut delivered) = mpsc::channel(consumers.len().max(1));
        let mut pullers = JoinSet::new();
        for (workflow, consumer) in consumers {
            pullers.spawn(pull(workflow, consumer, batch, Arc::clone(&permits), delivered_tx.clone()));
        }
        drop(delivered_tx);
        let mut tasks = JoinSet::new();
        let mut shutdown = std::pin::pin!(shutdown);
        tracing::info!(workflows = ?runner.workflows.keys().collect::<Vec<_>>(), concurrency = config.concurrency, "worker started");

        loop {
            while tasks.try_join_next().is_some() {}
            let (message, permit): (jetstream::Message, OwnedSemaphorePermit) = tokio::select! {
                _ = &mut shutdown => break,
                next = delivered.recv() => match next {
                    Some(delivery) => delivery,
                    None => break,
                },
            };
            // Boxed: a task's future is copied whole when it is spawned and
            // when its output is stored, and a job's future (every await of
            // its handling) is large.
            let handle = Box::pin(Arc::clone(&runner).handle(message));
            tasks.spawn(async move {
                handle.await;
                drop(permit);
            });
        }
        // Stop pulling. Messages pulled but not started are left unacked:
        // the server delivers them again after the ack wait.
        pullers.shutdown().await;
        drop(delivered);

        tracing::info!(in_flight = tasks.len(), grace = ?config.drain_grace, "draining");
        let drained =
            tokio::time::timeout(config.drain_grace, async { while tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            let _ = hand_back.send(true);
            let bounded =
                tokio::time::timeout(Duration::from_secs(10), async { while tasks.join_next().await.is_some() {} });
            if bounded.await.is_err() {
                tasks.abort_all();
            }
        }
        // Acks are not confirmed (see `JobRunner::settle`): make sure the last ones are sent.
        let flushed = tokio::time::timeout(Duration::from_secs(5), runner.store.topology.client.flush()).await;
        if !matches!(flushed, Ok(Ok(()))) {
            tracing::warn!(
                "cannot flush the last acknowledgements; those jobs are redelivered and dropped as duplicates"
            );
        }
        cancel_watch.abort();
        let summary = runner.counters.summary();
        tracing::info!(?summary, "worker stopped");
        Ok(summary)
    }
}

/// Pulls one workflow's consumer for as long as the worker runs: each
/// message is handed over with a compute slot taken for it, so the worker's
/// concurrency bounds jobs of every workflow together, and a workflow without
/// jobs holds no slot. A failed pull is retried; this task ends when the
/// worker stops taking deliveries.
async fn pull(
    workflow: String,
    consumer: PullConsumer,
    batch: usize,
    permits: Arc<Semaphore>,
    delivered: mpsc::Sender<(jetstream::Message, OwnedSemaphorePermit)>,
) {
    loop {
        let mut messages = match consumer
            .stream()
            .max_messages_per_batch(batch)
            .heartbeat(Duration::from_secs(5))
            .expires(Duration::from_secs(30))
            .messages()
            .await
        {
            Ok(messages) => messages,
            Err(error) => {
                tracing::warn!(%workflow, %error, "cannot pull from the workflow's consumer; retrying in 1s");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        loop {
            match messages.next().await {
                Some(Ok(message)) => {
                    let Ok(permit) = Arc::clone(&permits).acquire_owned().await else { return };
                    if delivered.send((message, permit)).await.is_err() {
                        return;
                    }
                }
                Some(Err(error)) => {
                    tracing::warn!(%workflow, %error, "error while pulling jobs; pulling again");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    break;
                }
                None => break,
            }
        }
    }
}
