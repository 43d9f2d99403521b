//! The job record's state machine as one delivery of a job moves it: the
//! claim (is this delivery's hold on `job.<id>` written yet?) and the
//! record's own states (running, retrying, queued, succeeded,
//! dead-lettered, cancelled), with what a cancel request does to it on the
//! client's side and on the worker's. Every transition is one method here, and every method is
//! pure: it changes values in memory and says what comes next; `job_run`
//! performs the writes and settles the message. ARCHITECTURE.md ("Job record
//! state machine") has the table of transitions.

use std::time::Duration;

use super::state::{Cancellation, JobAttempt, JobRecord, JobState};
use crate::scheduler::{JitterSource, JobError, backoff_delay};
use crate::workflow::RetryPolicy;

/// Whether this delivery's claim on its job's record is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Claim {
    /// To be written before the job runs.
    Due,
    /// Not written yet. A first delivery of a pure workflow's job runs
    /// before it claims: a job that finishes within the checkpoint delay
    /// then creates its record once, with its outcome, instead of twice.
    /// (Running such a job twice has no effect outside, so a delivery that
    /// turns out not to be the first costs only its computation.)
    Deferred,
    /// Written: this delivery owns the record.
    Held,
    /// The record existed when the claim was written: this delivery is not
    /// the job's first (or the write failed before the run, and the record
    /// is read instead).
    Conflict,
}

impl Claim {
    /// The claim a delivery starts with: deferred for the first delivery of
    /// a job whose workflow is `pure` (no step has grants) while checkpoints
    /// are held back at all; due (written before the run) otherwise.
    pub(crate) fn at_delivery(first_delivery: bool, pure: bool, checkpoint_delay: Duration) -> Claim {
        if first_delivery && pure && !checkpoint_delay.is_zero() { Claim::Deferred } else { Claim::Due }
    }

    /// The job's input cannot be used: it is dead-lettered, which needs the
    /// job's real record, so a deferred claim becomes due.
    pub(crate) fn input_unusable(self) -> Claim {
        match self {
            Claim::Deferred => Claim::Due,
            other => other,
        }
    }

    /// The conditional create of a due or deferred claim answered:
    /// `Some(true)` created, `Some(false)` a record exists, `None` the write
    /// failed. A due claim that cannot be written reads the record instead
    /// (as for a conflict); a deferred one stays deferred (tried again
    /// later, or left for redelivery).
    pub(crate) fn created(self, created: Option<bool>) -> Claim {
        match (self, created) {
            (Claim::Due | Claim::Deferred, Some(true)) => Claim::Held,
            (Claim::Due | Claim::Deferred, Some(false)) | (Claim::Due, None) => Claim::Conflict,
            (other, _) => other,
        }
    }

    /// How the record of a job that ran is written, given the claim when it
    /// ended, whether it `succeeded`, and whether its outputs are too large
    /// for the bucket (the claim was then written before they were stored).
    pub(crate) fn at_end(self, succeeded: bool, large_outputs: bool) -> Recording {
        match self {
            Claim::Held => Recording::Put,
            Claim::Deferred if succeeded && !large_outputs => Recording::CreateWithOutcome,
            Claim::Deferred | Claim::Due => Recording::Unclaimed,
            Claim::Conflict => Recording::TakeOver,
        }
    }
}

/// How a run's final record is written (see [`Claim::at_end`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recording {
    /// Update the record this delivery holds, at the revision its claim
    /// wrote (a record that moved on means the job is another delivery's).
    Put,
    /// Create the record with the outcome, in the claim's conditional write.
    CreateWithOutcome,
    /// Read the earlier record and take it over ([`JobRecord::take_over`]) first.
    TakeOver,
    /// The claim could not be written: nothing is, the message is left for redelivery.
    Unclaimed,
}

/// What a delivery that found a record does with it.
#[derive(Debug, PartialEq)]
pub(crate) enum Adoption {
    /// The job already finished (in this state): the delivery is a duplicate.
    Duplicate(JobState),
    /// The job is unfinished: this delivery runs it as its next attempt.
    TakeOver(JobRecord),
    /// The record belongs to another submission (other input or workflow)
    /// under the same job id: this delivery must neither run it nor be
    /// dropped as its duplicate.
    Foreign,
    /// The job is unfinished but started under another revision of its
    /// workflow (the record's `revision`, returned as found): a worker with
    /// that revision must resume it.
    OtherRevision(JobRecord),
}

/// What a cancel request does to a job's record.
// Built and consumed at once, on the cancel path only: boxing the record
// would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, PartialEq)]
pub(crate) enum Cancelling {
    /// The record now says cancelled: write it (conditionally: only over
    /// the record that was read), and the job never runs again.
    Write(JobRecord),
    /// A worker is running the job: the request is left to it, and it
    /// stops the job and writes the record.
    LeftToWorker,
    /// The job had already finished, in this state: nothing changes.
    Finished(JobState),
}

/// What a delivery claims a job as: its submission's fingerprint and the
/// revision of the workflow this worker has.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Claimant<'a> {
    /// [`super::state::submission_fingerprint`] of the message.
    pub(crate) submission: &'a str,
    /// [`crate::LoadedWorkflow::revision`] of this worker's workflow.
    pub(crate) revision: &'a str,
}

/// How a failed run ends.
#[derive(Debug, PartialEq)]
pub(crate) enum Failure {
    /// Retryable with attempts left: redelivered after `delay`.
    Retry {
        /// The host's backoff.
        delay: Duration,
    },
    /// Out of attempts, or fatal: dead-lettered.
    DeadLetter {
        /// Why, in words.
        reason: String,
        /// The failing step and message, as the dead letter holds them.
        error: Option<serde_json::Value>,
    },
}

/// This delivery's run, as its record's history shows it.
pub(crate) struct Run<'a> {
    /// When it started, in milliseconds since the Unix epoch.
    pub(crate) started_at_ms: u64,
    /// The worker's name.
    pub(crate) worker: &'a str,
}

impl Run<'_> {
    fn attempt(
        &self,
        attempt: u32,
        outcome: &str,
        error: Option<serde_json::Value>,
        retry_in: Option<Duration>,
    ) -> JobAttempt {
        JobAttempt {
            attempt,
            started_at_ms: self.started_at_ms,
            worker: self.worker.to_string(),
            outcome: outcome.to_string(),
            error,
            retry_in_ms: retry_in.map(|delay| u64::try_from(delay.as_millis()).unwrap_or(u64::MAX)),
        }
    }
}

/// When a failed job runs again: the worker's retry settings.
pub(crate) struct RetryRule<'a> {
    /// Runs of one job before it is dead-lettered.
    pub(crate) max_attempts: u32,
    /// The backoff between runs.
    pub(crate) policy: &'a RetryPolicy,
    /// The backoff's jitter.
    pub(crate) jitter: &'a dyn JitterSource,
}

impl JobRecord {
    /// Absent → running, attempt 1: the record that claims a job for its
    /// first run (written before the run, or held back with a deferred claim).
    /// What this record claims its job as (empty where a record from before
    /// fingerprints and revisions has none).
    pub(crate) fn claimant(&self) -> Claimant<'_> {
        Claimant {
            submission: self.submission.as_deref().unwrap_or_default(),
            revision: self.revision.as_deref().unwrap_or_default(),
        }
    }

    pub(crate) fn first_run(job_id: &str, workflow: &str, claimant: Claimant<'_>) -> Self {
        JobRecord {
            state: JobState::Running,
            attempts: 1,
            submission: Some(claimant.submission.to_string()),
            revision: Some(claimant.revision.to_string()),
            ..JobRecord::new(job_id, workflow)
        }
    }

    /// A record exists (a redelivery, or a deferred claim's conflict):
    /// claimed by another submission → foreign; finished → duplicate;
    /// started under another revision of the workflow → other revision;
    /// otherwise → running, one more attempt. `found` is `None` when the
    /// record vanished between the write and the read: the job starts over
    /// as queued would. A record without a fingerprint or revision (written
    /// before they existed) takes this delivery's.
    pub(crate) fn take_over(
        found: Option<JobRecord>,
        job_id: &str,
        workflow: &str,
        claimant: Claimant<'_>,
    ) -> Adoption {
        let mut record = found.unwrap_or_else(|| JobRecord::new(job_id, workflow));
        if record.submission.as_deref().is_some_and(|claimed| claimed != claimant.submission)
            || record.workflow != workflow
        {
            return Adoption::Foreign;
        }
        if record.state.is_terminal() {
            return Adoption::Duplicate(record.state);
        }
        if record.revision.as_deref().is_some_and(|started_under| started_under != claimant.revision) {
            return Adoption::OtherRevision(record);
        }
        record.submission = Some(claimant.submission.to_string());
        record.revision = Some(claimant.revision.to_string());
        record.attempts += 1;
        record.state = JobState::Running;
        Adoption::TakeOver(record)
    }

    /// Running → succeeded.
    pub(crate) fn succeed(&mut self, run: &Run<'_>) {
        self.state = JobState::Succeeded;
        self.history.push(run.attempt(self.attempts, "succeeded", None, None));
    }

    /// Running → retrying (retryable, attempts left: the history holds the
    /// delay) or towards dead-lettered (fatal, or out of attempts: the
    /// history holds the failure; [`JobRecord::dead_lettered`] follows once
    /// the dead letter is stored).
    pub(crate) fn fail(&mut self, run: &Run<'_>, error: Option<&JobError>, retry: &RetryRule<'_>) -> Failure {
        let attempt = self.attempts;
        let error_json = error.and_then(|e| serde_json::to_value(e).ok());
        let retryable = error.is_some_and(|e| e.failure.kind.is_retryable());
        if retryable && attempt < retry.max_attempts {
            let retry_after = error.and_then(|e| e.failure.retry_after);
            let delay = backoff_delay(retry.policy, attempt, retry_after, retry.jitter);
            self.state = JobState::Retrying;
            self.history.push(run.attempt(attempt, "failed", error_json, Some(delay)));
            return Failure::Retry { delay };
        }
        self.history.push(run.attempt(attempt, "failed", error_json.clone(), None));
        let reason = match error {
            Some(e) if retryable => {
                format!("step `{}` still failing after {attempt} attempts: {}", e.step, e.failure.message)
            }
            Some(e) => format!("step `{}` failed fatally: {}", e.step, e.failure.message),
            None => "the job failed".to_string(),
        };
        Failure::DeadLetter { reason, error: error_json }
    }

    /// Running → queued, unfinished at shutdown: the run does not count as
    /// an attempt.
    pub(crate) fn hand_back(&mut self, run: &Run<'_>) {
        self.history.push(run.attempt(self.attempts, "handed_back", None, None));
        self.attempts = self.attempts.saturating_sub(1);
        self.state = JobState::Queued;
    }

    /// → dead-lettered, once the dead letter is stored.
    pub(crate) fn dead_lettered(&mut self) {
        self.state = JobState::DeadLettered;
    }

    /// Absent → cancelled (the client): the job is in the job stream but no
    /// worker has claimed it, so it is cancelled before it ever starts; the
    /// claim of its delivery then finds this record and drops the delivery.
    pub(crate) fn cancelled_unclaimed(job_id: &str, workflow: &str, cancellation: Cancellation) -> Self {
        JobRecord { state: JobState::Cancelled, cancellation: Some(cancellation), ..JobRecord::new(job_id, workflow) }
    }

    /// A cancel request meets the job's record (the client): queued or
    /// retrying (no worker holds the job) → cancelled; running → left to its
    /// worker, which stops it; finished → unchanged.
    pub(crate) fn cancel_request(mut self, cancellation: Cancellation) -> Cancelling {
        match self.state {
            JobState::Queued | JobState::Retrying => {
                self.state = JobState::Cancelled;
                self.cancellation = Some(cancellation);
                Cancelling::Write(self)
            }
            JobState::Running => Cancelling::LeftToWorker,
            finished => Cancelling::Finished(finished),
        }
    }

    /// A worker stops a cancelled job: when it is delivered (`run` is
    /// `None`: it never starts) or while it runs (`run` is this delivery's
    /// run, which the history keeps as `cancelled`). Any unfinished record,
    /// or none, → cancelled; a finished one is left as it is.
    pub(crate) fn stop_cancelled(
        found: Option<JobRecord>,
        job_id: &str,
        workflow: &str,
        cancellation: Cancellation,
        run: Option<&Run<'_>>,
    ) -> Cancelling {
        let mut record = found.unwrap_or_else(|| JobRecord::new(job_id, workflow));
        if record.state.is_terminal() {
            return Cancelling::Finished(record.state);
        }
        if let Some(run) = run {
            // A run under a deferred claim (or after a replay) is not
            // counted in the record yet.
            if record.state != JobState::Running {
                record.attempts += 1;
            }
            record.history.push(run.attempt(record.attempts, "cancelled", None, None));
        }
        record.state = JobState::Cancelled;
        record.cancellation = Some(cancellation);
        Cancelling::Write(record)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::scheduler::{FailureKind, StepFailure};
    use crate::workflow::Jitter;

    const DELAY: Duration = Duration::from_millis(100);
    const MINE: Claimant<'static> = Claimant { submission: "s1", revision: "r1" };

    struct NoJitter;
    impl JitterSource for NoJitter {
        fn sample(&self, ceiling: Duration) -> Duration {
            ceiling
        }
    }

    fn run() -> Run<'static> {
        Run { started_at_ms: 7, worker: "w1" }
    }

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(300),
            max_backoff: Duration::from_secs(5),
            multiplier: 2.0,
            jitter: Jitter::None,
            ..RetryPolicy::default()
        }
    }

    fn error(kind: FailureKind) -> JobError {
        JobError { step: "s".into(), failure: StepFailure::new(kind, "boom") }
    }

    fn running(attempts: u32) -> JobRecord {
        JobRecord { attempts, ..JobRecord::first_run("j", "w", MINE) }
    }

    #[test]
    fn a_first_delivery_of_a_pure_workflow_defers_its_claim_and_every_other_delivery_claims_first() {
        assert_eq!(Claim::at_delivery(true, true, DELAY), Claim::Deferred);
        assert_eq!(Claim::at_delivery(false, true, DELAY), Claim::Due, "a redelivery");
        assert_eq!(Claim::at_delivery(true, false, DELAY), Claim::Due, "a step has grants");
        assert_eq!(Claim::at_delivery(true, true, Duration::ZERO), Claim::Due, "nothing is held back");
    }

    #[test]
    fn an_unusable_input_makes_a_deferred_claim_due() {
        assert_eq!(Claim::Deferred.input_unusable(), Claim::Due);
        assert_eq!(Claim::Held.input_unusable(), Claim::Held);
    }

    #[test]
    fn writing_a_claim_holds_it_or_finds_a_conflict() {
        for claim in [Claim::Due, Claim::Deferred] {
            assert_eq!(claim.created(Some(true)), Claim::Held);
            assert_eq!(claim.created(Some(false)), Claim::Conflict);
        }
        assert_eq!(Claim::Due.created(None), Claim::Conflict, "a failed claim before the run reads the record instead");
        assert_eq!(Claim::Deferred.created(None), Claim::Deferred, "a failed deferred claim stays deferred");
        assert_eq!(Claim::Held.created(Some(false)), Claim::Held, "a held claim is not written again");
        assert_eq!(Claim::Conflict.created(Some(true)), Claim::Conflict);
    }

    #[test]
    fn the_claim_at_the_end_of_a_run_says_how_its_record_is_written() {
        assert_eq!(Claim::Held.at_end(true, false), Recording::Put);
        assert_eq!(Claim::Held.at_end(false, false), Recording::Put);
        assert_eq!(Claim::Deferred.at_end(true, false), Recording::CreateWithOutcome, "the fast path: one write");
        assert_eq!(Claim::Deferred.at_end(true, true), Recording::Unclaimed, "large outputs need the claim first");
        assert_eq!(Claim::Deferred.at_end(false, false), Recording::Unclaimed, "a failure needs the claim first");
        assert_eq!(Claim::Conflict.at_end(true, false), Recording::TakeOver);
        assert_eq!(Claim::Conflict.at_end(false, false), Recording::TakeOver);
    }

    #[test]
    fn a_first_run_is_running_attempt_one() {
        let record = JobRecord::first_run("j", "w", MINE);
        assert_eq!((record.state, record.attempts, record.history.len()), (JobState::Running, 1, 0));
    }

    #[test]
    fn a_found_record_is_taken_over_unless_its_job_finished() {
        for state in [JobState::Queued, JobState::Running, JobState::Retrying] {
            let found = JobRecord { state, attempts: 2, replays: 1, ..JobRecord::new("j", "w") };
            let Adoption::TakeOver(record) = JobRecord::take_over(Some(found), "j", "w", MINE) else {
                panic!("{state:?}")
            };
            assert_eq!((record.state, record.attempts, record.replays), (JobState::Running, 3, 1));
        }
        for state in [JobState::Succeeded, JobState::DeadLettered] {
            let found = JobRecord { state, ..JobRecord::new("j", "w") };
            assert_eq!(JobRecord::take_over(Some(found), "j", "w", MINE), Adoption::Duplicate(state));
        }
        let Adoption::TakeOver(record) = JobRecord::take_over(None, "j", "w", MINE) else { panic!("vanished") };
        assert_eq!((record.state, record.attempts, record.job_id.as_str()), (JobState::Running, 1, "j"));
    }

    #[test]
    fn a_record_claimed_by_another_submission_is_neither_taken_over_nor_a_duplicate() {
        for state in [JobState::Running, JobState::Retrying, JobState::Succeeded, JobState::DeadLettered] {
            let found = JobRecord { state, ..JobRecord::first_run("j", "w", MINE) };
            assert_eq!(
                JobRecord::take_over(Some(found), "j", "w", Claimant { submission: "s2", ..MINE }),
                Adoption::Foreign,
                "{state:?}"
            );
        }
        let other_workflow = JobRecord::first_run("j", "w", MINE);
        assert_eq!(JobRecord::take_over(Some(other_workflow), "j", "v", MINE), Adoption::Foreign);
        // A record from before fingerprints is taken over and gets this one.
        let Adoption::TakeOver(record) = JobRecord::take_over(Some(JobRecord::new("j", "w")), "j", "w", MINE) else {
            panic!("old record")
        };
        assert_eq!(record.submission.as_deref(), Some("s1"));
    }

    #[test]
    fn an_unfinished_job_started_under_another_revision_is_left_to_a_worker_with_it() {
        let found = JobRecord { state: JobState::Retrying, ..JobRecord::first_run("j", "w", MINE) };
        let upgraded = Claimant { revision: "r2", ..MINE };
        assert_eq!(
            JobRecord::take_over(Some(found.clone()), "j", "w", upgraded),
            Adoption::OtherRevision(found.clone())
        );
        let finished = JobRecord { state: JobState::Succeeded, ..found };
        assert_eq!(JobRecord::take_over(Some(finished), "j", "w", upgraded), Adoption::Duplicate(JobState::Succeeded));
    }

    #[test]
    fn success_records_the_run() {
        let mut record = running(2);
        record.succeed(&run());
        assert_eq!(record.state, JobState::Succeeded);
        let last = record.history.last().unwrap();
        assert_eq!(
            (last.attempt, last.worker.as_str(), last.outcome.as_str(), last.started_at_ms),
            (2, "w1", "succeeded", 7)
        );
    }

    #[test]
    fn a_retryable_failure_with_attempts_left_retries_after_the_backoff() {
        let policy = policy();
        let rule = RetryRule { max_attempts: 3, policy: &policy, jitter: &NoJitter };
        let mut record = running(2);
        let failure = record.fail(&run(), Some(&error(FailureKind::Retryable)), &rule);
        assert_eq!(failure, Failure::Retry { delay: Duration::from_millis(600) });
        assert_eq!(record.state, JobState::Retrying);
        let last = record.history.last().unwrap();
        assert_eq!((last.outcome.as_str(), last.retry_in_ms), ("failed", Some(600)));
        assert_eq!(last.error.as_ref().unwrap()["kind"], "retryable");
    }

    #[test]
    fn a_failure_out_of_attempts_or_fatal_is_dead_lettered() {
        let policy = policy();
        let rule = RetryRule { max_attempts: 3, policy: &policy, jitter: &NoJitter };
        let mut record = running(3);
        let Failure::DeadLetter { reason, error: json } =
            record.fail(&run(), Some(&error(FailureKind::Timeout)), &rule)
        else {
            panic!("out of attempts")
        };
        assert_eq!(reason, "step `s` still failing after 3 attempts: boom");
        assert_eq!(json.unwrap()["kind"], "timeout");
        assert_eq!(record.state, JobState::Running, "dead-lettered only once the letter is stored");
        assert_eq!(record.history.last().unwrap().retry_in_ms, None);

        let mut record = running(1);
        let failure = record.fail(&run(), Some(&error(FailureKind::Trap)), &rule);
        assert!(matches!(failure, Failure::DeadLetter { ref reason, .. } if reason == "step `s` failed fatally: boom"));
        let failure = running(1).fail(&run(), None, &rule);
        assert!(matches!(failure, Failure::DeadLetter { ref reason, error: None } if reason == "the job failed"));

        record.dead_lettered();
        assert_eq!(record.state, JobState::DeadLettered);
    }

    fn cancellation() -> Cancellation {
        Cancellation { by: "ops@host".into(), reason: Some("wrong input".into()), at_ms: 11 }
    }

    #[test]
    fn a_cancel_request_cancels_a_job_no_worker_holds_and_leaves_a_running_one_to_its_worker() {
        let record = JobRecord::cancelled_unclaimed("j", "w", cancellation());
        assert_eq!((record.state, record.attempts), (JobState::Cancelled, 0));
        assert_eq!(record.cancellation, Some(cancellation()));

        for state in [JobState::Queued, JobState::Retrying] {
            let found = JobRecord { state, attempts: 1, ..JobRecord::new("j", "w") };
            let Cancelling::Write(record) = found.cancel_request(cancellation()) else { panic!("{state:?}") };
            assert_eq!((record.state, record.attempts), (JobState::Cancelled, 1), "{state:?}");
            assert_eq!(record.cancellation.as_ref().map(|c| c.by.as_str()), Some("ops@host"));
        }
        assert_eq!(running(1).cancel_request(cancellation()), Cancelling::LeftToWorker);
        for state in [JobState::Succeeded, JobState::DeadLettered, JobState::Cancelled] {
            let found = JobRecord { state, ..JobRecord::new("j", "w") };
            assert_eq!(found.cancel_request(cancellation()), Cancelling::Finished(state));
        }
    }

    #[test]
    fn a_worker_stops_a_cancelled_job_at_delivery_or_mid_run() {
        // At delivery: nothing ran, nothing is added to the history.
        let Cancelling::Write(record) = JobRecord::stop_cancelled(None, "j", "w", cancellation(), None) else {
            panic!("absent")
        };
        assert_eq!((record.state, record.attempts, record.history.len()), (JobState::Cancelled, 0, 0));
        assert_eq!(record.job_id, "j");
        // Mid-run, its claim held: the run is the record's attempt.
        let Cancelling::Write(record) =
            JobRecord::stop_cancelled(Some(running(2)), "j", "w", cancellation(), Some(&run()))
        else {
            panic!("running")
        };
        assert_eq!((record.state, record.attempts), (JobState::Cancelled, 2));
        let last = record.history.last().unwrap();
        assert_eq!((last.attempt, last.outcome.as_str(), last.worker.as_str()), (2, "cancelled", "w1"));
        assert_eq!(record.cancellation, Some(cancellation()));
        // Mid-run under a deferred claim: no record yet, the run is attempt 1.
        let Cancelling::Write(record) = JobRecord::stop_cancelled(None, "j", "w", cancellation(), Some(&run())) else {
            panic!("deferred")
        };
        assert_eq!((record.attempts, record.history[0].attempt), (1, 1));
        // Finished before the request reached the worker: left as it is.
        for state in [JobState::Succeeded, JobState::DeadLettered, JobState::Cancelled] {
            let found = JobRecord { state, ..JobRecord::new("j", "w") };
            assert_eq!(
                JobRecord::stop_cancelled(Some(found), "j", "w", cancellation(), Some(&run())),
                Cancelling::Finished(state)
            );
        }
    }

    #[test]
    fn a_cancelled_job_is_a_duplicate_to_every_later_delivery() {
        let found = JobRecord::cancelled_unclaimed("j", "w", cancellation());
        assert_eq!(JobRecord::take_over(Some(found), "j", "w", MINE), Adoption::Duplicate(JobState::Cancelled));
    }

    #[test]
    fn a_job_handed_back_at_shutdown_is_queued_and_its_run_does_not_count() {
        let mut record = running(2);
        record.hand_back(&run());
        assert_eq!((record.state, record.attempts), (JobState::Queued, 1));
        let last = record.history.last().unwrap();
        assert_eq!((last.attempt, last.outcome.as_str()), (2, "handed_back"));
    }
}
