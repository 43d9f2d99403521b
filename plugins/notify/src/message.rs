//! What `notify` sends, as plain Rust: the config, the digest gathered from
//! the input items (summary, PII findings counts, metadata), templates,
//! the webhook body and its idempotency key, and how an answer maps to a
//! retry decision.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use weft_plugin_kit::config::ConfigFields;
use weft_plugin_kit::metadata;
use weft_plugin_kit::template::{self, Variables};

/// The step's `config` block.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to deliver, in order.
    pub channels: Vec<Channel>,
}

/// One delivery channel.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Channel {
    /// POST the JSON digest to a URL (granted under `http`).
    Webhook {
        /// Absolute URL.
        url: String,
        /// A granted secret to sign the body with (HMAC-SHA256).
        #[serde(default)]
        signing_secret: Option<String>,
        /// Extra headers.
        #[serde(default)]
        headers: BTreeMap<String, String>,
        /// Per-request timeout in milliseconds.
        #[serde(default)]
        timeout_ms: Option<u64>,
    },
    /// Send an e-mail through the host's relay (granted under `email`).
    Email {
        /// Recipients.
        to: Vec<String>,
        /// Copy recipients.
        #[serde(default)]
        cc: Vec<String>,
        /// Subject template.
        #[serde(default = "default_subject")]
        subject: String,
        /// Body template.
        #[serde(default = "default_body")]
        body: String,
    },
    /// Put the message into the job's result (no grant needed).
    Stdout {
        /// Body template; the JSON digest when absent.
        #[serde(default)]
        body: Option<String>,
    },
}

fn default_subject() -> String {
    "[weft] {{workflow}}: job {{job_id}}".into()
}

fn default_body() -> String {
    "Job {{job_id}} of workflow {{workflow}} finished.\n\nSummary:\n{{summary}}\n\nPersonal data masked: {{findings}}\n"
        .into()
}

impl Config {
    /// Parses and checks the config, templates included.
    ///
    /// # Errors
    ///
    /// A message a workflow author can act on.
    pub fn from_json(json: &str) -> Result<Self, String> {
        let mut fields = ConfigFields::parse("notify", json)?;
        let config = Config { channels: fields.require("channels")? };
        fields.finish()?;
        if config.channels.is_empty() {
            return Err("notify config needs at least one channel (`channels: [{ type: stdout }]`)".into());
        }
        for (index, channel) in config.channels.iter().enumerate() {
            let templates: Vec<&str> = match channel {
                Channel::Webhook { url, .. } => {
                    if !(url.starts_with("http://") || url.starts_with("https://")) {
                        return Err(format!("channel {index} (webhook): `{url}` is not an http(s) URL"));
                    }
                    vec![]
                }
                Channel::Email { to, subject, body, .. } => {
                    if to.is_empty() {
                        return Err(format!("channel {index} (email): `to` lists no recipient"));
                    }
                    vec![subject, body]
                }
                Channel::Stdout { body } => body.iter().map(String::as_str).collect(),
            };
            for template in templates {
                VARIABLES.check(template).map_err(|e| format!("channel {index}: {e}"))?;
            }
        }
        Ok(config)
    }
}

/// What the input items say, gathered once.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Digest {
    /// The job id.
    pub job_id: String,
    /// The workflow name.
    pub workflow: String,
    /// The notifying step's id.
    pub step: String,
    /// The summary text (summary items, or every other text item).
    pub summary: String,
    /// PII findings per entity type.
    pub findings: BTreeMap<String, u64>,
    /// Metadata of the first summary item.
    pub metadata: BTreeMap<String, String>,
}

/// Whether an item is a PII findings report.
fn is_findings_report(metadata: &[(String, String)]) -> bool {
    metadata::has(metadata, "kind", "pii-findings")
}

fn is_summary(metadata: &[(String, String)]) -> bool {
    metadata::has(metadata, "kind", "summary") || metadata::get(metadata, "summary_sentences").is_some()
}

impl Digest {
    /// Gathers the digest from text items and their metadata. Findings come
    /// from a `kind=pii-findings` report if present, else from the
    /// per-item `pii_findings` counts.
    pub fn gather(job_id: &str, workflow: &str, step: &str, items: &[(String, Vec<(String, String)>)]) -> Self {
        let mut digest = Digest {
            job_id: job_id.to_string(),
            workflow: workflow.to_string(),
            step: step.to_string(),
            ..Digest::default()
        };
        let mut report_counts: Option<BTreeMap<String, u64>> = None;
        let mut item_counts: BTreeMap<String, u64> = BTreeMap::new();
        for (text, metadata) in items {
            if is_findings_report(metadata) {
                if let Ok(report) = serde_json::from_str::<Value>(text)
                    && let Some(by_type) = report.get("by_type").and_then(Value::as_object)
                {
                    let counts = report_counts.get_or_insert_with(BTreeMap::new);
                    for (entity, n) in by_type {
                        *counts.entry(entity.clone()).or_default() += n.as_u64().unwrap_or(0);
                    }
                }
                continue;
            }
            if let Some(counts) = metadata::get(metadata, "pii_findings")
                && let Ok(Value::Object(counts)) = serde_json::from_str::<Value>(counts)
            {
                for (entity, n) in counts {
                    *item_counts.entry(entity).or_default() += n.as_u64().unwrap_or(0);
                }
            }
        }
        digest.findings = report_counts.unwrap_or(item_counts);
        let summaries: Vec<&(String, Vec<(String, String)>)> =
            items.iter().filter(|(_, metadata)| is_summary(metadata)).collect();
        let chosen: Vec<&(String, Vec<(String, String)>)> = if summaries.is_empty() {
            items.iter().filter(|(_, metadata)| !is_findings_report(metadata)).collect()
        } else {
            summaries
        };
        digest.summary = chosen.iter().map(|(text, _)| text.trim()).collect::<Vec<_>>().join("\n\n");
        if let Some((_, metadata)) = chosen.first() {
            digest.metadata = metadata.iter().cloned().collect();
        }
        digest
    }

    /// `EMAIL: 2, PHONE: 1`, or `none`.
    pub fn findings_line(&self) -> String {
        if self.findings.values().all(|n| *n == 0) {
            return "none".into();
        }
        self.findings.iter().filter(|(_, n)| **n > 0).map(|(k, n)| format!("{k}: {n}")).collect::<Vec<_>>().join(", ")
    }

    /// The webhook body and the default `stdout` message.
    pub fn to_json(&self) -> Value {
        json!({
            "job_id": self.job_id,
            "workflow": self.workflow,
            "step": self.step,
            "summary": self.summary,
            "findings": self.findings,
            "metadata": self.metadata,
        })
    }

    /// The value of a template variable.
    fn variable(&self, name: &str) -> Option<String> {
        match name {
            "job_id" => Some(self.job_id.clone()),
            "workflow" => Some(self.workflow.clone()),
            "step" => Some(self.step.clone()),
            "summary" => Some(self.summary.clone()),
            "findings" => Some(self.findings_line()),
            _ => name.strip_prefix("meta.").map(|key| self.metadata.get(key).cloned().unwrap_or_default()),
        }
    }

    /// Fills `{{name}}` placeholders (checked by [`Config::from_json`]).
    pub fn render(&self, template: &str) -> String {
        template::render(template, |name| self.variable(name))
    }
}

/// What a template may use: `{{ job_id }}` (spaces allowed) and
/// `{{meta.<key>}}` for any metadata key of the summary.
const VARIABLES: Variables =
    Variables::new(&["job_id", "workflow", "step", "summary", "findings"]).with_prefixes(&["meta."]).padded();

/// The `Idempotency-Key` of a delivery: the same for every attempt and
/// redelivery of one job's notification on one channel, so a receiver can
/// drop duplicates.
pub fn idempotency_key(job_id: &str, step: &str, channel: usize) -> String {
    let mut hasher = Sha256::new();
    for part in [job_id.as_bytes(), step.as_bytes(), channel.to_string().as_bytes()] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hasher.finalize()[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// What to do about a webhook's HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Delivered.
    Delivered,
    /// Try again later.
    Retry,
    /// The receiver refused it for good.
    Fatal,
}

/// 2xx delivered; 408, 429 and 5xx retried; any other status fatal.
pub fn verdict(status: u16) -> Verdict {
    match status {
        200..=299 => Verdict::Delivered,
        408 | 429 | 500..=599 => Verdict::Retry,
        _ => Verdict::Fatal,
    }
}

/// Hex encoding.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn item(text: &str, metadata: &[(&str, &str)]) -> (String, Vec<(String, String)>) {
        (text.into(), metadata.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    #[test]
    fn gathers_summary_and_findings() {
        let items = vec![
            item("The summary.", &[("summary_sentences", "1"), ("mode", "extractive")]),
            item("chunk [EMAIL]", &[("pii_findings", r#"{"EMAIL":1}"#)]),
            item("chunk [PHONE] [EMAIL]", &[("pii_findings", r#"{"EMAIL":1,"PHONE":1}"#)]),
        ];
        let digest = Digest::gather("j1", "pdf-digest", "notify", &items);
        assert_eq!(digest.summary, "The summary.");
        assert_eq!(digest.findings_line(), "EMAIL: 2, PHONE: 1");
        assert_eq!(digest.metadata.get("mode").map(String::as_str), Some("extractive"));
        let report = item(r#"{"total":5,"by_type":{"CARD":5}}"#, &[("kind", "pii-findings")]);
        let digest = Digest::gather("j1", "w", "s", &[items[1].clone(), report]);
        assert_eq!(digest.findings_line(), "CARD: 5", "a report wins over per-item counts");
        assert_eq!(digest.summary, "chunk [EMAIL]", "without summary items every other text item is the summary");
    }

    #[test]
    fn templates_render_and_unknown_variables_are_refused() {
        let digest = Digest {
            job_id: "j".into(),
            workflow: "w".into(),
            metadata: [("urgency".to_string(), "high".to_string())].into(),
            ..Digest::default()
        };
        assert_eq!(digest.render("{{workflow}}/{{ job_id }}: {{meta.urgency}} {{findings}} {{"), "w/j: high none {{");
        let error = Config::from_json(r#"{"channels":[{"type":"stdout","body":"{{sumary}}"}]}"#).unwrap_err();
        assert!(error.contains("unknown template variable `{{sumary}}`"), "{error}");
        let error = Config::from_json(r#"{"channels":[{"type":"pager"}]}"#).unwrap_err();
        assert!(error.contains("unknown variant `pager`"), "{error}");
        assert!(Config::from_json(r#"{"channels":[]}"#).unwrap_err().contains("at least one channel"));
        assert!(Config::from_json(r#"{"channels":[{"type":"webhook","url":"ftp://x"}]}"#).is_err());
    }

    #[test]
    fn idempotency_keys_are_stable_and_distinct() {
        assert_eq!(idempotency_key("job-1", "notify", 0), idempotency_key("job-1", "notify", 0));
        assert_ne!(idempotency_key("job-1", "notify", 0), idempotency_key("job-1", "notify", 1));
        assert_ne!(idempotency_key("job-1", "notify", 0), idempotency_key("job-2", "notify", 0));
        assert_eq!(idempotency_key("a", "b", 0).len(), 32);
    }

    #[test]
    fn verdicts() {
        assert_eq!(verdict(204), Verdict::Delivered);
        assert_eq!(verdict(429), Verdict::Retry);
        assert_eq!(verdict(408), Verdict::Retry);
        assert_eq!(verdict(502), Verdict::Retry);
        assert_eq!(verdict(404), Verdict::Fatal);
        assert_eq!(verdict(301), Verdict::Fatal);
    }
}
