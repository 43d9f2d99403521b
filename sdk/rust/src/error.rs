//! Step errors: constructors, and what a capability's error means for the
//! step that called it.
//!
//! The host owns the retry clock; a step only says what a failure is (see
//! `docs/plugins.md`, "Errors and retries"). The mappings here are the ones
//! every standard step uses, so two steps never classify the same
//! capability error differently.

use crate::config::ConfigError;
use crate::{RetryAfter, StepError, llm, secrets};

impl StepError {
    /// Bad input or configuration: never retried.
    pub fn fatal(message: impl Into<String>) -> Self {
        StepError::Fatal(message.into())
    }

    /// A transient failure: retried with backoff.
    pub fn retryable(message: impl Into<String>) -> Self {
        StepError::Retryable(message.into())
    }

    /// A transient failure, retried no sooner than `delay_ms` milliseconds.
    pub fn retry_after(delay_ms: u64, reason: impl Into<String>) -> Self {
        StepError::RetryAfter(RetryAfter { delay_ms, reason: reason.into() })
    }
}

/// A refused config is fatal: the same config fails the same way every time.
impl From<ConfigError> for StepError {
    fn from(error: ConfigError) -> Self {
        StepError::Fatal(error.to_string())
    }
}

/// A secret that is not granted, or has no value on this host, cannot
/// appear by retrying: fatal, with the host's message.
impl From<secrets::SecretError> for StepError {
    fn from(error: secrets::SecretError) -> Self {
        match error {
            secrets::SecretError::Denied(message) | secrets::SecretError::Missing(message) => StepError::Fatal(message),
        }
    }
}

/// What an `llm` failure means for a step that asked the model to `task`
/// (`summarise`, `triage`): the endpoint's own wait is kept, an unavailable
/// endpoint is retried, and a refusal, a missing grant or a host without an
/// endpoint is fatal.
pub fn from_llm(error: llm::LlmError, task: &str) -> StepError {
    match error {
        llm::LlmError::RateLimited(wait) => StepError::RetryAfter(wait),
        llm::LlmError::Unavailable(message) => StepError::Retryable(format!("the LLM is unavailable: {message}")),
        llm::LlmError::Denied(message) | llm::LlmError::NotConfigured(message) | llm::LlmError::Rejected(message) => {
            StepError::Fatal(format!("the LLM cannot {task}: {message}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(error: &StepError) -> (&'static str, String) {
        match error {
            StepError::Fatal(m) => ("fatal", m.clone()),
            StepError::Retryable(m) => ("retryable", m.clone()),
            StepError::RetryAfter(wait) => ("retry-after", format!("{} {}", wait.delay_ms, wait.reason)),
        }
    }

    #[test]
    fn constructors_make_each_kind() {
        assert_eq!(message(&StepError::fatal("bad")), ("fatal", "bad".into()));
        assert_eq!(message(&StepError::retryable(String::from("later"))), ("retryable", "later".into()));
        assert_eq!(message(&StepError::retry_after(1500, "429")), ("retry-after", "1500 429".into()));
        let config = ConfigError::new("chunk", "size must be at least 1");
        assert_eq!(message(&config.into()), ("fatal", "invalid chunk config: size must be at least 1".into()));
    }

    #[test]
    fn capability_errors_map_onto_retry_decisions() {
        let denied = secrets::SecretError::Denied("was not granted secret `K`".into());
        assert_eq!(message(&denied.into()), ("fatal", "was not granted secret `K`".into()));
        assert_eq!(message(&secrets::SecretError::Missing("no value".into()).into()).0, "fatal");

        let wait = RetryAfter { delay_ms: 2000, reason: "busy".into() };
        assert_eq!(message(&from_llm(llm::LlmError::RateLimited(wait), "triage")), ("retry-after", "2000 busy".into()));
        assert_eq!(
            message(&from_llm(llm::LlmError::Unavailable("503".into()), "triage")),
            ("retryable", "the LLM is unavailable: 503".into())
        );
        for refusal in [
            llm::LlmError::Denied("d".into()),
            llm::LlmError::NotConfigured("d".into()),
            llm::LlmError::Rejected("d".into()),
        ] {
            assert_eq!(message(&from_llm(refusal, "summarise")), ("fatal", "the LLM cannot summarise: d".into()));
        }
    }
}
