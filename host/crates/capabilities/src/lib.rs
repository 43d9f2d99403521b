//! Host capabilities: what a step component may reach outside its sandbox,
//! and the grant each one needs.
//!
//! Deny by default: WASI is linked with no files, no environment, no
//! network and no inherited stdio; every `weft:plugin/*` capability but
//! logging needs a grant in the workflow. A component's imports say what it
//! *may* use (`weft plugins` lists them); every call is checked against its
//! step's grants when it is made, and a denied call sends nothing.
//!
//! Architecture invariant: this module decides *what* is allowed and holds
//! the plain-Rust behaviour of each capability; the engine adapts it to the
//! generated wasmtime bindings. Secrets never leave the host.

pub mod email;
pub mod grants;
pub mod http;
pub mod llm;
pub mod logging;
pub mod net_policy;
pub mod secrets;

use std::sync::Arc;
use std::time::{Duration, Instant};

pub use email::EmailConfig;
pub use grants::StepGrants;
pub use http::{HttpSettings, parse_resolve_entry};
pub use llm::LlmConfig;
pub use secrets::SecretStore;

/// The WIT package every capability interface lives in.
pub const PLUGIN_PACKAGE: &str = "weft:plugin";

/// The versions of the `weft:plugin` package this host accepts: any 0.1.x.
pub const SUPPORTED_PACKAGE_VERSION: (u64, u64) = (0, 1);

/// One host capability interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capability {
    /// The interface name without package version, e.g. `weft:plugin/logging`.
    pub interface: &'static str,
    /// The workflow grant that allows it; `None` when every step may use it.
    pub grant: Option<&'static str>,
    /// What it does, for `weft plugins` and error messages.
    pub summary: &'static str,
}

/// Every capability this host provides.
pub const CAPABILITIES: &[Capability] = &[
    Capability { interface: "weft:plugin/types", grant: None, summary: "shared data types" },
    Capability {
        interface: "weft:plugin/logging",
        grant: None,
        summary: "structured logs into the host's tracing, tagged with job, step and attempt",
    },
    Capability {
        interface: "weft:plugin/http",
        grant: Some("http"),
        summary: "outbound HTTP made by the host to granted hosts, with a timeout and a size cap",
    },
    Capability {
        interface: "weft:plugin/llm",
        grant: Some("llm"),
        summary: "chat completion against the host's OpenAI-compatible endpoint",
    },
    Capability {
        interface: "weft:plugin/email",
        grant: Some("email"),
        summary: "e-mail through the host's SMTP relay to granted recipients",
    },
    Capability {
        interface: "weft:plugin/secrets",
        grant: Some("secrets"),
        summary: "HMAC with granted secrets; a secret's value never enters the component",
    },
];

/// The grant names a workflow may use.
pub fn known_grants() -> impl Iterator<Item = &'static str> {
    CAPABILITIES.iter().filter_map(|c| c.grant)
}

/// How the host treats one import of a component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportClass {
    /// A WASI 0.2 interface: linked, but sandboxed (no files, env or network).
    Wasi,
    /// A Weft capability.
    Capability(Capability),
    /// A `weft:plugin` interface from a package version this host does not support.
    UnsupportedVersion {
        /// The version the component was built against.
        found: String,
    },
    /// Something this host does not provide at all.
    Unknown,
}

/// Classifies an import name such as `wasi:cli/environment@0.2.3` or
/// `weft:plugin/logging@0.1.0`.
pub fn classify_import(name: &str) -> ImportClass {
    let (interface, version) = match name.split_once('@') {
        Some((interface, version)) => (interface, Some(version)),
        None => (name, None),
    };
    if let Some(rest) = interface.strip_prefix("wasi:") {
        let package = rest.split('/').next().unwrap_or_default();
        let wasi_02 = version.is_none_or(|v| v.starts_with("0.2."));
        return if WASI_PACKAGES.contains(&package) && wasi_02 { ImportClass::Wasi } else { ImportClass::Unknown };
    }
    let Some(capability) = CAPABILITIES.iter().find(|c| c.interface == interface) else {
        return ImportClass::Unknown;
    };
    match version {
        Some(v) if !version_supported(v) => ImportClass::UnsupportedVersion { found: v.to_string() },
        _ => ImportClass::Capability(*capability),
    }
}

/// Whether a `weft:plugin` package version is one this host accepts.
pub fn version_supported(version: &str) -> bool {
    let mut parts = version.split(['.', '-', '+']).map(str::parse::<u64>);
    matches!(
        (parts.next(), parts.next()),
        (Some(Ok(major)), Some(Ok(minor))) if (major, minor) == SUPPORTED_PACKAGE_VERSION
    )
}

/// WASI 0.2 packages linked (sandboxed) into every step.
const WASI_PACKAGES: &[&str] = &["cli", "clocks", "filesystem", "io", "random", "sockets"];

/// How the host reaches outside: the configuration behind every capability.
#[derive(Debug, Clone, Default)]
pub struct CapabilityConfig {
    /// Bounds of the `http` capability.
    pub http: HttpSettings,
    /// The chat-completion endpoint, if any.
    pub llm: Option<LlmConfig>,
    /// The SMTP relay, if any.
    pub email: Option<EmailConfig>,
    /// Where secrets come from.
    pub secrets: SecretStore,
}

/// The host's capability services, shared by every attempt.
#[derive(Debug)]
pub struct Services {
    pub(crate) config: CapabilityConfig,
    /// For steps' `http` calls: checked resolver, no proxy. If it could not
    /// be built, every `http` call fails with this reason; there is no
    /// fallback to an unchecked client.
    pub(crate) client: Result<reqwest::Client, String>,
    /// For the operator's LLM endpoint, which is trusted configuration: an
    /// ordinary client (system resolver, environment proxies).
    pub(crate) llm_client: reqwest::Client,
}

impl Services {
    /// Services for `config`.
    pub fn new(config: CapabilityConfig) -> Self {
        let client = http::client(&config.http).map_err(|e| error_chain(&e));
        let llm_client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("weft/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Services { config, client, llm_client }
    }

    /// Whether the host has a value for secret `name`.
    pub fn has_secret(&self, name: &str) -> bool {
        self.config.secrets.has(name)
    }
}

/// Who is calling: one attempt of one step, with its grants and deadline.
#[derive(Debug, Clone)]
pub struct CallScope {
    /// The job.
    pub job_id: Arc<str>,
    /// The workflow's name.
    pub workflow: Arc<str>,
    /// The step id.
    pub step: Arc<str>,
    /// The attempt number.
    pub attempt: u32,
    /// What the step may reach.
    pub grants: Arc<StepGrants>,
    /// When the attempt's time is up.
    pub deadline: Instant,
    /// The host's services.
    pub services: Arc<Services>,
}

/// Why a secret could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// Not granted to the step.
    #[error("{0}")]
    Denied(String),
    /// Granted, but the host has no value.
    #[error("{0}")]
    Missing(String),
}

impl CallScope {
    /// Time left before the attempt's deadline.
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// The value of a secret the step was granted (for the host's own use only).
    pub(crate) fn secret(&self, name: &str) -> Result<String, SecretError> {
        if !self.grants.secrets.contains(name) {
            return Err(SecretError::Denied(format!(
                "step `{}` was not granted secret `{name}`; add it to the step's `grants: {{ secrets: [...] }}`",
                self.step
            )));
        }
        self.services.config.secrets.get(name).ok_or_else(|| {
            SecretError::Missing(format!(
                "secret `{name}` is granted to step `{}` but this host has no value for it \
                 (set the environment variable `{}` or add `{name}` to the secrets file)",
                self.step,
                secrets::environment_variable(name)
            ))
        })
    }

    /// HMAC-SHA256 of `data` keyed by the granted secret `name`.
    pub async fn hmac_sha256(&self, name: &str, data: &[u8]) -> Result<Vec<u8>, SecretError> {
        let started = Instant::now();
        let result = self.secret(name).map(|key| secrets::hmac_sha256(key.as_bytes(), data));
        let outcome = result.as_ref().map(|_| "signed".to_string()).map_err(ToString::to_string);
        self.record_timed("secrets", name, &outcome, started);
        result
    }

    /// Sends an HTTP request to a granted destination.
    pub async fn http_send(&self, request: http::HttpRequest) -> Result<http::HttpResponse, http::HttpError> {
        let target = format!("{} {}", request.method, request.url);
        let started = Instant::now();
        let result = http::send(self, request).await;
        self.record_timed("http", &target, &result, started);
        result
    }

    /// Asks the LLM endpoint for a chat completion.
    pub async fn llm_chat(&self, request: llm::ChatRequest) -> Result<llm::ChatResponse, llm::LlmError> {
        let target = request.model.clone().unwrap_or_else(|| "default model".into());
        let started = Instant::now();
        let result = llm::chat(self, request).await;
        self.record_timed("llm", &target, &result, started);
        result
    }

    /// Sends an e-mail through the relay.
    pub async fn email_send(&self, message: email::EmailMessage) -> Result<String, email::EmailError> {
        let target = message.to.join(", ");
        let started = Instant::now();
        let result = email::send(self, message).await;
        self.record_timed("email", &target, &result, started);
        result
    }

    fn record_timed(&self, capability: &str, target: &str, result: &impl Outcome, started: Instant) {
        let _span = tracing::info_span!(
            "capability",
            capability,
            job.id = %self.job_id,
            step = %self.step,
            attempt = self.attempt,
            target,
            elapsed_ms = started.elapsed().as_millis() as u64,
        )
        .entered();
        if result.succeeded() {
            tracing::info!(outcome = %result.describe(), "capability call succeeded");
        } else {
            tracing::warn!(outcome = %result.describe(), "capability call failed");
        }
    }
}

pub(crate) use weft_core::errors::error_chain;

/// A capability call's result, described for the trace.
pub(crate) trait Outcome {
    /// One line: what came back, or why it failed.
    fn describe(&self) -> String;
    /// Whether the call succeeded.
    fn succeeded(&self) -> bool;
}

/// What a successful call returned, in one line for the trace.
pub(crate) trait Summary {
    fn summary(&self) -> String;
}

impl Summary for String {
    fn summary(&self) -> String {
        self.clone()
    }
}

impl<T: Summary, E: std::fmt::Display> Outcome for Result<T, E> {
    fn describe(&self) -> String {
        match self {
            Ok(value) => value.summary(),
            Err(error) => error.to_string(),
        }
    }
    fn succeeded(&self) -> bool {
        self.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_wasi_capabilities_and_strangers() {
        assert_eq!(classify_import("wasi:cli/environment@0.2.3"), ImportClass::Wasi);
        assert_eq!(classify_import("wasi:http/outgoing-handler@0.2.3"), ImportClass::Unknown);
        assert_eq!(classify_import("wasi:cli/environment@0.3.0"), ImportClass::Unknown);
        assert!(
            matches!(classify_import("weft:plugin/logging@0.1.0"), ImportClass::Capability(c) if c.grant.is_none())
        );
        assert!(matches!(classify_import("weft:plugin/logging@0.1.7"), ImportClass::Capability(_)));
        assert_eq!(
            classify_import("weft:plugin/logging@0.2.0"),
            ImportClass::UnsupportedVersion { found: "0.2.0".into() }
        );
        assert_eq!(classify_import("acme:secret/backdoor@1.0.0"), ImportClass::Unknown);
    }
}
