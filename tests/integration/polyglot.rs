//! Plugins written in Python and JavaScript: the mixed-language workflow
//! runs end to end (in process, under `weft run` and under `weft serve`), and
//! misbehaving Python and JavaScript components are contained exactly like
//! Rust ones, with the same typed errors.

use std::process::{Command, Stdio};
use std::time::Duration;

use weft::Item;
use weft::scheduler::{FailureKind, JobStatus};

use crate::nats::NatsServer;
use crate::support::{host, one_step, precompile, repo_root, run_one, wait_exit, weft_cmd};

/// The non-Rust components of `workflows/pdf-brief.yaml`.
const BRIEF_PLUGINS: &[&str] = &["keyword-tagger", "markdown-format"];

/// Checks the brief `markdown-format` rendered for the sample PDF.
fn assert_sample_brief(markdown: &str) {
    assert!(markdown.starts_with("# Weft sample document\n"), "{markdown}");
    assert!(markdown.contains("**Language:** en"), "the Python tagger found English: {markdown}");
    assert!(markdown.contains("**Pages:** 2"), "{markdown}");
    assert!(markdown.contains("## Summary\n\n"), "{markdown}");
    assert!(markdown.contains("Shipments grew by twelve percent"), "{markdown}");
    assert!(markdown.contains("## Keywords\n\n`"), "{markdown}");
    assert!(!markdown.contains("jane.doe@example.com"), "built from masked text: {markdown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_python_and_javascript_steps_run_in_one_workflow() {
    precompile(BRIEF_PLUGINS);
    let host = host();
    let workflow = host.load_workflow_file(repo_root().join("workflows/pdf-brief.yaml")).expect("pdf-brief loads");
    let pdf = std::fs::read(repo_root().join("workflows/samples/sample.pdf")).unwrap();
    let outcome = host.run_job(&workflow, "brief-1", vec![Item::bytes(pdf)]).await;
    assert_eq!(outcome.report.status, JobStatus::Succeeded, "{:?}", outcome.report.error);
    let ids: Vec<&str> = outcome.report.steps.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["load", "chunk", "mask", "tag", "summarize", "brief"]);

    // The Python step tagged every masked chunk.
    let tagged = &outcome.outputs["tag"];
    assert_eq!(tagged.len(), outcome.outputs["mask"].len());
    for chunk in tagged.iter() {
        assert_eq!(chunk.metadata_value("language"), Some("en"), "{:?}", chunk.metadata);
        let keywords = chunk.metadata_value("keywords").unwrap_or_default();
        assert!(!keywords.is_empty() && !keywords.contains("email"), "{keywords}");
        assert!(chunk.metadata_value("page").is_some(), "upstream metadata is kept: {:?}", chunk.metadata);
    }
    // The JavaScript step rendered one Markdown item from the summary and the tags.
    let brief = &outcome.outputs["brief"];
    assert_eq!(brief.len(), 1);
    assert_eq!(brief[0].metadata_value("content_type"), Some("text/markdown"));
    assert_sample_brief(brief[0].as_text().expect("markdown is text"));
}

#[test]
fn weft_run_runs_the_mixed_language_workflow() {
    precompile(BRIEF_PLUGINS);
    let out = weft_cmd(&repo_root())
        .args(["run", "workflows/pdf-brief.yaml", "--input", "workflows/samples/sample.pdf"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["status"], "succeeded");
    assert_sample_brief(json["outputs"]["brief"][0]["payload"]["text"].as_str().unwrap_or_default());
    let plugins: Vec<&str> = json["steps"].as_array().unwrap().iter().map(|s| s["plugin"].as_str().unwrap()).collect();
    assert_eq!(plugins, ["pdf-load", "chunk", "pii-mask", "keyword-tagger", "summarize", "markdown-format"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weft_serve_runs_the_mixed_language_workflow() {
    precompile(BRIEF_PLUGINS);
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(repo_root().join("workflows/pdf-brief.yaml"), dir.path().join("pdf-brief.yaml")).unwrap();
    let worker_log = tempfile::NamedTempFile::new().unwrap();
    let mut worker = weft_cmd(dir.path())
        .args(["serve", "--nats", &server.url(), "--workflows", ".", "--drain-grace-secs", "20", "-v"])
        .stdout(Stdio::null())
        .stderr(worker_log.reopen().unwrap())
        .spawn()
        .expect("weft serve starts");
    let pdf = repo_root().join("workflows/samples/sample.pdf");
    let out = tokio::task::block_in_place(|| {
        weft_cmd(dir.path())
            .args(["submit", "pdf-brief", "--input"])
            .arg(&pdf)
            .args(["--wait", "--timeout-secs", "300", "--job-id", "brief-1", "--nats", &server.url()])
            .output()
            .unwrap()
    });
    let stopped = Command::new("kill").args(["-TERM", &worker.id().to_string()]).status().is_ok_and(|s| s.success());
    let exit = wait_exit(&mut worker, Duration::from_secs(30));
    // A worker that did not stop in time is killed, never left behind.
    let _ = worker.kill();
    let _ = worker.wait();
    let log = std::fs::read_to_string(worker_log.path()).unwrap_or_default();
    assert_eq!(out.status.code(), Some(0), "{}\nworker log:\n{log}", String::from_utf8_lossy(&out.stderr));
    let record: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(record["state"], "succeeded", "{record}");
    assert_sample_brief(record["outputs"]["brief"][0]["payload"]["text"].as_str().unwrap_or_default());
    assert!(stopped && exit.and_then(|s| s.code()) == Some(0), "SIGTERM stops the worker cleanly: {exit:?}");
}

/// Runs the misbehaving `plugin` in `mode` as a one-step workflow with
/// `extra` step fields; returns the failure kind, message and attempt count.
async fn failure_of(plugin: &str, mode: &str, extra: &str) -> (FailureKind, String, usize) {
    precompile(&[plugin]);
    let host = host();
    let yaml = one_step(plugin, &format!("    config: {{ mode: {mode} }}\n{extra}"));
    let outcome = run_one(&host, &yaml, vec![Item::text("x")]).await;
    assert_eq!(outcome.report.status, JobStatus::Failed, "{plugin} in mode {mode} should fail");
    let error = outcome.report.error.expect("a failed job carries an error");
    // The host is still up: the same component runs a healthy call right after.
    let healthy = run_one(&host, &one_step(plugin, "    config: { mode: echo }\n"), vec![Item::text("ok")]).await;
    assert_eq!(healthy.report.status, JobStatus::Succeeded, "{:?}", healthy.report.error);
    assert_eq!(healthy.outputs["s"][0].as_text(), Some("ok"));
    (error.failure.kind, error.failure.message, outcome.report.steps[0].attempts.len())
}

const MISBEHAVING: &[(&str, &str)] = &[("misbehaving-python", "python"), ("misbehaving-js", "javascript")];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_and_javascript_infinite_loops_hit_the_deadline() {
    for (plugin, _) in MISBEHAVING {
        let (kind, message, attempts) =
            failure_of(plugin, "loop", "    timeout: 500ms\n    retry: { max_attempts: 2, initial_backoff: 10ms }\n")
                .await;
        assert_eq!(kind, FailureKind::Timeout, "{plugin}: {message}");
        assert!(message.contains("ran past its timeout of 500ms"), "{plugin}: {message}");
        assert_eq!(attempts, 2, "{plugin}: timeouts are retried, as for Rust steps");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_and_javascript_unbounded_allocation_hits_the_memory_limit() {
    for (plugin, _) in MISBEHAVING {
        let (kind, message, attempts) = failure_of(plugin, "allocate", "    limits: { memory: 96MiB }\n").await;
        assert_eq!(kind, FailureKind::MemoryLimit, "{plugin}: {message}");
        assert!(message.contains("above its limit of 96 MiB"), "{plugin}: {message}");
        assert_eq!(attempts, 1, "{plugin}: limit breaches are not retried");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_and_javascript_exceptions_are_traps_that_quote_the_exception() {
    for (plugin, language) in MISBEHAVING {
        let (kind, message, attempts) = failure_of(plugin, "raise", "").await;
        assert_eq!(kind, FailureKind::Trap, "{plugin}: {message}");
        assert!(message.contains("crashed"), "{plugin}: {message}");
        assert!(message.contains(&format!("boom from {language}")), "{plugin}: the exception is shown: {message}");
        assert_eq!(attempts, 1, "{plugin}: traps are not retried");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_and_javascript_typed_errors_map_onto_retries() {
    for (plugin, language) in MISBEHAVING {
        let retry = "    retry: { max_attempts: 3, initial_backoff: 5ms, max_backoff: 20ms }\n";
        let (kind, message, attempts) = failure_of(plugin, "retryable", retry).await;
        assert_eq!(kind, FailureKind::Retryable, "{plugin}: {message}");
        assert!(message.contains(&format!("{language} says try again (attempt 3)")), "{plugin}: {message}");
        assert_eq!(attempts, 3, "{plugin}: retryable errors use every attempt");

        let (kind, message, attempts) = failure_of(plugin, "fatal", retry).await;
        assert_eq!(kind, FailureKind::Fatal, "{plugin}: {message}");
        assert!(message.contains("can never work"), "{plugin}: {message}");
        assert_eq!(attempts, 1, "{plugin}: fatal errors are never retried");
    }
}
