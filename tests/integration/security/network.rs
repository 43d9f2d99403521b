//! A plugin with network, e-mail, LLM or secret grants.

#[tokio::test]
async fn a_step_cannot_forge_the_sender_or_add_recipients_through_email_headers() {
    use weft::capabilities::{CapabilityConfig, EmailConfig};

    use crate::capabilities::{error_kind, run_probe};
    use crate::servers::SmtpServer;

    let smtp = SmtpServer::start();
    let email = EmailConfig::new(&smtp.url(), "Weft <weft@example.test>").unwrap();
    let config = CapabilityConfig { email: Some(email), ..CapabilityConfig::default() };
    let to = "reviewer@example.test";
    let calls = serde_json::json!([
        { "email": to, "headers": { "From": "ceo@example.test" } },
        { "email": to, "headers": { "Bcc": "attacker@elsewhere.test" } },
        { "email": to, "headers": { "sender": "ceo@example.test" } },
        { "email": to, "headers": { "Content-Type": "text/html" } },
        { "email": to, "headers": { "X-Ticket": "T-7", "In-Reply-To": "<t-7@example.test>" } },
    ]);
    let results = run_probe(config, "    grants: { email: [\"*@example.test\"] }\n", calls).await;
    for refused in &results[..4] {
        assert_eq!(error_kind(refused), "invalid", "{refused}");
        assert!(refused["message"].as_str().unwrap().contains("may not be set by a step"), "{refused}");
    }
    assert!(results[4]["ok"].as_str().unwrap().starts_with("250"), "{}", results[4]);
    let messages = smtp.wait_for(1).await;
    assert_eq!(messages.len(), 1, "only the message with allowed headers was sent");
    assert!(messages[0].contains("X-Ticket: T-7") && messages[0].contains("From: Weft <weft@example.test>"));
    assert!(!messages[0].contains("attacker@elsewhere.test") && !messages[0].contains("ceo@example.test"));
}

#[tokio::test]
async fn an_llm_endpoint_answering_without_end_is_cut_off_at_the_hosts_cap() {
    use weft::capabilities::{CapabilityConfig, LlmConfig};

    use crate::capabilities::{error_kind, run_probe};
    use crate::servers::{HttpServer, Reply};

    // 9 MiB of a valid-looking completion: more than the 8 MiB the host reads.
    let endpoint = HttpServer::start(|_, _| {
        let mut body = br#"{"choices":[{"message":{"role":"assistant","content":""#.to_vec();
        body.resize(body.len() + (9 << 20), b'a');
        body.extend_from_slice(br#""}}]}"#);
        Reply::new(200, body).header("content-type", "application/json")
    })
    .await;
    let llm = LlmConfig::new(&endpoint.url("/v1"), "test-model", None).unwrap();
    let config = CapabilityConfig { llm: Some(llm), ..CapabilityConfig::default() };
    let results = run_probe(config, "    grants: { llm: true }\n", serde_json::json!([{ "llm": "hello" }])).await;
    assert_eq!(error_kind(&results[0]), "rejected", "{}", results[0]);
    let message = results[0]["message"].as_str().unwrap();
    assert!(message.contains("answered with more than 8 MiB"), "{message}");
}

#[test]
fn a_workflow_cannot_grant_itself_an_arbitrary_environment_variable_as_a_secret() {
    use crate::support::weft_cmd;

    let dir = tempfile::tempdir().unwrap();
    let yaml = "name: leak\nversion: '1'\nsteps:\n  - id: notify\n    plugin: notify\n    grants: { secrets: [LEAKY_TEST_SECRET] }\n    \
                config: { channels: [{ type: stdout }] }\n";
    std::fs::write(dir.path().join("leak.yaml"), yaml).unwrap();
    std::fs::write(dir.path().join("in.txt"), "hello").unwrap();
    let run = |env: (&str, &str)| {
        weft_cmd(dir.path())
            .args(["run", "leak.yaml", "--input", "in.txt"])
            .env_remove("WEFT_SECRET_LEAKY_TEST_SECRET")
            .env(env.0, env.1)
            .output()
            .unwrap()
    };
    // The host's own variable of that name is not a secret.
    let out = run(("LEAKY_TEST_SECRET", "aws-key-of-the-host"));
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("set the environment variable `WEFT_SECRET_LEAKY_TEST_SECRET`"), "{stderr}");
    // The operator hands it over explicitly, with the prefix.
    let out = run(("WEFT_SECRET_LEAKY_TEST_SECRET", "meant-for-the-step"));
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}
