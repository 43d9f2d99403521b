//! Scheduler tests with a fake step runner under paused tokio time, so every
//! retry delay and concurrency bound is checked exactly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use weft_workflow::{RetryPolicy, parse};

/// What a fake step does on one attempt.
struct Behaviour {
    takes: Duration,
    result: Result<Vec<Item>, StepFailure>,
}

type Script = Box<dyn Fn(&StepAttempt) -> Behaviour + Send + Sync>;

/// One recorded attempt: step id, attempt, item index, start time.
type Call = (String, u32, Option<u32>, Duration);

/// A step runner whose steps follow a script, recording when each attempt
/// started (in paused time) and how many ran at once.
struct FakeRunner {
    scripts: HashMap<String, Script>,
    epoch: Instant,
    calls: Mutex<Vec<Call>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

impl FakeRunner {
    fn new() -> Self {
        FakeRunner {
            scripts: HashMap::new(),
            epoch: Instant::now(),
            calls: Mutex::new(Vec::new()),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
        }
    }

    fn script(mut self, step: &str, f: impl Fn(&StepAttempt) -> Behaviour + Send + Sync + 'static) -> Self {
        self.scripts.insert(step.to_string(), Box::new(f));
        self
    }

    fn starts(&self, step: &str) -> Vec<Duration> {
        self.calls.lock().unwrap().iter().filter(|c| c.0 == step).map(|c| c.3).collect()
    }
}

impl StepRunner for FakeRunner {
    async fn run(&self, attempt: StepAttempt) -> Result<Vec<Item>, StepFailure> {
        let behaviour = match self.scripts.get(&attempt.step.id) {
            Some(script) => script(&attempt),
            None => Behaviour { takes: Duration::ZERO, result: Ok(attempt.input.clone()) },
        };
        self.calls.lock().unwrap().push((
            attempt.step.id.clone(),
            attempt.attempt,
            attempt.item_index,
            self.epoch.elapsed(),
        ));
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(behaviour.takes).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        behaviour.result
    }
}

/// Always returns half the ceiling, so full-jitter delays are predictable.
struct HalfJitter;

impl JitterSource for HalfJitter {
    fn sample(&self, ceiling: Duration) -> Duration {
        ceiling / 2
    }
}

fn ok_after(takes: Duration, items: Vec<Item>) -> Behaviour {
    Behaviour { takes, result: Ok(items) }
}

fn fail(kind: FailureKind) -> Behaviour {
    Behaviour { takes: Duration::ZERO, result: Err(StepFailure::new(kind, format!("{kind:?} on purpose"))) }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

async fn run(yaml: &str, runner: FakeRunner, input: Vec<Item>) -> (JobOutcome, Arc<FakeRunner>) {
    let workflow = parse("test.yaml", yaml).expect("test workflow parses");
    let runner = Arc::new(runner);
    let scheduler = Scheduler::new(runner.clone(), SchedulerSettings::default()).with_jitter(Arc::new(HalfJitter));
    let outcome = scheduler.run_job(&workflow, "job-1", input).await;
    (outcome, runner)
}

const ONE_STEP_NO_JITTER: &str = "
name: t
version: '1'
steps:
  - id: a
    plugin: p
    retry: { max_attempts: 4, initial_backoff: 100ms, max_backoff: 250ms, multiplier: 2, jitter: none }
";

#[tokio::test(start_paused = true)]
async fn retries_follow_exponential_backoff_capped_at_max() {
    let runner = FakeRunner::new().script("a", |a| {
        if a.attempt < 4 { fail(FailureKind::Retryable) } else { ok_after(Duration::ZERO, vec![Item::text("done")]) }
    });
    let (outcome, runner) = run(ONE_STEP_NO_JITTER, runner, vec![]).await;
    assert_eq!(outcome.report.status, JobStatus::Succeeded);
    // Delays 100ms, 200ms, then 400ms capped to 250ms.
    assert_eq!(runner.starts("a"), vec![ms(0), ms(100), ms(300), ms(550)]);
    let attempts = &outcome.report.steps[0].attempts;
    assert_eq!(attempts.len(), 4);
    assert_eq!(
        attempts.iter().map(|a| a.retry_in).collect::<Vec<_>>(),
        vec![Some(ms(100)), Some(ms(200)), Some(ms(250)), None]
    );
    assert_eq!(attempts[3].output_items, Some(1));
}

#[tokio::test(start_paused = true)]
async fn full_jitter_draws_below_the_exponential_ceiling() {
    let yaml = ONE_STEP_NO_JITTER.replace("jitter: none", "jitter: full");
    let runner = FakeRunner::new()
        .script("a", |a| if a.attempt < 3 { fail(FailureKind::Timeout) } else { ok_after(Duration::ZERO, vec![]) });
    let (outcome, runner) = run(&yaml, runner, vec![]).await;
    assert_eq!(outcome.report.status, JobStatus::Succeeded);
    // HalfJitter: half of 100ms, then half of 200ms.
    assert_eq!(runner.starts("a"), vec![ms(0), ms(50), ms(150)]);
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_a_floor_on_the_delay() {
    let runner = FakeRunner::new().script("a", |a| match a.attempt {
        1 => Behaviour { takes: Duration::ZERO, result: Err(StepFailure::retry_after(ms(1500), "429")) },
        2 => Behaviour { takes: Duration::ZERO, result: Err(StepFailure::retry_after(ms(10), "429")) },
        _ => ok_after(Duration::ZERO, vec![]),
    });
    let (outcome, runner) = run(ONE_STEP_NO_JITTER, runner, vec![]).await;
    assert_eq!(outcome.report.status, JobStatus::Succeeded);
    // 1500ms asked (above the 100ms backoff), then 10ms asked (below the 200ms backoff).
    assert_eq!(runner.starts("a"), vec![ms(0), ms(1500), ms(1700)]);
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_longer_than_max_retry_after_fails_the_step_at_once() {
    // A webhook answering `429 Retry-After: 100000000` must not hold the job for three years.
    let huge = Duration::from_secs(100_000_000);
    let runner = FakeRunner::new().script("a", move |_| Behaviour {
        takes: Duration::ZERO,
        result: Err(StepFailure::retry_after(huge, "step `a` asked to retry after 100000000000 ms: 429")),
    });
    let yaml = ONE_STEP_NO_JITTER.replace("jitter: none", "jitter: none, max_retry_after: 1m");
    let (outcome, runner) = run(&yaml, runner, vec![]).await;
    assert_eq!(outcome.report.status, JobStatus::Failed);
    assert_eq!(runner.starts("a"), vec![ms(0)], "not retried");
    let error = outcome.report.error.expect("failed job has an error");
    assert_eq!(error.failure.kind, FailureKind::Fatal);
    assert!(
        error.failure.message.ends_with(
            "it asked to wait 100000000s, longer than `retry.max_retry_after` (1m), so it is not retried: \
             raise `retry.max_retry_after` to wait that long"
        ),
        "{}",
        error.failure.message
    );
    // At the limit, the wait is honoured.
    let runner = FakeRunner::new().script("a", |a| match a.attempt {
        1 => Behaviour { takes: Duration::ZERO, result: Err(StepFailure::retry_after(Duration::from_secs(60), "429")) },
        _ => ok_after(Duration::ZERO, vec![]),
    });
    let (outcome, runner) = run(&yaml, runner, vec![]).await;
    assert_eq!(outcome.report.status, JobStatus::Succeeded);
    assert_eq!(runner.starts("a"), vec![ms(0), ms(60_000)]);
}

#[tokio::test(start_paused = true)]
async fn fatal_errors_and_traps_are_not_retried() {
    for kind in [FailureKind::Fatal, FailureKind::Trap, FailureKind::MemoryLimit, FailureKind::OutputTooLarge] {
        let runner = FakeRunner::new().script("a", move |_| fail(kind));
        let (outcome, runner) = run(ONE_STEP_NO_JITTER, runner, vec![]).await;
        assert_eq!(outcome.report.status, JobStatus::Failed);
        assert_eq!(runner.starts("a").len(), 1, "{kind:?} must not be retried");
        let error = outcome.report.error.expect("failed job has an error");
        assert_eq!((error.step.as_str(), error.failure.kind), ("a", kind));
    }
}

#[tokio::test(start_paused = true)]
async fn attempts_run_out_and_every_one_is_recorded() {
    let runner = FakeRunner::new().script("a", |_| fail(FailureKind::Retryable));
    let (outcome, runner) = run(ONE_STEP_NO_JITTER, runner, vec![]).await;
    assert_eq!(outcome.report.status, JobStatus::Failed);
    assert_eq!(runner.starts("a").len(), 4);
    let step = &outcome.report.steps[0];
    assert_eq!(step.status, StepStatus::Failed);
    assert_eq!(step.attempts.iter().map(|a| a.attempt).collect::<Vec<_>>(), vec![1, 2, 3, 4]);
    assert!(step.attempts.iter().all(|a| a.error.as_ref().map(|e| e.kind) == Some(FailureKind::Retryable)));
}

#[tokio::test(start_paused = true)]
async fn a_slow_attempt_times_out_and_is_retried() {
    let yaml = "
name: t
version: '1'
steps:
  - id: a
    plugin: p
    timeout: 1s
    retry: { max_attempts: 2, initial_backoff: 100ms, jitter: none }
";
    let runner = FakeRunner::new().script("a", |a| {
        if a.attempt == 1 { ok_after(Duration::from_secs(3600), vec![]) } else { ok_after(ms(10), vec![]) }
    });
    let (outcome, runner) = run(yaml, runner, vec![]).await;
    assert_eq!(outcome.report.status, JobStatus::Succeeded);
    assert_eq!(runner.starts("a"), vec![ms(0), ms(1100)]);
    let first = &outcome.report.steps[0].attempts[0];
    assert_eq!(first.error.as_ref().map(|e| e.kind), Some(FailureKind::Timeout));
    assert_eq!(first.duration, Duration::from_secs(1));
}

const DIAMOND: &str = "
name: t
version: '1'
steps:
  - id: root
    plugin: p
  - id: left
    plugin: p
    needs: [root]
  - id: right
    plugin: p
    needs: [root]
  - id: join
    plugin: p
    needs: [left, right]
";

#[tokio::test(start_paused = true)]
async fn independent_branches_run_concurrently_and_join_in_order() {
    let runner = FakeRunner::new()
        .script("left", |_| ok_after(Duration::from_secs(1), vec![Item::text("L")]))
        .script("right", |_| ok_after(Duration::from_secs(1), vec![Item::text("R")]));
    let (outcome, runner) = run(DIAMOND, runner, vec![Item::text("in")]).await;
    assert_eq!(outcome.report.status, JobStatus::Succeeded);
    assert_eq!(runner.starts("left"), vec![ms(0)]);
    assert_eq!(runner.starts("right"), vec![ms(0)]);
    assert_eq!(runner.starts("join"), vec![Duration::from_secs(1)]);
    assert_eq!(runner.max_in_flight.load(Ordering::SeqCst), 2);
    // `join` gets its needs' outputs in the order of its `needs` list.
    let joined: Vec<_> = outcome.outputs["join"].iter().map(|i| i.as_text().unwrap().to_string()).collect();
    assert_eq!(joined, vec!["L", "R"]);
    assert_eq!(outcome.report.duration, Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn a_panicking_runner_fails_the_job_whether_its_step_runs_alone_or_beside_another() {
    // `root` is the only runnable step, so it runs in the job's own task.
    let runner = FakeRunner::new().script("root", |_| panic!("runner bug on purpose"));
    let (outcome, _) = run(DIAMOND, runner, vec![]).await;
    assert_eq!(outcome.report.status, JobStatus::Failed);
    let error = outcome.report.error.expect("the job reports its error");
    assert_eq!(error.step, "<host>");
    assert_eq!(error.failure.kind, FailureKind::Host);
    assert!(error.failure.message.contains("runner bug on purpose"), "{}", error.failure.message);
    let status: Vec<_> = outcome.report.steps.iter().map(|s| s.status).collect();
    assert_eq!(status, vec![StepStatus::Cancelled, StepStatus::Skipped, StepStatus::Skipped, StepStatus::Skipped]);

    // `left` and `right` run at once, each in a task of its own.
    let runner = FakeRunner::new()
        .script("left", |_| panic!("branch bug on purpose"))
        .script("right", |_| ok_after(Duration::from_secs(60), vec![]));
    let (outcome, _) = run(DIAMOND, runner, vec![]).await;
    let error = outcome.report.error.expect("the job reports its error");
    assert_eq!((error.step.as_str(), error.failure.kind), ("<host>", FailureKind::Host));
    assert!(error.failure.message.contains("branch bug on purpose"), "{}", error.failure.message);
    let status: Vec<_> = outcome.report.steps.iter().map(|s| s.status).collect();
    assert_eq!(status, vec![StepStatus::Succeeded, StepStatus::Cancelled, StepStatus::Cancelled, StepStatus::Skipped]);
}

#[tokio::test(start_paused = true)]
async fn a_failed_branch_cancels_its_sibling_and_skips_dependents() {
    let runner = FakeRunner::new()
        .script("left", |_| fail(FailureKind::Fatal))
        .script("right", |_| ok_after(Duration::from_secs(60), vec![]));
    let (outcome, _) = run(DIAMOND, runner, vec![]).await;
    assert_eq!(outcome.report.status, JobStatus::Failed);
    let status: Vec<_> = outcome.report.steps.iter().map(|s| s.status).collect();
    assert_eq!(status, vec![StepStatus::Succeeded, StepStatus::Failed, StepStatus::Cancelled, StepStatus::Skipped]);
    assert_eq!(outcome.report.duration, Duration::ZERO, "the job does not wait for the cancelled sibling");
}

#[tokio::test(start_paused = true)]
async fn map_fans_out_under_its_concurrency_bound_and_keeps_order() {
    let yaml = "
name: t
version: '1'
steps:
  - id: each
    plugin: p
    map: { concurrency: 3 }
";
    let runner = FakeRunner::new().script("each", |a| {
        let index = a.item_index.expect("map attempts carry an item index");
        // Later items finish sooner, so order must come from the scheduler.
        ok_after(Duration::from_secs(10 - u64::from(index)), vec![Item::text(format!("out-{index}"))])
    });
    let input: Vec<Item> = (0..7).map(|i| Item::text(format!("in-{i}"))).collect();
    let (outcome, runner) = run(yaml, runner, input).await;
    assert_eq!(outcome.report.status, JobStatus::Succeeded);
    assert_eq!(runner.max_in_flight.load(Ordering::SeqCst), 3);
    let out: Vec<_> = outcome.outputs["each"].iter().map(|i| i.as_text().unwrap().to_string()).collect();
    assert_eq!(out, (0..7).map(|i| format!("out-{i}")).collect::<Vec<_>>());
    let step = &outcome.report.steps[0];
    assert_eq!((step.input_items, step.output_items, step.attempts.len()), (7, 7, 7));
}

#[tokio::test(start_paused = true)]
async fn map_retries_only_the_failing_item() {
    let yaml = "
name: t
version: '1'
steps:
  - id: each
    plugin: p
    map: { concurrency: 2 }
    retry: { max_attempts: 3, initial_backoff: 1s, jitter: none }
";
    let runner = FakeRunner::new().script("each", |a| {
        if a.item_index == Some(1) && a.attempt == 1 {
            fail(FailureKind::Retryable)
        } else {
            ok_after(Duration::ZERO, a.input.clone())
        }
    });
    let input: Vec<Item> = (0..3).map(|i| Item::text(format!("{i}"))).collect();
    let (outcome, runner) = run(yaml, runner, input).await;
    assert_eq!(outcome.report.status, JobStatus::Succeeded);
    let calls = runner.calls.lock().unwrap().clone();
    let item1: Vec<_> = calls.iter().filter(|c| c.2 == Some(1)).map(|c| (c.1, c.3)).collect();
    assert_eq!(item1, vec![(1, ms(0)), (2, Duration::from_secs(1))]);
    assert_eq!(calls.iter().filter(|c| c.2 == Some(0)).count(), 1);
    assert_eq!(calls.iter().filter(|c| c.2 == Some(2)).count(), 1);
}

#[tokio::test(start_paused = true)]
async fn root_steps_receive_the_job_input() {
    let runner = FakeRunner::new();
    let (outcome, _) = run(DIAMOND, runner, vec![Item::text("hello")]).await;
    assert_eq!(outcome.outputs["root"].as_ref(), &vec![Item::text("hello")]);
    assert_eq!(outcome.outputs["join"].len(), 2);
}

#[test]
fn backoff_grows_until_the_cap_without_overflow() {
    let policy = RetryPolicy {
        max_attempts: 100,
        initial_backoff: ms(100),
        max_backoff: Duration::from_secs(30),
        multiplier: 10.0,
        jitter: weft_workflow::Jitter::None,
        ..RetryPolicy::default()
    };
    assert_eq!(backoff_delay(&policy, 1, None, &HalfJitter), ms(100));
    assert_eq!(backoff_delay(&policy, 2, None, &HalfJitter), ms(1000));
    assert_eq!(backoff_delay(&policy, 3, None, &HalfJitter), ms(10_000));
    assert_eq!(backoff_delay(&policy, 4, None, &HalfJitter), Duration::from_secs(30));
    assert_eq!(backoff_delay(&policy, 90, None, &HalfJitter), Duration::from_secs(30));
    assert_eq!(backoff_delay(&policy, 2, Some(Duration::from_secs(5)), &HalfJitter), Duration::from_secs(5));
}

#[test]
fn random_jitter_stays_within_the_ceiling() {
    for _ in 0..1000 {
        assert!(RandomJitter.sample(ms(250)) <= ms(250));
    }
    assert_eq!(RandomJitter.sample(Duration::ZERO), Duration::ZERO);
}

/// Records every checkpoint it is asked to save.
#[derive(Default)]
struct RecordingSink(Mutex<Vec<(String, usize)>>);

impl CheckpointSink for RecordingSink {
    fn save<'a>(
        &'a self,
        step_id: &'a str,
        items: &'a Arc<Vec<Item>>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(async move { self.0.lock().unwrap().push((step_id.to_string(), items.len())) })
    }
}

#[tokio::test(start_paused = true)]
async fn a_resumed_job_skips_checkpointed_steps_and_checkpoints_the_rest() {
    let workflow = parse("test.yaml", DIAMOND).unwrap();
    let runner = Arc::new(FakeRunner::new());
    let sink = Arc::new(RecordingSink::default());
    let mut completed = BTreeMap::new();
    completed.insert("root".to_string(), Arc::new(vec![Item::text("from checkpoint")]));
    completed.insert("left".to_string(), Arc::new(vec![Item::text("L")]));
    let options = JobOptions { completed, checkpoints: Some(sink.clone()), deadline: None };
    let outcome = Scheduler::new(runner.clone(), SchedulerSettings::default())
        .run_job_with(&workflow, "job-1", vec![Item::text("ignored")], options)
        .await;
    assert_eq!(outcome.report.status, JobStatus::Succeeded);
    assert!(runner.starts("root").is_empty() && runner.starts("left").is_empty(), "finished steps are not run again");
    assert_eq!(runner.starts("right").len(), 1);
    let statuses: Vec<_> = outcome.report.steps.iter().map(|s| s.status).collect();
    assert_eq!(statuses, vec![StepStatus::Resumed, StepStatus::Resumed, StepStatus::Succeeded, StepStatus::Succeeded]);
    // `right` ran on the restored root output; `join` saw L then R.
    assert_eq!(outcome.outputs["right"].as_ref(), &vec![Item::text("from checkpoint")]);
    assert_eq!(outcome.outputs["join"][0], Item::text("L"));
    assert_eq!(*sink.0.lock().unwrap(), vec![("right".to_string(), 1), ("join".to_string(), 2)]);
}

const MAP_STEP: &str = "
name: t
version: '1'
steps:
  - id: each
    plugin: p
    map: { concurrency: 2 }
";

async fn run_with_settings(
    yaml: &str,
    runner: FakeRunner,
    input: Vec<Item>,
    settings: SchedulerSettings,
) -> JobOutcome {
    let workflow = parse("test.yaml", yaml).expect("test workflow parses");
    let scheduler = Scheduler::new(Arc::new(runner), settings).with_jitter(Arc::new(HalfJitter));
    scheduler.run_job(&workflow, "job-1", input).await
}

#[tokio::test(start_paused = true)]
async fn a_map_step_whose_items_return_too_many_bytes_together_fails_with_a_limit_error() {
    // Each item's 1000 bytes are well within any per-attempt limit; 20 of them are not.
    let runner = FakeRunner::new().script("each", |_| ok_after(ms(1), vec![Item::text("x".repeat(1000))]));
    let settings = SchedulerSettings { max_map_output: 10_000, ..SchedulerSettings::default() };
    let input: Vec<Item> = (0..20).map(|i| Item::text(format!("in-{i}"))).collect();
    let outcome = run_with_settings(MAP_STEP, runner, input, settings).await;
    assert_eq!(outcome.report.status, JobStatus::Failed);
    let failure = &outcome.report.error.as_ref().expect("the job failed").failure;
    assert_eq!(failure.kind, FailureKind::Limit);
    assert!(!failure.kind.is_retryable());
    assert!(
        failure.message.contains("map step `each` returned 10.7 KiB")
            && failure.message.contains("from its first 11 input items")
            && failure.message.contains("`max_map_output`"),
        "{}",
        failure.message
    );
    assert!(outcome.report.steps[0].attempts.len() < 20, "the items after the breach are not run");
}

#[tokio::test(start_paused = true)]
async fn a_map_step_whose_items_return_too_many_items_together_fails_with_a_limit_error() {
    let runner = FakeRunner::new().script("each", |_| ok_after(ms(1), vec![Item::text(""); 40]));
    let settings = SchedulerSettings { max_step_items: 100, ..SchedulerSettings::default() };
    let input: Vec<Item> = (0..10).map(|i| Item::text(format!("in-{i}"))).collect();
    let outcome = run_with_settings(MAP_STEP, runner, input, settings).await;
    let failure = &outcome.report.error.as_ref().expect("the job failed").failure;
    assert_eq!(failure.kind, FailureKind::Limit);
    assert!(
        failure.message.contains("returned 120 items from its first 3 input items")
            && failure.message.contains("limit of 100 items per step"),
        "{}",
        failure.message
    );
}

#[tokio::test(start_paused = true)]
async fn a_map_step_within_the_hosts_bounds_is_unaffected() {
    let runner = FakeRunner::new().script("each", |_| ok_after(ms(1), vec![Item::text("x".repeat(1000))]));
    let settings = SchedulerSettings { max_map_output: 20_000, max_step_items: 20, ..SchedulerSettings::default() };
    let input: Vec<Item> = (0..20).map(|i| Item::text(format!("in-{i}"))).collect();
    let outcome = run_with_settings(MAP_STEP, runner, input, settings).await;
    assert_eq!(outcome.report.status, JobStatus::Succeeded, "{:?}", outcome.report.error);
    assert_eq!(outcome.outputs["each"].len(), 20);
}
