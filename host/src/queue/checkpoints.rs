//! Step checkpoints of queued jobs: saved under `ckpt.<job>.<revision>.<step>`
//! in the job-state bucket (large ones in the object store), written behind,
//! read back when a redelivered job resumes, and removed once the job has
//! finished for good (they may hold unmasked text). The deferred claim is
//! held back with the checkpoints and written before the first of them (the
//! decision is [`Claim`]'s; this module only performs it at the right moment).
//! With at-rest keys, a checkpoint's value is encrypted (bound to its key)
//! and so is its object (by the store).

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use super::QueueError;
use super::at_rest::{self, AtRestError};
use super::record::{Claim, Claimant};
use super::state::{JobRecord, checkpoint_key};
use super::store::StateStore;
use crate::LoadedWorkflow;
use crate::item::Item;
use crate::scheduler::CheckpointSink;

/// Checkpoints (and job outputs) larger than this go to the object store,
/// not the KV bucket (NATS messages are capped at 1 MiB by default).
const INLINE_CHECKPOINT_LIMIT: usize = 512 * 1024;

/// Whether `value`'s JSON fits in the KV bucket (counted without keeping a
/// copy); `None` when it cannot be serialised.
pub(crate) fn fits_inline(value: &impl serde::Serialize) -> Option<bool> {
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

/// What a redelivered run found of its earlier runs' checkpoints.
#[derive(Default)]
pub(crate) struct Resumed {
    /// Outputs of the steps an earlier run finished, by step id.
    pub(crate) completed: BTreeMap<String, Arc<Vec<Item>>>,
    /// The objects holding the large ones among them.
    pub(crate) objects: Vec<String>,
}

/// Outputs of the steps a previous run of this job finished, read
/// concurrently (one KV read per step, all in flight at once). An
/// unreadable checkpoint is skipped (its step runs again), except one
/// encrypted with an at-rest key this worker lacks: that is the error, so
/// the job is left to a worker with the key rather than repeating steps.
pub(crate) async fn load(store: &StateStore, job_id: &str, workflow: &LoadedWorkflow) -> Result<Resumed, AtRestError> {
    let reads = workflow.workflow().steps.iter().map(|step| async move {
        let key = checkpoint_key(job_id, workflow.revision(), &step.id);
        let Ok(Some(bytes)) = store.get_state(key.clone()).await else {
            return Ok(None);
        };
        let opened =
            match at_rest::open(store.keys(), &at_rest::kv_context(&key), &bytes, || format!("checkpoint `{key}`")) {
                Ok(opened) => Some(opened),
                Err(error) if error.missing_key().is_some() => return Err(error),
                Err(error) => {
                    tracing::warn!(step = %step.id, %error, "unreadable checkpoint");
                    None
                }
            };
        let (items, object) = match opened.as_deref().map(serde_json::from_slice::<StoredCheckpoint>) {
            Some(Ok(StoredCheckpoint::Items(items))) => (Some(items), None),
            Some(Ok(StoredCheckpoint::Object(name))) => match store.get_object(&name).await {
                Ok(bytes) => (serde_json::from_slice(&bytes).ok(), Some(name)),
                Err(QueueError::AtRest(error)) if error.missing_key().is_some() => return Err(error),
                Err(_) => (None, Some(name)),
            },
            _ => (None, None),
        };
        if items.is_none() {
            tracing::warn!(step = %step.id, "unreadable checkpoint; the step will run again");
        }
        Ok(Some((items.map(|items| (step.id.clone(), Arc::new(items))), object)))
    });
    let mut resumed = Resumed::default();
    for read in futures::future::join_all(reads).await {
        if let Some((items, object)) = read? {
            resumed.completed.extend(items);
            resumed.objects.extend(object);
        }
    }
    Ok(resumed)
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
pub(crate) struct KvCheckpoints {
    store: StateStore,
    job_id: String,
    workflow: String,
    /// The submission's fingerprint and the workflow's revision, for the
    /// record a deferred claim writes (the revision also keys checkpoints).
    submission: String,
    revision: String,
    delay: Duration,
    /// Steps whose checkpoint is stored at once (those with grants).
    immediate: HashSet<String>,
    state: std::sync::Mutex<CheckpointState>,
    /// One flush at a time: the one at the end of the delay runs in a task
    /// of its own, and what follows the job waits for it.
    flushing: tokio::sync::Mutex<()>,
}

struct CheckpointState {
    /// Written as soon as they are saved (the delay has passed).
    eager: bool,
    /// Saved during the delay, not written yet.
    pending: Vec<(String, Arc<Vec<Item>>)>,
    /// Writes sent whose acks nobody has awaited yet.
    unacked: Vec<(String, async_nats::jetstream::context::PublishAckFuture)>,
    claim: Claim,
    /// The bucket revision of the record the deferred claim created, once
    /// it is [`Claim::Held`] (the run's later record writes are
    /// conditional on it).
    claimed_at: Option<u64>,
    /// The job may have checkpoints in the bucket: this run sent one, or
    /// it is a redelivery (an earlier run may have). Only then does
    /// [`KvCheckpoints::remove_all`] cost a request.
    maybe_stored: bool,
    /// Checkpoint objects this run wrote or read back.
    objects: Vec<String>,
    /// The job has finished for good: nothing more is written.
    finished: bool,
}

impl KvCheckpoints {
    /// Checkpoints of `job_id` (submitted as `submission`), whose claim is
    /// `claim` (held or deferred).
    pub(crate) fn new(
        store: StateStore,
        job_id: &str,
        claimant: Claimant<'_>,
        workflow: &LoadedWorkflow,
        delay: Duration,
        claim: Claim,
    ) -> Self {
        let state = CheckpointState {
            eager: delay.is_zero(),
            pending: Vec::new(),
            unacked: Vec::new(),
            claim,
            claimed_at: None,
            maybe_stored: false,
            objects: Vec::new(),
            finished: false,
        };
        let immediate =
            workflow.workflow().steps.iter().filter(|step| !step.grants.is_empty()).map(|s| s.id.clone()).collect();
        KvCheckpoints {
            store,
            job_id: job_id.to_string(),
            workflow: workflow.workflow().name.clone(),
            submission: claimant.submission.to_string(),
            revision: claimant.revision.to_string(),
            delay,
            immediate,
            state: std::sync::Mutex::new(state),
            flushing: tokio::sync::Mutex::new(()),
        }
    }

    /// Notes that this run is a redelivery that found `resumed`: the
    /// earlier runs' checkpoints are removed with this run's.
    pub(crate) fn resumed_from(&self, objects: Vec<String>) {
        let mut state = self.lock();
        state.maybe_stored = true;
        state.objects.extend(objects);
    }

    /// Removes the job's checkpoints (and their objects) once its outcome
    /// is durable and it will never run again (it succeeded, or it was
    /// dead-lettered: a replay starts over), since they may hold unmasked
    /// text. Costs nothing when the job never stored one, which is most
    /// short jobs (their checkpoints are held back, then dropped); else one
    /// purge request for every key of the job, under any revision, plus
    /// one deletion per checkpoint object. Nothing is written after it. A
    /// failure only leaves them to the bucket's maximum age.
    pub(crate) async fn remove_all(&self) {
        let (maybe_stored, objects) = {
            let mut state = self.lock();
            state.finished = true;
            state.pending.clear();
            (state.maybe_stored, std::mem::take(&mut state.objects))
        };
        let mut objects = objects;
        objects.sort_unstable();
        objects.dedup();
        if !maybe_stored {
            return;
        }
        // A flush under way finishes first, and every write sent is stored
        // before the purge, so none lands after it.
        let _no_flush = self.flushing.lock().await;
        self.wait_stored().await;
        if let Err(error) = self.store.purge_checkpoints(&self.job_id).await {
            tracing::warn!(%error, "cannot remove the job's checkpoints; the bucket's maximum age will");
        }
        for name in objects {
            if let Err(error) = self.store.delete_object(&name).await {
                tracing::warn!(%error, "cannot remove a checkpoint object; the store's maximum age will");
            }
        }
    }

    /// How long checkpoints are held back.
    pub(crate) fn delay(&self) -> Duration {
        self.delay
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CheckpointState> {
        // A panic while holding this lock cannot leave the lists inconsistent.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The claim, once any flush under way has finished.
    pub(crate) async fn claim(&self) -> Claim {
        let _flushed = self.flushing.lock().await;
        self.lock().claim
    }

    /// The bucket revision of the record a deferred claim created, if it
    /// did (read after [`KvCheckpoints::claim`] or
    /// [`KvCheckpoints::claim_now`]).
    pub(crate) fn claimed_at(&self) -> Option<u64> {
        self.lock().claimed_at
    }

    /// Writes a deferred claim now (once any flush under way has finished)
    /// and returns what it became.
    pub(crate) async fn claim_now(&self) -> Claim {
        let _one_at_a_time = self.flushing.lock().await;
        self.write_claim().await;
        self.lock().claim
    }

    /// Writes a deferred claim. After a conflict nothing more is written:
    /// the job's earlier run owns the checkpoints.
    async fn write_claim(&self) {
        let (claim, finished) = {
            let state = self.lock();
            (state.claim, state.finished)
        };
        if claim != Claim::Deferred || finished {
            return;
        }
        let first_run = JobRecord::first_run(
            &self.job_id,
            &self.workflow,
            Claimant { submission: &self.submission, revision: &self.revision },
        );
        let created = self.store.create_record(&first_run.view(None, None)).await;
        if let Err(error) = &created {
            tracing::warn!(%error, "cannot claim the job's state");
        }
        let created = created.ok();
        let claim = claim.created(created.map(|revision| revision.is_some()));
        let mut state = self.lock();
        state.claim = claim;
        state.claimed_at = created.flatten();
        if claim == Claim::Conflict {
            state.pending.clear();
        }
    }

    /// Sends every pending checkpoint and makes later saves write at once.
    pub(crate) async fn flush(&self) {
        let _one_at_a_time = self.flushing.lock().await;
        self.write_claim().await;
        let pending = {
            let mut state = self.lock();
            if state.claim == Claim::Conflict || state.finished {
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
    pub(crate) async fn write_all_and_wait(&self) {
        self.flush().await;
        self.wait_stored().await;
    }

    /// Waits until the server has stored every checkpoint sent.
    async fn wait_stored(&self) {
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
            if let Err(error) = self.store.put_object(&name, &bytes).await {
                tracing::warn!(step = step_id, %error, "cannot store a checkpoint");
                return;
            }
            let stored = serde_json::to_vec(&StoredCheckpointRef::Object(&name));
            self.lock().objects.push(name);
            stored
        };
        let Ok(stored) = stored else { return };
        let key = checkpoint_key(&self.job_id, &self.revision, step_id);
        let stored = match self.store.keys() {
            Some(keys) => keys.seal(&at_rest::kv_context(&key), &stored),
            None => stored,
        };
        match self.store.put_state_pipelined(&key, stored.into()).await {
            Ok(ack) => {
                let mut state = self.lock();
                state.maybe_stored = true;
                state.unacked.push((step_id.to_string(), ack));
            }
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
                self.wait_stored().await;
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
