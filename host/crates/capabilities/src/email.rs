//! The `email` capability: messages sent through the host's SMTP relay
//! (lettre; plain, STARTTLS or TLS, credentials in the relay URL) to
//! granted recipients only. The sender address is host configuration.

use std::time::Duration;

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::CallScope;
use super::grants::Allow;

/// The SMTP relay a host sends through.
#[derive(Clone)]
pub struct EmailConfig {
    /// `smtp://[user:pass@]host[:port]` (plain; add `?tls=required` for
    /// STARTTLS) or `smtps://...` (TLS from the first byte).
    pub relay_url: String,
    /// The `From` address.
    pub from: Mailbox,
    /// Connection and command timeout.
    pub timeout: Duration,
}

impl std::fmt::Debug for EmailConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailConfig")
            .field("relay", &redact_url(&self.relay_url))
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl EmailConfig {
    /// Checks the relay URL and the sender address.
    ///
    /// # Errors
    ///
    /// A message naming what is wrong.
    pub fn new(relay_url: &str, from: &str) -> Result<Self, String> {
        let from: Mailbox = from.parse().map_err(|e| format!("sender address `{from}` is not valid: {e}"))?;
        AsyncSmtpTransport::<Tokio1Executor>::from_url(relay_url)
            .map_err(|e| format!("SMTP relay URL `{}` is not valid: {e}", redact_url(relay_url)))?;
        Ok(EmailConfig { relay_url: relay_url.to_string(), from, timeout: Duration::from_secs(30) })
    }

    pub(crate) fn transport(&self) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
        Ok(AsyncSmtpTransport::<Tokio1Executor>::from_url(&self.relay_url)
            .map_err(|e| format!("SMTP relay URL is not valid: {e}"))?
            .timeout(Some(self.timeout))
            .build())
    }
}

/// The relay URL with any password replaced, for logs and errors.
fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

/// A message a step asks the host to send.
#[derive(Debug, Clone)]
pub struct EmailMessage {
    /// Recipients.
    pub to: Vec<String>,
    /// Copy recipients.
    pub cc: Vec<String>,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub text_body: String,
    /// Optional HTML alternative.
    pub html_body: Option<String>,
    /// Optional `Reply-To`.
    pub reply_to: Option<String>,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
}

/// Why sending failed; mirrors `email-error` in the WIT.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    /// A recipient is not granted.
    #[error("denied: {0}")]
    Denied(String),
    /// No relay configured.
    #[error("not configured: {0}")]
    NotConfigured(String),
    /// Malformed message.
    #[error("invalid message: {0}")]
    Invalid(String),
    /// Permanent refusal.
    #[error("rejected: {0}")]
    Rejected(String),
    /// Transient failure.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

/// Sends `message` for the step of `scope`.
pub(crate) async fn send(scope: &CallScope, message: EmailMessage) -> Result<String, EmailError> {
    let step = scope.step.as_ref();
    let Some(config) = &scope.services.config.email else {
        return Err(EmailError::NotConfigured(
            "this host has no SMTP relay; start it with `--smtp-url` and `--smtp-from` \
             (or WEFT_SMTP_URL / WEFT_SMTP_FROM)"
                .into(),
        ));
    };
    let Some(allowed) = &scope.grants.email else {
        return Err(EmailError::Denied(format!(
            "step `{step}` has no `email` grant; add `grants: {{ email: [...] }}` to the step"
        )));
    };
    if message.to.is_empty() {
        return Err(EmailError::Invalid("a message needs at least one `to` recipient".into()));
    }
    for address in message.to.iter().chain(&message.cc) {
        if let Allow::Only(patterns) = allowed
            && !patterns.iter().any(|p| p.matches(address))
        {
            return Err(EmailError::Denied(format!(
                "step `{step}` may not write to `{address}`: it is not in the step's `email` grant; nothing was sent"
            )));
        }
    }
    let email = build(config, &message)?;
    let transport = config.transport().map_err(EmailError::NotConfigured)?;
    let sending = transport.send(email);
    let timeout = (config.timeout * 2).min(scope.remaining());
    match tokio::time::timeout(timeout, sending).await {
        Err(_) => Err(EmailError::Unavailable(format!("the SMTP relay did not finish within {timeout:?}"))),
        Ok(Ok(response)) => Ok(format!("{} {}", response.code(), response.message().collect::<Vec<_>>().join(" "))),
        Ok(Err(error)) if error.is_permanent() => Err(EmailError::Rejected(super::error_chain(&error))),
        Ok(Err(error)) => Err(EmailError::Unavailable(super::error_chain(&error))),
    }
}

/// Headers a step may add besides its own `X-` ones: threading and list
/// headers. Everything else (`From`, `Sender`, `To`, `Bcc`, `Content-Type`,
/// `Return-Path`, ...) decides who sends, who receives or how the message
/// is read, and is the host's: a step that could set them could send as
/// anyone, or to recipients its grant does not name.
const EXTRA_HEADERS: &[&str] = &["In-Reply-To", "References", "Auto-Submitted", "List-Id", "List-Unsubscribe"];

fn step_may_set_header(name: &str) -> bool {
    let custom = name.len() > 2 && name.get(..2).is_some_and(|prefix| prefix.eq_ignore_ascii_case("x-"));
    custom || EXTRA_HEADERS.iter().any(|allowed| allowed.eq_ignore_ascii_case(name))
}

fn build(config: &EmailConfig, message: &EmailMessage) -> Result<Message, EmailError> {
    let parse = |address: &str| -> Result<Mailbox, EmailError> {
        address.parse().map_err(|e| EmailError::Invalid(format!("`{address}` is not a valid address: {e}")))
    };
    let mut builder = Message::builder().from(config.from.clone()).subject(&message.subject);
    for to in &message.to {
        builder = builder.to(parse(to)?);
    }
    for cc in &message.cc {
        builder = builder.cc(parse(cc)?);
    }
    if let Some(reply_to) = &message.reply_to {
        builder = builder.reply_to(parse(reply_to)?);
    }
    let built = match &message.html_body {
        Some(html) => builder.multipart(MultiPart::alternative_plain_html(message.text_body.clone(), html.clone())),
        None => builder.body(message.text_body.clone()),
    };
    let mut email = built.map_err(|e| EmailError::Invalid(e.to_string()))?;
    for (name, value) in &message.headers {
        let valid = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !valid || value.contains(['\r', '\n']) {
            return Err(EmailError::Invalid(format!("header `{name}` is not a valid e-mail header")));
        }
        if !step_may_set_header(name) {
            return Err(EmailError::Invalid(format!(
                "header `{name}` may not be set by a step (the host sets the sender, the recipients and the \
                 message's structure); allowed: `X-` headers, {}",
                EXTRA_HEADERS.iter().map(|h| format!("`{h}`")).collect::<Vec<_>>().join(", ")
            )));
        }
        let header = HeaderName::new_from_ascii(name.clone())
            .map_err(|_| EmailError::Invalid(format!("header `{name}` is not a valid e-mail header")))?;
        email.headers_mut().insert_raw(HeaderValue::new(header, value.clone()));
    }
    Ok(email)
}
