//! The `llm` capability: chat completion against an OpenAI-compatible
//! endpoint (`POST {base}/chat/completions`) configured on the host. The API
//! key stays in the host; `429`/`503` with `Retry-After` become a
//! rate-limited error that a step turns into a `retry-after` step error.

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, RETRY_AFTER};
use serde::Deserialize;
use url::Url;

use super::grants::Allow;
use super::{CallScope, Summary, error_chain};

/// Where the host sends chat completions.
#[derive(Clone)]
pub struct LlmConfig {
    /// The API base, e.g. `https://api.openai.com/v1` or `http://127.0.0.1:8000/v1`.
    pub base_url: Url,
    /// The model used when a step does not name one.
    pub model: String,
    /// Sent as `Authorization: Bearer ...`; never given to a component.
    pub api_key: Option<String>,
    /// The longest one completion may take.
    pub timeout: Duration,
}

impl std::fmt::Debug for LlmConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmConfig")
            .field("base_url", &self.base_url.as_str())
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<set>"))
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl LlmConfig {
    /// A configuration with a 120 s timeout.
    ///
    /// # Errors
    ///
    /// A message when `base_url` is not an http(s) URL.
    pub fn new(base_url: &str, model: impl Into<String>, api_key: Option<String>) -> Result<Self, String> {
        let mut base =
            Url::parse(base_url).map_err(|e| format!("LLM base URL `{base_url}` is not a valid URL: {e}"))?;
        if base.scheme() != "http" && base.scheme() != "https" {
            return Err(format!("LLM base URL `{base_url}` must start with http:// or https://"));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        Ok(LlmConfig { base_url: base, model: model.into(), api_key, timeout: Duration::from_secs(120) })
    }
}

/// One chat message.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

/// A completion request from a step.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    /// The conversation.
    pub messages: Vec<ChatMessage>,
    /// The model; the host's default when absent.
    pub model: Option<String>,
    /// Upper bound on generated tokens.
    pub max_tokens: Option<u32>,
    /// Sampling temperature.
    pub temperature: Option<f32>,
}

/// The completion.
#[derive(Debug, Clone)]
pub struct ChatResponse {
    /// The assistant's answer.
    pub content: String,
    /// The model that answered.
    pub model: String,
    /// Tokens in the prompt.
    pub prompt_tokens: u32,
    /// Tokens generated.
    pub completion_tokens: u32,
    /// Why generation stopped.
    pub finish_reason: String,
}

/// Why a completion failed; mirrors `llm-error` in the WIT.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LlmError {
    /// Not granted, or model not granted.
    #[error("denied: {0}")]
    Denied(String),
    /// No endpoint configured.
    #[error("not configured: {0}")]
    NotConfigured(String),
    /// The endpoint asked to wait this long.
    #[error("rate limited for {delay:?}: {reason}")]
    RateLimited {
        /// How long to wait.
        delay: Duration,
        /// What the endpoint said.
        reason: String,
    },
    /// Transient failure.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The endpoint refused the request.
    #[error("rejected: {0}")]
    Rejected(String),
}

impl Summary for ChatResponse {
    fn summary(&self) -> String {
        format!("ok, {} prompt + {} completion tokens", self.prompt_tokens, self.completion_tokens)
    }
}

#[derive(serde::Serialize)]
struct WireRequest<'a> {
    model: &'a str,
    messages: &'a [ChatMessage],
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
}

#[derive(Deserialize)]
struct WireResponse {
    #[serde(default)]
    model: String,
    choices: Vec<WireChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireChoice {
    message: WireMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireMessage {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Deserialize, Default)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u32,
    #[serde(default)]
    completion_tokens: u32,
}

/// The longest `Retry-After` honoured; a longer one is capped.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// The most of an answer the host reads. A chat completion is text for one
/// step; an endpoint that answers without end (broken, or hostile) must not
/// fill the host's memory beside the sandbox.
const MAX_ANSWER_BYTES: usize = 8 << 20;

/// Asks the configured endpoint for a completion on behalf of the step of `scope`.
pub(crate) async fn chat(scope: &CallScope, request: ChatRequest) -> Result<ChatResponse, LlmError> {
    let step = scope.step.as_ref();
    let Some(config) = &scope.services.config.llm else {
        return Err(LlmError::NotConfigured(
            "this host has no LLM endpoint; start it with `--llm-base-url` and `--llm-model` \
             (or WEFT_LLM_BASE_URL / WEFT_LLM_MODEL)"
                .into(),
        ));
    };
    let model = request.model.clone().unwrap_or_else(|| config.model.clone());
    match &scope.grants.llm {
        None => {
            return Err(LlmError::Denied(format!(
                "step `{step}` has no `llm` grant; add `grants: {{ llm: true }}` to the step"
            )));
        }
        Some(Allow::Only(models)) if !models.contains(&model) => {
            return Err(LlmError::Denied(format!(
                "step `{step}` may not use model `{model}`; its `llm` grant allows {}",
                models.join(", ")
            )));
        }
        Some(_) => {}
    }
    if request.messages.is_empty() {
        return Err(LlmError::Rejected("a chat request needs at least one message".into()));
    }
    let url = config
        .base_url
        .join("chat/completions")
        .map_err(|e| LlmError::NotConfigured(format!("bad LLM base URL: {e}")))?;
    let body = WireRequest {
        model: &model,
        messages: &request.messages,
        max_tokens: request.max_tokens,
        temperature: request.temperature,
    };
    let timeout = config.timeout.min(scope.remaining());
    let mut builder = scope.services.llm_client.post(url.clone()).timeout(timeout).json(&body);
    if let Some(key) = &config.api_key {
        builder = builder.header(AUTHORIZATION, format!("Bearer {key}"));
    }
    let mut response = match tokio::time::timeout(timeout, builder.send()).await {
        Err(_) => return Err(LlmError::Unavailable(format!("{url} did not answer within {timeout:?}"))),
        Ok(Err(error)) => return Err(LlmError::Unavailable(error_chain(&error))),
        Ok(Ok(response)) => response,
    };
    let status = response.status();
    let retry_after = response.headers().get(RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(parse_retry_after);
    let mut body = Vec::new();
    let read = async {
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Ok(false);
            }
            body.extend_from_slice(&chunk);
        }
        Ok::<bool, reqwest::Error>(true)
    };
    match tokio::time::timeout(scope.remaining(), read).await {
        Ok(Ok(true)) => {}
        Ok(Ok(false)) => {
            return Err(LlmError::Rejected(format!(
                "{url} answered with more than {}, the most of an answer this host reads",
                weft_workflow::human_size(MAX_ANSWER_BYTES as u64)
            )));
        }
        Ok(Err(error)) => return Err(LlmError::Unavailable(error_chain(&error))),
        Err(_) => return Err(LlmError::Unavailable(format!("{url} did not finish its answer in time"))),
    }
    let text = String::from_utf8_lossy(&body);
    let reason = || format!("{url} answered {status}: {}", api_message(&text));
    if status.as_u16() == 429 || status.as_u16() == 503 {
        return Err(match retry_after {
            Some(delay) => LlmError::RateLimited { delay: delay.min(MAX_RETRY_AFTER), reason: reason() },
            None => LlmError::Unavailable(reason()),
        });
    }
    if status.is_server_error() || status.as_u16() == 408 {
        return Err(LlmError::Unavailable(reason()));
    }
    if !status.is_success() {
        return Err(LlmError::Rejected(reason()));
    }
    let parsed: WireResponse = serde_json::from_str(&text)
        .map_err(|e| LlmError::Unavailable(format!("{url} answered with a body that is not a chat completion: {e}")))?;
    let Some(choice) = parsed.choices.into_iter().next() else {
        return Err(LlmError::Unavailable(format!("{url} answered with no choices")));
    };
    let usage = parsed.usage.unwrap_or_default();
    Ok(ChatResponse {
        content: choice.message.content.unwrap_or_default(),
        model: if parsed.model.is_empty() { model } else { parsed.model },
        prompt_tokens: usage.prompt_tokens,
        completion_tokens: usage.completion_tokens,
        finish_reason: choice.finish_reason.unwrap_or_default(),
    })
}

/// `Retry-After` as seconds or an HTTP date.
fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(std::time::SystemTime::now()).unwrap_or(Duration::ZERO))
}

/// The `error.message` of an OpenAI-style error body, or the start of the body.
fn api_message(body: &str) -> String {
    #[derive(Deserialize)]
    struct ErrorBody {
        error: ErrorDetail,
    }
    #[derive(Deserialize)]
    struct ErrorDetail {
        message: String,
    }
    match serde_json::from_str::<ErrorBody>(body) {
        Ok(parsed) => parsed.error.message,
        Err(_) => body.chars().take(200).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_in_seconds_and_dates() {
        assert_eq!(parse_retry_after("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(parse_retry_after("-1"), None);
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn error_bodies_are_quoted_briefly() {
        assert_eq!(api_message(r#"{"error":{"message":"slow down","type":"x"}}"#), "slow down");
        assert_eq!(api_message("plain text"), "plain text");
    }
}
