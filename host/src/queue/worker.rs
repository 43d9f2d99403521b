//! The worker loop behind `weft serve`: pull jobs in batches from the shared
//! consumer, claim each job with one conditional write of its record (for a
//! first delivery of a pure workflow's job, written behind: see [`Claim`]), run up
//! to `concurrency` at once with in-progress acks, checkpoint finished steps
//! (written behind, see [`WorkerConfig::checkpoint_delay`]), ack on success,
//! nak with a host-computed delay on a retryable failure, dead-letter (before
//! acking) when attempts run out or a failure is fatal, and drain on shutdown.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use futures::StreamExt as _;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tracing::Instrument as _;

use super::client::{DeadLetter, QueueClient};
use super::state::{Borrowed, JobAttempt, JobRecord, JobState, StoredOutputs, checkpoint_key, now_ms};
use super::topology::{QueueConfig, open};
use super::{JobMessage, QueueError, valid_job_id};
use crate::item::Item;
use crate::scheduler::{
    CheckpointSink, JitterSource, JobError, JobOptions, JobOutcome, JobReport, JobStatus, RandomJitter, backoff_delay,
};
use crate::workflow::{Jitter, RetryPolicy};
use crate::{Host, LoadedWorkflow};

/// Checkpoints larger than this go to the object store, not the KV bucket
/// (NATS messages are capped at 1 MiB by default).
const INLINE_CHECKPOINT_LIMIT: usize = 512 * 1024;

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
}

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
            },
            drain_grace: Duration::from_secs(30),
            name: format!("weft-{}", std::process::id()),
            checkpoint_delay: DEFAULT_CHECKPOINT_DELAY,
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
}

#[derive(Default)]
struct Counters {
    succeeded: AtomicU64,
    retried: AtomicU64,
    dead_lettered: AtomicU64,
    duplicates: AtomicU64,
    handed_back: AtomicU64,
}

/// A worker: a host, the workflows it serves (by name) and a queue connection.
pub struct Worker {
    host: Arc<Host>,
    workflows: Arc<HashMap<String, LoadedWorkflow>>,
    queue: QueueClient,
    config: Arc<WorkerConfig>,
    jitter: Arc<dyn JitterSource>,
}

impl Worker {
    /// Connects to NATS, sets up the topology and prepares to serve `workflows`.
    ///
    /// # Errors
    ///
    /// As [`super::connect`].
    pub async fn connect(
        host: Arc<Host>,
        workflows: Vec<LoadedWorkflow>,
        queue: QueueConfig,
        config: WorkerConfig,
    ) -> Result<Self, QueueError> {
        let topology = open(queue).await?;
        let workflows = workflows.into_iter().map(|w| (w.workflow().name.clone(), w)).collect();
        Ok(Worker {
            host,
            workflows: Arc::new(workflows),
            queue: QueueClient { topology: Arc::new(topology) },
            config: Arc::new(config),
            jitter: Arc::new(RandomJitter),
        })
    }

    /// Pulls and runs jobs until `shutdown` resolves, then drains: stops
    /// pulling, waits up to the grace period for in-flight jobs and hands
    /// back (naks) those still running.
    ///
    /// # Errors
    ///
    /// [`QueueError`] when the consumer cannot be created or checked.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<WorkerSummary, QueueError> {
        let consumer = self.queue.topology.consumer().await?;
        let counters = Arc::new(Counters::default());
        let permits = Arc::new(Semaphore::new(self.config.concurrency.max(1)));
        let (hand_back, hand_back_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let mut shutdown = std::pin::pin!(shutdown);
        tracing::info!(workflows = ?self.workflows.keys().collect::<Vec<_>>(), concurrency = self.config.concurrency, "worker started");

        'pull: loop {
            let mut messages = match consumer
                .stream()
                .max_messages_per_batch(self.config.concurrency.max(1))
                .heartbeat(Duration::from_secs(5))
                .expires(Duration::from_secs(30))
                .messages()
                .await
            {
                Ok(messages) => messages,
                Err(error) => {
                    tracing::warn!(%error, "cannot pull from the job consumer; retrying in 1s");
                    tokio::select! {
                        _ = &mut shutdown => break 'pull,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue 'pull,
                    }
                }
            };
            loop {
                while tasks.try_join_next().is_some() {}
                let permit = tokio::select! {
                    _ = &mut shutdown => break 'pull,
                    permit = permits.clone().acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => break 'pull,
                    },
                };
                let next = tokio::select! {
                    _ = &mut shutdown => break 'pull,
                    next = messages.next() => next,
                };
                match next {
                    Some(Ok(message)) => {
                        let job = JobRun {
                            host: self.host.clone(),
                            workflows: self.workflows.clone(),
                            queue: self.queue.clone(),
                            config: self.config.clone(),
                            jitter: self.jitter.clone(),
                            counters: counters.clone(),
                            hand_back: hand_back_rx.clone(),
                        };
                        // Boxed: a task's future is copied whole when it is
                        // spawned and when its output is stored, and a job's
                        // future (every await of its handling) is large.
                        let handle = Box::pin(job.handle(message));
                        tasks.spawn(async move {
                            handle.await;
                            drop(permit);
                        });
                    }
                    Some(Err(error)) => {
                        tracing::warn!(%error, "error while pulling jobs; pulling again");
                        drop(permit);
                        tokio::select! {
                            _ = &mut shutdown => break 'pull,
                            _ = tokio::time::sleep(Duration::from_millis(500)) => continue 'pull,
                        }
                    }
                    None => continue 'pull,
                }
            }
        }

        tracing::info!(in_flight = tasks.len(), grace = ?self.config.drain_grace, "draining");
        let drained =
            tokio::time::timeout(self.config.drain_grace, async { while tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            let _ = hand_back.send(true);
            let bounded =
                tokio::time::timeout(Duration::from_secs(10), async { while tasks.join_next().await.is_some() {} });
            if bounded.await.is_err() {
                tasks.abort_all();
            }
        }
        // Acks are not confirmed (see `ack`): make sure the last ones are sent.
        let flushed = tokio::time::timeout(Duration::from_secs(5), self.queue.topology.client.flush()).await;
        if !matches!(flushed, Ok(Ok(()))) {
            tracing::warn!(
                "cannot flush the last acknowledgements; those jobs are redelivered and dropped as duplicates"
            );
        }
        let summary = WorkerSummary {
            succeeded: counters.succeeded.load(Ordering::Relaxed),
            retried: counters.retried.load(Ordering::Relaxed),
            dead_lettered: counters.dead_lettered.load(Ordering::Relaxed),
            duplicates: counters.duplicates.load(Ordering::Relaxed),
            handed_back: counters.handed_back.load(Ordering::Relaxed),
        };
        tracing::info!(?summary, "worker stopped");
        Ok(summary)
    }
}

/// Everything one job's handling needs, owned so it can be spawned.
struct JobRun {
    host: Arc<Host>,
    workflows: Arc<HashMap<String, LoadedWorkflow>>,
    queue: QueueClient,
    config: Arc<WorkerConfig>,
    jitter: Arc<dyn JitterSource>,
    counters: Arc<Counters>,
    hand_back: watch::Receiver<bool>,
}

impl JobRun {
    async fn handle(self, message: jetstream::Message) {
        let workflow_name = message
            .subject
            .as_str()
            .strip_prefix(&format!("{}.", self.queue.topology.config.jobs_subject_prefix))
            .unwrap_or_default()
            .to_string();
        let header_id = message.headers.as_ref().and_then(|h| h.get("Nats-Msg-Id")).map(|v| v.as_str().to_string());
        let sequence = message.info().map(|i| i.stream_sequence).unwrap_or_default();

        let parsed = JobMessage::parse(&message.payload);
        let job_id = match &parsed {
            Ok(job) => job.job_id.clone().or(header_id.clone()),
            Err(_) => header_id.clone(),
        }
        .unwrap_or_else(|| format!("seq-{sequence}"));
        let span = tracing::info_span!("job", job.id = %job_id, workflow = %workflow_name);
        async move {
            let reject = |reason: String| DeadLetter {
                job_id: job_id.clone(),
                workflow: workflow_name.clone(),
                reason,
                error: None,
                history: Vec::new(),
                message: String::from_utf8_lossy(&message.payload).into_owned(),
            };
            let job = match parsed {
                Ok(job) => job,
                Err(reason) => return self.reject(&message, reject(reason)).await,
            };
            if !valid_job_id(&job_id) {
                return self
                    .reject(
                        &message,
                        reject(format!("job id `{job_id}` is invalid: use 1-128 letters, digits, `-` or `_`")),
                    )
                    .await;
            }
            let Some(workflow) = self.workflows.get(&workflow_name).cloned() else {
                let mut known: Vec<_> = self.workflows.keys().cloned().collect();
                known.sort();
                let reason = format!("unknown workflow `{workflow_name}`; this worker serves: {}", known.join(", "));
                return self.reject(&message, reject(reason)).await;
            };
            self.run(message, job, job_id.clone(), workflow).await;
        }
        .instrument(span)
        .await;
    }

    /// Dead-letters a message that can never run, then removes it.
    async fn reject(&self, message: &jetstream::Message, letter: DeadLetter) {
        tracing::warn!(reason = %letter.reason, "dead-lettering an unusable job message");
        let msg_id =
            format!("reject-{}-{}", letter.job_id, message.info().map(|i| i.stream_sequence).unwrap_or_default());
        match self.queue.dead_letter(&letter, &msg_id).await {
            Ok(()) => {
                self.counters.dead_lettered.fetch_add(1, Ordering::Relaxed);
                ack(message, AckKind::Ack).await;
            }
            // Not acked: the message is redelivered and rejected again later.
            Err(error) => tracing::error!(%error, "cannot dead-letter; leaving the message for redelivery"),
        }
    }

    async fn run(self, message: jetstream::Message, job: JobMessage, job_id: String, workflow: LoadedWorkflow) {
        let workflow_name = workflow.workflow().name.clone();
        // The claim: the first delivery of a job of a pure workflow (no step
        // has grants, so a second run of it has no effect outside) defers it
        // (see `WorkerConfig::checkpoint_delay`); every other delivery claims
        // the job, or finds its record, before anything runs.
        let first_delivery = message.info().is_ok_and(|info| info.delivered <= 1);
        let pure = workflow.workflow().steps.iter().all(|step| step.grants.is_empty());
        let mut defer_claim = first_delivery && pure && !self.config.checkpoint_delay.is_zero();
        let mut claimed = None;
        if !defer_claim {
            claimed = Some(self.claim(&message, &job_id, &workflow_name).await);
        }
        let input = self.load_input(&job).await;
        if defer_claim && input.is_err() {
            // Dead-lettered below: that needs the job's real record.
            defer_claim = false;
            claimed = Some(self.claim(&message, &job_id, &workflow_name).await);
        }
        let (mut record, redelivered) = match claimed {
            None => (JobRecord::first_run(&job_id, &workflow_name), false),
            Some(Some(claimed)) => claimed,
            Some(None) => return,
        };
        let started_at_ms = now_ms();
        let this_run =
            |attempt: u32, outcome: &str, error: Option<serde_json::Value>, retry_in_ms: Option<u64>| JobAttempt {
                attempt,
                started_at_ms,
                worker: self.config.name.clone(),
                outcome: outcome.to_string(),
                error,
                retry_in_ms,
            };

        let input = match input {
            Ok(item) => item,
            Err(reason) => {
                let letter = DeadLetter {
                    job_id: job_id.clone(),
                    workflow: workflow_name.clone(),
                    reason: format!("the job's input is unusable: {reason}"),
                    error: None,
                    history: record.history.clone(),
                    message: String::from_utf8_lossy(&message.payload).into_owned(),
                };
                return self.finish_dead(&message, record, None, letter).await;
            }
        };

        // The message's parsed copy (a base64 input is a third larger than
        // the bytes) is not needed while the job runs.
        drop(job);
        let completed = if redelivered { self.load_checkpoints(&job_id, &workflow).await } else { BTreeMap::new() };
        let checkpoints = Arc::new(KvCheckpoints::new(
            self.queue.clone(),
            &record,
            self.config.checkpoint_delay,
            defer_claim,
            &workflow,
        ));
        let mut hand_back = self.hand_back.clone();
        let sink: Arc<dyn CheckpointSink> = checkpoints.clone();
        // Boxed: the job's future is large, and this task's own future (and
        // the `select!` below) would otherwise copy all of it when moved.
        let run = Box::pin(self.host.run_job_with(
            &workflow,
            &job_id,
            vec![input],
            JobOptions { completed, checkpoints: Some(sink) },
        ));
        let outcome = tokio::select! {
            biased;
            outcome = run => Some(outcome),
            _ = hand_back.wait_for(|stop| *stop) => None,
            never = companion(&message, self.queue.topology.config.ack_wait, &checkpoints) => match never {},
        };
        let succeeded = outcome.as_ref().is_some_and(|o| o.report.status == JobStatus::Succeeded);
        if !succeeded {
            // The job will run again (retry, hand-back, replay): make every
            // finished step durable first so that run resumes after it.
            // This writes a deferred claim first.
            checkpoints.flush_and_settle().await;
        }
        // The outputs of a succeeded job, and whether they are too large for
        // the bucket; such outputs go to the object store under the job's
        // name, so a deferred claim is written before them and a duplicate
        // of a finished job never replaces that job's outputs.
        let sinks = outcome.as_ref().filter(|_| succeeded).map(|outcome| sink_outputs(&workflow, outcome));
        let inline = sinks.as_ref().and_then(fits_inline);
        let large_outputs = inline == Some(false);
        let claim = if large_outputs { checkpoints.claim_now().await } else { checkpoints.claim().await };
        let claim_deferred = match claim {
            Claim::Held => false,
            // Written below with the job's outcome, in the same write.
            Claim::Deferred if succeeded && !large_outputs => true,
            Claim::Deferred => {
                tracing::warn!("cannot claim the job's state; leaving the job for redelivery");
                return;
            }
            Claim::Conflict => match self.adopt(&message, &job_id, &workflow_name).await {
                Some(earlier) => {
                    record = earlier;
                    false
                }
                None => return,
            },
        };

        let Some(outcome) = outcome.as_ref() else {
            tracing::warn!("handing the job back unfinished at shutdown");
            record.history.push(this_run(record.attempts, "handed_back", None, None));
            record.attempts = record.attempts.saturating_sub(1);
            record.state = JobState::Queued;
            let _ = self.queue.write_record(&record).await;
            self.counters.handed_back.fetch_add(1, Ordering::Relaxed);
            ack(&message, AckKind::Nak(None)).await;
            return;
        };

        let report = &outcome.report;
        let attempt = record.attempts;
        match report.status {
            JobStatus::Succeeded => {
                let outputs = match (sinks, inline) {
                    (Some(sinks), Some(inline)) => self.store_outputs(&job_id, sinks, inline).await,
                    _ => None,
                };
                record.state = JobState::Succeeded;
                record.history.push(this_run(record.attempts, "succeeded", None, None));
                let mut written = if claim_deferred {
                    self.queue.create_record(&record.view(Some(report), outputs.as_ref())).await
                } else {
                    self.queue.write_record_view(&record.view(Some(report), outputs.as_ref())).await.map(|()| true)
                };
                if matches!(written, Ok(false)) {
                    // A record existed: this was not the job's first delivery
                    // after all (the server restarted, or the job id was
                    // submitted again after the dedupe window).
                    let Some(earlier) = self.adopt(&message, &job_id, &workflow_name).await else { return };
                    record = earlier;
                    record.state = JobState::Succeeded;
                    record.history.push(this_run(record.attempts, "succeeded", None, None));
                    written =
                        self.queue.write_record_view(&record.view(Some(report), outputs.as_ref())).await.map(|()| true);
                }
                if let Err(error) = written {
                    // Not acked: a redelivery resumes from the checkpoints,
                    // so the ones still held back are written now.
                    tracing::error!(%error, "cannot record the job's success; leaving it for redelivery");
                    checkpoints.flush_and_settle().await;
                    return;
                }
                self.publish_event(&workflow_name, &record, Some(report), outputs.as_ref()).await;
                self.counters.succeeded.fetch_add(1, Ordering::Relaxed);
                ack(&message, AckKind::Ack).await;
            }
            JobStatus::Failed => {
                let error = outcome.report.error.clone();
                let error_json = error.as_ref().and_then(|e| serde_json::to_value(e).ok());
                let retryable = error.as_ref().is_some_and(|e| e.failure.kind.is_retryable());
                if retryable && attempt < self.config.max_job_attempts {
                    let retry_after = error.as_ref().and_then(|e| e.failure.retry_after);
                    let delay = backoff_delay(&self.config.job_retry, attempt, retry_after, self.jitter.as_ref());
                    record.state = JobState::Retrying;
                    record.history.push(this_run(
                        attempt,
                        "failed",
                        error_json,
                        Some(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX)),
                    ));
                    let _ = self.queue.write_record_view(&record.view(Some(report), None)).await;
                    tracing::warn!(attempt, retry_in = ?delay, "job failed retryably; handing it back with a delay");
                    self.counters.retried.fetch_add(1, Ordering::Relaxed);
                    ack(&message, AckKind::Nak(Some(delay))).await;
                } else {
                    record.history.push(this_run(attempt, "failed", error_json.clone(), None));
                    let reason = match &error {
                        Some(e) if retryable => {
                            format!("step `{}` still failing after {attempt} attempts: {}", e.step, e.failure.message)
                        }
                        Some(e) => format!("step `{}` failed fatally: {}", e.step, e.failure.message),
                        None => "the job failed".to_string(),
                    };
                    let letter = DeadLetter {
                        job_id: job_id.clone(),
                        workflow: workflow_name.clone(),
                        reason,
                        error: error_json,
                        history: record.history.clone(),
                        message: String::from_utf8_lossy(&message.payload).into_owned(),
                    };
                    self.finish_dead(&message, record, Some(report), letter).await;
                }
            }
        }
    }

    /// Claims the job before it runs: a conditional write records a first
    /// delivery as running; when a record exists, this is a redelivery and
    /// the record is read instead. `Some((record, redelivered))` to run the
    /// job, `None` when it was handled here (a duplicate of a finished job,
    /// or state that cannot be read now).
    async fn claim(
        &self,
        message: &jetstream::Message,
        job_id: &str,
        workflow_name: &str,
    ) -> Option<(JobRecord, bool)> {
        let first_run = JobRecord::first_run(job_id, workflow_name);
        match self.queue.create_record(&first_run.view(None, None)).await {
            Ok(true) => return Some((first_run, false)),
            Ok(false) => {}
            Err(error) => tracing::warn!(%error, "cannot claim the job's state; reading it instead"),
        }
        let record = self.adopt(message, job_id, workflow_name).await?;
        if let Err(error) = self.queue.write_record(&record).await {
            tracing::warn!(%error, "cannot write job state");
        }
        Some((record, true))
    }

    /// The job's record when this delivery is not its first, taken over for
    /// this run (one more attempt, running). `None` when the job was handled
    /// here: it already finished (the delivery is acked as a duplicate), or
    /// its state cannot be read (the delivery is handed back for later).
    async fn adopt(&self, message: &jetstream::Message, job_id: &str, workflow_name: &str) -> Option<JobRecord> {
        let mut record = match self.queue.read_record(job_id).await {
            Ok(record) => record.unwrap_or_else(|| JobRecord::new(job_id, workflow_name)),
            Err(error) => {
                tracing::warn!(%error, "cannot read job state; will retry the job later");
                ack(message, AckKind::Nak(Some(Duration::from_secs(1)))).await;
                return None;
            }
        };
        if record.state.is_terminal() {
            tracing::info!(state = ?record.state, "job already finished; dropping the duplicate");
            self.counters.duplicates.fetch_add(1, Ordering::Relaxed);
            ack(message, AckKind::Ack).await;
            return None;
        }
        record.attempts += 1;
        record.state = JobState::Running;
        Some(record)
    }

    /// The job's input item: inline in the message, or read from the object store.
    async fn load_input(&self, job: &JobMessage) -> Result<Item, String> {
        match job.inline_item()? {
            Some(item) => Ok(item),
            None => match &job.input {
                super::JobInput::Object(name) => self
                    .queue
                    .get_object(name)
                    .await
                    .map(|bytes| job.with_metadata(Item::bytes(bytes)))
                    .map_err(|e| e.to_string()),
                _ => Err("no input".to_string()),
            },
        }
    }

    /// Dead-letters a job that ran: the dead letter first, then the state,
    /// then the ack, so a crash in between repeats work but loses nothing.
    async fn finish_dead(
        &self,
        message: &jetstream::Message,
        mut record: JobRecord,
        report: Option<&JobReport>,
        letter: DeadLetter,
    ) {
        let msg_id = format!("dead-{}-{}-{}", record.job_id, record.replays, record.attempts);
        if let Err(error) = self.queue.dead_letter(&letter, &msg_id).await {
            tracing::error!(%error, "cannot dead-letter the job; leaving it for redelivery");
            return;
        }
        record.state = JobState::DeadLettered;
        if let Err(error) = self.queue.write_record_view(&record.view(report, None)).await {
            tracing::warn!(%error, "cannot record the dead-lettered state");
        }
        self.publish_event(&record.workflow, &record, report, None).await;
        self.counters.dead_lettered.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(reason = %letter.reason, "job dead-lettered");
        ack(message, AckKind::Ack).await;
    }

    /// Publishes the job's result event: its `outputs` and `error` are those
    /// of this run when given, else those its record already held.
    async fn publish_event(
        &self,
        workflow: &str,
        record: &JobRecord,
        report: Option<&JobReport>,
        outputs: Option<&StoredOutputs<'_>>,
    ) {
        /// The completion event, borrowed from the record (no copy of the outputs).
        #[derive(serde::Serialize)]
        struct ResultEvent<'a> {
            job_id: &'a str,
            workflow: &'a str,
            state: JobState,
            attempts: u32,
            outputs: Option<Borrowed<'a, StoredOutputs<'a>>>,
            error: Option<Borrowed<'a, JobError>>,
        }
        let kept_error = || record.report.as_ref().and_then(|r| r.get("error")).map(Borrowed::Kept);
        let event = ResultEvent {
            job_id: &record.job_id,
            workflow: &record.workflow,
            state: record.state,
            attempts: record.attempts,
            outputs: outputs.map(Borrowed::New).or(record.outputs.as_ref().map(Borrowed::Kept)),
            error: match report {
                Some(report) => report.error.as_ref().map(Borrowed::New),
                None => kept_error(),
            },
        };
        let subject = self.queue.topology.result_subject(workflow);
        let payload = serde_json::to_vec(&event).unwrap_or_default();
        if let Err(error) = self.queue.topology.client.publish(subject, payload.into()).await {
            tracing::warn!(%error, "cannot publish the job's result event");
        }
    }

    /// The final steps' outputs as the record will hold them: inline, or
    /// stored in the object store when too large for the bucket.
    /// `inline` is [`fits_inline`] of `sinks`.
    async fn store_outputs<'a>(
        &self,
        job_id: &str,
        sinks: BTreeMap<&'a str, &'a [Item]>,
        inline: bool,
    ) -> Option<StoredOutputs<'a>> {
        // Only large ones are serialised to bytes (the record serialises
        // inline ones itself).
        if inline {
            return Some(StoredOutputs::Inline(sinks));
        }
        let bytes = serde_json::to_vec(&sinks).ok()?;
        let name = format!("output.{job_id}");
        match self.queue.put_object(&name, &bytes).await {
            Ok(()) => Some(StoredOutputs::Object { object: name }),
            Err(error) => {
                tracing::warn!(%error, "cannot store the job's outputs");
                None
            }
        }
    }

    /// Outputs of the steps a previous run of this job finished, read
    /// concurrently (one KV read per step, all in flight at once).
    async fn load_checkpoints(&self, job_id: &str, workflow: &LoadedWorkflow) -> BTreeMap<String, Arc<Vec<Item>>> {
        let reads = workflow.workflow().steps.iter().map(|step| async move {
            let Ok(Some(bytes)) = self.queue.topology.state.get(checkpoint_key(job_id, &step.id)).await else {
                return None;
            };
            let items = match serde_json::from_slice::<StoredCheckpoint>(&bytes) {
                Ok(StoredCheckpoint::Items(items)) => Some(items),
                Ok(StoredCheckpoint::Object(name)) => match self.queue.get_object(&name).await {
                    Ok(bytes) => serde_json::from_slice(&bytes).ok(),
                    Err(_) => None,
                },
                Err(_) => None,
            };
            if items.is_none() {
                tracing::warn!(step = %step.id, "unreadable checkpoint; the step will run again");
            }
            items.map(|items| (step.id.clone(), Arc::new(items)))
        });
        futures::future::join_all(reads).await.into_iter().flatten().collect()
    }
}

/// The outputs of `workflow`'s final steps in `outcome`, by step id.
fn sink_outputs<'a>(workflow: &'a LoadedWorkflow, outcome: &'a JobOutcome) -> BTreeMap<&'a str, &'a [Item]> {
    workflow
        .workflow()
        .sinks()
        .into_iter()
        .filter_map(|s| outcome.outputs.get(&s.id).map(|o| (s.id.as_str(), o.as_slice())))
        .collect()
}

/// Whether `value`'s JSON fits in the KV bucket (counted without keeping a
/// copy); `None` when it cannot be serialised.
fn fits_inline(value: &impl serde::Serialize) -> Option<bool> {
    let mut size = ByteCount(0);
    serde_json::to_writer(&mut size, value).ok()?;
    Some(size.0 <= INLINE_CHECKPOINT_LIMIT)
}

/// A writer that only counts the bytes written to it.
struct ByteCount(usize);

impl std::io::Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A checkpoint as the bucket holds it, read back.
#[derive(serde::Deserialize)]
#[serde(rename_all = "snake_case")]
enum StoredCheckpoint {
    Items(Vec<Item>),
    Object(String),
}

/// A checkpoint as it is written: the same JSON as [`StoredCheckpoint`],
/// borrowing the step's output instead of copying it.
#[derive(serde::Serialize)]
#[serde(rename_all = "snake_case")]
enum StoredCheckpointRef<'a> {
    Items(&'a [Item]),
    Object(&'a str),
}

/// Saves step outputs under `ckpt.<job>.<step>`, write-behind: during the
/// first `delay` of a job its checkpoints are only kept in memory, because a
/// job that finishes within it records its outcome instead and never needs
/// them; after that (and before a retry or hand-back) they are written, each
/// without waiting for the server's ack before the next step starts.
/// A crash therefore repeats at most `delay` of a job's finished work. Steps
/// with grants (they may have reached the outside world: a webhook, an
/// e-mail) are the exception: their checkpoint, and every one held back
/// before it, is stored before the next step starts, so a resumed job does
/// not repeat them.
///
/// A deferred claim (see [`Claim`]) is held back the same way, and written
/// before the first checkpoint.
struct KvCheckpoints {
    queue: QueueClient,
    job_id: String,
    workflow: String,
    delay: Duration,
    /// Steps whose checkpoint is stored at once (those with grants).
    immediate: std::collections::HashSet<String>,
    state: std::sync::Mutex<CheckpointState>,
    /// One flush at a time: the one at the end of the delay runs in a task
    /// of its own, and what follows the job waits for it.
    flushing: tokio::sync::Mutex<()>,
}

/// Whether the job's record claims it for this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Claim {
    /// Written: before the job started, or by a flush.
    Held,
    /// Not written yet. A first delivery of a pure workflow's job runs
    /// before it claims: a job that finishes within the checkpoint delay
    /// then creates its record once, with its outcome, instead of twice.
    /// (Running such a job twice has no effect outside, so a delivery that
    /// turns out not to be the first costs only its computation.)
    Deferred,
    /// A record existed when the deferred claim was written: this delivery
    /// was not the job's first after all.
    Conflict,
}

struct CheckpointState {
    /// Written as soon as they are saved (the delay has passed).
    eager: bool,
    /// Saved during the delay, not written yet.
    pending: Vec<(String, Arc<Vec<Item>>)>,
    /// Writes sent whose acks nobody has awaited yet.
    unacked: Vec<(String, async_nats::jetstream::context::PublishAckFuture)>,
    claim: Claim,
}

impl KvCheckpoints {
    fn new(
        queue: QueueClient,
        record: &JobRecord,
        delay: Duration,
        defer_claim: bool,
        workflow: &LoadedWorkflow,
    ) -> Self {
        let state = CheckpointState {
            eager: delay.is_zero(),
            pending: Vec::new(),
            unacked: Vec::new(),
            claim: if defer_claim { Claim::Deferred } else { Claim::Held },
        };
        let immediate =
            workflow.workflow().steps.iter().filter(|step| !step.grants.is_empty()).map(|s| s.id.clone()).collect();
        KvCheckpoints {
            queue,
            job_id: record.job_id.clone(),
            workflow: record.workflow.clone(),
            delay,
            immediate,
            state: std::sync::Mutex::new(state),
            flushing: tokio::sync::Mutex::new(()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CheckpointState> {
        // A panic while holding this lock cannot leave the lists inconsistent.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The claim, once any flush under way has finished.
    async fn claim(&self) -> Claim {
        let _flushed = self.flushing.lock().await;
        self.lock().claim
    }

    /// Writes a deferred claim now (once any flush under way has finished)
    /// and returns what it became.
    async fn claim_now(&self) -> Claim {
        let _one_at_a_time = self.flushing.lock().await;
        self.write_claim().await;
        self.lock().claim
    }

    /// Writes a deferred claim. After a conflict nothing more is written:
    /// the job's earlier run owns the checkpoints.
    async fn write_claim(&self) {
        if self.lock().claim != Claim::Deferred {
            return;
        }
        let first_run = JobRecord::first_run(&self.job_id, &self.workflow);
        let claim = match self.queue.create_record(&first_run.view(None, None)).await {
            Ok(true) => Claim::Held,
            Ok(false) => Claim::Conflict,
            Err(error) => {
                tracing::warn!(%error, "cannot claim the job's state");
                Claim::Deferred
            }
        };
        let mut state = self.lock();
        state.claim = claim;
        if claim == Claim::Conflict {
            state.pending.clear();
        }
    }

    /// Sends every pending checkpoint and makes later saves write at once.
    async fn flush(&self) {
        let _one_at_a_time = self.flushing.lock().await;
        self.write_claim().await;
        let pending = {
            let mut state = self.lock();
            if state.claim == Claim::Conflict {
                return;
            }
            state.eager = true;
            std::mem::take(&mut state.pending)
        };
        for (step_id, items) in pending {
            self.send(&step_id, &items).await;
        }
    }

    /// Flushes, then waits until the server has stored every checkpoint sent.
    async fn flush_and_settle(&self) {
        self.flush().await;
        self.settle().await;
    }

    /// Waits until the server has stored every checkpoint sent.
    async fn settle(&self) {
        let unacked = std::mem::take(&mut self.lock().unacked);
        for (step_id, ack) in unacked {
            if let Err(error) = ack.await {
                tracing::warn!(step = %step_id, %error, "cannot store a checkpoint");
            }
        }
    }

    /// Sends one checkpoint without awaiting its ack (large outputs go to
    /// the object store first, which is awaited).
    async fn send(&self, step_id: &str, items: &[Item]) {
        let Some(inline) = fits_inline(&items) else { return };
        let stored = if inline {
            serde_json::to_vec(&StoredCheckpointRef::Items(items))
        } else {
            let Ok(bytes) = serde_json::to_vec(items) else { return };
            let name = format!("ckpt.{}.{step_id}", self.job_id);
            if let Err(error) = self.queue.put_object(&name, &bytes).await {
                tracing::warn!(step = step_id, %error, "cannot store a checkpoint");
                return;
            }
            serde_json::to_vec(&StoredCheckpointRef::Object(&name))
        };
        let Ok(stored) = stored else { return };
        match self.queue.put_state_pipelined(&checkpoint_key(&self.job_id, step_id), stored.into()).await {
            Ok(ack) => self.lock().unacked.push((step_id.to_string(), ack)),
            Err(error) => tracing::warn!(step = step_id, %error, "cannot store a checkpoint"),
        }
    }
}

impl CheckpointSink for KvCheckpoints {
    fn save<'a>(
        &'a self,
        step_id: &'a str,
        items: &'a Arc<Vec<Item>>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            if self.immediate.contains(step_id) {
                self.flush().await;
                self.send(step_id, items).await;
                self.settle().await;
                return;
            }
            {
                let mut state = self.lock();
                if !state.eager {
                    state.pending.push((step_id.to_string(), Arc::clone(items)));
                    return;
                }
            }
            self.send(step_id, items).await;
        })
    }
}

/// What runs beside a job, in the job's own task (no task of its own to
/// spawn and abort per job): it sends in-progress acks at a third of the ack
/// wait, so a long step is not redelivered to another worker, and writes the
/// held-back checkpoints once the job has run for their delay. It never
/// ends; the job drops it when it finishes.
async fn companion(
    message: &jetstream::Message,
    ack_wait: Duration,
    checkpoints: &Arc<KvCheckpoints>,
) -> std::convert::Infallible {
    let every = (ack_wait / 3).max(Duration::from_millis(100));
    let started = tokio::time::Instant::now();
    let mut next_progress = started + every;
    let mut flush_at = (!checkpoints.delay.is_zero()).then(|| started + checkpoints.delay);
    loop {
        let wake = flush_at.map_or(next_progress, |flush| flush.min(next_progress));
        tokio::time::sleep_until(wake).await;
        let now = tokio::time::Instant::now();
        if flush_at.is_some_and(|flush| now >= flush) {
            flush_at = None;
            // In a task of its own: the job may finish during the flush,
            // which drops this future, and the claim's outcome must not be
            // lost with it.
            let checkpoints = Arc::clone(checkpoints);
            tokio::spawn(async move { checkpoints.flush().await });
        }
        if now >= next_progress {
            next_progress = now + every;
            if let Err(error) = message.ack_with(AckKind::Progress).await {
                tracing::warn!(%error, "cannot send an in-progress ack");
            }
        }
    }
}

/// Acknowledges without waiting for the server to confirm. Every ack of a job
/// that ran comes after its terminal state is durably in the KV bucket, so a
/// lost ack costs one redelivery that is dropped as a duplicate, never a
/// second run, so waiting for the confirmation would only add a round trip
/// per job (no CPU saving was measurable either way, bench/results/queue.md).
/// The worker flushes the connection before it stops, so a drained worker's
/// acks reach the server.
async fn ack(message: &jetstream::Message, kind: AckKind) {
    if let Err(error) = message.ack_with(kind).await {
        tracing::warn!(%error, "cannot acknowledge the job message; it may be redelivered");
    }
}
