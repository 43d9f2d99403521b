//! Attacks on the host from outside the sandbox, one test per attack, each
//! named after it (issue 18). Every test talks to a real nats-server.

use std::time::{Duration, Instant};

use weft::queue::WorkerConfig;

use crate::nats::NatsServer;
use crate::queue::{ECHO, client, fast_retries, queue_config, start_worker, workflow};

/// Waits until the jobs consumer has nothing pending and nothing unacked:
/// every message ended acked, dead-lettered or terminated.
async fn wait_until_settled(server: &NatsServer, js: &async_nats::jetstream::Context) {
    let config = queue_config(server);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // The worker creates the consumer when it starts pulling.
        let consumer: Result<async_nats::jetstream::consumer::PullConsumer, _> =
            js.get_stream(&config.jobs_stream).await.unwrap().get_consumer(&config.consumer).await;
        let info = match consumer {
            Ok(mut consumer) => Some(consumer.info().await.unwrap().clone()),
            Err(_) => None,
        };
        if info.as_ref().is_some_and(|info| info.num_pending == 0 && info.num_ack_pending == 0) {
            return;
        }
        assert!(Instant::now() < deadline, "messages left unsettled: {info:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_id_with_cr_or_lf_is_dead_lettered_instead_of_panicking_the_worker() {
    let server = NatsServer::start();
    let queue = client(&server).await;
    let js = async_nats::jetstream::new(queue.nats().clone());
    let worker = start_worker(&server, &[&workflow("echo", ECHO)], fast_retries("w1")).await;
    for body in [
        r#"{"job_id":"a\nb","input":{"text":"x"}}"#,
        r#"{"job_id":"c\r\nd","input":{"text":"x"}}"#,
        r#"{"job_id":"\u001b[2Jwiped","input":{"text":"x"}}"#,
    ] {
        js.publish("weft.jobs.echo", body.into()).await.unwrap().await.unwrap();
    }
    wait_until_settled(&server, &js).await;
    let letters = queue.dead_letters().await.unwrap();
    assert_eq!(letters.len(), 3, "{letters:?}");
    assert!(letters.iter().all(|l| l.letter.reason.contains("is invalid")), "{letters:?}");
    let summary = worker.stop().await;
    assert_eq!((summary.succeeded, summary.dead_lettered, summary.retried), (0, 3, 0));

    // `weft dlq list` prints the publisher's ids escaped: one line per letter, no terminal codes.
    let dir = tempfile::tempdir().unwrap();
    let out = crate::support::weft_cmd(dir.path()).args(["dlq", "list", "--nats", &server.url()]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout.lines().count(), 3, "{stdout}");
    assert!(!stdout.contains(['\r', '\u{1b}']), "{stdout:?}");
    assert!(stdout.contains("a\\nb") && stdout.contains("\\u{1b}[2Jwiped"), "{stdout}");
}

/// Runs the real `weft` with `args` in `dir`, killing it if it has not
/// exited within `within`; its exit code (none if killed) and stderr.
fn weft_within(dir: &std::path::Path, args: &[&str], within: Duration) -> (Option<i32>, String) {
    let mut child = crate::support::weft_cmd(dir)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = crate::support::wait_exit(&mut child, within);
    if status.is_none() {
        let _ = child.kill();
    }
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (status.and_then(|s| s.code()), stderr)
}

/// A small deterministic generator (no dependency, same sequence every run).
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn text(&mut self, max: u64) -> String {
        const PIECES: &[&str] = &[
            "a", "Z", "0", "-", "_", "\n", "\r", "\t", "\0", " ", "é", "\u{202e}", "😀", ":", "\"", "\\", ".", "*", ">",
        ];
        (0..self.below(max + 1)).map(|_| PIECES[self.below(PIECES.len() as u64) as usize]).collect()
    }

    fn json(&mut self, depth: u32) -> serde_json::Value {
        match self.below(if depth == 0 { 4 } else { 6 }) {
            0 => serde_json::Value::Null,
            1 => serde_json::json!(self.next()),
            2 => serde_json::json!(self.text(12)),
            3 => serde_json::json!(self.below(2) == 0),
            4 => serde_json::Value::Array((0..self.below(4)).map(|_| self.json(depth - 1)).collect()),
            _ => {
                let keys = ["job_id", "input", "text", "bytes", "object", "x"];
                let mut map = serde_json::Map::new();
                for _ in 0..self.below(4) {
                    let key = keys[self.below(keys.len() as u64) as usize].to_string();
                    map.insert(key, self.json(depth - 1));
                }
                serde_json::Value::Object(map)
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arbitrary_bytes_json_and_headers_never_panic_and_every_message_is_settled() {
    let server = NatsServer::start();
    let queue = client(&server).await;
    let js = async_nats::jetstream::new(queue.nats().clone());
    let config = WorkerConfig { concurrency: 8, ..fast_retries("w1") };
    let worker = start_worker(&server, &[&workflow("echo", ECHO)], config).await;
    let mut noise = Noise(0x5eed_1e55);
    let mut delivered = 0u64;
    for i in 0..200u64 {
        let body: Vec<u8> = match noise.below(4) {
            0 => (0..noise.below(64)).map(|_| noise.below(256) as u8).collect(),
            1 => serde_json::to_vec(&noise.json(3)).unwrap(),
            2 => {
                serde_json::to_vec(&serde_json::json!({ "job_id": noise.text(20), "input": { "text": "x" } })).unwrap()
            }
            _ => serde_json::to_vec(
                &serde_json::json!({ "job_id": format!("ok-{i}"), "input": { "text": noise.text(8) } }),
            )
            .unwrap(),
        };
        let mut headers = async_nats::HeaderMap::new();
        if noise.below(2) == 0 {
            // Printable header values only: a client cannot send others.
            let id: String = (0..1 + noise.below(20)).map(|_| (b'!' + noise.below(94) as u8) as char).collect();
            headers.insert("Nats-Msg-Id", id.as_str());
        }
        let ack = js.publish_with_headers("weft.jobs.echo", headers, body.into()).await.unwrap().await.unwrap();
        if !ack.duplicate {
            delivered += 1;
        }
    }
    wait_until_settled(&server, &js).await;
    let summary = worker.stop().await;
    assert!(summary.succeeded > 0 && summary.dead_lettered > 0, "{summary:?}");
    assert_eq!(summary.retried + summary.handed_back, 0, "{summary:?}");
    assert_eq!(
        summary.succeeded + summary.dead_lettered + summary.duplicates,
        delivered,
        "each delivered message is settled once: {summary:?}"
    );
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_answering_retry_after_forever_does_not_hang_weft_run() {
    use crate::servers::{HttpServer, Reply};

    let hook = HttpServer::start(|_, _| Reply::new(429, "slow down").header("Retry-After", "100000000")).await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "name: hook\nversion: '1'\nsteps:\n  - id: notify\n    plugin: notify\n    grants: {{ http: [\"{}\"] }}\n    \
         config: {{ channels: [{{ type: webhook, url: \"{}\" }}] }}\n",
        hook.grant(),
        hook.url("/hook")
    );
    std::fs::write(dir.path().join("hook.yaml"), yaml).unwrap();
    std::fs::write(dir.path().join("in.txt"), "hello").unwrap();
    // Before the cap this never returned: the step slept for 100,000,000 s.
    let (code, stderr) = weft_within(dir.path(), &["run", "hook.yaml", "--input", "in.txt"], Duration::from_secs(60));
    assert_eq!(code, Some(1), "the job fails, it does not hang");
    assert!(stderr.contains("longer than `retry.max_retry_after` (5m)"), "{stderr}");
    assert_eq!(hook.requests().len(), 1, "asked once, not retried");
}

#[test]
fn two_served_workflows_with_the_same_name_refuse_to_start_instead_of_shadowing() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = "name: twin\nversion: '1'\nsteps:\n  - id: a\n    plugin: chunk\n";
    std::fs::write(dir.path().join("a.yaml"), yaml).unwrap();
    std::fs::write(dir.path().join("b.yaml"), yaml.replace("chunk", "pii-mask")).unwrap();
    // Nothing listens on port 1: the check must come before connecting.
    let args = ["serve", "--workflows", ".", "--nats", "nats://127.0.0.1:1"];
    let (code, stderr) = weft_within(dir.path(), &args, Duration::from_secs(30));
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("are both named `twin`") && stderr.contains("a.yaml") && stderr.contains("b.yaml"),
        "{stderr}"
    );
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

#[test]
fn a_yaml_alias_bomb_or_a_huge_file_is_refused_quickly_by_validate() {
    use crate::support::weft_cmd;

    let dir = tempfile::tempdir().unwrap();
    // Nine levels of ten aliases each, as complex keys: 10^9 nodes if built.
    let mut bomb = String::from(
        "name: bomb\nversion: '1'\nsteps: [{id: a, plugin: chunk}]\nx0: &x0 [a, a, a, a, a, a, a, a, a, a]\n",
    );
    for i in 1..=9 {
        bomb.push_str(&format!("? &x{i} [{}]\n: v\n", vec![format!("*x{}", i - 1); 10].join(", ")));
    }
    std::fs::write(dir.path().join("bomb.yaml"), bomb).unwrap();
    std::fs::write(dir.path().join("huge.yaml"), format!("name: h\n# {}\n", "x".repeat(64 << 20))).unwrap();
    let started = Instant::now();
    let out = weft_cmd(dir.path()).args(["validate", "bomb.yaml", "huge.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("bomb.yaml:") && stdout.contains("expand to more than 100000 yaml nodes"), "{stdout}");
    assert!(stdout.contains("huge.yaml:1:1: the file is larger than the 1 MiB a workflow file may be"), "{stdout}");
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
}
