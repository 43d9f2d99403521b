//! Misbehaving components are stopped by their limit with a typed, readable
//! error, and the host keeps serving jobs afterwards.

use weft::Item;
use weft::scheduler::{FailureKind, JobStatus};

use crate::support::{host, one_step, run_one};

/// Runs a one-step workflow and returns the failure kind and message.
async fn failure_of(plugin: &str, extra: &str) -> (FailureKind, String, usize) {
    let host = host();
    let outcome = run_one(&host, &one_step(plugin, extra), vec![Item::text("x")]).await;
    assert_eq!(outcome.report.status, JobStatus::Failed, "{plugin} should fail");
    let error = outcome.report.error.expect("failed job carries an error");
    assert_eq!(error.step, "s");
    // The host is still up: the same host runs a healthy job right after.
    let healthy = run_one(&host, &one_step("noop", ""), vec![Item::text("still here")]).await;
    assert_eq!(healthy.report.status, JobStatus::Succeeded);
    (error.failure.kind, error.failure.message, outcome.report.steps[0].attempts.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_infinite_loop_hits_the_deadline() {
    let (kind, message, attempts) =
        failure_of("spin", "    timeout: 300ms\n    retry: { max_attempts: 2, initial_backoff: 10ms }\n").await;
    assert_eq!(kind, FailureKind::Timeout);
    assert!(message.contains("ran past its timeout of 300ms"), "{message}");
    assert_eq!(attempts, 2, "timeouts are retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbounded_allocation_hits_the_memory_limit() {
    let (kind, message, attempts) = failure_of("memory-hog", "    limits: { memory: 32MiB }\n").await;
    assert_eq!(kind, FailureKind::MemoryLimit);
    assert!(message.contains("above its limit of 32 MiB"), "{message}");
    assert_eq!(attempts, 1, "limit breaches are not retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbounded_recursion_overflows_the_stack() {
    let (kind, message, _) = failure_of("deep-recursion", "").await;
    assert_eq!(kind, FailureKind::StackOverflow);
    assert!(message.contains("overflowed its stack"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_is_a_trap_that_quotes_the_panic_message() {
    let (kind, message, attempts) = failure_of("trap", "").await;
    assert_eq!(kind, FailureKind::Trap);
    assert!(message.contains("crashed"), "{message}");
    assert!(message.contains("boom"), "the guest's panic message is shown: {message}");
    assert_eq!(attempts, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_output_is_refused() {
    let (kind, message, _) = failure_of("huge-output", "    limits: { output: 8MiB }\n").await;
    assert_eq!(kind, FailureKind::OutputTooLarge);
    assert!(message.contains("returned 64.0 MiB") || message.contains("returned 64 MiB"), "{message}");
    assert!(message.contains("limit of 8 MiB"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuel_runs_out_on_a_busy_loop() {
    let (kind, message, _) = failure_of("spin", "    timeout: 30s\n    limits: { fuel: 1000000 }\n").await;
    assert_eq!(kind, FailureKind::FuelExhausted);
    assert!(message.contains("fuel budget of 1000000"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_environment_and_network_are_refused() {
    // The premise: the host process itself can read both.
    assert!(std::env::var("PATH").is_ok() && std::path::Path::new("/etc/passwd").exists());
    let host = host();
    let outcome = run_one(
        &host,
        &one_step("sandbox-probe", "    config: { path: /etc/passwd, env_var: PATH }\n"),
        vec![Item::text("probe")],
    )
    .await;
    assert_eq!(outcome.report.status, JobStatus::Succeeded, "{:?}", outcome.report.error);
    let item = &outcome.outputs["s"][0];
    for key in ["file", "dir", "env", "env_count", "net"] {
        let value = item.metadata_value(key).unwrap_or("<missing>");
        assert!(value.starts_with("denied"), "{key} must be refused, got {value}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_attempts_each_get_a_fresh_instance() {
    let host = host();
    let yaml = one_step("echo-config", "    map: { concurrency: 16 }\n    config: { hello: world }\n");
    let input: Vec<Item> = (0..64).map(|i| Item::text(format!("{i}"))).collect();
    let outcome = run_one(&host, &yaml, input).await;
    assert_eq!(outcome.report.status, JobStatus::Succeeded);
    let out = &outcome.outputs["s"];
    assert_eq!(out.len(), 64);
    for (i, item) in out.iter().enumerate() {
        assert_eq!(item.as_text(), Some(r#"{"hello":"world"}"#));
        assert_eq!(item.metadata_value("item_index"), Some(i.to_string().as_str()));
        assert_eq!(item.metadata_value("input_count"), Some("1"));
        assert_eq!(item.metadata_value("job_id"), Some("job-test"));
        assert_eq!(item.metadata_value("calls_seen"), Some("1"), "item {i} ran in memory a previous attempt used");
    }
}

/// Pool slots are reused (and their dirty pages reset in place where the
/// kernel allows): one attempt after another, sixty times, none sees the
/// static or heap state the attempt before it left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_memory_survives_into_the_next_attempt() {
    let host = host();
    let yaml = one_step("echo-config", "    map: { concurrency: 1 }\n");
    let input: Vec<Item> = (0..60).map(|i| Item::text(format!("{i}"))).collect();
    let outcome = run_one(&host, &yaml, input).await;
    assert_eq!(outcome.report.status, JobStatus::Succeeded, "{:?}", outcome.report.error);
    let seen: Vec<&str> = outcome.outputs["s"].iter().map(|i| i.metadata_value("calls_seen").unwrap_or("?")).collect();
    assert_eq!(seen, vec!["1"; 60]);
}
