//! The job-state store the worker writes through: job records in the KV
//! bucket (read, put, and the conditional create that claims a job), step
//! checkpoints sent without waiting, objects, dead letters and result
//! events. It only moves bytes; what to write and when is decided by
//! `record` (the state machine) and `job_run` (the order of effects). The
//! public [`super::QueueClient`] reads and writes records and objects
//! through this same type. Objects are encrypted and decrypted here (see
//! `at_rest`) when keys are configured, so every payload object is.

use std::sync::Arc;

use async_nats::HeaderMap;
use bytes::Bytes;
use tokio::io::AsyncReadExt as _;

use super::at_rest::{self, Keyring};
use super::dead_letter::{self, DeadLetter, DlqKey};
use super::state::{Borrowed, JobRecord, JobState, RecordView, StoredOutputs, checkpoint_prefix, job_key};
use super::topology::Topology;
use super::{QueueError, valid_workflow_name};
use crate::scheduler::{JobError, JobReport};

/// The KV bucket, object store and streams a worker (or client) stores job
/// state in. Cheap to clone: the topology is shared, not copied (its stream
/// handles carry their whole server-side info).
#[derive(Clone)]
pub(crate) struct StateStore {
    pub(crate) topology: Arc<Topology>,
    /// The dead-letter key, read (or created) on first use.
    dlq_key: Arc<tokio::sync::OnceCell<DlqKey>>,
}

impl StateStore {
    pub(crate) fn new(topology: Topology) -> Self {
        StateStore { topology: Arc::new(topology), dlq_key: Arc::default() }
    }

    /// The at-rest keys, when payloads are encrypted.
    pub(crate) fn keys(&self) -> Option<&Keyring> {
        self.topology.config.at_rest.as_ref()
    }

    /// The key dead letters are authenticated with: created once, at
    /// random, in the keys bucket, which no retention limit touches
    /// (whoever comes first, worker or client, creates it; the others read
    /// it).
    pub(crate) async fn dlq_key(&self) -> Result<DlqKey, QueueError> {
        let key = self
            .dlq_key
            .get_or_try_init(|| async {
                let state = &self.topology.keys;
                let bucket = &self.topology.config.keys_bucket;
                let read = || async {
                    state
                        .get(dead_letter::KEY_NAME)
                        .await
                        .map_err(|e| QueueError::js(format!("reading the dead-letter key from bucket `{bucket}`"), e))
                };
                let stored = match read().await? {
                    Some(stored) => stored,
                    None => {
                        let fresh = dead_letter::new_key();
                        match state.create(dead_letter::KEY_NAME, Bytes::copy_from_slice(&fresh)).await {
                            Ok(_) => return Ok(fresh),
                            Err(error)
                                if error.kind() == async_nats::jetstream::kv::CreateErrorKind::AlreadyExists =>
                            {
                                read().await?.unwrap_or_default()
                            }
                            Err(error) => {
                                return Err(QueueError::js(
                                    format!("creating the dead-letter key in bucket `{bucket}`"),
                                    error,
                                ));
                            }
                        }
                    }
                };
                DlqKey::try_from(stored.as_ref()).map_err(|_| {
                    QueueError::Invalid(format!(
                        "the dead-letter key `{}` in bucket `{bucket}` is not 32 bytes; delete it (`nats kv del {bucket} {}`) \
                         and a new one is made, which leaves existing dead letters unauthenticated",
                        dead_letter::KEY_NAME,
                        dead_letter::KEY_NAME
                    ))
                })
            })
            .await?;
        Ok(*key)
    }

    /// The job's record, if one was written.
    pub(crate) async fn read_record(&self, job_id: &str) -> Result<Option<JobRecord>, QueueError> {
        Ok(self.read_record_at(job_id).await?.0)
    }

    /// The job's record, if one was written, and the bucket revision it was
    /// read at: the revision to give [`StateStore::update_record`] so the
    /// write lands only over what was read (a deletion marker's revision
    /// with no record, 0 when the key was never written).
    pub(crate) async fn read_record_at(&self, job_id: &str) -> Result<(Option<JobRecord>, u64), QueueError> {
        let entry =
            self.topology.state.entry(job_key(job_id)).await.map_err(|e| QueueError::js("reading job state", e))?;
        let Some(entry) = entry else { return Ok((None, 0)) };
        if entry.operation != async_nats::jetstream::kv::Operation::Put {
            return Ok((None, entry.revision));
        }
        let record = serde_json::from_slice(&entry.value).map_err(|e| QueueError::js("decoding job state", e))?;
        Ok((Some(record), entry.revision))
    }

    /// Writes `record` only if the job has no record yet: one round trip that
    /// both claims a fresh job and tells a redelivery from a first delivery.
    /// `Ok(Some(revision))` when written, `Ok(None)` when a record exists
    /// (or existed) already.
    pub(crate) async fn create_record(&self, record: &RecordView<'_>) -> Result<Option<u64>, QueueError> {
        self.update_record(record, 0).await
    }

    /// Writes `record` only if the job's record is still at `revision` (0:
    /// it has none): the write of a delivery that claimed the job at
    /// `revision` (see ARCHITECTURE.md, "Job record state machine"), which
    /// must not replace what another delivery (or a cancellation) wrote
    /// since. One round trip, like an unconditional put. `Ok(Some(new
    /// revision))` when written; `Ok(None)` when the record moved on (this
    /// delivery lost the job).
    pub(crate) async fn update_record(
        &self,
        record: &RecordView<'_>,
        revision: u64,
    ) -> Result<Option<u64>, QueueError> {
        let bytes = serde_json::to_vec(record).map_err(|e| QueueError::js("encoding job state", e))?;
        let mut headers = HeaderMap::new();
        headers.insert(async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE, revision.to_string().as_str());
        let ack = self
            .topology
            .js
            .publish_with_headers(self.state_subject(&job_key(record.job_id)), headers, bytes.into())
            .await
            .map_err(|e| QueueError::js("writing job state", e))?
            .await;
        match ack {
            Ok(ack) => Ok(Some(ack.sequence)),
            Err(error) if error.kind() == async_nats::jetstream::context::PublishErrorKind::WrongLastSequence => {
                Ok(None)
            }
            Err(error) => Err(QueueError::js("writing job state", error)),
        }
    }

    /// Writes `record` whatever the bucket holds (the client's replay,
    /// which starts the job over; a worker's writes are conditional).
    pub(crate) async fn write_record(&self, record: &JobRecord) -> Result<(), QueueError> {
        let bytes =
            serde_json::to_vec(&record.view(None, None)).map_err(|e| QueueError::js("encoding job state", e))?;
        self.topology
            .state
            .put(job_key(&record.job_id), bytes.into())
            .await
            .map_err(|e| QueueError::js("writing job state", e))?;
        Ok(())
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

    /// Removes every checkpoint of `job_id`, under any revision of its
    /// workflow, in one request: a purge of the bucket's stream by subject,
    /// which leaves no delete marker behind (a KV delete or purge would
    /// leave one per key until the bucket's maximum age).
    pub(crate) async fn purge_checkpoints(&self, job_id: &str) -> Result<(), QueueError> {
        let state = &self.topology.state;
        state
            .stream
            .purge()
            .filter(format!("{}{}>", state.prefix, checkpoint_prefix(job_id)))
            .await
            .map_err(|e| QueueError::js("removing the job's checkpoints", e))?;
        Ok(())
    }

    /// Removes an object from the object store (a small marker saying it
    /// was deleted stays until the store's maximum age).
    pub(crate) async fn delete_object(&self, name: &str) -> Result<(), QueueError> {
        self.topology.objects.delete(name).await.map_err(|e| QueueError::js(format!("removing object `{name}`"), e))
    }

    /// A value in the job-state bucket (a checkpoint), if there is one.
    pub(crate) async fn get_state(&self, key: String) -> Result<Option<Bytes>, QueueError> {
        self.topology.state.get(key).await.map_err(|e| QueueError::js("reading state", e))
    }

    /// The subject a write of `key` goes to (what `kv::Store::put` uses).
    fn state_subject(&self, key: &str) -> String {
        let store = &self.topology.state;
        format!("{}{key}", store.put_prefix.as_ref().unwrap_or(&store.prefix))
    }

    /// Stores bytes in the object store, encrypted (bound to `name`) when
    /// at-rest keys are configured.
    pub(crate) async fn put_object(&self, name: &str, bytes: &[u8]) -> Result<(), QueueError> {
        let stored = at_rest::seal_if(self.keys(), &at_rest::object_context(name), bytes);
        self.put_object_raw(name, &stored).await
    }

    /// Stores bytes in the object store as they are.
    async fn put_object_raw(&self, name: &str, bytes: &[u8]) -> Result<(), QueueError> {
        let mut reader = bytes;
        self.topology
            .objects
            .put(name, &mut reader)
            .await
            .map_err(|e| QueueError::js(format!("storing object `{name}`"), e))?;
        Ok(())
    }

    /// Reads an object from the object store, decrypted when it was
    /// encrypted (plaintext written before encryption was on is read as it is).
    pub(crate) async fn get_object(&self, name: &str) -> Result<Vec<u8>, QueueError> {
        let bytes = self.get_object_raw(name).await?;
        self.open_object(name, bytes)
    }

    /// An object's bytes as stored.
    pub(crate) async fn get_object_raw(&self, name: &str) -> Result<Vec<u8>, QueueError> {
        let mut object =
            self.topology.objects.get(name).await.map_err(|e| QueueError::js(format!("reading object `{name}`"), e))?;
        let mut bytes = Vec::new();
        object.read_to_end(&mut bytes).await.map_err(|e| QueueError::js(format!("reading object `{name}`"), e))?;
        Ok(bytes)
    }

    /// Object `name`'s stored bytes, decrypted when encrypted.
    fn open_object(&self, name: &str, bytes: Vec<u8>) -> Result<Vec<u8>, QueueError> {
        if !at_rest::is_sealed(&bytes) {
            return Ok(bytes);
        }
        let opened = at_rest::open(self.keys(), &at_rest::object_context(name), &bytes, || format!("object `{name}`"))?;
        Ok(opened.into_owned())
    }

    /// Reads a job's input object, refusing one larger than `cap` bytes
    /// before reading it (its stored size) and while reading it (the bytes
    /// that arrive), so a publisher cannot make the worker hold more.
    pub(crate) async fn get_input_object(&self, name: &str, cap: u64) -> Result<Vec<u8>, QueueError> {
        let reading = || format!("reading the input object `{name}`");
        let too_large = |size: u64| {
            QueueError::Invalid(format!(
                "the input object `{name}` is {} ({size} bytes), above this worker's limit of {} ({cap} bytes); \
                 raise it with `weft serve --max-input-bytes` or send a smaller input",
                crate::workflow::human_size(size),
                crate::workflow::human_size(cap)
            ))
        };
        let object = self.topology.objects.get(name).await.map_err(|e| QueueError::js(reading(), e))?;
        let size = object.info.size as u64;
        if size > cap {
            return Err(too_large(size));
        }
        let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        let read = object.take(cap + 1).read_to_end(&mut bytes).await.map_err(|e| QueueError::js(reading(), e))?;
        if read as u64 > cap {
            return Err(too_large(read as u64));
        }
        self.open_object(name, bytes)
    }

    /// Publishes a dead letter for a message with body `payload` and waits
    /// for the stream's ack. A body the letter does not hold inline is first
    /// stored as object `dead-letter.<msg_id>`; when even that fails, the
    /// letter keeps only its start, size and hash, so the letter can always
    /// be published. The letter is signed with the dead-letter key. With
    /// at-rest keys (or a body already encrypted), the body is kept only
    /// encrypted, as a job message a replay can publish again.
    pub(crate) async fn dead_letter(
        &self,
        mut letter: DeadLetter,
        payload: &[u8],
        msg_id: &str,
    ) -> Result<(), QueueError> {
        let key = self.dlq_key().await?;
        let payload = match self.keys() {
            Some(keys) if !at_rest::is_sealed(payload) => {
                std::borrow::Cow::Owned(keys.seal(at_rest::JOB_MESSAGE, payload))
            }
            _ => std::borrow::Cow::Borrowed(payload),
        };
        if let Some(key_id) = at_rest::sealed_key_id(&payload) {
            letter.keep_encrypted(key_id, &payload);
        }
        if let Some(body) = letter.body.as_mut() {
            let name = format!("dead-letter.{msg_id}");
            match self.put_object_raw(&name, &payload).await {
                Ok(()) => body.object = Some(name),
                Err(error) => tracing::warn!(%error, "cannot store the dead letter's body; keeping its size and hash"),
            }
        }
        let subject_token = if valid_workflow_name(&letter.workflow) { letter.workflow.as_str() } else { "_invalid" };
        let body = serde_json::to_vec(&letter).map_err(|e| QueueError::js("encoding the dead letter", e))?;
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", msg_id);
        headers.insert(dead_letter::MAC_HEADER, dead_letter::mac_hex(&key, &body).as_str());
        self.topology
            .js
            .publish_with_headers(self.topology.dlq_subject(subject_token), headers, body.into())
            .await
            .map_err(|e| QueueError::js("publishing the dead letter", e))?
            .await
            .map_err(|e| QueueError::js("waiting for the dead-letter stream's ack", e))?;
        Ok(())
    }

    /// Publishes the job's result event on `workflow`'s results subject (a
    /// core publish, not confirmed): its `outputs` and `error` are those of
    /// this run when given, else those its record already held.
    pub(crate) async fn publish_result(
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
        let subject = self.topology.result_subject(workflow);
        let payload = serde_json::to_vec(&event).unwrap_or_default();
        if let Err(error) = self.topology.client.publish(subject, payload.into()).await {
            tracing::warn!(%error, "cannot publish the job's result event");
        }
    }
}
