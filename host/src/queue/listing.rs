//! What the HTTP API reads of the job-state bucket beyond one record: jobs
//! listed in the order their records last changed (filtered, with a cursor),
//! a job's record followed as it changes, a finished job's outputs read back
//! whole, and the idempotency keys that make a retried submission return
//! the same job.
//!
//! Listing reads the bucket's stream with an ordered consumer from a stream
//! sequence (the cursor) or a time, so a page costs one consumer and the
//! records it scans, never a read of every key. The bucket keeps one
//! revision per key, so the stream holds each job's latest record only; a
//! job rewritten while a page is read is listed once, at its later place.

use std::time::Duration;

use async_nats::jetstream::consumer::{DeliverPolicy, pull::OrderedConfig};
use futures::{Stream, StreamExt as _};
use serde::Serialize;

use super::client::QueueClient;
use super::state::{JobRecord, JobState, job_key};
use super::{QueueError, valid_job_id};

/// The most records one listing request scans before it returns what it
/// found with a cursor to go on from: bounds the work (and the time) one
/// request may cost however selective its filters are.
pub const MAX_LIST_SCAN: usize = 5_000;

/// The most jobs one listing page returns.
pub const MAX_LIST_PAGE: usize = 500;

/// How long a listing waits for the next record of the bucket's stream
/// before it takes the page as complete.
const LIST_READ_WAIT: Duration = Duration::from_secs(5);

/// Which jobs to list, and from where.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    /// Only jobs of this workflow.
    pub workflow: Option<String>,
    /// Only jobs in this state.
    pub state: Option<JobState>,
    /// Only jobs whose record last changed at or after this time (ms since
    /// the Unix epoch).
    pub updated_since_ms: Option<u64>,
    /// Only jobs whose record last changed before this time.
    pub updated_before_ms: Option<u64>,
    /// Continue after this cursor (a previous page's `next_cursor`).
    pub cursor: Option<u64>,
    /// At most this many jobs ([`MAX_LIST_PAGE`] at most).
    pub limit: usize,
}

/// A job as a listing shows it: its record without report and outputs.
#[derive(Debug, Clone, Serialize)]
pub struct JobSummary {
    /// The job's id.
    pub job_id: String,
    /// Its workflow.
    pub workflow: String,
    /// Where it is.
    pub state: JobState,
    /// Runs so far.
    pub attempts: u32,
    /// When its record last changed (ms since the Unix epoch).
    pub updated_at_ms: u64,
    /// When its first run started, if one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at_ms: Option<u64>,
    /// Times it was replayed from the dead-letter stream.
    pub replays: u32,
}

/// One page of a listing.
#[derive(Debug, Clone, Serialize)]
pub struct JobPage {
    /// The jobs, oldest change first.
    pub jobs: Vec<JobSummary>,
    /// Where the next page starts, when the scan stopped before the end
    /// (the page is full, or [`MAX_LIST_SCAN`] records were read).
    pub next_cursor: Option<u64>,
}

/// What an idempotency key was first used for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IdempotentSubmission {
    /// The job the first submission created.
    pub job_id: String,
    /// The workflow it went to.
    pub workflow: String,
    /// SHA-256 (hex) of the first submission's input.
    pub input_sha256: String,
}

/// Whether an idempotency key was new.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyClaim {
    /// First use: submit the job.
    New,
    /// Used before, by this submission (same workflow and input).
    Repeat(IdempotentSubmission),
    /// Used before by another submission (another workflow or input).
    Conflict(IdempotentSubmission),
}

impl QueueClient {
    /// Lists jobs whose records match `filter`, in the order their records
    /// last changed, one page at a time.
    ///
    /// # Errors
    ///
    /// [`QueueError::JetStream`] when the bucket's stream cannot be read.
    pub async fn list_jobs(&self, filter: &JobFilter) -> Result<JobPage, QueueError> {
        let state = &self.topology().state;
        let deliver_policy = match (filter.cursor, filter.updated_since_ms) {
            (Some(cursor), _) => DeliverPolicy::ByStartSequence { start_sequence: cursor.saturating_add(1) },
            (None, Some(since)) => DeliverPolicy::ByStartTime { start_time: time_from_ms(since) },
            (None, None) => DeliverPolicy::All,
        };
        let limit = filter.limit.clamp(1, MAX_LIST_PAGE);
        let mut page = JobPage { jobs: Vec::new(), next_cursor: None };
        let stream_state = {
            let mut stream = state.stream.clone();
            stream.info().await.map_err(|e| QueueError::js("reading the job-state stream", e))?.state.clone()
        };
        // Nothing to read: answer now rather than wait for a message.
        if stream_state.messages == 0 || filter.cursor.is_some_and(|cursor| cursor >= stream_state.last_sequence) {
            return Ok(page);
        }
        let consumer = state
            .stream
            .create_consumer(OrderedConfig {
                filter_subject: format!("{}job.>", state.prefix),
                deliver_policy,
                ..Default::default()
            })
            .await
            .map_err(|e| QueueError::js("listing jobs", e))?;
        let mut messages = consumer.messages().await.map_err(|e| QueueError::js("listing jobs", e))?;
        let mut scanned = 0;
        loop {
            let message = match tokio::time::timeout(LIST_READ_WAIT, messages.next()).await {
                Err(_) | Ok(None) => break,
                Ok(Some(message)) => message.map_err(|e| QueueError::js("listing jobs", e))?,
            };
            let Ok(info) = message.info() else { break };
            let (sequence, pending) = (info.stream_sequence, info.pending);
            let updated_at_ms = u64::try_from(info.published.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
            scanned += 1;
            if filter.updated_before_ms.is_some_and(|before| updated_at_ms >= before) {
                break;
            }
            // The server's start time is a hint (it may start earlier); the
            // bound is checked here.
            let in_window = filter.updated_since_ms.is_none_or(|since| updated_at_ms >= since);
            let is_put = in_window
                && message
                    .headers
                    .as_ref()
                    .and_then(|h| h.get("KV-Operation"))
                    .is_none_or(|op| !matches!(op.as_str(), "DEL" | "PURGE"));
            if is_put
                && let Ok(record) = serde_json::from_slice::<JobRecord>(&message.payload)
                && filter.workflow.as_deref().is_none_or(|w| w == record.workflow)
                && filter.state.is_none_or(|s| s == record.state)
            {
                // A record rewritten while this page was read shows up again
                // further on: keep its latest state only.
                page.jobs.retain(|listed| listed.job_id != record.job_id);
                page.jobs.push(JobSummary {
                    started_at_ms: record.history.first().map(|a| a.started_at_ms),
                    job_id: record.job_id,
                    workflow: record.workflow,
                    state: record.state,
                    attempts: record.attempts,
                    updated_at_ms,
                    replays: record.replays,
                });
            }
            if pending == 0 {
                break;
            }
            if page.jobs.len() >= limit || scanned >= MAX_LIST_SCAN {
                page.next_cursor = Some(sequence);
                break;
            }
        }
        Ok(page)
    }

    /// The job's record each time it changes, from the current one on,
    /// ending after a finished one. The record is also read again every
    /// `reread` in case the watch misses a change (a cluster node
    /// restarted); a record is sent only when it differs from the last.
    ///
    /// # Errors
    ///
    /// [`QueueError::Invalid`] for a bad id; [`QueueError::JetStream`] when
    /// the bucket cannot be watched. Errors while following end the stream
    /// with that error.
    pub async fn follow(
        &self,
        job_id: &str,
        reread: Duration,
    ) -> Result<impl Stream<Item = Result<JobRecord, QueueError>> + Send + 'static, QueueError> {
        if !valid_job_id(job_id) {
            return Err(QueueError::Invalid(format!("`{job_id}` is not a valid job id")));
        }
        let watch =
            self.topology().state.watch(job_key(job_id)).await.map_err(|e| QueueError::js("watching job state", e))?;
        let client = self.clone();
        let job_id = job_id.to_string();
        struct Follow {
            client: QueueClient,
            job_id: String,
            watch: async_nats::jetstream::kv::Watch,
            last: Option<JobRecord>,
            done: bool,
            reread: Duration,
        }
        let start = Follow { client, job_id, watch, last: None, done: false, reread };
        Ok(futures::stream::unfold(start, |mut follow| async move {
            if follow.done {
                return None;
            }
            loop {
                // The first record is read at once; later ones on a change
                // the watch reports, or after `reread` without one.
                if follow.last.is_some()
                    && let Ok(None) = tokio::time::timeout(follow.reread, follow.watch.next()).await
                {
                    // The watch ended: read again at the pace of `reread` alone.
                    tokio::time::sleep(follow.reread).await;
                }
                let record = match follow.client.status(&follow.job_id).await {
                    Ok(Some(record)) => record,
                    Ok(None) if follow.last.is_none() => {
                        // Not seen by a worker yet: say so once, as queued.
                        let queued = JobRecord::new(&follow.job_id, "");
                        follow.last = Some(queued.clone());
                        return Some((Ok(queued), follow));
                    }
                    Ok(None) => continue,
                    Err(error) => {
                        follow.done = true;
                        return Some((Err(error), follow));
                    }
                };
                if follow.last.as_ref() == Some(&record) {
                    continue;
                }
                follow.done = record.state.is_terminal();
                follow.last = Some(record.clone());
                return Some((Ok(record), follow));
            }
        }))
    }

    /// A finished job's outputs as one JSON value (`{"<step>": [items]}`),
    /// read back from the object store when they were stored there.
    ///
    /// # Errors
    ///
    /// [`QueueError::JetStream`] when the object cannot be read;
    /// [`QueueError::AtRest`] when it cannot be decrypted.
    pub async fn outputs(&self, record: &JobRecord) -> Result<Option<serde_json::Value>, QueueError> {
        let Some(outputs) = &record.outputs else { return Ok(None) };
        let Some(object) = outputs.as_object().filter(|o| o.len() == 1).and_then(|o| o.get("object")) else {
            return Ok(Some(outputs.clone()));
        };
        let Some(name) = object.as_str() else { return Ok(Some(outputs.clone())) };
        let bytes = self.store.get_object(name).await?;
        let value = serde_json::from_slice(&bytes).map_err(|e| QueueError::js("decoding the job's outputs", e))?;
        Ok(Some(value))
    }

    /// Claims idempotency key `key` (already scoped to its caller) for a
    /// submission; the claim lives in the job-state bucket, so it is kept
    /// as long as job records are.
    ///
    /// # Errors
    ///
    /// [`QueueError::JetStream`] when the bucket cannot be written or read.
    pub async fn claim_idempotency_key(
        &self,
        key: &str,
        submission: &IdempotentSubmission,
    ) -> Result<IdempotencyClaim, QueueError> {
        let state = &self.topology().state;
        let name = format!("idem.{key}");
        let bytes = serde_json::to_vec(submission).map_err(|e| QueueError::js("encoding an idempotency key", e))?;
        match state.create(&name, bytes.into()).await {
            Ok(_) => return Ok(IdempotencyClaim::New),
            Err(error) if error.kind() == async_nats::jetstream::kv::CreateErrorKind::AlreadyExists => {}
            Err(error) => return Err(QueueError::js("storing an idempotency key", error)),
        }
        let stored = state.get(&name).await.map_err(|e| QueueError::js("reading an idempotency key", e))?;
        let first: IdempotentSubmission = stored
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or_else(|| QueueError::js("reading an idempotency key", "it vanished or is unreadable; retry"))?;
        if first.workflow == submission.workflow && first.input_sha256 == submission.input_sha256 {
            Ok(IdempotencyClaim::Repeat(first))
        } else {
            Ok(IdempotencyClaim::Conflict(first))
        }
    }
}

fn time_from_ms(ms: u64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}
