//! One job's handling, from its message to its settlement: check the
//! message, claim the job (see [`Claim`]), run it beside in-progress acks
//! and held-back checkpoints, record how it ended, and settle the message.
//!
//! [`JobRunner::settle`] is the only place a message is acked, nak'ed or
//! dead-lettered: everything before it decides an [`Outcome`] and makes the
//! job's record durable; nothing else touches the message's fate.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use tokio::sync::watch;
use tracing::Instrument as _;

use super::at_rest::{self, AtRestError};
use super::cancel::CancelRequests;
use super::checkpoints::{self, KvCheckpoints, Resumed, fits_inline};
use super::dead_letter::DeadLetter;
use super::record::{Adoption, Cancelling, Claim, Claimant, Failure, Recording, RetryRule, Run};
use super::state::{
    Cancellation, JobRecord, JobState, StoredOutputs, cancel_key, now_ms, outputs_context, submission_fingerprint,
};
use super::store::StateStore;
use super::worker::{WorkerConfig, WorkerSummary};
use super::{JobInput, JobMessage, QueueError, valid_job_id};
use crate::item::{Item, Payload};
use crate::scheduler::{CheckpointSink, JitterSource, JobOptions, JobOutcome, JobReport, JobStatus};
use crate::{Host, LoadedWorkflow};

/// How many times a dead-lettered job's record write is tried while the
/// bucket does not answer, [`DEAD_LETTERED_WRITE_PAUSE`] apart: together
/// longer than a JetStream leader election after a node restart.
const DEAD_LETTERED_WRITE_TRIES: u32 = 10;

/// The pause between those tries.
const DEAD_LETTERED_WRITE_PAUSE: Duration = Duration::from_millis(500);

/// Whether a `Nats-Msg-Id` header names the job `body_id`: the same id, or
/// the id `weft dlq replay` gives a replay (`<id>-replay-<n>`).
fn same_job(body_id: &str, header_id: &str) -> bool {
    header_id == body_id
        || header_id
            .strip_prefix(body_id)
            .and_then(|rest| rest.strip_prefix("-replay-"))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// How soon a job left to a worker with another revision is offered again.
const REVISION_RETRY: Duration = Duration::from_secs(2);

/// How soon a job encrypted with a key this worker lacks is offered again
/// (long enough that the consumer's `max_deliver` outlasts the default grace).
const KEY_RETRY: Duration = Duration::from_secs(10);

/// How long ago the server received `message` (zero when unknown).
fn message_age(message: &jetstream::Message) -> Duration {
    let Ok(info) = message.info() else { return Duration::ZERO };
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| i128::try_from(since.as_nanos()).unwrap_or(i128::MAX));
    Duration::from_nanos(u64::try_from((now_ns - info.published.unix_timestamp_nanos()).max(0)).unwrap_or(u64::MAX))
}

/// When the job of `message` must be done: the workflow's `deadline`
/// counted from when the server received the message (its first
/// publication; a replay is a new one), so redeliveries and retries do not
/// extend it. A clock behind the server's counts from now.
fn deadline(message: &jetstream::Message, workflow: &LoadedWorkflow) -> tokio::time::Instant {
    tokio::time::Instant::now() + workflow.workflow().deadline.saturating_sub(message_age(message))
}

/// How one delivery ends: one variant per way its message is settled.
// Built once per delivery and consumed at once by `settle`: boxing the
// dead-letter variant would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Outcome<'a> {
    /// The job succeeded and its record says so: the result event is
    /// published, then the message acked.
    Succeeded {
        /// The workflow (the results subject's token).
        workflow: &'a str,
        /// The record as written.
        record: &'a JobRecord,
        /// This run's report.
        report: &'a JobReport,
        /// This run's outputs as the record holds them.
        outputs: Option<&'a StoredOutputs<'a>>,
    },
    /// It failed retryably with attempts left and its record says
    /// retrying: nak'ed, redelivered after `delay`.
    Retry {
        /// The host's backoff.
        delay: Duration,
    },
    /// Unfinished at shutdown; its record says queued: nak'ed, redelivered at once.
    HandedBack,
    /// Unfinished, started under another revision of its workflow: left to
    /// a worker with that revision, nak'ed and redelivered after `delay`.
    Elsewhere {
        /// How long before it is offered again.
        delay: Duration,
    },
    /// It can never succeed: (when the job has a record) the record is
    /// first written, still unfinished, at the revision this delivery last
    /// wrote, so a delivery that lost the job stores no dead letter; then
    /// the dead letter is stored (a large body out of line, so it fits
    /// whatever the message's size), then its record says dead-lettered
    /// and its result event is published, then the message is acked. A
    /// dead letter that cannot be stored (the server is unreachable) leaves
    /// the message for redelivery, at most the consumer's `max_deliver`
    /// times.
    DeadLetter {
        /// What the dead-letter stream gets.
        letter: DeadLetter,
        /// The job's record, the bucket revision this delivery last
        /// wrote (or read) it at, and this run's report; `None` for a
        /// message that is not a usable job at all.
        record: Option<(JobRecord, u64, Option<&'a JobReport>)>,
    },
    /// A duplicate of a finished job: acked without running.
    Duplicate,
    /// A cancelled job, stopped before it ran or while it ran: its record
    /// says cancelled, its cancel request (no longer needed) is removed,
    /// then the message is acked.
    Cancelled {
        /// The job's id (its cancel request's key).
        job_id: String,
    },
    /// Its record cannot be read now: nak'ed, redelivered in a second.
    StateUnreadable,
    /// Its claim or outcome could not be written: not settled at all, so
    /// the server redelivers it after the ack wait.
    Unsettled,
    /// The job's record moved on past the revision this delivery last
    /// wrote: another delivery took the job over (this one was stopped or
    /// cut off past the ack wait), or it was cancelled. This delivery
    /// writes, announces and dead-letters nothing more. It is acked (as a
    /// duplicate) only when the record is terminal, since then the job's
    /// outcome is durable; otherwise the job is another delivery's, whose
    /// message this one shares: an ack would take it off the queue while
    /// that delivery may still fail or crash, so it is left unsettled.
    Lost {
        /// The job's id (its record's key).
        job_id: String,
    },
}

/// How a job ended for good: its outcome is durable (record or dead
/// letter) and its message settled, so it never runs again unless replayed,
/// and a replay starts over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// Its record says succeeded.
    Succeeded,
    /// It is in the dead-letter stream.
    DeadLettered,
    /// Its record says cancelled.
    Cancelled,
    /// Another delivery ended it (this one lost the job, see
    /// [`Outcome::Lost`]): only this run's leftovers (checkpoints it wrote
    /// late) go.
    ByAnother,
}

/// Counts of how deliveries were settled.
#[derive(Default)]
pub(crate) struct Counters {
    succeeded: AtomicU64,
    retried: AtomicU64,
    dead_lettered: AtomicU64,
    duplicates: AtomicU64,
    handed_back: AtomicU64,
    cancelled: AtomicU64,
}

impl Counters {
    pub(crate) fn summary(&self) -> WorkerSummary {
        WorkerSummary {
            succeeded: self.succeeded.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            dead_lettered: self.dead_lettered.load(Ordering::Relaxed),
            duplicates: self.duplicates.load(Ordering::Relaxed),
            handed_back: self.handed_back.load(Ordering::Relaxed),
            cancelled: self.cancelled.load(Ordering::Relaxed),
        }
    }
}

/// What every job's handling shares (one `Arc` per job, not one per field).
pub(crate) struct JobRunner {
    pub(crate) host: Arc<Host>,
    pub(crate) workflows: HashMap<String, LoadedWorkflow>,
    pub(crate) store: StateStore,
    pub(crate) config: WorkerConfig,
    pub(crate) jitter: Box<dyn JitterSource>,
    pub(crate) counters: Counters,
    /// Becomes true when the drain's grace period is over.
    pub(crate) hand_back: watch::Receiver<bool>,
    /// The cancel requests this worker knows of (one KV watch).
    pub(crate) cancels: Arc<CancelRequests>,
}

/// How a job's run ended (see [`JobRunner::execute`]).
enum RunEnd {
    /// It ran to its end (succeeded or failed).
    Finished(JobOutcome),
    /// It was stopped to be handed back at shutdown.
    HandBack,
    /// It was stopped because it was cancelled.
    Cancelled(Cancellation),
}

impl JobRunner {
    /// Handles one delivery, from its message to its settlement.
    pub(crate) async fn handle(self: Arc<Self>, message: jetstream::Message) {
        let workflow_name = message
            .subject
            .as_str()
            .strip_prefix(&format!("{}.", self.store.topology.config.jobs_subject_prefix))
            .unwrap_or_default()
            .to_string();
        let header_id = message.headers.as_ref().and_then(|h| h.get("Nats-Msg-Id")).map(|v| v.as_str().to_string());
        let sequence = message.info().map(|i| i.stream_sequence).unwrap_or_default();

        // An encrypted body is decrypted first; one encrypted with a key this
        // worker lacks is left to a worker that has it (see `missing_key`).
        let mut key_missing = None;
        let parsed =
            match at_rest::open(self.store.keys(), at_rest::JOB_MESSAGE, &message.payload, || "the job message".into())
            {
                Ok(body) => JobMessage::parse(&body),
                Err(error) if error.missing_key().is_some() => {
                    let reason = error.to_string();
                    key_missing = Some(error);
                    Err(reason)
                }
                Err(error) => Err(error.to_string()),
            };
        // The body's id and the header's must agree, or the server's dedupe
        // (by header) would not guard the id the job runs under (the body's).
        let parsed = parsed.and_then(|job| match (&job.job_id, &header_id) {
            (Some(body), Some(header)) if !same_job(body, header) => Err(format!(
                "the message's job_id `{}` differs from its Nats-Msg-Id header `{}`; publish a job with both \
                 equal (or only one of them)",
                crate::text::printable(body),
                crate::text::printable(header)
            )),
            _ => Ok(job),
        });
        let job_id = match &parsed {
            Ok(job) => job.job_id.clone().or(header_id),
            Err(_) => header_id,
        }
        .unwrap_or_else(|| format!("seq-{sequence}"));
        // The id is the publisher's until it is validated: printed escaped.
        let span = tracing::info_span!("job", job.id = %crate::text::printable(&job_id), workflow = %workflow_name);
        async move {
            if let Some(error) = key_missing {
                let outcome = self.missing_key(&message, &job_id, &workflow_name, &error, None).await;
                self.settle(&message, outcome).await;
                return;
            }
            match self.usable(parsed, &job_id, &workflow_name) {
                Ok((job, workflow)) => self.run(&message, job, &job_id, workflow).await,
                Err(reason) => {
                    let letter = letter_for(&message, &job_id, &workflow_name, reason, None, Vec::new());
                    self.settle(&message, Outcome::DeadLetter { letter, record: None }).await;
                }
            }
        }
        .instrument(span)
        .await;
    }

    /// The parsed job and its workflow, or why the message can never run.
    fn usable(
        &self,
        parsed: Result<JobMessage, String>,
        job_id: &str,
        workflow_name: &str,
    ) -> Result<(JobMessage, &LoadedWorkflow), String> {
        let job = parsed?;
        if !valid_job_id(job_id) {
            return Err(format!("job id `{job_id}` is invalid: use 1-128 letters, digits, `-` or `_`"));
        }
        job.check_object_reference(job_id)?;
        let Some(workflow) = self.workflows.get(workflow_name) else {
            let mut known: Vec<_> = self.workflows.keys().cloned().collect();
            known.sort();
            return Err(format!("unknown workflow `{workflow_name}`; this worker serves: {}", known.join(", ")));
        };
        Ok((job, workflow))
    }

    /// Claims, runs and records a usable job, then settles its message.
    async fn run(&self, message: &jetstream::Message, job: JobMessage, job_id: &str, workflow: &LoadedWorkflow) {
        let workflow_name = workflow.workflow().name.as_str();
        // A cancelled job never starts (an in-memory look-up: the worker
        // watches the requests).
        if let Some(request) = self.cancels.get(job_id) {
            // A redelivery may find checkpoints of an earlier run: they go
            // with the job.
            let redelivered = message.info().is_ok_and(|info| info.delivered > 1);
            if self.stop(message, job_id, workflow_name, request, None).await.is_some()
                && redelivered
                && let Err(error) = self.store.purge_checkpoints(job_id).await
            {
                tracing::warn!(%error, "cannot remove the cancelled job's checkpoints; the bucket's maximum age will");
            }
            return;
        }
        let first_delivery = message.info().is_ok_and(|info| info.delivered <= 1);
        let pure = workflow.workflow().steps.iter().all(|step| step.grants.is_empty());
        let mut claim = Claim::at_delivery(first_delivery, pure, self.config.checkpoint_delay);
        let submission = submission_fingerprint(workflow_name, &job);
        let claimant = Claimant { submission: &submission, revision: workflow.revision() };
        // A deferred claim loads the input first: an unusable one makes the
        // claim due (the dead letter needs the job's real record).
        let mut input = None;
        if claim == Claim::Deferred {
            let loaded = self.load_input(&job, workflow).await;
            if loaded.is_err() {
                claim = claim.input_unusable();
            }
            input = Some(loaded);
        }
        // The bucket revision this delivery last wrote the record at (none
        // while the claim is deferred).
        let (record, revision, redelivered) = if claim == Claim::Due {
            match self.claim_before_run(message, job_id, workflow_name, claimant).await {
                Ok(claimed) => {
                    claim = Claim::Held;
                    claimed
                }
                Err(outcome) => {
                    self.settle(message, outcome).await;
                    return;
                }
            }
        } else {
            (JobRecord::first_run(job_id, workflow_name, claimant), None, false)
        };
        let input = match input {
            Some(input) => input,
            None => self.load_input(&job, workflow).await,
        };
        let run = Run { started_at_ms: now_ms(), worker: &self.config.name };
        let input = match input {
            Ok(item) => item,
            Err(reason) => {
                let reason = format!("the job's input is unusable: {reason}");
                let letter = letter_for(message, job_id, workflow_name, reason, None, record.history.clone());
                // Deferred claims become due on an unusable input: held.
                let record = Some((record, revision.unwrap_or(0), None));
                self.settle(message, Outcome::DeadLetter { letter, record }).await;
                return;
            }
        };
        // The input object goes once the job has succeeded (a dead-lettered
        // job's stays: replaying it reads it).
        let input_object = match &job.input {
            JobInput::Object(name) => Some(name.clone()),
            _ => None,
        };
        // The message's parsed copy (a base64 input is a third larger than
        // the bytes) is not needed while the job runs.
        drop(job);

        let resumed = if redelivered {
            match checkpoints::load(&self.store, job_id, workflow).await {
                Ok(resumed) => resumed,
                Err(error) => {
                    let mut record = record;
                    record.hand_back(&run);
                    let record = Some((record, revision.unwrap_or(0)));
                    let outcome = self.missing_key(message, job_id, workflow_name, &error, record).await;
                    self.settle(message, outcome).await;
                    return;
                }
            }
        } else {
            Resumed::default()
        };
        let checkpoints = Arc::new(KvCheckpoints::new(
            self.store.clone(),
            job_id,
            claimant,
            workflow,
            self.config.checkpoint_delay,
            claim,
        ));
        if redelivered {
            checkpoints.resumed_from(resumed.objects);
        }
        let outcome = match self.execute(message, workflow, job_id, input, resumed.completed, &checkpoints).await {
            RunEnd::Finished(outcome) => Some(outcome),
            RunEnd::HandBack => None,
            RunEnd::Cancelled(request) => {
                tracing::info!(by = %request.by, "job cancelled while it ran; stopped it");
                if self.stop(message, job_id, workflow_name, request, Some(&run)).await.is_some() {
                    checkpoints.remove_all().await;
                }
                return;
            }
        };
        let ended = self.finish(message, workflow, job_id, record, revision, &run, outcome, &checkpoints).await;
        // Only after the job's outcome is durable and its message settled:
        // nothing of this is on the job's way to its ack.
        if let Some(ended) = ended {
            checkpoints.remove_all().await;
            if let (Ended::Succeeded, Some(name)) = (ended, input_object)
                && let Err(error) = self.store.delete_object(&name).await
            {
                tracing::warn!(%error, "cannot remove the succeeded job's input object; the store's maximum age will");
            }
        }
    }

    /// Records how the run ended, as the claim at its end allows (see
    /// [`Claim::at_end`]), then settles the message. `outcome` is `None`
    /// when the job was stopped to be handed back. `revision` is the
    /// bucket revision the claim wrote the record at (`None` while the
    /// claim was deferred): every write here is conditional on the last
    /// revision this delivery wrote. How the job ended for good, if it did.
    #[allow(clippy::too_many_arguments)]
    async fn finish(
        &self,
        message: &jetstream::Message,
        workflow: &LoadedWorkflow,
        job_id: &str,
        mut record: JobRecord,
        revision: Option<u64>,
        run: &Run<'_>,
        outcome: Option<JobOutcome>,
        checkpoints: &KvCheckpoints,
    ) -> Option<Ended> {
        let workflow_name = workflow.workflow().name.as_str();
        let succeeded = outcome.as_ref().is_some_and(|o| o.report.status == JobStatus::Succeeded);
        if !succeeded {
            // The job will run again (retry, hand-back, replay): make every
            // finished step durable first so that run resumes after it.
            // This writes a deferred claim first.
            checkpoints.write_all_and_wait().await;
        }
        // The outputs of a succeeded job, and whether they are too large for
        // the bucket; such outputs go to the object store under the job's
        // name, so a deferred claim is written before them and a duplicate
        // of a finished job never replaces that job's outputs.
        let sinks = outcome.as_ref().filter(|_| succeeded).map(|outcome| sink_outputs(workflow, outcome));
        let inline = sinks.as_ref().and_then(fits_inline);
        let large_outputs = inline == Some(false);
        let claim = if large_outputs { checkpoints.claim_now().await } else { checkpoints.claim().await };
        let recording = claim.at_end(succeeded, large_outputs);
        // The revision the record is written at: the claim's (this
        // delivery's own write, or a deferred claim's flush), 0 for a
        // deferred claim's create with the outcome, or the revision a
        // take-over read.
        let at = match recording {
            Recording::Put => revision.or_else(|| checkpoints.claimed_at()),
            Recording::CreateWithOutcome => Some(0),
            Recording::Unclaimed => None,
            Recording::TakeOver => match self.adopt(message, job_id, workflow_name, record.claimant()).await {
                Ok((earlier, read_at)) => {
                    record = earlier;
                    Some(read_at)
                }
                Err(outcome) => return self.settle(message, outcome).await,
            },
        };
        let Some(at) = at else {
            tracing::warn!("cannot claim the job's state; leaving the job for redelivery");
            return self.settle(message, Outcome::Unsettled).await;
        };
        let create = recording == Recording::CreateWithOutcome;

        let Some(outcome) = outcome.as_ref() else {
            tracing::warn!("handing the job back unfinished at shutdown");
            record.hand_back(run);
            return match self.store.update_record(&record.view(None, None), at).await {
                Ok(None) => self.settle(message, Outcome::Lost { job_id: job_id.to_string() }).await,
                written => {
                    if let Err(error) = written {
                        tracing::warn!(%error, "cannot write job state");
                    }
                    self.settle(message, Outcome::HandedBack).await
                }
            };
        };
        let report = &outcome.report;
        if report.status == JobStatus::Succeeded {
            let outputs = match (sinks, inline) {
                (Some(sinks), Some(inline)) => self.store_outputs(job_id, sinks, inline).await,
                _ => None,
            };
            return self
                .succeed(message, job_id, workflow_name, record, at, create, run, report, outputs, checkpoints)
                .await;
        }
        let retry = RetryRule {
            max_attempts: self.config.max_job_attempts,
            policy: &self.config.job_retry,
            jitter: self.jitter.as_ref(),
        };
        match record.fail(run, report.error.as_ref(), &retry) {
            Failure::Retry { delay } => {
                match self.store.update_record(&record.view(Some(report), None), at).await {
                    Ok(Some(_)) => {}
                    Ok(None) => return self.settle(message, Outcome::Lost { job_id: job_id.to_string() }).await,
                    Err(error) => tracing::warn!(%error, "cannot write job state"),
                }
                let attempt = record.attempts;
                tracing::warn!(attempt, retry_in = ?delay, "job failed retryably; handing it back with a delay");
                self.settle(message, Outcome::Retry { delay }).await
            }
            Failure::DeadLetter { reason, error } => {
                let letter = letter_for(message, job_id, workflow_name, reason, error, record.history.clone());
                self.settle(message, Outcome::DeadLetter { letter, record: Some((record, at, Some(report))) }).await
            }
        }
    }

    /// Running → succeeded: writes the record at `at` (the revision this
    /// delivery last wrote it at), then settles. `deferred` when the claim
    /// is still deferred: the record is then created with the outcome
    /// (`at` is 0), and a conflict there takes the earlier record over. A
    /// record that moved on past `at` means the job is another
    /// delivery's ([`Outcome::Lost`]).
    #[allow(clippy::too_many_arguments)]
    async fn succeed(
        &self,
        message: &jetstream::Message,
        job_id: &str,
        workflow_name: &str,
        mut record: JobRecord,
        at: u64,
        deferred: bool,
        run: &Run<'_>,
        report: &JobReport,
        outputs: Option<StoredOutputs<'_>>,
        checkpoints: &KvCheckpoints,
    ) -> Option<Ended> {
        record.succeed(run);
        let written = self.store.update_record(&record.view(Some(report), outputs.as_ref()), at).await;
        let written = match written {
            Ok(None) if deferred => {
                // A record existed: this was not the job's first delivery
                // after all (the server restarted, or the job id was
                // submitted again after the dedupe window).
                let read_at;
                (record, read_at) = match self.adopt(message, job_id, workflow_name, record.claimant()).await {
                    Ok(earlier) => earlier,
                    Err(outcome) => return self.settle(message, outcome).await,
                };
                record.succeed(run);
                self.store.update_record(&record.view(Some(report), outputs.as_ref()), read_at).await
            }
            other => other,
        };
        match written {
            Ok(Some(_)) => {}
            Ok(None) => return self.settle(message, Outcome::Lost { job_id: job_id.to_string() }).await,
            Err(error) => {
                // Not acked: a redelivery resumes from the checkpoints, so
                // the ones still held back are written now.
                tracing::error!(%error, "cannot record the job's success; leaving it for redelivery");
                checkpoints.write_all_and_wait().await;
                return self.settle(message, Outcome::Unsettled).await;
            }
        }
        let outputs = outputs.as_ref();
        self.settle(message, Outcome::Succeeded { workflow: workflow_name, record: &record, report, outputs }).await
    }

    /// Settles the message as `outcome` says: the only place a message is
    /// acked, nak'ed or dead-lettered. Acks are not confirmed: every ack of
    /// a job that ran comes after its terminal state is durably in the KV
    /// bucket, so a lost ack costs one redelivery that is dropped as a
    /// duplicate, never a second run, and waiting for the confirmation would
    /// only add a round trip per job (no CPU saving was measurable either
    /// way, bench/results/queue.md). The worker flushes the connection before
    /// it stops, so a drained worker's acks reach the server. Returns how
    /// the job ended for good, when it did (its leftovers may then go).
    async fn settle(&self, message: &jetstream::Message, outcome: Outcome<'_>) -> Option<Ended> {
        let counters = &self.counters;
        let (counter, kind, ended) = match outcome {
            Outcome::Succeeded { workflow, record, report, outputs } => {
                self.store.publish_result(workflow, record, Some(report), outputs).await;
                (Some(&counters.succeeded), AckKind::Ack, Some(Ended::Succeeded))
            }
            Outcome::Retry { delay } => (Some(&counters.retried), AckKind::Nak(Some(delay)), None),
            Outcome::HandedBack => (Some(&counters.handed_back), AckKind::Nak(None), None),
            Outcome::Elsewhere { delay } => (Some(&counters.handed_back), AckKind::Nak(Some(delay)), None),
            Outcome::Duplicate => (Some(&counters.duplicates), AckKind::Ack, None),
            Outcome::Cancelled { job_id } => {
                if self.cancels.get(&job_id).is_some()
                    && let Err(error) = self.store.topology.state.delete(cancel_key(&job_id)).await
                {
                    tracing::warn!(%error, "cannot remove the job's cancel request");
                }
                (Some(&counters.cancelled), AckKind::Ack, Some(Ended::Cancelled))
            }
            Outcome::StateUnreadable => (None, AckKind::Nak(Some(Duration::from_secs(1))), None),
            Outcome::Unsettled => return None,
            Outcome::Lost { job_id } => self.lost(&job_id).await?,
            Outcome::DeadLetter { letter, mut record } => 'dead: {
                // This delivery's hold on the record first (a conditional
                // write of the failure, still unfinished), so a delivery
                // that lost the job to another stores no second dead
                // letter; then the dead letter, then the state, then the
                // ack, so a crash in between repeats work but loses nothing.
                if let Some((held, at, report)) = &mut record {
                    match self.store.update_record(&held.view(*report, None), *at).await {
                        Ok(Some(written)) => *at = written,
                        Ok(None) => break 'dead self.lost(&held.job_id).await?,
                        Err(error) => {
                            tracing::error!(%error, "cannot hold the job's state to dead-letter it; leaving it for redelivery");
                            return None;
                        }
                    }
                }
                let msg_id = match &record {
                    Some((record, _, _)) => format!("dead-{}-{}-{}", record.job_id, record.replays, record.attempts),
                    None => {
                        tracing::warn!(reason = %letter.reason, "dead-lettering an unusable job message");
                        let sequence = message.info().map(|i| i.stream_sequence).unwrap_or_default();
                        // The id came from the message: only a valid one may
                        // go into a header (a CR or LF in a header panics).
                        if valid_job_id(&letter.job_id) {
                            format!("reject-{}-{sequence}", letter.job_id)
                        } else {
                            format!("reject-seq-{sequence}")
                        }
                    }
                };
                let reason = letter.reason.clone();
                if let Err(error) = self.store.dead_letter(letter, &message.payload, &msg_id).await {
                    match record {
                        // Not acked: the message is redelivered and rejected again later.
                        None => tracing::error!(%error, "cannot dead-letter; leaving the message for redelivery"),
                        Some(_) => tracing::error!(%error, "cannot dead-letter the job; leaving it for redelivery"),
                    }
                    return None;
                }
                // Only a job with its own record ended here: a message
                // refused before it had one (or whose id another
                // submission holds) leaves that id's state alone.
                let ended = record.is_some().then_some(Ended::DeadLettered);
                if let Some((mut record, at, report)) = record {
                    record.dead_lettered();
                    match self.record_dead_lettered(&record, at, report).await {
                        Ok(Some(_)) => {}
                        Ok(None) => {
                            // Taken over between the hold and now: its new
                            // delivery ends it (this letter stays, with
                            // this run's history).
                            tracing::warn!(%reason, "dead-lettered the job, but another delivery took it over meanwhile");
                            break 'dead self.lost(&record.job_id).await?;
                        }
                        // The letter is durable (the job's outcome), so the
                        // message is acked; the record says running until it
                        // expires, which `weft dlq list` contradicts.
                        Err(error) => tracing::error!(%error, "cannot record the dead-lettered state"),
                    }
                    self.store.publish_result(&record.workflow, &record, report, None).await;
                    tracing::warn!(%reason, "job dead-lettered");
                }
                (Some(&counters.dead_lettered), AckKind::Ack, ended)
            }
        };
        if let Some(counter) = counter {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        if let Err(error) = message.ack_with(kind).await {
            tracing::warn!(%error, "cannot acknowledge the job message; it may be redelivered");
        }
        ended
    }

    /// Writes a dead-lettered job's record at revision `at`, trying again
    /// while the bucket does not answer (a cluster node restarting: the
    /// dead letter is already stored, and a record left `running` would
    /// never end). A write whose answer was lost may have landed: a retry
    /// that then finds the revision moved on reads the record, and one that
    /// says dead-lettered is this write. `Ok(None)`: another delivery took
    /// the job over.
    async fn record_dead_lettered(
        &self,
        record: &JobRecord,
        at: u64,
        report: Option<&JobReport>,
    ) -> Result<Option<u64>, QueueError> {
        let mut tries = 0;
        loop {
            tries += 1;
            match self.store.update_record(&record.view(report, None), at).await {
                Ok(Some(revision)) => return Ok(Some(revision)),
                Ok(None) if tries > 1 => {
                    let (found, revision) = self.store.read_record_at(&record.job_id).await?;
                    let ours =
                        found.is_some_and(|f| f.state == JobState::DeadLettered && f.attempts == record.attempts);
                    return Ok(ours.then_some(revision));
                }
                Ok(None) => return Ok(None),
                Err(error) if tries >= DEAD_LETTERED_WRITE_TRIES => return Err(error),
                Err(error) => {
                    tracing::warn!(%error, tries, "cannot record the dead-lettered state yet; trying again");
                    tokio::time::sleep(DEAD_LETTERED_WRITE_PAUSE).await;
                }
            }
        }
    }

    /// How a delivery that lost its job ([`Outcome::Lost`]) is settled:
    /// read the record (one request, on this path only); acked as a
    /// duplicate when it is terminal, else `None`: left unsettled.
    async fn lost(&self, job_id: &str) -> Option<(Option<&AtomicU64>, AckKind, Option<Ended>)> {
        match self.store.read_record(job_id).await {
            Ok(Some(record)) if record.state.is_terminal() => {
                tracing::info!(state = ?record.state, "another delivery ended the job; acking this one as its duplicate");
                Some((Some(&self.counters.duplicates), AckKind::Ack, Some(Ended::ByAnother)))
            }
            Ok(_) => {
                tracing::info!("another delivery holds the job; leaving this one unsettled");
                None
            }
            Err(error) => {
                tracing::warn!(%error, "lost the job to another delivery and cannot read its state; leaving it unsettled");
                None
            }
        }
    }

    /// Claims the job before it runs: a conditional write records a first
    /// delivery as running; when a record exists, this is a redelivery and
    /// the record is taken over instead (a conditional update at the
    /// revision read). `Ok((record, revision written, redelivered))` to run
    /// the job; otherwise how to settle it (a duplicate of a finished job,
    /// or state that cannot be read now).
    async fn claim_before_run(
        &self,
        message: &jetstream::Message,
        job_id: &str,
        workflow: &str,
        claimant: Claimant<'_>,
    ) -> Result<(JobRecord, Option<u64>, bool), Outcome<'static>> {
        let first_run = JobRecord::first_run(job_id, workflow, claimant);
        let created = self.store.create_record(&first_run.view(None, None)).await;
        if let Err(error) = &created {
            tracing::warn!(%error, "cannot claim the job's state; reading it instead");
        }
        if let Ok(Some(revision)) = created {
            return Ok((first_run, Some(revision), false));
        }
        let (record, read_at) = self.adopt(message, job_id, workflow, claimant).await?;
        // The take-over, only over the record that was read: another
        // delivery taking it over at the same time wins or loses as a whole.
        match self.store.update_record(&record.view(None, None), read_at).await {
            Ok(Some(revision)) => Ok((record, Some(revision), true)),
            Ok(None) => Err(Outcome::Lost { job_id: job_id.to_string() }),
            Err(error) => {
                tracing::warn!(%error, "cannot write job state; will retry the job later");
                Err(Outcome::StateUnreadable)
            }
        }
    }

    /// The job's record when this delivery is not its first, taken over for
    /// this run (see [`JobRecord::take_over`]); otherwise how to settle the
    /// delivery: a duplicate when the job already finished, a rejection when
    /// another submission holds the id, a hand-back to other workers when
    /// the job started under another revision of its workflow, a later
    /// retry when its state cannot be read.
    async fn adopt(
        &self,
        message: &jetstream::Message,
        job_id: &str,
        workflow: &str,
        claimant: Claimant<'_>,
    ) -> Result<(JobRecord, u64), Outcome<'static>> {
        let (found, read_at) = match self.store.read_record_at(job_id).await {
            Ok(found) => found,
            Err(error) => {
                tracing::warn!(%error, "cannot read job state; will retry the job later");
                return Err(Outcome::StateUnreadable);
            }
        };
        match JobRecord::take_over(found, job_id, workflow, claimant) {
            Adoption::TakeOver(record) => Ok((record, read_at)),
            Adoption::Foreign => {
                // Dead-lettered like a message that is not a usable job:
                // the other submission's record is left as it is.
                let reason = format!(
                    "job id `{job_id}` is already taken by another submission (other input or workflow); this \
                     message was not run and that job was left as it is. Submit it under a new job id"
                );
                let letter = letter_for(message, job_id, workflow, reason, None, Vec::new());
                Err(Outcome::DeadLetter { letter, record: None })
            }
            Adoption::OtherRevision(record) => {
                let started_under = record.revision.as_deref().unwrap_or_default();
                let waited = message_age(message);
                let grace = self.config.revision_grace;
                if waited < grace {
                    tracing::info!(%started_under, mine = claimant.revision, "the job started under another revision of its workflow; leaving it to a worker with that revision");
                    return Err(Outcome::Elsewhere { delay: REVISION_RETRY.min(grace - waited) });
                }
                let reason = format!(
                    "job `{job_id}` started under revision {started_under} of workflow `{workflow}`, and no worker \
                     with that revision resumed it within {} (`--revision-grace`); this worker has revision {}. \
                     Replay it to run it from the start under the current revision",
                    crate::workflow::format_duration(grace),
                    claimant.revision
                );
                let letter = letter_for(message, job_id, workflow, reason, None, record.history.clone());
                Err(Outcome::DeadLetter { letter, record: Some((record, read_at, None)) })
            }
            Adoption::Duplicate(JobState::Cancelled) => {
                tracing::info!("job cancelled; dropping its delivery");
                Err(Outcome::Cancelled { job_id: job_id.to_string() })
            }
            Adoption::Duplicate(state) => {
                tracing::info!(?state, "job already finished; dropping the duplicate");
                Err(Outcome::Duplicate)
            }
        }
    }

    /// Records a cancelled job as cancelled and settles its message:
    /// `run` is `None` when it was stopped at delivery (it never started),
    /// else the run it was stopped in. Reads the record first (this path
    /// only), since a deferred claim has not written it and the client may
    /// have.
    async fn stop(
        &self,
        message: &jetstream::Message,
        job_id: &str,
        workflow: &str,
        request: Cancellation,
        run: Option<&Run<'_>>,
    ) -> Option<Ended> {
        // Two tries: a create that finds a record (the client's, or a
        // held-back claim's flush) reads it again.
        for _ in 0..2 {
            let (found, read_at) = match self.store.read_record_at(job_id).await {
                Ok(found) => found,
                Err(error) => {
                    tracing::warn!(%error, "cannot read the cancelled job's state; will retry the job later");
                    return self.settle(message, Outcome::StateUnreadable).await;
                }
            };
            let record = match JobRecord::stop_cancelled(found, job_id, workflow, request.clone(), run) {
                Cancelling::Write(record) => record,
                Cancelling::Finished(JobState::Cancelled) => {
                    return self.settle(message, Outcome::Cancelled { job_id: job_id.to_string() }).await;
                }
                Cancelling::Finished(_) | Cancelling::LeftToWorker => {
                    tracing::info!("job already finished; dropping the cancelled delivery as a duplicate");
                    return self.settle(message, Outcome::Duplicate).await;
                }
            };
            // Only over the record that was read: a delivery that finished
            // the job meanwhile keeps its end.
            match self.store.update_record(&record.view(None, None), read_at).await {
                Ok(Some(_)) => {
                    self.store.publish_result(workflow, &record, None, None).await;
                    return self.settle(message, Outcome::Cancelled { job_id: job_id.to_string() }).await;
                }
                Ok(None) => continue,
                Err(error) => {
                    tracing::error!(%error, "cannot record the job as cancelled; leaving it for redelivery");
                    return self.settle(message, Outcome::Unsettled).await;
                }
            }
        }
        self.settle(message, Outcome::Unsettled).await
    }

    /// How to settle a delivery whose message or checkpoints are encrypted
    /// with an at-rest key this worker lacks: left to workers that have it
    /// (nak'ed, offered again after [`KEY_RETRY`]) for
    /// [`WorkerConfig::missing_key_grace`] from its publication, so a
    /// rolling key rollout loses nothing and repeats no step; after that,
    /// dead-lettered with its body kept encrypted and a reason naming the
    /// key, so `weft dlq replay` with the key runs it. Never acked unseen.
    /// `record` is the job's record (handed back), when it has one.
    async fn missing_key(
        &self,
        message: &jetstream::Message,
        job_id: &str,
        workflow: &str,
        error: &AtRestError,
        record: Option<(JobRecord, u64)>,
    ) -> Outcome<'static> {
        let waited = message_age(message);
        let grace = self.config.missing_key_grace;
        if waited < grace {
            tracing::warn!(%error, "leaving the job to a worker with the at-rest key");
            if let Some((record, at)) = &record {
                match self.store.update_record(&record.view(None, None), *at).await {
                    Ok(Some(_)) => {}
                    Ok(None) => return Outcome::Lost { job_id: job_id.to_string() },
                    Err(error) => tracing::warn!(%error, "cannot write job state"),
                }
            }
            return Outcome::Elsewhere { delay: KEY_RETRY.min(grace - waited) };
        }
        let reason = format!(
            "{error}; no worker with that key took the job within {} (`--missing-key-grace`), so it was \
             dead-lettered with its body kept encrypted: configure the key and replay it (`weft dlq replay`)",
            crate::workflow::format_duration(grace)
        );
        let history = record.as_ref().map(|(r, _)| r.history.clone()).unwrap_or_default();
        let letter = letter_for(message, job_id, workflow, reason, None, history);
        Outcome::DeadLetter { letter, record: record.map(|(record, at)| (record, at, None)) }
    }

    /// Runs the job beside its companion until it finishes, is handed back
    /// at shutdown, or is cancelled (dropping the run stops its attempt).
    async fn execute(
        &self,
        message: &jetstream::Message,
        workflow: &LoadedWorkflow,
        job_id: &str,
        input: Item,
        completed: BTreeMap<String, Arc<Vec<Item>>>,
        checkpoints: &Arc<KvCheckpoints>,
    ) -> RunEnd {
        let mut hand_back = self.hand_back.clone();
        let sink: Arc<dyn CheckpointSink> = checkpoints.clone();
        // Boxed: the job's future is large, and this task's own future (and
        // the `select!` below) would otherwise copy all of it when moved.
        let run = Box::pin(self.host.run_job_with(
            workflow,
            job_id,
            vec![input],
            JobOptions { completed, checkpoints: Some(sink), deadline: Some(deadline(message, workflow)) },
        ));
        tokio::select! {
            biased;
            outcome = run => RunEnd::Finished(outcome),
            _ = hand_back.wait_for(|stop| *stop) => RunEnd::HandBack,
            request = self.cancels.requested(job_id) => RunEnd::Cancelled(request),
            never = companion(message, self.store.topology.config.ack_wait, checkpoints) => match never {},
        }
    }

    /// The job's input item: inline in the message, or read from the object store.
    async fn load_input(&self, job: &JobMessage, workflow: &LoadedWorkflow) -> Result<Item, String> {
        let item = match job.inline_item()? {
            Some(item) => item,
            None => match &job.input {
                JobInput::Object(name) => self
                    .store
                    .get_input_object(name, self.config.max_input_bytes)
                    .await
                    .map(|bytes| job.with_metadata(Item::bytes(bytes)))
                    .map_err(|e| e.to_string())?,
                _ => return Err("no input".to_string()),
            },
        };
        // A job published straight to NATS meets the workflow's input
        // contract here (in memory: no round trip); breaking it can never
        // succeed, so it is unusable input, dead-lettered at once.
        if let Some(contract) = &workflow.workflow().input {
            let bytes = match &item.payload {
                Payload::Text(text) => text.as_bytes(),
                Payload::Bytes(bytes) => bytes.as_slice(),
            };
            contract.check(bytes, None).map_err(|violation| violation.to_string())?;
        }
        Ok(item)
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
        // Only large ones (or encrypted ones) are serialised to bytes (the
        // record serialises inline ones itself).
        let keys = self.store.keys();
        if inline && keys.is_none() {
            return Some(StoredOutputs::Inline(sinks));
        }
        let bytes = serde_json::to_vec(&sinks).ok()?;
        if inline && let Some(keys) = keys {
            let sealed = keys.seal(&outputs_context(job_id), &bytes);
            return Some(StoredOutputs::Sealed { sealed: at_rest::to_text(&sealed) });
        }
        let name = format!("output.{job_id}");
        match self.store.put_object(&name, &bytes).await {
            Ok(()) => Some(StoredOutputs::Object { object: name }),
            Err(error) => {
                tracing::warn!(%error, "cannot store the job's outputs");
                None
            }
        }
    }
}

/// A dead letter for `message` (its body kept inline only when small).
fn letter_for(
    message: &jetstream::Message,
    job_id: &str,
    workflow: &str,
    reason: String,
    error: Option<serde_json::Value>,
    history: Vec<super::state::JobAttempt>,
) -> DeadLetter {
    DeadLetter::new(job_id, workflow, reason, error, history, &message.payload)
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

/// What runs beside a job, in the job's own task (no task of its own to
/// spawn and abort per job): it sends in-progress acks at a third of the ack
/// wait, so a long step is not redelivered to another worker, and writes the
/// held-back checkpoints once the job has run for their delay. It never
/// ends; the job drops it when it finishes. (An in-progress ack only
/// extends the ack wait; it settles nothing.)
async fn companion(
    message: &jetstream::Message,
    ack_wait: Duration,
    checkpoints: &Arc<KvCheckpoints>,
) -> std::convert::Infallible {
    let every = (ack_wait / 3).max(Duration::from_millis(100));
    let started = tokio::time::Instant::now();
    let mut next_progress = started + every;
    let delay = checkpoints.delay();
    let mut flush_at = (!delay.is_zero()).then(|| started + delay);
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
