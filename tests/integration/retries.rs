//! Retry schedules with real components: retryable failures follow the
//! step's policy, retry-after is honoured, fatal errors are not retried, and
//! the job report records every attempt.

use std::time::Duration;

use weft::Item;
use weft::scheduler::{FailureKind, JobStatus};

use crate::support::{host, one_step, run_one};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flaky_step_is_retried_until_it_succeeds() {
    let host = host();
    let yaml = one_step(
        "flaky",
        "    config: { fail_times: 2 }\n    retry: { max_attempts: 3, initial_backoff: 50ms, multiplier: 2, jitter: none }\n",
    );
    let outcome = run_one(&host, &yaml, vec![Item::text("payload")]).await;
    assert_eq!(outcome.report.status, JobStatus::Succeeded, "{:?}", outcome.report.error);
    let step = &outcome.report.steps[0];
    let kinds: Vec<_> = step.attempts.iter().map(|a| a.error.as_ref().map(|e| e.kind)).collect();
    assert_eq!(kinds, vec![Some(FailureKind::Retryable), Some(FailureKind::Retryable), None]);
    let delays: Vec<_> = step.attempts.iter().map(|a| a.retry_in).collect();
    assert_eq!(delays, vec![Some(Duration::from_millis(50)), Some(Duration::from_millis(100)), None]);
    // Each attempt starts no sooner than the previous one's end plus its delay.
    for pair in step.attempts.windows(2) {
        let earliest = pair[0].started_at + pair[0].duration + pair[0].retry_in.unwrap_or_default();
        assert!(pair[1].started_at >= earliest, "{:?} started before {earliest:?}", pair[1]);
    }
    let out = &outcome.outputs["s"][0];
    assert_eq!(out.metadata_value("succeeded_on_attempt"), Some("3"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempts_run_out_and_the_job_fails_with_the_history() {
    let host = host();
    let yaml =
        one_step("flaky", "    config: { fail_times: 5 }\n    retry: { max_attempts: 2, initial_backoff: 10ms }\n");
    let outcome = run_one(&host, &yaml, vec![Item::text("payload")]).await;
    assert_eq!(outcome.report.status, JobStatus::Failed);
    assert_eq!(outcome.report.steps[0].attempts.len(), 2);
    let error = outcome.report.error.expect("error");
    assert_eq!(error.failure.kind, FailureKind::Retryable);
    assert!(error.failure.message.contains("attempt 2 of 5 fails on purpose"), "{}", error.failure.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fatal_step_error_is_not_retried() {
    let host = host();
    let yaml = one_step("flaky", "    config: { fail_times: 1, fatal: true }\n    retry: { max_attempts: 5 }\n");
    let outcome = run_one(&host, &yaml, vec![Item::text("payload")]).await;
    assert_eq!(outcome.report.status, JobStatus::Failed);
    assert_eq!(outcome.report.steps[0].attempts.len(), 1);
    assert_eq!(outcome.report.error.expect("error").failure.kind, FailureKind::Fatal);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured_even_above_the_backoff() {
    let host = host();
    let yaml = one_step(
        "rate-limited",
        "    config: { retry_after_ms: 700, times: 1 }\n    retry: { max_attempts: 2, initial_backoff: 10ms, jitter: full }\n",
    );
    let outcome = run_one(&host, &yaml, vec![Item::text("payload")]).await;
    assert_eq!(outcome.report.status, JobStatus::Succeeded, "{:?}", outcome.report.error);
    let attempts = &outcome.report.steps[0].attempts;
    assert_eq!(attempts.len(), 2);
    let first_error = attempts[0].error.as_ref().expect("first attempt failed");
    assert_eq!(first_error.kind, FailureKind::RetryAfter);
    assert_eq!(first_error.retry_after, Some(Duration::from_millis(700)));
    assert_eq!(attempts[0].retry_in, Some(Duration::from_millis(700)));
    assert!(attempts[1].started_at >= Duration::from_millis(700), "retried too soon: {:?}", attempts[1].started_at);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_job_report_serialises_every_attempt() {
    let host = host();
    let yaml =
        one_step("flaky", "    config: { fail_times: 1 }\n    retry: { max_attempts: 2, initial_backoff: 1ms }\n");
    let outcome = run_one(&host, &yaml, vec![Item::text("payload")]).await;
    let json = serde_json::to_value(&outcome.report).unwrap();
    assert_eq!(json["status"], "succeeded");
    let attempts = json["steps"][0]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0]["error"]["kind"], "retryable");
    assert!(attempts[0]["retry_in_ms"].as_f64().is_some());
    assert_eq!(attempts[1]["output_items"], 1);
    assert!(json["steps"][0]["duration_ms"].as_f64().unwrap() >= 0.0);
}
