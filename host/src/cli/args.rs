//! Argument groups more than one command takes: the compile cache (global),
//! the capabilities a host offers its steps (`run`, `serve`) and the way to
//! reach NATS (`serve`, `submit`, `status`, `cancel`, `dlq`) with the at-rest
//! keys (from the secrets), each with the one function that turns it into
//! the library's configuration.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use weft::capabilities::{CapabilityConfig, EmailConfig, HttpSettings, LlmConfig, SecretStore};
use weft::engine::EngineSettings;
use weft::queue::{AT_REST_KEYS_SECRET, Keyring, QueueConfig};
use weft::scheduler::SchedulerSettings;

/// Where compiled components are kept.
#[derive(clap::Args)]
pub(crate) struct CacheArgs {
    /// Directory for compiled components [default: $WEFT_CACHE_DIR, $XDG_CACHE_HOME/weft or ~/.cache/weft].
    #[arg(long, global = true, value_name = "DIR")]
    cache_dir: Option<PathBuf>,

    /// Do not read or write the compile cache.
    #[arg(long, global = true)]
    no_cache: bool,
}

impl CacheArgs {
    /// The engine settings a command starts from; `fuel` meters fuel.
    pub(crate) fn engine_settings(&self, fuel: bool) -> EngineSettings {
        let mut settings = EngineSettings { fuel_metering: fuel, ..EngineSettings::default() };
        if self.no_cache {
            settings.cache_dir = None;
        } else if let Some(dir) = &self.cache_dir {
            settings.cache_dir = Some(dir.clone());
        }
        settings
    }
}

/// Host ceilings on what steps return, beside each sandbox's memory limit:
/// a step past them fails with a `limit` error.
#[derive(clap::Args, Clone)]
pub(crate) struct OutputLimitArgs {
    /// Items one step may return: one attempt, or a `map` step's items together.
    #[arg(long, value_name = "N", default_value_t = weft::scheduler::DEFAULT_MAX_STEP_ITEMS)]
    max_step_items: usize,
    /// Bytes a `map` step's items may return together (`256MiB`, `1GiB`).
    #[arg(long, value_name = "SIZE", default_value = "1GiB", value_parser = weft::workflow::parse_size)]
    max_map_output: u64,
}

impl OutputLimitArgs {
    /// `engine` with these ceilings.
    pub(crate) fn engine(&self, engine: EngineSettings) -> EngineSettings {
        EngineSettings { max_output_items: self.max_step_items, ..engine }
    }

    /// The scheduler's settings with these ceilings.
    pub(crate) fn scheduler(&self) -> SchedulerSettings {
        SchedulerSettings {
            max_step_items: self.max_step_items,
            max_map_output: self.max_map_output,
            ..SchedulerSettings::default()
        }
    }
}

/// What steps may reach when their workflow grants it.
#[derive(clap::Args, Clone)]
pub(crate) struct CapabilityArgs {
    /// Base URL of an OpenAI-compatible API for the `llm` capability, e.g.
    /// `https://api.openai.com/v1` or `http://127.0.0.1:11434/v1`. Its key
    /// is read from WEFT_LLM_API_KEY and never reaches a component.
    #[arg(long, env = "WEFT_LLM_BASE_URL", value_name = "URL")]
    llm_base_url: Option<String>,
    /// The model steps get unless they name one.
    #[arg(long, env = "WEFT_LLM_MODEL", default_value = "gpt-4o-mini", value_name = "NAME")]
    llm_model: String,
    /// SMTP relay for the `email` capability: `smtp://[user:pass@]host:port`
    /// (add `?tls=required` for STARTTLS) or `smtps://...` for TLS.
    #[arg(long, env = "WEFT_SMTP_URL", value_name = "URL")]
    smtp_url: Option<String>,
    /// The sender address of e-mail from steps.
    #[arg(long, env = "WEFT_SMTP_FROM", default_value = "weft@localhost", value_name = "ADDRESS")]
    smtp_from: String,
    /// A file of `NAME=value` lines holding secrets that workflows grant
    /// (looked up before the environment variable of the same name).
    #[arg(long, env = "WEFT_SECRETS_FILE", value_name = "FILE")]
    secrets_file: Option<PathBuf>,
    /// The longest one outbound HTTP request from a step may take, in seconds.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    http_timeout_secs: u64,
    /// The largest HTTP response a step may receive, in bytes.
    #[arg(long, default_value_t = 16 << 20, value_name = "BYTES")]
    http_max_response_bytes: u64,
    /// Answer NAME with ADDRESS instead of DNS for steps' HTTP requests
    /// (repeatable, like curl's --resolve). The address is checked like any
    /// DNS answer: a private or loopback one is still refused.
    #[arg(long, value_name = "NAME:ADDRESS", value_parser = weft::capabilities::parse_resolve_entry)]
    http_resolve: Vec<(String, std::net::IpAddr)>,
}

impl CapabilityArgs {
    /// The host's secrets: the secrets file's, then `WEFT_SECRET_<NAME>`.
    pub(crate) fn secrets(&self) -> Result<SecretStore> {
        secrets(self.secrets_file.as_deref())
    }

    /// The host's capability configuration (the LLM key from WEFT_LLM_API_KEY).
    pub(crate) fn config(&self) -> Result<CapabilityConfig> {
        let llm = match &self.llm_base_url {
            Some(url) => {
                let key = std::env::var("WEFT_LLM_API_KEY").ok().filter(|k| !k.is_empty());
                Some(LlmConfig::new(url, &self.llm_model, key).map_err(anyhow::Error::msg)?)
            }
            None => None,
        };
        let email = match &self.smtp_url {
            Some(url) => Some(EmailConfig::new(url, &self.smtp_from).map_err(anyhow::Error::msg)?),
            None => None,
        };
        let secrets = self.secrets()?;
        Ok(CapabilityConfig {
            http: HttpSettings {
                max_timeout: Duration::from_secs(self.http_timeout_secs.max(1)),
                max_response_bytes: self.http_max_response_bytes,
                resolve: self.http_resolve.clone(),
                ..HttpSettings::default()
            },
            llm,
            email,
            secrets,
        })
    }
}

/// How to reach NATS.
#[derive(clap::Args)]
pub(crate) struct NatsArgs {
    /// NATS server URL.
    #[arg(long = "nats", global = true, env = "NATS_URL", default_value = "nats://127.0.0.1:4222", value_name = "URL")]
    url: String,
    /// A NATS credentials (.creds) file.
    #[arg(long, global = true, value_name = "FILE")]
    nats_creds: Option<PathBuf>,
    /// User name (with --nats-password).
    #[arg(long, global = true, requires = "nats_password")]
    nats_user: Option<String>,
    /// Password (with --nats-user).
    #[arg(long, global = true, env = "NATS_PASSWORD", hide_env_values = true, requires = "nats_user")]
    nats_password: Option<String>,
    /// Authentication token.
    #[arg(long, global = true, env = "NATS_TOKEN", hide_env_values = true)]
    nats_token: Option<String>,
    /// NKey seed.
    #[arg(long, global = true, env = "NATS_NKEY", hide_env_values = true)]
    nats_nkey: Option<String>,
    /// CA certificate for TLS.
    #[arg(long, global = true, value_name = "FILE")]
    nats_tls_ca: Option<PathBuf>,
    /// Require TLS.
    #[arg(long, global = true)]
    nats_require_tls: bool,
    /// Copies of Weft's streams, bucket and object store in a JetStream
    /// cluster: 3 survives the loss of one server. Applied when they are
    /// created, and raised on existing ones.
    #[arg(long, global = true, env = "WEFT_NATS_REPLICAS", default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=5))]
    replicas: u8,
}

impl NatsArgs {
    /// The queue configuration with the default topology names and timings.
    pub(crate) fn config(&self) -> QueueConfig {
        QueueConfig {
            url: self.url.clone(),
            credentials_file: self.nats_creds.clone(),
            user_password: self.nats_user.clone().zip(self.nats_password.clone()),
            token: self.nats_token.clone(),
            nkey_seed: self.nats_nkey.clone(),
            tls_ca: self.nats_tls_ca.clone(),
            require_tls: self.nats_require_tls,
            replicas: usize::from(self.replicas),
            ..QueueConfig::default()
        }
    }
}

/// The secrets in `file` (if any), then the `WEFT_SECRET_<NAME>` variables.
fn secrets(file: Option<&std::path::Path>) -> Result<SecretStore> {
    let mut secrets = SecretStore::from_environment();
    if let Some(file) = file {
        secrets = secrets.with_file(file)?;
    }
    Ok(secrets)
}

/// The at-rest keys the secret `AT_REST_KEYS` holds, if set.
pub(crate) fn at_rest_keys(secrets: &SecretStore) -> Result<Option<Keyring>> {
    Ok(secrets.host_value(AT_REST_KEYS_SECRET).map(|spec| Keyring::parse(&spec)).transpose()?)
}

/// Where a client (`submit`, `status`, `dlq`) finds the at-rest keys that
/// encrypt and decrypt job payloads: the secret `AT_REST_KEYS`.
#[derive(clap::Args)]
pub(crate) struct AtRestArgs {
    /// A file of `NAME=value` secrets; its `AT_REST_KEYS` (else the
    /// variable WEFT_SECRET_AT_REST_KEYS) holds the at-rest keys,
    /// `id:base64key[,id:base64key...]`, the first one encrypting.
    #[arg(long, global = true, env = "WEFT_SECRETS_FILE", value_name = "FILE")]
    secrets_file: Option<PathBuf>,
}

impl AtRestArgs {
    /// `queue` with the at-rest keys, when they are configured.
    pub(crate) fn apply(&self, queue: QueueConfig) -> Result<QueueConfig> {
        let at_rest = at_rest_keys(&secrets(self.secrets_file.as_deref())?)?;
        Ok(QueueConfig { at_rest, ..queue })
    }
}
