//! What the scheduler reports about a job: per-step status, every attempt
//! with its timing and error. Serialised as the job result JSON.

use std::time::Duration;

use serde::Serialize;

use super::StepFailure;
use weft_workflow::StepSpec;

/// How a job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Every step succeeded.
    Succeeded,
    /// A step failed for good.
    Failed,
}

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// The step produced its output.
    Succeeded,
    /// The step failed after its last allowed attempt, or fatally.
    Failed,
    /// The step was running when another step failed the job.
    Cancelled,
    /// The step never started because the job failed first.
    Skipped,
    /// The step finished in an earlier run of this job; its output was
    /// restored from a checkpoint instead of running it again.
    Resumed,
}

/// The step whose failure failed the job, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobError {
    /// The failing step's id.
    pub step: String,
    /// Its last failure.
    #[serde(flatten)]
    pub failure: StepFailure,
}

/// The record of one job.
#[derive(Debug, Clone, Serialize)]
pub struct JobReport {
    /// The job's id.
    pub job_id: String,
    /// The workflow's name.
    pub workflow: String,
    /// The workflow's version.
    pub workflow_version: String,
    /// How the job ended.
    pub status: JobStatus,
    /// Why it failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<JobError>,
    /// Wall-clock time of the whole job.
    #[serde(rename = "duration_ms", with = "millis")]
    pub duration: Duration,
    /// Every step, in workflow order.
    pub steps: Vec<StepReport>,
}

/// The record of one step of a job.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    /// The step's id.
    pub id: String,
    /// The plugin it ran.
    pub plugin: String,
    /// How it ended.
    pub status: StepStatus,
    /// Items it received.
    pub input_items: usize,
    /// Items it produced.
    pub output_items: usize,
    /// Wall-clock time from its first attempt to its end.
    #[serde(rename = "duration_ms", with = "millis")]
    pub duration: Duration,
    /// Every attempt, in the order they finished.
    pub attempts: Vec<AttemptRecord>,
    /// Its last failure, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<StepFailure>,
}

impl StepReport {
    pub(crate) fn not_run(step: &StepSpec, status: StepStatus) -> Self {
        StepReport {
            id: step.id.clone(),
            plugin: step.plugin.clone(),
            status,
            input_items: 0,
            output_items: 0,
            duration: Duration::ZERO,
            attempts: Vec::new(),
            error: None,
        }
    }
}

/// One attempt of a step (or of one item of a `map` step).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttemptRecord {
    /// 1 for the first attempt.
    pub attempt: u32,
    /// The input item's index for a `map` step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item_index: Option<u32>,
    /// When the attempt started, relative to the step's start.
    #[serde(rename = "started_at_ms", with = "millis")]
    pub started_at: Duration,
    /// How long it ran.
    #[serde(rename = "duration_ms", with = "millis")]
    pub duration: Duration,
    /// Items produced, when it succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_items: Option<usize>,
    /// Why it failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<StepFailure>,
    /// The delay before the next attempt, when one was scheduled.
    #[serde(rename = "retry_in_ms", skip_serializing_if = "Option::is_none", with = "opt_millis")]
    pub retry_in: Option<Duration>,
}

/// Durations as fractional milliseconds in JSON.
mod millis {
    use serde::Serializer;
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64((d.as_secs_f64() * 1_000_000.0).round() / 1000.0)
    }
}

pub(crate) mod opt_millis {
    use serde::Serializer;
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::millis::serialize(d, s),
            None => s.serialize_none(),
        }
    }
}
