//! Connecting to NATS and creating (or checking) the topology: the job
//! stream, one durable consumer per workflow, the dead-letter stream, the
//! job-state bucket, the keys bucket and the object store, with their
//! retention limits (maximum age and size) and replicas. Idempotent: every
//! host runs it at start-up, and an existing object with incompatible
//! settings is an error naming the setting, never a silent reuse; only
//! retention limits and replicas are changed in place, and only by workers
//! (replicas are only ever raised).
//!
//! Routing: a job for workflow `w` is published on `<prefix>.w` and only the
//! consumer `<consumer_prefix>-w`, filtered on that subject, delivers it, so
//! a worker receives only jobs of workflows it serves. A workflow nobody
//! serves has no consumer (or an idle one) and its jobs wait in the stream.

use std::path::PathBuf;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, kv, object_store, stream};

use super::QueueError;
use crate::errors::error_chain;

/// Names, subjects and timings of the queue topology. The defaults are what
/// `weft serve` and `weft submit` use; every field is configurable.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// Server URL(s), comma separated.
    pub url: String,
    /// Job stream (work-queue retention).
    pub jobs_stream: String,
    /// Subject prefix of jobs: a job for workflow `w` goes to `<prefix>.w`.
    pub jobs_subject_prefix: String,
    /// Names the durable pull consumers: the one of workflow `w` is
    /// `<consumer_prefix>-w`, shared by every host serving `w`. (Weft before
    /// routing by workflow had one consumer named exactly this, over every
    /// workflow; a worker deletes it at start, see
    /// `Topology::check_consumers`.)
    pub consumer_prefix: String,
    /// Dead-letter stream.
    pub dlq_stream: String,
    /// Subject prefix of dead letters.
    pub dlq_subject_prefix: String,
    /// Subject prefix of completion and failure events.
    pub results_subject_prefix: String,
    /// Job state and checkpoint bucket.
    pub state_bucket: String,
    /// Object store bucket for large inputs, outputs and checkpoints.
    pub object_bucket: String,
    /// Bucket of long-lived keys that no retention limit touches (the
    /// dead-letter key). Kept apart from `state_bucket`, whose entries
    /// expire, so that expiry never drops the key and with it the proof
    /// that existing dead letters are genuine.
    pub keys_bucket: String,
    /// Bucket of the workflow registry (`registry.rs`): what each served
    /// workflow is, written by workers at start-up, read by clients. No
    /// maximum age: an idle fleet must not forget its workflows.
    pub workflows_bucket: String,
    /// How long a job record or checkpoint is kept after it was last
    /// written (the state bucket's maximum age; zero keeps them forever).
    /// Protects the server's disk from one record per job ever run, and
    /// bounds how long unmasked step outputs in checkpoints a job never
    /// finished can linger. A job id is remembered this long: a job
    /// resubmitted after its record expired runs again.
    pub record_max_age: Duration,
    /// The state bucket's size cap in bytes (`None`: no cap); past it the
    /// oldest records and checkpoints are dropped first.
    pub record_max_bytes: Option<u64>,
    /// How long an object (a large input, output, checkpoint or dead-letter
    /// body) is kept after it was written (zero keeps them forever). It
    /// must cover `dead_letter_max_age`, since replaying a dead letter
    /// needs its body and input, and `record_max_age`, since a record may
    /// point to its outputs here.
    pub object_max_age: Duration,
    /// The object store's size cap in bytes (`None`: no cap); past it the
    /// oldest objects are dropped first (an object partly dropped reads as
    /// an error).
    pub object_max_bytes: Option<u64>,
    /// How long a dead letter is kept (the dead-letter stream's maximum
    /// age; zero keeps them forever): how long an operator has to inspect
    /// and replay a failed job.
    pub dead_letter_max_age: Duration,
    /// The dead-letter stream's size cap in bytes (`None`: no cap); past
    /// it the oldest letters are dropped first.
    pub dead_letter_max_bytes: Option<u64>,
    /// How long the server waits for an ack before redelivering. Workers
    /// send in-progress acks well within it while a job runs.
    pub ack_wait: Duration,
    /// JetStream's own delivery cap: a backstop behind the host's counter.
    pub max_deliver: i64,
    /// Window in which a repeated `Nats-Msg-Id` is dropped by the server.
    pub duplicate_window: Duration,
    /// Credentials: a `.creds` file.
    pub credentials_file: Option<PathBuf>,
    /// Credentials: user and password.
    pub user_password: Option<(String, String)>,
    /// Credentials: a token.
    pub token: Option<String>,
    /// Credentials: an nkey seed.
    pub nkey_seed: Option<String>,
    /// A CA certificate to trust for TLS.
    pub tls_ca: Option<PathBuf>,
    /// Require TLS.
    pub require_tls: bool,
    /// Copies of every stream, bucket and object store in a JetStream
    /// cluster (1, 3 or 5; at most the cluster's size). Three survive the
    /// loss of one server without losing a job or a record.
    pub replicas: usize,
    /// Keys that encrypt job payloads at rest (inputs, checkpoint items,
    /// outputs, dead-letter bodies): the current one encrypts what this
    /// process writes, every one decrypts. `None` writes plaintext and
    /// reads only plaintext (encrypted data is then an error naming its key).
    pub at_rest: Option<super::Keyring>,
}

/// The default server URL when neither `--nats` nor `NATS_URL` is given.
pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";

/// Default [`QueueConfig::record_max_age`]: a week, time to look a job up
/// after the weekend.
pub const DEFAULT_RECORD_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// Default [`QueueConfig::object_max_age`]: as long as dead letters, whose
/// bodies and inputs live here.
pub const DEFAULT_OBJECT_MAX_AGE: Duration = DEFAULT_DEAD_LETTER_MAX_AGE;

/// Default [`QueueConfig::dead_letter_max_age`]: thirty days to inspect and
/// replay a failed job.
pub const DEFAULT_DEAD_LETTER_MAX_AGE: Duration = Duration::from_secs(30 * 24 * 3600);

/// Default size caps of the state bucket, the object store and the
/// dead-letter stream: none, so the ages alone bound them. JetStream
/// reserves a stream's whole `max_bytes` on the server when the stream is
/// created, and refuses a stream whose cap exceeds the disk it has, so a
/// built-in cap would either be too small for a busy deployment or stop a
/// small server from starting; set one to fit the server's disk.
pub const DEFAULT_MAX_BYTES: Option<u64> = None;

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            url: std::env::var("NATS_URL").unwrap_or_else(|_| DEFAULT_NATS_URL.to_string()),
            jobs_stream: "WEFT_JOBS".into(),
            jobs_subject_prefix: "weft.jobs".into(),
            consumer_prefix: "weft-workers".into(),
            dlq_stream: "WEFT_DLQ".into(),
            dlq_subject_prefix: "weft.dlq".into(),
            results_subject_prefix: "weft.results".into(),
            state_bucket: "weft-jobs".into(),
            object_bucket: "weft-objects".into(),
            keys_bucket: "weft-keys".into(),
            workflows_bucket: super::registry::DEFAULT_WORKFLOWS_BUCKET.into(),
            record_max_age: DEFAULT_RECORD_MAX_AGE,
            record_max_bytes: DEFAULT_MAX_BYTES,
            object_max_age: DEFAULT_OBJECT_MAX_AGE,
            object_max_bytes: DEFAULT_MAX_BYTES,
            dead_letter_max_age: DEFAULT_DEAD_LETTER_MAX_AGE,
            dead_letter_max_bytes: DEFAULT_MAX_BYTES,
            ack_wait: Duration::from_secs(30),
            max_deliver: 100,
            duplicate_window: Duration::from_secs(120),
            credentials_file: None,
            user_password: None,
            token: None,
            nkey_seed: None,
            tls_ca: None,
            require_tls: false,
            replicas: 1,
            at_rest: None,
        }
    }
}

/// A connection with every topology object ready to use.
#[derive(Clone)]
pub(crate) struct Topology {
    pub(crate) config: QueueConfig,
    pub(crate) client: async_nats::Client,
    pub(crate) js: jetstream::Context,
    pub(crate) jobs: stream::Stream,
    pub(crate) dlq: stream::Stream,
    pub(crate) state: kv::Store,
    pub(crate) keys: kv::Store,
    pub(crate) objects: object_store::ObjectStore,
}

impl Topology {
    pub(crate) fn job_subject(&self, workflow: &str) -> String {
        format!("{}.{workflow}", self.config.jobs_subject_prefix)
    }

    pub(crate) fn dlq_subject(&self, workflow: &str) -> String {
        format!("{}.{workflow}", self.config.dlq_subject_prefix)
    }

    pub(crate) fn result_subject(&self, workflow: &str) -> String {
        format!("{}.{workflow}", self.config.results_subject_prefix)
    }

    /// The name of workflow `workflow`'s consumer.
    pub(crate) fn consumer_name(&self, workflow: &str) -> String {
        format!("{}-{workflow}", self.config.consumer_prefix)
    }

    /// The durable consumer of `workflow`'s jobs, created if missing and
    /// checked if present. Call [`Topology::check_consumers`] first: the
    /// server refuses a consumer whose filter overlaps another's on a
    /// work-queue stream, in words that do not say which one.
    pub(crate) async fn workflow_consumer(
        &self,
        workflow: &str,
    ) -> Result<consumer::Consumer<consumer::pull::Config>, QueueError> {
        let name = self.consumer_name(workflow);
        let wanted = consumer::pull::Config {
            durable_name: Some(name.clone()),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: self.config.ack_wait,
            max_deliver: self.config.max_deliver,
            filter_subject: self.job_subject(workflow),
            max_ack_pending: 10_000,
            ..Default::default()
        };
        match self.jobs.get_consumer::<consumer::pull::Config>(&name).await {
            Ok(mut existing) => {
                let info = existing.info().await.map_err(|e| QueueError::js("reading the consumer", e))?;
                let have = &info.config;
                let mismatch = |setting, found: String, wanted: String| {
                    Err(QueueError::Incompatible { what: "consumer", name: name.clone(), setting, found, wanted })
                };
                if have.ack_policy != wanted.ack_policy {
                    return mismatch(
                        "ack_policy",
                        format!("{:?}", have.ack_policy),
                        format!("{:?}", wanted.ack_policy),
                    );
                }
                if have.ack_wait != wanted.ack_wait {
                    return mismatch("ack_wait", format!("{:?}", have.ack_wait), format!("{:?}", wanted.ack_wait));
                }
                if have.filter_subject != wanted.filter_subject || !have.filter_subjects.is_empty() {
                    let found = [have.filter_subject.clone()]
                        .into_iter()
                        .chain(have.filter_subjects.iter().cloned())
                        .filter(|s| !s.is_empty())
                        .collect::<Vec<_>>()
                        .join(",");
                    return mismatch("filter_subject", found, wanted.filter_subject.clone());
                }
                if have.max_deliver != wanted.max_deliver {
                    return mismatch("max_deliver", have.max_deliver.to_string(), wanted.max_deliver.to_string());
                }
                Ok(existing)
            }
            Err(_) => self
                .jobs
                .create_consumer(wanted)
                .await
                .map_err(|e| QueueError::js(format!("creating consumer `{name}`"), e)),
        }
    }

    /// Makes room for the consumers of `workflows`: a work-queue stream gives
    /// each message to one consumer only and refuses overlapping filters.
    /// The shared consumer of Weft before routing (named exactly
    /// `consumer_prefix`, over every workflow) is deleted, with a warning:
    /// workers of that version stop receiving jobs, and the unacked jobs it
    /// held are delivered again through the workflows' consumers. Any other
    /// consumer that would take these workflows' jobs is an error naming it.
    pub(crate) async fn check_consumers(&self, workflows: &[&str]) -> Result<(), QueueError> {
        use futures::TryStreamExt as _;
        let infos: Vec<consumer::Info> =
            self.jobs.consumers().try_collect().await.map_err(|e| {
                QueueError::js(format!("listing the consumers of stream `{}`", self.config.jobs_stream), e)
            })?;
        let legacy_filter = format!("{}.>", self.config.jobs_subject_prefix);
        for info in infos {
            let filters: Vec<&str> = [info.config.filter_subject.as_str()]
                .into_iter()
                .chain(info.config.filter_subjects.iter().map(String::as_str))
                .filter(|s| !s.is_empty())
                .collect();
            let takes = |workflow: &str| {
                let subject = self.job_subject(workflow);
                filters.is_empty() || filters.iter().any(|filter| subject_matches(filter, &subject))
            };
            let Some(taken) = workflows.iter().find(|w| takes(w) && info.name != self.consumer_name(w)) else {
                continue;
            };
            if info.name == self.config.consumer_prefix && filters == [legacy_filter.as_str()] {
                tracing::warn!(
                    consumer = %info.name,
                    "deleting the consumer shared by every workflow (Weft before routing by workflow): workers \
                     of that version stop receiving jobs; its unacked jobs are delivered again to this version"
                );
                self.jobs
                    .delete_consumer(&info.name)
                    .await
                    .map_err(|e| QueueError::js(format!("deleting the shared consumer `{}`", info.name), e))?;
                continue;
            }
            return Err(QueueError::OverlappingConsumer {
                stream: self.config.jobs_stream.clone(),
                consumer: info.name.clone(),
                filter: if filters.is_empty() { "(every subject)".into() } else { filters.join(",") },
                workflow: taken.to_string(),
            });
        }
        Ok(())
    }
}

/// Whether NATS subject `subject` (no wildcards) matches `filter` (`*` is
/// one token, a final `>` one or more).
fn subject_matches(filter: &str, subject: &str) -> bool {
    let mut tokens = subject.split('.');
    for part in filter.split('.') {
        match (part, tokens.next()) {
            (">", Some(_)) => return true,
            (_, None) => return false,
            ("*", Some(_)) => {}
            (literal, Some(token)) if literal == token => {}
            _ => return false,
        }
    }
    tokens.next().is_none()
}

/// Connects and makes sure the topology exists with compatible settings.
/// A client creates what is missing with `config`'s retention limits but
/// leaves those of existing streams as the workers set them.
///
/// # Errors
///
/// [`QueueError::Connect`] when the server cannot be reached,
/// [`QueueError::Incompatible`] when an existing stream does not fit,
/// [`QueueError::Invalid`] when the retention limits contradict each other.
pub async fn connect(config: QueueConfig) -> Result<super::QueueClient, QueueError> {
    Ok(super::QueueClient::new(open(config, Limits::KeepExisting).await?))
}

/// Whether [`open`] changes the retention limits (maximum age and size) of
/// streams and buckets that already exist to the configured ones. Workers
/// do: `weft serve`'s flags are where an operator sets them, and a
/// restarted fleet picks up a new age without deleting anything. Clients
/// (`weft submit`, `status`, `dlq`) do not, so a client run with default
/// settings never undoes the workers'.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limits {
    /// Bring existing streams to the configured limits.
    Apply,
    /// Use the configured limits only for what is created.
    KeepExisting,
}

/// The retention limits of one stream or bucket, as JetStream takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Retention {
    /// Zero: no maximum age.
    max_age: Duration,
    /// -1: no size cap.
    max_bytes: i64,
    /// The `weft serve` flag that sets the size cap.
    bytes_flag: &'static str,
}

impl Retention {
    fn new(max_age: Duration, max_bytes: Option<u64>, bytes_flag: &'static str) -> Self {
        let max_bytes = max_bytes.map_or(-1, |bytes| i64::try_from(bytes).unwrap_or(i64::MAX));
        Retention { max_age, max_bytes, bytes_flag }
    }

    /// The error for a failed create or update of a stream with these
    /// limits: a size cap the server cannot reserve says which flag to lower.
    fn error(&self, action: String, error: impl std::fmt::Display) -> QueueError {
        let reason = error.to_string();
        if self.max_bytes > 0 && reason.contains("insufficient storage resources") {
            return QueueError::Invalid(format!(
                "{action}: the server cannot reserve {} for it ({reason}); lower {} or give the server's \
                 JetStream more storage (max_file_store)",
                crate::workflow::human_size(self.max_bytes.unsigned_abs()),
                self.bytes_flag
            ));
        }
        QueueError::js(action, reason)
    }
}

/// Checks that the configured ages fit together: objects (dead-letter
/// bodies, inputs, large outputs) must outlive what points to them.
fn check_retention(config: &QueueConfig) -> Result<(), QueueError> {
    let outlives = |longer: Duration, shorter: Duration| longer.is_zero() || (!shorter.is_zero() && longer >= shorter);
    let show =
        |age: Duration| if age.is_zero() { "forever".to_string() } else { crate::workflow::format_duration(age) };
    for (other, flag, what) in [
        (config.dead_letter_max_age, "--dead-letter-max-age", "a dead letter's body and its job's input"),
        (config.record_max_age, "--record-max-age", "a job record's large outputs"),
    ] {
        if !outlives(config.object_max_age, other) {
            return Err(QueueError::Invalid(format!(
                "objects are kept for {} (--object-max-age) but {flag} is {}: {what} would expire before what \
                 needs it; raise --object-max-age to at least {}",
                show(config.object_max_age),
                show(other),
                show(other)
            )));
        }
    }
    Ok(())
}

pub(crate) async fn open(config: QueueConfig, limits: Limits) -> Result<Topology, QueueError> {
    check_retention(&config)?;
    let client = connect_client(&config).await?;
    let js = jetstream::new(client.clone());

    let (jobs, _) = ensure_stream(
        &js,
        stream::Config {
            name: config.jobs_stream.clone(),
            subjects: vec![format!("{}.>", config.jobs_subject_prefix)],
            retention: stream::RetentionPolicy::WorkQueue,
            storage: stream::StorageType::File,
            duplicate_window: config.duplicate_window,
            num_replicas: config.replicas,
            ..Default::default()
        },
    )
    .await?;
    let dead_letters =
        Retention::new(config.dead_letter_max_age, config.dead_letter_max_bytes, "--dead-letter-max-bytes");
    let (mut dlq, created) = ensure_stream(
        &js,
        stream::Config {
            name: config.dlq_stream.clone(),
            subjects: vec![format!("{}.>", config.dlq_subject_prefix)],
            retention: stream::RetentionPolicy::Limits,
            storage: stream::StorageType::File,
            duplicate_window: duplicate_window_within(config.duplicate_window, dead_letters.max_age),
            max_age: dead_letters.max_age,
            max_bytes: dead_letters.max_bytes,
            discard: stream::DiscardPolicy::Old,
            num_replicas: config.replicas,
            ..Default::default()
        },
    )
    .await
    .map_err(|error| match error {
        QueueError::JetStream { action, reason } => dead_letters.error(action, reason),
        other => other,
    })?;
    if limits == Limits::Apply && !created {
        let info = dlq.info().await.map_err(|e| QueueError::js("reading stream info", e))?.clone();
        if let Some(updated) = apply_retention(&js, &info, dead_letters).await? {
            dlq = updated;
        }
    }

    // The keys bucket first, and the dead-letter key copied into it, before
    // the state bucket (where older versions kept the key) gets a maximum age.
    let (keys, _) = open_or_create(
        || js.get_key_value(&config.keys_bucket),
        || {
            js.create_key_value(kv::Config {
                bucket: config.keys_bucket.clone(),
                history: 1,
                storage: stream::StorageType::File,
                num_replicas: config.replicas,
                ..Default::default()
            })
        },
    )
    .await
    .map_err(|e| QueueError::js(format!("creating bucket `{}`", config.keys_bucket), e))?;
    let records = Retention::new(config.record_max_age, config.record_max_bytes, "--record-max-bytes");
    let (state, created) = open_or_create(
        || js.get_key_value(&config.state_bucket),
        || {
            js.create_key_value(kv::Config {
                bucket: config.state_bucket.clone(),
                history: 1,
                storage: stream::StorageType::File,
                max_age: records.max_age,
                max_bytes: records.max_bytes,
                num_replicas: config.replicas,
                ..Default::default()
            })
        },
    )
    .await
    .map_err(|e| records.error(format!("creating bucket `{}`", config.state_bucket), e))?;
    move_dead_letter_key(&config, &state, &keys).await?;
    if limits == Limits::Apply || created {
        apply_retention(&js, state.stream.cached_info(), records).await?;
    }

    let stored = Retention::new(config.object_max_age, config.object_max_bytes, "--object-max-bytes");
    let (objects, created) = open_or_create(
        || js.get_object_store(&config.object_bucket),
        || {
            js.create_object_store(object_store::Config {
                bucket: config.object_bucket.clone(),
                storage: stream::StorageType::File,
                max_age: stored.max_age,
                max_bytes: stored.max_bytes,
                num_replicas: config.replicas,
                ..Default::default()
            })
        },
    )
    .await
    .map_err(|e| stored.error(format!("creating object store `{}`", config.object_bucket), e))?;
    if limits == Limits::Apply || created {
        let name = format!("OBJ_{}", config.object_bucket);
        let mut stream =
            js.get_stream(&name).await.map_err(|e| QueueError::js(format!("reading stream `{name}`"), e))?;
        let info = stream.info().await.map_err(|e| QueueError::js("reading stream info", e))?.clone();
        apply_retention(&js, &info, stored).await?;
    }
    for name in [
        config.jobs_stream.clone(),
        config.dlq_stream.clone(),
        format!("KV_{}", config.state_bucket),
        format!("KV_{}", config.keys_bucket),
        format!("OBJ_{}", config.object_bucket),
    ] {
        ensure_replicas(&js, &name, config.replicas).await?;
    }
    Ok(Topology { config, client, js, jobs, dlq, state, keys, objects })
}

/// A stream's dedupe window, which JetStream requires to be no longer than
/// its maximum age.
fn duplicate_window_within(window: Duration, max_age: Duration) -> Duration {
    if max_age.is_zero() { window } else { window.min(max_age) }
}

/// Brings a stream's maximum age and size to `wanted`, with discard-old
/// semantics (past a limit the oldest entries go, and writes never fail
/// for it), when they differ: `update_stream` on the existing stream, so
/// nothing stored is lost but what the new limits expire. The updated
/// stream when it changed.
async fn apply_retention(
    js: &jetstream::Context,
    info: &stream::Info,
    wanted: Retention,
) -> Result<Option<stream::Stream>, QueueError> {
    let have = &info.config;
    if have.max_age == wanted.max_age
        && have.max_bytes == wanted.max_bytes
        && have.discard == stream::DiscardPolicy::Old
    {
        return Ok(None);
    }
    let mut config = have.clone();
    config.max_age = wanted.max_age;
    config.max_bytes = wanted.max_bytes;
    config.discard = stream::DiscardPolicy::Old;
    config.duplicate_window = duplicate_window_within(config.duplicate_window, wanted.max_age);
    tracing::info!(
        stream = %config.name,
        max_age = ?wanted.max_age,
        max_bytes = wanted.max_bytes,
        "setting the stream's retention limits"
    );
    js.update_stream(&config)
        .await
        .map_err(|e| wanted.error(format!("setting the retention limits of stream `{}`", config.name), e))?;
    let stream = js
        .get_stream(&config.name)
        .await
        .map_err(|e| QueueError::js(format!("reading stream `{}`", config.name), e))?;
    Ok(Some(stream))
}

/// Makes sure the keys bucket holds the dead-letter key: a deployment
/// started by an older Weft keeps it in the state bucket, where it would
/// now expire with the records, so it is copied over (whoever copies first
/// wins; the value is the same). The state bucket's copy is written again
/// too, which restarts its age: workers of the older version, still
/// running during a rolling upgrade, keep finding it there for another
/// `record_max_age` instead of making a new key. One read per start once
/// the key is in the keys bucket.
async fn move_dead_letter_key(config: &QueueConfig, state: &kv::Store, keys: &kv::Store) -> Result<(), QueueError> {
    let name = super::dead_letter::KEY_NAME;
    let read = |store: &kv::Store, bucket: &str| {
        let store = store.clone();
        let action = format!("reading the dead-letter key from bucket `{bucket}`");
        async move { store.get(name).await.map_err(|e| QueueError::js(action, e)) }
    };
    if read(keys, &config.keys_bucket).await?.is_some() {
        return Ok(());
    }
    let Some(legacy) = read(state, &config.state_bucket).await? else { return Ok(()) };
    match keys.create(name, legacy.clone()).await {
        Ok(_) => {
            tracing::info!(from = %config.state_bucket, to = %config.keys_bucket, "copied the dead-letter key");
            if let Err(error) = state.put(name, legacy).await {
                tracing::warn!(%error, "cannot refresh the dead-letter key's old copy for older workers");
            }
            Ok(())
        }
        Err(error) if error.kind() == kv::CreateErrorKind::AlreadyExists => Ok(()),
        Err(error) => {
            Err(QueueError::js(format!("copying the dead-letter key to bucket `{}`", config.keys_bucket), error))
        }
    }
}

/// Raises the replica count of an existing stream (a bucket or object store
/// is one underneath) to `replicas`: a deployment moved from one server to
/// a cluster gets its existing streams copied, not just the new ones. A
/// stream with more replicas than asked is left as it is.
async fn ensure_replicas(js: &jetstream::Context, name: &str, replicas: usize) -> Result<(), QueueError> {
    if replicas <= 1 {
        return Ok(());
    }
    let mut stream = js.get_stream(name).await.map_err(|e| QueueError::js(format!("reading stream `{name}`"), e))?;
    let info = stream.info().await.map_err(|e| QueueError::js(format!("reading stream `{name}`"), e))?;
    if info.config.num_replicas >= replicas {
        return Ok(());
    }
    let from = info.config.num_replicas;
    let config = stream::Config { num_replicas: replicas, ..info.config.clone() };
    js.update_stream(config).await.map_err(|e| {
        QueueError::js(
            format!("raising stream `{name}` from {from} to {replicas} replicas (are there {replicas} servers?)"),
            e,
        )
    })?;
    tracing::info!(stream = name, from, to = replicas, "raised the stream's replicas");
    Ok(())
}

/// How long the first connection may take while the server is unreachable
/// (a worker started just before its server keeps trying this long).
const INITIAL_CONNECT_WINDOW: Duration = Duration::from_secs(15);

/// Connects with the configured credentials and TLS settings. An unreachable
/// server is retried for [`INITIAL_CONNECT_WINDOW`]; rejected credentials and
/// failed TLS handshakes are errors at once, in words that name the setting
/// to fix, because retrying cannot help them.
async fn connect_client(config: &QueueConfig) -> Result<async_nats::Client, QueueError> {
    let connect_error = |reason: String| QueueError::Connect { url: config.url.clone(), reason };
    let deadline = tokio::time::Instant::now() + INITIAL_CONNECT_WINDOW;
    loop {
        let mut options = async_nats::ConnectOptions::new()
            .name("weft")
            .connection_timeout(Duration::from_secs(5))
            .max_reconnects(None::<usize>);
        if let Some(path) = &config.credentials_file {
            options = options
                .credentials_file(path)
                .await
                .map_err(|e| connect_error(format!("cannot read the credentials file {}: {e}", path.display())))?;
        }
        if let Some((user, password)) = &config.user_password {
            options = options.user_and_password(user.clone(), password.clone());
        }
        if let Some(token) = &config.token {
            options = options.token(token.clone());
        }
        if let Some(seed) = &config.nkey_seed {
            options = options.nkey(seed.clone());
        }
        if let Some(ca) = &config.tls_ca {
            if !ca.is_file() {
                return Err(connect_error(format!("the TLS CA file {} does not exist", ca.display())));
            }
            options = options.add_root_certificates(ca.clone());
        }
        if config.require_tls {
            options = options.require_tls(true);
        }
        // A cluster's URLs, comma separated: the client picks one and fails
        // over to the others (and to those the servers announce).
        let urls: Vec<&str> = config.url.split(',').map(str::trim).filter(|url| !url.is_empty()).collect();
        let error = match options.connect(urls.as_slice()).await {
            Ok(client) => return Ok(client),
            Err(error) => error,
        };
        if let Some(reason) = permanent_connect_failure(config, &error) {
            return Err(connect_error(reason));
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(connect_error(format!(
                "no answer within {}s ({error}); is nats-server running there?",
                INITIAL_CONNECT_WINDOW.as_secs()
            )));
        }
        tracing::warn!(url = %config.url, %error, "cannot reach NATS yet; retrying");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Why a connection attempt can never succeed with this configuration, in
/// words naming the flag to fix; `None` when retrying may help (server down).
fn permanent_connect_failure(config: &QueueConfig, error: &async_nats::ConnectError) -> Option<String> {
    use async_nats::ConnectErrorKind;
    // The flags of the credentials this connection used, to name in the error.
    let given: Vec<&str> = [
        (config.user_password.is_some(), "--nats-user/--nats-password"),
        (config.token.is_some(), "--nats-token"),
        (config.nkey_seed.is_some(), "--nats-nkey"),
        (config.credentials_file.is_some(), "--nats-creds"),
    ]
    .into_iter()
    .filter_map(|(used, flag)| used.then_some(flag))
    .collect();
    match error.kind() {
        ConnectErrorKind::AuthorizationViolation if !given.is_empty() => Some(format!(
            "the server rejected the credentials (authorization violation); check {} (the server's log says \
             whether the user, the account or the signature was refused)",
            given.join(" and ")
        )),
        ConnectErrorKind::AuthorizationViolation => Some(
            "the server requires authentication (authorization violation) and no credentials were given; \
             pass --nats-user/--nats-password, --nats-token, --nats-nkey or --nats-creds"
                .to_string(),
        ),
        ConnectErrorKind::Authentication => Some(format!(
            "cannot authenticate ({}); check that --nats-nkey is a user seed (SU...) or --nats-creds a valid file",
            error_chain(error)
        )),
        ConnectErrorKind::ServerParse | ConnectErrorKind::Dns => {
            Some(format!("the server address is unusable: {}", error_chain(error)))
        }
        ConnectErrorKind::Tls => Some(format!("TLS setup failed: {}; check --nats-tls-ca", error_chain(error))),
        ConnectErrorKind::Io if is_tls_failure(error) => Some(format!(
            "TLS handshake failed: {}; check --nats-tls-ca (the CA that signed the server's certificate) and \
             that the server has TLS enabled when --nats-require-tls or a tls:// URL is used",
            error_chain(error)
        )),
        _ => None,
    }
}

/// Whether a connect error comes from rustls (a certificate the client does
/// not trust, a server that does not speak TLS).
fn is_tls_failure(error: &async_nats::ConnectError) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    while let Some(cause) = source {
        if cause.downcast_ref::<async_nats::rustls::Error>().is_some() {
            return true;
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && io.get_ref().is_some_and(|inner| inner.downcast_ref::<async_nats::rustls::Error>().is_some())
        {
            return true;
        }
        source = cause.source();
    }
    false
}

/// The stream `wanted` names, created if missing (then `true`), checked if
/// present: its retention policy and subjects cannot change under running
/// hosts, so a difference is an error. Its limits are [`apply_retention`]'s.
/// Opens a stream, bucket or object store with `open`, or creates it with
/// `create` when it is missing; true when this call created it. One that
/// another host created between the read and the create (and may have set
/// its retention limits on since, so that this create finds it with another
/// configuration) is opened, not an error; otherwise the create's error.
async fn open_or_create<T, OpenError, CreateError, Open, Create>(
    open: impl Fn() -> Open,
    create: impl FnOnce() -> Create,
) -> Result<(T, bool), CreateError>
where
    Open: Future<Output = Result<T, OpenError>>,
    Create: Future<Output = Result<T, CreateError>>,
{
    if let Ok(existing) = open().await {
        return Ok((existing, false));
    }
    match create().await {
        Ok(created) => Ok((created, true)),
        Err(error) => open().await.map(|existing| (existing, false)).map_err(|_| error),
    }
}

async fn ensure_stream(js: &jetstream::Context, wanted: stream::Config) -> Result<(stream::Stream, bool), QueueError> {
    let (mut stream, created) = open_or_create(|| js.get_stream(&wanted.name), || js.create_stream(wanted.clone()))
        .await
        .map_err(|e| QueueError::js(format!("creating stream `{}`", wanted.name), e))?;
    if created {
        return Ok((stream, true));
    }
    let info = stream.info().await.map_err(|e| QueueError::js("reading stream info", e))?;
    let have = &info.config;
    if have.retention != wanted.retention {
        return Err(QueueError::Incompatible {
            what: "stream",
            name: wanted.name.clone(),
            setting: "retention",
            found: format!("{:?}", have.retention),
            wanted: format!("{:?}", wanted.retention),
        });
    }
    if have.subjects != wanted.subjects {
        return Err(QueueError::Incompatible {
            what: "stream",
            name: wanted.name.clone(),
            setting: "subjects",
            found: have.subjects.join(","),
            wanted: wanted.subjects.join(","),
        });
    }
    Ok((stream, false))
}

#[cfg(test)]
mod tests {
    use super::subject_matches;

    #[test]
    fn a_filter_matches_subjects_token_by_token() {
        for (filter, subject, matches) in [
            ("weft.jobs.>", "weft.jobs.a", true),
            ("weft.jobs.>", "weft.jobs", false),
            ("weft.jobs.*", "weft.jobs.a", true),
            ("weft.*.a", "weft.jobs.a", true),
            ("weft.jobs.a", "weft.jobs.a", true),
            ("weft.jobs.a", "weft.jobs.ab", false),
            ("weft.jobs.a", "weft.jobs.a.b", false),
            ("weft.jobs.*", "weft.jobs.a.b", false),
            ("weft.>", "weft.jobs.a.b", true),
            ("other.>", "weft.jobs.a", false),
        ] {
            assert_eq!(subject_matches(filter, subject), matches, "{filter} vs {subject}");
        }
    }
}
