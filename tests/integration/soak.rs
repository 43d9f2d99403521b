//! The fault soak (issue 19, item 8): jobs driven through several real
//! `weft serve` processes on a real 3-node JetStream cluster (R3), each job
//! ending in a webhook to a loopback receiver that honours the idempotency
//! key, while faults are injected at random from a printed seed: `kill -9`
//! of a worker (then a new one), SIGSTOP of a worker for longer than the ack
//! wait, a SIGKILL and restart of a nats-server node, and a flaky receiver
//! (5xx, slow answers past the sender's timeout, connection resets before
//! and after it accepted). At the end, for every job: one terminal state
//! (succeeded, or dead-lettered with a reason and one letter), none lost, at
//! most one accepted delivery (exactly one when it succeeded); during the
//! run: worker RSS under a bound, storage under a bound set by retention.
//!
//! Short by default (CI); `tests/soak/run.sh` runs the long version. Knobs:
//! `WEFT_SOAK_JOBS`, `WEFT_SOAK_SEED`, `WEFT_SOAK_WORKERS`, `WEFT_SOAK_RATE`
//! (jobs submitted per second), `WEFT_SOAK_DEADLINE_SECS`,
//! `WEFT_SOAK_MAX_RSS_MIB`, `WEFT_SOAK_RECORD_AGE_SECS`. The fault schedule
//! and which jobs are rejected follow the seed; the interleaving of
//! processes does not.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use futures::{StreamExt as _, TryStreamExt as _};
use tokio::io::AsyncWriteExt as _;
use weft::queue::{JobRecord, JobState, QueueClient, QueueConfig};

use crate::cluster::connect_when_ready;
use crate::nats::NatsCluster;
use crate::servers::read_request;
use crate::support::{component_path, precompile, weft_cmd};

/// The server redelivers an unacked job after this long; a SIGSTOP lasts longer.
const ACK_WAIT: Duration = Duration::from_secs(3);
/// The longest one webhook request may take (`--http-timeout-secs`): a
/// slow answer past it makes the sender retry what the receiver accepted.
const HTTP_TIMEOUT_SECS: u64 = 2;
/// Added to the retention age before an expired message must be gone
/// (the server's expiry check) and to how late the harness sees a job end.
const EXPIRY_SLACK: Duration = Duration::from_secs(10);
/// State-bucket messages one job can hold at once: its record and a
/// checkpoint per step (three steps).
const MESSAGES_PER_LIVE_JOB: u64 = 4;
/// Worker resident memory the soak allows (MiB): a worker holds at most
/// `--concurrency` jobs of a few KiB, so growth past this is a leak.
const DEFAULT_MAX_RSS_MIB: u64 = 256;
/// The nap step's length: long enough that every worker holds jobs when
/// a fault strikes it (about `rate` x 1 s jobs are in flight).
const NAP_MS: u64 = 800;
/// Jobs one worker runs at once (`--concurrency`).
const CONCURRENCY: usize = 8;
/// One job in this many is rejected by the receiver (422: fatal).
const REJECT_ONE_IN: u64 = 20;

/// The run's parameters, from the environment.
#[derive(Debug, Clone)]
struct Settings {
    jobs: usize,
    seed: u64,
    workers: usize,
    rate: f64,
    deadline: Duration,
    max_rss_kib: u64,
    record_age: Duration,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(value) => value.parse().unwrap_or_else(|_| panic!("{name}={value} is not a valid value")),
        Err(_) => default,
    }
}

impl Settings {
    fn from_env() -> Self {
        let jobs = env_or("WEFT_SOAK_JOBS", 200usize);
        let clock = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
        let rate = env_or("WEFT_SOAK_RATE", 5.0f64);
        // The submissions' own time, plus time to drain and verify.
        let deadline = (jobs as f64 / rate) as u64 + 120;
        Settings {
            jobs,
            seed: env_or("WEFT_SOAK_SEED", clock),
            workers: env_or("WEFT_SOAK_WORKERS", 3usize),
            rate,
            deadline: Duration::from_secs(env_or("WEFT_SOAK_DEADLINE_SECS", deadline)),
            max_rss_kib: env_or("WEFT_SOAK_MAX_RSS_MIB", DEFAULT_MAX_RSS_MIB) * 1024,
            record_age: Duration::from_secs(env_or("WEFT_SOAK_RECORD_AGE_SECS", 20u64)),
        }
    }
}

/// SplitMix64: a small seeded generator, so a run is reproducible from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `low..high` (milliseconds, counts).
    fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low).max(1)
    }
}

fn job_id(i: usize, seed: u64) -> String {
    // A mix of the seed picks which jobs the receiver rejects.
    let mut rng = Rng(seed ^ (i as u64).wrapping_mul(0x2545_f491_4f6c_dd1d));
    if rng.next().is_multiple_of(REJECT_ONE_IN) { format!("soak-{i}-reject") } else { format!("soak-{i}") }
}

fn rejected(job_id: &str) -> bool {
    job_id.ends_with("-reject")
}

/// What the receiver did to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum ReceiverFault {
    /// Reset the connection before reading the body's effect.
    ResetBefore,
    /// Answered 503 (not accepted).
    Unavailable,
    /// Accepted, but answered after the sender's timeout.
    SlowPastTimeout,
    /// Accepted, then reset the connection without an answer.
    ResetAfter,
}

/// What the receiver saw.
#[derive(Debug, Default)]
struct Tally {
    requests: u64,
    faults: BTreeMap<ReceiverFault, u64>,
    /// Idempotency key → the job it was first accepted for.
    accepted_keys: HashMap<String, String>,
    /// Job id → deliveries accepted (applied) for it.
    accepted_by_job: HashMap<String, u32>,
    /// Deliveries dropped because their key was accepted already.
    dropped_repeats: u64,
    /// Deliveries refused with 422 (the rejected jobs).
    refused: u64,
}

/// A webhook receiver on loopback that honours `idempotency-key` (a repeat
/// of an accepted key is answered 200 and not applied again) and injects
/// faults at random.
struct Receiver {
    addr: std::net::SocketAddr,
    tally: Arc<Mutex<Tally>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start(seed: u64) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let tally = Arc::new(Mutex::new(Tally::default()));
        let rng = Arc::new(Mutex::new(Rng(seed ^ 0x5eed)));
        let seen = tally.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else { return };
                tokio::spawn(answer(socket, seen.clone(), rng.clone()));
            }
        });
        Receiver { addr, tally, task }
    }

    fn tally(&self) -> std::sync::MutexGuard<'_, Tally> {
        self.tally.lock().unwrap()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Applies a delivery once per idempotency key; the status to answer.
fn accept(tally: &Mutex<Tally>, key: &str, job: &str) -> u16 {
    let mut tally = tally.lock().unwrap();
    if rejected(job) {
        tally.refused += 1;
        return 422;
    }
    if tally.accepted_keys.contains_key(key) {
        tally.dropped_repeats += 1;
    } else {
        tally.accepted_keys.insert(key.to_string(), job.to_string());
        *tally.accepted_by_job.entry(job.to_string()).or_default() += 1;
    }
    200
}

async fn answer(mut socket: tokio::net::TcpStream, tally: Arc<Mutex<Tally>>, rng: Arc<Mutex<Rng>>) {
    let Ok(Ok(Some(request))) = tokio::time::timeout(Duration::from_secs(10), read_request(&mut socket)).await else {
        return;
    };
    let key = request.header("idempotency-key").unwrap_or_default().to_string();
    let job = request.header("x-weft-job-id").unwrap_or_default().to_string();
    let (roll, slow_ms) = {
        let mut rng = rng.lock().unwrap();
        (rng.next() % 100, rng.between(HTTP_TIMEOUT_SECS * 1000 + 300, HTTP_TIMEOUT_SECS * 1000 + 1500))
    };
    let fault = match roll {
        0..=4 => Some(ReceiverFault::ResetBefore),
        5..=9 => Some(ReceiverFault::Unavailable),
        10..=12 => Some(ReceiverFault::SlowPastTimeout),
        13..=17 => Some(ReceiverFault::ResetAfter),
        _ => None,
    };
    {
        let mut seen = tally.lock().unwrap();
        seen.requests += 1;
        if let Some(fault) = fault {
            *seen.faults.entry(fault).or_default() += 1;
        }
    }
    let status = match fault {
        Some(ReceiverFault::ResetBefore) => return reset(socket),
        Some(ReceiverFault::Unavailable) => 503,
        Some(ReceiverFault::SlowPastTimeout) => {
            tokio::time::sleep(Duration::from_millis(slow_ms)).await;
            accept(&tally, &key, &job)
        }
        Some(ReceiverFault::ResetAfter) => {
            accept(&tally, &key, &job);
            return reset(socket);
        }
        None => accept(&tally, &key, &job),
    };
    let head = format!("HTTP/1.1 {status} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{{}}");
    let _ = socket.write_all(head.as_bytes()).await;
    let _ = socket.shutdown().await;
}

/// Closes with a TCP reset (SO_LINGER 0), as a crashing receiver would.
fn reset(socket: tokio::net::TcpStream) {
    let _ = socket.set_zero_linger();
    drop(socket);
}

/// The soak's workflow: a cheap step, a short nap (jobs are in flight when
/// a fault strikes), then the webhook to the receiver.
fn soak_workflow(receiver: &Receiver) -> String {
    format!(
        "name: soak\nversion: '1'\nsteps:\n  - id: echo\n    plugin: {echo}\n  - id: nap\n    plugin: {sleep}\n    \
         needs: [echo]\n    config: {{ ms: {NAP_MS} }}\n  - id: notify\n    plugin: notify\n    needs: [nap]\n    \
         retry: {{ max_attempts: 6, initial_backoff: 100ms, jitter: none }}\n    grants: {{ http: [\"{addr}\"] }}\n    \
         config: {{ channels: [{{ type: webhook, url: \"http://{addr}/hook\" }}] }}\n",
        echo = component_path("echo-config").display(),
        sleep = component_path("sleep").display(),
        addr = receiver.addr,
    )
}

/// The `weft serve` processes, each replaceable after a `kill -9`.
struct Fleet {
    dir: PathBuf,
    args: Vec<String>,
    workers: Vec<Child>,
    started: usize,
}

impl Fleet {
    fn spawn(&mut self) -> Child {
        self.started += 1;
        let log = std::fs::File::create(self.dir.join(format!("worker-{}.log", self.started))).unwrap();
        weft_cmd(&self.dir)
            .arg("serve")
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("weft serve starts")
    }

    fn pids(&self) -> Vec<u32> {
        self.workers.iter().map(Child::id).collect()
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for child in &mut self.workers {
            let _ = signal(child.id(), "CONT");
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Sends `SIG<name>` to `pid` with the `kill` command.
fn signal(pid: u32, name: &str) -> bool {
    Command::new("kill").arg(format!("-{name}")).arg(pid.to_string()).status().is_ok_and(|s| s.success())
}

/// A process's resident set in KiB, from /proc (None once it is gone).
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The injected faults of the process kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum ProcessFault {
    KillWorker,
    StopWorker,
    RestartNode,
}

/// What the harness shares between its tasks.
struct Shared {
    started: Instant,
    /// When the harness saw each job's terminal record (index = job number).
    ended_at: Mutex<Vec<Option<Instant>>>,
    submitted: AtomicUsize,
    stop: AtomicBool,
    peak_rss_kib: Mutex<u64>,
    /// Largest state-bucket messages, its bound then, and object-store and
    /// dead-letter messages seen.
    peak_storage: Mutex<(u64, u64, u64, u64)>,
    /// A storage sample over its bound, as found.
    storage_violation: Mutex<Option<String>>,
    rss_violation: Mutex<Option<String>>,
}

/// Messages stored under `filter` in stream `name` (None while the cluster
/// cannot answer, as during a node restart).
async fn messages_under(js: &jetstream::Context, name: &str, filter: &str) -> Option<u64> {
    let stream = js.get_stream(name).await.ok()?;
    let subjects: Vec<(String, usize)> = stream.info_with_subjects(filter).await.ok()?.try_collect().await.ok()?;
    Some(subjects.iter().map(|(_, count)| *count as u64).sum())
}

async fn stream_messages(js: &jetstream::Context, name: &str) -> Option<u64> {
    Some(js.get_stream(name).await.ok()?.get_info().await.ok()?.state.messages)
}

/// Samples worker RSS and storage every 500 ms until told to stop.
async fn sample(shared: Arc<Shared>, js: jetstream::Context, pids: Arc<Mutex<Vec<u32>>>, settings: Settings) {
    while !shared.stop.load(Ordering::Relaxed) {
        for pid in pids.lock().unwrap().clone() {
            if let Some(kib) = rss_kib(pid) {
                let mut peak = shared.peak_rss_kib.lock().unwrap();
                *peak = (*peak).max(kib);
                if kib > settings.max_rss_kib {
                    shared.rss_violation.lock().unwrap().get_or_insert(format!(
                        "worker {pid} had {kib} KiB resident, over the bound {} KiB",
                        settings.max_rss_kib
                    ));
                }
            }
        }
        // The bound: every job not yet seen finished, and every one seen
        // finished within the record age (plus slack), may hold a record and
        // its checkpoints; whatever ran before that has expired.
        let now = Instant::now();
        let live = |window: Duration| {
            let submitted = shared.submitted.load(Ordering::Relaxed);
            let ended = shared.ended_at.lock().unwrap();
            ended[..submitted].iter().filter(|at| at.is_none_or(|at| now.duration_since(at) < window)).count() as u64
        };
        let state_bound = live(settings.record_age + EXPIRY_SLACK) * MESSAGES_PER_LIVE_JOB + 8;
        // Checkpoints go when a job ends, not when they expire.
        let checkpoint_bound = live(EXPIRY_SLACK) * (MESSAGES_PER_LIVE_JOB - 1);
        let state = messages_under(&js, "KV_weft-jobs", "$KV.weft-jobs.>").await;
        let checkpoints = messages_under(&js, "KV_weft-jobs", "$KV.weft-jobs.ckpt.>").await;
        let objects = stream_messages(&js, "OBJ_weft-objects").await;
        let letters = stream_messages(&js, "WEFT_DLQ").await;
        if let (Some(state), Some(checkpoints), Some(objects), Some(letters)) = (state, checkpoints, objects, letters) {
            let at = shared.started.elapsed().as_secs();
            let mut peak = shared.peak_storage.lock().unwrap();
            if state > peak.0 {
                *peak = (state, state_bound, peak.2, peak.3);
            }
            peak.2 = peak.2.max(objects);
            peak.3 = peak.3.max(letters);
            if state > state_bound {
                shared.storage_violation.lock().unwrap().get_or_insert(format!(
                    "at {at}s the state bucket held {state} messages, over the bound {state_bound}"
                ));
            }
            if checkpoints > checkpoint_bound {
                shared.storage_violation.lock().unwrap().get_or_insert(format!(
                    "at {at}s the state bucket held {checkpoints} checkpoints, over the bound {checkpoint_bound} \
                     (finished jobs' checkpoints are not removed)"
                ));
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Waits (at most 90 s) until every replica of the job stream and the
/// state bucket is current again after a node came back.
async fn wait_for_replicas(js: &jetstream::Context) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let mut current = true;
        for name in ["WEFT_JOBS", "KV_weft-jobs"] {
            let info = match js.get_stream(name).await {
                Ok(mut stream) => stream.info().await.ok().map(|i| i.cluster.clone()),
                Err(_) => None,
            };
            current &= info.flatten().is_some_and(|cluster| {
                cluster.leader.is_some() && cluster.replicas.len() == 2 && cluster.replicas.iter().all(|r| r.current)
            });
        }
        if current {
            return;
        }
        assert!(Instant::now() < deadline, "the cluster's replicas did not catch up within 90 s");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Injects process faults one at a time, in rounds that each hold every
/// kind once in a seeded order, with random gaps, until told to stop (and
/// at least two rounds).
async fn inject(
    shared: Arc<Shared>,
    mut fleet: Fleet,
    mut cluster: NatsCluster,
    js: jetstream::Context,
    pids: Arc<Mutex<Vec<u32>>>,
    seed: u64,
) -> (BTreeMap<ProcessFault, u64>, Fleet, NatsCluster) {
    let mut rng = Rng(seed ^ 0xfa17);
    let mut done: BTreeMap<ProcessFault, u64> = BTreeMap::new();
    // The first faults strike once the workers are running jobs.
    while shared.ended_at.lock().unwrap().iter().all(Option::is_none) && !shared.stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut rounds = 0;
    while rounds < 2 || !shared.stop.load(Ordering::Relaxed) {
        let mut order = [ProcessFault::KillWorker, ProcessFault::StopWorker, ProcessFault::RestartNode];
        for i in (1..order.len()).rev() {
            order.swap(i, rng.next() as usize % (i + 1));
        }
        for fault in order {
            tokio::time::sleep(Duration::from_millis(rng.between(1000, 3000))).await;
            let victim = rng.next() as usize;
            let at = shared.started.elapsed().as_secs_f32();
            match fault {
                ProcessFault::KillWorker => {
                    let i = victim % fleet.workers.len();
                    let mut child = fleet.spawn();
                    std::mem::swap(&mut child, &mut fleet.workers[i]);
                    eprintln!("soak: {at:.1}s kill -9 worker {}", child.id());
                    let _ = child.kill();
                    let _ = child.wait();
                }
                ProcessFault::StopWorker => {
                    let pid = fleet.workers[victim % fleet.workers.len()].id();
                    let pause = ACK_WAIT + Duration::from_millis(rng.between(1000, 3000));
                    eprintln!("soak: {at:.1}s SIGSTOP worker {pid} for {pause:?}");
                    assert!(signal(pid, "STOP"), "SIGSTOP {pid}");
                    tokio::time::sleep(pause).await;
                    assert!(signal(pid, "CONT"), "SIGCONT {pid}");
                }
                ProcessFault::RestartNode => {
                    let node = victim % cluster.nodes.len();
                    let down = Duration::from_millis(rng.between(500, 3000));
                    eprintln!("soak: {at:.1}s SIGKILL nats-server n{node}, restarted after {down:?}");
                    tokio::task::block_in_place(|| cluster.nodes[node].kill());
                    tokio::time::sleep(down).await;
                    tokio::task::block_in_place(|| cluster.nodes[node].restart());
                    wait_for_replicas(&js).await;
                }
            }
            *pids.lock().unwrap() = fleet.pids();
            *done.entry(fault).or_default() += 1;
        }
        rounds += 1;
    }
    (done, fleet, cluster)
}

/// Submits job `id` until the cluster stores it (the same id: a repeat
/// within the duplicate window is dropped), for at most 60 s.
async fn submit_until_stored(queue: &QueueClient, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match queue.submit("soak", id.as_bytes().to_vec(), Some(id.to_string())).await {
            Ok(_) => return,
            Err(error) => assert!(Instant::now() < deadline, "job {id} could not be submitted: {error}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Sweeps the submitted jobs not yet seen finished, every 250 ms, reading
/// their records; a terminal one is kept. Returns when every job has
/// ended, at the deadline, or once all are submitted and none has ended
/// for `give_up_after`.
async fn watch_ends(
    shared: Arc<Shared>,
    queue: QueueClient,
    ids: Arc<Vec<String>>,
    deadline: Instant,
    give_up_after: Duration,
) -> (HashMap<String, JobRecord>, HashMap<String, JobRecord>) {
    let mut ended: HashMap<String, JobRecord> = HashMap::new();
    let mut last_end = Instant::now();
    let mut last_open: HashMap<String, JobRecord> = HashMap::new();
    while Instant::now() < deadline {
        let submitted = shared.submitted.load(Ordering::Relaxed);
        let open: Vec<usize> = (0..submitted).filter(|i| !ended.contains_key(&ids[*i])).collect();
        if open.is_empty() && submitted == ids.len() {
            break;
        }
        // Every job submitted, none ended for longer than the record age:
        // what is still open will not end (its record, if any, expired).
        if submitted == ids.len() && last_end.elapsed() > give_up_after {
            break;
        }
        let before = ended.len();
        let reads = futures::stream::iter(open)
            .map(|i| {
                let queue = &queue;
                let id = &ids[i];
                async move { (i, queue.status(id).await) }
            })
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await;
        for (i, read) in reads {
            match read {
                Ok(Some(record))
                    if matches!(record.state, JobState::Succeeded | JobState::DeadLettered | JobState::Cancelled) =>
                {
                    shared.ended_at.lock().unwrap()[i] = Some(Instant::now());
                    ended.insert(ids[i].clone(), record);
                }
                // The last unfinished state seen, to tell what a lost job was doing.
                Ok(Some(record)) => {
                    last_open.insert(ids[i].clone(), record);
                }
                _ => {}
            }
        }
        if ended.len() > before {
            last_end = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    (ended, last_open)
}

/// Every dead letter, read again while the cluster recovers (at most 60 s).
async fn read_dead_letters(queue: &QueueClient) -> Vec<weft::queue::DeadLetterEntry> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match queue.dead_letters().await {
            Ok(letters) => return letters,
            Err(error) => assert!(Instant::now() < deadline, "the dead letters cannot be read: {error}"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_random_faults_every_job_ends_once_none_is_lost_and_no_webhook_is_applied_twice() {
    let settings = Settings::from_env();
    eprintln!("soak: seed {} ({settings:?}); rerun with WEFT_SOAK_SEED={}", settings.seed, settings.seed);
    precompile(&["notify", "echo-config", "sleep"]);
    let cluster = NatsCluster::start(3);
    let config = QueueConfig {
        url: cluster.urls(),
        replicas: 3,
        ack_wait: ACK_WAIT,
        record_max_age: settings.record_age,
        object_max_age: Duration::from_secs(3600),
        dead_letter_max_age: Duration::from_secs(3600),
        ..QueueConfig::default()
    };
    let queue = connect_when_ready(&config).await;
    let js = jetstream::new(queue.nats().clone());
    let receiver = Receiver::start(settings.seed).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("soak.yaml"), soak_workflow(&receiver)).unwrap();
    let age = format!("{}s", settings.record_age.as_secs());
    let args: Vec<String> = [
        "--nats",
        &cluster.urls(),
        "--replicas",
        "3",
        "--workflows",
        ".",
        "--strict",
        "--concurrency",
        &CONCURRENCY.to_string(),
        "--ack-wait-secs",
        &ACK_WAIT.as_secs().to_string(),
        "--drain-grace-secs",
        "2",
        "--http-timeout-secs",
        &HTTP_TIMEOUT_SECS.to_string(),
        "--record-max-age",
        &age,
        "--object-max-age",
        "1h",
        "--dead-letter-max-age",
        "1h",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut fleet = Fleet { dir: dir.path().to_path_buf(), args, workers: Vec::new(), started: 0 };
    for _ in 0..settings.workers {
        let child = fleet.spawn();
        fleet.workers.push(child);
    }

    let ids: Arc<Vec<String>> = Arc::new((0..settings.jobs).map(|i| job_id(i, settings.seed)).collect());
    let shared = Arc::new(Shared {
        started: Instant::now(),
        ended_at: Mutex::new(vec![None; settings.jobs]),
        submitted: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
        peak_rss_kib: Mutex::new(0),
        peak_storage: Mutex::new((0, 0, 0, 0)),
        storage_violation: Mutex::new(None),
        rss_violation: Mutex::new(None),
    });
    // Every terminal state a worker announces (`weft.results.soak`); a
    // reconnecting client may miss some, so this can only undercount.
    let mut events = queue.nats().subscribe("weft.results.soak").await.unwrap();
    queue.nats().flush().await.unwrap();
    let announced: Arc<Mutex<HashMap<String, Vec<String>>>> = Arc::default();
    let heard = announced.clone();
    let listener = tokio::spawn(async move {
        while let Some(event) = events.next().await {
            let event: serde_json::Value = serde_json::from_slice(&event.payload).unwrap_or_default();
            let id = event["job_id"].as_str().unwrap_or_default().to_string();
            heard.lock().unwrap().entry(id).or_default().push(event["state"].to_string());
        }
    });
    let deadline = Instant::now() + settings.deadline;
    let pids = Arc::new(Mutex::new(fleet.pids()));
    let sampler = tokio::spawn(sample(shared.clone(), js.clone(), pids.clone(), settings.clone()));
    let injector = tokio::spawn(inject(shared.clone(), fleet, cluster, js.clone(), pids.clone(), settings.seed));
    let give_up_after = settings.record_age + EXPIRY_SLACK + Duration::from_secs(30);
    let watcher = tokio::spawn(watch_ends(shared.clone(), queue.clone(), ids.clone(), deadline, give_up_after));

    // Submissions at a steady rate.
    let interval = Duration::from_secs_f64(1.0 / settings.rate);
    for (i, id) in ids.iter().enumerate() {
        let due = shared.started + interval.mul_f64(i as f64);
        tokio::time::sleep_until(due.into()).await;
        submit_until_stored(&queue, id).await;
        shared.submitted.store(i + 1, Ordering::Relaxed);
    }
    let submitted_in = shared.started.elapsed();
    let (ended, last_open) = watcher.await.unwrap();
    shared.stop.store(true, Ordering::Relaxed);
    let (faults, fleet, cluster) = tokio::time::timeout(Duration::from_secs(180), injector)
        .await
        .expect("the fault injector finishes its round")
        .unwrap();
    sampler.await.unwrap();
    let wall = shared.started.elapsed();

    // Every message left the work queue (acked after its outcome was durable).
    let drained = tokio::time::timeout(Duration::from_secs(60), async {
        while stream_messages(&js, "WEFT_JOBS").await != Some(0) {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })
    .await;
    let left_in_queue = stream_messages(&js, "WEFT_JOBS").await;

    // The invariants, for every job.
    let letters = read_dead_letters(&queue).await;
    let mut letters_by_job: HashMap<&str, Vec<&str>> = HashMap::new();
    for entry in &letters {
        letters_by_job.entry(entry.letter.job_id.as_str()).or_default().push(entry.letter.reason.as_str());
    }
    listener.abort();
    let announced = announced.lock().unwrap().clone();
    let announced_twice: Vec<String> = announced
        .iter()
        .filter(|(_, states)| states.len() > 1)
        .map(|(id, states)| format!("{id}: {states:?}"))
        .collect();
    // The run is over: what the receiver saw is taken out of its lock.
    let tally = std::mem::take(&mut *receiver.tally());
    let (mut lost, mut wrong, mut duplicated) = (Vec::new(), Vec::new(), Vec::new());
    let (mut succeeded, mut dead_lettered) = (0, 0);
    // Jobs that more than one delivery ran: the faults struck jobs in flight.
    let rerun = ended.values().filter(|record| record.attempts > 1).count();
    for id in ids.iter() {
        let accepted = tally.accepted_by_job.get(id).copied().unwrap_or(0);
        if accepted > 1 {
            duplicated.push(format!("{id}: {accepted} deliveries applied"));
        }
        let reasons = letters_by_job.get(id.as_str()).cloned().unwrap_or_default();
        let Some(record) = ended.get(id) else {
            let now = queue.status(id).await.ok().flatten();
            lost.push(format!("{id}: now {now:?}; last seen unfinished {:?}", last_open.get(id)));
            continue;
        };
        match record.state {
            JobState::Succeeded if reasons.is_empty() && accepted == 1 && !rejected(id) => succeeded += 1,
            JobState::DeadLettered if reasons.len() == 1 && !reasons[0].is_empty() && accepted == 0 => {
                dead_lettered += 1;
                if !rejected(id) {
                    eprintln!("soak: {id} dead-lettered though its receiver accepts it: {}", reasons[0]);
                }
            }
            state => wrong.push(format!("{id}: {state:?}, {accepted} deliveries applied, dead letters {reasons:?}")),
        }
    }
    let unknown_letters: Vec<&str> =
        letters.iter().map(|e| e.letter.job_id.as_str()).filter(|job| !ids.contains(&job.to_string())).collect();
    let checkpoints_left = messages_under(&js, "KV_weft-jobs", "$KV.weft-jobs.ckpt.>").await;
    let storage_end = (
        stream_messages(&js, "KV_weft-jobs").await,
        stream_messages(&js, "OBJ_weft-objects").await,
        stream_messages(&js, "WEFT_DLQ").await,
    );
    let peak_rss = *shared.peak_rss_kib.lock().unwrap();
    let peak_storage = *shared.peak_storage.lock().unwrap();

    // The summary `tests/soak/run.sh` prints.
    eprintln!("soak: summary");
    eprintln!("| seed | {} |", settings.seed);
    eprintln!(
        "| jobs | {} ({} workers, {:.1}/s submitted in {submitted_in:.0?}) |",
        ids.len(),
        settings.workers,
        settings.rate
    );
    eprintln!("| wall time | {wall:.0?} |");
    eprintln!("| succeeded | {succeeded} |");
    eprintln!(
        "| dead-lettered | {dead_lettered} (rejected by design: {}) |",
        ids.iter().filter(|id| rejected(id)).count()
    );
    eprintln!("| lost | {} |", lost.len());
    eprintln!("| wrong terminal state | {} |", wrong.len());
    eprintln!("| duplicated (applied twice) | {} |", duplicated.len());
    eprintln!("| jobs run by more than one delivery | {rerun} |");
    eprintln!("| terminal states announced (jobs; twice) | {}; {} |", announced.len(), announced_twice.len());
    for (fault, count) in &faults {
        eprintln!("| fault {fault:?} | {count} |");
    }
    for (fault, count) in &tally.faults {
        eprintln!("| receiver fault {fault:?} | {count} |");
    }
    eprintln!("| webhook requests | {} |", tally.requests);
    eprintln!("| repeats dropped by the receiver's key | {} |", tally.dropped_repeats);
    eprintln!("| refused (422) | {} |", tally.refused);
    eprintln!("| workers started | {} |", fleet.started);
    eprintln!("| max worker RSS | {} MiB (bound {} MiB) |", peak_rss / 1024, settings.max_rss_kib / 1024);
    eprintln!(
        "| peak storage (state msgs, its bound; objects; dead letters) | {}, {}; {}; {} |",
        peak_storage.0, peak_storage.1, peak_storage.2, peak_storage.3
    );
    eprintln!("| storage at end (state, objects, dead letters msgs) | {storage_end:?} |");
    eprintln!("| checkpoints left | {checkpoints_left:?} |");
    for line in lost.iter().chain(&wrong).chain(&duplicated).chain(&announced_twice).take(40) {
        eprintln!("soak: {line}");
    }
    drop(fleet);
    drop(cluster);

    assert!(lost.is_empty(), "{} jobs never reached a terminal state: {lost:?}", lost.len());
    assert!(wrong.is_empty(), "{} jobs ended wrongly: {wrong:?}", wrong.len());
    assert!(duplicated.is_empty(), "{} webhooks applied more than once: {duplicated:?}", duplicated.len());
    assert!(unknown_letters.is_empty(), "dead letters for jobs never submitted: {unknown_letters:?}");
    assert!(drained.is_ok(), "the work queue still holds {left_in_queue:?} messages");
    assert_eq!(checkpoints_left, Some(0), "finished jobs' checkpoints are removed");
    assert!(shared.storage_violation.lock().unwrap().is_none(), "{:?}", shared.storage_violation.lock().unwrap());
    assert!(shared.rss_violation.lock().unwrap().is_none(), "{:?}", shared.rss_violation.lock().unwrap());
    for fault in [ProcessFault::KillWorker, ProcessFault::StopWorker, ProcessFault::RestartNode] {
        assert!(faults.get(&fault).copied().unwrap_or(0) >= 2, "fewer than two {fault:?} faults: {faults:?}");
    }
    let receiver_faults: HashSet<ReceiverFault> = tally.faults.keys().copied().collect();
    assert_eq!(receiver_faults.len(), 4, "every kind of receiver fault happened: {:?}", tally.faults);
    assert!(announced_twice.is_empty(), "jobs that ended twice: {announced_twice:?}");
    assert!(tally.dropped_repeats > 0, "some delivery was repeated after the receiver accepted it");
}

/// Found by the soak: a worker stopped (SIGSTOP) past the ack wait while
/// running a job, so the job was redelivered and finished by another
/// worker, announces that job's end a second time when it continues (and
/// overwrites its record with its own stale copy): its terminal write is an
/// unconditional put, not one conditional on the record it claimed.
/// What a job of a nap then a webhook answered `status` looked like once
/// its first worker, SIGSTOPped during the nap past the ack wait, was
/// resumed and drained after a second worker had ended the job: the record
/// the second worker left, a second end event if one came, the record
/// after the first worker exited, and the job's dead letters.
struct ResumedRun {
    ended: JobRecord,
    announced_again: Option<String>,
    after: JobRecord,
    dead_letters: usize,
}

async fn resume_a_worker_stopped_past_the_ack_wait(status: u16) -> ResumedRun {
    let server = crate::nats::NatsServer::start();
    let receiver = crate::servers::HttpServer::always(status).await;
    let dir = tempfile::tempdir().unwrap();
    let workflow = format!(
        "name: held\nversion: '1'\nsteps:\n  - id: nap\n    plugin: {sleep}\n    config: {{ ms: 2500 }}\n  - id: notify\n    \
         plugin: notify\n    needs: [nap]\n    grants: {{ http: [\"{grant}\"] }}\n    \
         config: {{ channels: [{{ type: webhook, url: \"{url}\" }}] }}\n",
        sleep = component_path("sleep").display(),
        grant = receiver.grant(),
        url = receiver.url("/hook"),
    );
    std::fs::write(dir.path().join("held.yaml"), workflow).unwrap();
    precompile(&["notify", "sleep"]);
    let mut fleet = Fleet {
        dir: dir.path().to_path_buf(),
        args: ["--nats", &server.url(), "--workflows", ".", "--ack-wait-secs", "2", "--drain-grace-secs", "20"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        workers: Vec::new(),
        started: 0,
    };
    let first = fleet.spawn();
    fleet.workers.push(first);
    let queue = weft::queue::connect(QueueConfig { url: server.url(), ..QueueConfig::default() }).await.unwrap();
    let mut events = queue.nats().subscribe("weft.results.held").await.unwrap();
    queue.nats().flush().await.unwrap();
    queue.submit("held", b"hello".to_vec(), Some("held-1".into())).await.unwrap();

    // The first worker runs the job's nap; it is stopped there, past the ack wait.
    crate::queue::wait_for_state(&queue, "held-1", JobState::Running).await;
    let stopped = fleet.workers[0].id();
    assert!(signal(stopped, "STOP"));
    let second = fleet.spawn();
    fleet.workers.push(second);
    let ended = queue.wait("held-1", Duration::from_secs(60)).await.unwrap();
    let first_event = tokio::time::timeout(Duration::from_secs(10), events.next()).await.unwrap().unwrap();
    let first_event = String::from_utf8_lossy(&first_event.payload).into_owned();
    let state = format!("\"state\":\"{}\"", ended.state.name());
    assert!(first_event.contains(&state), "the second worker's end event says {state}: {first_event}");

    // The first worker continues, then drains and exits: whatever it does
    // to the job is done by then.
    assert!(signal(stopped, "CONT"));
    assert!(signal(stopped, "TERM"));
    let exited = crate::support::wait_exit(&mut fleet.workers[0], Duration::from_secs(40));
    assert!(exited.is_some(), "the resumed worker drains and exits");
    queue.nats().flush().await.unwrap();
    let again = tokio::time::timeout(Duration::from_millis(500), events.next()).await;
    let announced_again = again.ok().flatten().map(|event| String::from_utf8_lossy(&event.payload).into_owned());
    let after = queue.status("held-1").await.unwrap().unwrap();
    let dead_letters = read_dead_letters(&queue).await.iter().filter(|entry| entry.letter.job_id == "held-1").count();
    ResumedRun { ended, announced_again, after, dead_letters }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_resumed_after_sigstop_does_not_end_a_job_another_worker_finished() {
    let run = resume_a_worker_stopped_past_the_ack_wait(200).await;
    assert_eq!(run.ended.state, JobState::Succeeded, "the second worker finished it: {:?}", run.ended);
    assert_eq!(run.announced_again, None, "the job's end was announced a second time");
    assert_eq!(run.after, run.ended, "the finished job's record is left as the second worker wrote it");
    assert_eq!(run.dead_letters, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_resumed_after_sigstop_does_not_dead_letter_a_job_another_worker_dead_lettered() {
    // The receiver refuses (422: fatal), so each worker's run ends in a dead letter.
    let run = resume_a_worker_stopped_past_the_ack_wait(422).await;
    assert_eq!(run.ended.state, JobState::DeadLettered, "the second worker dead-lettered it: {:?}", run.ended);
    assert_eq!(run.dead_letters, 1, "one job, one dead letter");
    assert_eq!(run.announced_again, None, "the job's end was announced a second time");
    assert_eq!(run.after, run.ended, "the dead-lettered job's record is left as the second worker wrote it");
}
