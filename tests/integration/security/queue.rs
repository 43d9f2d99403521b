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
