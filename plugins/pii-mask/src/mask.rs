//! Configuration, masking styles and the findings report.

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use weft_plugin_kit::config::{ConfigError, ConfigFields};

use crate::detect::{self, Entity, Span};

type HmacSha256 = Hmac<Sha256>;

/// How a detection is replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// `[EMAIL]`
    Tag,
    /// `**** **** **** 1234`, `j***@example.com`; other types fall back to tags.
    Partial,
    /// `[EMAIL_1a2b3c4d]`: keyed HMAC-SHA256 of the value.
    Pseudonym,
}

/// The step's configuration.
#[derive(Clone)]
pub struct Config {
    pub entities: Vec<Entity>,
    pub style: Style,
    pub allow: Vec<String>,
    /// Whether to append the `kind=pii-findings` report item (default true).
    pub findings_item: bool,
    /// A granted secret to key pseudonyms with: the component asks the host
    /// for a job-scoped key derived from it (the secret never enters the
    /// component) and passes it to [`Config::use_derived_key`].
    pub pseudonym_secret: Option<String>,
    mac: Option<HmacSha256>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the pseudonym key.
        f.debug_struct("Config")
            .field("entities", &self.entities)
            .field("style", &self.style)
            .field("allow", &self.allow)
            .field("findings_item", &self.findings_item)
            .finish_non_exhaustive()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            entities: Entity::ALL.to_vec(),
            style: Style::Tag,
            allow: Vec::new(),
            findings_item: true,
            pseudonym_secret: None,
            mac: None,
        }
    }
}

impl Config {
    /// Parses and validates the JSON config (`{}`, empty or `null` mean all
    /// defaults). The error is a message for a fatal step error.
    pub fn from_json(json: &str) -> Result<Self, String> {
        let mut fields = ConfigFields::parse("pii-mask", json)?;
        let entities: Option<Vec<String>> = fields.optional("entities")?;
        let style: Option<String> = fields.optional("style")?;
        let pseudonym_key: Option<String> = fields.optional("pseudonym_key")?;
        let pseudonym_secret: Option<String> = fields.optional("pseudonym_secret")?;
        let allow: Vec<String> = fields.optional("allow")?.unwrap_or_default();
        let findings_item = fields.optional("findings_item")?.unwrap_or(true);
        fields.finish()?;
        let invalid = |detail: String| -> String { ConfigError::new("pii-mask", detail).into() };
        let entities = match entities {
            None => Entity::ALL.to_vec(),
            Some(names) => {
                let mut out = Vec::new();
                for name in names {
                    let e = Entity::from_name(&name).ok_or_else(|| {
                        let known: Vec<&str> = Entity::ALL.iter().map(|e| e.name()).collect();
                        invalid(format!("unknown entity {name:?} (known: {})", known.join(", ")))
                    })?;
                    if !out.contains(&e) {
                        out.push(e);
                    }
                }
                out
            }
        };
        let style = match style.as_deref() {
            None | Some("tag") => Style::Tag,
            Some("partial") => Style::Partial,
            Some("pseudonym") => Style::Pseudonym,
            Some(other) => {
                return Err(invalid(format!(
                    "unknown style {other:?} (expected \"tag\", \"partial\" or \"pseudonym\")"
                )));
            }
        };
        if pseudonym_key.is_some() && pseudonym_secret.is_some() {
            return Err(invalid("give either pseudonym_secret or pseudonym_key, not both".into()));
        }
        if pseudonym_secret.as_deref().is_some_and(str::is_empty) {
            return Err(invalid("pseudonym_secret must name a granted secret".into()));
        }
        let mac = match (style, pseudonym_key) {
            (Style::Pseudonym, None) if pseudonym_secret.is_none() => {
                return Err(invalid(
                    "style \"pseudonym\" needs a pseudonym_secret (a granted secret, recommended) or a \
                     pseudonym_key"
                        .into(),
                ));
            }
            (_, Some(key)) if key.is_empty() => {
                return Err(invalid("pseudonym_key must not be empty".into()));
            }
            (_, Some(key)) => {
                Some(HmacSha256::new_from_slice(key.as_bytes()).map_err(|e| invalid(format!("pseudonym_key: {e}")))?)
            }
            (_, None) => None,
        };
        Ok(Config { entities, style, allow, findings_item, pseudonym_secret, mac })
    }

    /// Keys pseudonyms with `key` (derived by the host from
    /// [`Config::pseudonym_secret`]).
    pub fn use_derived_key(&mut self, key: &[u8]) {
        self.mac = HmacSha256::new_from_slice(key).ok();
    }
}

/// What the component asks the host to MAC with the pseudonym secret: the
/// job id scopes the derived key, so the same value maps to the same token
/// within a job and to unrelated tokens across jobs.
pub fn derivation_input(job_id: &str) -> Vec<u8> {
    let mut data = b"weft/pii-mask/pseudonym/v1\0".to_vec();
    data.extend_from_slice(job_id.as_bytes());
    data
}

/// The detections kept for `text` under `cfg` (char offsets, sorted).
pub fn find(text: &[char], cfg: &Config) -> Vec<Span> {
    let mut spans = detect::detect_all(text, &cfg.entities);
    if !cfg.allow.is_empty() {
        spans.retain(|s| {
            let value: String = text[s.start..s.end].iter().collect();
            !cfg.allow.iter().any(|a| *a == value || s.entity == Entity::Email && a.eq_ignore_ascii_case(&value))
        });
    }
    detect::resolve_overlaps(spans)
}

/// Canonical form of a value for pseudonyms, so that formatting differences
/// (`4111 1111 …` vs `4111-1111-…`, upper/lower-case e-mail) do not matter.
fn normalise(entity: Entity, value: &str) -> String {
    match entity {
        Entity::Email | Entity::IpAddress => value.to_lowercase(),
        Entity::Phone | Entity::CreditCard | Entity::Iban | Entity::UsSsn => {
            value.chars().filter(|c| c.is_alphanumeric() || *c == '+').flat_map(char::to_uppercase).collect()
        }
        Entity::DateOfBirth | Entity::Person => value.split_whitespace().collect::<Vec<_>>().join(" "),
    }
}

/// Keeps the last four alphanumerics, stars the others, keeps separators.
fn keep_last_four(value: &str) -> String {
    let total = value.chars().filter(|c| c.is_alphanumeric()).count();
    let mut seen = 0;
    value
        .chars()
        .map(|c| {
            if c.is_alphanumeric() {
                seen += 1;
                if seen + 4 > total { c } else { '*' }
            } else {
                c
            }
        })
        .collect()
}

fn replacement(entity: Entity, value: &str, cfg: &Config) -> String {
    match cfg.style {
        Style::Tag => format!("[{entity}]"),
        Style::Partial => match entity {
            Entity::CreditCard | Entity::Phone | Entity::Iban | Entity::UsSsn => keep_last_four(value),
            Entity::Email => match value.split_once('@') {
                Some((local, domain)) => {
                    let first: String = local.chars().take(1).collect();
                    format!("{first}***@{domain}")
                }
                None => format!("[{entity}]"),
            },
            _ => format!("[{entity}]"),
        },
        Style::Pseudonym => match &cfg.mac {
            Some(mac) => {
                let mut mac = mac.clone();
                mac.update(entity.name().as_bytes());
                mac.update(&[0]);
                mac.update(normalise(entity, value).as_bytes());
                let tag = mac.finalize().into_bytes();
                let hex: String = tag.iter().take(4).map(|b| format!("{b:02x}")).collect();
                format!("[{entity}_{hex}]")
            }
            None => format!("[{entity}]"),
        },
    }
}

/// The masked text and the spans (char offsets into the original) masked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Masked {
    pub text: String,
    pub spans: Vec<Span>,
}

/// Detects and masks personal data in one text.
pub fn mask_text(text: &str, cfg: &Config) -> Masked {
    let chars: Vec<char> = text.chars().collect();
    let spans = find(&chars, cfg);
    // The spans are sorted char offsets: one walk over the text turns them
    // into byte offsets, so the kept text is copied as whole slices.
    let mut offsets = text.char_indices().map(|(byte, _)| byte).enumerate().peekable();
    let mut byte_at = |char_offset: usize| {
        while let Some(&(k, byte)) = offsets.peek() {
            if k == char_offset {
                return byte;
            }
            offsets.next();
        }
        text.len()
    };
    let mut byte_pos = 0;
    let mut out = String::with_capacity(text.len());
    for s in &spans {
        let (start, end) = (byte_at(s.start), byte_at(s.end));
        out.push_str(&text[byte_pos..start]);
        out.push_str(&replacement(s.entity, &text[start..end], cfg));
        byte_pos = end;
    }
    out.push_str(&text[byte_pos..]);
    Masked { text: out, spans }
}

/// Compact per-type counts, e.g. `{"EMAIL":2,"PHONE":1}` (keys sorted).
pub fn counts_json(spans: &[Span]) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for s in spans {
        *counts.entry(s.entity.name()).or_default() += 1;
    }
    serde_json::to_string(&counts).unwrap_or_else(|_| "{}".into())
}

pub type Metadata = Vec<(String, String)>;

/// One entry of the findings report. The fields are in sorted key order,
/// the order a `serde_json::Value` object writes them in, so the report
/// reads as it did when it was built as a `Value` (without the cost of a
/// map per finding).
#[derive(Serialize)]
struct Finding {
    end: usize,
    item: usize,
    start: usize,
    #[serde(rename = "type")]
    kind: &'static str,
}

/// The `kind=pii-findings` report item (fields in sorted key order too).
#[derive(Serialize)]
struct Report {
    by_type: BTreeMap<&'static str, usize>,
    findings: Vec<Finding>,
    total: usize,
}

/// Masks every item; returns the masked items (each with `pii_findings`
/// metadata) followed, if configured, by the `kind=pii-findings` report
/// item. `first_index` numbers the items in the report (the host's item
/// index for a `map` step, else 0).
pub fn mask_items(items: Vec<(String, Metadata)>, cfg: &Config, first_index: usize) -> Vec<(String, Metadata)> {
    let mut out = Vec::with_capacity(items.len() + 1);
    let mut findings = Vec::new();
    let mut by_type: BTreeMap<&'static str, usize> = BTreeMap::new();
    for (k, (text, mut metadata)) in items.into_iter().enumerate() {
        let masked = mask_text(&text, cfg);
        for s in &masked.spans {
            *by_type.entry(s.entity.name()).or_default() += 1;
            findings.push(Finding { end: s.end, item: first_index + k, start: s.start, kind: s.entity.name() });
        }
        let counts = counts_json(&masked.spans);
        match metadata.iter_mut().find(|(key, _)| key == "pii_findings") {
            Some(entry) => entry.1 = counts,
            None => metadata.push(("pii_findings".into(), counts)),
        }
        out.push((masked.text, metadata));
    }
    if cfg.findings_item {
        let report = Report { by_type, total: findings.len(), findings };
        let report =
            serde_json::to_string(&report).unwrap_or_else(|e| serde_json::json!({"error": e.to_string()}).to_string());
        out.push((report, vec![("kind".into(), "pii-findings".into())]));
    }
    out
}

#[cfg(test)]
mod tests;
