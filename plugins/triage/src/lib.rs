//! `triage`: classifies a support ticket's category and urgency and drafts
//! a reply marked as awaiting human review — with transparent offline
//! keyword rules (the default) or the host's `llm` capability.
//!
//! The rules, prompt and answer parsing live in [`rules`] as plain Rust;
//! this file adapts them to the `capable-step` world.

pub mod rules;

pub use rules::{Config, Mode, Ticket, Triage, classify};

// The `export_step!` macro expands to `unsafe` ABI glue; the workspace
// denies `unsafe_code`, so it is allowed for this module only. Clippy's
// `too_many_arguments` fires on that glue, which takes every flattened
// field of `run`'s parameters.
#[allow(unsafe_code, clippy::too_many_arguments)]
mod component {
    use weft_plugin_kit::{Context, Guest, Item, Payload, StepError, error, llm, metadata};

    use crate::rules::{self, Config, Mode, Ticket, Triage};

    struct TriageStep;

    impl Guest for TriageStep {
        fn run(_ctx: Context, input: Vec<Item>, config: String) -> Result<Vec<Item>, StepError> {
            let cfg = Config::from_json(&config).map_err(StepError::Fatal)?;
            let mut out = Vec::new();
            for (index, item) in input.into_iter().enumerate() {
                let text = match item.payload {
                    Payload::Text(text) => text,
                    Payload::Bytes(_) => {
                        return Err(StepError::fatal(format!(
                            "triage expects a text or JSON ticket, got bytes (item {index})"
                        )));
                    }
                };
                if metadata::has(&item.metadata, "kind", "pii-findings") {
                    out.push(Item::text(text, item.metadata));
                    continue;
                }
                let ticket = Ticket::read(&text);
                let triage = match cfg.mode {
                    Mode::Rules => rules::classify(&ticket, &cfg),
                    Mode::Llm => ask_model(&ticket, &cfg)?,
                };
                let mut metadata = item.metadata;
                metadata.retain(|(k, _)| !matches!(k.as_str(), "kind" | "category" | "urgency" | "status"));
                metadata.extend([
                    ("kind".to_string(), "triage".to_string()),
                    ("category".to_string(), triage.category.clone()),
                    ("urgency".to_string(), triage.urgency.clone()),
                    ("explanation".to_string(), triage.explanation.clone()),
                    ("mode".to_string(), if cfg.mode == Mode::Llm { "llm" } else { "rules" }.to_string()),
                    ("status".to_string(), "draft-awaiting-review".to_string()),
                    ("subject".to_string(), ticket.subject.clone()),
                ]);
                let body = format!(
                    "DRAFT — awaiting human review (category: {}, urgency: {})\n\n{}",
                    triage.category, triage.urgency, triage.draft
                );
                out.push(Item::text(body, metadata));
            }
            Ok(out)
        }
    }

    fn ask_model(ticket: &Ticket, cfg: &Config) -> Result<Triage, StepError> {
        let (system, user) = rules::llm_prompt(ticket, cfg);
        let request = llm::ChatRequest {
            messages: vec![
                llm::Message { role: "system".into(), content: system },
                llm::Message { role: "user".into(), content: user },
            ],
            model: cfg.model.clone(),
            max_tokens: Some(600),
            temperature: Some(0.0),
        };
        let answer = llm::chat(&request).map_err(|e| error::from_llm(e, "triage"))?;
        // A malformed answer may be a fluke of sampling: worth one more try.
        rules::parse_llm_answer(&answer.content, cfg).map_err(StepError::Retryable)
    }

    weft_plugin_kit::export_step!(TriageStep);
}
