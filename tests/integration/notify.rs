//! The delivery end of the flagship workflows against real loopback
//! servers: the LLM variant of pdf-digest (an OpenAI-compatible server, a
//! webhook receiver that checks the HMAC signature, aiosmtpd), webhook
//! status handling, and the ticket-triage workflow.

use weft::Item;
use weft::capabilities::{CapabilityConfig, EmailConfig, LlmConfig, SecretStore};
use weft::scheduler::{FailureKind, JobStatus};

use crate::servers::{HttpServer, Recorded, Reply, SmtpServer, chat_completion};
use crate::support::{host_with_capabilities, load, repo_root, texts};

const SIGNING_KEY: &str = "whsec-test-0123456789";

fn sample_pdf() -> Item {
    let pdf = std::fs::read(repo_root().join("workflows/samples/sample.pdf")).unwrap();
    Item::bytes(pdf).with_metadata("source", "sample.pdf")
}

/// Checks `x-weft-signature: sha256=HEX` = HMAC(key, "{timestamp}.{body}").
fn signature_is_valid(request: &Recorded, key: &str) -> bool {
    let (Some(timestamp), Some(signature)) = (request.header("x-weft-timestamp"), request.header("x-weft-signature"))
    else {
        return false;
    };
    let mut signed = format!("{timestamp}.").into_bytes();
    signed.extend_from_slice(&request.body);
    let expected: String =
        weft::capabilities::secrets::hmac_sha256(key.as_bytes(), &signed).iter().map(|b| format!("{b:02x}")).collect();
    signature == format!("sha256={expected}")
}

/// workflows/pdf-digest-llm.yaml with its example destinations pointed at the test's servers.
fn llm_digest_yaml(webhook: &HttpServer) -> String {
    let text = std::fs::read_to_string(repo_root().join("workflows/pdf-digest-llm.yaml")).unwrap();
    assert!(text.contains("https://hooks.example.com"), "the example destinations are where the test expects");
    text.replace("https://hooks.example.com/weft/digest", &webhook.url("/weft/digest"))
        .replace("\"https://hooks.example.com\"", &format!("\"{}\"", webhook.grant()))
        .replace("reviewer@example.com", "reviewer@example.test")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_llm_digest_is_summarised_signed_posted_and_mailed() {
    let prompts = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = prompts.clone();
    let llm = HttpServer::start(move |_, request| {
        seen.lock().unwrap().push(request.json()["messages"][0]["content"].as_str().unwrap_or_default().to_string());
        Reply::new(200, chat_completion("Northwind shipments grew and a pilot of electric vans starts in April."))
    })
    .await;
    let webhook = HttpServer::always(202).await;
    let smtp = SmtpServer::start();
    let config = CapabilityConfig {
        llm: Some(LlmConfig::new(&llm.url("/v1"), "test-model", Some("sk-test".into())).unwrap()),
        email: Some(EmailConfig::new(&smtp.url(), "weft@example.test").unwrap()),
        secrets: SecretStore::empty().with_value("WEBHOOK_SIGNING_KEY", SIGNING_KEY),
        ..CapabilityConfig::default()
    };
    let host = host_with_capabilities(config);
    let loaded = load(&host, &llm_digest_yaml(&webhook));
    let outcome = host.run_job(&loaded, "job-llm-digest", vec![sample_pdf()]).await;
    assert_eq!(outcome.report.status, JobStatus::Succeeded, "{:#?}", outcome.report);

    // The model saw masked text only.
    let prompts = prompts.lock().unwrap().clone();
    assert_eq!(prompts.len(), 1, "the sample fits one window");
    assert!(prompts[0].contains("[EMAIL]") && !prompts[0].contains("jane.doe@example.com"), "{}", prompts[0]);
    let summary = &outcome.outputs["summarize"][0];
    assert_eq!(summary.metadata_value("mode"), Some("llm"));
    assert_eq!(summary.metadata_value("model"), Some("test-model"));

    // One signed webhook delivery with an idempotency key.
    let deliveries = webhook.requests();
    assert_eq!(deliveries.len(), 1);
    let delivery = &deliveries[0];
    assert_eq!(delivery.method, "POST");
    assert_eq!(delivery.path, "/weft/digest");
    assert!(signature_is_valid(delivery, SIGNING_KEY), "signature checks out: {:?}", delivery.headers);
    assert!(!signature_is_valid(delivery, "some-other-key"));
    assert_eq!(delivery.header("idempotency-key").map(str::len), Some(32));
    assert_eq!(delivery.header("x-weft-job-id"), Some("job-llm-digest"));
    let body = delivery.json();
    assert_eq!(body["job_id"], "job-llm-digest");
    assert_eq!(body["workflow"], "pdf-digest-llm");
    assert!(body["summary"].as_str().unwrap().contains("electric vans"));
    assert_eq!(body["findings"]["EMAIL"], 1);
    let raw = String::from_utf8_lossy(&delivery.body);
    assert!(!raw.contains(SIGNING_KEY) && !raw.contains("jane.doe@example.com"));

    // And one e-mail.
    let mail = smtp.wait_for(1).await;
    assert_eq!(mail.len(), 1);
    assert!(mail[0].contains("Subject: Digest of job job-llm-digest (pdf-digest-llm)"), "{}", mail[0]);
    assert!(mail[0].contains("electric vans"), "{}", mail[0]);
    assert!(mail[0].contains("X-Idempotency-Key:"), "{}", mail[0]);
    assert_eq!(texts(&outcome, "notify").len(), 2, "one delivery record per channel");
}

fn webhook_only(url: &str, grant: &str, attempts: u32) -> String {
    format!(
        "name: hook\nversion: '1'\nsteps:\n  - id: notify\n    plugin: notify\n    \
         retry: {{ max_attempts: {attempts}, initial_backoff: 10ms, jitter: none }}\n    \
         grants: {{ http: [\"{grant}\"] }}\n    config: {{ channels: [{{ type: webhook, url: \"{url}\" }}] }}\n"
    )
}

#[tokio::test]
async fn a_webhook_5xx_is_retried_and_a_4xx_is_fatal() {
    let flaky = HttpServer::start(|n, _| if n == 0 { Reply::new(503, "busy") } else { Reply::new(200, "ok") }).await;
    let host = host_with_capabilities(CapabilityConfig::default());
    let loaded = load(&host, &webhook_only(&flaky.url("/hook"), &flaky.grant(), 3));
    let outcome = host.run_job(&loaded, "job-hook", vec![Item::text("done")]).await;
    assert_eq!(outcome.report.status, JobStatus::Succeeded, "{:#?}", outcome.report);
    assert_eq!(outcome.report.steps[0].attempts.len(), 2);
    let requests = flaky.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[0].header("idempotency-key"),
        requests[1].header("idempotency-key"),
        "a retry carries the same idempotency key"
    );

    let gone = HttpServer::always(404).await;
    let loaded = load(&host, &webhook_only(&gone.url("/hook"), &gone.grant(), 3));
    let outcome = host.run_job(&loaded, "job-hook-404", vec![Item::text("done")]).await;
    assert_eq!(outcome.report.status, JobStatus::Failed);
    let step = &outcome.report.steps[0];
    assert_eq!(step.attempts.len(), 1, "a 404 is not retried");
    let error = step.error.as_ref().unwrap();
    assert_eq!(error.kind, FailureKind::Fatal);
    assert!(error.message.contains("refused the notification with 404"), "{}", error.message);
    assert_eq!(gone.requests().len(), 1);
}

#[tokio::test]
async fn a_webhook_to_an_ungranted_host_fails_without_sending() {
    let receiver = HttpServer::always(200).await;
    let host = host_with_capabilities(CapabilityConfig::default());
    let loaded = load(&host, &webhook_only(&receiver.url("/hook"), "hooks.example.com", 3));
    let outcome = host.run_job(&loaded, "job-denied", vec![Item::text("done")]).await;
    assert_eq!(outcome.report.status, JobStatus::Failed);
    let error = outcome.report.steps[0].error.as_ref().unwrap();
    assert_eq!(error.kind, FailureKind::Fatal);
    assert!(error.message.contains("its `http` grant allows `hooks.example.com`"), "{}", error.message);
    assert!(receiver.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticket_triage_masks_classifies_and_drafts_for_review() {
    let host = host_with_capabilities(CapabilityConfig::default());
    let loaded = host.load_workflow_file(repo_root().join("workflows/ticket-triage.yaml")).expect("workflow loads");
    let ticket = std::fs::read_to_string(repo_root().join("workflows/samples/ticket.json")).unwrap();
    let outcome = host.run_job(&loaded, "job-ticket", vec![Item::text(ticket)]).await;
    assert_eq!(outcome.report.status, JobStatus::Succeeded, "{:#?}", outcome.report);
    let triage = &outcome.outputs["triage"][0];
    assert_eq!(triage.metadata_value("category"), Some("billing"));
    assert_eq!(triage.metadata_value("urgency"), Some("high"));
    assert_eq!(triage.metadata_value("status"), Some("draft-awaiting-review"));
    let note = &texts(&outcome, "notify")[0];
    assert!(note.contains("Category: billing · urgency: high"), "{note}");
    assert!(note.contains("DRAFT — awaiting human review"), "{note}");
    assert!(note.contains("Personal data masked:") && note.contains("EMAIL: 1"), "{note}");
    for planted in ["maria.keller@example.org", "4111 1111 1111 1111", "7946 0958"] {
        assert!(!note.contains(planted), "`{planted}` leaked into the note: {note}");
    }
}
