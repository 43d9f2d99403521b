//! The client side (`weft submit`, `status`, `cancel`, `dlq`): submit jobs,
//! read their state, wait for results, cancel jobs, list, show and
//! replay dead letters, and read the workflow registry.
//! It reads and writes job state through the worker's [`StateStore`], so
//! the storage code exists once.

use std::time::Duration;

use super::at_rest;
use super::cancel::{MAX_CANCEL_REASON_BYTES, MAX_CANCELLED_BY_BYTES};
use super::dead_letter::{self, DeadLetterEntry, DeadLetterError, DeadLetterProblem};
use super::message::{JobInput, JobMessage};
use super::record::Cancelling;
use super::state::{Cancellation, JobRecord, JobState, cancel_key, job_key, now_ms, outputs_context};
use super::store::StateStore;
use super::topology::Topology;
use super::{QueueError, valid_job_id, valid_workflow_name};
use crate::new_job_id;
use async_nats::HeaderMap;
use bytes::Bytes;
use futures::StreamExt as _;

/// Inputs up to this size that are UTF-8 travel inline in the job message;
/// larger or binary ones go through the object store.
pub const INLINE_INPUT_LIMIT: usize = 256 * 1024;

/// How often [`QueueClient::wait`] reads the job's record even when its
/// watch reports nothing.
const WAIT_REREAD: std::time::Duration = std::time::Duration::from_secs(1);

/// A connection to the queue for clients: submit jobs, read their state,
/// manage dead letters.
#[derive(Clone)]
pub struct QueueClient {
    pub(super) store: StateStore,
}

/// What `submit` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmitOutcome {
    /// The job's id.
    pub job_id: String,
    /// The server dropped the message as a duplicate of an earlier submit.
    pub duplicate: bool,
    /// The input went through the object store.
    pub via_object_store: bool,
}

/// What [`QueueClient::cancel`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum CancelOutcome {
    /// No worker held the job (queued, or waiting to be retried): its
    /// record now says cancelled, and it never runs (again).
    Cancelled(Box<JobRecord>),
    /// A worker is running the job: the request is stored, and the worker
    /// stops the running attempt at once and records the job cancelled
    /// ([`QueueClient::wait`] sees it). A job that finishes first keeps its
    /// outcome.
    Requested,
}

/// Why [`QueueClient::cancel`] did not cancel a job.
#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    /// Neither a record nor a queued message has this job id.
    #[error(
        "no job `{job_id}` is known: it has no record and is not among the {searched} messages waiting in the job \
         stream; check the id"
    )]
    Unknown {
        /// The id asked for.
        job_id: String,
        /// How many of the job stream's newest messages were searched
        /// (at most [`MAX_CANCEL_SEARCH`]).
        searched: u64,
    },
    /// The job had already finished; nothing was changed.
    #[error("job `{job_id}` already finished: it is {}{}", state.name(), by.as_ref().map(|by| format!(" (by {by})")).unwrap_or_default())]
    Finished {
        /// The id asked for.
        job_id: String,
        /// How it finished.
        state: JobState,
        /// Who cancelled it, when it was cancelled.
        by: Option<String>,
    },
    /// The request itself is unusable (a bad job id, a reason too long).
    #[error("{0}")]
    Invalid(String),
    /// The queue could not be read or written.
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// How many of the job stream's newest messages [`QueueClient::cancel`]
/// searches for a job that has no record yet (one read each: the job
/// stream cannot be searched by id), so a large backlog cannot make a
/// cancel take unbounded time.
pub const MAX_CANCEL_SEARCH: u64 = 100_000;

/// Reads of the job stream in flight at once while [`QueueClient::cancel`]
/// searches it: one read at a time would wait a round trip per message.
const SEARCH_READS_IN_FLIGHT: usize = 32;

/// How often a cancel is tried again when a worker wrote the job's record
/// between its read and its conditional write.
const CANCEL_TRIES: usize = 5;

impl QueueClient {
    pub(crate) fn new(topology: Topology) -> Self {
        QueueClient { store: StateStore::new(topology) }
    }

    pub(super) fn topology(&self) -> &Topology {
        &self.store.topology
    }

    /// The topology settings in use.
    pub fn config(&self) -> &super::QueueConfig {
        &self.topology().config
    }

    /// The underlying NATS client (to subscribe to results, say).
    pub fn nats(&self) -> &async_nats::Client {
        &self.topology().client
    }

    /// The registry's record of workflow `name` (its revision, input
    /// contract and step graph), if a worker serving it has started; one
    /// bucket read. Check an input with [`super::WorkflowInfo::check_input`]
    /// before [`QueueClient::submit`].
    ///
    /// # Errors
    ///
    /// [`QueueError::JetStream`] when the registry cannot be read.
    pub async fn workflow(&self, name: &str) -> Result<Option<super::WorkflowInfo>, QueueError> {
        super::registry::read(self.topology(), name).await
    }

    /// Every workflow a worker has registered, sorted by name.
    ///
    /// # Errors
    ///
    /// [`QueueError::JetStream`] when the registry cannot be read.
    pub async fn workflows(&self) -> Result<Vec<super::WorkflowInfo>, QueueError> {
        super::registry::list(self.topology()).await
    }

    /// Submits a job: large or binary input goes to the object store first,
    /// then the job is published with its id as `Nats-Msg-Id`. With at-rest
    /// keys, the object and the message body are encrypted.
    ///
    /// # Errors
    ///
    /// [`QueueError::Invalid`] for a bad job id or workflow name;
    /// [`QueueError::JetStream`] when the publish is not acknowledged.
    pub async fn submit(
        &self,
        workflow: &str,
        input: Vec<u8>,
        job_id: Option<String>,
    ) -> Result<SubmitOutcome, QueueError> {
        if !valid_workflow_name(workflow) {
            return Err(QueueError::Invalid(format!(
                "`{workflow}` is not a valid workflow name (use letters, digits, `-` and `_`)"
            )));
        }
        let job_id = job_id.unwrap_or_else(new_job_id);
        if !valid_job_id(&job_id) {
            return Err(QueueError::Invalid(format!(
                "`{job_id}` is not a valid job id (1-128 of letters, digits, `-`, `_`)"
            )));
        }
        let text = std::str::from_utf8(&input)
            .ok()
            .filter(|_| input.len() <= INLINE_INPUT_LIMIT && !input.starts_with(b"%PDF"));
        let (job_input, via_object_store) = match text {
            Some(text) => (JobInput::Text(text.to_string()), false),
            None => {
                // A random suffix: the name is known only to this submission,
                // so nobody can publish a job reading it before this one does.
                let name = format!("input.{job_id}.{}", new_job_id().replace("job-", ""));
                self.store.put_object(&name, &input).await?;
                (JobInput::Object(name), true)
            }
        };
        let message = JobMessage { job_id: Some(job_id.clone()), input: job_input, metadata: Default::default() };
        let body = serde_json::to_vec(&message).map_err(|e| QueueError::js("encoding the job", e))?;
        // Encrypted whole: the stream holds the input (and its metadata)
        // only encrypted; the id travels in the header, the workflow in
        // the subject.
        let body = at_rest::seal_if(self.store.keys(), at_rest::JOB_MESSAGE, &body).into_owned();
        let duplicate = self.publish_job(workflow, &job_id, &job_id, body.into()).await?;
        Ok(SubmitOutcome { job_id, duplicate, via_object_store })
    }

    /// Publishes a raw job body with a `Nats-Msg-Id`; true when the server
    /// dropped it as a duplicate.
    pub(crate) async fn publish_job(
        &self,
        workflow: &str,
        job_id: &str,
        msg_id: &str,
        body: Bytes,
    ) -> Result<bool, QueueError> {
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", msg_id);
        let _ = job_id;
        let ack = self
            .topology()
            .js
            .publish_with_headers(self.topology().job_subject(workflow), headers, body)
            .await
            .map_err(|e| QueueError::js("publishing the job", e))?
            .await
            .map_err(|e| QueueError::js("waiting for the job stream's ack", e))?;
        Ok(ack.duplicate)
    }

    /// The job's record, if the host has seen it.
    ///
    /// # Errors
    ///
    /// [`QueueError::JetStream`] when the bucket cannot be read.
    pub async fn status(&self, job_id: &str) -> Result<Option<JobRecord>, QueueError> {
        if !valid_job_id(job_id) {
            return Err(QueueError::Invalid(format!("`{job_id}` is not a valid job id")));
        }
        self.store.read_record(job_id).await?.map(|record| self.open_record(record)).transpose()
    }

    /// `record` with its outputs decrypted when they were encrypted at rest.
    ///
    /// # Errors
    ///
    /// [`QueueError::AtRest`] naming the key when this client lacks it, or
    /// the outputs do not decrypt.
    pub fn open_record(&self, mut record: JobRecord) -> Result<JobRecord, QueueError> {
        let Some(sealed) = record.outputs.as_ref().and_then(|o| o.get("sealed")).and_then(|s| s.as_str()) else {
            return Ok(record);
        };
        let what = || format!("job `{}`'s stored output", record.job_id);
        let bytes = at_rest::from_text(sealed, what)?;
        let plain = at_rest::open(self.store.keys(), &outputs_context(&record.job_id), &bytes, what)?;
        let outputs = serde_json::from_slice(&plain).map_err(|e| QueueError::js("decoding the job's outputs", e))?;
        record.outputs = Some(outputs);
        Ok(record)
    }

    /// Waits until the job is finished (succeeded, dead-lettered or
    /// cancelled), at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`QueueError::JetStream`] on a timeout or when the bucket cannot be watched.
    pub async fn wait(&self, job_id: &str, timeout: Duration) -> Result<JobRecord, QueueError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut watch =
            self.topology().state.watch(job_key(job_id)).await.map_err(|e| QueueError::js("watching job state", e))?;
        loop {
            if let Some(record) = self.store.read_record(job_id).await?
                && record.state.is_terminal()
            {
                return self.open_record(record);
            }
            // The record is read again at least every second: in a cluster a
            // watch can miss an update (its server restarted, or a replica
            // served a read before it caught up), and a missed update must
            // not turn into a wait until the deadline.
            let next_read = (tokio::time::Instant::now() + WAIT_REREAD).min(deadline);
            match tokio::time::timeout_at(next_read, watch.next()).await {
                Err(_) if tokio::time::Instant::now() >= deadline => {
                    return Err(QueueError::js(
                        format!("waiting for job {job_id}"),
                        format!("not finished after {timeout:?}"),
                    ));
                }
                Err(_) | Ok(Some(_)) => {}
                Ok(None) => return Err(QueueError::js("watching job state", "the watch ended")),
            }
        }
    }

    /// Cancels a job, on behalf of `by` and for `reason`: a job no worker
    /// holds (queued, retrying) is recorded cancelled and never runs; a
    /// running one is stopped by its worker, which then records it
    /// cancelled. Either way the request is also stored as `cancel.<id>` in
    /// the state bucket, which every worker watches, so even a delivery
    /// that does not read the record first (a pure workflow's deferred
    /// claim) drops the job.
    ///
    /// # Errors
    ///
    /// [`CancelError::Finished`] when the job already finished (naming its
    /// state); [`CancelError::Unknown`] when the id is neither recorded nor
    /// queued; [`CancelError::Invalid`] for a bad id or an over-long `by`
    /// or `reason`; [`CancelError::Queue`] when the queue cannot be reached.
    pub async fn cancel(&self, job_id: &str, by: &str, reason: Option<&str>) -> Result<CancelOutcome, CancelError> {
        if !valid_job_id(job_id) {
            return Err(CancelError::Invalid(format!(
                "`{job_id}` is not a valid job id (1-128 of letters, digits, `-`, `_`)"
            )));
        }
        if by.is_empty() || by.len() > MAX_CANCELLED_BY_BYTES {
            return Err(CancelError::Invalid(format!(
                "who cancels must be named in 1-{MAX_CANCELLED_BY_BYTES} bytes (it is {})",
                by.len()
            )));
        }
        if let Some(reason) = reason.filter(|r| r.len() > MAX_CANCEL_REASON_BYTES) {
            return Err(CancelError::Invalid(format!(
                "the reason is {} bytes; at most {MAX_CANCEL_REASON_BYTES} are kept, so shorten it",
                reason.len()
            )));
        }
        let cancellation = Cancellation { by: by.to_string(), reason: reason.map(str::to_string), at_ms: now_ms() };
        let state = &self.topology().state;
        let mut requested = false;
        for _ in 0..CANCEL_TRIES {
            let entry = state.entry(job_key(job_id)).await.map_err(|e| QueueError::js("reading job state", e))?;
            let found = match entry.filter(|e| e.operation == async_nats::jetstream::kv::Operation::Put) {
                Some(entry) => Some((
                    serde_json::from_slice::<JobRecord>(&entry.value)
                        .map_err(|e| QueueError::js("decoding job state", e))?,
                    entry.revision,
                )),
                None => None,
            };
            // Who cancelled it already, if someone did (for the error).
            let earlier = found.as_ref().and_then(|(record, _)| record.cancellation.as_ref()).map(|c| c.by.clone());
            let (cancelling, revision) = match found {
                Some((record, revision)) => (record.cancel_request(cancellation.clone()), Some(revision)),
                None => match self.find_queued(job_id).await? {
                    Ok(workflow) => (
                        Cancelling::Write(JobRecord::cancelled_unclaimed(job_id, &workflow, cancellation.clone())),
                        None,
                    ),
                    Err(searched) => return Err(CancelError::Unknown { job_id: job_id.to_string(), searched }),
                },
            };
            if let Cancelling::Finished(finished) = cancelling {
                return Err(CancelError::Finished { job_id: job_id.to_string(), state: finished, by: earlier });
            }
            // The request first: a worker that delivers the job without
            // reading its record (or is running it) still sees it.
            if !requested {
                let request =
                    serde_json::to_vec(&cancellation).map_err(|e| QueueError::js("encoding the request", e))?;
                state
                    .put(cancel_key(job_id), request.into())
                    .await
                    .map_err(|e| QueueError::js("storing the cancel request", e))?;
                requested = true;
            }
            let record = match cancelling {
                Cancelling::Write(record) => record,
                _ => return Ok(CancelOutcome::Requested),
            };
            let bytes = serde_json::to_vec(&record).map_err(|e| QueueError::js("encoding job state", e))?;
            // Conditional: only over the record that was read (or none), so
            // a worker that claimed the job meanwhile is not overwritten.
            use async_nats::jetstream::kv::{CreateErrorKind, UpdateErrorKind};
            let written = match revision {
                Some(revision) => match state.update(job_key(job_id), bytes.into(), revision).await {
                    Ok(_) => true,
                    Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => false,
                    Err(e) => return Err(QueueError::js("writing job state", e).into()),
                },
                None => match state.create(job_key(job_id), bytes.into()).await {
                    Ok(_) => true,
                    Err(e) if e.kind() == CreateErrorKind::AlreadyExists => false,
                    Err(e) => return Err(QueueError::js("writing job state", e).into()),
                },
            };
            if written {
                self.store.publish_result(&record.workflow, &record, None, None).await;
                return Ok(CancelOutcome::Cancelled(Box::new(record)));
            }
        }
        Err(QueueError::js(
            format!("cancelling job {job_id}"),
            format!("its record kept changing ({CANCEL_TRIES} tries); run the command again"),
        )
        .into())
    }

    /// The workflow of a job that is in the job stream (its message not yet
    /// acked) among its newest [`MAX_CANCEL_SEARCH`] messages, matched by
    /// its `Nats-Msg-Id` or, without one, the job id in its body; else how
    /// many messages were searched.
    async fn find_queued(&self, job_id: &str) -> Result<Result<String, u64>, QueueError> {
        self.search_queued(job_id, MAX_CANCEL_SEARCH).await
    }

    /// The workflow of job `job_id` when its message waits in the job
    /// stream among the newest `max_search` messages (a job no worker has
    /// picked up yet has no record to read).
    ///
    /// # Errors
    ///
    /// [`QueueError::JetStream`] when the job stream cannot be read.
    pub async fn queued_workflow(&self, job_id: &str, max_search: u64) -> Result<Option<String>, QueueError> {
        Ok(self.search_queued(job_id, max_search).await?.ok())
    }

    async fn search_queued(&self, job_id: &str, max_search: u64) -> Result<Result<String, u64>, QueueError> {
        let mut jobs = self.topology().jobs.clone();
        let info = jobs.info().await.map_err(|e| QueueError::js("reading the job stream", e))?;
        let (first, last) = (info.state.first_sequence, info.state.last_sequence);
        if info.state.messages == 0 {
            return Ok(Err(0));
        }
        let prefix = format!("{}.", self.topology().config.jobs_subject_prefix);
        let oldest = first.max(last.saturating_sub(max_search.max(1) - 1));
        let mut searched = 0;
        let jobs = &jobs;
        let mut reads = futures::stream::iter((oldest..=last).rev())
            .map(|sequence| async move { jobs.get_raw_message(sequence).await })
            .buffered(SEARCH_READS_IN_FLIGHT);
        while let Some(read) = reads.next().await {
            // Acked (removed) messages leave gaps.
            let Ok(message) = read else { continue };
            searched += 1;
            let named = match message.headers.get("Nats-Msg-Id") {
                Some(id) => id.as_str() == job_id,
                None => JobMessage::parse(&message.payload).is_ok_and(|job| job.job_id.as_deref() == Some(job_id)),
            };
            if named && let Some(workflow) = message.subject.strip_prefix(&prefix) {
                return Ok(Ok(workflow.to_string()));
            }
        }
        Ok(Err(searched))
    }

    /// Every entry of the dead-letter stream, oldest first, each marked
    /// whether a worker wrote it (see [`DeadLetterEntry::authenticated`]).
    ///
    /// # Errors
    ///
    /// [`QueueError::JetStream`] when the stream or the dead-letter key
    /// cannot be read.
    pub async fn dead_letters(&self) -> Result<Vec<DeadLetterEntry>, QueueError> {
        let mut stream = self.topology().dlq.clone();
        let info = stream.info().await.map_err(|e| QueueError::js("reading the dead-letter stream", e))?;
        let (first, last) = (info.state.first_sequence, info.state.last_sequence);
        let mut entries = Vec::new();
        if info.state.messages == 0 {
            return Ok(entries);
        }
        let key = self.store.dlq_key().await?;
        for sequence in first..=last {
            let Ok(message) = stream.get_raw_message(sequence).await else { continue };
            let mac = message.headers.get(dead_letter::MAC_HEADER).map(|v| v.as_str());
            let authenticated = dead_letter::verify(&key, &message.payload, mac);
            match serde_json::from_slice(&message.payload) {
                Ok(letter) => entries.push(DeadLetterEntry { sequence, authenticated, letter }),
                Err(error) => tracing::warn!(sequence, %error, "unreadable dead letter"),
            }
        }
        Ok(entries)
    }

    /// The dead letter for a job id, or at a stream sequence.
    ///
    /// # Errors
    ///
    /// As [`QueueClient::dead_letters`].
    pub async fn find_dead_letter(&self, id: &str) -> Result<Option<DeadLetterEntry>, QueueError> {
        let by_sequence = id.parse::<u64>().ok();
        Ok(self
            .dead_letters()
            .await?
            .into_iter()
            .rev()
            .find(|e| e.letter.job_id == id || Some(e.sequence) == by_sequence))
    }

    /// The original bytes of a dead-lettered message: inline in the letter,
    /// or read back from the object store and checked against the size and
    /// SHA-256 the letter holds; decrypted when the letter keeps it
    /// encrypted.
    ///
    /// # Errors
    ///
    /// [`QueueError::DeadLetter`] when the body was not kept or the object
    /// no longer matches; [`QueueError::JetStream`] when it cannot be read.
    pub async fn dead_letter_body(&self, entry: &DeadLetterEntry) -> Result<Vec<u8>, QueueError> {
        let Some(body) = &entry.letter.body else { return Ok(entry.letter.message.clone().into_bytes()) };
        let Some(object) = &body.object else {
            let problem = DeadLetterProblem::BodyNotKept { size: body.size, sha256: body.sha256.clone() };
            return Err(DeadLetterError::new(entry, problem).into());
        };
        let bytes = self.store.get_object_raw(object).await?;
        if bytes.len() as u64 != body.size || dead_letter::sha256_hex(&bytes) != body.sha256 {
            return Err(DeadLetterError::new(entry, DeadLetterProblem::BodyChanged { object: object.clone() }).into());
        }
        let what = || format!("the body of dead letter {} (job `{}`)", entry.sequence, entry.letter.job_id);
        Ok(at_rest::open(self.store.keys(), at_rest::JOB_MESSAGE, &bytes, what)?.into_owned())
    }

    /// `entry` as `weft dlq show` prints it: a body kept encrypted is
    /// decrypted into its `message` (the whole text when it is short UTF-8,
    /// else its start).
    ///
    /// # Errors
    ///
    /// [`QueueError::AtRest`] naming the key when this client lacks it, and
    /// as [`QueueClient::dead_letter_body`].
    pub async fn open_dead_letter(&self, mut entry: DeadLetterEntry) -> Result<DeadLetterEntry, QueueError> {
        if entry.letter.encrypted_with.is_none() {
            return Ok(entry);
        }
        let body = self.dead_letter_body(&entry).await?;
        entry.letter.message = dead_letter::shown(&body);
        Ok(entry)
    }

    /// Runs a dead-lettered job again, unless [`QueueClient::replay_with`]
    /// refuses it without `force`.
    ///
    /// # Errors
    ///
    /// As [`QueueClient::replay_with`].
    pub async fn replay(&self, entry: &DeadLetterEntry) -> Result<String, QueueError> {
        self.replay_with(entry, false).await
    }

    /// Runs a dead-lettered job again: resets its record, republishes its
    /// original message and removes the dead letter (and its stored body).
    /// Only an entry a worker wrote is replayed, and only when its original
    /// message is a job the worker would accept (the same checks); a job
    /// that succeeded or is running again since it was dead-lettered is
    /// replayed only with `force`.
    ///
    /// # Errors
    ///
    /// [`QueueError::DeadLetter`] naming why the entry is not replayed;
    /// [`QueueError::JetStream`] when the queue cannot be reached.
    pub async fn replay_with(&self, entry: &DeadLetterEntry, force: bool) -> Result<String, QueueError> {
        let refuse = |problem| QueueError::from(DeadLetterError::new(entry, problem));
        let letter = &entry.letter;
        if !entry.authenticated {
            return Err(refuse(DeadLetterProblem::Unauthenticated));
        }
        if !valid_workflow_name(&letter.workflow) {
            return Err(refuse(DeadLetterProblem::NotAJob(format!(
                "`{}` is not a valid workflow name",
                letter.workflow
            ))));
        }
        if !valid_job_id(&letter.job_id) {
            return Err(refuse(DeadLetterProblem::NotAJob(format!("`{}` is not a valid job id", letter.job_id))));
        }
        let original = self.dead_letter_body(entry).await?;
        let mut job = JobMessage::parse(&original).map_err(|e| refuse(DeadLetterProblem::NotAJob(e)))?;
        let body = match &job.job_id {
            Some(id) if *id != letter.job_id => {
                return Err(refuse(DeadLetterProblem::NotAJob(format!(
                    "its job id `{}` is not the letter's",
                    crate::text::printable(id)
                ))));
            }
            Some(_) => original,
            // The id came from the message's header: the republished
            // message carries it in its body, since its header is the
            // replay's own.
            None => {
                job.job_id = Some(letter.job_id.clone());
                serde_json::to_vec(&job).map_err(|e| QueueError::js("encoding the job", e))?
            }
        };
        let record = self.store.read_record(&letter.job_id).await?;
        match record.as_ref().map(|r| r.state) {
            Some(JobState::Succeeded) if !force => return Err(refuse(DeadLetterProblem::Succeeded)),
            Some(state @ (JobState::Queued | JobState::Running | JobState::Retrying)) if !force => {
                return Err(refuse(DeadLetterProblem::InProgress(state)));
            }
            _ => {}
        }
        let mut record = record.unwrap_or_else(|| JobRecord::new(&letter.job_id, &letter.workflow));
        record.state = JobState::Queued;
        record.attempts = 0;
        // A replay starts over under whatever revision its worker has (the
        // old revision's checkpoints are keyed by it, so none is reused).
        record.revision = None;
        // The letter's own submission takes the id over: replays are
        // authenticated, and a finished job is replayed only with `--force`.
        record.submission = None;
        record.replays += 1;
        self.store.write_record(&record).await?;
        let msg_id = format!("{}-replay-{}", letter.job_id, record.replays);
        let body = at_rest::seal_if(self.store.keys(), at_rest::JOB_MESSAGE, &body).into_owned();
        self.publish_job(&letter.workflow, &letter.job_id, &msg_id, Bytes::from(body)).await?;
        self.topology()
            .dlq
            .delete_message(entry.sequence)
            .await
            .map_err(|e| QueueError::js("removing the replayed dead letter", e))?;
        if let Some(object) = letter.body.as_ref().and_then(|b| b.object.as_ref())
            && let Err(error) = self.topology().objects.delete(object).await
        {
            tracing::warn!(%error, object, "cannot remove the replayed dead letter's body");
        }
        Ok(letter.job_id.clone())
    }
}
