//! The client side: submit jobs, read their state, wait for results, and
//! list, show and replay dead letters. Shared storage helpers live here too.

use std::time::Duration;

use async_nats::HeaderMap;
use bytes::Bytes;
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt as _;

use super::message::{JobInput, JobMessage};
use super::state::{JobRecord, JobState, RecordView, job_key};
use super::topology::Topology;
use super::{QueueError, valid_job_id, valid_workflow_name};

/// Inputs up to this size that are UTF-8 travel inline in the job message;
/// larger or binary ones go through the object store.
pub const INLINE_INPUT_LIMIT: usize = 256 * 1024;

/// A connection to the queue for clients (and the worker's storage).
#[derive(Clone)]
pub struct QueueClient {
    /// Shared, not copied: the stream handles inside carry their whole
    /// server-side info, too heavy to clone for every job.
    pub(crate) topology: std::sync::Arc<Topology>,
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
    /// The topology settings in use.
    pub fn config(&self) -> &super::QueueConfig {
        &self.topology.config
    }

    /// The underlying NATS client (to subscribe to results, say).
    pub fn nats(&self) -> &async_nats::Client {
        &self.topology.client
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
                let name = format!("input.{job_id}");
                self.put_object(&name, &input).await?;
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
            .topology
            .js
            .publish_with_headers(self.topology.job_subject(workflow), headers, body)
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
        self.read_record(job_id).await
    }

    pub(crate) async fn read_record(&self, job_id: &str) -> Result<Option<JobRecord>, QueueError> {
        let value =
            self.topology.state.get(job_key(job_id)).await.map_err(|e| QueueError::js("reading job state", e))?;
        value
            .map(|bytes| serde_json::from_slice(&bytes).map_err(|e| QueueError::js("decoding job state", e)))
            .transpose()
    }

    /// Writes `record` only if the job has no record yet: one round trip that
    /// both claims a fresh job and tells a redelivery from a first delivery.
    /// `Ok(false)` when a record exists (or existed) already.
    pub(crate) async fn create_record(&self, record: &RecordView<'_>) -> Result<bool, QueueError> {
        let bytes = serde_json::to_vec(record).map_err(|e| QueueError::js("encoding job state", e))?;
        let mut headers = HeaderMap::new();
        headers.insert(async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE, "0");
        let ack = self
            .topology
            .js
            .publish_with_headers(self.state_subject(&job_key(record.job_id)), headers, bytes.into())
            .await
            .map_err(|e| QueueError::js("writing job state", e))?
            .await;
        match ack {
            Ok(_) => Ok(true),
            Err(error) if error.kind() == async_nats::jetstream::context::PublishErrorKind::WrongLastSequence => {
                Ok(false)
            }
            Err(error) => Err(QueueError::js("writing job state", error)),
        }
    }

    /// Sends a value to the job-state bucket without waiting for the
    /// server's ack; the caller awaits the returned future when it needs the
    /// write to be durable. Writes from one connection are stored in order.
    pub(crate) async fn put_state_pipelined(
        &self,
        key: &str,
        value: Bytes,
    ) -> Result<async_nats::jetstream::context::PublishAckFuture, QueueError> {
        self.topology.js.publish(self.state_subject(key), value).await.map_err(|e| QueueError::js("writing state", e))
    }

    /// The subject a write of `key` goes to (what `kv::Store::put` uses).
    fn state_subject(&self, key: &str) -> String {
        let store = &self.topology.state;
        format!("{}{key}", store.put_prefix.as_ref().unwrap_or(&store.prefix))
    }

    pub(crate) async fn write_record(&self, record: &JobRecord) -> Result<(), QueueError> {
        self.write_record_view(&record.view(None, None)).await
    }

    /// Writes a record given as a [`RecordView`] (report and outputs
    /// borrowed from the job's outcome, not copied into a `JobRecord`).
    pub(crate) async fn write_record_view(&self, record: &RecordView<'_>) -> Result<(), QueueError> {
        let bytes = serde_json::to_vec(record).map_err(|e| QueueError::js("encoding job state", e))?;
        self.topology
            .state
            .put(job_key(record.job_id), bytes.into())
            .await
            .map_err(|e| QueueError::js("writing job state", e))?;
        Ok(())
    }

    /// Waits until the job is finished (succeeded or dead-lettered), at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`QueueError::JetStream`] on a timeout or when the bucket cannot be watched.
    pub async fn wait(&self, job_id: &str, timeout: Duration) -> Result<JobRecord, QueueError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut watch =
            self.topology.state.watch(job_key(job_id)).await.map_err(|e| QueueError::js("watching job state", e))?;
        loop {
            if let Some(record) = self.read_record(job_id).await?
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

    /// Stores bytes in the object store.
    pub(crate) async fn put_object(&self, name: &str, bytes: &[u8]) -> Result<(), QueueError> {
        let mut reader = bytes;
        self.topology
            .objects
            .put(name, &mut reader)
            .await
            .map_err(|e| QueueError::js(format!("storing object `{name}`"), e))?;
        Ok(())
    }

    /// Reads an object from the object store.
    pub(crate) async fn get_object(&self, name: &str) -> Result<Vec<u8>, QueueError> {
        let mut object =
            self.topology.objects.get(name).await.map_err(|e| QueueError::js(format!("reading object `{name}`"), e))?;
        let mut bytes = Vec::new();
        object.read_to_end(&mut bytes).await.map_err(|e| QueueError::js(format!("reading object `{name}`"), e))?;
        Ok(bytes)
    }

    /// Publishes a dead letter and waits for the stream's ack.
    pub(crate) async fn dead_letter(&self, letter: &DeadLetter, msg_id: &str) -> Result<(), QueueError> {
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", msg_id);
        let subject_token = if valid_workflow_name(&letter.workflow) { letter.workflow.as_str() } else { "_invalid" };
        let body = serde_json::to_vec(letter).map_err(|e| QueueError::js("encoding the dead letter", e))?;
        self.topology
            .js
            .publish_with_headers(self.topology.dlq_subject(subject_token), headers, body.into())
            .await
            .map_err(|e| QueueError::js("publishing the dead letter", e))?
            .await
            .map_err(|e| QueueError::js("waiting for the dead-letter stream's ack", e))?;
        Ok(())
    }

    /// Every entry of the dead-letter stream, oldest first.
    ///
    /// # Errors
    ///
    /// [`QueueError::JetStream`] when the stream cannot be read.
    pub async fn dead_letters(&self) -> Result<Vec<DeadLetterEntry>, QueueError> {
        let mut stream = self.topology.dlq.clone();
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
        let mut record =
            self.read_record(&letter.job_id).await?.unwrap_or_else(|| JobRecord::new(&letter.job_id, &letter.workflow));
        record.state = JobState::Queued;
        record.attempts = 0;
        record.replays += 1;
        self.write_record(&record).await?;
        let msg_id = format!("{}-replay-{}", letter.job_id, record.replays);
        self.publish_job(&letter.workflow, &letter.job_id, &msg_id, Bytes::from(letter.message.clone().into_bytes()))
            .await?;
        self.topology
            .dlq
            .delete_message(entry.sequence)
            .await
            .map_err(|e| QueueError::js("removing the replayed dead letter", e))?;
        Ok(letter.job_id.clone())
    }
}

/// A fresh job id: time-ordered, unique enough for one deployment.
pub fn new_job_id() -> String {
    let millis = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    format!("job-{millis:x}-{:08x}", rand::random::<u32>())
}
