//! Retention (issue 19): a finished job's checkpoints are removed, records,
//! objects and dead letters expire after their configured maximum ages, the
//! dead-letter key never does, an existing deployment takes new limits, and
//! under a soak the storage stays within a bound computed from the
//! configuration. Real nats-server, in-process workers.

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv, stream};
use futures::{StreamExt as _, TryStreamExt as _};
use weft::queue::{JobState, QueueClient, QueueConfig, WorkerConfig};

use crate::nats::NatsServer;
use crate::queue::{ECHO, client, fast_retries, has_checkpoint, queue_config, start_worker_with, workflow};
use crate::support::component_path;

/// `first` (echo) -> `nap` (a sleep of `nap_ms`) -> `last` (`last`).
fn three_steps(name: &str, nap_ms: u64, last: &str) -> String {
    workflow(
        name,
        &format!(
            "  - id: first\n    plugin: echo-config\n  - id: nap\n    plugin: {sleep}\n    needs: [first]\n    \
             config: {{ ms: {nap_ms} }}\n  - id: last\n    plugin: {last}\n    needs: [nap]\n",
            sleep = component_path("sleep").display()
        ),
    )
}

fn trap() -> String {
    component_path("trap").display().to_string()
}

/// Checkpoints are written at once (nothing held back).
fn eager(name: &str) -> WorkerConfig {
    WorkerConfig { checkpoint_delay: Duration::ZERO, ..fast_retries(name) }
}

/// Messages stored under `filter` in stream `name`.
async fn messages_under(js: &jetstream::Context, name: &str, filter: &str) -> u64 {
    let stream = js.get_stream(name).await.unwrap();
    let subjects: Vec<(String, usize)> = stream.info_with_subjects(filter).await.unwrap().try_collect().await.unwrap();
    subjects.iter().map(|(_, count)| *count as u64).sum()
}

/// Names of the objects the store lists (deleted ones are not listed).
async fn object_names(js: &jetstream::Context) -> Vec<String> {
    let store = js.get_object_store("weft-objects").await.unwrap();
    store.list().await.unwrap().map(|info| info.unwrap().name).collect().await
}

/// Polls `check` every 100 ms until it holds, at most `within`.
async fn eventually<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn binary_input(tag: u8) -> Vec<u8> {
    // Not UTF-8: submitted through the object store.
    vec![0xff, 0xfe, tag, 0x00, 0x80]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_jobs_checkpoints_go_and_a_succeeded_jobs_input_goes_but_a_dead_lettered_jobs_input_stays() {
    let server = NatsServer::start();
    let queue = client(&server).await;
    let js = jetstream::new(queue.nats().clone());
    let kv = js.get_key_value("weft-jobs").await.unwrap();
    let (fine, doomed) = (three_steps("fine", 1500, "echo-config"), three_steps("doomed", 1500, &trap()));
    let worker = start_worker_with(queue_config(&server), &[&fine, &doomed], eager("w1")).await;
    queue.submit("fine", binary_input(1), Some("ck-ok".into())).await.unwrap();
    queue.submit("doomed", binary_input(2), Some("ck-bad".into())).await.unwrap();

    // While they sleep, their first steps' checkpoints are stored.
    eventually("both jobs checkpoint their first step", Duration::from_secs(30), || async {
        has_checkpoint(&kv, "ck-ok", "first").await && has_checkpoint(&kv, "ck-bad", "first").await
    })
    .await;
    assert!(object_names(&js).await.iter().any(|name| name.starts_with("input.ck-ok.")));
    let ok = queue.wait("ck-ok", Duration::from_secs(60)).await.unwrap();
    let bad = queue.wait("ck-bad", Duration::from_secs(60)).await.unwrap();
    assert_eq!((ok.state, bad.state), (JobState::Succeeded, JobState::DeadLettered), "{ok:?} {bad:?}");

    // Once finished, none is left of either (not even a delete marker).
    eventually("the finished jobs' checkpoints are removed", Duration::from_secs(30), || async {
        messages_under(&js, "KV_weft-jobs", "$KV.weft-jobs.ckpt.>").await == 0
    })
    .await;
    eventually("the succeeded job's input object is removed", Duration::from_secs(30), || async {
        !object_names(&js).await.iter().any(|name| name.starts_with("input.ck-ok."))
    })
    .await;
    // The dead-lettered job's input stays: its replay reads it.
    assert!(object_names(&js).await.iter().any(|name| name.starts_with("input.ck-bad.")));
    let letter = queue.find_dead_letter("ck-bad").await.unwrap().expect("the dead letter");
    assert!(letter.authenticated);
    let summary = worker.stop().await;
    assert_eq!((summary.succeeded, summary.dead_lettered), (1, 1), "{summary:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_and_dead_letters_expire_after_their_max_age_and_the_dead_letter_key_does_not() {
    let server = NatsServer::start();
    let config = QueueConfig {
        record_max_age: Duration::from_secs(2),
        dead_letter_max_age: Duration::from_secs(8),
        object_max_age: Duration::from_secs(8),
        ..queue_config(&server)
    };
    let queue = weft::queue::connect(config.clone()).await.unwrap();
    let boom = workflow("boom", &format!("  - id: boom\n    plugin: {}\n", trap()));
    let echo = workflow("echo", ECHO);
    let worker = start_worker_with(config.clone(), &[&boom, &echo], fast_retries("w1")).await;
    queue.submit("echo", b"hello".to_vec(), Some("old-ok".into())).await.unwrap();
    queue.submit("boom", b"hello".to_vec(), Some("old-bad".into())).await.unwrap();
    assert_eq!(queue.wait("old-ok", Duration::from_secs(60)).await.unwrap().state, JobState::Succeeded);
    assert_eq!(queue.wait("old-bad", Duration::from_secs(60)).await.unwrap().state, JobState::DeadLettered);
    assert_eq!(queue.dead_letters().await.unwrap().len(), 1);

    // Both records go after 2 s; the dead letter stays for now.
    eventually("both records expire", Duration::from_secs(30), || async {
        queue.status("old-ok").await.unwrap().is_none() && queue.status("old-bad").await.unwrap().is_none()
    })
    .await;
    // The dead-letter key did not expire with the records: a new client
    // (nothing cached) still finds the letter genuine, and could replay it.
    let fresh = weft::queue::connect(config.clone()).await.unwrap();
    let letters = fresh.dead_letters().await.unwrap();
    assert_eq!(letters.len(), 1, "the dead letter outlives the records");
    assert!(letters[0].authenticated, "the dead-letter key is the one that signed it");
    // Then the dead letter goes too.
    eventually("the dead letter expires", Duration::from_secs(30), || async {
        fresh.dead_letters().await.unwrap().is_empty()
    })
    .await;
    let keys = jetstream::new(fresh.nats().clone()).get_key_value("weft-keys").await.unwrap();
    assert!(keys.get("dlq-key").await.unwrap().is_some_and(|key| key.len() == 32));
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_deployment_takes_the_new_limits_and_keeps_its_dead_letter_key() {
    let server = NatsServer::start();
    let nats = async_nats::connect(server.url()).await.unwrap();
    let js = jetstream::new(nats);
    // What an earlier Weft created: no limits anywhere, the dead-letter key
    // in the state bucket.
    let state =
        js.create_key_value(kv::Config { bucket: "weft-jobs".into(), history: 1, ..Default::default() }).await.unwrap();
    let legacy_key = vec![7u8; 32];
    state.put("dlq-key", legacy_key.clone().into()).await.unwrap();
    js.create_stream(stream::Config {
        name: "WEFT_DLQ".into(),
        subjects: vec!["weft.dlq.>".into()],
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    })
    .await
    .unwrap();
    js.create_object_store(async_nats::jetstream::object_store::Config {
        bucket: "weft-objects".into(),
        ..Default::default()
    })
    .await
    .unwrap();

    let config = QueueConfig {
        record_max_age: Duration::from_secs(3600),
        record_max_bytes: Some(64 << 20),
        dead_letter_max_age: Duration::from_secs(7200),
        dead_letter_max_bytes: Some(32 << 20),
        object_max_age: Duration::from_secs(7200),
        object_max_bytes: Some(128 << 20),
        ..queue_config(&server)
    };
    let limits = |js: jetstream::Context| async move {
        let mut found = Vec::new();
        for name in ["KV_weft-jobs", "WEFT_DLQ", "OBJ_weft-objects"] {
            let info = js.get_stream(name).await.unwrap().get_info().await.unwrap();
            found.push((info.config.max_age, info.config.max_bytes, info.config.discard));
        }
        found
    };
    let wanted = vec![
        (Duration::from_secs(3600), 64 << 20, stream::DiscardPolicy::Old),
        (Duration::from_secs(7200), 32 << 20, stream::DiscardPolicy::Old),
        (Duration::from_secs(7200), 128 << 20, stream::DiscardPolicy::Old),
    ];
    // A client does not change them (its settings are not the workers').
    let _client = weft::queue::connect(config.clone()).await.unwrap();
    assert_eq!(limits(js.clone()).await[0].0, Duration::ZERO, "a client leaves existing limits alone");
    // A worker does.
    let echo = workflow("echo", ECHO);
    let worker = start_worker_with(config.clone(), &[&echo], fast_retries("w1")).await;
    assert_eq!(limits(js.clone()).await, wanted);
    // The key moved to the keys bucket before the state bucket got an age.
    let keys = js.get_key_value("weft-keys").await.unwrap();
    assert_eq!(keys.get("dlq-key").await.unwrap().unwrap().to_vec(), legacy_key);
    // A client with the default ages afterwards does not undo them.
    let _client = weft::queue::connect(queue_config(&server)).await.unwrap();
    assert_eq!(limits(js.clone()).await, wanted);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_limits_that_would_lose_what_a_dead_letter_needs_are_refused() {
    let server = NatsServer::start();
    let config = QueueConfig {
        object_max_age: Duration::from_secs(60),
        dead_letter_max_age: Duration::from_secs(3600),
        ..queue_config(&server)
    };
    let error = weft::queue::connect(config).await.err().expect("refused");
    let message = error.to_string();
    assert!(message.contains("--object-max-age") && message.contains("--dead-letter-max-age is 1h"), "{message}");
}

/// One sample of the storage during the soak.
#[derive(Debug)]
struct Sample {
    at: Instant,
    state: (u64, u64),
    objects: (u64, u64),
    dead_letters: (u64, u64),
}

async fn sample(js: &jetstream::Context) -> Sample {
    let read = |name: &'static str| {
        let js = js.clone();
        async move {
            let info = js.get_stream(name).await.unwrap().get_info().await.unwrap();
            (info.state.messages, info.state.bytes)
        }
    };
    Sample {
        at: Instant::now(),
        state: read("KV_weft-jobs").await,
        objects: read("OBJ_weft-objects").await,
        dead_letters: read("WEFT_DLQ").await,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_a_soak_storage_stays_within_a_bound_set_by_the_configuration() {
    // Per round: jobs with inline input, with an object input, and failing.
    const INLINE: usize = 19;
    const OBJECT: usize = 3;
    const FAILING: usize = 3;
    const PER_ROUND: usize = INLINE + OBJECT + FAILING;
    let server = NatsServer::start();
    let age = Duration::from_secs(1);
    let (record_cap, object_cap, letter_cap) = (1u64 << 20, 1u64 << 20, 256u64 << 10);
    let config = QueueConfig {
        record_max_age: age,
        record_max_bytes: Some(record_cap),
        dead_letter_max_age: age,
        dead_letter_max_bytes: Some(letter_cap),
        // Longer, so an input object never expires before its job runs.
        object_max_age: 3 * age,
        object_max_bytes: Some(object_cap),
        ..queue_config(&server)
    };
    let queue: QueueClient = weft::queue::connect(config.clone()).await.unwrap();
    let js = jetstream::new(queue.nats().clone());
    let soak = workflow(
        "soak",
        "  - id: a\n    plugin: echo-config\n  - id: b\n    plugin: echo-config\n    needs: [a]\n  - id: c\n    \
         plugin: echo-config\n    needs: [b]\n",
    );
    let fail = workflow("fail", &format!("  - id: boom\n    plugin: {}\n", trap()));
    let worker = start_worker_with(config.clone(), &[&soak, &fail], eager("w1")).await;

    // The bound: what the jobs that finished within the last maximum age
    // (plus the server's expiry check) can hold, however many ran before.
    // Each job leaves at most one record (its checkpoints are removed, but
    // up to `concurrency` jobs may be between their ack and that removal,
    // three checkpoints each), an object job two object-store messages
    // (meta and chunk; one marker once its input is removed), a failing
    // job one dead letter (its small body inline).
    let slack = Duration::from_millis(1500);
    let concurrency = 4;
    let bound = |at: Instant, rounds_ended: &[Instant]| {
        let live =
            |age: Duration| rounds_ended.iter().filter(|ended| at.duration_since(**ended) < age + slack).count() as u64;
        (
            live(config.record_max_age) * PER_ROUND as u64 + concurrency * 3,
            live(config.object_max_age) * 2 * OBJECT as u64,
            live(config.dead_letter_max_age) * FAILING as u64,
        )
    };

    // Rounds until the soak has lasted several maximum ages (at least a few
    // hundred jobs, at most 100 rounds).
    let text = "x".repeat(2000);
    let started = Instant::now();
    let mut rounds_ended = Vec::new();
    let mut peak = (0, 0, 0);
    while rounds_ended.len() < 12 || (started.elapsed() < 4 * (age + slack) && rounds_ended.len() < 100) {
        let round = rounds_ended.len();
        for i in 0..INLINE {
            queue.submit("soak", text.clone().into_bytes(), Some(format!("s-{round}-{i}"))).await.unwrap();
        }
        for i in 0..OBJECT {
            queue.submit("soak", binary_input(i as u8), Some(format!("o-{round}-{i}"))).await.unwrap();
        }
        for i in 0..FAILING {
            queue.submit("fail", b"doomed".to_vec(), Some(format!("f-{round}-{i}"))).await.unwrap();
        }
        crate::security::wait_until_settled(&server, &js).await;
        rounds_ended.push(Instant::now());
        let now = sample(&js).await;
        let (records, objects, letters) = bound(now.at, &rounds_ended);
        assert!(now.state.0 <= records, "round {round}: state bucket {now:?}, bound {records}");
        assert!(now.objects.0 <= objects, "round {round}: object store {now:?}, bound {objects}");
        assert!(now.dead_letters.0 <= letters, "round {round}: dead letters {now:?}, bound {letters}");
        assert!(
            now.state.1 <= record_cap && now.objects.1 <= object_cap && now.dead_letters.1 <= letter_cap,
            "{now:?}"
        );
        peak = (peak.0.max(now.state.0), peak.1.max(now.objects.0), peak.2.max(now.dead_letters.0));
    }
    let summary = worker.stop().await;
    let jobs = rounds_ended.len() * PER_ROUND;
    eprintln!("{jobs} jobs in {:?}; peak messages (state, objects, dead letters) {peak:?}", started.elapsed());
    assert_eq!((summary.succeeded + summary.dead_lettered) as usize, jobs, "every job ended once: {summary:?}");
    // The bound did not grow with the number of jobs: the last round's
    // covers far fewer than all of them.
    let (last_bound, _, _) = bound(*rounds_ended.last().unwrap(), &rounds_ended);
    assert!(last_bound * 2 < jobs as u64, "the soak outlasted its ages: bound {last_bound} for {jobs} jobs");
    // No checkpoint is left behind, and once the ages pass nothing is left at all.
    assert_eq!(messages_under(&js, "KV_weft-jobs", "$KV.weft-jobs.ckpt.>").await, 0);
    eventually("everything expires", Duration::from_secs(30), || async {
        let now = sample(&js).await;
        now.state.0 == 0 && now.objects.0 == 0 && now.dead_letters.0 == 0
    })
    .await;
}

/// Kills the process on drop, so a failing assertion leaves nothing behind.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weft_serve_sets_the_retention_limits_from_its_flags() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let echo = workflow("echo", &format!("  - id: echo\n    plugin: {}\n", component_path("echo-config").display()));
    std::fs::write(dir.path().join("echo.yaml"), echo).unwrap();
    let _serve = KillOnDrop(
        crate::support::weft_cmd(dir.path())
            .args(["serve", "--nats", &server.url(), "--workflows", "."])
            .args(["--record-max-age", "90s", "--record-max-bytes", "16MiB"])
            .args(["--object-max-age", "3h", "--object-max-bytes", "1GiB"])
            .args(["--dead-letter-max-age", "2h", "--dead-letter-max-bytes", "8MiB"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("weft serve starts"),
    );
    let js = jetstream::new(async_nats::connect(server.url()).await.unwrap());
    let limits = |name: &'static str| {
        let js = js.clone();
        async move {
            let info = js.get_stream(name).await.ok()?.get_info().await.ok()?;
            Some((info.config.max_age, info.config.max_bytes))
        }
    };
    eventually("weft serve sets the limits it was given", Duration::from_secs(60), || async {
        limits("KV_weft-jobs").await == Some((Duration::from_secs(90), 16 << 20))
            && limits("OBJ_weft-objects").await == Some((Duration::from_secs(3 * 3600), 1 << 30))
            && limits("WEFT_DLQ").await == Some((Duration::from_secs(2 * 3600), 8 << 20))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_size_cap_the_server_cannot_reserve_is_refused_naming_its_flag() {
    let server = NatsServer::start();
    for (config, flag) in [
        (QueueConfig { dead_letter_max_bytes: Some(1 << 50), ..queue_config(&server) }, "--dead-letter-max-bytes"),
        (QueueConfig { record_max_bytes: Some(1 << 50), ..queue_config(&server) }, "--record-max-bytes"),
        (QueueConfig { object_max_bytes: Some(1 << 50), ..queue_config(&server) }, "--object-max-bytes"),
    ] {
        let message = weft::queue::connect(config).await.err().expect("refused").to_string();
        assert!(message.contains("the server cannot reserve") && message.contains(flag), "{message}");
    }
}
