//! `notify`: delivers a job's result — its summary, PII findings counts and
//! metadata — by webhook (signed with a granted secret, with an idempotency
//! key derived from the job id), by e-mail, or into the job result
//! (`stdout`, needing no grant).
//!
//! What is sent lives in [`message`] as plain Rust; this file adapts it to
//! the `capable-step` world and the host's `http`, `email` and `secrets`
//! capabilities. A failed delivery is retryable; a 4xx other than 408/429,
//! a denied destination or a bad config is fatal.

pub mod message;

pub use message::{Channel, Config, Digest};

// The `export_step!` macro expands to `unsafe` ABI glue; the workspace
// denies `unsafe_code`, so it is allowed for this module only. Clippy's
// `too_many_arguments` fires on that glue, which takes every flattened
// field of `run`'s parameters.
#[allow(unsafe_code, clippy::too_many_arguments)]
mod component {
    use weft_plugin_kit::{Context, Guest, Item, Payload, StepError, email, http, logging, secrets};

    use crate::message::{self, Channel, Config, Digest, Verdict};

    struct NotifyStep;

    impl Guest for NotifyStep {
        fn run(ctx: Context, input: Vec<Item>, config: String) -> Result<Vec<Item>, StepError> {
            let cfg = Config::from_json(&config).map_err(StepError::Fatal)?;
            let texts: Vec<(String, Vec<(String, String)>)> = input
                .into_iter()
                .filter_map(|item| match item.payload {
                    Payload::Text(text) => Some((text, item.metadata)),
                    Payload::Bytes(_) => None,
                })
                .collect();
            let digest = Digest::gather(&ctx.job_id, &ctx.workflow, &ctx.step_id, &texts);
            let mut out = Vec::new();
            for (index, channel) in cfg.channels.iter().enumerate() {
                let delivered = match channel {
                    Channel::Webhook { url, signing_secret, headers, timeout_ms } => {
                        let key = message::idempotency_key(&ctx.job_id, &ctx.step_id, index);
                        webhook(&digest, url, signing_secret.as_deref(), headers, *timeout_ms, &key)?
                    }
                    Channel::Email { to, cc, subject, body } => {
                        let key = message::idempotency_key(&ctx.job_id, &ctx.step_id, index);
                        mail(&digest, to, cc, subject, body, &key)?
                    }
                    Channel::Stdout { body } => {
                        let text = match body {
                            Some(template) => digest.render(template),
                            None => serde_json::to_string_pretty(&digest.to_json()).unwrap_or_default(),
                        };
                        Item::text(
                            text,
                            vec![("kind".into(), "notification".into()), ("channel".into(), "stdout".into())],
                        )
                    }
                };
                out.push(delivered);
            }
            Ok(out)
        }
    }

    fn delivery(channel: &str, detail: String) -> Item {
        Item::text(detail, vec![("kind".into(), "delivery".into()), ("channel".into(), channel.into())])
    }

    fn webhook(
        digest: &Digest,
        url: &str,
        signing_secret: Option<&str>,
        extra: &std::collections::BTreeMap<String, String>,
        timeout_ms: Option<u64>,
        idempotency_key: &str,
    ) -> Result<Item, StepError> {
        let body = serde_json::to_vec(&digest.to_json()).map_err(|e| StepError::fatal(e.to_string()))?;
        let mut headers: Vec<(String, String)> = vec![
            ("content-type".into(), "application/json".into()),
            ("idempotency-key".into(), idempotency_key.into()),
        ];
        if digest.job_id.chars().all(|c| c.is_ascii_graphic()) {
            headers.push(("x-weft-job-id".into(), digest.job_id.clone()));
        }
        headers.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
        if let Some(secret) = signing_secret {
            let timestamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default()
                .to_string();
            let mut signed = Vec::with_capacity(timestamp.len() + 1 + body.len());
            signed.extend_from_slice(timestamp.as_bytes());
            signed.push(b'.');
            signed.extend_from_slice(&body);
            let mac = secrets::hmac_sha256(secret, &signed)?;
            headers.push(("x-weft-timestamp".into(), timestamp));
            headers.push(("x-weft-signature".into(), format!("sha256={}", message::hex(&mac))));
        }
        let request = http::Request {
            method: "POST".into(),
            url: url.into(),
            headers,
            body: Some(body),
            secret_headers: vec![],
            timeout_ms,
        };
        let response = http::send(&request).map_err(|error| match error {
            http::HttpError::Denied(m) => StepError::Fatal(m),
            http::HttpError::InvalidRequest(m) => StepError::Fatal(format!("webhook request is invalid: {m}")),
            http::HttpError::Timeout(m) | http::HttpError::Transport(m) | http::HttpError::TooLarge(m) => {
                StepError::Retryable(format!("webhook {url} not delivered: {m}"))
            }
        })?;
        let status = response.status;
        let said = String::from_utf8_lossy(&response.body).chars().take(200).collect::<String>();
        match message::verdict(status) {
            Verdict::Delivered => {
                logging::log(logging::Level::Info, &format!("webhook {url} accepted the notification ({status})"));
                Ok(delivery("webhook", format!("{url} answered {status}")))
            }
            Verdict::Retry => {
                let retry_after = response
                    .headers
                    .iter()
                    .find(|(k, _)| k == "retry-after")
                    .and_then(|(_, v)| v.trim().parse::<u64>().ok());
                let reason = format!("webhook {url} answered {status}: {said}");
                Err(match retry_after {
                    Some(seconds) => StepError::retry_after(seconds.saturating_mul(1000), reason),
                    None => StepError::retryable(reason),
                })
            }
            Verdict::Fatal => {
                Err(StepError::Fatal(format!("webhook {url} refused the notification with {status}: {said}")))
            }
        }
    }

    fn mail(
        digest: &Digest,
        to: &[String],
        cc: &[String],
        subject: &str,
        body: &str,
        idempotency_key: &str,
    ) -> Result<Item, StepError> {
        let message = email::Message {
            to: to.to_vec(),
            cc: cc.to_vec(),
            subject: digest.render(subject),
            text_body: digest.render(body),
            html_body: None,
            reply_to: None,
            headers: vec![("X-Idempotency-Key".into(), idempotency_key.into())],
        };
        match email::send(&message) {
            Ok(answer) => Ok(delivery("email", format!("to {}: {answer}", to.join(", ")))),
            Err(email::EmailError::Unavailable(m)) => Err(StepError::Retryable(format!("e-mail not sent: {m}"))),
            Err(
                email::EmailError::Denied(m)
                | email::EmailError::NotConfigured(m)
                | email::EmailError::Invalid(m)
                | email::EmailError::Rejected(m),
            ) => Err(StepError::Fatal(format!("e-mail not sent: {m}"))),
        }
    }

    weft_plugin_kit::export_step!(NotifyStep);
}
