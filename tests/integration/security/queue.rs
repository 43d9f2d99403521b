//! A publisher on `weft.jobs.>`: message bodies, ids and headers.

use weft::queue::WorkerConfig;

use super::wait_until_settled;
use crate::nats::NatsServer;
use crate::queue::{ECHO, client, fast_retries, start_worker, workflow};

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

/// The SHA-256 of `bytes`, in hex.
fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs the real `weft dlq ARGS --nats URL` (bounded) and returns its exit
/// code, stdout and stderr.
fn weft_dlq(server: &NatsServer, args: &[&str]) -> (Option<i32>, Vec<u8>, String) {
    let dir = tempfile::tempdir().unwrap();
    let url = server.url();
    let mut child = crate::support::weft_cmd(dir.path())
        .arg("dlq")
        .args(args)
        .args(["--nats", &url])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Read stdout beside the wait: a large body would fill the pipe.
    let mut stdout_pipe = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut stdout = Vec::new();
        std::io::Read::read_to_end(&mut stdout_pipe, &mut stdout).unwrap();
        stdout
    });
    let status = crate::support::wait_exit(&mut child, std::time::Duration::from_secs(60));
    if status.is_none() {
        let _ = child.kill();
    }
    let stdout = reader.join().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (status.and_then(|s| s.code()), stdout, stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_whose_dead_letter_exceeds_the_max_payload_is_dead_lettered_once_with_its_body_kept() {
    let server = NatsServer::start();
    let queue = client(&server).await;
    let js = async_nats::jetstream::new(queue.nats().clone());
    let worker = start_worker(&server, &[&workflow("echo", ECHO)], fast_retries("w1")).await;
    // 300 KB of NUL bytes: `\u0000` six times over as escaped text.
    let nuls = vec![0u8; 300 * 1024];
    // 900 KB of a job naming another job's input (never run), its metadata
    // all escaped quotes: each `\"` is escaped again in a text copy.
    let quotes = "\\\"".repeat(450 * 1024);
    let escapable =
        format!(r#"{{"job_id":"esc-1","input":{{"object":"input.other"}},"metadata":{{"note":"{quotes}"}}}}"#)
            .into_bytes();
    assert!(escapable.len() > 900 * 1024 && escapable.len() < 1024 * 1024);
    js.publish("weft.jobs.echo", nuls.clone().into()).await.unwrap().await.unwrap();
    js.publish("weft.jobs.echo", escapable.clone().into()).await.unwrap().await.unwrap();
    wait_until_settled(&server, &js).await;
    let info = js
        .get_stream("WEFT_JOBS")
        .await
        .unwrap()
        .get_consumer::<async_nats::jetstream::consumer::pull::Config>("weft-workers-echo")
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .clone();
    assert_eq!((info.num_redelivered, info.num_ack_pending), (0, 0), "{info:?}");

    // The worker still serves real jobs.
    queue.submit("echo", b"fine".to_vec(), Some("after-1".into())).await.unwrap();
    let record = queue.wait("after-1", std::time::Duration::from_secs(60)).await.unwrap();
    assert_eq!(record.state, weft::queue::JobState::Succeeded);

    let letters = queue.dead_letters().await.unwrap();
    assert_eq!(letters.len(), 2, "each dead-lettered exactly once: {letters:?}");
    let esc = letters.iter().find(|e| e.letter.job_id == "esc-1").expect("esc-1 is dead-lettered");
    let nul = letters.iter().find(|e| e.letter.job_id != "esc-1").unwrap();
    for (entry, original) in [(nul, &nuls), (esc, &escapable)] {
        assert!(entry.authenticated, "{entry:?}");
        let body = entry.letter.body.as_ref().expect("the body is kept out of line");
        assert_eq!((body.size, body.sha256.as_str()), (original.len() as u64, sha256_hex(original).as_str()));
        let stored = queue.dead_letter_body(entry).await.unwrap();
        assert_eq!(sha256_hex(&stored), sha256_hex(original), "the original bytes are retrievable");
    }
    // NUL bytes are no job: replay refuses to republish them.
    let refused = queue.replay(nul).await.unwrap_err();
    assert!(refused.to_string().contains("not valid job JSON"), "{refused}");
    let summary = worker.stop().await;
    assert_eq!((summary.succeeded, summary.dead_lettered, summary.retried), (1, 2, 0), "{summary:?}");

    // The real CLI lists both and writes the original bytes back out.
    let (code, stdout, stderr) = weft_dlq(&server, &["list"]);
    assert_eq!(code, Some(0), "{stderr}");
    let listed = String::from_utf8_lossy(&stdout);
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert!(listed.contains("esc-1") && !listed.contains("unauthenticated"), "{listed}");
    let (code, stdout, stderr) = weft_dlq(&server, &["show", "esc-1", "--body"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(sha256_hex(&stdout), sha256_hex(&escapable));
    let (code, stdout, stderr) = weft_dlq(&server, &["show", "esc-1"]);
    assert_eq!(code, Some(0), "{stderr}");
    let shown = String::from_utf8_lossy(&stdout);
    assert!(shown.contains(&sha256_hex(&escapable)) && shown.contains(&escapable.len().to_string()), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_planted_on_the_dlq_subject_is_listed_unauthenticated_and_never_replayed() {
    let server = NatsServer::start();
    let queue = client(&server).await;
    let js = async_nats::jetstream::new(queue.nats().clone());
    let planted = serde_json::json!({
        "job_id": "planted-1", "workflow": "echo", "reason": "planted",
        "message": r#"{"job_id":"planted-1","input":{"text":"evil"}}"#,
    });
    js.publish("weft.dlq.echo", planted.to_string().into()).await.unwrap().await.unwrap();
    // Even with a MAC header that was not made with the key.
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Weft-Dlq-Mac", "00".repeat(32).as_str());
    let forged = serde_json::json!({
        "job_id": "planted-2", "workflow": "echo", "reason": "planted",
        "message": r#"{"job_id":"planted-2","input":{"text":"evil"}}"#,
    });
    js.publish_with_headers("weft.dlq.echo", headers, forged.to_string().into()).await.unwrap().await.unwrap();

    let letters = queue.dead_letters().await.unwrap();
    assert_eq!(letters.len(), 2);
    assert!(letters.iter().all(|l| !l.authenticated), "{letters:?}");
    let (code, stdout, stderr) = weft_dlq(&server, &["list"]);
    assert_eq!(code, Some(0), "{stderr}");
    let listed = String::from_utf8_lossy(&stdout);
    assert!(listed.lines().all(|line| line.contains("unauthenticated")), "{listed}");
    for id in ["planted-1", "planted-2"] {
        let (code, _, stderr) = weft_dlq(&server, &["replay", id]);
        assert_eq!(code, Some(1), "{stderr}");
        assert!(stderr.contains("was not written by a Weft worker"), "{stderr}");
    }
    let (code, _, stderr) = weft_dlq(&server, &["replay", "--all"]);
    assert_eq!(code, Some(1), "{stderr}");
    let jobs = js.get_stream("WEFT_JOBS").await.unwrap().get_info().await.unwrap();
    assert_eq!(jobs.state.messages, 0, "nothing was republished");
    assert!(queue.status("planted-1").await.unwrap().is_none(), "no record was written");
    assert_eq!(queue.dead_letters().await.unwrap().len(), 2, "the planted entries stay for an operator to inspect");
}

/// Workflow `later`: its one step passes its input through.
fn later() -> String {
    later_with("noop")
}

/// Workflow `later` whose one step is test component `component`.
fn later_with(component: &str) -> String {
    workflow("later", &format!("  - id: pass\n    plugin: {}\n", crate::support::component_path(component).display()))
}

/// Dead-letters job `job_id` genuinely: a worker serving a revision of
/// `later` whose step traps (never retried) gets it (no `Nats-Msg-Id`, so a
/// later submit of the same id is not a duplicate). Returns the dead
/// letter's raw message.
async fn dead_letter_from_a_trapping_workflow(
    server: &NatsServer,
    queue: &weft::queue::QueueClient,
    job_id: &str,
) -> async_nats::jetstream::message::StreamMessage {
    let js = async_nats::jetstream::new(queue.nats().clone());
    let worker = start_worker(server, &[&later_with("trap")], fast_retries("w1")).await;
    let body = serde_json::json!({ "job_id": job_id, "input": { "text": "hello" } }).to_string();
    js.publish("weft.jobs.later", body.into()).await.unwrap().await.unwrap();
    wait_until_settled(server, &js).await;
    assert_eq!(worker.stop().await.dead_lettered, 1);
    let entry = queue.find_dead_letter(job_id).await.unwrap().expect("dead-lettered");
    assert!(entry.authenticated && entry.letter.reason.contains("boom"), "{entry:?}");
    js.get_stream("WEFT_DLQ").await.unwrap().get_raw_message(entry.sequence).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_genuine_dead_letter_replays_but_a_tampered_copy_of_it_is_refused() {
    let server = NatsServer::start();
    let queue = client(&server).await;
    let js = async_nats::jetstream::new(queue.nats().clone());
    let genuine = dead_letter_from_a_trapping_workflow(&server, &queue, "late-1").await;
    // The same letter with its MAC header (another message id, or the
    // server drops it as a duplicate) and another body.
    let text = String::from_utf8(genuine.payload.to_vec()).unwrap().replace("hello", "evil!");
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Weft-Dlq-Mac", genuine.headers.get("Weft-Dlq-Mac").expect("a worker signs its letters").clone());
    js.publish_with_headers("weft.dlq.later", headers, text.into()).await.unwrap().await.unwrap();
    let tampered = queue.dead_letters().await.unwrap().pop().unwrap();
    assert!(tampered.letter.message.contains("evil!") && !tampered.authenticated, "{tampered:?}");
    let (code, _, stderr) = weft_dlq(&server, &["replay", &tampered.sequence.to_string()]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("was not written by a Weft worker"), "{stderr}");

    // Now `later` is served: the genuine letter replays and the job succeeds on its original input.
    let worker = start_worker(&server, &[&workflow("echo", ECHO), &later()], fast_retries("w2")).await;
    let (code, stdout, stderr) = weft_dlq(&server, &["replay", &genuine.sequence.to_string()]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(String::from_utf8_lossy(&stdout).contains("replayed late-1"));
    let record = queue.wait("late-1", std::time::Duration::from_secs(60)).await.unwrap();
    assert_eq!((record.state, record.replays), (weft::queue::JobState::Succeeded, 1));
    assert!(record.outputs.unwrap().to_string().contains("hello"), "the original body ran, not the tampered one");
    let summary = worker.stop().await;
    assert_eq!((summary.succeeded, summary.dead_lettered), (1, 0));
    let left: Vec<u64> = queue.dead_letters().await.unwrap().iter().map(|e| e.sequence).collect();
    assert_eq!(left, vec![tampered.sequence], "the replayed letter is removed, the tampered one kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_the_dead_letter_of_a_job_that_since_succeeded_needs_force() {
    let server = NatsServer::start();
    let queue = client(&server).await;
    dead_letter_from_a_trapping_workflow(&server, &queue, "done-1").await;
    // The job's record ages out before its dead letter (the default
    // retention keeps dead letters longer): the id is free again.
    let js = async_nats::jetstream::new(queue.nats().clone());
    js.get_key_value("weft-jobs").await.unwrap().purge("job.done-1").await.unwrap();
    let worker = start_worker(&server, &[&workflow("echo", ECHO), &later()], fast_retries("w2")).await;
    queue.submit("later", b"again".to_vec(), Some("done-1".into())).await.unwrap();
    let record = queue.wait("done-1", std::time::Duration::from_secs(60)).await.unwrap();
    assert_eq!(record.state, weft::queue::JobState::Succeeded);

    let (code, _, stderr) = weft_dlq(&server, &["replay", "done-1"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("already succeeded") && stderr.contains("--force"), "{stderr}");
    let record = queue.status("done-1").await.unwrap().unwrap();
    assert_eq!((record.state, record.replays), (weft::queue::JobState::Succeeded, 0), "the record is untouched");
    assert_eq!(queue.dead_letters().await.unwrap().len(), 1, "the letter stays");

    let (code, stdout, stderr) = weft_dlq(&server, &["replay", "done-1", "--force"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(String::from_utf8_lossy(&stdout).contains("replayed done-1"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let record = loop {
        let record = queue.status("done-1").await.unwrap().unwrap();
        if record.replays == 1 && record.state.is_terminal() || std::time::Instant::now() > deadline {
            break record;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!((record.state, record.replays), (weft::queue::JobState::Succeeded, 1));
    assert!(record.outputs.unwrap().to_string().contains("hello"), "the dead letter's body ran");
    let summary = worker.stop().await;
    assert_eq!(summary.succeeded, 2, "{summary:?}");
    assert!(queue.dead_letters().await.unwrap().is_empty());
}
