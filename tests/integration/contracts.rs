//! Input contracts (issue 20): a workflow's `input:` section refuses bad
//! input at every door, `weft run`, `weft submit` (through the workflow
//! registry the workers write) and the worker for jobs published straight to
//! NATS, in words that name what is wrong; and `weft schema`, the JSON Schema
//! of workflow files, agrees with the parser. Real nats-server, real
//! workers and components, the real CLI.

use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine as _;
use weft::queue::{JobState, QueueClient, WorkflowInfo};

use crate::nats::NatsServer;
use crate::queue::{client, fast_retries, queue_config, start_worker};
use crate::support::{load, repo_root, weft_cmd};

/// The first bytes of a Windows executable: what a `.exe` renamed to
/// `.pdf` starts with.
const EXE: &[u8] = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00\xb8\x00\x00\x00This program cannot be run in DOS mode.";

const EXE_REFUSED: &str =
    "input is a Windows executable (MZ header), but workflow `pdf-digest` accepts application/pdf";

fn bundled(name: &str) -> String {
    std::fs::read_to_string(repo_root().join(format!("workflows/{name}.yaml"))).unwrap()
}

/// Waits (at most 30 s) until the registry lists every workflow in `names`.
async fn wait_registered(queue: &QueueClient, names: &[&str]) -> Vec<WorkflowInfo> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let listed = queue.workflows().await.unwrap();
        if names.iter().all(|name| listed.iter().any(|info| info.name == *name)) {
            return listed;
        }
        assert!(Instant::now() < deadline, "the registry never listed {names:?}: {listed:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs the real `weft` in `dir`; exit code, stdout, stderr.
fn weft(dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = tokio::task::block_in_place(|| weft_cmd(dir).args(args).output().unwrap());
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// How many messages the job stream ever took (its last sequence).
async fn jobs_published(server: &NatsServer, queue: &QueueClient) -> u64 {
    let js = async_nats::jetstream::new(queue.nats().clone());
    let mut stream = js.get_stream(&queue_config(server).jobs_stream).await.unwrap();
    stream.info().await.unwrap().state.last_sequence
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weft_submit_refuses_an_exe_sent_as_a_pdf_and_an_oversized_pdf_and_publishes_nothing() {
    let server = NatsServer::start();
    let queue = client(&server).await;
    let worker = start_worker(&server, &[&bundled("pdf-digest")], fast_retries("w1")).await;
    wait_registered(&queue, &["pdf-digest"]).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("invoice.pdf"), EXE).unwrap();
    let mut big = b"%PDF-1.7\n".to_vec();
    big.resize(21 << 20, b' ');
    std::fs::write(dir.path().join("big.pdf"), &big).unwrap();
    let url = server.url();

    let (code, _, stderr) =
        weft(dir.path(), &["submit", "pdf-digest", "--input", "invoice.pdf", "--job-id", "exe-1", "--nats", &url]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains(EXE_REFUSED), "{stderr}");
    assert!(stderr.contains("nothing was submitted"), "{stderr}");
    let (code, _, stderr) =
        weft(dir.path(), &["submit", "pdf-digest", "--input", "big.pdf", "--job-id", "big-1", "--nats", &url]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("input is 21 MiB, over this workflow's 20 MiB limit"), "{stderr}");
    assert_eq!(jobs_published(&server, &queue).await, 0, "a refused input is never published");

    // A good input passes and runs.
    let sample = repo_root().join("workflows/samples/sample.pdf");
    let (code, _, stderr) = weft(
        dir.path(),
        &["submit", "pdf-digest", "--input", sample.to_str().unwrap(), "--job-id", "good-1", "--wait", "--nats", &url],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(queue.status("good-1").await.unwrap().unwrap().state, JobState::Succeeded);
    assert!(queue.status("exe-1").await.unwrap().is_none() && queue.status("big-1").await.unwrap().is_none());
    let summary = worker.stop().await;
    assert_eq!((summary.succeeded, summary.dead_lettered), (1, 0), "{summary:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weft_submit_refuses_a_ticket_missing_a_required_field_naming_it() {
    let server = NatsServer::start();
    let queue = client(&server).await;
    let worker = start_worker(&server, &[&bundled("ticket-triage")], fast_retries("w1")).await;
    wait_registered(&queue, &["ticket-triage"]).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ticket.json"), r#"{"subject": "Charged twice", "from": "a@example.com"}"#).unwrap();
    let (code, _, stderr) =
        weft(dir.path(), &["submit", "ticket-triage", "--input", "ticket.json", "--nats", &server.url()]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("error: input.body: required field missing"), "{stderr}");
    assert_eq!(jobs_published(&server, &queue).await, 0);
    // The sample ticket meets the schema.
    let sample = repo_root().join("workflows/samples/ticket.json");
    let (code, _, stderr) = weft(
        dir.path(),
        &["submit", "ticket-triage", "--input", sample.to_str().unwrap(), "--wait", "--nats", &server.url()],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(worker.stop().await.succeeded, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weft_submit_to_a_workflow_no_worker_registered_says_so_and_submits() {
    let server = NatsServer::start();
    let queue = client(&server).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("invoice.pdf"), EXE).unwrap();
    let (code, stdout, stderr) = weft(
        dir.path(),
        &["submit", "pdf-digest", "--input", "invoice.pdf", "--job-id", "wait-1", "--nats", &server.url()],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("note: no worker has registered workflow `pdf-digest`"), "{stderr}");
    assert_eq!(stdout.trim(), "wait-1");
    assert_eq!(jobs_published(&server, &queue).await, 1, "the job waits in the stream");
}

#[test]
fn weft_run_refuses_an_exe_for_pdf_digest_before_running_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("invoice.pdf"), EXE).unwrap();
    let out = weft_cmd(dir.path()).args(["run", "pdf-digest", "--input", "invoice.pdf"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&format!("error: {EXE_REFUSED}")), "{stderr}");
    assert!(out.stdout.is_empty(), "no job ran: {}", String::from_utf8_lossy(&out.stdout));
    assert!(!stderr.contains("load "), "no step ran: {stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_published_straight_to_nats_against_the_contract_is_dead_lettered_at_once_with_the_reason() {
    let server = NatsServer::start();
    let queue = client(&server).await;
    let js = async_nats::jetstream::new(queue.nats().clone());
    let worker = start_worker(&server, &[&bundled("pdf-digest"), &bundled("ticket-triage")], fast_retries("w1")).await;
    let exe = base64::engine::general_purpose::STANDARD.encode(EXE);
    let jobs = [
        ("pdf-digest", serde_json::json!({"job_id": "raw-exe", "input": {"base64": exe}})),
        (
            "ticket-triage",
            serde_json::json!({"job_id": "raw-ticket", "input": {"json": {"subject": "Refund", "body": ""}}}),
        ),
        (
            "ticket-triage",
            serde_json::json!({"job_id": "raw-good", "input": {"json": {"subject": "Refund", "body": "Charged twice"}}}),
        ),
    ];
    for (workflow, body) in jobs {
        js.publish(format!("weft.jobs.{workflow}"), body.to_string().into()).await.unwrap().await.unwrap();
    }
    for (job, words) in
        [("raw-exe", EXE_REFUSED.to_owned()), ("raw-ticket", "input.body: \"\" is shorter than 1 character".to_owned())]
    {
        let record = queue.wait(job, Duration::from_secs(60)).await.unwrap();
        assert_eq!((record.state, record.attempts), (JobState::DeadLettered, 1), "{record:?}");
        let letter = queue.find_dead_letter(job).await.unwrap().expect("dead-lettered").letter;
        assert_eq!(letter.reason, format!("the job's input is unusable: {words}"), "{letter:?}");
    }
    let record = queue.wait("raw-good", Duration::from_secs(60)).await.unwrap();
    assert_eq!(record.state, JobState::Succeeded, "{record:?}");
    let summary = worker.stop().await;
    assert_eq!((summary.succeeded, summary.dead_lettered, summary.retried), (1, 2, 0), "not retried: {summary:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_lists_the_served_workflows_with_revision_contract_and_graph() {
    let server = NatsServer::start();
    let queue = client(&server).await;
    assert!(queue.workflows().await.unwrap().is_empty(), "no worker started yet");
    let (digest, triage) = (bundled("pdf-digest"), bundled("ticket-triage"));
    let worker = start_worker(&server, &[&digest, &triage], fast_retries("w1")).await;
    let listed = wait_registered(&queue, &["pdf-digest", "ticket-triage"]).await;
    assert_eq!(listed.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(), ["pdf-digest", "ticket-triage"]);
    let info = queue.workflow("pdf-digest").await.unwrap().expect("registered");
    let loaded = load(&crate::support::host(), &digest);
    assert_eq!(info.revision, loaded.revision());
    assert_eq!((info.version.as_str(), info.registered_by.as_str()), ("0.3.0", "w1"));
    let graph: Vec<(&str, &str, Vec<&str>)> = info
        .steps
        .iter()
        .map(|s| (s.id.as_str(), s.plugin.as_str(), s.needs.iter().map(String::as_str).collect()))
        .collect();
    assert_eq!(
        graph,
        [
            ("load", "pdf-load", vec![]),
            ("chunk", "chunk", vec!["load"]),
            ("mask", "pii-mask", vec!["chunk"]),
            ("summarize", "summarize", vec!["mask"]),
            ("notify", "notify", vec!["summarize", "mask"]),
        ]
    );
    // The contract travels with the record and checks without the file.
    assert_eq!(info.check_input(EXE, None).unwrap_err().to_string(), EXE_REFUSED);
    assert_eq!(info.check_input(b"%PDF-1.7\n", Some("application/pdf")), Ok(()));
    let json = serde_json::to_value(&info).unwrap();
    assert_eq!(json["input"]["media_types"], serde_json::json!(["application/pdf"]));
    assert_eq!(json["input"]["max_size"], 20 << 20);
    assert!(queue.workflow("nope").await.unwrap().is_none());
    worker.stop().await;
}

// ---- `weft schema` ----

/// A YAML document as JSON, the way an editor's language server reads it.
fn yaml_to_json(text: &str) -> serde_json::Value {
    use saphyr::{LoadableYamlNode as _, Scalar, Yaml};
    fn convert(node: &Yaml<'_>) -> serde_json::Value {
        match node {
            Yaml::Value(Scalar::Null) => serde_json::Value::Null,
            Yaml::Value(Scalar::Boolean(b)) => (*b).into(),
            Yaml::Value(Scalar::Integer(i)) => (*i).into(),
            Yaml::Value(Scalar::FloatingPoint(f)) => serde_json::json!(f.into_inner()),
            Yaml::Value(Scalar::String(s)) | Yaml::Representation(s, _, _) => s.to_string().into(),
            Yaml::Sequence(items) => items.iter().map(convert).collect(),
            Yaml::Mapping(map) => map
                .iter()
                .map(|(k, v)| match convert(k) {
                    serde_json::Value::String(key) => (key, convert(v)),
                    other => (other.to_string(), convert(v)),
                })
                .collect::<serde_json::Map<_, _>>()
                .into(),
            Yaml::Tagged(_, inner) => convert(inner),
            other => panic!("unexpected yaml node {other:?}"),
        }
    }
    convert(&Yaml::load_from_str(text).unwrap()[0])
}

fn printed_schema() -> jsonschema::Validator {
    let out = weft_cmd(&repo_root()).arg("schema").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema");
    jsonschema::draft202012::new(&schema).expect("the printed schema compiles")
}

fn yaml_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_workflow_file_the_parser_accepts_meets_the_printed_schema() {
    let schema = printed_schema();
    let root = repo_root();
    let mut checked = Vec::new();
    for dir in ["workflows", "bench/e2e/workflows", "tests/workflows/invalid"] {
        for path in yaml_files(&root.join(dir)) {
            let text = std::fs::read_to_string(&path).unwrap();
            // Fixtures refused by the parser itself are the next test's;
            // those refused only by a host (a missing secret, fuel without
            // `--fuel`) are valid files.
            if weft::workflow::parse(&path.display().to_string(), &text).is_err() {
                continue;
            }
            let errors: Vec<String> =
                schema.iter_errors(&yaml_to_json(&text)).map(|e| format!("{}: {e}", e.instance_path())).collect();
            assert!(errors.is_empty(), "{} breaks the schema: {errors:#?}", path.display());
            checked.push(path);
        }
    }
    assert!(checked.len() >= 8, "too few files checked: {checked:?}");
    assert!(checked.iter().any(|p| p.ends_with("workflows/ticket-triage.yaml")), "{checked:?}");
}

#[test]
fn a_file_the_parser_refuses_for_an_unknown_key_the_schema_refuses_too() {
    let schema = printed_schema();
    let fixture = std::fs::read_to_string(repo_root().join("tests/workflows/invalid/unknown-field.yaml")).unwrap();
    let base = bundled("pdf-digest");
    let typos = [
        fixture,
        base.replace("  max_size: 20MiB", "  max_sise: 20MiB"),
        base.replace("  timeout: 60s\n  retry:", "  timeout: 60s\n  retries:"),
        base.replace(
            "    map: { concurrency: 4 }\n    config:\n      size",
            "    map: { concurency: 4 }\n    config:\n      size",
        ),
        base.replace("    limits: { memory: 512MiB,", "    limits: { memroy: 512MiB,"),
    ];
    for text in typos {
        let error = weft::workflow::parse("t.yaml", &text).expect_err("the parser refuses it").to_string();
        assert!(error.contains("unknown field"), "{error}");
        assert!(!schema.is_valid(&yaml_to_json(&text)), "the schema accepts what the parser refused: {error}");
    }
}
