//! The client side (`weft submit`, `status`, `dlq`): submit jobs, read
//! their state, wait for results, and list, show and replay dead letters.
//! It reads and writes job state through the worker's [`StateStore`], so
//! the storage code exists once.

use std::time::Duration;

use async_nats::HeaderMap;
use bytes::Bytes;
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};

use super::message::{JobInput, JobMessage};
use super::state::{JobRecord, JobState, job_key};
use super::store::StateStore;
use super::topology::Topology;
use super::{QueueError, valid_job_id, valid_workflow_name};
use crate::new_job_id;

/// Inputs up to this size that are UTF-8 travel inline in the job message;
/// larger or binary ones go through the object store.
pub const INLINE_INPUT_LIMIT: usize = 256 * 1024;

/// A connection to the queue for clients: submit jobs, read their state,
/// manage dead letters.
#[derive(Clone)]
pub struct QueueClient {
    store: StateStore,
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

/// What the dead-letter stream holds for a failed job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The job's id (or `unknown` for an unparseable message).
    pub job_id: String,
    /// Its workflow (from the subject).
    pub workflow: String,
    /// Why it was dead-lettered, in words.
    pub reason: String,
    /// The failing step, kind and message, when a step failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<serde_json::Value>,
    /// Every run of the job.
    #[serde(default)]
    pub history: Vec<super::state::JobAttempt>,
    /// The original message body, as text.
    pub message: String,
}

/// One entry of the dead-letter stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadLetterEntry {
    /// Its sequence in the dead-letter stream.
    pub sequence: u64,
    /// What it holds.
    #[serde(flatten)]
    pub letter: DeadLetter,
}

impl QueueClient {
    pub(crate) fn new(topology: Topology) -> Self {
        QueueClient { store: StateStore::new(topology) }
    }

    fn topology(&self) -> &Topology {
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

    /// Submits a job: large or binary input goes to the object store first,
    /// then the job is published with its id as `Nats-Msg-Id`.
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
        self.store.read_record(job_id).await
    }

    /// Waits until the job is finished (succeeded or dead-lettered), at most `timeout`.
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
                return Ok(record);
            }
            match tokio::time::timeout_at(deadline, watch.next()).await {
                Err(_) => {
                    return Err(QueueError::js(
                        format!("waiting for job {job_id}"),
                        format!("not finished after {timeout:?}"),
                    ));
                }
                Ok(None) => return Err(QueueError::js("watching job state", "the watch ended")),
                Ok(Some(_)) => {}
            }
        }
    }

    /// Every entry of the dead-letter stream, oldest first.
    ///
    /// # Errors
    ///
    /// [`QueueError::JetStream`] when the stream cannot be read.
    pub async fn dead_letters(&self) -> Result<Vec<DeadLetterEntry>, QueueError> {
        let mut stream = self.topology().dlq.clone();
        let info = stream.info().await.map_err(|e| QueueError::js("reading the dead-letter stream", e))?;
        let (first, last) = (info.state.first_sequence, info.state.last_sequence);
        let mut entries = Vec::new();
        if info.state.messages == 0 {
            return Ok(entries);
        }
        for sequence in first..=last {
            let Ok(message) = stream.get_raw_message(sequence).await else { continue };
            match serde_json::from_slice::<DeadLetter>(&message.payload) {
                Ok(letter) => entries.push(DeadLetterEntry { sequence, letter }),
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

    /// Runs a dead-lettered job again: resets its record, republishes its
    /// original message and removes the dead letter.
    ///
    /// # Errors
    ///
    /// [`QueueError::Invalid`] when the original message cannot be replayed.
    pub async fn replay(&self, entry: &DeadLetterEntry) -> Result<String, QueueError> {
        let letter = &entry.letter;
        if !valid_workflow_name(&letter.workflow) || !valid_job_id(&letter.job_id) {
            return Err(QueueError::Invalid(format!(
                "dead letter {} has no usable workflow or job id; it cannot be replayed",
                entry.sequence
            )));
        }
        let mut record = self
            .store
            .read_record(&letter.job_id)
            .await?
            .unwrap_or_else(|| JobRecord::new(&letter.job_id, &letter.workflow));
        record.state = JobState::Queued;
        record.attempts = 0;
        // A replay starts over under whatever revision its worker has (the
        // old revision's checkpoints are keyed by it, so none is reused).
        record.revision = None;
        record.replays += 1;
        self.store.write_record(&record).await?;
        let msg_id = format!("{}-replay-{}", letter.job_id, record.replays);
        self.publish_job(&letter.workflow, &letter.job_id, &msg_id, Bytes::from(letter.message.clone().into_bytes()))
            .await?;
        self.topology()
            .dlq
            .delete_message(entry.sequence)
            .await
            .map_err(|e| QueueError::js("removing the replayed dead letter", e))?;
        Ok(letter.job_id.clone())
    }
}
