//! `summarize`: a summary of text items, made offline inside the sandbox
//! (`mode: extractive`, the default: LexRank sentence ranking, see
//! [`extract`]) or by the host's `llm` capability (`mode: llm`: a prompt
//! template and map-reduce over windows, see [`llm`]). This file only adapts
//! them to the `capable-step` world.

pub mod extract;
pub mod llm;

pub use extract::{Config, split_sentences, summarize};

// The `export_step!` macro expands to `unsafe` ABI glue; the workspace
// denies `unsafe_code`, so it is allowed for this module only. Clippy's
// `too_many_arguments` fires on that glue, which takes every flattened
// field of `run`'s parameters.
#[allow(unsafe_code, clippy::too_many_arguments)]
mod component {
    use weft_plugin_kit::llm as host_llm;
    use weft_plugin_kit::{Context, Guest, Item, StepError, error, item};

    use crate::extract::{self, Config, Mode};

    struct SummarizeStep;

    impl Guest for SummarizeStep {
        fn run(_ctx: Context, input: Vec<Item>, config: String) -> Result<Vec<Item>, StepError> {
            let cfg = Config::from_json(&config).map_err(StepError::Fatal)?;
            let source_items = input.len();
            let texts: Vec<String> = item::text_items(input, "summarize", Some("extract the text first"))?
                .into_iter()
                .map(|(text, _)| text)
                .collect();
            if cfg.mode == Mode::Llm {
                return summarize_with_llm(&texts, &cfg, source_items);
            }
            let (summary, sentences) = extract::summarize(&texts, &cfg);
            Ok(vec![Item::text(summary, extract::metadata(sentences, source_items))])
        }
    }

    fn summarize_with_llm(texts: &[String], cfg: &Config, source_items: usize) -> Result<Vec<Item>, StepError> {
        let mut model = String::new();
        let ask = |prompt: &str| {
            let request = host_llm::ChatRequest {
                messages: vec![host_llm::Message { role: "user".into(), content: prompt.to_string() }],
                model: cfg.llm.model.clone(),
                max_tokens: Some(cfg.llm.max_tokens),
                temperature: Some(0.2),
            };
            host_llm::chat(&request).map(|answer| {
                model = answer.model;
                answer.content
            })
        };
        let (summary, calls) =
            crate::llm::map_reduce(texts, &cfg.llm, ask).map_err(|e| error::from_llm(e, "summarise"))?;
        let metadata = vec![
            ("kind".to_string(), "summary".to_string()),
            ("mode".to_string(), "llm".to_string()),
            ("model".to_string(), model),
            ("llm_calls".to_string(), calls.to_string()),
            ("source_items".to_string(), source_items.to_string()),
        ];
        Ok(vec![Item::text(summary, metadata)])
    }

    weft_plugin_kit::export_step!(SummarizeStep);
}
