//! Connecting to NATS and creating (or checking) the topology: the job
//! stream, the shared durable consumer, the dead-letter stream, the
//! job-state bucket and the object store. Idempotent: every host runs it at
//! start-up, and an existing object with incompatible settings is an error
//! naming the setting, never a silent reuse.

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
    /// The durable pull consumer every host shares.
    pub consumer: String,
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
    /// Keys that encrypt job payloads at rest (inputs, checkpoint items,
    /// outputs, dead-letter bodies): the current one encrypts what this
    /// process writes, every one decrypts. `None` writes plaintext and
    /// reads only plaintext (encrypted data is then an error naming its key).
    pub at_rest: Option<super::Keyring>,
}

/// The default server URL when neither `--nats` nor `NATS_URL` is given.
pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            url: std::env::var("NATS_URL").unwrap_or_else(|_| DEFAULT_NATS_URL.to_string()),
            jobs_stream: "WEFT_JOBS".into(),
            jobs_subject_prefix: "weft.jobs".into(),
            consumer: "weft-workers".into(),
            dlq_stream: "WEFT_DLQ".into(),
            dlq_subject_prefix: "weft.dlq".into(),
            results_subject_prefix: "weft.results".into(),
            state_bucket: "weft-jobs".into(),
            object_bucket: "weft-objects".into(),
            ack_wait: Duration::from_secs(30),
            max_deliver: 100,
            duplicate_window: Duration::from_secs(120),
            credentials_file: None,
            user_password: None,
            token: None,
            nkey_seed: None,
            tls_ca: None,
            require_tls: false,
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

    /// The shared durable consumer, created if missing and checked if present.
    pub(crate) async fn consumer(&self) -> Result<consumer::Consumer<consumer::pull::Config>, QueueError> {
        let wanted = consumer::pull::Config {
            durable_name: Some(self.config.consumer.clone()),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: self.config.ack_wait,
            max_deliver: self.config.max_deliver,
            filter_subject: format!("{}.>", self.config.jobs_subject_prefix),
            max_ack_pending: 10_000,
            ..Default::default()
        };
        match self.jobs.get_consumer::<consumer::pull::Config>(&self.config.consumer).await {
            Ok(mut existing) => {
                let info = existing.info().await.map_err(|e| QueueError::js("reading the consumer", e))?;
                let have = &info.config;
                let name = self.config.consumer.clone();
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
                if have.filter_subject != wanted.filter_subject {
                    return mismatch("filter_subject", have.filter_subject.clone(), wanted.filter_subject.clone());
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
                .map_err(|e| QueueError::js(format!("creating consumer `{}`", self.config.consumer), e)),
        }
    }
}

/// Connects and makes sure the topology exists with compatible settings.
///
/// # Errors
///
/// [`QueueError::Connect`] when the server cannot be reached,
/// [`QueueError::Incompatible`] when an existing stream does not fit.
pub async fn connect(config: QueueConfig) -> Result<super::QueueClient, QueueError> {
    Ok(super::QueueClient::new(open(config).await?))
}

pub(crate) async fn open(config: QueueConfig) -> Result<Topology, QueueError> {
    let client = connect_client(&config).await?;
    let js = jetstream::new(client.clone());

    let jobs = ensure_stream(
        &js,
        stream::Config {
            name: config.jobs_stream.clone(),
            subjects: vec![format!("{}.>", config.jobs_subject_prefix)],
            retention: stream::RetentionPolicy::WorkQueue,
            storage: stream::StorageType::File,
            duplicate_window: config.duplicate_window,
            ..Default::default()
        },
    )
    .await?;
    let dlq = ensure_stream(
        &js,
        stream::Config {
            name: config.dlq_stream.clone(),
            subjects: vec![format!("{}.>", config.dlq_subject_prefix)],
            retention: stream::RetentionPolicy::Limits,
            storage: stream::StorageType::File,
            duplicate_window: config.duplicate_window,
            ..Default::default()
        },
    )
    .await?;
    let state = match js.get_key_value(&config.state_bucket).await {
        Ok(store) => store,
        Err(_) => js
            .create_key_value(kv::Config {
                bucket: config.state_bucket.clone(),
                history: 1,
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await
            .map_err(|e| QueueError::js(format!("creating bucket `{}`", config.state_bucket), e))?,
    };
    let objects = match js.get_object_store(&config.object_bucket).await {
        Ok(store) => store,
        Err(_) => js
            .create_object_store(object_store::Config {
                bucket: config.object_bucket.clone(),
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await
            .map_err(|e| QueueError::js(format!("creating object store `{}`", config.object_bucket), e))?,
    };
    Ok(Topology { config, client, js, jobs, dlq, state, objects })
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
        let error = match options.connect(config.url.as_str()).await {
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

async fn ensure_stream(js: &jetstream::Context, wanted: stream::Config) -> Result<stream::Stream, QueueError> {
    match js.get_stream(&wanted.name).await {
        Ok(mut existing) => {
            let info = existing.info().await.map_err(|e| QueueError::js("reading stream info", e))?;
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
            Ok(existing)
        }
        Err(_) => js
            .create_stream(wanted.clone())
            .await
            .map_err(|e| QueueError::js(format!("creating stream `{}`", wanted.name), e)),
    }
}
