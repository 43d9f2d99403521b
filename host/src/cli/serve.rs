//! `weft serve`: one worker pulling jobs from NATS JetStream for the
//! workflows it serves, until SIGINT or SIGTERM drains it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use weft::HostBuilder;
use weft::discovery;
use weft::queue::{QueueConfig, Worker, WorkerConfig};

use super::EXIT_INVALID;
use super::args::{CacheArgs, CapabilityArgs, NatsArgs, OutputLimitArgs};

/// `weft serve`'s arguments.
#[derive(clap::Args)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    nats: NatsArgs,
    /// Directory of workflow files to serve [default: the bundled workflows].
    #[arg(long, value_name = "DIR")]
    workflows: Option<PathBuf>,
    /// Jobs run at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Runs of one job before it is dead-lettered.
    #[arg(long, default_value_t = 3)]
    max_job_attempts: u32,
    /// Seconds to wait for in-flight jobs on SIGTERM/SIGINT before handing them back.
    #[arg(long, default_value_t = 30)]
    drain_grace_secs: u64,
    /// Meter fuel so `limits.fuel` can be enforced.
    #[arg(long)]
    fuel: bool,
    /// Seconds the server waits for an ack before redelivering a job
    /// (in-progress acks keep long jobs alive); all workers must agree.
    #[arg(long, default_value_t = 30)]
    ack_wait_secs: u64,
    /// Step attempts computing at once (0: no bound); the others wait,
    /// holding no sandbox memory. An attempt waiting on HTTP, an LLM,
    /// email or a timer gives its slot back, so I/O-bound steps do not
    /// queue behind each other. The number of CPUs cuts peak memory
    /// with many jobs in flight; waiting counts against a step's timeout.
    #[arg(long, value_name = "N", default_value_t = 0)]
    compute_slots: usize,
    /// Refuse to start when any workflow cannot be served here (by default
    /// those are left out, each with its reason, and the rest are served).
    #[arg(long)]
    strict: bool,
    /// The largest input object a job may name in the object store (`64MiB`,
    /// `1GiB`); a job naming a larger one is dead-lettered unread.
    #[arg(long, value_name = "SIZE", default_value = "64MiB", value_parser = weft::workflow::parse_size)]
    max_input_bytes: u64,
    /// How long an unfinished job that started under another revision of
    /// its workflow file waits for a worker with that revision (a rolling
    /// upgrade) before it is dead-lettered (`30s`, `10m`, `1h`).
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = weft::workflow::parse_duration)]
    revision_grace: Duration,
    /// How long a job encrypted with an at-rest key this worker lacks is
    /// left to workers that have it before this one dead-letters it (body
    /// still encrypted, reason naming the key) (`30s`, `10m`). The keys are
    /// the secret AT_REST_KEYS (`--secrets-file` or WEFT_SECRET_AT_REST_KEYS).
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = weft::workflow::parse_duration)]
    missing_key_grace: Duration,
    #[command(flatten)]
    http: HttpArgs,
    #[command(flatten)]
    retention: RetentionArgs,
    #[command(flatten)]
    capabilities: CapabilityArgs,
    #[command(flatten)]
    limits: OutputLimitArgs,
}

/// The HTTP API beside (or instead of) the worker.
#[derive(clap::Args)]
struct HttpArgs {
    /// Serve the HTTP API on this address (`127.0.0.1:8080`): upload
    /// documents, follow jobs, cancel them, replay dead letters.
    #[arg(long, value_name = "ADDR")]
    http: Option<std::net::SocketAddr>,
    /// Serve the HTTP API only, pulling no jobs (API nodes and workers
    /// then scale apart); needs --http.
    #[arg(long, requires = "http")]
    no_worker: bool,
    /// PEM certificate chain: serve the API over TLS (with --tls-key).
    #[arg(long, value_name = "PATH", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, value_name = "PATH", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// The largest job input the API accepts in one request (`64MiB`).
    #[arg(long, value_name = "SIZE", default_value = "64MiB", value_parser = weft::workflow::parse_size)]
    max_upload: u64,
    /// Serve the API without authentication on a non-loopback address
    /// (by default an API without auth listens on loopback only).
    #[arg(long)]
    insecure_no_auth: bool,
    /// Requests the API handles at once; more are refused 503.
    #[arg(long, value_name = "N", default_value_t = weft::api::ApiLimits::default().max_concurrent_requests)]
    max_requests: usize,
    /// Accept API keys (`weft keys create`) as `Authorization: Bearer weft_...`.
    #[arg(long)]
    api_keys: bool,
    /// Accept bearer JWTs from this OIDC issuer (its `iss`); needs
    /// --jwt-audience and --jwt-jwks-url.
    #[arg(long, value_name = "ISSUER", requires_all = ["jwt_audience", "jwt_jwks_url"])]
    jwt_issuer: Option<String>,
    /// The audience (`aud`) a JWT must name.
    #[arg(long, value_name = "AUDIENCE", requires = "jwt_issuer")]
    jwt_audience: Option<String>,
    /// Where the issuer publishes its signing keys (JWKS, https).
    #[arg(long, value_name = "URL", requires = "jwt_issuer")]
    jwt_jwks_url: Option<String>,
    /// The JWT claim holding the scopes (space-separated or an array).
    #[arg(long, value_name = "CLAIM", default_value = weft::api::auth::DEFAULT_SCOPE_CLAIM)]
    jwt_scope_claim: String,
    /// Requests per second one caller (API key or JWT subject) may make;
    /// bursts of twice that; past it 429 with Retry-After.
    #[arg(long, value_name = "N", default_value_t = weft::api::rate_limit::DEFAULT_PER_KEY_LIMIT.per_second)]
    rate_per_key: f64,
    /// Requests per second one client address may make (before auth).
    #[arg(long, value_name = "N", default_value_t = weft::api::rate_limit::DEFAULT_PER_ADDRESS_LIMIT.per_second)]
    rate_per_address: f64,
}

impl HttpArgs {
    fn limits(&self) -> Result<weft::api::ApiLimits> {
        let rate = |per_second: f64| {
            let burst = (per_second * 2.0).ceil().clamp(1.0, f64::from(u32::MAX)) as u32;
            weft::api::rate_limit::RateLimit::new(per_second, burst)
        };
        Ok(weft::api::ApiLimits {
            max_upload_bytes: self.max_upload,
            max_concurrent_requests: self.max_requests,
            per_key: rate(self.rate_per_key).context("--rate-per-key")?,
            per_address: rate(self.rate_per_address).context("--rate-per-address")?,
            ..weft::api::ApiLimits::default()
        })
    }

    fn auth(&self) -> weft::api::auth::AuthConfig {
        let jwt = match (&self.jwt_issuer, &self.jwt_audience, &self.jwt_jwks_url) {
            (Some(issuer), Some(audience), Some(jwks)) => {
                let mut jwt = weft::api::auth::JwtConfig::new(issuer, audience, jwks);
                jwt.scope_claim = self.jwt_scope_claim.clone();
                Some(jwt)
            }
            _ => None,
        };
        weft::api::auth::AuthConfig { api_keys: self.api_keys, jwt, ..weft::api::auth::AuthConfig::default() }
    }

    fn tls(&self) -> Option<weft::api::TlsFiles> {
        Some(weft::api::TlsFiles { cert: self.tls_cert.clone()?, key: self.tls_key.clone()? })
    }
}

/// How long (and how much) the queue keeps; `weft serve` sets these on the
/// server's streams and buckets, changing existing ones in place.
#[derive(clap::Args)]
struct RetentionArgs {
    /// How long a job record or checkpoint is kept after its last change
    /// (`0s`: forever). A job id is remembered this long: the same id
    /// submitted after its record expired runs again.
    #[arg(long, value_name = "DURATION", default_value = "168h", value_parser = weft::workflow::parse_duration)]
    record_max_age: Duration,
    /// Size cap of the job-state bucket (`512MiB`, `8GiB`); past it the
    /// oldest records go first [default: none].
    #[arg(long, value_name = "SIZE", value_parser = weft::workflow::parse_size)]
    record_max_bytes: Option<u64>,
    /// How long a large input, output, checkpoint or dead-letter body is
    /// kept in the object store (`0s`: forever); at least
    /// --dead-letter-max-age and --record-max-age.
    #[arg(long, value_name = "DURATION", default_value = "720h", value_parser = weft::workflow::parse_duration)]
    object_max_age: Duration,
    /// Size cap of the object store; past it the oldest objects go first
    /// [default: none].
    #[arg(long, value_name = "SIZE", value_parser = weft::workflow::parse_size)]
    object_max_bytes: Option<u64>,
    /// How long a dead letter is kept for inspection and replay (`0s`: forever).
    #[arg(long, value_name = "DURATION", default_value = "720h", value_parser = weft::workflow::parse_duration)]
    dead_letter_max_age: Duration,
    /// Size cap of the dead-letter stream; past it the oldest letters go
    /// first [default: none].
    #[arg(long, value_name = "SIZE", value_parser = weft::workflow::parse_size)]
    dead_letter_max_bytes: Option<u64>,
}

impl RetentionArgs {
    fn apply(&self, config: QueueConfig) -> QueueConfig {
        QueueConfig {
            record_max_age: self.record_max_age,
            record_max_bytes: self.record_max_bytes,
            object_max_age: self.object_max_age,
            object_max_bytes: self.object_max_bytes,
            dead_letter_max_age: self.dead_letter_max_age,
            dead_letter_max_bytes: self.dead_letter_max_bytes,
            ..config
        }
    }
}

/// Loads the workflows and serves them until a signal; exit status 2 when
/// none can be served, or with `--strict` when any cannot.
pub(crate) async fn serve(cache: &CacheArgs, args: &ServeArgs) -> Result<ExitCode> {
    let settings =
        weft::engine::EngineSettings { compute_slots: args.compute_slots, ..cache.engine_settings(args.fuel) };
    let host = HostBuilder::new()
        .engine_settings(args.limits.engine(settings))
        .scheduler_settings(args.limits.scheduler())
        .capabilities(args.capabilities.config()?)
        .build()?;
    let worker = WorkerConfig {
        concurrency: args.concurrency,
        max_job_attempts: args.max_job_attempts,
        drain_grace: Duration::from_secs(args.drain_grace_secs),
        max_input_bytes: args.max_input_bytes,
        revision_grace: args.revision_grace,
        missing_key_grace: args.missing_key_grace,
        ..WorkerConfig::default()
    };
    let at_rest = super::args::at_rest_keys(&args.capabilities.secrets()?)?;
    if let Some(keys) = &at_rest {
        eprintln!(
            "weft serve: encrypting job payloads at rest with key `{}` (decrypting with: {})",
            keys.current_id(),
            keys.ids().join(", ")
        );
    }
    let queue = args.retention.apply(QueueConfig {
        ack_wait: Duration::from_secs(args.ack_wait_secs),
        at_rest,
        ..args.nats.config()
    });

    let host = Arc::new(host);
    let sources = match &args.workflows {
        Some(named) => discovery::find_workflows(named)?,
        None => discovery::bundled_workflows(),
    };
    // A workflow this host cannot run (a secret or an LLM endpoint it is
    // not configured with, or a broken file) is left out with its reason;
    // the others are served. `--strict` makes any of them fatal.
    let mut loaded = Vec::new();
    let mut not_served = 0;
    for source in sources {
        match source.load(&host) {
            Ok(workflow) => {
                super::warn_about(&workflow);
                loaded.push(workflow);
            }
            Err(error) => {
                not_served += 1;
                eprintln!("weft serve: not serving `{source}`:\n{error}");
            }
        }
    }
    if args.strict && not_served > 0 {
        eprintln!(
            "error: {not_served} workflow(s) cannot be served here; fix them, or leave out --strict to serve the rest"
        );
        return Ok(ExitCode::from(EXIT_INVALID));
    }
    if loaded.is_empty() {
        eprintln!("error: no workflows to serve");
        return Ok(ExitCode::from(EXIT_INVALID));
    }
    let names: Vec<String> = loaded.iter().map(|w| w.workflow().name.clone()).collect();
    // One signal stops both the API and the worker.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    let api = match args.http.http {
        Some(addr) => {
            let auth = args.http.auth();
            if let Err(error) = weft::api::auth::check_bind(addr, &auth, args.http.insecure_no_auth) {
                eprintln!("error: {error}");
                return Ok(ExitCode::from(EXIT_INVALID));
            }
            let infos = loaded.iter().map(weft::api::WorkflowInfo::of).collect();
            let client = weft::queue::connect(queue.clone()).await?;
            let authenticator = if auth.is_enabled() {
                Some(weft::api::auth::Authenticator::start(auth, client.clone()).await?)
            } else {
                None
            };
            let limits = args.http.limits()?;
            let state = weft::api::ApiState::with_auth(client, infos, limits.clone(), authenticator)?;
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} for the HTTP API"))?;
            let scheme = if args.http.tls().is_some() { "https" } else { "http" };
            eprintln!("weft serve: HTTP API on {scheme}://{} (OpenAPI at /openapi.json)", listener.local_addr()?);
            let tls = args.http.tls();
            let grace = worker.drain_grace;
            let stopped = stopped.clone();
            Some(tokio::spawn(async move {
                let app = weft::api::router(state);
                weft::api::serve(listener, app, tls.as_ref(), &limits, signalled(stopped), grace).await
            }))
        }
        None => None,
    };
    if args.http.no_worker {
        eprintln!("weft serve: API only, pulling no jobs (Ctrl-C or SIGTERM stops)");
        if let Some(api) = api {
            api.await??;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let worker = Worker::connect(host, loaded, queue, worker).await?;
    eprintln!("weft serve: serving {} (Ctrl-C or SIGTERM drains and stops)", names.join(", "));
    let summary = worker.run(signalled(stopped)).await?;
    eprintln!(
        "weft serve: stopped ({} succeeded, {} retried, {} dead-lettered, {} duplicates, {} handed back)",
        summary.succeeded, summary.retried, summary.dead_lettered, summary.duplicates, summary.handed_back
    );
    if let Some(api) = api {
        api.await??;
    }
    Ok(ExitCode::SUCCESS)
}

/// Resolves once `stopped` turns true.
async fn signalled(mut stopped: tokio::sync::watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The flags' defaults are written as text for `--help`: they must be
    /// the library's named defaults.
    #[test]
    fn the_retention_flags_default_to_the_librarys_defaults() {
        #[derive(clap::Parser)]
        struct Flags {
            #[command(flatten)]
            retention: RetentionArgs,
        }
        let config = <Flags as clap::Parser>::parse_from(["weft"]).retention.apply(QueueConfig::default());
        let defaults = QueueConfig::default();
        assert_eq!(config.record_max_age, weft::queue::DEFAULT_RECORD_MAX_AGE);
        assert_eq!(config.object_max_age, weft::queue::DEFAULT_OBJECT_MAX_AGE);
        assert_eq!(config.dead_letter_max_age, weft::queue::DEFAULT_DEAD_LETTER_MAX_AGE);
        assert_eq!(
            (config.record_max_bytes, config.object_max_bytes, config.dead_letter_max_bytes),
            (defaults.record_max_bytes, defaults.object_max_bytes, defaults.dead_letter_max_bytes)
        );
    }
}
