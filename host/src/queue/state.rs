//! Job state and step checkpoints in the KV bucket, with large values in the
//! object store.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::message::JobMessage;
use crate::item::Item;
use crate::scheduler::JobReport;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Published, not yet picked up (or replayed from the dead-letter stream).
    Queued,
    /// A worker is running it.
    Running,
    /// Its last attempt failed retryably; it waits for redelivery.
    Retrying,
    /// Finished successfully.
    Succeeded,
    /// Failed for good and copied to the dead-letter stream.
    DeadLettered,
    /// Cancelled (`weft cancel`) before it finished: never started, or
    /// stopped by its worker; [`JobRecord::cancellation`] says by whom.
    Cancelled,
}

impl JobState {
    /// Whether the job is finished and must not run again.
    pub fn is_terminal(self) -> bool {
        matches!(self, JobState::Succeeded | JobState::DeadLettered | JobState::Cancelled)
    }

    /// The state's name as records and `weft status` show it.
    pub fn name(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Retrying => "retrying",
            JobState::Succeeded => "succeeded",
            JobState::DeadLettered => "dead_lettered",
            JobState::Cancelled => "cancelled",
        }
    }
}

/// Who cancelled a job, when and why: the cancel request as the client
/// wrote it (`cancel.<id>` in the state bucket), and what a cancelled
/// job's record keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cancellation {
    /// Who asked (`weft cancel --by`, by default `user@host`).
    pub by: String,
    /// Why, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When it was asked, in milliseconds since the Unix epoch.
    pub at_ms: u64,
}

/// One run of a job by a worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobAttempt {
    /// 1 for the first run.
    pub attempt: u32,
    /// Which worker ran it.
    pub worker: String,
    /// When the run started, in milliseconds since the Unix epoch.
    pub started_at_ms: u64,
    /// How it ended: `succeeded`, `failed`, `handed_back`, `cancelled`.
    pub outcome: String,
    /// The failing step and message, when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<serde_json::Value>,
    /// Delay before the next delivery, when one was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_in_ms: Option<u64>,
}

/// What the KV bucket holds for a job (`job.<id>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// The job's id.
    pub job_id: String,
    /// Its workflow.
    pub workflow: String,
    /// Where it is.
    pub state: JobState,
    /// Runs so far (the host's own counter; JetStream's resets on restart).
    pub attempts: u32,
    /// Every run.
    #[serde(default)]
    pub history: Vec<JobAttempt>,
    /// The last run's job report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<serde_json::Value>,
    /// Outputs of the final steps, when it succeeded (inline or an object reference).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<serde_json::Value>,
    /// Times it was replayed from the dead-letter stream.
    #[serde(default)]
    pub replays: u32,
    /// The fingerprint of the submission that claimed this id (see
    /// [`submission_fingerprint`]): only a delivery of that same
    /// submission may run the job again or count as its duplicate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submission: Option<String>,
    /// The revision of the workflow the job started under
    /// ([`crate::LoadedWorkflow::revision`]): only a worker with that
    /// revision resumes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// Who cancelled the job, when and why (a cancelled job only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancellation: Option<Cancellation>,
}

/// A submission's fingerprint: the SHA-256 of its workflow's name and of
/// the job's input and metadata (the job id aside), as [`JobMessage`]
/// serialises them, so a redelivery, a replay or a resubmission of the same
/// job matches however its JSON was laid out, and another publisher reusing
/// the job id with other input does not. (Which revision of the workflow
/// runs it is pinned separately: [`JobRecord::revision`].)
pub(crate) fn submission_fingerprint(workflow: &str, job: &JobMessage) -> String {
    use sha2::{Digest as _, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(workflow.as_bytes());
    hasher.update(b"\0");
    // Writing into a hasher cannot fail; the parts were parsed from JSON.
    let _ = serde_json::to_writer(&mut hasher, &(&job.input, &job.metadata));
    weft_core::hex(&hasher.finalize()[..16])
}

impl JobRecord {
    pub(crate) fn new(job_id: &str, workflow: &str) -> Self {
        JobRecord {
            job_id: job_id.to_string(),
            workflow: workflow.to_string(),
            state: JobState::Queued,
            attempts: 0,
            history: Vec::new(),
            report: None,
            outputs: None,
            replays: 0,
            submission: None,
            revision: None,
            cancellation: None,
        }
    }

    /// The record as the worker writes it: the last run's report and outputs
    /// borrowed from the job's outcome when given (else the record's own), the
    /// same JSON as this type's without building a `serde_json::Value` first.
    pub(crate) fn view<'a>(
        &'a self,
        report: Option<&'a JobReport>,
        outputs: Option<&'a StoredOutputs<'a>>,
    ) -> RecordView<'a> {
        RecordView {
            job_id: &self.job_id,
            workflow: &self.workflow,
            state: self.state,
            attempts: self.attempts,
            history: &self.history,
            report: report.map(Borrowed::New).or(self.report.as_ref().map(Borrowed::Kept)),
            outputs: outputs.map(Borrowed::New).or(self.outputs.as_ref().map(Borrowed::Kept)),
            replays: self.replays,
            submission: self.submission.as_deref(),
            revision: self.revision.as_deref(),
            cancellation: self.cancellation.as_ref(),
        }
    }
}

/// A [`JobRecord`] with its report and outputs borrowed; serialises to the
/// same JSON (field for field, in the same order).
#[derive(Serialize)]
pub(crate) struct RecordView<'a> {
    pub(crate) job_id: &'a str,
    workflow: &'a str,
    state: JobState,
    attempts: u32,
    history: &'a [JobAttempt],
    #[serde(skip_serializing_if = "Option::is_none")]
    report: Option<Borrowed<'a, JobReport>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    outputs: Option<Borrowed<'a, StoredOutputs<'a>>>,
    replays: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    submission: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    revision: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cancellation: Option<&'a Cancellation>,
}

/// A field of a [`RecordView`] or a result event: this run's value, or the
/// one the record already held (read back from the bucket as JSON).
#[derive(Serialize)]
#[serde(untagged)]
pub(crate) enum Borrowed<'a, T> {
    New(&'a T),
    Kept(&'a serde_json::Value),
}

/// A succeeded job's outputs as its record holds them: the final steps'
/// items by step id, or the name of the object they were stored in.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(crate) enum StoredOutputs<'a> {
    /// Inline: `{"<step>": [items]}`.
    Inline(BTreeMap<&'a str, &'a [Item]>),
    /// Too large for the bucket: `{"object": "<name>"}`.
    Object {
        /// The object store entry.
        object: String,
    },
    /// Encrypted at rest: `{"sealed": "<base64>"}`, the inline form's JSON
    /// encrypted (see [`outputs_context`]).
    Sealed {
        /// The encrypted JSON, base64.
        sealed: String,
    },
}

/// The context a job's inline outputs are encrypted under (bound to the job).
pub(crate) fn outputs_context(job_id: &str) -> Vec<u8> {
    [b"outputs:".as_slice(), job_id.as_bytes()].concat()
}

/// The KV key of a job's record.
pub(crate) fn job_key(job_id: &str) -> String {
    format!("job.{job_id}")
}

/// The KV key of a job's cancel request (see [`Cancellation`]).
pub(crate) fn cancel_key(job_id: &str) -> String {
    format!("{CANCEL_KEY_PREFIX}{job_id}")
}

/// What every cancel request's key starts with (workers watch `cancel.>`).
pub(crate) const CANCEL_KEY_PREFIX: &str = "cancel.";

/// The KV key of a step's checkpoint under a revision of its workflow: a
/// run under another revision (another graph) never reads it.
pub(crate) fn checkpoint_key(job_id: &str, revision: &str, step: &str) -> String {
    format!("ckpt.{job_id}.{revision}.{step}")
}

/// What every checkpoint key of a job starts with ([`checkpoint_key`]; job
/// ids hold no `.`, so no other job's keys do).
pub(crate) fn checkpoint_prefix(job_id: &str) -> String {
    format!("ckpt.{job_id}.")
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::scheduler::JobStatus;

    /// The worker writes records through [`RecordView`]; readers parse them
    /// as [`JobRecord`]: both must be the same JSON.
    #[test]
    fn a_record_view_is_the_same_json_as_the_record() {
        let report = JobReport {
            job_id: "j".into(),
            workflow: "w".into(),
            workflow_version: "1".into(),
            status: JobStatus::Succeeded,
            error: None,
            duration: std::time::Duration::from_micros(1500),
            steps: Vec::new(),
        };
        let items = vec![Item::text("out").with_metadata("k", "v")];
        let outputs = StoredOutputs::Inline(BTreeMap::from([("s", items.as_slice())]));
        let mut record = JobRecord { state: JobState::Succeeded, attempts: 2, ..JobRecord::new("j", "w") };
        record.history.push(JobAttempt {
            attempt: 2,
            worker: "w1".into(),
            started_at_ms: 7,
            outcome: "succeeded".into(),
            error: None,
            retry_in_ms: None,
        });
        let view: serde_json::Value =
            serde_json::from_slice(&serde_json::to_vec(&record.view(Some(&report), Some(&outputs))).unwrap()).unwrap();
        let full = JobRecord {
            report: Some(serde_json::to_value(&report).unwrap()),
            outputs: Some(serde_json::to_value(&outputs).unwrap()),
            ..record.clone()
        };
        assert_eq!(view, serde_json::to_value(&full).unwrap());
        assert_eq!(view["outputs"]["s"][0]["metadata"][0], serde_json::json!(["k", "v"]));

        // Without this run's report and outputs, the record's own are kept.
        let kept = serde_json::to_value(full.view(None, None)).unwrap();
        assert_eq!(kept, serde_json::to_value(&full).unwrap());
        let object = StoredOutputs::Object { object: "output.j".into() };
        assert_eq!(serde_json::to_value(&object).unwrap(), serde_json::json!({ "object": "output.j" }));
        // A record parses back from a view.
        let parsed: JobRecord = serde_json::from_value(view).unwrap();
        assert_eq!(parsed.attempts, 2);
        assert_eq!(parsed.report.unwrap()["duration_ms"], 1.5);

        // A cancelled record keeps who cancelled it, when and why.
        let cancelled = JobRecord {
            state: JobState::Cancelled,
            cancellation: Some(Cancellation { by: "ops@host".into(), reason: Some("wrong input".into()), at_ms: 9 }),
            ..JobRecord::new("j", "w")
        };
        let view = serde_json::to_value(cancelled.view(None, None)).unwrap();
        assert_eq!(view, serde_json::to_value(&cancelled).unwrap());
        assert_eq!(view["state"], "cancelled");
        assert_eq!(view["cancellation"]["by"], "ops@host");
        assert_eq!(serde_json::from_value::<JobRecord>(view).unwrap(), cancelled);
    }
}
