//! Encryption at rest against a real nats-server: with at-rest keys
//! configured, the bytes NATS holds (job stream, dead-letter stream, KV
//! bucket, object store) never contain a job's input, checkpoint items,
//! outputs or dead-letter body in plaintext; status and dead-letter reads
//! decrypt; keys rotate; and a worker or client without the key gets a clear
//! error naming it, and loses no job.

use std::time::{Duration, Instant};

use base64::Engine as _;
use futures::StreamExt as _;
use weft::queue::{JobState, Keyring, QueueClient, QueueConfig, QueueError, WorkerConfig};

use crate::nats::NatsServer;
use crate::queue::{RunningWorker, fast_retries, start_worker_with};
use crate::support::{component_path, repo_root, weft_cmd};

/// A key of 32 copies of `byte`, as the secret writes it.
fn key_text(byte: u8) -> String {
    base64::engine::general_purpose::STANDARD.encode([byte; 32])
}

/// A keyring from `id:byte` pairs, the first one current.
fn keys(pairs: &[(&str, u8)]) -> Keyring {
    let spec: Vec<String> = pairs.iter().map(|(id, byte)| format!("{id}:{}", key_text(*byte))).collect();
    Keyring::parse(&spec.join(",")).unwrap()
}

fn config(server: &NatsServer, at_rest: Option<Keyring>) -> QueueConfig {
    QueueConfig { url: server.url(), ack_wait: Duration::from_secs(2), at_rest, ..QueueConfig::default() }
}

async fn client(server: &NatsServer, at_rest: Option<Keyring>) -> QueueClient {
    weft::queue::connect(config(server, at_rest)).await.unwrap()
}

/// A worker serving `vault` (its nap `nap_ms` long) and `doomed`.
async fn start_worker(
    server: &NatsServer,
    nap_ms: u32,
    at_rest: Option<Keyring>,
    worker: WorkerConfig,
) -> RunningWorker {
    start_worker_with(config(server, at_rest), &[&vault(nap_ms), DOOMED], worker).await
}

/// `vault`: `first` passes its input through, then `nap` sleeps `ms` and
/// passes it on, so the outputs are the input.
fn vault(ms: u32) -> String {
    format!(
        "name: vault\nversion: '1'\nsteps:\n  - id: first\n    plugin: flaky\n    config: {{ fail_times: 0 }}\n  \
         - id: nap\n    plugin: {}\n    needs: [first]\n    config: {{ ms: {ms} }}\n",
        component_path("sleep").display()
    )
}

/// `doomed`: fails fatally, so its job is dead-lettered at once.
const DOOMED: &str =
    "name: doomed\nversion: '1'\nsteps:\n  - id: only\n    plugin: flaky\n    config: { fail_times: 9, fatal: true }\n";

/// Every message's payload and headers in every stream of the server (the
/// job and dead-letter streams, and the streams behind the KV bucket and
/// the object store), as stored.
async fn everything_stored(queue: &QueueClient) -> Vec<u8> {
    let js = async_nats::jetstream::new(queue.nats().clone());
    let names: Vec<String> = js.stream_names().map(|n| n.unwrap()).collect().await;
    assert!(names.len() >= 4, "jobs, dead letters, KV and objects: {names:?}");
    let mut all = Vec::new();
    for name in names {
        let mut stream = js.get_stream(&name).await.unwrap();
        let state = stream.info().await.unwrap().state.clone();
        if state.messages == 0 {
            continue;
        }
        for sequence in state.first_sequence..=state.last_sequence {
            if let Ok(message) = stream.get_raw_message(sequence).await {
                all.extend_from_slice(message.subject.as_bytes());
                all.extend_from_slice(format!("{:?}", message.headers).as_bytes());
                all.extend_from_slice(&message.payload);
            }
        }
    }
    all
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

async fn wait_for(queue: &QueueClient, job_id: &str) -> weft::queue::JobRecord {
    queue.wait(job_id, Duration::from_secs(60)).await.unwrap_or_else(|e| panic!("job {job_id}: {e}"))
}

/// Polls (at most 30 s) until `check` holds.
async fn poll(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_keys_no_input_checkpoint_output_or_dead_letter_body_is_stored_in_plaintext() {
    let server = NatsServer::start();
    let ring = keys(&[("k1", 1)]);
    let queue = client(&server, Some(ring.clone())).await;
    let secret = "TOPSECRET-4711-invoice";
    // A small input (inline in the message) and a large one (an object;
    // its checkpoint and outputs go to the object store too).
    let large = format!("{secret} ").repeat(700 * 1024 / (secret.len() + 1));
    let small_job = queue.submit("vault", secret.as_bytes().to_vec(), Some("small".into())).await.unwrap();
    let large_job = queue.submit("vault", large.clone().into_bytes(), Some("large".into())).await.unwrap();
    assert!(!small_job.via_object_store && large_job.via_object_store);
    let doomed_input = format!("{{\"note\": \"{secret}\"}}");
    queue.submit("doomed", doomed_input.clone().into_bytes(), Some("doomed".into())).await.unwrap();
    // The queued job messages hold no plaintext.
    assert!(!contains(&everything_stored(&queue).await, secret), "a queued job message holds the input in plaintext");
    // Another system publishes a plaintext job (its message is removed from
    // the work queue once settled); its dead letter is kept encrypted.
    let js = async_nats::jetstream::new(queue.nats().clone());
    let foreign = serde_json::json!({ "job_id": "foreign", "input": { "text": secret } }).to_string();
    js.publish("weft.jobs.doomed", foreign.into()).await.unwrap().await.unwrap();

    // The first worker is stopped during the nap: it hands both jobs back
    // with `first`'s checkpoint written; the second resumes from it.
    let checkpointing = WorkerConfig {
        checkpoint_delay: Duration::ZERO,
        drain_grace: Duration::from_millis(100),
        ..fast_retries("w1")
    };
    let first = start_worker(&server, 3000, Some(ring.clone()), checkpointing).await;
    let kv = async_nats::jetstream::new(queue.nats().clone()).get_key_value("weft-jobs").await.unwrap();
    poll("both checkpoints of `first`", async || {
        crate::queue::has_checkpoint(&kv, "small", "first").await
            && crate::queue::has_checkpoint(&kv, "large", "first").await
    })
    .await;
    assert_eq!(first.stop().await.handed_back, 2);
    // (The same nap: another revision of `vault` would not resume the job.)
    let second = start_worker(&server, 3000, Some(ring.clone()), fast_retries("w2")).await;
    for (job, input) in [("small", secret.to_string()), ("large", large.clone())] {
        let record = wait_for(&queue, job).await;
        assert_eq!(record.state, JobState::Succeeded, "{job}: {record:?}");
        let steps = &record.report.as_ref().unwrap()["steps"];
        assert_eq!(steps[0]["status"], "resumed", "{job}: the checkpoint was decrypted and used");
        let outputs = record.outputs.as_ref().unwrap();
        match outputs["nap"][0]["payload"].get("text") {
            // Status decrypts the outputs.
            Some(text) => assert_eq!(text, input.as_str()),
            None => assert_eq!(outputs["object"], "output.large", "{job}: {outputs}"),
        }
    }
    assert_eq!(wait_for(&queue, "doomed").await.state, JobState::DeadLettered);
    assert_eq!(wait_for(&queue, "foreign").await.state, JobState::DeadLettered);
    second.stop().await;

    // No plaintext anywhere NATS stores bytes.
    let stored = everything_stored(&queue).await;
    assert!(contains(&stored, "small") && contains(&stored, "dead-letter."), "the scan sees records and letters");
    assert!(!contains(&stored, secret), "some payload is stored in plaintext");

    // The dead letter decrypts for a client with the key: its body is the
    // job message, whose input is the original text.
    let entry = queue.find_dead_letter("doomed").await.unwrap().unwrap();
    assert_eq!(entry.letter.encrypted_with.as_deref(), Some("k1"));
    assert!(entry.letter.message.contains("encrypted with at-rest key `k1`"), "{}", entry.letter.message);
    let shown = queue.open_dead_letter(entry.clone()).await.unwrap();
    assert!(shown.letter.message.contains(secret), "{}", shown.letter.message);
    let body = queue.dead_letter_body(&entry).await.unwrap();
    let job: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(job["input"]["text"], doomed_input.as_str());
    let entry = queue.find_dead_letter("foreign").await.unwrap().unwrap();
    assert_eq!(entry.letter.encrypted_with.as_deref(), Some("k1"));
    let job: serde_json::Value = serde_json::from_slice(&queue.dead_letter_body(&entry).await.unwrap()).unwrap();
    assert_eq!(job["input"]["text"], secret);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_without_downtime_and_plaintext_from_before_stays_readable() {
    let server = NatsServer::start();
    // Jobs from before encryption was on, and from a submitter still on key a.
    let plain_client = client(&server, None).await;
    plain_client.submit("vault", b"from before".to_vec(), Some("plain".into())).await.unwrap();
    let old_client = client(&server, Some(keys(&[("a", 1)]))).await;
    old_client.submit("vault", b"under key a".to_vec(), Some("old".into())).await.unwrap();

    // The worker has rotated: b encrypts, a still decrypts.
    let rotated = keys(&[("b", 2), ("a", 1)]);
    let worker = start_worker(&server, 1, Some(rotated.clone()), fast_retries("w")).await;
    let queue = client(&server, Some(rotated)).await;
    for (job, input) in [("plain", "from before"), ("old", "under key a")] {
        let record = wait_for(&queue, job).await;
        assert_eq!(record.state, JobState::Succeeded, "{job}: {record:?}");
        assert_eq!(record.outputs.unwrap()["nap"][0]["payload"]["text"], input, "{job}");
    }
    worker.stop().await;

    // What the worker wrote is under b: a client with only a is told so,
    // by key id, instead of being shown ciphertext.
    let error = old_client.status("old").await.unwrap_err();
    assert!(matches!(&error, QueueError::AtRest(e) if e.missing_key() == Some("b")), "{error}");
    assert!(error.to_string().contains("at-rest key `b`, which is not among the configured keys (a)"), "{error}");
    // And one without keys says none are configured.
    let error = plain_client.status("old").await.unwrap_err();
    assert!(error.to_string().contains("no at-rest keys are configured"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_without_the_key_leaves_the_job_to_a_worker_that_has_it() {
    let server = NatsServer::start();
    let ring = keys(&[("a", 1)]);
    let queue = client(&server, Some(ring.clone())).await;
    queue.submit("vault", b"needs key a".to_vec(), Some("keyed".into())).await.unwrap();

    // A worker with another key only: it hands the job back, unrun.
    let lacking = start_worker(&server, 1, Some(keys(&[("b", 2)])), fast_retries("lacking")).await;
    let js = async_nats::jetstream::new(queue.nats().clone());
    poll("the job's delivery to that worker", async || {
        let stream = js.get_stream("WEFT_JOBS").await.unwrap();
        let Ok(mut consumer) =
            stream.get_consumer::<async_nats::jetstream::consumer::pull::Config>("weft-workers-vault").await
        else {
            return false;
        };
        consumer.info().await.is_ok_and(|info| info.delivered.consumer_sequence >= 1)
    })
    .await;
    let summary = lacking.stop().await;
    assert_eq!((summary.succeeded, summary.dead_lettered), (0, 0), "{summary:?}");
    assert!(summary.handed_back >= 1, "{summary:?}");
    assert!(queue.dead_letters().await.unwrap().is_empty());

    // A worker with the key runs it.
    let keyed = start_worker(&server, 1, Some(ring), fast_retries("keyed")).await;
    let record = wait_for(&queue, "keyed").await;
    assert_eq!(record.state, JobState::Succeeded, "{record:?}");
    assert_eq!(record.outputs.unwrap()["nap"][0]["payload"]["text"], "needs key a");
    keyed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_grace_a_job_without_its_key_is_dead_lettered_encrypted_and_replays_with_the_key() {
    let server = NatsServer::start();
    let ring = keys(&[("a", 1)]);
    let queue = client(&server, Some(ring.clone())).await;
    queue.submit("vault", b"needs key a".to_vec(), Some("keyed".into())).await.unwrap();

    let impatient = WorkerConfig { missing_key_grace: Duration::ZERO, ..fast_retries("keyless") };
    let keyless = start_worker(&server, 1, None, impatient).await;
    poll("the dead letter", async || !queue.dead_letters().await.unwrap().is_empty()).await;
    assert_eq!(keyless.stop().await.dead_lettered, 1);
    let entry = queue.find_dead_letter("keyed").await.unwrap().unwrap();
    assert!(entry.authenticated);
    assert!(entry.letter.reason.contains("encrypted with at-rest key `a`"), "{}", entry.letter.reason);
    assert!(entry.letter.reason.contains("no at-rest keys are configured here"), "{}", entry.letter.reason);
    assert!(entry.letter.reason.contains("`--missing-key-grace`"), "{}", entry.letter.reason);
    assert_eq!(entry.letter.encrypted_with.as_deref(), Some("a"));

    // A client without the key cannot show or replay it, and says which key.
    let keyless_client = client(&server, None).await;
    let error = keyless_client.open_dead_letter(entry.clone()).await.unwrap_err();
    assert!(error.to_string().contains("at-rest key `a`"), "{error}");
    let error = keyless_client.replay(&entry).await.unwrap_err();
    assert!(error.to_string().contains("at-rest key `a`"), "{error}");
    assert_eq!(queue.dead_letters().await.unwrap().len(), 1, "a refused replay keeps the letter");

    // With the key, the replay runs.
    queue.replay(&entry).await.unwrap();
    let keyed = start_worker(&server, 1, Some(ring), fast_retries("keyed")).await;
    let record = wait_for(&queue, "keyed").await;
    assert_eq!(record.state, JobState::Succeeded, "{record:?}");
    assert_eq!(record.outputs.unwrap()["nap"][0]["payload"]["text"], "needs key a");
    keyed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weft_status_and_dlq_show_decrypt_with_the_secret_and_name_the_key_without_it() {
    let server = NatsServer::start();
    let ring = keys(&[("k1", 1)]);
    let queue = client(&server, Some(ring.clone())).await;
    let secret = "CLI-SECRET-1234";
    queue.submit("vault", secret.as_bytes().to_vec(), Some("ok".into())).await.unwrap();
    queue.submit("doomed", secret.as_bytes().to_vec(), Some("bad".into())).await.unwrap();
    let worker = start_worker(&server, 1, Some(ring), fast_retries("w1")).await;
    assert_eq!(wait_for(&queue, "ok").await.state, JobState::Succeeded);
    assert_eq!(wait_for(&queue, "bad").await.state, JobState::DeadLettered);
    worker.stop().await;

    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets.env");
    std::fs::write(&secrets, format!("AT_REST_KEYS=k1:{}\n", key_text(1))).unwrap();
    let weft = |args: &[&str], with_key: bool| {
        let mut cmd = weft_cmd(&repo_root());
        cmd.args(args).arg("--nats").arg(server.url()).env_remove("WEFT_SECRETS_FILE");
        cmd.env_remove("WEFT_SECRET_AT_REST_KEYS");
        if with_key {
            cmd.arg("--secrets-file").arg(&secrets);
        }
        cmd.output().unwrap()
    };
    for args in [&["status", "ok"][..], &["dlq", "show", "bad"]] {
        let out = weft(args, true);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains(secret), "{args:?} decrypts: {stdout}");
        let out = weft(args, false);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} without the key");
        assert!(stderr.contains("at-rest key `k1`") && stderr.contains("AT_REST_KEYS"), "{args:?}: {stderr}");
        assert!(!String::from_utf8_lossy(&out.stdout).contains(secret));
    }
    // The environment variable works as the file does.
    let out = weft_cmd(&repo_root())
        .args(["status", "ok", "--nats", &server.url()])
        .env_remove("WEFT_SECRETS_FILE")
        .env("WEFT_SECRET_AT_REST_KEYS", format!("k1:{}", key_text(1)))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(secret), "{}", String::from_utf8_lossy(&out.stderr));
}
