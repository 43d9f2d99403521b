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

/// Capabilities whose `http` resolver answers each `(name, address)` pair
/// without DNS, as `--http-resolve NAME:ADDRESS` does: the test's stand-in
/// for an attacker's DNS, with no `/etc/hosts` edit.
fn resolving(names: &[(&str, &str)]) -> weft::capabilities::CapabilityConfig {
    use weft::capabilities::{CapabilityConfig, HttpSettings};

    let resolve = names.iter().map(|(name, address)| (name.to_string(), address.parse().unwrap())).collect();
    CapabilityConfig { http: HttpSettings { resolve, ..HttpSettings::default() }, ..CapabilityConfig::default() }
}

fn message(result: &serde_json::Value) -> &str {
    result["message"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn a_granted_name_that_resolves_to_loopback_is_refused_and_nothing_reaches_it() {
    use crate::capabilities::{error_kind, run_probe};
    use crate::servers::HttpServer;

    let server = HttpServer::always(200).await;
    let port = server.addr.port();
    let config = resolving(&[("victim.test", "127.0.0.1"), ("mapped.test", "::ffff:127.0.0.1")]);
    let grants = format!(
        "    grants: {{ http: [\"victim.test:{port}\", \"mapped.test:{port}\", \"{}\", \"localhost:{port}\"] }}\n",
        server.grant()
    );
    let calls = serde_json::json!([
        { "http": { "url": format!("http://victim.test:{port}/hook"), "method": "POST", "body": "webhook" } },
        { "http": { "url": format!("http://mapped.test:{port}/hook") } },
        { "http": { "url": server.url("/literal") } },
        { "http": { "url": format!("http://localhost:{port}/named") } },
    ]);
    let results = run_probe(config, &grants, calls).await;
    for (refused, name, address) in
        [(&results[0], "victim.test", "127.0.0.1"), (&results[1], "mapped.test", "::ffff:127.0.0.1")]
    {
        assert_eq!(error_kind(refused), "denied", "{refused}");
        let text = message(refused);
        assert!(text.contains(&format!("`{name}` resolves to {address}, in loopback 127.0.0.0/8")), "{text}");
        assert!(text.contains("only when its `http` grant names that address itself"), "{text}");
        assert!(text.contains("nothing was sent there"), "{text}");
    }
    assert_eq!(results[2]["ok"]["status"], 200, "a grant naming the address still reaches it: {}", results[2]);
    assert_eq!(results[3]["ok"]["status"], 200, "a grant naming `localhost` still reaches it: {}", results[3]);
    let paths: Vec<String> = server.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths, ["/literal", "/named"], "only the literally granted calls reached the server");
}

#[tokio::test]
async fn http_true_cannot_reach_loopback_by_address_by_localhost_or_by_a_name() {
    use crate::capabilities::{error_kind, run_probe};
    use crate::servers::HttpServer;

    let server = HttpServer::always(200).await;
    let port = server.addr.port();
    let config = resolving(&[("victim.test", "127.0.0.1")]);
    let calls = serde_json::json!([
        { "http": { "url": server.url("/literal") } },
        { "http": { "url": format!("http://localhost:{port}/localhost") } },
        { "http": { "url": format!("http://[::ffff:127.0.0.1]:{port}/mapped") } },
        { "http": { "url": format!("http://2130706433:{port}/decimal") } },
        { "http": { "url": format!("http://victim.test:{port}/name") } },
        { "http": { "url": "http://169.254.169.254/latest/meta-data/" } },
    ]);
    let results = run_probe(config, "    grants: { http: true }\n", calls).await;
    for (result, why) in results.iter().zip([
        "127.0.0.1 is in loopback 127.0.0.0/8",
        "`localhost` is loopback",
        "::ffff:127.0.0.1 is in loopback 127.0.0.0/8",
        "127.0.0.1 is in loopback 127.0.0.0/8",
        "`victim.test` resolves to 127.0.0.1",
        "169.254.169.254 is in link-local 169.254.0.0/16",
    ]) {
        assert_eq!(error_kind(result), "denied", "{result}");
        assert!(message(result).contains(why), "expected `{why}` in: {}", message(result));
    }
    assert!(server.requests().is_empty(), "`http: true` reached loopback: {:?}", server.requests());
}

#[tokio::test]
async fn a_redirect_from_a_granted_loopback_to_a_name_resolving_to_loopback_is_refused_at_the_hop() {
    use crate::capabilities::{error_kind, run_probe};
    use crate::servers::{HttpServer, Reply};

    let inner = HttpServer::always(200).await;
    let target = format!("http://victim.test:{}/internal", inner.addr.port());
    let granted = HttpServer::start(move |_, _| Reply::new(302, "").header("location", &target)).await;
    let config = resolving(&[("victim.test", "127.0.0.1")]);
    let grants = format!("    grants: {{ http: [\"{}\", \"victim.test:{}\"] }}\n", granted.grant(), inner.addr.port());
    let results = run_probe(config, &grants, serde_json::json!([{ "http": { "url": granted.url("/start") } }])).await;
    assert_eq!(error_kind(&results[0]), "denied", "{}", results[0]);
    let text = message(&results[0]);
    assert!(text.contains(&format!("(a redirect from {})", granted.url("/start"))), "{text}");
    assert!(text.contains("`victim.test` resolves to 127.0.0.1"), "{text}");
    assert_eq!(granted.requests().len(), 1, "the granted first hop was made");
    assert!(inner.requests().is_empty(), "the hop to the name resolving to loopback was never made");
}

#[test]
fn weft_run_refuses_a_webhook_to_a_granted_name_that_resolves_to_loopback() {
    use std::time::Duration;

    use super::weft_within;

    // The issue's reproduction: notify's webhook to a granted name that resolves to 127.0.0.1.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let hook = runtime.block_on(crate::servers::HttpServer::always(204));
    let port = hook.addr.port();
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "name: hook\nversion: '1'\nsteps:\n  - id: notify\n    plugin: notify\n    retry: {{ max_attempts: 1 }}\n    \
         grants: {{ http: [\"victim.test:{port}\"] }}\n    \
         config: {{ channels: [{{ type: webhook, url: \"http://victim.test:{port}/hook\" }}] }}\n"
    );
    std::fs::write(dir.path().join("hook.yaml"), yaml).unwrap();
    std::fs::write(dir.path().join("in.txt"), "hello").unwrap();
    let args = ["run", "hook.yaml", "--input", "in.txt", "--http-resolve", "victim.test:127.0.0.1"];
    let (code, stderr) = weft_within(dir.path(), &args, Duration::from_secs(60));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("`victim.test` resolves to 127.0.0.1, in loopback 127.0.0.0/8"), "{stderr}");
    assert!(hook.requests().is_empty(), "the webhook reached loopback: {:?}", hook.requests());
}

#[test]
fn weft_run_ignores_http_proxy_variables_so_a_proxy_cannot_resolve_past_the_checks() {
    use std::time::Duration;

    // `weft_within` with the proxy variables set: a proxy would resolve names itself.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let hook = runtime.block_on(crate::servers::HttpServer::always(204));
    let proxy = runtime.block_on(crate::servers::HttpServer::always(204));
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "name: hook\nversion: '1'\nsteps:\n  - id: notify\n    plugin: notify\n    retry: {{ max_attempts: 1 }}\n    \
         grants: {{ http: [\"{}\"] }}\n    config: {{ channels: [{{ type: webhook, url: \"{}\" }}] }}\n",
        hook.grant(),
        hook.url("/hook")
    );
    std::fs::write(dir.path().join("hook.yaml"), yaml).unwrap();
    std::fs::write(dir.path().join("in.txt"), "hello").unwrap();
    let mut child = crate::support::weft_cmd(dir.path())
        .args(["run", "hook.yaml", "--input", "in.txt"])
        .env("HTTP_PROXY", proxy.url(""))
        .env("http_proxy", proxy.url(""))
        .env("ALL_PROXY", proxy.url(""))
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = crate::support::wait_exit(&mut child, Duration::from_secs(60));
    if status.is_none() {
        let _ = child.kill();
    }
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{stderr}");
    assert!(proxy.requests().is_empty(), "the request went through the environment's proxy");
    assert_eq!(hook.requests().len(), 1, "the webhook was delivered directly");
}

#[tokio::test]
async fn a_secret_header_goes_only_to_a_host_the_grant_names_and_never_over_plain_http_elsewhere() {
    use weft::capabilities::SecretStore;

    use crate::capabilities::{error_kind, run_probe};
    use crate::servers::HttpServer;

    let server = HttpServer::always(204).await;
    let port = server.addr.port();
    let mut config = resolving(&[("hooks.test", "127.0.0.1")]);
    config.secrets = SecretStore::empty().with_value("API_KEY", "k3y-value");
    let secret = serde_json::json!(["x-api-key", "API_KEY"]);
    let call = |url: String| serde_json::json!({ "http": { "url": url, "secret_header": secret } });

    // Allowed only through `http: true`: the grant does not name the host.
    let everything = "    grants: { http: true, secrets: [API_KEY] }\n";
    let results =
        run_probe(config.clone(), everything, serde_json::json!([call(format!("http://hooks.test:{port}/"))])).await;
    assert_eq!(error_kind(&results[0]), "denied", "{}", results[0]);
    assert!(message(&results[0]).contains("may not send secret `API_KEY` to http://hooks.test:"), "{}", results[0]);
    assert!(message(&results[0]).contains("only through `true` or a `*.` wildcard"), "{}", results[0]);

    // Named, wildcard, and literal loopback grants side by side.
    let grants = format!(
        "    grants: {{ http: [\"hooks.test:{port}\", \"*.wild.test:{port}\", \"{}\", \"localhost:{port}\"], secrets: [API_KEY] }}\n",
        server.grant()
    );
    let calls = serde_json::json!([
        call(format!("http://hooks.test:{port}/plain")),
        call(format!("http://a.wild.test:{port}/wildcard")),
        call(server.url("/loopback")),
        call(format!("http://localhost:{port}/localhost")),
    ]);
    let results = run_probe(config, &grants, calls).await;
    assert_eq!(error_kind(&results[0]), "denied", "{}", results[0]);
    assert!(message(&results[0]).contains("a secret travels only over https"), "{}", results[0]);
    assert_eq!(error_kind(&results[1]), "denied", "{}", results[1]);
    assert!(message(&results[1]).contains("only through `true` or a `*.` wildcard"), "{}", results[1]);
    assert_eq!(results[2]["ok"]["status"], 204, "{}", results[2]);
    assert_eq!(results[3]["ok"]["status"], 204, "{}", results[3]);
    let requests = server.requests();
    let paths: Vec<&str> = requests.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/loopback", "/localhost"], "only the calls to a named loopback were sent");
    assert!(requests.iter().all(|r| r.header("x-api-key") == Some("k3y-value")));
}
