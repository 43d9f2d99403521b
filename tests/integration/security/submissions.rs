//! A publisher on `weft.jobs.>` reaching for other jobs: their stored
//! inputs and outputs, or their ids.

use std::time::{Duration, Instant};

use weft::queue::{DeadLetterEntry, JobState, QueueClient, WorkerConfig};

use super::wait_until_settled;
use crate::nats::NatsServer;
use crate::queue::{ECHO, client, fast_retries, start_worker, workflow};

/// Waits (bounded) until the dead-letter stream holds `count` letters.
async fn dead_letters(queue: &QueueClient, count: usize) -> Vec<DeadLetterEntry> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let letters = queue.dead_letters().await.unwrap();
        if letters.len() >= count || Instant::now() > deadline {
            return letters;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn publish(js: &async_nats::jetstream::Context, body: serde_json::Value, msg_id: Option<&str>) {
    let mut headers = async_nats::HeaderMap::new();
    if let Some(id) = msg_id {
        headers.insert("Nats-Msg-Id", id);
    }
    js.publish_with_headers("weft.jobs.echo", headers, body.to_string().into()).await.unwrap().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_cannot_read_another_jobs_input_or_outputs_through_an_object_reference() {
    let server = NatsServer::start();
    let queue = client(&server).await;
    let js = async_nats::jetstream::new(queue.nats().clone());
    // The victim's input is not UTF-8, so it goes through the object store.
    let secret = b"\xffvictim's medical record".to_vec();
    let victim = queue.submit("echo", secret.clone(), Some("victim-2".into())).await.unwrap();
    assert!(victim.via_object_store);
    let objects = js.get_object_store("weft-objects").await.unwrap();
    let mut names = objects.list().await.unwrap();
    let mut stored = Vec::new();
    while let Some(info) = futures::StreamExt::next(&mut names).await {
        stored.push(info.unwrap().name);
    }
    let victim_input = stored.iter().find(|n| n.starts_with("input.victim-2.")).expect("a random suffix").clone();
    let worker = start_worker(&server, &[&workflow("echo", ECHO)], fast_retries("w1")).await;
    assert_eq!(queue.wait("victim-2", Duration::from_secs(60)).await.unwrap().state, JobState::Succeeded);
    // A succeeded job's input is removed: put it back, as it is while the
    // victim waits to run or after it was dead-lettered.
    objects.put(victim_input.as_str(), &mut secret.as_slice()).await.unwrap();

    // Before the fix `input.victim-2` ran as atk-1's input and its result
    // showed the victim's data. Even the exact name is not the attacker's.
    for (id, object) in [
        ("atk-1", "input.victim-2"),
        ("atk-2", victim_input.as_str()),
        ("atk-3", "output.victim-2"),
        ("atk-4", "ckpt.victim-2.echo"),
    ] {
        publish(&js, serde_json::json!({ "job_id": id, "input": { "object": object } }), Some(id)).await;
    }
    wait_until_settled(&server, &js).await;
    let letters = dead_letters(&queue, 4).await;
    assert_eq!(letters.len(), 4, "{letters:?}");
    for letter in &letters {
        assert!(letter.letter.reason.contains("is not this job's input"), "{letter:?}");
        assert!(queue.status(&letter.letter.job_id).await.unwrap().is_none(), "nothing ran: {letter:?}");
    }
    // A job naming its own uploaded input still runs.
    let own = b"\xffattacker's own bytes".to_vec();
    objects.put("input.atk-5.mine", &mut own.as_slice()).await.unwrap();
    publish(&js, serde_json::json!({ "job_id": "atk-5", "input": { "object": "input.atk-5.mine" } }), None).await;
    assert_eq!(queue.wait("atk-5", Duration::from_secs(60)).await.unwrap().state, JobState::Succeeded);
    let summary = worker.stop().await;
    assert_eq!((summary.succeeded, summary.dead_lettered), (2, 4), "{summary:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_input_object_above_the_workers_limit_is_dead_lettered_unread() {
    let server = NatsServer::start();
    let queue = client(&server).await;
    let config = WorkerConfig { max_input_bytes: 4096, ..fast_retries("w1") };
    let worker = start_worker(&server, &[&workflow("echo", ECHO)], config).await;
    queue.submit("echo", vec![0xff; 4097], Some("big-1".into())).await.unwrap();
    queue.submit("echo", vec![0xff; 4096], Some("fits-1".into())).await.unwrap();
    let big = queue.wait("big-1", Duration::from_secs(60)).await.unwrap();
    assert_eq!(big.state, JobState::DeadLettered, "{big:?}");
    assert_eq!(queue.wait("fits-1", Duration::from_secs(60)).await.unwrap().state, JobState::Succeeded);
    let letters = dead_letters(&queue, 1).await;
    assert!(
        letters[0].letter.reason.contains("(4097 bytes), above this worker's limit of 4 KiB (4096 bytes)"),
        "{letters:?}"
    );
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_id_in_the_body_that_differs_from_nats_msg_id_is_dead_lettered() {
    let server = NatsServer::start();
    let queue = client(&server).await;
    let js = async_nats::jetstream::new(queue.nats().clone());
    let worker = start_worker(&server, &[&workflow("echo", ECHO)], fast_retries("w1")).await;
    // Each a fresh header id: the server's dedupe would pass them all, and
    // all would run as `same-1`.
    for header in ["other-1", "other-2"] {
        publish(&js, serde_json::json!({ "job_id": "same-1", "input": { "text": "x" } }), Some(header)).await;
    }
    publish(&js, serde_json::json!({ "job_id": "ok-1", "input": { "text": "x" } }), Some("ok-1")).await;
    publish(&js, serde_json::json!({ "job_id": "ok-2", "input": { "text": "x" } }), Some("ok-2-replay-1")).await;
    wait_until_settled(&server, &js).await;
    let letters = dead_letters(&queue, 2).await;
    assert_eq!(letters.len(), 2, "{letters:?}");
    assert!(letters.iter().all(|l| l.letter.reason.contains("differs from its Nats-Msg-Id")), "{letters:?}");
    assert!(queue.status("same-1").await.unwrap().is_none());
    let summary = worker.stop().await;
    assert_eq!((summary.succeeded, summary.dead_lettered), (2, 2), "{summary:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_squatter_can_neither_hijack_an_unfinished_job_nor_silently_preempt_a_job_id() {
    let server = NatsServer::start();
    let queue = client(&server).await;
    let js = async_nats::jetstream::new(queue.nats().clone());
    // An unfinished job: a worker claimed it (its fingerprint is in the
    // record) and died. A squatter publishes the same id with its own input
    // (past the server's dedupe: no Nats-Msg-Id).
    let unfinished = serde_json::json!({
        "job_id": "inv-41", "workflow": "echo", "state": "retrying", "attempts": 1,
        "history": [], "replays": 0, "submission": "00112233445566778899aabbccddeeff"
    });
    let kv = js.get_key_value("weft-jobs").await.unwrap();
    kv.put("job.inv-41", unfinished.to_string().into()).await.unwrap();
    let worker = start_worker(&server, &[&workflow("echo", ECHO)], fast_retries("w1")).await;
    publish(&js, serde_json::json!({ "job_id": "inv-41", "input": { "text": "squatter" } }), None).await;
    wait_until_settled(&server, &js).await;
    let record = queue.status("inv-41").await.unwrap().unwrap();
    assert_eq!((record.state, record.attempts), (JobState::Retrying, 1), "not adopted: {record:?}");

    // A guessable id taken first: the real submission is not dropped as a
    // duplicate of the squatter's job, it is dead-lettered with the reason.
    publish(&js, serde_json::json!({ "job_id": "inv-42", "input": { "text": "squatter" } }), None).await;
    assert_eq!(queue.wait("inv-42", Duration::from_secs(60)).await.unwrap().state, JobState::Succeeded);
    let taken = queue.status("inv-42").await.unwrap().unwrap();
    let real = queue.submit("echo", b"the real invoice".to_vec(), Some("inv-42".into())).await.unwrap();
    assert!(!real.duplicate);
    wait_until_settled(&server, &js).await;
    assert_eq!(queue.status("inv-42").await.unwrap().unwrap(), taken, "the squatter's record is left as it is");

    let letters = dead_letters(&queue, 2).await;
    assert_eq!(letters.len(), 2, "{letters:?}");
    for letter in &letters {
        assert!(letter.letter.reason.contains("is already taken by another submission"), "{letter:?}");
    }
    let summary = worker.stop().await;
    assert_eq!((summary.succeeded, summary.dead_lettered, summary.duplicates), (1, 2, 0), "{summary:?}");
}
