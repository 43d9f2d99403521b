//! Runs one job through a workflow's DAG: ordering, concurrency of
//! independent branches, `map` fan-out with a bound, retries with exponential
//! backoff and jitter (honouring retry-after), per-attempt timeouts, and a
//! report of every attempt.
//!
//! Architecture invariant: this module never names a wasmtime or NATS type.
//! It drives a [`StepRunner`]; the engine is one implementation, tests use
//! fakes under paused tokio time so backoff schedules are checked exactly.

mod backoff;
mod report;

pub use backoff::{JitterSource, RandomJitter, backoff_delay};
pub use report::{AttemptRecord, JobError, JobReport, JobStatus, StepReport, StepStatus};

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt as _, StreamExt as _};
use serde::Serialize;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::Instrument as _;

use weft_core::item::Item;
use weft_workflow::{StepSpec, Workflow};

/// Timeout for a step attempt whose workflow sets none.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(60);

/// Items one step may produce (one attempt, or a `map` step's items
/// together) unless the host sets another bound. Every item costs host
/// memory beyond its payload bytes, which are all `limits.output` counts.
pub const DEFAULT_MAX_STEP_ITEMS: usize = 100_000;

/// Bytes (payload and metadata) a `map` step's items may return together
/// unless the host sets another bound: `limits.output` bounds each item's
/// attempt, and without this a map over many items would hold their product
/// in host memory. 1 GiB is the most any one step attempt may return.
pub const DEFAULT_MAX_MAP_OUTPUT: u64 = 1024 * 1024 * 1024;

/// One attempt of one step (or of one item of a `map` step).
#[derive(Debug, Clone)]
pub struct StepAttempt {
    /// The job this attempt belongs to.
    pub job_id: Arc<str>,
    /// The step as declared in the workflow.
    pub step: Arc<StepSpec>,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// The input item's index for a `map` step.
    pub item_index: Option<u32>,
    /// Wall-clock budget of this attempt; the runner should stop the step
    /// when it is spent (the scheduler also enforces it).
    pub timeout: Duration,
    /// The items this attempt processes.
    pub input: Vec<Item>,
}

/// Executes step attempts. The engine implements it with Wasm components.
pub trait StepRunner: Send + Sync + 'static {
    /// Runs one attempt to completion or failure.
    fn run(&self, attempt: StepAttempt) -> impl Future<Output = Result<Vec<Item>, StepFailure>> + Send;
}

/// Why an attempt failed, as the host classifies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The step reported a transient error.
    Retryable,
    /// The step asked to be retried no sooner than a given delay.
    RetryAfter,
    /// The step reported that retrying cannot help.
    Fatal,
    /// The attempt ran past its timeout.
    Timeout,
    /// The component trapped (a panic, an `unreachable`, a bad memory access).
    Trap,
    /// The component tried to grow its memory past the step's limit.
    MemoryLimit,
    /// The component used up the step's fuel.
    FuelExhausted,
    /// The component overflowed its stack (unbounded recursion).
    StackOverflow,
    /// The component returned more output than the step's limit.
    OutputTooLarge,
    /// The step's output broke one of the host's own bounds, which protect
    /// its memory: too many items from one attempt, or a `map` step's items
    /// together returning too many items or bytes.
    Limit,
    /// The host could not run the component at all.
    Host,
}

impl FailureKind {
    /// Whether an attempt that failed this way may be retried.
    ///
    /// Timeouts are retried (a slow dependency may recover); traps and limit
    /// breaches are deterministic for the same input, so they are not.
    pub fn is_retryable(self) -> bool {
        matches!(self, FailureKind::Retryable | FailureKind::RetryAfter | FailureKind::Timeout)
    }
}

/// A failed attempt: what kind of failure and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepFailure {
    /// The classification that decides retries.
    pub kind: FailureKind,
    /// For [`FailureKind::RetryAfter`], the earliest retry the step asked for.
    #[serde(skip_serializing_if = "Option::is_none", with = "report::opt_millis")]
    pub retry_after: Option<Duration>,
    /// What happened, in words a user can act on.
    pub message: String,
}

impl StepFailure {
    /// A failure of the given kind.
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        StepFailure { kind, retry_after: None, message: message.into() }
    }

    /// A retry-after failure.
    pub fn retry_after(delay: Duration, message: impl Into<String>) -> Self {
        StepFailure { kind: FailureKind::RetryAfter, retry_after: Some(delay), message: message.into() }
    }
}

impl std::fmt::Display for StepFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Scheduler settings that are not part of a workflow file.
#[derive(Debug, Clone)]
pub struct SchedulerSettings {
    /// Timeout for steps that declare none.
    pub default_timeout: Duration,
    /// Items a `map` step's items may return together (default
    /// [`DEFAULT_MAX_STEP_ITEMS`]); more fails the step with
    /// [`FailureKind::Limit`]. It protects the host's memory, which holds
    /// every item until the job ends.
    pub max_step_items: usize,
    /// Bytes a `map` step's items may return together (default
    /// [`DEFAULT_MAX_MAP_OUTPUT`]); more fails the step with
    /// [`FailureKind::Limit`]. It protects the host's memory: each item's
    /// attempt is bounded by `limits.output`, their sum only by this.
    pub max_map_output: u64,
}

impl Default for SchedulerSettings {
    fn default() -> Self {
        SchedulerSettings {
            default_timeout: DEFAULT_STEP_TIMEOUT,
            max_step_items: DEFAULT_MAX_STEP_ITEMS,
            max_map_output: DEFAULT_MAX_MAP_OUTPUT,
        }
    }
}

/// Runs jobs through workflows with a [`StepRunner`].
pub struct Scheduler<R> {
    runner: Arc<R>,
    jitter: Arc<dyn JitterSource>,
    settings: SchedulerSettings,
}

impl<R> Clone for Scheduler<R> {
    fn clone(&self) -> Self {
        Scheduler { runner: self.runner.clone(), jitter: self.jitter.clone(), settings: self.settings.clone() }
    }
}

/// Everything a finished job produced.
#[derive(Debug)]
pub struct JobOutcome {
    /// Status, per-step attempts and timings.
    pub report: JobReport,
    /// The output items of every step that succeeded, by step id.
    pub outputs: BTreeMap<String, Arc<Vec<Item>>>,
}

type StepResult = (usize, Result<Arc<Vec<Item>>, StepFailure>, StepReport);

/// Persists a step's output as soon as the step succeeds, so a job that is
/// run again (redelivered after a crash) resumes after its last finished step.
pub trait CheckpointSink: Send + Sync {
    /// Saves `items` as the output of `step_id` (shared, so a sink that
    /// holds them back keeps them without a copy). Failures are the sink's
    /// to log: a lost checkpoint only costs a repeated step on resume.
    fn save<'a>(&'a self, step_id: &'a str, items: &'a Arc<Vec<Item>>)
    -> Pin<Box<dyn Future<Output = ()> + Send + 'a>>;
}

/// How to run a job beyond its input: outputs restored from checkpoints,
/// and where to checkpoint new ones.
#[derive(Clone, Default)]
pub struct JobOptions {
    /// Outputs of steps that already finished in an earlier run of this job;
    /// those steps are not run again.
    pub completed: BTreeMap<String, Arc<Vec<Item>>>,
    /// Where to save each step's output when it succeeds.
    pub checkpoints: Option<Arc<dyn CheckpointSink>>,
    /// When the job must be done (for a queued job, counted from its
    /// submission); `None` counts the workflow's `deadline` from now.
    pub deadline: Option<Instant>,
}

/// When a job must be done, and the budget that set it (for messages).
#[derive(Debug, Clone, Copy)]
struct Deadline {
    at: Instant,
    budget: Duration,
}

impl Deadline {
    fn passed(&self, step: &str) -> StepFailure {
        StepFailure::new(
            FailureKind::Fatal,
            format!(
                "the job reached its deadline ({} from submission) at step `{step}`; raise the workflow's \
                 `deadline` if jobs need longer",
                weft_workflow::format_duration(self.budget)
            ),
        )
    }
}

impl std::fmt::Debug for JobOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobOptions")
            .field("completed", &self.completed.keys().collect::<Vec<_>>())
            .field("checkpoints", &self.checkpoints.is_some())
            .field("deadline", &self.deadline)
            .finish()
    }
}

impl<R: StepRunner> Scheduler<R> {
    /// A scheduler with random full jitter.
    pub fn new(runner: Arc<R>, settings: SchedulerSettings) -> Self {
        Scheduler { runner, jitter: Arc::new(RandomJitter), settings }
    }

    /// Replaces the jitter source (tests use a deterministic one).
    pub fn with_jitter(mut self, jitter: Arc<dyn JitterSource>) -> Self {
        self.jitter = jitter;
        self
    }

    /// Runs one job to completion: every step whose needs succeeded runs,
    /// independent steps concurrently; the first step that fails for good
    /// fails the job, cancels the steps still running and skips the rest.
    pub async fn run_job(&self, workflow: &Workflow, job_id: &str, input: Vec<Item>) -> JobOutcome {
        self.run_job_with(workflow, job_id, input, JobOptions::default()).await
    }

    /// Like [`Scheduler::run_job`], resuming from `options.completed` and
    /// checkpointing each step's output to `options.checkpoints` before any
    /// step that needs it starts.
    pub async fn run_job_with(
        &self,
        workflow: &Workflow,
        job_id: &str,
        input: Vec<Item>,
        options: JobOptions,
    ) -> JobOutcome {
        let started = Instant::now();
        let deadline =
            Deadline { at: options.deadline.unwrap_or(started + workflow.deadline), budget: workflow.deadline };
        let job_id: Arc<str> = Arc::from(job_id);
        let steps: &[Arc<StepSpec>] = &workflow.steps;
        let index_of: HashMap<&str, usize> = steps.iter().enumerate().map(|(i, s)| (s.id.as_str(), i)).collect();
        let input = Arc::new(input);

        let mut reports: Vec<Option<StepReport>> = vec![None; steps.len()];
        let mut outputs: Vec<Option<Arc<Vec<Item>>>> = vec![None; steps.len()];
        let mut started_steps = vec![false; steps.len()];
        for (i, step) in steps.iter().enumerate() {
            if let Some(items) = options.completed.get(&step.id) {
                tracing::info!(job.id = %job_id, step = %step.id, "resuming: step output restored from its checkpoint");
                outputs[i] = Some(items.clone());
                started_steps[i] = true;
                let mut report = StepReport::not_run(step, StepStatus::Resumed);
                report.output_items = items.len();
                reports[i] = Some(report);
            }
        }
        let mut running: JoinSet<StepResult> = JoinSet::new();
        let mut failure: Option<(String, StepFailure)> = None;

        loop {
            let mut ready = Vec::new();
            if failure.is_none() {
                for (i, step) in steps.iter().enumerate() {
                    if started_steps[i] {
                        continue;
                    }
                    let needs: Option<Vec<usize>> =
                        step.needs.iter().map(|n| index_of.get(n.as_str()).copied()).collect();
                    let Some(needs) = needs else { continue };
                    if !needs.iter().all(|&n| outputs[n].is_some()) {
                        continue;
                    }
                    started_steps[i] = true;
                    let step_input: Vec<Item> = if needs.is_empty() {
                        input.as_ref().clone()
                    } else {
                        needs.iter().flat_map(|&n| outputs[n].iter().flat_map(|o| o.iter().cloned())).collect()
                    };
                    let unit = StepExecution {
                        runner: self.runner.clone(),
                        jitter: self.jitter.clone(),
                        job_id: job_id.clone(),
                        step: step.clone(),
                        timeout: step.timeout.unwrap_or(self.settings.default_timeout),
                        deadline,
                        max_map_items: self.settings.max_step_items,
                        max_map_output: self.settings.max_map_output,
                    };
                    let span = tracing::info_span!(
                        "step",
                        job.id = %job_id,
                        workflow = %workflow.name,
                        step = %step.id,
                        plugin = %step.plugin
                    );
                    let run = async move {
                        let (result, report) = unit.run(step_input).await;
                        (i, result, report)
                    }
                    .instrument(span);
                    ready.push(run);
                }
            }
            let joined = if running.is_empty() && ready.len() == 1 {
                // The only step that can run now runs in this task: a chain
                // of steps costs no task and no cross-thread wake-up per step.
                // A panic still becomes the job's failure, as in a spawned task.
                let run = ready.pop().map(|run| AssertUnwindSafe(run).catch_unwind());
                match run {
                    Some(run) => run.await.map_err(|panic| StepPanic::Panicked(panic_message(&*panic))),
                    None => break,
                }
            } else {
                for run in ready {
                    running.spawn(run);
                }
                match running.join_next().await {
                    None => break,
                    Some(Ok(finished)) => Ok(finished),
                    Some(Err(join_error)) if join_error.is_cancelled() => Err(StepPanic::Cancelled),
                    Some(Err(join_error)) => Err(StepPanic::Panicked(join_error.to_string())),
                }
            };
            match joined {
                Ok((i, result, report)) => {
                    match result {
                        Ok(items) => {
                            if let Some(sink) = &options.checkpoints {
                                sink.save(&steps[i].id, &items).await;
                            }
                            outputs[i] = Some(items);
                        }
                        Err(err) => {
                            if failure.is_none() {
                                failure = Some((steps[i].id.clone(), err));
                                running.abort_all();
                            }
                        }
                    }
                    reports[i] = Some(report);
                }
                Err(StepPanic::Cancelled) => {}
                Err(StepPanic::Panicked(message)) => {
                    // A panic in a runner is a host bug; report it rather than lose the job.
                    if failure.is_none() {
                        failure = Some((
                            "<host>".to_string(),
                            StepFailure::new(FailureKind::Host, format!("a step task panicked: {message}")),
                        ));
                        running.abort_all();
                    }
                }
            }
        }

        let step_reports: Vec<StepReport> = steps
            .iter()
            .zip(reports)
            .zip(&started_steps)
            .map(|((step, report), &was_started)| {
                report.unwrap_or_else(|| {
                    let status = if was_started { StepStatus::Cancelled } else { StepStatus::Skipped };
                    StepReport::not_run(step, status)
                })
            })
            .collect();
        let outputs: BTreeMap<String, Arc<Vec<Item>>> =
            steps.iter().zip(outputs).filter_map(|(step, out)| out.map(|o| (step.id.clone(), o))).collect();
        let (status, error) = match failure {
            None => (JobStatus::Succeeded, None),
            Some((step, failure)) => (JobStatus::Failed, Some(report::JobError { step, failure })),
        };
        JobOutcome {
            report: JobReport {
                job_id: job_id.to_string(),
                workflow: workflow.name.clone(),
                workflow_version: workflow.version.clone(),
                status,
                error,
                duration: started.elapsed(),
                steps: step_reports,
            },
            outputs,
        }
    }
}

/// Why a step's run ended without a result.
enum StepPanic {
    /// It was aborted because another step failed.
    Cancelled,
    /// Its runner panicked (a host bug), with the panic's message.
    Panicked(String),
}

/// The message of a caught panic, when it is a string.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string())
}

/// Everything needed to run one step of one job, owned so it can be spawned.
struct StepExecution<R> {
    runner: Arc<R>,
    jitter: Arc<dyn JitterSource>,
    job_id: Arc<str>,
    step: Arc<StepSpec>,
    timeout: Duration,
    deadline: Deadline,
    /// [`SchedulerSettings::max_step_items`].
    max_map_items: usize,
    /// [`SchedulerSettings::max_map_output`].
    max_map_output: u64,
}

impl<R: StepRunner> StepExecution<R> {
    async fn run(self, input: Vec<Item>) -> (Result<Arc<Vec<Item>>, StepFailure>, StepReport) {
        let started = Instant::now();
        let input_items = input.len();
        let mut attempts = Vec::new();
        let result = match &self.step.map {
            None => self.run_with_retries(None, input, started, &mut attempts).await,
            Some(map) => {
                let concurrency = map.concurrency.max(1);
                let this = &self;
                let mut per_item = futures::stream::iter(input.into_iter().enumerate())
                    .map(|(index, item)| {
                        let index = u32::try_from(index).unwrap_or(u32::MAX);
                        async move {
                            let mut records = Vec::new();
                            let result = this.run_with_retries(Some(index), vec![item], started, &mut records).await;
                            (result, records)
                        }
                    })
                    .buffered(concurrency);
                let mut collected = Vec::new();
                let mut collected_bytes: u64 = 0;
                let mut finished_items: usize = 0;
                let mut failed = None;
                while let Some((result, records)) = per_item.next().await {
                    attempts.extend(records);
                    match result {
                        Ok(items) => {
                            finished_items += 1;
                            collected_bytes += items.iter().map(|item| item.size_bytes() as u64).sum::<u64>();
                            collected.extend(items);
                            // Checked as each item's output arrives, so the
                            // host never holds much more than the bound; the
                            // items still running are cancelled by the break.
                            if let Some(err) = self.map_limit_broken(collected.len(), collected_bytes, finished_items) {
                                failed = Some(err);
                                break;
                            }
                        }
                        Err(err) => {
                            failed = Some(err);
                            break;
                        }
                    }
                }
                match failed {
                    Some(err) => Err(err),
                    None => Ok(collected),
                }
            }
        };
        let output_items = result.as_ref().map(Vec::len).unwrap_or(0);
        let report = StepReport {
            id: self.step.id.clone(),
            plugin: self.step.plugin.clone(),
            status: if result.is_ok() { StepStatus::Succeeded } else { StepStatus::Failed },
            input_items,
            output_items,
            duration: started.elapsed(),
            attempts,
            error: result.as_ref().err().cloned(),
        };
        (result.map(Arc::new), report)
    }

    /// The failure of a `map` step whose items returned `items` items and
    /// `bytes` bytes together after `finished` of them, if that is over the
    /// host's bounds.
    fn map_limit_broken(&self, items: usize, bytes: u64, finished: usize) -> Option<StepFailure> {
        let step = &self.step.id;
        if items > self.max_map_items {
            return Some(StepFailure::new(
                FailureKind::Limit,
                format!(
                    "map step `{step}` returned {items} items from its first {finished} input items, above this \
                     host's limit of {} items per step (return fewer items per input item, split the input \
                     across jobs, or raise the host's limit: `--max-step-items` of `weft run`/`serve`, `max_step_items` when \
                     embedding)",
                    self.max_map_items
                ),
            ));
        }
        if bytes > self.max_map_output {
            return Some(StepFailure::new(
                FailureKind::Limit,
                format!(
                    "map step `{step}` returned {} of output from its first {finished} input items, above this \
                     host's limit of {} for a map step's output together (return less per input item, split \
                     the input across jobs, or raise the host's limit: `--max-map-output` of `weft run`/`serve`, `max_map_output` \
                     when embedding)",
                    weft_workflow::human_size(bytes),
                    weft_workflow::human_size(self.max_map_output)
                ),
            ));
        }
        None
    }

    /// Ends a retryable failure that is not retried after all (`err` says
    /// why): the attempt's record holds `err`, which is returned.
    fn not_retried(
        &self,
        mut record: AttemptRecord,
        records: &mut Vec<AttemptRecord>,
        err: StepFailure,
    ) -> StepFailure {
        tracing::warn!(step = %self.step.id, attempt = record.attempt, error = %err.message, "step failed");
        record.error = Some(err.clone());
        records.push(record);
        err
    }

    /// Runs one unit of work (the whole step, or one item of a map step)
    /// until it succeeds, fails for good, or uses up its attempts.
    async fn run_with_retries(
        &self,
        item_index: Option<u32>,
        input: Vec<Item>,
        step_started: Instant,
        records: &mut Vec<AttemptRecord>,
    ) -> Result<Vec<Item>, StepFailure> {
        let policy = &self.step.retry;
        let max_attempts = policy.max_attempts.max(1);
        let mut attempt = 1;
        loop {
            let attempt_started = Instant::now();
            // The attempt's timeout, cut short by the job's deadline.
            let until_deadline = self.deadline.at.saturating_duration_since(attempt_started);
            if until_deadline.is_zero() {
                return Err(self.deadline.passed(&self.step.id));
            }
            let timeout = self.timeout.min(until_deadline);
            let request = StepAttempt {
                job_id: self.job_id.clone(),
                step: self.step.clone(),
                attempt,
                item_index,
                timeout,
                input: input.clone(),
            };
            let result = match tokio::time::timeout(timeout, self.runner.run(request)).await {
                Ok(result) => result,
                Err(_) if timeout < self.timeout => Err(self.deadline.passed(&self.step.id)),
                Err(_) => Err(StepFailure::new(
                    FailureKind::Timeout,
                    format!("step `{}` did not finish within its timeout of {:?}", self.step.id, self.timeout),
                )),
            };
            let mut record = AttemptRecord {
                attempt,
                item_index,
                started_at: attempt_started.duration_since(step_started),
                duration: attempt_started.elapsed(),
                output_items: result.as_ref().map(Vec::len).ok(),
                error: result.as_ref().err().cloned(),
                retry_in: None,
            };
            match result {
                Ok(items) => {
                    tracing::debug!(step = %self.step.id, attempt, items = items.len(), "attempt succeeded");
                    records.push(record);
                    return Ok(items);
                }
                Err(err) if err.retry_after.is_some_and(|after| after > policy.max_retry_after) => {
                    // Waiting as long as asked would hold the job (and its
                    // worker) without bound; retrying sooner would be refused.
                    let asked = err.retry_after.unwrap_or_default();
                    let err = StepFailure::new(
                        FailureKind::Fatal,
                        format!(
                            "{}; it asked to wait {}, longer than `retry.max_retry_after` ({}), so it is not \
                             retried: raise `retry.max_retry_after` to wait that long",
                            err.message,
                            weft_workflow::format_duration(asked),
                            weft_workflow::format_duration(policy.max_retry_after)
                        ),
                    );
                    return Err(self.not_retried(record, records, err));
                }
                Err(err) if err.kind.is_retryable() && attempt < max_attempts => {
                    let delay = backoff_delay(policy, attempt, err.retry_after, self.jitter.as_ref());
                    if Instant::now() + delay >= self.deadline.at {
                        // Waiting would only end past the deadline.
                        let err = StepFailure::new(
                            FailureKind::Fatal,
                            format!(
                                "{}; not retried: waiting {} would pass the job's deadline ({} from submission); \
                                 raise the workflow's `deadline` if jobs need longer",
                                err.message,
                                weft_workflow::format_duration(delay),
                                weft_workflow::format_duration(self.deadline.budget)
                            ),
                        );
                        return Err(self.not_retried(record, records, err));
                    }
                    tracing::warn!(step = %self.step.id, attempt, kind = ?err.kind, retry_in = ?delay, error = %err.message, "attempt failed; retrying");
                    record.retry_in = Some(delay);
                    records.push(record);
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Err(err) => {
                    tracing::warn!(step = %self.step.id, attempt, kind = ?err.kind, error = %err.message, "step failed");
                    records.push(record);
                    return Err(err);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
