//! Host capabilities against real loopback servers: grants decide what
//! leaves the machine, secrets are used for a step but never given to it,
//! the LLM's rate limits become retry-after, and mail reaches a real SMTP
//! server. The `capability-probe` test component reports each call's outcome.

use std::time::Duration;

use serde_json::Value;
use weft::capabilities::{CapabilityConfig, EmailConfig, HttpSettings, LlmConfig, SecretStore};
use weft::scheduler::{FailureKind, JobStatus};

use crate::servers::{HttpServer, Reply, SmtpServer, chat_completion};
use crate::support::{host_with_capabilities, load, texts};

fn probe(grants: &str, calls: Value) -> String {
    format!(
        "name: probe\nversion: '1'\nsteps:\n  - id: probe\n    plugin: capability-probe\n    retry: {{ max_attempts: 1 }}\n{grants}    config: {}\n",
        serde_json::json!({ "calls": calls })
    )
}

pub(crate) async fn run_probe(config: CapabilityConfig, grants: &str, calls: Value) -> Vec<Value> {
    let host = host_with_capabilities(config);
    let loaded = load(&host, &probe(grants, calls));
    let outcome = host.run_job(&loaded, "job-probe", vec![]).await;
    assert_eq!(outcome.report.status, JobStatus::Succeeded, "{:#?}", outcome.report);
    texts(&outcome, "probe").iter().map(|t| serde_json::from_str(t).unwrap()).collect()
}

pub(crate) fn error_kind(result: &Value) -> &str {
    result.get("error").and_then(Value::as_str).unwrap_or("none")
}

fn message(result: &Value) -> &str {
    result.get("message").and_then(Value::as_str).unwrap_or_default()
}

#[tokio::test]
async fn http_reaches_granted_hosts_only_and_denied_calls_send_nothing() {
    let granted = HttpServer::start(|_, _| Reply::new(200, "hello")).await;
    let other = HttpServer::always(200).await;
    let grants = format!("    grants: {{ http: [\"{}\"] }}\n", granted.grant());
    let results = run_probe(
        CapabilityConfig::default(),
        &grants,
        serde_json::json!([
            { "http": { "url": granted.url("/ok") } },
            { "http": { "url": other.url("/secret-exfil"), "method": "POST", "body": "data" } },
            { "http": { "url": "file:///etc/passwd" } },
        ]),
    )
    .await;
    assert_eq!(results[0]["ok"]["status"], 200);
    assert_eq!(results[0]["ok"]["body"], "hello");
    assert_eq!(error_kind(&results[1]), "denied");
    assert!(
        message(&results[1]).contains(&format!("may not reach http://{}", other.addr))
            && message(&results[1]).contains("nothing was sent"),
        "{}",
        message(&results[1])
    );
    assert_eq!(error_kind(&results[2]), "invalid-request");
    assert_eq!(granted.requests().len(), 1);
    assert!(other.requests().is_empty(), "a denied call must not reach the server");
}

#[tokio::test]
async fn a_step_without_an_http_grant_is_denied() {
    let server = HttpServer::always(200).await;
    let results =
        run_probe(CapabilityConfig::default(), "", serde_json::json!([{ "http": { "url": server.url("/") } }])).await;
    assert_eq!(error_kind(&results[0]), "denied");
    assert!(message(&results[0]).contains("it has no `http` grant"), "{}", message(&results[0]));
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn redirects_are_checked_hop_by_hop() {
    let elsewhere = HttpServer::always(200).await;
    let target = elsewhere.url("/landing");
    let granted = HttpServer::start(move |_, request| {
        if request.path == "/inside" {
            Reply::new(200, "followed")
        } else if request.path == "/hop" {
            Reply::new(302, "").header("location", "/inside")
        } else {
            Reply::new(302, "").header("location", &target)
        }
    })
    .await;
    let grants = format!("    grants: {{ http: [\"{}\"] }}\n", granted.grant());
    let results = run_probe(
        CapabilityConfig::default(),
        &grants,
        serde_json::json!([
            { "http": { "url": granted.url("/hop") } },
            { "http": { "url": granted.url("/away") } },
        ]),
    )
    .await;
    assert_eq!(results[0]["ok"]["body"], "followed", "a redirect inside the grant is followed");
    assert_eq!(error_kind(&results[1]), "denied");
    assert!(message(&results[1]).contains("a redirect from"), "{}", message(&results[1]));
    assert!(elsewhere.requests().is_empty(), "the redirect target outside the grant was never contacted");
}

#[tokio::test]
async fn responses_above_the_cap_are_refused() {
    let server = HttpServer::start(|_, _| Reply::new(200, vec![b'x'; 64 * 1024])).await;
    let config = CapabilityConfig {
        http: HttpSettings { max_response_bytes: 1024, ..HttpSettings::default() },
        ..CapabilityConfig::default()
    };
    let grants = format!("    grants: {{ http: [\"{}\"] }}\n", server.grant());
    let results = run_probe(config, &grants, serde_json::json!([{ "http": { "url": server.url("/big") } }])).await;
    assert_eq!(error_kind(&results[0]), "too-large");
    assert!(message(&results[0]).contains("above the host's cap of 1 KiB"), "{}", message(&results[0]));
}

#[tokio::test]
async fn secrets_are_used_for_the_step_and_never_handed_over() {
    let server = HttpServer::always(204).await;
    let secrets = SecretStore::empty().with_value("SIGNING_KEY", "k3y").with_value("OTHER_KEY", "0ther");
    let config = CapabilityConfig { secrets, ..CapabilityConfig::default() };
    let grants = format!("    grants: {{ http: [\"{}\"], secrets: [SIGNING_KEY] }}\n", server.grant());
    let results = run_probe(
        config,
        &grants,
        serde_json::json!([
            { "hmac": "SIGNING_KEY" },
            { "hmac": "OTHER_KEY" },
            { "http": { "url": server.url("/with-secret"), "secret_header": ["x-api-key", "SIGNING_KEY"] } },
            { "http": { "url": server.url("/steal"), "secret_header": ["x-api-key", "OTHER_KEY"] } },
        ]),
    )
    .await;
    let expected: String =
        weft::capabilities::secrets::hmac_sha256(b"k3y", b"probe").iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(results[0]["ok"], expected.as_str(), "the step gets the MAC, computed by the host");
    assert_eq!(error_kind(&results[1]), "denied");
    assert!(message(&results[1]).contains("was not granted secret `OTHER_KEY`"), "{}", message(&results[1]));
    assert_eq!(results[2]["ok"]["status"], 204);
    assert_eq!(error_kind(&results[3]), "denied");
    let requests = server.requests();
    assert_eq!(requests.len(), 1, "the request with an ungranted secret was never sent");
    assert_eq!(requests[0].header("x-api-key"), Some("k3y"));
    for result in &results {
        let text = result.to_string();
        assert!(!text.contains("k3y") && !text.contains("0ther"), "a secret value reached the component: {text}");
    }
}

#[tokio::test]
async fn a_granted_secret_the_host_lacks_is_reported_at_load_time() {
    let host = host_with_capabilities(CapabilityConfig::default());
    let yaml = probe("    grants: { secrets: [NOT_SET_ANYWHERE_42] }\n", serde_json::json!([]));
    let error = host.load_workflow_str("probe.yaml", &yaml, std::path::Path::new(".")).unwrap_err().to_string();
    assert!(error.contains("granted secret `NOT_SET_ANYWHERE_42`, but this host has no value for it"), "{error}");
}

#[tokio::test]
async fn llm_calls_carry_the_hosts_key_and_429_becomes_retry_after() {
    let endpoint = HttpServer::start(|n, request| {
        if request.path != "/v1/chat/completions" {
            return Reply::new(404, "no such route");
        }
        if n == 0 {
            Reply::new(429, r#"{"error":{"message":"Rate limit reached"}}"#).header("retry-after", "1")
        } else {
            Reply::new(200, chat_completion("a completion")).header("content-type", "application/json")
        }
    })
    .await;
    let llm = LlmConfig::new(&endpoint.url("/v1"), "test-model", Some("sk-host-only".into())).unwrap();
    let config = CapabilityConfig { llm: Some(llm), ..CapabilityConfig::default() };
    let results = run_probe(
        config.clone(),
        "    grants: { llm: true }\n",
        serde_json::json!([{ "llm": "first" }, { "llm": "second" }]),
    )
    .await;
    assert_eq!(error_kind(&results[0]), "rate-limited");
    assert!(message(&results[0]).starts_with("1000 ms:"), "{}", message(&results[0]));
    assert!(message(&results[0]).contains("Rate limit reached"));
    assert_eq!(results[1]["ok"], "a completion");
    let requests = endpoint.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1].header("authorization"), Some("Bearer sk-host-only"));
    let body = requests[1].json();
    assert_eq!(body["model"], "test-model");
    assert_eq!(body["messages"][0]["content"], "second");

    let denied = run_probe(config, "", serde_json::json!([{ "llm": "x" }])).await;
    assert_eq!(error_kind(&denied[0]), "denied");
    assert_eq!(endpoint.requests().len(), 2, "a denied call never reaches the endpoint");
}

#[tokio::test]
async fn the_triage_step_honours_the_llms_retry_after() {
    let endpoint = HttpServer::start(|n, _| {
        if n == 0 {
            Reply::new(503, r#"{"error":{"message":"overloaded"}}"#).header("retry-after", "1")
        } else {
            let answer =
                r#"{"category":"billing","urgency":"high","reason":"double charge","reply":"We will refund you."}"#;
            Reply::new(200, chat_completion(answer))
        }
    })
    .await;
    let llm = LlmConfig::new(&endpoint.url("/v1"), "test-model", None).unwrap();
    let host = host_with_capabilities(CapabilityConfig { llm: Some(llm), ..CapabilityConfig::default() });
    let yaml = "name: t\nversion: '1'\nsteps:\n  - id: triage\n    plugin: triage\n    grants: { llm: true }\n    retry: { max_attempts: 3, initial_backoff: 10ms, jitter: none }\n    config: { mode: llm }\n";
    let loaded = load(&host, yaml);
    let ticket = weft::Item::text(r#"{"subject":"Charged twice","body":"Please refund me"}"#);
    let outcome = host.run_job(&loaded, "job-llm", vec![ticket]).await;
    assert_eq!(outcome.report.status, JobStatus::Succeeded, "{:#?}", outcome.report);
    let attempts = &outcome.report.steps[0].attempts;
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0].error.as_ref().map(|e| e.kind), Some(FailureKind::RetryAfter));
    let gap = attempts[1].started_at - attempts[0].started_at;
    assert!(gap >= Duration::from_millis(1000), "the second attempt waited for Retry-After: {gap:?}");
    let item = &outcome.outputs["triage"][0];
    assert_eq!(item.metadata_value("category"), Some("billing"));
    assert_eq!(item.metadata_value("status"), Some("draft-awaiting-review"));
    assert!(texts(&outcome, "triage")[0].contains("We will refund you."));
}

#[tokio::test]
async fn email_reaches_a_real_smtp_server_for_granted_recipients_only() {
    let smtp = SmtpServer::start();
    let email = EmailConfig::new(&smtp.url(), "Weft <weft@example.test>").unwrap();
    let config = CapabilityConfig { email: Some(email), ..CapabilityConfig::default() };
    let results = run_probe(
        config,
        "    grants: { email: [\"*@example.test\"] }\n",
        serde_json::json!([{ "email": "reviewer@example.test" }, { "email": "someone@elsewhere.test" }]),
    )
    .await;
    assert!(results[0]["ok"].as_str().unwrap().starts_with("250"), "{}", results[0]);
    assert_eq!(error_kind(&results[1]), "denied");
    let messages = smtp.wait_for(1).await;
    assert_eq!(messages.len(), 1, "only the granted recipient got mail");
    assert!(messages[0].contains("To: reviewer@example.test"), "{}", messages[0]);
    assert!(messages[0].contains("Subject: probe"));
}

#[tokio::test]
async fn pii_pseudonyms_are_keyed_by_a_granted_secret_and_scoped_to_the_job() {
    let secrets = SecretStore::empty().with_value("PII_KEY", "pseudonym-secret");
    let host = host_with_capabilities(CapabilityConfig { secrets, ..CapabilityConfig::default() });
    let step = |grants: &str| {
        format!(
            "name: p\nversion: '1'\nsteps:\n  - id: mask\n    plugin: pii-mask\n    retry: {{ max_attempts: 1 }}\n{grants}    \
             config: {{ style: pseudonym, pseudonym_secret: PII_KEY, findings_item: false }}\n"
        )
    };
    let loaded = load(&host, &step("    grants: { secrets: [PII_KEY] }\n"));
    let text = "Write to ana@example.com; again: ana@example.com, or bo@example.com.";
    let run = |job: &'static str| {
        let (host, loaded) = (&host, &loaded);
        async move { texts(&host.run_job(loaded, job, vec![weft::Item::text(text)]).await, "mask")[0].clone() }
    };
    let first = run("job-a").await;
    let tokens: Vec<&str> =
        first.split(|c: char| c.is_whitespace() || c == ',' || c == ';').filter(|w| w.starts_with("[EMAIL_")).collect();
    assert_eq!(tokens.len(), 3, "{first}");
    assert_eq!(tokens[0], tokens[1], "one value, one token within a job: {first}");
    assert_ne!(tokens[0], tokens[2], "{first}");
    assert!(!first.contains("ana@example.com"));
    assert_eq!(run("job-a").await, first, "deterministic for the same job");
    assert_ne!(run("job-b").await, first, "another job gets unrelated tokens");

    let ungranted = load(&host, &step(""));
    let outcome = host.run_job(&ungranted, "job-c", vec![weft::Item::text(text)]).await;
    assert_eq!(outcome.report.status, JobStatus::Failed);
    let error = outcome.report.steps[0].error.as_ref().unwrap();
    assert_eq!(error.kind, FailureKind::Fatal);
    assert!(error.message.contains("was not granted secret `PII_KEY`"), "{}", error.message);
}
